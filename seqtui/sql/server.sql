-- Who and where we are, and whether this server can take writes (DESIGN fact 11).
SELECT current_database()                              AS name,
       current_user                                    AS user,
       current_setting('server_version')               AS server_version,
       current_setting('server_version_num')::int      AS server_version_num,
       pg_is_in_recovery()                             AS in_recovery,
       current_setting('transaction_read_only') = 'on' AS read_only
