"""Issue 6's promises, through the terminal UI: responsive while a repair waits on a lock, hostile names
shown and repaired, and the password never on any screen."""

from __future__ import annotations

from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from conftest import PASSWORD
from seqtui.repair import oneliner, plans_from_verdicts
from seqtui.tui.screens import HelpScreen, PreviewScreen, ResultsScreen
from test_facts import HOSTILE
from test_tui import SIZE, key_of, make_app, started, text_of, until

pytestmark = pytest.mark.asyncio


@pytest.fixture
def busy_and_idle(db):
    """Two behind tables; `busy` is locked by an application's open write transaction."""
    db.execute("""
        CREATE TABLE busy (id serial PRIMARY KEY); INSERT INTO busy VALUES (10);
        CREATE TABLE idle (id serial PRIMARY KEY); INSERT INTO idle VALUES (20);
    """)
    holder = psycopg.connect(db.url)
    holder.execute("LOCK TABLE busy IN ROW EXCLUSIVE MODE")
    yield holder
    holder.close()


def seqtui_waiting_on_a_lock(db) -> bool:
    return db.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'seqtui' "
                     "AND wait_event_type = 'Lock'") > 0


async def test_ui_stays_responsive_while_a_repair_waits_on_a_lock(db, busy_and_idle, tmp_path):
    app = make_app(db.url, tmp_path, lock_timeout=30)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("b", "f")
        await until(pilot, lambda: isinstance(app.screen, PreviewScreen), "the preview")
        await pilot.press("y")
        await until(pilot, lambda: seqtui_waiting_on_a_lock(db), "the repair to wait on the lock")
        # While the repair waits, the UI still answers keys: close the results panel, open help.
        assert isinstance(app.screen, ResultsScreen)
        await pilot.press("escape", "question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        assert app.apply_count == 0 and seqtui_waiting_on_a_lock(db)  # the repair is still waiting
        await pilot.press("escape")
        busy_and_idle.rollback()  # the application's transaction ends: the lock is granted
        await until(pilot, lambda: app.apply_count == 1, "the repair")
        results = "\n".join(r.line() for r in app.last_results)
        assert "fixed      public.busy_id_seq: next 1 -> 11" in results
        assert "fixed      public.idle_id_seq: next 1 -> 21" in results
    assert db.insert_default("busy") == 11 and db.insert_default("idle") == 21


async def test_lock_timeout_in_the_ui_names_the_table_and_fixes_the_others(db, busy_and_idle, tmp_path):
    app = make_app(db.url, tmp_path, lock_timeout=0.3)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("b", "f")
        await until(pilot, lambda: isinstance(app.screen, PreviewScreen), "the preview")
        await pilot.press("y")
        await until(pilot, lambda: app.apply_count == 1, "the repair")
        results = text_of(app, "results-text")
        assert "lock on public.busy not granted within 0.3s" in results and "held by pid" in results
        assert "fixed      public.idle_id_seq" in results
    assert db.next_value("public.busy_id_seq") == 1
    assert db.insert_default("idle") == 21


async def test_hostile_names_are_shown_copied_and_repaired(db, tmp_path):
    for i, name in enumerate(HOSTILE):
        db.execute(sql.SQL("CREATE TABLE {} ({} serial PRIMARY KEY)").format(
            sql.Identifier(f"{name}{i}"), sql.Identifier(name)))
        db.execute(sql.SQL("INSERT INTO {} VALUES (7)").format(sql.Identifier(f"{name}{i}")))
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        labels = {v.label for v in app.verdicts.values() if v.status.value == "behind"}
        assert labels == {f"public.{name}{i}.{name}" for i, name in enumerate(HOSTILE)}
        # copy the one-liner of one of them: exactly what the core builds
        target = f"public.{HOSTILE[0]}0.{HOSTILE[0]}"
        app.table.move_cursor(row=app.table.get_row_index(key_of(app, target)))
        await pilot.pause()
        await pilot.press("c")
        (plan,) = [p for p in plans_from_verdicts(app.report.verdicts) if p.consumers[0].table == f"{HOSTILE[0]}0"]
        assert app.clipboard.strip() == oneliner(plan, app.lock_timeout)
        await pilot.press("escape")
        await pilot.press("b", "f")
        await until(pilot, lambda: isinstance(app.screen, PreviewScreen), "the preview")
        await pilot.press("y")
        await until(pilot, lambda: app.apply_count == 1, "the repair")
    for i, name in enumerate(HOSTILE):
        got = db.conn.execute(sql.SQL("INSERT INTO {} DEFAULT VALUES RETURNING *").format(
            sql.Identifier(f"{name}{i}"))).fetchone()
        assert got == (8,)


async def test_password_is_on_no_screen(db, tmp_path):
    db.execute("CREATE TABLE t (id serial PRIMARY KEY); INSERT INTO t VALUES (3)")
    app = make_app(db.url, tmp_path)
    secrets = (PASSWORD, quote(PASSWORD, safe=""))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        screens = [app.export_screenshot()]
        for keys, screen in [(("b", "f"), PreviewScreen), (("escape", "question_mark"), HelpScreen)]:
            await pilot.press(*keys)
            await until(pilot, lambda: isinstance(app.screen, screen), screen.__name__)
            screens.append(app.export_screenshot())
        await pilot.press("escape", "s")  # the script, shown in the copy panel
        await pilot.pause()
        screens.append(app.export_screenshot())
        screens.append(app.clipboard)
    assert "public.t_id_seq" in screens[1]  # the screens were really captured
    for text in screens:
        assert not any(s in text for s in secrets)


async def test_statement_timeout_given_to_the_ui_is_what_its_repairs_use(db, tmp_path):
    db.execute("CREATE TABLE t (id serial PRIMARY KEY); INSERT INTO t VALUES (3)")
    app = make_app(db.url, tmp_path, statement_timeout=2.5)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("c")
        assert """ -c "SET LOCAL statement_timeout = '2500ms'" """ in app.clipboard
        await pilot.press("escape", "f")
        await until(pilot, lambda: isinstance(app.screen, PreviewScreen), "the preview")
        assert "SET LOCAL statement_timeout = '2500ms';" in text_of(app, "preview-text")
