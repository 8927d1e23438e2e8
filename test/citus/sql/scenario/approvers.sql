-- Approvers (from sql/privileges.sql and sql/fresh_auth.sql): grant_approver,
-- revoke_approver, what an approver may call, and row-level security: an
-- approver role sees only its clients' rows (SET ROLE; a delegated call
-- and Citus's queries reach the workers as that role, hence LOGIN).
-- Calls written as in tokens.sql.
SELECT now() AS t0 \gset
CREATE ROLE regress_c_appr1 LOGIN IN ROLE tgt_profile_approver;
CREATE ROLE regress_c_appr2 LOGIN IN ROLE tgt_profile_approver;
CREATE ROLE regress_c_cadm LOGIN IN ROLE tgt_profile_approver;
:BEGIN SELECT tgt_profile.create_client('c-ap1'); :COMMIT
:BEGIN SELECT tgt_profile.create_client('c-ap2'); :COMMIT
:BEGIN SELECT tgt_profile.create_client('c-ap3'); :COMMIT
:BEGIN SELECT tgt_profile.grant_approver('c-ap1', 'regress_c_appr1'); :COMMIT
:BEGIN SELECT tgt_profile.grant_approver('c-ap2', 'regress_c_appr1'); :COMMIT
:BEGIN SELECT tgt_profile.grant_approver('c-ap3', 'regress_c_appr2'); :COMMIT
:BEGIN SELECT tgt_profile.grant_approver('c-ap1', 'regress_c_cadm', 'admin'); :COMMIT
-- idempotent
:BEGIN SELECT tgt_profile.grant_approver('c-ap1', 'regress_c_appr1'); :COMMIT
SELECT client, member, level, granted_by = current_user AS by_me FROM tgt_profile.approvers
 WHERE client LIKE 'c-ap%' ORDER BY 1, 2;

-- Row-level security: each approver sees its clients' rows only.
SET ROLE regress_c_appr1;
SELECT client FROM tgt_profile.settings ORDER BY 1;
SELECT client, member FROM tgt_profile.approvers ORDER BY 1, 2;
:BEGIN SELECT count(*) AS generated FROM tgt_profile.generate_token('c-ap1'); :COMMIT
:BEGIN SELECT count(*) AS generated FROM tgt_profile.generate_token('c-ap2'); :COMMIT
:BEGIN SELECT tgt_profile.generate_token('c-ap3'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
SELECT client, state FROM tgt_profile.tokens ORDER BY 1, 2;
:BEGIN SELECT tgt_profile.set_require_auth('c-ap1', true); :COMMIT
:BEGIN SELECT tgt_profile.set_require_auth('c-ap3', true); :COMMIT
\echo :LAST_ERROR_SQLSTATE
-- an approver grants nothing; direct writes are refused
:BEGIN SELECT tgt_profile.grant_approver('c-ap1', 'regress_c_appr2'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
SELECT public.state($$DELETE FROM tgt_profile.approvers WHERE client = 'c-ap1'$$) AS delete_approvers;
-- (another client's row is not seen: nothing changed)
SELECT public.state($$UPDATE tgt_profile.settings SET require_auth = false WHERE client = 'c-ap3'$$) AS other_client;
RESET ROLE;
SET ROLE regress_c_appr2;
SELECT client FROM tgt_profile.settings ORDER BY 1;
SELECT client, state FROM tgt_profile.tokens ORDER BY 1, 2;
:BEGIN SELECT tgt_profile.revoke_tokens('c-ap1'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A client admin (level admin) manages the approvers of its client only.
SET ROLE regress_c_cadm;
:BEGIN SELECT tgt_profile.grant_approver('c-ap1', 'regress_c_appr2'); :COMMIT
:BEGIN SELECT tgt_profile.grant_approver('c-ap2', 'regress_c_appr2'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
SELECT client, member, level FROM tgt_profile.approvers ORDER BY 1, 2;
RESET ROLE;
SET ROLE regress_c_appr2;
SELECT client FROM tgt_profile.settings ORDER BY 1;
:BEGIN SELECT tgt_profile.revoke_tokens('c-ap1') AS revoked; :COMMIT
RESET ROLE;

-- Revoked approval ends the rights at once.
:BEGIN SELECT tgt_profile.revoke_approver('c-ap2', 'regress_c_appr1'); :COMMIT
-- (terse: Citus adds the worker's address as DETAIL to a delegated call's NOTICE)
\set VERBOSITY terse
:BEGIN SELECT tgt_profile.revoke_approver('c-ap2', 'regress_c_appr1'); :COMMIT
\set VERBOSITY default
SET ROLE regress_c_appr1;
SELECT client FROM tgt_profile.settings ORDER BY 1;
:BEGIN SELECT tgt_profile.revoke_tokens('c-ap2'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- Argument errors.
:BEGIN SELECT tgt_profile.grant_approver('c-ap1', 'regress_c_appr2', 'owner'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.grant_approver('c-ap1', NULL); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.grant_approver('nope', 'regress_c_appr2'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.grant_approver('c-ap1', 'regress_c_no_such_role'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.revoke_approver('nope', 'regress_c_appr2'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
SELECT client, actor, action, detail->>'member' AS member FROM tgt_profile.audit_log
 WHERE client LIKE 'c-ap%' AND action LIKE '%approver' AND at >= :'t0' ORDER BY at, id;

-- Dropping the clients removes their approvers.
:BEGIN SELECT tgt_profile.drop_client('c-ap1'); :COMMIT
:BEGIN SELECT tgt_profile.drop_client('c-ap2'); :COMMIT
:BEGIN SELECT tgt_profile.drop_client('c-ap3'); :COMMIT
SELECT count(*) AS approvers_left FROM tgt_profile.approvers WHERE client LIKE 'c-ap%';
DROP ROLE regress_c_appr1, regress_c_appr2, regress_c_cadm;
