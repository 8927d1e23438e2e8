-- tgt_profile.client_relation(tbl, client): the relation on this node that
-- holds a client's rows, the storage layer's own answer (placement.c).  On
-- one node: the table itself, or, when profiles is hash-partitioned
-- (tgt_profile.profile_partitions), the partition the rows land in.  The
-- output is the same in both layouts: the answer is compared with where
-- the rows really are (tableoid).  Citus shards: test/citus/003.
CREATE ROLE regress_cr_api IN ROLE tgt_profile_api;
CREATE ROLE regress_cr_appr IN ROLE tgt_profile_approver;
CREATE ROLE regress_cr_admin IN ROLE tgt_profile_admin;

-- Admin only: EXECUTE for tgt_profile_admin alone.
SELECT p.oid::regprocedure, p.provolatile, p.proisstrict, p.prosecdef, p.proacl
  FROM pg_proc p WHERE p.proname = 'client_relation'
   AND p.pronamespace = 'tgt_profile'::regnamespace;
SELECT r.role,
	   (SELECT x FROM (SELECT set_config('role', r.role, true)) s,
			   LATERAL (SELECT public.state($$SELECT tgt_profile.client_relation('settings', 'x')$$) x) y) AS result
  FROM (VALUES ('regress_cr_api'), ('regress_cr_appr'), ('regress_cr_admin')) r(role);

-- Every table but profiles: the table itself, for any client code.
SET ROLE regress_cr_admin;
SELECT t, tgt_profile.client_relation(t, 'web') AS relation
  FROM unnest(ARRAY['settings', 'approvers', 'token_store', 'audit_log',
					'batches', 'batch_rejects']) t;
SELECT count(*) AS clients,
	   count(*) FILTER (WHERE tgt_profile.client_relation('batches', c) = 'tgt_profile.batches'::regclass) AS batches
  FROM (SELECT 'c' || i FROM generate_series(1, 100) i) x(c);
RESET ROLE;

-- profiles: the relation each client's rows land in, for 60 clients.
SELECT count(*) AS created FROM generate_series(1, 60) i, LATERAL tgt_profile.create_client('cr' || i) c;
SELECT count(*) AS upserted
  FROM generate_series(1, 60) i,
	   LATERAL tgt_profile.upsert_profile('cr' || i, '{"a": 1}', 'p' || i) u;
SELECT count(*) AS clients,
	   count(*) FILTER (WHERE tgt_profile.client_relation('profiles', p.client) = p.tableoid::regclass) AS same,
	   count(DISTINCT p.tableoid) = (SELECT greatest(count(*), 1) FROM pg_inherits
									  WHERE inhparent = 'tgt_profile.profiles'::regclass) AS every_partition_used
  FROM tgt_profile.profiles p WHERE p.client LIKE 'cr%';
-- the answer is one of profiles' partitions (or profiles itself) for any
-- text, also codes no create_client accepts
SELECT count(*) FILTER (WHERE r IN (SELECT 'tgt_profile.profiles'::regclass
									 UNION ALL SELECT inhrelid::regclass FROM pg_inherits
									  WHERE inhparent = 'tgt_profile.profiles'::regclass)) AS known,
	   count(*) AS total
  FROM (SELECT tgt_profile.client_relation('profiles', c) r
		  FROM unnest(ARRAY['', 'Zürich', '東京', repeat('x', 1000), 'a b', E'tab\there']) c) x;
-- the same answer, cached, and again after an invalidation (ANALYZE
-- changes pg_class and the relcache entry)
SELECT count(*) FILTER (WHERE tgt_profile.client_relation('profiles', p.client) = p.tableoid::regclass) AS same_before
  FROM tgt_profile.profiles p WHERE p.client LIKE 'cr%';
ANALYZE tgt_profile.profiles;
SELECT count(*) FILTER (WHERE tgt_profile.client_relation('profiles', p.client) = p.tableoid::regclass) AS same_after
  FROM tgt_profile.profiles p WHERE p.client LIKE 'cr%';

-- NULL in, NULL out; a table that holds no clients' rows: 22023.
SELECT tgt_profile.client_relation(NULL, 'web') IS NULL AS null_table,
	   tgt_profile.client_relation('settings', NULL) IS NULL AS null_client;
SELECT public.state($$SELECT tgt_profile.client_relation('profiles_pkey', 'web')$$);
SELECT tgt_profile.client_relation('pg_class', 'web');

SELECT count(*) AS dropped FROM generate_series(1, 60) i, LATERAL tgt_profile.drop_client('cr' || i);
DROP ROLE regress_cr_api, regress_cr_appr, regress_cr_admin;
