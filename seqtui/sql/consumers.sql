-- Every column that draws from a user sequence (DESIGN fact 1), resolved through pg_depend and OIDs,
-- never by parsing default expressions:
--   * a DEFAULT calling nextval(): its pg_attrdef row depends on the sequence (serial, or no OWNED BY);
--   * OWNED BY (deptype 'a') and identity columns (deptype 'i'): the sequence depends on the column.
WITH uses AS (
    SELECT d.refobjid AS seq, ad.adrelid AS rel, ad.adnum AS attnum, 'default' AS via
    FROM pg_depend d
    JOIN pg_attrdef ad ON ad.oid = d.objid
    WHERE d.classid = 'pg_attrdef'::regclass
      AND d.refclassid = 'pg_class'::regclass
      AND d.refobjsubid = 0   -- the default's dependency on its own column has the column's attnum
    UNION ALL                 -- a column found twice (serial: default and OWNED BY) is folded by GROUP BY
    SELECT d.objid, d.refobjid, d.refobjsubid,
           CASE d.deptype WHEN 'i' THEN 'identity' ELSE 'owned' END
    FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass
      AND d.refclassid = 'pg_class'::regclass
      AND d.deptype IN ('a', 'i')
      AND d.refobjsubid > 0
)
SELECT u.seq::int8                                         AS seq_oid,
       t.oid::int8                                         AS table_oid,
       n.nspname                                           AS schema,
       t.relname                                           AS table,
       a.attname                                           AS column,
       a.attnum                                            AS attnum,
       format_type(CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE a.atttypid END, NULL)
                                                           AS column_type,
       bool_or(u.via = 'default')                          AS has_default,
       bool_or(u.via = 'owned')                            AS owned,
       a.attidentity                                       AS identity,
       t.relkind                                           AS relkind,
       t.relispartition                                    AS is_partition,
       CASE WHEN t.relispartition THEN pg_partition_root(t.oid)::int8 END AS partition_root,
       bool_or(ix.indrelid IS NOT NULL)                    AS indexed,
       has_schema_privilege(n.oid, 'USAGE')
         AND has_column_privilege(t.oid, a.attnum, 'SELECT') AS can_read,
       has_schema_privilege(n.oid, 'USAGE')
         AND (has_table_privilege(t.oid, 'UPDATE') OR has_table_privilege(t.oid, 'DELETE')
              OR has_table_privilege(t.oid, 'TRUNCATE'))   AS can_lock
FROM uses u
JOIN pg_class s ON s.oid = u.seq AND s.relkind = 'S'
JOIN pg_class t ON t.oid = u.rel AND t.relkind IN ('r', 'p')
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = u.attnum AND NOT a.attisdropped
JOIN pg_type ty ON ty.oid = a.atttypid
-- max(col) is an index lookup when a whole-table btree index leads with the column (one pass over
-- pg_index, joined: a correlated subquery per column cost ~0.1 s at 10,000 tables)
LEFT JOIN (SELECT DISTINCT i.indrelid, i.indkey[0] AS attnum
           FROM pg_index i
           JOIN pg_class ic ON ic.oid = i.indexrelid
           JOIN pg_am am ON am.oid = ic.relam
           WHERE i.indpred IS NULL AND am.amname = 'btree') AS ix
       ON ix.indrelid = t.oid AND ix.attnum = a.attnum
GROUP BY u.seq, t.oid, n.oid, n.nspname, t.relname, a.attname, a.attnum, a.atttypid, ty.typtype,
         ty.typbasetype, a.attidentity, t.relkind, t.relispartition
ORDER BY u.seq, n.nspname, t.relname, a.attnum
