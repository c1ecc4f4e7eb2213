"""Reads that meet a lock held by another session (DESIGN fact 23): who holds it, and remembering it.

Every read of a scan runs under lock_timeout (--lock-timeout). When one trips, the lock is named from
pg_locks joined to pg_stat_activity (lock_holders.sql). Not pg_blocking_pids(): it answers only for a
backend that is waiting right now, and once lock_timeout has fired ours is not; asking it while we
wait would take a second connection watching each read. pg_locks after the fact shows the conflicting
lock still held (or queued) on the relation, which is what stopped us, unless its holder ended in
between: then nothing is found and the read is simply run again.

A relation found locked is remembered for the rest of the scan (LockWatch), so the many chunks and
probes that touch it skip it instead of each waiting lock_timeout again: the whole command gives up on
it once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

import psycopg
from psycopg import errors

from .text import one_line

# The lock modes that conflict with the one a read asks for (the table in PostgreSQL's "Explicit
# Locking" chapter). A SELECT takes AccessShareLock on the relation and its indexes (and so does
# pg_get_sequence_data(), PostgreSQL 18); pg_sequence_last_value() takes RowExclusiveLock, which an
# open ALTER SEQUENCE (ShareRowExclusiveLock) blocks too; a fix's LOCK TABLE ... IN EXCLUSIVE MODE.
CONFLICTS = {
    "AccessShareLock": ("AccessExclusiveLock",),
    "RowExclusiveLock": ("ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"),
    "ExclusiveLock": ("RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock",
                      "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"),
}
QUERY_START = 80  # characters of the holder's query shown: enough to recognise it
NOT_VISIBLE = "<insufficient privilege>"  # what pg_stat_activity shows of other roles' queries


@dataclass(frozen=True, slots=True)
class LockHolder:
    """A session holding (or queued for) a lock that kept a read of ours waiting."""

    relation: str            # the relation it locks, as regclass text (a partition or index, maybe)
    mode: str                # e.g. AccessExclusiveLock
    granted: bool            # False: queued for the lock itself, ahead of us
    pid: int | None          # None: a prepared transaction (pg_prepared_xacts) holds it
    user: str | None
    application: str | None
    state: str | None        # None when not visible to this role (pg_read_all_stats)
    seconds: float | None    # since its transaction (else its query) began; None when not visible
    since: datetime | None
    query: str | None        # the start of its query; None when not visible to this role

    @property
    def query_visible(self) -> bool:
        return self.query is not None

    def describe(self) -> str:
        """One line: held by pid 4242 (user alice, application migrate, idle in transaction for 12s):
        AccessExclusiveLock on public.t, query: ALTER TABLE t ..."""
        if self.pid is None:
            return f"held by a prepared transaction (see pg_prepared_xacts): {self.mode} on {self.relation}"
        facts = [f"user {self.user or '?'}", f"application {self.application or '(none)'}"]
        if self.state is None:
            facts.append("state not visible")
        else:
            facts.append(self.state + (f" for {_duration(self.seconds)}" if self.seconds is not None else ""))
        # a request still queued blocks us as well: later requests queue behind it
        how = "held by" if self.granted else "queued ahead of us by"
        query = (f"query: {self.query}" if self.query else
                 "query not visible to this role (needs pg_read_all_stats)")
        return f"{how} pid {self.pid} ({', '.join(facts)}): {self.mode} on {self.relation}, {query}"

    def as_json(self) -> dict:
        return {"pid": self.pid, "user": self.user, "application": self.application, "state": self.state,
                "seconds": None if self.seconds is None else round(self.seconds, 1),
                "since": self.since.isoformat() if self.since else None, "query": self.query,
                "query_visible": self.query_visible, "relation": self.relation, "mode": self.mode,
                "granted": self.granted}


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Locked(Exception):
    """A read not run, or given up, because another session locks a relation it needs."""

    def __init__(self, holder: LockHolder | None, lock_timeout: float | None = None):
        super().__init__(holder.describe() if holder else "lock not granted")
        self.holder, self.lock_timeout = holder, lock_timeout

    def describe(self, what: str) -> str:
        """The verdict's detail: `what` is the relation read, as the operator knows it."""
        waited = f" within --lock-timeout {self.lock_timeout:g}s" if self.lock_timeout else ""
        who = self.holder.describe() if self.holder else "its holder had ended when asked; run again"
        return f"cannot be judged: lock on {what} not granted{waited}, {who}"


def is_lock_timeout(exc: BaseException) -> bool:
    return isinstance(exc, errors.LockNotAvailable)


def find_holders(conn: psycopg.Connection, oids: Iterable[int],
                 wanted: str = "AccessShareLock") -> dict[int, list[LockHolder]]:
    """For each relation of `oids` that another session locks in a mode conflicting with `wanted`
    (on it, its partitions, children or their indexes): those sessions, holders first, then the
    longest-running. A failing lookup finds nothing (the caller then reads again)."""
    from .catalog import load_sql

    roots = sorted(set(oids))
    if not roots:
        return {}
    try:
        rows = conn.execute(load_sql("lock_holders.sql"),
                            {"roots": roots, "modes": list(CONFLICTS[wanted])}).fetchall()
    except psycopg.Error:
        if conn.broken or conn.closed:
            raise
        return {}
    found: dict[int, list[LockHolder]] = {}
    for root, relation, pid, mode, granted, user, app, state, seconds, since, query in rows:
        visible = query is not None and query != NOT_VISIBLE
        found.setdefault(root, []).append(LockHolder(
            relation=relation, mode=mode, granted=granted, pid=pid, user=user, application=app or None,
            state=state, seconds=seconds, since=since,
            query=one_line(" ".join(query.split()))[:QUERY_START] if visible else None))
    for holders in found.values():
        holders.sort(key=lambda h: (not h.granted, -(h.seconds or 0)))
    return found


class LockWatch:
    """The relations found locked during one scan, shared by the threads measuring it (--jobs), with
    the lock_timeout the scan's reads run under (seconds)."""

    def __init__(self, lock_timeout: float | None):
        self.lock_timeout = lock_timeout
        self._held: dict[int, tuple[str, LockHolder | None]] = {}
        self._mutex = threading.Lock()

    def known(self, oid: int, wanted: str = "AccessShareLock") -> Locked | None:
        """The lock that will stop a read of `oid` in mode `wanted`, if one was found before."""
        with self._mutex:
            entry = self._held.get(oid)
        if entry is None:
            return None
        mode, holder = entry
        if mode not in CONFLICTS[wanted] and holder is not None:
            return None
        return Locked(holder, self.lock_timeout)

    def find(self, conn: psycopg.Connection, oids: Iterable[int], wanted: str = "AccessShareLock") -> dict[int, Locked]:
        """Look the locks on `oids` up after a read of them ran past lock_timeout; remember and return
        those found."""
        found = find_holders(conn, oids, wanted)
        with self._mutex:
            for oid, holders in found.items():
                self._held[oid] = (holders[0].mode, holders[0])
        return {oid: Locked(holders[0], self.lock_timeout) for oid, holders in found.items()}

    def give_up(self, oids: Iterable[int]) -> Locked:
        """A read of `oids` alone ran past lock_timeout and no holder was found (it ended in between,
        or holds something we do not look at): remember them as locked all the same, so this scan
        does not wait for them again."""
        with self._mutex:
            for oid in oids:
                self._held.setdefault(oid, ("AccessExclusiveLock", None))
        return Locked(None, self.lock_timeout)
