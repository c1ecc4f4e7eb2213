-- The databases `--all` visits, as vacuumdb --all does: those that accept connections, templates
-- aside. has_database_privilege tells which ones this role may not enter (no CONNECT), so that they
-- are reported as such instead of tried and refused.
SELECT datname::text,
       has_database_privilege(oid, 'CONNECT') AS may_connect
  FROM pg_catalog.pg_database
 WHERE datallowconn AND NOT datistemplate
 ORDER BY datname
