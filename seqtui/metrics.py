"""Prometheus metrics of scan results: `check --format prometheus` (node_exporter's textfile collector)
and `seqtui exporter`'s /metrics.

Derived from the same DatabaseResults, and so from the same Verdicts, as `check --json`: the two can
never disagree. One gauge per fact, not one per verdict word; a fact seqtui could not establish (a row
not judged, an exhausted sequence's next value) is left out rather than reported as 0. The text format
and its escaping are prometheus_client's own.
"""

from __future__ import annotations

from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import redact
from .fleet import DatabaseResult
from .model import Status, Verdict

DB_LABELS = ("server", "database")
# table and column too: one sequence may feed several columns, and each is a series of its own
ROW_LABELS = DB_LABELS + ("schema", "sequence", "table", "column")
JUDGED = frozenset({Status.OK, Status.EMPTY, Status.BEHIND, Status.EXHAUSTED, Status.UNUSED})

# (name, help, value of a verdict or None when unknown)
ROW_GAUGES: list[tuple[str, str, Callable[[Verdict], float | None]]] = [
    ("seqtui_sequence_judged", "1 when seqtui could judge the row, 0 when it cannot be judged (no privilege, "
     "row-level security, a timeout, a default that is an expression)",
     lambda v: float(v.status in JUDGED)),
    ("seqtui_sequence_behind", "1 when the sequence's next value is not past this column's data",
     lambda v: float(v.status is Status.BEHIND) if v.status in JUDGED else None),
    ("seqtui_sequence_failing_now", "1 when the next default INSERT into this column fails",
     lambda v: None if v.failing_now is None else float(v.failing_now)),
    ("seqtui_sequence_capacity_used_ratio", "fraction used of the narrower of the sequence's and the "
     "column's range", lambda v: v.capacity_used),
    ("seqtui_sequence_next_value", "the value the next nextval() returns (absent when exhausted)",
     lambda v: v.next_value),
    ("seqtui_sequence_high_water", "this column's highest value (lowest, descending)",
     lambda v: v.high_water),
]


def _row_labels(r: DatabaseResult, v: Verdict) -> list[str] | None:
    seq, con = v.sequence, v.consumer
    if seq is None:  # a watched column that is not there, or a database not judged: no sequence
        return None
    return [r.server, r.database, con.schema if con else seq.schema, seq.display_name,
            con.table if con else "", con.column if con else ""]


def families(results: Iterable[DatabaseResult], gate: Callable[[str], str] = str,
             extra: Iterable[GaugeMetricFamily] = ()) -> list[GaugeMetricFamily]:
    """Every gauge over `results`; `gate` is applied to each label value."""
    results = list(results)
    up = GaugeMetricFamily("seqtui_database_up", "1 when the database could be scanned", labels=DB_LABELS)
    took = GaugeMetricFamily("seqtui_scan_duration_seconds", "how long the database's last scan took",
                             labels=DB_LABELS)
    when = GaugeMetricFamily("seqtui_scan_timestamp_seconds", "when the database's last scan ended "
                             "(Unix time)", labels=DB_LABELS)
    code = GaugeMetricFamily("seqtui_database_exit_code", "the database's `seqtui check` exit code: 0 ok, "
                             "1 warning, 2 critical, 3 unknown", labels=DB_LABELS)
    rows = [GaugeMetricFamily(name, text, labels=ROW_LABELS) for name, text, _ in ROW_GAUGES]
    # A series given twice makes Prometheus reject the whole scrape: the first (the worst row, in a
    # report's order) is kept when two --dsn name one server, or two rows one column.
    seen: set[tuple[str, ...]] = set()
    for r in results:
        labels = [gate(r.server), gate(r.database)]
        if tuple(labels) in seen:
            continue
        seen.add(tuple(labels))
        up.add_metric(labels, float(r.up))
        took.add_metric(labels, r.seconds)
        when.add_metric(labels, r.finished)
        code.add_metric(labels, float(r.code))
        for v in r.verdicts:
            row = _row_labels(r, v)
            if row is None:
                continue
            row = [gate(x) for x in row]
            if tuple(row) in seen:
                continue
            seen.add(tuple(row))
            for family, (_, _, value_of) in zip(rows, ROW_GAUGES):
                value = value_of(v)
                if value is not None:
                    family.add_metric(row, float(value))
    return [up, took, when, code, *extra, *rows]


class _Families(Collector):
    def __init__(self, make: Callable[[], list]) -> None:
        self._make = make

    def collect(self):
        return self._make()


def exposition(make: Callable[[Callable[[str], str]], list]) -> bytes:
    """The text format of the families `make(gate)` builds. Built once without the gate, which is the
    usual case; only when the text holds something password-shaped, again with every label value
    gated on its own, so that a mask can never break the format (as redact.dumps does for JSON)."""
    def render(gate) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(lambda: make(gate)))
        return generate_latest(registry)

    text = render(str)
    if not redact.may_hold_secret(text.decode("utf-8", "replace")):
        return text
    return render(redact.gate)


def report_text(results: list[DatabaseResult]) -> str:
    """What `check --format prometheus` prints."""
    return exposition(lambda gate: families(results, gate)).decode("utf-8")
