#!/usr/bin/env python3
"""The terminal UI at scale: a database of N tables, the app run headless, every cost measured in one run.

    python bench/tui.py --tables 10000                 # embedded server started for the run
    python bench/tui.py --tables 1000 --dsn URL        # another server (needs CREATEDB)
    python bench/tui.py --tables 1000 --url URL        # a database bench/run.py built (it runs this so)

Builds the database of bench/run.py (same build(), same mix of behind/ok/empty/identity/shared tables),
then measures:

  first rows    app start (App.run_test, 140x40) until the first scan's first group of rows is on screen
  first table   app start until every row is on screen and the screen is idle; split into the first
                (full) scan's database time and the UI's work
  rss           the process' resident memory right after the first full table
  from the shell
                what an operator waits for: `python -m seqtui` in a terminal (a pty), from exec until
                the first rows and until the full table are painted (interpreter start, imports,
                terminal driver included); alternately by default (a spare connection on a big
                database), with --jobs 1 and with --jobs 2, median of 5 each; and the CPU seqtui
                used until the full table (all its threads; Linux)
  ui per tick   the refresh handler applying a new Report to the table, and the wall time until the
                screen is idle again; median over --ticks ticks: nothing changed, 1% of the tables
                written to between ticks, and a periodic full scan (every object new)
  keys          a filter keystroke, clearing the filter, page down, end, and a sort (o); wall time until
                idle includes the test harness' own waiting: compare with its unbound-key baseline
  db per tick   LiveScanner.last_tick.seconds: a full scan, an idle tick, a 1%-changed tick; the ticks
                as a ratio to the full scan measured in the same run

Issue 5's targets (N=10,000, 2 cores): first table < 2 s (from the shell), UI per tick < 50 ms,
RSS < 200 MB, idle tick < 5% of a full scan. Prints medians and writes JSON (default
bench/results/tui.json). Machines here are shared and noisy: read the ratios and orders of magnitude,
not the last digit.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import pty
import select
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import build, start_server, stop_server  # noqa: E402

from seqtui.config import Config  # noqa: E402
from seqtui.connect import connect, resolve  # noqa: E402
from seqtui.refresh import LiveScanner  # noqa: E402
from seqtui.tui.app import Refreshed, SeqtuiApp  # noqa: E402

SIZE = (140, 40)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


class Writer:
    """Inserts one row through the default into a different 1% of the tables before each tick.

    Only tables where a default insert succeeds (the ok and empty ones). The session forces its
    statistics out after each batch (pg_stat_force_next_flush: flushed as the session goes idle,
    before the server answers), so the next tick sees every table written to; a backend may otherwise
    hold them back for up to ten seconds."""

    def __init__(self, url: str, n: int) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.tables = [f"o_{i}" if i % 10 < 6 else f"e_{i}" for i in range(n) if 4 <= i % 10 <= 6]
        self.per_tick = max(1, n // 100)
        self.next = 0

    def write(self) -> int:
        batch = [self.tables[(self.next + j) % len(self.tables)] for j in range(self.per_tick)]
        self.next += self.per_tick
        with self.conn.pipeline():
            for t in batch:
                self.conn.execute(sql.SQL("INSERT INTO {} (v) VALUES ('x')").format(sql.Identifier(t)))
        self.conn.execute("SELECT pg_stat_force_next_flush()")
        return len(batch)

    def close(self) -> None:
        self.conn.close()


def shell_first_table(url: str, jobs: int | None, timeout: float = 120.0) -> dict:
    """`python -m seqtui [--jobs N]` run as an operator runs it, in a terminal (a pty, 140x40): seconds
    from exec until the first rows, and until the full table, are on screen. Rows show as "public";
    the full table is there once the header says "refreshed HH:MM:SS" (the first full refresh) and
    rows are painted too (a small table's header may come a write before its rows).
    Includes the interpreter's start, every import, the terminal driver and the painting."""
    env = dict(os.environ, DATABASE_URL=url, TERM="xterm-256color", COLUMNS=str(SIZE[0]), LINES=str(SIZE[1]),
               # this checkout's seqtui, whatever else is installed
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    with tempfile.TemporaryDirectory() as scratch:  # no ./sequences.json or ./.env of the caller
        t0 = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:  # the child: becomes seqtui
            os.chdir(scratch)
            os.execve(sys.executable, [sys.executable, "-m", "seqtui",
                                       *(["--jobs", str(jobs)] if jobs is not None else [])], env)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
        seen, first_rows, refreshed, full, cpu = b"", None, None, None, None
        try:
            while full is None:
                if not select.select([fd], [], [], max(0.0, t0 + timeout - time.perf_counter()))[0]:
                    raise RuntimeError(f"no full table within {timeout:.0f} s: {seen[-300:]!r}")
                chunk = os.read(fd, 65536)
                now = time.perf_counter()
                seen = seen[-4096:] + chunk  # enough to find a marker split between two reads
                if first_rows is None and b"public" in seen:
                    first_rows = now - t0
                if refreshed is None and b"refreshed " in seen:
                    refreshed = now - t0
                if first_rows is not None and refreshed is not None:
                    full = now - t0
                    cpu = process_cpu_seconds(pid)
        finally:
            os.kill(pid, signal.SIGTERM)  # the app exits cleanly on SIGTERM, restoring the terminal
            try:
                while os.read(fd, 65536):
                    pass
            except OSError:  # the pty is gone with the process
                pass
            os.waitpid(pid, 0)
            os.close(fd)
    return {"first_rows_s": first_rows, "first_table_s": full, "client_cpu_s": cpu}


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) a process has used so far; None without Linux's /proc.
    At 10,000 tables on 2 cores the UI's own CPU is as large a share of the first table as the
    server's: this says how large."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def shell_first_tables(url: str, repeat: int = 5) -> dict:
    """shell_first_table(), alternately as started by default (no --jobs: a spare connection on a big
    database, if the server has room), with --jobs 1 and with --jobs 2: medians."""
    samples: dict[int | None, list[dict]] = {None: [], 1: [], 2: []}
    for _ in range(repeat):
        for jobs in samples:
            samples[jobs].append(shell_first_table(url, jobs))
    return {("default" if jobs is None else f"jobs_{jobs}"):
            {key: round(statistics.median(s[key] for s in runs), 3) if runs[0][key] is not None else None
             for key in runs[0]}
            | {"samples": [round(s["first_table_s"], 3) for s in runs]}
            for jobs, runs in samples.items()}


async def run_ui(url: str, n: int, ticks: int) -> dict:
    target = resolve(url)
    out: dict = {}
    app = SeqtuiApp(target, Config(), live=False, audit_log=os.devnull)
    t0 = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        # The first scan shows its rows group by group while it measures (app.measuring).
        while app.table.row_count == 0 and app.refresh_count < 1:
            await pilot.pause(0.005)
        out["first_rows_s"] = round(time.perf_counter() - t0, 3)
        out["first_rows_count"] = app.table.row_count
        while app.refresh_count < 1:
            await pilot.pause(0.005)
        await pilot.pause()
        first = time.perf_counter() - t0
        out["rows"] = app.table.row_count
        out["first_table_s"] = round(first, 3)
        out["first_table_db_s"] = round(app.last_tick.seconds, 3)
        out["first_table_ui_handler_s"] = round(app.refresh_ui_seconds, 3)
        # start-up, the progress reports' UI work and painting
        out["first_table_rest_s"] = round(first - app.last_tick.seconds - app.refresh_ui_seconds, 3)
        out["rss_after_first_table_mb"] = round(rss_mb(), 1)
        assert app.table.row_count == len(app.report.verdicts) >= n, (app.table.row_count, n)

        scanner = LiveScanner(connect(target), app.scope)
        scanner.tick()  # its own first (full) scan
        writer = Writer(url, n)

        async def apply(report) -> tuple[float, float, float]:
            """(handler, wall until idle, CPU until idle) for one Report, as the refresh worker posts it."""
            before = app.refresh_count
            start, cpu = time.perf_counter(), time.process_time()
            app.refreshing = True
            app.post_message(Refreshed(report, time.monotonic(), None, scanner.last_tick))
            while app.refresh_count == before:
                await pilot.pause(0)
            await pilot.pause()
            return app.refresh_ui_seconds, time.perf_counter() - start, time.process_time() - cpu

        # The second refresh fills in every rate cell ("…" -> "0"): once per session, measured apart.
        handler, wall, cpu = await apply(scanner.tick())
        out["second_refresh_rates_appear"] = {"handler_ms": ms(handler), "until_idle_ms": ms(wall),
                                              "cpu_until_idle_ms": ms(cpu)}

        db: dict = {"full_s": [], "idle_s": [], "changed_s": [], "changed_remeasured": []}
        ui: dict = {"idle": [], "changed": [], "full": []}
        for i in range(ticks):
            report = await asyncio.to_thread(scanner.tick)
            assert scanner.last_tick.kind == "incremental", scanner.last_tick
            db["idle_s"].append(scanner.last_tick.seconds)
            ui["idle"].append(await apply(report))
        for i in range(ticks):
            writer.write()  # returns once the server has published the new counters
            report = await asyncio.to_thread(scanner.tick)
            db["changed_s"].append(scanner.last_tick.seconds)
            db["changed_remeasured"].append(scanner.last_tick.remeasured)
            ui["changed"].append(await apply(report))
        for i in range(max(3, ticks // 5)):
            report = await asyncio.to_thread(scanner.tick, True)
            db["full_s"].append(scanner.last_tick.seconds)
            ui["full"].append(await apply(report))
        writer.close()

        out["ui_per_tick"] = {
            kind: {"handler_ms": ms(statistics.median(h for h, _, _ in samples)),
                   "max_handler_ms": ms(max(h for h, _, _ in samples)),
                   "until_idle_ms": ms(statistics.median(w for _, w, _ in samples)),
                   "cpu_until_idle_ms": ms(statistics.median(c for _, _, c in samples)),
                   "samples": len(samples)}
            for kind, samples in ui.items()}
        full = statistics.median(db["full_s"])
        idle = statistics.median(db["idle_s"])
        changed = statistics.median(db["changed_s"])
        out["db_per_tick"] = {
            "full_scan_s": round(full, 4), "idle_tick_s": round(idle, 4), "changed_1pct_tick_s": round(changed, 4),
            "idle_over_full": round(idle / full, 4), "changed_over_full": round(changed / full, 4),
            "changed_remeasured_median": statistics.median(db["changed_remeasured"]),
            "tables_written_per_tick": writer.per_tick,
        }

        # Keys: each until the screen is idle again.
        keys: dict = {}

        async def timed_keys(name: str, *keys_: str) -> None:
            start, cpu = time.perf_counter(), time.process_time()
            await pilot.press(*keys_)
            await pilot.pause()
            keys[name] = {"ms": ms(time.perf_counter() - start), "cpu_ms": ms(time.process_time() - cpu),
                          "rows": app.table.row_count}

        app.table.focus()
        await pilot.pause()
        # The harness' own cost: a key nothing is bound to, on the same screen.
        await timed_keys("baseline_unbound_key", "z")
        await timed_keys("page_down", "pagedown")
        await timed_keys("page_down_again", "pagedown")
        await timed_keys("end", "end")
        await timed_keys("home", "home")
        await pilot.press("slash")
        await pilot.pause()
        await timed_keys("filter_first_key_o", "o")  # o_*: 20% of the rows
        await timed_keys("filter_second_key_underscore", "underscore")
        await timed_keys("filter_third_key_9", "9")
        await timed_keys("filter_backspace", "backspace")
        await timed_keys("filter_clear_escape", "escape")
        app.table.focus()
        await pilot.pause()
        await timed_keys("sort_next_column", "o")
        await timed_keys("sort_reverse", "O")
        out["keys"] = keys
        out["rss_end_mb"] = round(rss_mb(), 1)
        scanner.conn.close()
    return out


def print_report(res: dict) -> None:
    n = res["tables"]
    u = res["ui"]
    d = u["db_per_tick"]
    print(f"\nN={n} tables, {u['rows']} rows, terminal {SIZE[0]}x{SIZE[1]}")
    print(f"  first rows on screen  {u['first_rows_s']:8.3f} s   ({u['first_rows_count']} rows, while the first "
          "scan measures the rest)")
    print(f"  first full table      {u['first_table_s']:8.3f} s   (target < 2 s; first scan's DB time "
          f"{u['first_table_db_s']:.3f} s, last refresh handler {u['first_table_ui_handler_s']:.3f} s, "
          f"start-up, progress and paint {u['first_table_rest_s']:.3f} s)")
    for jobs, f in u["shell_first_table"].items():
        how = "by default" if jobs == "default" else f"--jobs {jobs[-1]}"
        cpu = f"; seqtui's own CPU until then {f['client_cpu_s']:.2f} s" if f.get("client_cpu_s") is not None else ""
        print(f"  from the shell, {how:10} first rows {f['first_rows_s']:.3f} s, full table "
              f"{f['first_table_s']:.3f} s  (target < 2 s; `python -m seqtui` in a pty, exec to paint, "
              f"median of {len(f['samples'])}{cpu})")
    print(f"  RSS after first table {u['rss_after_first_table_mb']:8.1f} MB  (target < 200 MB; "
          f"{u['rss_end_mb']:.1f} MB at the end)")
    s = u["second_refresh_rates_appear"]
    print(f"  2nd refresh (rates)   {s['handler_ms']:8.1f} ms handler, {s['until_idle_ms']:.1f} ms until idle "
          "(once per session: every rate cell changes)")
    for kind, label in (("idle", "nothing changed"), ("changed", "1% written"), ("full", "full re-scan")):
        t = u["ui_per_tick"][kind]
        print(f"  UI per tick, {label:<15} handler {t['handler_ms']:6.1f} ms (max {t['max_handler_ms']:.1f}; "
              f"target < 50 ms), until idle {t['until_idle_ms']:6.1f} ms wall, {t['cpu_until_idle_ms']:.1f} ms CPU "
              f"(median of {t['samples']})")
    for name, k in u["keys"].items():
        print(f"  key {name:<28} {k['ms']:8.1f} ms wall until idle, {k['cpu_ms']:6.1f} ms CPU  "
              f"({k['rows']} rows shown)")
    print(f"  DB full scan          {d['full_scan_s']:8.3f} s")
    print(f"  DB idle tick          {d['idle_tick_s']:8.3f} s = {d['idle_over_full']:.1%} of a full scan "
          "(target < 5%)")
    print(f"  DB 1%-changed tick    {d['changed_1pct_tick_s']:8.3f} s = {d['changed_over_full']:.1%} of a full scan "
          f"({d['tables_written_per_tick']} tables written, {d['changed_remeasured_median']} consumers re-measured)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, default=10000)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--dsn", help="server to use (default: start an embedded one)")
    where.add_argument("--url", help="measure this database, already built by bench/run.py with the same "
                                     "--tables (bench/run.py runs this script so, in a process of its own)")
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "tui.json"))
    args = parser.parse_args()

    if args.url:
        res = {"tables": args.tables, "ui": measure(args.url, args.tables, args.ticks)}
        print_report(res)
        write_results(args.out, args.ticks, res)
        return 0
    server, admin_url = start_server(args.dsn)
    dbname = f"seqtui_tui_bench_{args.tables}"
    try:
        print(f"N={args.tables}: building...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        url = build(admin_url, dbname, args.tables)
        build_s = time.perf_counter() - t0
        res = {"tables": args.tables, "build_seconds": round(build_s, 2), "ui": measure(url, args.tables, args.ticks)}
        print_report(res)
        write_results(args.out, args.ticks, res)
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
    finally:
        stop_server(server)
    return 0


def measure(url: str, n: int, ticks: int) -> dict:
    """Everything above, on a database of n tables as build() leaves it (the sequences drifted)."""
    print(f"N={n}: measuring the UI...", file=sys.stderr, flush=True)
    ui = asyncio.run(run_ui(url, n, ticks))
    print(f"N={n}: timing the UI's start from the shell...", file=sys.stderr, flush=True)
    ui["shell_first_table"] = shell_first_tables(url)
    return ui


def write_results(path: str, ticks: int, res: dict) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "ticks": ticks,
            "terminal": f"{SIZE[0]}x{SIZE[1]}"}
    out.write_text(json.dumps({"meta": meta, "results": [res]}, indent=2))
    print(f"\nresults written to {out}")


if __name__ == "__main__":
    sys.exit(main())
