"""Command line: `seqtui check | sql | fix | sync | demo | tui`. Plain `seqtui` opens the terminal UI.

Headless commands never import textual. Every error a user can cause (no database, bad URL, wrong
password, bad config, unknown table) ends as one line on stderr and exit code 3, never a traceback.
Everything main() writes, to stdout or stderr, passes the secrets gate (redact.py).
"""

from __future__ import annotations

import gc
import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

import psycopg

from . import __version__, redact
from .apply import SKIPPED, UNKNOWN, apply_plans
from .audit import AuditError, AuditLog, default_path as default_audit_path
from .config import ConfigError, load as load_config
from .connect import ConnectError, Target, close_all, connect, open_helpers, resolve
from .fleet_cli import FleetUsageError, wanted as fleet_wanted
from .model import Report, Status, exit_code
from .repair import describe, oneliner, plans_from_verdicts, script
from .scan import Scope, ScopeError, scan
from .spare import spare_helpers
from .text import one_line

from .cli_args import EXIT_OK, EXIT_UNKNOWN, UsageError, parse_args


@contextmanager
def _connection(target: Target):
    conn = connect(target)
    try:
        yield conn
    finally:
        conn.close()


def _scope(args, target: Target, config) -> Scope:
    return Scope.from_config(config, schemas=args.schema, tables=getattr(args, "table", []),
                             statement_timeout_ms=int(args.statement_timeout * 1000),
                             lock_timeout_ms=int(args.lock_timeout * 1000), default_schemas=target.schemas)


@contextmanager
def _scanning():
    """A spinner with the scan's progress on stderr when a person is watching; nothing (and no rich
    import) in pipes and CI logs. Yields the progress callback for scan(), or None."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console

    with Console(stderr=True).status("scanning sequences…") as status:
        yield lambda done, total: status.update(f"scanning sequences… {done:,} of {total:,} measured")


@contextmanager
def _helpers(args, target: Target):
    """The --jobs connections besides the main one, open for the block (none without --jobs). Fewer
    than asked for is a warning, not an error."""
    jobs = args.jobs or 1
    helpers, why = open_helpers(target, jobs) if jobs > 1 else ([], None)
    if why:
        print(f"seqtui: --jobs {args.jobs}: working on {len(helpers) + 1} connection(s), since another "
              f"one could not be opened: {why}", file=sys.stderr)
    try:
        yield helpers
    finally:
        close_all(helpers)


@contextmanager
def _measuring_helpers(args, conn, target: Target):
    """The connections a scan on `conn` measures on besides it, open for the scan: --jobs N's, or
    without --jobs a spare on a big database (spare.py)."""
    if args.jobs is None:
        with spare_helpers(conn, target) as spare:
            yield spare
    else:
        with _helpers(args, target) as helpers:
            yield helpers


def _scan(conn, args, target: Target, config, helpers=None) -> Report:
    """scan() with the spinner, measuring on `helpers` too if given, else on _measuring_helpers()."""
    if helpers is None:
        with _measuring_helpers(args, conn, target) as helpers:
            return _scan(conn, args, target, config, helpers)
    with _scanning() as progress:
        return scan(conn, _scope(args, target, config), progress, helpers)


def cmd_check(args, target, config) -> int:
    from .output import DETAIL_WIDTH, check_notes, check_table, note_lines, report_json

    with _connection(target) as conn:
        report = _scan(conn, args, target, config)
    code = exit_code(report.verdicts)
    if args.json or args.format == "json":
        # Pretty for a person, compact in pipes. json.dumps, not json.dump: only the one-shot dumps
        # without indent uses the C encoder (json.dump is pure Python, ~1 s for 10,000 rows).
        # Gated string by string (redact.dumps), so a mask cannot break the JSON.
        redact.write_gated(sys.stdout, redact.dumps(report_json(report, code),
                                                    indent=2 if sys.stdout.isatty() else None) + "\n")
    else:
        from rich.console import Console

        console = Console()
        if not console.is_terminal:  # pipes and CI logs: no 80-column squeeze
            console = Console(width=max(console.width, 200))
        console.print(check_table(report, console.width))
        if console.width < DETAIL_WIDTH:
            for line in note_lines(check_notes(report), console.width):
                console.print(line, highlight=False, markup=False)
    return code


def _cmd_sync(args, target, config) -> int:
    from .sync_command import cmd_sync  # imported late: it builds on this module

    return cmd_sync(args, target, config)


def cmd_sql(args, target, config) -> int:
    if args.from_url is not None:
        from .sync_command import cmd_sql_from

        return cmd_sql_from(args, target, config)
    with _connection(target) as conn:
        report = _scan(conn, args, target, config)
    plans = plans_from_verdicts(report.verdicts, include_all=args.all)
    if args.oneliners:
        for plan in plans:
            print(f"# {describe(plan)}")
            if plan.fixable:
                print(oneliner(plan, args.lock_timeout, statement_timeout=args.statement_timeout))
        return EXIT_OK
    db = report.database
    header = (f"seqtui {__version__}: {'every sequence (idempotent)' if args.all else 'sequences behind their data'}"
              f" in database {db['name']}\nRun with: psql \"$DATABASE_URL\" -f THIS_FILE")
    sys.stdout.write(script(plans, args.lock_timeout, header=header, statement_timeout=args.statement_timeout))
    return EXIT_OK


def _confirm(count: int) -> bool:
    try:
        answer = input(f"Apply {count} fix{'es' if count != 1 else ''}? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_fix(args, target, config) -> int:
    from .output import dry_run_text

    # --jobs: the same connections measure, then fix. Without it the scan may measure on a spare too
    # (spare.py), and the fixes are written on this one connection.
    with _connection(target) as conn, _helpers(args, target) as helpers:
        report = _scan(conn, args, target, config, helpers if args.jobs else None)
        plans = plans_from_verdicts(report.verdicts)
        # Rows seqtui could not judge are not known to be healthy: say so, and never exit 0 over them.
        unjudged = [v for v in report.verdicts if v.status in (Status.UNREADABLE, Status.TIMEOUT, Status.LOCKED)]
        if not plans:
            if unjudged:
                print("nothing to fix among the sequences seqtui could read")
                _warn_unjudged(unjudged)
                return 1
            print("nothing to fix: no sequence is behind its data")
            return EXIT_OK
        if report.read_only_reason:
            for plan in plans:
                print(f"behind     {describe(plan)}")
            print(f"seqtui: cannot fix: {report.read_only_reason}", file=sys.stderr)
            return 1
        fixable = [p for p in plans if p.fixable]
        for plan in plans:
            print(("will fix   " if plan.fixable else "cannot fix ") + describe(plan))
        if args.dry_run:
            print(dry_run_text([(None, fixable)], args.lock_timeout, args.statement_timeout))
            return EXIT_OK
        if fixable and not args.yes:
            if not sys.stdin.isatty():
                raise UsageError("refusing to change the database without --yes (stdin is not a terminal)")
            if not _confirm(len(fixable)):
                print("nothing changed")
                return 1
        results = apply_audited(conn, plans, args, report.database, "fix", helpers)
    failed = fixes_settled(results)
    if unjudged:
        _warn_unjudged(unjudged)
    return 1 if failed or unjudged else EXIT_OK


def apply_audited(conn, plans, args, database: dict, face: str, helpers=(), *, echo: bool = True,
                  origin: str | None = None):
    """apply_plans() with an audit line per plan, written before its outcome is printed (one line
    each on stdout; echo=False: none, for --json). The log is opened first: if it cannot be written, nothing is
    changed. `face` and `origin` are the audit's `source` and `from` (fix and the TUI: no origin)."""
    audit = AuditLog(Path(args.audit_log) if args.audit_log else default_audit_path(), database, face,
                     origin=origin).open()
    done = iter(range(1, len(plans) + 1))

    def report_result(result):
        audit.record(result)
        if echo:  # sys.stdout looked up now: main() has put the gate in its place
            print(f"[{next(done)}/{len(plans)}] {result.line()}", flush=True)

    with audit:
        return apply_plans(conn, plans, args.lock_timeout, on_result=report_result,
                           statement_timeout=args.statement_timeout, helpers=helpers)


def fixes_settled(results, notes_to_stderr: bool = False) -> list:
    """What fix and sync say once their fixes ran: the CACHE note (on stdout, or stderr under --json), a lost connection as
    an error (exit 3: the outcome of some is unknown), and how many failed. Returns the failed ones."""
    cached = [r.plan.sequence.display_name for r in results if r.outcome == "fixed" and r.plan.sequence.cache > 1]
    if cached:
        print(f"note: {', '.join(cached)} use CACHE > 1: pooled connections may still hand out values cached "
              "before the fix; recycle connection pools.", file=sys.stderr if notes_to_stderr else sys.stdout)
    lost = [r for r in results if r.outcome == UNKNOWN]
    if lost:
        # up to a batch of fixes was in flight (apply.BATCH_SIZE): name every one of them
        names = ", ".join(r.plan.sequence.display_name for r in lost)
        each, them = ("it", "it") if len(lost) == 1 else ("each", "them")
        raise UsageError(f"connection lost while fixing {names}: {each} may or may not have been committed, "
                         f"and nothing after {them} was attempted; run seqtui check")
    skipped = [r for r in results if r.outcome == SKIPPED]  # apply skips only after a lost connection
    if skipped:
        raise UsageError(f"connection lost: {len(skipped)} sequence(s) not attempted; run seqtui check")
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} of {len(results)} sequence(s) not fixed", file=sys.stderr)
    return failed


def _warn_unjudged(unjudged) -> None:
    names = sorted({f"{v.consumer.schema}.{v.consumer.table}" if v.consumer else v.sequence.display_name
                    for v in unjudged})
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    print(f"seqtui: {len(unjudged)} row(s) could not be judged (no privilege, past --statement-timeout, or "
          f"locked past --lock-timeout): {shown}; see seqtui check", file=sys.stderr)
    for v in unjudged:  # who holds the lock is what the operator acts on: say it for each such row
        if v.status is Status.LOCKED:
            print(f"locked     {v.label or v.sequence.display_name}: {v.detail}", file=sys.stderr)


def cmd_tui(args, target, config) -> int:
    try:
        from .tui import run as run_tui
    except ImportError as exc:
        raise UsageError(f"the terminal UI cannot start: {exc}") from None
    return run_tui(target=target, config=config, args=args)


def cmd_demo(args) -> int:
    from . import demo

    return demo.main(args)


def cmd_fleet(command, args, targets, config) -> int:
    """check/sql/fix over several databases (--all, --dsn repeated, or check --format prometheus), and
    the exporter: fleet_cli.py and exporter.py, with the scope each database is scanned in."""
    from . import fleet_cli

    def scan_all():
        return fleet_cli.scan_all(args, targets, lambda target: _scope(args, target, config))

    if command == "exporter":
        from .exporter import ListenError, serve

        try:
            return serve(scan_all, *args.listen, args.exporter_interval)
        except ListenError as exc:
            raise UsageError(str(exc)) from None
    if command == "tui":
        raise UsageError("the terminal UI shows one database: leave out --all and the extra --dsn")
    results = scan_all()
    if command == "check":
        return fleet_cli.check(args, results)
    if command == "sql":
        return fleet_cli.sql(args, results)
    return fleet_cli.fix(args, results, _confirm)


def main(argv: list[str] | None = None) -> int:
    """The command line, with stdout and stderr gated for its whole run: argparse's echo of a bad
    argument, rich's tables, warnings and anything else printed pass through redact.gate()."""
    with redact.gated_output():
        argv = sys.argv[1:] if argv is None else argv
        for arg in argv:  # argparse echoes arguments it rejects: a --dsn among them is masked too
            redact.remember(*redact.candidates(arg))
        return _main(argv)


def _error(text: str) -> int:
    """The one line of an error, through the gate, on one line whatever the message held."""
    # gated before whitespace is squeezed: a password holding two spaces or a tab must still match
    print(f"seqtui: error: {one_line(' '.join(redact.gate(text).split()))}", file=sys.stderr)
    return EXIT_UNKNOWN


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    command = args.command or "tui"
    target = None
    try:
        if command == "demo":
            return cmd_demo(args)
        config = load_config(args.config)
        targets = [resolve(dsn) for dsn in args.dsn or [None]]
        target = targets[0]
        if command == "exporter" or (command != "sync" and fleet_wanted(args, targets)):
            return cmd_fleet(command, args, targets, config)
        if len(targets) > 1:
            raise UsageError(f"{command} works on one database: give --dsn once")
        handler = {"check": cmd_check, "sql": cmd_sql, "fix": cmd_fix, "tui": cmd_tui, "sync": _cmd_sync}[command]
        return handler(args, target, config)
    except (ConnectError, ConfigError, ScopeError, UsageError, AuditError, FleetUsageError) as exc:
        return _error(target.redact(str(exc)) if target else str(exc))
    except psycopg.Error as exc:
        text = (target.redact(str(exc)) if target else str(exc)) or type(exc).__name__
        lost = isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
        return _error(f"{'connection lost: ' if lost else ''}{text}")
    except KeyboardInterrupt:
        print("seqtui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug: still one gated line, the traceback (gated) only when asked for
        if os.environ.get("SEQTUI_DEBUG"):
            traceback.print_exc()
        return _error(f"unexpected {type(exc).__name__}: {target.redact(str(exc)) if target else exc} "
                      "(set SEQTUI_DEBUG=1 for details)")


def run() -> int:
    """The `seqtui` command and `python -m seqtui`: main(), as the last thing the process does."""
    code = main()
    # What is still alive (the imported modules, their caches) is freed with the process, but
    # CPython's last collection at exit walks all of it first: ~25 ms, an eighth of a check on a small
    # database. gc.freeze() (documented) leaves what exists now out of every later collection. Not in
    # main(): tests call that in a process that goes on.
    gc.freeze()
    return code

