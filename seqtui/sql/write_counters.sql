-- Rows inserted + updated + deleted so far in each given table. Plain tables and partitioned parents
-- come as two arrays (discovery knows which is which), so no catalog row is looked up per table: at
-- 10,000 tables the join to pg_class cost as much as the counters themselves. A parent's own counters
-- stay zero: its count is the sum over its partition tree. Aborted inserts count too, so an INSERT that
-- failed with a duplicate key still marks its table as changed. Cumulative statistics reach these
-- functions when the writing backend flushes them: usually within a second, at most about ten.
SELECT t.oid::int8,
       (pg_stat_get_tuples_inserted(t.oid) + pg_stat_get_tuples_updated(t.oid)
        + pg_stat_get_tuples_deleted(t.oid))::int8
FROM unnest(%(tables)s::oid[]) AS t(oid)
UNION ALL
SELECT t.oid::int8,
       (SELECT coalesce(sum(pg_stat_get_tuples_inserted(p.relid) + pg_stat_get_tuples_updated(p.relid)
                            + pg_stat_get_tuples_deleted(p.relid)), 0)
        FROM pg_partition_tree(t.oid) AS p)::int8
FROM unnest(%(parents)s::oid[]) AS t(oid)
