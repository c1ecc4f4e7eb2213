"""The UI's first scan, started before textual is imported.

Importing textual and building the app take ~0.2 s before the app could start its own first scan; the
database meanwhile sits idle. Started here instead, the scan's discovery runs while Python imports, and
the app adopts the scan when it is up: it shows its progress from then on and its report at the end,
exactly as if its own worker had run it. Nothing here imports textual.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import psycopg

from ..config import Config
from ..connect import Target, close_all, open_helpers
from ..heap import CollectionHold
from ..model import Report
from ..repair import DEFAULT_LOCK_TIMEOUT
from ..refresh import LiveScanner
from ..scan import Scope
from ..spare import spare_helpers

Progress = Callable[[Callable[[], Report], int, int], None]  # as LiveScanner.tick() calls it


def ui_scope(target: Target, config: Config | None, schemas=(), statement_timeout: float = 10.0,
             lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Scope:
    """What the UI shows: the config's scope, narrowed by --schema or the URL's schema."""
    return Scope.from_config(config or Config(), schemas=tuple(schemas or ()),
                             statement_timeout_ms=int(statement_timeout * 1000),
                             lock_timeout_ms=int(lock_timeout * 1000),
                             default_schemas=target.schemas)


class FirstScan:
    """A LiveScanner's first tick on `conn`, running in a thread of its own from start().

    The app takes it over with adopt(): progress reported before then is replayed (the latest only:
    each report holds every row so far), and result() waits for the report or raises what the tick
    raised. `stop` and `scanning_on` are what the app's exit() calls the scan off with."""

    def __init__(self, conn: psycopg.Connection, scope: Scope, target: Target, *, jobs: int | None = None,
                 full_every: float = 30.0) -> None:
        """`jobs`: connections to measure on (--jobs); None: one, and a spare on a big database
        (spare.py)."""
        self.conn, self.target, self.jobs = conn, target, jobs
        self.scanner = LiveScanner(conn, scope, full_every=full_every)
        self.stop = threading.Event()
        self.scanning_on: list[psycopg.Connection] = []
        # held from start() until the app has settled the first table, or until the scan fails (heap.py)
        self.collections = CollectionHold()
        self.connections = 1  # it measures on: its own and the helpers opened for --jobs
        self.helper_warning: str | None = None  # why fewer connections than --jobs were opened
        self.started = 0.0  # time.monotonic() at start()
        self._lock = threading.Lock()
        self._sink: Progress | None = None
        self._latest: tuple | None = None  # progress before adopt()
        self._report: Report | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="seqtui-first-scan", daemon=True)

    def start(self) -> "FirstScan":
        self.started = time.monotonic()
        self.collections.hold()
        self._thread.start()
        return self

    def _run(self) -> None:
        helpers: list[psycopg.Connection] = []
        try:
            if self.jobs is not None and self.jobs > 1:
                helpers, self.helper_warning = open_helpers(self.target, self.jobs)
                self.connections = 1 + len(helpers)
            self.scanning_on[:] = [self.conn, *helpers]
            if self.jobs is None:  # a spare on a big database (spare.py)
                with spare_helpers(self.conn, self.target, self._took) as spare:
                    self._report = self.scanner.tick(progress=self._progress, stop=self.stop, helpers=spare)
            else:
                self._report = self.scanner.tick(progress=self._progress, stop=self.stop, helpers=helpers)
        except BaseException as exc:  # handed to whoever waits in result()
            self._error = exc
            self.collections.release()  # no table is coming: collect as usual meanwhile
        finally:
            self.scanning_on.clear()
            close_all(helpers)

    def _took(self, conn: psycopg.Connection) -> None:
        self.scanning_on.append(conn)  # called off with the others (app exit)
        self.connections = 2

    # Progress is handed on under the lock, so the replayed report and the scan's next one reach the app
    # in the order they were made, never an older one after a newer one.
    def _progress(self, rows: Callable[[], Report], done: int, total: int) -> None:
        with self._lock:
            if self._sink is None:
                self._latest = (rows, done, total)
            else:
                self._sink(rows, done, total)

    def adopt(self, progress: Progress) -> None:
        """From now on progress goes to `progress`, starting with the latest reported before."""
        with self._lock:
            self._sink, latest, self._latest = progress, self._latest, None
            if latest is not None:
                progress(*latest)

    def result(self) -> Report:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._report is not None
        return self._report
