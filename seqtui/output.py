"""Headless presentation: the `check --json` contract and the rich table. Pure functions of a Report."""

from __future__ import annotations

from .model import CapacityLevel, Report, Status, Verdict, summary_counts
from .repair import FixPlan, plans_from_verdicts, render, transaction_statements

JSON_VERSION = 1

STATUS_STYLE = {
    Status.BEHIND: "bold red",
    Status.UNREADABLE: "magenta",
    Status.TIMEOUT: "magenta",
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
    return "\n".join(render(s) + ";" for s in transaction_statements(plan))


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
        "detail": v.detail,
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
    counts = summary_counts(report.verdicts)
    order = ["behind", "critical", "warning", "unreadable", "timeout", "missing", "incomparable", "ok",
             "empty", "unused"]
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    return " · ".join(parts) if parts else "no sequences found"


def check_table(report: Report) -> "Table":
    # rich is imported here, not at the top: `check --json` and `sql` never pay for it.
    from rich.table import Table
    from rich.text import Text

    db = report.database
    title = f"{db['name']} on {db.get('host') or 'local socket'} as {db['user']} (PostgreSQL {db['server_version']})"
    if report.read_only_reason:
        title += f" — read-only: {report.read_only_reason}"
    table = Table(title=title, title_justify="left", caption=summary_line(report), caption_justify="left",
                  show_lines=False, expand=False)
    num = {"justify": "right", "no_wrap": True}
    for name, kw in [("status", {"no_wrap": True}), ("sequence", {"overflow": "fold"}),
                     ("used by", {"overflow": "fold"}), ("next", num), ("high water", num), ("gap", num),
                     ("used", num), ("detail", {"overflow": "fold", "min_width": 20})]:
        table.add_column(name, **kw)
    for v in report.verdicts:
        level = v.capacity_level
        status = Text(v.status.value, style=STATUS_STYLE[v.status])
        if level in (CapacityLevel.WARNING, CapacityLevel.CRITICAL) and v.status is not Status.BEHIND:
            status = Text(f"{v.status.value} ({level.value})", style=LEVEL_STYLE[level])
        table.add_row(status, v.sequence.display_name if v.sequence else "", row_target(v),
                      fmt_int(v.next_value), fmt_int(v.high_water), fmt_int(v.gap or None),
                      fmt_capacity(v), v.detail or "")
    return table
