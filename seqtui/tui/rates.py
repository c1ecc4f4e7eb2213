"""Consumption rates and time to exhaustion, from the next values seen at successive refreshes.

Pure: the app feeds in (time, next value) samples; nothing here reads a clock or a database.
A rate is measured over a sliding window rather than between two adjacent refreshes, because a
2-second step is mostly noise (a burst of inserts, then nothing).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..model import Verdict, next_value, usable_range

WINDOW_SECONDS = 300.0  # how far back a rate looks
MAX_SAMPLES = 200       # per sequence, whatever the interval


@dataclass
class RateTracker:
    """Per sequence (keyed by OID: consumers of one sequence share its rate), the next values seen,
    stored only when they change: an idle sequence costs one sample however long the view stays open,
    and a refresh allocates nothing for it (10,000 sequences sampled every 2 s for 5 minutes would
    otherwise hold 1.5 million samples)."""

    window: float = WINDOW_SECONDS
    _samples: dict[int, deque] = field(default_factory=dict)  # (time first seen at, next value)
    _now: float = float("-inf")  # time of the last refresh: every sequence seen then still had its value
    _moving: set = field(default_factory=set)  # OIDs with more than one sample: their rate drifts
    _new: set = field(default_factory=set)     # OIDs first seen at the last refresh: no rate yet
    _forgot: bool = False                      # forget() since the last refresh: observe everything

    def observe(self, verdicts, now: float, changed=None) -> set[int] | None:
        """Record one refresh. Sequences that vanished are forgotten, so a dropped and recreated
        table does not inherit an old sequence's history. (Runs over every row on every refresh:
        written for speed.)

        `changed`, if given, promises that `verdicts` are the last refresh's verdicts (the same
        sequences, the same values) except for these: only they are looked at, and the return value
        is the OIDs whose rate may differ from the last refresh's. Otherwise (and after forget())
        every verdict is looked at and the return value is None: any rate may have changed."""
        if changed is not None and not self._forgot:
            return self._observe_changed(changed, now)
        self._forgot = False
        samples_of, cutoff = self._samples, now - self.window
        moving, new = self._moving, self._new
        moving.clear()
        new.clear()
        self._now = now
        seen = set()
        for v in verdicts:
            seq, state = v.sequence, v.state
            if seq is None or state is None:
                continue
            oid = seq.oid
            if oid in seen:
                continue
            seen.add(oid)
            samples = self._record(oid, next_value(state, seq.increment), now, new)
            if samples is None:
                continue
            # keep one sample at or before the window's start: the value the window starts from
            while len(samples) > 1 and samples[1][0] <= cutoff:
                samples.popleft()
            if len(samples) > 1:
                moving.add(oid)
        if len(samples_of) != len(seen):
            for oid in [o for o in samples_of if o not in seen]:
                del samples_of[oid]
        return None

    def _observe_changed(self, changed, now: float) -> set[int]:
        samples_of, cutoff = self._samples, now - self.window
        moving = self._moving
        dirty = set(self._new) | moving  # None -> 0 once seen twice; a sliding window drifts
        self._new = new = set()
        self._now = now
        seen = set()
        for v in changed:
            seq, state = v.sequence, v.state
            if seq is None or state is None or seq.oid in seen:
                continue
            oid = seq.oid
            seen.add(oid)
            dirty.add(oid)
            samples = self._record(oid, next_value(state, seq.increment), now, new)
            if samples is not None and len(samples) > 1:
                moving.add(oid)
        for oid in list(moving):
            samples = samples_of[oid]
            while len(samples) > 1 and samples[1][0] <= cutoff:
                samples.popleft()
            if len(samples) == 1:
                moving.discard(oid)
        return dirty

    def _record(self, oid: int, value: int, now: float, new: set) -> deque | None:
        """Add a sample if the value moved; a sequence seen for the first time goes into `new` and
        gets None back (it has no history to trim or rate yet)."""
        samples = self._samples.get(oid)
        if samples is None:
            self._samples[oid] = deque(((now, value),), maxlen=MAX_SAMPLES)
            new.add(oid)
            return None
        if samples[-1][1] != value:
            samples.append((now, value))
        return samples

    def forget(self, seq_oids) -> None:
        """Start afresh: a setval jump (our own repair) is not consumption."""
        for oid in seq_oids:
            self._samples.pop(oid, None)
            self._moving.discard(oid)
            self._new.discard(oid)
            self._forgot = True

    def rate(self, seq_oid: int) -> float | None:
        """Values per minute over the window (absolute: descending sequences consume downwards), or
        None before two refreshes have seen the sequence."""
        samples = self._samples.get(seq_oid)
        if not samples:
            return None
        start = max(samples[0][0], self._now - self.window)
        return rate_per_minute((start, samples[0][1]), (self._now, samples[-1][1]))

    def rates(self) -> dict[int, float | None]:
        """`rate()` of every sequence, in one pass (the table asks for all of them each refresh)."""
        now, cutoff = self._now, self._now - self.window
        out: dict[int, float | None] = {}
        for oid, samples in self._samples.items():
            t0, v0 = samples[0]
            if len(samples) == 1:
                out[oid] = 0.0 if t0 < now else None
            else:
                out[oid] = abs(samples[-1][1] - v0) * 60.0 / (now - (t0 if t0 > cutoff else cutoff))
        return out


def rate_per_minute(first: tuple[float, int], last: tuple[float, int]) -> float | None:
    (t0, v0), (t1, v1) = first, last
    if t1 <= t0:
        return None
    return abs(v1 - v0) * 60.0 / (t1 - t0)


def remaining_values(v: Verdict) -> int | None:
    """How far the sequence can still go before it hits the narrower of its own bounds and the
    column type's (DESIGN fact 8), in the sequence's own units."""
    if v.sequence is None or v.state is None:
        return None
    lo, hi = usable_range(v.sequence, v.consumer)
    pos = next_value(v.state, v.sequence.increment)
    # the next value itself is still usable, hence + 1
    return max(0, hi - pos + 1) if v.sequence.ascending else max(0, pos - lo + 1)


def minutes_to_exhaustion(v: Verdict, rate: float | None) -> float | None:
    """None when unknown or when nothing is being consumed (the sequence never runs out at rate 0)."""
    remaining = remaining_values(v)
    if remaining is None or not rate:
        return None
    return remaining / rate


def fmt_rate(rate: float | None) -> str:
    if rate is None:
        return "…"  # not measured yet: needs a second refresh
    if rate == 0:
        return "0"
    if rate < 10:
        return f"{rate:.1f}"
    return f"{rate:,.0f}"


def exhaustion_text(v: Verdict, rate: float) -> str:
    """After "exhausted in": when the sequence runs out at the rate seen ("about 3.2 days"), or in plain
    words why there is no such time. At rate 0 it is not that it never runs out (a promise nobody can
    make): no writes were seen."""
    if rate == 0:
        return "— no writes seen"
    minutes = minutes_to_exhaustion(v, rate)
    return "unknown" if minutes is None else fmt_duration(minutes)


def fmt_duration(minutes: float) -> str:
    if minutes < 1:
        return "under a minute"
    for unit, size in (("years", 525_960), ("days", 1440), ("hours", 60)):
        if minutes >= size:
            value = minutes / size
            if unit == "years" and value >= 1000:
                return "more than 1,000 years"
            return f"about {value:,.1f} {unit}"
    return f"about {minutes:,.0f} minutes"
