-- Rows inserted + updated + deleted so far in each given table (over all its partitions, for a
-- partitioned parent, whose own counters stay zero; only parents pay for walking the partition tree:
-- for every table it doubled the cost of an idle refresh). Aborted inserts count too, so an INSERT that
-- failed with a duplicate key still marks its table as changed. Cumulative statistics reach this
-- view when the writing backend flushes them: usually within a second, at most about ten.
SELECT t.oid::int8,
       (CASE WHEN c.relkind = 'p'
             THEN (SELECT sum(pg_stat_get_tuples_inserted(p.relid) + pg_stat_get_tuples_updated(p.relid)
                              + pg_stat_get_tuples_deleted(p.relid))
                   FROM pg_partition_tree(t.oid) AS p)
             ELSE pg_stat_get_tuples_inserted(t.oid) + pg_stat_get_tuples_updated(t.oid)
                  + pg_stat_get_tuples_deleted(t.oid)
        END)::int8
FROM unnest(%s::oid[]) AS t(oid)
JOIN pg_class c ON c.oid = t.oid
