"""Reads that meet a lock another session holds (DESIGN fact 23): a real second session holds it, seqtui
gives up on that relation within --lock-timeout, names the holder, and judges (and fixes) the rest.

The bound asserted on each command's wall time (well under --statement-timeout 30) is the proof that
it did not wait for the statement timeout, nor for the lock once per chunk, fallback or probe.
"""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from seqtui import catalog
from seqtui.config import Config
from seqtui.connect import connect, resolve
from seqtui.model import Status
from seqtui.tui.app import SeqtuiApp

from conftest import run_seqtui

TIMEOUTS = ("--lock-timeout", "1", "--statement-timeout", "30")
BOUND = 10.0  # seconds: far below the 30 s statement timeout, far above one lock wait
TABLES = 150  # more than one UNION ALL chunk (unions.CHUNK): the pipelined path is taken


def make_tables(db, behind: bool) -> list[str]:
    """TABLES tables with ids 1..3, their sequences behind (never called) or past the data."""
    names = [f"t{i:03d}" for i in range(TABLES)]
    db.execute("".join(f"CREATE TABLE {n} (id serial PRIMARY KEY); INSERT INTO {n} (id) VALUES (1), (2), (3);"
                       for n in names))
    if not behind:
        db.execute("".join(f"SELECT setval('{n}_id_seq', 3);" for n in names))
    return names


@pytest.fixture
def holder(db):
    """A second session, its transaction left open by the test: whatever it locks stays locked."""
    conn = psycopg.connect(db.url)
    conn.execute("SET application_name = 'migrator'")
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


def rows_of(report: dict) -> dict[str, dict]:
    return {r["table"] or r["sequence"]: r for r in report["sequences"]}


def timed(*args, url):
    start = time.monotonic()
    run = run_seqtui(*args, url=url)
    return run, time.monotonic() - start


def test_check_gives_up_on_a_locked_table_names_its_holder_and_judges_the_rest(db, holder):
    names = make_tables(db, behind=False)
    locked = names[60]  # in the middle of the first chunk
    holder.execute(f"LOCK TABLE {locked} IN ACCESS EXCLUSIVE MODE")

    run, took = timed("check", "--json", *TIMEOUTS, url=db.url)
    assert took < BOUND, (took, run.err)
    assert run.code == 1, run.text  # could not judge one row: WARNING, as Nagios has it
    report = json.loads(run.out)
    rows = rows_of(report)
    row = rows[locked]
    assert row["status"] == "locked" and report["summary"]["locked"] == 1
    blocked = row["blocked_by"]
    assert blocked["pid"] == holder.info.backend_pid and blocked["application"] == "migrator"
    assert blocked["mode"] == "AccessExclusiveLock" and blocked["granted"] is True
    assert blocked["state"] == "idle in transaction" and blocked["seconds"] >= 0
    assert blocked["query"].startswith("LOCK TABLE") and blocked["query_visible"] is True
    assert str(holder.info.backend_pid) in row["detail"] and "migrator" in row["detail"]
    assert all(r["status"] == "ok" for t, r in rows.items() if t != locked), rows

    text, took = timed("check", *TIMEOUTS, url=db.url)
    assert took < BOUND and text.code == 1
    line = next(line for line in text.out.splitlines() if f"public.{locked}.id" in line)
    assert line.startswith("locked")
    squashed = "".join(text.out.split())  # the detail column folds long lines
    assert f"heldbypid{holder.info.backend_pid}(user" in squashed and ",applicationmigrator," in squashed


def test_fix_fixes_everything_but_the_locked_table_and_names_its_holder(db, holder):
    names = make_tables(db, behind=True)
    locked = names[120]  # in the second chunk
    holder.execute(f"LOCK TABLE {locked} IN ACCESS EXCLUSIVE MODE")

    run, took = timed("fix", "--yes", *TIMEOUTS, url=db.url)
    assert took < BOUND, (took, run.text)
    assert run.code == 1, run.text
    assert "1 row(s) could not be judged" in run.err
    assert f"locked     public.{locked}.id: " in run.err
    assert f"pid {holder.info.backend_pid} " in run.err and "application migrator" in run.err
    holder.rollback()
    for n in names:  # the proof: an INSERT through the default now succeeds, except where it was locked
        if n == locked:
            with pytest.raises(psycopg.errors.UniqueViolation):
                db.insert_default(n)
        else:
            assert db.insert_default(n) == 4


def test_a_locked_sequence_is_named_and_its_table_still_measured_elsewhere(db, holder):
    names = make_tables(db, behind=False)
    seq_locked = f"{names[5]}_id_seq"
    # ALTER SEQUENCE ... OWNER TO takes ACCESS EXCLUSIVE on the sequence: reading its state waits
    holder.execute(f"ALTER SEQUENCE {seq_locked} OWNER TO CURRENT_USER")

    run, took = timed("check", "--json", *TIMEOUTS, url=db.url)
    assert took < BOUND, (took, run.err)
    assert run.code == 1, run.text
    rows = rows_of(json.loads(run.out))
    row = rows[names[5]]
    assert row["status"] == "locked" and row["last_value"] is None
    assert row["blocked_by"]["pid"] == holder.info.backend_pid
    assert row["blocked_by"]["relation"].endswith(seq_locked)
    assert "the sequence" in row["detail"] and "ALTER SEQUENCE" in row["detail"]
    assert all(r["status"] == "ok" for t, r in rows.items() if t != names[5])


def test_a_locked_partition_locks_its_parent_row_and_names_the_partition(db, holder):
    db.execute("CREATE TABLE p (id serial, k int NOT NULL, PRIMARY KEY (id, k)) PARTITION BY LIST (k)")
    db.execute("CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1)")
    db.execute("CREATE TABLE p2 PARTITION OF p FOR VALUES IN (2)")
    db.execute("INSERT INTO p (id, k) VALUES (10, 1), (20, 2)")
    db.execute("CREATE TABLE free (id serial PRIMARY KEY)")
    holder.execute("LOCK TABLE p2 IN ACCESS EXCLUSIVE MODE")  # the partition only: max() on p waits

    with connect(resolve(db.url)) as conn:
        start = time.monotonic()
        observations = catalog.observe(conn, catalog.discover(conn), 30_000, lock_timeout_ms=500)
        took = time.monotonic() - start
    by_table = {o.consumers[0].table: o for o in observations}
    hw = by_table["p"].high_waters[0]
    assert hw.error is Status.LOCKED and hw.blocked_by.relation == "p2" and took < BOUND
    assert by_table["free"].high_waters[0].error is None


def test_many_locked_tables_in_one_chunk_cost_one_wait_not_one_each(db, holder):
    names = make_tables(db, behind=True)
    locked = names[10:90:20]  # four tables of the first chunk
    for n in locked:
        holder.execute(f"LOCK TABLE {n} IN ACCESS EXCLUSIVE MODE")
    with connect(resolve(db.url)) as conn:
        discovered = catalog.discover(conn)
        start = time.monotonic()
        groups = list(catalog.observe_in_groups(conn, discovered, 30_000, lock_timeout_ms=1000))
        took = time.monotonic() - start
    observations = [o for g in groups for o in g]
    states = {o.consumers[0].table: o.high_waters[0] for o in observations}
    assert {t for t, hw in states.items() if hw.error is Status.LOCKED} == set(locked)
    assert all(hw.value == 3 for t, hw in states.items() if t not in locked)
    # The pipelined read trips once, the holders of all four are found at once and the rest read
    # again: one wait of 1 s. Reading the failed chunk again one by one, as before, waited 1 s for the
    # pipeline, 1 s for the chunk and 1 s for each locked table alone: 6 s.
    assert took < 3.0, took


@pytest.mark.asyncio
async def test_the_ui_shows_the_locked_row_and_its_holder_and_refreshes_the_rest(db, holder, tmp_path):
    names = make_tables(db, behind=False)
    locked, other = names[3], names[4]
    holder.execute(f"LOCK TABLE {locked} IN ACCESS EXCLUSIVE MODE")
    app = SeqtuiApp(resolve(db.url), Config(), audit_log=str(tmp_path / "audit.jsonl"), interval=3600,
                    lock_timeout=0.5, statement_timeout=30)

    async def until(pilot, condition, what):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if condition():
                return
            await pilot.pause(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def row(table):
        return next(v for v in app.verdicts.values() if v.consumer and v.consumer.table == table)

    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: app.refresh_count >= 1, "the first scan")
        key = row(locked).key
        assert row(locked).status is Status.LOCKED
        assert str(app.table.get_cell(key, "status")).startswith("locked")
        app.table.move_cursor(row=app.table.get_row_index(key))
        await pilot.pause()
        details = str(app.query_one("#details").render())
        assert f"pid {holder.info.backend_pid}" in details and "migrator" in details

        db.execute(f"INSERT INTO {other} (id) VALUES (50)")  # the rest is still measured: now behind
        before = app.refresh_count
        await pilot.press("r")
        await until(pilot, lambda: app.refresh_count > before, "a refresh")
        assert row(other).status is Status.BEHIND
        assert row(locked).status is Status.LOCKED


def test_before_18_an_open_alter_sequence_blocks_the_call_but_not_the_read_of_the_relation(db, holder):
    """pg_sequence_last_value() (the state read before PostgreSQL 18) asks for ROW EXCLUSIVE, which an
    open ALTER SEQUENCE (SHARE ROW EXCLUSIVE) blocks; a SELECT from the sequence is not blocked: the
    state is read from it, after one wait, and not reported locked."""
    from dataclasses import replace

    from seqtui.locks import LockWatch

    names = make_tables(db, behind=False)
    altered = f"{names[7]}_id_seq"
    holder.execute(f"ALTER SEQUENCE {altered} INCREMENT 1")
    with connect(resolve(db.url)) as conn:
        seqs = [replace(seq, data_function=False) for seq, _ in catalog.discover(conn)]
        conn.execute("SET lock_timeout = '500ms'")
        start = time.monotonic()
        states = catalog.read_states(conn, seqs, locks=LockWatch(0.5))
        took = time.monotonic() - start
    assert all(getattr(s, "last_value", None) == 3 for s in states), states
    assert took < BOUND, took


def test_a_shared_sequence_with_a_locked_consumer_is_not_promised_a_fix(db, holder):
    db.execute("CREATE SEQUENCE shared")
    db.execute("CREATE TABLE a (id int PRIMARY KEY DEFAULT nextval('shared'))")
    db.execute("CREATE TABLE b (id int PRIMARY KEY DEFAULT nextval('shared'))")
    db.execute("INSERT INTO a VALUES (5); INSERT INTO b VALUES (9)")
    holder.execute("LOCK TABLE a IN ACCESS EXCLUSIVE MODE")

    run, took = timed("fix", "--yes", *TIMEOUTS, url=db.url)
    assert took < BOUND and run.code == 1, (took, run.text)
    assert "cannot fix public.shared" in run.out and "public.a, which also draws from this sequence, is locked" \
        in run.out and f"pid {holder.info.backend_pid} " in run.out
    assert db.next_value("shared") == 1  # untouched: the fix would have had to lock a as well
