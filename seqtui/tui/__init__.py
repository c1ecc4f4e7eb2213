"""The Textual terminal UI. The only package of seqtui that imports textual."""

from __future__ import annotations

from typing import Callable


def run(*, target, config, args, status_line: Callable[[], str | None] | None = None) -> int:
    """Open the UI on `target`; returns the process exit code (0 on a normal quit).

    Connects once before the app starts, so an unreachable server or a wrong password ends as the
    CLI's one-line error (ConnectError) instead of an empty screen."""
    from ..connect import connect
    from .app import SeqtuiApp

    conn = connect(target)
    app = SeqtuiApp(target, config, conn=conn, interval=args.interval, read_only=args.read_only,
                    schemas=args.schema or (), statement_timeout=args.statement_timeout,
                    status_line=status_line, audit_log=getattr(args, "audit_log", None))
    try:
        code = app.run()
    finally:
        app._close_conn()
    return code or 0
