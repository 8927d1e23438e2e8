-- Clients and their settings (from sql/settings.sql): create_client,
-- set_require_auth, the settings columns changed by UPDATE as admin and as
-- an approver, their audit.  Calls written as in tokens.sql.
SELECT now() AS t0 \gset
:BEGIN SELECT tgt_profile.create_client('c-set1'); :COMMIT
SELECT client, require_auth, token_ttl, max_token_ttl, profile_lifetime, daily_row_limit,
	   created_by = current_user AS by_me, updated_by = current_user AS updated_by_me
  FROM tgt_profile.settings WHERE client = 'c-set1';
:BEGIN SELECT tgt_profile.create_client('c-set2', require_auth => true); :COMMIT
SELECT require_auth FROM tgt_profile.settings WHERE client = 'c-set2';
:BEGIN SELECT tgt_profile.create_client('c-set1'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.create_client('C-Set'); :COMMIT
\echo :LAST_ERROR_SQLSTATE

-- set_require_auth: takes effect on the next statement; audited.
:BEGIN SELECT tgt_profile.set_require_auth('c-set1', true); :COMMIT
SELECT require_auth FROM tgt_profile.settings WHERE client = 'c-set1';
:BEGIN SELECT tgt_profile.authorize('c-set1', NULL); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.set_require_auth('c-set1', false); :COMMIT
:BEGIN SELECT tgt_profile.authorize('c-set1', NULL) AS auth_off; :COMMIT
:BEGIN SELECT tgt_profile.set_require_auth('c-set1', NULL); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.set_require_auth('nope', true); :COMMIT
\echo :LAST_ERROR_SQLSTATE

-- Constraints refuse bad values, whichever role writes them.
SELECT stmt, public.state(stmt) AS result FROM (VALUES
	($$UPDATE tgt_profile.settings SET token_ttl = '0' WHERE client = 'c-set1'$$),
	($$UPDATE tgt_profile.settings SET token_ttl = '2 years' WHERE client = 'c-set1'$$),
	($$UPDATE tgt_profile.settings SET max_token_ttl = '1 day' WHERE client = 'c-set1'$$),
	($$UPDATE tgt_profile.settings SET profile_lifetime = '0' WHERE client = 'c-set1'$$),
	($$UPDATE tgt_profile.settings SET daily_row_limit = -1 WHERE client = 'c-set1'$$),
	($$UPDATE tgt_profile.settings SET require_auth = NULL WHERE client = 'c-set1'$$),
	($$UPDATE tgt_profile.settings SET max_token_ttl = '2 years', token_ttl = '18 months' WHERE client = 'c-set1'$$),
	($$UPDATE tgt_profile.settings SET daily_row_limit = 1000000 WHERE client = 'c-set1'$$)
) v(stmt);
SELECT token_ttl, max_token_ttl, daily_row_limit FROM tgt_profile.settings WHERE client = 'c-set1';
-- the new ttl is used by the next token
:BEGIN SELECT expires_at = now() + interval '18 months' AS uses_token_ttl FROM tgt_profile.generate_token('c-set1'); :COMMIT

-- Every change is audited with old and new values; a no-op update is not.
UPDATE tgt_profile.settings SET require_auth = require_auth WHERE client = 'c-set1';
SELECT action, detail FROM tgt_profile.audit_log
 WHERE client = 'c-set1' AND at >= :'t0' AND action <> 'generate_token' ORDER BY at, id;

-- An approver may change its client's settings but not the limits.
-- (LOGIN: a delegated call connects to the worker as the current role)
CREATE ROLE regress_c_set_appr LOGIN IN ROLE tgt_profile_approver;
:BEGIN SELECT tgt_profile.grant_approver('c-set1', 'regress_c_set_appr'); :COMMIT
SET ROLE regress_c_set_appr;
UPDATE tgt_profile.settings SET token_ttl = '30 days', profile_lifetime = '7 days', require_auth = true
 WHERE client = 'c-set1';
SELECT public.state($$UPDATE tgt_profile.settings SET max_token_ttl = '5 years' WHERE client = 'c-set1'$$) AS max_ttl;
SELECT public.state($$UPDATE tgt_profile.settings SET daily_row_limit = 5 WHERE client = 'c-set1'$$) AS row_limit;
SELECT public.state($$UPDATE tgt_profile.settings SET max_token_ttl = max_token_ttl WHERE client = 'c-set1'$$) AS same_limit;
UPDATE tgt_profile.settings SET token_ttl = '1 day' WHERE client = 'c-set2';  -- not its client: no row
:BEGIN SELECT tgt_profile.set_require_auth('c-set1', false); :COMMIT
:BEGIN SELECT tgt_profile.set_require_auth('c-set2', false); :COMMIT
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT client, token_ttl, profile_lifetime, require_auth, updated_by
  FROM tgt_profile.settings WHERE client LIKE 'c-set%' ORDER BY client;
SELECT actor, detail FROM tgt_profile.audit_log
 WHERE client = 'c-set1' AND action = 'update_settings' AND at >= :'t0' ORDER BY at, id;

:BEGIN SELECT tgt_profile.drop_client('c-set1'); :COMMIT
:BEGIN SELECT tgt_profile.drop_client('c-set2'); :COMMIT
:BEGIN SELECT tgt_profile.drop_client('c-set2'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS approvers_left FROM tgt_profile.approvers WHERE member = 'regress_c_set_appr';
DROP ROLE regress_c_set_appr;
SELECT action, count(*) FROM tgt_profile.audit_log
 WHERE client IN ('c-set1', 'c-set2') AND at >= :'t0' GROUP BY 1 ORDER BY 1;
