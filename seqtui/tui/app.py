"""The seqtui terminal UI: a live table of every sequence, details, selection, preview and repair.

Database work never runs on the UI thread: a refresh worker scans with its own connection and posts
the Report as a message; a repair runs in another worker on a fresh connection of its own, only ever
because the operator pressed `y` in a preview (nothing is re-run after a reconnect). The table is a
keyed DataTable updated cell by cell from a pure diff (table.py), so the cursor, the scroll position
and the selection survive refreshes.
"""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from datetime import datetime
from typing import Callable, Iterable

import psycopg
from rich.text import Text
from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Container, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static

from ..apply import FixResult
from ..catalog import stop_scan
from ..config import Config
from ..connect import Target
from ..heap import CollectionHold
from ..model import Report, Status, Verdict
from ..redact import gate
from ..repair import DEFAULT_LOCK_TIMEOUT
from ..refresh import LiveScanner, TickInfo
from .first_scan import FirstScan, ui_scope
from .footer import KeyFooter
from .header import HeaderAndDetails, fmt_interval
from .keys import BINDINGS, KEY_HELP, palette_commands
from .rates import RateTracker
from .refreshing import RefreshLoop
from .repairing import RepairFlow
from .rows import TableRows
from .screens import HelpScreen, ResultsScreen
from .seqtable import SeqTable
from .table import COLUMNS, SORTABLE

INTERVAL_STEPS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
BACKOFF = (1.0, 30.0)  # first retry after a lost connection, and the cap of the doubling



class FilterInput(Input):
    BINDINGS = [Binding("escape", "app.clear_filter", "Clear filter", show=False)]


class SeqtuiApp(RefreshLoop, TableRows, HeaderAndDetails, RepairFlow, App[int]):
    """The app: its state, layout, keys and actions; the refresh loop, the rows, the header and details
    and the repair flow are mixins (refreshing.py, rows.py, header.py, repairing.py)."""

    CSS_PATH = "seqtui.tcss"
    TITLE = "seqtui"
    # Narrow terminals stack the details under the table; wide ones put them side by side.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (190, "-wide")]
    BINDINGS = BINDINGS  # keys.py: with the help screen's list and the palette

    def __init__(self, target: Target, config: Config | None = None, *,
                 conn: psycopg.Connection | None = None, interval: float = 2.0, read_only: bool = False,
                 schemas: Iterable[str] = (), statement_timeout: float = 10.0,
                 lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
                 status_line: Callable[[], str | None] | None = None,
                 live: bool = True, backoff: tuple[float, float] = BACKOFF,
                 clock: Callable[[], datetime] = datetime.now,
                 display_database: dict | None = None, audit_log: str | None = None,
                 full_every: float = 30.0, jobs: int | None = 1, first_scan: FirstScan | None = None) -> None:
        """`live=False` refreshes only at start and on `r` (snapshots, tests). `clock` gives the
        time shown as "refreshed at"; `display_database` overrides the database facts in the header.
        Both exist so that screenshots and snapshot tests are stable. Automatic refreshes re-measure
        only tables written to since the last one, with a full scan every `full_every` seconds (and on
        `r`, after a repair, and whenever a table or sequence is created or dropped). `jobs`: connections
        the first scan measures on (--jobs): the one the operator waits for, with an empty screen.
        `first_scan`: that scan, already started on `conn` (tui.run starts it before importing textual);
        its scope and jobs are the ones that count."""
        super().__init__()
        self.target = target
        self.scope = (first_scan.scanner.scope if first_scan is not None
                      else ui_scope(target, config, schemas, statement_timeout, lock_timeout))
        self.statement_timeout = statement_timeout  # seconds: scans, and each statement of a fix
        self._conn = conn
        self._scanner: LiveScanner | None = None  # one per connection: a reconnect starts afresh
        self.full_every = full_every
        self.jobs = jobs
        self.interval = interval
        self.forced_read_only = read_only
        self.lock_timeout = lock_timeout
        self.status_line_fn = status_line
        self.live = live
        self.backoff = backoff
        self.clock = clock
        self.display_database = display_database
        self.audit_path = Path(audit_log) if audit_log else None

        self.report: Report | None = None
        self.verdicts: dict[str, Verdict] = {}
        self.rows: dict[str, tuple] = {}  # row key -> cells on screen, in display order
        # row key -> (verdict, rate, selected, cells) for every verdict, shown or filtered out: a
        # refresh recomputes the cells of rows whose verdict, rate or selection changed, no others.
        self._cells: dict[str, tuple] = {}
        self._order: list[str] = []      # keys shown, in order, and the view that ordered them
        self._view: tuple | None = None
        self._counts: dict[str, int] = {}  # summary_counts of the current report, kept up to date
        self._summary: tuple[dict | None, str] = (None, "")  # summary_text of those counts
        self._bindings_state: tuple | None = None  # what check_action depends on, last time asked
        self._shown: dict[str, tuple] = {}  # row key -> (cells, the DataTable's cells for them)
        self._key_by_id: dict[int, str] = {}  # id(verdict) -> row key, for the current report's verdicts
        self._keys_of_oid: dict[int, list[str]] = {}  # sequence OID -> its rows' keys
        self._rate: dict[int, float | None] = {}  # sequence OID -> rate shown
        self._late_rates: dict[str, None] = {}  # rows off screen whose rate moved, longest waiting first
        self._sort_keys: dict[str, tuple] = {}  # row key -> (verdict, its sort key), for _sort_column
        self._sort_column: object = ()
        self.last_tick: TickInfo | None = None  # the last refresh's database work
        self.refresh_ui_seconds: float | None = None  # the last refresh's UI work (bench/tui.py)
        self.selected: set[str] = set()
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.filter_query = ""
        self.paused = False
        self.rates = RateTracker()
        self.status_text: str | None = None

        self.refreshing = False
        self._refresh_again = False
        self._full_again = False
        self._timer: Timer | None = None
        self.refresh_count = 0        # successful refreshes: tests wait on it
        self.measuring: tuple[int, int] | None = None  # the first scan's progress, while it runs
        self._progress_posted: float | None = None  # when the worker last posted the rows so far
        self._progress_gap: float | None = None  # and how long it waits before posting them again
        self._scan_started = 0.0  # when the first scan began (monotonic), for PROGRESS_NEAR_END
        self._measured_shown = 0  # sequences in the table while the first scan goes on
        self._collections = CollectionHold()
        self._scan_stop = threading.Event()  # set on exit: the refresh worker's scan is called off
        self._scanning_on: list[psycopg.Connection] = []  # the connections it measures on meanwhile
        self._first_scan = first_scan
        if first_scan is not None:
            self._conn, self._scanner, self.jobs = first_scan.conn, first_scan.scanner, first_scan.jobs
            self._collections, self._scan_stop = first_scan.collections, first_scan.stop
            self._scanning_on = first_scan.scanning_on  # the same list: filled and emptied by its thread
            self._scan_started = first_scan.started
        self.last_refresh: datetime | None = None
        self.last_error: str | None = None
        self.lost: str | None = None  # why the connection is down; the table is stale meanwhile
        self.attempts = 0
        self.retry_at: float | None = None
        self.applying = False
        self.apply_count = 0          # finished applies: tests wait on it
        self.last_results: list[FixResult] = []
        self._results_screen: ResultsScreen | None = None
        self._exit_requested = False
        self._table = SeqTable(id="table", cursor_type="row", zebra_stripes=False)
        # The widgets a refresh writes to, held rather than looked up: found while a modal is on top,
        # and a late message during shutdown sees them unmounted instead of failing to find them.
        self._lines = {name: Static(id=name) for name in ("db-line", "summary-line", "state-line", "details")}

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Container(id="header"):
            yield self._lines["db-line"]
            yield self._lines["summary-line"]
            yield self._lines["state-line"]
        with Container(id="body"):
            yield self._table
            with VerticalScroll(id="details-pane"):
                yield self._lines["details"]
        yield FilterInput(placeholder="filter: words in schema.table.column or the sequence; "
                                      "or a status (behind, ok, critical…)", id="filter")
        yield KeyFooter()

    @property
    def table(self) -> SeqTable:
        return self._table

    @property
    def live_screen(self) -> bool:
        """False while the app starts or shuts down: a worker's late message must not touch widgets
        that are not (or no longer) mounted."""
        return (self._table.is_mounted and not self._exit_requested
                and all(line.is_mounted for line in self._lines.values()))


    def on_mount(self) -> None:
        for col in COLUMNS:
            self.table.add_column(Text(col.label, justify="right" if col.numeric else "left"), key=col.key)
        self.query_one("#filter").display = False
        self._show_header()
        self._show_details()
        self.table.focus()
        self._collections.hold()  # until the first full table is settled (see heap.py, _settle_heap)
        self.start_refresh()

    def notify(self, message: str, *, title: str = "", **kwargs) -> None:
        """Every notification through the secrets gate: they carry server and libpq messages."""
        super().notify(gate(message), title=gate(title), **kwargs)

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_details()

    @on(DataTable.RowSelected)
    def _row_clicked(self, event: DataTable.RowSelected) -> None:
        # Enter is bound to preview, so this comes from a click on the highlighted row: toggle it.
        self.action_toggle_row()

    @on(DataTable.HeaderSelected)
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        column = event.column_key.value
        if column not in SORTABLE:
            return
        if self.sort_column == column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        self._resort()

    # -- actions: which apply now ---------------------------------------------------------------

    def _refresh_bindings(self) -> None:
        """Tell Textual that check_action may answer differently, only when what it looks at changed:
        the footer is rebuilt each time (tens of milliseconds on every refresh otherwise)."""
        state = (self.read_only_reason(), bool(self._counts.get(Status.BEHIND.value)), bool(self.selected))
        if state != self._bindings_state:
            self._bindings_state = state
            self.refresh_bindings()

    def check_action(self, action: str, parameters) -> bool | None:
        if action == "preview":
            return self.read_only_reason() is None
        if action == "explain_read_only":
            return self.read_only_reason() is not None
        if action == "select_behind":
            return self.read_only_reason() is None and bool(self._counts.get(Status.BEHIND.value))
        if action == "clear_selection":
            return bool(self.selected)
        return True

    # -- selection ------------------------------------------------------------------------------

    def action_toggle_row(self) -> None:
        key = self.current_key()
        if key is None:
            return
        if key in self.selected:
            self.selected.discard(key)
        else:
            self.selected.add(key)
        self._set_sel_cell(key)
        self._show_header()
        self._refresh_bindings()

    def action_select_behind(self) -> None:
        keys = [k for k in self.rows if self.verdicts[k].status is Status.BEHIND]
        self.selected.update(keys)
        for key in keys:
            self._set_sel_cell(key)
        self._show_header()
        self._refresh_bindings()
        self.notify(f"{len(keys)} behind row{'s' if len(keys) != 1 else ''} selected" if keys
                    else "No behind rows in view.")

    def action_clear_selection(self) -> None:
        keys, self.selected = list(self.selected), set()
        for key in keys:
            self._set_sel_cell(key)
        self._show_header()
        self._refresh_bindings()

    def chosen(self) -> list[Verdict]:
        """The selection, or else the row under the cursor."""
        keys = self.selected or ({self.current_key()} - {None})
        return [self.verdicts[k] for k in keys if k in self.verdicts]

    def _rows_of_sequences(self, oids: set[int]) -> list[Verdict]:
        # Every consumer of each sequence, selected or not: a fix must read and lock them all.
        return [v for v in self.report.verdicts if v.sequence is not None and v.sequence.oid in oids]

    # -- repair ---------------------------------------------------------------------------------

    # -- filter, sort, refresh control ----------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#filter", FilterInput)
        box.display = True
        self.screen.set_focus(box)  # at once, not on the queue's next turn (see SeqTable._on_key)

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        query = event.value.strip()
        if query == self.filter_query:  # e.g. the echo of action_clear_filter: the rows are already shown
            return
        self.filter_query = query
        self._show_rows()
        self._show_header()
        self._show_details()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.query_one("#filter").display = False
        self.table.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", FilterInput)
        box.value = ""  # its Input.Changed finds the query unchanged and does nothing
        self.filter_query = ""
        box.display = False
        self.table.focus()
        self._show_rows()
        self._show_header()

    def _resort(self) -> None:
        self._show_rows()
        self._show_header()

    def action_sort_next(self) -> None:
        cycle = [None, *SORTABLE]
        self.sort_column = cycle[(cycle.index(self.sort_column) + 1) % len(cycle)]
        self.sort_reverse = False
        self._resort()

    def action_sort_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._resort()

    def action_refresh_now(self) -> None:
        self.start_refresh(full=True)

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if self.paused:
            self._cancel_timer()
        else:
            self.start_refresh()
        self._show_header()

    def _step_interval(self, direction: int) -> None:
        steps = sorted(set(INTERVAL_STEPS) | {self.interval})
        i = steps.index(self.interval) + direction
        self.interval = steps[max(0, min(len(steps) - 1, i))]
        if not self.refreshing and not self.paused and self.lost is None:
            self._schedule(self.interval)
        self._show_header()
        self.notify(f"Refreshing every {fmt_interval(self.interval)}.", timeout=2)

    def action_faster(self) -> None:
        self._step_interval(-1)

    def action_slower(self) -> None:
        self._step_interval(+1)

    def action_help(self) -> None:
        note = ""
        if reason := self.read_only_reason():
            note = f"Read-only: {reason}. f explains; c and s still copy the SQL."
        self.push_screen(HelpScreen(KEY_HELP, note))

    def action_quit(self) -> None:
        self._exit_requested = True
        self._cancel_timer()
        self.exit(0)

    def exit(self, *args, **kwargs) -> None:
        # A scan stuck behind a lock (each statement up to statement_timeout, and its fallbacks after
        # it) must not keep the app from quitting: call it off first.
        stop_scan(self._scan_stop, list(self._scanning_on))
        super().exit(*args, **kwargs)

    # -- command palette ------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from palette_commands(self)
        yield from super().get_system_commands(screen)

    def on_unmount(self) -> None:
        self._exit_requested = True
        self._cancel_timer()
        self._collections.release()
        gc.unfreeze()  # see _settle_heap: whatever of the app dies now in cycles can be collected

    def _settle_heap(self) -> None:
        """Move everything alive after the first full table out of the garbage collector's sight, then
        let it collect again (it was held off while the table was built: see heap.py).

        A table of 10,000 rows is ~500,000 long-lived objects; every full collection walked them all
        and froze the screen for ~0.3 s (clearing a filter, a refresh) whenever enough new objects had
        piled up. Frozen objects are still freed as soon as nothing refers to them (verdicts and cells
        hold no reference cycles); only a cycle among them that dies later would stay (a few widgets at
        most)."""
        gc.collect()
        gc.freeze()
        self._collections.release()
