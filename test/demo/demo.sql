-- make demo: a walk-through of tgt_profile on a throwaway cluster.
-- Run by test/tools/demo.sh with psql -X -v ON_ERROR_STOP=1.
\pset footer off
\set QUIET on
\set VERBOSITY default
\set SHOW_CONTEXT never

\echo
\echo '== 1. Install the extension (it pulls in pgcrypto)'
CREATE EXTENSION tgt_profile CASCADE;
SELECT extname, extversion FROM pg_extension WHERE extname = 'tgt_profile';

\echo '== 2. Roles: an approver for the client, and an application backend (API caller)'
CREATE ROLE demo_approver IN ROLE tgt_profile_approver;
CREATE ROLE demo_backend IN ROLE tgt_profile_api;

\echo '== 3. The admin creates client "acme" and makes demo_approver its approver'
SELECT 'client acme created' AS done FROM tgt_profile.create_client('acme');
SELECT 'demo_approver approves acme' AS done FROM tgt_profile.grant_approver('acme', 'demo_approver');
SELECT client, require_auth, token_ttl, max_token_ttl, profile_lifetime FROM tgt_profile.settings;

\echo '== 4. The approver requires authentication for acme and generates a token (shown once)'
SET ROLE demo_approver;
SELECT 'acme requires authentication' AS done FROM tgt_profile.set_require_auth('acme', true);
SELECT token AS token1, token_id, expires_at FROM tgt_profile.generate_token('acme', '30 days') \gset
\echo 'token:' :token1
\echo '(only its SHA-256 is stored; the tokens view shows a hint:)'
SELECT token_id, hint, state, expires_at FROM tgt_profile.tokens WHERE client = 'acme';
RESET ROLE;

\echo
\echo '== 5. The backend calls the profile API: refused without the token, accepted with it'
SET ROLE demo_backend;
\set ON_ERROR_STOP 0
SELECT * FROM tgt_profile.upsert_profile('acme', '{"tier": "gold"}', pc_id => 'visitor-1');
\set ON_ERROR_STOP 1
\set bearer1 'Bearer ' :token1
SELECT * FROM tgt_profile.upsert_profile('acme', '{"tier": "gold", "visits": 1}', pc_id => 'visitor-1',
										 "authorization" => :'bearer1');
SELECT * FROM tgt_profile.upsert_profile('acme', '{"visits": 2, "city": "Basel"}', pc_id => 'visitor-1',
										 "authorization" => :'bearer1');
SELECT * FROM tgt_profile.upsert_profile('acme', '{"visits": 2}', pc_id => 'visitor-1',
										 "authorization" => :'bearer1');
\echo 'get_profile (the PostgREST way: the header in request.headers):'
SELECT set_config('request.headers', json_build_object('authorization', :'bearer1')::text, false) IS NOT NULL AS headers_set \gset
SELECT jsonb_pretty(tgt_profile.get_profile('acme', 'visitor-1') - 'createdAt' - 'updatedAt' - 'lastSeenAt') AS profile;
RESET request.headers;
\echo 'a third-party id links to the profile; a profile from a third-party id alone gets an opaque tnt_id:'
SELECT * FROM tgt_profile.upsert_profile('acme', '{"member": true}', pc_id => 'visitor-1',
										 third_party_id => 'crm-42', "authorization" => :'bearer1');
SELECT status FROM tgt_profile.upsert_profile('acme', '{"tier": "silver"}', third_party_id => 'crm-43',
											  "authorization" => :'bearer1');
SELECT tgt_profile.delete_profile('acme', third_party_id => 'crm-43', "authorization" => :'bearer1') AS deleted;
RESET ROLE;

\echo
\echo '== 6. Bulk updates: an Adobe batch file and an NDJSON file, applied in one call each'
\set ECHO none
\echo 'test/samples/adobe-sample.csv:'
\! sed 's/^/    /' test/samples/adobe-sample.csv
\set adobe_batch `cat test/samples/adobe-sample.csv`
SET ROLE demo_backend;
\echo 'SELECT * FROM tgt_profile.bulk_update(''acme'', <the file''s text>, "authorization" => <bearer>);'
SELECT * FROM tgt_profile.bulk_update('acme', :'adobe_batch', "authorization" => :'bearer1') \gset adobe_
SELECT :adobe_batch_id AS batch_id, :adobe_rows_total AS rows_total, :adobe_rows_created AS rows_created,
	   :adobe_rows_rejected AS rows_rejected;
\echo 'SELECT tgt_profile.batch_status(''acme'', <batch_id>, "authorization" => <bearer>);'
SELECT jsonb_pretty(tgt_profile.batch_status('acme', :adobe_batch_id, "authorization" => :'bearer1')
					- 'submittedAt') AS batch_status;
\echo 'The same batch sent again: the rows already applied are unchanged and write nothing.'
SELECT rows_total, rows_created, rows_unchanged, rows_rejected
  FROM tgt_profile.bulk_update('acme', :'adobe_batch', "authorization" => :'bearer1');
RESET ROLE;
\echo 'The profiles (read by the admin; the backend role cannot read the table):'
SELECT tnt_id, attributes FROM tgt_profile.profiles WHERE tnt_id ~ '^12' ORDER BY tnt_id;
SET ROLE demo_backend;
\echo 'test/samples/visitors.ndjson:'
\! sed 's/^/    /' test/samples/visitors.ndjson
\set ndjson_batch `cat test/samples/visitors.ndjson`
\echo 'SELECT * FROM tgt_profile.bulk_update(''acme'', <the file''s text>, "authorization" => <bearer>);'
SELECT * FROM tgt_profile.bulk_update('acme', :'ndjson_batch', "authorization" => :'bearer1') \gset nd_
SELECT :nd_batch_id AS batch_id, :nd_rows_total AS rows_total, :nd_rows_created AS rows_created,
	   :nd_rows_updated AS rows_updated, :nd_rows_rejected AS rows_rejected;
SELECT r->>'row' AS "row", r->>'key' AS key, r->>'reason' AS reason
  FROM jsonb_array_elements(tgt_profile.batch_status('acme', :nd_batch_id, "authorization" => :'bearer1')->'rejects') r;
SELECT tgt_profile.get_profile('acme', '126', "authorization" => :'bearer1')->'profile' AS "profile 126 (param4 removed by null)";
RESET ROLE;
\set ECHO queries

\echo
\echo '== 7. The approver regenerates the token: the old one fails at once'
SET ROLE demo_approver;
SELECT token AS token2 FROM tgt_profile.generate_token('acme') \gset
RESET ROLE;
SET ROLE demo_backend;
SELECT tgt_profile.verify_token('acme', :'token1') AS old_token_valid,
	   tgt_profile.verify_token('acme', :'token2') AS new_token_valid;
\set ON_ERROR_STOP 0
SELECT tgt_profile.get_profile('acme', 'visitor-1', "authorization" => :'bearer1');
\set ON_ERROR_STOP 1
RESET ROLE;

\echo
\echo '== 8. Rotation without downtime: a new token, the previous one valid for a 10-minute grace'
SET ROLE demo_approver;
SELECT token AS token3 FROM tgt_profile.generate_token('acme', grace => '10 minutes') \gset
SELECT tgt_profile.verify_token('acme', :'token2') AS previous_valid_in_grace,
	   tgt_profile.verify_token('acme', :'token3') AS new_valid;
SELECT token_id, hint, state FROM tgt_profile.tokens WHERE client = 'acme' ORDER BY token_id;
RESET ROLE;

\echo
\echo '== 9. The audit log: who did what (the actor is the caller, never a token)'
SELECT id, actor, action, detail FROM tgt_profile.audit_log WHERE client = 'acme' ORDER BY id;

\echo
\echo 'Done. The cluster is thrown away now.'
