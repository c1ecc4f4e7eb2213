"""Safe under load and faults: concurrent writers, killed backends, restarts, a real hot standby."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from conftest import PASSWORD, run_seqtui, start_embedded, wait_for
from seqtui.apply import apply_plans
from seqtui.connect import connect, resolve
from seqtui.repair import plans_from_verdicts
from seqtui.scan import scan


def test_concurrent_writers_and_importer_while_fixing(db):
    db.execute("CREATE TABLE t (id serial PRIMARY KEY, src text NOT NULL)")
    db.execute("INSERT INTO t (id, src) SELECT g, 'seed' FROM generate_series(1, 500) g")
    stop = threading.Event()
    import_done = threading.Event()
    committed: list[int] = []  # ids whose INSERT reported success
    lock = threading.Lock()
    samples: list[int] = []
    errors: list[BaseException] = []

    def writer():
        with psycopg.connect(db.url, autocommit=True) as conn:
            while not stop.is_set():
                try:
                    (new_id,) = conn.execute("INSERT INTO t (src) VALUES ('default') RETURNING id").fetchone()
                    with lock:
                        committed.append(new_id)
                except psycopg.errors.UniqueViolation:
                    pass  # expected while behind: what the fix is for

    def importer():
        try:
            with psycopg.connect(db.url, autocommit=True) as conn:
                for _ in range(5):
                    base = conn.execute("SELECT max(id) FROM t").fetchone()[0] + 2000
                    conn.execute("INSERT INTO t (id, src) SELECT g, 'import' FROM generate_series(%s::int, %s::int) g",
                                 (base, base + 50))
                    time.sleep(0.05)  # spacing between import batches (not synchronisation)
        finally:
            import_done.set()

    def sampler():
        with psycopg.connect(db.url, autocommit=True) as conn:
            while not stop.is_set():
                last, called = conn.execute("SELECT last_value, is_called FROM t_id_seq").fetchone()
                samples.append(last + 1 if called else last)

    def guarded(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # surfaced below
                errors.append(exc)
        return run

    threads = [threading.Thread(target=guarded(f)) for f in (writer, writer, writer, importer, sampler)]
    for th in threads:
        th.start()
    try:
        with connect(resolve(db.url)) as conn:
            fixes = 0
            while not import_done.is_set() or fixes < 3:
                apply_plans(conn, plans_from_verdicts(scan(conn).verdicts), lock_timeout=2)
                fixes += 1
                assert fixes < 10_000
            apply_plans(conn, plans_from_verdicts(scan(conn).verdicts), lock_timeout=2)
        # After the last fix, default inserts never fail again.
        with psycopg.connect(db.url, autocommit=True) as conn:
            for _ in range(200):
                conn.execute("INSERT INTO t (src) VALUES ('after')")
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=60)
    assert not errors, errors
    assert len(samples) > 10
    assert all(b >= a for a, b in zip(samples, samples[1:])), "the sequence went backwards"
    # No insert was lost: every id a writer saw committed is in the table, once.
    stored = {r[0] for r in db.execute("SELECT id FROM t WHERE src = 'default'").fetchall()}
    assert set(committed) == stored and len(committed) == len(stored) > 0
    assert db.scalar("SELECT count(*) FROM t WHERE src = 'after'") == 200


@pytest.fixture
def own_server(tmp_path_factory):
    """A server of this test's own, to kill, stop and restart."""
    root = Path("/var/tmp") / f"seqtui-own-{uuid.uuid4().hex[:8]}"
    root.mkdir(mode=0o755)
    server = start_embedded(root)
    yield server
    server.stop("immediate")
    import shutil
    shutil.rmtree(root, ignore_errors=True)


def seqtui_backend(conn, state_filter: str = "") -> int | None:
    row = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'seqtui' "
                       "AND pid <> pg_backend_pid() " + state_filter + " LIMIT 1").fetchone()
    return row[0] if row else None


def start_cli(*args, url):
    env = {"DATABASE_URL": url, "NO_COLOR": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.Popen([sys.executable, "-m", "seqtui", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def test_backend_killed_mid_scan_exits_3(own_server):
    url = own_server.admin_url()
    with psycopg.connect(url, autocommit=True) as admin, psycopg.connect(url) as holder:
        admin.execute("CREATE TABLE IF NOT EXISTS t (id serial); INSERT INTO t VALUES (1)")
        holder.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")  # the scan's max() now waits
        proc = start_cli("check", "--statement-timeout", "60", url=url)
        pid = wait_for(lambda: seqtui_backend(admin, "AND wait_event_type = 'Lock'"), "scan to block")
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "connection lost" in err and "Traceback" not in err and PASSWORD not in err + out


def test_backend_killed_mid_fix_reports_unknown_and_never_retries(own_server):
    url = own_server.admin_url()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("CREATE TABLE a (id serial PRIMARY KEY); INSERT INTO a VALUES (5);"
                      "CREATE TABLE b (id serial PRIMARY KEY); INSERT INTO b VALUES (5)")
        with psycopg.connect(url) as holder:
            holder.execute("LOCK TABLE a IN ROW EXCLUSIVE MODE")  # fix waits for it
            proc = start_cli("fix", "--yes", "--lock-timeout", "60", url=url)
            pid = wait_for(lambda: seqtui_backend(admin, "AND wait_event_type = 'Lock'"), "fix to wait")
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            out, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, out + err
        assert "connection lost" in err
        # Both fixes went in one batch (apply.BATCH_SIZE): a waited for its lock, b was sent behind it.
        # The client cannot tell whether the server ran b before the connection died: both unknown.
        lines = out.splitlines()
        assert any(line.startswith("[1/2] unknown") and "public.a_id_seq" in line for line in lines), out
        assert any(line.startswith("[2/2] unknown") and "public.b_id_seq" in line for line in lines), out
        assert "public.a_id_seq, public.b_id_seq" in err
        # nothing was retried: neither sequence moved
        assert admin.execute("SELECT is_called FROM a_id_seq").fetchone() == (False,)
        assert admin.execute("SELECT is_called FROM b_id_seq").fetchone() == (False,)


def test_server_down_and_back(own_server):
    url = own_server.admin_url()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("CREATE TABLE t (id serial PRIMARY KEY); INSERT INTO t VALUES (5)")
    own_server.stop()
    run = run_seqtui("check", url=url)
    assert run.code == 3 and "could not connect" in run.err and "Traceback" not in run.text
    own_server.start()
    assert run_seqtui("check", url=url).code == 2


def test_idle_connection_killed_between_scan_and_fix_is_not_replayed(own_server):
    url = own_server.admin_url()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("CREATE TABLE t (id serial PRIMARY KEY); INSERT INTO t VALUES (5)")
        with connect(resolve(url)) as conn:
            plans = plans_from_verdicts(scan(conn).verdicts)
            admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
            (result,) = apply_plans(conn, plans)
        # the loss shows before the fix is sent (its batch is preceded by COMMITS_ON_DISK, which fails):
        # known not attempted, and nothing is sent again on another connection
        assert result.outcome == "skipped" and "the connection was lost" in result.reason
        assert admin.execute("SELECT is_called FROM t_id_seq").fetchone() == (False,)


def test_hot_standby_reads_everything_and_offers_no_fix(own_server):
    url = own_server.admin_url()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("CREATE TABLE t (id serial PRIMARY KEY); INSERT INTO t VALUES (42)")
    standby = own_server.base_backup_standby(own_server.data_dir.parent / "standby")
    standby.start()
    try:
        standby_url = standby.admin_url()
        report = json.loads(run_seqtui("check", "--json", url=standby_url).out)
        assert report["database"]["in_recovery"] is True
        (row,) = report["sequences"]
        assert (row["table"], row["status"], row["high_water"]) == ("t", "behind", 42)
        run = run_seqtui("fix", "--yes", url=standby_url)
        assert run.code == 1 and "hot standby" in run.err
        with psycopg.connect(url, autocommit=True) as admin:
            assert admin.execute("SELECT is_called FROM t_id_seq").fetchone() == (False,)
    finally:
        standby.stop("immediate")
