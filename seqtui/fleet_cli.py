"""`check`, `sql` and `fix` over several databases: `--all` (every database of the server) and
`--dsn` given more than once (several servers); `check --format prometheus` for one database too.

The single-database commands in cli.py stay as they are; these take over only when more than one
database is asked for, or the Prometheus format. Every row gains `server` and `database`; the exit
code is the worst over all databases (fleet.worst). Printed through cli.main's gated stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import __version__, redact
from .apply import SKIPPED, UNKNOWN, apply_plans
from .audit import AuditLog, default_path as default_audit_path
from .connect import ConnectError, Target, connect
from .fleet import DatabaseResult, fleet_code, scan_fleet, worst
from .model import Status, summary_counts
from .repair import describe, plans_from_verdicts, script

EXIT_OK, EXIT_UNKNOWN = 0, 3


class FleetUsageError(Exception):
    """An option that means one database (cli.main prints it as a usage error)."""


def wanted(args, targets: list[Target]) -> bool:
    """Do these arguments ask for the fleet commands?"""
    return (getattr(args, "all_databases", False) or len(targets) > 1
            or getattr(args, "format", None) == "prometheus")


def scan_all(args, targets: list[Target], scope_for) -> list[DatabaseResult]:
    return scan_fleet(targets, scope_for, getattr(args, "all_databases", False))


def _where(r: DatabaseResult) -> str:
    return f"database {r.database} on {r.server}"


def _warn_problems(results: list[DatabaseResult]) -> None:
    for r in results:
        if r.problem is not None:
            print(f"seqtui: {_where(r)}: cannot be judged: {r.problem}", file=sys.stderr)


# -- check --------------------------------------------------------------------------------------

def fleet_json(results: list[DatabaseResult], code: int) -> dict:
    """The `check --json` document over several databases: the single-database contract's rows, each
    with `server` and `database`, and a `databases` list saying which could be judged."""
    from .output import JSON_VERSION, report_json, verdict_json

    rows, databases = [], []
    for r in results:
        if r.report is not None:
            doc = report_json(r.report, r.code)
            these, info, read_only, summary = doc["sequences"], doc["database"], doc["read_only"], doc["summary"]
        else:
            these, info, read_only = [verdict_json(v) for v in r.verdicts], None, None
            summary = summary_counts(r.verdicts)
        databases.append({"server": r.server, "database": r.database, "up": r.up, "problem": r.problem,
                          "exit_code": r.code, "read_only": read_only, "summary": summary,
                          "scan_seconds": round(r.seconds, 3), "info": info})
        rows += [{"server": r.server, "database": r.database, **row} for row in these]
    return {"version": JSON_VERSION, "summary": summary_counts([v for r in results for v in r.verdicts]),
            "exit_code": code, "databases": databases, "sequences": rows}


def check(args, results: list[DatabaseResult]) -> int:
    code = fleet_code(results)
    fmt = getattr(args, "format", None) or ("json" if args.json else "text")
    if fmt == "prometheus":
        from .metrics import report_text

        redact.write_gated(sys.stdout, report_text(results))
        _warn_problems(results)
    elif fmt == "json":
        redact.write_gated(sys.stdout, redact.dumps(fleet_json(results, code),
                                                    indent=2 if sys.stdout.isatty() else None) + "\n")
    else:
        _check_text(results)
    return code


def _check_text(results: list[DatabaseResult]) -> None:
    from rich.console import Console
    from rich.text import Text

    from .output import DETAIL_WIDTH, check_notes, check_table, summary_text

    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 200))
    for r in results:
        if r.report is None:
            console.print(f"{_where(r)}: cannot be judged: {r.problem}", highlight=False, markup=False)
        else:
            console.print(Text(r.server, style="bold"))  # Text, not markup: [::1]:5432 is no tag
            console.print(check_table(r.report, console.width))
            if console.width < DETAIL_WIDTH:
                for note in check_notes(r.report):
                    console.print(f"• {note}", highlight=False, markup=False)
        console.print()
    judged = sum(r.up for r in results)
    console.print(f"{len(results)} database(s), {judged} judged: "
                  f"{summary_text(summary_counts([v for r in results for v in r.verdicts]))}",
                  highlight=False, markup=False)


# -- sql ----------------------------------------------------------------------------------------

def _psql_quote(text: str) -> str:
    """A \\connect argument psql passes on as typed: in double quotes, "" for a double quote. (Its
    single quotes would not do: psql drops double quotes even inside them for this argument.)"""
    return '"' + text.replace('"', '""') + '"'


def connect_line(r: DatabaseResult, several_servers: bool) -> str:
    """psql's \\connect to the result's database, keeping user and password of the connection before;
    naming host and port too when the script spans servers (never a password)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = {"dbname": r.database}
    if several_servers and r.target is not None:
        given = conninfo_to_dict(r.target.conninfo) if r.target.conninfo else {}
        params.update({k: given[k] for k in ("host", "port") if given.get(k)})
    return f"\\connect -reuse-previous=on {_psql_quote(make_conninfo(**params))}"


def sql(args, results: list[DatabaseResult]) -> int:
    if getattr(args, "from_url", None):
        raise FleetUsageError("sql --from plans a cutover of one database: leave out --all and the extra --dsn")
    if args.oneliners:
        raise FleetUsageError("--oneliners names $DATABASE_URL, one database: leave out --all and the "
                              "extra --dsn, or use the script")
    what = "every sequence (idempotent)" if args.all else "sequences behind their data"
    out = [f"-- seqtui {__version__}: {what} in {len(results)} database(s)",
           '-- Run with: psql "$DATABASE_URL" -f THIS_FILE (each section connects to its database with '
           "\\connect, as the same user)"]
    several = len({r.server for r in results}) > 1
    for r in results:
        out.append("")
        if r.report is None:
            out.append(f"-- {_where(r)}: cannot be judged: {r.problem}")
            continue
        plans = plans_from_verdicts(r.report.verdicts, include_all=args.all)
        out.append(connect_line(r, several))
        out.append(script(plans, args.lock_timeout, header=_where(r),
                          statement_timeout=args.statement_timeout).rstrip("\n"))
    sys.stdout.write("\n".join(out) + "\n")
    _warn_problems(results)
    return worst(r.code for r in results if r.problem is not None)


# -- fix ----------------------------------------------------------------------------------------

def fix(args, results: list[DatabaseResult], confirm) -> int:
    """Plans for every database first, one confirmation for all, then each database fixed on a
    connection of its own, one database after another. A database whose connection is lost is said
    so and never written to again; the others go on."""
    from .output import dry_run_text

    # --table T names tables of some databases only: the others are out of its scope, not in trouble
    in_scope = [r for r in results if not r.out_of_scope]
    if not in_scope and results:
        raise FleetUsageError(results[0].problem)
    results = in_scope
    work = []  # (result, plans)
    for r in results:
        if r.report is None:
            continue
        plans = plans_from_verdicts(r.report.verdicts)
        if plans and r.report.read_only_reason:
            for plan in plans:
                print(f"behind     {r.database}: {describe(plan)}")
            print(f"seqtui: {_where(r)}: cannot fix: {r.report.read_only_reason}", file=sys.stderr)
            continue
        for plan in plans:
            print(("will fix   " if plan.fixable else "cannot fix ") + f"{r.database}: {describe(plan)}")
        if plans:
            work.append((r, plans))
    _warn_problems(results)
    unjudged = [r for r in results if r.report is not None and any(
        v.status in (Status.UNREADABLE, Status.TIMEOUT) for v in r.report.verdicts)]
    for r in unjudged:
        print(f"seqtui: {_where(r)}: some rows could not be judged (no privilege, or past "
              "--statement-timeout); see seqtui check", file=sys.stderr)
    fixable = sum(p.fixable for _, plans in work for p in plans)
    troubled = any(r.problem is not None for r in results) or bool(unjudged) or any(
        r.report is not None and r.report.read_only_reason and plans_from_verdicts(r.report.verdicts)
        for r in results)
    base = worst([1] * troubled + [r.code for r in results if r.code == EXIT_UNKNOWN])
    if not work:
        print("nothing to fix: no sequence is behind its data" if not troubled else
              "nothing to fix among the databases and sequences seqtui could read")
        return base
    if args.dry_run:
        print(dry_run_text([(_where(r), plans) for r, plans in work], args.lock_timeout, args.statement_timeout))
        return base
    if fixable and not args.yes:
        if not sys.stdin.isatty():
            raise FleetUsageError("refusing to change the database without --yes (stdin is not a terminal)")
        if not confirm(fixable):
            print("nothing changed")
            return 1
    failed = lost = 0
    for r, plans in work:
        outcome = _fix_database(args, r, plans)
        failed += outcome == "failed"
        lost += outcome == "lost"
    code = worst([base] + [1] * bool(failed) + [EXIT_UNKNOWN] * bool(lost))
    return code


def _fix_database(args, r: DatabaseResult, plans) -> str:
    """'ok', 'failed' (some plan not fixed) or 'lost' (connection lost or not opened)."""
    try:
        conn = connect(r.target)
    except ConnectError as exc:
        print(f"seqtui: {_where(r)}: nothing fixed: {exc}", file=sys.stderr)
        return "lost"
    audit = AuditLog(Path(args.audit_log) if args.audit_log else default_audit_path(), r.report.database,
                     "fix").open()
    done = iter(range(1, len(plans) + 1))

    def report_result(result):
        audit.record(result)
        print(f"[{r.database} {next(done)}/{len(plans)}] {result.line()}", flush=True)

    try:
        with audit:
            results = apply_plans(conn, plans, args.lock_timeout, on_result=report_result,
                                  statement_timeout=args.statement_timeout)
    finally:
        conn.close()
    cached = [x.plan.sequence.display_name for x in results if x.outcome == "fixed" and x.plan.sequence.cache > 1]
    if cached:
        print(f"note: {r.database}: {', '.join(cached)} use CACHE > 1: pooled connections may still hand out "
              "values cached before the fix; recycle connection pools.")
    gone = [x for x in results if x.outcome in (UNKNOWN, SKIPPED)]
    if gone:
        names = ", ".join(x.plan.sequence.display_name for x in gone if x.outcome == UNKNOWN)
        print(f"seqtui: {_where(r)}: connection lost while fixing{' ' + names if names else ''}: may or may "
              "not have been committed, nothing after was attempted; run seqtui check", file=sys.stderr)
        return "lost"
    not_fixed = [x for x in results if not x.ok]
    if not_fixed:
        print(f"{_where(r)}: {len(not_fixed)} of {len(results)} sequence(s) not fixed", file=sys.stderr)
        return "failed"
    return "ok"
