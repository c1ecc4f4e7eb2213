"""Bad input everywhere gets one clear line and a non-zero exit, never a traceback or the password."""

from __future__ import annotations

import json
from urllib.parse import quote

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from conftest import PASSWORD, run_seqtui


def assert_clean_error(run, *expected: str, code: int = 3):
    assert run.code == code, run.text
    assert "Traceback" not in run.text
    assert PASSWORD not in run.text and quote(PASSWORD, safe="") not in run.text
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("seqtui: error:"), run.err
    for text in expected:
        assert text in run.err, run.err


def test_no_database_given_names_the_ways_to_give_one(tmp_path):
    run = run_seqtui("check", cwd=tmp_path)
    assert_clean_error(run, "DATABASE_URL", "seqtui demo")


def test_unreachable_host():
    assert_clean_error(run_seqtui("check", "--dsn", "postgresql://u@127.0.0.1:1/db"), "could not connect",
                       "127.0.0.1")


def test_wrong_password_is_reported_without_either_password(server, db):
    wrong = "n0t-" + PASSWORD
    url = make_conninfo(db.url, password=wrong)
    try:
        psycopg.connect(url).close()
        pytest.skip("this server does not check passwords (trust authentication; TEST_DATABASE_URL)")
    except psycopg.OperationalError:
        pass
    run = run_seqtui("check", url=url)
    assert_clean_error(run, "password authentication failed")
    assert wrong not in run.text


def test_unknown_database(server, db):
    url = make_conninfo(db.url, dbname="no_such_db")
    assert_clean_error(run_seqtui("check", url=url), 'database "no_such_db" does not exist')


@pytest.mark.parametrize("dsn", [
    "postgresql://u:" + quote(PASSWORD, safe="") + "@127.0.0.1:notaport/db",
    "postgresql://u:" + quote(PASSWORD, safe="") + "@127.0.0.1/db?nonsense_option=1",
    "host=127.0.0.1 password='" + PASSWORD.replace("\\", "\\\\").replace("'", "\\'") + "' bogus",
    "postgresql://u:p%zz" + quote(PASSWORD, safe="") + "@h/db",
])
def test_urls_libpq_rejects(dsn):
    run = run_seqtui("check", "--dsn", dsn)
    assert_clean_error(run)
    assert "p%zz" not in run.text


def test_unknown_table_for_fix(db):
    db.execute("CREATE TABLE t (id serial PRIMARY KEY)")
    assert_clean_error(run_seqtui("fix", "--yes", "--table", "nope", url=db.url), "nope")


def test_bad_flags_exit_3_not_2():
    run = run_seqtui("check", "--statement-timeout", "soon")
    assert run.code == 3 and "Traceback" not in run.text
    assert run_seqtui("fix", "--lock-timeout", "-1").code == 3


def test_fix_refuses_without_yes_when_not_a_terminal(db):
    db.execute("CREATE TABLE t (id serial PRIMARY KEY); INSERT INTO t VALUES (4)")
    run = run_seqtui("fix", url=db.url)
    assert_clean_error(run, "--yes")
    assert db.next_value("public.t_id_seq") == 1


def test_password_never_printed_by_any_command(db):
    db.execute("CREATE TABLE t (id serial PRIMARY KEY); INSERT INTO t VALUES (4)")
    outputs = [run_seqtui(*args, url=db.url) for args in
               (["check"], ["check", "--json"], ["sql"], ["sql", "--oneliners"], ["fix", "--dry-run"],
                ["fix", "--yes"])]
    for run in outputs:
        assert PASSWORD not in run.text and quote(PASSWORD, safe="") not in run.text
    report = json.loads(outputs[1].out)
    assert set(report["database"]) >= {"name", "host", "user", "server_version", "in_recovery"}


@pytest.mark.parametrize("content, where", [
    ("{not json", "line 1 column 2"),
    ('{"watch": [{"table": 5}]}', "watch[0].table"),
    ('{"watch": [{"table": "t", "colum": "id"}]}', "watch[0].colum: unknown key"),
    ('{"thresholds": {"warning": 2}}', "thresholds.warning"),
    ('{"thresholds": {"warning": 0.95, "critical": 0.9}}', "above critical"),
    ('{"exclude": "x"}', "exclude: expected a list"),
    ('{"tables": []}', "tables: unknown key"),
    ('[1, 2]', "top level"),
])
def test_malformed_config_names_file_place_and_problem(tmp_path, db, content, where):
    path = tmp_path / "sequences.json"
    path.write_text(content)
    run = run_seqtui("check", "--config", str(path), url=db.url)
    assert_clean_error(run, str(path), where)


def test_missing_config_file(tmp_path, db):
    assert_clean_error(run_seqtui("check", "--config", str(tmp_path / "nope.json"), url=db.url), "no such file")


def test_watchlist_reports_missing_tables_and_columns(tmp_path, db):
    db.execute("""
        CREATE TABLE ak_animes (id_anime serial PRIMARY KEY); INSERT INTO ak_animes VALUES (3);
        CREATE TABLE ak_mangas (id_manga int PRIMARY KEY, title text);
    """)
    (tmp_path / "sequences.json").write_text(json.dumps({"watch": [
        {"table": "ak_animes", "column": "id_anime"},
        {"table": "ak_mangas", "column": "id_manga"},
        {"table": "ak_mangas", "column": "nope"},
        {"table": "smf_members", "column": "id_member"},
    ]}))
    run = run_seqtui("check", "--json", url=db.url, cwd=tmp_path)  # ./sequences.json is picked up
    rows = {(r["table"], r["column"]): r for r in json.loads(run.out)["sequences"]}
    assert rows[("ak_animes", "id_anime")]["watched"] is True
    assert rows[("ak_animes", "id_anime")]["status"] == "behind"
    assert rows[("ak_mangas", "id_manga")]["status"] == "missing"
    assert "does not draw from any sequence" in rows[("ak_mangas", "id_manga")]["detail"]
    assert "does not exist" in rows[("ak_mangas", "nope")]["detail"]
    assert rows[("smf_members", "id_member")]["detail"] == "watched table smf_members does not exist"
    assert run.code == 2


def test_exclude_patterns_and_thresholds_from_config(tmp_path, db):
    db.execute("""
        CREATE TABLE keep (id serial PRIMARY KEY); INSERT INTO keep VALUES (3);
        CREATE TABLE scratch_tmp (id serial PRIMARY KEY); INSERT INTO scratch_tmp VALUES (3);
    """)
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"exclude": ["public.*_tmp"], "thresholds": {"warning": 0.5, "critical": 0.6}}))
    report = json.loads(run_seqtui("check", "--json", "--config", str(cfg), url=db.url).out)
    assert [r["table"] for r in report["sequences"]] == ["keep"]
    # and fix leaves excluded tables alone
    run_seqtui("fix", "--yes", "--config", str(cfg), url=db.url)
    assert db.next_value("public.scratch_tmp_id_seq") == 1
    assert db.next_value("public.keep_id_seq") == 4
