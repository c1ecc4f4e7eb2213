"""An append-only JSON-lines record of every fix seqtui applied, so an operator can answer
"what did seqtui change last night?". One line per attempted sequence, written as soon as it is known."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import IO

from . import redact
from .apply import FixResult


class AuditError(Exception):
    pass


def default_path(environ=None) -> Path:
    """$XDG_STATE_HOME/seqtui/audit.jsonl, else ~/.local/state/seqtui/audit.jsonl."""
    environ = os.environ if environ is None else environ
    base = Path(environ["XDG_STATE_HOME"]) if environ.get("XDG_STATE_HOME") else Path.home() / ".local" / "state"
    return base / "seqtui" / "audit.jsonl"


@lru_cache(maxsize=1)  # once per process: without $USER or $LOGNAME it is a passwd lookup, ~12 µs per line
def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): the uid still says who
        return str(os.getuid()) if hasattr(os, "getuid") else "?"


@dataclass
class AuditLog:
    """Used as a context manager around a run of fixes, the file stays open for the run (a few
    syscalls less per line: ~0.1 s of a 6,000-sequence fix, during which the server waited); outside
    one, record() opens and closes the file for its line."""
    path: Path
    database: dict  # Report.database: name, host, port, user (never a password)
    source: str     # "fix", "tui" or "sync"
    origin: str | None = None  # sync: the database the values came from, user@host:port/name (no password)
    _file: IO[str] | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> "AuditLog":
        try:
            self._file = open(self.path, "a", encoding="utf-8")
        except OSError:  # record() then opens it per line, and says why it cannot, as it did before
            self._file = None
        return self

    def __exit__(self, *exc) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def open(self) -> "AuditLog":
        """Make sure the log can be written before anything is changed."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise AuditError(f"cannot write the audit log {self.path}: {exc.strerror or exc}; "
                             "nothing was changed (use --audit-log PATH)") from None
        return self

    def record(self, result: FixResult) -> None:
        entry = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": self.source,
            "database": self.database.get("name"),
            "host": self.database.get("host"),
            "port": self.database.get("port"),
            "server_user": self.database.get("user"),
            "os_user": _os_user(),
            "sequence": result.plan.sequence.display_name,
            "before": result.before,
            "after": result.after,
            "result": result.outcome,
            "reason": result.reason,
        }
        if self.origin is not None:
            entry["from"] = self.origin
        # Handed to the kernel per line (flushed, or written and closed), so a crash of seqtui loses
        # nothing; no fsync per line, which costs ~0.2 ms each and would dominate a fix of thousands
        # of sequences.
        # Through the gate like every string seqtui writes: a server's reason may echo anything.
        line = redact.dumps(entry, ensure_ascii=False) + "\n"
        if self._file is not None:
            self._file.write(line)
            self._file.flush()
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
