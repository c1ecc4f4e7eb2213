"""The bounds read from a domain's CHECK constraints (seqtui/domain_checks.py), against the server:
generated domains, their constraints rendered by pg_get_constraintdef, and every value near a bound
cast to the domain by PostgreSQL. The bounds must never refuse a value the server accepts (sound), and
for a CHECK made of comparisons alone they must be exactly the server's (tight)."""

from __future__ import annotations

import random

import psycopg
import pytest
from psycopg import sql

from seqtui.domain_checks import check_bounds
from seqtui.model import INTEGER_TYPE_BOUNDS


@pytest.mark.parametrize("definitions, bounds", [
    (["CHECK ((VALUE <= 1000))"], (None, 1000)),
    (["CHECK ((VALUE > '-5'::integer))", "CHECK (((VALUE >= 1) AND (VALUE <= 500)))"], (1, 500)),
    (["CHECK (((VALUE < '9999999999'::bigint) AND (VALUE >= '-3'::integer)))"], (-3, 9999999998)),
    (["CHECK (((VALUE)::integer <= 300))"], (None, 300)),     # a domain over a domain
    (["CHECK ((VALUE = 7)) NOT VALID"], (7, 7)),               # holds for new values all the same
    (["CHECK (((VALUE <= 10) OR (VALUE >= 20)))"], (None, None)),  # not a range
    (["CHECK ((((VALUE)::integer % 2) = 0))", "CHECK ((VALUE IS NOT NULL))"], (None, None)),
    (["CHECK ((VALUE = ANY (ARRAY[1, 2, 3])))"], (None, None)),
    (["CHECK (((VALUE)::numeric <= 100.5))"], (None, None)),   # not an integer constant
    ([], (None, None)),
])
def test_bounds_from_the_servers_rendering(definitions, bounds):
    assert check_bounds(definitions) == bounds


TYPES = ["smallint", "integer", "bigint"]


def random_check(rng: random.Random, lo: int, hi: int) -> tuple[str, bool]:
    """A CHECK expression over VALUE and whether it is made of comparisons joined by AND alone."""
    def comparison() -> str:
        op = rng.choice(["<", "<=", ">", ">=", "="] if rng.random() < 0.1 else ["<", "<=", ">", ">="])
        value = rng.choice([rng.randint(lo, hi), rng.randint(-1000, 1000), lo + 1, hi - 1])
        left = rng.choice(["VALUE", "VALUE", "VALUE::bigint"])
        return f"{left} {op} {value}"
    shape = rng.random()
    if shape < 0.5:
        return " AND ".join(comparison() for _ in range(rng.randint(1, 3))), True
    if shape < 0.65:
        a, b = sorted(rng.randint(-1000, 1000) for _ in range(2))
        return f"VALUE BETWEEN {a} AND {b}", True
    if shape < 0.8:
        return f"{comparison()} OR {comparison()}", False
    if shape < 0.9:
        return f"VALUE % {rng.randint(2, 5)} = 0 AND {comparison()}", False
    return f"VALUE IN ({rng.randint(-5, 5)}, {rng.randint(-5, 5)})", False


def accepts(conn: psycopg.Connection, domain: str, value: int) -> bool:
    try:
        conn.execute(sql.SQL("SELECT CAST({} AS {})").format(sql.Literal(value), sql.Identifier(domain)))
        return True
    except (psycopg.errors.CheckViolation, psycopg.errors.NumericValueOutOfRange):
        return False


def test_generated_domains_agree_with_the_server(db):
    rng = random.Random(21)
    checked = tight = 0
    for i in range(120):
        base = rng.choice(TYPES)
        t_lo, t_hi = INTEGER_TYPE_BOUNDS[base]
        name, pure, parent = f"d{i}", True, None
        n_checks = rng.randint(1, 2)
        clauses = []
        for _ in range(n_checks):
            expr, is_range = random_check(rng, max(t_lo, -10**6), min(t_hi, 10**6))
            pure = pure and is_range
            clauses.append(f"CHECK ({expr})" + (" NOT VALID" if rng.random() < 0.1 else ""))
        if rng.random() < 0.2:  # a domain over a domain: both CHECKs hold
            parent = f"p{i}"
            db.execute(f"CREATE DOMAIN {parent} AS {base} CHECK (VALUE < {rng.randint(0, 10**5)})")
        first, *rest = clauses
        db.execute(f"CREATE DOMAIN {name} AS {parent or base} {first.replace(' NOT VALID', '')}")
        for clause in rest:  # NOT VALID exists only on ALTER DOMAIN ... ADD
            db.execute(f"ALTER DOMAIN {name} ADD {clause}")
        definitions = [r[0] for r in db.execute(
            "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c WHERE c.contypid = ANY(%s::regtype[])",
            ([name] + ([parent] if parent else []),)).fetchall()]
        lo, hi = check_bounds(definitions)
        lo_eff = t_lo if lo is None else max(t_lo, lo)
        hi_eff = t_hi if hi is None else min(t_hi, hi)
        # sound: just outside the bounds the server refuses (whatever else the CHECK says)
        for outside in (lo_eff - 1, hi_eff + 1):
            if t_lo <= outside <= t_hi:
                assert not accepts(db.conn, name, outside), (definitions, (lo, hi), outside)
                checked += 1
        # tight: for comparisons alone, the bounds themselves are accepted
        if pure and lo_eff <= hi_eff:
            for inside in (lo_eff, hi_eff):
                assert accepts(db.conn, name, inside), (definitions, (lo, hi), inside)
                tight += 1
    assert checked > 100 and tight > 50  # the generator made the cases it is meant to
