-- Token format, storage, verification, expiry and rotation.
SELECT tgt_profile.create_client('tok');
SELECT tgt_profile.create_client('other');

-- Format: tgtp_ + 48 URL-safe characters; the hint is its first 9.
SELECT token AS t1, token_id AS t1_id FROM tgt_profile.generate_token('tok') \gset
SELECT length(:'t1') AS len, :'t1' ~ '^tgtp_[A-Za-z0-9_-]{48}$' AS format_ok;
SELECT hint = left(:'t1', 9) AS hint_ok, state FROM tgt_profile.tokens WHERE token_id = :t1_id;
-- Only the SHA-256 is stored, and it equals pgcrypto's digest().
SELECT token_hash = digest(:'t1', 'sha256') AS hash_matches_pgcrypto
  FROM tgt_profile.token_store WHERE token_id = :t1_id;
-- The token text is in no table.
SELECT count(*) AS tables_holding_token FROM (
	SELECT 1 FROM tgt_profile.settings s WHERE s::text LIKE '%' || :'t1' || '%'
	UNION ALL SELECT 1 FROM tgt_profile.token_store s WHERE s::text LIKE '%' || substr(:'t1', 10) || '%'
	UNION ALL SELECT 1 FROM tgt_profile.audit_log s WHERE s::text LIKE '%' || substr(:'t1', 10) || '%'
	UNION ALL SELECT 1 FROM tgt_profile.approvers s WHERE s::text LIKE '%' || substr(:'t1', 10) || '%') x;
-- expires_in NULL takes settings.token_ttl (90 days by default).
SELECT expires_at = created_at + interval '90 days' AS default_ttl
  FROM tgt_profile.tokens WHERE token_id = :t1_id;

SELECT tgt_profile.verify_token('tok', :'t1') AS good;

-- Every bad input is false, never an error.
SELECT input, tgt_profile.verify_token('tok', v) AS verified FROM (VALUES
	('empty', ''),
	('null', NULL),
	('prefix only', 'tgtp_'),
	('wrong prefix', 'tgtx_' || substr(:'t1', 6)),
	('upper-case prefix', 'TGTP_' || substr(:'t1', 6)),
	('one changed character', overlay(:'t1' placing CASE WHEN substr(:'t1', 20, 1) = 'A' THEN 'B' ELSE 'A' END from 20 for 1)),
	('truncated', left(:'t1', 52)),
	('one character more', :'t1' || 'A'),
	('trailing whitespace', :'t1' || ' '),
	('leading whitespace', ' ' || :'t1'),
	('bearer header instead of token', 'Bearer ' || :'t1'),
	('non-ASCII character', overlay(:'t1' placing 'é' from 30 for 1)),
	('NUL-free garbage', repeat('x', 53)),
	('1 MB', repeat('tgtp_', 209716)),
	('SQL', $$' OR 1=1 --$$)
) AS cases(input, v);
SELECT tgt_profile.verify_token(NULL, :'t1') AS null_client,
	   tgt_profile.verify_token('', :'t1') AS empty_client,
	   tgt_profile.verify_token('nope', :'t1') AS unknown_client,
	   tgt_profile.verify_token('other', :'t1') AS other_clients_token,
	   tgt_profile.verify_token(repeat('a', 10000), :'t1') AS long_client,
	   tgt_profile.verify_token('TOK', :'t1') AS bad_client_code;
-- Invalid UTF-8 cannot even reach the function in a UTF-8 database.
SELECT tgt_profile.verify_token('tok', E'tgtp_\xff');

-- 1,000 generations never collide (each one revokes the one before).
CREATE TEMP TABLE many (token text);
DO $$
BEGIN
	FOR i IN 1..1000 LOOP
		INSERT INTO many SELECT token FROM tgt_profile.generate_token('other');
	END LOOP;
END
$$;
SELECT count(DISTINCT token) AS distinct_tokens, count(DISTINCT left(token, 9)) > 900 AS hints_spread FROM many;
SELECT count(*) FILTER (WHERE state = 'active') AS active,
	   count(*) FILTER (WHERE state = 'revoked') AS revoked
  FROM tgt_profile.tokens WHERE client = 'other';
DROP TABLE many;

-- Regeneration: the old token fails at once, the new one works.
SELECT token AS t2, token_id AS t2_id FROM tgt_profile.generate_token('tok', '1 day') \gset
SELECT tgt_profile.verify_token('tok', :'t1') AS old, tgt_profile.verify_token('tok', :'t2') AS new;
SELECT token_id = :t1_id AS is_t1, state FROM tgt_profile.tokens WHERE client = 'tok' ORDER BY token_id;

-- Rotation with grace: the old token stays valid until the grace ends.
SELECT token AS t3 FROM tgt_profile.generate_token('tok', '1 day', '1 second') \gset
SELECT tgt_profile.verify_token('tok', :'t2') AS old_in_grace, tgt_profile.verify_token('tok', :'t3') AS new;
SELECT state, revoked_at - created_at < interval '1 day' AS revoke_planned
  FROM tgt_profile.tokens WHERE token_id = :t2_id;
SELECT pg_sleep(1.2);
SELECT tgt_profile.verify_token('tok', :'t2') AS old_after_grace, tgt_profile.verify_token('tok', :'t3') AS new;
SELECT state FROM tgt_profile.tokens WHERE token_id = :t2_id;

-- A second rotation without grace ends a running grace at once.
SELECT token AS t4 FROM tgt_profile.generate_token('tok', '1 day', '1 hour') \gset
SELECT tgt_profile.verify_token('tok', :'t3') AS in_grace;
SELECT token AS t5 FROM tgt_profile.generate_token('tok', '1 day') \gset
SELECT tgt_profile.verify_token('tok', :'t3') AS grace_ended,
	   tgt_profile.verify_token('tok', :'t4') AS previous,
	   tgt_profile.verify_token('tok', :'t5') AS current;

-- A rotation with grace touches only the token it revokes: a token already
-- in grace keeps its end (its revocation would not move earlier).
SELECT count(*) FROM tgt_profile.generate_token('tok', '1 day', '1 hour');
SELECT count(*) FROM tgt_profile.generate_token('tok', '1 day', '1 hour');
SELECT detail->>'revoked' AS revoked_by_last_rotation
  FROM tgt_profile.audit_log WHERE client = 'tok' AND action = 'generate_token' ORDER BY id DESC LIMIT 1;
SELECT count(*) FILTER (WHERE state = 'grace') AS in_grace, count(*) FILTER (WHERE state = 'active') AS active
  FROM tgt_profile.tokens WHERE client = 'tok';
SELECT count(*) FROM tgt_profile.generate_token('tok', '1 day');

-- Grace never extends a token past its own expiry.
SELECT token AS t6, token_id AS t6_id FROM tgt_profile.generate_token('tok', '1 hour') \gset
SELECT count(*) FROM tgt_profile.generate_token('tok', '1 day', '2 hours');
SELECT revoked_at = expires_at AS capped_at_expiry FROM tgt_profile.tokens WHERE token_id = :t6_id;

-- Expiry at the edge.
SELECT token AS t7, token_id AS t7_id FROM tgt_profile.generate_token('tok', '1 day') \gset
UPDATE tgt_profile.token_store SET expires_at = now() + interval '10 seconds' WHERE token_id = :t7_id;
SELECT tgt_profile.verify_token('tok', :'t7') AS just_before_expiry;
BEGIN;
UPDATE tgt_profile.token_store SET expires_at = now() WHERE token_id = :t7_id;
SELECT tgt_profile.verify_token('tok', :'t7') AS at_expiry;
-- expiry is judged by the clock, not by the transaction's start
UPDATE tgt_profile.token_store SET expires_at = clock_timestamp() + interval '1 minute' WHERE token_id = :t7_id;
SELECT tgt_profile.verify_token('tok', :'t7') AS before_expiry_by_the_clock;
ROLLBACK;
UPDATE tgt_profile.token_store SET expires_at = now() - interval '1 microsecond' WHERE token_id = :t7_id;
SELECT tgt_profile.verify_token('tok', :'t7') AS just_past_expiry;
SELECT state FROM tgt_profile.tokens WHERE token_id = :t7_id;

-- Durations: positive, within max_token_ttl (calendar arithmetic), grace in [0, max].
SELECT d, public.state(format('SELECT tgt_profile.generate_token(%L, %L)', 'tok', d)) AS result
  FROM (VALUES ('0'), ('-1 day'), ('1 year'), ('1 year 1 second'), ('365 days'), ('13 months'),
			   ('1 mon -31 days')) v(d);
SELECT g, public.state(format('SELECT tgt_profile.generate_token(%L, %L, %L)', 'tok', '1 day', g)) AS result
  FROM (VALUES ('-1 second'), ('0'), ('1 year'), ('1 year 1 day')) v(g);
UPDATE tgt_profile.settings SET max_token_ttl = '1 day', token_ttl = '1 hour' WHERE client = 'tok';
SELECT public.state($$SELECT tgt_profile.generate_token('tok', '2 days')$$) AS over_new_max;
SELECT expires_at = now() + interval '1 hour' AS uses_token_ttl FROM tgt_profile.generate_token('tok');

-- revoke_tokens: every valid token, counted; the audit log has no secret.
SELECT token AS t8 FROM tgt_profile.generate_token('tok', '1 hour', '1 hour') \gset
SELECT tgt_profile.revoke_tokens('tok') AS revoked;
SELECT tgt_profile.revoke_tokens('tok') AS revoked_again;
SELECT tgt_profile.verify_token('tok', :'t8') AS after_revoke;
SELECT action, count(*) FROM tgt_profile.audit_log WHERE client = 'tok' GROUP BY 1 ORDER BY 1;

-- Errors.
SELECT public.state($$SELECT tgt_profile.generate_token('nope')$$);
SELECT public.state($$SELECT tgt_profile.generate_token(NULL)$$);
SELECT public.state($$SELECT tgt_profile.generate_token('Bad Code')$$);
SELECT public.state($$SELECT tgt_profile.revoke_tokens('nope')$$);

-- Dropping a client removes its tokens; the audit log stays.
SELECT tgt_profile.drop_client('tok');
SELECT tgt_profile.verify_token('tok', :'t5') AS after_drop;
SELECT count(*) AS tokens_left FROM tgt_profile.token_store WHERE client = 'tok';
SELECT count(*) > 0 AS audit_kept FROM tgt_profile.audit_log WHERE client = 'tok';
SELECT tgt_profile.drop_client('other');
