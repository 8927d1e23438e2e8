-- Identity merge: a login folds the visitor's pcId profile into the customer's.
SELECT tgt_profile.create_client('im');
CREATE FUNCTION pg_temp.prof(pc text DEFAULT NULL, tp text DEFAULT NULL) RETURNS jsonb
	LANGUAGE sql AS $$ SELECT tgt_profile.get_profile('im', pc, tp) - 'createdAt' - 'updatedAt' - 'lastSeenAt' $$;

-- the customer, and an anonymous visitor on a new device
SELECT count(*) FROM tgt_profile.upsert_profile('im', '{"tier": "gold", "city": "Basel"}', pc_id => 'cust', third_party_id => 'crm-1');
SELECT * FROM tgt_profile.upsert_profile('im', '{"city": "Bern", "cart": 3}', pc_id => 'dev-1');

-- without merge: the old answer, with a hint
SELECT public.state($$SELECT tgt_profile.upsert_profile('im', '{}', pc_id => 'dev-1', third_party_id => 'crm-1')$$) AS no_merge;
SELECT tgt_profile.upsert_profile('im', '{}', pc_id => 'dev-1', third_party_id => 'crm-1');
-- merge: the customer's values win, the visitor's others are kept, then the call's apply
SELECT * FROM tgt_profile.upsert_profile('im', '{"login": true, "cart": null}', pc_id => 'dev-1',
										 third_party_id => 'crm-1', merge => true);
SELECT pg_temp.prof('dev-1') AS via_alias;
SELECT pg_temp.prof(tp => 'crm-1') = pg_temp.prof('dev-1') AS same_profile,
	   pg_temp.prof('cust') = pg_temp.prof('dev-1') AS same_as_tnt;
SELECT count(*) AS dev1_rows FROM tgt_profile.profiles WHERE client = 'im' AND tnt_id = 'dev-1';
SELECT pc_id, tnt_id, created_at <= now() AS stamped FROM tgt_profile.aliases WHERE client = 'im';
SELECT actor = current_user AS by_caller, detail FROM tgt_profile.audit_log WHERE action = 'merge_profiles';

-- the alias resolves for upsert (no merge needed, the same customer), with pc_id alone too
SELECT * FROM tgt_profile.upsert_profile('im', '{"visits": 1}', pc_id => 'dev-1');
SELECT * FROM tgt_profile.upsert_profile('im', '{"visits": 2}', pc_id => 'dev-1', third_party_id => 'crm-1');
SELECT * FROM tgt_profile.upsert_profile('im', '{"visits": 2}', pc_id => 'dev-1', third_party_id => 'crm-1', merge => true);
-- ... but it never links the alias to another customer
SELECT count(*) FROM tgt_profile.upsert_profile('im', '{}', third_party_id => 'crm-2');
SELECT public.state($$SELECT tgt_profile.upsert_profile('im', '{}', pc_id => 'dev-1', third_party_id => 'crm-2', merge => true)$$) AS other_customer;
-- both keys must name the same profile
SELECT pg_temp.prof('dev-1', 'crm-1') IS NOT NULL AS both_match, pg_temp.prof('dev-1', 'crm-2') IS NULL AS mismatch;

-- a device never seen before becomes an alias at once
SELECT * FROM tgt_profile.upsert_profile('im', '{"fresh": 1}', pc_id => 'dev-2', third_party_id => 'crm-1', merge => true);
SELECT pg_temp.prof('dev-2')->'aliases' AS aliases, pg_temp.prof('dev-2')->'profile'->'fresh' AS fresh;
-- a pcId profile that already has another customer: 23505, nothing changes
SELECT count(*) FROM tgt_profile.upsert_profile('im', '{}', pc_id => 'dev-3', third_party_id => 'crm-3');
SELECT public.state($$SELECT tgt_profile.upsert_profile('im', '{"x": 1}', pc_id => 'dev-3', third_party_id => 'crm-1', merge => true)$$) AS linked_elsewhere;
SELECT pg_temp.prof('dev-3')->'profile' AS dev3_unchanged;
-- merge with nothing to merge into: the usual link
SELECT * FROM tgt_profile.upsert_profile('im', '{}', pc_id => 'dev-4', third_party_id => 'crm-4', merge => true);
-- a merge that would exceed max_profile_bytes is refused whole
SET tgt_profile.max_profile_bytes = 200;
SELECT count(*) FROM tgt_profile.upsert_profile('im', jsonb_build_object('big', repeat('x', 100)), pc_id => 'dev-5');
SELECT public.state($$SELECT tgt_profile.upsert_profile('im', jsonb_build_object('big2', repeat('y', 100)), pc_id => 'dev-5', third_party_id => 'crm-1', merge => true)$$) AS too_big;
RESET tgt_profile.max_profile_bytes;
SELECT tgt_profile.get_profile('im', 'dev-5') IS NOT NULL AS dev5_kept;
-- merge => NULL is false; five positional arguments still work
SELECT public.state($$SELECT tgt_profile.upsert_profile('im', '{}', 'dev-5', 'crm-1', NULL, NULL)$$) AS null_merge;
SELECT status FROM tgt_profile.upsert_profile('im', '{"pos": 1}', 'dev-1', 'crm-1', NULL);

-- a batch keyed by pcId: the aliases resolve, on the guessing path too
SELECT rows_total, rows_created, rows_updated, rows_unchanged FROM tgt_profile.bulk_update('im',
	E'batch=pcId,src\ndev-1,batch\ndev-2,batch2\nnew-1,batch\n');
SELECT pg_temp.prof('cust')->'profile'->>'src' AS src, pg_temp.prof('new-1')->'profile' AS new1;
SELECT rows_updated FROM tgt_profile.bulk_update('im',
	(SELECT string_agg(format('{"pcId": "%s", "n": %s}', CASE WHEN i % 10 = 0 THEN 'dev-1' ELSE 'b' || i END, i), E'\n')
	   FROM generate_series(1, 30) i));
SELECT pg_temp.prof('dev-1')->'profile'->'n' AS last_n;
SELECT count(*) FROM tgt_profile.profiles WHERE client = 'im' AND tnt_id LIKE 'dev-%';

-- a first chunk of new keys (10,000 records) makes the next chunk guess that
-- its keys are new: a client with aliases never guesses, so dev-1 still
-- resolves in the second chunk
SELECT rows_total, rows_created, rows_updated FROM tgt_profile.bulk_update('im',
	(SELECT string_agg(format('{"pcId": "%s", "g": %s}', CASE WHEN i = 10005 THEN 'dev-1' ELSE 'g' || i END, i), E'\n')
	   FROM generate_series(1, 10010) i));
SELECT pg_temp.prof('dev-1')->'profile'->'g' AS g, pg_temp.prof('dev-1')->>'tntId' AS tnt_id;
SELECT count(*) FROM tgt_profile.profiles WHERE client = 'im' AND tnt_id = 'dev-1';

-- delete through an alias: the profile and all its aliases
SELECT tgt_profile.delete_profile('im', 'dev-2') AS deleted;
SELECT count(*) AS aliases_left FROM tgt_profile.aliases WHERE client = 'im';
SELECT pg_temp.prof('dev-1') IS NULL AS gone, pg_temp.prof(tp => 'crm-1') IS NULL AS customer_gone;
-- the pcId is free again
SELECT * FROM tgt_profile.upsert_profile('im', '{}', pc_id => 'dev-1');

-- purge_expired takes the aliases with their profile
SELECT count(*) FROM tgt_profile.upsert_profile('im', '{"a": 1}', pc_id => 'old-dev');
SELECT count(*) FROM tgt_profile.upsert_profile('im', '{}', pc_id => 'old', third_party_id => 'crm-old');
SELECT status FROM tgt_profile.upsert_profile('im', '{}', pc_id => 'old-dev', third_party_id => 'crm-old', merge => true);
UPDATE tgt_profile.profiles SET last_seen_at = now() - interval '30 days' WHERE client = 'im' AND tnt_id = 'old';
SELECT tgt_profile.purge_expired('im') AS purged;
SELECT count(*) AS old_aliases FROM tgt_profile.aliases WHERE client = 'im' AND tnt_id = 'old';
SELECT detail FROM tgt_profile.audit_log WHERE action = 'purge_expired' AND client = 'im';

-- merge needs the same rights as upsert, and the same token
SELECT count(*) FROM tgt_profile.upsert_profile('im', '{}', pc_id => 'dev-9', third_party_id => 'crm-9');
SET ROLE tgt_profile_api;
SELECT public.state($$SELECT count(*) FROM tgt_profile.aliases$$) AS api_reads_no_table;
SELECT status FROM tgt_profile.upsert_profile('im', '{}', pc_id => 'dev-8', third_party_id => 'crm-9', merge => true);
RESET ROLE;
SELECT tgt_profile.set_require_auth('im', true);
SELECT public.state($$SELECT tgt_profile.upsert_profile('im', '{}', pc_id => 'dev-7', third_party_id => 'crm-9', merge => true)$$) AS no_token;

-- drop_client removes the aliases
SELECT tgt_profile.drop_client('im');
SELECT count(*) AS aliases_after_drop FROM tgt_profile.aliases WHERE client = 'im';
