"""A scan of a big database (the UI's first; check, sql and fix without --jobs) measures on a spare
second connection too, unasked, when the server has room for it, and never waits for it. Real
PostgreSQL; "big" is made small for the tests."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from seqtui import catalog, cli
from seqtui import spare as spare_module
from seqtui.catalog import Room
from seqtui.config import Config
from seqtui.connect import SpareConnection, connect, resolve
from seqtui.scan import scan
from seqtui.spare import wants_spare
from seqtui.tui.first_scan import FirstScan, ui_scope
from test_safety import wait_for

TABLES = 6


def build(db) -> None:
    for i in range(TABLES):
        db.execute(f"CREATE TABLE t{i} (id serial PRIMARY KEY); INSERT INTO t{i} SELECT generate_series(1, {i + 5})")


@pytest.fixture
def small_big(monkeypatch):
    """Six sequences count as a big database, measured in groups of two (so that two connections can
    share the work)."""
    monkeypatch.setattr(spare_module, "SPARE_MIN_SEQUENCES", TABLES)
    monkeypatch.setattr(catalog, "GROUP", 2)


def seqtui_backends(db) -> int:
    return db.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'seqtui' "
                     "AND datname = current_database()")


def run_first_scan(db, jobs=None) -> tuple[FirstScan, list]:
    target = resolve(db.url)
    first = FirstScan(connect(target), ui_scope(target, Config()), target, jobs=jobs).start()
    try:
        report = first.result()
    finally:
        first.collections.release()  # held for the app, which would release it once the table is up
    return first, report


def rows(report) -> list:
    return sorted((v.consumer.table, v.status.value, v.high_water) for v in report.verdicts)


@pytest.mark.parametrize("sequences, free, max_connections, wanted", [
    (2000, 100, 100, True),
    (1999, 100, 100, False),   # small: one connection measures it in well under a second
    (9000, 19, 100, False),    # fewer free slots than a fifth of max_connections
    (9000, 20, 100, True),
    (9000, 9, 20, False),      # and never fewer than ten
    (9000, 10, 20, True),
])
def test_a_spare_is_wanted_only_for_a_big_database_on_a_server_with_room(sequences, free, max_connections, wanted):
    assert wants_spare(Room(sequences, free, max_connections)) is wanted


def test_room_counts_sequences_and_the_free_slots(db):
    build(db)
    with connect(resolve(db.url)) as conn:
        room = catalog.room(conn)
        used = db.scalar("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
        reserved = db.scalar("SELECT current_setting('superuser_reserved_connections')::int "
                             "+ coalesce(current_setting('reserved_connections', true)::int, 0)")
    assert room.sequences == db.scalar("SELECT count(*) FROM pg_class WHERE relkind = 'S'") >= TABLES
    assert room.max_connections == db.scalar("SELECT current_setting('max_connections')::int")
    assert room.free_slots == room.max_connections - reserved - used


@pytest.mark.parametrize("limited", ["role", "database"])
def test_room_is_no_more_than_the_roles_or_the_databases_connection_limit(db, limited):
    """A connection refused for a CONNECTION LIMIT leaves a FATAL line in the server's log: the room
    counted is what is left under those limits too."""
    role = f"{db.name}_limited"
    db.execute(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'x' "
               f"CONNECTION LIMIT {2 if limited == 'role' else -1}")
    if limited == "database":
        db.execute(f"ALTER DATABASE {db.name} CONNECTION LIMIT 5")
    try:
        with connect(resolve(make_conninfo(db.url, user=role, password="x"))) as conn:
            in_db = db.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            free = catalog.room(conn).free_slots
        assert free == (2 - 1 if limited == "role" else 5 - in_db)
        assert not wants_spare(Room(9000, free, 100))
    finally:
        db.execute(f"ALTER DATABASE {db.name} CONNECTION LIMIT -1")
        db.execute(f"DROP ROLE {role}")


def test_a_big_database_is_measured_on_two_connections_and_the_spare_is_closed(db, small_big, monkeypatch):
    build(db)
    # the spare open before measuring starts, as on a server next door: a spare still connecting is not
    # waited for (the test below), so without this the test would depend on the machine's speed
    spares = RecordedSpares(monkeypatch)
    real_discover = catalog.discover
    monkeypatch.setattr(catalog, "discover", lambda conn: (spares.wait_until_open(), real_discover(conn))[1])
    first, report = run_first_scan(db)
    monkeypatch.setattr(catalog, "discover", real_discover)  # the one-connection scan below has no spare
    assert len(spares.made) == 1 and len(spares.taken) == 1
    assert first.connections == 2
    with connect(resolve(db.url)) as conn:
        assert rows(report) == rows(scan(conn))  # the same table as one connection measures
    first.conn.close()
    wait_for(lambda: seqtui_backends(db) == 0, "every seqtui connection to end")


@pytest.mark.parametrize("why", ["small", "no room", "jobs 1"])
def test_no_spare_when_small_when_the_server_has_no_room_or_with_jobs_1(db, small_big, monkeypatch, why):
    build(db)
    opened = []
    monkeypatch.setattr(spare_module, "SpareConnection",
                        lambda target: opened.append(target) or SpareConnection(target))
    if why == "small":
        monkeypatch.setattr(spare_module, "SPARE_MIN_SEQUENCES", TABLES + 1)
    if why == "no room":
        monkeypatch.setattr(spare_module, "SPARE_MIN_FREE_SLOTS", 10_000)
    first, report = run_first_scan(db, jobs=1 if why == "jobs 1" else None)
    assert opened == [] and first.connections == 1
    assert {v.consumer.table for v in report.verdicts} == {f"t{i}" for i in range(TABLES)}
    first.conn.close()


def test_the_scan_never_waits_for_a_spare_that_is_slow_to_open(db, small_big, monkeypatch):
    """A spare still connecting when measuring starts (a pooler keeping it waiting, a slow network) is
    not waited for: one connection measures everything, and the spare, once open, is closed at once."""
    build(db)
    release, opened = threading.Event(), []

    def slow_open(target):
        assert release.wait(60)
        conn = connect(target)
        opened.append(conn)
        return conn

    spares = []
    monkeypatch.setattr(spare_module, "SpareConnection",
                        lambda target: spares.append(SpareConnection(target, slow_open)) or spares[-1])
    first, report = run_first_scan(db)
    assert len(spares) == 1 and first.connections == 1 and opened == []  # done without it
    assert {v.consumer.table for v in report.verdicts} == {f"t{i}" for i in range(TABLES)}
    release.set()
    spares[0]._thread.join(60)
    assert len(opened) == 1 and opened[0].closed  # opened too late: closed by its own thread
    first.conn.close()


def test_a_spare_the_server_refuses_is_simply_not_there(db, small_big, monkeypatch):
    build(db)

    def refused(target):
        raise psycopg.OperationalError("FATAL:  sorry, too many clients already")

    monkeypatch.setattr(spare_module, "SpareConnection", lambda target: SpareConnection(target, refused))
    first, report = run_first_scan(db)
    assert first.connections == 1 and first.helper_warning is None  # unasked for: no warning either
    assert {v.consumer.table for v in report.verdicts} == {f"t{i}" for i in range(TABLES)}
    first.conn.close()


def test_a_server_that_hides_its_room_is_scanned_on_one_connection(db, small_big, monkeypatch):
    """The spare is an extra: a query of room.sql that fails (a PostgreSQL-compatible server without
    pg_stat_activity, say) must not fail the scan."""
    build(db)
    real = catalog.load_sql
    monkeypatch.setattr(catalog, "load_sql",
                        lambda name: "SELECT * FROM no_such_view" if name == "room.sql" else real(name))
    first, report = run_first_scan(db)
    assert first.connections == 1
    assert {v.consumer.table for v in report.verdicts} == {f"t{i}" for i in range(TABLES)}
    first.conn.close()


class RecordedSpares:
    """SpareConnection as spare.py makes them, each recorded with the connection it handed out."""

    def __init__(self, monkeypatch) -> None:
        self.made: list[SpareConnection] = []
        self.taken: list[psycopg.Connection] = []
        outer = self

        class Recorded(SpareConnection):
            def take(self):
                conn = super().take()
                if conn is not None:
                    outer.taken.append(conn)
                return conn

        monkeypatch.setattr(spare_module, "SpareConnection",
                            lambda target: outer.made.append(Recorded(target)) or outer.made[-1])

    def wait_until_open(self) -> None:
        """The spare open before measuring starts, as on a server next door (not waited for otherwise)."""
        wait_for(lambda: self.made and self.made[0]._state == "ready", "the spare to open")


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """Run from a directory without the project's sequences.json (its watchlist would add rows)."""
    monkeypatch.chdir(tmp_path)


def check_json(db, capsys, *extra) -> tuple[int, list]:
    code = cli.main(["check", "--json", "--dsn", db.url, *extra])
    rows = json.loads(capsys.readouterr().out)["sequences"]
    return code, sorted((r["table"], r["status"], r["high_water"], r["next_value"]) for r in rows)


def test_check_measures_a_big_database_on_a_spare_too_and_reports_the_same(db, small_big, elsewhere, monkeypatch, capsys):
    build(db)
    alone = check_json(db, capsys, "--jobs", "1")
    spares = RecordedSpares(monkeypatch)
    real_discover = catalog.discover
    monkeypatch.setattr(catalog, "discover", lambda conn: (spares.wait_until_open(), real_discover(conn))[1])
    assert check_json(db, capsys) == alone
    assert alone[0] == 2 and len(alone[1]) == TABLES  # all behind: rows imported with explicit ids
    assert len(spares.made) == 1 and len(spares.taken) == 1 and spares.taken[0].closed


def test_check_with_jobs_1_or_on_a_small_database_opens_no_spare(db, small_big, elsewhere, monkeypatch, capsys):
    build(db)
    spares = RecordedSpares(monkeypatch)
    assert check_json(db, capsys, "--jobs", "1")[0] == 2
    monkeypatch.setattr(spare_module, "SPARE_MIN_SEQUENCES", TABLES + 1)
    assert check_json(db, capsys)[0] == 2
    assert spares.made == []


def test_fix_measures_on_the_spare_but_writes_on_its_own_connection(db, small_big, elsewhere, monkeypatch, capsys, tmp_path):
    """Unasked, the spare only reads: it is closed before the first fix, which apply writes on the
    command's own connection."""
    build(db)
    spares = RecordedSpares(monkeypatch)
    real_discover, real_apply, applied = catalog.discover, cli.apply_plans, []
    monkeypatch.setattr(catalog, "discover", lambda conn: (spares.wait_until_open(), real_discover(conn))[1])

    def apply_plans(conn, plans, *args, helpers=(), **kwargs):
        applied.append((len(plans), list(helpers), [s.closed for s in spares.taken]))
        return real_apply(conn, plans, *args, helpers=helpers, **kwargs)

    monkeypatch.setattr(cli, "apply_plans", apply_plans)
    code = cli.main(["fix", "--yes", "--dsn", db.url, "--audit-log", str(tmp_path / "audit.jsonl")])
    assert code == 0, capsys.readouterr().err
    assert applied == [(TABLES, [], [True])]  # measured with the spare, closed before writing
    for i in range(TABLES):  # the proof: a row inserted through the default now gets a free id
        assert db.scalar(f"INSERT INTO t{i} DEFAULT VALUES RETURNING id") == i + 6
