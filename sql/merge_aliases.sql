-- Identity merge (issue 12): upsert_profile(..., merge => true) on a login
-- merges the anonymous pcId profile into the customer's, and the pcId
-- becomes an alias that resolves wherever a pcId is accepted: the rules,
-- and the alias in every call (batches on both write paths and the fast
-- path of new keys), purge, drop_client, row-level security.
SELECT tgt_profile.create_client('mrg');
-- get_profile without its timestamps
CREATE FUNCTION public.mrg_get(pc text DEFAULT NULL, tp text DEFAULT NULL, client text DEFAULT 'mrg')
	RETURNS jsonb LANGUAGE sql AS $$
	SELECT tgt_profile.get_profile(client, pc, tp) - 'createdAt' - 'updatedAt' - 'lastSeenAt'
$$;
-- the client's profiles and aliases, as stored
CREATE FUNCTION public.mrg_rows(c text DEFAULT 'mrg')
	RETURNS TABLE (kind text, id text, tnt_id text, third_party_id text, attributes jsonb)
	LANGUAGE sql AS $$
	SELECT 'profile', p.tnt_id, p.tnt_id, p.third_party_id, p.attributes
	  FROM tgt_profile.profiles p WHERE p.client = c
	UNION ALL
	SELECT 'alias', a.pc_id, a.tnt_id, NULL, NULL
	  FROM tgt_profile.aliases a WHERE a.client = c
	 ORDER BY 1 DESC, 2
$$;

-- The customer q (crm-q) and an anonymous visitor p; both have "both".
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"tier": "gold", "both": "q"}', 'q', 'crm-q');
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"cart": 3, "both": "p", "seen": true}', 'p');
-- without merge: 23505 as before, nothing changes
SELECT public.state($$SELECT tgt_profile.upsert_profile('mrg', '{"x": 1}', 'p', 'crm-q')$$) AS no_merge;
SELECT public.state($$SELECT tgt_profile.upsert_profile('mrg', '{"x": 1}', 'p', 'crm-q', merge => false)$$) AS merge_false;
SELECT * FROM public.mrg_rows();

-- The login: p's attributes merged into q (q's value wins), then the call's
-- own attributes apply (a null removes); p's row is gone, p an alias of q.
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"login": 1, "seen": null}', 'p', 'crm-q', merge => true);
SELECT * FROM public.mrg_rows();
SELECT public.mrg_get('p') AS by_alias;
SELECT public.mrg_get('q') = public.mrg_get('p') AS same_by_pcid,
	   public.mrg_get(tp => 'crm-q') = public.mrg_get('p') AS same_by_tpid,
	   public.mrg_get('p', 'crm-q') = public.mrg_get('p') AS both_ids,
	   public.mrg_get('p', 'crm-other') IS NULL AS other_tpid;
-- the call's attributes win over both sides
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"a3": 1, "both": "p3"}', 'p3');
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"both": "call"}', 'p3', 'crm-q', merge => true);
SELECT public.mrg_get('q')->'profile' AS call_wins, public.mrg_get('q')->'aliases' AS aliases;
-- the merge is audited: the caller, both ids and the third-party id
SELECT actor = current_user AS by_caller, detail FROM tgt_profile.audit_log
 WHERE client = 'mrg' AND action = 'merge_profiles' ORDER BY id;

-- An alias and its customer's third-party id again: a plain update.
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"login": 2}', 'p', 'crm-q', merge => true);
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"login": 2}', 'p', 'crm-q', merge => true);
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"login": 3}', 'p', 'crm-q');
-- the customer's own pcId with its third-party id: a plain update too
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"login": 4}', 'q', 'crm-q', merge => true);
SELECT count(*) AS merges FROM tgt_profile.audit_log WHERE client = 'mrg' AND action = 'merge_profiles';

-- A pcId that does not exist becomes an alias directly.
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"fresh": 1}', 'p-new', 'crm-q', merge => true);
SELECT * FROM public.mrg_rows() WHERE id IN ('p-new', 'q');
-- ... also with attributes that only remove
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"fresh": null}', 'p-new2', 'crm-q', merge => true);
SELECT public.mrg_get('p-new2')->'profile' ? 'fresh' AS fresh_kept, public.mrg_get('q')->'aliases' AS aliases;

-- When the pcId is linked to another third-party id, or is an alias of
-- another customer: 23505, nothing changes.
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"other": 1}', 'r', 'crm-r');
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"anon": 1}', 'r-anon', NULL);
SELECT tnt_id AS r_alias_target, status FROM tgt_profile.upsert_profile('mrg', '{}', 'r-anon', 'crm-r', merge => true);
SELECT public.state($$SELECT tgt_profile.upsert_profile('mrg', '{"x": 1}', 'r', 'crm-q', merge => true)$$) AS has_other_tpid;
SELECT public.state($$SELECT tgt_profile.upsert_profile('mrg', '{"x": 1}', 'p', 'crm-r', merge => true)$$) AS alias_of_other;
SELECT public.state($$SELECT tgt_profile.upsert_profile('mrg', '{"x": 1}', 'r-anon', 'crm-q', merge => true)$$) AS alias_of_other2;
SELECT count(*) FILTER (WHERE attributes ? 'x') AS with_x, count(*) AS profiles
  FROM tgt_profile.profiles WHERE client = 'mrg';
SELECT * FROM public.mrg_rows() WHERE kind = 'alias';

-- When the third-party id belongs to nobody: exactly the old behaviour
-- (linked to the pcId profile, or a new profile with both ids).
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"s": 1}', 's', NULL);
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"s": 2}', 's', 'crm-s', merge => true);
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"t": 1}', 't', 'crm-t', merge => true);
SELECT * FROM public.mrg_rows() WHERE id IN ('s', 't');
-- merge with only one of the ids: a plain upsert
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"s": 3}', 's', merge => true);
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"s": 4}', third_party_id => 'crm-s', merge => true);
SELECT public.mrg_get('s')->'profile' AS s_profile;
-- positional calls of five arguments keep working
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"s": 5}', 's', 'crm-s', NULL);
SELECT count(*) AS merges FROM tgt_profile.audit_log WHERE client = 'mrg' AND action = 'merge_profiles';

-- An alias resolves everywhere a pcId is accepted: upsert updates the customer
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"via_alias": 1}', 'p');
SELECT count(*) AS profile_p FROM tgt_profile.profiles WHERE client = 'mrg' AND tnt_id = 'p';
-- ... a removal only, through an alias
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"via_alias": null}', 'p3');
-- ... a batch record keyed by the pcId (Adobe CSV, NDJSON, JSON array),
-- also with create_missing => false
SELECT rows_total, rows_created, rows_updated, rows_unchanged, rows_not_found, rows_rejected
  FROM tgt_profile.bulk_update('mrg', E'batch=pcId,csv\np,1\np-new,2\n');
SELECT rows_total, rows_created, rows_updated, rows_unchanged, rows_not_found, rows_rejected
  FROM tgt_profile.bulk_update('mrg', E'{"pcId": "p", "nd": 1}\n{"pcId": "q", "nd2": 1}\n{"pcId": "p3", "nd": null}');
SELECT rows_total, rows_created, rows_updated, rows_unchanged, rows_not_found, rows_rejected
  FROM tgt_profile.bulk_update('mrg', '[{"pcId": "p-new2", "arr": 1}, {"pcId": "p-unknown", "arr": 1}]', create_missing => false);
SELECT * FROM public.mrg_rows() WHERE id IN ('p', 'p-new', 'p-new2', 'p-unknown', 'q');
-- ... records of an alias and of its customer in one batch apply in order
SELECT rows_total, rows_created, rows_updated, rows_unchanged
  FROM tgt_profile.bulk_update('mrg', E'batch=pcId,ord\nq,1\np,2\np3,3\nq,\n');
SELECT public.mrg_get('q')->'profile'->'ord' AS ord;
-- ... on the bulk fast path: a chunk of new keys (10,000), then a chunk
-- written without reading its keys first, holding an alias
SELECT rows_total, rows_created, rows_updated, rows_rejected
  FROM tgt_profile.bulk_update('mrg', concat_ws(E'\n',
	(SELECT string_agg(format('{"pcId": "fast-%s", "f": %s}', i, i), E'\n' ORDER BY i) FROM generate_series(1, 10000) i),
	(SELECT string_agg(format('{"pcId": "fast2-%s", "f": %s}', i, i), E'\n' ORDER BY i) FROM generate_series(1, 100) i),
	'{"pcId": "p", "fast": 1}',
	'{"pcId": "fast2-zz", "f": 0}'));
SELECT * FROM public.mrg_rows() WHERE id IN ('p', 'q');
-- ... through SQL (a foreign key a DBA adds on profiles)
CREATE TABLE public.regress_mrg_clients (client text PRIMARY KEY);
INSERT INTO public.regress_mrg_clients SELECT DISTINCT client FROM tgt_profile.profiles;
ALTER TABLE tgt_profile.profiles ADD CONSTRAINT regress_mrg_fk
	FOREIGN KEY (client) REFERENCES public.regress_mrg_clients;
SELECT rows_total, rows_created, rows_updated, rows_rejected
  FROM tgt_profile.bulk_update('mrg', E'batch=pcId,fk\np,1\np-new2,2\n');
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"fk_single": 1}', 'p-new');
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"fkm": 1}', 'fk-anon');
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"fkm": 2}', 'fk-anon', 'crm-q', merge => true);
ALTER TABLE tgt_profile.profiles DROP CONSTRAINT regress_mrg_fk;
DROP TABLE public.regress_mrg_clients;
SELECT public.mrg_get('p') AS q_after_batches;
SELECT count(*) AS stray_profiles FROM tgt_profile.profiles p
  JOIN tgt_profile.aliases a USING (client) WHERE p.client = 'mrg' AND p.tnt_id = a.pc_id;

-- delete_profile through an alias deletes the customer and all its aliases
SELECT tgt_profile.delete_profile('mrg', 'p-new') AS deleted, tgt_profile.delete_profile('mrg', 'p') AS again;
SELECT * FROM public.mrg_rows() WHERE id IN ('p', 'p3', 'p-new', 'p-new2', 'fk-anon', 'q');
SELECT public.mrg_get('p') IS NULL AS p_gone, public.mrg_get(tp => 'crm-q') IS NULL AS q_gone;
-- p is free again: a new anonymous profile
SELECT * FROM tgt_profile.upsert_profile('mrg', '{"again": 1}', 'p');
SELECT public.mrg_get('p')->'aliases' AS no_aliases;

-- purge_expired removes a profile's aliases with it; the others stay.
SELECT status FROM tgt_profile.upsert_profile('mrg', '{}', 'old', 'crm-old');
SELECT status FROM tgt_profile.upsert_profile('mrg', '{"o": 1}', 'old-anon');
SELECT status FROM tgt_profile.upsert_profile('mrg', '{}', 'old-anon', 'crm-old', merge => true);
SELECT status FROM tgt_profile.upsert_profile('mrg', '{}', 'old-anon2', 'crm-old', merge => true);
UPDATE tgt_profile.profiles SET last_seen_at = now() - interval '400 days' WHERE client = 'mrg' AND tnt_id = 'old';
SELECT tgt_profile.purge_expired('mrg') >= 1 AS purged;
SELECT * FROM public.mrg_rows() WHERE kind = 'alias';
SELECT public.mrg_get('old-anon') IS NULL AS alias_purged;

-- get_profile lists the aliases, sorted ([] when none).
SELECT status FROM tgt_profile.upsert_profile('mrg', '{}', 'z', 'crm-z');
SELECT count(*) FROM unnest(ARRAY['zb', 'za', 'zc']) pc, LATERAL tgt_profile.upsert_profile('mrg', '{}', pc, 'crm-z', merge => true);
SELECT tgt_profile.get_profile('mrg', 'zc')->'aliases' AS sorted,
	   (SELECT array_agg(k) FROM jsonb_object_keys(tgt_profile.get_profile('mrg', 'z')) k) AS keys;

-- Who reads aliases: approvers of the client (row-level security), not API
-- callers; nobody writes them directly.
-- (another client's alias, which the approver of mrg does not see)
SELECT tgt_profile.create_client('mrg-other');
SELECT status FROM tgt_profile.upsert_profile('mrg-other', '{}', 'o', 'crm-o');
SELECT status FROM tgt_profile.upsert_profile('mrg-other', '{}', 'o-anon', 'crm-o', merge => true);
CREATE ROLE regress_mrg_api IN ROLE tgt_profile_api;
CREATE ROLE regress_mrg_appr IN ROLE tgt_profile_approver;
SELECT tgt_profile.grant_approver('mrg', 'regress_mrg_appr');
SET ROLE regress_mrg_api;
SELECT tnt_id, status FROM tgt_profile.upsert_profile('mrg', '{"api": 1}', 'za', 'crm-z', merge => true);
SELECT public.try($$SELECT * FROM tgt_profile.aliases$$) AS api_reads_aliases;
RESET ROLE;
SET ROLE regress_mrg_appr;
SELECT client, count(*) AS approver_sees FROM tgt_profile.aliases GROUP BY client;
SELECT public.try($$DELETE FROM tgt_profile.aliases$$) AS approver_deletes;
SELECT public.try($$INSERT INTO tgt_profile.aliases VALUES ('mrg', 'x', 'z', now())$$) AS approver_inserts;
RESET ROLE;
SELECT tgt_profile.revoke_approver('mrg', 'regress_mrg_appr');
DROP ROLE regress_mrg_api, regress_mrg_appr;
SELECT tgt_profile.drop_client('mrg-other');

-- Under require-auth the merge needs the token like any upsert.
SELECT tgt_profile.set_require_auth('mrg', true);
SELECT token AS mrg_tok FROM tgt_profile.generate_token('mrg') \gset
SELECT public.state($$SELECT tgt_profile.upsert_profile('mrg', '{}', 'zd', 'crm-z', merge => true)$$) AS no_token;
SELECT tnt_id, status FROM tgt_profile.upsert_profile('mrg', '{}', 'zd', 'crm-z', 'Bearer ' || :'mrg_tok', true);
SELECT tgt_profile.set_require_auth('mrg', false);

-- drop_client removes the client's aliases.
SELECT tgt_profile.drop_client('mrg');
SELECT count(*) AS aliases_left FROM tgt_profile.aliases WHERE client = 'mrg';
DROP FUNCTION public.mrg_get(text, text, text), public.mrg_rows(text);
