"""Pure builders for repair SQL: the statements, scripts and psql one-liners that fix sequences.

Nothing here talks to a server. The statements compute their target when they run (no numbers from the
scan are baked in), move a sequence only forwards, and cover every consumer of a shared sequence. The
same statements are shown in previews, written by `seqtui sql`, and executed by apply.py.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from functools import lru_cache

from psycopg import sql
from psycopg.adapt import Transformer

from .model import Consumer, Sequence, Status, Verdict
from .text import one_line

DEFAULT_LOCK_TIMEOUT = 5.0  # seconds: how long a fix may wait for its locks
# seconds: how long one statement of a fix may run while it holds its locks (writers wait meanwhile);
# bounds a max() that has to scan an unindexed table.
DEFAULT_STATEMENT_TIMEOUT = 10.0


@dataclass(frozen=True)
class FixPlan:
    """What fixing one sequence means: the consumers it reads and locks, and the values seen at scan
    time (shown to the operator; the SQL recomputes them under lock)."""

    sequence: Sequence
    consumers: tuple[Consumer, ...]  # comparable, readable consumers, in lock order
    next_value: int | None = None
    high_water: int | None = None
    fixable: bool = True
    reason: str | None = None  # why not fixable
    # `seqtui sync`: the last value another database (the cutover's source) may have handed out, plus
    # --margin. The fix moves past it as past the tables' own ids (one more input to the same GREATEST,
    # LEAST descending), so rows written there never collide here. high_water is then the furthest of
    # the two. None: a plain fix.
    source_high_water: int | None = None

    @property
    def new_next_value(self) -> int | None:
        if self.high_water is None:
            return None
        return self.high_water + self.sequence.increment


def lock_order(consumers) -> tuple[Consumer, ...]:
    """Consumers sorted by (schema, table, column), one per table first: every fix locks in the same
    order, so two fixes can never deadlock each other."""
    return tuple(sorted(consumers, key=lambda c: (c.schema, c.table, c.column)))


# Fragments built once: SQL.format() re-parses its template on every call, and a fix script for
# thousands of sequences composes tens of thousands of statements.
_AGG = {True: (sql.SQL("GREATEST("), sql.SQL("(SELECT max(")), False: (sql.SQL("LEAST("), sql.SQL("(SELECT min("))}
_FROM, _CLOSE_SUB, _COMMA, _CLOSE = sql.SQL(") FROM "), sql.SQL(")"), sql.SQL(", "), sql.SQL(")")
_SELECT_STATE = sql.SQL("SELECT s.last_value, s.is_called, CASE WHEN m.hw ")
# "behind" as in model.is_behind(), with next = is_called ? last_value + inc : last_value
_BEHIND = {True: sql.SQL(">= CASE WHEN s.is_called THEN s.last_value + "),
           False: sql.SQL("<= CASE WHEN s.is_called THEN s.last_value - ")}
_THEN_SETVAL = sql.SQL(" ELSE s.last_value END THEN pg_catalog.setval(")
# A CYCLE sequence past its bound starts again at the other end (DESIGN fact 17): its next value is
# computed as nextval() computes it. (A NO CYCLE one past its bound has no next value; the plain form's
# last_value + inc is then beyond every id, and nothing is set: no setval helps there.)
_CYCLE_NEXT = {True: (sql.SQL(">= CASE WHEN NOT s.is_called THEN s.last_value WHEN s.last_value > "),
                      sql.SQL(" ELSE s.last_value + ")),
               False: (sql.SQL("<= CASE WHEN NOT s.is_called THEN s.last_value WHEN s.last_value < "),
                       sql.SQL(" ELSE s.last_value - "))}
_CYCLE_THEN, _CYCLE_END = sql.SQL(" THEN "), sql.SQL(" END THEN pg_catalog.setval(")
_SETVAL_REST = sql.SQL("::regclass, m.hw::bigint, true) END AS new_last_value FROM ")
_AS_S = sql.SQL(" AS s")
_DATA_FUNCTION, _DATA_FUNCTION_CLOSE = sql.SQL("pg_catalog.pg_get_sequence_data("), sql.SQL("::regclass) AS s")
_ONE_FROM, _ONE_CLOSE = sql.SQL(") AS hw FROM "), sql.SQL(") AS m, ")
# OFFSET 0 keeps the subquery from being pulled up into the outer query, where each of the two uses of
# m.hw became an InitPlan of its own: every max() ran twice. (An aggregate subquery, the one-consumer
# form, is never pulled up.)
_SEVERAL_OPEN, _SEVERAL_CLOSE = sql.SQL("(SELECT "), sql.SQL(" AS hw OFFSET 0) AS m, ")
_BIGINT = sql.SQL("::bigint")


def high_water_sql(consumers: tuple[Consumer, ...], ascending: bool, floor: int | None = None) -> sql.Composed:
    """GREATEST((SELECT max(col) FROM tbl), ...), or LEAST/min for a descending sequence; `floor` (a
    source's mark, sync) is one more argument. GREATEST and LEAST ignore NULLs: an empty table leaves
    the floor."""
    combine, agg = _AGG[ascending]
    parts: list[sql.Composable] = [combine]
    for i, c in enumerate(consumers):
        if i:
            parts.append(_COMMA)
        parts += [agg, sql.Identifier(c.column), _FROM, sql.Identifier(c.schema, c.table), _CLOSE_SUB]
    if floor is not None:
        parts += [_COMMA] if consumers else []
        parts += [sql.Literal(floor), _BIGINT]
    parts.append(_CLOSE)
    return sql.Composed(parts)



def _high_water_from(consumers: tuple[Consumer, ...], ascending: bool, floor: int | None = None) -> list[sql.Composable]:
    """The fix statement's `m`, one row holding hw: `(SELECT max(col) AS hw FROM tbl) AS m` for one
    consumer (the usual case, and the plainest to read in a preview), GREATEST over every consumer for
    a shared sequence, and over the source's mark too when syncing (`floor`)."""
    if len(consumers) == 1 and floor is None:
        (c,) = consumers
        return [_AGG[ascending][1], sql.Identifier(c.column), _ONE_FROM, sql.Identifier(c.schema, c.table),
                _ONE_CLOSE]
    return [_SEVERAL_OPEN, high_water_sql(consumers, ascending, floor), _SEVERAL_CLOSE]


def fix_statement(seq: Sequence, consumers: tuple[Consumer, ...], floor: int | None = None) -> sql.Composed:
    """One statement that moves `seq` just past the high-water mark of all its consumers, only if the
    next value is already taken (DESIGN facts 4-7). Empty tables give NULL and change nothing; a
    sequence already past its data is left where it is. It returns the state it found and the new
    last_value (NULL when it changed nothing), so the caller needs no extra reads:

    SELECT s.last_value, s.is_called,
           CASE WHEN m.hw >= CASE WHEN s.is_called THEN s.last_value + inc ELSE s.last_value END
                THEN pg_catalog.setval('s'::regclass, m.hw::bigint, true) END AS new_last_value
      FROM (SELECT max(c) AS hw FROM t) AS m,
           pg_catalog.pg_get_sequence_data('s'::regclass) AS s

    (for a shared sequence, m is `(SELECT GREATEST((SELECT max(c) FROM t1), ...) AS hw OFFSET 0)`;
    before PostgreSQL 18, s is `s AS s`: the sequence relation itself. The function reads the same
    tuple under the same lock, without planning a scan: a fix's server time went down by about half.)
    setval is volatile, so the CASE is evaluated per row at run time and only when behind.

    `floor` (seqtui sync): a value from another server that hw must reach too, one more argument of the
    GREATEST (LEAST): `(SELECT GREATEST((SELECT max(c) FROM t), 1234::bigint) AS hw OFFSET 0) AS m`. A
    sequence nothing on this side draws from (an application calling nextval() itself) gets
    `(SELECT GREATEST(1234::bigint) AS hw OFFSET 0) AS m` and locks no table. Forward only all the same."""
    name = sql.Literal(seq.display_name)
    state = ([_DATA_FUNCTION, name, _DATA_FUNCTION_CLOSE] if seq.data_function
             else [sql.Identifier(seq.schema, seq.name), _AS_S])
    inc = sql.Literal(abs(seq.increment))
    if seq.cycle:
        wrap_at, restart = ((seq.max_value - seq.increment, seq.min_value) if seq.ascending
                            else (seq.min_value - seq.increment, seq.max_value))
        opening, otherwise = _CYCLE_NEXT[seq.ascending]
        behind = [opening, sql.Literal(wrap_at), _CYCLE_THEN, sql.Literal(restart), otherwise, inc, _CYCLE_END]
    else:
        behind = [_BEHIND[seq.ascending], inc, _THEN_SETVAL]
    return sql.Composed([_SELECT_STATE, *behind, name, _SETVAL_REST,
                         *_high_water_from(consumers, seq.ascending, floor), *state])


def locked_tables(consumers: tuple[Consumer, ...]) -> tuple[Consumer, ...]:
    """The consumers whose tables a fix locks: one per table, in lock order."""
    seen, tables = set(), []
    for c in lock_order(consumers):
        if c.qualified_table not in seen:
            seen.add(c.qualified_table)
            tables.append(c)
    return tuple(tables)


_LOCK, _EXCLUSIVE = sql.SQL("LOCK TABLE "), sql.SQL(" IN EXCLUSIVE MODE")


def lock_statements(consumers: tuple[Consumer, ...]) -> list[sql.Composed]:
    """One LOCK per table, in lock order, so a timeout names the table that was busy. EXCLUSIVE mode
    blocks writers (whose ids could race the fix) but not readers (DESIGN fact 9)."""
    return [sql.Composed([_LOCK, sql.Identifier(c.schema, c.table), _EXCLUSIVE]) for c in locked_tables(consumers)]


def _duration(seconds: float) -> sql.Literal:
    ms = int(round(seconds * 1000))
    return sql.Literal(f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms")


def lock_timeout_statement(seconds: float) -> sql.Composed:
    return sql.SQL("SET LOCAL lock_timeout = {}").format(_duration(seconds))


def statement_timeout_statement(seconds: float) -> sql.Composed:
    return sql.SQL("SET LOCAL statement_timeout = {}").format(_duration(seconds))


_BEGIN, _COMMIT = sql.SQL("BEGIN"), sql.SQL("COMMIT")
# A fix run with others (by apply.py, or a script) does not wait for its own COMMIT to reach disk: on a
# durable server each wait is a WAL flush (0.2 ms on a local disk, 1-2 ms on network storage, a round trip
# to a synchronous standby), thousands of them after a restore. LOCAL, so that the setting ends with the
# transaction, even behind a transaction-mode pooler. The run then waits once, with
# COMMITS_ON_DISK. A crash before that can only undo commits not yet reported: "setting this parameter
# to off does not create any risk of database inconsistency" (PostgreSQL docs, synchronous_commit).
_NO_COMMIT_WAIT = sql.SQL("SET LOCAL synchronous_commit = off")
# After a run of fixes: a transaction that writes one WAL record and commits at the session's own
# synchronous_commit level, so its COMMIT returns once that record, and with it every commit before it, is
# on disk (and on synchronous standbys). The record is a logical decoding message (prefix 'seqtui', empty):
# a no-op for the server, which any role may write, at any wal_level, from PostgreSQL 9.6 on. (A
# transaction that writes no WAL, say one that only takes a transaction id, does not wait for the disk
# whatever synchronous_commit says: its commit is flushed in the background.)
COMMITS_ON_DISK: tuple[sql.Composable, ...] = (
    _BEGIN, sql.SQL("SELECT pg_catalog.pg_logical_emit_message(true, 'seqtui', '')"), _COMMIT)


def transaction_statements(plan: FixPlan, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
                           statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT, *,
                           alone: bool = False) -> list[sql.Composable]:
    """The whole safe fix of one sequence: the statements apply.py runs, in order. `alone`: the
    transaction is run by itself (a psql one-liner, check --json's fix_sql) and waits for its own COMMIT
    to reach disk; otherwise it is one of a run, followed by COMMITS_ON_DISK."""
    return [*_opening(lock_timeout, statement_timeout, alone), *_own_statements(plan), _COMMIT]


def _own_statements(plan: FixPlan) -> list[sql.Composable]:
    """What one plan's transaction runs between its opening and its COMMIT: the LOCKs, the fix."""
    return [*lock_statements(plan.consumers), fix_statement(plan.sequence, plan.consumers, plan.source_high_water)]


def _opening(lock_timeout: float, statement_timeout: float, alone: bool) -> list[sql.Composable]:
    """What every fix transaction starts with: BEGIN and its SET LOCALs."""
    opening = [_BEGIN, lock_timeout_statement(lock_timeout), statement_timeout_statement(statement_timeout)]
    if not alone:
        opening.append(_NO_COMMIT_WAIT)
    return opening


def render(stmt: sql.Composable, context: Transformer | None = None) -> str:
    """The statement's text. `context`: an adaptation context to reuse for its literals (without one,
    psycopg makes one per literal); rendered without a connection, so the same text any server gets."""
    return stmt.as_string(context)


@lru_cache(maxsize=16)
def _rendered_shared(lock_timeout: float, statement_timeout: float, alone: bool) -> tuple[tuple[str, ...], str]:
    """The rendered statements every plan's transaction opens and ends with (BEGIN, the SET LOCALs;
    COMMIT): rendered once, not once per sequence (a third of a 6,000-fix script's rendering)."""
    return tuple(render(s) + ";" for s in _opening(lock_timeout, statement_timeout, alone)), render(_COMMIT) + ";"


def rendered_statements(plan: FixPlan, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
                        statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT, *, alone: bool = False) -> list[str]:
    """transaction_statements() as previews and scripts print them: rendered, each ending in ";"."""
    opening, commit = _rendered_shared(lock_timeout, statement_timeout, alone)
    context = Transformer()  # no connection: as render() without one, made once for the plan
    return [*opening, *(render(s, context) + ";" for s in _own_statements(plan)), commit]


def rendered_commits_on_disk() -> list[str]:
    """COMMITS_ON_DISK as previews and scripts print it."""
    return [render(s) + ";" for s in COMMITS_ON_DISK]


def plans_from_verdicts(verdicts, *, include_all: bool = False) -> list[FixPlan]:
    """One plan per sequence that needs fixing (or, with include_all, per sequence with a comparable,
    readable consumer: the idempotent statements a team commits into its migrations)."""
    by_seq: dict[int, list[Verdict]] = {}
    for v in verdicts:
        if v.sequence is not None and v.consumer is not None:
            by_seq.setdefault(v.sequence.oid, []).append(v)
    plans = []
    for rows in by_seq.values():
        needs_fix = any(v.status is Status.BEHIND for v in rows)
        if not (needs_fix or include_all):
            continue
        usable = [v.consumer for v in rows if v.consumer.comparable and v.consumer.can_read]
        if not usable:
            continue
        seq, first = rows[0].sequence, rows[0]
        hw = first.sequence_high_water
        behind = [v for v in rows if v.status is Status.BEHIND]
        # judge() already decided whether setval can help (bounds, privileges, unreadable consumers)
        blockers = [v.blocker for v in behind if v.blocker]
        fixable, reason = (False, blockers[0]) if blockers else (True, None)
        plans.append(FixPlan(sequence=seq, consumers=lock_order(usable), next_value=first.next_value,
                             high_water=hw if needs_fix else None, fixable=fixable, reason=reason))
    return sorted(plans, key=lambda p: p.sequence.qualified)


def describe(plan: FixPlan) -> str:
    """A one-line human summary of a plan: what changes and why."""
    users = ", ".join(f"{c.schema}.{c.table}.{c.column}" for c in plan.consumers)
    name = plan.sequence.display_name
    if not plan.fixable:
        text = f"{name}: cannot be fixed by setval: {plan.reason}"
    elif plan.high_water is None:
        text = f"{name}: next {plan.next_value}, fine at scan time (consumers: {users})"
    elif plan.source_high_water is not None:
        past = f"the source's {plan.source_high_water}" + (f" and the data in {users}" if users else "")
        text = f"{name}: next {plan.next_value} -> {plan.new_next_value} (past {past})"
    else:
        most = "highest" if plan.sequence.ascending else "lowest"
        text = f"{name}: next {plan.next_value} -> {plan.new_next_value} ({most} in {users}: {plan.high_water})"
    return one_line(text)


def script(plans: list[FixPlan], lock_timeout: float = DEFAULT_LOCK_TIMEOUT, header: str | None = None,
           statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT) -> str:
    """A psql-runnable script: one short transaction per sequence, so a busy table only fails its own
    sequence and the others are still fixed (psql goes on after an error unless ON_ERROR_STOP is set)."""
    out = []
    if header:
        out += [f"-- {line}" for line in header.splitlines()]
    out.append("-- Each block is forward-only and recomputes its target under lock; safe to re-run.")
    if not plans:
        out.append("-- Nothing to fix.")
    for plan in plans:
        out.append("")
        out.append(f"-- {describe(plan)}")
        if not plan.fixable:
            continue
        out += rendered_statements(plan, lock_timeout, statement_timeout)
        if plan.sequence.cache > 1:
            out.append(f"-- CACHE {plan.sequence.cache}: recycle connection pools after this fix.")
    if any(plan.fixable for plan in plans):
        out += ["", "-- The fixes above commit without waiting for the disk (synchronous_commit off);",
                "-- this waits once until every one of them is on disk.", *rendered_commits_on_disk()]
    return "\n".join(out) + "\n"


# Inside double quotes a POSIX shell still expands these; a backslash before each makes it literal.
_DOUBLE_QUOTED_SPECIAL = str.maketrans({c: "\\" + c for c in '\\"$`'})


def shell_word(text: str) -> str:
    """`text` as one shell word a person can read and edit: single quotes when it holds none (nothing
    inside them is special), else double quotes with `\\`, `"`, `$` and backticks escaped, so SQL
    string literals keep their plain single quotes. A `!` falls back to the `'"'"'` form: interactive
    bash expands it inside double quotes and a backslash does not stop it (it stays in the word)."""
    if "'" not in text:
        return shlex.quote(text)  # bare when nothing in it is special, else '...'
    if "!" not in text:
        return '"' + text.translate(_DOUBLE_QUOTED_SPECIAL) + '"'
    return shlex.quote(text)


def oneliner(plan: FixPlan, lock_timeout: float = DEFAULT_LOCK_TIMEOUT, url_var: str = "DATABASE_URL",
             statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT) -> str:
    """A psql command that runs as-is in a POSIX shell with $DATABASE_URL set, for any identifier:

        psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -1 -c "SET LOCAL lock_timeout = '5s'" ... -c "SELECT ..."

    One -c per statement; -1 wraps them all in one transaction (psql sends BEGIN before the first and
    COMMIT after the last), and with ON_ERROR_STOP a lock timeout rolls back, stops before the setval and
    exits non-zero. (A psql too old to wrap -c in -1 runs LOCK TABLE outside a transaction, which the
    server refuses: it still stops before the setval.) The password stays in the variable: never here."""
    statements = rendered_statements(plan, lock_timeout, statement_timeout, alone=True)
    assert statements[0] == "BEGIN;" and statements[-1] == "COMMIT;"
    parts = [f'psql "${url_var}"', "-v", "ON_ERROR_STOP=1", "-1"]
    for stmt in statements[1:-1]:  # BEGIN and COMMIT: -1 sends them
        parts += ["-c", shell_word(stmt[:-1])]  # psql -c takes a statement without its ";"
    return " ".join(parts)
