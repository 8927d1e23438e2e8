-- The single-profile API: upsert, get, delete, expiry.
SELECT tgt_profile.create_client('web');

-- Limits are settings (PGC_SUSET) with the documented defaults.
SELECT name, setting, unit, context FROM pg_settings
 WHERE name LIKE 'tgt\_profile.%' AND name <> 'tgt_profile.profile_partitions' ORDER BY 1;

-- Create, then merge: named attributes set, JSON null removes, others kept.
SELECT * FROM tgt_profile.upsert_profile('web', '{"tier": "gold", "visits": 3, "vip": true}', pc_id => 'p1');
SELECT * FROM tgt_profile.upsert_profile('web', '{"tier": "gold", "visits": 3, "vip": true}', pc_id => 'p1');
SELECT * FROM tgt_profile.upsert_profile('web', '{"visits": 4, "city": "Basel", "vip": null}', pc_id => 'p1');
SELECT tgt_profile.get_profile('web', 'p1') - 'createdAt' - 'updatedAt' - 'lastSeenAt' AS profile;
SELECT jsonb_typeof(p->'profile'->'visits') AS visits, jsonb_typeof(p->'profile'->'tier') AS tier,
	   (p->>'createdAt')::timestamptz <= (p->>'updatedAt')::timestamptz AS times_ordered
  FROM tgt_profile.get_profile('web', 'p1') p;
-- removing an attribute that is not there, or setting the same value, changes nothing
SELECT status FROM tgt_profile.upsert_profile('web', '{"vip": null, "tier": "gold"}', pc_id => 'p1');
-- numbers keep their text: 4 and 4.0 differ
SELECT status FROM tgt_profile.upsert_profile('web', '{"visits": 4.0}', pc_id => 'p1');
SELECT tgt_profile.get_profile('web', 'p1')->'profile'->'visits' AS visits;
-- later duplicate names win, as in jsonb
SELECT status FROM tgt_profile.upsert_profile('web', '{"a": 1, "a": 2}', pc_id => 'p1');
SELECT tgt_profile.get_profile('web', 'p1')->'profile'->'a' AS a;

-- several upserts of one profile in one statement: each merges on the last
SELECT i, u.status FROM generate_series(1, 3) i,
	LATERAL tgt_profile.upsert_profile('web', jsonb_build_object('n' || i, i), 'same-stmt') u ORDER BY i;
SELECT tgt_profile.get_profile('web', 'same-stmt')->'profile' AS same_stmt;
SELECT tgt_profile.delete_profile('web', 'same-stmt') AS deleted;
-- An unchanged upsert writes nothing: no new tuple, not even a transaction id.
SELECT ctid AS ctid_before, xmin AS xmin_before FROM tgt_profile.profiles WHERE tnt_id = 'p1' \gset
BEGIN;
SELECT status FROM tgt_profile.upsert_profile('web', '{"city": "Basel"}', pc_id => 'p1');
SELECT pg_current_xact_id_if_assigned() IS NULL AS no_write;
COMMIT;
SELECT ctid = :'ctid_before' AND xmin = :'xmin_before' AS same_tuple FROM tgt_profile.profiles WHERE tnt_id = 'p1';

-- '{}' registers a profile and returns its tnt_id.
SELECT * FROM tgt_profile.upsert_profile('web', '{}', pc_id => 'p2');
SELECT tgt_profile.get_profile('web', 'p2')->'profile' AS empty_profile;

-- By third-party id alone: a new profile gets an opaque tnt_id.
SELECT tnt_id AS gen_id, status FROM tgt_profile.upsert_profile('web', '{"tier": "silver"}', third_party_id => 'crm-1') \gset
SELECT :'status' AS status, :'gen_id' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' AS opaque_uuid;
SELECT tnt_id = :'gen_id' AS same_profile, status
  FROM tgt_profile.upsert_profile('web', '{"tier": "bronze"}', third_party_id => 'crm-1');
SELECT p->>'tntId' = :'gen_id' AS found, p->>'thirdPartyId' AS tpid, p->'profile' AS profile
  FROM tgt_profile.get_profile('web', third_party_id => 'crm-1') p;

-- By both: links the third-party id to the pcId profile.
SELECT * FROM tgt_profile.upsert_profile('web', '{"linked": true}', pc_id => 'p2', third_party_id => 'crm-2');
SELECT tgt_profile.get_profile('web', third_party_id => 'crm-2')->>'tntId' AS by_tpid;
SELECT * FROM tgt_profile.upsert_profile('web', '{"linked": true}', pc_id => 'p2', third_party_id => 'crm-2');
-- both new: one profile with both ids
SELECT * FROM tgt_profile.upsert_profile('web', '{}', pc_id => 'p3', third_party_id => 'crm-3');
-- a third-party id on another profile, or a pcId profile with another one: 23505, nothing changes
SELECT public.state($$SELECT tgt_profile.upsert_profile('web', '{"x": 1}', pc_id => 'p1', third_party_id => 'crm-2')$$) AS taken;
SELECT public.state($$SELECT tgt_profile.upsert_profile('web', '{"x": 1}', pc_id => 'p2', third_party_id => 'crm-9')$$) AS has_other;
SELECT public.state($$SELECT tgt_profile.upsert_profile('web', '{"x": 1}', pc_id => 'p9', third_party_id => 'crm-1')$$) AS belongs_elsewhere;
SELECT count(*) AS profiles, count(*) FILTER (WHERE attributes ? 'x') AS with_x
  FROM tgt_profile.profiles WHERE client = 'web';
-- get with both ids must name one profile
SELECT tgt_profile.get_profile('web', 'p2', 'crm-2') IS NOT NULL AS same,
	   tgt_profile.get_profile('web', 'p2', 'crm-1') IS NULL AS different,
	   tgt_profile.get_profile('web', 'nobody') IS NULL AS unknown;

-- Bad arguments: 22023, naming the attribute and the limit.
SELECT label, public.state(format('SELECT tgt_profile.upsert_profile(%L, %L, %L)', 'web', a, 'p-limits')) AS result
  FROM (VALUES ('nested object', '{"nested": {"a": 1}}'), ('array value', '{"list": [1, 2]}'),
			   ('array', '[1, 2]'), ('string', '"text"'), ('number', '42'), ('json null', 'null'),
			   ('empty name', '{"": 1}'), ('pcId as name', '{"pcId": "x"}'),
			   ('thirdPartyId as name', '{"thirdPartyId": "x"}'),
			   ('129-character name', json_build_object(repeat('n', 129), 1)::text),
			   ('128-character name', json_build_object(repeat('n', 128), 1)::text),
			   ('5001-character value', json_build_object('long', repeat('v', 5001))::text),
			   ('5000 two-byte characters', json_build_object('long', repeat('é', 5000))::text)) v(label, a);
SELECT tgt_profile.delete_profile('web', 'p-limits') AS limits_within_bounds_stored;
SELECT public.state($$SELECT tgt_profile.upsert_profile('web', NULL, 'p1')$$) AS null_attributes;
SELECT public.state($$SELECT tgt_profile.upsert_profile('web', '{}')$$) AS no_key;
SELECT public.state($$SELECT tgt_profile.upsert_profile('web', '{}', '')$$) AS empty_pc_id;
SELECT public.state(format('SELECT tgt_profile.upsert_profile(%L, %L, %L)', 'web', '{}', repeat('i', 257))) AS long_pc_id;
SELECT public.state(format('SELECT tgt_profile.upsert_profile(%L, %L, third_party_id => %L)', 'web', '{}', repeat('i', 257))) AS long_tpid;
SELECT public.state($$SELECT tgt_profile.upsert_profile('nope', '{}', 'p1')$$) AS unknown_client;
SELECT public.state($$SELECT tgt_profile.get_profile('web')$$) AS get_no_key;

-- The limits follow their settings; a profile over max_profile_bytes is refused.
SET tgt_profile.max_value_length = 3;
SELECT public.state($$SELECT tgt_profile.upsert_profile('web', '{"v": "four"}', 'p1')$$) AS value_limit;
RESET tgt_profile.max_value_length;
SET tgt_profile.max_profile_bytes = 100;
SELECT public.state(format('SELECT tgt_profile.upsert_profile(%L, %L, %L)', 'web', json_build_object('big', repeat('b', 200)), 'p1')) AS profile_limit;
RESET tgt_profile.max_profile_bytes;
SELECT public.state($$SET tgt_profile.max_id_length = 0$$) AS below_minimum;
SELECT public.state($$SET tgt_profile.no_such_limit = 1$$) AS reserved_prefix;
SELECT tgt_profile.get_profile('web', 'p1')->'profile' AS unchanged_after_errors;

-- Activity and expiry: an unchanged upsert refreshes last_seen_at only when a day old.
UPDATE tgt_profile.profiles SET last_seen_at = now() - interval '2 days', updated_at = now() - interval '3 days'
 WHERE tnt_id = 'p1';
SELECT status FROM tgt_profile.upsert_profile('web', '{"city": "Basel"}', pc_id => 'p1');
SELECT last_seen_at > now() - interval '1 minute' AS seen_now, updated_at < now() - interval '1 day' AS not_updated
  FROM tgt_profile.profiles WHERE tnt_id = 'p1';

UPDATE tgt_profile.profiles SET last_seen_at = now() - interval '15 days' WHERE tnt_id IN ('p2', 'p3');
SELECT tgt_profile.create_client('web2');
SELECT count(*) FROM tgt_profile.upsert_profile('web2', '{}', 'q1');
UPDATE tgt_profile.profiles SET last_seen_at = now() - interval '15 days' WHERE client = 'web2';
UPDATE tgt_profile.settings SET profile_lifetime = '30 days' WHERE client = 'web2';
SELECT tgt_profile.purge_expired('web') AS purged_web;
SELECT tgt_profile.purge_expired() AS purged_all;     -- web2's lifetime is 30 days: nothing
UPDATE tgt_profile.settings SET profile_lifetime = '1 day' WHERE client = 'web2';
SELECT tgt_profile.purge_expired() AS purged_all;
SELECT client, tnt_id = 'p1' AS is_p1, third_party_id FROM tgt_profile.profiles WHERE client IN ('web', 'web2') ORDER BY 1, 2;
SELECT client, detail FROM tgt_profile.audit_log WHERE action = 'purge_expired' ORDER BY id;
SELECT public.state($$SELECT tgt_profile.purge_expired('nope')$$) AS unknown;

-- Delete.
SELECT tgt_profile.delete_profile('web', 'p1') AS deleted, tgt_profile.delete_profile('web', 'p1') AS again;
SELECT count(*) FROM tgt_profile.upsert_profile('web', '{}', third_party_id => 'crm-5');
SELECT tgt_profile.delete_profile('web', third_party_id => 'crm-5') AS by_tpid;
SELECT public.state($$SELECT tgt_profile.delete_profile('web')$$) AS no_key;

-- A foreign key a DBA adds on profiles is checked for upserts too (its
-- internal triggers must fire: such a table is written through SQL); the
-- results are the same.  (A trigger is refused: see dba_additions.)
CREATE TABLE public.regress_prof_clients (client text PRIMARY KEY);
INSERT INTO public.regress_prof_clients SELECT DISTINCT client FROM tgt_profile.profiles;
INSERT INTO public.regress_prof_clients VALUES ('web') ON CONFLICT DO NOTHING;
ALTER TABLE tgt_profile.profiles ADD CONSTRAINT regress_prof_fk
	FOREIGN KEY (client) REFERENCES public.regress_prof_clients;
SELECT status FROM tgt_profile.upsert_profile('web', '{"t": 1}', 'trg-1');
SELECT status FROM tgt_profile.upsert_profile('web', '{"t": 2}', 'trg-1', 'crm-trg');
SELECT status FROM tgt_profile.upsert_profile('web', '{"t": 2}', 'trg-1');
SELECT tnt_id, third_party_id, attributes FROM tgt_profile.profiles WHERE client = 'web' AND tnt_id = 'trg-1';
SELECT tgt_profile.create_client('web-fk');
SELECT public.try($$SELECT tgt_profile.upsert_profile('web-fk', '{"t": 1}', 'trg-1')$$) AS unknown_client;
SELECT tgt_profile.drop_client('web-fk');
ALTER TABLE tgt_profile.profiles DROP CONSTRAINT regress_prof_fk;
DROP TABLE public.regress_prof_clients;
SELECT tgt_profile.get_profile('web', third_party_id => 'crm-trg')->'profile' AS by_tpid;

-- Under require-auth every profile function checks authorize() first.
SELECT tgt_profile.set_require_auth('web', true);
SELECT token AS tok FROM tgt_profile.generate_token('web') \gset
SELECT public.state($$SELECT tgt_profile.upsert_profile('web', '{"a": 1}', 'p5')$$) AS upsert_no_token;
SELECT public.state($$SELECT tgt_profile.get_profile('web', 'p5')$$) AS get_no_token;
SELECT public.state($$SELECT tgt_profile.delete_profile('web', 'p5')$$) AS delete_no_token;
SELECT public.state($$SELECT tgt_profile.upsert_profile('web', '{"a": 1}', 'p5', NULL, 'Bearer tgtp_wrong')$$) AS bad_token;
SELECT * FROM tgt_profile.upsert_profile('web', '{"a": 1}', 'p5', "authorization" => 'Bearer ' || :'tok');
SELECT tgt_profile.get_profile('web', 'p5', "authorization" => 'Bearer ' || :'tok')->'profile' AS with_token;
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' || :'tok')::text, false) IS NOT NULL AS headers_set;
SELECT tgt_profile.get_profile('web', 'p5')->'profile' AS via_request_headers;
SELECT tgt_profile.delete_profile('web', 'p5') AS deleted_via_headers;
RESET request.headers;

-- Who may call: API callers (and admins) the profile functions; purge is admin only.
CREATE ROLE regress_prof_api IN ROLE tgt_profile_api;
CREATE ROLE regress_prof_appr IN ROLE tgt_profile_approver;
SELECT tgt_profile.set_require_auth('web', false);
SET ROLE regress_prof_api;
SELECT status FROM tgt_profile.upsert_profile('web', '{"b": 2}', 'p6');
SELECT tgt_profile.get_profile('web', 'p6')->'profile' AS api_reads;
SELECT public.try($$SELECT tgt_profile.purge_expired()$$) AS api_purge;
SELECT public.try($$SELECT * FROM tgt_profile.profiles$$) AS api_table_read;
SELECT public.try($$UPDATE tgt_profile.profiles SET attributes = '{}'$$) AS api_table_write;
RESET ROLE;
SET ROLE regress_prof_appr;
SELECT public.try($$SELECT tgt_profile.upsert_profile('web', '{}', 'p7')$$) AS approver_upsert;
RESET ROLE;
DROP ROLE regress_prof_api, regress_prof_appr;

SELECT tgt_profile.drop_client('web');
SELECT tgt_profile.drop_client('web2');
SELECT count(*) AS profiles_left FROM tgt_profile.profiles WHERE client IN ('web', 'web2');
