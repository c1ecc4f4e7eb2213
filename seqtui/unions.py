"""Reading many one-row queries in few statements: UNION ALL chunks, pipelined, with fallbacks that find
which one failed and why. Shared by the catalog's reads (catalog.py) and the probes (probes.py)."""

from __future__ import annotations

import threading
from typing import Callable, Iterator

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

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
                          select: Callable[[int], sql.Composed]) -> list[tuple] | None:
    """Every chunk's UNION ALL of select(i), all sent at once in one pipeline: one round trip for them
    all, and the server works on one chunk while we compose the next. Each chunk runs in its own
    BEGIN ... COMMIT, so its locks (a table and its index per target) are released before the next
    chunk takes its own, as they would be one statement at a time. (A Sync per chunk would do that
    too, but psycopg waits for each Sync's results: a round trip per chunk, 100 at 10,000 tables.)
    Returns None if anything failed: these are reads, so the caller simply reads again chunk by chunk
    and finds out which one failed. (And at once inside a transaction, which a COMMIT here would end.)"""
    if len(chunks) < 2 or conn.info.transaction_status != TransactionStatus.IDLE:
        return None
    try:
        with conn.pipeline():
            cursors = []
            for chunk in chunks:
                conn.execute(_BEGIN)
                cursors.append(conn.execute(sql.SQL(" UNION ALL ").join([select(i) for i in chunk])))
                conn.execute(_COMMIT)
        return [row for cur in cursors for row in cur.fetchall()]
    except psycopg.Error:
        if conn.broken or conn.closed:
            raise
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.execute(_ROLLBACK)  # the failed chunk's BEGIN is still open
        return None


def read_unions(conn: psycopg.Connection, indexes: list[int], select: Callable[[int], sql.Composed],
                 stop: threading.Event | None, together: bool = True) -> tuple[dict[int, object], dict[int, Exception]]:
    """The one-value queries select(i) for each i, as few statements as possible: every chunk in one
    pipeline, else chunk by chunk, and a chunk that fails one by one, to find which failed and why.
    `together=False`: one by one from the start (each may scan a table: a slow one then times out
    alone instead of taking a whole chunk with it). Returns ({i: value}, {i: the error})."""
    values: dict[int, object] = {}
    failed: dict[int, Exception] = {}
    alone: list[int] = list(indexes) if not together else []
    if together:
        rows = run_unions_pipelined(conn, list(chunks(indexes)), select)
        if rows is not None:
            return dict(rows), failed
        for chunk in chunks(indexes):
            try:
                values.update(run_union(conn, [select(i) for i in chunk], stop))
            except psycopg.Error:
                alone.extend(chunk)
    for i in alone:
        try:
            (_, value), = run_union(conn, [select(i)], stop)
            values[i] = value
        except psycopg.Error as exc:
            failed[i] = exc
    return values, failed
