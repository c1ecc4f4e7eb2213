"""The range a domain's CHECK constraints leave to an integer column (DESIGN fact 21), read from the
server's own rendering of them (pg_get_constraintdef), which is canonical: `CHECK ((VALUE <= 1000))`,
`CHECK (((VALUE >= 1) AND (VALUE <= 500)))`, `CHECK (((VALUE)::integer <= 300))` for a domain over a
domain, `'-5'::integer` for a negative constant.

Only comparisons of VALUE with an integer constant, joined by AND, are read as bounds. Anything else
(`VALUE % 2 = 0`, `OR`, `IN (...)`, a function) is not a range: it narrows nothing here, and the values
that matter (the next one, the one after a fix) are still asked of the server itself (probes.py)."""

from __future__ import annotations

import re

_INT_CAST = r"::(?:smallint|integer|bigint)"
_COMPARISON = re.compile(
    rf"^(?:VALUE|\(VALUE\){_INT_CAST})\s*(<=|<|>=|>|=)\s*(?:'(-?\d+)'{_INT_CAST}|(-?\d+)(?:{_INT_CAST})?)$")
_CHECK = re.compile(r"^CHECK \((.*)\)(?: NOT VALID)?$", re.S)

Bounds = tuple[int | None, int | None]  # (lowest, highest) value the CHECKs allow; None: no bound


def _strip(expr: str) -> str:
    """`(x)` -> `x` while the outer parentheses enclose the whole expression."""
    expr = expr.strip()
    while expr.startswith("(") and _closing(expr, 0) == len(expr) - 1:
        expr = expr[1:-1].strip()
    return expr


def _closing(expr: str, start: int) -> int:
    depth, quoted = 0, False
    for i in range(start, len(expr)):
        ch = expr[i]
        if ch == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _conjuncts(expr: str) -> list[str]:
    """The operands of a top-level AND chain (one item when there is none)."""
    expr = _strip(expr)
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(expr):
        ch = expr[i]
        if ch == "'":
            quoted = not quoted
        elif not quoted:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif depth == 0 and expr.startswith(" AND ", i):
                parts.append(expr[start:i])
                start = i = i + 5
                continue
        i += 1
    parts.append(expr[start:])
    if len(parts) == 1:
        return [expr]
    return [c for part in parts for c in _conjuncts(part)]


def _bounds_of(conjunct: str) -> Bounds:
    m = _COMPARISON.match(_strip(conjunct))
    if not m:
        return None, None
    op, value = m.group(1), int(m.group(2) if m.group(2) is not None else m.group(3))
    return {"<=": (None, value), "<": (None, value - 1), ">=": (value, None), ">": (value + 1, None),
            "=": (value, value)}[op]


def check_bounds(definitions: list[str] | tuple[str, ...]) -> Bounds:
    """The narrowest (lowest, highest) that every CHECK definition allows, from their comparisons of
    VALUE with constants; None where nothing bounds that side."""
    lo: int | None = None
    hi: int | None = None
    for definition in definitions:
        m = _CHECK.match(definition.strip())
        if not m:
            continue
        for conjunct in _conjuncts(m.group(1)):
            c_lo, c_hi = _bounds_of(conjunct)
            if c_lo is not None:
                lo = c_lo if lo is None else max(lo, c_lo)
            if c_hi is not None:
                hi = c_hi if hi is None else min(hi, c_hi)
    return lo, hi
