-- Fixtures of bench-bulk.sh (psql -v dir=<directory of gen.py's files>, as a superuser).
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION tgt_profile CASCADE;
SELECT tgt_profile.create_client('c');
CREATE SCHEMA bench;

-- The batches as text, read once from the server-side files, so that a
-- measured statement gets its batch without a giant literal and without
-- the file read.  Unlogged and uncompressed (STORAGE EXTERNAL): reading one
-- back costs a detoast of plain chunks from shared buffers (tens of ms).
CREATE UNLOGGED TABLE bench.batch (name text PRIMARY KEY, body text NOT NULL);
ALTER TABLE bench.batch ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO bench.batch VALUES ('csv', pg_read_file(:'dir' || '/batch.csv'));
INSERT INTO bench.batch VALUES ('ndjson', pg_read_file(:'dir' || '/batch.ndjson'));
INSERT INTO bench.batch VALUES ('json', pg_read_file(:'dir' || '/batch.json'));

-- Tables of the same shape as tgt_profile.profiles (columns, defaults,
-- primary key, unique key): the COPY reference and the plain SQL target.
CREATE TABLE bench.copy_target (LIKE tgt_profile.profiles INCLUDING ALL);
CREATE TABLE bench.plain_target (LIKE tgt_profile.profiles INCLUDING ALL);
-- The plain SQL's table as tgt_profile.profiles is stored too: LIKE copies
-- no storage parameter, so profiles' fillfactor is set on this one.
CREATE TABLE bench.plain_target_ff (LIKE tgt_profile.profiles INCLUDING ALL);
SELECT pg_catalog.format('ALTER TABLE bench.plain_target_ff SET (%s)',
                         pg_catalog.array_to_string(reloptions, ', '))
  FROM pg_catalog.pg_class
 WHERE oid = 'tgt_profile.profiles'::regclass AND reloptions IS NOT NULL \gexec
VACUUM ANALYZE bench.batch;
