"""The demo's background writer: a few INSERTs a second through the id defaults, on its own connection.

It makes the live view move, and shows what a behind sequence does to an application: the INSERT fails
with a duplicate key (psycopg.errors.UniqueViolation) until the sequence is fixed. It counts what it
meets, never prints (the TUI owns the screen; `seqtui demo --url` prints `digest()` lines), reconnects
quietly with a capped backoff when the server goes away, and never raises out of its thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psycopg
from psycopg import errors, sql

DEFAULT_INTERVAL = 0.35  # seconds between INSERTs: about 3 a second over all tables
MAX_BACKOFF = 5.0


@dataclass
class TableCounts:
    ok: int = 0
    duplicates: int = 0
    last_duplicate: float | None = None  # time.monotonic() of the last duplicate-key failure
    last_ok: float | None = None


class DemoWriter:
    def __init__(self, url: str, statements: dict[str, sql.Composable], interval: float = DEFAULT_INTERVAL,
                 schedule: list[str] | None = None):
        self.url = url
        self.statements = dict(statements)  # table label -> INSERT through the default
        self.schedule = list(schedule or self.statements)  # the labels in the order they take turns
        self.interval = interval
        self.counts = {label: TableCounts() for label in self.statements}
        self.other_errors = 0
        self.last_error: str | None = None
        self.connected = False
        self.reconnects = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported: dict[str, tuple[int, int]] = {label: (0, 0) for label in self.statements}
        self._failing: set[str] = set()

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> "DemoWriter":
        if self.statements and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="seqtui-demo-writer", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=3, prepare_threshold=None,
                               application_name="seqtui demo writer",
                               options="-c statement_timeout=10000 -c lock_timeout=5000")

    def _run(self) -> None:
        conn = None
        backoff = 0.2
        labels = self.schedule
        i = 0
        try:
            while not self._stop.is_set():
                if conn is None:
                    try:
                        conn = self._connect()
                    except Exception:  # server down, database gone: try again later, quietly
                        self.connected = False
                        self._stop.wait(backoff)
                        backoff = min(backoff * 2, MAX_BACKOFF)
                        continue
                    if i:
                        self.reconnects += 1
                    self.connected, backoff = True, 0.2
                label = labels[i % len(labels)]
                i += 1
                try:
                    conn.execute(self.statements[label])
                except errors.UniqueViolation:
                    with self._lock:
                        c = self.counts[label]
                        c.duplicates += 1
                        c.last_duplicate = time.monotonic()
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    self.connected = False
                    conn = self._close(conn)
                    continue
                except Exception as exc:  # a table dropped or altered by the operator: count, go on
                    with self._lock:
                        self.other_errors += 1
                        self.last_error = f"{label}: {' '.join(str(exc).split())[:120]}"
                    if conn.closed or conn.broken:
                        conn = self._close(conn)
                else:
                    with self._lock:
                        c = self.counts[label]
                        c.ok += 1
                        c.last_ok = time.monotonic()
                self._stop.wait(self.interval)
        finally:
            self.connected = False
            self._close(conn)

    @staticmethod
    def _close(conn):
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
        return None

    # -- reporting -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, TableCounts]:
        with self._lock:
            return {k: TableCounts(v.ok, v.duplicates, v.last_duplicate, v.last_ok) for k, v in self.counts.items()}

    def status_line(self) -> str:
        """One short line for the TUI's status bar."""
        snap = self.snapshot()
        ok = sum(c.ok for c in snap.values())
        dup = sum(c.duplicates for c in snap.values())
        text = f"demo writer: {ok:,} inserts ok · {dup:,} duplicate-key failures"
        last = max((c for c in snap.values() if c.last_duplicate), key=lambda c: c.last_duplicate, default=None)
        if last is not None:
            label = next(k for k, v in snap.items() if v is last)
            text += f" (last: {label}, {_ago(time.monotonic() - last.last_duplicate)})"
        if self.other_errors:
            text += f" · {self.other_errors:,} other errors (last: {self.last_error})"
        if not self.connected and self.alive:
            text = "demo writer: reconnecting… · " + text.removeprefix("demo writer: ")
        return text

    def digest(self) -> str | None:
        """What changed since the previous digest, for stderr in `seqtui demo --url`; None when nothing
        worth saying happened (so a caller printing it every few seconds stays quiet when all is well)."""
        snap = self.snapshot()
        failing, recovered = [], []
        for label, c in snap.items():
            ok0, dup0 = self._reported[label]
            if c.duplicates > dup0:
                failing.append(f"{label} ×{c.duplicates - dup0}")
                self._failing.add(label)
            if label in self._failing and c.ok > ok0 and c.last_ok > c.last_duplicate:
                recovered.append(label)  # the last INSERT into it went through: someone fixed it
                self._failing.discard(label)
            self._reported[label] = (c.ok, c.duplicates)
        parts = []
        if failing:
            parts.append("duplicate-key failures on INSERT: " + ", ".join(failing) +
                         " (their sequences are behind: see `seqtui check`, repair with `seqtui fix`)")
        if recovered:
            parts.append("inserts succeed again on " + ", ".join(recovered))
        return ("demo writer: " + "; ".join(parts)) if parts else None


def _ago(seconds: float) -> str:
    if seconds < 60:
        return f"{int(seconds)}s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    return f"{int(seconds // 3600)}h ago"
