-- Benchmark fixtures (run by run-bench.sh as a superuser, with psql -v N=<profiles>).
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION pgcrypto SCHEMA public;
CREATE EXTENSION tgt_profile;
SELECT tgt_profile.create_client('c');
SELECT tgt_profile.create_client('other');

-- The baseline of part A and B: the same check in PL/pgSQL with pgcrypto.
-- No SET clause (it would cost a GUC save/restore per call), names qualified.
CREATE FUNCTION public.plpgsql_verify(c text, t text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN EXISTS (SELECT 1 FROM tgt_profile.token_store
				   WHERE client = c AND token_hash = public.digest(t, 'sha256')
					 AND expires_at > now() AND (revoked_at IS NULL OR revoked_at > now()));
END
$$;

-- One timed execution of a query returning a count: microseconds per call.
CREATE FUNCTION public.bench_once(q text, calls int, OUT us_per_call float8, OUT hits bigint)
LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
BEGIN
	t0 := clock_timestamp();
	EXECUTE q INTO hits;
	us_per_call := extract(epoch FROM clock_timestamp() - t0) * 1e6 / calls;
END
$$;

-- Part A: token texts, one per call (filled by COPY from tokens.pl).
CREATE TABLE public.bench_tokens (i int PRIMARY KEY, unknown text NOT NULL, malformed text NOT NULL);

-- Part C: a table of the same shape as tgt_profile.profiles (columns,
-- defaults, primary key, unique key), and the same rows in both.
CREATE TABLE public.bench_bare (LIKE tgt_profile.profiles INCLUDING ALL);
INSERT INTO tgt_profile.profiles (client, tnt_id, attributes, created_at, updated_at, last_seen_at)
SELECT 'c', 'visitor-' || i, jsonb_build_object('attr', 0), now(), now(), now()
  FROM generate_series(1, :N) i;
INSERT INTO public.bench_bare SELECT * FROM tgt_profile.profiles;
