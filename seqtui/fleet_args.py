"""The command-line options of the fleet: `--all` / `--all-databases`, and `seqtui exporter`.

Apart from cli.py so that its parser gains a few hooks only. `sql --all` already means "a statement
for every sequence", so there the databases are `--all-databases` (which check and fix take too).
"""

from __future__ import annotations

import argparse

from .argtypes import positive

ALL_HELP = ("every database of each server that allows connections (templates aside), as vacuumdb --all; "
            "one the role may not connect to is reported as such")
DEFAULT_EXPORTER_INTERVAL = 60.0


def fleet_arguments() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    g = parent.add_argument_group("several databases")
    g.add_argument("--all-databases", dest="all_databases", action="store_true", help=ALL_HELP)
    return parent


def fleet_all_alias(parser: argparse.ArgumentParser) -> None:
    """`--all` for --all-databases, where it means nothing else (check, fix, exporter)."""
    parser.add_argument("--all", "-a", dest="all_databases", action="store_true", help="as --all-databases")


def _listen(text: str) -> tuple[str, int]:
    from .exporter import parse_listen

    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def exporter_parser(sub, parents) -> argparse.ArgumentParser:
    exporter = sub.add_parser(
        "exporter", parents=parents, help="serve Prometheus metrics over HTTP (/metrics)",
        description="Serve /metrics for Prometheus: the gauges of `check --format prometheus` (see README: "
                    "Monitoring), from a scan run at most once per --interval, never two at once however "
                    "often it is scraped; a scrape in between gets the last scan (seqtui_scan_age_seconds "
                    "says how old). A database that is down is seqtui_database_up 0 and is connected to "
                    "again at the next scan. Stops on Ctrl+C or SIGTERM.")
    exporter.add_argument("--listen", metavar="HOST:PORT", type=_listen, required=True,
                          help="address to serve on, e.g. 127.0.0.1:9187 or :9187 (every address); port 0 "
                               "picks a free one (printed on stderr)")
    exporter.add_argument("--interval", dest="exporter_interval", metavar="SECONDS", type=positive(float),
                          default=DEFAULT_EXPORTER_INTERVAL,
                          help=f"seconds between scans (default: {DEFAULT_EXPORTER_INTERVAL:g})")
    fleet_all_alias(exporter)
    return exporter
