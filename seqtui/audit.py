"""An append-only JSON-lines record of every fix seqtui applied, so an operator can answer
"what did seqtui change last night?". One line per attempted sequence, written as soon as it is known."""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

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
    path: Path
    database: dict  # Report.database: name, host, port, user (never a password)
    source: str     # "fix" or "tui"

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
        # Written and closed per line, so a crash of seqtui loses nothing; no fsync per line, which
        # costs ~0.2 ms each and would dominate a fix of thousands of sequences.
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
