"""Property tests for the pure parts: verdict rules, repair SQL quoting, config and DSN parsing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from seqtui import config as config_mod, redact
from seqtui.connect import ConnectError, NoTarget, clean_url, find_secrets, resolve
from seqtui.model import (Consumer, HighWater, Observation, Sequence, SequenceState, Status, capacity_used,
                          is_behind, next_value)
from seqtui.judge import judge
from seqtui.repair import FixPlan, oneliner, render, rendered_statements, transaction_statements


@pytest.fixture(autouse=True, scope="module")  # module: hypothesis refuses function-scoped fixtures
def secrets_forgotten():
    """resolve() remembers every secret it finds for the rest of the process: not past this module,
    whose secrets ("secret", random ones) would be masked in later tests' output."""
    with redact.scope():
        yield


# Identifiers PostgreSQL accepts: any non-NUL characters, at most 63 bytes.
identifiers = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                      min_size=1, max_size=20).filter(lambda s: len(s.encode()) <= 63)


def make_seq(name="s", schema="public", inc=1, lo=1, hi=2**63 - 1, cache=1) -> Sequence:
    return Sequence(oid=1, schema=schema, name=name, data_type="bigint", start=lo if inc > 0 else hi,
                    min_value=lo, max_value=hi, increment=inc, cache=cache, cycle=False)


def make_consumer(table="t", column="id", schema="public", ctype="bigint") -> Consumer:
    return Consumer(table_oid=2, schema=schema, table=table, column=column, attnum=1, column_type=ctype,
                    kind="serial", indexed=True)


@given(last=st.integers(-10**6, 10**6), called=st.booleans(), inc=st.integers(1, 50),
       hw=st.one_of(st.none(), st.integers(-10**6, 10**6)), descending=st.booleans())
def test_verdict_agrees_with_what_nextval_would_do(last, called, inc, hw, descending):
    inc = -inc if descending else inc
    seq = make_seq(inc=inc, lo=-2**40, hi=2**40)
    state = SequenceState(last, called)
    (v,) = judge(Observation(seq, (make_consumer(),), state, (HighWater(hw),)))
    nxt = next_value(state, inc)
    if hw is None:
        assert v.status is Status.EMPTY
        return
    collides = nxt <= hw if inc > 0 else nxt >= hw
    assert (v.status is Status.BEHIND) == collides
    if v.status is Status.BEHIND:
        # the fix target moves next strictly past hw and never backwards
        after = hw + inc
        assert (after > hw and after >= nxt) if inc > 0 else (after < hw and after <= nxt)
    else:
        assert v.gap is not None and v.gap >= 0


@given(pos=st.integers(1, 2**31 - 1), seq_hi=st.sampled_from([2**31 - 1, 2**63 - 1]))
def test_capacity_is_a_fraction_of_the_narrower_range(pos, seq_hi):
    seq = make_seq(hi=seq_hi)
    frac = capacity_used(seq, SequenceState(pos, False), make_consumer(ctype="integer"))
    assert 0.0 <= frac <= 1.0
    assert frac == pytest.approx((pos - 1) / (2**31 - 1))


def test_is_behind_boundaries():
    assert is_behind(5, 5, 1) and not is_behind(6, 5, 1)
    assert is_behind(-5, -5, -1) and not is_behind(-6, -5, -1)


@pytest.fixture(scope="module")
def fake_psql(tmp_path_factory) -> Path:
    """A `psql` that prints the arguments it received as JSON: what the shell really passed."""
    bindir = tmp_path_factory.mktemp("bin")
    exe = bindir / "psql"
    exe.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bindir


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schema=identifiers, name=identifiers, table=identifiers, column=identifiers)
def test_oneliner_survives_a_real_shell_for_any_identifier(fake_psql, schema, name, table, column):
    plan = FixPlan(make_seq(name=name, schema=schema), (make_consumer(table, column, schema),), 1, 10)
    line = oneliner(plan)
    env = {"PATH": f"{fake_psql}:{os.environ['PATH']}", "DATABASE_URL": "postgresql://example/db"}
    proc = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 0, proc.stderr
    argv = json.loads(proc.stdout)
    expected = ["postgresql://example/db", "-v", "ON_ERROR_STOP=1", "-1"]
    # run by itself: it waits for its own COMMIT; psql's -1 sends the BEGIN and the COMMIT
    for stmt in transaction_statements(plan, alone=True)[1:-1]:
        expected += ["-c", render(stmt)]
    assert argv == expected
    assert "synchronous_commit" not in line


# What a shell treats specially, in double quotes or out, and what history expansion looks at. (No tab:
# typed or pasted into an interactive shell it asks for completion, whatever the quoting.)
shell_hostile = st.text(st.sampled_from("a Z.'\"$`\\!;#*?~&|<>(){}[]-=%^"), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=shell_hostile, table=shell_hostile, column=shell_hostile)
def test_oneliner_survives_an_interactive_bash_and_reads_plainly(fake_psql, name, table, column):
    """Pasted into a terminal: interactive bash expands `!` (history) even inside double quotes. And
    the line is readable: the `'"'"'` dance only where a `!` forces it."""
    plan = FixPlan(make_seq(name=name), (make_consumer(table, column),), 1, 10)
    line = oneliner(plan)
    env = {"PATH": f"{fake_psql}:{os.environ['PATH']}", "DATABASE_URL": "postgresql://example/db",
           "HOME": "/nonexistent", "HISTFILE": "/dev/null"}
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-i"], input=line + "\n", capture_output=True,
                          text=True, env=env, timeout=30)
    argv = json.loads(proc.stdout)
    assert argv[4:] == [arg for stmt in transaction_statements(plan, alone=True)[1:-1]
                        for arg in ("-c", render(stmt))]
    if "!" not in name + table + column:
        assert "'\"'\"'" not in line
        assert """ -c "SET LOCAL lock_timeout = '5s'" """ in line


@settings(max_examples=100, deadline=None)
@given(schema=identifiers, name=identifiers, tables=st.lists(identifiers, min_size=1, max_size=3),
       descending=st.booleans(), lock_timeout=st.sampled_from([0.2, 1.0, 5.0, 12.5]),
       statement_timeout=st.sampled_from([0.5, 10.0, 60.0]), alone=st.booleans())
def test_rendered_statements_are_the_statements_rendered(schema, name, tables, descending, lock_timeout,
                                                         statement_timeout, alone):
    """The previews' and scripts' text (shared statements rendered once) is exactly what apply runs."""
    seq = make_seq(name=name, schema=schema, inc=-1 if descending else 1, lo=-100 if descending else 1)
    plan = FixPlan(seq, tuple(make_consumer(t, "id", schema) for t in tables), 1, 10)
    for _ in range(2):  # the second time from the cache
        assert rendered_statements(plan, lock_timeout, statement_timeout, alone=alone) == [
            render(s) + ";" for s in transaction_statements(plan, lock_timeout, statement_timeout, alone=alone)]


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                        st.sampled_from(["watch", "table", "column", "thresholds", "warning", "critical",
                                         "exclude", "schemas", "x"]) | st.text(max_size=5), inner, max_size=4),
                    max_leaves=12))
def test_any_json_config_either_loads_or_gives_a_config_error(data):
    try:
        cfg = config_mod.parse(data, Path("sequences.json"))
    except config_mod.ConfigError as exc:
        assert str(exc).startswith("sequences.json: ")
        assert "\n" not in str(exc)
    else:
        assert 0 < cfg.thresholds.warning <= cfg.thresholds.critical <= 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_text_as_config_file_gives_config_or_clear_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "sequences.json"
    path.write_text(text)
    try:
        config_mod.load(path)
    except config_mod.ConfigError as exc:
        assert str(exc).startswith(str(path))


@settings(max_examples=150, deadline=None)
@given(user=st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8),
       password=st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), min_size=4,
                        max_size=16),
       junk=st.text(max_size=10))
def test_any_dsn_connect_error_never_holds_the_password(user, password, junk):
    from urllib.parse import quote
    from seqtui.connect import connect

    dsn = f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:1/db{junk}"
    # a scope per example: a random password remembered for the rest of the module could be part of
    # what a later test expects to see unmasked (a display holding "mode" or "quir")
    with redact.scope():
        target = resolve(dsn, environ={})
        try:
            connect(target, connect_timeout=1).close()
        except ConnectError as exc:
            text = str(exc)
            assert "\n" not in text
            assert quote(password, safe="") not in text
            if len(password) >= 4:
                assert password not in text
        assert password not in target.display


def test_prisma_parameters_removed_and_schema_kept():
    url, schemas = clean_url("postgresql://u:p@h:5432/db?schema=app&connection_limit=1&pgbouncer=true"
                             "&sslmode=require&pool_timeout=0")
    assert url == "postgresql://u:p@h:5432/db?sslmode=require"
    assert schemas == ("app",)


def test_secrets_found_in_every_form():
    assert set(find_secrets("postgresql://u:a%40b@h/db", {})) >= {"a%40b", "a@b"}
    assert "s p" in find_secrets("host=h password='s p'", {})
    assert "envpw" in find_secrets("", {"PGPASSWORD": "envpw"})
    # shown as typed, every password masked (postgresql:///db is not rebuilt into postgresql:/db)
    assert resolve("postgresql://u:secret@h/db?password=x&sslmode=require", {}).display == \
        "postgresql://u:***@h/db?password=***&sslmode=require"
    assert resolve("postgresql:///db", {}).display == "postgresql:///db"


def test_resolution_order(tmp_path):
    (tmp_path / ".env").write_text("DATABASE_URL='postgresql://from-dotenv/db'  # comment\n")
    assert resolve("postgresql://flag/db", {"DATABASE_URL": "postgresql://env/db"}, tmp_path).source == "--dsn"
    assert resolve(None, {"DATABASE_URL": "postgresql://env/db"}, tmp_path).source == "DATABASE_URL"
    t = resolve(None, {}, tmp_path)
    assert (t.source, t.conninfo) == (".env", "postgresql://from-dotenv/db")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert resolve(None, {"PGHOST": "h"}, empty).source == "PG* environment"
    with pytest.raises(NoTarget):
        resolve(None, {}, empty)


@given(st.text())
def test_one_line_keeps_printable_text_and_escapes_the_rest(text):
    from seqtui.text import one_line

    shown = one_line(text)
    assert shown.isprintable()  # no newline, tab or control character survives
    assert shown == "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    if text.isprintable():
        assert shown == text
