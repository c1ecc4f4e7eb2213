"""Headless presentation: the `check --json` contract and the rich table. Pure functions of a Report."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .model import CapacityLevel, Report, Status, Verdict, summary_counts
from .repair import FixPlan, plans_from_verdicts, rendered_commits_on_disk, rendered_statements

if TYPE_CHECKING:  # rich is imported lazily, where it is used
    from rich.text import Text

JSON_VERSION = 1

STATUS_STYLE = {
    Status.EXHAUSTED: "bold red",
    Status.BEHIND: "bold red",
    Status.UNREADABLE: "magenta",
    Status.TIMEOUT: "magenta",
    Status.LOCKED: "magenta",
    Status.MISSING: "magenta",
    Status.INCOMPARABLE: "dim",
    Status.OK: "green",
    Status.EMPTY: "dim",
    Status.UNUSED: "dim",
}
LEVEL_STYLE = {CapacityLevel.OK: "", CapacityLevel.WARNING: "yellow", CapacityLevel.CRITICAL: "bold red"}


def fix_sql(plan: FixPlan | None) -> str | None:
    if plan is None or not plan.fixable:
        return None
    return "\n".join(rendered_statements(plan, alone=True))  # a transaction someone may run by itself


def dry_run_text(groups, lock_timeout: float, statement_timeout: float) -> str:
    """What `fix`, `fix --all` and `sync` print for --dry-run after their plan: each fixable plan's
    transaction, under its heading when given ((heading or None, plans) per group), the wait for the
    disk that ends each batch, and that nothing changed."""
    out, any_fixable = [], False
    for heading, plans in groups:
        for plan in plans:
            if not plan.fixable:
                continue
            any_fixable = True
            out += ["", f"-- {heading}"] if heading else [""]
            out += rendered_statements(plan, lock_timeout, statement_timeout)
    if any_fixable:
        out += ["", "-- then, once per batch of fixes, a wait until their commits are on disk:",
                *rendered_commits_on_disk()]
    return "\n".join([*out, "", "dry run: nothing changed"])


def plans_by_sequence(report: Report) -> dict[int, FixPlan]:
    return {p.sequence.oid: p for p in plans_from_verdicts(report.verdicts)}


def verdict_json(v: Verdict, script: str | None = None) -> dict:
    """One row of the JSON contract; `script` is fix_sql() of the row's sequence plan."""
    seq, con, st = v.sequence, v.consumer, v.state
    if con is not None:
        schema, table, column = con.schema, con.table, con.column
    elif seq is not None:
        schema, table, column = seq.schema, None, None
    else:  # a watched table/column that is not there
        schema, table, column = v.watch_target or (None, None, None)
    return {
        "schema": schema,
        "table": table,
        "column": column,
        "sequence": seq.display_name if seq else None,
        "status": v.status.value,
        "last_value": st.last_value if st else None,
        "is_called": st.is_called if st else None,
        "increment": seq.increment if seq else None,
        "next_value": v.next_value,
        "high_water": v.high_water,
        "sequence_high_water": v.sequence_high_water,
        "gap": v.gap,
        "capacity_used": None if v.capacity_used is None else round(v.capacity_used, 6),
        "capacity_level": v.capacity_level.value if v.capacity_level else None,
        "fix_sql": script if v.status is Status.BEHIND else None,
        "fixable": v.fixable,
        "failing_now": v.failing_now,
        "collides_in": v.collides_in,
        "detail": v.detail,
        "blocked_by": v.blocked_by.as_json() if v.blocked_by else None,  # status "locked": who holds the lock
        "data_type": seq.data_type if seq else None,
        "min_value": seq.min_value if seq else None,
        "max_value": seq.max_value if seq else None,
        "cache": seq.cache if seq else None,
        "column_type": con.column_type if con else None,
        "consumer_kind": con.kind if con else None,
        "indexed": con.indexed if con else None,
        "watched": v.watched,
    }


def report_json(report: Report, exit_code: int) -> dict:
    plans = plans_by_sequence(report)
    scripts = {oid: fix_sql(plan) for oid, plan in plans.items()}  # once per sequence, not per row
    return {
        "version": JSON_VERSION,
        "database": report.database,
        "read_only": report.read_only,
        "summary": summary_counts(report.verdicts),
        "exit_code": exit_code,
        "sequences": [verdict_json(v, scripts.get(v.sequence.oid) if v.sequence else None)
                      for v in report.verdicts],
    }


def fmt_int(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def fmt_capacity(v: Verdict) -> "Text":
    from rich.text import Text

    if v.capacity_used is None:
        return Text("")
    pct = v.capacity_used * 100
    text = f"{pct:.1f}%" if pct < 10 else f"{pct:.0f}%"
    return Text(text, style=LEVEL_STYLE.get(v.capacity_level, ""))


def row_target(v: Verdict) -> str:
    return v.label or "(no consumer)"


def summary_line(report: Report) -> str:
    return summary_text(summary_counts(report.verdicts))


def summary_text(counts: dict[str, int]) -> str:
    """'3 behind · 1 critical · 40 ok', worst first."""
    order = ["exhausted", "behind", "critical", "warning", "unreadable", "timeout", "locked", "missing", "incomparable", "ok",
             "empty", "unused"]
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    return " · ".join(parts) if parts else "no sequences found"


def _status_text(v: Verdict) -> "Text":
    from rich.text import Text

    level = v.capacity_level
    if level in (CapacityLevel.WARNING, CapacityLevel.CRITICAL) and v.status not in (Status.BEHIND, Status.EXHAUSTED):
        return Text(f"{v.status.value} ({level.value})", style=LEVEL_STYLE[level])
    return Text(v.status.value, style=STATUS_STYLE[v.status])


# Columns of `check`, most important first, with the terminal width from which each is shown; the
# detail column needs room, and on narrower terminals details follow the table as a list instead.
CHECK_COLUMNS = [
    ("status", 0, {"no_wrap": True}, _status_text),
    ("used by", 0, {"overflow": "fold", "min_width": 14, "ratio": 2}, row_target),
    ("next", 0, {"justify": "right", "no_wrap": True}, lambda v: fmt_int(v.next_value)),
    ("high water", 0, {"justify": "right", "no_wrap": True}, lambda v: fmt_int(v.high_water)),
    ("used", 0, {"justify": "right", "no_wrap": True}, fmt_capacity),
    ("gap", 100, {"justify": "right", "no_wrap": True}, lambda v: fmt_int(v.gap or None)),
    ("sequence", 120, {"overflow": "fold", "min_width": 14, "ratio": 2},
     lambda v: v.sequence.display_name if v.sequence else ""),
    ("detail", 150, {"overflow": "fold", "min_width": 30, "ratio": 3}, lambda v: v.detail or ""),
]
DETAIL_WIDTH = 150


COLUMN_GAP = 2  # spaces between the columns of `check`


def _plain(cell) -> tuple[str, str]:
    """(text, style) of a CHECK_COLUMNS cell, which is a str or a rich Text."""
    if isinstance(cell, str):
        return cell, ""
    return cell.plain, str(cell.style or "")


def fit_widths(columns, natural: list[int], width: int, unbreakable: list[int] | None = None) -> list[int]:
    """Column widths for a terminal `width` wide: every column as wide as its content if that fits;
    otherwise the folding columns (names, details) give way, each down to its min_width, the room
    left shared in proportion to their ratio. `unbreakable`: per column, its widest word (wrap_cell's
    pieces); when there is room for them, no folding column goes below it, so no word is cut.
    Pure; used by check_table()."""
    flexible = [i for i, (_, _, kw, _) in enumerate(columns) if kw.get("overflow") == "fold"]
    widths = list(natural)
    room = width - COLUMN_GAP * (len(columns) - 1) - sum(w for i, w in enumerate(natural) if i not in flexible)
    if sum(natural[i] for i in flexible) <= room:
        return widths
    for i in flexible:
        widths[i] = min(natural[i], columns[i][2].get("min_width", 1))
    if unbreakable is not None:
        whole = {i: min(natural[i], max(widths[i], unbreakable[i])) for i in flexible}
        if sum(whole.values()) <= room:
            for i, w in whole.items():
                widths[i] = w
    spare = room - sum(widths[i] for i in flexible)
    while spare > 0:  # water-filling: hand out the room by ratio to the columns that still want it
        wanting = [i for i in flexible if widths[i] < natural[i]]
        if not wanting:
            break
        total = sum(columns[i][2].get("ratio", 1) for i in wanting)
        given = 0
        for i in wanting:
            share = max(1, spare * columns[i][2].get("ratio", 1) // total)
            add = min(share, natural[i] - widths[i], spare - given)
            widths[i] += add
            given += add
        if not given:
            break
        spare -= given
    return widths


def wrap_cell(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` cells, broken at spaces: a detail reads as sentences, not
    "(w" / "iden it". A word wider than the column (a long name) breaks after its dots
    (`public.` / `orders.id`), and only a part still wider than the column is cut."""
    from rich.cells import cell_len, chop_cells

    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if cell_len(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for part in _after_dots(word) if cell_len(word) > width else [word]:
            if cell_len(line + part) <= width:
                line += part
                continue
            if line:
                lines.append(line)
            *whole, line = chop_cells(part, width) if cell_len(part) > width else [part]
            lines += whole
    lines.append(line)
    return lines


def widest_word(text: str) -> int:
    """The widest piece wrap_cell() keeps whole: a column narrower than this cuts a word. Asked once
    for a whole column, its cells joined by spaces (one regex over the column, not a call per cell)."""
    from rich.cells import cell_len

    pieces = _PIECES.findall(text)  # as wrap_cell() breaks: at spaces, and after dots
    return max(map(len if text.isascii() else cell_len, pieces), default=0)  # ASCII: a cell a character


_PIECES = re.compile(r"[^ .]+\.?|\.")


def _after_dots(word: str) -> list[str]:
    """'public.orders.id' -> ['public.', 'orders.', 'id']: where a qualified name may break."""
    parts = word.split(".")
    return [p + "." for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def check_table(report: Report, width: int = 200):
    """What `check` prints: a title, one aligned line per row (worst first; a name too long for its
    column folds onto the next lines at its spaces, whole) and the summary.

    Drawn as lines of one rich Text rather than as a rich Table: a Table lays out and renders each
    cell on its own (10,000 rows took 7 s); this takes a fraction of a second and looks the same."""
    # rich is imported here, not at the top: `check --json` and `sql` never pay for it.
    from rich.cells import cell_len
    from rich.console import Group
    from rich.text import Text

    db = report.database
    title = f"{db['name']} on {db.get('host') or 'local socket'} as {db['user']} (PostgreSQL {db['server_version']})"
    if report.read_only_reason:
        title += f" — read-only: {report.read_only_reason}"
    columns = [c for c in CHECK_COLUMNS if width >= c[1]]
    rows = [[_plain(cell(v)) for _, _, _, cell in columns] for v in report.verdicts]
    natural = [max([cell_len(name)] + [cell_len(row[i][0]) for row in rows])
               for i, (name, _, _, _) in enumerate(columns)]
    unbreakable = None
    if sum(natural) + COLUMN_GAP * (len(columns) - 1) > width:  # something must wrap: keep its words whole
        unbreakable = [widest_word(" ".join(row[i][0] for row in rows)) if kw.get("overflow") == "fold" else 0
                       for i, (_, _, kw, _) in enumerate(columns)]
    widths = fit_widths(columns, natural, width, unbreakable)
    right = [kw.get("justify") == "right" for _, _, kw, _ in columns]
    gap = " " * COLUMN_GAP

    last = len(columns) - 1

    def pad(text: str, i: int) -> str:
        fill = " " * (widths[i] - cell_len(text))
        if right[i]:
            return fill + text
        return text if i == last else text + fill  # no trailing blanks

    body = Text(no_wrap=True, overflow="crop", end="")
    body.append(gap.join(pad(name, i) for i, (name, _, _, _) in enumerate(columns)).rstrip() + "\n",
                style="bold")
    body.append(gap.join("─" * w for w in widths) + "\n", style="dim")
    for row in rows:
        pieces = [wrap_cell(text, widths[i]) if cell_len(text) > widths[i] else [text]
                  for i, (text, _) in enumerate(row)]
        for line in range(max(len(p) for p in pieces)):
            out = Text()
            for i, (chunks, (_, style)) in enumerate(zip(pieces, row)):
                if i:
                    out.append(gap)
                out.append(pad(chunks[line] if line < len(chunks) else "", i), style=style or None)
            out.rstrip()  # a folded name's next line ends early: no trailing blanks
            body.append_text(out)
            body.append("\n")
    return Group(Text(title, style="bold"), body, Text(summary_line(report), style="dim"))


def check_notes(report: Report) -> list[str]:
    """The details of rows that need attention, for terminals too narrow for the detail column."""
    return [f"{row_target(v)}: {v.detail}" for v in report.verdicts
            if v.detail and (v.status not in (Status.OK, Status.EMPTY, Status.UNUSED) or
                             v.capacity_level in (CapacityLevel.WARNING, CapacityLevel.CRITICAL))]


def note_lines(notes: list[str], width: int) -> list[str]:
    """check_notes() as bullets wrapped at words for a terminal `width` wide, continuations indented
    under the text, so a note reads as one item however narrow the terminal."""
    out = []
    for note in notes:
        first, *rest = wrap_cell(note, max(width - 2, 10))
        out.append(f"• {first}")
        out += [f"  {line}" for line in rest]
    return out
