"""What applying a plan came to: one FixResult per sequence, and the words for its outcome."""

from __future__ import annotations

from dataclasses import dataclass

from .repair import FixPlan

FIXED, UNCHANGED, FAILED, SKIPPED, UNKNOWN = "fixed", "unchanged", "failed", "skipped", "unknown"

LOST, INTERRUPTED = "the connection was lost", "interrupted"


@dataclass(frozen=True)
class FixResult:
    plan: FixPlan
    outcome: str  # fixed / unchanged (already fine under lock) / failed / skipped / unknown
    before: int | None = None  # next value before, read under lock
    after: int | None = None   # next value after
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in (FIXED, UNCHANGED)

    def line(self) -> str:
        name = self.plan.sequence.display_name
        if self.outcome == FIXED:
            return f"fixed      {name}: next {self.before} -> {self.after}"
        if self.outcome == UNCHANGED:
            return f"unchanged  {name}: next {self.before} is already past the data"
        return f"{self.outcome:<10} {name}: {self.reason}"
