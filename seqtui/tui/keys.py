"""The app's keys, in three places that must agree: the bindings, the help screen's list and the
command palette (every action by name)."""

from __future__ import annotations

from typing import Iterable

from textual.binding import Binding
from textual.app import SystemCommand

from .seqtable import FILTER_KEY

# (key as shown, what it does): the help screen; the bindings below are the same keys.
KEY_HELP = [
    ("↑ ↓ PgUp PgDn", "move the cursor; the details pane follows it"),
    ("space", "select / unselect the row under the cursor"),
    ("b", "select every behind row (in the current filter)"),
    ("escape", "clear the selection"),
    ("f / enter", "preview the repair of the selection (or of the row under the cursor)"),
    ("y / n", "in the preview: apply / cancel"),
    ("c", "copy psql one-liner(s) for the selection (or the row under the cursor)"),
    ("s", "copy the SQL script that fixes every behind sequence"),
    ("/", "filter by name or status word (behind, ok, critical...); escape clears it"),
    ("o / O", "sort by the next column / reverse the order (or click a column header)"),
    ("r", "refresh now (or reconnect now after a lost connection)"),
    ("p", "pause / resume the automatic refresh"),
    ("+ / -", "refresh more / less often"),
    ("ctrl+p", "command palette: every action by name"),
    ("?", "this help"),
    ("q", "quit"),
]

BINDINGS = [
    Binding("q", "quit", "Quit"),
    Binding("question_mark", "help", "Help"),
    Binding("space", "toggle_row", "Select", show=False),
    Binding("b", "select_behind", "Behind", show=False),
    Binding("escape", "clear_selection", "Unselect"),
    Binding("f", "preview", "Fix"),
    Binding("f", "explain_read_only", "Read-only"),
    Binding("c", "copy_oneliners", "Copy"),
    Binding("s", "copy_script", "SQL"),
    Binding(FILTER_KEY, "filter", "Filter"),
    Binding("o", "sort_next", "Sort", show=False),
    Binding("O", "sort_reverse", "Reverse", show=False),
    Binding("r", "refresh_now", "Refresh"),
    Binding("p", "toggle_pause", "Pause"),
    Binding("plus,equals_sign", "faster", "Faster", show=False),
    Binding("minus", "slower", "Slower", show=False),
]


def palette_commands(app) -> Iterable[SystemCommand]:
    """The app's own commands for the palette (ctrl+p), before Textual's."""
    yield SystemCommand("Preview repair", "Preview (then apply) the fix of the selection or current row",
                        app.action_preview)
    yield SystemCommand("Select behind rows", "Select every behind row in view", app.action_select_behind)
    yield SystemCommand("Clear selection", "Unselect every row", app.action_clear_selection)
    yield SystemCommand("Copy psql one-liners", "For the selection or the current row",
                        app.action_copy_oneliners)
    yield SystemCommand("Copy SQL script", "Fixes every behind sequence", app.action_copy_script)
    yield SystemCommand("Filter", "By name or status word", app.action_filter)
    yield SystemCommand("Clear filter", "Show every row", app.action_clear_filter)
    yield SystemCommand("Sort by next column", "Cycle the sort column", app.action_sort_next)
    yield SystemCommand("Reverse sort", "Flip the sort order", app.action_sort_reverse)
    yield SystemCommand("Refresh now", "Scan again (or reconnect)", app.action_refresh_now)
    yield SystemCommand("Pause / resume refresh", "Toggle the automatic refresh", app.action_toggle_pause)
    yield SystemCommand("Refresh faster", "Shorter interval", app.action_faster)
    yield SystemCommand("Refresh slower", "Longer interval", app.action_slower)
    yield SystemCommand("Help", "Every key", app.action_help)
