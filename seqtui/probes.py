"""Probes a scan makes after the high-water marks and states, for the rows where the verdict needs more
than max(): which value on a behind sequence's path is the first one taken (DESIGN fact 20), and whether
a domain accepts the values that matter (fact 21)."""

from __future__ import annotations

import threading
from dataclasses import replace

import psycopg
from psycopg import errors, sql

from .locks import LockWatch
from .model import Consumer, HighWater, Observation, combined_high_water, is_behind, next_of, usable_range
from .unions import go_on, read_unions

# The first taken value on a behind sequence's path: (SELECT i::int4, min(col)::numeric FROM ONLY tbl
# WHERE col >= next [AND (col::numeric - next) % inc = 0]), max() and <= descending. ONLY: a unique
# index covers its own table, not inheritance children (which are consumers of their own); a
# partitioned table's unique index covers its partitions, and ONLY would read none of them.
_OPEN, _AFTER_INDEX, _CLOSE = sql.SQL("(SELECT "), sql.SQL("::int4, "), sql.SQL(")")
_PROBE_AGG = {True: (sql.SQL("min("), sql.SQL(" >= ")), False: (sql.SQL("max("), sql.SQL(" <= "))}
_PROBE_FROM = {True: sql.SQL(")::numeric FROM ONLY "), False: sql.SQL(")::numeric FROM ")}


def _probe_select(i: int, consumer: Consumer, nxt: int, increment: int) -> sql.Composed:
    agg, cmp = _PROBE_AGG[increment > 0]
    col = sql.Identifier(consumer.column)
    parts = [_OPEN, sql.Literal(i), _AFTER_INDEX, agg, col, _PROBE_FROM[consumer.relkind != "p"],
             sql.Identifier(consumer.schema, consumer.table), sql.SQL(" WHERE "), col, cmp, sql.Literal(nxt)]
    if abs(increment) != 1:  # only values the sequence will hand out: next, next + inc, ...
        parts += [sql.SQL(" AND ("), col, sql.SQL("::numeric - "), sql.Literal(nxt), sql.SQL(") % "),
                  sql.Literal(abs(increment)), sql.SQL(" = 0")]
    return sql.Composed([*parts, _CLOSE])


def probe_collisions(conn: psycopg.Connection, observations: list[Observation],
                     stop: threading.Event | None = None, locks: LockWatch | None = None) -> list[Observation]:
    """For every consumer whose sequence is behind it, the first value on the sequence's path that a
    row already holds (DESIGN fact 20): with ids 1..1000 and 5000 the next value 1001 is free and the
    sequence collides 3,999 inserts later; "failing now" is only when a row holds the next value. One
    index lookup each where the column is indexed, batched as the high-water reads are; a probe that
    fails leaves the row's HighWater as it was (not probed: the verdict cannot say which); one whose
    table is locked past lock_timeout is given up on once, as the high-water reads are (`locks`)."""
    targets = []  # (observation index, consumer index, next, increment): to probe
    found: dict[int, dict[int, int | None]] = {}  # observation -> consumer -> taken, known without a probe
    for o, obs in enumerate(observations):
        if obs.state is None:
            continue
        seq = obs.sequence
        nxt = next_of(seq, obs.state)
        for c_i, (c, hw) in enumerate(zip(obs.consumers, obs.high_waters)):
            if (nxt is None or not c.comparable or not c.unique or hw.error is not None or hw.value is None
                    or not is_behind(nxt, hw.value, seq.increment)):
                continue
            lo, hi = usable_range(seq, c)
            if not lo <= nxt <= hi:
                continue
            if nxt == hw.value and not c.has_children:
                # the row holding the high-water mark holds the next value: no probe needed (with
                # inheritance children that row may be a child's, which the probe's FROM ONLY leaves out)
                found.setdefault(o, {})[c_i] = nxt
            else:
                targets.append((o, c_i, nxt, seq.increment))
    if not targets and not found:
        return observations

    def select(i: int) -> sql.Composed:
        o, c_i, nxt, inc = targets[i]
        return _probe_select(i, observations[o].consumers[c_i], nxt, inc)

    def touches(i: int) -> tuple[int]:
        o, c_i, _, _ = targets[i]
        return (observations[o].consumers[c_i].table_oid,)

    values, _failed = (read_unions(conn, list(range(len(targets))), select, stop, locks=locks, touches=touches)
                       if targets else ({}, {}))
    for i, value in values.items():
        o, c_i, _, _ = targets[i]
        found.setdefault(o, {})[c_i] = None if value is None else int(value)
    changed: dict[int, list[HighWater]] = {}
    for o, by_consumer in found.items():
        hws = changed.setdefault(o, list(observations[o].high_waters))
        for c_i, taken in by_consumer.items():
            hws[c_i] = replace(hws[c_i], taken=taken, probed=True)
    out = list(observations)
    for o, hws in changed.items():
        out[o] = replace(out[o], high_waters=tuple(hws))
    return out


def probe_domains(conn: psycopg.Connection, observations: list[Observation],
                  stop: threading.Event | None = None) -> list[Observation]:
    """For a column typed by a domain (DESIGN fact 21): does the domain accept the next value, and the
    value a fix would hand out next? Its CHECK constraints may be any expression, so the server is asked,
    one cast each (domain columns are few). A cast the server refuses for another reason (no USAGE on
    the domain's schema) leaves the answer unknown (None)."""
    out = list(observations)
    for o, obs in enumerate(observations):
        if obs.state is None or not any(c.domain and c.comparable for c in obs.consumers):
            continue
        seq, nxt = obs.sequence, next_of(obs.sequence, obs.state)
        seq_hw = combined_high_water([hw.value for c, hw in zip(obs.consumers, obs.high_waters)
                                      if c.comparable and hw.error is None], seq.increment)
        hws = list(obs.high_waters)
        for c_i, c in enumerate(obs.consumers):
            if not (c.domain and c.comparable):
                continue
            # the sequence's bounds only: a value past the CHECK bounds read from the catalog is asked
            # too, the server's answer is the one that counts
            lo, hi = usable_range(seq, None)
            fits = {}
            for key, value in (("next_fits", nxt), ("after_fits", None if seq_hw is None else seq_hw + seq.increment)):
                if value is not None and lo <= value <= hi:
                    go_on(stop)
                    fits[key] = _domain_accepts(conn, c.domain, value)
            hws[c_i] = replace(hws[c_i], **fits)
        out[o] = replace(obs, high_waters=tuple(hws))
    return out


def _domain_accepts(conn: psycopg.Connection, domain: tuple[str, str], value: int) -> bool | None:
    try:
        conn.execute(sql.SQL("SELECT CAST({} AS {})").format(sql.Literal(value), sql.Identifier(*domain)))
        return True
    except errors.CheckViolation:
        return False
    except psycopg.Error:
        if conn.broken or conn.closed:
            raise
        return None
