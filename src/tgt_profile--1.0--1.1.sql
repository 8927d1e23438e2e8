/* tgt_profile 1.0 -> 1.1 */

\echo Use "ALTER EXTENSION tgt_profile UPDATE TO '1.1'" to load this file. \quit

-- 1.1: client_stats, one row per client to monitor (profiles, tokens, today's
-- batch rows against the daily quota).  security_invoker: each role sees the
-- clients that row-level security shows it.
CREATE VIEW tgt_profile.client_stats WITH (security_invoker = true) AS
	SELECT s.client,
		   (SELECT pg_catalog.count(*) FROM tgt_profile.profiles p
			 WHERE p.client OPERATOR(pg_catalog.=) s.client) AS profiles,
		   (SELECT pg_catalog.count(*) FROM tgt_profile.tokens t
			 WHERE t.client OPERATOR(pg_catalog.=) s.client
			   AND t.state OPERATOR(pg_catalog.=) ANY (ARRAY['active', 'grace'])) AS valid_tokens,
		   (SELECT COALESCE(pg_catalog.sum(b.rows_total), 0) FROM tgt_profile.batches b
			 WHERE b.client OPERATOR(pg_catalog.=) s.client
			   AND b.submitted_at OPERATOR(pg_catalog.>=)
				   (pg_catalog.date_trunc('day', pg_catalog.now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'))::bigint
			   AS rows_today,
		   s.daily_row_limit,
		   (SELECT pg_catalog.max(b.submitted_at) FROM tgt_profile.batches b
			 WHERE b.client OPERATOR(pg_catalog.=) s.client) AS last_batch_at
	  FROM tgt_profile.settings s;
COMMENT ON VIEW tgt_profile.client_stats IS 'Per client: profiles, valid tokens, batch rows today against daily_row_limit, last batch';
REVOKE ALL ON tgt_profile.client_stats FROM PUBLIC;
GRANT SELECT ON tgt_profile.client_stats TO tgt_profile_admin, tgt_profile_approver;

-- Every change of token_store tells the backends' token caches (tokens.c).
CREATE FUNCTION tgt_profile.token_store_changed()
	RETURNS trigger
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'tgtp_token_store_changed';
REVOKE ALL ON FUNCTION tgt_profile.token_store_changed() FROM PUBLIC;
CREATE TRIGGER token_store_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON tgt_profile.token_store
	FOR EACH STATEMENT EXECUTE FUNCTION tgt_profile.token_store_changed();
