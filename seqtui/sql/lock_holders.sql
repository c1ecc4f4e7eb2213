-- Who holds (or is queued for) a lock that conflicts with the mode we asked for, on each of the
-- relations %(roots)s: on the relation itself, on its partitions and inheritance children (max() on
-- a parent reads them all), and on the indexes of any of them (max() reads through the index).
-- A waiting request counts too: a new lock request queues behind an earlier conflicting one.
-- pg_stat_activity hides state, times and query of other roles' sessions unless we have
-- pg_read_all_stats: they come back NULL ('<insufficient privilege>' for the query).
WITH RECURSIVE tree(root, rel) AS (
    SELECT r, r FROM unnest(%(roots)s::oid[]) AS r
  UNION
    SELECT t.root, i.inhrelid FROM tree t JOIN pg_catalog.pg_inherits i ON i.inhparent = t.rel
), rels AS (
    SELECT root, rel FROM tree
  UNION
    SELECT t.root, x.indexrelid FROM tree t JOIN pg_catalog.pg_index x ON x.indrelid = t.rel
)
SELECT DISTINCT ON (r.root, l.pid)
       r.root,
       l.relation::regclass::text,
       l.pid,
       l.mode,
       l.granted,
       a.usename,
       a.application_name,
       a.state,
       extract(epoch FROM clock_timestamp() - coalesce(a.xact_start, a.query_start))::float8,
       coalesce(a.xact_start, a.query_start),
       a.query
FROM rels r
JOIN pg_catalog.pg_locks l ON l.locktype = 'relation' AND l.relation = r.rel
     AND l.database IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))
LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid() AND l.mode = ANY(%(modes)s::text[])
ORDER BY r.root, l.pid, l.granted DESC
