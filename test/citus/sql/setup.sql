-- Helpers for the scenarios (one database, the extension distributed).
-- state(stmt): run it (keeping its effect) and say 'ok' or 'SQLSTATE: message',
-- a shard's name in the message shown as its table's (a constraint that a
-- shard's row violates is named by the shard).  It runs on the coordinator
-- (Citus delegates no call made inside a function): the scenarios use it
-- only for statements that are not calls of the extension.
CREATE FUNCTION public.state(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'relation "([a-z_]+)_[0-9]{6,}"', 'relation "\1"');
END
$$;
GRANT EXECUTE ON FUNCTION public.state(text) TO PUBLIC;
SELECT public.state('SELECT 1'), public.state('SELECT 1/0');
