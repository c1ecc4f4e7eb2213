"""Runs repair plans against a server, one short transaction per sequence (DESIGN fact 9).

Exactly the statements repair.transaction_statements() renders are executed, so what the operator
previewed is what runs. A failure (lock not granted in time, privilege, bounds) rolls back that sequence
only and the others go on. Nothing is ever retried: after a lost connection the outcome of the fix in
flight is reported as unknown and the remaining plans are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import psycopg
from psycopg import errors

from .model import SequenceState, next_value
from .repair import DEFAULT_LOCK_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT, FixPlan, locked_tables, transaction_sql

FIXED, UNCHANGED, FAILED, SKIPPED, UNKNOWN = "fixed", "unchanged", "failed", "skipped", "unknown"


@dataclass(frozen=True)
class FixResult:
    plan: FixPlan
    outcome: str  # fixed / unchanged (already fine under lock) / failed / skipped / unknown
    before: int | None = None  # next value before, read under lock
    after: int | None = None   # next value after
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in (FIXED, UNCHANGED)

    def line(self) -> str:
        name = self.plan.sequence.display_name
        if self.outcome == FIXED:
            return f"fixed      {name}: next {self.before} -> {self.after}"
        if self.outcome == UNCHANGED:
            return f"unchanged  {name}: next {self.before} is already past the data"
        return f"{self.outcome:<10} {name}: {self.reason}"


def _lock_holders(conn: psycopg.Connection, tables) -> str:
    """Who holds locks on the tables we waited for: table, pid, mode, application, user."""
    try:
        rows = conn.execute(
            "SELECT l.relation::regclass::text, l.pid, l.mode, "
            "coalesce(nullif(a.application_name, ''), '?'), coalesce(a.usename, '?') "
            "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.relation = ANY(%s) AND l.granted AND l.pid <> pg_backend_pid() "
            "AND l.mode <> 'AccessShareLock' ORDER BY 1, 2",
            ([c.table_oid for c in tables],)).fetchall()
    except psycopg.Error:
        return ""
    if not rows:
        return ""
    return "; held by " + ", ".join(f"pid {pid} on {rel} ({mode}, {app}, {user})"
                                    for rel, pid, mode, app, user in rows)


def apply_plan(conn: psycopg.Connection, plan: FixPlan, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
               statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT) -> FixResult:
    """Fix one sequence. `conn` must be in autocommit mode: the BEGIN/COMMIT are the plan's own.

    The transaction goes as one query string: one round trip, and if a statement fails the server
    skips the rest of the string, the COMMIT included; we then roll back."""
    if not plan.fixable:
        return FixResult(plan, FAILED, plan.next_value, plan.next_value, plan.reason)
    inc = plan.sequence.increment
    try:
        cur = conn.execute(transaction_sql(plan, lock_timeout, statement_timeout))
        found = None
        while True:  # results in statement order; only the fix statement returns a row
            if cur.description is not None:
                found = cur.fetchone()
            if not cur.nextset():
                break
        last_value, is_called, new_last_value = found
    except errors.LockNotAvailable:
        _rollback(conn)
        tables = locked_tables(plan.consumers)
        names = ", ".join(f"{c.schema}.{c.table}" for c in tables)
        return FixResult(plan, FAILED, plan.next_value, plan.next_value,
                         f"lock on {names} not granted within {lock_timeout:g}s"
                         f"{_lock_holders(conn, tables)}; nothing changed")
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        if conn.broken or conn.closed:
            return FixResult(plan, UNKNOWN, plan.next_value, None,
                             f"connection lost during the fix ({_first_line(exc)}); "
                             "it may or may not have been committed: re-run check")
        _rollback(conn)
        return FixResult(plan, FAILED, plan.next_value, plan.next_value, _first_line(exc))
    except psycopg.Error as exc:
        _rollback(conn)
        return FixResult(plan, FAILED, plan.next_value, plan.next_value,
                         f"{_first_line(exc)}; nothing changed")
    before = next_value(SequenceState(last_value, is_called), inc)
    if new_last_value is None:
        return FixResult(plan, UNCHANGED, before, before)
    return FixResult(plan, FIXED, before, new_last_value + inc)


def _rollback(conn: psycopg.Connection) -> None:
    if not conn.broken and not conn.closed:
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            pass


def _first_line(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    msg = (diag.message_primary if diag is not None and diag.message_primary else None) or str(exc)
    return msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__


def apply_plans(conn: psycopg.Connection, plans: Iterable[FixPlan],
                lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
                on_result: Callable[[FixResult], None] | None = None,
                statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT) -> list[FixResult]:
    """Apply each plan in turn. After a lost connection the rest are skipped, never retried."""
    results = []
    lost = False
    for plan in plans:
        if lost:
            result = FixResult(plan, SKIPPED, plan.next_value, None, "not attempted: the connection was lost")
        else:
            result = apply_plan(conn, plan, lock_timeout, statement_timeout)
            lost = result.outcome == UNKNOWN
        results.append(result)
        if on_result:
            on_result(result)
    return results
