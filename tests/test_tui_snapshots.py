"""SVG snapshots of the main screen, the repair preview and the help screen, at 80x24 and 140x40.

Against a real database built from screenshots/shop.sql. Stable because the refresh clock and the
database facts in the header are fixed (the database name, port and server version of a test run vary)
and the app refreshes only once (live=False: no timers).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from seqtui.config import Config
from seqtui.connect import resolve
from seqtui.tui.app import SeqtuiApp
from seqtui.tui.screens import HelpScreen, PreviewScreen

SHOP_SQL = (Path(__file__).resolve().parent.parent / "screenshots" / "shop.sql").read_text()
FIXED_DATABASE = {"name": "shop", "host": "db.internal", "port": 5432, "user": "app", "server_version": "17.2"}
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((140, 40), id="140x40")]


def shop_app(db, tmp_path) -> SeqtuiApp:
    db.execute(SHOP_SQL)
    return SeqtuiApp(resolve(db.url), Config(), live=False, clock=lambda: datetime(2026, 1, 2, 9, 30, 0),
                     display_database=FIXED_DATABASE, audit_log=str(tmp_path / "audit.jsonl"))


async def until(pilot, condition, tries: int = 600) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out")


async def ready(pilot) -> None:
    await until(pilot, lambda: pilot.app.refresh_count >= 1)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare, db, tmp_path, size):
    assert snap_compare(shop_app(db, tmp_path), terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_preview_dialog(snap_compare, db, tmp_path, size):
    async def open_preview(pilot):
        await ready(pilot)
        await pilot.press("b")
        pilot.app.clear_notifications()  # "4 behind rows selected": a toast, not the subject here
        await pilot.press("f")
        await until(pilot, lambda: isinstance(pilot.app.screen, PreviewScreen))
        await pilot.pause()

    assert snap_compare(shop_app(db, tmp_path), terminal_size=size, run_before=open_preview)


@pytest.mark.parametrize("size", SIZES)
def test_help_screen(snap_compare, db, tmp_path, size):
    async def open_help(pilot):
        await ready(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
        await pilot.pause()

    assert snap_compare(shop_app(db, tmp_path), terminal_size=size, run_before=open_help)
