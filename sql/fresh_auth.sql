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

SELECT tgt_profile.drop_client('fresh');
DROP ROLE regress_fresh_member;
DROP ROLE regress_fresh_group;
