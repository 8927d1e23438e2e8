-- Fixtures of bench-merge.sh, part P (psql, as a superuser): client 'm',
-- and the expert's tables of the same shape as the extension's.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SELECT tgt_profile.create_client('m');

-- Columns, defaults, primary keys and indexes (the partial unique index on
-- the third-party id included) as in tgt_profile.
CREATE TABLE public.merge_profiles (LIKE tgt_profile.profiles INCLUDING ALL);
CREATE TABLE public.merge_aliases (LIKE tgt_profile.aliases INCLUDING ALL);

-- Pair k: the anonymous profile anon-k (a pcId, no third-party id, three
-- attributes) and the customer's profile cust-k (third-party id crm-k,
-- three attributes; "campaign" on both sides, so that Q's value must win).
CREATE FUNCTION public.pair_rows(k0 bigint, n bigint)
	RETURNS TABLE (tnt_id text, third_party_id text, attributes jsonb)
LANGUAGE sql AS $$
	SELECT 'anon-' || k, NULL,
		   jsonb_build_object('visits', k % 50, 'campaign', 'spring', 'lastPage', '/p/' || k)
	  FROM generate_series(k0, k0 + n - 1) k
	UNION ALL
	SELECT 'cust-' || k, 'crm-' || k,
		   jsonb_build_object('tier', 'gold', 'campaign', 'winter', 'email', 'c' || k || '@example.com')
	  FROM generate_series(k0, k0 + n - 1) k
$$;

-- Pairs k0 .. k0+n-1, the same rows in both.
CREATE FUNCTION public.add_pairs(k0 bigint, n bigint) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO tgt_profile.profiles (client, tnt_id, third_party_id, attributes, created_at, updated_at, last_seen_at)
	SELECT 'm', r.tnt_id, r.third_party_id, r.attributes, now(), now(), now() FROM public.pair_rows(k0, n) r;
	INSERT INTO public.merge_profiles (client, tnt_id, third_party_id, attributes, created_at, updated_at, last_seen_at)
	SELECT 'm', r.tnt_id, r.third_party_id, r.attributes, now(), now(), now() FROM public.pair_rows(k0, n) r;
$$;

-- What pair k must hold once merged (the rule of issue 12: P's attributes,
-- Q's over them, then the call's), for the sanity check.
CREATE FUNCTION public.merged_attributes(k bigint) RETURNS jsonb
LANGUAGE sql AS $$
	SELECT jsonb_build_object('visits', k % 50, 'campaign', 'spring', 'lastPage', '/p/' || k)
		|| jsonb_build_object('tier', 'gold', 'campaign', 'winter', 'email', 'c' || k || '@example.com')
		|| jsonb_build_object('lastLogin', k)
$$;

-- The state of pairs k0 .. k1 in one table pair: one line per pair.
CREATE FUNCTION public.pair_state(profiles regclass, aliases regclass, k0 bigint, k1 bigint)
	RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE format(
		'SELECT k || '': anon '' || coalesce((SELECT ''exists'' FROM %1$s WHERE client = ''m'' AND tnt_id = ''anon-'' || k), ''gone'')
				|| '', alias -> '' || coalesce((SELECT tnt_id FROM %2$s WHERE client = ''m'' AND pc_id = ''anon-'' || k), ''none'')
				|| '', cust '' || coalesce((SELECT third_party_id || '' '' || attributes::text
											  FROM %1$s WHERE client = ''m'' AND tnt_id = ''cust-'' || k), ''missing'')
		   FROM generate_series($1, $2) k ORDER BY k', profiles, aliases)
		USING k0, k1;
END
$$;
