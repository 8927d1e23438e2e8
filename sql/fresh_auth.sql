-- Authorization read fresh (DESIGN.md): expiry is judged by the clock, and
-- approver rights given to a group role hold for its members.  The races
-- (revocation during a statement, REPEATABLE READ, concurrent regeneration)
-- are isolation specs: fresh_authorization, client_races, old_schema.
SELECT tgt_profile.create_client('fresh', true);

-- A token that expires while a transaction is open fails in it: expiry is
-- compared with the clock, not with the transaction's start.
SELECT token AS short_tok FROM tgt_profile.generate_token('fresh', '2 seconds') \gset
BEGIN;
SELECT 1 AS transaction_started;
SELECT pg_sleep(2.5);
SELECT tgt_profile.verify_token('fresh', :'short_tok') AS valid_after_expiry;
SELECT public.state(format('SELECT tgt_profile.authorize(%L, %L)', 'fresh', 'Bearer ' || :'short_tok')) AS authorize;
COMMIT;

-- Group roles: rights granted to a NOLOGIN role hold for the roles that
-- have its privileges (INHERIT), as PostgreSQL's own privileges do.
CREATE ROLE regress_fresh_group NOLOGIN IN ROLE tgt_profile_approver;
CREATE ROLE regress_fresh_member LOGIN IN ROLE regress_fresh_group;
CREATE ROLE regress_fresh_noinherit LOGIN NOINHERIT IN ROLE regress_fresh_group;
SELECT tgt_profile.grant_approver('fresh', 'regress_fresh_group');
SET ROLE regress_fresh_member;
SELECT count(*) AS generated FROM tgt_profile.generate_token('fresh');
SELECT client FROM tgt_profile.settings;
SELECT public.state('SELECT tgt_profile.set_require_auth(''fresh'', true)') AS set_require_auth;
RESET ROLE;
-- without INHERIT the member has the group's privileges only after SET ROLE
SET ROLE regress_fresh_noinherit;
SELECT public.state('SELECT tgt_profile.revoke_tokens(''fresh'')') AS noinherit_revoke;
SET ROLE regress_fresh_group;
SELECT tgt_profile.revoke_tokens('fresh') AS group_revoked;
RESET ROLE;
-- the right ends with the grant
SELECT tgt_profile.revoke_approver('fresh', 'regress_fresh_group');
SET ROLE regress_fresh_member;
SELECT public.state('SELECT tgt_profile.revoke_tokens(''fresh'')') AS after_revoke_approver;
SELECT count(*) AS visible_settings FROM tgt_profile.settings;
RESET ROLE;
-- a grant to a role dropped since is ignored
SELECT tgt_profile.grant_approver('fresh', 'regress_fresh_noinherit');
DROP ROLE regress_fresh_noinherit;
SET ROLE regress_fresh_member;
SELECT public.state('SELECT tgt_profile.revoke_tokens(''fresh'')') AS dropped_grantee;
RESET ROLE;

-- Parallel queries: verify_token and the row-level security predicate are
-- PARALLEL SAFE; their fresh reads work in parallel workers too.
SELECT token AS par_tok FROM tgt_profile.generate_token('fresh') \gset
CREATE TABLE public.fresh_par (t text);
INSERT INTO public.fresh_par SELECT :'par_tok' FROM generate_series(1, 1000);
ANALYZE public.fresh_par;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
CREATE FUNCTION pg_temp.plan_has(q text, node text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
	l text;
BEGIN
	FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
		IF l LIKE '%' || node || '%' THEN
			RETURN true;
		END IF;
	END LOOP;
	RETURN false;
END
$$;
SELECT pg_temp.plan_has($$SELECT count(*) FILTER (WHERE tgt_profile.verify_token('fresh', t)) FROM public.fresh_par$$,
						'Parallel Seq Scan') AS parallel_plan;
SELECT count(*) FILTER (WHERE tgt_profile.verify_token('fresh', t)) AS valid FROM public.fresh_par;
SELECT tgt_profile.grant_approver('fresh', 'regress_fresh_group');
SET ROLE regress_fresh_member;
SELECT pg_temp.plan_has('SELECT client FROM tgt_profile.settings', 'Parallel') AS parallel_plan;
SELECT client FROM tgt_profile.settings;
RESET ROLE;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
DROP TABLE public.fresh_par;

SELECT tgt_profile.drop_client('fresh');
DROP ROLE regress_fresh_member;
DROP ROLE regress_fresh_group;
