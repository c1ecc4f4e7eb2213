-- How big the database is, and how many more connections the server takes from ordinary roles: whether
-- the UI's first scan may open a second connection unasked (tui/first_scan.py). Slots kept for
-- superusers (and, from PostgreSQL 16, for pg_use_reserved_connections) are not counted as free.
SELECT (SELECT count(*) FROM pg_catalog.pg_class WHERE relkind = 'S')::int AS sequences,
       current_setting('max_connections')::int
         - current_setting('superuser_reserved_connections')::int
         - coalesce(current_setting('reserved_connections', true)::int, 0)
         - (SELECT count(*) FROM pg_catalog.pg_stat_activity
            WHERE backend_type = 'client backend')::int                   AS free_slots,
       current_setting('max_connections')::int                              AS max_connections
