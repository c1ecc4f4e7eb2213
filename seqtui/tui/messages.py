"""What the app's workers post to it: a refresh's report or progress or failure, and a repair's results.
Workers never touch widgets; these messages carry their results to the UI thread."""

from __future__ import annotations

from textual.message import Message

from ..apply import FixResult
from ..model import Report
from ..redact import gate
from ..refresh import TickInfo


class Refreshed(Message):
    """A new Report. `measuring` = (sequences measured, all of them) while the first scan of a big
    database is still running: the report then holds only the sequences measured so far."""

    def __init__(self, report: Report, mono: float, status: str | None, tick: TickInfo | None = None,
                 measuring: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.report, self.mono, self.status, self.tick = report, mono, status, tick
        self.measuring = measuring


class Measuring(Message):
    """The first scan's progress between two showings of its rows: the header's count only."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__()
        self.done, self.total = done, total


class RefreshFailed(Message):
    def __init__(self, error: str, lost: bool) -> None:
        super().__init__()
        self.error, self.lost = gate(error), lost  # shown in a notification and in the header


class ApplyProgress(Message):
    def __init__(self, result: FixResult) -> None:
        super().__init__()
        self.result = result


class ApplyFinished(Message):
    def __init__(self, results: list[FixResult]) -> None:
        super().__init__()
        self.results = results
