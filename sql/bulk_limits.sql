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
