"""Issue 18's gate end to end: libpq's echoes of the input, the real command with odd DSNs, PGPASSWORD,
a passfile and a .env against the test server, the UI's notifications and the audit log."""

from __future__ import annotations

import contextlib
import io
import json
import os
from urllib.parse import quote

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from conftest import PASSWORD, run_seqtui
from seqtui import cli, redact
from seqtui.connect import ConnectError, resolve


@pytest.fixture(autouse=True)
def secrets_forgotten():
    """resolve() remembers every secret it finds for the rest of the process: not past this test,
    whose secrets would be masked in later tests' output."""
    with redact.scope():
        yield


# A secret with a core of letters and digits, which no encoding changes: output holding the core
# holds (a piece of) the secret.
CORE = "Zq77Kx4r"


def forms(secret: str) -> list[str]:
    return [secret, quote(secret, safe=""), quote(secret), secret.replace("\\", "\\\\").replace("'", "\\'")]


def assert_never_shown(text: str, secret: str = PASSWORD) -> None:
    for form in forms(secret):
        assert form not in text, text
    if CORE in secret:
        assert CORE not in text, text


def assert_one_error_line(code: int, out: str, err: str, *expected: str) -> None:
    assert code == 3, out + err
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("seqtui: error: "), err
    for text in expected:
        assert text in err, err


def main_in_process(*argv: str, env: dict | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(argv))
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return code, out.getvalue(), err.getvalue()


def libpq_says(conninfo: str) -> str:
    try:
        psycopg.connect(conninfo, connect_timeout=2).close()
    except psycopg.Error as exc:
        return str(exc)
    raise AssertionError("connected")


# -- (c) libpq echoes the input ----------------------------------------------------------------------

@pytest.mark.parametrize("what, dsn, env", [
    ("invalid URI", f"postgresql://u:{CORE}@[::1:5432/db", {}),
    ("not a URI at all", f"mysql://u:{CORE}@h", {}),
    ("not a URI at all", f"postgresq://::{CORE}@@", {}),
    ("unknown host", f"postgresql://u:pre@{CORE}@127.0.0.1:1/db", {}),
    ("unknown host", f"postgresql://u:Odd@{CORE}/x@127.0.0.1:1/db", {}),
    ("invalid percent-encoding", f"postgresql://u:{CORE}%zz@127.0.0.1:1/db", {}),
    ("unknown option", f"host=127.0.0.1 port=1 password=two {CORE}", {}),
    ("query parameter without =", f"postgresql://u@127.0.0.1:1/db?password=a&{CORE}&sslmode=disable", {}),
    ("bad port", f"host=127.0.0.1 port={CORE}", {"PGPASSWORD": CORE}),
    ("bad sslmode", f"postgresql://u@127.0.0.1:1/db?sslmode=x{CORE}", {"PGPASSWORD": f"x{CORE}"}),
])
def test_libpq_messages_that_echo_the_input_never_carry_the_secret(what, dsn, env, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert CORE in libpq_says(dsn), "libpq no longer echoes this: pick another shape"
    code, out, err = main_in_process("check", "--dsn", dsn, env=env)
    assert_one_error_line(code, out, err)
    assert CORE not in out + err, err


def test_the_password_as_typed_in_a_url_with_unbalanced_brackets_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    url = f"postgresql://u:{quote(PASSWORD, safe='')}@[::1:5432/db"
    code, out, err = main_in_process("check", "--dsn", url)
    assert_one_error_line(code, out, err, 'looking for matching "]"', "postgresql://u:***@[::1:5432/db")
    assert_never_shown(out + err)


def test_a_password_that_looks_like_no_password_to_the_shapes_is_still_masked_when_known(tmp_path):
    # PGPASSWORD holds it; the URL gives it as a database name by mistake, and libpq says so
    target = resolve(f"postgresql://u@127.0.0.1:1/{CORE}", {"PGPASSWORD": CORE}, tmp_path)
    assert target.display == "postgresql://u@127.0.0.1:1/***"
    assert CORE not in target.redact(f'database "{CORE}" does not exist')


# -- resolution: bad input is one line -----------------------------------------------------------

@pytest.mark.parametrize("line, says", [
    ('DATABASE_URL="postgresql://u:{pw}@h/db', 'opens a " quote that is never closed'),
    ("export DATABASE_URL='postgresql://u:{pw}@h/db", "opens a ' quote that is never closed"),
    ('DATABASE_URL="postgresql://u:{pw}@h/db" trailing', "text after its closing"),
])
def test_a_malformed_dotenv_line_is_named_not_shown(tmp_path, line, says):
    secret = f"s3{CORE}:/@% #"
    (tmp_path / ".env").write_text("OTHER=1\n" + line.format(pw=secret) + "\n")
    with pytest.raises(ConnectError) as caught:
        resolve(None, {}, tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / '.env'}, line 2: DATABASE_URL= ")
    assert says in str(caught.value) and CORE not in str(caught.value)


def test_an_unreadable_passfile_named_by_pgpassfile_is_an_error(tmp_path):
    with pytest.raises(ConnectError, match="cannot read the password file .* \\(PGPASSFILE\\)"):
        resolve("postgresql://u@h/db", {"PGPASSFILE": str(tmp_path)}, tmp_path)  # a directory
    resolve("postgresql://u@h/db", {"PGPASSFILE": str(tmp_path / "none")}, tmp_path)  # absent: as libpq


def test_passfile_entries_that_may_apply_are_known_secrets(tmp_path):
    passfile = tmp_path / "pgpass"
    passfile.write_text("# comment\nh:5432:db:u:first\\:" + CORE + "\nother:1:x:y:notthisone\n*:*:*:*:wild" + CORE + "\n")
    target = resolve("postgresql://u@h/db", {"PGPASSFILE": str(passfile)}, tmp_path)
    assert {f"first:{CORE}", f"wild{CORE}"} <= set(target.secrets)
    assert "notthisone" not in target.secrets
    assert CORE not in target.redact(f"first:{CORE} wild{CORE}")


# -- (b) the real command against the test server ------------------------------------------------

def server_parts(db) -> dict:
    params = conninfo_to_dict(db.url)
    if not params.get("password"):
        pytest.skip("needs the embedded server's password (TEST_DATABASE_URL has none to hide)")
    return params


def test_pgpassword_connects_and_is_masked_where_the_server_echoes_it(db):
    p = server_parts(db)
    env = {"PGPASSWORD": p["password"]}
    base = f"postgresql://{p['user']}@{p['host']}:{p['port']}"
    ok = run_seqtui("check", "--json", "--dsn", f"{base}/{db.name}", env=env)
    assert ok.code == 0, ok.text
    assert_never_shown(ok.text)
    # the password given as the database name by mistake: the server quotes it back
    wrong = f"{base}/{quote(PASSWORD, safe='')}"
    assert PASSWORD in libpq_says(make_url(wrong, p["password"]))
    run = run_seqtui("check", "--dsn", wrong, env=env)
    assert_one_error_line(run.code, run.out, run.err, "does not exist")
    assert_never_shown(run.text)


def make_url(url: str, password: str) -> str:
    from psycopg.conninfo import make_conninfo
    return make_conninfo(url, password=password)


def test_a_passfile_connects_and_its_password_is_masked(db, tmp_path):
    p = server_parts(db)
    passfile = tmp_path / "pgpass"
    escaped = p["password"].replace("\\", "\\\\").replace(":", "\\:")
    passfile.write_text(f"{p['host']}:{p['port']}:*:{p['user']}:{escaped}\n")
    passfile.chmod(0o600)
    env = {"PGPASSFILE": str(passfile)}
    base = f"postgresql://{p['user']}@{p['host']}:{p['port']}"
    ok = run_seqtui("check", "--dsn", f"{base}/{db.name}", env=env)
    assert ok.code == 0, ok.text
    run = run_seqtui("check", "--dsn", f"{base}/{quote(PASSWORD, safe='')}", env=env)
    assert_one_error_line(run.code, run.out, run.err, "does not exist")
    assert_never_shown(ok.text + run.text)
    directory = run_seqtui("check", "--dsn", f"{base}/{db.name}", env={"PGPASSFILE": str(tmp_path)})
    assert_one_error_line(directory.code, directory.out, directory.err, "cannot read the password file")


def test_dotenv_connects_and_a_malformed_one_is_one_line(db, tmp_path):
    server_parts(db)
    (tmp_path / ".env").write_text(f'# the app\nexport DATABASE_URL="{db.url}"  # local\n')
    ok = run_seqtui("check", "--json", cwd=tmp_path)
    assert ok.code == 0 and json.loads(ok.out)["database"]["name"] == db.name, ok.text
    (tmp_path / ".env").write_text(f'DATABASE_URL="{db.url}\n')
    run = run_seqtui("check", cwd=tmp_path)
    assert_one_error_line(run.code, run.out, run.err, ".env, line 1: DATABASE_URL= opens a \" quote")
    assert_never_shown(ok.text + run.text)


def test_a_url_without_a_host_is_shown_as_typed(db):
    p = server_parts(db)
    typed = f"postgresql:///no_such_db?host={p['host']}&port={p['port']}&user={p['user']}"
    run = run_seqtui("check", "--dsn", typed, env={"PGPASSWORD": p["password"]})
    assert_one_error_line(run.code, run.out, run.err, f"(--dsn: {typed})", 'database "no_such_db" does not exist')


@pytest.mark.parametrize("dsn", [
    f"postgresq://::{PASSWORD}@@",
    f"mysql://u:{PASSWORD}@h",
    f"postgresql://u:{PASSWORD}@[::1:5432/db",
    f"postgresql://u:{quote(PASSWORD, safe='')}@127.0.0.1:1/db?bogus=1",
    f"host=127.0.0.1 port=1 password='{PASSWORD.replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}",
    f"postgresql://u:Odd@{CORE}/x@127.0.0.1:1/db",
])
def test_odd_dsns_in_every_place_the_command_takes_one(dsn, tmp_path):
    secret = PASSWORD if PASSWORD in dsn or quote(PASSWORD, safe="") in dsn else f"Odd@{CORE}/x"
    runs = [run_seqtui("check", "--dsn", dsn), run_seqtui("check", url=dsn), run_seqtui("check", "--json", url=dsn)]
    (tmp_path / ".env").write_text(f"DATABASE_URL={dsn}\n")
    runs.append(run_seqtui("check", cwd=tmp_path))
    for run in runs:
        assert_one_error_line(run.code, run.out, run.err)
        assert_never_shown(run.text, secret)
    bad_flag = run_seqtui("check", "--bogus", dsn)  # argparse echoes what it rejects
    assert bad_flag.code == 3 and "unrecognized arguments" in bad_flag.err
    assert_never_shown(bad_flag.text, secret)


# -- the UI and the audit log ----------------------------------------------------------------------

@pytest.mark.asyncio
async def test_ui_notifications_and_header_never_show_the_secret(db, tmp_path):
    from seqtui.tui.messages import RefreshFailed
    from test_tui import SIZE, make_app, started, text_of, until

    app = make_app(db.url, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        echo = f"libpq said: postgresql://u:{quote(PASSWORD, safe='')}@h and {PASSWORD} and mysql://x:{CORE}@h"
        app.notify(echo, title=f"password={CORE}")
        app.post_message(RefreshFailed(echo, lost=True))
        await until(pilot, lambda: app.lost is not None, "the lost connection in the header")
        shown = [f"{n.title} {n.message}" for n in app._notifications]
        assert len(shown) >= 2 and any("libpq said" in s for s in shown)
        header = "\n".join(text_of(app, w) for w in ("db-line", "summary-line", "state-line"))
        assert "libpq said" in header
        for text in shown + [header]:
            assert_never_shown(text)
            assert CORE not in text


def test_audit_log_lines_pass_the_gate(db, tmp_path):
    from seqtui.apply import FixResult
    from seqtui.audit import AuditLog
    from seqtui.connect import connect
    from seqtui.repair import plans_from_verdicts
    from seqtui.scan import scan

    db.execute("CREATE TABLE t (id serial PRIMARY KEY); INSERT INTO t VALUES (5)")
    with connect(resolve(db.url)) as conn:
        (plan,) = plans_from_verdicts(scan(conn).verdicts)
    log = AuditLog(tmp_path / "audit.jsonl", {"name": db.name}, "fix").open()
    log.record(FixResult(plan, "failed", 1, 1, f"server said: password={CORE} for postgresql://u:{PASSWORD}@h"))
    text = (tmp_path / "audit.jsonl").read_text()
    entry = json.loads(text)
    assert entry["sequence"] == "public.t_id_seq" and entry["reason"].startswith("server said: password=***")
    assert_never_shown(text)
    assert CORE not in text
