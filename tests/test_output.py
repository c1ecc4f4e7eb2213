"""`check`'s table stays readable from 80 columns up: names are never squeezed into slivers."""

from __future__ import annotations

from rich.console import Console

from seqtui.connect import connect, resolve
from seqtui.output import check_notes, check_table
from seqtui.scan import scan


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
    assert all(len(line) <= 80 for line in narrow.splitlines())
    assert "public.customer_invoices.id" in narrow  # on one line, not folded letter by letter
    assert "detail" not in narrow.splitlines()[2]
    assert check_notes(report) == ["public.customer_invoices.id: next value 1 is already used (highest id 42)."]
    wide = render(report, 200)
    assert "detail" in wide and "public.customer_invoices_id_seq" in wide
