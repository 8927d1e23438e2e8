-- authorize(): the require-auth switch and the Bearer header.
SELECT tgt_profile.create_client('shop');
SELECT token AS tok FROM tgt_profile.generate_token('shop') \gset

-- While require_auth is off, the argument is ignored.
SELECT h, public.state(format('SELECT tgt_profile.authorize(%L, %L)', 'shop', h)) AS result
  FROM (VALUES (NULL), (''), ('garbage'), ('Bearer tgtp_nope')) v(h);

SELECT tgt_profile.set_require_auth('shop', true);
-- takes effect on the next statement
SELECT require_auth FROM tgt_profile.settings WHERE client = 'shop';

-- Header forms: scheme case-insensitive, one or more spaces.
CREATE TEMP TABLE headers (n int, label text, h text);
INSERT INTO headers VALUES
	(1, 'Bearer <token>', 'Bearer ' || :'tok'),
	(2, 'bearer <token>', 'bearer ' || :'tok'),
	(3, 'BEARER <token>', 'BEARER ' || :'tok'),
	(4, 'Bearer   <token> (several spaces)', 'Bearer   ' || :'tok'),
	(5, 'Bearer <token> (trailing space)', 'Bearer ' || :'tok' || ' '),
	(6, 'NULL (and no request.headers)', NULL),
	(7, 'empty', ''),
	(8, 'Bearer', 'Bearer'),
	(9, 'Bearer + spaces only', 'Bearer    '),
	(10, 'Basic scheme', 'Basic ' || :'tok'),
	(11, 'token without scheme', :'tok'),
	(12, 'Bearer<token> (no space)', 'Bearer' || :'tok'),
	(13, 'Bearer<TAB><token>', E'Bearer\t' || :'tok'),
	(14, 'Bearer <malformed>', 'Bearer tgtp_nope'),
	(15, 'Bearer <one character changed>', 'Bearer ' || overlay(:'tok' placing CASE WHEN substr(:'tok', 30, 1) = 'x' THEN 'y' ELSE 'x' END from 30 for 1)),
	(16, 'Bearer <1 MB>', 'Bearer ' || repeat('a', 1048576));
SELECT n, label, public.state(format('SELECT tgt_profile.authorize(%L, %L)', 'shop', h)) AS result
  FROM headers ORDER BY n;

-- No error text quotes the presented token.
SELECT count(*) AS messages_with_token FROM headers
 WHERE public.state(format('SELECT tgt_profile.authorize(%L, %L)', 'shop', h)) LIKE '%' || substr(:'tok', 10) || '%';

-- Revoked, expired and other clients' tokens: one message for all.
SELECT tgt_profile.create_client('mall', true);
SELECT token AS mall_tok FROM tgt_profile.generate_token('mall') \gset
SELECT public.state(format('SELECT tgt_profile.authorize(%L, %L)', 'shop', 'Bearer ' || :'mall_tok')) AS other_clients_token;
SELECT public.state(format('SELECT tgt_profile.authorize(%L, %L)', 'mall', 'Bearer ' || :'mall_tok')) AS own_token;
UPDATE tgt_profile.token_store SET expires_at = now() WHERE client = 'mall';
SELECT public.state(format('SELECT tgt_profile.authorize(%L, %L)', 'mall', 'Bearer ' || :'mall_tok')) AS expired_token;
SELECT token AS tok2 FROM tgt_profile.generate_token('shop') \gset
SELECT public.state(format('SELECT tgt_profile.authorize(%L, %L)', 'shop', 'Bearer ' || :'tok')) AS replaced_token;

-- The PostgREST convention: request.headers, read when the argument is NULL.
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' || :'tok2')::text, false) IS NOT NULL AS set;
SELECT public.state($$SELECT tgt_profile.authorize('shop')$$) AS from_request_headers;
SELECT public.state($$SELECT tgt_profile.authorize('shop', NULL)$$) AS explicit_null;
-- an explicit argument wins over request.headers
SELECT public.state($$SELECT tgt_profile.authorize('shop', 'Bearer tgtp_nope')$$) AS explicit_wins;
SELECT v AS request_headers, public.state($$SELECT tgt_profile.authorize('shop')$$) AS result
  FROM (VALUES ('{"authorization": "Bearer tgtp_nope"}'),
			   ('{"authorization": 42}'),
			   ('{"Authorization": "whatever"}'),
			   ('{}'), ('[]'), ('not json'), (''), ('{"authorization": "Bearer x", "authorization": "y"}')) h(v),
	   LATERAL (SELECT set_config('request.headers', v, false)) s;
RESET request.headers;
SELECT public.state($$SELECT tgt_profile.authorize('shop')$$) AS headers_reset;

-- Argument errors.
SELECT public.state($$SELECT tgt_profile.authorize('nope', 'Bearer x')$$) AS unknown_client;
SELECT public.state($$SELECT tgt_profile.authorize(NULL)$$) AS null_client;
SELECT public.state($$SELECT tgt_profile.authorize('Shop!')$$) AS bad_client;

-- Turning require_auth off lets every call through again.
SELECT tgt_profile.set_require_auth('shop', false);
SELECT public.state($$SELECT tgt_profile.authorize('shop')$$) AS auth_off;
SELECT public.state($$SELECT tgt_profile.set_require_auth('shop', NULL)$$) AS null_flag;
SELECT public.state($$SELECT tgt_profile.set_require_auth('nope', true)$$) AS unknown;
SELECT actor, action, detail FROM tgt_profile.audit_log WHERE client = 'shop' AND action = 'update_settings' ORDER BY id;

SELECT tgt_profile.drop_client('shop');
SELECT tgt_profile.drop_client('mall');
