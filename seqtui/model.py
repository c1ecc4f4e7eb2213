"""What seqtui knows about sequences, and the pure rules that judge them.

Everything here is an immutable value or a pure function: the catalog reads PostgreSQL into these
values, `judge()` turns them into verdicts, and every face (check, sql, fix, the TUI) shows the same
verdicts. Terms follow DESIGN.md: `next` is what the next nextval() returns, `hw` (high-water mark) is
the greatest value over all consumers (the least, for a descending sequence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Status(str, Enum):
    """The state of one consumer row. Order matters: it is the default sort (worst first)."""

    EXHAUSTED = "exhausted"        # no next value: nextval() fails, or its value does not fit the column
    BEHIND = "behind"              # the next value is at or below the data: an INSERT collides, now or soon
    UNREADABLE = "unreadable"      # privilege missing: we cannot tell, and say so
    TIMEOUT = "timeout"            # the high-water query ran past statement_timeout
    MISSING = "missing"            # a watched table/column that does not exist or has no sequence
    INCOMPARABLE = "incomparable"  # the column's values are not integers the sequence could collide with
    OK = "ok"                      # next value is past every existing row (a gap is information)
    EMPTY = "empty"                # no rows: nothing to collide with, the sequence is left alone
    UNUSED = "unused"              # a sequence no column draws from

    def __str__(self) -> str:
        return self.value


class CapacityLevel(str, Enum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"

    def __str__(self) -> str:
        return self.value


# Integer column types seqtui can compare with a sequence, and the values they hold.
INTEGER_TYPE_BOUNDS: dict[str, tuple[int, int]] = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
    "numeric": (-(2**63), 2**63 - 1),  # setval takes bigint, so that is the usable range
}


@dataclass(frozen=True)
class Thresholds:
    warning: float = 0.75
    critical: float = 0.90


@dataclass(frozen=True, slots=True)
class Sequence:
    oid: int
    schema: str
    name: str
    data_type: str  # smallint / integer / bigint
    start: int
    min_value: int
    max_value: int
    increment: int
    cache: int
    cycle: bool
    can_read: bool = True    # SELECT or USAGE on the sequence
    can_update: bool = True  # UPDATE on the sequence: setval is allowed
    qualified_name: str = ""  # schema.name quoted where needed, by the server's quote_ident()
    # The server has pg_get_sequence_data() (PostgreSQL 18+): a fix reads the state through it instead of
    # scanning the sequence relation, whose planning made up about half of a fix's server time.
    data_function: bool = False

    @property
    def display_name(self) -> str:
        return self.qualified_name or f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    @property
    def ascending(self) -> bool:
        return self.increment > 0

    @property
    def qualified(self) -> tuple[str, str]:
        return (self.schema, self.name)


@dataclass(frozen=True, slots=True)
class Consumer:
    """A column that draws values from a sequence."""

    table_oid: int
    schema: str
    table: str
    column: str
    attnum: int
    column_type: str  # format_type() of the column, e.g. "integer", "text"
    kind: str         # "serial", "identity always", "identity by default", "default", "owned"
    indexed: bool     # some btree index leads with the column: max() is an index lookup
    can_read: bool = True  # SELECT on the column (and USAGE on its schema)
    can_lock: bool = True  # LOCK ... IN EXCLUSIVE MODE is allowed (UPDATE/DELETE/TRUNCATE/MAINTAIN)
    relkind: str = "r"
    bare: bool = True      # the default is nextval() itself, under casts at most (DESIGN fact 19)
    unique: bool = True    # a unique index on the column alone: an INSERT of a taken value fails
    rls_role: str | None = None  # row-level security hides rows from this role (fact 15): not judged
    domain: tuple[str, str] | None = None  # (schema, name) of the column's domain type (fact 21)

    @property
    def comparable(self) -> bool:
        """Its values are the sequence's own: an integer column whose default is bare nextval()."""
        return self.bare and self.column_type in INTEGER_TYPE_BOUNDS

    @property
    def qualified_table(self) -> tuple[str, str]:
        return (self.schema, self.table)


@dataclass(frozen=True, slots=True)
class SequenceState:
    last_value: int
    is_called: bool


@dataclass(frozen=True, slots=True)
class HighWater:
    """max() (or min(), descending) of one consumer column; value None means the table is empty."""

    value: int | None = None
    error: Status | None = None  # UNREADABLE or TIMEOUT when it could not be measured
    detail: str | None = None
    # When behind: the first value on the sequence's path (next, next + inc, ...) that a row of the
    # relation itself already holds, None when none does up to the high-water mark (DESIGN fact 20).
    # `probed` is False when that was not asked (not behind) or could not be read.
    taken: int | None = None
    probed: bool = False
    # A domain column (DESIGN fact 21): does the domain's CHECK accept the next value, and the value
    # after a fix? Asked of the server; None when not asked.
    next_fits: bool | None = None
    after_fits: bool | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything read about one sequence: definition, state and each consumer's high-water mark."""

    sequence: Sequence
    consumers: tuple[Consumer, ...]
    state: SequenceState | None  # None when it could not be read
    high_waters: tuple[HighWater, ...]  # parallel to consumers
    state_detail: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """One row: a consumer of a sequence (or a consumer-less sequence, or a missing watched column)."""

    status: Status
    sequence: Sequence | None
    consumer: Consumer | None
    state: SequenceState | None = None
    high_water: int | None = None         # this consumer's own hw
    sequence_high_water: int | None = None  # hw over every consumer of the sequence: the fix target
    capacity_used: float | None = None
    capacity_level: CapacityLevel | None = None
    gap: int | None = None  # values skipped between hw and next (sequence ahead): information only
    fixable: bool = False   # the sequence is behind and setval can repair it
    failing_now: bool | None = None  # the next default INSERT fails (None: cannot be told)
    collides_in: int | None = None   # behind: the first default INSERT that collides (1: the next one)
    blocker: str | None = None  # behind but not fixable: why, and what to do instead
    detail: str | None = None
    watched: bool = False
    watch_target: tuple[str | None, str, str | None] | None = None  # MISSING rows: (schema, table, column)

    @property
    def next_value(self) -> int | None:
        if self.state is None or self.sequence is None:
            return None
        return next_of(self.sequence, self.state)

    @property
    def label(self) -> str:
        """schema.table.column of the row (what the watchlist named, for a MISSING row)."""
        if self.consumer is not None:
            return f"{self.consumer.schema}.{self.consumer.table}.{self.consumer.column}"
        if self.watch_target is not None:
            return ".".join(p for p in self.watch_target if p)
        return ""

    @property
    def key(self) -> str:
        """Stable identity of the row across refreshes (the TUI's row key)."""
        if self.sequence is None:
            return f"missing:{self.label}"
        if self.consumer is None:
            return f"{self.sequence.oid}:-"
        return f"{self.sequence.oid}:{self.consumer.table_oid}:{self.consumer.attnum}"


@dataclass(frozen=True, slots=True)
class Report:
    """A whole scan: the server it came from and every verdict."""

    database: dict
    verdicts: tuple[Verdict, ...]
    observations: tuple[Observation, ...] = field(default=(), repr=False)
    read_only: bool = False
    read_only_reason: str | None = None


def quote_ident(name: str) -> str:
    """Always-quoted identifier, for values built without a server (the server's quote_ident() is
    used for everything read from a catalog)."""
    return '"' + name.replace('"', '""') + '"'


# -- pure rules -------------------------------------------------------------------------------

def next_value(state: SequenceState, increment: int) -> int:
    """The value the next nextval() returns."""
    return state.last_value + increment if state.is_called else state.last_value


def next_of(seq: Sequence, state: SequenceState) -> int | None:
    """What nextval() returns next, within the sequence's bounds (DESIGN fact 17): past MAXVALUE
    (MINVALUE, descending) a CYCLE sequence starts again at MINVALUE (MAXVALUE), a NO CYCLE one has no
    next value at all: None, nextval() raises "reached maximum value"."""
    if not state.is_called:
        return state.last_value
    n = state.last_value + seq.increment
    if seq.min_value <= n <= seq.max_value:
        return n
    if seq.cycle:
        return seq.min_value if seq.ascending else seq.max_value
    return None


def is_behind(next_val: int, hw: int, increment: int) -> bool:
    """Would the next nextval() collide with an existing value? (DESIGN fact 4)"""
    return next_val <= hw if increment > 0 else next_val >= hw


def combined_high_water(values: list[int], increment: int) -> int | None:
    """The hw over several consumers: max ascending, min descending; None when all are empty."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return max(present) if increment > 0 else min(present)


def usable_range(seq: Sequence, column_type: str | None) -> tuple[int, int]:
    """The narrower of the sequence's bounds and the column type's (DESIGN fact 8); for a domain, the
    type under it (fact 21: its CHECK is asked of the server for the values that matter)."""
    lo, hi = seq.min_value, seq.max_value
    if column_type in INTEGER_TYPE_BOUNDS:
        tlo, thi = INTEGER_TYPE_BOUNDS[column_type]
        lo, hi = max(lo, tlo), min(hi, thi)
    return lo, hi


def capacity_used(seq: Sequence, state: SequenceState, column_type: str | None,
                  hw: int | None = None) -> float:
    """Fraction of the usable range consumed, counting downwards for descending sequences.

    The position is where the sequence will hand out its next value, or past the high-water mark when
    the sequence is behind (that is where a fix puts it). An exhausted sequence has used it all."""
    lo, hi = usable_range(seq, column_type)
    pos = next_of(seq, state)
    if pos is None:
        return 1.0
    if hw is not None:
        pos = max(pos, hw + seq.increment) if seq.ascending else min(pos, hw + seq.increment)
    span = hi - lo + 1
    if span <= 0:
        return 1.0
    used = (pos - lo) if seq.ascending else (hi - pos)
    return min(1.0, max(0.0, used / span))


def capacity_note(seq: Sequence, column_type: str | None, fraction: float) -> str:
    """Which limit is near, and what to do about it."""
    lo, hi = usable_range(seq, column_type)
    end = hi if seq.ascending else lo
    by_column = end != (seq.max_value if seq.ascending else seq.min_value)
    what = f"the {column_type} column" if by_column else "the sequence's " + ("MAXVALUE" if seq.ascending else "MINVALUE")
    fix = "ALTER TABLE ... ALTER COLUMN ... TYPE bigint" if by_column else "ALTER SEQUENCE ... AS bigint"
    return f"{fraction:.0%} of the range used: {what} runs out at {end:,} (widen it: {fix})"


def capacity_level(fraction: float, thresholds: Thresholds) -> CapacityLevel:
    if fraction >= thresholds.critical:
        return CapacityLevel.CRITICAL
    if fraction >= thresholds.warning:
        return CapacityLevel.WARNING
    return CapacityLevel.OK


def fix_target(seq: Sequence, hw: int, consumers: tuple[Consumer, ...] = (),
               high_waters: tuple[HighWater, ...] = ()) -> tuple[bool, str | None]:
    """Can setval(seq, hw, true) repair the sequence? (DESIGN fact 5) Returns (ok, why not). The value
    after the fix must also fit every column that draws from the sequence: a full smallint column is
    not repaired by moving its sequence past it."""
    after = hw + seq.increment
    if seq.ascending and (hw > seq.max_value or after > seq.max_value):
        return False, (f"the highest id {hw} leaves no room below the sequence's MAXVALUE {seq.max_value}: "
                       "setval cannot help; widen the sequence (ALTER SEQUENCE ... AS bigint MAXVALUE ...) "
                       "and the column type")
    if not seq.ascending and (hw < seq.min_value or after < seq.min_value):
        return False, (f"the lowest id {hw} leaves no room above the sequence's MINVALUE {seq.min_value}: "
                       "setval cannot help; widen the sequence and the column type")
    for c, hw_c in zip(consumers, high_waters or (HighWater(),) * len(consumers)):
        lo, hi = usable_range(seq, c.column_type)
        if not lo <= after <= hi or hw_c.after_fits is False:
            limit = "its domain's CHECK" if hw_c.after_fits is False else f"{c.column_type}: {lo:,} to {hi:,}"
            return False, (f"after the fix the next value {after:,} would not fit {c.schema}.{c.table}.{c.column} "
                           f"({limit}): setval cannot help; widen the column (ALTER TABLE ... ALTER COLUMN ... "
                           "TYPE bigint, or the domain)")
    return True, None


def _fix_blocker(seq: Sequence, obs: Observation, seq_hw: int | None) -> str | None:
    """Why the fix, run by this role, could not repair the sequence (DESIGN facts 5, 11, 16): computed
    from exactly what the fix does, for every table it reads and locks."""
    pairs = [(c, hw) for c, hw in zip(obs.consumers, obs.high_waters) if c.comparable]
    measured = [c for c, _ in pairs]
    if seq_hw is not None:
        ok, why = fix_target(seq, seq_hw, tuple(measured), tuple(hw for _, hw in pairs))
        if not ok:
            return why
    blind = [(c, hw) for c, hw in zip(obs.consumers, obs.high_waters)
             if c.comparable and hw.error is Status.UNREADABLE]
    if blind:
        # A consumer the role may not read (or sees only part of) is invisible to the fix too: its ids
        # could stay above the target.
        return (f"cannot read {', '.join(f'{c.schema}.{c.table}' for c, _ in blind)}, which also draws from "
                "this sequence: a fix could not see its ids (grant SELECT on it, or fix as its owner)")
    if not seq.can_update:
        return "no UPDATE privilege on the sequence: setval is refused"
    # PostgreSQL 12 asks the privilege of every partition too (consumers.sql): name where to look
    on_12 = " (or a partition of it, on PostgreSQL 12)"
    unlockable = sorted({f"{c.schema}.{c.table}" + (on_12 if c.relkind == "p" else "")
                         for c in measured if not c.can_lock})
    if unlockable:
        return (f"no UPDATE, DELETE, TRUNCATE or MAINTAIN privilege on {', '.join(unlockable)}: the fix cannot "
                "lock it IN EXCLUSIVE MODE (grant UPDATE on it, or fix as its owner)")
    return None


def _exhausted(seq: Sequence, nxt: int | None, consumer: Consumer, hw: HighWater) -> str | None:
    """Why every default INSERT into the column fails before any row is looked at, if it does."""
    if nxt is None:
        bound, what = (seq.max_value, "MAXVALUE") if seq.ascending else (seq.min_value, "MINVALUE")
        return (f"exhausted: nextval() fails, the sequence reached its {what} {bound:,} (NO CYCLE); no setval "
                f"helps: raise it (ALTER SEQUENCE ... {what} ...), or widen it (AS bigint) and the column")
    if consumer.comparable:
        lo, hi = usable_range(seq, consumer.column_type)
        if not lo <= nxt <= hi:
            return (f"exhausted: the next value {nxt:,} does not fit the column ({consumer.column_type}: {lo:,} "
                    f"to {hi:,}): every default INSERT fails; widen the column (ALTER TABLE ... ALTER COLUMN "
                    "... TYPE bigint)")
        if hw.next_fits is False:
            return (f"exhausted: the next value {nxt:,} fails the CHECK of the column's domain "
                    f"{'.'.join(consumer.domain or ())}: every default INSERT fails; widen the domain")
    return None


def _behind_detail(seq: Sequence, consumer: Consumer, nxt: int, hw: HighWater) -> tuple[bool | None, int | None, str]:
    """failing now, or in how many inserts, and the sentence that says so (DESIGN fact 20)."""
    most = "highest" if seq.ascending else "lowest"
    if not consumer.unique:
        return False, None, (f"next value {nxt} is not past the data ({most} id {hw.value}), but no unique index "
                             "covers the column: inserts succeed and repeat ids")
    if not hw.probed:
        return None, None, f"next value {nxt} is not past the data ({most} id {hw.value})"
    if hw.taken == nxt:
        return True, 1, f"failing now: next value {nxt} is already used ({most} id {hw.value})"
    if hw.taken is None:
        return False, None, (f"next value {nxt} is free and no existing id lies on the sequence's path up to "
                             f"the {most} id {hw.value}")
    n = (hw.taken - nxt) // seq.increment + 1
    return False, n, (f"collides in {n:,} inserts: next value {nxt} is free, {hw.taken} is taken "
                      f"({most} id {hw.value})")


def judge(obs: Observation, thresholds: Thresholds = Thresholds()) -> list[Verdict]:
    """Verdicts for every consumer of one observed sequence (one row if it has none)."""
    seq = obs.sequence
    if obs.state is None:
        why = obs.state_detail or "no SELECT or USAGE privilege on the sequence"
        if not obs.consumers:
            return [Verdict(Status.UNREADABLE, seq, None, detail=why)]
        return [Verdict(Status.UNREADABLE, seq, c, detail=why) for c in obs.consumers]

    state = obs.state
    nxt = next_of(seq, state)
    measured = [hw.value for c, hw in zip(obs.consumers, obs.high_waters)
                if c.comparable and hw.error is None]
    seq_hw = combined_high_water(measured, seq.increment)
    blocker = _fix_blocker(seq, obs, seq_hw)
    cache_note = (f" CACHE {seq.cache}: sessions may still hand out values cached before the fix; "
                  "recycle connection pools afterwards.") if seq.cache > 1 else ""

    if not obs.consumers:
        frac = capacity_used(seq, state, None)
        return [Verdict(Status.UNUSED, seq, None, state=state, capacity_used=frac,
                        capacity_level=capacity_level(frac, thresholds),
                        detail="no column draws from this sequence")]

    verdicts = []
    for consumer, hw in zip(obs.consumers, obs.high_waters):
        common = dict(sequence=seq, consumer=consumer, state=state, sequence_high_water=seq_hw)
        exhausted = _exhausted(seq, nxt, consumer, hw)
        if exhausted:
            verdicts.append(Verdict(Status.EXHAUSTED, high_water=hw.value, capacity_used=1.0,
                                    capacity_level=CapacityLevel.CRITICAL, failing_now=True,
                                    blocker=exhausted, detail=exhausted, **common))
            continue
        if not consumer.comparable:
            frac = capacity_used(seq, state, None)
            why = ("cannot be judged: the default is an expression over nextval(), so the column does not "
                   "hold the sequence's values" if not consumer.bare else
                   f"column type {consumer.column_type} cannot be compared with the sequence's values")
            verdicts.append(Verdict(
                Status.INCOMPARABLE, capacity_used=frac, capacity_level=capacity_level(frac, thresholds),
                detail=why, **common))
            continue
        if hw.error is not None:
            frac = capacity_used(seq, state, consumer.column_type)
            verdicts.append(Verdict(hw.error, capacity_used=frac,
                                    capacity_level=capacity_level(frac, thresholds),
                                    detail=hw.detail, **common))
            continue
        frac = capacity_used(seq, state, consumer.column_type, hw.value)
        level = capacity_level(frac, thresholds)
        if hw.value is None:
            verdicts.append(Verdict(Status.EMPTY, capacity_used=frac, capacity_level=level, failing_now=False,
                                    detail="table is empty: the sequence is left alone", **common))
        elif is_behind(nxt, hw.value, seq.increment):
            failing, collides, detail = _behind_detail(seq, consumer, nxt, hw)
            detail += f"; {blocker}" if blocker else "." + cache_note
            verdicts.append(Verdict(Status.BEHIND, high_water=hw.value, capacity_used=frac,
                                    capacity_level=level, fixable=blocker is None, blocker=blocker,
                                    failing_now=failing, collides_in=collides, detail=detail, **common))
        else:
            # Measured from the hw over all consumers: a shared sequence is not "ahead" of one table
            # just because another table took the values in between.
            gap = max(0, abs(nxt - seq_hw) // abs(seq.increment) - 1)
            notes = [capacity_note(seq, consumer.column_type, frac)] if level is not CapacityLevel.OK else []
            if gap > 0:
                notes.append(f"sequence is {gap:,} value(s) ahead of the data (harmless; never rewound)")
            verdicts.append(Verdict(Status.OK, high_water=hw.value, capacity_used=frac, capacity_level=level,
                                    gap=gap, failing_now=False, detail="; ".join(notes) or None, **common))
    return verdicts


def exit_code(verdicts: list[Verdict] | tuple[Verdict, ...]) -> int:
    """Nagios convention: 0 fine, 1 warnings only, 2 anything behind or critical."""
    code = 0
    for v in verdicts:
        if v.status in (Status.BEHIND, Status.EXHAUSTED) or v.capacity_level is CapacityLevel.CRITICAL:
            return 2
        if v.capacity_level is CapacityLevel.WARNING or v.status in (
                Status.UNREADABLE, Status.TIMEOUT, Status.MISSING):
            code = 1
    return code


def summary_counts(verdicts) -> dict[str, int]:
    """Counts for a one-line summary: statuses plus capacity warnings/criticals."""
    return adjust_counts({}, (), verdicts)


def adjust_counts(counts: dict[str, int], removed, added) -> dict[str, int]:
    """summary_counts() after some verdicts left and others came, without recounting the rest (a live
    view of 10,000 rows where a hundred changed)."""
    out = dict(counts)
    for sign, verdicts in ((-1, removed), (1, added)):
        for v in verdicts:
            out[v.status.value] = out.get(v.status.value, 0) + sign
            if v.capacity_level in (CapacityLevel.WARNING, CapacityLevel.CRITICAL):
                out[v.capacity_level.value] = out.get(v.capacity_level.value, 0) + sign
    return {k: n for k, n in out.items() if n}


SORT_ORDER = {s: i for i, s in enumerate(Status)}
_CAPACITY_ORDER = {CapacityLevel.CRITICAL: 0, CapacityLevel.WARNING: 1}


def severity(v: Verdict) -> tuple:
    """Sort key: behind and critical first, then by name."""
    cap = _CAPACITY_ORDER.get(v.capacity_level, 2)
    primary = 0 if v.status in (Status.BEHIND, Status.EXHAUSTED) else (1 if cap == 0 else 2 + SORT_ORDER[v.status])
    seq = v.sequence.qualified if v.sequence else ("", v.label)
    tbl = v.consumer.qualified_table if v.consumer else ("", "")
    return (primary, cap, seq, tbl)
