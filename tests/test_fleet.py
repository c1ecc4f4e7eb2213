"""--all, several --dsn, check --format prometheus and the exporter, on real clusters.

Servers of their own (not the session's, whose --all would see every other test's database): one with
several databases (behind, healthy, one the role may not CONNECT to, a name that needs quoting), a
second one, and an address where nothing listens (a server down).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import shutil
import tempfile
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from prometheus_client.parser import text_string_to_metric_families

from seqtui.embedded import free_port

from conftest import PASSWORD, ROOT, STATE_HOME, start_embedded
from test_safety import wait_for

ROLE = "watcher"
ROLE_PASSWORD = "Wr:/@%?#&'\" $`;--y7"  # a second secret, searched for in every output too


@contextmanager
def servers(count: int):
    """`count` embedded servers of the test's own, in a directory their system user can reach, each
    with the unprivileged ROLE."""
    root = Path(tempfile.mkdtemp(prefix="seqtui-fleet-", dir="/var/tmp" if os.geteuid() == 0 else None))
    root.chmod(0o755)
    started = []
    try:
        for _ in range(count):
            started.append(start_embedded(root))
            with psycopg.connect(started[-1].admin_url(), autocommit=True) as admin:
                admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(ROLE), sql.Literal(ROLE_PASSWORD)))
        yield started
    finally:
        for server in started:
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def _build(server, name: str, behind: bool, table: str = "items") -> None:
    """A database with one serial table: behind (ids written explicitly past the sequence) or healthy."""
    with psycopg.connect(server.admin_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    with psycopg.connect(server.admin_url(name), autocommit=True) as conn:
        t = sql.Identifier(table)
        conn.execute(sql.SQL("CREATE TABLE {} (id serial PRIMARY KEY, note text)").format(t))
        if behind:
            conn.execute(sql.SQL("INSERT INTO {} (id) SELECT generate_series(1, 40)").format(t))
        else:
            conn.execute(sql.SQL("INSERT INTO {} (note) SELECT 'x' FROM generate_series(1, 3)").format(t))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(ROLE)))
        conn.execute(sql.SQL("GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(sql.Identifier(ROLE)))


@pytest.fixture(scope="module")
def fleet():
    with servers(2) as (first, second):
        _build(first, "behind_db", behind=True)
        _build(first, "healthy_db", behind=False)
        _build(first, "Sales DB", behind=True, table="Order Items")
        _build(first, "locked_db", behind=True)
        with psycopg.connect(first.admin_url(), autocommit=True) as admin:
            admin.execute('REVOKE CONNECT ON DATABASE locked_db FROM PUBLIC')
        _build(second, "other", behind=True)
        yield first, second


def role_url(server, dbname: str = "postgres") -> str:
    return server.url(dbname, user=ROLE, password=ROLE_PASSWORD)


def down_url() -> str:
    return f"postgresql://{ROLE}:{ROLE_PASSWORD.replace('@', '%40')}@127.0.0.1:{free_port()}/postgres"


def no_secret(*texts: str) -> None:
    for text in texts:
        for secret in (PASSWORD, ROLE_PASSWORD):
            assert secret not in text
            assert secret.split(":")[-1] not in text  # the part after the last colon on its own


def by_place(rows):
    return {(r["server"], r["database"], r["table"]): r for r in rows}


def test_check_all_json_over_servers(fleet, seqtui):
    first, second = fleet
    run = seqtui("check", "--all", "--json", "--dsn", role_url(first), "--dsn", second.admin_url(),
                 "--dsn", down_url())
    no_secret(run.out, run.err)
    doc = json.loads(run.out)
    assert run.code == 2 == doc["exit_code"]  # something behind beats a server down (3) and no CONNECT (1)
    a, b = f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"
    rows = by_place(doc["sequences"])
    assert rows[(a, "behind_db", "items")]["status"] == "behind"
    assert rows[(a, "behind_db", "items")]["failing_now"] is True
    assert rows[(a, "healthy_db", "items")]["status"] == "ok"
    assert rows[(a, "Sales DB", "Order Items")]["status"] == "behind"
    assert rows[(a, "Sales DB", "Order Items")]["high_water"] == 40
    assert rows[(a, "locked_db", None)]["status"] == "unreadable"
    assert rows[(a, "locked_db", None)]["detail"] == "cannot be judged: no CONNECT privilege"
    assert rows[(b, "other", "items")]["status"] == "behind"  # another server, as superuser
    down = [r for r in doc["sequences"] if r["server"] not in (a, b)]
    assert len(down) == 1 and down[0]["status"] == "unreadable" and "could not connect" in down[0]["detail"]
    databases = {(d["server"], d["database"]): d for d in doc["databases"]}
    assert {name for (server, name) in databases if server == a} == {
        "postgres", "behind_db", "healthy_db", "Sales DB", "locked_db"}  # no templates
    assert databases[(a, "healthy_db")]["up"] and databases[(a, "healthy_db")]["exit_code"] == 0
    assert not databases[(a, "locked_db")]["up"] and databases[(a, "locked_db")]["exit_code"] == 1
    assert [d["exit_code"] for d in doc["databases"] if d["server"] not in (a, b)] == [3]


def test_exit_code_is_the_worst(fleet, seqtui):
    first, _ = fleet
    healthy = seqtui("check", "--json", "--dsn", role_url(first, "healthy_db"), "--dsn", role_url(first, "postgres"))
    assert healthy.code == 0, healthy.text
    assert {r["database"] for r in json.loads(healthy.out)["databases"]} == {"healthy_db", "postgres"}
    with_down = seqtui("check", "--dsn", role_url(first, "healthy_db"), "--dsn", down_url())
    assert with_down.code == 3 and "could not connect" in with_down.out
    assert "healthy_db" in with_down.out  # the reachable one is reported all the same
    no_secret(healthy.text, with_down.text)


def test_servers_that_never_answer_are_waited_for_at_once(fleet, seqtui):
    """Two addresses that take the connection and never answer: each costs the 10 s connect timeout,
    but both at once, and the reachable server is reported all the same."""
    import socket

    holes = [socket.socket() for _ in range(2)]
    try:
        for hole in holes:
            hole.bind(("127.0.0.1", 0))
            hole.listen(8)  # the kernel completes the handshake; nobody ever speaks
        first, _ = fleet
        started = time.monotonic()
        run = seqtui("check", "--json", "--dsn", f"postgresql://u@127.0.0.1:{holes[0].getsockname()[1]}/db",
                     "--dsn", f"postgresql://u@127.0.0.1:{holes[1].getsockname()[1]}/db",
                     "--dsn", role_url(first, "healthy_db"))
        took = time.monotonic() - started
    finally:
        for hole in holes:
            hole.close()
    doc = json.loads(run.out)
    assert run.code == 3 and [d["up"] for d in doc["databases"]] == [False, False, True]
    assert all("timeout" in d["problem"] for d in doc["databases"][:2]), doc["databases"]
    assert 10 <= took < 19, took  # one connect timeout, not two


def _samples(text: str) -> dict:
    """{metric name: {frozenset(labels): value}} from prometheus_client's own parser."""
    out: dict = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return out


def test_prometheus_agrees_with_json(fleet, seqtui):
    first, second = fleet
    dsns = ["--dsn", role_url(first), "--dsn", second.admin_url(), "--dsn", down_url()]
    prom = seqtui("check", "--all", "--format", "prometheus", *dsns)
    as_json = seqtui("check", "--all", "--json", *dsns)
    no_secret(prom.out, prom.err)
    assert prom.code == as_json.code == 2
    metrics = _samples(prom.out)
    doc = json.loads(as_json.out)
    rows = [r for r in doc["sequences"] if r["sequence"]]
    assert len(rows) == len(metrics["seqtui_sequence_next_value"]) == 4  # locked_db and the down one: none
    for row in rows:
        key = frozenset({"server": row["server"], "database": row["database"], "schema": row["schema"],
                         "sequence": row["sequence"], "table": row["table"] or "",
                         "column": row["column"] or ""}.items())
        assert metrics["seqtui_sequence_behind"][key] == (row["status"] == "behind")
        assert metrics["seqtui_sequence_failing_now"][key] == row["failing_now"]
        assert metrics["seqtui_sequence_next_value"][key] == row["next_value"]
        assert metrics["seqtui_sequence_high_water"][key] == row["high_water"]
        assert metrics["seqtui_sequence_capacity_used_ratio"][key] == pytest.approx(row["capacity_used"], abs=1e-6)
    up = {dict(k)["database"]: v for k, v in metrics["seqtui_database_up"].items()}
    for d in doc["databases"]:
        assert up[d["database"]] == float(d["up"])
    assert up["locked_db"] == 0 and up["healthy_db"] == 1
    assert all(v >= 0 for v in metrics["seqtui_scan_duration_seconds"].values())


def test_prometheus_of_one_database(fleet, seqtui):
    first, _ = fleet
    run = seqtui("check", "--format", "prometheus", url=role_url(first, "Sales DB"))
    assert run.code == 2, run.text
    metrics = _samples(run.out)
    (key, value), = metrics["seqtui_sequence_behind"].items()
    labels = dict(key)
    assert value == 1 and labels["database"] == "Sales DB" and labels["table"] == "Order Items"
    assert labels["sequence"] == 'public."Order Items_id_seq"'
    assert metrics["seqtui_sequence_high_water"][key] == 40
    no_secret(run.out, run.err)


def test_one_database_named_twice_gives_each_series_once(fleet, seqtui):
    """Prometheus rejects a whole scrape that holds a series twice."""
    first, _ = fleet
    url = role_url(first, "behind_db")
    run = seqtui("check", "--format", "prometheus", "--dsn", url, "--dsn", url)
    assert run.code == 2, run.text
    series = [(s.name, tuple(sorted(s.labels.items()))) for f in text_string_to_metric_families(run.out)
              for s in f.samples]
    assert len(series) == len(set(series))
    assert sum(name == "seqtui_sequence_behind" for name, _ in series) == 1


def _scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        return _samples(response.read().decode())


def _start_exporter(*args: str) -> tuple[subprocess.Popen, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    env["XDG_STATE_HOME"] = STATE_HOME
    proc = subprocess.Popen([sys.executable, "-m", "seqtui", "exporter", "--listen", "127.0.0.1:0", *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)
    line = proc.stderr.readline()  # the exporter says where it listens once it does
    match = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
    assert match, line + proc.stderr.read()
    return proc, int(match.group(1))


def _value(metrics: dict, name: str, **labels) -> float | None:
    """The one sample of `name` with these labels (among others), None if there is none."""
    found = [v for k, v in metrics.get(name, {}).items() if labels.items() <= dict(k).items()]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def _one(metrics: dict, name: str, **labels) -> float:
    found = [v for k, v in metrics[name].items() if labels.items() <= dict(k).items()]
    assert len(found) == 1, (name, labels, metrics.get(name))
    return found[0]


def test_exporter_scans_once_per_interval_and_survives_a_server_down(fleet):
    first, _ = fleet
    with servers(1) as (third,):  # stopped and started again by this test
        _build(third, "fleeting", behind=True)
        proc, port = _start_exporter("--interval", "2", "--all", "--dsn", role_url(first),
                                     "--dsn", third.admin_url())
        try:
            scrapes = [_scrape(port) for _ in range(6)]  # quickly: all within one interval
            scans = [_one(m, "seqtui_scans_total") for m in scrapes]
            stamps = [m["seqtui_scan_timestamp_seconds"] for m in scrapes]
            assert scans == [scans[0]] * 6 and stamps == [stamps[0]] * 6, scans
            behind_key = dict(server=f"127.0.0.1:{first.port}", database="behind_db")
            assert _one(scrapes[0], "seqtui_sequence_behind", **behind_key) == 1
            third_key = dict(server=f"127.0.0.1:{third.port}", database="fleeting")
            assert _one(scrapes[0], "seqtui_database_up", **third_key) == 1

            # fixed meanwhile: the next scan, not the scrape, sees it
            with psycopg.connect(first.admin_url("behind_db"), autocommit=True) as conn:
                conn.execute("SELECT setval('items_id_seq', 40)")
            later = wait_for(lambda: (m := _scrape(port)) and _one(m, "seqtui_scans_total") > scans[0] and m,
                             "a second scan", timeout=60)
            assert _one(later, "seqtui_sequence_behind", **behind_key) == 0
            assert _one(later, "seqtui_scan_timestamp_seconds", **behind_key) > _one(
                scrapes[0], "seqtui_scan_timestamp_seconds", **behind_key)

            third.stop("fast")
            # its databases cannot be listed now: a row for the database the DSN names, down
            down = wait_for(lambda: (m := _scrape(port)) and _value(
                m, "seqtui_database_up", server=f"127.0.0.1:{third.port}", database="postgres") == 0 and m,
                "the stopped server's database down", timeout=60)
            assert _value(down, "seqtui_database_up", **third_key) is None
            assert _one(down, "seqtui_database_up", **behind_key) == 1  # the others are still read
            third.start()
            wait_for(lambda: _value(_scrape(port), "seqtui_database_up", **third_key) == 1,
                     "the restarted server read again", timeout=60)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopped" in err
        no_secret(out, err)


def test_exporter_refuses_a_port_in_use(fleet):
    first, _ = fleet
    proc, port = _start_exporter("--dsn", role_url(first))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        again = subprocess.run([sys.executable, "-m", "seqtui", "exporter", "--listen", f"127.0.0.1:{port}",
                                "--dsn", role_url(first)], capture_output=True, text=True, env=env, timeout=60)
        assert again.returncode == 3 and "cannot listen on 127.0.0.1:" in again.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def _behind_again(server, name: str, table: str) -> None:
    with psycopg.connect(server.admin_url(name), autocommit=True) as conn:
        conn.execute(sql.SQL("INSERT INTO {} (id) SELECT max(id) + g FROM {}, generate_series(1, 5) g "
                             "GROUP BY g").format(sql.Identifier(table), sql.Identifier(table)))


def _insert_default(server, name: str, table: str) -> int:
    with psycopg.connect(server.admin_url(name), autocommit=True) as conn:
        return conn.execute(sql.SQL("INSERT INTO {} (note) VALUES ('new') RETURNING id").format(
            sql.Identifier(table))).fetchone()[0]


def test_sql_and_fix_over_every_database(seqtui):
    odd = "it's \\ \"odd\""  # a quote, a backslash and double quotes: \connect must name it right
    with servers(1) as (server,):
        _build(server, "Sales DB", behind=True, table="Order Items")
        _build(server, odd, behind=True)
        url = server.admin_url()
        script = seqtui("sql", "--all-databases", "--dsn", url)
        assert script.code == 0, script.text
        no_secret(script.text)
        psql = subprocess.run([str(server.psql_path()), url, "-v", "ON_ERROR_STOP=1", "-q", "-f", "-"],
                              input=script.out, capture_output=True, text=True, timeout=60)
        assert psql.returncode == 0, psql.stderr
        assert _insert_default(server, "Sales DB", "Order Items") == 41
        assert _insert_default(server, odd, "items") == 41
        assert seqtui("check", "--all", "--dsn", url).code == 0

        _behind_again(server, "Sales DB", "Order Items")
        _behind_again(server, odd, "items")
        assert seqtui("check", "--all", "--dsn", url).code == 2
        dry = seqtui("fix", "--all", "--dry-run", "--dsn", url)
        assert dry.code == 0 and "dry run: nothing changed" in dry.out
        assert seqtui("check", "--all", "--dsn", url).code == 2
        nowhere = seqtui("fix", "--all", "--yes", "--table", "no_such_table", "--dsn", url)
        assert nowhere.code == 3 and "no_such_table" in nowhere.err
        one = seqtui("fix", "--all", "--yes", "--table", "Order Items", "--dsn", url)
        assert one.code == 0, one.text  # the databases without that table are left out, not errors
        assert _insert_default(server, "Sales DB", "Order Items") == 47
        assert seqtui("check", "--all", "--dsn", url).code == 2  # the other one is still behind
        fixed = seqtui("fix", "--all", "--yes", "--dsn", url)
        assert fixed.code == 0, fixed.text
        assert "Sales DB" not in fixed.out and odd in fixed.out
        assert _insert_default(server, "Sales DB", "Order Items") == 48
        assert _insert_default(server, odd, "items") == 47
        assert seqtui("check", "--all", "--dsn", url).code == 0
        no_secret(fixed.text, dry.text)


def test_oneliners_the_ui_and_cutovers_stay_one_database(fleet, seqtui):
    first, second = fleet
    run = seqtui("sql", "--oneliners", "--all-databases", "--dsn", role_url(first))
    assert run.code == 3 and "--oneliners" in run.err
    ui = seqtui("--dsn", role_url(first), "--dsn", second.admin_url())
    assert ui.code == 3 and "one database" in ui.err
    cutover = seqtui("sql", "--from", second.admin_url(), "--all-databases", "--dsn", role_url(first))
    assert cutover.code == 3 and "--from" in cutover.err
    sync = seqtui("sync", "--from", second.admin_url(), "--dry-run", "--dsn", role_url(first),
                  "--dsn", role_url(first, "healthy_db"))
    assert sync.code == 3 and "one database" in sync.err
    no_secret(run.text, ui.text, cutover.text, sync.text)
