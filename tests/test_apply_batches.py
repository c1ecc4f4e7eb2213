"""`fix` sends its per-sequence transactions in batches (one query string, one round trip per batch):
same transactions, same order, nothing sent twice, and every outcome reported is what happened. Real
PostgreSQL; the batch size is made small so that a few tables span several batches."""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from seqtui import apply, wire
from seqtui.apply import apply_plan, apply_plans
from seqtui.connect import connect, resolve
from seqtui.repair import plans_from_verdicts
from seqtui.scan import scan
from test_safety import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from latency import DelayProxy  # noqa: E402  (bench/: the benchmark's proxy that adds round-trip time)

HW = 20  # every table holds ids 1..HW inserted explicitly: its sequence is behind, next value 1


def make_tables(db, n: int) -> list[str]:
    names = [f"t{i:02}" for i in range(n)]  # plans are ordered by sequence name: t00_id_seq, t01_id_seq, ...
    db.execute("; ".join(f"CREATE TABLE {t} (id serial PRIMARY KEY); "
                         f"INSERT INTO {t} SELECT generate_series(1, {HW})" for t in names))
    return names


def next_values(db, names) -> list[int]:
    return [db.next_value(f"public.{t}_id_seq") for t in names]


@pytest.fixture
def batches(monkeypatch):
    """Batch size 3, and a record of the plans (by table) each batch sent."""
    monkeypatch.setattr(apply, "BATCH_SIZE", 3)
    sent: list[list[str]] = []
    real = apply.apply_batch

    def spy(conn, composed, *args):
        sent.append([p.consumers[0].table for p in composed.plans])
        return real(conn, composed, *args)

    monkeypatch.setattr(apply, "apply_batch", spy)
    return sent


def plans_for(conn):
    return plans_from_verdicts(scan(conn).verdicts)


@pytest.mark.parametrize("locked, expected_batches", [
    # the middle of the first batch: t02 goes again first in the next batch
    ((1,), [[0, 1, 2], [2, 3, 4], [5, 6, 7]]),
    # the first plan of the first batch: the whole batch goes again, less the failed plan
    ((0,), [[0, 1, 2], [1, 2, 3], [4, 5, 6], [7]]),
    # the last plan of a batch: nothing to send again
    ((2,), [[0, 1, 2], [3, 4, 5], [6, 7]]),
    # middle, then the first of the next batch (a resent plan), then the first of the last batch
    ((1, 2, 6), [[0, 1, 2], [2, 3, 4], [3, 4, 5], [6, 7], [7]]),
])
def test_locked_table_fails_alone_and_the_plans_after_it_are_sent_in_the_next_batch(
        db, batches, locked, expected_batches):
    names = make_tables(db, 8)
    holder = psycopg.connect(db.url)  # a transaction that writes to the locked tables
    holder.execute("SET application_name = 'busy-writer'")
    for i in locked:
        holder.execute(f"LOCK TABLE {names[i]} IN ROW EXCLUSIVE MODE")
    holder_pid = holder.info.backend_pid
    try:
        with connect(resolve(db.url)) as conn:
            plans = plans_for(conn)
            assert [p.consumers[0].table for p in plans] == names
            seen = []
            results = apply_plans(conn, plans, lock_timeout=0.2, on_result=seen.append)
        # the holder's own writes go on once seqtui gave up: seqtui holds nothing and waits for nothing
        for i in locked:
            holder.execute(f"INSERT INTO {names[i]} VALUES (1000 + {i})")
        holder.commit()
    finally:
        holder.close()

    assert batches == [[names[i] for i in batch] for batch in expected_batches]
    assert seen == results and [r.plan for r in results] == plans  # once per plan, in plan order
    for i, (name, result) in enumerate(zip(names, results)):
        if i in locked:
            assert result.outcome == "failed", result
            assert result.reason.startswith(f"lock on public.{name} not granted within 0.2s; held by pid "
                                            f"{holder_pid} (user "), result.reason
            assert "application busy-writer" in result.reason and f"RowExclusiveLock on {name}, query: " \
                "LOCK TABLE " in result.reason, result.reason
            assert result.reason.endswith("; nothing changed")
        else:
            assert (result.outcome, result.before, result.after) == ("fixed", 1, HW + 1), result
    # what was reported fixed moved exactly there; what failed did not move at all
    assert next_values(db, names) == [1 if i in locked else HW + 1 for i in range(len(names))]
    # the proof: inserts through the default work on every fixed table
    for i, name in enumerate(names):
        if i not in locked:
            assert db.insert_default(name) == HW + 1


def test_each_batch_is_composed_while_the_server_runs_the_one_before(db, batches, monkeypatch):
    """The client's share (quoting every name of 32 transactions) overlaps the server's: each batch
    after the first is composed while the one before is in flight, and each exactly once."""
    names = make_tables(db, 8)
    composed: list[tuple[list[str], bool]] = []  # (tables, was a query in flight meanwhile)
    real = apply.compose

    def spy(conn, indexes, plans, *args):
        composed.append(([plans[i].consumers[0].table for i in indexes], conn.pgconn.is_busy() == 1))
        return real(conn, indexes, plans, *args)

    monkeypatch.setattr(apply, "compose", spy)
    with connect(resolve(db.url)) as conn:
        results = apply_plans(conn, plans_for(conn))
    assert [r.outcome for r in results] == ["fixed"] * 8
    assert batches == [names[0:3], names[3:6], names[6:8]]
    assert composed == [(names[0:3], False), (names[3:6], True), (names[6:8], True)]


@pytest.fixture
def lazy_wal_writer(db):
    """The WAL writer waits 10 s between its flushes (its longest), so that in a test nothing but the
    fixes' own commits flushes the WAL."""
    db.execute("ALTER SYSTEM SET wal_writer_delay = '10s'")
    db.execute("SELECT pg_reload_conf()")
    try:
        yield
    finally:
        db.execute("ALTER SYSTEM RESET wal_writer_delay")
        db.execute("SELECT pg_reload_conf()")


@pytest.mark.parametrize("locked, refused", [((), False), ((4,), False), ((4,), True)])
def test_every_fix_is_on_disk_before_it_is_reported(db, batches, lazy_wal_writer, locked, refused):
    """The fixes of a batch commit without waiting for the disk, and the batch waits once at its end (after
    a failed plan, on its own): no fix is reported before the WAL holding its setval is flushed, so a
    server crash cannot undo a fix reported done. Seen from another session while each result is
    reported: the sequence page's LSN against the WAL flushed so far. `refused`: a role may not write the
    record that the wait once needs (pg_logical_emit_message): every fix waits for its own COMMIT."""
    db.execute("CREATE EXTENSION pageinspect")  # shipped with PostgreSQL (contrib)
    names = make_tables(db, 8)
    url = db.url
    if refused:
        role = f"{db.name}_fixer"
        db.execute(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'x'; "
                   f"GRANT SELECT, UPDATE ON {', '.join(names)} TO {role}; "
                   f"GRANT SELECT, UPDATE ON {', '.join(f'{t}_id_seq' for t in names)} TO {role}")
        for (function,) in db.execute("SELECT oid::regprocedure::text FROM pg_proc "
                                      "WHERE proname = 'pg_logical_emit_message'").fetchall():
            db.execute(f"REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC")
        url = make_conninfo(db.url, user=role, password="x")
    holder = psycopg.connect(db.url)  # holds the locked tables while the fix runs
    for i in locked:
        holder.execute(f"LOCK TABLE {names[i]} IN ROW EXCLUSIVE MODE")
    on_disk = {}

    def check(result):
        if result.outcome == "fixed":
            on_disk[result.plan.consumers[0].table] = db.scalar(
                "SELECT (page_header(get_raw_page(%s::oid::regclass::text, 0))).lsn <= pg_current_wal_flush_lsn()",
                (result.plan.sequence.oid,))

    try:
        with connect(resolve(url)) as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone()[0] != "off"  # as the server has it
            results = apply_plans(conn, plans_for(conn), lock_timeout=0.2, on_result=check)
            # the session's own setting is untouched: each fix turned it off for its transaction only
            assert conn.execute("SHOW synchronous_commit").fetchone()[0] != "off"
    finally:
        holder.close()
        if refused:
            db.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
    assert [r.outcome for r in results] == ["failed" if i in locked else "fixed" for i in range(8)]
    assert on_disk == {name: True for i, name in enumerate(names) if i not in locked}
    for i, name in enumerate(names):
        if i not in locked:
            assert db.insert_default(name) == HW + 1


def test_a_fix_refused_for_another_reason_fails_alone(db, batches):
    """A privilege revoked between the scan and the fix: its setval fails inside the batch."""
    names = make_tables(db, 5)
    role = f"{db.name}_fixer"
    db.execute(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'x'; "
               f"GRANT SELECT, UPDATE ON {', '.join(names)} TO {role}; "
               f"GRANT SELECT, UPDATE ON {', '.join(f'{t}_id_seq' for t in names)} TO {role}")
    try:
        with connect(resolve(make_conninfo(db.url, user=role, password="x"))) as conn:
            plans = plans_for(conn)
            assert all(p.fixable for p in plans) and len(plans) == 5
            db.execute(f"REVOKE UPDATE ON t01_id_seq FROM {role}")
            results = apply_plans(conn, plans, lock_timeout=2)
    finally:
        db.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
    assert batches == [["t00", "t01", "t02"], ["t02", "t03", "t04"]]
    assert [r.outcome for r in results] == ["fixed", "failed", "fixed", "fixed", "fixed"]
    assert results[1].reason == "permission denied for sequence t01_id_seq; nothing changed"
    assert next_values(db, names) == [HW + 1, 1, HW + 1, HW + 1, HW + 1]


def test_statement_timeout_inside_a_batch_fails_only_that_plan(db, batches):
    names = make_tables(db, 4)
    holder = psycopg.connect(db.url)
    try:
        holder.execute("LOCK TABLE t02 IN ROW EXCLUSIVE MODE")
        with connect(resolve(db.url)) as conn:
            results = apply_plans(conn, plans_for(conn), lock_timeout=30, statement_timeout=0.2)
    finally:
        holder.close()
    assert batches == [["t00", "t01", "t02"], ["t03"]]
    assert [r.outcome for r in results] == ["fixed", "fixed", "failed", "fixed"]
    assert results[2].reason == "canceling statement due to statement timeout"
    assert next_values(db, names) == [HW + 1, HW + 1, 1, HW + 1]


def test_backend_killed_while_a_batch_waits_reports_unknown_then_skipped(db, batches):
    """Batch [t03, t04, t05] waits on t04's lock when the backend dies. The client cannot know what the
    server ran of that batch, nor whether what it committed reached disk: every plan of it is unknown,
    t03 too, though it committed before the LOCK of t04 (its batch never got to wait for the disk);
    t06 was never sent."""
    names = make_tables(db, 7)
    holder = psycopg.connect(db.url)
    holder.execute("LOCK TABLE t04 IN ROW EXCLUSIVE MODE")
    seen, outcome = [], {}
    try:
        conn = connect(resolve(db.url))
        plans = plans_for(conn)
        pid = conn.info.backend_pid

        def run():
            try:
                outcome["results"] = apply_plans(conn, plans, lock_timeout=60, on_result=seen.append)
            except BaseException as exc:  # surfaced below
                outcome["error"] = exc

        worker = threading.Thread(target=run)
        worker.start()
        wait_for(lambda: db.scalar("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                                   (pid,)), "the fix of t04 to wait for its lock")
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        worker.join(timeout=60)
        assert not worker.is_alive()
    finally:
        holder.close()
    assert "error" not in outcome, outcome
    results = outcome["results"]
    assert seen == results and [r.plan for r in results] == plans
    assert batches == [["t00", "t01", "t02"], ["t03", "t04", "t05"]]  # nothing sent after the loss
    outcomes = [r.outcome for r in results]
    assert outcomes == ["fixed"] * 3 + ["unknown"] * 3 + ["skipped"]
    # whether t03's COMMIT acknowledgement reached the client before the backend died is up to the server
    assert results[3].reason.startswith(("connection lost during the fix (",
                                         "committed, but not known to be on disk (connection lost during "))
    for r in results[3:6]:
        assert "connection lost during the fix (" in r.reason and r.reason.endswith("re-run check")
    assert results[6].reason == "not attempted: the connection was lost"
    after = next_values(db, names)
    # nothing reported fixed that did not move; t04 waited for its lock and t05 was behind it: neither ran
    for r, value in zip(results, after):
        if r.outcome == "fixed":
            assert (r.after, value) == (HW + 1, HW + 1)
    assert after[4:] == [1, 1, 1]
    assert after[3] == HW + 1  # committed before the LOCK of t04 was even tried


def test_callback_failure_stops_after_reporting_the_batch_it_knows(db, batches):
    """on_result writes the audit log: if it fails, nothing more is sent, but every outcome already known
    (the whole batch committed) is still handed to it, in order."""
    names = make_tables(db, 5)
    seen = []

    def on_result(result):
        seen.append(result)
        if len(seen) == 1:
            raise OSError("disk full")

    with connect(resolve(db.url)) as conn:
        plans = plans_for(conn)
        with pytest.raises(OSError, match="disk full"):
            apply_plans(conn, plans, on_result=on_result)
    assert batches == [["t00", "t01", "t02"]]
    assert [(r.plan, r.outcome) for r in seen] == [(p, "fixed") for p in plans[:3]]
    assert next_values(db, names) == [HW + 1] * 3 + [1, 1]


def test_with_nothing_to_send_nothing_is_sent_or_written(db, monkeypatch):
    """Only plans setval cannot help: not a statement goes to the server, the wait for the disk included
    (it writes a WAL record)."""
    db.execute("CREATE SEQUENCE s AS smallint; CREATE TABLE t (id smallint DEFAULT nextval('s') PRIMARY KEY); "
               "INSERT INTO t VALUES (32767)")
    sent = []
    real = wire.exchange
    monkeypatch.setattr(wire, "exchange", lambda conn, query, *a: sent.append(query) or real(conn, query, *a))
    with connect(resolve(db.url)) as conn:
        (result,) = apply_plans(conn, plans_for(conn))
    assert result.outcome == "failed" and "widen" in result.reason
    assert sent == []


def test_unfixable_plans_keep_their_place_and_touch_nothing(db, batches):
    make_tables(db, 4)
    db.execute("CREATE SEQUENCE t01x_seq AS smallint; "
               "CREATE TABLE t01x (id smallint DEFAULT nextval('t01x_seq') PRIMARY KEY); "
               "INSERT INTO t01x VALUES (32767)")
    with connect(resolve(db.url)) as conn:
        plans = plans_for(conn)
        seen = []
        results = apply_plans(conn, plans, on_result=seen.append)
        # a single plan still works on its own
        db.execute("INSERT INTO t00 VALUES (500)")
        (again,) = [p for p in plans_for(conn) if p.consumers[0].table == "t00"]
        single = apply_plan(conn, again)
    assert [p.consumers[0].table for p in plans] == ["t00", "t01", "t01x", "t02", "t03"]
    assert seen == results and [r.plan for r in results] == plans
    assert [r.outcome for r in results] == ["fixed", "fixed", "failed", "fixed", "fixed"]
    assert "widen" in results[2].reason
    assert batches[0] == ["t00", "t01", "t02"]  # the unfixable plan is not sent
    assert db.next_value("public.t01x_seq") == 1
    assert (single.outcome, single.before, single.after) == ("fixed", HW + 1, 501)
    assert db.insert_default("t00") == 501


def test_ctrl_c_while_a_batch_waits_cancels_reports_and_sends_nothing_more(db, batches):
    """Ctrl+C while [t03, t04, t05] waits on t04's lock: the statement waiting is cancelled, what the batch
    did is reported, the rest is skipped, then KeyboardInterrupt goes on up."""
    names = make_tables(db, 7)
    holder = psycopg.connect(db.url)
    holder.execute("LOCK TABLE t04 IN ROW EXCLUSIVE MODE")
    seen = []
    try:
        with connect(resolve(db.url)) as conn:
            plans = plans_for(conn)
            pid, main = conn.info.backend_pid, threading.get_ident()

            def press_ctrl_c():
                wait_for(lambda: db.scalar("SELECT wait_event_type = 'Lock' FROM pg_stat_activity "
                                           "WHERE pid = %s", (pid,)), "the fix of t04 to wait for its lock")
                signal.pthread_kill(main, signal.SIGINT)

            presser = threading.Thread(target=press_ctrl_c)
            presser.start()
            try:
                with pytest.raises(KeyboardInterrupt):
                    apply_plans(conn, plans, lock_timeout=60, on_result=seen.append)
            finally:
                presser.join(timeout=60)
            # the session is usable again: nothing left running or open
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        holder.close()
    assert batches == [["t00", "t01", "t02"], ["t03", "t04", "t05"]]
    assert [r.plan for r in seen] == plans  # everything reported, in order, before the interrupt went on
    assert [r.outcome for r in seen] == ["fixed"] * 4 + ["failed", "skipped", "skipped"]
    assert seen[4].reason == "canceling statement due to user request"
    assert seen[5].reason == seen[6].reason == "not attempted: interrupted"
    assert next_values(db, names) == [HW + 1] * 4 + [1] * 3


def test_a_query_string_larger_than_the_socket_buffers_is_sent_whole(db, monkeypatch):
    """The connection is non-blocking: a long string goes out in several writes, then every reply is read."""
    waits = []
    real_wait = wire._wait

    def counting_wait(pgconn, write=False):
        waits.append(write)
        return real_wait(pgconn, write)

    monkeypatch.setattr(wire, "_wait", counting_wait)
    with connect(resolve(db.url)) as conn:
        replies, sent, problem = wire.exchange(
            conn, b"SELECT length('" + b"x" * 32_000_000 + b"'); SELECT 2; SELECT 3")
    assert (sent, problem) == (True, None)
    assert [r.get_value(0, 0) for r in replies] == [b"32000000", b"2", b"3"]
    assert True in waits  # the string did not fit in one write: the flush loop ran


def test_a_connection_known_closed_sends_nothing_and_fix_exits_3(db, tmp_path, monkeypatch, capsys):
    """Nothing sent, nothing unknown: every plan is skipped, and `fix` still exits 3 (connection lost)."""
    from seqtui import cli

    names = make_tables(db, 2)
    with connect(resolve(db.url)) as conn:
        plans = plans_for(conn)
        conn.close()
        results = apply_plans(conn, plans)
    assert [r.outcome for r in results] == ["skipped", "skipped"]
    assert all(r.reason.startswith("not attempted: the connection was lost") for r in results)

    real = cli.apply_plans

    def closing_first(conn, *args, **kwargs):
        conn.close()
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(cli, "apply_plans", closing_first)
    code = cli.main(["fix", "--yes", "--dsn", db.url, "--audit-log", str(tmp_path / "audit.jsonl")])
    err = capsys.readouterr().err
    assert code == 3 and "connection lost: 2 sequence(s) not attempted" in err
    assert next_values(db, names) == [1, 1]


@pytest.mark.parametrize("round_trip, per_plan, size", [
    (None, None, apply.BATCH_SIZE),       # nothing measured yet
    (0.010, None, apply.BATCH_SIZE),      # no batch measured yet
    (0.0001, 0.0003, apply.BATCH_SIZE),   # next door: the round trip is already a small share
    (0.010, 0.001, 90),                   # 90 ms of work per 10 ms round trip: the round trip is a tenth
    (0.010, 0.0003, apply.MAX_BATCH_SIZE),  # would be 300: capped, a lost connection leaves at most that unknown
])
def test_batch_size_grows_with_the_round_trip(round_trip, per_plan, size):
    assert apply.batch_size(round_trip, per_plan) == size


def test_over_a_slow_link_batches_grow_and_every_fix_holds(db, monkeypatch):
    """20 ms of round trip (a real TCP proxy holding every byte back): the first batches measure the
    pace, the next ones are bigger, so there are fewer round trips; every sequence is fixed exactly
    once and the next INSERT through the default works."""
    names = make_tables(db, 120)
    sizes: list[int] = []
    real = apply.apply_batch

    def spy(conn, composed, *args):
        sizes.append(len(composed.plans))
        return real(conn, composed, *args)

    monkeypatch.setattr(apply, "apply_batch", spy)
    with psycopg.connect(db.url) as probe:
        host, port = probe.info.host, probe.info.port
    proxy = DelayProxy(host, port, one_way_seconds=0.010).start()
    try:
        with connect(resolve(make_conninfo(db.url, host="127.0.0.1", port=str(proxy.port)))) as conn:
            results = apply_plans(conn, plans_for(conn))
    finally:
        proxy.stop()
    assert [r.outcome for r in results] == ["fixed"] * 120
    # two batches of the least size (the second composed before the first was timed), then bigger ones
    assert sizes[:2] == [apply.BATCH_SIZE] * 2 and len(sizes) == 3 and sum(sizes) == 120, sizes
    assert next_values(db, names) == [HW + 1] * 120
    assert db.insert_default(names[-1]) == HW + 1


def test_a_connection_lost_before_the_first_batch_sends_nothing(db):
    """The round trip is measured before the first batch: if the connection died meanwhile, nothing is
    sent, so nothing is unknown: every plan is skipped."""
    names = make_tables(db, apply.BATCH_SIZE + 1)
    with connect(resolve(db.url)) as conn:
        plans = plans_for(conn)
        db.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        results = apply_plans(conn, plans)
    assert {r.outcome for r in results} == {"skipped"}
    assert next_values(db, names) == [1] * len(names)


@contextmanager
def held_locks(db, *tables: str):
    """A writer's open transaction holding ROW EXCLUSIVE locks on `tables` for the block."""
    holder = psycopg.connect(db.url)
    try:
        for table in tables:
            holder.execute(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE")
        yield holder
    finally:
        holder.close()


def seqtui_waiting_for_locks(db) -> int:
    return db.scalar("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                     "AND application_name = 'seqtui'")


def test_helpers_take_batches_as_they_come_free_and_every_plan_is_fixed_once_in_order(db, batches, monkeypatch):
    """--jobs 2: each connection runs batches on its own; outcomes still come in plan order, once each."""
    names = make_tables(db, 12)
    ran_on: dict[int, list[str]] = {}  # backend pid -> tables of the batches it ran
    both_started = threading.Barrier(2, timeout=30)
    real = wire.exchange

    def spy(conn, query, meanwhile=None):
        if query:  # not the empty query that measures the round trip
            pid = conn.info.backend_pid
            first = pid not in ran_on
            ran_on.setdefault(pid, [])
            if first:
                both_started.wait()  # each connection has a batch in hand before either sends it
        return real(conn, query, meanwhile)

    monkeypatch.setattr(wire, "exchange", spy)
    seen: list = []
    with connect(resolve(db.url)) as conn, connect(resolve(db.url)) as helper:
        plans = plans_for(conn)
        results = apply_plans(conn, plans, on_result=seen.append, helpers=[helper])
        pids = {conn.info.backend_pid, helper.info.backend_pid}
    assert set(ran_on) == pids  # both connections ran batches
    assert sorted(t for batch in batches for t in batch) == names  # every plan sent once
    assert seen == results and [r.plan for r in results] == plans
    assert [r.outcome for r in results] == ["fixed"] * 12
    assert next_values(db, names) == [HW + 1] * 12
    assert db.insert_default("t11") == HW + 1


def test_a_lock_wait_on_one_connection_does_not_hold_up_the_others(db, batches):
    """t00's batch waits for a lock on the main connection; the helper fixes the rest meanwhile."""
    names = make_tables(db, 9)
    seen: list = []
    with held_locks(db, "t00") as holder, connect(resolve(db.url)) as conn, connect(resolve(db.url)) as helper:
        plans = plans_for(conn)
        worker = threading.Thread(target=lambda: seen.extend(
            apply_plans(conn, plans, lock_timeout=60, helpers=[helper])))
        worker.start()
        try:
            # every other sequence is fixed while t00's batch still waits
            wait_for(lambda: next_values(db, names[3:]) == [HW + 1] * 6, "the helper to fix t03..t08")
            assert seqtui_waiting_for_locks(db) == 1
            assert next_values(db, names[:3]) == [1, 1, 1]
        finally:
            holder.rollback()  # t00's lock is granted: its batch goes on
            worker.join(timeout=60)
    assert batches[0] == names[:3] or batches[1] == names[:3]
    assert [r.outcome for r in seen] == ["fixed"] * 9
    assert next_values(db, names) == [HW + 1] * 9


def test_ctrl_c_with_helpers_cancels_every_connection_and_reports_everything(db, batches):
    """Ctrl+C while both connections wait for locks: both statements are cancelled, both batches report
    what they did, nothing more is sent, then KeyboardInterrupt goes on up."""
    names = make_tables(db, 9)
    seen: list = []
    with held_locks(db, "t01", "t04"), connect(resolve(db.url)) as conn, connect(resolve(db.url)) as helper:
        plans = plans_for(conn)
        main = threading.get_ident()

        def press_ctrl_c():
            wait_for(lambda: seqtui_waiting_for_locks(db) == 2, "both fixes to wait")
            signal.pthread_kill(main, signal.SIGINT)

        presser = threading.Thread(target=press_ctrl_c)
        presser.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                apply_plans(conn, plans, lock_timeout=60, on_result=seen.append, helpers=[helper])
        finally:
            presser.join(timeout=60)
        for c in (conn, helper):  # nothing left running or open on either
            assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert sorted(batches) == [names[:3], names[3:6]]  # nothing sent after the interrupt
    assert [r.plan for r in seen] == plans  # everything reported, in order
    outcomes = [r.outcome for r in seen]
    assert outcomes == ["fixed", "failed", "skipped", "fixed", "failed"] + ["skipped"] * 4, seen
    assert seen[1].reason == seen[4].reason == "canceling statement due to user request"
    assert next_values(db, names) == [HW + 1, 1, 1, HW + 1] + [1] * 5


def test_a_helper_that_died_while_idle_takes_no_batch_and_the_others_fix_everything(db, batches):
    """A helper connection killed before the fix (say, while the operator read the plan): nothing is sent
    on it, nothing is unknown, the main connection does its share."""
    names = make_tables(db, 5)
    with connect(resolve(db.url)) as conn, connect(resolve(db.url)) as helper:
        plans = plans_for(conn)
        db.execute("SELECT pg_terminate_backend(%s)", (helper.info.backend_pid,))
        wait_for(lambda: not db.scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                       (helper.info.backend_pid,)), "the helper's backend to end")
        results = apply_plans(conn, plans, helpers=[helper])
    assert [r.outcome for r in results] == ["fixed"] * 5
    assert batches == [names[0:3], names[3:5]]
    assert next_values(db, names) == [HW + 1] * 5
