"""The secrets gate (redact.py) as pure functions and streams: shapes masked, password-less text as typed."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from urllib.parse import quote

import pytest

from seqtui import redact
from seqtui.redact import MASK, GatedStream, candidates, dumps, gate, gated_output, remember, scrub, spellings


@pytest.mark.parametrize("text, shown", [
    # the odd URIs: any scheme, doubled @, unbalanced brackets
    ("postgresq://::SECRET@@", "postgresq://:***@"),
    ("mysql://u:SECRET@h", "mysql://u:***@h"),
    ("postgresql://u:SECRET@[::1:5432/db", "postgresql://u:***@[::1:5432/db"),
    ("postgresql://u:SE@CRET@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:SE/CR?ET@h/db", "postgresql://u:***@h/db"),
    ("//u:SECRET@h", "//u:***@h"),
    ("postgresql:u:SECRET@h", "postgresql:u:***@h"),
    ("mysql://u:SEC RET@h", "mysql://u:***@h"),
    ('missing "=" after ""postgresql://u:SECRET@h" in connection info string',
     'missing "=" after ""postgresql://u:***@h" in connection info string'),
    # key=value: quotes, escapes, no closing quote, spaces after =, other keys that hold passwords
    ("host=h password=SECRET dbname=d", "host=h password=*** dbname=d"),
    ("host=h password='SEC RET' dbname=d", "host=h password='***' dbname=d"),
    ("host=h password='SEC\\' RET' dbname=d", "host=h password='***' dbname=d"),
    ("host=h password='SEC RET", "host=h password='***'"),
    ("host=h password = SECRET", "host=h password = ***"),
    ("PGPASSWORD=SECRET psql", "PGPASSWORD=*** psql"),
    ('export DB_PASSWORD="SEC RET"', 'export DB_PASSWORD="***"'),
    ("sslpassword=SECRET", "sslpassword=***"),
    ('{"password": "SEC\\"RET", "x": 1}', '{"password": "***", "x": 1}'),
    ("postgresql://u@h/db?password=SECRET&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
])
def test_password_shapes_are_masked(text, shown):
    assert scrub(text) == shown
    assert "SEC" not in scrub(text) and "RET" not in scrub(text)


@pytest.mark.parametrize("text", [
    "postgresql:///db",
    "postgresql://u@h:5432/db",
    "postgresql://h:5432/db?sslmode=require",
    "postgresql://u:@h/db",
    "postgresql://[::1]:5432/db",
    "host=/var/run/postgresql dbname=app passfile=/home/u/.pgpass",
    "seqtui: error: could not connect (--dsn: postgresql://u@h/db): connection to server at \"h\" (::1), "
    "port 5432 failed: FATAL: password authentication failed for user \"x@y\"",
    "fe_sendauth: no password supplied",
    "at fe80::1 port 5 failed for u@h",
    "LOCK TABLE public.passwords IN EXCLUSIVE MODE; -- password_file=/x",
])
def test_text_without_a_password_passes_as_typed(text):
    assert scrub(text) == text


def test_spellings_cover_encodings_and_escapes():
    secret = "Pw:/@%?#&'\" $`;--x9é"
    forms = spellings(secret)
    assert {secret, quote(secret, safe=""), quote(secret), json.dumps(secret)[1:-1], repr(secret)[1:-1],
            secret.replace("\\", "\\\\").replace("'", "\\'")} <= forms
    assert "a@b" in spellings("a%40b") and "a%40b" in spellings("a%40b")


def test_known_secrets_are_masked_anywhere_in_any_spelling():
    secret = "s3cr et'%"
    text = f"x {secret} y {quote(secret, safe='')} z {json.dumps(secret)} w {secret!r}"
    masked = scrub(text, tuple(sorted(spellings(secret), key=len, reverse=True)))
    assert "s3cr" not in masked
    assert gate(text, (secret,)) == masked


def test_a_known_secret_too_short_to_mask_everywhere_is_masked_where_a_shape_puts_it():
    assert gate("x marks the spot", ("x",)) == "x marks the spot"
    assert gate("postgresql://u:x@h password=x", ("x",)) == "postgresql://u:***@h password=***"


def test_candidates_find_the_password_and_the_pieces_a_parser_could_cut():
    found = candidates("postgresql://u:abcd@efgh@h/db")
    assert {"abcd@efgh", "abcd", "efgh"} <= set(found)
    assert "SEC RET" in candidates("host=h password='SEC RET' x=1")
    assert "SEC'RET" in candidates("host=h password='SEC\\'RET'")
    assert "SEC RET" in candidates("host=h password='SEC RET")
    assert candidates("postgresql:///db") == [] and candidates("host=h dbname=d") == []


def test_dumps_masks_strings_and_keeps_the_json_valid():
    doc = {"detail": 'could not connect (postgresql://u:Q1@Q2"Q3@h)', "n": 1, "l": ["password='Q4 Q5"],
           "k password=Q6": None}
    text = dumps(doc)
    back = json.loads(text)  # still JSON: a mask on the text could have eaten a closing quote
    assert back["n"] == 1 and back["l"] == ["password='***'"]
    assert not any(f"Q{i}" in text for i in range(1, 7)), text
    plain = {"a": "b", "n": [1, 2.5, None]}
    assert dumps(plain, indent=2) == json.dumps(plain, indent=2)


def test_gated_stream_masks_a_secret_written_in_pieces_and_holds_partial_lines():
    inner = io.StringIO()
    stream = GatedStream(inner)
    with gated_output():
        remember("hunter22")
        stream.write("a hun")
        assert inner.getvalue() == ""  # no line yet: nothing is written
        stream.write("ter22 b\npostgresql://u:xyz")
        assert inner.getvalue() == f"a {MASK} b\n"
        stream.write("@h\n")
        stream.write("tail")
        stream.flush()
    assert inner.getvalue() == f"a {MASK} b\npostgresql://u:{MASK}@h\ntail"


def test_a_secret_spanning_lines_is_held_until_flush():
    inner = io.StringIO()
    stream = GatedStream(inner)
    with gated_output():
        remember("two\nlines")
        stream.write("x two\n")
        stream.write("lines y\n")
        assert inner.getvalue() == ""
        stream.flush()
    assert inner.getvalue() == f"x {MASK} y\n"


def test_gated_output_covers_print_logging_warnings_and_forgets_its_secrets(capsys):
    before = redact.known()
    with gated_output():
        remember("Zq9-known-secret")
        print("stdout Zq9-known-secret")
        print("stderr postgresql://u:Zq9-shape@h", file=sys.stderr)
        assert "Zq9-known-secret" in redact.known()
    out, err = capsys.readouterr()
    assert (out, err) == (f"stdout {MASK}\n", f"stderr postgresql://u:{MASK}@h\n")
    assert redact.known() == before and not isinstance(sys.stdout, GatedStream)


def test_logging_warnings_and_tracebacks_written_to_stderr_are_gated():
    # in a process of its own: pytest captures logging and warnings with handlers of its own
    code = """if True:
        import logging, sys, threading, traceback, warnings
        from seqtui.redact import gated_output, remember
        with gated_output():
            remember("Zq9-known-secret")
            logging.getLogger("psycopg").warning("logged Zq9-known-secret")
            warnings.warn("warned Zq9-known-secret")
            t = threading.Thread(target=lambda: 1 / 0 if "Zq9-known-secret" else 0)
            t.start(); t.join()
            try:
                raise ValueError("postgresql://u:Zq9-shape@h")
            except ValueError:
                traceback.print_exc()
    """
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for seen in ("logged ***", "warned ***", "ZeroDivisionError", "ValueError: postgresql://u:***@h"):
        assert seen in proc.stderr, proc.stderr
    assert "Zq9" not in proc.stdout + proc.stderr
