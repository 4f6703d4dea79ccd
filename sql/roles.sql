-- roles.sql: least-privilege roles for the database users (run as an administrator
-- after the migrations). Placeholders, replaced by the caller (e.g. sed):
--   @DB@            the database (VC_MYSQL_DB)
--   @SINK_USER@     the user vc-sink connects as (VC_MYSQL_USER), must exist
--   @ANALYST_USER@  the analysts' user (VC_MYSQL_ANALYST_USER), must exist
--   @GATEWAY_USER@  the user vc-gateway connects as (its VC_MYSQL_USER), must exist
--   @AGGREGATOR_USER@  the user vc-aggregator connects as (its VC_MYSQL_USER), must exist
-- e.g.  sed -e 's/@DB@/vc/g' -e 's/@SINK_USER@/vc_sink/g' -e 's/@ANALYST_USER@/analyst/g' \
--           -e 's/@GATEWAY_USER@/vc_gateway/g' -e 's/@AGGREGATOR_USER@/vc_aggregator/g' \
--         sql/roles.sql | mariadb -u root
-- Re-runnable. Users and grants replicate to the readers.
--
-- vc_sink_writer may write exactly what vc-sink writes and read what it reads;
-- it cannot delete, change the schema, or touch the master data. Partition
-- maintenance runs as the procedure's definer (SQL SECURITY DEFINER), so the
-- sink only needs EXECUTE on it. The migrations are applied by an administrator,
-- not by the sink's user.

CREATE ROLE IF NOT EXISTS vc_sink_writer;
GRANT SELECT ON `@DB@`.streams TO vc_sink_writer;
GRANT SELECT, INSERT, UPDATE ON `@DB@`.current_viewers TO vc_sink_writer;
GRANT SELECT, INSERT, UPDATE ON `@DB@`.viewer_history TO vc_sink_writer;
GRANT SELECT, INSERT, UPDATE ON `@DB@`.daily_statistics TO vc_sink_writer;
GRANT SELECT, INSERT, UPDATE ON `@DB@`.user_sessions TO vc_sink_writer;
GRANT SELECT, INSERT, UPDATE ON `@DB@`.sink_offsets TO vc_sink_writer;
GRANT SELECT, INSERT, UPDATE ON `@DB@`.sink_checkpoints TO vc_sink_writer;
GRANT EXECUTE ON PROCEDURE `@DB@`.vc_partition_maintenance TO vc_sink_writer;

-- vc_gateway_reader reads exactly what vc-gateway reads (on a reader):
-- current_viewers (the fallback counts when Redis is down), streams and
-- categories (the web page's catalog: titles and category names),
-- viewer_history (the 5-minute rollups of the history endpoint). Nothing else,
-- no writes: users, sessions and the sink's bookkeeping stay out of reach.
CREATE ROLE IF NOT EXISTS vc_gateway_reader;
GRANT SELECT ON `@DB@`.current_viewers TO vc_gateway_reader;
GRANT SELECT ON `@DB@`.streams TO vc_gateway_reader;
GRANT SELECT ON `@DB@`.categories TO vc_gateway_reader;
GRANT SELECT ON `@DB@`.viewer_history TO vc_gateway_reader;

-- vc_aggregator_reader reads the streams' categories (for the per-category
-- rankings), nothing else.
CREATE ROLE IF NOT EXISTS vc_aggregator_reader;
GRANT SELECT ON `@DB@`.streams TO vc_aggregator_reader;

-- Analysts read everything in the database, on the readers, and write nothing.
CREATE ROLE IF NOT EXISTS vc_analyst;
GRANT SELECT, SHOW VIEW ON `@DB@`.* TO vc_analyst;

-- The users get exactly their role: what the bootstrap granted directly goes.
REVOKE ALL PRIVILEGES, GRANT OPTION FROM '@SINK_USER@'@'%';
GRANT vc_sink_writer TO '@SINK_USER@'@'%';
SET DEFAULT ROLE vc_sink_writer FOR '@SINK_USER@'@'%';

REVOKE ALL PRIVILEGES, GRANT OPTION FROM '@ANALYST_USER@'@'%';
GRANT vc_analyst TO '@ANALYST_USER@'@'%';
SET DEFAULT ROLE vc_analyst FOR '@ANALYST_USER@'@'%';

REVOKE ALL PRIVILEGES, GRANT OPTION FROM '@GATEWAY_USER@'@'%';
GRANT vc_gateway_reader TO '@GATEWAY_USER@'@'%';
SET DEFAULT ROLE vc_gateway_reader FOR '@GATEWAY_USER@'@'%';

REVOKE ALL PRIVILEGES, GRANT OPTION FROM '@AGGREGATOR_USER@'@'%';
GRANT vc_aggregator_reader TO '@AGGREGATOR_USER@'@'%';
SET DEFAULT ROLE vc_aggregator_reader FOR '@AGGREGATOR_USER@'@'%';
