-- A cheap fingerprint of everything discovery depends on: sequences, tables and their defaults,
-- sequence parameters, privileges (relacl), TRUNCATE (relfilenode) and domains' CHECKs (their bounds
-- narrow a column's capacity). Any DDL touching them rewrites
-- a catalog row and so changes its xmin; VACUUM and ANALYZE update pg_class in place and do not.
SELECT (SELECT count(*)::text || ':' || coalesce(sum(xmin::text::int8), 0)::text
          FROM pg_class WHERE relkind IN ('S', 'r', 'p'))
    || '/' || (SELECT count(*)::text || ':' || coalesce(sum(xmin::text::int8), 0)::text FROM pg_attrdef)
    || '/' || (SELECT count(*)::text || ':' || coalesce(sum(xmin::text::int8), 0)::text FROM pg_sequence)
    || '/' || (SELECT count(*)::text || ':' || coalesce(sum(xmin::text::int8), 0)::text
                 FROM pg_constraint WHERE contypid <> 0)
