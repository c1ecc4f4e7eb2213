"""What seqtui knows about sequences: immutable values and the small pure rules they share.

Everything here is an immutable value or a pure function: the catalog reads PostgreSQL into these
values, `judge()` (judge.py) turns them into verdicts, and every face (check, sql, fix, the TUI) shows the same
verdicts. Terms follow DESIGN.md: `next` is what the next nextval() returns, `hw` (high-water mark) is
the greatest value over all consumers (the least, for a descending sequence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .locks import LockHolder


class Status(str, Enum):
    """The state of one consumer row. Order matters: it is the default sort (worst first)."""

    EXHAUSTED = "exhausted"        # no next value: nextval() fails, or its value does not fit the column
    BEHIND = "behind"              # the next value is at or below the data: an INSERT collides, now or soon
    UNREADABLE = "unreadable"      # privilege missing: we cannot tell, and say so
    TIMEOUT = "timeout"            # the high-water query ran past statement_timeout
    LOCKED = "locked"              # another session locks the table or sequence past lock_timeout
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
    # the (lowest, highest) its domain's CHECK comparisons allow (domain_checks.py); None: no bound
    domain_bounds: tuple[int | None, int | None] = (None, None)
    has_children: bool = False  # inheritance children, whose rows max() counts and its unique index not

    @property
    def comparable(self) -> bool:
        """Its values are the sequence's own: an integer column whose default is bare nextval()."""
        return self.bare and self.column_type in INTEGER_TYPE_BOUNDS

    @property
    def qualified_table(self) -> tuple[str, str]:
        return (self.schema, self.table)

    @property
    def value_range(self) -> tuple[int, int] | None:
        """The values the column holds: its integer type's range, narrowed by its domain's CHECK
        bounds; None for a column of another type."""
        if self.column_type not in INTEGER_TYPE_BOUNDS:
            return None
        lo, hi = INTEGER_TYPE_BOUNDS[self.column_type]
        d_lo, d_hi = self.domain_bounds
        return (lo if d_lo is None else max(lo, d_lo)), (hi if d_hi is None else min(hi, d_hi))

    @property
    def narrowed_by_domain(self) -> bool:
        return self.domain_bounds != (None, None)

    def limit_name(self) -> str:
        """What sets the column's range, for sentences: "the integer column", "domain public.d's CHECK"."""
        if self.narrowed_by_domain and self.domain:
            return f"the CHECK of domain {'.'.join(self.domain)}"
        return f"the {self.column_type} column"


@dataclass(frozen=True, slots=True)
class SequenceState:
    last_value: int
    is_called: bool


@dataclass(frozen=True, slots=True)
class HighWater:
    """max() (or min(), descending) of one consumer column; value None means the table is empty."""

    value: int | None = None
    error: Status | None = None  # UNREADABLE, TIMEOUT or LOCKED when it could not be measured
    detail: str | None = None
    blocked_by: LockHolder | None = None  # LOCKED: the session whose lock kept max() waiting
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
    state_error: Status = Status.UNREADABLE  # why state is None: UNREADABLE, or LOCKED (past lock_timeout)
    state_blocked_by: LockHolder | None = None


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
    blocked_by: LockHolder | None = None  # LOCKED: the session whose lock the read gave up on
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


def usable_range(seq: Sequence, column: Consumer | None) -> tuple[int, int]:
    """The narrower of the sequence's bounds and the column's (DESIGN fact 8): its integer type's, and
    for a domain the bounds its CHECK comparisons set (fact 21; other CHECKs are asked of the server
    for the values that matter)."""
    lo, hi = seq.min_value, seq.max_value
    bounds = column.value_range if column is not None else None
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return lo, hi


def capacity_used(seq: Sequence, state: SequenceState, column: Consumer | None,
                  hw: int | None = None) -> float:
    """Fraction of the usable range consumed, counting downwards for descending sequences.

    The position is where the sequence will hand out its next value, or past the high-water mark when
    the sequence is behind (that is where a fix puts it). An exhausted sequence has used it all."""
    lo, hi = usable_range(seq, column)
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


def capacity_note(seq: Sequence, column: Consumer | None, fraction: float) -> str:
    """Which limit is near, and what to do about it."""
    lo, hi = usable_range(seq, column)
    end = hi if seq.ascending else lo
    by_column = column is not None and end != (seq.max_value if seq.ascending else seq.min_value)
    if by_column and column.narrowed_by_domain:
        what, fix = column.limit_name(), "ALTER DOMAIN ... DROP CONSTRAINT ..., then ADD a wider CHECK"
    elif by_column:
        what, fix = column.limit_name(), "ALTER TABLE ... ALTER COLUMN ... TYPE bigint"
    else:
        what = "the sequence's " + ("MAXVALUE" if seq.ascending else "MINVALUE")
        fix = "ALTER SEQUENCE ... AS bigint"
    return f"{fraction:.0%} of the range used: {what} runs out at {end:,} (widen it: {fix})"


def capacity_level(fraction: float, thresholds: Thresholds) -> CapacityLevel:
    if fraction >= thresholds.critical:
        return CapacityLevel.CRITICAL
    if fraction >= thresholds.warning:
        return CapacityLevel.WARNING
    return CapacityLevel.OK


def exit_code(verdicts: list[Verdict] | tuple[Verdict, ...]) -> int:
    """Nagios convention: 0 fine, 1 warnings only (a row that could not be judged among them: no
    privilege, past statement_timeout or lock_timeout), 2 anything behind or critical."""
    code = 0
    for v in verdicts:
        if v.status in (Status.BEHIND, Status.EXHAUSTED) or v.capacity_level is CapacityLevel.CRITICAL:
            return 2
        if v.capacity_level is CapacityLevel.WARNING or v.status in (
                Status.UNREADABLE, Status.TIMEOUT, Status.LOCKED, Status.MISSING):
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
