-- tgt_profile.token_header: the request header read when a function gets no
-- authorization argument, from request.headers as PostgREST 12+ sets it (a
-- JSON object with lower-cased names, set_config(..., true) inside the
-- request's transaction).  In that header the token may come bare or as
-- "Bearer <token>"; the argument keeps its rule ("Bearer <token>" only) and
-- always wins.
SELECT current_user AS superuser \gset
CREATE ROLE regress_hdr_api LOGIN IN ROLE tgt_profile_api;

-- The library is not loaded yet in this session: a non-superuser's SET makes
-- a placeholder, which PostgreSQL refuses when the library defines the
-- setting (a WARNING at the first call); the default stays.
SET ROLE regress_hdr_api;
SET tgt_profile.token_header = 'x-mine';
SELECT tgt_profile.verify_token('hdr', 'tgtp_x') AS first_call;
SHOW tgt_profile.token_header;
RESET ROLE;

SELECT tgt_profile.create_client('hdr', require_auth => true);
SELECT token AS tok FROM tgt_profile.generate_token('hdr') \gset

-- Unset request.headers (never set in this session) is no token.
SELECT current_setting('request.headers', true) IS NULL AS headers_unset;
SELECT public.state($$SELECT tgt_profile.authorize('hdr')$$) AS unset;

-- The default header is authorization: Bearer or bare.
BEGIN;
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' || :'tok')::text, true) IS NOT NULL AS set;
SELECT public.state($$SELECT tgt_profile.authorize('hdr')$$) AS authorization_bearer;
SELECT set_config('request.headers', json_build_object('authorization', :'tok')::text, true) IS NOT NULL AS set;
SELECT public.state($$SELECT tgt_profile.authorize('hdr')$$) AS authorization_bare;
COMMIT;

-- A superuser names another header.
SET tgt_profile.token_header = 'x-profile-token';
SHOW tgt_profile.token_header;

-- Exactly as PostgREST: one transaction per request, the headers set
-- transaction-locally, then the function called without an argument.
BEGIN;
SELECT set_config('request.headers',
	json_build_object('accept', '*/*', 'host', 'localhost:3000', 'x-profile-token', :'tok')::text, true) IS NOT NULL AS set;
SELECT public.state($$SELECT tgt_profile.authorize('hdr')$$) AS bare_token;
SELECT status FROM tgt_profile.upsert_profile('hdr', '{"tier": "gold"}', 'v1');
SELECT tgt_profile.get_profile('hdr', 'v1')->'profile' AS profile;
COMMIT;
BEGIN;
SELECT set_config('request.headers',
	json_build_object('x-profile-token', 'Bearer ' || :'tok', 'content-type', 'text/csv')::text, true) IS NOT NULL AS set;
SELECT public.state($$SELECT tgt_profile.authorize('hdr')$$) AS bearer_token;
SELECT rows_total, rows_updated, rows_created FROM tgt_profile.bulk_update('hdr', E'batch=pcId,tier\nv1,silver\nv2,gold\n');
COMMIT;
-- After the request's transaction request.headers is the empty string, and
-- the next transaction has no token.
SELECT current_setting('request.headers', true) AS after_commit;
SELECT public.state($$SELECT tgt_profile.get_profile('hdr', 'v1')$$) AS next_request;
-- the same after a rollback
BEGIN;
SELECT set_config('request.headers', json_build_object('x-profile-token', :'tok')::text, true) IS NOT NULL AS set;
ROLLBACK;
SELECT current_setting('request.headers', true) AS after_rollback;
SELECT public.state($$SELECT tgt_profile.authorize('hdr')$$) AS after_rollback;

-- What the custom header may hold.  hdr(v) sets request.headers to v for
-- the rest of the transaction (the statement, here) and calls authorize.
CREATE FUNCTION pg_temp.hdr(headers text, arg text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('request.headers', headers, true);
	RETURN public.state(format('SELECT tgt_profile.authorize(%L, %L)', 'hdr', arg));
END
$$;
CREATE TEMP TABLE forms (n int, label text, v text);
INSERT INTO forms VALUES
	(1, 'bare', json_build_object('x-profile-token', :'tok')::text),
	(2, 'Bearer', json_build_object('x-profile-token', 'Bearer ' || :'tok')::text),
	(3, 'bearer, several spaces', json_build_object('x-profile-token', 'bearer   ' || :'tok')::text),
	(4, 'bare, surrounding whitespace', json_build_object('x-profile-token', E' \t' || :'tok' || E'\t ')::text),
	(5, 'bare, malformed', '{"x-profile-token": "tgtp_nope"}'),
	(6, 'bare, one character changed', json_build_object('x-profile-token', overlay(:'tok' placing CASE WHEN substr(:'tok', 30, 1) = 'x' THEN 'y' ELSE 'x' END from 30 for 1))::text),
	(7, 'Bearer, malformed', '{"x-profile-token": "Bearer tgtp_nope"}'),
	(8, 'another scheme', json_build_object('x-profile-token', 'Basic ' || :'tok')::text),
	(9, 'a JWT', '{"x-profile-token": "eyJhbGciOiJIUzI1NiJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo"}'),
	(10, 'empty value', '{"x-profile-token": ""}'),
	(11, 'not a string', '{"x-profile-token": 42}'),
	(12, 'token only in authorization', json_build_object('authorization', 'Bearer ' || :'tok')::text),
	(13, 'name not lower-cased', json_build_object('X-Profile-Token', :'tok')::text),
	(14, 'empty string', ''),
	(15, 'not JSON', 'x-profile-token: ' || :'tok'),
	(16, 'a JSON array', json_build_array(json_build_object('x-profile-token', :'tok'))::text),
	(17, 'duplicate names', '{"x-profile-token": "' || :'tok' || '", "x-profile-token": "' || :'tok' || '"}'),
	(18, 'bare, 1 MB', json_build_object('x-profile-token', 'tgtp_' || repeat('a', 1048576))::text);
SELECT n, label, pg_temp.hdr(v) AS result FROM forms ORDER BY n;
-- No error text quotes the token.
SELECT count(*) AS messages_with_token FROM forms WHERE pg_temp.hdr(v) LIKE '%' || substr(:'tok', 10) || '%';

-- The explicit argument wins, and keeps its rule: "Bearer <token>" only.
SELECT label, pg_temp.hdr(h, a) AS result
  FROM (VALUES
	('valid header, valid argument', json_build_object('x-profile-token', :'tok')::text, 'Bearer ' || :'tok'),
	('valid header, malformed argument', json_build_object('x-profile-token', :'tok')::text, 'Bearer tgtp_nope'),
	('valid header, bare token as argument', json_build_object('x-profile-token', :'tok')::text, :'tok'),
	('valid header, empty argument', json_build_object('x-profile-token', :'tok')::text, ''),
	('malformed header, valid argument', '{"x-profile-token": "tgtp_nope"}', 'Bearer ' || :'tok'),
	('no header, valid argument', '', 'Bearer ' || :'tok')) c(label, h, a);

-- The 28000 error says which header was read (never what it held).
BEGIN;
SELECT set_config('request.headers', '{"authorization": "Bearer x"}', true) IS NOT NULL AS set;
SELECT tgt_profile.authorize('hdr');
ROLLBACK;

-- Bad values are refused, with the reason.
SET tgt_profile.token_header = 'X-Profile-Token';
SET tgt_profile.token_header = '';
SET tgt_profile.token_header = 'x profile token';
SET tgt_profile.token_header = 'x-profile-token:';
SET tgt_profile.token_header = 'x-prófile';
SELECT public.state(format('SET tgt_profile.token_header = %L', repeat('x', 65))) AS too_long;
SELECT public.state(format('SET tgt_profile.token_header = %L', repeat('x', 64))) AS longest;
SELECT public.state($$SET tgt_profile.token_header = 'x_api-key.v2'$$) AS token_characters;
RESET tgt_profile.token_header;
ALTER ROLE regress_hdr_api SET tgt_profile.token_header = 'Authorization';
SHOW tgt_profile.token_header;

-- A non-superuser may not change it, in any way.
SET ROLE regress_hdr_api;
SELECT public.state($$SET tgt_profile.token_header = 'x-mine'$$) AS set;
SELECT public.state($$SET LOCAL tgt_profile.token_header = 'x-mine'$$) AS set_local;
SELECT public.state($$SELECT set_config('tgt_profile.token_header', 'x-mine', true)$$) AS set_config;
SELECT public.state($$RESET tgt_profile.token_header$$) AS reset;
SELECT public.state($$ALTER ROLE regress_hdr_api SET tgt_profile.token_header = 'x-mine'$$) AS alter_role;
SHOW tgt_profile.token_header;
RESET ROLE;

-- The way to configure it: ALTER ROLE (or DATABASE) ... SET by a superuser,
-- applied when the role logs in.
ALTER ROLE regress_hdr_api SET tgt_profile.token_header = 'x-api-token';
\c - regress_hdr_api
SHOW tgt_profile.token_header;
BEGIN;
SELECT set_config('request.headers', json_build_object('x-api-token', :'tok')::text, true) IS NOT NULL AS set;
SELECT tgt_profile.get_profile('hdr', 'v2')->'profile' AS profile;
COMMIT;
BEGIN;
SELECT set_config('request.headers', json_build_object('x-profile-token', :'tok')::text, true) IS NOT NULL AS set;
SELECT public.state($$SELECT tgt_profile.get_profile('hdr', 'v2')$$) AS other_header;
COMMIT;
\c - :superuser

ALTER ROLE regress_hdr_api RESET ALL;
DROP ROLE regress_hdr_api;
SELECT tgt_profile.drop_client('hdr');
