"""The terminal UI driven through Textual's Pilot against a real PostgreSQL (no mocks).

Waits are on app state (refresh_count, apply_count, the screen stack), never on the clock: a bounded
loop of `pilot.pause()` gives the workers' messages time to arrive.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest
from textual.widgets._footer import FooterKey

from seqtui.config import Config
from seqtui.connect import resolve
from seqtui.repair import oneliner, plans_from_verdicts
from seqtui.tui import refreshing
from seqtui.tui import rows as rows_module
from seqtui.tui.app import SeqtuiApp
from seqtui.tui.footer import KeyFooter
from seqtui.tui.screens import CopyScreen, HelpScreen, PreviewScreen, ResultsScreen

from conftest import PASSWORD, start_embedded

pytestmark = pytest.mark.asyncio
SIZE = (120, 40)


def make_app(url: str, tmp_path, **kw) -> SeqtuiApp:
    kw.setdefault("interval", 3600)  # refreshes happen when a test asks for them (r), not on a clock
    return SeqtuiApp(resolve(url), Config(), audit_log=str(tmp_path / "audit.jsonl"), **kw)


async def until(pilot, condition, what: str, tries: int = 600) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def refreshed(pilot, app: SeqtuiApp, press: bool = True) -> None:
    """Ask for a refresh (r) and wait until one more has landed."""
    before = app.refresh_count
    if press:
        await pilot.press("r")
    await until(pilot, lambda: app.refresh_count > before, "a refresh")


async def started(pilot, app: SeqtuiApp) -> None:
    await until(pilot, lambda: app.refresh_count >= 1, "the first scan")


def key_of(app: SeqtuiApp, label: str) -> str:
    keys = [k for k, v in app.verdicts.items() if v.label == label]
    assert len(keys) == 1, (label, list(app.verdicts))
    return keys[0]


def cell(app: SeqtuiApp, label: str, column: str) -> str:
    return str(app.table.get_cell(key_of(app, label), column))


def displayed_keys(app: SeqtuiApp) -> list[str]:
    table = app.table
    return [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]


async def move_to(pilot, app: SeqtuiApp, label: str) -> None:
    app.table.move_cursor(row=app.table.get_row_index(key_of(app, label)))
    await pilot.pause()
    assert app.current_key() == key_of(app, label)


def text_of(app: SeqtuiApp, widget_id: str) -> str:
    """The text of a Static on the active screen (a modal) or else on the main screen."""
    found = app.screen.query(f"#{widget_id}") or app.query(f"#{widget_id}")
    return str(found.first().content)


def drifted(db, *tables: str, rows: int = 100) -> None:
    """Serial tables whose rows arrived with explicit ids: the sequence is behind."""
    for t in tables:
        db.execute(f"CREATE TABLE public.{t} (id serial PRIMARY KEY, note text)")
        db.execute(f"INSERT INTO public.{t} (id) SELECT generate_series(1, {rows})")


async def test_behind_rows_appear_with_status_and_header(db, tmp_path):
    drifted(db, "orders")
    db.execute("CREATE TABLE public.fine (id serial PRIMARY KEY)")
    db.execute("INSERT INTO public.fine DEFAULT VALUES")
    db.execute("CREATE TABLE public.nothing (id serial PRIMARY KEY)")
    app = make_app(db.url, tmp_path, status_line=lambda: "demo writer: 3 inserts")
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert cell(app, "public.orders.id", "status") == "behind"
        assert cell(app, "public.orders.id", "next") == "1"
        assert cell(app, "public.orders.id", "hw") == "100"
        assert cell(app, "public.fine.id", "status") == "ok"
        assert cell(app, "public.nothing.id", "status") == "empty"
        # behind first, by default
        assert displayed_keys(app)[0] == key_of(app, "public.orders.id")
        header = text_of(app, "db-line") + text_of(app, "summary-line") + text_of(app, "state-line")
        assert db.name in header and "postgres" in header and "read-write" in header
        assert "1 behind" in header and "1 ok" in header and "1 empty" in header
        assert "demo writer: 3 inserts" in header
        assert PASSWORD not in header and "x9" not in header
        # the details pane follows the cursor (on the first, behind row) and shows the fix
        details = text_of(app, "details")
        assert "public.orders_id_seq" in details and "setval" in details and "indexed" in details


def progress_recording_app(db, tmp_path, seen: dict, **kw) -> SeqtuiApp:
    """An app that records, each time its header shows the first scan's progress (done, total), the
    rows in the table and the summary line then. `kw`: more arguments for the app."""
    from seqtui.tui import app as app_module

    class Recording(SeqtuiApp):
        CSS_PATH = str(Path(app_module.__file__).with_name(SeqtuiApp.CSS_PATH))  # relative to app.py

        def _show_header(self) -> None:
            super()._show_header()
            if self.measuring is not None:
                seen[self.measuring] = (self.table.row_count, text_of(self, "summary-line"))

    return Recording(resolve(db.url), Config(), audit_log=str(tmp_path / "audit.jsonl"), interval=3600, **kw)


async def test_first_scan_shows_rows_while_it_measures_the_rest(db, tmp_path, monkeypatch):
    """On a big database the first rows show before the scan ends, with its progress in the header;
    the final report completes the table and the progress goes away."""
    from seqtui import catalog
    from seqtui.tui import app as app_module

    for t in ("t1", "t2", "t3", "t4"):
        drifted(db, t, rows=3)
    monkeypatch.setattr(catalog, "GROUP", 1)          # a group per sequence
    monkeypatch.setattr(refreshing, "PROGRESS_EVERY", 0)  # every group shown (normally throttled)
    monkeypatch.setattr(refreshing, "PROGRESS_NEAR_END", 0)  # even those just before the end
    seen: dict = {}
    app = progress_recording_app(db, tmp_path, seen)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert sorted(seen) == [(1, 4), (2, 4), (3, 4)]
        for (done, total), (rows, summary) in seen.items():
            assert rows == done
            assert f"measuring… {done} of {total} sequences" in summary and f"{done} behind" in summary
        assert app.table.row_count == 4 and app.measuring is None
        assert "measuring" not in text_of(app, "summary-line")
        assert all(cell(app, f"public.t{i}.id", "status") == "behind" for i in range(1, 5))


async def test_first_scan_counts_every_group_but_shows_rows_less_often(db, tmp_path, monkeypatch):
    """Between two showings of the rows (PROGRESS_EVERY), the header's count still moves group by
    group and says how many sequences the table holds so far."""
    from seqtui import catalog
    from seqtui.tui import app as app_module

    for t in ("t1", "t2", "t3", "t4"):
        drifted(db, t, rows=3)
    monkeypatch.setattr(catalog, "GROUP", 1)
    monkeypatch.setattr(refreshing, "PROGRESS_EVERY", 3600)  # rows once, at the first group
    seen: dict = {}
    app = progress_recording_app(db, tmp_path, seen)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert sorted(seen) == [(1, 4), (2, 4), (3, 4)]
        assert [rows for rows, _ in seen.values()] == [1, 1, 1]
        assert "measuring… 1 of 4 sequences" in seen[(1, 4)][1] and "in the table" not in seen[(1, 4)][1]
        assert "measuring… 3 of 4 sequences (1 in the table)" in seen[(3, 4)][1]
        assert app.table.row_count == 4 and "measuring" not in text_of(app, "summary-line")


async def test_first_scan_shows_no_rows_so_far_when_the_full_table_is_due(db, tmp_path, monkeypatch):
    """Rows due (PROGRESS_EVERY) are not shown when the pace so far says the whole table follows within
    PROGRESS_NEAR_END: that showing would only hold the full table back. The first group's rows still
    show at once, and the count still moves."""
    from seqtui import catalog
    from seqtui.tui import app as app_module

    for t in ("t1", "t2", "t3", "t4"):
        drifted(db, t, rows=3)
    monkeypatch.setattr(catalog, "GROUP", 1)
    monkeypatch.setattr(refreshing, "PROGRESS_EVERY", 0)
    monkeypatch.setattr(refreshing, "PROGRESS_NEAR_END", 3600)  # every group is "near the end"
    seen: dict = {}
    app = progress_recording_app(db, tmp_path, seen)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert sorted(seen) == [(1, 4), (2, 4), (3, 4)]
        assert [seen[k][0] for k in sorted(seen)] == [1, 1, 1]
        assert app.table.row_count == 4 and "measuring" not in text_of(app, "summary-line")


async def test_garbage_collection_is_held_off_until_the_first_table_then_given_back(db, tmp_path):
    import gc

    from seqtui.tui import app as app_module

    drifted(db, "t1")
    before_table: list[bool] = []

    class Recording(SeqtuiApp):
        CSS_PATH = str(Path(app_module.__file__).with_name(SeqtuiApp.CSS_PATH))

        def start_refresh(self, full: bool = False) -> None:
            if self.report is None:
                before_table.append(gc.isenabled())
            super().start_refresh(full)

    assert gc.isenabled()
    app = Recording(resolve(db.url), Config(), audit_log=str(tmp_path / "audit.jsonl"), interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await until(pilot, gc.isenabled, "collection to be given back after the first table")
    assert before_table == [False]
    assert gc.isenabled()


async def test_garbage_collection_is_given_back_when_the_first_scan_fails(tmp_path):
    import gc

    app = make_app("postgresql://nobody@127.0.0.1:1/nowhere", tmp_path)  # nothing listens on port 1
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.last_error is not None, "the failed first scan")
        assert app.report is None and gc.isenabled()


async def test_a_first_scan_that_fails_half_way_stops_saying_it_is_measuring(db, tmp_path):
    from seqtui.tui.messages import RefreshFailed

    drifted(db, "t1", "t2")
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.measuring = (1, 2)  # the state a first scan is in after its first progress report
        app._show_header()
        assert "measuring… 1 of 2" in text_of(app, "summary-line")
        app.post_message(RefreshFailed("server closed the connection unexpectedly", lost=True))
        await until(pilot, lambda: "CONNECTION LOST" in text_of(app, "state-line"), "the lost connection")
        assert "measuring" not in text_of(app, "summary-line")


async def test_select_preview_apply_fixes_exactly_the_selection(db, tmp_path):
    drifted(db, "a", "b")
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await move_to(pilot, app, "public.a.id")
        await pilot.press("space")
        assert app.selected == {key_of(app, "public.a.id")}
        assert cell(app, "public.a.id", "sel") == "✓"
        await move_to(pilot, app, "public.b.id")  # the cursor elsewhere: the selection is what counts
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, PreviewScreen), "the preview")
        preview = text_of(app, "preview-text")
        assert "public.a_id_seq" in preview and "public.b_id_seq" not in preview
        assert "next 1 → 101" in preview
        assert 'LOCK TABLE "public"."a" IN EXCLUSIVE MODE' in preview
        await pilot.press("y")
        await until(pilot, lambda: app.apply_count == 1, "the repair")
        assert isinstance(app.screen, ResultsScreen)
        assert "fixed      public.a_id_seq: next 1 -> 101" in text_of(app, "results-text")
        await until(pilot, lambda: app.verdicts[key_of(app, "public.a.id")].status.value == "ok", "a rescan")
        assert app.selected == set()  # fixed rows leave the selection
        await pilot.press("escape")
        assert not isinstance(app.screen, ResultsScreen)
    assert db.next_value("public.a_id_seq") == 101
    assert db.insert_default("public.a") == 101  # the proof: an INSERT through the default works
    assert db.next_value("public.b_id_seq") == 1  # not selected, not touched
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(a["sequence"], a["result"], a["source"]) for a in audit] == [("public.a_id_seq", "fixed", "tui")]


async def test_cancel_changes_nothing(db, tmp_path):
    drifted(db, "a")
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        for cancel in ("n", "escape"):
            await pilot.press("f")  # no selection: the row under the cursor
            await until(pilot, lambda: isinstance(app.screen, PreviewScreen), "the preview")
            await pilot.press(cancel)
            await until(pilot, lambda: not isinstance(app.screen, PreviewScreen), "the preview to close")
        await refreshed(pilot, app)
        assert app.apply_count == 0
        assert cell(app, "public.a.id", "status") == "behind"
    assert db.next_value("public.a_id_seq") == 1
    assert not (tmp_path / "audit.jsonl").exists()


async def test_preview_of_a_row_that_is_not_behind_says_nothing_to_fix(db, tmp_path):
    db.execute("CREATE TABLE public.fine (id serial PRIMARY KEY)")
    db.execute("INSERT INTO public.fine DEFAULT VALUES")
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("space", "f")
        await until(pilot, lambda: isinstance(app.screen, PreviewScreen), "the preview")
        assert not app.screen.can_apply
        text = text_of(app, "preview-text")
        assert "Nothing to fix for" in text and "public.fine.id: ok" in text and "Nothing will change" in text
        await pilot.press("y")  # not offered: y does nothing
        await pilot.pause()
        assert isinstance(app.screen, PreviewScreen) and app.apply_count == 0
        await pilot.press("escape")


async def test_read_only_mode_offers_no_repair_and_says_why(db, tmp_path):
    drifted(db, "a")
    app = make_app(db.url, tmp_path, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert "READ-ONLY" in text_of(app, "db-line") and "--read-only" in text_of(app, "state-line")
        await pilot.press("space", "f")
        await pilot.pause()
        assert not isinstance(app.screen, PreviewScreen)
        assert any("--read-only" in str(n.message) for n in app._notifications)
        footer_keys = {b.binding.action for b in app.active_bindings.values()}
        assert "explain_read_only" in footer_keys and "preview" not in footer_keys
    assert db.next_value("public.a_id_seq") == 1


def footer_actions(app: SeqtuiApp) -> list[str]:
    """The actions the key bar shows now, as drawn (FooterKey widgets), enabled ones only."""
    return [k.action for k in app.query(FooterKey) if not k.has_class("-disabled")]


async def test_the_key_bar_follows_the_bindings_and_rebuilds_once_for_a_burst_of_changes(db, tmp_path):
    drifted(db, "a", "b")
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await until(pilot, lambda: "preview" in footer_actions(app), "the key bar")
        assert "clear_selection" not in footer_actions(app)  # nothing selected: no Unselect
        # What happens, in order: each bindings signal as it is sent, each rebuild of the key bar.
        footer, events = app.query_one(KeyFooter), []
        app.screen.bindings_updated_signal.subscribe(app, lambda screen: events.append("signal"), immediate=True)
        rebuild = footer.recompose

        async def counted():
            events.append("rebuild")
            await rebuild()
        footer.recompose = counted
        app.action_toggle_row()  # what space does: a selection, so Unselect is offered
        for _ in range(3):  # and more signals before the key bar is rebuilt: they share the rebuild
            app.screen.refresh_bindings()
        burst = len(events)
        assert events == ["signal"] * 4
        await until(pilot, lambda: "clear_selection" in footer_actions(app), "Unselect in the key bar")
        await pilot.pause()
        later = events[burst:]
        # One rebuild for the burst (Textual's own Footer makes four), and at most one more for each
        # signal that came after it (focus settling, say).
        assert 1 <= later.count("rebuild") <= 1 + later.count("signal"), events
        await pilot.press("escape")
        await until(pilot, lambda: "clear_selection" not in footer_actions(app), "Unselect gone again")


async def test_c_copies_the_one_liner_of_the_current_row(db, tmp_path):
    drifted(db, "a", "b")
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await move_to(pilot, app, "public.b.id")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, CopyScreen), "the copy panel")
        plan, = plans_from_verdicts([app.verdicts[key_of(app, "public.b.id")]])
        assert app.clipboard == oneliner(plan, app.lock_timeout) + "\n"
        assert app.clipboard.startswith('psql "$DATABASE_URL" -v ON_ERROR_STOP=1')
        assert "b_id_seq" in app.clipboard and "a_id_seq" not in app.clipboard
        assert app.screen.query_one("#copy-text").text == app.clipboard  # there to select by hand
        await pilot.press("escape")
        # s: the whole script, both sequences
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, CopyScreen), "the script panel")
        assert "public.a_id_seq" in app.clipboard and "public.b_id_seq" in app.clipboard
        assert app.clipboard.count("pg_catalog.setval(") == 2
        # a transaction per sequence, then the one wait for all their commits to reach disk
        assert app.clipboard.count("COMMIT;") == 3
        assert app.clipboard.endswith("SELECT pg_catalog.pg_logical_emit_message(true, 'seqtui', '');\nCOMMIT;\n")


async def test_filter_by_name_and_status(db, tmp_path):
    drifted(db, "orders", "order_lines")
    db.execute("CREATE TABLE public.users (id serial PRIMARY KEY)")
    db.execute("INSERT INTO public.users DEFAULT VALUES")
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert app.table.row_count == 3
        await pilot.press("slash")
        await until(pilot, lambda: app.focused is app.query_one("#filter"), "the filter box")
        await pilot.press(*"order")
        await until(pilot, lambda: app.table.row_count == 2, "the name filter")
        await pilot.press("escape")  # clears the filter
        await until(pilot, lambda: app.table.row_count == 3, "the filter to clear")
        await pilot.press("slash")
        await until(pilot, lambda: app.focused is app.query_one("#filter"), "the filter box")
        await pilot.press(*"ok", "enter")
        await until(pilot, lambda: app.table.row_count == 1, "the status filter")
        assert displayed_keys(app) == [key_of(app, "public.users.id")]
        assert app.focused is app.table
        await refreshed(pilot, app)  # the filter holds across refreshes
        assert app.table.row_count == 1
        assert "filter: ok" in text_of(app, "state-line")


async def test_a_row_that_changed_while_filtered_out_comes_back_with_its_new_values(db, tmp_path):
    """Rows a filter hides are kept aside and taken back as they were when nothing changed: one that
    changed meanwhile must show what it is now, not what it was."""
    drifted(db, "orders")
    db.execute("CREATE TABLE public.users (id serial PRIMARY KEY); INSERT INTO public.users DEFAULT VALUES")
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert cell(app, "public.users.id", "next") == "2"
        await pilot.press("slash")
        await until(pilot, lambda: app.focused is app.query_one("#filter"), "the filter box")
        await pilot.press(*"order", "enter")
        await until(pilot, lambda: app.table.row_count == 1, "the filter")
        db.execute("INSERT INTO public.users SELECT FROM generate_series(1, 5)")  # through the default
        await refreshed(pilot, app)
        await pilot.press("slash", "escape")
        await until(pilot, lambda: app.table.row_count == 2, "the filter to clear")
        assert cell(app, "public.users.id", "next") == "7" and cell(app, "public.users.id", "hw") == "6"
        assert cell(app, "public.orders.id", "status") == "behind"


async def test_a_filter_typed_in_one_burst_goes_into_the_filter(db, tmp_path):
    """Keys read together ("/order", typed fast or pasted) all reach the table before "/" has moved the
    focus: they must still end up in the filter box, not sort ("o") or refresh ("r") the table."""
    from textual import events

    drifted(db, "orders", "order_lines")
    db.execute("CREATE TABLE public.users (id serial PRIMARY KEY)")
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        refreshes = app.refresh_count
        for key, char in [("slash", "/"), *((c, c) for c in "order_")]:  # as the app forwards a burst
            app.table.post_message(events.Key(key, char))
        await until(pilot, lambda: app.filter_query == "order_", "the filter")
        await until(pilot, lambda: app.table.row_count == 1, "the filtered rows")
        assert app.sort_column is None and app.refresh_count == refreshes
        assert app.focused is app.query_one("#filter")


async def test_sort_by_key_and_header_click(db, tmp_path):
    for name, rows in (("small", 5), ("big", 500), ("mid", 50)):
        db.execute(f"CREATE TABLE public.{name} (id serial PRIMARY KEY)")
        db.execute(f"INSERT INTO public.{name} SELECT FROM generate_series(1, {rows})")  # through the default
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        labels = lambda: [app.verdicts[k].label for k in displayed_keys(app)]  # noqa: E731
        while app.sort_column != "next":
            await pilot.press("o")
        assert labels() == ["public.small.id", "public.mid.id", "public.big.id"]
        await pilot.press("O")
        assert labels() == ["public.big.id", "public.mid.id", "public.small.id"]
        assert "sorted by next value ↓" in text_of(app, "state-line")
        # a mouse click on the "table" header sorts by table name
        await move_to(pilot, app, "public.mid.id")
        table = app.table
        x = sum(c.get_render_width(table) for c in table.ordered_columns[:2]) + 1  # inside "table"
        await pilot.click("#table", offset=(x, 0))
        await until(pilot, lambda: app.sort_column == "table", "the header sort")
        assert labels() == ["public.big.id", "public.mid.id", "public.small.id"]
        assert app.current_key() == key_of(app, "public.mid.id")  # the cursor followed its row


async def test_refresh_updates_cells_keeps_cursor_selection_and_handles_new_and_dropped_tables(db, tmp_path):
    drifted(db, "a", "b", "c")
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await move_to(pilot, app, "public.a.id")
        await pilot.press("space")
        await move_to(pilot, app, "public.c.id")
        db.execute("INSERT INTO public.c (id) VALUES (500)")
        db.execute("CREATE TABLE public.d (id serial PRIMARY KEY)")
        db.execute("INSERT INTO public.d (id) VALUES (7)")
        await refreshed(pilot, app)
        assert cell(app, "public.c.id", "hw") == "500"
        assert cell(app, "public.d.id", "status") == "behind"  # a new table shows up
        assert app.current_key() == key_of(app, "public.c.id")
        assert app.selected == {key_of(app, "public.a.id")}
        assert cell(app, "public.a.id", "sel") == "✓"
        db.execute("DROP TABLE public.d")
        db.execute("DROP TABLE public.b")
        await refreshed(pilot, app)
        assert {app.verdicts[k].label for k in displayed_keys(app)} == {"public.a.id", "public.c.id"}
        assert app.current_key() == key_of(app, "public.c.id")
        # nothing changed in the database: nothing on screen is touched (the rate column settled
        # on the refresh before)
        await refreshed(pilot, app)
        calls = []
        original = app.table.set_cells
        app.table.set_cells = lambda cells: (calls.extend(cells), original(cells))
        await refreshed(pilot, app)
        assert calls == []
        db.execute("INSERT INTO public.c (id) VALUES (501)")
        await refreshed(pilot, app)
        assert [(str(k), col) for k, col, _ in calls] == [(key_of(app, "public.c.id"), "hw")]
        assert cell(app, "public.c.id", "hw") == "501"
        app.table.set_cells = original
        # a dropped selected table leaves the selection
        db.execute("DROP TABLE public.a")
        await refreshed(pilot, app)
        assert app.selected == set()


async def test_rate_appears_after_two_refreshes(db, tmp_path):
    db.execute("CREATE TABLE public.t (id serial PRIMARY KEY)")
    db.execute("INSERT INTO public.t DEFAULT VALUES")
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert cell(app, "public.t.id", "rate") == "…"
        db.execute("INSERT INTO public.t SELECT FROM generate_series(1, 50)")
        await refreshed(pilot, app)
        assert float(cell(app, "public.t.id", "rate").replace(",", "")) > 0
        assert "exhausted in" in text_of(app, "details")


async def test_pause_stops_the_automatic_refresh(db, tmp_path):
    db.execute("CREATE TABLE public.t (id serial PRIMARY KEY)")
    app = make_app(db.url, tmp_path, interval=0.5)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await until(pilot, lambda: app.refresh_count >= 2, "an automatic refresh")
        await pilot.press("p")
        await until(pilot, lambda: not app.refreshing, "the refresh in flight")
        assert app.paused and app._timer is None
        assert "PAUSED" in text_of(app, "state-line")
        count = app.refresh_count
        await refreshed(pilot, app)  # r still refreshes once while paused
        assert app.refresh_count == count + 1 and app._timer is None
        await pilot.press("p")
        await until(pilot, lambda: app.refresh_count >= count + 3, "automatic refreshes again")
        assert "PAUSED" not in text_of(app, "state-line")
        await pilot.press("minus")
        assert app.interval == 1.0
        await pilot.press("plus")
        assert app.interval == 0.5


@pytest.fixture
def own_server():
    """A server of this test's own, to stop and start (a directory the server's system user can reach
    when the tests run as root)."""
    root = Path(tempfile.mkdtemp(prefix="seqtui-tui-", dir="/var/tmp" if os.geteuid() == 0 else None))
    root.chmod(0o755)
    server = start_embedded(root, password=None)
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


async def test_connection_loss_shows_stale_table_and_recovers_without_rerunning_a_repair(own_server, tmp_path):
    server = own_server
    url = server.url("postgres")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.a (id serial PRIMARY KEY)")
        conn.execute("INSERT INTO public.a (id) SELECT generate_series(1, 10)")
    app = make_app(url, tmp_path, backoff=(0.2, 1.0))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, PreviewScreen), "the preview")
        await pilot.press("y")
        await until(pilot, lambda: app.apply_count == 1, "the repair")
        await pilot.press("escape")
        # behind again after the repair: only a person pressing y may fix it
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO public.a (id) VALUES (50)")
        await refreshed(pilot, app)
        assert cell(app, "public.a.id", "status") == "behind"

        server.stop()
        await pilot.press("r")
        await until(pilot, lambda: app.lost is not None, "the loss to show")
        assert "CONNECTION LOST" in text_of(app, "state-line")
        assert app.table.has_class("-stale")
        assert app.table.row_count == 1  # the last table is kept meanwhile
        await pilot.press("f")  # no repair from a stale table
        await pilot.pause()
        assert not isinstance(app.screen, PreviewScreen)
        await until(pilot, lambda: app.attempts >= 2, "a retry with backoff")

        server.start()
        await until(pilot, lambda: app.lost is None, "the reconnect", tries=1200)
        assert not app.table.has_class("-stale")
        assert "CONNECTION LOST" not in text_of(app, "state-line")
        assert cell(app, "public.a.id", "status") == "behind"
        assert app.apply_count == 1
    with psycopg.connect(url, autocommit=True) as conn:
        last, called = conn.execute("SELECT last_value, is_called FROM public.a_id_seq").fetchone()
    assert (last, called) == (10, True)  # the one repair moved it to 10; nothing re-ran


async def test_command_palette_offers_the_actions(db, tmp_path):
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Preview repair", "Copy psql one-liners", "Copy SQL script", "Refresh now",
                "Pause / resume refresh", "Filter", "Help"} <= titles
        await pilot.press("question_mark")
        await pilot.pause()
        assert any("copy psql one-liner" in what for _, what in app.screen.keys)
        await pilot.press("escape")
        await pilot.press("q")
    assert app.return_code == 0


async def test_a_read_only_server_is_detected_and_no_repair_is_offered(db, tmp_path):
    drifted(db, "a")
    db.execute(f'ALTER DATABASE "{db.name}" SET default_transaction_read_only = on')
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert app.report.read_only
        assert "default_transaction_read_only" in text_of(app, "state-line")
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, PreviewScreen)
        assert any("default_transaction_read_only" in str(n.message) for n in app._notifications)
        await pilot.press("c")  # copying the SQL for someone who can run it is still offered
        await until(pilot, lambda: isinstance(app.screen, CopyScreen), "the copy panel")
    assert db.next_value("public.a_id_seq") == 1


async def test_enter_with_a_selection_previews_it(db, tmp_path):
    drifted(db, "a", "b")
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("b")
        assert len(app.selected) == 2
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PreviewScreen), "the preview")
        text = text_of(app, "preview-text")
        assert "2 sequences will change" in text and "public.a_id_seq" in text and "public.b_id_seq" in text
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, PreviewScreen), "the preview to close")
        await pilot.press("escape")
        assert app.selected == set()
    assert db.next_value("public.a_id_seq") == 1 and db.next_value("public.b_id_seq") == 1


async def test_automatic_refreshes_are_incremental_and_r_is_a_full_scan(db, tmp_path):
    drifted(db, "a")
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert app.last_tick.kind == "full"  # the first scan
        scanner = app._scanner
        before = app.refresh_count
        app.start_refresh()  # what the timer does
        await until(pilot, lambda: app.refresh_count > before, "an automatic refresh")
        assert app.last_tick.kind == "incremental" and app._scanner is scanner
        await refreshed(pilot, app)  # r
        assert app.last_tick.kind == "full" and app._scanner is scanner
        # a table created since: the catalog signature makes even an automatic refresh a full scan
        drifted(db, "b")
        before = app.refresh_count
        app.start_refresh()
        await until(pilot, lambda: app.refresh_count > before, "an automatic refresh")
        assert app.last_tick.kind == "full"
        assert cell(app, "public.b.id", "status") == "behind"
        # a new connection gets a new scanner (after a reconnect: nothing carried over)
        app._close_conn()
        await refreshed(pilot, app)
        assert app._scanner is not scanner and app.last_tick.kind == "full"


async def test_rates_off_screen_are_redrawn_a_few_rows_a_refresh_and_those_on_screen_at_once(db, tmp_path,
                                                                                           monkeypatch):
    """Once tables were written to, every refresh moves their rates (the 5-minute window slides). The rows
    on screen (and a screen's height around) show the new rate at once; further off, at most
    RATE_ROWS_PER_REFRESH rows a refresh are redrawn, longest waiting first, so every one catches up; a
    new view (a sort) redraws them all."""
    from seqtui.tui import app as app_module
    from seqtui.tui.rates import fmt_rate

    monkeypatch.setattr(rows_module, "RATE_ROWS_PER_REFRESH", 4)
    names = [f"r{i:02}" for i in range(40)]
    db.execute("; ".join(f"CREATE TABLE public.{t} (id serial PRIMARY KEY)" for t in names))
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=(120, 24)) as pilot:
        await started(pilot, app)
        await refreshed(pilot, app)  # every rate is known: 0
        # through the default: big enough that a rate's text changes at every refresh
        db.execute("; ".join(f"INSERT INTO public.{t} SELECT FROM generate_series(1, 5000)" for t in names))
        await refreshed(pilot, app)  # every verdict changed: every row is redrawn

        def shown() -> dict[str, str]:
            return {t: cell(app, f"public.{t}.id", "rate") for t in names}

        def current() -> dict[str, str]:
            return {t: fmt_rate(app.rate_of(app.verdicts[key_of(app, f"public.{t}.id")])) for t in names}

        assert shown() == current()
        order = [app.verdicts[k].consumer.table for k in displayed_keys(app)]
        near = set(order[:2 * app.table.size.height])  # on screen, and a screen's height below
        far = [t for t in order if t not in near]
        assert len(far) >= 12

        before = shown()
        await refreshed(pilot, app)  # nothing written: only the rates moved
        after, now = shown(), current()
        assert all(after[t] == now[t] != before[t] for t in near)
        redrawn = {t for t in far if after[t] != before[t]}
        assert 0 < len(redrawn) <= 4
        for _ in range(len(far) // 4 + 1):
            before = shown()
            await refreshed(pilot, app)
            redrawn |= {t for t in far if shown()[t] != before[t]}
        assert redrawn == set(far)  # none left behind

        await pilot.press("o")  # a new view: every row is drawn from the current rates
        await until(pilot, lambda: shown() == current(), "every rate redrawn")


@pytest.mark.parametrize("column, reverse", [(None, False), ("next", False), ("next", True)])
async def test_rows_that_changed_take_their_new_place_and_the_others_keep_theirs(db, tmp_path,
                                                                              column, reverse):
    """A refresh that changed a few rows puts just those back where they now belong (in the default
    order: an empty table that got rows moves among the ok ones; sorted by next value, a table written
    to moves down), for every sort: the table is in the order a full sort gives."""
    from seqtui.tui.table import sort_key

    names = [f"s{i}" for i in range(8)]
    for i, t in enumerate(names):
        db.execute(f"CREATE TABLE public.{t} (id serial PRIMARY KEY)")
        if i:  # s0 stays empty
            db.execute(f"INSERT INTO public.{t} SELECT FROM generate_series(1, {10 * i})")
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        while app.sort_column != column:
            await pilot.press("o")
        if reverse:
            await pilot.press("O")
        labels = lambda: [app.verdicts[k].label for k in displayed_keys(app)]  # noqa: E731

        def sorted_labels() -> list[str]:
            key = sort_key(app.sort_column, app.rate_of)
            return [v.label for v in sorted(app.verdicts.values(), key=key, reverse=app.sort_reverse)]

        assert labels() == sorted_labels()
        before = labels()
        db.execute("INSERT INTO public.s0 SELECT FROM generate_series(1, 35)")  # empty -> ok, next 36
        db.execute("INSERT INTO public.s1 SELECT FROM generate_series(1, 75)")  # next 11 -> 86
        await refreshed(pilot, app)
        assert (app.sort_column, app.sort_reverse) == (column, reverse)
        assert labels() == sorted_labels() != before


async def test_a_refresh_landing_while_a_modal_is_open_updates_the_main_screen(db, tmp_path):
    """A refresh that lands while the help (or a repair's results) is on top still writes the header
    and details of the main screen, and shows them when the modal closes."""
    drifted(db, "orders")
    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        drifted(db, "invoices")
        before = app.refresh_count
        app.start_refresh(full=True)  # as the timer does; the help screen stays on top meanwhile
        await until(pilot, lambda: app.refresh_count > before, "a refresh under the help screen")
        assert isinstance(app.screen, HelpScreen) and app.return_code is None  # nothing raised
        await pilot.press("escape")
        await pilot.pause()
        assert "2 behind" in text_of(app, "summary-line")
