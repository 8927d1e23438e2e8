-- The batch reader runs ahead in a thread of its own
-- (tgt_profile.batch_read_ahead, on by default): the same results with it
-- and without, and the thread is gone after every way a batch ends, error
-- and cancel included.  threads() counts the backend's threads.
SELECT tgt_profile.create_client('ahead');
CREATE FUNCTION public.threads() RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM pg_ls_dir('/proc/' || pg_backend_pid() || '/task') $$;
CREATE FUNCTION public.ahead_bulk(batch text)
	RETURNS TABLE (total bigint, created bigint, updated bigint, unchanged bigint, rejected bigint)
	LANGUAGE sql AS $$
	SELECT rows_total, rows_created, rows_updated, rows_unchanged, rows_rejected
	  FROM tgt_profile.bulk_update('ahead', batch) $$;
-- 25,000 NDJSON records (three chunks of the thread's blocks), one bad
CREATE TABLE public.ahead_batch AS
SELECT string_agg(CASE WHEN i = 20000 THEN '{"pcId": 7}'
                       ELSE format('{"pcId":"a%s","n":%s,"s":"v%s"}', i, i, i) END, E'\n') AS b
  FROM generate_series(1, 25000) i;
SELECT public.threads() AS threads_before;

-- with the thread, then without: the same counts and the same profiles
SELECT * FROM public.ahead_bulk((SELECT b FROM public.ahead_batch));
SELECT count(*), md5(string_agg(tnt_id || attributes::text, ',' ORDER BY tnt_id))
  FROM tgt_profile.profiles WHERE client = 'ahead' \gset with_
SELECT public.threads() AS threads_after_batch;
DELETE FROM tgt_profile.profiles WHERE client = 'ahead';
SET tgt_profile.batch_read_ahead = off;
SELECT * FROM public.ahead_bulk((SELECT b FROM public.ahead_batch));
SELECT count(*) = :with_count AS same_count,
       md5(string_agg(tnt_id || attributes::text, ',' ORDER BY tnt_id)) = :'with_md5' AS same_profiles
  FROM tgt_profile.profiles WHERE client = 'ahead';
RESET tgt_profile.batch_read_ahead;

-- the unchanged re-send, the same batch as a JSON array (unchanged too),
-- and as an Adobe file of 30,000 rows (whose values are strings: updates)
SELECT * FROM public.ahead_bulk((SELECT b FROM public.ahead_batch));
SELECT * FROM public.ahead_bulk((SELECT '[' || replace(b, E'\n', ',') || ']' FROM public.ahead_batch));
SELECT * FROM public.ahead_bulk((SELECT E'batch=pcId,n,s\n' || string_agg(format('a%s,%s,v%s', i, i, i), E'\n')
                                   FROM generate_series(1, 30000) i));

-- a batch broken after its first blocks: 22P02, nothing applied, no thread
SELECT * FROM public.ahead_bulk((SELECT '[' || replace(b, E'\n', ',') || ',{' FROM public.ahead_batch));
SELECT public.threads() AS threads_after_broken;
-- a batch over max_batch_rows, found while the thread reads ahead
SET tgt_profile.max_batch_rows = 15000;
SELECT * FROM public.ahead_bulk((SELECT b FROM public.ahead_batch));
RESET tgt_profile.max_batch_rows;
SELECT public.threads() AS threads_after_limit;
-- an error caught by PL/pgSQL: the thread is joined before the handler runs
DO $$
BEGIN
	PERFORM * FROM public.ahead_bulk((SELECT '[' || replace(b, E'\n', ',') || ',{' FROM public.ahead_batch));
EXCEPTION WHEN invalid_text_representation THEN
	RAISE NOTICE 'caught %, threads: %', SQLSTATE, public.threads();
END
$$;
-- a cancel (statement_timeout) while a long batch is read: 57014, no thread
CREATE TABLE public.ahead_long AS
SELECT string_agg(format('{"pcId":"l%s","n":%s}', i % 1000, i), E'\n') AS b
  FROM generate_series(1, 400000) i;
\set VERBOSITY terse
SET statement_timeout = '100ms';
SELECT * FROM public.ahead_bulk((SELECT b FROM public.ahead_long));
RESET statement_timeout;
\set VERBOSITY default
SELECT public.threads() AS threads_after_cancel;
SELECT count(*) AS applied_of_cancelled FROM tgt_profile.profiles WHERE client = 'ahead' AND tnt_id LIKE 'l%';

DROP TABLE public.ahead_batch, public.ahead_long;
DROP FUNCTION public.ahead_bulk(text), public.threads();
SELECT tgt_profile.drop_client('ahead');
