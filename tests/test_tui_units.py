"""Pure parts of the UI (rates, cells, filter, sort, diff) and how `seqtui tui` starts and fails."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from seqtui.model import CapacityLevel, Consumer, Sequence, SequenceState, Status, Verdict
from seqtui.tui.rates import RateTracker, exhaustion_text, fmt_duration, minutes_to_exhaustion, rate_per_minute
from seqtui.tui.table import COLUMN_KEYS, Cell, diff, diff_some, matches, ordered, row_cells

from conftest import PASSWORD


def seq(oid=1, name="t_id_seq", increment=1, max_value=2**63 - 1, min_value=1):
    return Sequence(oid=oid, schema="public", name=name, data_type="bigint", start=1, min_value=min_value,
                    max_value=max_value, increment=increment, cache=1, cycle=False, qualified_name=f"public.{name}")


def con(table="t", column="id", column_type="integer", oid=10):
    return Consumer(table_oid=oid, schema="public", table=table, column=column, attnum=1,
                    column_type=column_type, kind="serial", indexed=True)


def verdict(status=Status.OK, last=10, table="t", oid=1, hw=5, level=CapacityLevel.OK, **kw):
    return Verdict(status, seq(oid, f"{table}_id_seq", **kw), con(table, oid=oid * 10),
                   state=SequenceState(last, True), high_water=hw, capacity_used=0.1, capacity_level=level)


def test_rate_needs_two_samples_and_forgets_vanished_sequences():
    tracker = RateTracker()
    v1 = verdict(last=100)
    tracker.observe([v1], now=0.0)
    assert tracker.rate(1) is None
    tracker.observe([verdict(last=160)], now=30.0)
    assert tracker.rate(1) == 120.0  # 60 values in 30 s
    tracker.observe([], now=60.0)
    assert tracker.rate(1) is None


def test_rate_window_slides():
    tracker = RateTracker(window=60)
    for t in range(0, 301, 10):
        tracker.observe([verdict(last=1000 + (0 if t < 200 else (t - 200) * 10))], now=float(t))
    assert tracker.rate(1) == 600.0  # only the recent minute counts: 10 values/s


def test_descending_rate_and_exhaustion():
    assert rate_per_minute((0, 100), (60, 40)) == 60.0
    v = verdict(last=2**31 - 1001)  # integer column: 1,000 values left before 2,147,483,647
    assert minutes_to_exhaustion(v, 100.0) == 10.0
    assert minutes_to_exhaustion(v, 0.0) is None
    assert exhaustion_text(v, 0.0) == "— no writes seen"
    assert exhaustion_text(v, 100.0) == "about 10 minutes"
    assert exhaustion_text(verdict(), 1.0) == "more than 1,000 years"  # a bigint sequence at 1 a minute
    assert fmt_duration(90) == "about 1.5 hours"
    assert fmt_duration(10**12) == "more than 1,000 years"


def test_status_is_a_word_not_only_a_colour():
    cells = row_cells(verdict(Status.BEHIND), None, selected=True)
    assert cells[COLUMN_KEYS.index("status")] == Cell("behind", "bold red")
    assert cells[0].text == "✓"
    warn = row_cells(verdict(level=CapacityLevel.CRITICAL), 1.0, selected=False)
    assert warn[COLUMN_KEYS.index("status")].text == "ok (critical)"
    assert warn[COLUMN_KEYS.index("rate")].text == "1.0"


def test_filter_words():
    v = verdict(Status.BEHIND, table="orders")
    assert matches(v, "orders") and matches(v, "behind") and matches(v, "ORD behind")
    assert not matches(v, "ok") and not matches(v, "orders ok") and not matches(v, "users")
    assert not matches(v, "critical")  # capacity ok
    assert matches(verdict(level=CapacityLevel.CRITICAL), "critical")


def test_sort_orders_and_puts_unknowns_last():
    a, b, c = verdict(last=5, table="a", oid=1), verdict(last=50, table="b", oid=2), verdict(Status.BEHIND, last=1, table="c", oid=3)
    assert [v.consumer.table for v in ordered([a, b, c], None, False, lambda v: None)] == ["c", "a", "b"]
    assert [v.consumer.table for v in ordered([a, b, c], "next", True, lambda v: None)] == ["b", "a", "c"]
    rates = {1: 3.0, 2: None, 3: 1.0}
    assert [v.consumer.table for v in ordered([a, b, c], "rate", False, lambda v: rates[v.sequence.oid])] == ["c", "a", "b"]


cells_st = st.tuples(*[st.builds(Cell, st.sampled_from(["", "1", "2", "behind"]), st.sampled_from(["", "red"]))
                       for _ in COLUMN_KEYS])
tables_st = st.dictionaries(st.sampled_from(list("abcdefgh")), cells_st, max_size=8)


@given(tables_st, tables_st)
def test_diff_turns_old_into_new(old, new_map):
    new = list(new_map.items())
    d = diff(old, new)
    result = {k: list(v) for k, v in old.items() if k not in d.removed}
    for key, cells in d.added:
        assert key not in result
        result[key] = list(cells)
    for key, col, value in d.changed:
        result[key][COLUMN_KEYS.index(col)] = value
    assert {k: tuple(v) for k, v in result.items()} == new_map
    assert list(d.order) == [k for k, _ in new]
    # only what changed is touched
    assert len(d.changed) == sum(a != b for k in old if k in new_map for a, b in zip(old[k], new_map[k]))


def test_tui_with_unreachable_server_prints_one_line_and_fails(seqtui):
    url = f"postgresql://postgres:{PASSWORD.replace('%', '%25').replace('@', '%40').replace(':', '%3A').replace('/', '%2F').replace('?', '%3F').replace('#', '%23')}@127.0.0.1:1/nope"
    for args in ((), ("tui",)):
        run = seqtui(*args, url=url, timeout=60)
        assert run.code == 3
        assert run.err.startswith("seqtui: error: could not connect") and run.err.count("\n") == 1
        assert PASSWORD not in run.text and "x9" not in run.text


def test_tui_without_target_names_database_url_and_demo(seqtui, tmp_path):
    run = seqtui("tui", cwd=tmp_path)
    assert run.code == 3
    assert "DATABASE_URL" in run.err and "seqtui demo" in run.err


def test_a_repair_jump_is_not_consumption():
    tracker = RateTracker()
    tracker.observe([verdict(last=1)], now=0.0)
    tracker.forget([1])  # the app forgets a sequence it just fixed
    tracker.observe([verdict(last=5000)], now=10.0)
    assert tracker.rate(1) is None


def test_rates_in_one_pass_agree_with_rate():
    tracker = RateTracker(window=60)
    for t in range(0, 200, 10):
        tracker.observe([verdict(last=100 + (t // 30) * 7, oid=1), verdict(last=5, oid=2, table="u")],
                        now=float(t))
        assert tracker.rates() == {1: tracker.rate(1), 2: tracker.rate(2)}
    assert tracker.rate(2) == 0.0 and tracker.rate(1) > 0


@given(tables_st, tables_st, st.sets(st.sampled_from(list("abcdefgh"))))
def test_diff_some_equals_diff_when_untouched_rows_are_unchanged(old, new_map, touched):
    # rows not touched keep what they show; touched ones (and new ones) take new_map's cells
    cells_of = {k: (new_map[k] if k in touched or k not in old else old[k]) for k in new_map}
    order = sorted(cells_of)
    full = diff(old, [(k, cells_of[k]) for k in order])
    some = diff_some(old, order, cells_of, sorted(touched))
    assert set(full.removed) == set(some.removed) and full.added == some.added and full.order == some.order
    assert sorted(full.changed) == sorted(some.changed)
    if old.keys() == set(order):  # what the caller promises with same_keys: the same answer, no set work
        assert diff_some(old, order, cells_of, sorted(touched), same_keys=True) == some


def test_observing_only_changed_verdicts_agrees_with_observing_all():
    full, some = RateTracker(), RateTracker()
    rows = {oid: verdict(oid=oid, last=10, table=f"t{oid}") for oid in (1, 2, 3)}
    for t in (0.0, 10.0, 200.0, 400.0, 700.0):
        changed = [rows[1]] if t else list(rows.values())
        if t in (10.0, 200.0):
            rows[1] = verdict(oid=1, last=rows[1].state.last_value + 5, table="t1")
            changed = [rows[1]]
        else:
            changed = [] if t else list(rows.values())
        full.observe(list(rows.values()), t)
        dirty = some.observe(list(rows.values()), t, changed if t else None)
        assert full.rates() == some.rates()
        if dirty is not None:
            assert {o for o, r in full.rates().items() if r} <= dirty | {o for o in (2, 3)}


def one_table_app():
    """An app holding only a two-column SeqTable ("name", "n")."""
    from textual.app import App

    from seqtui.tui.seqtable import SeqTable

    class OneTable(App):
        def compose(self):
            yield SeqTable()

        def on_mount(self) -> None:
            table = self.query_one(SeqTable)
            table.add_column("name", key="name")
            table.add_column("n", key="n")

    return OneTable()


@pytest.mark.asyncio
async def test_live_table_takes_hidden_rows_back_as_they_were_unless_their_cells_changed():
    from seqtui.tui.seqtable import Shown
    from seqtui.tui.seqtable import SeqTable

    app = one_table_app()
    async with app.run_test(size=(30, 6)) as pilot:
        table = app.query_one(SeqTable)
        cells = {k: (Shown(Cell(k)), Shown(Cell("1"))) for k in "abc"}
        table.show_rows(["a", "b", "c"], cells)
        row_key_of = {rk.value: rk for rk in table.rows}
        table.show_rows(["a"], {})  # a filter hides b and c
        assert table.row_count == 1
        wider = (Shown(Cell("c")), Shown(Cell("123456")))
        table.show_rows(["a", "b", "c"], {"b": cells["b"], "c": wider})
        await pilot.pause()
        kept = {rk.value: rk for rk in table.rows}
        assert kept["b"] is row_key_of["b"]          # the same cells: the same row back
        assert kept["c"] is not row_key_of["c"]      # new cells: a new row
        assert [table.render_line(y).text.split() for y in range(1, 4)] == [["a", "1"], ["b", "1"], ["c", "123456"]]
        assert table.columns["n"].content_width == 6
        table.show_rows(["c"], {})
        table.show_rows(["c"], {}, known={"b", "c"})  # a is gone for good: not kept aside any more
        assert set(table._parked) == {"b"}
        assert len(table._y_offsets) == 1 and table._y_offsets[0] == (kept["c"], 0)


@pytest.mark.asyncio
async def test_live_table_draws_updated_cells_and_new_orders():
    """SeqTable keeps its row layout across cell updates (for speed): what it draws must still follow
    every set_cells() and every new order."""
    from seqtui.tui.seqtable import Shown
    from seqtui.tui.seqtable import SeqTable

    app = one_table_app()
    async with app.run_test(size=(30, 6)) as pilot:
        table = app.query_one(SeqTable)
        table.show_rows(["a", "b", "c"], {k: (Shown(Cell(k)), Shown(Cell("1"))) for k in "abc"})
        await pilot.pause()

        def drawn() -> list[list[str]]:  # line 0 is the header
            return [table.render_line(y).text.split() for y in range(1, 4)]

        assert drawn() == [["a", "1"], ["b", "1"], ["c", "1"]]
        table.set_cells([("b", "n", Shown(Cell("22"))), ("c", "n", Shown(Cell("3")))])
        await pilot.pause()
        assert drawn() == [["a", "1"], ["b", "22"], ["c", "3"]]
        table.show_rows(["c", "a"], {})
        await pilot.pause()
        assert drawn()[:2] == [["c", "3"], ["a", "1"]] and table.row_count == 2
        table.set_cells([("a", "n", Shown(Cell("4")))])
        table.show_rows(["a", "c", "d"], {"d": (Shown(Cell("d")), Shown(Cell("5")))})
        await pilot.pause()
        assert drawn() == [["a", "4"], ["c", "3"], ["d", "5"]]


@pytest.mark.asyncio
async def test_live_table_draws_again_only_the_rows_whose_cells_changed():
    """A refresh that changes a few cells redraws those rows and takes the others from the render
    caches: DataTable alone redraws every row on screen after any update (~30 ms a refresh at 140x40)."""
    from seqtui.tui.seqtable import Shown
    from seqtui.tui.seqtable import SeqTable

    app = one_table_app()
    async with app.run_test(size=(30, 6)) as pilot:
        table = app.query_one(SeqTable)
        table.show_rows(["a", "b", "c"], {k: (Shown(Cell(k)), Shown(Cell("1"))) for k in "abc"})
        await pilot.pause()
        before = [table.render_line(y) for y in range(1, 4)]  # line 0 is the header
        table.set_cells([("b", "n", Shown(Cell("2")))])  # as wide as before: no column grows
        await pilot.pause()
        after = [table.render_line(y) for y in range(1, 4)]
        assert [line.text.split() for line in after] == [["a", "1"], ["b", "2"], ["c", "1"]]
        assert after[0] is before[0] and after[2] is before[2]  # a and c: drawn once, kept
        assert after[1] is not before[1]
        table.set_cells([("c", "n", Shown(Cell("333")))])  # wider: every row is drawn at the new width
        await pilot.pause()
        assert [table.render_line(y).text.split() for y in range(1, 4)] == [["a", "1"], ["b", "2"], ["c", "333"]]
        assert table.render_line(1) is not after[0]


@pytest.mark.asyncio
@pytest.mark.parametrize("cursor_type", ["row", "cell"])
async def test_live_table_draws_its_cells_exactly_as_datatable_does(cursor_type):
    """SeqTable draws its one-line cells itself, for speed: segment for segment and style for style
    (colours, cursor and hover highlights, the row and column a mouse click reports) what DataTable's
    own rendering gives, for left- and right-justified texts, wide characters and wider columns."""
    from rich.style import Style
    from textual.widgets import DataTable

    from seqtui.tui.seqtable import SeqTable, Shown

    app = one_table_app()
    texts = ["", "a", "public", "12,345", "9 ", " x", "数据表", "é", "orders_id_seq"]
    styles = ["", "bold red", "dim", "magenta", "#ff8700", "no-such-style"]
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one(SeqTable)
        table.cursor_type = cursor_type
        keys = [f"r{i}" for i in range(len(texts))]
        table.show_rows(keys, {k: (Shown(Cell(t, st), "name"), Shown(Cell(t, st), "next"))
                               for k, t, st in zip(keys, texts, styles * 2)})
        await pilot.pause()
        compared = 0
        for row, text in enumerate(texts):
            for column in (0, 1):
                width = table.ordered_columns[column].get_render_width(table)
                for extra in (0, 3):
                    for cursor in (False, True):
                        for hover in (False, True):
                            for base in (Style(), Style(bgcolor="grey11")):
                                args = (row, column, base, width + extra, cursor, hover)
                                table._cell_render_cache.clear()
                                ours = table._render_cell(*args)
                                table._cell_render_cache.clear()
                                theirs = DataTable._render_cell(table, *args)
                                assert ours == theirs, (text, column, args)
                                compared += 1
        assert compared == len(texts) * 2 * 2 * 2 * 2 * 2
