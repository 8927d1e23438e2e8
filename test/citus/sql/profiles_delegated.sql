-- scenario/profiles.sql, each call a plain statement: Citus delegates it to the worker
-- that holds the client's shard.
\set BEGIN ''
\set COMMIT ''
-- Citus adds a CONTEXT naming the node's port to errors of delegated calls;
-- a delegated call formats intervals with the worker's IntervalStyle, not
-- the one pg_regress sets in the session.
\set SHOW_CONTEXT never
SET intervalstyle = postgres;
\i sql/scenario/profiles.sql
