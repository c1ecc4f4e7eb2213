"""The seqtui terminal UI: a live table of every sequence, details, selection, preview and repair.

Database work never runs on the UI thread: a refresh worker scans with its own connection and posts
the Report as a message; a repair runs in another worker on a fresh connection of its own, only ever
because the operator pressed `y` in a preview (nothing is re-run after a reconnect). The table is a
keyed DataTable updated cell by cell from a pure diff (table.py), so the cursor, the scroll position
and the selection survive refreshes.
"""

from __future__ import annotations

import gc
import re
import threading
import time
from bisect import insort
from itertools import compress, islice, repeat
from operator import is_
from pathlib import Path
from datetime import datetime
from collections.abc import Mapping
from typing import Callable, Iterable

import psycopg
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Container, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static

from ..apply import FAILED, FIXED, FixResult, apply_plans
from ..audit import AuditError, AuditLog, default_path as default_audit_path
from ..catalog import stop_scan
from ..config import Config
from ..connect import ConnectError, Target, close_all, connect, open_helpers
from ..heap import CollectionHold
from ..model import Report, Status, Verdict, adjust_counts, summary_counts
from ..output import summary_text
from ..repair import DEFAULT_LOCK_TIMEOUT, FixPlan, describe, oneliner, plans_from_verdicts, script
from ..refresh import LiveScanner, TickInfo
from .details import details
from .first_scan import FirstScan, ui_scope
from .footer import KeyFooter
from .rates import RateTracker
from ..redact import gate
from .screens import CopyScreen, HelpScreen, PreviewScreen, ResultsScreen, gated
from .seqtable import FILTER_KEY, SeqTable, Shown
from .table import (COLUMN_KEYS, COLUMNS, SORTABLE, diff_some, matches, ordered, rate_cell_of, row_cells,
                    sort_key)

INTERVAL_STEPS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
BACKOFF = (1.0, 30.0)  # first retry after a lost connection, and the cap of the doubling
# The first scan of a big database shows its rows while it measures: the first group's at once, the
# rows so far again after PROGRESS_EVERY seconds, a gap that doubles after each showing up to
# PROGRESS_EVERY_MAX. Each showing costs a pass over every row so far and a repaint, CPU the scan needs
# itself on a small machine: at 10,000 tables on 2 cores, rows every 0.3 s slowed the scan by a third.
# The count in the header ("measuring... N of M") moves with every group.
PROGRESS_EVERY = 0.3
PROGRESS_EVERY_MAX = 5.0
# No rows so far when the whole table is due within this many seconds (projected from the pace so
# far): that showing would only delay the full table (at 10,000 tables, ~0.1 s of UI work 0.3 s
# before the end).
PROGRESS_NEAR_END = 0.5
# After the first full table is painted, the heap settles (_settle_heap): a full collection of
# ~0.1 s at 10,000 rows. Run before the paint, it held the full table back that long.
SETTLE_AFTER = 0.2
# A refresh re-draws the rate cell of every sequence written to in the last 5 minutes (the window slides:
# the average drifts). Rows on screen get theirs at once; the others at most this many per refresh,
# longest waiting first: off screen a rate shows a few refreshes late, never more, and a 5-minute
# average hardly moves in that time. (At 10,000 rows with 2,000 of them written to, redrawing all of
# them was most of a refresh's 50-60 ms.)
RATE_ROWS_PER_REFRESH = 250
COLUMN_LABELS = {c.key: c.label for c in COLUMNS}

# (key as shown, what it does): the help screen; the bindings below are the same keys.
KEY_HELP = [
    ("↑ ↓ PgUp PgDn", "move the cursor; the details pane follows it"),
    ("space", "select / unselect the row under the cursor"),
    ("b", "select every behind row (in the current filter)"),
    ("escape", "clear the selection"),
    ("f / enter", "preview the repair of the selection (or of the row under the cursor)"),
    ("y / n", "in the preview: apply / cancel"),
    ("c", "copy psql one-liner(s) for the selection (or the row under the cursor)"),
    ("s", "copy the SQL script that fixes every behind sequence"),
    ("/", "filter by name or status word (behind, ok, critical...); escape clears it"),
    ("o / O", "sort by the next column / reverse the order (or click a column header)"),
    ("r", "refresh now (or reconnect now after a lost connection)"),
    ("p", "pause / resume the automatic refresh"),
    ("+ / -", "refresh more / less often"),
    ("ctrl+p", "command palette: every action by name"),
    ("?", "this help"),
    ("q", "quit"),
]


def _fmt_interval(seconds: float) -> str:
    return f"{seconds:g}s"


# -- messages from workers ------------------------------------------------------------------

class Refreshed(Message):
    """A new Report. `measuring` = (sequences measured, all of them) while the first scan of a big
    database is still running: the report then holds only the sequences measured so far."""

    def __init__(self, report: Report, mono: float, status: str | None, tick: TickInfo | None = None,
                 measuring: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.report, self.mono, self.status, self.tick = report, mono, status, tick
        self.measuring = measuring


class Measuring(Message):
    """The first scan's progress between two showings of its rows: the header's count only."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__()
        self.done, self.total = done, total


class RefreshFailed(Message):
    def __init__(self, error: str, lost: bool) -> None:
        super().__init__()
        self.error, self.lost = gate(error), lost  # shown in a notification and in the header


class ApplyProgress(Message):
    def __init__(self, result: FixResult) -> None:
        super().__init__()
        self.result = result


class ApplyFinished(Message):
    def __init__(self, results: list[FixResult]) -> None:
        super().__init__()
        self.results = results


class FilterInput(Input):
    BINDINGS = [Binding("escape", "app.clear_filter", "Clear filter", show=False)]


class SeqtuiApp(App[int]):
    CSS_PATH = "seqtui.tcss"
    TITLE = "seqtui"
    # Narrow terminals stack the details under the table; wide ones put them side by side.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (190, "-wide")]

    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("space", "toggle_row", "Select", show=False),
        Binding("b", "select_behind", "Behind", show=False),
        Binding("escape", "clear_selection", "Unselect"),
        Binding("f", "preview", "Fix"),
        Binding("f", "explain_read_only", "Read-only"),
        Binding("c", "copy_oneliners", "Copy"),
        Binding("s", "copy_script", "SQL"),
        Binding(FILTER_KEY, "filter", "Filter"),
        Binding("o", "sort_next", "Sort", show=False),
        Binding("O", "sort_reverse", "Reverse", show=False),
        Binding("r", "refresh_now", "Refresh"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("plus,equals_sign", "faster", "Faster", show=False),
        Binding("minus", "slower", "Slower", show=False),
    ]

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
                      else ui_scope(target, config, schemas, statement_timeout))
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
        self._progress_gap = PROGRESS_EVERY  # and how long it waits before posting them again
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

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Container(id="header"):
            yield Static(id="db-line")
            yield Static(id="summary-line")
            yield Static(id="state-line")
        with Container(id="body"):
            yield self._table
            with VerticalScroll(id="details-pane"):
                yield Static(id="details")
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
        return self._table.is_mounted and not self._exit_requested


    def on_mount(self) -> None:
        for col in COLUMNS:
            self.table.add_column(Text(col.label, justify="right" if col.numeric else "left"), key=col.key)
        self.query_one("#filter").display = False
        self._show_header()
        self._show_details()
        self.table.focus()
        self._collections.hold()  # until the first full table is settled (see heap.py, _settle_heap)
        self.start_refresh()

    # -- refreshing -----------------------------------------------------------------------------

    def start_refresh(self, full: bool = False) -> None:
        """Start a refresh unless one runs; then run one more as soon as it ends. `full` re-measures
        everything; otherwise only what was written to since the last refresh (see LiveScanner)."""
        self._cancel_timer()
        if self.refreshing:
            self._refresh_again = True
            self._full_again |= full
            return
        self.refreshing = True
        self._show_header()
        self._refresh_worker(full)

    @work(thread=True, exclusive=True, exit_on_error=False, group="refresh")
    def _refresh_worker(self, full: bool = False) -> None:
        conn = self._conn
        try:
            first, self._first_scan = self._first_scan, None
            if first is not None:  # started before the app was (tui.run): take it over
                scanner = first.scanner
                first.adopt(self._post_progress)
                if first.helper_warning is not None:
                    self._warn_fewer_helpers(first.connections, first.helper_warning)
                report = first.result()
            else:
                if conn is None or conn.closed or conn.broken:
                    conn = self._conn = connect(self.target, connect_timeout=5)
                scanner = self._scanner
                if scanner is None or scanner.conn is not conn:
                    scanner = self._scanner = LiveScanner(conn, self.scope, full_every=self.full_every)
                helpers = self._open_helpers() if self.report is None else []  # --jobs: the first scan
                self._scan_started = time.monotonic()
                self._scanning_on = [conn, *helpers]
                try:
                    report = scanner.tick(full=full, progress=self._post_progress if self.report is None else None,
                                          helpers=helpers, stop=self._scan_stop)
                finally:
                    self._scanning_on = []
                    close_all(helpers)
        except ConnectError as exc:
            self.post_message(RefreshFailed(str(exc), lost=True))
            return
        except psycopg.Error as exc:
            lost = conn is None or conn.closed or conn.broken or isinstance(
                exc, (psycopg.OperationalError, psycopg.InterfaceError))
            if lost and conn is not None:
                self._close_conn()
            # masked before whitespace is squeezed: a password holding a tab must still match
            text = " ".join(self.target.redact(str(exc)).split()) or type(exc).__name__
            self.post_message(RefreshFailed(text, lost=lost))
            return
        except Exception as exc:  # a bug must not stop the refresh loop or crash the app
            self.post_message(RefreshFailed(self.target.redact(f"{type(exc).__name__}: {exc}"), lost=False))
            return
        status = None
        if self.status_line_fn is not None:
            try:
                status = self.status_line_fn()
            except Exception as exc:  # the demo's counter is decoration: never let it break a refresh
                status = f"(status unavailable: {exc})"
        self.post_message(Refreshed(report, time.monotonic(), status, scanner.last_tick))

    def _open_helpers(self) -> list[psycopg.Connection]:
        """The first scan's extra connections (--jobs), from the worker thread. Fewer than asked for
        is a notice: the scan goes on with those it has."""
        if (self.jobs or 1) <= 1:  # None: the spare of a FirstScan only (first_scan.py)
            return []
        helpers, why = open_helpers(self.target, self.jobs)
        if why:
            self._warn_fewer_helpers(len(helpers) + 1, why)
        return helpers

    def _warn_fewer_helpers(self, connections: int, why: str) -> None:
        self.call_from_thread(self.notify, f"--jobs {self.jobs}: measuring on {connections} connection(s), "
                              f"since another one could not be opened: {_short_error(why)}",
                              severity="warning", timeout=8)

    def _post_progress(self, rows: Callable[[], Report], done: int, total: int) -> None:
        """The first scan's progress, from the worker thread: the rows so far when they are due (see
        PROGRESS_EVERY; building them sorts everything measured so far), else only the count."""
        now = time.monotonic()
        if self._progress_posted is None or (now - self._progress_posted >= self._progress_gap
                                             and not self._nearly_done(now, done, total)):
            if self._progress_posted is not None:
                self._progress_gap = min(2 * self._progress_gap, PROGRESS_EVERY_MAX)
            self._progress_posted = now
            self.post_message(Refreshed(rows(), now, None, None, measuring=(done, total)))
        else:
            self.post_message(Measuring(done, total))

    def _nearly_done(self, now: float, done: int, total: int) -> bool:
        """The full table is due within PROGRESS_NEAR_END seconds at the pace so far (discovery counts
        in that pace, so the guess runs long: rows are then shown rather than skipped)."""
        return done > 0 and (now - self._scan_started) * (total - done) / done < PROGRESS_NEAR_END

    def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _schedule(self, delay: float) -> None:
        self._cancel_timer()
        if self.live and not self.paused:
            self._timer = self.set_timer(delay, self.start_refresh)

    def _after_refresh(self, delay: float) -> None:
        self.refreshing = False
        if self._refresh_again:
            full, self._refresh_again, self._full_again = self._full_again, False, False
            self.start_refresh(full)
        else:
            self._schedule(delay)

    def on_refreshed(self, message: Refreshed) -> None:
        if not self.live_screen:
            return
        started = time.perf_counter()
        partial = message.measuring is not None
        if not partial:
            self.last_tick = message.tick
        elif self.report is not None and self.measuring is None:
            return  # a late progress report of a scan that has already ended
        self.measuring = message.measuring
        if partial:
            self._measured_shown = message.measuring[0]
        if self.lost is not None:
            self.notify("Reconnected. The table is live again; no repair was re-run.", title="Connection")
        self.lost, self.attempts, self.retry_at, self.last_error = None, 0, None, None
        if not partial:
            self.status_text = message.status
            self.last_refresh = self.clock()
        # Row keys by verdict identity: a LiveScanner's incremental tick hands back the very same
        # Verdict objects for every sequence it did not re-measure, so only new objects need a key
        # (and a look). The previous report still holds the old objects: no id is reused meanwhile.
        # (The loops over every row run in C: map and zip; only new objects get a Python-level look.)
        old, key_by_id, new = self.verdicts, self._key_by_id, message.report.verdicts
        new_ids = list(map(id, new))
        keys = list(map(key_by_id.get, new_ids))
        changed = []
        for i in compress(range(len(keys)), map(is_, keys, repeat(None))):
            keys[i] = key = new[i].key
            changed.append(key)
        verdicts, ids = dict(zip(keys, new)), dict(zip(new_ids, keys))
        same = (bool(old) and len(verdicts) == len(old) and len(changed) <= len(verdicts) // 4
                and all(k in old for k in changed))
        self._key_by_id = ids
        self.report = message.report
        self.verdicts = verdicts
        # A hundred changed rows of 10,000 adjust the counts; recounting all costs ~20 ms a refresh.
        self._counts = (adjust_counts(self._counts, [old[k] for k in changed], [verdicts[k] for k in changed])
                        if same else summary_counts(verdicts.values()))
        dirty = None
        if same:  # the same rows: look only at the new verdicts and the rates that can move
            oids = self.rates.observe(message.report.verdicts, message.mono, [verdicts[k] for k in changed])
            if oids is not None:
                keys_of = self._keys_of_oid
                dirty = self._rows_due(set(changed), set().union(*(keys_of.get(o, ()) for o in oids)))
                rate = self.rates.rate
                self._rate.update((o, rate(o)) for o in oids)
        else:
            if not partial:  # the same values seen twice a moment apart are not a rate of zero
                self.rates.observe(message.report.verdicts, message.mono)
            self.selected &= set(verdicts)  # a vanished row cannot be repaired
            keys_of: dict[int, list[str]] = {}
            for key, v in verdicts.items():
                if v.sequence is not None:
                    keys_of.setdefault(v.sequence.oid, []).append(key)
            self._keys_of_oid = keys_of
            self._sort_keys = {}
        self.table.set_class(False, "-stale")
        self._show_rows(dirty)
        self._show_header()
        self._show_details()
        self._refresh_bindings()
        if partial:
            return  # the scan goes on: its final report follows
        self.refresh_ui_seconds = time.perf_counter() - started
        self.refresh_count += 1
        if self.refresh_count == 1:  # a timer: call_after_refresh() may still run before the paint
            self.set_timer(SETTLE_AFTER, self._settle_heap)
        self._after_refresh(self.interval)

    def on_measuring(self, message: Measuring) -> None:
        if not self.live_screen or (self.report is not None and self.measuring is None):
            return  # late: the scan has ended
        self.measuring = (message.done, message.total)
        self._show_header()

    def notify(self, message: str, *, title: str = "", **kwargs) -> None:
        """Every notification through the secrets gate: they carry server and libpq messages."""
        super().notify(gate(message), title=gate(title), **kwargs)

    def on_refresh_failed(self, message: RefreshFailed) -> None:
        if not self.live_screen:
            return
        self.last_error = message.error
        self.measuring = None  # a first scan that failed half-way measures nothing more
        self._collections.release()  # no table may come for a long while: collect as usual meanwhile
        if message.lost:
            if self.lost is None:
                self.notify(f"Connection lost: {message.error}. Keeping the last table (stale) and "
                            "reconnecting.", title="Connection", severity="error", timeout=8)
            self.lost = message.error
            self.attempts += 1
            first, cap = self.backoff
            delay = min(cap, first * 2 ** (self.attempts - 1))
            self.retry_at = time.monotonic() + delay
            self.table.set_class(True, "-stale")
        else:
            self.notify(f"Refresh failed: {message.error}", severity="warning", timeout=6)
            delay = self.interval
        self._show_header()
        self._after_refresh(delay)
        if message.lost:
            self.set_timer(1, self._tick, name="lost-countdown")

    def _tick(self) -> None:
        """Keep the "retry in Ns" countdown honest while the connection is down."""
        if self.lost is not None and self.live_screen:
            self._show_header()
            self.set_timer(1, self._tick, name="lost-countdown")

    # -- the table ------------------------------------------------------------------------------

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

    # -- header and details ---------------------------------------------------------------------

    def read_only_reason(self) -> str | None:
        if self.forced_read_only:
            return "started with --read-only"
        if self.report is not None and self.report.read_only:
            return self.report.read_only_reason or "the server refuses writes"
        return None

    def _show_header(self) -> None:
        if not self.live_screen:
            return
        db = dict(self.report.database) if self.report else {}
        db.update(self.display_database or {})
        line = Text()
        line.append(" seqtui ", style="bold reverse")
        if db:
            where = db.get("host") or "local socket"
            if db.get("port"):
                where += f":{db['port']}"
            line.append(f" {db.get('name')}", style="bold")
            line.append(f" on {where} as {db.get('user')} · PostgreSQL {db.get('server_version')}")
            if db.get("in_recovery"):
                line.append(" · standby", style="magenta")
        else:
            line.append(f" {self.target.display}", style="bold")
        reason = self.read_only_reason()
        line.append(" · ")
        line.append("READ-ONLY" if reason else "read-write", style="bold magenta" if reason else "green")
        self.query_one("#db-line", Static).update(gated(line))

        summary = Text(" ")
        if self.report is None:
            summary.append("scanning…" if self.lost is None else "not connected", style="dim")
        else:
            if self._summary[0] is not self._counts:
                self._summary = (self._counts, summary_text(self._counts))
            counts = self._summary[1]
            for i, part in enumerate(counts.split(" · ")):
                if i:
                    summary.append(" · ", style="dim")
                word = part.split(" ", 1)[-1]
                summary.append(part, style={"behind": "bold red", "critical": "bold dark_orange",
                                            "warning": "yellow", "ok": "green", "unreadable": "magenta",
                                            "timeout": "magenta", "missing": "magenta"}.get(word, ""))
        if self.measuring is not None:
            done, total = self.measuring
            summary.append(f"  measuring… {done:,} of {total:,} sequences", style="bold cyan")
            if done > self._measured_shown:  # the counts before it are of the rows in the table
                summary.append(f" ({self._measured_shown:,} in the table)", style="cyan")
        if self.last_refresh is not None:
            summary.append(f"  refreshed {self.last_refresh:%H:%M:%S}", style="dim")
        summary.append(f" · every {_fmt_interval(self.interval)}" if self.live else " · manual refresh",
                       style="dim")
        self.query_one("#summary-line", Static).update(gated(summary))

        state = Text(" ")
        if self.lost is not None:
            wait = max(0, round((self.retry_at or 0) - time.monotonic()))
            when = f"{self.last_refresh:%H:%M:%S}" if self.last_refresh else "the start"
            # What the operator needs first (when it retries), then why: the reason may be long.
            state.append(" CONNECTION LOST ", style="bold white on red")
            state.append(" reconnecting…" if self.refreshing else
                         (" paused: p or r reconnects" if self.paused else f" retry in {wait}s (r: now)"),
                         style="bold red")
            state.append(f" · table stale since {when} · {_short_error(self.lost)} ", style="red")
        elif self.paused:
            state.append(" PAUSED ", style="bold black on yellow")
            state.append(" p resumes, r refreshes once ", style="yellow")
        elif reason:
            state.append(" READ-ONLY ", style="bold white on magenta")
            state.append(f" {reason}: repairs are not offered ", style="magenta")
        if self.applying:
            state.append("applying repair… ", style="bold")
        # What shapes the view: the third line, so that the counts on the second never get cut off.
        if self.selected:
            hidden = len(self.selected - set(self.rows))
            state.append(f"{len(self.selected)} selected ", style="bold")
            if hidden:
                state.append(f"({hidden} hidden by the filter) ", style="bold yellow")
        if self.filter_query:
            state.append(f"filter: {self.filter_query} ", style="bold cyan")
        if self.sort_column is not None:
            arrow = "↓" if self.sort_reverse else "↑"
            state.append(f"sorted by {COLUMN_LABELS[self.sort_column]} {arrow} ", style="dim")
        if self.status_text:
            state.append(self.status_text, style="cyan")
        self.query_one("#state-line", Static).update(gated(state))

    def _show_details(self) -> None:
        if not self.live_screen:
            return
        key = self.current_key()
        v = self.verdicts.get(key) if key else None
        siblings: list[Verdict] = []
        plan = None
        if v is not None and v.sequence is not None and self.report is not None:
            siblings = [self.verdicts[k] for k in self._keys_of_oid.get(v.sequence.oid, ())]
            plans = plans_from_verdicts(siblings)
            plan = plans[0] if plans else None
        if v is None and self.report is not None and not self.rows:
            text = Text("No sequences match." if self.filter_query else "No sequences found in scope.", style="dim")
        else:
            text = details(v, siblings, plan, self.rate_of(v) if v else None, self.lock_timeout,
                           self.statement_timeout)
        self.query_one("#details", Static).update(text)

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

    def action_explain_read_only(self) -> None:
        self.notify(f"Repairs are not offered: {self.read_only_reason()}. "
                    "c copies the SQL for someone who can run it.", title="Read-only", severity="warning")

    def action_preview(self) -> None:
        reason = self.read_only_reason()
        if reason:
            self.action_explain_read_only()
            return
        if self.applying:
            self.notify("A repair is running; wait for its results.", severity="warning")
            return
        if self.lost is not None or self.report is None:
            self.notify("Not connected: the table is stale. Repairs wait for a fresh scan.", severity="warning")
            return
        chosen = self.chosen()
        if not chosen:
            self.notify("Nothing under the cursor.", severity="warning")
            return
        behind = {v.sequence.oid for v in chosen if v.status is Status.BEHIND}
        nothing = [f"{v.label or v.sequence.display_name}: {v.status.value}"
                   + (f" ({v.detail})" if v.detail else "")
                   for v in chosen if v.status is not Status.BEHIND]
        plans = plans_from_verdicts(self._rows_of_sequences(behind))

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.apply(plans)

        self.push_screen(PreviewScreen(plans, nothing, self.lock_timeout, self.statement_timeout), callback=confirmed)

    def apply(self, plans: list[FixPlan]) -> None:
        """Run confirmed plans once. Called only from the preview's `y`: never on a timer or a reconnect."""
        try:  # like `seqtui fix`: no change without a writable record of it
            audit = AuditLog(self.audit_path or default_audit_path(), dict(self.report.database), "tui").open()
        except AuditError as exc:
            self.notify(str(exc), title="Not applied", severity="error", timeout=10)
            return
        self.applying = True
        self.last_results = []
        self._results_screen = ResultsScreen(len(plans))
        self.push_screen(self._results_screen)
        self._show_header()
        self._apply_worker(plans, audit)

    @work(thread=True, exclusive=True, exit_on_error=False, group="apply")
    def _apply_worker(self, plans: list[FixPlan], audit: AuditLog) -> None:
        # A connection of its own: the refresh worker may be mid-scan on the other one, and a fix's
        # BEGIN ... COMMIT must not interleave with anything.
        try:
            conn = connect(self.target)
        except ConnectError as exc:
            results = [FixResult(p, FAILED, p.next_value, p.next_value, f"not attempted: {exc}") for p in plans]
            for r in results:
                self._record(audit, r)
                self.post_message(ApplyProgress(r))
            self.post_message(ApplyFinished(results))
            return
        results: list[FixResult] = []

        def on_result(result: FixResult) -> None:
            self._record(audit, result)
            self.post_message(ApplyProgress(result))

        try:
            with audit:
                results = apply_plans(conn, plans, self.lock_timeout, on_result=on_result,
                                      statement_timeout=self.statement_timeout)
        except Exception as exc:  # apply_plans reports per plan; this is a last line of defence
            done = {id(r.plan) for r in results}
            for p in plans:
                if id(p) not in done:
                    r = FixResult(p, "unknown", p.next_value, None,
                                  self.target.redact(f"{type(exc).__name__}: {exc}; re-run check"))
                    results.append(r)
                    on_result(r)
        finally:
            try:
                conn.close()
            except Exception:
                pass
        self.post_message(ApplyFinished(results))

    def _record(self, audit: AuditLog, result: FixResult) -> None:
        try:
            audit.record(result)
        except OSError as exc:  # the fix already happened: say so loudly, do not lose the result
            self.call_from_thread(self.notify, f"audit log not written: {exc}", severity="error")

    def on_apply_progress(self, message: ApplyProgress) -> None:
        self.last_results.append(message.result)
        if self._results_screen is not None:
            self._results_screen.add(message.result)

    def on_apply_finished(self, message: ApplyFinished) -> None:
        self.applying = False
        results = message.results
        if self._results_screen is not None:
            self._results_screen.finish()
        self.apply_count += 1
        fixed_oids = {r.plan.sequence.oid for r in results if r.ok}
        self.rates.forget(r.plan.sequence.oid for r in results if r.outcome == FIXED)
        if not self.live_screen:
            return
        for key in [k for k in self.selected if self.verdicts[k].sequence is not None
                    and self.verdicts[k].sequence.oid in fixed_oids]:
            self.selected.discard(key)
            self._set_sel_cell(key)
        failed = [r for r in results if not r.ok]
        if failed:
            self.notify("; ".join(f"{r.plan.sequence.display_name}: {r.reason}" for r in failed),
                        title=f"{len(failed)} of {len(results)} not fixed", severity="error", timeout=10)
        else:
            fixed = sum(1 for r in results if r.outcome == FIXED)
            self.notify(f"{fixed} fixed, {len(results) - fixed} already fine.", title="Repair done")
        self.start_refresh(full=True)  # show the new state at once (a setval moves no write counter)

    # -- copy -----------------------------------------------------------------------------------

    def _copy(self, title: str, text: str, note: str = "") -> None:
        text = gate(text)  # the clipboard is output too, as `seqtui sql` is
        self.copy_to_clipboard(text)
        self.push_screen(CopyScreen(title, text, note))

    def action_copy_oneliners(self) -> None:
        chosen = self.chosen()
        if not chosen or self.report is None:
            self.notify("Nothing under the cursor.", severity="warning")
            return
        oids = {v.sequence.oid for v in chosen if v.sequence is not None}
        # include_all: a row that is fine now still gets its (idempotent, forward-only) statement.
        plans = plans_from_verdicts(self._rows_of_sequences(oids), include_all=True)
        runnable = [p for p in plans if p.fixable]
        if not runnable:
            reasons = "; ".join(describe(p) for p in plans) or "no comparable, readable column draws from it"
            self.notify(f"No psql one-liner for this: {reasons}", severity="warning")
            return
        # One command per line and no comments: zsh treats a pasted `# ...` line as a command.
        text = "\n".join(oneliner(p, self.lock_timeout, statement_timeout=self.statement_timeout) for p in runnable) + "\n"
        note = "\n".join(describe(p) for p in plans)
        self._copy(f"psql one-liner{'s' if len(runnable) != 1 else ''} (run with $DATABASE_URL set)", text, note)

    def action_copy_script(self) -> None:
        if self.report is None:
            self.notify("No scan yet.", severity="warning")
            return
        plans = plans_from_verdicts(self.report.verdicts)
        db = self.report.database
        text = script(plans, self.lock_timeout, statement_timeout=self.statement_timeout,
                      header=f"seqtui: sequences behind their data in database {db.get('name')}\n"
                             "Run with: psql \"$DATABASE_URL\" -f THIS_FILE")
        self._copy(f"SQL script: {len(plans)} sequence{'s' if len(plans) != 1 else ''} behind", text)

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
        self.notify(f"Refreshing every {_fmt_interval(self.interval)}.", timeout=2)

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
        yield SystemCommand("Preview repair", "Preview (then apply) the fix of the selection or current row",
                            self.action_preview)
        yield SystemCommand("Select behind rows", "Select every behind row in view", self.action_select_behind)
        yield SystemCommand("Clear selection", "Unselect every row", self.action_clear_selection)
        yield SystemCommand("Copy psql one-liners", "For the selection or the current row",
                            self.action_copy_oneliners)
        yield SystemCommand("Copy SQL script", "Fixes every behind sequence", self.action_copy_script)
        yield SystemCommand("Filter", "By name or status word", self.action_filter)
        yield SystemCommand("Clear filter", "Show every row", self.action_clear_filter)
        yield SystemCommand("Sort by next column", "Cycle the sort column", self.action_sort_next)
        yield SystemCommand("Reverse sort", "Flip the sort order", self.action_sort_reverse)
        yield SystemCommand("Refresh now", "Scan again (or reconnect)", self.action_refresh_now)
        yield SystemCommand("Pause / resume refresh", "Toggle the automatic refresh", self.action_toggle_pause)
        yield SystemCommand("Refresh faster", "Shorter interval", self.action_faster)
        yield SystemCommand("Refresh slower", "Longer interval", self.action_slower)
        yield SystemCommand("Help", "Every key", self.action_help)
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


def _short_error(text: str) -> str:
    """A connection error without the "(DATABASE_URL: postgresql://...)" part the header already shows."""
    return re.sub(r"^could not connect \([^)]*\): ", "could not connect: ", text)


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
