"""`seqtui exporter`: /metrics over HTTP for Prometheus to scrape.

One thread scans, at most once per interval and never two scans at once; scrapes, however many and
however often, read the last finished scan (its age is a gauge of its own). Each scan opens its
connections afresh and closes them after, so a server that went down is `seqtui_database_up 0` in
that scan and is simply connected to again in the next. Served by prometheus_client's own threaded
HTTP server; every label value passes the redaction gate (ScrapeCollector), since nothing written
to a socket goes through cli.main's gated stdout.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Callable

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from . import redact
from .fleet import DatabaseResult
from .metrics import families

FIRST_SCAN_WAIT = 120.0  # seconds a scrape before the first scan ended waits for it


class Poller:
    """Runs `scan_all` every `interval` seconds (start to start; right after a scan that took longer)
    on its own thread, and keeps the last results."""

    def __init__(self, scan_all: Callable[[], list[DatabaseResult]], interval: float) -> None:
        self._scan_all = scan_all
        self._interval = interval
        self._lock = threading.Lock()
        self._results: list[DatabaseResult] = []
        self._scans = 0
        self._finished = 0.0
        self._failure: str | None = None
        self._first = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="seqtui-exporter-scan", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                results, failure = self._scan_all(), None
            except Exception as exc:  # a bug in one scan must not end the exporter: say it, keep serving
                results, failure = None, f"{type(exc).__name__}: {exc}"
                print(f"seqtui exporter: scan failed: {failure}", file=sys.stderr, flush=True)
            with self._lock:
                if results is not None:
                    self._results = results
                self._scans += 1
                self._finished = time.time()
                self._failure = failure
            self._first.set()
            self._stop.wait(max(0.0, self._interval - (time.monotonic() - started)))

    def snapshot(self) -> tuple[list[DatabaseResult], int, float]:
        """(results, scans so far, when the last one ended); waits for the first scan."""
        self._first.wait(FIRST_SCAN_WAIT)
        with self._lock:
            return list(self._results), self._scans, self._finished


def _memo_gate() -> Callable[[str], str]:
    """redact.gate, once per distinct label value (schema and server names repeat on every row)."""
    seen: dict[str, str] = {}

    def gate(text: str) -> str:
        if text not in seen:
            seen[text] = redact.gate(text)
        return seen[text]
    return gate


class ScrapeCollector(Collector):
    """What each scrape gets: the last scan's gauges (built and gated once per scan, not per scrape),
    the number of scans so far and the age of the last one."""

    def __init__(self, poller: Poller) -> None:
        self._poller = poller
        self._built_for = -1
        self._built: list = []
        self._lock = threading.Lock()

    def collect(self):
        results, scans, finished = self._poller.snapshot()
        with self._lock:  # prometheus_client serves scrapes on threads of their own
            if self._built_for != scans:
                self._built, self._built_for = families(results, _memo_gate()), scans
            built = self._built
        total = CounterMetricFamily("seqtui_scans", "scans the exporter has run since it started")
        total.add_metric([], scans)
        age = GaugeMetricFamily("seqtui_scan_age_seconds", "seconds since the last scan ended: the age of "
                                "every other value")
        age.add_metric([], max(0.0, time.time() - finished) if scans else float("nan"))
        return [total, age, *built]


def serve(scan_all: Callable[[], list[DatabaseResult]], host: str, port: int, interval: float) -> int:
    """Serve until Ctrl+C or SIGTERM; 0 then."""
    poller = Poller(scan_all, interval)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScrapeCollector(poller))
    try:
        httpd, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    poller.start()
    bound_host, bound_port = httpd.server_address[:2]
    print(f"seqtui exporter: serving http://{_url_host(bound_host)}:{bound_port}/metrics, a scan at most "
          f"every {interval:g} s", file=sys.stderr, flush=True)
    stopping = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        httpd.shutdown()
        httpd.server_close()
        poller.stop()
    print("seqtui exporter: stopped", file=sys.stderr, flush=True)
    return 0


class ListenError(Exception):
    """The address cannot be listened on (in use, not ours, not an address)."""


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT or :PORT (every address)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host or "0.0.0.0", int(port)
