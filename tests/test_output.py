"""`check`'s table stays readable from 80 columns up: names are never squeezed into slivers."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, strategies as st
from rich.console import Console

from seqtui.connect import connect, resolve
from seqtui.output import CHECK_COLUMNS, COLUMN_GAP, check_notes, check_table, fit_widths
from seqtui.scan import scan

from conftest import run_seqtui


def render(report, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(check_table(report, width))
    return console.export_text()


def test_table_fits_80_columns_with_whole_names_and_notes_for_what_needs_attention(db):
    db.execute("""
        CREATE TABLE customer_invoices (id serial PRIMARY KEY); INSERT INTO customer_invoices VALUES (42);
        CREATE TABLE fine (id serial PRIMARY KEY); INSERT INTO fine DEFAULT VALUES;
    """)
    with connect(resolve(db.url)) as conn:
        report = scan(conn)
    narrow = render(report, 80)
    assert all(len(line) <= 80 and line == line.rstrip() for line in narrow.splitlines())
    assert "public.customer_invoices.id" in narrow  # on one line, not folded letter by letter
    assert "detail" not in narrow.splitlines()[2]
    assert check_notes(report) == ["public.customer_invoices.id: collides in 42 inserts: next value 1 is free, 42 is taken "
                                  "(highest id 42)."]
    wide = render(report, 200)
    assert "detail" in wide and "public.customer_invoices_id_seq" in wide


@given(st.lists(st.integers(1, 80), min_size=len(CHECK_COLUMNS), max_size=len(CHECK_COLUMNS)),
       st.integers(40, 250))
def test_column_widths_fit_the_terminal_and_only_folding_columns_give_way(natural, width):
    columns = [c for c in CHECK_COLUMNS if width >= c[1]]
    natural = natural[:len(columns)]
    widths = fit_widths(columns, natural, width)
    folding = [kw.get("overflow") == "fold" for _, _, kw, _ in columns]
    for w, n, fold, (_, _, kw, _) in zip(widths, natural, folding, columns):
        assert w == n if not fold else min(n, kw.get("min_width", 1)) <= w <= n
    fixed = sum(n for n, fold in zip(natural, folding) if not fold)
    least = fixed + sum(min(n, kw.get("min_width", 1)) for n, fold, (_, _, kw, _) in zip(natural, folding, columns)
                        if fold)
    total = sum(widths) + COLUMN_GAP * (len(columns) - 1)
    if least + COLUMN_GAP * (len(columns) - 1) <= width:
        assert total <= width
        # and no room is wasted while a folding column still folds
        assert total == width or widths == natural


def check_in_a_terminal(url: str, columns: int) -> str:
    """`seqtui check` as a person sees it: stdout a terminal `columns` wide (a pty), escapes removed."""
    import fcntl
    import re
    import struct
    import subprocess
    import sys
    import tempfile
    import termios

    from conftest import STATE_HOME

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    env.update(DATABASE_URL=url, COLUMNS=str(columns), NO_COLOR="1", XDG_STATE_HOME=STATE_HOME)
    proc = subprocess.Popen([sys.executable, "-m", "seqtui", "check"], stdout=slave, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=env, cwd=tempfile.gettempdir())
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 2  # the shape below has something behind
    text = b"".join(chunks).decode().replace("\r", "")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def build_long_details(db) -> None:
    db.execute("""
        CREATE TABLE invoice_line_items_archive (id serial PRIMARY KEY);
        INSERT INTO invoice_line_items_archive VALUES (3), (4), (900);
        CREATE TABLE members (id serial PRIMARY KEY); INSERT INTO members VALUES (1), (2);
        CREATE TABLE nearly_full_members (id integer PRIMARY KEY);
        CREATE SEQUENCE nearly_full_members_id_seq AS bigint OWNED BY nearly_full_members.id;
        ALTER TABLE nearly_full_members ALTER COLUMN id SET DEFAULT nextval('nearly_full_members_id_seq');
        INSERT INTO nearly_full_members VALUES (2000000000);
        SELECT setval('nearly_full_members_id_seq', 2000000000);
    """)


@pytest.mark.parametrize("columns", [80, 120, 200])
def test_check_wraps_details_and_names_at_words_not_inside_them(db, columns):
    """No word is cut: details break at spaces, names after their dots. (A single name part wider than
    its column, here over 29 cells at 80 columns, would still be cut: nowhere else to break it.)"""
    build_long_details(db)
    report = json.loads(run_seqtui("check", "--json", url=db.url).out)
    details = [r["detail"] for r in report["sequences"] if r["detail"]]
    assert any("widen it" in d for d in details) and any("collides in" in d for d in details)
    # 200 columns: piped, as in CI logs (check widens a pipe to 200 whatever COLUMNS says)
    out = (run_seqtui("check", url=db.url, env={"COLUMNS": "80"}).out if columns == 200
           else check_in_a_terminal(db.url, columns))
    lines = out.splitlines()
    assert all(len(line) <= columns for line in lines), out
    assert ("detail" in lines[1]) == (columns >= 150)  # else the details follow as notes
    tokens = out.split()
    for detail in details:
        for word in detail.split():
            assert word in tokens, f"{word!r} split at {columns} columns:\n{out}"
    table = out.split("\n• ")[0]  # the names in the table itself, not in the notes below it
    pieces = {piece for token in table.split() for piece in token.split(".")}
    for r in report["sequences"]:
        shown = [f"{r['schema']}.{r['table']}.{r['column']}"] + ([r["sequence"]] if columns >= 120 else [])
        for name in shown:
            assert set(name.split(".")) <= pieces, f"{name!r} cut inside a word at {columns} columns:\n{out}"


def test_wrap_cell_breaks_at_spaces_then_dots_and_cuts_only_what_cannot_fit():
    from seqtui.output import wrap_cell

    assert wrap_cell("collides in 2 inserts: next value 1001 is free", 20) == [
        "collides in 2", "inserts: next value", "1001 is free"]
    assert wrap_cell("public.customer_invoices.id", 20) == ["public.", "customer_invoices.id"]
    assert wrap_cell("abcdefghij", 4) == ["abcd", "efgh", "ij"]
    assert wrap_cell("fits", 4) == ["fits"]
