-- Rows inserted + updated + deleted so far in each given table (over all its partitions, for a
-- partitioned parent, whose own counters stay zero). Aborted inserts count too, so an INSERT that
-- failed with a duplicate key still marks its table as changed. Cumulative statistics reach this
-- view when the writing backend flushes them: usually within a second, at most about ten.
SELECT t.oid::int8,
       sum(pg_stat_get_tuples_inserted(p.relid) + pg_stat_get_tuples_updated(p.relid)
           + pg_stat_get_tuples_deleted(p.relid))::int8
FROM unnest(%s::oid[]) AS t(oid)
CROSS JOIN LATERAL (SELECT t.oid AS relid UNION SELECT relid FROM pg_partition_tree(t.oid)) AS p
GROUP BY t.oid
