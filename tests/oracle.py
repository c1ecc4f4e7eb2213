"""The differential oracle: seqtui's verdicts against what PostgreSQL does (issue 18).

For a database of generated shapes (tests/shapes.py), seqtui judges every row as a test role with the
shape's privileges, exactly as `check --json` does. Then PostgreSQL gives the ground truth:

- the next default INSERT into each consumer, run by the superuser in a transaction that is rolled
  back (the sequence state it used up is put back after it): does it fail, why, with which value?
- `fix --yes` run as the same role (the real command, in process); for each sequence seqtui said it
  cannot fix, its fix is forced through the same apply path anyway, as the same role;
- the default INSERT again: a fix that "worked" must make it succeed.

Every prediction that PostgreSQL contradicts is a Disagreement, counted per shape tag. An honest
"cannot be judged" is no disagreement, but only where the shape gives a reason for it.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
from psycopg import errors
from psycopg.conninfo import make_conninfo

from seqtui import cli
from seqtui.apply import apply_plans
from seqtui.connect import connect, resolve
from seqtui.model import exit_code
from seqtui.output import report_json
from seqtui.repair import plans_from_verdicts
from seqtui.scan import scan
from shapes import Consumer, Shape, generate, q

ROLE_PASSWORD = "oracle-pw"
JUDGED = {"ok", "empty", "behind", "exhausted"}
COLLISIONS_TRIED = 40  # "collides in N inserts" is tried for real up to this N


@dataclass(frozen=True)
class Truth:
    outcome: str          # ok, duplicate, exhausted, out_of_range, check, other
    value: int | None     # the value the INSERT got (ok) or collided on (duplicate)
    error: str = ""


@dataclass(frozen=True)
class Disagreement:
    shape: Shape
    what: str

    def __str__(self) -> str:
        return f"shape {self.shape.index} {sorted(self.shape.tags)}: {self.what}"


def _state(admin, seq: str):
    return admin.execute(f"SELECT last_value, is_called FROM {seq}").fetchone()


def probe_insert(admin: psycopg.Connection, shape: Shape, c: Consumer) -> Truth:
    """What the next default INSERT does, asked of the server; the sequence is put back after it."""
    saved = _state(admin, shape.sequence)
    try:
        with admin.transaction(force_rollback=True):
            value = admin.execute(f"INSERT INTO {c.insert_into} DEFAULT VALUES RETURNING {q(c.returning)}"
                                  ).fetchone()[0]
        return Truth("ok", int(value) if isinstance(value, int) else None)
    except errors.UniqueViolation as exc:
        m = re.search(r"=\((-?\d+)\) already exists", exc.diag.message_detail or "")
        return Truth("duplicate", int(m.group(1)) if m else None, str(exc))
    except errors.SequenceGeneratorLimitExceeded as exc:
        return Truth("exhausted", None, str(exc))
    except errors.NumericValueOutOfRange as exc:
        return Truth("out_of_range", None, str(exc))
    except errors.CheckViolation as exc:
        return Truth("check", None, str(exc))
    except psycopg.Error as exc:
        return Truth("other", None, str(exc))
    finally:
        admin.execute("SELECT setval(%s::regclass, %s, %s)", (shape.sequence, *saved))


def first_collision(admin: psycopg.Connection, shape: Shape, c: Consumer, limit: int) -> int | None:
    """Which of the next `limit` default INSERTs is the first to fail (1-based), None if none does; in
    one transaction rolled back, the sequence put back after it."""
    saved = _state(admin, shape.sequence)
    try:
        with admin.transaction(force_rollback=True):
            for n in range(1, limit + 1):
                try:
                    with admin.transaction():
                        admin.execute(f"INSERT INTO {c.insert_into} DEFAULT VALUES")
                except psycopg.Error:
                    return n
        return None
    finally:
        admin.execute("SELECT setval(%s::regclass, %s, %s)", (shape.sequence, *saved))


def _past(admin: psycopg.Connection, c: Consumer, value: int, ascending: bool) -> bool:
    """Is `value` beyond every id already in the consumer's table?"""
    agg = "max" if ascending else "min"
    extreme = admin.execute(f"SELECT {agg}({q(c.column)}) FROM {q(c.schema, c.table)}").fetchone()[0]
    return extreme is None or (value > extreme if ascending else value < extreme)


def _row_key(row: dict) -> tuple:
    return (row["schema"], row["table"], row["column"])


def judge_row(shape: Shape, c: Consumer, row: dict | None, truth: Truth) -> list[str]:
    """What is wrong with one row's prediction, given what the server did."""
    if row is None:
        return [f"{c.schema}.{c.table}.{c.column}: no row for a column that draws from {shape.sequence}"]
    status, nxt = row["status"], row["next_value"]
    where = f"{c.schema}.{c.table}.{c.column} ({status}, next {nxt}): the INSERT gave {truth}"
    if status not in JUDGED:
        return [] if shape.blind else [f"{where}: not judged, though nothing hides it"]
    if status in ("ok", "empty"):
        return [] if truth.outcome == "ok" and truth.value == nxt else [where]
    if status == "exhausted":
        return [] if truth.outcome in ("exhausted", "out_of_range", "check") else [where]
    # behind: failing now, or collides later, or (a probe that could not run) cannot be told
    failing = row.get("failing_now", True)  # before issue 18, "behind" claimed it
    if failing is None:
        return [] if shape.blind else [f"{where}: whether it fails now is not told, though nothing hides it"]
    if failing:
        return [] if truth.outcome == "duplicate" and truth.value == nxt else [where]
    return [] if truth.outcome == "ok" and truth.value == nxt else [where]


@dataclass
class Result:
    shapes: list[Shape]
    disagreements: list[Disagreement]
    rows: int
    unjudged: int
    statuses: Counter

    def by_tag(self) -> Counter:
        counts: Counter = Counter()
        for d in self.disagreements:
            counts.update(d.shape.tags)
        return counts


def build(admin: psycopg.Connection, role: str, seed: int, count: int, first: int = 0) -> list[Shape]:
    shapes = [generate(seed, i, role) for i in range(first, first + count)]
    for shape in shapes:
        for stmt in shape.build:
            try:
                admin.execute(stmt)
            except psycopg.Error as exc:
                raise AssertionError(f"shape {shape.index} does not build: {stmt}: {exc}") from exc
    return shapes


def create_role(admin: psycopg.Connection, role: str) -> None:
    admin.execute(f"DROP ROLE IF EXISTS {q(role)}")
    admin.execute(f"CREATE ROLE {q(role)} LOGIN PASSWORD '{ROLE_PASSWORD}'")


def drop_role(admin: psycopg.Connection, role: str) -> None:
    admin.execute(f"DROP OWNED BY {q(role)} CASCADE")
    admin.execute(f"DROP ROLE {q(role)}")


def role_url(url: str, role: str) -> str:
    return make_conninfo(url, user=role, password=ROLE_PASSWORD)


def run(admin: psycopg.Connection, url: str, role: str, shapes: list[Shape]) -> Result:
    """Judge as `role`, ask the server, fix as `role`, ask again; every contradiction is returned."""
    as_role = role_url(url, role)
    with connect(resolve(as_role)) as conn:
        report = scan(conn)
    rows = {_row_key(r): r for r in report_json(report, exit_code(report.verdicts))["sequences"]}
    found: list[Disagreement] = []
    unjudged = 0

    before: dict[int, list[tuple[Consumer, Truth, dict | None]]] = {}
    for shape in shapes:
        for c in shape.consumers:
            row = rows.get((c.schema, c.table, c.column))
            truth = probe_insert(admin, shape, c)
            before.setdefault(shape.index, []).append((c, truth, row))
            found += [Disagreement(shape, w) for w in judge_row(shape, c, row, truth)]
            n = row and row["status"] == "behind" and row["collides_in"]
            if n and n <= COLLISIONS_TRIED:  # "collides in N inserts": the N-th fails, none before it
                got = first_collision(admin, shape, c, n)
                if got != n:
                    found.append(Disagreement(shape, f"{c.schema}.{c.table}.{c.column}: collides_in {n}, "
                                                     f"but the first INSERT to fail was {got}"))
            unjudged += row is not None and row["status"] not in JUDGED

    # The fix as the same role: the real command, then the plans it declined, forced.
    with tempfile.TemporaryDirectory() as tmp:
        audit = Path(tmp) / "audit.jsonl"
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = cli.main(["fix", "--yes", "-j", "1", "--dsn", as_role, "--audit-log", str(audit)])
        fixed = {}
        if audit.exists():
            for line in audit.read_text().splitlines():
                entry = json.loads(line)
                fixed[entry["sequence"]] = entry["result"]
    if code not in (0, 1):
        raise AssertionError(f"fix exited {code}:\n{out.getvalue()}")
    declined = [replace(p, fixable=True) for p in plans_from_verdicts(report.verdicts) if not p.fixable]
    if declined:
        with connect(resolve(as_role)) as conn:
            for r in apply_plans(conn, declined):
                fixed[r.plan.sequence.display_name] = r.outcome

    for shape in shapes:
        probes = before.get(shape.index, [])
        behind = [row for _, _, row in probes if row and row["status"] == "behind"]
        if not behind or any(row is None or row["status"] not in JUDGED for _, _, row in probes):
            continue  # nothing to fix, or a row seqtui honestly could not judge: no promise either way
        promised = all(row["fixable"] for row in behind)
        name = behind[0]["sequence"]
        outcome = fixed.get(name)
        after = [probe_insert(admin, shape, c) for c, _, _ in probes]
        # Repaired means past the data: the value handed out next lies beyond every id of every
        # consumer (a CYCLE sequence set to its MAXVALUE hands out MINVALUE next, free or not).
        ascending = behind[0]["increment"] > 0
        worked = outcome == "fixed" and all(
            t.outcome == "ok" and t.value is not None and _past(admin, c, t.value, ascending)
            for (c, _, _), t in zip(probes, after))
        if promised != worked:
            found.append(Disagreement(shape, (
                f"{name}: fixable={promised}, but the fix as the role gave {outcome!r} and the INSERTs "
                f"after it {[str(t) for t in after]}")))
    return Result(shapes, found, len(rows), unjudged, Counter(r["status"] for r in rows.values()))
