"""The rules that turn an Observation into Verdicts (DESIGN facts 4-8, 15-21): behind or not, failing
now or in how many inserts, exhausted, empty, and whether the fix run by the same role can repair it.
Pure functions over model.py's values; every face shows what judge() says."""

from __future__ import annotations

from .model import (INTEGER_TYPE_BOUNDS, CapacityLevel, Consumer, HighWater, Observation, Sequence, Status,
                    Thresholds, Verdict, capacity_level, capacity_note, capacity_used, combined_high_water,
                    is_behind, next_of, usable_range)


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
        lo, hi = usable_range(seq, c)
        if not lo <= after <= hi or hw_c.after_fits is False:
            limit = ("its domain's CHECK" if hw_c.after_fits is False or c.narrowed_by_domain
                     else f"{c.column_type}: {lo:,} to {hi:,}")
            return False, (f"after the fix the next value {after:,} would not fit {c.schema}.{c.table}.{c.column} "
                           f"({limit}): setval cannot help; widen the column (ALTER TABLE ... ALTER COLUMN ... "
                           "TYPE bigint, or the domain)")
    return True, None


def fix_blocker(seq: Sequence, obs: Observation, seq_hw: int | None) -> str | None:
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
    locked = [(c, hw) for c, hw in zip(obs.consumers, obs.high_waters) if c.comparable and hw.error is Status.LOCKED]
    if locked:
        # The fix locks every consumer: it would wait for the same lock and fail. Said now, not after
        # another lock_timeout.
        c, hw = locked[0]
        who = f", {hw.blocked_by.describe()}" if hw.blocked_by else ""
        return (f"{c.schema}.{c.table}, which also draws from this sequence, is locked by another session"
                f"{who}: a fix could not lock it either; run it again once that lock is released")
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
        lo, hi = usable_range(seq, consumer)
        t_lo, t_hi = INTEGER_TYPE_BOUNDS[consumer.column_type]
        if not t_lo <= nxt <= t_hi:
            return (f"exhausted: the next value {nxt:,} does not fit the column ({consumer.column_type}: {t_lo:,} "
                    f"to {t_hi:,}): every default INSERT fails; widen the column (ALTER TABLE ... ALTER COLUMN "
                    "... TYPE bigint)")
        if hw.next_fits is False or (hw.next_fits is None and not lo <= nxt <= hi and consumer.narrowed_by_domain):
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
        status, holder = obs.state_error, obs.state_blocked_by
        if not obs.consumers:
            return [Verdict(status, seq, None, detail=why, blocked_by=holder)]
        return [Verdict(status, seq, c, detail=why, blocked_by=holder) for c in obs.consumers]

    state = obs.state
    nxt = next_of(seq, state)
    measured = [hw.value for c, hw in zip(obs.consumers, obs.high_waters)
                if c.comparable and hw.error is None]
    seq_hw = combined_high_water(measured, seq.increment)
    blocker = fix_blocker(seq, obs, seq_hw)
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
            frac = capacity_used(seq, state, consumer)
            verdicts.append(Verdict(hw.error, capacity_used=frac,
                                    capacity_level=capacity_level(frac, thresholds),
                                    detail=hw.detail, blocked_by=hw.blocked_by, **common))
            continue
        frac = capacity_used(seq, state, consumer, hw.value)
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
            notes = [capacity_note(seq, consumer, frac)] if level is not CapacityLevel.OK else []
            if gap > 0:
                notes.append(f"sequence is {gap:,} value(s) ahead of the data (harmless; never rewound)")
            verdicts.append(Verdict(Status.OK, high_water=hw.value, capacity_used=frac, capacity_level=level,
                                    gap=gap, failing_now=False, detail="; ".join(notes) or None, **common))
    return verdicts
