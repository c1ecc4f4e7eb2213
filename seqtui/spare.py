"""The second connection a scan of a big database measures on unasked, when the server has room for it.

Without --jobs, every face (check, sql, fix, the UI's first scan) measures a database of 2,000 sequences
or more on a spare second connection too: at 10,000 tables on 2 cores the scan took 20-30% less time
(bench/). The spare is opened on a thread of its own while discovery runs and never waited for: the scan
takes it only if it is open when measuring starts, and it is closed when the scan ends. `--jobs 1`
keeps a scan to one connection. Only reads use it: `fix` applies on its own connection unless --jobs
asks for more.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

import psycopg

from .catalog import Room, room
from .connect import SpareConnection, Target

SPARE_MIN_SEQUENCES = 2000  # below this one connection measures in well under a second
SPARE_MIN_FREE_SLOTS = 10   # and at least a fifth of max_connections: an incident may need the slots


def wants_spare(r: Room) -> bool:
    """Whether a scan may open a second connection unasked."""
    return (r.sequences >= SPARE_MIN_SEQUENCES
            and r.free_slots >= max(SPARE_MIN_FREE_SLOTS, r.max_connections // 5))


def spare_wanted(conn: psycopg.Connection) -> bool:
    """wants_spare() for the database `conn` is on (one small query, room.sql)."""
    try:
        return wants_spare(room(conn))
    except psycopg.Error:  # a server that hides its numbers: the scan goes on, on one connection
        if conn.broken or conn.closed:
            raise
        return False


class SpareIfOpen:
    """A scan's helpers that are looked at when measuring starts (after discovery): the spare if it is
    open by then, handed to `on_take`, and nothing otherwise."""

    def __init__(self, spare: SpareConnection, on_take: Callable[[psycopg.Connection], None]) -> None:
        self.spare, self.on_take = spare, on_take

    def __iter__(self) -> Iterator[psycopg.Connection]:
        conn = self.spare.take()
        if conn is None:
            return iter(())
        self.on_take(conn)
        return iter((conn,))


@contextmanager
def spare_helpers(conn: psycopg.Connection, target: Target,
                  on_take: Callable[[psycopg.Connection], None] = lambda conn: None,
                  ) -> Iterator[Iterable[psycopg.Connection]]:
    """The helpers to pass to scan() on `conn` when the operator did not give --jobs: a SpareIfOpen
    if the database is big and the server has room, nothing otherwise. The spare is closed when the
    block ends, taken or not."""
    if not spare_wanted(conn):
        yield ()
        return
    spare = SpareConnection(target)
    try:
        yield SpareIfOpen(spare, on_take)
    finally:
        spare.close()
