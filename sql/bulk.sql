-- Bulk updates: bulk_update and batch_status.  Every rule of the three batch
-- formats (Adobe batch file, NDJSON, JSON array), the per-record and
-- per-batch limits, the daily quota, require-auth and the role matrix.
-- Batch ids, timestamps and generated tnt_ids are never printed.
SELECT tgt_profile.create_client('bulk');

-- Helpers (dropped before the last section).
-- bulk(batch): the counts of a successful bulk_update (no batch id).
CREATE FUNCTION public.bulk(batch text, create_missing boolean DEFAULT true, client text DEFAULT 'bulk')
	RETURNS TABLE (status text, total bigint, created bigint, updated bigint, unchanged bigint,
				   not_found bigint, rejected bigint)
	LANGUAGE sql AS $$
	SELECT status, rows_total, rows_created, rows_updated, rows_unchanged, rows_not_found, rows_rejected
	  FROM tgt_profile.bulk_update(client, batch, NULL, create_missing) $$;
-- refused(batch): 'SQLSTATE: message' of a batch that raises ('ok' if it does not).
CREATE FUNCTION public.refused(batch text, client text DEFAULT 'bulk') RETURNS text
	LANGUAGE sql AS $$ SELECT public.state(format('SELECT tgt_profile.bulk_update(%L, %L)', client, batch)) $$;
-- The last batch of a client, and its rejects as batch_status reports them.
CREATE FUNCTION public.last_batch(client text DEFAULT 'bulk') RETURNS bigint
	LANGUAGE sql AS $$ SELECT max(b.batch_id) FROM tgt_profile.batches b WHERE b.client = last_batch.client $$;
CREATE FUNCTION public.rejects(client text DEFAULT 'bulk')
	RETURNS TABLE ("row" bigint, key text, reason text)
	LANGUAGE sql AS $$
	SELECT r."row", r.key, r.reason
	  FROM jsonb_to_recordset(tgt_profile.batch_status(client, public.last_batch(client))->'rejects')
		   AS r("row" bigint, key text, reason text) $$;
-- The profiles whose tnt_id or third_party_id match a LIKE pattern; a
-- generated tnt_id shows as (generated).
CREATE FUNCTION public.bulk_profiles(pattern text, client text DEFAULT 'bulk')
	RETURNS TABLE (tnt_id text, third_party_id text, attributes jsonb)
	LANGUAGE sql AS $$
	SELECT CASE WHEN p.tnt_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
				THEN '(generated)' ELSE p.tnt_id END,
		   p.third_party_id, p.attributes
	  FROM tgt_profile.profiles p
	 WHERE p.client = bulk_profiles.client AND (p.tnt_id LIKE pattern OR p.third_party_id LIKE pattern)
	 ORDER BY p.third_party_id COLLATE "C" NULLS FIRST, p.tnt_id COLLATE "C" $$;

--
-- Adobe batch file
--

-- The documentation's sample: exactly these four profiles, one attribute each.
SELECT * FROM public.bulk(E'batch=pcId,param1,param2,param3,param4\n123,value1\n124,,value2\n125,,,value3\n126,,,,value4\n');
SELECT * FROM public.bulk_profiles('12_');
-- batch_status reports the batch as bulk_update did
SELECT batch_id AS sample_id FROM tgt_profile.bulk_update('bulk', E'batch=pcId,param1\n123,value1\n') \gset
SELECT s - 'batchId' - 'submittedAt' - 'submittedBy' AS status,
	   (s->>'batchId')::bigint = :sample_id AS same_id,
	   s->>'submittedBy' = current_user AS by_me,
	   (s->>'submittedAt')::timestamptz BETWEEN now() - interval '1 hour' AND clock_timestamp() AS submitted_now
  FROM tgt_profile.batch_status('bulk', :sample_id) s;
SELECT client, status, format, rows_total, rows_unchanged, submitted_by = current_user AS by_me
  FROM tgt_profile.batches WHERE client = 'bulk' AND batch_id = :sample_id;

-- thirdPartyId as the key column: new profiles get a generated tnt_id.
SELECT * FROM public.bulk(E'batch=thirdPartyId,tier\ncrm-1,gold\ncrm-2,silver\n');
SELECT * FROM public.bulk(E'batch=thirdPartyId,tier,city\ncrm-1,,Basel\n');
SELECT * FROM public.bulk_profiles('crm-%');

-- Percent-decoding: %XX in names and values (either case), + stays +,
-- %2C is a comma inside a value, UTF-8 names and values, a decoded key.
SELECT * FROM public.bulk(E'batch=pcId,a%20b,%C3%A9t%C3%A9,sum,list\npct%2D1,x+y,%e2%82%ac,1+1%3D2,a%2Cb%2cc\n');
SELECT * FROM public.bulk_profiles('pct-%');

-- Short rows and empty cells leave attributes unchanged; a row of only
-- empty cells is counted unchanged and creates no profile.
SELECT * FROM public.bulk(E'batch=pcId,a,b,c\nshort-1,1,2,3\nshort-2,1\n');
SELECT * FROM public.bulk(E'batch=pcId,a,b,c\nshort-1,,20\nshort-1,,,30\nshort-2\nshort-2,,,\nshort-new,,,\nshort-new2\n');
SELECT * FROM public.bulk_profiles('short-%');

-- LF, CRLF, a last line without a line end, blank lines (not numbered):
-- the rows are numbered 1, 2, 3 whatever the line ends.
SELECT * FROM public.bulk(E'batch=pcId,v\r\nle-1,crlf\r\n\r\n  \r\nle-2,%zz\r\nle-3,last');
SELECT * FROM public.rejects();
SELECT * FROM public.bulk_profiles('le-%');

-- A bad row is rejected alone, with its number, key and reason; the
-- others apply.  Too many cells, bad percent escapes, invalid UTF-8
-- (after decoding), NUL, an empty key.
SELECT * FROM public.bulk(concat_ws(E'\n',
	'batch=pcId,a,b',
	'bad-1,1,2,3',       -- too many cells
	'bad-2,1,2,',        -- a trailing comma is one more cell
	'bad-3,%zz',         -- not hex
	'bad-4,%4',          -- cut short
	'bad-5,50%',         -- % at the end
	'bad%G0,1',          -- in the key: no key reported
	'bad-6,%FF',         -- not UTF-8
	'bad-7,%C3',         -- a lone lead byte
	'bad-8,%C0%AF',      -- overlong
	'bad-9,%ED%A0%80',   -- a surrogate
	'bad-10,%00',        -- NUL
	',1',                -- empty key
	'good-1,1,2',
	'good-2,%C3%BC'));
SELECT * FROM public.rejects();
SELECT * FROM public.bulk_profiles('bad%');
SELECT * FROM public.bulk_profiles('good-%');

-- Invalid UTF-8 cannot even reach a text argument in a UTF8 database: the
-- server refuses it before the call (the reader's own checks are covered
-- by the unit tests and, above, through percent escapes).
SELECT public.state($$SELECT tgt_profile.bulk_update('bulk', convert_from('\x626174636804d3ff'::bytea, 'UTF8'))$$) AS raw_invalid_utf8;

-- A broken batch is refused whole (22P02) and nothing of it is applied.
SELECT label, public.refused(b) AS result FROM (VALUES
	('no batch= header', E'pcId,a\nbroken-1,1\n'),
	('unknown key column', E'batch=tntId,a\nbroken-1,1\n'),
	('key column is case-sensitive', E'batch=pcid,a\nbroken-1,1\n'),
	('empty key column', E'batch=,a\nbroken-1,1\n'),
	('empty header name', E'batch=pcId,a,,b\nbroken-1,1\n'),
	('empty last header name', E'batch=pcId,a,\nbroken-1,1\n'),
	('duplicate header names', E'batch=pcId,a,b,a\nbroken-1,1\n'),
	('duplicate after decoding', E'batch=pcId,a,%61\nbroken-1,1\n'),
	('second key column', E'batch=pcId,a,thirdPartyId\nbroken-1,1\n'),
	('bad escape in header', E'batch=pcId,a%2\nbroken-1,1\n'),
	('invalid UTF-8 in header', E'batch=pcId,%FF\nbroken-1,1\n'),
	('byte-order mark', E'\uFEFFbatch=pcId,a\nbroken-1,1\n'),
	('empty batch', ''),
	('only whitespace', E' \n\r\n\t'),
	('batch without =', E'batch\nbroken-1,1\n')) v(label, b);
SELECT count(*) AS nothing_applied FROM tgt_profile.profiles WHERE client = 'bulk' AND tnt_id LIKE 'broken-%';
-- a header alone is a batch of no records
SELECT * FROM public.bulk(E'batch=pcId,a,b\n');
SELECT * FROM public.bulk('batch=thirdPartyId');

--
-- NDJSON
--

-- Types are kept (string, number, boolean); JSON null removes; whitespace
-- before '{', CRLF and a last line without a line end are fine.
SELECT * FROM public.bulk(E'  {"pcId": "nd-1", "s": "text", "n": 42, "r": 1.5, "neg": -7, "t": true, "f": false, "old": "x"}\r\n'
						  || $${"pcId": "nd-2", "esc": "caf\u00e9 \"quoted\"\n", "emoji": "\ud83d\ude00", "é": "ü"}$$);
SELECT * FROM public.bulk_profiles('nd-_');
SELECT jsonb_typeof(attributes->'s') AS s, jsonb_typeof(attributes->'n') AS n,
	   jsonb_typeof(attributes->'t') AS t, attributes->'r' AS r
  FROM tgt_profile.profiles WHERE client = 'bulk' AND tnt_id = 'nd-1';
SELECT * FROM public.bulk('{"pcId": "nd-1", "old": null, "never": null, "n": 43}');
SELECT * FROM public.bulk_profiles('nd-1');
-- a number keeps its text, as with upsert_profile: re-sending it changes nothing
SELECT status FROM tgt_profile.upsert_profile('bulk', '{"exact": 4.0, "long": 0.12345678901234567890, "sci": 1E+2}', 'nd-num');
SELECT * FROM public.bulk('{"pcId": "nd-num", "exact": 4.0, "long": 0.12345678901234567890, "sci": 1E+2}');
SELECT * FROM public.bulk('{"pcId": "nd-num2", "exact": 4.0, "long": 0.12345678901234567890, "sci": 1E+2}');
SELECT tnt_id, attributes FROM tgt_profile.profiles WHERE client = 'bulk' AND tnt_id LIKE 'nd-num%' ORDER BY 1;

-- One bad line in the middle is rejected alone, with its line and column;
-- blank lines are neither records nor numbered.
SELECT * FROM public.bulk($$
{"pcId": "ndb-1", "a": 1}

   
{"pcId": "ndb-2", oops}
{"pcId": "ndb-3", "a": 3}
$$);
SELECT * FROM public.rejects();
SELECT * FROM public.bulk_profiles('ndb-%');

-- Every kind of bad record, each rejected alone.
SELECT * FROM public.bulk($${"pcId": "ndr-1", "nested": {"a": 1}}
{"pcId": "ndr-2", "list": [1, 2]}
{"pcId": "ndr-3", "a": 1, "a": 2}
{"a": 1}
{"pcId": "ndr-4", "thirdPartyId": "ndr-t4", "a": 1}
{"pcId": "", "a": 1}
{"thirdPartyId": 5, "a": 1}
{"pcId": null, "a": 1}
[{"pcId": "ndr-5", "a": 1}]
"just a string"
{"pcId": "ndr-6", "z": "\u0000"}
{"pcId": "ndr-7", "z": "\udc00"}
{"pcId": "ndr-8", "a": 1} trailing
{"pcId": "ndr-9", "a": 1
{"pcId": "ndr-10", "x": NaN}
{"pcId": "ndr-11", "e": 1e999}
{"pcId": "ndr-12", "big": 123456789012345678901234567890}
{"pcId": "ndr-13", "": 1}
{"pcId": "ndr-14", "ok": true}$$);
SELECT * FROM public.rejects();
SELECT * FROM public.bulk_profiles('ndr-%');
-- a key-only record is counted unchanged and creates nothing
SELECT * FROM public.bulk(E'{"pcId": "nd-empty"}\n{"thirdPartyId": "nd-empty-t"}\n{"pcId": "nd-1"}');
SELECT count(*) AS created FROM public.bulk_profiles('nd-empty%');

--
-- JSON array
--

-- Whitespace before '['; the same objects; a bad element is rejected alone
-- with its line and column.
SELECT * FROM public.bulk(E' \n\t[ {"pcId": "ja-1", "a": 1},\n  {"pcId": "ja-2", "b": {"x": 1}}, 5, {"thirdPartyId": "ja-t3", "c": "z"},\n  {"pcId": "ja-4", "a": 1, "a": 2} ]  \n');
SELECT * FROM public.rejects();
SELECT * FROM public.bulk_profiles('ja-%');
SELECT * FROM public.bulk('[]');
-- A broken array is refused whole (22P02): nothing applied, not even the
-- elements before the break.
SELECT label, public.refused(b) AS result FROM (VALUES
	('missing comma', '[{"pcId": "jab-1", "a": 1} {"pcId": "jab-2", "a": 1}]'),
	('unparsable element', '[{"pcId": "jab-1", "a": 1}, {"pcId": "jab-2" "a": 1}]'),
	('missing ]', '[{"pcId": "jab-1", "a": 1}'),
	('trailing comma', '[{"pcId": "jab-1", "a": 1},]'),
	('data after ]', '[{"pcId": "jab-1", "a": 1}] x'),
	('two arrays', '[{"pcId": "jab-1", "a": 1}][]'),
	('only [', '['),
	('byte-order mark', E'\uFEFF[{"pcId": "jab-1", "a": 1}]'),
	('scalar root', '42'),
	('string root', '"batch"')) v(label, b);
SELECT count(*) AS nothing_applied FROM tgt_profile.profiles WHERE client = 'bulk' AND tnt_id LIKE 'jab-%';

--
-- create_missing => false (Adobe's v1): unknown profiles are not created.
--
SELECT * FROM public.bulk(E'batch=pcId,v1\n123,updated\ncm-unknown,x\n', create_missing => false);
SELECT * FROM public.bulk(E'{"thirdPartyId": "crm-2", "v1": "updated"}\n{"thirdPartyId": "cm-unknown", "v1": 1}', create_missing => false);
SELECT tnt_id, third_party_id, attributes->>'v1' AS v1 FROM public.bulk_profiles('%')
 WHERE tnt_id IN ('123', '(generated)') AND coalesce(third_party_id, 'crm-2') IN ('crm-1', 'crm-2');
SELECT count(*) AS not_created FROM public.bulk_profiles('cm-%');

--
-- Records naming the same profile apply in batch order: in one chunk, by
-- either of its keys, and across the chunks of a long batch (10,000
-- records a chunk).
--
SELECT status FROM tgt_profile.upsert_profile('bulk', '{}', 'ord-1', 'ord-t1');
SELECT * FROM public.bulk(concat_ws(E'\n',
	'{"pcId": "ord-1", "a": 1, "b": 1}',
	'{"thirdPartyId": "ord-t1", "a": 2}',
	'{"pcId": "ord-1", "b": null, "c": 1}',
	'{"thirdPartyId": "ord-t2", "x": 1}',
	'{"thirdPartyId": "ord-t2", "x": 2, "y": 1}',
	'{"thirdPartyId": "ord-t2", "y": null}'));
SELECT * FROM public.bulk_profiles('ord-%');
SELECT * FROM public.bulk((SELECT string_agg(format('{"pcId": "%s", "a": %s}',
											 CASE WHEN i IN (1, 9999, 10000, 10001, 20002) THEN 'ord-long' ELSE 'ord-' || i END, i),
									  E'\n' ORDER BY i)
						   FROM generate_series(1, 20005) i));
SELECT * FROM public.bulk_profiles('ord-long');
SELECT count(*) AS long_batch_profiles FROM tgt_profile.profiles WHERE client = 'bulk' AND tnt_id ~ '^ord-[0-9]+$';

--
-- An unchanged record writes nothing: the same batch again leaves the
-- profile's tuple as it was.
--
SELECT * FROM public.bulk(E'batch=pcId,a,b\nsame-1,1,x\n');
SELECT ctid AS ctid_before, xmin AS xmin_before, updated_at AS updated_before
  FROM tgt_profile.profiles WHERE client = 'bulk' AND tnt_id = 'same-1' \gset
SELECT * FROM public.bulk(E'batch=pcId,a,b\nsame-1,1,x\n');
SELECT * FROM public.bulk(E'{"pcId": "same-1", "a": "1", "gone": null}\n{"pcId": "same-1"}\n[1]');
SELECT ctid = :'ctid_before' AND xmin = :'xmin_before' AS same_tuple
  FROM tgt_profile.profiles WHERE client = 'bulk' AND tnt_id = 'same-1';
-- but a record of a profile not seen for a day refreshes last_seen_at only
UPDATE tgt_profile.profiles SET last_seen_at = now() - interval '2 days', updated_at = now() - interval '3 days'
 WHERE client = 'bulk' AND tnt_id = 'same-1';
SELECT * FROM public.bulk(E'batch=pcId,a,b\nsame-1,1,x\n');
SELECT last_seen_at > now() - interval '1 minute' AS seen_now, updated_at < now() - interval '1 day' AS not_updated
  FROM tgt_profile.profiles WHERE client = 'bulk' AND tnt_id = 'same-1';

--
-- batch_status of an unknown batch, of another client's batch, of NULL: NULL.
--
SELECT tgt_profile.create_client('bulk-other');
SELECT tgt_profile.batch_status('bulk', -1) IS NULL AS unknown,
	   tgt_profile.batch_status('bulk-other', public.last_batch('bulk')) IS NULL AS other_client,
	   tgt_profile.batch_status('bulk', NULL) IS NULL AS null_id;
SELECT public.state($$SELECT tgt_profile.batch_status('nope', 1)$$) AS unknown_client;

-- Bad arguments.
SELECT public.state($$SELECT tgt_profile.bulk_update('bulk', NULL)$$) AS null_batch;
SELECT public.state($$SELECT tgt_profile.bulk_update(NULL, 'batch=pcId')$$) AS null_client;
SELECT public.state($$SELECT tgt_profile.bulk_update('Bad Client', 'batch=pcId')$$) AS bad_client;
SELECT public.state($$SELECT tgt_profile.bulk_update('nope', 'batch=pcId')$$) AS unknown_client;

--
-- Per-record limits reject the record alone.
--
SET tgt_profile.max_value_length = 3;
SET tgt_profile.max_name_length = 4;
SET tgt_profile.max_id_length = 6;
SELECT * FROM public.bulk(concat_ws(E'\n',
	'batch=pcId,abcd,abcde,%C3%A9%C3%A9%C3%A9%C3%A9',
	'lim-1,abcd',        -- value of 4 characters
	'lim-2,,x',          -- a 5-character name
	'lim-234567,x',      -- a 10-character key (reported cut to the limit)
	'lim-3,%C3%A9%E2%82%AC%C3%BC,,%C3%A9',  -- 3 characters (7 bytes), a 4-character name: fine
	'lim-4,abc'));
SELECT * FROM public.rejects();
SELECT * FROM public.bulk(E'{"pcId": "lim-5", "n": 1234}\n{"pcId": "lim-6", "n": 123, "long": 1}\n{"thirdPartyId": "lim-7890", "a": 1}');
SELECT * FROM public.rejects();
RESET tgt_profile.max_value_length;
RESET tgt_profile.max_name_length;
RESET tgt_profile.max_id_length;
SET tgt_profile.max_profile_bytes = 100;
SELECT * FROM public.bulk(concat_ws(E'\n',
	format('{"pcId": "lim-big", "a": "%s"}', repeat('a', 20)),
	format('{"pcId": "lim-big", "b": "%s"}', repeat('b', 80)),   -- the merge would be too big
	format('{"pcId": "lim-big", "c": "%s"}', repeat('c', 10))));
SELECT * FROM public.rejects();
RESET tgt_profile.max_profile_bytes;
SELECT tnt_id, attributes FROM tgt_profile.profiles WHERE client = 'bulk' AND tnt_id LIKE 'lim-%' ORDER BY 1;

--
-- Per-batch limits refuse the whole batch (54000), naming the limit.
--
-- max_batch_bytes is checked before parsing: even a batch that is no batch
SET tgt_profile.max_batch_bytes = 20;
SELECT public.refused(E'batch=pcId,a\nmax-1,1\nmax-2,2\n') AS over_bytes;
SELECT public.refused(repeat('x', 21)) AS over_bytes_unparsed;
SELECT * FROM public.bulk(E'batch=pcId,a\nmax-1,1');   -- 20 bytes: fine
RESET tgt_profile.max_batch_bytes;
-- max_batch_rows counts records: not the header, not blank lines
SET tgt_profile.max_batch_rows = 2;
SELECT public.refused(E'batch=pcId,a\nmax-2,1\nmax-3,2\nmax-4,3\n') AS over_rows;
SELECT public.refused(E'{"pcId": "max-2", "a": 1}\n[bad]\n{"pcId": "max-3", "a": 1}') AS over_rows_with_a_reject;
SELECT * FROM public.bulk(E'batch=pcId,a\n\nmax-2,1\n\n\nmax-3,2\n\n');
RESET tgt_profile.max_batch_rows;
SELECT tnt_id FROM tgt_profile.profiles WHERE client = 'bulk' AND tnt_id LIKE 'max-%' ORDER BY 1;
SELECT public.state($$SET tgt_profile.max_batch_rows = 0$$) AS below_minimum;

--
-- The daily quota (settings.daily_row_limit) counts the records of the
-- day's committed batches, rejected ones too; a refused batch counts
-- nothing; other clients' batches do not count.
--
SELECT tgt_profile.create_client('bulk-q');
UPDATE tgt_profile.settings SET daily_row_limit = 5 WHERE client = 'bulk-q';
SELECT * FROM public.bulk(E'batch=pcId,a\nq-1,1\nq-2,%zz\nq-3,1\n', client => 'bulk-q');   -- 3 (one rejected)
SELECT public.refused(E'batch=pcId,a\nq-4,1\nq-5,1\nq-6,1\n', 'bulk-q') AS over_quota;  -- 6 > 5
SELECT * FROM public.bulk(E'batch=pcId,a\nq-1,1\n', client => 'bulk');                 -- another client
SELECT * FROM public.bulk(E'batch=pcId,a\nq-4,1\n\nq-5,1\n', client => 'bulk-q');      -- 5: exactly the quota
SELECT public.refused(E'{"pcId": "q-6", "a": 1}', 'bulk-q') AS over_quota;
SELECT * FROM public.bulk(E'batch=pcId,a\n', client => 'bulk-q');                       -- no record: fine
SELECT tnt_id FROM tgt_profile.profiles WHERE client = 'bulk-q' ORDER BY 1;
SELECT count(*) AS batches, sum(rows_total) AS records FROM tgt_profile.batches WHERE client = 'bulk-q';
-- yesterday's (UTC) batches do not count
UPDATE tgt_profile.batches SET submitted_at = submitted_at - interval '1 day' WHERE client = 'bulk-q';
SELECT * FROM public.bulk(E'batch=pcId,a\nq-6,1\nq-7,1\n', client => 'bulk-q');
-- no limit
UPDATE tgt_profile.settings SET daily_row_limit = NULL WHERE client = 'bulk-q';
SELECT * FROM public.bulk(E'batch=pcId,a\nq-8,1\nq-9,1\nq-10,1\nq-11,1\n', client => 'bulk-q');

--
-- Require-auth: bulk_update and batch_status need the token (28000 without
-- one, 28P01 with a wrong one); the header may come from request.headers.
--
SELECT tgt_profile.set_require_auth('bulk-q', true);
SELECT token AS tok FROM tgt_profile.generate_token('bulk-q') \gset
SELECT public.last_batch('bulk-q') AS qbatch \gset
SELECT label, public.state(stmt) AS result FROM (VALUES
	('bulk, no token', $$SELECT tgt_profile.bulk_update('bulk-q', E'batch=pcId,a\nra-1,1')$$),
	('bulk, empty header', $$SELECT tgt_profile.bulk_update('bulk-q', E'batch=pcId,a\nra-1,1', '')$$),
	('bulk, other scheme', $$SELECT tgt_profile.bulk_update('bulk-q', E'batch=pcId,a\nra-1,1', 'Basic dXNlcjpwdw==')$$),
	('bulk, wrong token', $$SELECT tgt_profile.bulk_update('bulk-q', E'batch=pcId,a\nra-1,1', 'Bearer tgtp_wrong')$$),
	('bulk, broken batch, no token', $$SELECT tgt_profile.bulk_update('bulk-q', 'not a batch')$$),
	('status, no token', format($$SELECT tgt_profile.batch_status('bulk-q', %s)$$, :qbatch)),
	('status, wrong token', format($$SELECT tgt_profile.batch_status('bulk-q', %s, 'Bearer tgtp_wrong')$$, :qbatch)),
	('status of unknown batch, no token', $$SELECT tgt_profile.batch_status('bulk-q', -1)$$)) v(label, stmt);
SELECT rows_created FROM tgt_profile.bulk_update('bulk-q', E'batch=pcId,a\nra-1,1', 'bearer   ' || :'tok');
SELECT tgt_profile.batch_status('bulk-q', public.last_batch('bulk-q'), 'Bearer ' || :'tok')->'created' AS status_with_token;
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' || :'tok')::text, false) IS NOT NULL AS headers_set;
SELECT rows_created FROM tgt_profile.bulk_update('bulk-q', E'batch=pcId,a\nra-2,1');
SELECT tgt_profile.batch_status('bulk-q', public.last_batch('bulk-q'))->'created' AS status_via_headers;
RESET request.headers;
SELECT tnt_id FROM tgt_profile.profiles WHERE client = 'bulk-q' AND tnt_id LIKE 'ra-%' ORDER BY 1;
-- turned off, the argument is ignored
SELECT tgt_profile.set_require_auth('bulk-q', false);
SELECT rows_created FROM tgt_profile.bulk_update('bulk-q', E'batch=pcId,a\nra-3,1', 'Bearer tgtp_wrong');

--
-- Who may call: API callers (and admins) bulk_update and batch_status; an
-- approver (of that very client) may not; nobody writes batches or
-- batch_rejects directly.
--
CREATE ROLE regress_bulk_anon;
CREATE ROLE regress_bulk_api IN ROLE tgt_profile_api;
CREATE ROLE regress_bulk_appr IN ROLE tgt_profile_approver;
CREATE ROLE regress_bulk_admin IN ROLE tgt_profile_admin;
SELECT tgt_profile.grant_approver('bulk', 'regress_bulk_appr');
CREATE TEMP TABLE bulk_calls (n int, label text, stmt text);
INSERT INTO bulk_calls VALUES
 (1,  'bulk_update', $$SELECT tgt_profile.bulk_update('bulk', E'batch=pcId,a\nrole-1,1\n')$$),
 (2,  'batch_status', format($$SELECT tgt_profile.batch_status('bulk', %s)$$, :sample_id)),
 (3,  'INSERT batches', $$INSERT INTO tgt_profile.batches (client, status, format, submitted_by, submitted_at) VALUES ('bulk', 'complete', 'adobe', 'me', now())$$),
 (4,  'UPDATE batches', $$UPDATE tgt_profile.batches SET rows_total = 0$$),
 (5,  'DELETE batches', $$DELETE FROM tgt_profile.batches$$),
 (6,  'TRUNCATE batches', $$TRUNCATE tgt_profile.batches$$),
 (7,  'INSERT batch_rejects', format($$INSERT INTO tgt_profile.batch_rejects VALUES ('bulk', %s, 99, 'k', 'r')$$, :sample_id)),
 (8,  'UPDATE batch_rejects', $$UPDATE tgt_profile.batch_rejects SET reason = 'x'$$),
 (9,  'DELETE batch_rejects', $$DELETE FROM tgt_profile.batch_rejects$$),
 (10, 'TRUNCATE batch_rejects', $$TRUNCATE tgt_profile.batch_rejects$$),
 (11, 'nextval batch_id_seq', $$SELECT nextval('tgt_profile.batch_id_seq')$$),
 (12, 'SELECT own batch', format($$SELECT * FROM tgt_profile.batches WHERE client = 'bulk' AND batch_id = %s$$, :sample_id)),
 (13, 'SELECT own reject', $$SELECT * FROM tgt_profile.batch_rejects WHERE client = 'bulk' AND row_number = 1 AND key = 'bad-1'$$),
 (14, 'SELECT other batch', $$SELECT * FROM tgt_profile.batches WHERE client = 'bulk-q' LIMIT 1$$);
GRANT SELECT ON bulk_calls TO PUBLIC;
SELECT n, label,
	   (SELECT r FROM (SELECT set_config('role', 'regress_bulk_anon', true)) s, LATERAL (SELECT public.try(stmt) r) x) AS anon,
	   (SELECT r FROM (SELECT set_config('role', 'regress_bulk_api', true)) s, LATERAL (SELECT public.try(stmt) r) x) AS api,
	   (SELECT r FROM (SELECT set_config('role', 'regress_bulk_appr', true)) s, LATERAL (SELECT public.try(stmt) r) x) AS approver,
	   (SELECT r FROM (SELECT set_config('role', 'regress_bulk_admin', true)) s, LATERAL (SELECT public.try(stmt) r) x) AS admin
  FROM bulk_calls ORDER BY n;
-- a batch is reported as submitted by the calling role
SET ROLE regress_bulk_api;
SELECT batch_id AS api_batch FROM tgt_profile.bulk_update('bulk', E'batch=pcId,a\nrole-1,1\nrole-2,%zz\n') \gset
SELECT s->'submittedBy' AS submitted_by, s->'rejects' AS rejects FROM tgt_profile.batch_status('bulk', :api_batch) s;
RESET ROLE;
DROP ROLE regress_bulk_anon, regress_bulk_api, regress_bulk_appr, regress_bulk_admin;

--
-- How rows are written: straight into the table and its indexes, the way
-- COPY does; through SQL when the table has a foreign key.  Either way the
-- stored jsonb is well-formed (keys in jsonb's order: lookups, equality and
-- containment work), constraints hold, and the same counts come back.
--
-- names of several lengths, merged into stored keys on both sides of them
SELECT * FROM public.bulk(E'batch=pcId,bb,a,dddd,ccc\nwr-1,1,2,4,3\n');
SELECT * FROM public.bulk(concat_ws(E'\n',
	'{"pcId": "wr-1", "zzzzz": "5", "b": "x", "ccc": null, "bb": 10, "aa": true}',
	'{"pcId": "wr-1", "a": null, "e": false}'));
SELECT attributes,
	   attributes = '{"b": "x", "e": false, "aa": true, "bb": 10, "dddd": "4", "zzzzz": "5"}'::jsonb AS equal,
	   attributes -> 'bb' AS bb, attributes ? 'zzzzz' AS has_z, attributes ? 'ccc' AS has_ccc,
	   attributes @> '{"aa": true, "b": "x"}' AS contains,
	   (SELECT string_agg(k, ',') FROM jsonb_object_keys(attributes) k) AS key_order
  FROM tgt_profile.profiles WHERE client = 'bulk' AND tnt_id = 'wr-1';
-- a nested value stored by hand (not through the API) is kept by a merge
UPDATE tgt_profile.profiles SET attributes = '{"n": {"x": [1, 2]}, "a": "1"}'
 WHERE client = 'bulk' AND tnt_id = 'wr-1';
SELECT * FROM public.bulk(E'batch=pcId,b,zz\nwr-1,2,3\n');
SELECT attributes, attributes = '{"a": "1", "b": "2", "n": {"x": [1, 2]}, "zz": "3"}'::jsonb AS equal
  FROM tgt_profile.profiles WHERE client = 'bulk' AND tnt_id = 'wr-1';
-- A chunk (10,000 records) whose keys all are new is written without
-- reading its keys first, and so is the next one; when a key of that one
-- exists after all, the chunk starts over reading them: the counts, merges
-- and reasons are those of a chunk whose keys were read.
SELECT status FROM tgt_profile.upsert_profile('bulk', jsonb_build_object('big', repeat('x', 60)), 'opt-old');
SET tgt_profile.max_profile_bytes = 100;
SELECT * FROM public.bulk(concat_ws(E'\n',
	(SELECT string_agg(format('{"pcId": "opt-%s", "a": %s}', i, i), E'\n' ORDER BY i) FROM generate_series(1, 10000) i),
	'{"pcId": "opt-new", "a": 1}',
	format('{"pcId": "opt-old", "b": "%s"}', repeat('y', 40)),  -- fits alone, not merged
	'{"pcId": "opt-old", "c": 1}',
	'{"pcId": "opt-5", "a": 50}'));
SELECT * FROM public.rejects();
RESET tgt_profile.max_profile_bytes;
SELECT * FROM public.bulk_profiles('opt-_');
SELECT * FROM public.bulk_profiles('opt-old') UNION ALL SELECT * FROM public.bulk_profiles('opt-new');
SELECT count(*) AS opt_profiles FROM tgt_profile.profiles WHERE client = 'bulk' AND tnt_id LIKE 'opt-%';
-- A CHECK constraint a DBA adds holds for new and for updated rows: the
-- violating batch fails whole (23514), nothing of it applied.
ALTER TABLE tgt_profile.profiles ADD CONSTRAINT regress_no_forbidden CHECK (NOT attributes ? 'forbidden');
-- (the relation is named as "profiles" or as the client's partition)
SELECT regexp_replace(public.refused(E'batch=pcId,a,forbidden\nchk-1,1,\nchk-2,1,yes\n'),
					  'relation "profiles[_0-9]*"', 'relation "profiles"') AS new_row;
SELECT regexp_replace(public.refused(E'batch=pcId,forbidden\nwr-1,yes\n'),
					  'relation "profiles[_0-9]*"', 'relation "profiles"') AS updated_row;
ALTER TABLE tgt_profile.profiles DROP CONSTRAINT regress_no_forbidden;
SELECT count(*) AS chk_profiles FROM tgt_profile.profiles WHERE client = 'bulk' AND tnt_id LIKE 'chk-%';
SELECT attributes ? 'forbidden' AS has_forbidden FROM tgt_profile.profiles WHERE client = 'bulk' AND tnt_id = 'wr-1';
-- A foreign key a DBA adds is checked for every row a batch writes, new or
-- updated (its internal triggers must fire: such a table is written
-- through SQL); the counts are the same.
CREATE TABLE public.regress_clients (client text PRIMARY KEY);
INSERT INTO public.regress_clients SELECT DISTINCT client FROM tgt_profile.profiles;
INSERT INTO public.regress_clients VALUES ('bulk') ON CONFLICT DO NOTHING;
ALTER TABLE tgt_profile.profiles ADD CONSTRAINT regress_client_fk
	FOREIGN KEY (client) REFERENCES public.regress_clients;
SELECT * FROM public.bulk(E'batch=pcId,a\ntrg-1,1\ntrg-2,2\nwr-1,\nwr-1,9\ntrg-3,\n');
SELECT * FROM public.bulk_profiles('trg-%');
SELECT * FROM public.bulk_profiles('wr-1');
-- a client the foreign key does not know: the batch fails whole (23503)
SELECT tgt_profile.create_client('bulk-fk');
SELECT left(public.refused(E'batch=pcId,a\nfk-1,1\n', 'bulk-fk'), 5) AS unknown_client;
SELECT tgt_profile.drop_client('bulk-fk');
ALTER TABLE tgt_profile.profiles DROP CONSTRAINT regress_client_fk;
DROP TABLE public.regress_clients;
-- A trigger a DBA adds (row or statement level) would run as the
-- extension owner: the batch is refused whole (55000; see dba_additions).
CREATE FUNCTION public.regress_log_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RETURN NULL;
END
$$;
CREATE TRIGGER regress_stmt AFTER INSERT ON tgt_profile.profiles
	FOR EACH STATEMENT EXECUTE FUNCTION public.regress_log_statement();
SELECT public.refused(E'batch=pcId,a\nstm-1,1\nstm-2,2\n') AS statement_trigger;
DROP TRIGGER regress_stmt ON tgt_profile.profiles;
DROP FUNCTION public.regress_log_statement();
SELECT * FROM public.bulk_profiles('stm-%');

-- Clean up the other clients and the helpers.
SELECT tgt_profile.drop_client(c) FROM (VALUES ('bulk-q'), ('bulk-other')) v(c);
DROP FUNCTION public.bulk(text, boolean, text), public.refused(text, text), public.last_batch(text),
	public.rejects(text), public.bulk_profiles(text, text);

--
-- A batch that fails leaves nothing behind, and the session usable: the
-- next statement runs (no transaction block is left open).
--
-- A long batch can be cancelled (statement_timeout, 57014).
CREATE TEMP TABLE big_batch AS
	SELECT string_agg(format('{"pcId": "cancel-%s", "a": %s}', i, i), E'\n') AS b FROM generate_series(1, 200000) i;
SELECT count(*) AS batches_before FROM tgt_profile.batches WHERE client = 'bulk' \gset
\set VERBOSITY terse
SET statement_timeout = '50ms';
SELECT rows_total FROM tgt_profile.bulk_update('bulk', (SELECT b FROM big_batch));
RESET statement_timeout;
SELECT count(*) AS cancelled_profiles FROM tgt_profile.profiles WHERE client = 'bulk' AND tnt_id LIKE 'cancel-%';
SELECT count(*) = :batches_before AS no_new_batch FROM tgt_profile.batches WHERE client = 'bulk';
-- An error while the new profiles are written (here from a CHECK
-- constraint a DBA added) fails the batch whole, and the session goes on
-- normally.
ALTER TABLE tgt_profile.profiles ADD CONSTRAINT regress_refuse CHECK (tnt_id <> 'idx-bad');
\set VERBOSITY sqlstate
SELECT rows_total FROM tgt_profile.bulk_update('bulk', E'batch=pcId,a\nidx-1,1\nidx-bad,1');
ALTER TABLE tgt_profile.profiles DROP CONSTRAINT regress_refuse;
-- the limit on keys cannot be raised past what an index entry holds
SET tgt_profile.max_id_length = 513;
\set VERBOSITY default
SELECT count(*) AS idx_profiles FROM tgt_profile.profiles WHERE client = 'bulk' AND tnt_id LIKE 'idx-%';
SELECT count(*) = :batches_before AS no_new_batch FROM tgt_profile.batches WHERE client = 'bulk';

-- Dropping a client removes its profiles, batches and rejects.
SELECT tgt_profile.drop_client('bulk');
SELECT (SELECT count(*) FROM tgt_profile.profiles WHERE client LIKE 'bulk%') AS profiles,
	   (SELECT count(*) FROM tgt_profile.batches WHERE client LIKE 'bulk%') AS batches,
	   (SELECT count(*) FROM tgt_profile.batch_rejects WHERE client LIKE 'bulk%') AS rejects;
