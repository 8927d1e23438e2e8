-- Clients and their settings.
SELECT tgt_profile.create_client('set-1');
SELECT client, require_auth, token_ttl, max_token_ttl, profile_lifetime, daily_row_limit,
	   created_by, updated_by
  FROM tgt_profile.settings WHERE client = 'set-1';
SELECT tgt_profile.create_client('set-2', require_auth => true);
SELECT require_auth FROM tgt_profile.settings WHERE client = 'set-2';

-- Client codes: ^[a-z0-9][a-z0-9_-]{0,63}$
SELECT c, public.state(format('SELECT tgt_profile.create_client(%L)', c)) AS result
  FROM (VALUES ('0'), ('a_b-c'), (repeat('x', 64)), (repeat('x', 65)), (''), ('-a'), ('_a'),
			   ('A'), ('a b'), ('a.b'), ('ä'), (NULL), ('set-1')) v(c);
SELECT tgt_profile.drop_client(c) FROM (VALUES ('0'), ('a_b-c'), (repeat('x', 64))) v(c);
SELECT public.state($$SELECT tgt_profile.drop_client('nope')$$) AS drop_unknown;
SELECT public.state($$SELECT tgt_profile.drop_client(NULL)$$) AS drop_null;

-- Constraints refuse bad values, whichever role writes them.
SELECT stmt, public.state(stmt) AS result FROM (VALUES
	($$UPDATE tgt_profile.settings SET token_ttl = '0' WHERE client = 'set-1'$$),
	($$UPDATE tgt_profile.settings SET token_ttl = '-1 day' WHERE client = 'set-1'$$),
	($$UPDATE tgt_profile.settings SET token_ttl = '2 years' WHERE client = 'set-1'$$),
	($$UPDATE tgt_profile.settings SET max_token_ttl = '1 day' WHERE client = 'set-1'$$),
	($$UPDATE tgt_profile.settings SET max_token_ttl = '0' WHERE client = 'set-1'$$),
	($$UPDATE tgt_profile.settings SET max_token_ttl = '101 years' WHERE client = 'set-1'$$),
	($$UPDATE tgt_profile.settings SET profile_lifetime = '0' WHERE client = 'set-1'$$),
	($$UPDATE tgt_profile.settings SET daily_row_limit = -1 WHERE client = 'set-1'$$),
	($$UPDATE tgt_profile.settings SET require_auth = NULL WHERE client = 'set-1'$$),
	($$UPDATE tgt_profile.settings SET client = 'set-9' WHERE client = 'set-1'$$),
	($$UPDATE tgt_profile.settings SET max_token_ttl = '2 years', token_ttl = '18 months' WHERE client = 'set-1'$$),
	($$UPDATE tgt_profile.settings SET daily_row_limit = 1000000 WHERE client = 'set-1'$$),
	($$UPDATE tgt_profile.settings SET daily_row_limit = NULL WHERE client = 'set-1'$$)
) v(stmt);
SELECT token_ttl, max_token_ttl, daily_row_limit FROM tgt_profile.settings WHERE client = 'set-1';

-- Every change is audited with old and new values; a no-op update is not.
UPDATE tgt_profile.settings SET require_auth = require_auth WHERE client = 'set-1';
SELECT action, detail FROM tgt_profile.audit_log WHERE client = 'set-1' ORDER BY id;

-- An approver may change its client's settings but not the limits.
CREATE ROLE regress_set_appr IN ROLE tgt_profile_approver;
SELECT tgt_profile.grant_approver('set-1', 'regress_set_appr');
SET ROLE regress_set_appr;
UPDATE tgt_profile.settings SET token_ttl = '30 days', profile_lifetime = '7 days', require_auth = true
 WHERE client = 'set-1';
SELECT public.state($$UPDATE tgt_profile.settings SET max_token_ttl = '5 years' WHERE client = 'set-1'$$) AS max_ttl;
SELECT public.state($$UPDATE tgt_profile.settings SET daily_row_limit = 5 WHERE client = 'set-1'$$) AS row_limit;
SELECT public.state($$UPDATE tgt_profile.settings SET created_by = 'me' WHERE client = 'set-1'$$) AS created_by;
-- setting a limit to its current value is not a change
SELECT public.state($$UPDATE tgt_profile.settings SET max_token_ttl = max_token_ttl WHERE client = 'set-1'$$) AS same_limit;
UPDATE tgt_profile.settings SET token_ttl = '1 day' WHERE client = 'set-2';  -- not its client: no row
RESET ROLE;
SELECT client, token_ttl, profile_lifetime, require_auth, updated_by
  FROM tgt_profile.settings ORDER BY client;
SELECT actor, detail FROM tgt_profile.audit_log
 WHERE client = 'set-1' AND action = 'update_settings' ORDER BY id DESC LIMIT 1;

SELECT tgt_profile.drop_client('set-1');
SELECT tgt_profile.drop_client('set-2');
SELECT count(*) AS approvers_left FROM tgt_profile.approvers WHERE member = 'regress_set_appr';
DROP ROLE regress_set_appr;
SELECT action, count(*) FROM tgt_profile.audit_log WHERE client IN ('set-1', 'set-2') GROUP BY 1 ORDER BY 1;
