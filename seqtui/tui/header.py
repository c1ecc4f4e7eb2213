"""The app's three header lines (where, counts and refresh, state and view) and the details pane of the
row under the cursor. A mixin of SeqtuiApp (app.py), which holds the state it uses."""

from __future__ import annotations

import re
import time

from rich.text import Text

from ..model import Verdict
from ..output import summary_text
from ..repair import plans_from_verdicts
from .details import details
from .screens import gated
from .table import COLUMNS

COLUMN_LABELS = {c.key: c.label for c in COLUMNS}


def fmt_interval(seconds: float) -> str:
    return f"{seconds:g}s"


class HeaderAndDetails:
    def read_only_reason(self) -> str | None:
        if self.forced_read_only:
            return "started with --read-only"
        if self.report is not None and self.report.read_only:
            return self.report.read_only_reason or "the server refuses writes"
        return None

    def _show_header(self) -> None:
        if not self.live_screen:
            return
        db = dict(self.report.database) if self.report else {}
        db.update(self.display_database or {})
        line = Text()
        line.append(" seqtui ", style="bold reverse")
        if db:
            where = db.get("host") or "local socket"
            if db.get("port"):
                where += f":{db['port']}"
            line.append(f" {db.get('name')}", style="bold")
            line.append(f" on {where} as {db.get('user')} · PostgreSQL {db.get('server_version')}")
            if db.get("in_recovery"):
                line.append(" · standby", style="magenta")
        else:
            line.append(f" {self.target.display}", style="bold")
        reason = self.read_only_reason()
        line.append(" · ")
        line.append("READ-ONLY" if reason else "read-write", style="bold magenta" if reason else "green")
        self._lines["db-line"].update(gated(line))

        summary = Text(" ")
        if self.report is None:
            summary.append("scanning…" if self.lost is None else "not connected", style="dim")
        else:
            if self._summary[0] is not self._counts:
                self._summary = (self._counts, summary_text(self._counts))
            counts = self._summary[1]
            for i, part in enumerate(counts.split(" · ")):
                if i:
                    summary.append(" · ", style="dim")
                word = part.split(" ", 1)[-1]
                summary.append(part, style={"behind": "bold red", "critical": "bold dark_orange",
                                            "warning": "yellow", "ok": "green", "unreadable": "magenta",
                                            "timeout": "magenta", "locked": "magenta",
                                            "missing": "magenta"}.get(word, ""))
        if self.measuring is not None:
            done, total = self.measuring
            summary.append(f"  measuring… {done:,} of {total:,} sequences", style="bold cyan")
            if done > self._measured_shown:  # the counts before it are of the rows in the table
                summary.append(f" ({self._measured_shown:,} in the table)", style="cyan")
        if self.last_refresh is not None:
            summary.append(f"  refreshed {self.last_refresh:%H:%M:%S}", style="dim")
        summary.append(f" · every {fmt_interval(self.interval)}" if self.live else " · manual refresh",
                       style="dim")
        self._lines["summary-line"].update(gated(summary))

        state = Text(" ")
        if self.lost is not None:
            wait = max(0, round((self.retry_at or 0) - time.monotonic()))
            when = f"{self.last_refresh:%H:%M:%S}" if self.last_refresh else "the start"
            # What the operator needs first (when it retries), then why: the reason may be long.
            state.append(" CONNECTION LOST ", style="bold white on red")
            state.append(" reconnecting…" if self.refreshing else
                         (" paused: p or r reconnects" if self.paused else f" retry in {wait}s (r: now)"),
                         style="bold red")
            state.append(f" · table stale since {when} · {short_error(self.lost)} ", style="red")
        elif self.paused:
            state.append(" PAUSED ", style="bold black on yellow")
            state.append(" p resumes, r refreshes once ", style="yellow")
        elif reason:
            state.append(" READ-ONLY ", style="bold white on magenta")
            state.append(f" {reason}: repairs are not offered ", style="magenta")
        if self.applying:
            state.append("applying repair… ", style="bold")
        # What shapes the view: the third line, so that the counts on the second never get cut off.
        if self.selected:
            hidden = len(self.selected - set(self.rows))
            state.append(f"{len(self.selected)} selected ", style="bold")
            if hidden:
                state.append(f"({hidden} hidden by the filter) ", style="bold yellow")
        if self.filter_query:
            state.append(f"filter: {self.filter_query} ", style="bold cyan")
        if self.sort_column is not None:
            arrow = "↓" if self.sort_reverse else "↑"
            state.append(f"sorted by {COLUMN_LABELS[self.sort_column]} {arrow} ", style="dim")
        if self.status_text:
            state.append(self.status_text, style="cyan")
        self._lines["state-line"].update(gated(state))

    def _show_details(self) -> None:
        if not self.live_screen:
            return
        key = self.current_key()
        v = self.verdicts.get(key) if key else None
        siblings: list[Verdict] = []
        plan = None
        if v is not None and v.sequence is not None and self.report is not None:
            siblings = [self.verdicts[k] for k in self._keys_of_oid.get(v.sequence.oid, ())]
            plans = plans_from_verdicts(siblings)
            plan = plans[0] if plans else None
        if v is None and self.report is not None and not self.rows:
            text = Text("No sequences match." if self.filter_query else "No sequences found in scope.", style="dim")
        else:
            text = details(v, siblings, plan, self.rate_of(v) if v else None, self.lock_timeout,
                           self.statement_timeout)
        # gated: a locked row's detail quotes another session's query, which may hold a password
        self._lines["details"].update(gated(text))


def short_error(text: str) -> str:
    """A connection error without the "(DATABASE_URL: postgresql://...)" part the header already shows."""
    return re.sub(r"^could not connect \([^)]*\): ", "could not connect: ", text)
