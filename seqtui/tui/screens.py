"""Small modal screens, one job each: confirm a repair, show its results, show copied text, help."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static, TextArea

from ..apply import FIXED, UNCHANGED, FixResult
from ..redact import gate
from ..output import fmt_int
from ..repair import DEFAULT_STATEMENT_TIMEOUT, FixPlan, rendered_commits_on_disk, rendered_statements


def gated(text: Text) -> Text:
    """`text` through the secrets gate (redact.py). Nothing masked: the same Text, styles and all;
    something masked (rare: only text holding a password or its shape), the masked text plainly."""
    plain = text.plain
    masked = gate(plain)
    return text if masked == plain else Text(masked, style=text.style)


def preview_text(plans: list[FixPlan], nothing: list[str], lock_timeout: float,
                 statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT) -> Text:
    """Every sequence that will change, its next value now and after, and the exact SQL that runs."""
    out = Text()
    fixable = [p for p in plans if p.fixable]
    if fixable:
        out.append(f"{len(fixable)} sequence{'s' if len(fixable) != 1 else ''} will change. ", style="bold")
        out.append("Each runs in its own short transaction; the target is recomputed under lock, "
                   "and a sequence only ever moves forwards.\n", style="dim")
    for plan in plans:
        out.append("\n")
        seq = plan.sequence
        out.append(seq.display_name, style="bold")
        if not plan.fixable:
            out.append("  cannot be fixed: ", style="bold magenta")
            out.append(f"{plan.reason}\n", style="magenta")
            continue
        out.append("  next ")
        out.append(fmt_int(plan.next_value), style="bold red")
        out.append(" → ")
        out.append(fmt_int(plan.new_next_value), style="bold green")
        users = ", ".join(f"{c.schema}.{c.table}.{c.column}" for c in plan.consumers)
        out.append(f"  (high-water {fmt_int(plan.high_water)} in {users})\n", style="dim")
        for stmt in rendered_statements(plan, lock_timeout, statement_timeout):
            out.append("  " + stmt + "\n", style="cyan")
        if seq.cache > 1:
            out.append(f"  CACHE {seq.cache}: recycle connection pools afterwards.\n", style="yellow")
    if fixable:
        out.append("\nThen, once per batch of fixes, a wait until their commits are on disk:\n", style="dim")
        for stmt in rendered_commits_on_disk():
            out.append("  " + stmt + "\n", style="cyan")
    if nothing:
        out.append("\nNothing to fix for:\n", style="bold")
        for line in nothing:
            out.append(f"  {line}\n", style="dim")
    if not fixable:
        out.append("\nNothing will change.\n", style="bold")
    return gated(out)


class PreviewScreen(ModalScreen[bool]):
    """Confirm a repair. Dismisses True only on `y` (or the Apply button) and only if something can change."""

    BINDINGS = [
        Binding("y", "apply", "Apply"),
        Binding("n", "cancel", "Cancel"),
        Binding("escape", "cancel", "Cancel", show=False),
    ]

    def __init__(self, plans: list[FixPlan], nothing: list[str], lock_timeout: float,
                 statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT) -> None:
        super().__init__()
        self.plans = plans
        self.nothing = nothing
        self.lock_timeout = lock_timeout
        self.statement_timeout = statement_timeout
        self.can_apply = any(p.fixable for p in plans)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Static("Preview repair" if self.can_apply else "Nothing to repair", classes="title")
            with VerticalScroll(classes="body"):
                yield Static(preview_text(self.plans, self.nothing, self.lock_timeout, self.statement_timeout), id="preview-text")
            with Horizontal(classes="buttons"):
                if self.can_apply:
                    yield Button("Apply (y)", id="apply", variant="error")
                yield Button("Cancel (n)" if self.can_apply else "Close (esc)", id="cancel")

    def check_action(self, action: str, parameters) -> bool | None:
        if action == "apply":
            return self.can_apply
        return True

    def action_apply(self) -> None:
        if self.can_apply:
            self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_apply() if event.button.id == "apply" else self.action_cancel()


def result_text(results: list[FixResult], total: int, done: bool) -> Text:
    out = Text()
    for r in results:
        style = "green" if r.outcome == FIXED else ("" if r.outcome == UNCHANGED else "bold red")
        out.append(r.line() + "\n", style=style)
    if not done:
        out.append(f"\napplying… {len(results)}/{total}\n", style="dim")
    else:
        failed = [r for r in results if not r.ok]
        if failed:
            out.append(f"\n{len(failed)} of {len(results)} not fixed; nothing is retried.\n", style="bold red")
        else:
            out.append(f"\nall {len(results)} done.\n", style="bold green")
        cached = [r.plan.sequence.display_name for r in results if r.outcome == FIXED and r.plan.sequence.cache > 1]
        if cached:
            out.append(f"{', '.join(cached)}: CACHE > 1, recycle connection pools.\n", style="yellow")
    return gated(out)


class ClosableModal(ModalScreen[None]):
    """A panel that only shows something: its bindings and its Close button dismiss it."""

    def action_close(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_close()


class ResultsScreen(ClosableModal):
    """Per-sequence outcomes of an apply, filled in as they arrive."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("enter", "close", "Close", show=False),
                Binding("q", "close", "Close", show=False)]

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total
        self.results: list[FixResult] = []
        self.done = False

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog compact"):
            yield Static("Repair results", classes="title")
            with VerticalScroll(classes="body"):
                yield Static(result_text([], self.total, False), id="results-text")
            with Horizontal(classes="buttons"):
                yield Button("Close (esc)", id="close")

    def add(self, result: FixResult) -> None:
        self.results.append(result)
        self._show()

    def finish(self) -> None:
        self.done = True
        self._show()

    def _show(self) -> None:
        # The operator may close this panel while the repair goes on; later results then have nowhere
        # to go here (they still reach app.last_results and the closing notification).
        for text in self.query("#results-text").results(Static):
            text.update(result_text(self.results, self.total, self.done))

    def on_mount(self) -> None:
        self._show()



class CopyScreen(ClosableModal):
    """Text that was sent to the clipboard, shown so it can be selected by hand where OSC 52 is ignored."""

    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, title: str, text: str, note: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.text = text
        self.note = note

    def compose(self) -> ComposeResult:
        hint = Text()
        if self.note:
            hint.append(self.note + "\n", style="bold")
        hint.append("Copied to the clipboard (OSC 52). If your terminal does not support that, "
                    "select the text below by hand (shift+drag in most terminals).")
        with Vertical(id="dialog", classes="dialog wide"):
            yield Static(self.title_text, classes="title")
            yield Static(hint, classes="hint", id="copy-note")
            yield TextArea(self.text, read_only=True, soft_wrap=True, id="copy-text")
            with Horizontal(classes="buttons"):
                yield Button("Close (esc)", id="close")



class HelpScreen(ClosableModal):
    """Every key, in one place."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("question_mark", "close", "Close", show=False),
                Binding("q", "close", "Close", show=False)]

    def __init__(self, keys: list[tuple[str, str]], note: str = "") -> None:
        super().__init__()
        self.keys = keys
        self.note = note

    def compose(self) -> ComposeResult:
        # A grid, so that a wrapped description stays in its column at 80 columns.
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        for key, what in self.keys:
            grid.add_row(key, what)
        if self.note:
            grid.add_row("", Text(self.note, style="dim"))
        with Vertical(id="dialog", classes="dialog"):
            yield Static("seqtui keys", classes="title")
            with VerticalScroll(classes="body"):
                yield Static(grid, id="help-text")
            with Horizontal(classes="buttons"):
                yield Button("Close (esc)", id="close")

