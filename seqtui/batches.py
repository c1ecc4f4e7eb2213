"""One batch of fix transactions, sent as one query string and accounted for sequence by sequence:
committed, refused (rolled back, the rest of the batch sent again by the caller), or unknown after a
lost connection; and the batch's single wait for its commits to reach disk (apply.py says why)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import psycopg
from psycopg import errors, sql
from psycopg.pq import ExecStatus, TransactionStatus

from .locks import find_holders
from .model import SequenceState, next_of
from .repair import COMMITS_ON_DISK, FixPlan, locked_tables, transaction_statements
from .results import INTERRUPTED, LOST, FAILED, FIXED, SKIPPED, UNCHANGED, UNKNOWN, FixResult
from . import wire  # looked up at each call: tests watch what is sent
from .wire import error_of


def _lock_holders(conn: psycopg.Connection, tables) -> str:
    """Who holds (or is queued for) locks on the tables we waited for, in a mode that conflicts with
    IN EXCLUSIVE MODE: pid, user, application, state and since when, the start of its query
    (locks.find_holders, as the scan's reads name theirs)."""
    found = find_holders(conn, [c.table_oid for c in tables], "ExclusiveLock")
    holders = {(h.pid, h.relation): h for hs in found.values() for h in hs}
    if not holders:
        return ""
    return "; " + "; ".join(h.describe() for h in holders.values())


@dataclass(frozen=True)
class Stop:
    """Why nothing more may be sent: the connection was lost, or Ctrl+C (re-raised once reported)."""
    reason: str
    interrupt: BaseException | None = None


_SEPARATOR = sql.SQL(";\n")
COMMITS_ON_DISK_QUERY = _SEPARATOR.join(COMMITS_ON_DISK).as_string(None).encode()  # sent on its own


@dataclass(frozen=True)
class Batch:
    """A batch ready to send: its plans (and their indexes in the caller's list), each plan's
    statements, the lock_timeout they set, whether its commits are waited for once at its end
    (COMMITS_ON_DISK, last in the string) or each by itself, and the query string holding them all, or
    why it could not be composed."""
    indexes: list[int]
    plans: list[FixPlan]
    statements: list[list[sql.Composable]]
    lock_timeout: float
    wait_once: bool
    query: bytes | None
    problem: psycopg.OperationalError | None = None


def compose(conn: psycopg.Connection, indexes: list[int], plans: list[FixPlan], lock_timeout: float,
             statement_timeout: float, wait_once: bool) -> Batch:
    batch = [plans[i] for i in indexes]
    statements = [transaction_statements(plan, lock_timeout, statement_timeout, alone=not wait_once)
                  for plan in batch]
    parts = [stmt for stmts in statements for stmt in stmts]
    if wait_once:
        parts += COMMITS_ON_DISK
    try:
        query = _SEPARATOR.join(parts).as_bytes(conn)
    except psycopg.OperationalError as exc:  # quoting names needs the connection: it is closed
        return Batch(indexes, batch, statements, lock_timeout, wait_once, None, exc)
    return Batch(indexes, batch, statements, lock_timeout, wait_once, query)


def apply_batch(conn: psycopg.Connection, composed: Batch,
                 meanwhile: Callable[[], None] | None = None) -> tuple[list[FixResult], Stop | None]:
    """Run the transactions of a batch as one query string; `meanwhile` is called once it is sent,
    while the server runs it. Returns results for a prefix of the batch (the plans after a failed one
    have none: they did not run; after a stop every plan has one), and None, or why nothing more may
    be sent."""
    batch, statements = composed.plans, composed.statements
    if composed.query is None:
        replies, sent, problem = [], False, composed.problem
    else:
        replies, sent, problem = wire.exchange(conn, composed.query, meanwhile)
    interrupted = Stop(INTERRUPTED, problem) if isinstance(problem, KeyboardInterrupt) else None

    results: list[FixResult] = []
    start = 0
    for plan, stmts in zip(batch, statements):  # one reply per statement run, in order
        mine, start = replies[start:start + len(stmts)], start + len(stmts)
        if not wire.committed(mine, len(stmts)):
            break
        results.append(_outcome(plan, mine[-2]))
    if len(results) == len(batch):
        if composed.wait_once:  # the batch's last replies are those of COMMITS_ON_DISK
            results = _on_disk(conn, results, replies[start:], problem)
        return results, (Stop(LOST) if conn.closed else interrupted)
    failing = batch[len(results)]
    error = next((r for r in replies if r.status == ExecStatus.FATAL_ERROR), None)
    if (not conn.closed and error is not None
            and conn.info.transaction_status == TransactionStatus.INERROR):
        # The usual failure: a statement of `failing` raised an error and its transaction is aborted.
        _rollback(conn)
        failure = _failure(conn, failing, error_of(error, conn.info.encoding), composed.lock_timeout)
        if composed.wait_once:  # the server skipped the rest of the string, COMMITS_ON_DISK included
            results, late = _wait_for_disk(conn, results)
            if interrupted is None and isinstance(late, KeyboardInterrupt):
                interrupted = Stop(INTERRUPTED, late)
        return [*results, failure], (Stop(LOST, interrupted and interrupted.interrupt) if conn.closed
                                     else interrupted)
    # The connection was lost, or the session is in a state we cannot account for (then we close it, so
    # that nothing more runs on it): every plan of the string without an acknowledged COMMIT may or may
    # not have been committed, and is reported unknown. If the string never fully left, the server cannot
    # have run any of it.
    cause = _cause(problem, error, conn)
    if conn.closed:
        what = f"connection lost during the fix ({cause})"
    else:
        conn.close()
        what = f"connection closed after an unexpected reply ({cause})"
    if composed.wait_once:
        results = _unconfirmed(results, what)
    for plan in batch[len(results):]:
        if sent:
            results.append(FixResult(plan, UNKNOWN, plan.next_value, None,
                                     f"{what}; it may or may not have been committed: re-run check"))
        else:
            results.append(FixResult(plan, SKIPPED, plan.next_value, None, f"not attempted: {LOST} ({cause})"))
    return results, Stop(LOST, interrupted.interrupt if interrupted else None)


def _unconfirmed(results: list[FixResult], why: str) -> list[FixResult]:
    """The results with every fix committed but not known to be on disk (COMMITS_ON_DISK did not
    return) reported unknown: a crash of the server since would have undone it."""
    return [FixResult(r.plan, UNKNOWN, r.before, None,
                      f"committed, but not known to be on disk ({why}); a server crash would have undone "
                      "it: re-run check") if r.outcome == FIXED else r
            for r in results]


def _on_disk(conn: psycopg.Connection, results: list[FixResult], replies: list,
             problem: BaseException | None) -> list[FixResult]:
    """The results, given the replies to COMMITS_ON_DISK sent after them (and why its exchange ended
    early, if it did): the fixes it did not confirm on disk are reported unknown."""
    if wire.committed(replies, len(COMMITS_ON_DISK)) or not any(r.outcome == FIXED for r in results):
        return results
    error = next((r for r in replies if r.status == ExecStatus.FATAL_ERROR), None)
    end_failed(conn)  # cancelled (Ctrl+C) while it waited, say
    return _unconfirmed(results, INTERRUPTED if isinstance(problem, KeyboardInterrupt)
                        else _cause(problem, error, conn))


def _cause(problem: BaseException | None, error, conn: psycopg.Connection) -> str:
    """Why an exchange did not end as it should: its exception, else the server's error reply."""
    if problem is not None:
        return _first_line(problem)
    return _first_line(error_of(error, conn.info.encoding)) if error else "no result from the server"


def end_failed(conn: psycopg.Connection) -> None:
    """Roll back the transaction a failed statement left aborted, if it did."""
    if not conn.closed and conn.info.transaction_status == TransactionStatus.INERROR:
        _rollback(conn)


def _wait_for_disk(conn: psycopg.Connection, results: list[FixResult]) -> tuple[list[FixResult], BaseException | None]:
    """COMMITS_ON_DISK on its own, after a failure made the server skip the one at the end of the batch:
    the results as _on_disk() gives them, and why the exchange ended early (Ctrl+C, a lost connection)."""
    if not any(r.outcome == FIXED for r in results):
        return results, None  # nothing was written
    if conn.closed:
        return _unconfirmed(results, LOST), None
    replies, _sent, problem = wire.exchange(conn, COMMITS_ON_DISK_QUERY)
    return _on_disk(conn, results, replies, problem), problem


def _outcome(plan: FixPlan, reply) -> FixResult:
    """The result of a committed fix, from the row its fix statement returned (text format)."""
    last_value, is_called, new_last_value = (reply.get_value(0, i) for i in range(3))
    if last_value is None:  # pg_get_sequence_data() gives NULLs where it may not read: setval did not run
        return FixResult(plan, FAILED, plan.next_value, plan.next_value,
                         "could not read the state of the sequence (SELECT privilege on it?); nothing changed")
    inc = plan.sequence.increment
    before = next_of(plan.sequence, SequenceState(int(last_value), is_called == b"t"))
    if new_last_value is None:
        return FixResult(plan, UNCHANGED, before, before)
    return FixResult(plan, FIXED, before, int(new_last_value) + inc)


def _failure(conn: psycopg.Connection, plan: FixPlan, exc: psycopg.Error, lock_timeout: float) -> FixResult:
    """The result of a fix the server refused, after its transaction was rolled back."""
    if isinstance(exc, errors.LockNotAvailable):
        tables = locked_tables(plan.consumers)
        names = ", ".join(f"{c.schema}.{c.table}" for c in tables)
        return FixResult(plan, FAILED, plan.next_value, plan.next_value,
                         f"lock on {names} not granted within {lock_timeout:g}s"
                         f"{_lock_holders(conn, tables)}; nothing changed")
    if isinstance(exc, psycopg.OperationalError):  # e.g. statement timeout, cancelled
        return FixResult(plan, FAILED, plan.next_value, plan.next_value, _first_line(exc))
    return FixResult(plan, FAILED, plan.next_value, plan.next_value, f"{_first_line(exc)}; nothing changed")


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
