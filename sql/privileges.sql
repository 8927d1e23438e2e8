-- The role matrix: who may call what, who sees which rows, and that no
-- role writes our tables except through the functions.
CREATE ROLE regress_anon;
CREATE ROLE regress_api IN ROLE tgt_profile_api;
CREATE ROLE regress_appr_a IN ROLE tgt_profile_approver;
CREATE ROLE regress_cadm_a IN ROLE tgt_profile_approver;
CREATE ROLE regress_admin IN ROLE tgt_profile_admin;

SELECT tgt_profile.create_client('a');
SELECT tgt_profile.create_client('b');
SELECT tgt_profile.grant_approver('a', 'regress_appr_a');
SELECT tgt_profile.grant_approver('a', 'regress_cadm_a', 'admin');
SELECT tgt_profile.grant_approver('b', 'regress_admin');  -- harmless: admin sees all anyway

CREATE TEMP TABLE calls (n int, stmt text);
INSERT INTO calls VALUES
 (1,  $$SELECT tgt_profile.create_client('zz')$$),
 (2,  $$SELECT tgt_profile.drop_client('b')$$),
 (3,  $$SELECT tgt_profile.grant_approver('a', 'regress_anon')$$),
 (4,  $$SELECT tgt_profile.grant_approver('b', 'regress_anon')$$),
 (5,  $$SELECT tgt_profile.revoke_approver('a', 'regress_appr_a')$$),
 (6,  $$SELECT tgt_profile.set_require_auth('a', true)$$),
 (7,  $$SELECT tgt_profile.set_require_auth('b', true)$$),
 (8,  $$SELECT tgt_profile.generate_token('a')$$),
 (9,  $$SELECT tgt_profile.generate_token('b')$$),
 (10, $$SELECT tgt_profile.revoke_tokens('a')$$),
 (11, $$SELECT tgt_profile.revoke_tokens('b')$$),
 (12, $$SELECT tgt_profile.verify_token('a', 'tgtp_x')$$),
 (13, $$SELECT tgt_profile.authorize('a')$$),
 (14, $$UPDATE tgt_profile.settings SET token_ttl = '1 day' WHERE client = 'a'$$),
 (15, $$UPDATE tgt_profile.settings SET token_ttl = '1 day' WHERE client = 'b'$$),
 (16, $$UPDATE tgt_profile.settings SET max_token_ttl = '2 years' WHERE client = 'a'$$),
 (17, $$UPDATE tgt_profile.settings SET daily_row_limit = 10 WHERE client = 'a'$$),
 (18, $$INSERT INTO tgt_profile.settings (client) VALUES ('zz')$$),
 (19, $$DELETE FROM tgt_profile.settings WHERE client = 'a'$$),
 (20, $$TRUNCATE tgt_profile.audit_log$$),
 (21, $$INSERT INTO tgt_profile.token_store (client, token_hash, hint, created_at, created_by, expires_at) VALUES ('a', '\x00', 'x', now(), 'x', now())$$),
 (22, $$SELECT token_hash FROM tgt_profile.token_store$$),
 (23, $$UPDATE tgt_profile.profiles SET attributes = '{}'$$),
 (24, $$INSERT INTO tgt_profile.approvers VALUES ('a', 'regress_anon', 'admin', 'x', now())$$),
 (25, $$UPDATE tgt_profile.audit_log SET actor = 'nobody'$$),
 (26, $$SELECT * FROM tgt_profile.settings$$),
 (27, $$SELECT * FROM tgt_profile.tokens$$),
 (28, $$SELECT * FROM tgt_profile.approvers$$),
 (29, $$SELECT * FROM tgt_profile.audit_log$$),
 (30, $$SELECT tgt_profile.can_manage('a')$$);
GRANT SELECT ON calls TO PUBLIC;

-- one column per role; each cell is what that role got
SELECT n, stmt,
	   (SELECT r FROM (SELECT set_config('role', 'regress_anon', true)) s, LATERAL (SELECT public.try(stmt) r) x) AS anon,
	   (SELECT r FROM (SELECT set_config('role', 'regress_api', true)) s, LATERAL (SELECT public.try(stmt) r) x) AS api,
	   (SELECT r FROM (SELECT set_config('role', 'regress_appr_a', true)) s, LATERAL (SELECT public.try(stmt) r) x) AS approver_a,
	   (SELECT r FROM (SELECT set_config('role', 'regress_cadm_a', true)) s, LATERAL (SELECT public.try(stmt) r) x) AS client_admin_a,
	   (SELECT r FROM (SELECT set_config('role', 'regress_admin', true)) s, LATERAL (SELECT public.try(stmt) r) x) AS admin
  FROM calls ORDER BY n;

-- Row visibility, role by role.
SET ROLE regress_appr_a;
SELECT client FROM tgt_profile.settings ORDER BY 1;
SELECT client, member, level FROM tgt_profile.approvers ORDER BY 1, 2;
-- The caller is recorded as the actor, whichever path the change took.
SELECT tgt_profile.set_require_auth('a', true);
UPDATE tgt_profile.settings SET profile_lifetime = '30 days' WHERE client = 'a';
SELECT updated_by FROM tgt_profile.settings WHERE client = 'a';
SELECT actor, action, detail FROM tgt_profile.audit_log
 WHERE client = 'a' AND action = 'update_settings' ORDER BY id;
RESET ROLE;
SET ROLE regress_admin;
SELECT client FROM tgt_profile.settings ORDER BY 1;
RESET ROLE;

-- Inside another role's SECURITY DEFINER function the caller is that
-- function's owner (what a SECURITY INVOKER function would see).
CREATE FUNCTION public.regress_rotate_a() RETURNS bigint
	LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$SELECT token_id FROM tgt_profile.generate_token('a')$$;
ALTER FUNCTION public.regress_rotate_a() OWNER TO regress_appr_a;
GRANT EXECUTE ON FUNCTION public.regress_rotate_a() TO regress_api;
SET ROLE regress_api;
SELECT public.regress_rotate_a() > 0 AS rotated;
RESET ROLE;
SELECT actor, action FROM tgt_profile.audit_log
 WHERE client = 'a' AND action = 'generate_token' ORDER BY id DESC LIMIT 1;
SELECT created_by FROM tgt_profile.tokens WHERE client = 'a' AND state = 'active';
DROP FUNCTION public.regress_rotate_a();

-- An approver whose approval is revoked loses its rights at once.
SELECT tgt_profile.revoke_approver('a', 'regress_appr_a');
SELECT tgt_profile.revoke_approver('a', 'regress_appr_a');  -- idempotent
SET ROLE regress_appr_a;
SELECT public.try($$SELECT tgt_profile.generate_token('a')$$) AS after_revoke;
SELECT count(*) AS visible_settings FROM tgt_profile.settings;
RESET ROLE;

-- Argument errors.
SELECT tgt_profile.grant_approver('a', 'regress_anon', 'owner');
SELECT tgt_profile.grant_approver('a', NULL);
SELECT tgt_profile.grant_approver('nope', 'regress_anon');
SELECT tgt_profile.grant_approver('a', 'regress_no_such_role');
SELECT tgt_profile.revoke_approver('nope', 'regress_anon');

SELECT tgt_profile.drop_client('a');
SELECT tgt_profile.drop_client('b');
DROP ROLE regress_anon, regress_api, regress_appr_a, regress_cadm_a, regress_admin;
