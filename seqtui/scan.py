"""One scan, as every face of seqtui runs it: discover, narrow to the scope, measure, judge.

The CLI and the TUI both call `scan()`, so a verdict in the table and in `check --json` cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Callable, Iterable

import psycopg

from . import catalog
from .config import Config, WatchEntry
from .heap import collections_held
from .judge import judge
from .model import Consumer, Report, Sequence, Status, Thresholds, Verdict, severity
from .repair import DEFAULT_LOCK_TIMEOUT


class ScopeError(Exception):
    """The operator named something that is not there (an unknown --table)."""


@dataclass(frozen=True)
class Scope:
    schemas: tuple[str, ...] = ()   # only sequences used by, or living in, these schemas
    exclude: tuple[str, ...] = ()   # glob patterns over schema.sequence and schema.table
    tables: tuple[str, ...] = ()    # only sequences used by these tables ("t" or "schema.t")
    watch: tuple[WatchEntry, ...] = ()
    thresholds: Thresholds = Thresholds()
    statement_timeout_ms: int = 10_000
    # how long each read waits for a lock another session holds (--lock-timeout, as fixes do)
    lock_timeout_ms: int = int(DEFAULT_LOCK_TIMEOUT * 1000)

    @classmethod
    def from_config(cls, config: Config, *, schemas=(), tables=(), statement_timeout_ms=10_000,
                    lock_timeout_ms=int(DEFAULT_LOCK_TIMEOUT * 1000), default_schemas=()) -> "Scope":
        return cls(schemas=tuple(schemas) or config.schemas or tuple(default_schemas),
                   exclude=config.exclude, tables=tuple(tables), watch=config.watch,
                   thresholds=config.thresholds, statement_timeout_ms=statement_timeout_ms,
                   lock_timeout_ms=lock_timeout_ms)


def _table_matches(name: str, consumer: Consumer) -> bool:
    if "." in name and f"{consumer.schema}.{consumer.table}" == name:
        return True
    return consumer.table == name


def _excluded(patterns, seq: Sequence, consumers) -> bool:
    names = [f"{seq.schema}.{seq.name}"] + [f"{c.schema}.{c.table}" for c in consumers]
    return any(fnmatchcase(n, p) for p in patterns for n in names)


def narrow(discovered: list[tuple[Sequence, tuple[Consumer, ...]]], scope: Scope):
    """Keep the sequences in scope. A sequence is kept or dropped whole, never some of its consumers:
    the fix of a shared sequence must see every table that draws from it."""
    if scope.tables:
        known = [c for _, consumers in discovered for c in consumers]
        unknown = [t for t in scope.tables if not any(_table_matches(t, c) for c in known)]
        if unknown:
            raise ScopeError(f"no table drawing from a sequence is named {', '.join(unknown)}")
    kept = []
    for seq, consumers in discovered:
        if scope.schemas and seq.schema not in scope.schemas and not any(
                c.schema in scope.schemas for c in consumers):
            continue
        if scope.exclude and _excluded(scope.exclude, seq, consumers):
            continue
        if scope.tables and not any(_table_matches(t, c) for t in scope.tables for c in consumers):
            continue
        kept.append((seq, consumers))
    return kept


def _watch_matches(entry: WatchEntry, consumer: Consumer) -> bool:
    if entry.schema is not None and entry.schema != consumer.schema:
        return False
    return entry.table_name == consumer.table and (entry.column is None or entry.column == consumer.column)


def watch_rows(verdicts: list[Verdict], watch, existing: dict[tuple[str, str], set[str]]) -> list[Verdict]:
    """Mark watched rows, and add a MISSING row for each watched table/column that has no sequence.

    `existing` maps (schema, table) to its column names, for the tables the watchlist names."""
    out = []
    for v in verdicts:
        hit = v.consumer is not None and any(_watch_matches(w, v.consumer) for w in watch)
        out.append(replace(v, watched=True) if hit else v)
    for entry in watch:
        if any(v.consumer is not None and _watch_matches(entry, v.consumer) for v in verdicts):
            continue
        tables = [(s, t) for (s, t) in existing if t == entry.table_name and entry.schema in (None, s)]
        if not tables:
            detail = f"watched table {entry.table} does not exist"
        elif entry.column and not any(entry.column in existing[t] for t in tables):
            detail = f"watched column {entry.label} does not exist"
        elif entry.column:
            detail = f"watched column {entry.label} does not draw from any sequence"
        else:
            detail = f"watched table {entry.table} has no column that draws from a sequence"
        out.append(Verdict(Status.MISSING, None, None, detail=detail, watched=True,
                           watch_target=(entry.schema, entry.table_name, entry.column)))
    return out


def watched_columns(conn: psycopg.Connection, watch) -> dict[tuple[str, str], set[str]]:
    names = sorted({w.table_name for w in watch})
    if not names:
        return {}
    rows = conn.execute(
        "SELECT n.nspname, c.relname, array_agg(a.attname::text) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE c.relname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') GROUP BY 1, 2",
        (names,)).fetchall()
    return {(s, t): set(cols) for s, t, cols in rows}


def assemble(info: catalog.ServerInfo, verdicts: list[Verdict], observations, scope: Scope,
             watched: dict) -> Report:
    """The Report every face shows: watch rows added, worst first."""
    if scope.watch:
        verdicts = watch_rows(verdicts, scope.watch, watched)
    verdicts = sorted(verdicts, key=severity)
    return Report(database=info.as_json(), verdicts=tuple(verdicts), observations=tuple(observations),
                  read_only=info.read_only or info.in_recovery, read_only_reason=info.read_only_reason)


def scan(conn: psycopg.Connection, scope: Scope | None = None,
         progress: Callable[[int, int], None] | None = None, helpers: Iterable[psycopg.Connection] = ()) -> Report:
    """A fresh, complete reading of the database within `scope`. `progress(measured, all)` is called
    as groups of sequences are measured (a big database takes seconds). `helpers`: more connections
    to the same database to measure on at once (--jobs)."""
    scope = scope or Scope()
    with collections_held():  # everything built here lives until the scan ends (see heap.py)
        info = catalog.server_info(conn)
        discovered = narrow(catalog.discover(conn), scope)
        observations = []
        for group in catalog.observe_in_groups(conn, discovered, scope.statement_timeout_ms, helpers=helpers,
                                               lock_timeout_ms=scope.lock_timeout_ms):
            observations += group
            if progress is not None:
                progress(len(observations), len(discovered))
        verdicts = [v for obs in observations for v in judge(obs, scope.thresholds)]
        watched = watched_columns(conn, scope.watch) if scope.watch else {}
        return assemble(info, verdicts, observations, scope, watched)
