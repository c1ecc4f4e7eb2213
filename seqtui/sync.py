"""Cutover sync: move each sequence of this database past what another one (the source) handed out.

Logical replication copies rows, not sequence state (DESIGN fact 25), so after a switch the new primary's
sequences still stand where they were. For each target sequence, the same-named (schema.name) sequence
on the source is read (`last_value, is_called`, which a read-only standby answers too) and the target's
next value is planned as the furthest of: the source's next value (plus --margin increments of headroom),
past the target's own high-water mark (the scan's), and the target's own next value. Forward only,
mirrored for descending sequences, within bounds.

The plan is an ordinary repair.FixPlan with the source's mark as one more input
(`source_high_water`), so the SQL, the preview, the locks and the forward-only apply are fix's own.
Anything that does not pair up cleanly is reported, never skipped in silence: a sequence on one side
only, parameters that differ, a source sequence the role may not read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fnmatch import fnmatchcase

import psycopg

from . import catalog
from .judge import fix_blocker
from .model import Observation, Report, Sequence, SequenceState, combined_high_water, is_behind, next_of
from .repair import FixPlan, lock_order

# What each item of a sync plan says, as printed and in --json's "action".
SYNC = "sync"                     # the target moves forward
IN_STEP = "in step"               # the target is already past the source's mark and its own data
CANNOT = "cannot"                 # it should move, but cannot (bounds, privileges, direction, read-only)
TARGET_ONLY = "target only"       # no same-named sequence on the source
SOURCE_ONLY = "source only"       # no same-named sequence here
SOURCE_UNREADABLE = "source unreadable"
TARGET_UNREADABLE = "target unreadable"
PROBLEMS = (CANNOT, TARGET_ONLY, SOURCE_ONLY, SOURCE_UNREADABLE, TARGET_UNREADABLE)

# The parameters compared between the two sides: (attribute, how it is spelled in CREATE SEQUENCE).
_PARAMETERS = (("data_type", "AS"), ("increment", "INCREMENT"), ("min_value", "MINVALUE"),
               ("max_value", "MAXVALUE"), ("start", "START"), ("cycle", "CYCLE"), ("cache", "CACHE"))


@dataclass(frozen=True)
class SourceSequence:
    sequence: Sequence
    state: SequenceState | None  # None: it could not be read (see detail)
    detail: str | None = None


@dataclass(frozen=True)
class Source:
    """What was read from the source: its server and every user sequence by (schema, name)."""
    info: catalog.ServerInfo
    sequences: dict[tuple[str, str], SourceSequence]

    @property
    def label(self) -> str:
        """user@host:port/database: names the source in output and the audit log, never a password
        (it is built from what the server says, not from the URL)."""
        i = self.info
        where = f"{i.host}:{i.port}" if i.host and not i.host.startswith("/") else f"socket {i.host or ''}:{i.port}"
        return f"{i.user}@{where}/{i.name}"


def read_source(conn: psycopg.Connection) -> Source:
    """Every user sequence of the source with its state: the catalog's discovery query (parameters from
    pg_sequence) and catalog.read_states(), which reads `last_value, is_called` from each sequence (on a
    hot standby too; there a sequence reads up to 32 values ahead of its primary, which errs on the safe
    side). A sequence the role may not read is kept, with why."""
    with catalog.planned_for_any_statistics(conn):
        sequences = catalog.discover_sequences(conn)
    info = catalog.server_info(conn)
    states = catalog.read_states(conn, sequences)
    found = {}
    for seq, state in zip(sequences, states):
        if isinstance(state, SequenceState):
            found[seq.qualified] = SourceSequence(seq, state)
        else:
            found[seq.qualified] = SourceSequence(seq, None, state or "could not read the sequence")
    return Source(info, found)


@dataclass(frozen=True)
class SyncItem:
    """One sequence of the plan: what each side says and what will be done."""
    name: str  # schema.name, quoted where needed
    action: str
    target_next: int | None = None
    source_next: int | None = None
    high_water: int | None = None   # the target's own data (None: empty, or nothing draws from it)
    source_mark: int | None = None  # the last value the source may have handed out, plus --margin
    new_next: int | None = None
    reason: str | None = None
    differences: tuple[str, ...] = ()
    plan: FixPlan | None = None     # set for SYNC (and for CANNOT when a fix was planned but is blocked)

    def as_json(self) -> dict:
        return {"sequence": self.name, "action": self.action, "target_next": self.target_next,
                "source_next": self.source_next, "high_water": self.high_water,
                "source_mark": self.source_mark, "new_next": self.new_next, "reason": self.reason,
                "differences": list(self.differences)}

    def line(self) -> str:
        if self.action == SYNC:
            most = "highest" if self.plan is None or self.plan.sequence.ascending else "lowest"
            data = f"; {most} in the data {self.high_water}" if self.high_water is not None else ""
            return (f"{self.name}: next {self.target_next} -> {self.new_next} (source next "
                    f"{self.source_next}{data})")
        if self.action == IN_STEP:
            return (f"{self.name}: next {self.target_next} is already past the source's next "
                    f"{self.source_next} and the data")
        return f"{self.name}: {self.reason}"


@dataclass(frozen=True)
class SyncPlan:
    items: tuple[SyncItem, ...]
    margin: int

    @property
    def plans(self) -> list[FixPlan]:
        """The fixes to run (or show as blocked), in the order fix runs them."""
        return [i.plan for i in self.items if i.plan is not None]

    @property
    def problems(self) -> list[SyncItem]:
        """Everything the operator must know before cutover: not synced, or not alike on both sides."""
        return [i for i in self.items if i.action in PROBLEMS or i.differences]


def differences(target: Sequence, source: Sequence) -> tuple[str, ...]:
    """The parameters that differ between the two sides, each said as `INCREMENT: source 1, target 10`."""
    return tuple(f"{word}: source {_param(getattr(source, attr))}, target {_param(getattr(target, attr))}"
                 for attr, word in _PARAMETERS if getattr(source, attr) != getattr(target, attr))


def _param(value) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


def source_mark(source: SourceSequence, increment: int, margin: int) -> int:
    """The last value the source may have handed out (its next value less its increment: a sequence not
    called yet has handed out nothing up to its last_value), plus `margin` of the target's increments of
    headroom for writes that land on the source after it was read."""
    state, seq = source.state, source.sequence
    last = state.last_value if state.is_called else state.last_value - seq.increment
    return last + margin * increment


def _in_scope(seq: Sequence, schemas, exclude) -> bool:
    if schemas and seq.schema not in schemas:
        return False
    return not any(fnmatchcase(f"{seq.schema}.{seq.name}", p) for p in exclude)


def plan_sync(report: Report, source: Source, margin: int = 0, *, schemas=(), exclude=(),
              source_only: bool = True) -> SyncPlan:
    """The sync plan for every target sequence the scan observed, plus a SOURCE_ONLY item for each
    source sequence in scope (`schemas`, `exclude`) with no same-named one here (`source_only`=False
    leaves them out: with --table the scope is tables, which the source is not asked about)."""
    items = [_plan_one(obs, source.sequences.get(obs.sequence.qualified), margin)
             for obs in report.observations]
    if source_only:
        here = {obs.sequence.qualified for obs in report.observations}
        for key, src in sorted(source.sequences.items()):
            if key not in here and _in_scope(src.sequence, schemas, exclude):
                items.append(SyncItem(src.sequence.display_name, SOURCE_ONLY, reason=(
                    "on the source only: no sequence of that name here (not created on the target, or "
                    "outside --schema)")))
    if report.read_only_reason:
        items = [replace(i, action=CANNOT, reason=f"cannot sync: {report.read_only_reason}",
                         plan=replace(i.plan, fixable=False, reason=report.read_only_reason))
                 if i.action == SYNC else i for i in items]
    return SyncPlan(tuple(sorted(items, key=lambda i: i.name)), margin)


def _plan_one(obs: Observation, src: SourceSequence | None, margin: int) -> SyncItem:
    seq = obs.sequence
    name = seq.display_name
    if src is None:
        return SyncItem(name, TARGET_ONLY, reason=(
            "on the target only: no sequence of that name on the source, not synced (seqtui fix still "
            "judges it against its own data)"))
    diffs = differences(seq, src.sequence)
    if obs.state is None:
        return SyncItem(name, TARGET_UNREADABLE, differences=diffs,
                        reason=f"cannot read the target sequence: {obs.state_detail or 'no SELECT privilege'}")
    target_next = next_of(seq, obs.state)
    if src.state is None:
        return SyncItem(name, SOURCE_UNREADABLE, target_next=target_next, differences=diffs,
                        reason=f"cannot read the source sequence: {src.detail}; not synced")
    source_next = next_of(src.sequence, src.state)
    common = dict(target_next=target_next, source_next=source_next, differences=diffs)
    if seq.ascending != src.sequence.ascending:
        return SyncItem(name, CANNOT, **common, reason=(
            "cannot: the source counts the other way (INCREMENT "
            f"{src.sequence.increment} there, {seq.increment} here); make them alike first"))
    inc = seq.increment
    measured = [hw.value for c, hw in zip(obs.consumers, obs.high_waters) if c.comparable and hw.error is None]
    table_hw = combined_high_water(measured, inc)
    mark = source_mark(src, inc, margin)
    goal = combined_high_water([table_hw, mark], inc)
    common.update(high_water=table_hw, source_mark=mark)
    if target_next is None:
        return SyncItem(name, CANNOT, **common, reason=(
            "cannot: the target sequence is exhausted (NO CYCLE, at its bound): no setval helps; widen it"))
    if not is_behind(target_next, goal, inc):
        return SyncItem(name, IN_STEP, **common, new_next=target_next)
    after = goal + inc
    if not seq.min_value <= after <= seq.max_value:
        bound, word = (seq.max_value, "MAXVALUE") if seq.ascending else (seq.min_value, "MINVALUE")
        return SyncItem(name, CANNOT, **common, new_next=after, reason=(
            f"cannot: the next value {after} would pass the target's {word} {bound}: setval cannot help; "
            f"widen the sequence (ALTER SEQUENCE ... AS bigint {word} ...) and the column type"))
    if goal != table_hw:
        # The domain checks the scan asked for were for the data's mark, not for this one: not known.
        obs = replace(obs, high_waters=tuple(replace(hw, after_fits=None) for hw in obs.high_waters))
    blocker = fix_blocker(seq, obs, goal)
    consumers = lock_order([c for c in obs.consumers if c.comparable and c.can_read])
    plan = FixPlan(sequence=seq, consumers=consumers, next_value=target_next, high_water=goal,
                   fixable=blocker is None, reason=blocker, source_high_water=mark)
    if blocker:
        return SyncItem(name, CANNOT, **common, new_next=after, plan=plan, reason=f"cannot: {blocker}")
    return SyncItem(name, SYNC, **common, new_next=after, plan=plan)
