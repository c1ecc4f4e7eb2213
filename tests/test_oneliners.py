"""The psql one-liners a user copies (`seqtui sql --oneliners`, the UI's `c`), run as a user runs them:
through a real shell into a real psql against the test server, then proven by a default INSERT."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conftest import PASSWORD, run_seqtui

# Names a shell or SQL treats specially: both quotes, spaces, capitals, $, backticks, backslashes,
# dots, reserved words, history expansion.
NAMES = ["It's", 'say "hi"', "Order Table", "$HOME", "`date`", "back\\slash", "a.b", "select", "wow!", "x'!y"]


@pytest.fixture
def psql(server) -> Path:
    """The psql next to the test server (the embedded wheel's), else the one on PATH."""
    found = server.embedded.psql_path() if server.embedded else shutil.which("psql")
    assert found, "psql is needed for this test"
    return Path(found)


def build_behind_tables(db) -> None:
    for i, name in enumerate(NAMES):
        schema = f"S{i} {name}"
        db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        db.execute(sql.SQL("CREATE TABLE {} ({} serial PRIMARY KEY)").format(
            sql.Identifier(schema, name), sql.Identifier(name)))
        db.execute(sql.SQL("INSERT INTO {} VALUES (7), (9)").format(sql.Identifier(schema, name)))


def default_insert(db, i: int) -> int:
    return db.conn.execute(sql.SQL("INSERT INTO {} DEFAULT VALUES RETURNING *").format(
        sql.Identifier(f"S{i} {NAMES[i]}", NAMES[i]))).fetchone()[0]


def oneliners(db, *args: str) -> list[str]:
    out = run_seqtui("sql", "--oneliners", *args, url=db.url).out
    return [line for line in out.splitlines() if line.startswith("psql ")]


def shell(line: str, psql: Path, db, *, interactive: bool = False) -> subprocess.CompletedProcess:
    env = {"PATH": f"{psql.parent}:/usr/bin:/bin", "DATABASE_URL": db.url, "HOME": "/nonexistent",
           "HISTFILE": "/dev/null"}
    if interactive:  # as if pasted into a terminal: history expansion on
        return subprocess.run(["bash", "--norc", "--noprofile", "-i"], input=line + "\n", capture_output=True,
                              text=True, env=env, timeout=60)
    return subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("interactive", [False, True], ids=["bash -c", "interactive bash"])
def test_each_oneliner_fixes_its_sequence_through_bash_and_psql(db, psql, interactive):
    build_behind_tables(db)
    lines = oneliners(db)
    assert len(lines) == len(NAMES)
    for line in lines:
        assert PASSWORD not in line and "$DATABASE_URL" in line  # the password stays in the variable
        proc = shell(line, psql, db, interactive=interactive)
        assert proc.returncode == 0, proc.stderr
        assert "new_last_value" in proc.stdout  # the fix statement ran and psql printed its row
    for i in range(len(NAMES)):
        assert default_insert(db, i) == 10
    assert run_seqtui("check", url=db.url).code == 0


def test_oneliners_read_plainly(db):
    """Double quotes around statements with string literals, single quotes around the others, and the
    `'"'"'` dance only where a name holds `!` (the fix statement always holds string literals)."""
    build_behind_tables(db)
    for line in oneliners(db):
        assert line.startswith('psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -1 -c ')
        assert """ -c "SET LOCAL lock_timeout = '5s'" -c "SET LOCAL statement_timeout = '10s'" """ in line
        assert " -c BEGIN" not in line and " -c COMMIT" not in line  # -1 sends them
        if "!" not in line:  # history expansion forces single quotes where a literal is
            assert "'\"'\"'" not in line


def test_oneliner_that_cannot_lock_changes_nothing_and_fails(db, psql):
    """-1 with ON_ERROR_STOP: a lock timeout rolls back before the setval and psql exits non-zero."""
    build_behind_tables(db)
    (line,) = [x for x in oneliners(db, "--lock-timeout", "0.2") if "Order Table" in x]
    i = NAMES.index("Order Table")
    table = sql.Identifier(f"S{i} Order Table", "Order Table")
    with psycopg.connect(db.url) as holder:
        holder.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
        proc = shell(line, psql, db)
    assert proc.returncode != 0
    assert "lock timeout" in proc.stderr
    seq = db.scalar("SELECT pg_get_serial_sequence(%s, %s)", (table.as_string(db.conn), "Order Table"))
    assert db.next_value(seq) == 1  # untouched
