"""A seeded generator of schema shapes for the differential oracle (tests/oracle.py).

Each Shape is the SQL that builds one sequence and the columns that draw from it, in a schema of its
own, with data, a sequence state and the privileges of a test role. The generator combines what real
databases combine (issue 18): serial, identity and bare `DEFAULT nextval` columns, shared sequences,
ascending and descending, custom START/MIN/MAX/INCREMENT, CYCLE, exhausted sequences, CACHE > 1,
partitions, inheritance, views with their own default, expression defaults, domains, int2/int4/int8,
sparse/dense/empty data, quoted names, row-level security and roles with partial privileges.

It knows nothing of seqtui: it only says which columns draw from the sequence and where a default
INSERT goes. What PostgreSQL does with them is asked of PostgreSQL itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from psycopg import sql

TYPE_RANGE = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1),
              "bigint": (-(2**63), 2**63 - 1)}
# Names that need quoting: capitals, spaces, quotes, dots, reserved words.
ODD_NAMES = ['Order', 'user', 'my table', 'a"b', 'x.y', 'Ünïcode', 'select', "it's"]


def q(*parts: str) -> str:
    """A quoted (schema-qualified) identifier, as psycopg renders it."""
    return sql.Identifier(*parts).as_string(None)


def lit(value) -> str:
    return sql.Literal(value).as_string(None)


@dataclass
class Consumer:
    """A column that draws from the shape's sequence: measured on (schema, table, column); a default
    INSERT goes to `insert_into` (the table itself, or the view that carries the default)."""

    schema: str
    table: str
    column: str
    insert_into: str        # quoted relation for INSERT ... DEFAULT VALUES
    unique: bool            # a unique index on the column alone covers the relation inserted into
    returning: str = ""     # the column's name in insert_into (a view may rename it)


@dataclass
class Shape:
    index: int
    schema: str
    sequence: str                     # quoted, schema-qualified
    tags: set[str] = field(default_factory=set)
    build: list[str] = field(default_factory=list)   # run by the superuser
    consumers: list[Consumer] = field(default_factory=list)
    expression: bool = False          # the default is not a bare nextval(): not comparable
    blind: set[str] = field(default_factory=set)  # why the role may honestly not judge some row


class _Gen:
    def __init__(self, rng: random.Random, index: int, role: str):
        self.rng, self.index, self.role = rng, index, role
        odd = rng.random() < 0.3
        self.schema = (rng.choice(ODD_NAMES) + f" {index}") if odd else f"s{index}"
        self.tags: set[str] = {"quoted"} if odd else set()
        self.build: list[str] = [f"CREATE SCHEMA {q(self.schema)}"]
        self.blind: set[str] = set()

    def name(self, base: str) -> str:
        if "quoted" in self.tags and self.rng.random() < 0.5:
            return self.rng.choice(ODD_NAMES) + " " + base
        return base

    def tag(self, *tags: str) -> None:
        self.tags.update(tags)


def _sequence_options(g: _Gen, seq_type: str) -> tuple[dict, str]:
    """Parameters of the sequence: (values, the options clause)."""
    rng = g.rng
    tlo, thi = TYPE_RANGE[seq_type]
    ascending = rng.random() < 0.8
    inc = rng.choice([1, 1, 1, 2, 3, 7]) * (1 if ascending else -1)
    if rng.random() < 0.5:  # a small custom range: bounds, exhaustion and CYCLE are reachable
        lo = rng.choice([1, 1, -40, 10, -1000])
        hi = lo + rng.choice([30, 60, 200, 1000])
        g.tag("custom_bounds")
    else:
        lo, hi = (1, thi) if ascending else (tlo, -1)
    start = lo if ascending else hi
    if rng.random() < 0.2:
        start = rng.randint(lo, hi)
    cycle = rng.random() < 0.2
    cache = rng.choice([1, 1, 1, 1, 5, 20])
    if not ascending:
        g.tag("descending")
    if cycle:
        g.tag("cycle")
    if cache > 1:
        g.tag("cache")
    opts = (f"INCREMENT BY {inc} MINVALUE {lo} MAXVALUE {hi} START WITH {start} "
            f"{'CYCLE' if cycle else 'NO CYCLE'} CACHE {cache}")
    return dict(inc=inc, lo=lo, hi=hi, start=start, cycle=cycle, ascending=ascending), opts


def _column_type(g: _Gen, fallback: str) -> tuple[str, tuple[int, int]]:
    """The consumer column's type and the values it accepts: an int type, or a domain over one."""
    rng = g.rng
    base = rng.choice(["smallint", "integer", "integer", "bigint", fallback])
    lo, hi = TYPE_RANGE[base]
    if base == "smallint":
        g.tag("int2")
    if rng.random() < 0.15:
        dom = q(g.schema, g.name("dom"))
        bound = rng.choice([50, 120, 3000])
        if rng.random() < 0.5:
            g.build.append(f"CREATE DOMAIN {dom} AS {base} CHECK (VALUE <= {bound})")
            hi = bound
        else:
            g.build.append(f"CREATE DOMAIN {dom} AS {base} CHECK (VALUE BETWEEN -{bound} AND {bound})")
            lo, hi = -bound, bound
        g.tag("domain")
        return dom, (lo, hi)
    return base, (lo, hi)


def _values(g: _Gen, lo: int, hi: int, ascending: bool) -> list[int]:
    """The ids already in the table: empty, dense from the start, sparse, or near the end of the range."""
    rng = g.rng
    mode = rng.choice(["empty", "dense", "dense", "sparse", "sparse", "top"])
    g.tag(mode)
    if mode == "empty" or hi < lo:
        return []
    n = min(rng.randint(1, 25), hi - lo + 1)
    span = min(hi - lo + 1, 400)
    if mode == "dense":
        return list(range(lo, lo + n)) if ascending else list(range(hi, hi - n, -1))
    if mode == "top":
        return list(range(hi - n + 1, hi + 1)) if ascending else list(range(lo, lo + n))
    window = range(lo, lo + span) if ascending else range(hi - span + 1, hi + 1)
    return sorted(rng.sample(window, n))


def _state(g: _Gen, seq: str, p: dict, values: list[int]) -> list[str]:
    """Put the sequence somewhere: untouched, behind or ahead of the data, at its bound."""
    rng = g.rng
    mode = rng.choice(["fresh", "behind", "behind", "ahead", "exact", "bound", "random"])
    g.tag("state_" + mode)
    lo, hi = p["lo"], p["hi"]
    extreme = (max(values) if p["ascending"] else min(values)) if values else None
    if mode == "fresh":
        return []
    if mode == "behind" and values:
        v = rng.choice(values)
    elif mode == "ahead" and extreme is not None:
        v = extreme + p["inc"] * rng.randint(1, 5)
    elif mode == "exact" and extreme is not None:
        v = extreme
    elif mode == "bound":
        v = hi if p["ascending"] else lo
        g.tag("exhausted" if not p["cycle"] else "cycle_at_bound")
        return [f"SELECT setval({lit(seq)}, {v}, true)"]
    else:
        v = rng.randint(lo, hi)
    v = min(max(v, lo), hi)
    return [f"SELECT setval({lit(seq)}, {v}, {lit(rng.random() < 0.8)})"]


def generate(seed: int, index: int, role: str) -> Shape:
    """One shape, the same for the same (seed, index)."""
    rng = random.Random(f"{seed}:{index}")
    g = _Gen(rng, index, role)
    kind = rng.choice(["serial", "identity always", "identity by default", "bare", "bare", "shared",
                       "expression"])
    layout = "plain"
    if kind in ("serial", "bare", "shared"):
        layout = rng.choice(["plain", "plain", "partitioned", "inheritance", "view"])
    g.tag(kind.replace(" ", "_"), layout)
    seq_type = rng.choice(["smallint", "integer", "bigint", "bigint"])
    p, opts = _sequence_options(g, seq_type)
    seq_name = g.name("seq")
    seq = q(g.schema, seq_name)
    col = g.name("id")
    shape = Shape(index=index, schema=g.schema, sequence=seq)

    if kind.startswith("identity"):
        ctype = seq_type
        (clo, chi) = TYPE_RANGE[ctype]
        how = "ALWAYS" if kind == "identity always" else "BY DEFAULT"
        table = g.name("t")
        g.build.append(f"CREATE TABLE {q(g.schema, table)} ({q(col)} {ctype} GENERATED {how} AS IDENTITY "
                       f"(SEQUENCE NAME {seq} {opts}) PRIMARY KEY, note text)")
        tables = [(table, Consumer(g.schema, table, col, q(g.schema, table), True))]
    else:
        g.build.append(f"CREATE SEQUENCE {seq} AS {seq_type} {opts}")
        ctype, (clo, chi) = _column_type(g, seq_type)
        if kind == "expression":
            ctype = rng.choice(["bigint", "text"])
            (clo, chi) = TYPE_RANGE["bigint"]
            default = rng.choice([f"nextval({lit(seq)}) * 10", f"nextval({lit(seq)}) + 1000"]) \
                if ctype == "bigint" else f"'INV-' || nextval({lit(seq)})"
            shape.expression = True
            g.blind.add("expression default")
        else:
            default = f"nextval({lit(seq)})"
        n_tables = 2 if kind == "shared" else 1
        tables = []
        for i in range(n_tables):
            table = g.name(f"t{i}")
            tables += _table(g, layout, table, col, ctype, default, shape)
        if kind == "serial" and layout != "view":
            g.build.append(f"ALTER SEQUENCE {seq} OWNED BY {q(g.schema, tables[0][0])}.{q(col)}")

    # Data: the ids already there, within what the sequence and the column both accept.
    lo, hi = max(p["lo"], clo), min(p["hi"], chi)
    override = "OVERRIDING SYSTEM VALUE " if kind == "identity always" else ""
    used: set[int] = set()
    for table, consumer in tables:
        if consumer is None:  # a partition: rows go in through its parent
            continue
        values = [v for v in _values(g, lo, hi, p["ascending"]) if v not in used]
        used.update(values)  # one id space: a child's rows are seen through its parent too
        if not values:
            continue
        data = (f"SELECT 'INV-' || v FROM unnest({lit(values)}::bigint[]) AS v" if ctype == "text"
                else f"SELECT unnest({lit(values)}::bigint[])")
        g.build.append(f"INSERT INTO {q(g.schema, table)} ({q(col)}) {override}{data}")
    g.build += _state(g, seq, p, sorted(used))
    _privileges(g, seq, [t for t, _ in tables], col)
    shape.tags, shape.build, shape.blind = g.tags, g.build, g.blind
    shape.consumers = [c for _, c in tables if c is not None]
    for c in shape.consumers:
        c.returning = c.returning or c.column
    return shape


def _table(g: _Gen, layout: str, table: str, col: str, ctype: str, default: str, shape: Shape):
    """The table(s) of one consumer in the given layout: [(relation, Consumer or None)]."""
    rng, s = g.rng, g.schema
    rel = q(s, table)
    if layout == "plain":
        g.build.append(f"CREATE TABLE {rel} ({q(col)} {ctype} DEFAULT {default} PRIMARY KEY, note text)")
        return [(table, Consumer(s, table, col, rel, True))]
    if layout == "partitioned":
        g.build.append(f"CREATE TABLE {rel} ({q(col)} {ctype} DEFAULT {default} PRIMARY KEY, note text) "
                       f"PARTITION BY RANGE ({q(col)})")
        g.build.append(f"CREATE TABLE {q(s, table + '_low')} PARTITION OF {rel} FOR VALUES FROM (MINVALUE) TO (0)")
        g.build.append(f"CREATE TABLE {q(s, table + '_rest')} PARTITION OF {rel} DEFAULT")
        return [(table, Consumer(s, table, col, rel, True)), (table + "_low", None), (table + "_rest", None)]
    if layout == "inheritance":
        child = table + "_child"
        child_unique = rng.random() < 0.5
        g.build.append(f"CREATE TABLE {rel} ({q(col)} {ctype} DEFAULT {default} PRIMARY KEY, note text)")
        g.build.append(f"CREATE TABLE {q(s, child)} ({'PRIMARY KEY (' + q(col) + ')' if child_unique else ''}) "
                       f"INHERITS ({rel})")
        return [(table, Consumer(s, table, col, rel, True)),
                (child, Consumer(s, child, col, q(s, child), child_unique))]
    # a view with its own DEFAULT over a base table without one; the view may rename the column
    view = table + "_v"
    vcol = rng.choice([col, col + "_v"])
    g.build.append(f"CREATE TABLE {rel} ({q(col)} {ctype} PRIMARY KEY, note text)")
    g.build.append(f"CREATE VIEW {q(s, view)} AS SELECT note, {q(col)} AS {q(vcol)} FROM {rel}")
    g.build.append(f"ALTER VIEW {q(s, view)} ALTER COLUMN {q(vcol)} SET DEFAULT {default}")
    return [(table, Consumer(s, table, col, q(s, view), True, vcol))]


def _privileges(g: _Gen, seq: str, tables: list[str], col: str) -> None:
    """What the test role may do: a random mix, as real grants are, sometimes ownership; and RLS."""
    rng, role, s = g.rng, q(g.role), g.schema
    if rng.random() < 0.5:  # half the shapes: what an application role usually has, so most rows are judged
        g.build += [f"GRANT USAGE ON SCHEMA {q(s)} TO {role}", f"GRANT SELECT, UPDATE ON SEQUENCE {seq} TO {role}",
                    *(f"GRANT SELECT, UPDATE ON {q(s, t)} TO {role}" for t in tables)]
        return
    if rng.random() < 0.95:
        g.build.append(f"GRANT USAGE ON SCHEMA {q(s)} TO {role}")
    else:
        g.tag("no_schema_usage")
        g.blind.add("no USAGE on the schema")
    seq_privs = rng.choice(["SELECT, UPDATE", "SELECT, UPDATE", "SELECT", "USAGE, UPDATE", "UPDATE", ""])
    if seq_privs:
        g.build.append(f"GRANT {seq_privs} ON SEQUENCE {seq} TO {role}")
    if seq_privs != "SELECT, UPDATE":
        g.tag("partial_privs")
    if "SELECT" not in seq_privs:
        g.blind.add("no SELECT on the sequence")
    for table in tables:
        rel = q(s, table)
        privs = rng.choice(["SELECT, UPDATE", "SELECT, UPDATE", "SELECT, UPDATE", "SELECT", "SELECT, TRUNCATE",
                            "OWNER", ""])
        if privs == "OWNER":
            g.build.append(f"ALTER TABLE {rel} OWNER TO {role}")
            g.tag("owner")
        elif privs:
            g.build.append(f"GRANT {privs} ON {rel} TO {role}")
        if privs not in ("SELECT, UPDATE", "OWNER"):
            g.tag("partial_privs")
        if not privs:
            g.blind.add("no SELECT on a table")
        if rng.random() < 0.15 and not table.endswith(("_low", "_rest")):
            g.build.append(f"ALTER TABLE {rel} ENABLE ROW LEVEL SECURITY")
            forced = rng.random() < 0.4
            if forced:
                g.build.append(f"ALTER TABLE {rel} FORCE ROW LEVEL SECURITY")
            if forced or privs != "OWNER":
                g.blind.add("row-level security")
            if rng.random() < 0.6:
                g.build.append(f"CREATE POLICY half ON {rel} FOR SELECT TO {role} USING ({q(col)}::text LIKE '%0')")
            g.tag("rls")
