"""Reads sequences, their consumers, their state and high-water marks from PostgreSQL: discovery here,
the reads in high_waters.py, states.py and probes.py, and the scan's orchestration (groups, --jobs).

A scan costs a handful of round trips whatever the size of the database: discovery is two catalog
queries, high-water marks are read in UNION ALL chunks, and states with one statement per 500
sequences (before PostgreSQL 18 only those already called; the others in UNION ALL chunks) (DESIGN
fact 14). Anything that cannot be read (privileges, statement_timeout, a table dropped mid-scan)
becomes a per-row error, never a failed scan.
"""

from __future__ import annotations

import importlib.resources
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

import psycopg
from psycopg import sql

from .high_waters import read_high_waters
from .locks import Locked, LockWatch
from .model import Consumer, HighWater, Observation, Sequence, SequenceState, Status
from .domain_checks import check_bounds
from .probes import probe_collisions, probe_domains
from .unions import CHUNK, ScanStopped  # noqa: F401  (re-exported: the catalog's chunk size, stop_scan()'s error)
from .states import read_states  # noqa: F401  (re-exported: sync and the tests read states through here)
from .unions import go_on, read_timeouts

# Consumers per group when a scan is observed group by group (observe_in_groups): small enough that
# the first rows of a 10,000-table database show within a fraction of a second of discovery, big
# enough that the server is kept busy by a pipeline of ten chunks.
GROUP = 1000
# PostgreSQL 18 added pg_get_sequence_data(regclass) (for pg_dump): last_value and is_called of any
# sequence from one function call, so one statement reads them all with no per-sequence planning.
SEQUENCE_DATA_FUNCTION_SINCE = 180000


def load_sql(name: str) -> str:
    return importlib.resources.files("seqtui.sql").joinpath(name).read_text()


@dataclass(frozen=True)
class ServerInfo:
    name: str
    host: str | None
    port: int | None
    user: str
    server_version: str
    server_version_num: int
    in_recovery: bool
    read_only: bool

    def as_json(self) -> dict:
        return {"name": self.name, "host": self.host, "port": self.port, "user": self.user,
                "server_version": self.server_version, "in_recovery": self.in_recovery,
                "read_only": self.read_only}

    @property
    def read_only_reason(self) -> str | None:
        if self.in_recovery:
            return "the server is a hot standby (pg_is_in_recovery): setval is refused"
        if self.read_only:
            return "the session is read-only (default_transaction_read_only): setval is refused"
        return None


def server_info(conn: psycopg.Connection) -> ServerInfo:
    row = conn.execute(load_sql("server.sql")).fetchone()
    info = conn.info
    host = info.host if info.host and not info.host.startswith("/") else (info.host or None)
    return ServerInfo(name=row[0], host=host, port=int(info.port) if info.port else None, user=row[1],
                      server_version=row[2], server_version_num=row[3], in_recovery=row[4],
                      read_only=row[5])


@dataclass(frozen=True)
class Room:
    sequences: int        # user and system sequences alike: a cheap measure of the scan ahead
    free_slots: int       # connections this role may still open here (server, role and database limits)
    max_connections: int


def room(conn: psycopg.Connection) -> Room:
    """The database's size and the server's free connection slots, in one small query (room.sql)."""
    return Room(*conn.execute(load_sql("room.sql")).fetchone())


def _consumer_kind(has_default: bool, owned: bool, identity: str, via_view: bool = False) -> str:
    if identity == "a":
        return "identity always"
    if identity == "d":
        return "identity by default"
    if has_default and owned:
        return "serial"
    if has_default:
        return "default"
    if via_view:
        return "view default"
    return "owned"


# DESIGN fact 22: right after a restore the catalogs have never been analyzed and the planner takes
# pg_class's 15,000 rows for a few hundred, relkind = 'S' for one row, and the CTEs for a few hundred:
# it then joins by nested loops, 29 million rows filtered at 3,000 tables (12 s instead of 0.1 s).
# Catalog joins are equality joins over a few thousand rows each: hash joins are right under any
# statistics, so the discovery queries are planned with nested loops and merge joins off, for their
# transaction only (a LATERAL function call still runs as the nested loop it must be).
_HASH_JOINS_ONLY = sql.SQL("SELECT set_config('enable_nestloop', 'off', true), "
                           "set_config('enable_mergejoin', 'off', true)")


@contextmanager
def planned_for_any_statistics(conn: psycopg.Connection) -> Iterator[None]:
    """The block's catalog queries run in one transaction (one snapshot, too), planned with hash joins."""
    with conn.transaction():
        conn.execute(_HASH_JOINS_ONLY)
        yield


def discover_sequences(conn: psycopg.Connection) -> list[Sequence]:
    """Every user sequence with its parameters (discover.sql), without its consumers (sync's source)."""
    data_function = conn.info.server_version >= SEQUENCE_DATA_FUNCTION_SINCE
    return [Sequence(*row, data_function=data_function) for row in conn.execute(load_sql("discover.sql")).fetchall()]


def discover(conn: psycopg.Connection) -> list[tuple[Sequence, tuple[Consumer, ...]]]:
    """Every user sequence with its consumers, partitions folded into their partitioned parent."""
    with planned_for_any_statistics(conn):
        sequences = discover_sequences(conn)
        consumer_rows = conn.execute(load_sql("consumers.sql")).fetchall()
    by_seq: dict[int, list[tuple]] = {}
    for row in consumer_rows:
        by_seq.setdefault(row[0], []).append(row)

    result = []
    for seq in sequences:
        rows = by_seq.get(seq.oid, [])
        # DESIGN fact 2: partitions inherit the parent's default; measure on the parent only.
        tables = {(r[1], r[4]) for r in rows}
        consumers = []
        for (_, table_oid, schema, table, column, attnum, column_type, has_default, owned, identity,
             relkind, is_partition, root, indexed, can_read, can_lock, bare, via_view, unique, rls_role,
             domain, domain_checks, has_children) in rows:
            if is_partition and root != table_oid and (root, column) in tables:
                continue
            consumers.append(Consumer(
                table_oid=table_oid, schema=schema, table=table, column=column, attnum=attnum,
                column_type=column_type, kind=_consumer_kind(has_default, owned, identity, via_view),
                indexed=indexed, can_read=can_read, can_lock=can_lock, relkind=relkind, bare=bare,
                unique=unique, rls_role=rls_role, domain=tuple(domain) if domain else None,
                domain_bounds=check_bounds(domain_checks or ()), has_children=has_children))
        result.append((seq, tuple(consumers)))
    return result


CANCEL_TIMEOUT = 2.0  # seconds stop_scan() gives each cancel request


def stop_scan(stop: threading.Event, conns: Iterable[psycopg.Connection]) -> None:
    """Call off a scan that other threads run on `conns` with this `stop`: the statement running is
    cancelled, and none is sent after it. Without this, Ctrl+C or quitting the UI waited for every
    statement left, each up to statement_timeout behind a lock (the fallbacks read one by one)."""
    stop.set()
    for conn in conns:
        try:
            if hasattr(conn, "cancel_safe"):  # psycopg >= 3.2
                # bounded: with the network down, quitting must not wait psycopg's default 30 s
                conn.cancel_safe(timeout=CANCEL_TIMEOUT)
            else:
                conn.cancel()
        except (psycopg.Error, OSError):  # closed or unreachable: nothing runs there any more
            pass


def observe(conn: psycopg.Connection, discovered: Iterable[tuple[Sequence, tuple[Consumer, ...]]],
            statement_timeout_ms: int = 10_000, lock_timeout_ms: int | None = None) -> list[Observation]:
    """Read state and high-water marks for already discovered sequences, each read under
    statement_timeout and (ms given) lock_timeout.

    High-water marks are read before sequence state: a row inserted through the default in between
    then shows as a higher `next`, never as a false "behind"."""
    with read_timeouts(conn, statement_timeout_ms, lock_timeout_ms):
        return _observe(conn, list(discovered), locks=_watch(lock_timeout_ms))


def _watch(lock_timeout_ms: int | None) -> LockWatch:
    return LockWatch(None if lock_timeout_ms is None else lock_timeout_ms / 1000)


def observe_in_groups(conn: psycopg.Connection, discovered: Iterable[tuple[Sequence, tuple[Consumer, ...]]],
                      statement_timeout_ms: int = 10_000, group: int | None = None,
                      helpers: Iterable[psycopg.Connection] = (),
                      stop: threading.Event | None = None,
                      lock_timeout_ms: int | None = None) -> Iterator[list[Observation]]:
    """observe(), a group of sequences with about `group` consumers at a time, so a face can show the
    first rows of a big database while the rest is measured. Each group's high-water marks are read
    before its states, as in observe(). `stop`: see stop_scan(). A relation found locked past
    lock_timeout in one group is not waited for again in any other (one LockWatch for the call).

    With `helpers` (more connections to the same database, --jobs), the groups are measured on all the
    connections at once, one thread each, and still come back in order. Each group is read on one
    connection, so the order of its reads holds; the server reads several groups in parallel (at
    10,000 tables on 2 cores, two connections measured in 1.3 s what one did in 1.9 s)."""
    groups, helpers = _groups(list(discovered), group or GROUP), list(helpers)
    locks = _watch(lock_timeout_ms)
    if not helpers or len(groups) < 2:
        with read_timeouts(conn, statement_timeout_ms, lock_timeout_ms):
            for batch in groups:
                yield _observe(conn, batch, stop, locks)
        return
    yield from _observe_in_parallel([conn, *helpers], groups, statement_timeout_ms, stop, lock_timeout_ms, locks)


def _groups(discovered: list, size: int) -> list[list]:
    groups, batch, consumers = [], [], 0
    for seq, seq_consumers in discovered:
        batch.append((seq, seq_consumers))
        consumers += max(1, len(seq_consumers))
        if consumers >= size:
            groups.append(batch)
            batch, consumers = [], 0
    if batch:
        groups.append(batch)
    return groups


def _observe_in_parallel(conns: list[psycopg.Connection], groups: list[list], statement_timeout_ms: int,
                         stop: threading.Event | None, lock_timeout_ms: int | None,
                         locks: LockWatch) -> Iterator[list[Observation]]:
    """Each group on whichever connection is free, one thread per connection; yielded in order.

    A helper that is lost (the server ended its session, a pooler dropped it) leaves the pool, and its
    group is measured again on a connection still open, the first one at least: these are reads, and
    a helper is an extra (the spare is not even asked for). The first other error (the first
    connection lost) is raised when its group's turn comes. Whatever ends the iteration early (that
    error, Ctrl+C, a caller that stops reading) calls the scan off on every connection (stop_scan), so
    the threads end at once instead of finishing their groups."""
    free: queue.SimpleQueue = queue.SimpleQueue()
    main = conns[0]
    stop = stop or threading.Event()

    def lost_helper(c: psycopg.Connection) -> bool:
        return c is not main and (c.broken or c.closed)

    def measure(batch: list) -> list[Observation]:
        while True:
            c = free.get()
            try:
                return _observe(c, batch, stop, locks)
            except psycopg.Error:
                if not lost_helper(c):
                    raise
                c = None  # not put back: the next free connection measures this group
            finally:  # whatever else ends the group (ScanStopped too): others wait for the connection
                if c is not None:
                    free.put(c)

    with ExitStack() as timeouts, ThreadPoolExecutor(max_workers=len(conns),
                                                     thread_name_prefix="seqtui-measure") as pool:
        for c in conns:  # restored after the pool has ended: no thread uses them by then
            try:
                timeouts.enter_context(read_timeouts(c, statement_timeout_ms, lock_timeout_ms))
            except psycopg.Error:
                if lost_helper(c):
                    continue  # lost before its first group: the others measure without it
                raise
            free.put(c)
        futures = [pool.submit(measure, batch) for batch in groups]
        try:
            for future in futures:
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            stop_scan(stop, conns)
            raise


def _observe(conn: psycopg.Connection, discovered: list[tuple[Sequence, tuple[Consumer, ...]]],
             stop: threading.Event | None = None, locks: LockWatch | None = None) -> list[Observation]:
    """observe() on a connection whose statement_timeout and lock_timeout the caller has set: they
    bound the high-water reads, and the state reads too (a sequence locked by ALTER SEQUENCE makes
    them wait)."""
    locks = locks or LockWatch(None)
    targets = [(c, seq.ascending) for seq, consumers in discovered for c in consumers if c.comparable]
    hws = iter(read_high_waters(conn, targets, None, stop, locks))
    go_on(stop)
    states = read_states(conn, [seq for seq, _ in discovered], stop, locks)

    observations = []
    for (seq, consumers), state in zip(discovered, states):
        high_waters = tuple(next(hws) if c.comparable else HighWater() for c in consumers)
        locked = state if isinstance(state, Locked) else None
        observations.append(Observation(
            sequence=seq, consumers=consumers,
            state=state if isinstance(state, SequenceState) else None,
            state_detail=state if isinstance(state, str) else (
                locked.describe(f"the sequence {seq.display_name}") if locked else None),
            high_waters=high_waters,
            state_error=Status.LOCKED if locked else Status.UNREADABLE,
            state_blocked_by=locked.holder if locked else None))
    go_on(stop)
    return probe_domains(conn, probe_collisions(conn, observations, stop, locks), stop)
