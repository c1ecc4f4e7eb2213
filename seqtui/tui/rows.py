"""The app's table kept in step with the report: only the rows whose verdict, rate or selection changed
are rebuilt, compared and updated cell by cell, the order recomputed only when it may have moved, and
the cursor kept by row key. A mixin of SeqtuiApp (app.py), which holds the state it uses."""

from __future__ import annotations

from bisect import insort
from collections.abc import Mapping
from itertools import islice
from typing import Callable

from ..model import Verdict
from .seqtable import Shown
from .table import COLUMN_KEYS, diff_some, matches, ordered, rate_cell_of, row_cells, sort_key

# A refresh re-draws the rate cell of every sequence written to in the last 5 minutes (the window slides:
# the average drifts). Rows on screen get theirs at once; the others at most this many per refresh,
# longest waiting first: off screen a rate shows a few refreshes late, never more, and a 5-minute
# average hardly moves in that time. (At 10,000 rows with 2,000 of them written to, redrawing all of
# them was most of a refresh's 50-60 ms.)
RATE_ROWS_PER_REFRESH = 250


class TableRows:
    def rate_of(self, v: Verdict) -> float | None:
        return self.rates.rate(v.sequence.oid) if v.sequence is not None else None

    def visible_verdicts(self) -> list[Verdict]:
        if self.report is None:
            return []
        shown = [v for v in self.report.verdicts if matches(v, self.filter_query)]
        return ordered(shown, self.sort_column, self.sort_reverse, self.rate_of)

    def current_key(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:
            return None

    def _rows_due(self, changed: set[str], rated: set[str]) -> set[str]:
        """The rows a refresh looks at: those whose verdict changed, and of those whose rate moved, the
        ones on screen (with a screen's margin either side) and RATE_ROWS_PER_REFRESH others."""
        late = self._late_rates
        late.update(dict.fromkeys(rated))  # those waiting already keep their place
        table, order = self.table, self._order
        top, height = int(table.scroll_y), max(table.size.height, 1)
        due = changed | (late.keys() & set(order[max(0, top - height):top + 2 * height]))
        for key in due:
            late.pop(key, None)
        others = list(islice(late, RATE_ROWS_PER_REFRESH))  # after those: the budget is theirs alone
        for key in others:
            del late[key]
        due.update(others)
        return due

    def _show_rows(self, dirty: set[str] | None = None) -> None:
        """Bring the table to the current report, filter and sort by touching only what changed.

        Per refresh this costs a look at each verdict (the same object as last time, for a table
        nobody wrote to) and work in proportion to the rows that changed: their cells are rebuilt,
        compared and updated one by one. The order is recomputed only if the view changed, rows came
        or went, or a changed row may have moved; rows are added or removed in one pass. `dirty`,
        from a refresh that kept every row, names the only rows whose verdict or rate may have
        changed: then nothing else is looked at."""
        table = self.table
        cursor_key = self.current_key()
        view = (self.filter_query, self.sort_column, self.sort_reverse)
        selected, touched = self.selected, []
        if dirty is None or view != self._view or not self._cells:
            self._late_rates.clear()  # every row is looked at
            cache, fresh = self._cells, {}
            rates = self._rate = self.rates.rates()
            for key, v in self.verdicts.items():  # the report's order
                r = rates.get(v.sequence.oid) if v.sequence is not None else None
                entry = self._entry(cache.get(key), v, r, key in selected)
                fresh[key] = entry[0]
                if entry[1]:
                    touched.append(key)
            self._cells = fresh
            before = cache
            same_rows = len(cache) == len(fresh)
        else:  # the same rows as last time: only `dirty` can differ
            fresh, rates, before = self._cells, self._rate, {}
            for key in dirty:
                v = self.verdicts[key]
                hit = fresh[key]
                entry = self._entry(hit, v, rates.get(v.sequence.oid) if v.sequence is not None else None,
                                    key in selected)
                fresh[key] = entry[0]
                if entry[1]:
                    touched.append(key)
                    before[key] = hit
            same_rows = True

        if view == self._view and same_rows and all(self._same_place(before.get(k), fresh[k]) for k in touched):
            order = self._order
        elif view == self._view and same_rows and dirty is not None:
            # Some changed rows may move or enter/leave the filter: the rest keep their order, so the
            # changed ones are taken out and put back where they now belong, by bisection: a sort of
            # 10,000 keys cost ~10 ms a refresh. (Sorted by rate, or in reverse, every key may have
            # moved, or bisect cannot follow the order: those sort in full.)
            query, moved, key = self.filter_query, set(touched), self._sort_key_function()
            order = [k for k in self._order if k not in moved]
            back = [k for k in touched if not query or matches(fresh[k][0], query)]
            if self.sort_column == "rate" or self.sort_reverse:
                order += back
                order.sort(key=key, reverse=self.sort_reverse)
            else:
                for k in back:
                    insort(order, k, key=key)
        else:
            query = self.filter_query
            order = [k for k, e in fresh.items() if not query or matches(e[0], query)]
            order.sort(key=self._sort_key_function(), reverse=self.sort_reverse)
        # the order kept (the same list): the rows shown are its keys, as show_rows() left them
        change = diff_some(self.rows, order, _CellsOf(fresh), touched, same_keys=order is self._order)
        with self.batch_update():
            if change.removed or change.added or order != self._order:
                table.show_rows(order, {k: self._shown_row(k, cells) for k, cells in change.added},
                                known=fresh)
                self.rows = {k: fresh[k][3] for k in order}
            updates = []
            for key, col, cell in change.changed:
                cells = fresh[key][3]
                updates.append((key, col, self._shown_row(key, cells)[COLUMN_INDEX[col]]))
                self.rows[key] = cells
            table.set_cells(updates)
            self._order, self._view = order, view
            if cursor_key in self.rows:
                index = table.get_row_index(cursor_key)
                if index != table.cursor_row:
                    table.move_cursor(row=index, scroll=False)

    @staticmethod
    def _entry(hit: tuple | None, v: Verdict, r: float | None, sel: bool) -> tuple[tuple, bool]:
        """The cache entry (verdict, rate, selected, cells) of a row, and whether its cells may have
        changed (were recomputed)."""
        if hit is not None and hit[2] == sel and (hit[0] is v or hit[0] == v):
            if hit[1] == r:
                return (hit if hit[0] is v else (v, r, sel, hit[3])), False
            # Only the rate moved (a rate drifts every refresh while its window slides): the
            # row is the same unless the rate's text changed.
            cells = hit[3]
            rate_cell = rate_cell_of(v, r)
            if cells[RATE] == rate_cell:
                return (v, r, sel, cells), False
            return (v, r, sel, cells[:RATE] + (rate_cell,) + cells[RATE + 1:]), True
        return (v, r, sel, row_cells(v, r, sel)), True

    def _sort_key_function(self) -> Callable[[str], tuple]:
        """Row key -> sort key of its verdict for the current sort column, remembered per verdict
        (sorting 10,000 rows by severity() from scratch costs tens of milliseconds)."""
        cells = self._cells
        key_of = sort_key(self.sort_column, self.rate_of)
        if self.sort_column == "rate":  # a rate drifts: nothing to remember
            return lambda k: key_of(cells[k][0])
        if self._sort_column != self.sort_column:
            self._sort_keys, self._sort_column = {}, self.sort_column
        memo = self._sort_keys

        def of(k: str) -> tuple:
            v = cells[k][0]
            hit = memo.get(k)
            if hit is None or hit[0] is not v:
                hit = memo[k] = (v, key_of(v))
            return hit[1]
        return of

    def _shown_row(self, key: str, cells) -> tuple:
        """The DataTable's cells for a row, kept while the row's cells stay the same: a row that a
        filter hides and shows again is not rebuilt (and SeqTable takes it back as it was). When
        some cells changed, the others keep their objects: the table holds exactly these."""
        hit = self._shown.get(key)
        if hit is None:
            hit = self._shown[key] = (cells, _shown_row(cells))
        elif hit[0] is not cells:
            hit = self._shown[key] = (cells, tuple(
                shown if cell is old or cell == old else Shown(cell, column)
                for cell, old, shown, column in zip(cells, hit[0], hit[1], COLUMN_KEYS)))
        return hit[1]

    def _same_place(self, before: tuple | None, after: tuple) -> bool:
        """Whether a row whose cells changed keeps its place in the view: same filter verdict, same
        sort key. (Sorted by rate, any rate change may move it.)"""
        if before is None or self.sort_column == "rate":
            return False
        old, new = before[0], after[0]
        if old is new or old == new:
            return True
        key = sort_key(self.sort_column, self.rate_of)
        return key(old) == key(new) and matches(old, self.filter_query) == matches(new, self.filter_query)

    def _set_sel_cell(self, key: str) -> None:
        v = self.verdicts.get(key)
        if v is None or key not in self.rows:
            return
        rate = self.rate_of(v)
        sel = key in self.selected
        cells = row_cells(v, rate, sel)
        self._cells[key] = (v, rate, sel, cells)
        self.rows[key] = cells
        self.table.set_cells([(key, "sel", Shown(cells[0], "sel"))])


RATE = COLUMN_KEYS.index("rate")
COLUMN_INDEX = {key: i for i, key in enumerate(COLUMN_KEYS)}


def _shown_row(cells) -> tuple[Shown, ...]:
    return tuple(Shown(c, k) for c, k in zip(cells, COLUMN_KEYS))


class _CellsOf(Mapping):
    """The cells of every verdict, as diff_some reads them, without copying the cache."""

    def __init__(self, entries: dict[str, tuple]) -> None:
        self._entries = entries

    def __getitem__(self, key: str):
        return self._entries[key][3]

    def __contains__(self, key) -> bool:
        return key in self._entries

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
