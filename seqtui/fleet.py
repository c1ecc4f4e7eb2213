"""Several databases in one run: every database of a server (`--all`, as vacuumdb does) and several
servers (`--dsn` repeated), scanned at once under a bound, each judged on its own.

A database that cannot be read (no CONNECT privilege, a server down, a lost connection) becomes a
result with a `problem` instead of an exception, so one of them never hides the others; and a slow
server holds back only its own databases (each server has its own workers; the connect and statement
timeouts bound the rest). Nothing here prints: the faces (fleet_cli.py, metrics.py) present results.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable

import psycopg

from . import catalog, redact
from .connect import ConnectError, Target, connect, database_name, for_database, server_label
from .model import Report, Status, Verdict, exit_code
from .scan import Scope, ScopeError, scan

SERVERS_AT_ONCE = 8     # servers listed and scanned in parallel
DATABASES_AT_ONCE = 2   # databases of one server scanned in parallel: a connection each

EXIT_UNKNOWN = 3
# "Worst" over several databases: something behind or critical (2) is the most urgent news, then a
# database that could not be reached at all (3), then warnings (1).
_RANK = {0: 0, 1: 1, 3: 2, 2: 3}

NO_CONNECT = "no CONNECT privilege"


def worst(codes) -> int:
    return max(codes, key=_RANK.__getitem__, default=0)


@dataclass(frozen=True)
class DatabaseResult:
    server: str              # host:port, never a user or a password
    database: str
    report: Report | None    # None: the database could not be judged at all
    problem: str | None = None  # why not (gated): "no CONNECT privilege", "could not connect (...): ..."
    code: int = 0            # this database's exit code (Nagios)
    seconds: float = 0.0     # how long its scan took
    finished: float = 0.0    # when it ended (Unix time)
    target: Target | None = field(default=None, repr=False, compare=False)  # to connect again (fix)
    out_of_scope: bool = False  # fix --table T: the database has no table T (not a problem with --all)

    @property
    def up(self) -> bool:
        return self.report is not None

    @property
    def verdicts(self) -> tuple[Verdict, ...]:
        """The report's rows, or the one row that says why there are none."""
        if self.report is not None:
            return self.report.verdicts
        return (Verdict(Status.UNREADABLE, None, None, detail=f"cannot be judged: {self.problem}"),)


def _failed(server: str, database: str, problem: str, code: int, started: float) -> DatabaseResult:
    now = time.time()
    return DatabaseResult(server, database, None, redact.gate(problem), code, now - started, now)


def scan_database(target: Target, server: str, database: str, scope: Scope) -> DatabaseResult:
    """One database, read on a connection of its own that is closed after: a result, never an
    exception for what the server or the network may do."""
    started = time.time()
    try:
        conn = connect(target)
    except ConnectError as exc:
        return _failed(server, database, str(exc), EXIT_UNKNOWN, started)
    try:
        report = scan(conn, scope)
    except ScopeError as exc:
        return replace(_failed(server, database, str(exc), EXIT_UNKNOWN, started), out_of_scope=True)
    except psycopg.Error as exc:
        lost = isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
        text = target.redact(str(exc)) or type(exc).__name__
        return _failed(server, database, f"{'connection lost: ' if lost else ''}{text}", EXIT_UNKNOWN, started)
    finally:
        conn.close()
    now = time.time()
    return DatabaseResult(server, database, report, None, exit_code(report.verdicts), now - started, now,
                          target)


def list_databases(target: Target) -> list[tuple[str, bool]]:
    """(name, may connect) of every database `--all` visits on the target's server."""
    with connect(target) as conn:
        return [(name, ok) for name, ok in conn.execute(catalog.load_sql("databases.sql")).fetchall()]


def scan_server(target: Target, scope: Scope, all_databases: bool) -> list[DatabaseResult]:
    """The target's database, or with `all_databases` every one its server lets connect, in name order."""
    server = server_label(target)
    if not all_databases:
        return [scan_database(target, server, database_name(target), scope)]
    started = time.time()
    try:
        names = list_databases(target)
    except ConnectError as exc:
        return [_failed(server, database_name(target), str(exc), EXIT_UNKNOWN, started)]
    except psycopg.Error as exc:
        return [_failed(server, database_name(target), target.redact(str(exc)) or type(exc).__name__,
                        EXIT_UNKNOWN, started)]

    def one(entry: tuple[str, bool]) -> DatabaseResult:
        name, may_connect = entry
        if not may_connect:  # judged without trying: the role is refused, and says so itself
            return _failed(server, name, NO_CONNECT, 1, time.time())
        return scan_database(for_database(target, name), server, name, scope)

    with ThreadPoolExecutor(max_workers=max(1, min(DATABASES_AT_ONCE, len(names))),
                            thread_name_prefix="seqtui-db") as pool:
        return list(pool.map(one, names))


def scan_fleet(targets: list[Target], scope_for: Callable[[Target], Scope],
               all_databases: bool) -> list[DatabaseResult]:
    """Every server at once (up to SERVERS_AT_ONCE), results in the order of `targets`, then by name."""
    def one(target: Target) -> list[DatabaseResult]:
        return scan_server(target, scope_for(target), all_databases)

    with ThreadPoolExecutor(max_workers=max(1, min(SERVERS_AT_ONCE, len(targets))),
                            thread_name_prefix="seqtui-server") as pool:
        return [r for results in pool.map(one, targets) for r in results]


def fleet_code(results: list[DatabaseResult]) -> int:
    return worst(r.code for r in results)
