"""The differential oracle at scale: generated shapes judged by seqtui, then by PostgreSQL itself.

    python bench/oracle.py                     # 5,000 shapes on an embedded PostgreSQL 18
    python bench/oracle.py --shapes 500 --seed 7 --dsn postgresql://...   # another server (CREATEDB
                                                                         # and CREATEROLE needed)

Prints the number of disagreements per shape class (tests/shapes.py tags) and each disagreement.
The test suite runs the same oracle on a fixed seed set (tests/test_oracle.py); a shape that once
disagreed belongs there as a regression case.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import oracle  # noqa: E402  (tests/oracle.py)
from seqtui.embedded import EmbeddedServer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", type=int, default=5000)
    ap.add_argument("--per-database", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dsn", help="a server to use instead of an embedded one (superuser)")
    ap.add_argument("--show", type=int, default=30, help="disagreements to print in full")
    args = ap.parse_args()

    server = None
    if args.dsn:
        admin_url = args.dsn
    else:
        root = Path(tempfile.mkdtemp(prefix="seqtui-oracle-", dir="/var/tmp"))
        root.chmod(0o755)  # as root, the server runs as a system user of its own (seqtui/embedded.py)
        server = EmbeddedServer(root / "data", password="oracle-admin")
        server.init()
        server.start()
        admin_url = server.admin_url()
    tags, found, rows, unjudged, shapes = Counter(), [], 0, 0, 0
    started = time.monotonic()
    try:
        for first in range(0, args.shapes, args.per_database):
            count = min(args.per_database, args.shapes - first)
            name = f"oracle_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(admin_url, autocommit=True) as c:
                c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
            params = conninfo_to_dict(admin_url)
            params["dbname"] = name
            url = make_conninfo(**params)
            role = name + "_role"
            try:
                with psycopg.connect(url, autocommit=True) as admin:
                    oracle.create_role(admin, role)
                    try:
                        built = oracle.build(admin, role, args.seed, count, first)
                        for shape in built:
                            tags.update(shape.tags)
                        result = oracle.run(admin, url, role, built)
                    finally:
                        oracle.drop_role(admin, role)
            finally:
                with psycopg.connect(admin_url, autocommit=True) as c:
                    c.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
            found += result.disagreements
            rows, unjudged, shapes = rows + result.rows, unjudged + result.unjudged, shapes + count
            print(f"{shapes} shapes, {rows} rows, {len(found)} disagreements "
                  f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.stop("immediate")
    per_tag = Counter()
    for d in found:
        per_tag.update(d.shape.tags)
    print(f"shapes: {shapes}  rows: {rows}  not judged (with a reason): {unjudged}  "
          f"disagreements: {len(found)}  seed: {args.seed}")
    print(f"{'class':<22} {'shapes':>7} {'disagreements':>14}")
    for tag in sorted(tags):
        print(f"{tag:<22} {tags[tag]:>7} {per_tag.get(tag, 0):>14}")
    for d in found[:args.show]:
        print(f"- {d}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
