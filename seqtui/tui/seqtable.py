"""The live table widget: a DataTable that stays fast at 10,000 rows.

DataTable's own row operations and caches are built for tables that change a few rows at a time;
this subclass replaces the ones a live view of thousands of sequences runs into. It leans on
DataTable internals: pyproject.toml bounds textual to the major version the tests run against.
"""

from __future__ import annotations

from collections.abc import Container
from operator import is_

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual._two_way_dict import TwoWayDict
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets._data_table import ColumnKey, Row, RowKey

from .table import COLUMNS, Cell

CACHED_CELLS, CACHED_ROWS = 2000, 200
NUMERIC = frozenset(c.key for c in COLUMNS if c.numeric)  # right-justified
FILTER_KEY = "slash"  # the app's filter binding: the table opens the filter on it itself (see _on_key)


class Shown:
    """A cell as the DataTable holds it: turned into rich Text only when drawn. A table of 10,000
    rows draws the forty on screen; building 110,000 Text objects up front cost a third of a second."""

    __slots__ = ("text", "style", "justify", "width")

    def __init__(self, cell: Cell, column: str = "") -> None:
        self.text, self.style = cell.text, cell.style
        self.justify = "right" if column in NUMERIC else "left"
        # printable ASCII is one cell a character; cell_len() for the rest (a third of the first
        # table's handler at 10,000 rows went to cell_len() on ASCII texts)
        text = self.text
        self.width = len(text) if text.isascii() and text.isprintable() else cell_len(text)

    def __rich__(self) -> Text:
        return Text(self.text, style=self.style, justify=self.justify)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Shown({self.text!r}, {self.style!r})"


class SeqTable(DataTable):
    """The live table. `enter` previews a repair; a mouse click on the highlighted row toggles it."""

    BINDINGS = [Binding("enter", "app.preview", "Preview", show=False),
                Binding("enter", "app.explain_read_only", "Read-only", show=False)]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # DataTable caches up to 10,000 rendered cells and 1,000 rendered rows and lines: each entry
        # holds strips and segments, some 150,000 objects once a big table has been scrolled and
        # filtered, which every full garbage collection walks (~0.15 s, while a key waits). A screen
        # shows ~50 rows of 11 cells: a few screens' worth is all a cache can reuse.
        self._cell_render_cache.maxsize = CACHED_CELLS
        self._row_render_cache.maxsize = CACHED_ROWS
        self._row_renderable_cache.maxsize = CACHED_ROWS
        self._line_cache.maxsize = CACHED_ROWS
        self._parked: dict[str, tuple] = {}  # rows show_rows() took away: key -> (RowKey, cells by column, Row)

    async def _on_key(self, event: events.Key) -> None:
        # Textual routes each key to the widget focused when the key is read, and runs the app's
        # bindings only once a key has bubbled up to it. Typed in one burst, "/orders" thus reaches this
        # table whole before "/" opens the filter: the "o" would sort, the "r" refresh... So "/" opens the
        # filter box right here, and keys that arrive after the focus left the table, for another widget
        # of the same screen, go to that widget, as the operator meant.
        focused = self.screen.focused
        if focused is not None and focused is not self:
            event.stop()
            event.prevent_default()
            focused.post_message(events.Key(event.key, event.character))
            return
        if event.key == FILTER_KEY:
            event.stop()
            event.prevent_default()
            await self.run_action("app.filter")
            return
        await super()._on_key(event)

    async def _on_idle(self, event) -> None:
        # Workaround for Textual's DataTable (8.2): column widths are measured on idle, but a cell
        # rendered before that (the cursor row, drawn as soon as rows are added) stays in a render
        # cache whose key has no width, so the row keeps showing truncated cells ("billin" for
        # "billing") until something else changes. After widths are re-measured, invalidate it.
        # Only where DataTable measures (rows added by add_row, cells by update_cell): show_rows()
        # and set_cells() size the columns before anything is drawn and bump _update_count when they
        # do, and a purge after them cost a second full paint (and rows list) per filter, sort or move.
        remeasure = bool(getattr(self, "_updated_cells", None)) or bool(getattr(self, "_new_rows", None))
        await super()._on_idle(event)
        if remeasure and hasattr(self, "_clear_caches"):
            self._clear_caches()
            self.refresh()

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False):
        """A Shown cell of a row one line high, drawn directly as the segments DataTable's own
        rendering gives it (Padding and Styled around the cell's Text, through the console: 0.1-0.2 ms
        a cell, most of the CPU of a page down or a filter at 10,000 rows). Everything else (the
        header, wrapped rows, a cell wider than its column) goes the DataTable way, and both share one
        cache, keyed as DataTable keys it."""
        if row_index < self.fixed_rows or column_index < self.fixed_columns:  # header, labels, fixed
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        cache_key = (row_key, column_key, base_style, cursor, hover, self._show_hover_cursor,
                     self._update_count, self._pseudo_class_state)
        cached = self._cell_render_cache.get(cache_key)
        if cached is not None:
            return cached
        cell = self._data[row_key].get(column_key)
        line = None
        if type(cell) is Shown and self.rows[row_key].height == 1:
            component, post = self._get_styles_to_render_cell(
                False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor,
                self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
            pre = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component
            line = _shown_line(cell, width, self.cell_padding, pre, post, self.app.console.get_style)
        if line is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        lines = self._cell_render_cache[cache_key] = [line]
        return lines

    def show_rows(self, order: list[str], new: dict[str, tuple], known: Container[str] | None = None) -> None:
        """Show exactly the rows `order`, in that order, in one pass: rows not in it go, rows in `new`
        (key -> cells) come. Rows already shown keep their cells (update them with update_cell).
        `known`, if given, holds every row key that may come back (the rest are forgotten).

        DataTable's own add_row/remove_row/sort are fine for a few rows but not for 10,000: each
        remove_row re-indexes every row and redraws the hover cell (a filter keystroke hiding 9,000 rows
        took minutes), and every added cell is measured on idle (seconds for 10,000 rows). Here rows
        are dict operations, and column widths come from the cells' text, which is all a one-line
        cell is.

        A row that goes is kept aside, and comes back as the very same objects if its cells are the
        same ones: clearing a filter on 10,000 rows otherwise built ~30,000 objects anew, enough to
        set off a full garbage collection (~0.15 s) nearly every time."""
        data, rows, parked = self._data, self.rows, self._parked
        keep = set(order)
        gone = [rk for rk in data if rk.value not in keep]
        for rk in gone:
            parked[rk.value] = (rk, data.pop(rk), rows.pop(rk))
        if gone:
            self._updated_cells = {c for c in self._updated_cells if c.row_key in data}
            self._new_rows.difference_update(gone)
        columns = self.ordered_columns
        column_keys = [c.key for c in columns]
        widths = [c.content_width for c in columns]
        for key, cells in new.items():
            back = parked.pop(key, None)
            if back is not None and all(map(is_, back[1].values(), cells)):
                rk = back[0]
                data[rk], rows[rk] = back[1], back[2]
                continue  # its columns were measured when it came first: they never shrink
            rk = RowKey(key)
            data[rk] = dict(zip(column_keys, cells))
            rows[rk] = Row(rk, 1, None, False)
            for i, cell in enumerate(cells):
                w = cell.width
                if w > widths[i]:
                    widths[i] = w
        if known is not None and parked:
            for key in [k for k in parked if k not in known]:
                del parked[key]
        for column, width in zip(columns, widths):
            column.content_width = width
        row_of = {rk.value: row for rk, row in rows.items()}  # by str: RowKey hashes in Python
        ordered = [row_of[k] for k in order]
        self._row_locations = TwoWayDict({row.key: i for i, row in enumerate(ordered)})
        self._require_update_dimensions = True  # the virtual size, on idle (no row is measured)
        self._update_count += 1
        self._clear_caches()
        self._ordered_row_cache[(len(ordered), self._layout_count)] = ordered  # what ordered_rows would build
        self.cursor_coordinate = self.cursor_coordinate  # clamped to the new row count
        self.hover_coordinate = self.hover_coordinate
        self.check_idle()
        self.refresh(layout=True)

    def widen(self, column: str, width: int) -> bool:
        """Make room for a cell `width` wide; True if the column grew. Columns never shrink on a
        refresh: DataTable would re-measure the whole column for every narrower cell."""
        col = self.columns[column]
        if width <= col.content_width:
            return False
        col.content_width = width
        self._require_update_dimensions = True
        self.check_idle()
        return True

    # -- row layout caches that survive cell updates --------------------------------------------
    # DataTable keys its ordered-rows and y-offsets caches on _update_count, which update_cell bumps:
    # after every refresh that changed a cell, the first paint rebuilt both lists (10,000 rows: ~40 ms
    # of CPU per refresh). A cell update moves no row, so here they are keyed on the updates that are
    # not cell updates. Textual still clears these caches itself where rows change (_clear_caches,
    # auto-height rows), and every other _update_count bump still changes the key.

    _cell_updates = 0  # how many _update_count bumps came from update_cell

    def update_cell(self, row_key, column_key, value, *, update_width: bool = False) -> None:
        super().update_cell(row_key, column_key, value, update_width=update_width)
        self._cell_updates += 1

    def set_cells(self, cells: list[tuple[str, str, object]]) -> None:
        """update_cell() for many (row key, column key, value) at once, with one refresh:
        DataTable.update_cell refreshes the widget per call, and a refresh of a 10,000-row view where
        1% of the tables were written to updates ~600 cells. Values carry their `width` (as in
        show_rows); a column grows to fit, never shrinks.

        Only the rows whose cells changed are drawn again. DataTable keys every render cache on
        _update_count, which update_cell bumps: any update redrew every row on screen, ~30 ms of CPU
        per refresh at 140x40 even when every changed row was off screen."""
        if not cells:
            return
        data, rows, grew = self._data, set(), False
        for row, column, value in cells:
            key = RowKey(row)
            data[key][ColumnKey(column)] = value
            rows.add(key)
            grew = self.widen(column, value.width) or grew
        if grew:  # every row is drawn again, at the new widths
            self._update_count += 1
            self._cell_updates += 1
        else:
            self._forget_drawn(rows)
        self.refresh()  # rows not forgotten are drawn from the caches

    def _forget_drawn(self, rows: set[RowKey]) -> None:
        """Drop what the render caches hold of `rows` (each cache keyed as DataTable keys it)."""
        for cache in (self._cell_render_cache, self._row_render_cache):  # (row key, ...)
            for key in [k for k in cache.keys() if k[0] in rows]:
                cache.discard(key)
        at = {i for i in map(self._row_locations.get, rows) if i is not None}
        for key in [k for k in self._row_renderable_cache.keys() if k[1] in at]:  # (update count, row index)
            self._row_renderable_cache.discard(key)
        header = self.header_height if self.show_header else 0
        lines = {header + i for i in at}  # rows one line high, as show_rows() adds them
        for key in [k for k in self._line_cache.keys() if k[0] in lines]:  # (y, ...)
            self._line_cache.discard(key)

    @property
    def _layout_count(self) -> int:
        return self._update_count - self._cell_updates

    @property
    def ordered_rows(self) -> list[Row]:
        key = (self.row_count, self._layout_count)
        rows = self._ordered_row_cache.get(key)
        if rows is None:
            get_key, by_key = self._row_locations.get_key, self.rows
            rows = self._ordered_row_cache[key] = [by_key[get_key(i)] for i in range(self.row_count)]
        return rows

    @property
    def _y_offsets(self) -> list[tuple[RowKey, int]]:
        key = self._layout_count
        offsets = self._offset_cache.get(key)
        if offsets is None:
            rows = self.ordered_rows
            if all(row.height == 1 for row in rows):  # show_rows() adds only such rows
                offsets = _LineOffsets(rows)
            else:
                offsets = [(row.key, y) for row in rows for y in range(row.height)]
            self._offset_cache[key] = offsets
        return offsets


class _LineOffsets:
    """DataTable's y offsets (line y -> (row key, line within the row)) for rows one line high, made
    as they are asked for: DataTable only takes its length, a line at a time, and clears it. A list
    of them is 10,000 tuples per filter or sort at 10,000 rows, all living until the next one."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[Row]) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, y: int) -> tuple[RowKey, int]:
        return self._rows[y].key, 0

    def clear(self) -> None:
        self._rows = []


def _shown_line(cell: Shown, width: int, padding: int, pre: Style, post: Style, get_style) -> list[Segment] | None:
    """The one line rich renders for Styled(Padding(cell, (0, padding)), pre, post) at `width`, no
    wrap: the text justified in the width less the padding, all in the cell's style, the padding
    unstyled, then `pre` before and `post` after every segment's style (Segment.apply_style). None
    for what this does not cover: a line break or tab in the text, a text wider than its room."""
    text, inner = cell.text, width - 2 * padding
    if inner <= 0 or "\n" in text or "\t" in text:
        return None
    right = cell.justify == "right"
    if right:
        text = text.rstrip()  # as rich's right justification does
    used = len(text) if text.isascii() and text.isprintable() else cell_len(text)
    if used > inner:  # rich folds it; no column here is narrower than its cells
        return None
    fill = " " * (inner - used)
    style = get_style(cell.style, default=_PLAIN) if cell.style else None
    body = Segment(fill + text if right else text + fill, _outer(style, pre, post))
    if not padding:
        return [body]
    pad = Segment(" " * padding, _outer(None, pre, post))
    return [pad, body, pad]


_PLAIN = Style.null()  # what rich's Text.render draws a style it cannot parse in


def _outer(style: Style | None, pre: Style, post: Style) -> Style | None:
    """Segment.apply_style(segments, pre, post) for one segment's style."""
    if pre:
        style = pre + style
    if post:
        style = style + post if style else post
    return style

