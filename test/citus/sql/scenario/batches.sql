-- Bulk updates (from sql/bulk.sql): bulk_update of an Adobe batch file,
-- NDJSON and a JSON array, their rejects, batch_status, require-auth.
-- Calls written as in tokens.sql; batch ids, timestamps and generated
-- tnt_ids are never printed.
:BEGIN SELECT tgt_profile.create_client('c-bulk'); :COMMIT
:BEGIN SELECT tgt_profile.create_client('c-bulk2'); :COMMIT

-- The documentation's sample: exactly these four profiles.
:BEGIN SELECT status, rows_total, rows_created, rows_updated, rows_unchanged, rows_not_found, rows_rejected FROM tgt_profile.bulk_update('c-bulk', E'batch=pcId,param1,param2,param3,param4\n123,value1\n124,,value2\n125,,,value3\n126,,,,value4\n'); :COMMIT
SELECT tnt_id, third_party_id, attributes FROM tgt_profile.profiles
 WHERE client = 'c-bulk' ORDER BY tnt_id COLLATE "C";
-- batch_status reports the batch as bulk_update did
SELECT max(batch_id) AS b1 FROM tgt_profile.batches WHERE client = 'c-bulk' \gset
:BEGIN SELECT s - 'batchId' - 'submittedAt' - 'submittedBy' AS status, (s->>'batchId')::bigint = :b1 AS same_id, s->>'submittedBy' = current_user AS by_me FROM tgt_profile.batch_status('c-bulk', :b1) s; :COMMIT
SELECT client, status, format, rows_total, rows_created, submitted_by = current_user AS by_me
  FROM tgt_profile.batches WHERE client = 'c-bulk' AND batch_id = :b1;

-- Merge by thirdPartyId; a bad row is rejected alone, the others apply.
:BEGIN SELECT status, rows_total, rows_created, rows_updated, rows_unchanged, rows_not_found, rows_rejected FROM tgt_profile.bulk_update('c-bulk', E'batch=pcId,param1,x\n123,value1,1\n124,%zz\n125,,%C3%A9\n127,1,2,3\n,1\n'); :COMMIT
SELECT max(batch_id) AS b2 FROM tgt_profile.batches WHERE client = 'c-bulk' \gset
:BEGIN SELECT s->'rejects' AS rejects FROM tgt_profile.batch_status('c-bulk', :b2) s; :COMMIT
SELECT "row", key, reason FROM tgt_profile.batch_rejects
 WHERE client = 'c-bulk' AND batch_id = :b2 ORDER BY "row";
SELECT tnt_id, attributes FROM tgt_profile.profiles
 WHERE client = 'c-bulk' ORDER BY tnt_id COLLATE "C";
-- create_missing => false: unknown keys are counted not found
:BEGIN SELECT status, rows_total, rows_created, rows_updated, rows_unchanged, rows_not_found, rows_rejected FROM tgt_profile.bulk_update('c-bulk', E'batch=pcId,y\n123,1\n999,1\n', NULL, false); :COMMIT

-- NDJSON: types kept, JSON null removes, a bad line rejected alone.
:BEGIN SELECT status, rows_total, rows_created, rows_updated, rows_unchanged, rows_not_found, rows_rejected FROM tgt_profile.bulk_update('c-bulk', E'{"pcId": "nd-1", "s": "text", "n": 42, "t": true, "old": "x"}\n{"pcId": "nd-2", oops}\n{"thirdPartyId": "crm-nd3", "a": 1}\n'); :COMMIT
:BEGIN SELECT status, rows_total, rows_created, rows_updated, rows_unchanged, rows_not_found, rows_rejected FROM tgt_profile.bulk_update('c-bulk', '{"pcId": "nd-1", "old": null, "n": 43}'); :COMMIT
SELECT max(batch_id) AS b3 FROM tgt_profile.batches WHERE client = 'c-bulk' \gset
SELECT CASE WHEN tnt_id LIKE 'nd-%' THEN tnt_id ELSE '(generated)' END AS tnt_id, third_party_id, attributes
  FROM tgt_profile.profiles WHERE client = 'c-bulk' AND (tnt_id LIKE 'nd-%' OR third_party_id LIKE 'crm-nd%')
 ORDER BY 1;

-- A JSON array: a bad element rejected alone; a broken array refused whole.
:BEGIN SELECT status, rows_total, rows_created, rows_updated, rows_unchanged, rows_not_found, rows_rejected FROM tgt_profile.bulk_update('c-bulk', E'[{"pcId": "ja-1", "a": 1},\n {"pcId": "ja-2", "b": {"x": 1}}, 5,\n {"pcId": "ja-3", "a": 1, "a": 2}]'); :COMMIT
SELECT max(batch_id) AS b4 FROM tgt_profile.batches WHERE client = 'c-bulk' \gset
:BEGIN SELECT s->'rejects' AS rejects FROM tgt_profile.batch_status('c-bulk', :b4) s; :COMMIT
:BEGIN SELECT tgt_profile.bulk_update('c-bulk', '[{"pcId": "jab-1", "a": 1} {"pcId": "jab-2", "a": 1}]'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.bulk_update('c-bulk', E'pcId,a\nbroken-1,1\n'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
SELECT tnt_id, attributes FROM tgt_profile.profiles
 WHERE client = 'c-bulk' AND (tnt_id LIKE 'ja%' OR tnt_id LIKE 'broken%') ORDER BY 1;

-- batch_status of an unknown batch, of another client's batch: NULL.
:BEGIN SELECT s IS NULL AS unknown FROM tgt_profile.batch_status('c-bulk', -1) s; :COMMIT
:BEGIN SELECT s IS NULL AS other_client FROM tgt_profile.batch_status('c-bulk2', :b1) s; :COMMIT
:BEGIN SELECT tgt_profile.batch_status('nope', 1); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.bulk_update('nope', E'batch=pcId,a\nx,1\n'); :COMMIT
\echo :LAST_ERROR_SQLSTATE

-- Require-auth: bulk_update and batch_status need the token.
:BEGIN SELECT tgt_profile.set_require_auth('c-bulk2', true); :COMMIT
:BEGIN SELECT token AS tok FROM tgt_profile.generate_token('c-bulk2') \gset
:COMMIT
:BEGIN SELECT tgt_profile.bulk_update('c-bulk2', E'batch=pcId,a\nq1,1\n'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT tgt_profile.bulk_update('c-bulk2', E'batch=pcId,a\nq1,1\n', 'Bearer tgtp_wrong'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT status, rows_total, rows_created FROM tgt_profile.bulk_update('c-bulk2', E'batch=pcId,a\nq1,1\nq2,2\n', 'Bearer ' || :'tok'); :COMMIT
SELECT max(batch_id) AS b5 FROM tgt_profile.batches WHERE client = 'c-bulk2' \gset
:BEGIN SELECT tgt_profile.batch_status('c-bulk2', :b5); :COMMIT
\echo :LAST_ERROR_SQLSTATE
:BEGIN SELECT s->'rowsCreated' AS created FROM tgt_profile.batch_status('c-bulk2', :b5, 'Bearer ' || :'tok') s; :COMMIT
-- a revoked token fails the next batch
:BEGIN SELECT tgt_profile.revoke_tokens('c-bulk2') AS revoked; :COMMIT
:BEGIN SELECT tgt_profile.bulk_update('c-bulk2', E'batch=pcId,a\nq3,1\n', 'Bearer ' || :'tok'); :COMMIT
\echo :LAST_ERROR_SQLSTATE
SELECT tnt_id, attributes FROM tgt_profile.profiles WHERE client = 'c-bulk2' ORDER BY 1;

:BEGIN SELECT tgt_profile.drop_client('c-bulk'); :COMMIT
:BEGIN SELECT tgt_profile.drop_client('c-bulk2'); :COMMIT
SELECT count(*) AS left_over FROM (
	SELECT client FROM tgt_profile.profiles UNION ALL SELECT client FROM tgt_profile.batches
	UNION ALL SELECT client FROM tgt_profile.batch_rejects) r WHERE client LIKE 'c-bulk%';
