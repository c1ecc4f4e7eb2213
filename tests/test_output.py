"""`check`'s table stays readable from 80 columns up: names are never squeezed into slivers."""

from __future__ import annotations

from hypothesis import given, strategies as st
from rich.console import Console

from seqtui.connect import connect, resolve
from seqtui.output import CHECK_COLUMNS, COLUMN_GAP, check_notes, check_table, fit_widths
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
