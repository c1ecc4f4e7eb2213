"""The app's refresh loop: a worker scans (first the scan started before the app, then LiveScanner
ticks), posts the report, and the next refresh is scheduled, or retried with a capped backoff after a
lost connection. The table is updated from the report by rows.py; nothing is re-run after a reconnect.
A mixin of SeqtuiApp (app.py), which holds the state it uses."""

from __future__ import annotations

import time
from itertools import compress, repeat
from operator import is_
from typing import Callable

import psycopg
from textual import work

from ..connect import ConnectError, close_all, connect, open_helpers
from ..model import Report, adjust_counts, summary_counts
from ..refresh import LiveScanner
from .header import short_error
from .messages import Measuring, Refreshed, RefreshFailed

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


class RefreshLoop:
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
                              f"since another one could not be opened: {short_error(why)}",
                              severity="warning", timeout=8)

    def _post_progress(self, rows: Callable[[], Report], done: int, total: int) -> None:
        """The first scan's progress, from the worker thread: the rows so far when they are due (see
        PROGRESS_EVERY; building them sorts everything measured so far), else only the count."""
        now = time.monotonic()
        if self._progress_gap is None:  # the first showing's gap: set here, where the constant lives
            self._progress_gap = PROGRESS_EVERY
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
