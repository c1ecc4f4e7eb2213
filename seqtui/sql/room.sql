-- How big the database is, and how many more connections this role may open to it: whether the UI's
-- first scan may open a second connection unasked (tui/first_scan.py). The least of: the server's free
-- slots (those kept for superusers, and from PostgreSQL 16 for pg_use_reserved_connections, counted as
-- taken), the role's CONNECTION LIMIT and the database's, less the connections already using them. (A
-- connection refused for any of these leaves a FATAL line in the server's log: better not to try.)
WITH used AS (
    SELECT count(*) FILTER (WHERE backend_type = 'client backend')::int            AS server,
           count(*) FILTER (WHERE usename = current_user)::int                   AS role,
           count(*) FILTER (WHERE datname = current_database())::int             AS db
    FROM pg_catalog.pg_stat_activity
)
SELECT (SELECT count(*) FROM pg_catalog.pg_class WHERE relkind = 'S')::int AS sequences,
       LEAST(current_setting('max_connections')::int
               - current_setting('superuser_reserved_connections')::int
               - coalesce(current_setting('reserved_connections', true)::int, 0)
               - used.server,
             CASE WHEN r.rolconnlimit >= 0 THEN r.rolconnlimit - used.role END,
             CASE WHEN d.datconnlimit >= 0 THEN d.datconnlimit - used.db END)   AS free_slots,
       current_setting('max_connections')::int                              AS max_connections
FROM used, pg_catalog.pg_roles r, pg_catalog.pg_database d
WHERE r.rolname = current_user AND d.datname = current_database()
