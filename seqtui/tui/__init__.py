"""The Textual terminal UI. The only package of seqtui that imports textual."""

from __future__ import annotations

import asyncio
import signal
from typing import Callable


def run(*, target, config, args, status_line: Callable[[], str | None] | None = None) -> int:
    """Open the UI on `target`; returns the process exit code (0 on a normal quit).

    Connects once before the app starts, so an unreachable server or a wrong password ends as the
    CLI's one-line error (ConnectError) instead of an empty screen. The first scan starts right then,
    before textual is imported (see first_scan.py)."""
    from ..catalog import stop_scan
    from ..connect import connect
    from ..repair import DEFAULT_LOCK_TIMEOUT
    from .first_scan import FirstScan, ui_scope

    conn = connect(target)
    lock_timeout = getattr(args, "lock_timeout", None) or DEFAULT_LOCK_TIMEOUT
    first = FirstScan(conn, ui_scope(target, config, args.schema, args.statement_timeout, lock_timeout), target,
                      jobs=getattr(args, "jobs", None)).start()
    try:
        from .app import SeqtuiApp

        app = SeqtuiApp(target, config, conn=conn, interval=args.interval, read_only=args.read_only,
                        statement_timeout=args.statement_timeout, lock_timeout=lock_timeout,
                        status_line=status_line,
                        audit_log=getattr(args, "audit_log", None), first_scan=first)
    except BaseException:  # the app never ran: call its scan off
        stop_scan(first.stop, list(first.scanning_on))
        first.collections.release()
        conn.close()
        raise
    stopped: list[int] = []

    def on_signal(signum, frame):
        # SIGTERM/SIGHUP (kill, a closed terminal): ask the app to exit so it restores the terminal;
        # an exception raised into its event loop would be printed as a crash. A second signal, or one
        # before the loop runs, unwinds like Ctrl+C.
        if stopped:
            raise KeyboardInterrupt
        stopped.append(signum)
        try:
            asyncio.get_running_loop().call_soon_threadsafe(app.exit)
        except RuntimeError:
            raise KeyboardInterrupt from None

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        code = app.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        app._close_conn()
    if stopped:
        return 128 + stopped[0]  # the shell's convention for "ended by signal N"
    return code or 0
