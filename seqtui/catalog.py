"""Reads sequences, their consumers, their state and high-water marks from PostgreSQL.

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
from psycopg import errors, sql

from .locks import Locked, LockWatch, is_lock_timeout
from .model import Consumer, HighWater, Observation, Sequence, SequenceState, Status
from .domain_checks import check_bounds
from .probes import probe_collisions, probe_domains
from .unions import CHUNK, ScanStopped  # noqa: F401  (re-exported: the catalog's chunk size, stop_scan()'s error)
from .unions import chunks, go_on, read_timeouts, read_unions

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


def discover(conn: psycopg.Connection) -> list[tuple[Sequence, tuple[Consumer, ...]]]:
    """Every user sequence with its consumers, partitions folded into their partitioned parent."""
    data_function = conn.info.server_version >= SEQUENCE_DATA_FUNCTION_SINCE
    with planned_for_any_statistics(conn):
        sequences = [Sequence(*row, data_function=data_function)
                     for row in conn.execute(load_sql("discover.sql")).fetchall()]
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


# One UNION ALL branch per target: (SELECT i::int4, max(col)::numeric, min(col)::numeric FROM tbl),
# the high-water mark first (min() first for a descending sequence) and the far end after it. The
# aggregates sit in the branch itself, not in scalar subqueries: the planner still turns each into an
# index scan with LIMIT 1, and skips planning a subquery level (measured at 10,000 tables: ~25% less
# server time per chunk). The far end costs nothing measurable (one more index descent; the same scan
# when unindexed) and spares most collision probes (probes.py). The fixed fragments are built once;
# composing a branch from parts instead of SQL.format() halves the client's time.
_HW_OPEN, _HW_AFTER_INDEX = sql.SQL("(SELECT "), sql.SQL("::int4, ")
_HW_MAX, _HW_MIN = sql.SQL("max("), sql.SQL("min(")
_HW_BETWEEN, _HW_FROM, _HW_CLOSE = sql.SQL(")::numeric, "), sql.SQL(")::numeric FROM "), sql.SQL(")")


def _hw_select(i: int, consumer: Consumer, ascending: bool) -> sql.Composed:
    col = sql.Identifier(consumer.column)
    first, then = (_HW_MAX, _HW_MIN) if ascending else (_HW_MIN, _HW_MAX)
    return sql.Composed([_HW_OPEN, sql.Literal(i), _HW_AFTER_INDEX, first, col, _HW_BETWEEN, then, col,
                         _HW_FROM, sql.Identifier(consumer.schema, consumer.table), _HW_CLOSE])


def _classify(exc: Exception, consumer: Consumer) -> HighWater:
    if isinstance(exc, Locked):
        return HighWater(error=Status.LOCKED, detail=exc.describe(f"{consumer.schema}.{consumer.table}"),
                         blocked_by=exc.holder)
    if isinstance(exc, errors.QueryCanceled):
        return HighWater(error=Status.TIMEOUT,
                         detail="max() ran past statement_timeout (no index leads with the column?)")
    if isinstance(exc, errors.InsufficientPrivilege):
        return HighWater(error=Status.UNREADABLE, detail=f"cannot read the table: {exc.diag.message_primary}")
    return HighWater(error=Status.UNREADABLE, detail=f"could not read: {exc.diag.message_primary}")


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


def read_high_waters(conn: psycopg.Connection, targets: list[tuple[Consumer, bool]],
                     statement_timeout_ms: int | None, stop: threading.Event | None = None,
                     locks: LockWatch | None = None) -> list[HighWater]:
    """max()/min() of every (consumer, ascending) target (and the far end: min()/max()), in chunks, each under statement_timeout
    (None: the one the connection has already). `stop`: see stop_scan(). `locks`: the scan's
    LockWatch; a table another session locks past lock_timeout is a LOCKED row naming the holder.

    Indexed columns are index lookups and go in big chunks; unindexed ones scan their table, so each
    runs alone and a slow one times out by itself instead of taking a whole chunk with it."""
    results: list[HighWater | None] = [None] * len(targets)
    readable = []
    for i, (consumer, _) in enumerate(targets):
        if consumer.rls_role is not None:
            # max() would see only the rows the policies let through: a lower bound, or "empty" for a
            # full table. Not measured at all: the honest verdict is that it cannot be judged.
            results[i] = HighWater(error=Status.UNREADABLE, detail=(
                f"cannot be judged: row-level security hides rows of {consumer.schema}.{consumer.table} "
                f"from {consumer.rls_role} (judge it as the table's owner or a BYPASSRLS role)"))
        elif consumer.can_read:
            readable.append(i)
        else:
            results[i] = HighWater(error=Status.UNREADABLE,
                                   detail="no SELECT privilege on the column (or USAGE on its schema)")
    indexed = [i for i in readable if targets[i][0].indexed]
    unindexed = [i for i in readable if not targets[i][0].indexed]

    def select(i: int) -> sql.Composed:
        return _hw_select(i, *targets[i])

    def touches(i: int) -> tuple[int]:
        return (targets[i][0].table_oid,)

    locks = locks or LockWatch(None)
    with read_timeouts(conn, statement_timeout_ms):
        values, failed = read_unions(conn, indexed, select, stop, locks=locks, touches=touches, rows=True)
        more, more_failed = read_unions(conn, unindexed, select, stop, together=False, locks=locks,
                                        touches=touches, rows=True)
    for i, (value, far) in {**values, **more}.items():
        results[i] = HighWater(value=None if value is None else int(value),
                               far_end=None if far is None else int(far))
    for i, exc in {**failed, **more_failed}.items():
        results[i] = _classify(exc, targets[i][0])
    return results  # type: ignore[return-value]


STATE_FUNCTION_CHUNK = 500


# One statement per chunk of sequences, no statement planned per sequence:
#   PostgreSQL 18+: pg_get_sequence_data() gives last_value and is_called of any sequence it may read;
#   before:         pg_sequence_last_value() (PostgreSQL 10+) gives last_value of a sequence that has
#                   been called, NULL for one that has not. The called ones, most of a live database's,
#                   then need no planned read of their relation; the others are read from it.
_STATES_BY_CALL = {
    True: "SELECT i, d.last_value, d.is_called FROM unnest(%s::int4[], %s::oid[]) AS s(i, seq), "
          "pg_catalog.pg_get_sequence_data(s.seq::regclass) AS d",
    False: "SELECT i, pg_catalog.pg_sequence_last_value(s.seq::regclass), true "
           "FROM unnest(%s::int4[], %s::oid[]) AS s(i, seq)",
}


def _read_states_by_call(conn: psycopg.Connection, sequences: list[Sequence], indexes: list[int],
                         stop: threading.Event | None, data_function: bool,
                         locks: LockWatch | None = None) -> dict[int, SequenceState]:
    """States of sequences[i] for i in indexes, read through a function (_STATES_BY_CALL; measured at
    10,000 sequences: ~0.3 s against 1.1-1.5 s for UNION ALL chunks, whose cost is planning a scan of
    each relation).

    What the function leaves NULL (not called yet before 18; dropped meanwhile, no privilege) is left
    out, and the caller reads it from the relation, which says why. A chunk that fails (the function
    missing, or refusing on an old standby) is left out whole, for the same reads; one that ran past
    lock_timeout is read again without the sequences found locked, which are left to those reads
    (before 18 the function asks for a stronger lock than a SELECT does: an open ALTER SEQUENCE
    blocks it and not the SELECT)."""
    states, locks = {}, locks or LockWatch(None)
    wanted = "AccessShareLock" if data_function else "RowExclusiveLock"
    # Each call locks its sequence until the statement ends; chunks keep that well inside the
    # server's shared lock table (max_locks_per_transaction x max_connections, 6,400 by default).
    for chunk in chunks(indexes, STATE_FUNCTION_CHUNK):
        while chunk:
            go_on(stop)
            try:
                rows = conn.execute(_STATES_BY_CALL[data_function],
                                    (chunk, [sequences[i].oid for i in chunk])).fetchall()
            except psycopg.Error as exc:  # a read: those of this chunk are read again from the relations
                if conn.broken or conn.closed:
                    raise
                found = locks.find(conn, [sequences[i].oid for i in chunk], wanted) if is_lock_timeout(exc) else {}
                chunk = [i for i in chunk if sequences[i].oid not in found] if found else []
                continue
            states.update((i, SequenceState(last_value, is_called)) for i, last_value, is_called in rows
                          if last_value is not None and is_called is not None)
            break
    return states


def read_states(conn: psycopg.Connection, sequences: list[Sequence], stop: threading.Event | None = None,
                locks: LockWatch | None = None) -> list[SequenceState | None | str | Locked]:
    """last_value and is_called of each sequence, read from the sequence itself (DESIGN fact 3:
    pg_sequences.last_value is NULL both before the first nextval and without privilege).
    Returns a state, a string saying why it could not be read, or Locked naming who locks it past
    lock_timeout. `stop`: see stop_scan(). `locks`: the scan's LockWatch."""
    locks = locks or LockWatch(None)
    results: list = [None] * len(sequences)
    readable = []
    for i, seq in enumerate(sequences):
        if seq.can_read:
            readable.append(i)
        else:
            results[i] = "no SELECT privilege on the sequence (or USAGE on its schema)"
    for data_function in (True, False):
        mine = [i for i in readable if sequences[i].data_function is data_function]
        if mine:
            for i, state in _read_states_by_call(conn, sequences, mine, stop, data_function, locks).items():
                results[i] = state
    readable = [i for i in readable if results[i] is None]
    if not readable:
        return results

    def select(i: int) -> sql.Composed:
        seq = sequences[i]
        return sql.SQL("SELECT {i}::int4, last_value, is_called FROM {seq}").format(
            i=sql.Literal(i), seq=sql.Identifier(seq.schema, seq.name))

    values, failed = read_unions(conn, readable, select, stop, locks=locks,
                                 touches=lambda i: (sequences[i].oid,), rows=True)
    for i, (last_value, is_called) in values.items():
        results[i] = SequenceState(last_value, is_called)
    for i, exc in failed.items():
        results[i] = exc if isinstance(exc, Locked) else \
            f"could not read the sequence: {getattr(exc, 'diag', None) and exc.diag.message_primary or exc}"
    return results


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
