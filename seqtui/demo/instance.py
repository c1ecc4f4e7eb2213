"""Where the demo lives and how it comes up: data directory, state file, lock, server, database.

Layout of the demo's home ($SEQTUI_DEMO_DIR, else ~/.cache/seqtui/demo, or /var/tmp/seqtui-demo-<uid>
for root, whose home the server's system user must not be given access to):

    pgdata/      the PostgreSQL data directory (initdb'ed on first use)
    state.json   {"fingerprint", "database", "port"}: written once the demo database is built
    lock         held (flock) while a demo runs; holds its pid

A second run finds the state file, restarts the server on the same port if it is free (so an exported
DATABASE_URL keeps working) and checks the database is there: no rebuild, well under a second.
Anything inconsistent becomes a DemoError whose message suggests `seqtui demo --reset`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import time
from pathlib import Path

import psycopg
from psycopg import sql

from ..embedded import SYSTEM_USER, EmbeddedServer, ServerUnavailable, free_port, port_is_free
from . import schema

DATABASE = "seqtui_demo"
STATE_FILE = "state.json"
LOCK_FILE = "lock"
DATA_DIR = "pgdata"
RESET_HINT = "rebuild it with: seqtui demo --reset"


class DemoError(Exception):
    """One line for the operator: what is wrong and what to run."""


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def default_home(environ=None) -> Path:
    environ = os.environ if environ is None else environ
    if environ.get("SEQTUI_DEMO_DIR"):
        return Path(environ["SEQTUI_DEMO_DIR"]).expanduser().absolute()
    if _is_root():
        # Not under /root: the server runs as a system user that would need to traverse it.
        return Path("/var/tmp") / f"seqtui-demo-{os.geteuid()}"
    cache = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser().absolute() / "seqtui" / "demo"


def _searchable_by(path: Path, uid: int, gid: int) -> bool:
    st = path.stat()
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def check_reachable(home: Path) -> None:
    """As root, the server runs as SYSTEM_USER: every existing ancestor of home must let it through.
    We never loosen an ancestor's permissions; we say which one is in the way."""
    if not _is_root():
        return
    import pwd

    try:
        user = pwd.getpwnam(SYSTEM_USER)
        uid, gid = user.pw_uid, user.pw_gid
    except KeyError:  # created on first start; it owns nothing yet, so only "others" bits count
        uid = gid = -1
    for parent in reversed(home.parents):
        if parent.exists() and not _searchable_by(parent, uid, gid):
            raise DemoError(f"the demo server runs as the '{SYSTEM_USER}' user, which cannot reach {home} "
                            f"({parent} is closed to other users); set SEQTUI_DEMO_DIR to a directory under "
                            "/var/tmp")


def prepare_home(home: Path) -> None:
    """Create the demo's home (private; as root, searchable so the server's user reaches pgdata/).
    A directory that already exists keeps its permissions: we never loosen what we did not create."""
    check_reachable(home)
    if home.is_symlink() or (home.exists() and not home.is_dir()):
        raise DemoError(f"{home} is not a directory; set SEQTUI_DEMO_DIR to another place")
    created = not home.exists()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = home.stat()
    if st.st_uid != os.geteuid():
        raise DemoError(f"{home} belongs to another user (uid {st.st_uid}); set SEQTUI_DEMO_DIR to another place")
    if created:
        home.chmod(0o711 if _is_root() else 0o700)
    elif _is_root() and not st.st_mode & stat.S_IXOTH:
        raise DemoError(f"the demo server runs as the '{SYSTEM_USER}' user, which cannot enter {home}; "
                        "set SEQTUI_DEMO_DIR to a directory under /var/tmp")


class DemoInstance:
    """A running demo: `open()` brings it up (building what is missing), `close()` stops the server."""

    def __init__(self, home: Path, tables: tuple[schema.DemoTable, ...]):
        self.home = Path(home)
        self.tables = tables
        self.fingerprint = schema.fingerprint(tables)
        self.server: EmbeddedServer | None = None
        self.built = False         # this run created the demo database
        self.initialized = False   # this run ran initdb
        self.startup_seconds = 0.0
        self._lock_fd: int | None = None

    @property
    def pgdata(self) -> Path:
        return self.home / DATA_DIR

    @property
    def state_path(self) -> Path:
        return self.home / STATE_FILE

    @property
    def url(self) -> str:
        return self.server.url(DATABASE)

    # -- state file ------------------------------------------------------------------------------
    def read_state(self) -> dict | None:
        try:
            data = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_state(self, **data) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.state_path)

    # -- lock ------------------------------------------------------------------------------------
    def _acquire_lock(self) -> None:
        fd = os.open(self.home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            port = (self.read_state() or {}).get("port")
            use = f"use it (DATABASE_URL=postgresql://postgres@127.0.0.1:{port}/{DATABASE})" if port else "use it"
            raise DemoError(f"another seqtui demo (pid {other}) is already running with {self.home}: "
                            f"{use}, or stop it first") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    # -- bring up / tear down --------------------------------------------------------------------
    def open(self, reset: bool = False) -> "DemoInstance":
        t0 = time.monotonic()
        prepare_home(self.home)
        self._acquire_lock()
        try:
            self.server = EmbeddedServer(self.pgdata, password=None)  # ServerUnavailable: package missing
            self._stop_leftover()
            state = self.read_state()
            if reset:
                shutil.rmtree(self.pgdata, ignore_errors=True)
                self.state_path.unlink(missing_ok=True)
                state = {"port": state.get("port")} if state else None  # keep the port: exported URLs live on
            self._start(state)
            self._ensure_database(state)
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def close(self) -> None:
        try:
            if self.server is not None and self.server.running:
                self.server.stop("fast")
        except ServerUnavailable:
            pass
        finally:
            self._release_lock()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _stop_leftover(self) -> None:
        """A server still running here belongs to a demo that was killed (we hold the lock): stop it."""
        if self.server.running:
            try:
                self.server.stop("fast")
            except ServerUnavailable:
                pass

    def _start(self, state: dict | None) -> None:
        server = self.server
        if self.pgdata.exists() and not server.initialized and any(self.pgdata.iterdir()):
            raise DemoError(f"the demo's data directory {self.pgdata} is not a PostgreSQL data directory "
                            f"(no PG_VERSION); {RESET_HINT}")
        fresh = not server.initialized
        port = (state or {}).get("port")
        server.port = port if isinstance(port, int) and port_is_free(port) else free_port()
        for attempt in range(2):
            try:
                server.start()
                break
            except ServerUnavailable as exc:
                problem = server.log_problem() or str(exc).splitlines()[-1]
                if attempt == 0 and ("could not bind" in problem or "already in use" in problem):
                    server.port = free_port()  # lost a race for the port: once more on another one
                    continue
                if fresh:
                    raise DemoError(f"could not create the demo server in {self.pgdata}: {problem}") from None
                raise DemoError(f"the demo server in {self.pgdata} does not start ({problem}); "
                                f"{RESET_HINT}") from None
        self.initialized = fresh

    def _ensure_database(self, state: dict | None) -> None:
        built = bool(state) and state.get("fingerprint") == self.fingerprint and state.get("database") == DATABASE
        if built:
            try:
                psycopg.connect(self.url, connect_timeout=5).close()
            except psycopg.OperationalError as exc:
                if "does not exist" in str(exc):
                    raise DemoError(f"the demo database {DATABASE} is missing from {self.pgdata} although "
                                    f"{STATE_FILE} says it was built; {RESET_HINT}") from None
                raise DemoError(f"cannot connect to the demo server: {' '.join(str(exc).split())}; "
                                f"{RESET_HINT}") from None
        else:
            self._build()
            self.built = True
        self.write_state(fingerprint=self.fingerprint, database=DATABASE, port=self.server.port)

    def _build(self) -> None:
        self.state_path.unlink(missing_ok=True)  # until the build commits, the demo is not built
        try:
            with psycopg.connect(self.server.url("postgres"), autocommit=True, connect_timeout=5) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
            with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                schema.build(conn, self.tables)
        except psycopg.Error as exc:
            raise DemoError(f"could not build the demo database: {' '.join(str(exc).split())}; "
                            f"{RESET_HINT}") from None
