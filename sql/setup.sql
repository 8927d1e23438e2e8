-- Helpers for the other tests (pg_regress runs them in one database).

-- try(stmt): run it, roll it back, and say 'ok (N rows)' or the SQLSTATE.
CREATE FUNCTION public.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE stmt;
	GET DIAGNOSTICS n = ROW_COUNT;
	RAISE EXCEPTION 'tgtp-rollback %', n;
EXCEPTION WHEN OTHERS THEN
	IF SQLERRM LIKE 'tgtp-rollback %' THEN
		RETURN 'ok (' || split_part(SQLERRM, ' ', 2) || ' rows)';
	END IF;
	RETURN SQLSTATE;
END
$$;

-- state(stmt): run it (keeping its effect) and say 'ok' or 'SQLSTATE: message'.
CREATE FUNCTION public.state(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
GRANT EXECUTE ON FUNCTION public.try(text), public.state(text) TO PUBLIC;
SELECT public.try('SELECT 1'), public.state('SELECT 1/0');
