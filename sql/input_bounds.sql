-- Input at the bounds (issue 9, findings 8, 11, 12, 14 and 15's records of
-- removals only): names cut inside a character, numbers numeric refuses,
-- settings out of bounds, Adobe files that cannot be split into lines, and
-- records that only remove.  Timestamps and batch ids are never printed.
SELECT tgt_profile.create_client('ib');
SELECT tgt_profile.create_client('ib-other');

-- ib_bulk(batch): the counts of a bulk_update; ib_rejects(): its rejects.
CREATE FUNCTION public.ib_bulk(batch text, client text DEFAULT 'ib')
	RETURNS TABLE (total bigint, created bigint, updated bigint, unchanged bigint, rejected bigint)
	LANGUAGE sql AS $$
	SELECT rows_total, rows_created, rows_updated, rows_unchanged, rows_rejected
	  FROM tgt_profile.bulk_update(client, batch) $$;
CREATE FUNCTION public.ib_rejects(client text DEFAULT 'ib')
	RETURNS TABLE (row_number bigint, key text, reason text)
	LANGUAGE sql AS $$
	SELECT r.row_number, r.key, r.reason FROM tgt_profile.batch_rejects r
	 WHERE r.client = ib_rejects.client
	   AND r.batch_id = (SELECT max(b.batch_id) FROM tgt_profile.batches b WHERE b.client = ib_rejects.client)
	 ORDER BY r.row_number $$;

--
-- Finding 8: a name quoted in a reason is cut on a character boundary, so
-- the reason is valid text (a message that can be delivered, a reject row
-- that survives a dump and restore).
--

-- 63 ASCII bytes and a two-byte character: a byte cut at 64 would split it.
SELECT public.state(format('SELECT tgt_profile.upsert_profile(%L, %L::jsonb, %L)',
						   'ib', jsonb_build_object(repeat('a', 63) || 'é', '{}'::jsonb), 'ib-1')) AS upsert_nested;
SELECT * FROM public.ib_bulk(jsonb_build_object('pcId', 'ib-1', repeat('a', 63) || 'é', '{}'::jsonb)::text);
-- the reason is valid UTF-8: it goes through a conversion unchanged
SELECT row_number, reason, convert_from(convert_to(reason, 'UTF8'), 'UTF8') = reason AS valid_text
  FROM public.ib_rejects();
-- the same for a value over the length limit, in an Adobe file (names from
-- the header) and in JSON
SET tgt_profile.max_value_length = 3;
SELECT * FROM public.ib_bulk(E'batch=pcId,' || repeat('b', 63) || E'%C3%A9\nib-1,long');
SELECT * FROM public.ib_bulk(E'{"pcId": "ib-1", "' || repeat('c', 62) || E'€": "long"}\n');
SELECT row_number, reason, convert_from(convert_to(reason, 'UTF8'), 'UTF8') = reason AS valid_text
  FROM tgt_profile.batch_rejects WHERE client = 'ib' AND reason LIKE '%max_value_length%'
 ORDER BY batch_id, row_number;
RESET tgt_profile.max_value_length;

--
-- Finding 11: a number numeric refuses is a rejected record, and a number
-- literal gives the same result in a batch and in upsert_profile.
--

-- the batch goes on: the good record applies
SELECT * FROM public.ib_bulk(E'{"pcId": "ib-n1", "v": 1e-999999}\n{"pcId": "ib-n2", "v": 1}\n');
SELECT row_number, key, reason FROM public.ib_rejects();
SELECT tnt_id, attributes FROM tgt_profile.profiles WHERE client = 'ib' AND tnt_id LIKE 'ib-n%' ORDER BY 1;
-- also in a JSON array, and as the last of many attributes
SELECT * FROM public.ib_bulk('[{"pcId": "ib-n3", "a": "x", "v": 1e131072}, {"pcId": "ib-n4", "v": 0e-16384}]');
SELECT row_number, key, reason FROM public.ib_rejects();

-- ib_same(literal): the outcome of one number literal through upsert_profile
-- (as a jsonb argument) and through a batch, and whether both stored the
-- same value.
CREATE FUNCTION public.ib_same(lit text)
	RETURNS TABLE (upsert text, batch text, same_value boolean)
	LANGUAGE plpgsql AS $$
DECLARE
	u text;
	b text;
	n bigint;
BEGIN
	DELETE FROM tgt_profile.profiles WHERE client = 'ib' AND tnt_id IN ('ib-su', 'ib-sb');
	u := public.state(format('SELECT tgt_profile.upsert_profile(%L, %L::jsonb, %L)',
							 'ib', '{"v": ' || lit || '}', 'ib-su'));
	SELECT rows_rejected INTO n FROM tgt_profile.bulk_update('ib', '{"pcId": "ib-sb", "v": ' || lit || '}');
	b := CASE WHEN n = 0 THEN 'ok' ELSE (SELECT r.reason FROM public.ib_rejects() r) END;
	RETURN QUERY SELECT left(u, 60), left(b, 60),
		(SELECT a.attributes = s.attributes FROM tgt_profile.profiles a, tgt_profile.profiles s
		  WHERE a.client = 'ib' AND a.tnt_id = 'ib-sb' AND s.client = 'ib' AND s.tnt_id = 'ib-su');
END
$$;
SELECT left(lit, 24) AS lit, s.* FROM (VALUES
	(repeat('9', 400)), ('-' || repeat('9', 400)), ('1e400'), ('-1.5E+400'), ('1e-400'),
	('1e131071'), ('1e131072'), ('0e131072'), ('0e999999999'), ('1e-16383'), ('1e-16384'),
	('0.5e-16382'), ('0.5e-16383'), ('1e-999999'), ('1e99999999999999999999'), ('-0'), ('4.0')) v(lit),
	LATERAL public.ib_same(lit) s;
-- max_value_length counts the characters numeric prints, in both paths
SET tgt_profile.max_value_length = 20;
SELECT lit, length(lit::numeric::text) AS printed, s.* FROM (VALUES
	('1e19'), ('1e20'), ('-1e18'), ('-1e19'), ('1.50e1'), ('1000000000000000000.0'), ('0.000000000000000001'),
	('-0.000000000000000001'), ('0e-18'), ('0e-19'), ('-0e-18'), ('12345678901234567890e-10'), ('1e-19'),
	('0.00000000000000000001e1')) v(lit),
	LATERAL public.ib_same(lit) s;
RESET tgt_profile.max_value_length;
DELETE FROM tgt_profile.profiles WHERE client = 'ib' AND tnt_id LIKE 'ib-s_';

--
-- Finding 12: bounds on settings.
--

-- durations far out of bounds are 22023 from generate_token, not 22008
SELECT d, public.state(format('SELECT tgt_profile.generate_token(%L, %L::interval)', 'ib', d)) AS generate_token
  FROM (VALUES ('100000000 years'), ('-100000000 years'), ('1000000 years -359999990 days'),
			   ('2 years'), ('0')) v(d);
SELECT d, public.state(format('SELECT tgt_profile.generate_token(%L, %L::interval, %L::interval)', 'ib', '1 day', d)) AS grace
  FROM (VALUES ('100000000 years'), ('-100000000 years')) v(d);
-- and 23514 from a direct UPDATE of settings
SELECT stmt, public.state(stmt) AS result FROM (VALUES
	($$UPDATE tgt_profile.settings SET profile_lifetime = '10000 years' WHERE client = 'ib'$$),
	($$UPDATE tgt_profile.settings SET profile_lifetime = '100000000 years' WHERE client = 'ib'$$),
	($$UPDATE tgt_profile.settings SET profile_lifetime = '10 years 1 day' WHERE client = 'ib'$$),
	($$UPDATE tgt_profile.settings SET profile_lifetime = '59 minutes' WHERE client = 'ib'$$),
	($$UPDATE tgt_profile.settings SET profile_lifetime = '1 mon -29 days' WHERE client = 'ib'$$),
	($$UPDATE tgt_profile.settings SET max_token_ttl = '11 years' WHERE client = 'ib'$$),
	($$UPDATE tgt_profile.settings SET max_token_ttl = '1000000 years -359999990 days' WHERE client = 'ib'$$),
	($$UPDATE tgt_profile.settings SET token_ttl = '100000000 years' WHERE client = 'ib'$$),
	($$UPDATE tgt_profile.settings SET token_ttl = '2 days -1 hour' WHERE client = 'ib'$$),
	($$UPDATE tgt_profile.settings SET profile_lifetime = '1 hour' WHERE client = 'ib'$$),
	($$UPDATE tgt_profile.settings SET profile_lifetime = '10 years' WHERE client = 'ib'$$),
	($$UPDATE tgt_profile.settings SET max_token_ttl = '10 years', token_ttl = '10 years' WHERE client = 'ib'$$),
	($$UPDATE tgt_profile.settings SET max_token_ttl = '1 year', token_ttl = '90 days' WHERE client = 'ib'$$)
) v(stmt);
-- the detail says which bound
DO $$ BEGIN
	UPDATE tgt_profile.settings SET profile_lifetime = '1 mon -29 days' WHERE client = 'ib';
EXCEPTION WHEN check_violation THEN
	DECLARE d text; h text; c text;
	BEGIN
		GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT, c = CONSTRAINT_NAME;
		RAISE NOTICE '% | % | %', c, d, h;
	END;
END $$;

-- One client's bad settings row (written while the guard and the constraint
-- were off) does not fail the purge of the others: it is skipped, with a
-- WARNING.
SELECT tgt_profile.upsert_profile('ib-other', '{"a": 1}', 'ib-old');
UPDATE tgt_profile.profiles SET last_seen_at = now() - interval '15 days'
 WHERE client = 'ib-other' AND tnt_id = 'ib-old';
BEGIN;
ALTER TABLE tgt_profile.settings DISABLE TRIGGER settings_guard;
ALTER TABLE tgt_profile.settings DROP CONSTRAINT settings_profile_lifetime_check;
UPDATE tgt_profile.settings SET profile_lifetime = '10000 years' WHERE client = 'ib';
SELECT tgt_profile.purge_expired() AS purged;
SELECT count(*) AS old_left FROM tgt_profile.profiles WHERE client = 'ib-other' AND tnt_id = 'ib-old';
ROLLBACK;
SELECT profile_lifetime FROM tgt_profile.settings WHERE client = 'ib';

-- A returning visitor never expires, whatever the allowed lifetime: with a
-- lifetime of an hour, an unchanged upsert refreshes a last_seen_at older
-- than half an hour (a day was the rule).
UPDATE tgt_profile.settings SET profile_lifetime = '1 hour' WHERE client = 'ib';
SELECT tgt_profile.upsert_profile('ib', '{"a": 1}', 'ib-v' || i) FROM generate_series(1, 4) i;
UPDATE tgt_profile.profiles SET last_seen_at = now() - CASE tnt_id
		WHEN 'ib-v3' THEN interval '10 minutes' ELSE interval '40 minutes' END
 WHERE client = 'ib' AND tnt_id LIKE 'ib-v_';
-- v1 by upsert_profile, v2 by a batch: both unchanged, both refreshed;
-- v3, seen 10 minutes ago, is not written at all
SELECT * FROM tgt_profile.upsert_profile('ib', '{"a": 1}', 'ib-v1');
SELECT * FROM public.ib_bulk(E'{"pcId": "ib-v2", "a": 1}\n{"pcId": "ib-v3", "a": 1}\n');
SELECT * FROM tgt_profile.upsert_profile('ib', '{"a": 1}', 'ib-v3');
SELECT tnt_id, last_seen_at > now() - interval '1 minute' AS refreshed
  FROM tgt_profile.profiles WHERE client = 'ib' AND tnt_id LIKE 'ib-v_' ORDER BY 1;
-- half an hour later, the purge keeps whoever came back (v4 did not)
UPDATE tgt_profile.profiles SET last_seen_at = last_seen_at - interval '30 minutes'
 WHERE client = 'ib' AND tnt_id LIKE 'ib-v_';
SELECT tgt_profile.purge_expired('ib') AS purged;
SELECT tnt_id FROM tgt_profile.profiles WHERE client = 'ib' AND tnt_id LIKE 'ib-v_' ORDER BY 1;
UPDATE tgt_profile.settings SET profile_lifetime = '14 days' WHERE client = 'ib';

--
-- Finding 14: an Adobe file that cannot be split into lines, and header
-- names no message could show, are refused whole (22P02).
--
SELECT name, public.state(format('SELECT tgt_profile.bulk_update(%L, %L)', 'ib', batch)) AS result FROM (VALUES
	('CR-only line ends', E'batch=pcId,tier\rcr1,gold\r'),
	('CR-only rows after an LF header', E'batch=pcId,tier\ncr1,gold\rcr2,silver\r'),
	('a bare CR in a later line', E'batch=pcId,tier\r\ncr1,gold\r\ncr2,silver\rcr3,x\r\n'),
	('control character in a name', E'batch=pcId,ti%0Aer\ncr1,gold\n'),
	('raw tab in a name', E'batch=pcId,ti\ter\ncr1,gold\n'),
	('byte-order mark in a name', E'batch=pcId,%EF%BB%BFtier\ncr1,gold\n'),
	('byte-order mark before the key column', E'batch=\xEF\xBB\xBFpcId,tier\ncr1,gold\n')
) v(name, batch);
SELECT count(*) AS nothing_applied FROM tgt_profile.profiles WHERE client = 'ib' AND tnt_id LIKE 'cr_';
-- CRLF and a last line ending in CR alone are still fine
SELECT * FROM public.ib_bulk(E'batch=pcId,tier\r\ncr1,gold\r\ncr2,silver\r');
DELETE FROM tgt_profile.profiles WHERE client = 'ib' AND tnt_id LIKE 'cr_';

--
-- Finding 15: a record or upsert of removals only never creates a profile.
--
SELECT * FROM public.ib_bulk(E'{"pcId": "ghost", "x": null}\n{"thirdPartyId": "ghost-t", "x": null, "y": null}\n');
SELECT * FROM tgt_profile.upsert_profile('ib', '{"x": null}', 'ghost2');
SELECT * FROM tgt_profile.upsert_profile('ib', '{"x": null, "y": null}', third_party_id => 'ghost-t2');
SELECT * FROM tgt_profile.upsert_profile('ib', '{"x": null}', 'ghost3', 'ghost-t3');
SELECT count(*) AS ghosts FROM tgt_profile.profiles
 WHERE client = 'ib' AND (tnt_id LIKE 'ghost%' OR third_party_id LIKE 'ghost%');
-- '{}' is still an explicit registration
SELECT * FROM tgt_profile.upsert_profile('ib', '{}', 'ghost4');
-- removals from a profile that exists still apply, in both paths
SELECT tgt_profile.upsert_profile('ib', '{"x": 1, "y": 2}', 'ib-r' || i) FROM generate_series(1, 2) i;
SELECT * FROM tgt_profile.upsert_profile('ib', '{"x": null}', 'ib-r1');
SELECT * FROM public.ib_bulk(E'{"pcId": "ib-r2", "x": null}\n{"pcId": "ib-r2", "y": null}\n');
SELECT tnt_id, attributes FROM tgt_profile.profiles WHERE client = 'ib' AND tnt_id LIKE 'ib-r_' ORDER BY 1;
-- also in a chunk after one whose keys were all new (whose keys are taken
-- to be new, unread): 10,000 new profiles, then a removal from ib-r1
SELECT tgt_profile.upsert_profile('ib', '{"x": 1}', 'ib-r1');
SELECT * FROM public.ib_bulk(
	(SELECT string_agg(format('{"pcId": "ib-bulk-%s", "a": 1}', i), E'\n') FROM generate_series(1, 10000) i)
	|| E'\n{"pcId": "ib-r1", "x": null}\n{"pcId": "ghost5", "x": null}\n');
SELECT tnt_id, attributes FROM tgt_profile.profiles WHERE client = 'ib' AND tnt_id IN ('ib-r1', 'ghost5');

DROP FUNCTION public.ib_bulk(text, text), public.ib_rejects(text), public.ib_same(text);
SELECT tgt_profile.drop_client('ib');
SELECT tgt_profile.drop_client('ib-other');

--
-- The update to 1.2 brings settings outside the new bounds within them, and
-- audits each change (rows as the 1.1 library let them be written).
--
DROP EXTENSION tgt_profile;
DROP SCHEMA tgt_profile;
CREATE EXTENSION tgt_profile VERSION '1.1';
SELECT tgt_profile.create_client(c) FROM unnest(ARRAY['up-a', 'up-b', 'up-c', 'up-d']) c;
ALTER TABLE tgt_profile.settings DISABLE TRIGGER settings_guard;
UPDATE tgt_profile.settings SET profile_lifetime = '10000 years', max_token_ttl = '50 years', token_ttl = '20 years'
 WHERE client = 'up-a';
UPDATE tgt_profile.settings SET profile_lifetime = '10 minutes' WHERE client = 'up-b';
UPDATE tgt_profile.settings SET profile_lifetime = '1 mon -29 days', token_ttl = '100 days -1 hour'
 WHERE client = 'up-c';
ALTER TABLE tgt_profile.settings ENABLE TRIGGER settings_guard;
ALTER EXTENSION tgt_profile UPDATE TO '1.2';
SELECT client, token_ttl, max_token_ttl, profile_lifetime FROM tgt_profile.settings ORDER BY client;
SELECT client, action, detail FROM tgt_profile.audit_log WHERE action = 'update_settings' ORDER BY client;
SELECT tgt_profile.purge_expired();
DROP EXTENSION tgt_profile;
DROP SCHEMA tgt_profile;
CREATE EXTENSION tgt_profile;
