-- Every user sequence, with its parameters and what the current role may do with it.
-- One row per sequence; consumers come from consumers.sql. Both are single catalog queries.
SELECT c.oid::int8                                   AS oid,
       n.nspname                                     AS schema,
       c.relname                                     AS name,
       format_type(s.seqtypid, NULL)                 AS data_type,
       s.seqstart                                    AS start,
       s.seqmin                                      AS min_value,
       s.seqmax                                      AS max_value,
       s.seqincrement                                AS increment,
       s.seqcache                                    AS cache,
       s.seqcycle                                    AS cycle,
       has_schema_privilege(n.oid, 'USAGE')
         AND has_sequence_privilege(c.oid, 'SELECT') AS can_read,
       has_schema_privilege(n.oid, 'USAGE')
         AND has_sequence_privilege(c.oid, 'UPDATE') AS can_update,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified_name
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_sequence s ON s.seqrelid = c.oid
WHERE c.relkind = 'S'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp\_%'
ORDER BY n.nspname, c.relname
