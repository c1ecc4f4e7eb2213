"""The headless faces of the cutover sync (sync.py): `seqtui sync --from URL` and `seqtui sql --from URL`.

They run as `fix` and `sql` do (the same scan of the target, the same safe apply, the same audit log,
confirmation and exit codes), with the source read in between. The source URL is resolved like the
target's (connect.resolve: its password handed to the gate before anything can fail) and is named in
output and in the audit log by what its server says (user@host:port/database), never by the URL.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace

from . import __version__, redact
from .cli import (EXIT_OK, UsageError, _confirm, _connection, _helpers, _scan, _warn_unjudged,
                  apply_audited, fixes_settled)
from .connect import Target, resolve
from .model import Report, Status
from .output import dry_run_text
from .repair import describe, oneliner, script
from .sync import IN_STEP, SYNC, Source, SyncPlan, plan_sync, read_source


def source_target(url: str) -> Target:
    """The --from URL resolved as --dsn is, but never falling back to DATABASE_URL: the source and
    the target must not silently be the same."""
    if not url or not url.strip():
        raise UsageError("--from needs the source's connection string or URL")
    return replace(resolve(url), source="--from")


@dataclass
class _Read:
    report: Report
    source: Source
    plan: SyncPlan


def _read_both(conn, args, target: Target, config, helpers=None) -> _Read:
    """Connect to the source first (a wrong URL fails before the target's scan), scan the target, then
    read the source: as late as possible, so that its values are as fresh as they can be."""
    with _connection(source_target(args.from_url)) as src_conn:
        report = _scan(conn, args, target, config, helpers)
        source = read_source(src_conn)
    if _same_database(conn, report, source):
        raise UsageError("--from names the target database itself: give the old primary's URL")
    plan = plan_sync(report, source, args.margin, schemas=tuple(args.schema or ()) or config.schemas or target.schemas,
                     exclude=config.exclude, source_only=not getattr(args, "table", None))
    return _Read(report, source, plan)


def _same_database(conn, report: Report, source: Source) -> bool:
    """Whether --from reached the target database itself (same database name, address and port): a
    sync onto itself would change nothing and look like a success."""
    return (source.info.name == report.database.get("name") and str(conn.info.port) == str(source.info.port)
            and (conn.info.host or "") == (source.info.host or ""))


def _print_plan(read: _Read, out=None) -> None:
    out = out or sys.stdout
    plan = read.plan
    print(f"source: {read.source.label} (PostgreSQL {read.source.info.server_version})"
          + (f", margin {plan.margin}" if plan.margin else ""), file=out)
    for item in plan.items:
        if item.action == IN_STEP and not item.differences:
            continue  # counted below: on a big database, thousands of lines that say nothing
        word = {SYNC: "will sync"}.get(item.action, item.action)
        print(f"{word:<17} {item.line()}", file=out)
        for diff in item.differences:
            print(f"{'differs':<17} {item.name}: {diff}", file=out)
    in_step = sum(1 for i in plan.items if i.action == IN_STEP)
    if in_step:
        print(f"{in_step} sequence(s) already past the source and their data: left alone", file=out)


def _json(read: _Read, code: int, results=None, dry_run: bool = False) -> dict:
    doc = {"version": 1, "target": read.report.database, "source": read.source.info.as_json(),
           "source_label": read.source.label, "margin": read.plan.margin, "dry_run": dry_run,
           "sequences": [i.as_json() for i in read.plan.items],
           "problems": [i.name for i in read.plan.problems], "exit_code": code}
    if results is not None:
        doc["results"] = [{"sequence": r.plan.sequence.display_name, "result": r.outcome, "before": r.before,
                           "after": r.after, "reason": r.reason} for r in results]
    return doc


def _write_json(doc: dict) -> None:
    redact.write_gated(sys.stdout, redact.dumps(doc, indent=2 if sys.stdout.isatty() else None) + "\n")


def cmd_sync(args, target: Target, config) -> int:
    """`seqtui sync --from URL`: as `fix`, with the source's mark as one more input of each fix."""
    with _connection(target) as conn, _helpers(args, target) as helpers:
        read = _read_both(conn, args, target, config, helpers if args.jobs else None)
        plan, report = read.plan, read.report
        unjudged = [v for v in report.verdicts if v.status in (Status.UNREADABLE, Status.TIMEOUT, Status.LOCKED)]
        plans = plan.plans
        fixable = [p for p in plans if p.fixable]
        # Everything that does not pair up is a warning: the exit code says the cutover needs a look.
        warned = bool(plan.problems or unjudged)
        if args.json and not args.dry_run and fixable and not args.yes and not report.read_only_reason:
            raise UsageError("--json needs --yes or --dry-run (no prompt inside a JSON document)")
        if not args.json:
            _print_plan(read)
        code = None  # what the plan alone decides, when nothing is applied
        if fixable and report.read_only_reason:
            print(f"seqtui: cannot sync: {report.read_only_reason}", file=sys.stderr)
            code = 1
        elif args.dry_run:
            if not args.json:
                print(dry_run_text([(None, fixable)], args.lock_timeout, args.statement_timeout))
            code = 1 if warned else EXIT_OK
        elif not fixable:
            if not args.json:
                print("nothing can be synced" if plans else
                      "nothing to sync: every target sequence is past the source and its data")
            code = 1 if warned or plans else EXIT_OK
        if code is not None:
            if args.json:
                _write_json(_json(read, code, dry_run=args.dry_run))
            else:
                _warn(plan, unjudged)
            return code
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError("refusing to change the database without --yes (stdin is not a terminal)")
            if not _confirm(len(fixable)):
                print("nothing changed")
                return 1
        results = apply_audited(conn, plans, args, report.database, "sync", helpers,
                                echo=not args.json, origin=read.source.label)
    failed = fixes_settled(results, notes_to_stderr=args.json)
    code = 1 if failed or warned else EXIT_OK
    if args.json:
        _write_json(_json(read, code, results))
    else:
        _warn(plan, unjudged)
    return code


def _warn(plan: SyncPlan, unjudged) -> None:
    if plan.problems:
        print(f"seqtui: {len(plan.problems)} sequence(s) need a look before cutover (listed above: on one "
              "side only, parameters that differ, unreadable, or cannot be synced)", file=sys.stderr)
    if unjudged:
        _warn_unjudged(unjudged)


def cmd_sql_from(args, target: Target, config) -> int:
    """`seqtui sql --from URL`: the sync plan as a psql script, for change review."""
    if args.all:
        raise UsageError("--all does not go with --from: the sync plan covers every sequence already")
    with _connection(target) as conn:
        read = _read_both(conn, args, target, config)
    plan = read.plan
    if args.oneliners:
        for item in plan.problems:
            print(f"# {item.action}: {item.name}: {item.reason or 'parameters differ'}")
        for p in plan.plans:
            print(f"# {describe(p)}")
            if p.fixable:
                print(oneliner(p, args.lock_timeout, statement_timeout=args.statement_timeout))
        return EXIT_OK
    lines = [f"seqtui {__version__}: sync of database {read.report.database['name']} past the source "
             f"{read.source.label} (PostgreSQL {read.source.info.server_version})"
             + (f", margin {plan.margin}" if plan.margin else ""),
             "The source's values are as read now: run it at cutover, after writes to the source stopped.",
             "Run with: psql \"$DATABASE_URL\" -f THIS_FILE"]
    for item in plan.problems:
        what = item.reason or "parameters differ"
        lines.append(f"{item.action}: {item.name}: {what}")
        lines += [f"  differs: {d}" for d in item.differences]
    sys.stdout.write(script(plan.plans, args.lock_timeout, header="\n".join(lines),
                            statement_timeout=args.statement_timeout))
    return EXIT_OK
