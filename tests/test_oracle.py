"""The differential oracle on a fixed seed set: seqtui's verdicts, `fixable` and `fix` against what
PostgreSQL does with generated shapes (tests/shapes.py, tests/oracle.py). Zero disagreements allowed.

Seed 1, shapes 0-199, holds every shape that disagreed before issue 18 (93 disagreements on the
seqtui of 2026-12-02: RLS, bounds and CYCLE, views, expression defaults, sparse ids, domains, fixable
against LOCK privileges); they stay here as regression cases. `python bench/oracle.py` runs thousands.
"""

from __future__ import annotations

import pytest

import oracle

# (seed, first shape, shapes): one database each; about a second each here. Seed 1 shapes 587, 793
# and 897 are the ones that catch a `fixable` computed without the LOCK privilege.
SEEDS = [(1, first, 100) for first in range(0, 1000, 100)] + [(11, 0, 100), (11, 100, 100)]


@pytest.mark.parametrize("seed, first, count", SEEDS, ids=[f"seed{s}-{f}" for s, f, _ in SEEDS])
def test_generated_shapes_agree_with_postgresql(db, seed, first, count):
    role = f"{db.name}_oracle"
    oracle.create_role(db.conn, role)
    try:
        shapes = oracle.build(db.conn, role, seed, count, first)
        result = oracle.run(db.conn, db.url, role, shapes)
    finally:
        oracle.drop_role(db.conn, role)
    judged = result.rows - result.unjudged
    assert judged > result.rows // 2, "most rows must be judged, or the oracle proves little"
    assert {"behind", "ok", "empty", "exhausted", "unreadable", "incomparable"} <= set(result.statuses)
    assert not result.disagreements, "\n".join(map(str, result.disagreements))
