"""The live view's refresh re-measures only what changed, and still sees every change that matters."""

from __future__ import annotations

import time
from dataclasses import replace

import psycopg
import pytest

from seqtui.connect import connect, resolve
from seqtui.model import Consumer
from seqtui.refresh import LiveScanner, changed_tables, counter_params, same_objects
from seqtui.scan import scan


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def write_from_another_session(db, statement: str) -> None:
    """Statistics reach pg_stat when the writing backend flushes them; closing it flushes at once."""
    with psycopg.connect(db.url, autocommit=True) as other:
        other.execute(statement)


def wait_for_counters(scanner: LiveScanner, db, table: str, timeout: float = 15.0) -> None:
    oid = db.scalar("SELECT %s::regclass::oid::int8", (table,))
    before = scanner._counters.get(oid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = scanner._read_counters(scanner._discovered).get(oid)
        if now != before:
            return
        time.sleep(0.05)
    raise AssertionError(f"write counters of {table} never moved")


@pytest.fixture
def live(db):
    db.execute("""
        CREATE TABLE a (id serial PRIMARY KEY); INSERT INTO a SELECT generate_series(1, 5);
        CREATE TABLE b (id serial PRIMARY KEY); INSERT INTO b DEFAULT VALUES;
        CREATE SEQUENCE shared;
        CREATE TABLE s1 (id int DEFAULT nextval('shared') PRIMARY KEY);
        CREATE TABLE s2 (id int DEFAULT nextval('shared') PRIMARY KEY);
        INSERT INTO s1 DEFAULT VALUES;
    """)
    conn = connect(resolve(db.url))
    clock = FakeClock()
    yield LiveScanner(conn, full_every=30.0, clock=clock), clock
    conn.close()


def statuses(report) -> dict[str, str]:
    return {v.consumer.table: v.status.value for v in report.verdicts if v.consumer}


def test_idle_tick_measures_nothing_and_agrees_with_a_full_scan(live, db):
    scanner, clock = live
    first = scanner.tick()
    assert scanner.last_tick.kind == "full" and scanner.last_tick.remeasured == 4
    clock.now += 2
    second = scanner.tick()
    assert (scanner.last_tick.kind, scanner.last_tick.remeasured) == ("incremental", 0)
    assert statuses(second) == statuses(first) == statuses(scan(scanner.conn))
    assert statuses(second) == {"a": "behind", "b": "ok", "s1": "ok", "s2": "empty"}


def test_an_idle_tick_hands_back_the_same_report_and_a_write_a_new_one(live, db):
    scanner, clock = live
    first = scanner.tick()
    clock.now += 2
    assert scanner.tick() is first  # nothing written: not even re-sorted
    write_from_another_session(db, "INSERT INTO b DEFAULT VALUES")
    wait_for_counters(scanner, db, "b")
    clock.now += 2
    after_write = scanner.tick()
    assert after_write is not first and scanner.last_tick.remeasured == 1
    (row,) = [v for v in after_write.verdicts if v.consumer and v.consumer.table == "b"]
    assert row.next_value == 3


def test_a_full_scan_that_fails_half_way_leaves_the_scanner_as_it_was(live, db, monkeypatch):
    """A scan stopped or timed out half-way must not leave the scanner with half its verdicts: the
    next tick has to report every sequence, as a fresh scan does."""
    from seqtui import catalog

    scanner, clock = live
    scanner.tick()
    real = catalog.observe_in_groups

    def fails_after_one_group(*args, **kwargs):
        groups = real(*args, **kwargs)
        yield next(groups)
        raise psycopg.errors.QueryCanceled("canceling statement due to user request")

    monkeypatch.setattr(catalog, "GROUP", 1)
    monkeypatch.setattr(catalog, "observe_in_groups", fails_after_one_group)
    with pytest.raises(psycopg.errors.QueryCanceled):
        scanner.tick(full=True)
    monkeypatch.setattr(catalog, "observe_in_groups", real)
    clock.now += 2
    report = scanner.tick()
    assert scanner.last_tick.kind == "incremental"
    assert statuses(report) == statuses(scan(scanner.conn)) == {"a": "behind", "b": "ok", "s1": "ok", "s2": "empty"}


def test_a_write_remeasures_only_its_sequence(live, db):
    scanner, clock = live
    scanner.tick()
    write_from_another_session(db, "INSERT INTO b VALUES (100)")  # an import with explicit ids
    wait_for_counters(scanner, db, "b")
    clock.now += 2
    report = scanner.tick()
    assert (scanner.last_tick.kind, scanner.last_tick.remeasured) == ("incremental", 1)
    assert statuses(report)["b"] == "behind"
    assert statuses(report) == statuses(scan(scanner.conn))


def test_a_write_to_one_table_remeasures_every_consumer_of_a_shared_sequence(live, db):
    scanner, clock = live
    scanner.tick()
    write_from_another_session(db, "INSERT INTO s2 VALUES (50)")
    wait_for_counters(scanner, db, "s2")
    clock.now += 2
    report = scanner.tick()
    assert scanner.last_tick.remeasured == 2
    assert statuses(report)["s2"] == "behind"
    (s1,) = [v for v in report.verdicts if v.consumer and v.consumer.table == "s1"]
    assert s1.sequence_high_water == 50  # s1's row knows its sequence must move past s2's ids


def test_a_write_into_a_partition_remeasures_its_partitioned_parent(live, db):
    db.execute("""
        CREATE TABLE events (id bigserial, region int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
        CREATE TABLE events_eu PARTITION OF events FOR VALUES IN (1);
        INSERT INTO events (region) VALUES (1);
    """)
    scanner, clock = live
    scanner.tick(full=True)
    write_from_another_session(db, "INSERT INTO events_eu (id, region) VALUES (900, 1)")  # not via the parent
    wait_for_counters(scanner, db, "events")
    clock.now += 2
    report = scanner.tick()
    assert (scanner.last_tick.kind, scanner.last_tick.remeasured) == ("incremental", 1)
    assert statuses(report)["events"] == "behind"


def test_failed_inserts_count_as_writes(live, db):
    scanner, clock = live
    scanner.tick()
    with pytest.raises(psycopg.errors.UniqueViolation):
        write_from_another_session(db, "INSERT INTO a DEFAULT VALUES")  # burns a value
    wait_for_counters(scanner, db, "a")
    clock.now += 2
    report = scanner.tick()
    assert scanner.last_tick.remeasured == 1
    (row,) = [v for v in report.verdicts if v.consumer and v.consumer.table == "a"]
    assert row.next_value == 2


def test_created_and_dropped_tables_trigger_a_full_scan(live, db):
    scanner, clock = live
    scanner.tick()
    db.execute("CREATE TABLE c (id serial PRIMARY KEY); INSERT INTO c VALUES (3)")
    clock.now += 2
    report = scanner.tick()
    assert scanner.last_tick.kind == "full" and statuses(report)["c"] == "behind"
    db.execute("DROP TABLE c")
    clock.now += 2
    report = scanner.tick()
    assert scanner.last_tick.kind == "full" and "c" not in statuses(report)


def test_a_domain_check_changed_triggers_a_full_scan_and_its_new_bound(live, db):
    """A domain's CHECK bounds the column's capacity: changing it is a change discovery depends on."""
    scanner, clock = live
    db.execute("CREATE DOMAIN small_no AS int CHECK (VALUE <= 1000); "
               "CREATE TABLE d (id small_no DEFAULT nextval('shared') PRIMARY KEY)")
    clock.now += 2
    scanner.tick()
    db.execute("ALTER DOMAIN small_no ADD CHECK (VALUE <= 100)")
    clock.now += 2
    report = scanner.tick()
    (v,) = [v for v in report.verdicts if v.consumer and v.consumer.table == "d"]
    assert scanner.last_tick.kind == "full" and v.consumer.domain_bounds == (None, 100)


def test_changes_counters_cannot_see_are_caught_by_the_periodic_full_scan(live, db):
    scanner, clock = live
    scanner.tick()
    db.execute("SELECT setval('b_id_seq', 500)")  # no table was written to
    clock.now += 2
    before = scanner.tick()
    (b,) = [v for v in before.verdicts if v.consumer and v.consumer.table == "b"]
    assert scanner.last_tick.kind == "incremental" and b.next_value == 2  # not seen yet, by design
    clock.now += 30
    after = scanner.tick()
    (b,) = [v for v in after.verdicts if v.consumer and v.consumer.table == "b"]
    assert scanner.last_tick.kind == "full" and b.next_value == 501
    assert scanner.tick(full=True) and scanner.last_tick.kind == "full"


def test_a_full_scan_hands_back_the_same_verdicts_for_what_did_not_change(live, db):
    """The face tells changed rows by identity: a full re-scan must return new objects exactly for the
    sequences whose reading changed, and those must be right."""
    scanner, _ = live
    first = {v.key: v for v in scanner.tick().verdicts}
    db.execute("SELECT setval('b_id_seq', 500)")  # invisible to the write counters
    again = {v.key: v for v in scanner.tick(full=True).verdicts}
    assert scanner.last_tick.kind == "full" and again.keys() == first.keys()
    new = {again[k].consumer.table for k in again if again[k] is not first[k]}
    assert new == {"b"} and [v.next_value for v in again.values() if v.consumer.table == "b"] == [501]
    assert all(again[k] == first[k] for k in again if again[k].consumer.table != "b")


def test_changed_tables_is_pure():
    assert changed_tables({1: 5, 2: 7}, {1: 5, 2: 8, 3: 0}) == {2, 3}


def test_counter_params_split_plain_tables_from_partitioned_parents():
    def consumer(oid, relkind):
        return Consumer(table_oid=oid, schema="s", table=f"t{oid}", column="id", attnum=1,
                        column_type="integer", kind="serial", indexed=True, relkind=relkind)
    shared = (consumer(30, "r"), consumer(7, "r"))  # one sequence, two tables
    discovered = [(None, shared), (None, (consumer(12, "p"),)), (None, (consumer(30, "r"),)), (None, ())]
    assert counter_params(discovered) == {"tables": "{7,30}", "parents": "{12}"}
    assert counter_params([(None, ())]) is None


def test_a_rediscovery_keeps_the_objects_of_what_did_not_change(live, db):
    """A full re-scan's fresh discovery is swapped for the objects already held, where equal."""
    from seqtui import catalog

    scanner, _ = live
    before = catalog.discover(scanner.conn)
    db.execute("ALTER SEQUENCE a_id_seq INCREMENT 5")
    now = catalog.discover(scanner.conn)
    kept = same_objects(before, now)
    assert kept == now
    for old, fresh, result in zip(before, now, kept):
        if fresh[0].name == "a_id_seq":
            assert result is fresh and result != old
        else:
            assert result is old
    assert same_objects(None, now) is now


def test_first_scan_reports_its_progress_group_by_group(live, db, monkeypatch):
    """A big database shows its first rows while the rest is measured: each progress report holds
    only measured sequences, judged as the final report judges them; later ticks report none."""
    from seqtui import catalog
    from seqtui.config import WatchEntry
    from seqtui.scan import Scope

    monkeypatch.setattr(catalog, "GROUP", 1)  # one sequence (or shared sequence) per group
    scanner, _ = live
    scanner.scope = Scope(watch=(WatchEntry(table="a", column=None),))
    seen = []
    final = scanner.tick(progress=lambda report, done, total: seen.append((report(), done, total)))
    final_by_key = {v.key: v for v in final.verdicts}
    assert [(done, total) for _, done, total in seen] == [(1, 3), (2, 3)]
    for report, done, _ in seen:
        assert len({v.sequence.oid for v in report.verdicts}) == done
        # the same verdicts, except that watch marks and rows come with the final report
        assert all(v == replace(final_by_key[v.key], watched=False) for v in report.verdicts)
    assert any(v.watched for v in final.verdicts)
    assert statuses(final) == {"a": "behind", "b": "ok", "s1": "ok", "s2": "empty"}
    scanner.tick(full=True, progress=lambda *a: seen.append(a))
    assert len(seen) == 2
