/* tgt_profile 1.1 -> 1.2 */

\echo Use "ALTER EXTENSION tgt_profile UPDATE TO '1.2'" to load this file. \quit

-- The token caches are used only while this trigger fires always, also for
-- writes made with session_replication_role = replica (token_verify.c).
ALTER TABLE tgt_profile.token_store ENABLE ALWAYS TRIGGER token_store_changed;

-- Every change of settings tells the backends' settings caches (settings.c),
-- always, like token_store_changed.
CREATE FUNCTION tgt_profile.settings_changed()
	RETURNS trigger
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'tgtp_settings_changed';
REVOKE ALL ON FUNCTION tgt_profile.settings_changed() FROM PUBLIC;
CREATE TRIGGER settings_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON tgt_profile.settings
	FOR EACH STATEMENT EXECUTE FUNCTION tgt_profile.settings_changed();
ALTER TABLE tgt_profile.settings ENABLE ALWAYS TRIGGER settings_changed;

/*
 * Bounds on settings (DESIGN.md "Bounds on settings"): max_token_ttl and
 * profile_lifetime at most 10 years, profile_lifetime at least an hour, no
 * negative field.  A row outside them is brought within them first, by an
 * UPDATE that the settings_guard trigger audits like any other change, with
 * a WARNING per client (an extension script hides NOTICEs).  Clamped rather
 * than adding the constraints NOT VALID: such a row is what made
 * purge_expired() fail for every client, NOT VALID would keep it, and the
 * catalog would differ from a fresh install's.
 */
ALTER TABLE tgt_profile.settings
	DROP CONSTRAINT settings_max_token_ttl_check,
	DROP CONSTRAINT settings_profile_lifetime_check;

DO $bounds$
DECLARE
	r record;
	tt interval;
	mx interval;
	lt interval;
	v interval[];
BEGIN
	FOR r IN SELECT s.client, s.token_ttl, s.max_token_ttl, s.profile_lifetime
			   FROM tgt_profile.settings s ORDER BY s.client LOOP
		BEGIN
			v := ARRAY[r.token_ttl, r.max_token_ttl, r.profile_lifetime];
			FOR i IN 1..3 LOOP
				-- a negative field is taken from the others, hours from days
				-- first ('100 days -1 hour': '99 days 23:00'), then days from
				-- months: the same length, as intervals compare
				FOR j IN 1..2 LOOP
					IF LEAST(EXTRACT(year FROM v[i]), EXTRACT(month FROM v[i]), EXTRACT(day FROM v[i]),
							 EXTRACT(hour FROM v[i]), EXTRACT(minute FROM v[i]),
							 EXTRACT(second FROM v[i])) OPERATOR(pg_catalog.<) 0 THEN
						v[i] := CASE j WHEN 1 THEN pg_catalog.justify_hours(v[i])
									   ELSE pg_catalog.justify_interval(v[i]) END;
					END IF;
				END LOOP;
			END LOOP;
			tt := v[1];
			mx := v[2];
			lt := v[3];
			IF mx OPERATOR(pg_catalog.>) '10 years'::interval THEN
				mx := '10 years';
			END IF;
			IF lt OPERATOR(pg_catalog.<) '1 hour'::interval THEN
				lt := '1 hour';
			ELSIF lt OPERATOR(pg_catalog.>) '10 years'::interval THEN
				lt := '10 years';
			END IF;
			IF tt OPERATOR(pg_catalog.>) '10 years'::interval
			   OR ('2000-01-01'::timestamp OPERATOR(pg_catalog.+) tt)
				  OPERATOR(pg_catalog.>) ('2000-01-01'::timestamp OPERATOR(pg_catalog.+) mx) THEN
				tt := mx;
			END IF;
		EXCEPTION WHEN OTHERS THEN
			-- beyond even that (an overflow): the defaults
			tt := '90 days';
			mx := '1 year';
			lt := '14 days';
		END;
		-- compared as text: '1 mon' and '30 days' are equal intervals
		IF (tt::text, mx::text, lt::text) IS DISTINCT FROM
		   (r.token_ttl::text, r.max_token_ttl::text, r.profile_lifetime::text) THEN
			RAISE WARNING 'settings of client "%" brought within the bounds of tgt_profile 1.2', r.client
				USING DETAIL = pg_catalog.format('token_ttl %s -> %s, max_token_ttl %s -> %s, profile_lifetime %s -> %s.',
												  r.token_ttl, tt, r.max_token_ttl, mx, r.profile_lifetime, lt);
			UPDATE tgt_profile.settings
			   SET token_ttl = tt, max_token_ttl = mx, profile_lifetime = lt
			 WHERE client OPERATOR(pg_catalog.=) r.client;
		END IF;
	END LOOP;
END
$bounds$;

ALTER TABLE tgt_profile.settings
	ADD CONSTRAINT settings_max_token_ttl_check
		CHECK (max_token_ttl OPERATOR(pg_catalog.>) '0'::interval
			   AND max_token_ttl OPERATOR(pg_catalog.<=) '10 years'::interval),
	ADD CONSTRAINT settings_profile_lifetime_check
		CHECK (profile_lifetime OPERATOR(pg_catalog.>=) '1 hour'::interval
			   AND profile_lifetime OPERATOR(pg_catalog.<=) '10 years'::interval);

/*
 * distribute(shard_count) (1.2): on a Citus coordinator, distribute every
 * table by client in one colocation group and delegate the client-first
 * functions to the node holding the client's shard (README, "Scaling out
 * with Citus").  SECURITY DEFINER: Citus lets only a table's owner (the
 * extension owner) distribute it; EXECUTE is granted to tgt_profile_admin
 * alone, so that grant is the admin check.  Idempotent: a second call
 * changes nothing and says so.
 */
CREATE FUNCTION tgt_profile.distribute(shard_count integer DEFAULT NULL, delegate boolean DEFAULT true)
	RETURNS void
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $distribute$
DECLARE
	-- settings first (the others colocate with it), each referenced table
	-- before the tables whose foreign keys point at it
	tables text[] := ARRAY['settings', 'approvers', 'token_store', 'audit_log',
						   'profiles', 'aliases', 'batches', 'batch_rejects'];
	-- every function whose first argument is the client, but can_manage
	-- (row-level security calls it inside queries on shards) and
	-- purge_expired (its client may be NULL: every client)
	functions text[] := ARRAY[
		'tgt_profile.create_client(text, boolean)',
		'tgt_profile.drop_client(text)',
		'tgt_profile.grant_approver(text, regrole, text)',
		'tgt_profile.revoke_approver(text, regrole)',
		'tgt_profile.set_require_auth(text, boolean)',
		'tgt_profile.generate_token(text, interval, interval)',
		'tgt_profile.revoke_tokens(text)',
		'tgt_profile.verify_token(text, text)',
		'tgt_profile.authorize(text, text)',
		'tgt_profile.upsert_profile(text, jsonb, text, text, text, boolean)',
		'tgt_profile.get_profile(text, text, text, text)',
		'tgt_profile.delete_profile(text, text, text, text)',
		'tgt_profile.bulk_update(text, text, text, boolean)',
		'tgt_profile.batch_status(text, bigint, text)'];
	t text;
	f text;
	rel regclass;
	method "char";
	colocation integer;
	settings_colocation integer;
	dist_column text;
	delegated integer := 0;
	is_delegated boolean;
	emptied integer := 0;
	messages text := pg_catalog.current_setting('client_min_messages');
	moved regclass[] := '{}';
	failure text;
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension e
				    WHERE e.extname OPERATOR(pg_catalog.=) 'citus') THEN
		RAISE EXCEPTION 'tgt_profile.distribute() needs the citus extension'
			USING ERRCODE = '0A000',
				  DETAIL = 'Extension "citus" is not installed in this database.',
				  HINT = 'Install Citus on every node, add it to shared_preload_libraries, run CREATE EXTENSION citus and add the workers, then call distribute() on the coordinator.';
	END IF;
	IF (SELECT g.groupid FROM pg_catalog.pg_dist_local_group g)
	   OPERATOR(pg_catalog.<>) 0 THEN
		RAISE EXCEPTION 'tgt_profile.distribute() must run on the coordinator'
			USING ERRCODE = '0A000',
				  DETAIL = 'This node is a Citus worker.',
				  HINT = 'Connect to the coordinator and call it there.';
	END IF;
	IF shard_count OPERATOR(pg_catalog.<) 1 THEN
		RAISE EXCEPTION 'shard_count must be at least 1'
			USING ERRCODE = '22023';
	END IF;

	-- Citus refuses to distribute a table with triggers (settings_guard,
	-- token_store_changed) unless told they are safe: they only read and
	-- write the row's own client, in the same shard group.
	PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
	-- Citus's notices while it copies rows tell to do what is done below
	IF messages OPERATOR(pg_catalog.=) ANY (ARRAY['debug5', 'debug4', 'debug3', 'debug2',
												   'debug1', 'debug', 'log', 'notice']) THEN
		PERFORM pg_catalog.set_config('client_min_messages', 'warning', true);
	END IF;

	FOREACH t IN ARRAY tables LOOP
		rel := pg_catalog.format('tgt_profile.%I', t)::pg_catalog.regclass;
		SELECT p.partmethod, p.colocationid,
			   pg_catalog.column_to_column_name(p.logicalrelid, p.partkey)
		  INTO method, colocation, dist_column
		  FROM pg_catalog.pg_dist_partition p
		 WHERE p.logicalrelid OPERATOR(pg_catalog.=) rel;
		IF FOUND THEN
			-- distributed already: so by us, or refuse to guess
			IF method OPERATOR(pg_catalog.<>) 'h'
			   OR dist_column IS DISTINCT FROM 'client'
			   OR (t OPERATOR(pg_catalog.<>) 'settings'
				   AND colocation IS DISTINCT FROM settings_colocation) THEN
				RAISE EXCEPTION 'table % is a Citus table already, but not distributed by client with tgt_profile.settings', rel
					USING ERRCODE = '55000',
						  DETAIL = 'Citus cannot undistribute or alter a table that belongs to an extension.',
						  HINT = 'Distribute tgt_profile.settings by client in its colocation group (update_distributed_table_colocation() where the shard counts match), then call distribute() again; else dump the data, drop the extension and create it again.';
			END IF;
		ELSIF t OPERATOR(pg_catalog.=) 'settings' THEN
			IF shard_count IS NULL THEN
				PERFORM pg_catalog.create_distributed_table(rel, 'client', colocate_with => 'none');
			ELSE
				PERFORM pg_catalog.create_distributed_table(rel, 'client', colocate_with => 'none',
															 shard_count => shard_count);
			END IF;
			moved := moved OPERATOR(pg_catalog.||) rel;
		ELSE
			PERFORM pg_catalog.create_distributed_table(rel, 'client',
														 colocate_with => 'tgt_profile.settings');
			moved := moved OPERATOR(pg_catalog.||) rel;
		END IF;
		IF t OPERATOR(pg_catalog.=) 'settings' THEN
			SELECT p.colocationid INTO settings_colocation
			  FROM pg_catalog.pg_dist_partition p
			 WHERE p.logicalrelid OPERATOR(pg_catalog.=) rel;
			IF method IS NOT NULL AND shard_count IS NOT NULL
			   AND shard_count OPERATOR(pg_catalog.<>)
				   (SELECT pg_catalog.count(*) FROM pg_catalog.pg_dist_shard s
					 WHERE s.logicalrelid OPERATOR(pg_catalog.=) rel) THEN
				RAISE WARNING 'shard_count % ignored: the tables are distributed already', shard_count
					USING DETAIL = 'Citus cannot change the shard count of a table that belongs to an extension (alter_distributed_table() refuses it): it is chosen by the first call.';
			END IF;
		END IF;
	END LOOP;

	-- Citus copies a table's rows into its shards but leaves them on disk
	-- in the shell, where the C code would still see them: remove them (also
	-- of a table distributed before this call), the referencing tables first.
	FOR i IN REVERSE pg_catalog.array_upper(tables, 1) .. 1 LOOP
		rel := pg_catalog.format('tgt_profile.%I', tables[i])::pg_catalog.regclass;
		-- (pg_partition_tree lists nothing for a table that is no partition)
		IF pg_catalog.pg_relation_size(rel) OPERATOR(pg_catalog.>) 0
		   OR EXISTS (SELECT FROM pg_catalog.pg_partition_tree(rel) pt
					   WHERE pg_catalog.pg_relation_size(pt.relid) OPERATOR(pg_catalog.>) 0) THEN
			PERFORM pg_catalog.truncate_local_data_after_distributing_table(rel);
			emptied := emptied OPERATOR(pg_catalog.+) 1;
		END IF;
	END LOOP;

	-- delegate => false (at the first call) delegates nothing: every call
	-- runs where it is sent, so that no caller can make a Citus that
	-- crashes on a NULL distribution argument plan one (README).  Citus
	-- cannot take a delegation back (an extension's function must keep its
	-- distribution argument).
	FOREACH f IN ARRAY functions LOOP
		is_delegated := EXISTS (
			SELECT FROM pg_catalog.pg_dist_object o
			 WHERE o.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
			   AND o.objid OPERATOR(pg_catalog.=) f::pg_catalog.regprocedure
			   AND o.distribution_argument_index OPERATOR(pg_catalog.=) 0
			   AND o.colocationid OPERATOR(pg_catalog.=) settings_colocation);
		IF delegate AND NOT is_delegated THEN
			PERFORM pg_catalog.create_distributed_function(f::pg_catalog.regprocedure, '$1',
														   colocate_with => 'tgt_profile.settings');
			delegated := delegated OPERATOR(pg_catalog.+) 1;
		ELSIF NOT delegate AND is_delegated THEN
			RAISE EXCEPTION 'the functions of tgt_profile are delegated already'
				USING ERRCODE = '55000',
					  DETAIL = 'Citus cannot take back the delegation of an extension''s function.',
					  HINT = 'Choose delegate => false at the first call of distribute().';
		END IF;
	END LOOP;

	-- Ids need only be unique per client, but one client's rows may be
	-- written from several nodes (a delegated call on the shard's node, a
	-- call through the coordinator): each node's sequences draw from a range
	-- of their own, 2^48 ids from (group id * 2^48), as Citus gives the
	-- sequences of distributed tables.  Again after nodes are added.
	SELECT r.result INTO failure
	  FROM pg_catalog.run_command_on_workers($seq$
		SELECT pg_catalog.count(pg_catalog.setval(s.seq, (g.groupid::bigint OPERATOR(pg_catalog.<<) 48) OPERATOR(pg_catalog.+) 1, false))
		  FROM pg_catalog.pg_dist_local_group g,
			   (VALUES ('tgt_profile.token_id_seq'::pg_catalog.regclass),
					   ('tgt_profile.audit_id_seq'::pg_catalog.regclass),
					   ('tgt_profile.batch_id_seq'::pg_catalog.regclass)) s(seq)
		 WHERE g.groupid OPERATOR(pg_catalog.>) 0
		   AND COALESCE(pg_catalog.pg_sequence_last_value(s.seq), 0)
			   OPERATOR(pg_catalog.<) (g.groupid::bigint OPERATOR(pg_catalog.<<) 48)
	  $seq$) r
	 WHERE NOT r.success
	 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'could not give every node its own range of ids'
			USING ERRCODE = '55000',
				  DETAIL = pg_catalog.format('A node answered: %s', failure),
				  HINT = 'Run distribute() in a transaction of its own, after CREATE EXTENSION committed, with every node reachable (it connects to each one).';
	END IF;

	PERFORM pg_catalog.set_config('client_min_messages', messages, true);
	IF pg_catalog.cardinality(moved) OPERATOR(pg_catalog.=) 0
	   AND delegated OPERATOR(pg_catalog.=) 0 AND emptied OPERATOR(pg_catalog.=) 0 THEN
		RAISE NOTICE 'tgt_profile is already distributed; nothing changed';
	ELSE
		RAISE NOTICE 'tgt_profile distributed by client: % tables distributed, % functions delegated, % local copies emptied',
			pg_catalog.cardinality(moved), delegated, emptied;
	END IF;
END
$distribute$;
REVOKE ALL ON FUNCTION tgt_profile.distribute(integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tgt_profile.distribute(integer, boolean) TO tgt_profile_admin;

/*
 * client_relation(tbl, client) (1.2): the relation on this node that holds
 * a client's rows of one of our tables (the table, its hash partition, the
 * client's local Citus shard), NULL when they are on another node: the
 * storage layer's own answer (placement.c), for DBAs and tests.  Admin
 * only.
 */
CREATE FUNCTION tgt_profile.client_relation(tbl text, client text)
	RETURNS regclass LANGUAGE c STABLE STRICT
	AS 'MODULE_PATHNAME', 'tgtp_client_relation';
REVOKE ALL ON FUNCTION tgt_profile.client_relation(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tgt_profile.client_relation(text, text) TO tgt_profile_admin;

/*
 * lock_client(client, kind) (1.2, internal): the per-client lock of the
 * storage layer, taken on the node that runs it.  On Citus a call whose
 * client's shard is on another node takes it there, through a statement
 * Citus routes to the shard (remote.c).  Only the owner calls it.
 */
CREATE FUNCTION tgt_profile.lock_client(client text, kind integer)
	RETURNS boolean LANGUAGE c VOLATILE STRICT
	AS 'MODULE_PATHNAME', 'tgtp_lock_client';
REVOKE ALL ON FUNCTION tgt_profile.lock_client(text, integer) FROM PUBLIC;

/*
 * fresh_rows(NULL::table, index, client, key) (1.2, internal): a client's
 * settings, approvers or token rows by their key, read under a fresh
 * snapshot on the node that holds them; on Citus a call whose client's
 * shard is on another node reads them there, through a statement Citus
 * routes (remote.c).  Only the owner calls it.
 */
CREATE FUNCTION tgt_profile.fresh_rows(tbl anyelement, index_name text, client text, key bytea)
	RETURNS SETOF anyelement LANGUAGE c STABLE
	AS 'MODULE_PATHNAME', 'tgtp_fresh_rows';
REVOKE ALL ON FUNCTION tgt_profile.fresh_rows(anyelement, text, text, bytea) FROM PUBLIC;

/*
 * Identity merge (1.2): upsert_profile gains merge (README, "Identity
 * merge"); a merged pcId is kept in aliases.
 */
CREATE TABLE tgt_profile.aliases (
	client			text NOT NULL,
	pc_id			text NOT NULL,
	tnt_id			text NOT NULL,
	created_at		timestamptz NOT NULL,
	CONSTRAINT aliases_pkey PRIMARY KEY (client, pc_id)
);
CREATE INDEX aliases_tnt_id ON tgt_profile.aliases (client, tnt_id);
COMMENT ON TABLE tgt_profile.aliases IS 'pcIds merged into a customer''s profile, and the tnt_id they resolve to';
ALTER TABLE tgt_profile.aliases ENABLE ROW LEVEL SECURITY;
CREATE POLICY aliases_read ON tgt_profile.aliases FOR SELECT
	USING (tgt_profile.can_manage(client));
REVOKE ALL ON tgt_profile.aliases FROM PUBLIC;
GRANT SELECT ON tgt_profile.aliases TO tgt_profile_admin, tgt_profile_approver;
SELECT pg_catalog.pg_extension_config_dump('tgt_profile.aliases', '');

-- positional calls of five arguments keep working: merge has a default
DROP FUNCTION tgt_profile.upsert_profile(text, jsonb, text, text, text);
CREATE FUNCTION tgt_profile.upsert_profile(client text, attributes jsonb, pc_id text DEFAULT NULL,
										   third_party_id text DEFAULT NULL,
										   "authorization" text DEFAULT NULL,
										   merge boolean DEFAULT false)
	RETURNS TABLE (tnt_id text, status text)
	LANGUAGE c VOLATILE ROWS 1
	AS 'MODULE_PATHNAME', 'tgtp_upsert_profile';
REVOKE ALL ON FUNCTION tgt_profile.upsert_profile(text, jsonb, text, text, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tgt_profile.upsert_profile(text, jsonb, text, text, text, boolean)
	TO tgt_profile_api;

/*
 * (1.2) profiles' pages are filled to tgt_profile.profile_fillfactor (70 %
 * unless set), so that updates find room on their page and stay HOT
 * (README, "Fillfactor").  The rows already stored keep their pages until
 * they are rewritten (VACUUM FULL, CLUSTER or pg_repack); new pages follow
 * the setting at once.
 */
DO $fillfactor$
DECLARE
	fill integer := COALESCE(
		NULLIF(pg_catalog.current_setting('tgt_profile.profile_fillfactor', true), '')::integer, 70);
	t pg_catalog.regclass;
BEGIN
	IF fill OPERATOR(pg_catalog.<) 10 OR fill OPERATOR(pg_catalog.>) 100 THEN
		RAISE EXCEPTION 'tgt_profile.profile_fillfactor must lie between 10 and 100'
			USING ERRCODE = '22023';
	END IF;
	-- the table, or its partitions (a partitioned table has no pages)
	FOR t IN SELECT c.oid::pg_catalog.regclass FROM pg_catalog.pg_class c
			  WHERE c.relkind OPERATOR(pg_catalog.=) 'r'
				AND (c.oid OPERATOR(pg_catalog.=) 'tgt_profile.profiles'::pg_catalog.regclass
					 OR c.oid IN (SELECT i.inhrelid FROM pg_catalog.pg_inherits i
								   WHERE i.inhparent OPERATOR(pg_catalog.=) 'tgt_profile.profiles'::pg_catalog.regclass))
	LOOP
		EXECUTE pg_catalog.format('ALTER TABLE %s SET (fillfactor = %s)', t, fill);
	END LOOP;
END
$fillfactor$;
