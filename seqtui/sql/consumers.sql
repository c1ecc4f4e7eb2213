-- Every column that draws from a user sequence (DESIGN fact 1), resolved through pg_depend and OIDs,
-- never by parsing default expressions:
--   * a DEFAULT calling nextval(): its pg_attrdef row depends on the sequence (serial, or no OWNED BY);
--   * OWNED BY (deptype 'a') and identity columns (deptype 'i'): the sequence depends on the column;
--   * a view column with its own DEFAULT (fact 18): an INSERT through the view puts the value into the
--     base table's column, which is the consumer measured.
-- `bare`: the default is nextval() itself, possibly under casts (fact 19). Read from the stored
-- expression tree (pg_attrdef.adbin), not from its text: the top of the tree is a chain of cast
-- nodes (a cast function called as a cast, a relabel, a domain coercion) ending in the call of
-- nextval(regclass). `nextval('s') * 10` or `'X' || nextval('s')` store something else. The nodes
-- before the first nextval call are each checked with LIKE: a regular expression over the whole tree
-- cost 0.1 ms a default (0.3 s at 3,000 tables), LIKE on the few short pieces a twentieth of that.
WITH RECURSIVE defaults AS (
    SELECT d.refobjid AS seq, ad.adrelid AS rel, ad.adnum AS attnum, ad.adbin::text AS tree,
           strpos(ad.adbin::text, '{FUNCEXPR :funcid '
                  || 'pg_catalog.nextval(regclass)'::regprocedure::oid || ' ') AS call_at
    FROM pg_depend d
    JOIN pg_attrdef ad ON ad.oid = d.objid
    WHERE d.classid = 'pg_attrdef'::regclass
      AND d.refclassid = 'pg_class'::regclass
      AND d.refobjsubid = 0   -- the default's dependency on its own column has the column's attnum
),
uses AS (
    SELECT seq, rel, attnum, 'default' AS via,
           call_at = 1 OR (call_at > 1 AND NOT EXISTS (
               -- the nodes above the call, each opened by '{': casts only (:args then opens the next)
               SELECT FROM unnest(string_to_array(substr(tree, 2, call_at - 2), '{')) AS node
               WHERE NOT (node LIKE 'FUNCEXPR :funcid % :funcformat 1 %:args ('
                          OR node LIKE 'FUNCEXPR :funcid % :funcformat 2 %:args ('
                          OR node IN ('RELABELTYPE :arg ', 'COERCETODOMAIN :arg ')))) AS bare
    FROM defaults
    UNION ALL                 -- a column found twice (serial: default and OWNED BY) is folded by GROUP BY
    SELECT d.objid, d.refobjid, d.refobjsubid,
           CASE d.deptype WHEN 'i' THEN 'identity' ELSE 'owned' END, true
    FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass
      AND d.refclassid = 'pg_class'::regclass
      AND d.deptype IN ('a', 'i')
      AND d.refobjsubid > 0
),
-- A view's default, followed down to the table column it lands in. The view's query tree marks each
-- output column with the table and column it comes from (TargetEntry resorigtbl/resorigcol); only an
-- updatable column of an updatable view passes an INSERT's value down as it is. A view over a view is
-- followed again, a few levels at most.
via_views AS (
    SELECT u.seq, u.rel, u.attnum, u.bare, 0 AS depth
    FROM uses u
    JOIN pg_class v ON v.oid = u.rel AND v.relkind = 'v'
    UNION ALL
    SELECT w.seq, o.tbl, o.col, w.bare, w.depth + 1
    FROM via_views w
    JOIN pg_rewrite r ON r.ev_class = w.rel AND r.rulename = '_RETURN'
    CROSS JOIN LATERAL (
        SELECT m[1]::oid AS tbl, m[2]::int4 AS col
        FROM regexp_matches(r.ev_action::text,
                            ':resno ' || w.attnum || ' :resname (?:\\.|[^ \\])* :ressortgroupref \d+ '
                            ':resorigtbl (\d+) :resorigcol (\d+)', 'g') WITH ORDINALITY AS x(m, i)
        ORDER BY x.i DESC  -- the view's own target list comes after those of any subquery
        LIMIT 1) o
    WHERE w.depth < 8 AND o.tbl <> 0 AND pg_column_is_updatable(w.rel::regclass, w.attnum::int2, false)
),
all_uses AS (
    SELECT seq, rel, attnum, via, bare FROM uses
    UNION ALL
    SELECT seq, rel, attnum, 'view', bare FROM via_views WHERE depth > 0
),
me AS MATERIALIZED (
    SELECT rolsuper OR rolbypassrls AS bypass_rls FROM pg_roles WHERE rolname = current_user
)
SELECT u.seq::int8                                         AS seq_oid,
       t.oid::int8                                         AS table_oid,
       n.nspname                                           AS schema,
       t.relname                                           AS table,
       a.attname                                           AS column,
       a.attnum                                            AS attnum,
       -- a domain has the range of the integer type under it (fact 21), a domain over a domain too
       format_type(CASE WHEN ty.typtype = 'd' THEN (
                       WITH RECURSIVE base(oid, typtype, depth) AS (
                           SELECT ty.typbasetype, 'd'::"char", 0
                           UNION ALL
                           SELECT b.typbasetype, b.typtype, base.depth + 1
                           FROM base JOIN pg_type b ON b.oid = base.oid
                           WHERE b.typtype = 'd' AND base.depth < 8)
                       SELECT oid FROM base ORDER BY depth DESC LIMIT 1)
                   ELSE a.atttypid END, NULL)              AS column_type,
       bool_or(u.via = 'default')                          AS has_default,
       bool_or(u.via = 'owned')                            AS owned,
       a.attidentity                                       AS identity,
       t.relkind                                           AS relkind,
       t.relispartition                                    AS is_partition,
       CASE WHEN t.relispartition THEN pg_partition_root(t.oid)::int8 END AS partition_root,
       bool_or(ix.indrelid IS NOT NULL)                    AS indexed,
       has_schema_privilege(n.oid, 'USAGE')
         AND has_column_privilege(t.oid, a.attnum, 'SELECT') AS can_read,
       -- what LOCK TABLE ... IN EXCLUSIVE MODE asks for (fact 16): MAINTAIN counts from PostgreSQL 17.
       -- Before 13 the lock asks it of every partition and inheritance child too, as it recurses
       -- (the CASE runs that walk on 12 only).
       has_schema_privilege(n.oid, 'USAGE')
         AND CASE WHEN current_setting('server_version_num')::int >= 130000
                  THEN has_table_privilege(t.oid, 'UPDATE') OR has_table_privilege(t.oid, 'DELETE')
                       OR has_table_privilege(t.oid, 'TRUNCATE')
                       OR CASE WHEN current_setting('server_version_num')::int >= 170000
                               THEN has_table_privilege(t.oid, 'MAINTAIN') ELSE false END
                  ELSE NOT EXISTS (
                       WITH RECURSIVE locked(oid) AS (
                           SELECT t.oid
                           UNION
                           SELECT i.inhrelid FROM pg_inherits i JOIN locked l ON i.inhparent = l.oid)
                       SELECT FROM locked l
                       WHERE NOT (has_table_privilege(l.oid, 'UPDATE') OR has_table_privilege(l.oid, 'DELETE')
                                  OR has_table_privilege(l.oid, 'TRUNCATE'))) END AS can_lock,
       bool_and(u.bare)                                    AS bare,
       bool_or(u.via = 'view')                             AS via_view,
       -- a unique index on this column alone: a default INSERT fails when its value is already there
       coalesce(bool_or(ix.unique_key), false)             AS unique_key,
       -- the role sees only some rows (fact 15): max() would be a lower bound, "empty" a lie
       CASE WHEN t.relrowsecurity AND NOT (SELECT bypass_rls FROM me)
                 AND (t.relforcerowsecurity OR NOT pg_has_role(t.relowner, 'USAGE'))
            THEN current_user::text END                    AS rls_role,
       -- a domain's CHECK may narrow the base type's range: the values that matter are tried on the
       -- domain itself (catalog.probe_domains), so its name, schema-qualified
       CASE WHEN ty.typtype = 'd' THEN (SELECT ARRAY[tn.nspname::text, ty.typname::text]
                                        FROM pg_namespace tn WHERE tn.oid = ty.typnamespace) END AS domain,
       -- and its CHECKs and those of the domains under it, as the server renders them: their bounds
       -- narrow the capacity (domain_checks.py). NOT VALID ones too: they hold for new values.
       CASE WHEN ty.typtype = 'd' THEN (
           WITH RECURSIVE chain(oid, depth) AS (
               SELECT ty.oid, 0
               UNION ALL
               SELECT b.typbasetype, chain.depth + 1
               FROM chain JOIN pg_type b ON b.oid = chain.oid
               WHERE b.typtype = 'd' AND chain.depth < 8)
           SELECT array_agg(pg_get_constraintdef(c.oid))
           FROM chain JOIN pg_constraint c ON c.contypid = chain.oid AND c.contype = 'c') END AS domain_checks,
       -- inheritance children (or once: the flag is cleared by VACUUM only): max() counts their rows,
       -- which the table's own unique index does not cover (probes.py)
       t.relkind = 'r' AND t.relhassubclass                AS has_children
FROM all_uses u
JOIN pg_class s ON s.oid = u.seq AND s.relkind = 'S'
JOIN pg_class t ON t.oid = u.rel AND t.relkind IN ('r', 'p')
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = u.attnum AND NOT a.attisdropped
JOIN pg_type ty ON ty.oid = a.atttypid
-- max(col) is an index lookup when a whole-table btree index leads with the column (one pass over
-- pg_index, joined: a correlated subquery per column cost ~0.1 s at 10,000 tables)
LEFT JOIN (SELECT i.indrelid, i.indkey[0] AS attnum,
                  bool_or(i.indisunique AND i.indnkeyatts = 1) AS unique_key
           FROM pg_index i
           JOIN pg_class ic ON ic.oid = i.indexrelid
           JOIN pg_am am ON am.oid = ic.relam
           WHERE i.indpred IS NULL AND am.amname = 'btree'
           GROUP BY i.indrelid, i.indkey[0]) AS ix
       ON ix.indrelid = t.oid AND ix.attnum = a.attnum
GROUP BY u.seq, t.oid, n.oid, n.nspname, t.relname, a.attname, a.attnum, a.atttypid, ty.oid, ty.typtype,
         ty.typbasetype, ty.typnamespace, ty.typname, a.attidentity, t.relkind, t.relispartition, t.relrowsecurity,
         t.relforcerowsecurity, t.relowner, t.relhassubclass
ORDER BY u.seq, n.nspname, t.relname, a.attnum
