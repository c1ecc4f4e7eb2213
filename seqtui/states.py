"""Sequence states: last_value and is_called of each sequence, read from the sequence itself (DESIGN
fact 3), by one function call per chunk where the server offers one, else in UNION ALL chunks."""

from __future__ import annotations

import threading

import psycopg
from psycopg import sql

from .locks import Locked, LockWatch, is_lock_timeout
from .model import Sequence, SequenceState
from .unions import chunks, go_on, read_unions


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
