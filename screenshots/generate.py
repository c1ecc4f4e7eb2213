"""Regenerate the SVG screenshots in this directory from the real app on a real database.

    .venv/bin/python screenshots/generate.py

Starts a throwaway embedded PostgreSQL, loads shop.sql into a database named "shop", runs the app
headless (Textual's run_test) at 80x24 and 140x40 and saves each screen. Two refreshes with inserts in
between, so that the consumption-rate column has numbers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from seqtui.config import Config  # noqa: E402
from seqtui.connect import resolve  # noqa: E402
from seqtui.embedded import EmbeddedServer  # noqa: E402
from seqtui.tui.app import SeqtuiApp  # noqa: E402
from seqtui.tui.screens import CopyScreen, HelpScreen, PreviewScreen, ResultsScreen  # noqa: E402

SIZES = [(80, 24), (140, 40)]


async def until(pilot, condition, tries: int = 600) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise RuntimeError("timed out")


async def shoot(url: str, size: tuple[int, int], audit: Path) -> None:
    w, h = size
    app = SeqtuiApp(resolve(url), Config(), interval=2.0, display_database={"port": 5432},
                    audit_log=str(audit))

    def save(name: str) -> None:
        path = app.save_screenshot(f"{name}-{w}x{h}.svg", str(HERE))
        print(path)

    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.refresh_count >= 1)
        with psycopg.connect(url, autocommit=True) as conn:  # traffic, so that rates show
            conn.execute("INSERT INTO public.page_views SELECT FROM generate_series(1, 400)")
            conn.execute("INSERT INTO public.events SELECT FROM generate_series(1, 90)")
            conn.execute("INSERT INTO public.customers (name) SELECT 'new' FROM generate_series(1, 30)")
        await pilot.pause(1.0)
        await pilot.press("r")  # a second reading, a second later: rates appear
        await until(pilot, lambda: app.refresh_count >= 2)
        app.clear_notifications()
        await pilot.pause()
        save("main")

        await pilot.press("b")
        app.clear_notifications()
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, PreviewScreen))
        await pilot.pause()
        save("preview")
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, PreviewScreen))

        await pilot.press("escape", "c")
        await until(pilot, lambda: isinstance(app.screen, CopyScreen))
        await pilot.pause()
        save("copy")
        await pilot.press("escape")

        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.pause()
        save("help")
        await pilot.press("escape")

        if size == SIZES[-1]:  # apply once, on the last size: the database changes
            await pilot.press("b", "f")
            await until(pilot, lambda: isinstance(app.screen, PreviewScreen))
            await pilot.press("y")
            await until(pilot, lambda: app.apply_count == 1)
            count = app.refresh_count
            await until(pilot, lambda: app.refresh_count > count)
            assert isinstance(app.screen, ResultsScreen)
            app.clear_notifications()
            await pilot.pause()
            save("results")
    app._close_conn()


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="seqtui-shots-", dir="/var/tmp" if os.geteuid() == 0 else None))
    root.chmod(0o755)
    server = EmbeddedServer(root / "pg", password=None)
    server.start()
    try:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE shop")
        url = server.url("shop")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute((HERE / "shop.sql").read_text())
        for size in SIZES:
            asyncio.run(shoot(url, size, root / "audit.jsonl"))
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
