"""A live view's refresh: re-measure only what changed since the last tick.

A full scan of 10,000 tables costs the server seconds; a view left open during an incident refreshes
every couple of seconds and must not load the server. Each tick therefore reads two cheap things, a
catalog signature and the write counters of every consumer table, and re-measures (high-water marks and
sequence state) only the sequences whose tables were written to. A full scan runs on the first tick,
when the signature changes (a table or sequence created, dropped, altered, truncated), when asked, and
every `full_every` seconds as a backstop for what counters cannot see (a setval from elsewhere, a
nextval that inserted nothing).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Iterable

import psycopg

from . import catalog
from .judge import judge
from .model import Observation, Report, Verdict
from .scan import Scope, assemble, narrow, watched_columns


@dataclass(frozen=True)
class TickInfo:
    kind: str        # "full" or "incremental"
    seconds: float   # wall time of the tick's database work
    remeasured: int  # consumers whose high-water mark was measured this tick


def changed_tables(before: dict[int, int], now: dict[int, int]) -> set[int]:
    """Tables whose write counters moved (or that are new to us)."""
    return {oid for oid, count in now.items() if before.get(oid) != count}


def _oid_array(oids) -> str:
    return "{" + ",".join(map(str, sorted(oids))) + "}"


def counter_params(discovered) -> dict[str, str] | None:
    """write_counters.sql's parameters for these consumers' tables: plain tables and partitioned parents
    apart. Array literals, sent as text and cast by the server: built once per discovery, since adapting
    a list of 10,000 ints took ~6 ms per tick. None if there is no table."""
    tables = {c.table_oid: c.relkind for _, consumers in discovered for c in consumers}
    if not tables:
        return None
    return {"tables": _oid_array(oid for oid, kind in tables.items() if kind != "p"),
            "parents": _oid_array(oid for oid, kind in tables.items() if kind == "p")}


def same_objects(before: list | None, now: list) -> list:
    """`now` (a fresh discovery), with each (sequence, consumers) that equals the one `before` holds
    for that sequence replaced by that older object. A full re-scan then keeps the objects the UI
    already holds: the fresh copies (~40,000 objects at 10,000 tables) are freed at once instead of
    living on beside them, for the garbage collector to walk on every full collection."""
    if not before:
        return now
    old = {entry[0].oid: entry for entry in before}
    return [old_entry if (old_entry := old.get(entry[0].oid)) == entry else entry for entry in now]


class LiveScanner:
    """Successive Reports from one connection; one instance per connection (make a new one after a
    reconnect). Not thread-safe: one tick at a time."""

    def __init__(self, conn: psycopg.Connection, scope: Scope | None = None, full_every: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.conn, self.scope, self.full_every, self.clock = conn, scope or Scope(), full_every, clock
        self.last_tick: TickInfo | None = None
        self._discovered: list | None = None
        self._signature: str | None = None
        self._counters: dict[int, int] = {}
        self._observations: dict[int, Observation] = {}
        self._verdicts: dict[int, list[Verdict]] = {}
        self._watched: dict = {}
        self._last_full = float("-inf")
        self._counter_params: tuple[list, dict | None] | None = None  # (discovered, its counter_params())
        self._last_report: tuple[catalog.ServerInfo, Report] | None = None  # (the info it was built with, it)

    def _read_counters(self, discovered) -> dict[int, int]:
        if self._counter_params is None or self._counter_params[0] is not discovered:
            self._counter_params = (discovered, counter_params(discovered))
        params = self._counter_params[1]
        if params is None:
            return {}
        return dict(self.conn.execute(catalog.load_sql("write_counters.sql"), params).fetchall())

    def tick(self, full: bool = False,
             progress: Callable[[Callable[[], Report], int, int], None] | None = None,
             helpers: Iterable[psycopg.Connection] = (), stop: threading.Event | None = None) -> Report:
        """The next Report. `progress`, if given, is called on the first scan of this scanner (when
        there is nothing to show yet) after each group of about catalog.GROUP consumers, with a
        function that builds the Report of the sequences measured so far, the number of them and the
        number of all. The Report is built only if asked for: it sorts everything measured so far, and
        a face shows rows far less often than groups come in. `helpers`: more connections to the same
        database to measure this tick on at once (--jobs). `stop`: see catalog.stop_scan()."""
        start = self.clock()
        info = catalog.server_info(self.conn)
        signature = self.conn.execute(catalog.load_sql("signature.sql")).fetchone()[0]
        full = (full or self._discovered is None or signature != self._signature
                or start - self._last_full >= self.full_every)
        if full:
            discovered = same_objects(self._discovered, narrow(catalog.discover(self.conn), self.scope))
        else:
            discovered = self._discovered
        # Counters are read before measuring: a write landing during the measurement moves them again,
        # so the next tick re-measures it instead of missing it.
        counters = self._read_counters(discovered)
        previous = self._observations, self._verdicts
        # Built apart and kept only when the tick succeeds: a scan that fails half-way (a timeout in
        # discovery, a stopped scan) leaves the scanner as it was, not with half its verdicts gone.
        observations, verdicts = ({}, {}) if full else (dict(self._observations), dict(self._verdicts))
        if full:
            todo = discovered
        else:
            moved = changed_tables(self._counters, counters)
            todo = [(seq, consumers) for seq, consumers in discovered
                    if any(c.table_oid in moved for c in consumers)]
        first = progress is not None and self._discovered is None
        partial_scope = replace(self.scope, watch=())  # a watched table not measured yet is not missing
        measured: list[Observation] = []
        for group in catalog.observe_in_groups(self.conn, todo, self.scope.statement_timeout_ms,
                                               helpers=helpers, stop=stop,
                                               lock_timeout_ms=self.scope.lock_timeout_ms):
            for obs in group:
                oid = obs.sequence.oid
                old = previous[0].get(oid)
                if old is not None and old == obs:
                    # Nothing about it changed: hand back the very same objects, so the face can tell
                    # at a glance (by identity) which rows a full re-scan really changed.
                    observations[oid], verdicts[oid] = old, previous[1][oid]
                else:
                    observations[oid] = obs
                    verdicts[oid] = judge(obs, self.scope.thresholds)
            if first and len(measured) + len(group) < len(todo):
                measured += group
                so_far = list(measured)
                progress(lambda: assemble(info, [v for o in so_far for v in verdicts[o.sequence.oid]],
                                          so_far, partial_scope, {}), len(measured), len(todo))
        if full and self.scope.watch:
            self._watched = watched_columns(self.conn, self.scope.watch)
        self._discovered, self._signature, self._counters = discovered, signature, counters
        self._observations, self._verdicts = observations, verdicts
        if full:
            self._last_full = start

        if full or todo or self._last_report is None or self._last_report[0] != info:
            report = assemble(info, [v for seq, _ in discovered for v in verdicts[seq.oid]],
                              [observations[seq.oid] for seq, _ in discovered], self.scope, self._watched)
            self._last_report = (info, report)
        else:  # nothing was written to and the server says the same: the same Report (sorting cost ~15 ms)
            report = self._last_report[1]
        self.last_tick = TickInfo("full" if full else "incremental", self.clock() - start,
                                  sum(len(consumers) for _, consumers in todo))
        return report
