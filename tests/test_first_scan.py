"""The UI's first scan, started before the app (tui.run does so before importing textual), then taken
over by the app: the same table, its progress, its failures, and quitting while it waits on a lock.
Real PostgreSQL, Textual's Pilot."""

from __future__ import annotations

import gc
import time

import psycopg
import pytest

from seqtui import catalog
from seqtui.config import Config
from seqtui.connect import connect, resolve
from seqtui.tui.app import SeqtuiApp
from seqtui.tui.first_scan import FirstScan, ui_scope

from test_tui import SIZE, cell, drifted, make_app, progress_recording_app, started, text_of, until

pytestmark = pytest.mark.asyncio


def first_scan_of(url: str, **kw) -> FirstScan:
    target = resolve(url)
    return FirstScan(connect(target), ui_scope(target, Config(), statement_timeout=kw.pop("timeout", 10.0)),
                     target, **kw).start()


def app_adopting(url: str, first: FirstScan, tmp_path) -> SeqtuiApp:
    return SeqtuiApp(resolve(url), Config(), conn=first.conn, interval=3600, first_scan=first,
                     audit_log=str(tmp_path / "audit.jsonl"))


async def test_the_app_shows_the_scan_started_before_it_and_runs_no_other(db, tmp_path):
    drifted(db, "t1", "t2")
    db.execute("CREATE TABLE fine (id serial PRIMARY KEY); INSERT INTO fine DEFAULT VALUES")
    first = first_scan_of(db.url)
    app = app_adopting(db.url, first, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert app.refresh_count == 1 and app.last_tick is first.scanner.last_tick
        assert app._conn is first.conn and app._scanner is first.scanner  # its later ticks go on there
        assert {cell(app, f"public.{t}.id", "status") for t in ("t1", "t2")} == {"behind"}
        assert cell(app, "public.fine.id", "status") == "ok"
        assert app.table.row_count == 3 and "measuring" not in text_of(app, "summary-line")


async def test_progress_reported_before_the_app_took_over_is_shown_then_the_table(db, tmp_path, monkeypatch):
    """The scan may get through groups while textual is still importing: the latest progress (it holds
    every row so far) is handed to the app when it takes over."""
    from seqtui.tui import refreshing

    for t in ("t1", "t2", "t3"):
        drifted(db, t)
    monkeypatch.setattr(catalog, "GROUP", 1)  # a group per sequence: progress after the 1st and 2nd
    first = first_scan_of(db.url)
    first._thread.join()  # the whole scan runs before the app exists

    seen = []
    first.adopt(lambda rows, done, total: seen.append((done, total, len(rows().verdicts))))
    assert seen == [(2, 3, 2)]
    first.collections.release()  # no app here to settle the table and give collection back
    first.conn.close()

    first = first_scan_of(db.url)
    first._thread.join()
    monkeypatch.setattr(refreshing, "PROGRESS_NEAR_END", 0)
    shown: dict = {}
    app = progress_recording_app(db, tmp_path, shown, conn=first.conn, first_scan=first)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert list(shown) == [(2, 3)] and shown[(2, 3)][0] == 2  # rows in the table then
        assert app.table.row_count == 3 and app.measuring is None


async def test_a_first_scan_that_failed_before_the_app_took_over_shows_as_a_lost_connection(db, tmp_path):
    drifted(db, "t1")
    target = resolve(db.url)
    conn = connect(target)
    conn.close()  # the scan fails at its first statement
    first = FirstScan(conn, ui_scope(target, Config()), target).start()
    with pytest.raises(psycopg.OperationalError):
        first.result()
    assert gc.isenabled()  # given back: no table is coming

    first = FirstScan(conn, ui_scope(target, Config()), target).start()
    app = app_adopting(db.url, first, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.last_error is not None, "the failed first scan")
        assert app.report is None and app.lost is not None
        assert "CONNECTION LOST" in text_of(app, "state-line")


@pytest.mark.parametrize("before_the_app", [False, True], ids=["the app's own", "started before the app"])
async def test_quitting_while_the_first_scan_waits_on_a_lock_calls_the_scan_off(db, tmp_path, before_the_app):
    """An operator who quits while a table is locked is not kept waiting for the scan's statements
    (each up to statement_timeout): the one waiting is cancelled and no other is sent."""
    def waiting_on_a_lock() -> int:
        return db.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'seqtui' "
                         "AND datname = current_database() AND wait_event_type = 'Lock'")

    drifted(db, "t1", "t2")
    locker = psycopg.connect(db.url)
    locker.execute("LOCK TABLE public.t2 IN ACCESS EXCLUSIVE MODE")
    try:
        if before_the_app:
            first = first_scan_of(db.url, timeout=120)
            app = app_adopting(db.url, first, tmp_path)
        else:
            app = make_app(db.url, tmp_path, statement_timeout=120)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: waiting_on_a_lock() == 1, "the first scan to wait for the lock")
            await pilot.press("q")
        deadline = time.monotonic() + 5
        while waiting_on_a_lock() and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the server for the wait to end
        assert waiting_on_a_lock() == 0 and app.report is None
        if before_the_app:  # its thread has ended too
            first._thread.join(5)
            assert not first._thread.is_alive()
    finally:
        locker.rollback()
        locker.close()


async def test_run_starts_the_first_scan_with_the_commands_scope_and_the_app_takes_it(db, monkeypatch):
    """tui.run(), as `seqtui --schema public` calls it: the scan it starts before importing textual
    measures what the command line asked for, and the app it builds takes that very scan over."""
    from seqtui import cli
    from seqtui.tui import app as app_module, run

    drifted(db, "t1")
    db.execute("CREATE SCHEMA other; CREATE TABLE other.t2 (id serial PRIMARY KEY); "
               "INSERT INTO other.t2 (id) VALUES (5)")
    seen = {}

    def headless_run(self):  # the app's run() without a terminal: take the scan over, then quit
        seen["first_scan"] = self._first_scan
        seen["report"] = self._first_scan.result()
        self._collections.release()  # no table is painted here to settle
        return 0

    monkeypatch.setattr(app_module.SeqtuiApp, "run", headless_run)
    args = cli.parse_args(["--schema", "public"])
    assert run(target=resolve(db.url), config=Config(), args=args) == 0
    assert seen["first_scan"].scanner.scope.schemas == ("public",)
    assert [(v.label, v.status.value) for v in seen["report"].verdicts] == [("public.t1.id", "behind")]
    assert seen["first_scan"].conn.closed  # run() closed it when the app was done


async def test_fewer_connections_than_jobs_asked_for_are_a_warning_with_the_number_used(db, tmp_path):
    """--jobs 4 for a role allowed two connections: the scan started before the app measures on two,
    and the app says so once it has taken the scan over (by then the scan may have ended)."""
    from psycopg.conninfo import make_conninfo

    drifted(db, "t1", "t2")
    role = f"{db.name}_two"
    db.execute(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'x' CONNECTION LIMIT 2; "
               f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; "
               f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
    url = make_conninfo(db.url, user=role, password="x")
    try:
        first = first_scan_of(url, jobs=4)
        first._thread.join()  # ended before the app takes it over: its helper is closed again
        app = app_adopting(url, first, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot, app)
            await until(pilot, lambda: app._notifications, "the warning")
            [note] = [str(n.message) for n in app._notifications]
            assert note.startswith("--jobs 4: measuring on 2 connection(s), since another one could not be "
                                   "opened") and "too many connections" in note
            assert app.table.row_count == 2
    finally:
        db.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
