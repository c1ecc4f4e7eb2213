"""Where to connect, and how: DSN resolution, Prisma URL clean-up and connection settings.

The password never leaves this module: every error raised from here is redacted, and other modules
only ever see `Target.display` (the URL without its password) and `redact()`.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import psycopg

# Query parameters Prisma (and some ORMs) put in DATABASE_URL that libpq rejects as unknown options.
PRISMA_ONLY_PARAMS = frozenset({
    "schema", "connection_limit", "pool_timeout", "pgbouncer", "sslaccept", "sslidentity",
    "socket_timeout", "statement_cache_size", "max_connection_lifetime", "max_idle_connection_lifetime",
    "single_use_connections",
})
LIBPQ_TARGET_VARS = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")
DEFAULT_CONNECT_TIMEOUT = 10  # seconds


class ConnectError(Exception):
    """A one-line, password-free explanation of why we could not connect."""


class NoTarget(ConnectError):
    """Nothing says where to connect."""


@dataclass(frozen=True)
class Target:
    conninfo: str = field(repr=False)  # what libpq gets; may hold the password: never print it
    source: str                       # where it came from: --dsn, DATABASE_URL, .env, PG* environment
    schemas: tuple[str, ...] = ()     # Prisma's ?schema=, used as the default schema filter
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def display(self) -> str:
        return redact(strip_password(self.conninfo), self.secrets)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)


def redact(text: str, secrets) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


_URL_RE = re.compile(r"^(postgres|postgresql)://", re.I)
_KV_PASSWORD_RE = re.compile(r"""password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)""", re.I)


def _password_forms(password: str) -> list[str]:
    forms = {password}
    try:
        forms.add(unquote(password))
    except Exception:  # pragma: no cover - unquote does not raise on str
        pass
    forms.discard("")
    return list(forms)


def find_secrets(conninfo: str, environ=None) -> tuple[str, ...]:
    """Every form of a password that could appear in an error message about this conninfo."""
    environ = os.environ if environ is None else environ
    secrets: list[str] = []
    if _URL_RE.match(conninfo):
        netloc = conninfo.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
        if "@" in netloc:
            userinfo = netloc.rsplit("@", 1)[0]
            if ":" in userinfo:
                secrets += _password_forms(userinfo.split(":", 1)[1])
        for key, value in parse_qsl(urlsplit(conninfo).query if "?" in conninfo else "", keep_blank_values=True):
            if key == "password":
                secrets += _password_forms(value)
    for m in _KV_PASSWORD_RE.finditer(conninfo):
        value = m.group(1)
        secrets.append(value)
        if value.startswith("'") and value.endswith("'"):
            secrets.append(value[1:-1].replace("\\'", "'").replace("\\\\", "\\"))
    if environ.get("PGPASSWORD"):
        secrets.append(environ["PGPASSWORD"])
    return tuple(s for s in dict.fromkeys(secrets) if s)


def strip_password(conninfo: str) -> str:
    """The conninfo without its password, for display."""
    if _URL_RE.match(conninfo):
        parts = urlsplit(conninfo)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, hostinfo = netloc.rsplit("@", 1)
            netloc = userinfo.split(":", 1)[0] + "@" + hostinfo
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"])
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return _KV_PASSWORD_RE.sub("password=***", conninfo)


def clean_url(dsn: str) -> tuple[str, tuple[str, ...]]:
    """Remove Prisma-only query parameters from a URL; `schema=` becomes the schema filter."""
    if not _URL_RE.match(dsn) or "?" not in dsn:
        return dsn, ()
    base, query = dsn.split("?", 1)
    kept, schemas = [], []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "schema" and value:
            schemas.append(value)
        if key not in PRISMA_ONLY_PARAMS:
            kept.append((key, value))
    return (base + "?" + urlencode(kept)) if kept else base, tuple(schemas)


def read_dotenv(path: Path, name: str = "DATABASE_URL") -> str | None:
    """The value of `name` in a .env file (KEY=value, optional `export`, quotes, trailing comments)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    value = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, rest = line.partition("=")
        if not sep or key.strip() != name:
            continue
        rest = rest.strip()
        if rest[:1] in ("'", '"') and rest.count(rest[0]) >= 2:
            rest = rest[1:rest.index(rest[0], 1)]
        else:
            rest = re.split(r"\s+#", rest, maxsplit=1)[0].strip()
        value = rest  # the last assignment wins, as in shells and dotenv
    return value or None


def resolve(dsn: str | None = None, environ=None, cwd: Path | None = None) -> Target:
    """--dsn, else DATABASE_URL, else a DATABASE_URL= line in ./.env, else libpq's PG* variables."""
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    if dsn:
        raw, source = dsn, "--dsn"
    elif environ.get("DATABASE_URL"):
        raw, source = environ["DATABASE_URL"], "DATABASE_URL"
    elif (dotenv := read_dotenv(cwd / ".env")) is not None:
        raw, source = dotenv, ".env"
    elif any(environ.get(v) for v in LIBPQ_TARGET_VARS):
        raw, source = "", "PG* environment"
    else:
        raise NoTarget("no database given: set DATABASE_URL (or pass --dsn, or put DATABASE_URL= in ./.env, "
                       "or set PGHOST/PGDATABASE); to try seqtui on a throwaway database run: seqtui demo")
    conninfo, schemas = clean_url(raw.strip())
    return Target(conninfo=conninfo, source=source, schemas=schemas, secrets=find_secrets(raw, environ))


def connect(target: Target, *, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
            autocommit: bool = True) -> psycopg.Connection:
    """A connection tagged application_name=seqtui, without server-side prepared statements
    (pgbouncer in transaction mode breaks them: DESIGN fact 13)."""
    try:
        conn = psycopg.connect(target.conninfo, autocommit=autocommit, prepare_threshold=None,
                               application_name="seqtui", connect_timeout=connect_timeout)
    except psycopg.Error as exc:
        raise ConnectError(describe_connect_error(exc, target)) from None
    return conn


def open_helpers(target: Target, jobs: int) -> tuple[list[psycopg.Connection], str | None]:
    """Up to jobs - 1 more connections, for measuring on several at once (--jobs). The first one that
    cannot be opened (max_connections reached, a role's CONNECTION LIMIT, a pooler's pool size) ends
    the attempt: the work goes on with those opened, and why comes back for a warning."""
    helpers: list[psycopg.Connection] = []
    for _ in range(jobs - 1):
        try:
            helpers.append(connect(target))
        except ConnectError as exc:
            return helpers, str(exc)
    return helpers, None


class SpareConnection:
    """One more connection, opened on a thread of its own, for work that can use it but must never
    wait for it. take() gives it once, if it is open by then, and None otherwise; close() closes it,
    taken or not, or has the thread close it when it opens at last (a pooler may keep a client
    waiting). A connection refused (max_connections, a role's CONNECTION LIMIT) is simply not there."""

    def __init__(self, target: Target, opener: Callable[[Target], psycopg.Connection] | None = None) -> None:
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._state = "opening"  # -> ready -> taken, or -> closed at any time
        self._thread = threading.Thread(target=self._open, args=(target, opener or connect),
                                        name="seqtui-spare", daemon=True)
        self._thread.start()

    def _open(self, target: Target, opener) -> None:
        try:
            conn = opener(target)
        except (ConnectError, psycopg.Error):
            with self._lock:
                if self._state == "opening":
                    self._state = "closed"
            return
        with self._lock:
            if self._state == "opening":
                self._conn, self._state = conn, "ready"
                return
        close_all([conn])  # given up on meanwhile

    def take(self) -> psycopg.Connection | None:
        with self._lock:
            if self._state != "ready":
                return None
            self._state = "taken"
            return self._conn

    def close(self) -> None:
        with self._lock:
            conn, self._conn, self._state = self._conn, None, "closed"
        if conn is not None:
            close_all([conn])


def close_all(conns) -> None:
    for conn in conns:
        try:
            conn.close()
        except Exception:  # closing a connection that is already gone: nothing left to do
            pass


def describe_connect_error(exc: BaseException, target: Target) -> str:
    """One line: what failed, from where we took the address, with every password form masked."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = re.sub(r"^(connection failed:|invalid dsn:)\s*", "", text)
    return target.redact(f"could not connect ({target.source}: {target.display}): {text}")
