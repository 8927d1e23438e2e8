-- Fixtures of bench-merge.sh, part B (psql -v dir=DIR -v n=N -v pct=PCT,
-- as a superuser, the server able to write DIR).
--
-- Client 'b' holds n profiles, tnt_id md5('k' || i) || '.35_0' for record
-- i = 1..n, with five attributes param1..param5 (10-20 characters).  For
-- pct % of them (i % 100 < pct) the profile is a customer's (third-party
-- id crm-i) into which an anonymous profile was merged at a login: its
-- pcId, md5('p' || i) || '.35_0', is an alias of it (made here by
-- upsert_profile(merge => true), like a real login).  Two batches (Adobe
-- CSV) of n records with the same new values of param1..param5 for the
-- same profiles:
--   alias   the customers' records keyed by the alias pcId
--   plain   every record keyed by its profile's own tnt_id
-- Files written into DIR: alias.csv, plain.csv (the batches), state.profiles
-- and state.aliases (the starting state, for COPY; rows of the same size
-- as after a batch, so also the COPY reference's rows).
\set ON_ERROR_STOP on
\set f_profiles :dir '/state.profiles'
\set f_aliases :dir '/state.aliases'
\set f_plain :dir '/plain.csv'
\set f_alias :dir '/alias.csv'
SET client_min_messages = warning;
SELECT tgt_profile.create_client('b');
CREATE SCHEMA bench;

-- v(h, i, j): the value of attribute j (1..5) of record i, 10-20
-- characters of h (md5 of the record and the round): overlapping slices,
-- one md5 a record and round instead of five.  Its length depends on i and
-- j only, so that the rows before and after a batch have the same size.
CREATE FUNCTION bench.v(h text, i int, j int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT substr(h, 2 * j - 1, 10 + (i + j) % 11)
$$;

CREATE UNLOGGED TABLE bench.rec AS
SELECT i, i % 100 < :pct AS customer,
	   md5('k' || i) || '.35_0' AS tnt_id,
	   CASE WHEN i % 100 < :pct THEN md5('p' || i) || '.35_0' END AS alias,
	   CASE WHEN i % 100 < :pct THEN 'crm-' || i END AS third_party_id,
	   md5('0-' || i) AS h0, md5('1-' || i) AS h1
  FROM generate_series(1, :n) i;
ALTER TABLE bench.rec ADD PRIMARY KEY (i);

-- The profiles, then the anonymous ones merged into the customers'.
INSERT INTO tgt_profile.profiles (client, tnt_id, third_party_id, attributes, created_at, updated_at, last_seen_at)
SELECT 'b', tnt_id, third_party_id,
	   jsonb_build_object('param1', bench.v(h0, i, 1), 'param2', bench.v(h0, i, 2), 'param3', bench.v(h0, i, 3),
						  'param4', bench.v(h0, i, 4), 'param5', bench.v(h0, i, 5)),
	   now(), now(), now()
  FROM bench.rec;
INSERT INTO tgt_profile.profiles (client, tnt_id, third_party_id, attributes, created_at, updated_at, last_seen_at)
SELECT 'b', alias, NULL, jsonb_build_object('campaign', 'spring', 'visits', i % 50), now(), now(), now()
  FROM bench.rec WHERE customer;
-- Statistics of the loaded client, as after any bulk load (and so that no
-- plan reads the client's profiles as if it had few).
ANALYZE tgt_profile.profiles;
SELECT count(*) FILTER (WHERE u.status = 'merged') AS merged, count(*) AS calls
  FROM bench.rec r, LATERAL tgt_profile.upsert_profile('b', '{}', r.alias, r.third_party_id, merge => true) u
 WHERE r.customer \gset
SELECT :merged = :calls AND :calls = (SELECT count(*) FROM bench.rec WHERE customer) AS ok \gset
\if :ok
\else
\warn 'not every login merged: ' :merged ' of ' :calls
SELECT 1 / 0;
\endif

COPY (SELECT * FROM tgt_profile.profiles WHERE client = 'b') TO :'f_profiles';
COPY (SELECT * FROM tgt_profile.aliases WHERE client = 'b') TO :'f_aliases';

-- The batches: a header line, then one line a record, in record order (the
-- keys are in random order).  COPY of one text column without tabs or
-- backslashes writes the lines as they are.
COPY (SELECT line FROM (SELECT 0 AS i, 'batch=pcId,param1,param2,param3,param4,param5' AS line
						UNION ALL
						SELECT i, tnt_id || ',' || bench.v(h1, i, 1) || ',' || bench.v(h1, i, 2) || ','
								  || bench.v(h1, i, 3) || ',' || bench.v(h1, i, 4) || ',' || bench.v(h1, i, 5)
						  FROM bench.rec) s ORDER BY i) TO :'f_plain';
COPY (SELECT line FROM (SELECT 0 AS i, 'batch=pcId,param1,param2,param3,param4,param5' AS line
						UNION ALL
						SELECT i, coalesce(alias, tnt_id) || ',' || bench.v(h1, i, 1) || ',' || bench.v(h1, i, 2) || ','
								  || bench.v(h1, i, 3) || ',' || bench.v(h1, i, 4) || ',' || bench.v(h1, i, 5)
						  FROM bench.rec) s ORDER BY i) TO :'f_alias';

-- The batches as text, read once (see bulk/setup.sql).
CREATE UNLOGGED TABLE bench.batch (name text PRIMARY KEY, body text NOT NULL);
ALTER TABLE bench.batch ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO bench.batch VALUES ('alias', pg_read_file(:'f_alias'));
INSERT INTO bench.batch VALUES ('plain', pg_read_file(:'f_plain'));

-- The plain SQL's tables and the COPY reference's, of the same shape.
CREATE TABLE bench.plain_profiles (LIKE tgt_profile.profiles INCLUDING ALL);
CREATE TABLE bench.plain_aliases (LIKE tgt_profile.aliases INCLUDING ALL);
CREATE TABLE bench.copy_target (LIKE tgt_profile.profiles INCLUDING ALL);
VACUUM ANALYZE bench.batch, bench.rec;
