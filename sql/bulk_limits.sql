-- Bulk updates on hostile shapes of input: keys long enough to be hashed
-- and crafted to collide, records of more members than any profile can
-- take, chunks and rounds cut by bytes (DESIGN.md "Memory").  Memory and
-- time themselves are measured by test/bench/bench-memory.sh and the TAP
-- test t/015_bulk_cancel.pl, not here.
SELECT tgt_profile.create_client('limits');
CREATE FUNCTION public.limits_bulk(batch text)
	RETURNS TABLE (total bigint, created bigint, updated bigint, unchanged bigint, rejected bigint)
	LANGUAGE sql AS $$
	SELECT rows_total, rows_created, rows_updated, rows_unchanged, rows_rejected
	  FROM tgt_profile.bulk_update('limits', batch) $$;
-- the rejects of the client's last batch
CREATE FUNCTION public.limits_rejects() RETURNS TABLE ("row" bigint, key text, reason text)
	LANGUAGE sql AS $$
	SELECT r."row", r.key, r.reason
	  FROM jsonb_to_recordset(tgt_profile.batch_status('limits',
			(SELECT max(batch_id) FROM tgt_profile.batches WHERE client = 'limits'))->'rejects')
		   AS r("row" bigint, key text, reason text) $$;

-- Two keys of 127 characters whose 32-bit hash_bytes() is the same
-- (found offline by a birthday search): a chunk compares its keys exactly,
-- so each record reaches its own profile.
\set ka 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk0000000000027785'
\set kb 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk00000000000462f3'
SELECT length(:'ka') AS len_a, length(:'kb') AS len_b, :'ka' <> :'kb' AS distinct_keys;
SELECT * FROM public.limits_bulk(format(E'batch=pcId,n\n%s,1\n%s,2\n%s,3\n%s,4\n', :'ka', :'kb', :'kb', :'ka'));
SELECT tgt_profile.get_profile('limits', :'ka')->'profile' AS a,
       tgt_profile.get_profile('limits', :'kb')->'profile' AS b;
SELECT count(*) AS profiles FROM tgt_profile.profiles WHERE client = 'limits';
-- the same keys as third-party ids, in NDJSON
SELECT * FROM public.limits_bulk(format(E'{"thirdPartyId":"%s","t":"a"}\n{"thirdPartyId":"%s","t":"b"}\n{"thirdPartyId":"%s","u":"b2"}\n',
                                         :'ka', :'kb', :'kb'));
SELECT tgt_profile.get_profile('limits', third_party_id => :'ka')->'profile' AS a,
       tgt_profile.get_profile('limits', third_party_id => :'kb')->'profile' AS b;
SELECT count(*) AS profiles FROM tgt_profile.profiles WHERE client = 'limits';

-- A JSON record of more members than any profile within max_profile_bytes
-- could take (2 * (max_profile_bytes / 9), besides the key: 22 at 100
-- bytes) is rejected before it is built; one of exactly that many applies.
SET tgt_profile.max_profile_bytes = 100;
SELECT * FROM public.limits_bulk('{"pcId":"m1","a":"1"}');
SELECT * FROM public.limits_bulk(
	(SELECT '{"pcId":"m1",' || string_agg(format('"n%s":null', i), ',') || E'}\n'
	   FROM generate_series(1, 23) i) ||
	(SELECT '{"pcId":"m1","a":null,' || string_agg(format('"n%s":null', i), ',') || '}'
	   FROM generate_series(1, 21) i));
SELECT * FROM public.limits_rejects();
SELECT tgt_profile.get_profile('limits', 'm1')->'profile' AS m1;
-- the same in a JSON array, with nested values among the members
SELECT * FROM public.limits_bulk(
	(SELECT '[{"pcId":"m2","x":"y"}, {"pcId":"m2",' || string_agg(format('"n%s":{"a":[1,{"b":2}]}', i), ',') || '}, {"pcId":"m2","z":1}]'
	   FROM generate_series(1, 23) i));
SELECT * FROM public.limits_rejects();
SELECT tgt_profile.get_profile('limits', 'm2')->'profile' AS m2;
-- an array whose over-long element does not parse is broken as a whole
SELECT public.state(format('SELECT tgt_profile.bulk_update(%L, %L)', 'limits',
	(SELECT '[{"pcId":"m3",' || string_agg(format('"n%s":1', i), ',') || ',}]'
	   FROM generate_series(1, 30) i)));
RESET tgt_profile.max_profile_bytes;

-- Chunks are cut by bytes as well as records: 2,000 records of 4.5 kB
-- (9 MB) for 1,000 profiles, each named twice, 1,000 records apart.  The
-- second value wins everywhere, whichever chunk each record fell in.
SELECT * FROM public.limits_bulk(
	(SELECT string_agg(format('{"pcId":"c%s","v":"%s"}', i % 1000, repeat(chr(97 + i / 1000), 4500)),
					   E'\n' ORDER BY i)
	   FROM generate_series(0, 1999) i));
SELECT count(*) AS profiles, count(*) FILTER (WHERE attributes->>'v' = repeat('b', 4500)) AS second_value
  FROM tgt_profile.profiles WHERE client = 'limits' AND tnt_id ~ '^c[0-9]+$';

-- A round of a chunk stops merging when the profiles it expanded hold
-- 16 MB: 300 stored profiles of 60 kB, each updated by one record, then
-- the first one again; the later records wait for another round and read
-- the profiles as the first round wrote them.
INSERT INTO tgt_profile.profiles (client, tnt_id, attributes, created_at, updated_at, last_seen_at)
SELECT 'limits', format('w%s', i),
	   (SELECT jsonb_object_agg(format('k%s', j), repeat(chr(96 + j), 4990)) FROM generate_series(1, 12) j),
	   now(), now(), now()
  FROM generate_series(1, 300) i;
SELECT * FROM public.limits_bulk(
	(SELECT string_agg(format('{"pcId":"w%s","n":%s}', i, i), E'\n' ORDER BY i) FROM generate_series(1, 300) i)
	|| E'\n{"pcId":"w1","n":"last","k1":null}');
SELECT count(*) AS profiles,
	   count(*) FILTER (WHERE (SELECT count(*) FROM jsonb_object_keys(attributes)) = 13
						  AND attributes->>'n' = substr(tnt_id, 2)) AS merged,
	   sum(length(attributes::text)) > 16 * 1024 * 1024 AS over_16mb
  FROM tgt_profile.profiles WHERE client = 'limits' AND tnt_id ~ '^w[0-9]+$';
SELECT attributes->>'n' AS n, attributes ? 'k1' AS has_k1, (SELECT count(*) FROM jsonb_object_keys(attributes)) AS keys
  FROM tgt_profile.profiles WHERE client = 'limits' AND tnt_id = 'w1';

DROP FUNCTION public.limits_bulk(text);
DROP FUNCTION public.limits_rejects();
SELECT tgt_profile.drop_client('limits');
