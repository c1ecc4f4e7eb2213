"""Where to connect, and how: DSN resolution, Prisma URL clean-up and connection settings.

The password never leaves this module unmasked: resolve() hands every secret it finds to the gate
(redact.py) before anything can fail, every error raised from here is gated, and other modules only
ever see `Target.display` (the input as typed, password masked) and `Target.redact()`.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .redact import candidates, gate, remember
from .text import one_line

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
    typed: str | None = field(default=None, repr=False)  # the input as given (None: the conninfo)

    @property
    def display(self) -> str:
        """The input as typed, password masked: `postgresql:///db` stays `postgresql:///db` (a URL
        taken apart and put together again would not: urlunsplit drops the empty host)."""
        return gate(self.conninfo if self.typed is None else self.typed, self.secrets)

    def redact(self, text: str) -> str:
        return gate(text, self.secrets)


_URL_RE = re.compile(r"^(postgres|postgresql)://", re.I)


def find_secrets(conninfo: str, environ=None) -> tuple[str, ...]:
    """Every password the connection string and PGPASSWORD give, found by the shapes the gate masks
    (so odd syntax too: any scheme, doubled @, no closing quote), percent-decoded as libpq would."""
    environ = os.environ if environ is None else environ
    secrets = candidates(conninfo)
    secrets += [unquote(s) for s in secrets if "%" in s]
    if environ.get("PGPASSWORD"):
        secrets.append(environ["PGPASSWORD"])
    return tuple(s for s in dict.fromkeys(secrets) if s)


def _unescape_passfile(field_text: str) -> str:
    return re.sub(r"\\(.)", r"\1", field_text)


def passfile_passwords(text: str, params: dict | None) -> list[str]:
    """The passwords of a passfile (host:port:database:user:password, `\\` escaping `:` and `\\`)
    that may apply to `params` (None: unknown, so every one). Loose on purpose: a password masked
    that libpq would not have used costs nothing."""
    found = []
    for line in text.splitlines():
        fields = re.split(r"(?<!\\):", line, maxsplit=4)
        if len(fields) < 5:
            continue
        if params is not None and not all(f == "*" or wanted is None or _unescape_passfile(f) in wanted
                                          for f, wanted in zip(fields[:4], _passfile_keys(params))):
            continue
        rest = fields[4]
        found += [_unescape_passfile(re.split(r"(?<!\\):", rest, maxsplit=1)[0]), _unescape_passfile(rest), rest]
    return [p for p in dict.fromkeys(found) if p]


def _passfile_keys(params: dict) -> list[set[str] | None]:
    """What each of a passfile entry's first four fields must be for it to apply (None: anything)."""
    hosts = {h for h in (params.get("host") or "").split(",") if h}
    hosts = {"localhost" if h.startswith("/") else h for h in hosts} or {"localhost"}
    ports = {p for p in (params.get("port") or "").split(",") if p} or {"5432"}
    user = params.get("user")
    dbname = params.get("dbname") or user
    return [hosts, ports, {dbname} if dbname else None, {user} if user else None]


def _read_secret_file(path: Path, named_by: str | None) -> str | None:
    """A passfile's or service file's text; None if there is none. One that was named explicitly
    (PGPASSFILE, passfile=) but cannot be read is bad input: libpq would silently go on without it."""
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return None
    except OSError as exc:
        if named_by is None:
            return None
        raise ConnectError(f"cannot read the password file {path} ({named_by}): "
                           f"{exc.strerror or type(exc).__name__}") from None


def file_secrets(conninfo: str, environ=None) -> tuple[str, ...]:
    """Passwords libpq may take from files for this conninfo: the passfile's entries that may apply,
    and every password= of the service files when a service is named."""
    environ = os.environ if environ is None else environ
    try:
        params = conninfo_to_dict(conninfo) if conninfo else {}
    except (psycopg.Error, ValueError, UnicodeError):  # connect() says what is wrong with it
        params = None
    known = dict(params or {})
    for key, var in (("host", "PGHOST"), ("port", "PGPORT"), ("dbname", "PGDATABASE"), ("user", "PGUSER"),
                     ("passfile", "PGPASSFILE"), ("service", "PGSERVICE")):
        if not known.get(key) and environ.get(var):
            known[key] = environ[var]
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    secrets: list[str] = []
    if known.get("passfile"):
        named_by = "passfile=" if (params or {}).get("passfile") else "PGPASSFILE"
        text = _read_secret_file(Path(known["passfile"]), named_by)
    else:
        text = _read_secret_file(home / ".pgpass", None)
    if text:
        if params is not None and not known.get("user"):
            known["user"] = _os_user()
        secrets += passfile_passwords(text, None if params is None else known)
    if known.get("service"):
        files = [Path(environ["PGSERVICEFILE"]) if environ.get("PGSERVICEFILE") else home / ".pg_service.conf"]
        if environ.get("PGSYSCONFDIR"):
            files.append(Path(environ["PGSYSCONFDIR"]) / "pg_service.conf")
        for path in files:
            for line in (_read_secret_file(path, None) or "").splitlines():
                key, sep, value = line.strip().partition("=")
                if sep and key.strip().lower() == "password":
                    secrets.append(value.strip())
    return tuple(s for s in dict.fromkeys(secrets) if s)


def _os_user() -> str | None:
    try:
        import getpass
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): any user then
        return None


def clean_url(dsn: str) -> tuple[str, tuple[str, ...]]:
    """Remove Prisma-only query parameters from a URL; `schema=` becomes the schema filter. The
    parameters kept stay as typed: decoded and encoded again, `%20` would come back as `+`, which
    libpq does not decode."""
    if not _URL_RE.match(dsn) or "?" not in dsn:
        return dsn, ()
    base, query = dsn.split("?", 1)
    kept, schemas = [], []
    for piece in query.split("&"):
        key, _, value = piece.partition("=")
        key = unquote(key)
        if key == "schema" and value:
            schemas.append(unquote(value))
        if piece and key not in PRISMA_ONLY_PARAMS:
            kept.append(piece)
    return (base + "?" + "&".join(kept)) if kept else base, tuple(schemas)


class DotenvError(ConnectError):
    """A DATABASE_URL= line of .env that cannot be read as meant: said without its value."""


def read_dotenv(path: Path, name: str = "DATABASE_URL") -> str | None:
    """The value of `name` in a .env file (KEY=value, optional `export`, quotes, trailing comments),
    None if the file or the line is not there. Every `name=` line's passwords are handed to the gate
    before the line is judged, so a malformed line cannot leak through an error about it."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    text = data.decode("utf-8", "surrogateescape")
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
    ours = []
    for n, line in lines:
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, rest = line.partition("=")
        if sep and key.strip() == name:
            remember(*find_secrets(line, {}))
            ours.append((n, rest.strip()))
    value = None
    for n, rest in ours:
        where = f"{path}, line {n}: {name}="
        if any("\udc80" <= ch <= "\udcff" for ch in rest):
            raise DotenvError(f"{where} is not UTF-8 text")
        value = _dotenv_value(rest, where)  # the last assignment wins, as in shells and dotenv
    return value or None


def _dotenv_value(rest: str, where: str) -> str:
    quote_char = rest[:1]
    if quote_char not in ("'", '"'):
        return re.split(r"\s+#", rest, maxsplit=1)[0].strip()
    if quote_char == "'":  # literal, as in a shell
        end = rest.find("'", 1)
        value = rest[1:end]
    else:  # backslash escapes \" and \\, as dotenv reads them
        m = re.match(r'"((?:[^"\\]|\\.)*)"', rest)
        end = m.end() - 1 if m else -1
        value = re.sub(r'\\(["\\])', r"\1", m.group(1)) if m else ""
    if end < 0:
        raise DotenvError(f"{where} opens a {quote_char} quote that is never closed on its line")
    after = rest[end + 1:].strip()
    if after and not after.startswith("#"):
        raise DotenvError(f"{where} has text after its closing {quote_char} quote")
    return value


def resolve(dsn: str | None = None, environ=None, cwd: Path | None = None) -> Target:
    """--dsn, else DATABASE_URL, else a DATABASE_URL= line in ./.env, else libpq's PG* variables.
    Every secret found on the way is given to the gate first, so that nothing after can show it."""
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    if environ.get("PGPASSWORD"):
        remember(environ["PGPASSWORD"])
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
    secrets = find_secrets(raw, environ)
    remember(*secrets)
    typed = raw.strip()
    conninfo, schemas = clean_url(typed)
    secrets += file_secrets(conninfo, environ)
    remember(*secrets)
    return Target(conninfo=conninfo, source=source, schemas=schemas, secrets=secrets, typed=typed)


def connect(target: Target, *, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
            autocommit: bool = True) -> psycopg.Connection:
    """A connection tagged application_name=seqtui, without server-side prepared statements
    (pgbouncer in transaction mode breaks them: DESIGN fact 13)."""
    try:
        conn = psycopg.connect(target.conninfo, autocommit=autocommit, prepare_threshold=None,
                               application_name="seqtui", connect_timeout=connect_timeout)
    except (psycopg.Error, ValueError, UnicodeError) as exc:  # ValueError: a NUL; UnicodeError: bad bytes
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
    # masked before whitespace is squeezed: a password holding two spaces or a tab must still match
    text = " ".join(target.redact(str(exc)).split()) or type(exc).__name__
    text = re.sub(r"^(connection failed:|invalid dsn:)\s*", "", text)
    display = one_line(target.display)  # as typed, but a newline in it must not end the line
    where = f"{target.source}: {display}" if display else target.source
    return target.redact(f"could not connect ({where}): {text}")


def for_database(target: Target, dbname: str) -> Target:
    """The same server, user and password, another database (--all). make_conninfo takes URLs and
    key=value strings alike and quotes the name as libpq wants it (spaces, quotes, backslashes)."""
    from psycopg.conninfo import make_conninfo

    try:
        conninfo = make_conninfo(target.conninfo, dbname=dbname)
    except (psycopg.Error, ValueError, UnicodeError) as exc:
        raise ConnectError(describe_connect_error(exc, target)) from None
    return Target(conninfo=conninfo, source=f"{target.source}, database {dbname}", schemas=target.schemas,
                  secrets=target.secrets, typed=target.typed)


def server_label(target: Target, environ=None) -> str:
    """host:port of the target, as postgres_exporter labels a server: no user, database or password.
    Taken from the connection string, then libpq's PGHOST/PGPORT; a socket directory shows as such."""
    environ = os.environ if environ is None else environ
    try:
        params = conninfo_to_dict(target.conninfo) if target.conninfo else {}
    except (psycopg.Error, ValueError, UnicodeError):
        params = {}
    host = params.get("host") or params.get("hostaddr") or environ.get("PGHOST") or "localhost"
    port = params.get("port") or environ.get("PGPORT") or "5432"
    return gate(f"{host}:{port}", target.secrets)


def database_name(target: Target, environ=None) -> str:
    """The database the target names (libpq's default: the user's name), for rows about a server
    that could not be reached, whose database list is unknown."""
    environ = os.environ if environ is None else environ
    try:
        params = conninfo_to_dict(target.conninfo) if target.conninfo else {}
    except (psycopg.Error, ValueError, UnicodeError):
        params = {}
    name = (params.get("dbname") or environ.get("PGDATABASE") or params.get("user") or environ.get("PGUSER")
            or _os_user() or "")
    return gate(name, target.secrets)
