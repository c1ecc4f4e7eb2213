"""Issue 18: over 10,000 generated connection strings, .env files, PGPASSWORDs and passfiles holding a
known secret go through the CLI's own main() in this process (argument parsing, resolution, libpq's
parser, psycopg's host lookup, the error line): the secret never comes out in any spelling, and the
bad input ends as one line on stderr and exit code 3, never a traceback.

Each secret holds a core of its own (`Zq` + the case number + letters) between characters that mean
something to URLs, shells, SQL, libpq or .env readers. The core is letters and digits, which no
encoding or escape changes, and appears nowhere else: any output holding it holds (part of) the secret.
No server is needed: every address is refused at once (127.0.0.1 port 1) or never valid.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import string
from collections import Counter
from urllib.parse import quote

import pytest

from seqtui import cli

CASES = 10_500
SEED = 18  # the number: a failure names its case, and the same case comes back on every run

SPECIALS = list(":/@%?#&'\" $`;-=\\[](){}!*+,~^|<>\t") + [
    "%41", "%zz", "%2F", "%", "%%", "@@", "::", "''", '\\"', "\\'", "é", "日本", "🔑", "\u200b", "ü", "ß"]
SCHEMES = ["postgresql", "postgres", "POSTGRESQL", "postgresq", "mysql", "redis", "jdbc:postgresql", ""]

# {p}: the scheme and its slashes; {e}: the secret, spelled as the case's encoding made it
URI_SHAPES = [
    "{p}u:{e}@127.0.0.1:1/db",
    "{p}::{e}@@",
    "{p}u:{e}@[::1:5432/db",
    "{p}u:{e}@127.0.0.1:notaport/db",
    "{p}u:{e}@127.0.0.1:1/db?nonsense_option=1",
    "{p}u:{e}@@127.0.0.1:1/db",
    "{p}u:{e}@127.0.0.1:1/db?sslmode=disable&password={e}",
    "{p}u@127.0.0.1:1/db?password={e}&application_name=x",
    "{p}u:{e}@127.0.0.1:1,127.0.0.1:2/db?connect_timeout=1",
    "{p}u:{e}@127.0.0.1:1/db?schema=app&connection_limit=1",
    "{s}:u:{e}@127.0.0.1",
    "  {p}u:{e}@127.0.0.1:1/db  ",
]
# {q}: the secret as a key=value value: bare, quoted and escaped, quoted and never closed, in "" quotes
KV_SHAPES = [
    "host=127.0.0.1 port=1 password={q}",
    "host=127.0.0.1 port=1 password={q} bogus",
    "host=127.0.0.1 port=1 password={q} bogus=1",
    "password = {q} host=127.0.0.1 port=notaport",
    "host=127.0.0.1 port=1 dbname=db user=u password={q} sslmode=disable",
    "host=127.0.0.1 port=1 sslpassword={q}",
]
# A .env line holding the connection string {v}, well-formed or not
DOTENV_SHAPES = [
    "DATABASE_URL={v}",
    'DATABASE_URL="{v}"',
    "DATABASE_URL='{v}'",
    'export DATABASE_URL="{v}',
    "DATABASE_URL='{v}",
    'DATABASE_URL="{v}" junk',
    "# settings\nOTHER=1\n\nexport DATABASE_URL={v}  # the app's\n",
]
# The secret comes from PGPASSWORD or a passfile; the connection string echoes it where libpq
# quotes the value back (a port, an sslmode): only knowing the secret can mask it there.
ECHO_SHAPES = [
    "host=127.0.0.1 port={q}",
    "postgresql://u@127.0.0.1:1/db?sslmode={u}",
    "host=127.0.0.1 port=1 sslmode={q}",
]


def make_secret(rng: random.Random, i: int) -> tuple[str, str]:
    core = f"Zq{i:05d}" + "".join(rng.choices(string.ascii_letters, k=4))
    pre = "".join(rng.choices(SPECIALS, k=rng.randint(0, 3)))
    post = "".join(rng.choices(SPECIALS, k=rng.randint(0, 3)))
    return pre + core + post, core


def url_spelling(rng: random.Random, secret: str) -> str:
    return rng.choice([
        secret,                                                   # as typed, unencoded
        quote(secret, safe=""),                                   # fully percent-encoded
        quote(secret),                                            # urllib's default: / left alone
        secret.replace("%", "%25").replace("@", "%40").replace("/", "%2F"),  # half-encoded
    ])


def kv_spelling(rng: random.Random, secret: str) -> str:
    escaped = secret.replace("\\", "\\\\").replace("'", "\\'")
    return rng.choice([secret, f"'{escaped}'", f"'{escaped}", f'"{secret}"'])


def make_case(rng: random.Random, i: int) -> dict:
    """One generated shape: argv, environment, .env text and passfile text, and the secret's core."""
    secret, core = make_secret(rng, i)
    kind = rng.choices(["uri", "kv", "dotenv", "pgpassword", "passfile", "argv"], weights=[30, 20, 20, 10, 10, 10])[0]
    case = {"kind": kind, "core": core, "argv": ["check"], "env": {}, "dotenv": None, "passfile": None}
    scheme = rng.choice(SCHEMES)

    def uri() -> str:
        return rng.choice(URI_SHAPES).format(p=f"{scheme}://" if scheme else "//", s=scheme or "postgresql",
                                             e=url_spelling(rng, secret))

    def kv() -> str:
        return rng.choice(KV_SHAPES).format(q=kv_spelling(rng, secret))

    if kind in ("uri", "kv"):
        dsn = uri() if kind == "uri" else kv()
        if rng.random() < 0.5:
            case["argv"] += ["--dsn", dsn]
        else:
            case["env"]["DATABASE_URL"] = dsn
    elif kind == "dotenv":
        value = uri() if rng.random() < 0.7 else kv()
        case["dotenv"] = rng.choice(DOTENV_SHAPES).format(v=value)
    elif kind in ("pgpassword", "passfile"):
        dsn = rng.choice(ECHO_SHAPES).format(q=kv_spelling(rng, secret), u=quote(secret, safe=""))
        case["argv"] += ["--dsn", dsn]
        if kind == "pgpassword":
            case["env"]["PGPASSWORD"] = secret
        else:
            escaped = secret.replace("\\", "\\\\").replace(":", "\\:")
            case["passfile"] = f"# seqtui test\nother:5:db:u:x\n127.0.0.1:*:*:*:{escaped}\n"
    else:  # argparse rejects the line and echoes what it did not understand
        dsn = uri() if rng.random() < 0.7 else kv()
        case["argv"] = rng.choice([["check", "--bogus", dsn], ["check", dsn], ["--dsn", dsn, "chek"],
                                   ["check", "--dsn", dsn, "--jobs", "0"]])
    return case


@contextlib.contextmanager
def environment(values: dict):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse, as in the real command
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No PG* variable, DATABASE_URL or ~/.pgpass of the person running the tests; cwd without .env."""
    for key in list(os.environ):
        if key.startswith("PG") or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_generated_shapes_never_show_the_secret_and_end_in_one_line_and_exit_3(clean_env):
    rng = random.Random(SEED)
    dotenv, passfile = clean_env / ".env", clean_env.parent / "pgpass"
    kinds, leaks, bad = Counter(), [], []
    for i in range(CASES):
        case = make_case(rng, i)
        kinds[case["kind"]] += 1
        env = dict(case["env"])
        if case["dotenv"] is not None:
            dotenv.write_text(case["dotenv"], encoding="utf-8")
        elif dotenv.exists():
            dotenv.unlink()
        if case["passfile"] is not None:
            passfile.write_text(case["passfile"], encoding="utf-8")
            passfile.chmod(0o600)
            env["PGPASSFILE"] = str(passfile)
        with environment(env):
            code, out, err = run_main(case["argv"])
        for k in env:
            os.environ.pop(k, None)
        if case["core"] in out + err:
            leaks.append((i, case, out + err))
        lines = [line for line in err.splitlines() if line.strip()]
        argparse_error = case["kind"] == "argv"
        if (code != 3 or out or "Traceback" in err or not lines
                or not (argparse_error or (len(lines) == 1 and lines[0].startswith("seqtui: error: ")))):
            bad.append((i, case, code, out + err))
    assert not leaks, f"{len(leaks)} outputs held the secret; the first: {leaks[0]}"
    assert not bad, f"{len(bad)} outputs not one error line with exit 3; the first: {bad[0]}"
    assert sum(kinds.values()) >= 10_000 and min(kinds.values()) >= 500, kinds
