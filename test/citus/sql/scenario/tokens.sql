-- Tokens (from sql/tokens.sql and sql/authorize.sql): format, storage,
-- verification, regeneration, grace, expiry, revocation, authorize() with
-- require_auth on and off.  Every call of the extension is written
--     :BEGIN SELECT ... FROM tgt_profile.f('client', ...) ...; :COMMIT
-- which the driver makes a plain statement (delegated by Citus to the node
-- of the client's shard) or a transaction block (run on the coordinator).
-- Tokens, token ids and timestamps are never printed; the audit log is
-- read from the scenario's start (it outlives the clients, and the
-- scenario runs once per route).
SELECT now() AS t0 \gset
:BEGIN SELECT tgt_profile.create_client('c-tok'); :COMMIT
:BEGIN SELECT tgt_profile.create_client('c-tok2'); :COMMIT

-- Format: tgtp_ + 48 URL-safe characters; the hint is its first 9; only
-- the SHA-256 is stored.
:BEGIN SELECT token AS t1, token_id AS t1_id FROM tgt_profile.generate_token('c-tok') \gset
:COMMIT
SELECT :'t1' ~ '^tgtp_[A-Za-z0-9_-]{48}$' AS format_ok;
SELECT hint = left(:'t1', 9) AS hint_ok, state FROM tgt_profile.tokens
 WHERE client = 'c-tok' AND token_id = :t1_id;
SELECT token_hash = digest(:'t1', 'sha256') AS hash_matches_pgcrypto
  FROM tgt_profile.token_store WHERE client = 'c-tok' AND token_id = :t1_id;
SELECT expires_at = created_at + interval '90 days' AS default_ttl
  FROM tgt_profile.tokens WHERE client = 'c-tok' AND token_id = :t1_id;

:BEGIN SELECT tgt_profile.verify_token('c-tok', :'t1') AS good; :COMMIT
-- Bad input is false, never an error.
:BEGIN SELECT tgt_profile.verify_token('c-tok', '') AS empty; :COMMIT
:BEGIN SELECT tgt_profile.verify_token('c-tok', NULL) AS null_token; :COMMIT
:BEGIN SELECT tgt_profile.verify_token('c-tok', 'tgtx_' || substr(:'t1', 6)) AS wrong_prefix; :COMMIT
:BEGIN SELECT tgt_profile.verify_token('c-tok', overlay(:'t1' placing CASE WHEN substr(:'t1', 20, 1) = 'A' THEN 'B' ELSE 'A' END from 20 for 1)) AS one_changed; :COMMIT
:BEGIN SELECT tgt_profile.verify_token('c-tok', :'t1' || ' ') AS trailing_space; :COMMIT
:BEGIN SELECT tgt_profile.verify_token('c-tok2', :'t1') AS other_clients_token; :COMMIT
:BEGIN SELECT tgt_profile.verify_token('nope', :'t1') AS unknown_client; :COMMIT

-- Regeneration: the old token fails at once, the new one works.
:BEGIN SELECT token AS t2, token_id AS t2_id FROM tgt_profile.generate_token('c-tok', '1 day') \gset
:COMMIT
:BEGIN SELECT tgt_profile.verify_token('c-tok', :'t1') AS old; :COMMIT
:BEGIN SELECT tgt_profile.verify_token('c-tok', :'t2') AS new; :COMMIT
SELECT token_id = :t1_id AS is_t1, state FROM tgt_profile.tokens WHERE client = 'c-tok' ORDER BY token_id;

-- Rotation with grace: the old token stays valid until the grace ends.
:BEGIN SELECT token AS t3 FROM tgt_profile.generate_token('c-tok', '1 day', '1 hour') \gset
:COMMIT
:BEGIN SELECT tgt_profile.verify_token('c-tok', :'t2') AS old_in_grace; :COMMIT
:BEGIN SELECT tgt_profile.verify_token('c-tok', :'t3') AS new; :COMMIT
SELECT state, count(*) FROM tgt_profile.tokens WHERE client = 'c-tok' GROUP BY 1 ORDER BY 1;
-- the grace ends (moved to the past): the old token fails on the next call
UPDATE tgt_profile.token_store SET revoked_at = now() - interval '1 second'
 WHERE client = 'c-tok' AND token_id = :t2_id;
:BEGIN SELECT tgt_profile.verify_token('c-tok', :'t2') AS old_after_grace; :COMMIT

-- Expiry at the edge, judged by the clock.
:BEGIN SELECT token AS t4, token_id AS t4_id FROM tgt_profile.generate_token('c-tok', '1 day') \gset
:COMMIT
UPDATE tgt_profile.token_store SET expires_at = now() + interval '1 minute'
 WHERE client = 'c-tok' AND token_id = :t4_id;
:BEGIN SELECT tgt_profile.verify_token('c-tok', :'t4') AS just_before_expiry; :COMMIT
UPDATE tgt_profile.token_store SET expires_at = now() - interval '1 microsecond'
 WHERE client = 'c-tok' AND token_id = :t4_id;
:BEGIN SELECT tgt_profile.verify_token('c-tok', :'t4') AS just_past_expiry; :COMMIT
SELECT state FROM tgt_profile.tokens WHERE client = 'c-tok' AND token_id = :t4_id;

-- Durations: positive, within max_token_ttl; grace within [0, max].
:BEGIN SELECT tgt_profile.generate_token('c-tok', '0'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.generate_token('c-tok', '1 year 1 second'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.generate_token('c-tok', '1 day', '-1 second'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
UPDATE tgt_profile.settings SET max_token_ttl = '1 day', token_ttl = '1 hour' WHERE client = 'c-tok';
:BEGIN SELECT tgt_profile.generate_token('c-tok', '2 days'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT expires_at = now() + interval '1 hour' AS uses_token_ttl FROM tgt_profile.generate_token('c-tok'); :COMMIT

-- revoke_tokens: every valid token, counted; the revoked token fails at once.
:BEGIN SELECT token AS t5 FROM tgt_profile.generate_token('c-tok', '1 hour', '1 hour') \gset
:COMMIT
:BEGIN SELECT tgt_profile.verify_token('c-tok', :'t5') AS before_revoke; :COMMIT
:BEGIN SELECT tgt_profile.revoke_tokens('c-tok') AS revoked; :COMMIT
:BEGIN SELECT tgt_profile.revoke_tokens('c-tok') AS revoked_again; :COMMIT
:BEGIN SELECT tgt_profile.verify_token('c-tok', :'t5') AS after_revoke; :COMMIT
SELECT action, count(*) FROM tgt_profile.audit_log WHERE client = 'c-tok' AND at >= :'t0' GROUP BY 1 ORDER BY 1;

-- authorize(): while require_auth is off the argument is ignored.
:BEGIN SELECT token AS t6 FROM tgt_profile.generate_token('c-tok2') \gset
:COMMIT
:BEGIN SELECT token AS t6_other FROM tgt_profile.generate_token('c-tok') \gset
:COMMIT
:BEGIN SELECT tgt_profile.authorize('c-tok2', NULL) AS off_null; :COMMIT
:BEGIN SELECT tgt_profile.authorize('c-tok2', 'garbage') AS off_garbage; :COMMIT
:BEGIN SELECT tgt_profile.set_require_auth('c-tok2', true); :COMMIT
SELECT require_auth FROM tgt_profile.settings WHERE client = 'c-tok2';
-- on: the Bearer header, scheme case-insensitive, one or more spaces
:BEGIN SELECT tgt_profile.authorize('c-tok2', 'Bearer ' || :'t6') AS bearer; :COMMIT
:BEGIN SELECT tgt_profile.authorize('c-tok2', 'bearer   ' || :'t6') AS lower_case_spaces; :COMMIT
:BEGIN SELECT tgt_profile.authorize('c-tok2', NULL) AS no_header; :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.authorize('c-tok2', 'Basic ' || :'t6') AS basic; :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.authorize('c-tok2', 'Bearer tgtp_nope') AS malformed; :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.authorize('c-tok2', 'Bearer ' || :'t6_other') AS other_clients_token; :COMMIT
\echo :LAST_ERROR_SQLSTATE
-- a revoked token is refused with the same message
:BEGIN SELECT tgt_profile.revoke_tokens('c-tok2') AS revoked; :COMMIT
:BEGIN SELECT tgt_profile.authorize('c-tok2', 'Bearer ' || :'t6') AS revoked_token; :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.authorize('nope', 'Bearer x') AS unknown_client; :COMMIT
\echo :LAST_ERROR_SQLSTATE
-- off again: every call passes
:BEGIN SELECT tgt_profile.set_require_auth('c-tok2', false); :COMMIT
:BEGIN SELECT tgt_profile.authorize('c-tok2', NULL) AS off_again; :COMMIT
SELECT actor = current_user AS by_me, action, detail FROM tgt_profile.audit_log
 WHERE client = 'c-tok2' AND action = 'update_settings' AND at >= :'t0' ORDER BY at, id;

-- Errors.
:BEGIN SELECT tgt_profile.generate_token('nope'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.generate_token('Bad Code'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.revoke_tokens('nope'); :COMMIT
\echo :LAST_ERROR_SQLSTATE

-- Dropping a client removes its tokens; the audit log stays.
:BEGIN SELECT token AS t7 FROM tgt_profile.generate_token('c-tok') \gset
:COMMIT
:BEGIN SELECT tgt_profile.drop_client('c-tok'); :COMMIT
:BEGIN SELECT tgt_profile.verify_token('c-tok', :'t7') AS after_drop; :COMMIT
SELECT count(*) AS tokens_left FROM tgt_profile.token_store WHERE client = 'c-tok';
SELECT count(*) > 0 AS audit_kept FROM tgt_profile.audit_log WHERE client = 'c-tok' AND at >= :'t0';
:BEGIN SELECT tgt_profile.drop_client('c-tok2'); :COMMIT
