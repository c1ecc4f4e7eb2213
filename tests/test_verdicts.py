"""One end-to-end test per verdict class of issue 18 (DESIGN facts 15-21): build the shape, `check
--json`, then make PostgreSQL show that the verdict was right: the INSERT through the default fails or
succeeds as said, and `fix` does what `fixable` promised. tests/test_oracle.py covers the shapes
nobody wrote by hand."""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from conftest import run_seqtui


def check(url: str) -> dict:
    run = run_seqtui("check", "--json", url=url)
    assert run.code in (0, 1, 2), run.text
    return json.loads(run.out)


def row(report: dict, table: str) -> dict:
    (r,) = [r for r in report["sequences"] if r["table"] == table]
    return r


@pytest.fixture
def role(db):
    name = f"{db.name}_app"
    db.execute(f"DROP ROLE IF EXISTS {name}; CREATE ROLE {name} LOGIN PASSWORD 'x'; "
               f"GRANT USAGE ON SCHEMA public TO {name}")
    yield name
    db.execute(f"DROP OWNED BY {name}; DROP ROLE {name}")


def as_role(db, role: str) -> str:
    return make_conninfo(db.url, user=role, password="x")


def test_row_level_security_is_not_judged_from_the_rows_the_role_may_see(db, role):
    db.execute(f"""
        CREATE TABLE t (id serial PRIMARY KEY, owner text);
        INSERT INTO t SELECT g, 'other' FROM generate_series(1, 50) g;
        ALTER TABLE t ENABLE ROW LEVEL SECURITY;
        CREATE POLICY mine ON t FOR SELECT USING (owner = current_user);
        GRANT SELECT, UPDATE ON t, t_id_seq TO {role};
    """)
    r = row(check(as_role(db, role)), "t")  # the role sees no row: "empty" would be a lie
    assert r["status"] == "unreadable" and r["fixable"] is False and r["fix_sql"] is None
    assert f"row-level security hides rows of public.t from {role}" in r["detail"]
    assert row(check(db.url), "t")["status"] == "behind"  # the owner sees all 50

    run = run_seqtui("fix", "--yes", url=as_role(db, role))
    assert run.code == 1 and "could not be judged" in run.err
    assert db.next_value("t_id_seq") == 1  # untouched


def test_fixable_needs_the_lock_privilege_the_fix_uses(db, role):
    db.execute(f"""
        CREATE TABLE t (id serial PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 30);
        GRANT SELECT ON t TO {role}; GRANT SELECT, UPDATE ON t_id_seq TO {role};
    """)
    r = row(check(as_role(db, role)), "t")
    assert (r["status"], r["fixable"], r["fix_sql"]) == ("behind", False, None)
    assert "cannot lock it IN EXCLUSIVE MODE" in r["detail"]
    run = run_seqtui("fix", "--yes", url=as_role(db, role))
    assert run.code == 1 and "cannot fix" in run.out and db.next_value("t_id_seq") == 1

    db.execute(f"GRANT UPDATE ON t TO {role}")  # now the fix can lock the table: fixable, and it fixes
    assert row(check(as_role(db, role)), "t")["fixable"] is True
    assert run_seqtui("fix", "--yes", url=as_role(db, role)).code == 0
    assert db.insert_default("t") == 31


def test_a_no_cycle_sequence_at_its_maxvalue_is_exhausted(db):
    db.execute("""
        CREATE SEQUENCE s MAXVALUE 100; SELECT setval('s', 100);
        CREATE TABLE t (id int DEFAULT nextval('s') PRIMARY KEY); INSERT INTO t VALUES (7);
    """)
    report = check(db.url)
    r = row(report, "t")
    assert (r["status"], r["next_value"], r["failing_now"], r["fix_sql"]) == ("exhausted", None, True, None)
    assert "reached its MAXVALUE 100" in r["detail"] and "ALTER SEQUENCE" in r["detail"]
    assert report["exit_code"] == 2
    with pytest.raises(psycopg.errors.SequenceGeneratorLimitExceeded):
        db.insert_default("t")


def test_a_cycle_sequence_past_its_maxvalue_is_judged_from_minvalue_and_fixed_past_the_data(db):
    db.execute("""
        CREATE SEQUENCE s MAXVALUE 50 CYCLE; SELECT setval('s', 50);
        CREATE TABLE t (id int DEFAULT nextval('s') PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10);
    """)
    r = row(check(db.url), "t")
    assert (r["status"], r["next_value"], r["failing_now"], r["fixable"]) == ("behind", 1, True, True)
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.insert_default("t")  # takes the 1 that was next
    db.execute("SELECT setval('s', 50)")
    run = run_seqtui("fix", "--yes", url=db.url)
    assert run.code == 0 and "next 1 -> 11" in run.out
    assert db.insert_default("t") == 11


def test_a_view_with_its_own_default_feeds_the_base_table(db):
    db.execute("""
        CREATE SEQUENCE s; CREATE TABLE base (id int PRIMARY KEY, note text);
        CREATE VIEW v AS SELECT note, id AS vid FROM base;
        ALTER VIEW v ALTER COLUMN vid SET DEFAULT nextval('s');
        INSERT INTO base SELECT g, 'imported' FROM generate_series(1, 5) g;
    """)
    r = row(check(db.url), "base")
    assert (r["column"], r["consumer_kind"], r["status"], r["failing_now"]) == ("id", "view default", "behind", True)
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("INSERT INTO v (note) VALUES ('app')")
    assert run_seqtui("fix", "--yes", url=db.url).code == 0
    assert db.scalar("INSERT INTO v (note) VALUES ('app') RETURNING vid") == 6


def test_an_expression_default_is_not_compared_and_never_planned(db):
    db.execute("""
        CREATE SEQUENCE s; CREATE TABLE t (id bigint DEFAULT nextval('s') * 10 PRIMARY KEY);
        INSERT INTO t VALUES (3), (7);
    """)
    r = row(check(db.url), "t")  # naively "behind": next 1 <= max 7
    assert r["status"] == "incomparable" and r["fix_sql"] is None
    assert r["detail"].startswith("cannot be judged: the default is an expression")
    assert "setval" not in run_seqtui("sql", "--all", url=db.url).out
    assert db.insert_default("t") == 10  # max(id) says nothing about the ids this default makes


def test_sparse_ids_say_failing_now_only_when_the_next_value_is_taken(db):
    db.execute("""
        CREATE TABLE dense (id serial PRIMARY KEY, note text); INSERT INTO dense (id) SELECT generate_series(1, 10);
        CREATE TABLE sparse (id serial PRIMARY KEY, note text);
        INSERT INTO sparse (id) SELECT generate_series(1, 1000) UNION ALL SELECT 5000;
        SELECT setval('sparse_id_seq', 1000);
    """)
    report = check(db.url)
    d, s = row(report, "dense"), row(report, "sparse")
    assert (d["status"], d["failing_now"], d["collides_in"]) == ("behind", True, 1)
    assert d["detail"].startswith("failing now: next value 1 is already used")
    assert (s["status"], s["next_value"], s["failing_now"], s["collides_in"]) == ("behind", 1001, False, 4000)
    assert s["detail"].startswith("collides in 4,000 inserts: next value 1001 is free, 5000 is taken")
    # the server agrees: 3,999 default INSERTs go in (1001 to 4999), the next one collides with 5000
    db.execute("INSERT INTO sparse (note) SELECT 'app' FROM generate_series(1, 3999)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.insert_default("sparse")


def test_a_domain_column_has_its_base_types_range_and_its_check_is_asked(db):
    db.execute("""
        CREATE DOMAIN small_id AS int2 CHECK (VALUE <= 100);
        CREATE DOMAIN tiny_id AS small_id;
        CREATE SEQUENCE s; SELECT setval('s', 100);
        CREATE TABLE t (id tiny_id DEFAULT nextval('s') PRIMARY KEY); INSERT INTO t VALUES (100);
    """)
    r = row(check(db.url), "t")
    assert r["column_type"] == "smallint"  # a domain over a domain over int2
    assert (r["status"], r["next_value"], r["failing_now"]) == ("exhausted", 101, True)
    assert "fails the CHECK of the column's domain public.tiny_id" in r["detail"]
    with pytest.raises(psycopg.errors.CheckViolation):
        db.insert_default("t")


def test_a_domain_check_narrows_the_capacity_and_the_insert_fails_where_it_says(db):
    """Capacity is measured against the CHECK's bound, not the base type's: 95% used of a domain that
    stops at 1,000 is critical, and the inserts that remain are exactly the ones the server takes."""
    db.execute("""
        CREATE DOMAIN order_no AS int4 CHECK (VALUE > 0) CHECK (VALUE <= 1000);
        CREATE TABLE t (id order_no PRIMARY KEY);
        CREATE SEQUENCE t_id_seq OWNED BY t.id; ALTER TABLE t ALTER id SET DEFAULT nextval('t_id_seq');
        INSERT INTO t SELECT generate_series(1, 949);
        SELECT setval('t_id_seq', 949);
    """)
    r = row(check(db.url), "t")
    assert r["status"] == "ok" and r["next_value"] == 950
    assert r["capacity_used"] == pytest.approx(949 / 1000)
    assert r["capacity_level"] == "critical"
    assert "the CHECK of domain public.order_no runs out at 1,000" in r["detail"]
    for expected in range(950, 1001):
        assert db.insert_default("t") == expected
    with pytest.raises(psycopg.errors.CheckViolation):
        db.insert_default("t")
    r = row(check(db.url), "t")
    assert (r["status"], r["capacity_used"]) == ("exhausted", 1.0)
