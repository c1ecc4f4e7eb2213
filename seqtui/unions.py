"""Reading many one-row queries in few statements: UNION ALL chunks, pipelined, with fallbacks that find
which one failed and why. Shared by the catalog's reads (catalog.py) and the probes (probes.py)."""

from __future__ import annotations

import threading
from typing import Callable, Iterable, Iterator

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from .locks import LockWatch, is_lock_timeout

# Subqueries per UNION ALL statement. Planning time grows faster than linearly with the statement's
# size (measured: 1,000 high-water subqueries take ~220 ms in chunks of 500, ~120 ms in chunks of 100,
# on a fresh connection), while each extra chunk only costs one round trip.
CHUNK = 100


def chunks(items: list, size: int = CHUNK) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class ScanStopped(Exception):
    """The scan was called off (stop_scan()): raised before its next statement."""


def go_on(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise ScanStopped("the scan was stopped")


def run_union(conn: psycopg.Connection, selects: list[sql.Composed],
               stop: threading.Event | None = None) -> list[tuple]:
    go_on(stop)
    return conn.execute(sql.SQL(" UNION ALL ").join(selects)).fetchall()


_BEGIN, _COMMIT, _ROLLBACK = sql.SQL("BEGIN"), sql.SQL("COMMIT"), sql.SQL("ROLLBACK")


def run_unions_pipelined(conn: psycopg.Connection, chunks: list[list[int]],
                          select: Callable[[int], sql.Composed]) -> tuple[list[tuple] | None, psycopg.Error | None]:
    """Every chunk's UNION ALL of select(i), all sent at once in one pipeline: one round trip for them
    all, and the server works on one chunk while we compose the next. Each chunk runs in its own
    BEGIN ... COMMIT, so its locks (a table and its index per target) are released before the next
    chunk takes its own, as they would be one statement at a time. (A Sync per chunk would do that
    too, but psycopg waits for each Sync's results: a round trip per chunk, 100 at 10,000 tables.)
    Returns (rows, None), or (None, the error) if anything failed: these are reads, so the caller
    simply reads again chunk by chunk and finds out which one failed; (None, None) when not tried
    (one chunk, or inside a transaction, which a COMMIT here would end)."""
    if len(chunks) < 2 or conn.info.transaction_status != TransactionStatus.IDLE:
        return None, None
    try:
        with conn.pipeline():
            cursors = []
            for chunk in chunks:
                conn.execute(_BEGIN)
                cursors.append(conn.execute(sql.SQL(" UNION ALL ").join([select(i) for i in chunk])))
                conn.execute(_COMMIT)
        return [row for cur in cursors for row in cur.fetchall()], None
    except psycopg.Error as exc:
        if conn.broken or conn.closed:
            raise
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.execute(_ROLLBACK)  # the failed chunk's BEGIN is still open
        return None, exc


class _Locks:
    """read_unions()'s view of a LockWatch: which relations each select touches, and the reads left
    out because one of them is locked (recorded in `failed`)."""

    def __init__(self, watch: LockWatch | None, touches: Callable[[int], Iterable[int]] | None,
                 wanted: str, failed: dict[int, Exception]):
        self.watch, self.touches, self.wanted, self.failed = watch, touches, wanted, failed

    def keep(self, indexes: list[int]) -> list[int]:
        """`indexes` without those touching a relation already known locked (those go to failed)."""
        if self.watch is None or self.touches is None:
            return indexes
        kept = []
        for i in indexes:
            locked = next(filter(None, (self.watch.known(oid, self.wanted) for oid in self.touches(i))), None)
            if locked is None:
                kept.append(i)
            else:
                self.failed[i] = locked
        return kept

    def found(self, conn: psycopg.Connection, exc: psycopg.Error | None, indexes: list[int]) -> bool:
        """After `exc` ended a read of `indexes`: if it was lock_timeout, look up who locks their
        relations. True if a lock was found, so that a read of what remains will not meet it."""
        if exc is None or self.watch is None or self.touches is None or not is_lock_timeout(exc):
            return False
        return bool(self.watch.find(conn, {oid for i in indexes for oid in self.touches(i)}, self.wanted))

    def alone(self, conn: psycopg.Connection, i: int, exc: psycopg.Error) -> Exception:
        """What a read of select(i) by itself that failed with `exc` is recorded as."""
        if self.watch is None or self.touches is None or not is_lock_timeout(exc):
            return exc
        oids = list(self.touches(i))
        found = self.watch.find(conn, oids, self.wanted)
        return next(iter(found.values())) if found else self.watch.give_up(oids)


def read_unions(conn: psycopg.Connection, indexes: list[int], select: Callable[[int], sql.Composed],
                stop: threading.Event | None, together: bool = True, *,
                locks: LockWatch | None = None, touches: Callable[[int], Iterable[int]] | None = None,
                wanted: str = "AccessShareLock", rows: bool = False) -> tuple[dict[int, object], dict[int, Exception]]:
    """The one-row queries select(i) for each i, as few statements as possible: every chunk in one
    pipeline, else chunk by chunk, and a chunk that fails one by one, to find which failed and why.
    `together=False`: one by one from the start (each may scan a table: a slow one then times out
    alone instead of taking a whole chunk with it). Returns ({i: value}, {i: the error}); the value is
    the row's second column, or with `rows` the tuple of all its columns after the first.

    With `locks` and `touches(i)` (the oids of the relations select(i) reads, locked in mode `wanted`):
    a read that runs past lock_timeout has the locks on its relations looked up, the selects touching
    a locked one are left out (their error: locks.Locked, naming the holder), and the rest are read
    again at once. A chunk that trips on one locked table so loses none of its other reads, and no
    read waits for a lock already found in this scan."""
    values: dict[int, object] = {}
    failed: dict[int, Exception] = {}
    guard = _Locks(locks, touches, wanted, failed)

    def store(found: list[tuple]) -> None:
        values.update((row[0], row[1:] if rows else row[1]) for row in found)

    alone: list[int] = [] if together else list(indexes)
    rest = guard.keep(list(indexes)) if together else []
    while together and rest:
        found, exc = run_unions_pipelined(conn, list(chunks(rest)), select)
        if found is not None:
            store(found)
            rest = []
        elif guard.found(conn, exc, rest):
            rest = guard.keep(rest)  # and again, without what is locked
        else:
            break
    for chunk in chunks(rest):
        while chunk:
            try:
                store(run_union(conn, [select(i) for i in chunk], stop))
                break
            except psycopg.Error as exc:
                if guard.found(conn, exc, chunk):
                    chunk = guard.keep(chunk)
                    continue
                alone.extend(chunk)
                break
    for i in alone:
        if not guard.keep([i]):  # found locked meanwhile (by the read of another one alone)
            continue
        try:
            store(run_union(conn, [select(i)], stop))
        except psycopg.Error as exc:
            failed[i] = guard.alone(conn, i, exc)
    return values, failed


class read_timeouts:
    """SET statement_timeout and lock_timeout for a block on an autocommit connection, then restore the
    old values (ms None: leave that one as it is). A scan sets them once, not once per group."""

    def __init__(self, conn: psycopg.Connection, ms: int | None, lock_ms: int | None = None):
        self.conn = conn
        self.wanted = {k: v for k, v in (("statement_timeout", ms), ("lock_timeout", lock_ms)) if v is not None}

    def __enter__(self):
        if not self.wanted:
            return
        names = list(self.wanted)
        self.old = dict(zip(names, self.conn.execute(
            sql.SQL("SELECT {}").format(sql.SQL(", ").join(
                sql.SQL("current_setting({})").format(sql.Literal(n)) for n in names))).fetchone()))
        self._set({n: f"{int(ms)}ms" for n, ms in self.wanted.items()})

    def _set(self, values: dict[str, str]) -> None:
        # set_config(), not SET: one statement for both, and values as parameters
        self.conn.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(
            sql.SQL("set_config({}, {}, false)").format(sql.Literal(n), sql.Literal(v))
            for n, v in values.items())))

    def __exit__(self, *exc):
        if self.wanted and not self.conn.closed and not self.conn.broken:
            self._set(self.old)
