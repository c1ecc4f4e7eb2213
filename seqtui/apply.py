"""Runs repair plans against a server, one short transaction per sequence (DESIGN fact 9).

Exactly the statements repair.transaction_statements() renders are executed, so what the operator
previewed is what runs. A failure (lock not granted in time, privilege, bounds) rolls back that sequence
only and the others go on. Nothing is ever retried.

The transactions go in batches: one query string per batch holding their transactions one after
another, as `seqtui sql` prints them, so one round trip per batch instead of one per sequence. A batch
holds BATCH_SIZE sequences, or more (up to MAX_BATCH_SIZE) when the server is far enough away that the
round trip would be a large share of a batch's time (batch_size()). The server runs the statements of a
string in order, each COMMIT commits its own transaction, and at the first error it skips the rest of the
string (PostgreSQL protocol docs, "Multiple Statements in a Simple Query"). The result of every
statement is read (libpq's asynchronous API, errors included), so each outcome belongs to its own
sequence: those before a failure are committed, the failing one is rolled back and reported, and those
after it did not run: they go first into the next batch.

While the server runs a batch, the next one is composed (the client's share of a big fix: ~0.2 s of
6,000). Only the composing happens ahead: a batch is sent once the replies of the one before are read.

A batch waits once for its commits to reach disk, not once per sequence. On a durable server each
COMMIT waits for the WAL to be flushed (and, with synchronous replication, for the standby): 0.2 ms a
fix on this machine's disk, 1-2 ms on network storage, where the server-side loop it is compared with
flushes once. So each fix transaction sets `synchronous_commit = off` for itself (SET LOCAL, as
previewed), and each batch ends with repair.COMMITS_ON_DISK: a small transaction that writes one WAL
record and commits at the session's own level, so it returns only when every commit before it is on
disk. Outcomes are reported only after it. "Setting this parameter to off does not create any risk of
database inconsistency" (PostgreSQL docs, synchronous_commit): a crash can lose only commits not yet
flushed, and those were not reported. Each connection runs COMMITS_ON_DISK once before its first batch:
a server that refuses it (a role denied pg_logical_emit_message) gets transactions that wait for their
own COMMIT, as when run alone.

After a lost connection, every sequence of its batch in flight whose COMMIT was not acknowledged (up to
a batch), or was acknowledged but not yet known to be on disk, is reported as unknown: it may or may
not have been committed. The sequences not yet sent are
skipped, on every connection. Ctrl+C while a batch runs cancels the statement running (on every
connection), reports what the batches did, skips the rest and raises KeyboardInterrupt.

With helper connections (--jobs), each runs the same loop on a thread of its own, taking the next batch
from the queue shared with the others when it is free (_Run). Every plan is still one transaction that
locks its tables in the fixed order, so two connections' transactions can wait for each other, never
deadlock.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from itertools import islice
from typing import Callable, Iterable, Sequence

import psycopg

from .batches import (COMMITS_ON_DISK_QUERY, Batch, Stop, apply_batch, compose, end_failed)
from .repair import COMMITS_ON_DISK, DEFAULT_LOCK_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT, FixPlan
# re-exported: apply's callers (cli, the TUI, tests) take the results from here
from .results import FAILED, FIXED, INTERRUPTED, LOST, SKIPPED, UNCHANGED, UNKNOWN, FixResult

__all__ = ["FAILED", "FIXED", "SKIPPED", "UNCHANGED", "UNKNOWN", "FixResult", "LOST", "apply_plan", "apply_plans",
           "batch_size", "BATCH_SIZE", "MAX_BATCH_SIZE"]
from . import wire  # looked up at each call: tests watch what is sent

# Sequences per batch, i.e. per round trip. Applying 6,000 fixes (bench/run.py's 10,000 tables, local
# server, 2 cores) took 2.7-3.1 s one by one (as BATCH_SIZE = 1 does) and 1.8-2.2 s from 8 up to 256 per
# batch: the gain is flat from about 16. 32 keeps a remote server's round trips few (188 for 6,000 fixes)
# and bounds what a lost connection leaves unknown to 32 sequences.
BATCH_SIZE = 32
# Over a network the round trips add up: at 10 ms of round trip, 6,000 fixes took 3.8 s in batches of 32,
# 2.3 s of 128 and 2.1 s of 256 (1.9 s next to the server). So batches grow until a round trip is at most
# ROUND_TRIP_SHARE of a batch's time, up to MAX_BATCH_SIZE: what a lost connection can leave unknown.
MAX_BATCH_SIZE = 256
ROUND_TRIP_SHARE = 0.1


def batch_size(round_trip: float | None, per_plan: float | None) -> int:
    """How many sequences a batch holds, given the connection's round trip and the server's time per
    sequence (seconds; None: not known): BATCH_SIZE, or enough for the round trip to be at most
    ROUND_TRIP_SHARE of the batch's time, up to MAX_BATCH_SIZE."""
    if not round_trip or not per_plan:
        return BATCH_SIZE
    # round(): 9 round trips' worth of 1 ms plans is 90 plans, not 91 for a float's last digit
    wanted = math.ceil(round(round_trip * (1 - ROUND_TRIP_SHARE) / ROUND_TRIP_SHARE / per_plan, 6))
    return max(BATCH_SIZE, min(MAX_BATCH_SIZE, wanted))


class _Pace:
    """The round trip (measured once with an empty query, _round_trip()), and the server's time per
    sequence, from the batches so far (a batch's time less one round trip): what batch_size() needs."""

    def __init__(self, round_trip: float | None) -> None:
        self.round_trip = round_trip
        self.busy, self.plans = 0.0, 0

    def add(self, seconds: float, plans: int) -> None:
        if self.round_trip is not None and plans:
            self.busy += max(seconds - self.round_trip, 0.0)
            self.plans += plans

    def batch_size(self) -> int:
        return batch_size(self.round_trip, self.busy / self.plans if self.plans and self.busy else None)


def _can_wait_once(conn: psycopg.Connection) -> bool:
    """Whether the batches on `conn` may commit without waiting and wait once at their end: the server
    ran COMMITS_ON_DISK (once, here). If it refused, the fixes wait for their own COMMITs. Ctrl+C is
    raised; a connection that failed is left to the first batch, which reports what was not sent."""
    if conn.closed:
        return False
    replies, _sent, problem = wire.exchange(conn, COMMITS_ON_DISK_QUERY)
    if isinstance(problem, KeyboardInterrupt):
        raise problem
    if wire.committed(replies, len(COMMITS_ON_DISK)):
        return True
    end_failed(conn)
    return False


def _round_trip(conn: psycopg.Connection) -> float | None:
    """Seconds for an empty query to come back (the server does no work for it), or None if the
    connection failed: then the first batch finds it closed and reports what was not sent. Ctrl+C
    meanwhile is raised before anything was sent."""
    start = time.perf_counter()
    replies, _sent, problem = wire.exchange(conn, b"")
    if isinstance(problem, KeyboardInterrupt):
        raise problem
    if problem is not None or not replies:
        return None
    return time.perf_counter() - start


def apply_plan(conn: psycopg.Connection, plan: FixPlan, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
               statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT) -> FixResult:
    """Fix one sequence: apply_plans() with a single plan."""
    return apply_plans(conn, [plan], lock_timeout, statement_timeout=statement_timeout)[0]


def apply_plans(conn: psycopg.Connection, plans: Iterable[FixPlan],
                lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
                on_result: Callable[[FixResult], None] | None = None,
                statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT,
                helpers: Sequence[psycopg.Connection] = ()) -> list[FixResult]:
    """Apply the plans in order, a batch of transactions per round trip. Returns one result per plan, in
    plan order, and calls on_result once per plan in that order as outcomes become known (a batch at a
    time). `conn` must be in autocommit mode: the BEGIN/COMMIT are the plans' own.

    `helpers` (--jobs): more connections in autocommit mode. Each runs batches on a thread of its own,
    taking the next plans when it is free, so the server works on several at once; outcomes are still
    reported in plan order, and on_result is called under a lock, one call at a time.

    After a lost connection or Ctrl+C nothing more is sent on any connection, and what was not sent is
    reported skipped (after Ctrl+C, the statements running are cancelled and KeyboardInterrupt is raised
    once everything known was reported). If on_result raises, nothing more is sent either: the outcomes
    already known are still passed to it, then its first exception is raised."""
    for c in (conn, *helpers):
        if not c.autocommit:
            raise ValueError("apply_plans needs connections in autocommit mode: each plan runs its own "
                             "BEGIN ... COMMIT")
    run = _Run(list(plans), on_result, lock_timeout, statement_timeout)
    threads = [threading.Thread(target=run.stream_on_thread, args=(helper,), name="seqtui-fix", daemon=True)
               for helper in helpers]
    for thread in threads:
        thread.start()
    try:
        run.stream(conn)
    except KeyboardInterrupt as exc:  # outside a batch's exchange (there it is handled)
        run.halt(Stop(INTERRUPTED, exc))
    except Exception as exc:  # the helpers stop after their batch in flight; raised by finish()
        run.fail(exc)
    cancelled = False
    for thread in threads:
        while thread.is_alive():
            if not cancelled and run.interrupted():
                # The helpers' batches in flight are cancelled (and reported as what they did). One sent
                # just as the cancel went out may run on: a second Ctrl+C cancels again.
                for helper in helpers:
                    _cancel(helper)
                cancelled = True
            try:
                thread.join()
            except KeyboardInterrupt as exc:
                run.halt(Stop(INTERRUPTED, exc))
                cancelled = False
    return run.finish()


class _Run:
    """The plans of one apply_plans() call, the queue of those not yet sent, and what is known: shared by
    the connections' streams, under `lock`."""

    def __init__(self, plans: list[FixPlan], on_result: Callable[[FixResult], None] | None,
                 lock_timeout: float, statement_timeout: float) -> None:
        self.plans, self.on_result = plans, on_result
        self.lock_timeout, self.statement_timeout = lock_timeout, statement_timeout
        self.lock = threading.Lock()
        self.results: list[FixResult | None] = [None] * len(plans)
        self.reported = 0
        self.callback_error: Exception | None = None
        self.error: BaseException | None = None  # a stream's thread failed unexpectedly
        self.stop: Stop | None = None
        self.todo: deque[int] = deque()
        with self.lock:
            for i, plan in enumerate(plans):
                if plan.fixable:
                    self.todo.append(i)
                else:  # nothing to send: setval cannot help (bounds, privileges)
                    self._settle(i, FixResult(plan, FAILED, plan.next_value, plan.next_value, plan.reason))

    def _settle(self, i: int, result: FixResult) -> None:
        """Record an outcome and report every one now known in plan order (with the lock held)."""
        self.results[i] = result
        while self.reported < len(self.plans) and self.results[self.reported] is not None:
            known = self.results[self.reported]
            self.reported += 1
            if self.on_result is not None:
                try:
                    self.on_result(known)
                except Exception as exc:
                    self.callback_error = self.callback_error or exc

    def halt(self, stop: Stop) -> None:
        with self.lock:
            self.stop = self.stop or stop

    def interrupted(self) -> bool:
        with self.lock:
            return self.stop is not None and self.stop.interrupt is not None

    def _going(self) -> bool:
        return bool(self.todo) and self.stop is None and self.callback_error is None and self.error is None

    def stream(self, conn: psycopg.Connection, helper: bool = False) -> None:
        """Send batches on `conn` until nothing is left to send or something stops the run. A helper that
        does not answer an empty query first (it died while idle, say while the operator read the plan)
        takes no batch: the others do its share."""
        plans, lock_timeout, statement_timeout = self.plans, self.lock_timeout, self.statement_timeout
        # Measuring the round trip is only worth it when there is more than one batch of the least size.
        round_trip = _round_trip(conn) if helper or len(self.todo) > BATCH_SIZE else None
        if helper and round_trip is None:
            return
        with self.lock:
            pending = bool(self.todo)
        wait_once = pending and _can_wait_once(conn)  # nothing to send: nothing to write either
        pace = _Pace(round_trip) if round_trip is not None else None
        ahead: Batch | None = None  # the next batch, composed while the server ran the one before

        def compose_ahead() -> None:
            nonlocal ahead
            with self.lock:
                upcoming = list(islice(self.todo, pace.batch_size() if pace else BATCH_SIZE))
            try:
                ahead = (compose(conn, upcoming, plans, lock_timeout, statement_timeout, wait_once)
                         if upcoming else None)
            except Exception:  # not while replies are pending: composed again before sending, it raises there
                ahead = None

        while True:
            with self.lock:
                if not self._going():
                    return
                todo = self.todo
                # The batch composed ahead, unless the one before failed half-way and its leftovers come
                # first now, or another connection took some of its plans: then a batch is composed
                # again, of the size the pace says.
                if ahead is not None and list(islice(todo, len(ahead.indexes))) == ahead.indexes:
                    batch, composed = [todo.popleft() for _ in ahead.indexes], ahead
                else:
                    size = pace.batch_size() if pace else BATCH_SIZE
                    batch, composed = [todo.popleft() for _ in range(min(size, len(todo)))], None
            if composed is None:
                composed = compose(conn, batch, plans, lock_timeout, statement_timeout, wait_once)
            ahead = None
            started = time.perf_counter()
            outcomes, stop = apply_batch(conn, composed, compose_ahead)
            if pace is not None and len(outcomes) == len(batch) and all(r.ok for r in outcomes):
                # a batch with a failure may have waited for a lock: not a measure of the server's pace
                pace.add(time.perf_counter() - started, len(outcomes))
            with self.lock:
                for i, result in zip(batch, outcomes):
                    self._settle(i, result)
                # Plans without an outcome come after one that failed. The server skipped them without
                # running any of their statements (it skips the rest of the string after an error), so
                # sending them in a next batch is their first execution, not a retry.
                self.todo.extendleft(reversed(batch[len(outcomes):]))
                self.stop = self.stop or stop

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            self.error = self.error or exc

    def stream_on_thread(self, conn: psycopg.Connection) -> None:
        try:
            self.stream(conn, helper=True)
        except BaseException as exc:  # raised by apply_plans() once the others have stopped
            self.fail(exc)

    def finish(self) -> list[FixResult]:
        """Report what was not sent, raise what stopped the run, or return every result."""
        with self.lock:
            stop = self.stop
            if stop is not None and self.callback_error is None:
                for i in self.todo:
                    plan = self.plans[i]
                    self._settle(i, FixResult(plan, SKIPPED, plan.next_value, None, f"not attempted: {stop.reason}"))
        if stop is not None and stop.interrupt is not None:
            raise stop.interrupt
        if self.callback_error is not None:
            raise self.callback_error
        if self.error is not None:
            raise self.error
        return self.results  # type: ignore[return-value]


def _cancel(conn: psycopg.Connection) -> None:
    """Cancel the statement running on `conn`, if any (from another thread: libpq's cancel request)."""
    try:
        (getattr(conn, "cancel_safe", None) or conn.cancel)()  # cancel_safe: psycopg >= 3.2
    except Exception:  # a connection already gone has nothing running
        pass
