-- scenario/settings.sql, each call inside BEGIN ... COMMIT: Citus delegates nothing
-- there, the call runs on the coordinator and reaches the shard through SQL.
\set BEGIN 'BEGIN;'
\set COMMIT 'COMMIT;'
-- Citus adds a CONTEXT naming the node's port to errors of delegated calls;
-- a delegated call formats intervals with the worker's IntervalStyle, not
-- the one pg_regress sets in the session.
\set SHOW_CONTEXT never
SET intervalstyle = postgres;
\i sql/scenario/settings.sql
