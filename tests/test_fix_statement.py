"""The fix statement itself, against a real server: both ways it reads a sequence's state (the function
PostgreSQL 18 added, and the relation before it) fix the same shapes forwards only, each high-water mark
is read once, and a state it may not read changes nothing."""

from __future__ import annotations

import json
from dataclasses import replace

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from seqtui.apply import FAILED, FIXED, UNCHANGED, apply_plans
from seqtui.catalog import SEQUENCE_DATA_FUNCTION_SINCE
from seqtui.connect import connect, resolve
from seqtui.repair import FixPlan, fix_statement, plans_from_verdicts, render
from seqtui.scan import scan

SHAPES = """
    CREATE TABLE up (id serial PRIMARY KEY); INSERT INTO up SELECT generate_series(1, 30);
    CREATE SEQUENCE shared;
    CREATE TABLE left_t (id bigint DEFAULT nextval('shared') PRIMARY KEY); INSERT INTO left_t VALUES (7);
    CREATE TABLE right_t (id bigint DEFAULT nextval('shared') PRIMARY KEY); INSERT INTO right_t VALUES (70);
    CREATE SEQUENCE down INCREMENT -1 MAXVALUE -1 START -1;
    CREATE TABLE ledger (id int DEFAULT nextval('down') PRIMARY KEY); INSERT INTO ledger VALUES (-1), (-40);
    CREATE TABLE ahead (id serial PRIMARY KEY); INSERT INTO ahead VALUES (3);
"""


def with_state_read(plans: list[FixPlan], by_function: bool) -> list[FixPlan]:
    return [replace(p, sequence=replace(p.sequence, data_function=by_function)) for p in plans]


def needs_function(conn, by_function: bool) -> None:
    if by_function and conn.info.server_version < SEQUENCE_DATA_FUNCTION_SINCE:
        pytest.skip("pg_get_sequence_data() came with PostgreSQL 18")


@pytest.mark.parametrize("by_function", [True, False], ids=["pg_get_sequence_data", "sequence relation"])
def test_both_state_reads_fix_every_shape_forwards_only(db, by_function):
    db.execute(SHAPES)
    with connect(resolve(db.url)) as conn:
        needs_function(conn, by_function)
        plans = plans_from_verdicts(scan(conn).verdicts, include_all=True)
        # `ahead` is fine: after the others are behind, it is in the plans only through include_all
        db.execute("SELECT setval('ahead_id_seq', 500)")
        results = {r.plan.sequence.name: r for r in apply_plans(conn, with_state_read(plans, by_function))}
    assert {n: (r.outcome, r.before, r.after) for n, r in results.items()} == {
        "up_id_seq": (FIXED, 1, 31), "shared": (FIXED, 1, 71), "down": (FIXED, -1, -41),
        "ahead_id_seq": (UNCHANGED, 501, 501)}
    assert db.insert_default("up") == 31
    assert db.insert_default("left_t") == 71 and db.insert_default("right_t") == 72
    assert db.insert_default("ledger") == -41
    assert db.insert_default("ahead") == 501  # never moved back


@pytest.mark.parametrize("by_function", [True, False], ids=["pg_get_sequence_data", "sequence relation"])
@pytest.mark.parametrize("sequence, tables", [("shared", ["left_t", "right_t"]), ("up_id_seq", ["up"]),
                                              ("down", ["ledger"])])
def test_each_high_water_is_read_once(db, by_function, sequence, tables):
    """The statement uses the high-water mark twice (the comparison, then setval): the planner must not
    turn each use into a max() of its own."""
    db.execute(SHAPES)
    with connect(resolve(db.url)) as conn:
        needs_function(conn, by_function)
        (plan,) = [p for p in plans_from_verdicts(scan(conn).verdicts) if p.sequence.name == sequence]
        (plan,) = with_state_read([plan], by_function)
        explained = conn.execute(b"EXPLAIN (FORMAT JSON) " + render(fix_statement(plan.sequence, plan.consumers))
                                 .encode()).fetchone()[0]

    def scanned(node: dict) -> list[str]:
        own = [node["Relation Name"]] if "Relation Name" in node else []
        return own + [name for child in node.get("Plans", []) for name in scanned(child)]

    assert sorted(name for name in scanned(explained[0]["Plan"]) if name != sequence) == tables


@pytest.mark.parametrize("by_function", [True, False], ids=["pg_get_sequence_data", "sequence relation"])
def test_a_sequence_the_role_may_no_longer_read_fails_and_is_not_moved(db, by_function):
    """Planned by one role, applied by another that may update the sequence and lock the table but not
    read the sequence (say, a privilege revoked between the scan and the fix)."""
    role = f"{db.name}_w"
    db.execute(f"""
        CREATE TABLE t (id serial PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 5);
        CREATE TABLE other (id serial PRIMARY KEY); INSERT INTO other VALUES (9);
        DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'x';
        GRANT SELECT, UPDATE ON t, other, other_id_seq TO {role}; GRANT UPDATE ON t_id_seq TO {role};
    """)
    try:
        with connect(resolve(db.url)) as conn:
            needs_function(conn, by_function)
            plans = with_state_read(plans_from_verdicts(scan(conn).verdicts), by_function)
        with connect(resolve(make_conninfo(db.url, user=role, password="x"))) as conn:
            results = {r.plan.sequence.name: r for r in apply_plans(conn, plans)}
    finally:
        db.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
    assert results["t_id_seq"].outcome == FAILED
    assert "nothing changed" in results["t_id_seq"].reason
    assert db.next_value("public.t_id_seq") == 1
    assert results["other_id_seq"].outcome == FIXED and db.insert_default("other") == 10


def test_the_script_reads_the_state_the_way_the_server_allows(db, seqtui):
    db.execute(SHAPES)
    script = seqtui("sql", url=db.url).out
    with psycopg.connect(db.url) as conn:
        by_function = conn.info.server_version >= SEQUENCE_DATA_FUNCTION_SINCE
    assert ("pg_catalog.pg_get_sequence_data('public.up_id_seq'::regclass) AS s;" in script) == by_function
    assert ('"public"."up_id_seq" AS s;' in script) != by_function
    report = json.loads(seqtui("check", "--json", url=db.url).out)
    (up,) = [r for r in report["sequences"] if r["table"] == "up"]
    assert up["fix_sql"].splitlines()[-2] in script  # the same statement check --json shows
