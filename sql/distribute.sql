-- tgt_profile.distribute() on a single node without Citus: only an admin
-- may call it, and it refuses clearly (0A000) where Citus is absent; the
-- distributed behaviour is tested on a Citus cluster (test/citus).
CREATE ROLE regress_dist_anon;
CREATE ROLE regress_dist_api IN ROLE tgt_profile_api;
CREATE ROLE regress_dist_appr IN ROLE tgt_profile_approver;
CREATE ROLE regress_dist_admin IN ROLE tgt_profile_admin;

-- SECURITY DEFINER with a pinned search_path; EXECUTE for tgt_profile_admin only
SELECT p.oid::regprocedure, p.prosecdef, p.proconfig, p.proacl
  FROM pg_proc p WHERE p.proname = 'distribute'
   AND p.pronamespace = 'tgt_profile'::regnamespace;

-- Role by role: anyone but an admin gets 42501 before anything is looked at.
SELECT r.role,
	   (SELECT x FROM (SELECT set_config('role', r.role, true)) s,
			   LATERAL (SELECT public.state('SELECT tgt_profile.distribute()') x) y) AS result
  FROM (VALUES ('regress_dist_anon'), ('regress_dist_api'), ('regress_dist_appr'),
			   ('regress_dist_admin')) r(role);

-- No citus extension: 0A000 for the superuser and an admin alike, with
-- what to do.
SELECT public.state('SELECT tgt_profile.distribute()');
SELECT public.state('SELECT tgt_profile.distribute(8)');
SET ROLE regress_dist_admin;
SELECT public.state('SELECT tgt_profile.distribute()');
\set SHOW_CONTEXT never
SELECT tgt_profile.distribute();
RESET ROLE;
\set SHOW_CONTEXT errors

DROP ROLE regress_dist_anon, regress_dist_api, regress_dist_appr, regress_dist_admin;
