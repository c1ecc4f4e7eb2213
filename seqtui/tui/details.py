"""The details pane for the row under the cursor, as a pure function of verdicts: rich Text only."""

from __future__ import annotations

from rich.text import Text

from ..model import Status, Verdict, usable_range
from ..output import STATUS_STYLE, fmt_int
from ..repair import DEFAULT_STATEMENT_TIMEOUT, FixPlan, rendered_statements
from .rates import exhaustion_text, fmt_rate
from .table import capacity_cell, status_cell


def _kv(text: Text, key: str, value: str, style: str = "") -> None:
    text.append(f"{key} ", style="dim")
    text.append(value, style=style)
    text.append("  ")


def details(v: Verdict | None, siblings: list[Verdict], plan: FixPlan | None, rate: float | None,
            lock_timeout: float, statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT) -> Text:
    """`siblings`: every row of the same sequence (all its consumers). `plan`: the fix for that
    sequence when it is behind."""
    out = Text()
    if v is None:
        out.append("No row under the cursor.", style="dim")
        return out
    seq, con = v.sequence, v.consumer
    out.append(v.label or (seq.display_name if seq else ""), style="bold")
    out.append("  ")
    cell = status_cell(v)
    out.append(cell.text, style=cell.style)
    out.append("\n")
    if v.detail:
        out.append(v.detail + "\n")
    if seq is None:
        return out

    out.append("\nSequence ", style="bold")
    out.append(seq.display_name + "\n")
    _kv(out, "type", seq.data_type)
    _kv(out, "start", fmt_int(seq.start))
    _kv(out, "increment", fmt_int(seq.increment))
    _kv(out, "cache", fmt_int(seq.cache))
    _kv(out, "cycle", "yes" if seq.cycle else "no")
    out.append("\n")
    _kv(out, "min", fmt_int(seq.min_value))
    _kv(out, "max", fmt_int(seq.max_value))
    out.append("\n")
    if v.state is not None:
        _kv(out, "last_value", fmt_int(v.state.last_value))
        _kv(out, "is_called", "true" if v.state.is_called else "false")
        _kv(out, "next value", fmt_int(v.next_value) or "none (exhausted)",
            "bold red" if v.status in (Status.BEHIND, Status.EXHAUSTED) else "")
        if v.failing_now is not None:
            _kv(out, "next INSERT", "fails now" if v.failing_now else
                (f"collides in {v.collides_in:,} inserts" if v.collides_in else "succeeds"),
                "bold red" if v.failing_now else ("yellow" if v.collides_in else ""))
        out.append("\n")
    if not seq.can_update:
        out.append("no UPDATE privilege on the sequence: setval is refused\n", style="magenta")

    consumers = [s for s in siblings if s.consumer is not None]
    out.append(f"\nConsumers ({len(consumers)})\n" if consumers else "\nNo column draws from it.\n",
               style="bold")
    for s in consumers:
        c = s.consumer
        out.append("  ▸ " if s.key == v.key else "    ")
        out.append(f"{c.schema}.{c.table}.{c.column}")
        out.append(f"  {c.column_type}, {c.kind}", style="dim")
        if c.indexed:
            out.append("  indexed", style="dim")
        else:
            out.append("  NOT indexed (max() scans the table)", style="yellow")
        out.append(f"  high-water {fmt_int(s.high_water) or '—'}  ")
        out.append(s.status.value, style=STATUS_STYLE[s.status])
        out.append("\n")

    if v.capacity_used is not None:
        lo, hi = usable_range(seq, con)
        out.append("\nCapacity ", style="bold")
        cap = capacity_cell(v)
        out.append(cap.text + " used", style=cap.style)
        out.append(f" of {fmt_int(lo)} … {fmt_int(hi)}", style="dim")
        if con is not None and con.comparable:
            out.append(f" (the narrower of the sequence and {con.limit_name()})", style="dim")
        out.append("\n")
        _kv(out, "rate", f"{fmt_rate(rate)} values/min" if rate is not None else "measured after two refreshes")
        if rate is not None:
            _kv(out, "exhausted in", exhaustion_text(v, rate))
        out.append("\n")

    if plan is not None:
        out.append("\nFix ", style="bold")
        if plan.fixable:
            out.append(f"next {fmt_int(plan.next_value)} → {fmt_int(plan.new_next_value)} "
                       "(recomputed under lock when it runs)\n")
            for stmt in rendered_statements(plan, lock_timeout, statement_timeout):
                out.append("  " + stmt + "\n", style="cyan")
            if seq.cache > 1:
                out.append(f"CACHE {seq.cache}: recycle connection pools after the fix.\n", style="yellow")
        else:
            out.append(f"setval cannot fix it: {plan.reason}\n", style="magenta")
    return out
