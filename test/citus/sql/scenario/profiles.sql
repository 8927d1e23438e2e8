-- The profile API (from sql/profiles.sql): upsert_profile, get_profile,
-- delete_profile, purge_expired, under require-auth too.  Every call is
-- written ":BEGIN SELECT ... tgt_profile.f('client', ...) ...; :COMMIT"
-- (see tokens.sql); timestamps and generated tnt_ids are never printed.
:BEGIN SELECT tgt_profile.create_client('c-web'); :COMMIT

-- Create, then merge: named attributes set, JSON null removes, others kept.
:BEGIN SELECT * FROM tgt_profile.upsert_profile('c-web', '{"tier": "gold", "visits": 3, "vip": true}', pc_id => 'p1'); :COMMIT
:BEGIN SELECT * FROM tgt_profile.upsert_profile('c-web', '{"tier": "gold", "visits": 3, "vip": true}', pc_id => 'p1'); :COMMIT
:BEGIN SELECT * FROM tgt_profile.upsert_profile('c-web', '{"visits": 4, "city": "Basel", "vip": null}', pc_id => 'p1'); :COMMIT
:BEGIN SELECT p - 'createdAt' - 'updatedAt' - 'lastSeenAt' AS profile FROM tgt_profile.get_profile('c-web', 'p1') p; :COMMIT
:BEGIN SELECT jsonb_typeof(p->'profile'->'visits') AS visits, (p->>'createdAt')::timestamptz <= (p->>'updatedAt')::timestamptz AS times_ordered FROM tgt_profile.get_profile('c-web', 'p1') p; :COMMIT
-- removing an absent attribute or setting the same value changes nothing
:BEGIN SELECT status FROM tgt_profile.upsert_profile('c-web', '{"vip": null, "tier": "gold"}', pc_id => 'p1'); :COMMIT
-- numbers keep their text: 4 and 4.0 differ
:BEGIN SELECT status FROM tgt_profile.upsert_profile('c-web', '{"visits": 4.0}', pc_id => 'p1'); :COMMIT
:BEGIN SELECT p->'profile'->'visits' AS visits FROM tgt_profile.get_profile('c-web', 'p1') p; :COMMIT

-- '{}' registers a profile.
:BEGIN SELECT * FROM tgt_profile.upsert_profile('c-web', '{}', pc_id => 'p2'); :COMMIT
:BEGIN SELECT p->'profile' AS empty_profile FROM tgt_profile.get_profile('c-web', 'p2') p; :COMMIT

-- By third-party id alone: a new profile gets an opaque tnt_id.
:BEGIN SELECT tnt_id AS gen_id, status FROM tgt_profile.upsert_profile('c-web', '{"tier": "silver"}', third_party_id => 'crm-1') \gset
:COMMIT
SELECT :'status' AS status, :'gen_id' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' AS opaque_uuid;
:BEGIN SELECT tnt_id = :'gen_id' AS same_profile, status FROM tgt_profile.upsert_profile('c-web', '{"tier": "bronze"}', third_party_id => 'crm-1'); :COMMIT
:BEGIN SELECT p->>'tntId' = :'gen_id' AS found, p->>'thirdPartyId' AS tpid, p->'profile' AS profile FROM tgt_profile.get_profile('c-web', third_party_id => 'crm-1') p; :COMMIT

-- By both: links the third-party id to the pcId profile.
:BEGIN SELECT * FROM tgt_profile.upsert_profile('c-web', '{"linked": true}', pc_id => 'p2', third_party_id => 'crm-2'); :COMMIT
:BEGIN SELECT p->>'tntId' AS by_tpid FROM tgt_profile.get_profile('c-web', third_party_id => 'crm-2') p; :COMMIT
:BEGIN SELECT * FROM tgt_profile.upsert_profile('c-web', '{"linked": true}', pc_id => 'p2', third_party_id => 'crm-2'); :COMMIT
-- a third-party id of another profile: 23505, nothing changes
:BEGIN SELECT * FROM tgt_profile.upsert_profile('c-web', '{"x": 1}', pc_id => 'p1', third_party_id => 'crm-2'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT * FROM tgt_profile.upsert_profile('c-web', '{"x": 1}', pc_id => 'p2', third_party_id => 'crm-9'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS profiles, count(*) FILTER (WHERE attributes ? 'x') AS with_x
  FROM tgt_profile.profiles WHERE client = 'c-web';
:BEGIN SELECT p IS NOT NULL AS same FROM tgt_profile.get_profile('c-web', 'p2', 'crm-2') p; :COMMIT
:BEGIN SELECT p IS NULL AS different FROM tgt_profile.get_profile('c-web', 'p2', 'crm-1') p; :COMMIT
:BEGIN SELECT p IS NULL AS unknown FROM tgt_profile.get_profile('c-web', 'nobody') p; :COMMIT

-- Bad arguments: 22023.
:BEGIN SELECT * FROM tgt_profile.upsert_profile('c-web', '{"nested": {"a": 1}}', 'p-bad'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT * FROM tgt_profile.upsert_profile('c-web', '[1, 2]', 'p-bad'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT * FROM tgt_profile.upsert_profile('c-web', '{"pcId": "x"}', 'p-bad'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT * FROM tgt_profile.upsert_profile('c-web', '{}'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT * FROM tgt_profile.upsert_profile('nope', '{}', 'p1'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.get_profile('c-web'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT p->'profile' AS unchanged_after_errors FROM tgt_profile.get_profile('c-web', 'p1') p; :COMMIT

-- Expiry: purge_expired removes the profiles unseen for profile_lifetime.
UPDATE tgt_profile.profiles SET last_seen_at = now() - interval '15 days'
 WHERE client = 'c-web' AND tnt_id = 'p2';
:BEGIN SELECT tgt_profile.purge_expired('c-web') AS purged; :COMMIT
SELECT tnt_id = 'p1' AS is_p1, third_party_id FROM tgt_profile.profiles
 WHERE client = 'c-web' ORDER BY 1, 2;

-- Delete.
:BEGIN SELECT tgt_profile.delete_profile('c-web', 'p1') AS deleted; :COMMIT
:BEGIN SELECT tgt_profile.delete_profile('c-web', 'p1') AS again; :COMMIT
:BEGIN SELECT tgt_profile.delete_profile('c-web', third_party_id => 'crm-1') AS by_tpid; :COMMIT
:BEGIN SELECT tgt_profile.delete_profile('c-web'); :COMMIT
\echo :LAST_ERROR_SQLSTATE

-- Under require-auth every profile function checks authorize() first.
:BEGIN SELECT tgt_profile.set_require_auth('c-web', true); :COMMIT
:BEGIN SELECT token AS tok FROM tgt_profile.generate_token('c-web') \gset
:COMMIT
:BEGIN SELECT * FROM tgt_profile.upsert_profile('c-web', '{"a": 1}', 'p5'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.get_profile('c-web', 'p5'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.delete_profile('c-web', 'p5'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT * FROM tgt_profile.upsert_profile('c-web', '{"a": 1}', 'p5', NULL, 'Bearer tgtp_wrong'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT * FROM tgt_profile.upsert_profile('c-web', '{"a": 1}', 'p5', "authorization" => 'Bearer ' || :'tok'); :COMMIT
:BEGIN SELECT p->'profile' AS with_token FROM tgt_profile.get_profile('c-web', 'p5', "authorization" => 'Bearer ' || :'tok') p; :COMMIT
:BEGIN SELECT tgt_profile.revoke_tokens('c-web') AS revoked; :COMMIT
:BEGIN SELECT tgt_profile.get_profile('c-web', 'p5', "authorization" => 'Bearer ' || :'tok'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.set_require_auth('c-web', false); :COMMIT
:BEGIN SELECT tgt_profile.delete_profile('c-web', 'p5') AS deleted_auth_off; :COMMIT

-- Who may call: an API caller the profile functions, an approver not.
-- (LOGIN: a delegated call connects to the worker as the current role)
CREATE ROLE regress_c_prof_api LOGIN IN ROLE tgt_profile_api;
CREATE ROLE regress_c_prof_appr LOGIN IN ROLE tgt_profile_approver;
SET ROLE regress_c_prof_api;
:BEGIN SELECT status FROM tgt_profile.upsert_profile('c-web', '{"b": 2}', 'p6'); :COMMIT
:BEGIN SELECT p->'profile' AS api_reads FROM tgt_profile.get_profile('c-web', 'p6') p; :COMMIT
SELECT public.state('SELECT * FROM tgt_profile.profiles') AS api_table_read;
RESET ROLE;
SET ROLE regress_c_prof_appr;
:BEGIN SELECT status FROM tgt_profile.upsert_profile('c-web', '{}', 'p7'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE regress_c_prof_api, regress_c_prof_appr;

:BEGIN SELECT tgt_profile.drop_client('c-web'); :COMMIT
SELECT count(*) AS profiles_left FROM tgt_profile.profiles WHERE client = 'c-web';
