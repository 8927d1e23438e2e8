/* tgt_profile install script (copied to tgt_profile--<version>.sql at build) */

\echo Use "CREATE EXTENSION tgt_profile CASCADE" to load this file. \quit

/*
 * Security notes for whoever edits this file:
 * - every object is schema-qualified and every operator in an expression
 *   that is stored is OPERATOR(pg_catalog.x), so no search_path trick can
 *   redirect anything while this script runs or later;
 * - no CREATE OR REPLACE: an object that already exists makes the install
 *   fail instead of being silently taken over;
 * - the C functions are SECURITY INVOKER: they learn the caller from
 *   current_user, check rights themselves, and switch to the extension owner
 *   (with search_path pinned) only around their own parameterised writes.
 */

-- Refuse a tgt_profile schema planted by someone else before the install.
DO $guard$
DECLARE
	owner_name name;
	planted bigint;
BEGIN
	SELECT pg_catalog.pg_get_userbyid(n.nspowner) INTO owner_name
	  FROM pg_catalog.pg_namespace n
	 WHERE n.nspname OPERATOR(pg_catalog.=) 'tgt_profile';
	IF owner_name OPERATOR(pg_catalog.<>) CURRENT_USER THEN
		RAISE EXCEPTION 'schema "tgt_profile" already exists and belongs to role "%"', owner_name
			USING ERRCODE = '42P06',
				  HINT = 'Drop or rename that schema, then run CREATE EXTENSION again.';
	END IF;
	SELECT (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c
			 WHERE c.relnamespace OPERATOR(pg_catalog.=) 'tgt_profile'::pg_catalog.regnamespace)
		 OPERATOR(pg_catalog.+)
		   (SELECT pg_catalog.count(*) FROM pg_catalog.pg_proc p
			 WHERE p.pronamespace OPERATOR(pg_catalog.=) 'tgt_profile'::pg_catalog.regnamespace)
		 OPERATOR(pg_catalog.+)
		   (SELECT pg_catalog.count(*) FROM pg_catalog.pg_operator o
			 WHERE o.oprnamespace OPERATOR(pg_catalog.=) 'tgt_profile'::pg_catalog.regnamespace)
		 OPERATOR(pg_catalog.+)
		   (SELECT pg_catalog.count(*) FROM pg_catalog.pg_type t
			 WHERE t.typnamespace OPERATOR(pg_catalog.=) 'tgt_profile'::pg_catalog.regnamespace)
	  INTO planted;
	IF planted OPERATOR(pg_catalog.>) 0 THEN
		RAISE EXCEPTION 'schema "tgt_profile" already contains objects'
			USING ERRCODE = '42P06',
				  DETAIL = 'A fresh install needs an empty schema; objects placed there before the install could take over its functions.',
				  HINT = 'Drop the schema or its objects, then run CREATE EXTENSION again.';
	END IF;
END
$guard$;

REVOKE ALL ON SCHEMA tgt_profile FROM PUBLIC;

-- Roles are cluster-wide: created only if missing, and they outlive DROP EXTENSION.
DO $roles$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['tgt_profile_admin', 'tgt_profile_approver', 'tgt_profile_api'] LOOP
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) r) THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END
$roles$;

-- admin can do everything an approver or an API caller can.
GRANT tgt_profile_approver, tgt_profile_api TO tgt_profile_admin;
GRANT USAGE ON SCHEMA tgt_profile TO tgt_profile_admin, tgt_profile_approver, tgt_profile_api;

/*
 * Tables.  Every key leads with client, so the schema can be distributed by
 * client; ids need only be unique within their client.
 */
CREATE TABLE tgt_profile.settings (
	client			text NOT NULL,
	require_auth	boolean NOT NULL DEFAULT false,
	token_ttl		interval NOT NULL DEFAULT '90 days',
	max_token_ttl	interval NOT NULL DEFAULT '1 year',
	profile_lifetime interval NOT NULL DEFAULT '14 days',
	daily_row_limit bigint,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	created_by		text NOT NULL DEFAULT CURRENT_USER,
	updated_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_by		text NOT NULL DEFAULT CURRENT_USER,
	CONSTRAINT settings_pkey PRIMARY KEY (client),
	CONSTRAINT settings_client_check
		CHECK (client OPERATOR(pg_catalog.~) '^[a-z0-9][a-z0-9_-]{0,63}$'),
	CONSTRAINT settings_token_ttl_check
		CHECK (token_ttl OPERATOR(pg_catalog.>) '0'::interval
			   AND ('2000-01-01'::timestamp OPERATOR(pg_catalog.+) token_ttl)
				   OPERATOR(pg_catalog.<=)
				   ('2000-01-01'::timestamp OPERATOR(pg_catalog.+) max_token_ttl)),
	-- Bounds (DESIGN.md "Bounds on settings"), in PostgreSQL's order of
	-- intervals.  The settings_guard trigger also refuses a negative field
	-- ('1 mon -29 days'), and checks before these calendar comparisons could
	-- overflow on a huge one.
	CONSTRAINT settings_max_token_ttl_check
		CHECK (max_token_ttl OPERATOR(pg_catalog.>) '0'::interval
			   AND max_token_ttl OPERATOR(pg_catalog.<=) '10 years'::interval),
	CONSTRAINT settings_profile_lifetime_check
		CHECK (profile_lifetime OPERATOR(pg_catalog.>=) '1 hour'::interval
			   AND profile_lifetime OPERATOR(pg_catalog.<=) '10 years'::interval),
	CONSTRAINT settings_daily_row_limit_check
		CHECK (daily_row_limit OPERATOR(pg_catalog.>=) 0)
);
COMMENT ON TABLE tgt_profile.settings IS 'One row per client: the client registry and its settings';

CREATE TABLE tgt_profile.approvers (
	client		text NOT NULL REFERENCES tgt_profile.settings (client) ON DELETE CASCADE,
	member		text NOT NULL,
	level		text NOT NULL DEFAULT 'approver',
	granted_by	text NOT NULL,
	granted_at	timestamptz NOT NULL,
	CONSTRAINT approvers_pkey PRIMARY KEY (client, member),
	CONSTRAINT approvers_level_check
		CHECK (level OPERATOR(pg_catalog.=) ANY (ARRAY['approver', 'admin']))
);
COMMENT ON TABLE tgt_profile.approvers IS 'Roles that may manage a client''s tokens and settings (level admin: its approvers too)';

CREATE SEQUENCE tgt_profile.token_id_seq;

-- Only the SHA-256 of a token is stored; the token text is never kept.
CREATE TABLE tgt_profile.token_store (
	client		text NOT NULL REFERENCES tgt_profile.settings (client) ON DELETE CASCADE,
	token_id	bigint NOT NULL DEFAULT pg_catalog.nextval('tgt_profile.token_id_seq'),
	token_hash	bytea NOT NULL,
	hint		text NOT NULL,
	created_at	timestamptz NOT NULL,
	created_by	text NOT NULL,
	expires_at	timestamptz NOT NULL,
	revoked_at	timestamptz,
	CONSTRAINT token_store_pkey PRIMARY KEY (client, token_id),
	CONSTRAINT token_store_hash_key UNIQUE (client, token_hash),
	CONSTRAINT token_store_hash_check
		CHECK (pg_catalog.length(token_hash) OPERATOR(pg_catalog.=) 32)
);
ALTER SEQUENCE tgt_profile.token_id_seq OWNED BY tgt_profile.token_store.token_id;

CREATE SEQUENCE tgt_profile.audit_id_seq;

CREATE TABLE tgt_profile.audit_log (
	client	text NOT NULL,
	id		bigint NOT NULL DEFAULT pg_catalog.nextval('tgt_profile.audit_id_seq'),
	at		timestamptz NOT NULL,
	actor	text NOT NULL,
	action	text NOT NULL,
	detail	jsonb NOT NULL DEFAULT '{}',
	CONSTRAINT audit_log_pkey PRIMARY KEY (client, id)
);
ALTER SEQUENCE tgt_profile.audit_id_seq OWNED BY tgt_profile.audit_log.id;
COMMENT ON TABLE tgt_profile.audit_log IS 'Who did what to clients, settings, tokens and approvers (kept after a client is dropped)';

/*
 * Profiles carry no foreign key to settings: a key check per row would
 * double the cost of a bulk update.  drop_client deletes them itself.
 *
 * With tgt_profile.profile_partitions = N (> 0) at install time the table is
 * hash-partitioned by client into N partitions (README, "Partitioning").
 *
 * Its pages are filled to tgt_profile.profile_fillfactor (70 % unless set
 * at install time): a profile is written once and updated many times, and
 * an update that finds room on its page is HOT, which writes no index entry
 * (README, "Fillfactor").
 */
DO $profiles$
DECLARE
	parts integer := COALESCE(
		NULLIF(pg_catalog.current_setting('tgt_profile.profile_partitions', true), '')::integer, 0);
	fill integer := COALESCE(
		NULLIF(pg_catalog.current_setting('tgt_profile.profile_fillfactor', true), '')::integer, 70);
BEGIN
	IF parts OPERATOR(pg_catalog.<) 0 OR parts OPERATOR(pg_catalog.>) 1024 THEN
		RAISE EXCEPTION 'tgt_profile.profile_partitions must lie between 0 and 1024'
			USING ERRCODE = '22023';
	END IF;
	IF fill OPERATOR(pg_catalog.<) 10 OR fill OPERATOR(pg_catalog.>) 100 THEN
		RAISE EXCEPTION 'tgt_profile.profile_fillfactor must lie between 10 and 100'
			USING ERRCODE = '22023';
	END IF;
	EXECUTE pg_catalog.concat(
		'CREATE TABLE tgt_profile.profiles (
			client			text NOT NULL,
			tnt_id			text NOT NULL,
			third_party_id	text,
			attributes		jsonb NOT NULL DEFAULT ''{}'',
			created_at		timestamptz NOT NULL,
			updated_at		timestamptz NOT NULL,
			last_seen_at	timestamptz NOT NULL,
			CONSTRAINT profiles_pkey PRIMARY KEY (client, tnt_id))',
		CASE WHEN parts OPERATOR(pg_catalog.>) 0 THEN ' PARTITION BY HASH (client)'
			 ELSE pg_catalog.format(' WITH (fillfactor = %s)', fill) END);
	FOR i IN 0 .. parts OPERATOR(pg_catalog.-) 1 LOOP
		EXECUTE pg_catalog.format(
			'CREATE TABLE tgt_profile.%I PARTITION OF tgt_profile.profiles FOR VALUES WITH (MODULUS %s, REMAINDER %s) WITH (fillfactor = %s)',
			'profiles_' OPERATOR(pg_catalog.||) i, parts, i, fill);
		EXECUTE pg_catalog.format('ALTER TABLE tgt_profile.%I ENABLE ROW LEVEL SECURITY',
								  'profiles_' OPERATOR(pg_catalog.||) i);
		PERFORM pg_catalog.pg_extension_config_dump(
			pg_catalog.format('tgt_profile.%I', 'profiles_' OPERATOR(pg_catalog.||) i)::pg_catalog.regclass, '');
	END LOOP;
END
$profiles$;
-- partial: most profiles have no third-party id, and need no entry here
CREATE UNIQUE INDEX profiles_third_party_id_key ON tgt_profile.profiles (client, third_party_id)
	WHERE third_party_id IS NOT NULL;

/*
 * aliases (1.2): a pcId merged into a customer's profile (upsert_profile
 * with merge => true) resolves to that profile's tnt_id wherever a pcId is
 * accepted.  An alias always names a profile with a third-party id, so
 * aliases never chain; it is deleted with its profile.  Like profiles, no
 * foreign key: delete_profile, purge_expired and drop_client remove them.
 */
CREATE TABLE tgt_profile.aliases (
	client			text NOT NULL,
	pc_id			text NOT NULL,
	tnt_id			text NOT NULL,
	created_at		timestamptz NOT NULL,
	CONSTRAINT aliases_pkey PRIMARY KEY (client, pc_id)
);
-- a profile's aliases: get_profile lists them, its deletion removes them
CREATE INDEX aliases_tnt_id ON tgt_profile.aliases (client, tnt_id);
COMMENT ON TABLE tgt_profile.aliases IS 'pcIds merged into a customer''s profile, and the tnt_id they resolve to';

CREATE SEQUENCE tgt_profile.batch_id_seq;

CREATE TABLE tgt_profile.batches (
	client			text NOT NULL,
	batch_id		bigint NOT NULL DEFAULT pg_catalog.nextval('tgt_profile.batch_id_seq'),
	status			text NOT NULL,
	format			text NOT NULL,
	rows_total		bigint NOT NULL DEFAULT 0,
	rows_created	bigint NOT NULL DEFAULT 0,
	rows_updated	bigint NOT NULL DEFAULT 0,
	rows_unchanged	bigint NOT NULL DEFAULT 0,
	rows_not_found	bigint NOT NULL DEFAULT 0,
	rows_rejected	bigint NOT NULL DEFAULT 0,
	submitted_by	text NOT NULL,
	submitted_at	timestamptz NOT NULL,
	CONSTRAINT batches_pkey PRIMARY KEY (client, batch_id)
);
ALTER SEQUENCE tgt_profile.batch_id_seq OWNED BY tgt_profile.batches.batch_id;
-- the daily quota sums today's batches of a client
CREATE INDEX batches_client_submitted_at ON tgt_profile.batches (client, submitted_at);

CREATE TABLE tgt_profile.batch_rejects (
	client		text NOT NULL,
	batch_id	bigint NOT NULL,
	row_number	bigint NOT NULL,
	key			text,
	reason		text NOT NULL,
	CONSTRAINT batch_rejects_pkey PRIMARY KEY (client, batch_id, row_number),
	CONSTRAINT batch_rejects_batch_fkey FOREIGN KEY (client, batch_id)
		REFERENCES tgt_profile.batches (client, batch_id) ON DELETE CASCADE
);

/*
 * The one function row-level security calls: may the current user see and
 * manage this client?  (tgt_profile_admin or a superuser: every client; an
 * approver: its own.)  C, STABLE, reads approvers directly.
 */
CREATE FUNCTION tgt_profile.can_manage(client text)
	RETURNS boolean
	LANGUAGE c STABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'tgtp_can_manage';

ALTER TABLE tgt_profile.settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE tgt_profile.approvers ENABLE ROW LEVEL SECURITY;
ALTER TABLE tgt_profile.token_store ENABLE ROW LEVEL SECURITY;
ALTER TABLE tgt_profile.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE tgt_profile.profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE tgt_profile.aliases ENABLE ROW LEVEL SECURITY;
ALTER TABLE tgt_profile.batches ENABLE ROW LEVEL SECURITY;
ALTER TABLE tgt_profile.batch_rejects ENABLE ROW LEVEL SECURITY;

CREATE POLICY settings_read ON tgt_profile.settings FOR SELECT
	USING (tgt_profile.can_manage(client));
CREATE POLICY settings_update ON tgt_profile.settings FOR UPDATE
	USING (tgt_profile.can_manage(client)) WITH CHECK (tgt_profile.can_manage(client));
CREATE POLICY approvers_read ON tgt_profile.approvers FOR SELECT
	USING (tgt_profile.can_manage(client));
CREATE POLICY token_store_read ON tgt_profile.token_store FOR SELECT
	USING (tgt_profile.can_manage(client));
CREATE POLICY audit_log_read ON tgt_profile.audit_log FOR SELECT
	USING (tgt_profile.can_manage(client));
CREATE POLICY profiles_read ON tgt_profile.profiles FOR SELECT
	USING (tgt_profile.can_manage(client));
CREATE POLICY aliases_read ON tgt_profile.aliases FOR SELECT
	USING (tgt_profile.can_manage(client));
CREATE POLICY batches_read ON tgt_profile.batches FOR SELECT
	USING (tgt_profile.can_manage(client));
CREATE POLICY batch_rejects_read ON tgt_profile.batch_rejects FOR SELECT
	USING (tgt_profile.can_manage(client));

-- Nobody writes these tables directly, but for the settings columns below.
REVOKE ALL ON ALL TABLES IN SCHEMA tgt_profile FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA tgt_profile FROM PUBLIC;
GRANT SELECT ON tgt_profile.settings, tgt_profile.approvers, tgt_profile.audit_log,
	tgt_profile.profiles, tgt_profile.aliases, tgt_profile.batches, tgt_profile.batch_rejects
	TO tgt_profile_admin, tgt_profile_approver;
-- Approvers may change their clients' settings; the trigger below keeps the
-- limits (max_token_ttl, daily_row_limit) for tgt_profile_admin.
GRANT UPDATE (require_auth, token_ttl, max_token_ttl, profile_lifetime, daily_row_limit)
	ON tgt_profile.settings TO tgt_profile_admin, tgt_profile_approver;
-- The hash column is readable by nobody but the owner.
GRANT SELECT (client, token_id, hint, created_at, created_by, expires_at, revoked_at)
	ON tgt_profile.token_store TO tgt_profile_admin, tgt_profile_approver;

CREATE VIEW tgt_profile.tokens WITH (security_invoker = true, security_barrier = true) AS
	SELECT t.token_id, t.client, t.hint, t.created_at, t.created_by, t.expires_at, t.revoked_at,
		   CASE WHEN t.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now() THEN 'expired'
				WHEN t.revoked_at IS NULL THEN 'active'
				WHEN t.revoked_at OPERATOR(pg_catalog.>) pg_catalog.now() THEN 'grace'
				ELSE 'revoked' END AS state
	  FROM tgt_profile.token_store t;
COMMENT ON VIEW tgt_profile.tokens IS 'Tokens without their hashes; state is active, grace, revoked or expired';
REVOKE ALL ON tgt_profile.tokens FROM PUBLIC;
GRANT SELECT ON tgt_profile.tokens TO tgt_profile_admin, tgt_profile_approver;

-- client_stats (since 1.1), one row per client to monitor (profiles, tokens, today's
-- batch rows against the daily quota).  security_invoker: each role sees the
-- clients that row-level security shows it.
CREATE VIEW tgt_profile.client_stats WITH (security_invoker = true) AS
	SELECT s.client,
		   (SELECT pg_catalog.count(*) FROM tgt_profile.profiles p
			 WHERE p.client OPERATOR(pg_catalog.=) s.client) AS profiles,
		   (SELECT pg_catalog.count(*) FROM tgt_profile.tokens t
			 WHERE t.client OPERATOR(pg_catalog.=) s.client
			   AND t.state OPERATOR(pg_catalog.=) ANY (ARRAY['active', 'grace'])) AS valid_tokens,
		   (SELECT COALESCE(pg_catalog.sum(b.rows_total), 0) FROM tgt_profile.batches b
			 WHERE b.client OPERATOR(pg_catalog.=) s.client
			   AND b.submitted_at OPERATOR(pg_catalog.>=)
				   (pg_catalog.date_trunc('day', pg_catalog.now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'))::bigint
			   AS rows_today,
		   s.daily_row_limit,
		   (SELECT pg_catalog.max(b.submitted_at) FROM tgt_profile.batches b
			 WHERE b.client OPERATOR(pg_catalog.=) s.client) AS last_batch_at
	  FROM tgt_profile.settings s;
COMMENT ON VIEW tgt_profile.client_stats IS 'Per client: profiles, valid tokens, batch rows today against daily_row_limit, last batch';
REVOKE ALL ON tgt_profile.client_stats FROM PUBLIC;
GRANT SELECT ON tgt_profile.client_stats TO tgt_profile_admin, tgt_profile_approver;

-- Every change of token_store tells the backends' token caches (token_verify.c).
CREATE FUNCTION tgt_profile.token_store_changed()
	RETURNS trigger
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'tgtp_token_store_changed';
REVOKE ALL ON FUNCTION tgt_profile.token_store_changed() FROM PUBLIC;
CREATE TRIGGER token_store_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON tgt_profile.token_store
	FOR EACH STATEMENT EXECUTE FUNCTION tgt_profile.token_store_changed();
-- (1.2) Always, also for writes made with session_replication_role = replica
-- (logical replication's apply, pg_restore --disable-triggers aside): the
-- caches are used only while this trigger fires always (token_verify.c).
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

-- Validates and audits every change of settings, however it is made.
CREATE FUNCTION tgt_profile.settings_guard()
	RETURNS trigger
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'tgtp_settings_guard';
CREATE TRIGGER settings_guard BEFORE UPDATE ON tgt_profile.settings
	FOR EACH ROW EXECUTE FUNCTION tgt_profile.settings_guard();

/* Administration */
CREATE FUNCTION tgt_profile.create_client(client text, require_auth boolean DEFAULT false)
	RETURNS void LANGUAGE c VOLATILE
	AS 'MODULE_PATHNAME', 'tgtp_create_client';
CREATE FUNCTION tgt_profile.drop_client(client text)
	RETURNS void LANGUAGE c VOLATILE
	AS 'MODULE_PATHNAME', 'tgtp_drop_client';
CREATE FUNCTION tgt_profile.grant_approver(client text, member regrole, level text DEFAULT 'approver')
	RETURNS void LANGUAGE c VOLATILE
	AS 'MODULE_PATHNAME', 'tgtp_grant_approver';
CREATE FUNCTION tgt_profile.revoke_approver(client text, member regrole)
	RETURNS void LANGUAGE c VOLATILE
	AS 'MODULE_PATHNAME', 'tgtp_revoke_approver';

/* Settings and tokens */
CREATE FUNCTION tgt_profile.set_require_auth(client text, required boolean)
	RETURNS void LANGUAGE c VOLATILE
	AS 'MODULE_PATHNAME', 'tgtp_set_require_auth';
CREATE FUNCTION tgt_profile.generate_token(client text, expires_in interval DEFAULT NULL,
										   grace interval DEFAULT '0')
	RETURNS TABLE (token text, token_id bigint, expires_at timestamptz)
	LANGUAGE c VOLATILE ROWS 1
	AS 'MODULE_PATHNAME', 'tgtp_generate_token';
CREATE FUNCTION tgt_profile.revoke_tokens(client text)
	RETURNS integer LANGUAGE c VOLATILE
	AS 'MODULE_PATHNAME', 'tgtp_revoke_tokens';

/* Verification: read-only, so it works on a hot standby */
CREATE FUNCTION tgt_profile.verify_token(client text, token text)
	RETURNS boolean LANGUAGE c STABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'tgtp_verify_token';
CREATE FUNCTION tgt_profile.authorize(client text, "authorization" text DEFAULT NULL)
	RETURNS void LANGUAGE c STABLE
	AS 'MODULE_PATHNAME', 'tgtp_authorize';

/* Profiles: each checks authorize() first */
-- merge (1.2): a login; see the README, "Identity merge"
CREATE FUNCTION tgt_profile.upsert_profile(client text, attributes jsonb, pc_id text DEFAULT NULL,
										   third_party_id text DEFAULT NULL,
										   "authorization" text DEFAULT NULL,
										   merge boolean DEFAULT false)
	RETURNS TABLE (tnt_id text, status text)
	LANGUAGE c VOLATILE ROWS 1
	AS 'MODULE_PATHNAME', 'tgtp_upsert_profile';
CREATE FUNCTION tgt_profile.get_profile(client text, pc_id text DEFAULT NULL,
										third_party_id text DEFAULT NULL,
										"authorization" text DEFAULT NULL)
	RETURNS jsonb LANGUAGE c STABLE
	AS 'MODULE_PATHNAME', 'tgtp_get_profile';
CREATE FUNCTION tgt_profile.delete_profile(client text, pc_id text DEFAULT NULL,
										   third_party_id text DEFAULT NULL,
										   "authorization" text DEFAULT NULL)
	RETURNS boolean LANGUAGE c VOLATILE
	AS 'MODULE_PATHNAME', 'tgtp_delete_profile';
CREATE FUNCTION tgt_profile.bulk_update(client text, batch text, "authorization" text DEFAULT NULL,
										create_missing boolean DEFAULT true)
	RETURNS TABLE (batch_id bigint, status text, rows_total bigint, rows_created bigint,
				   rows_updated bigint, rows_unchanged bigint, rows_not_found bigint,
				   rows_rejected bigint)
	LANGUAGE c VOLATILE ROWS 1
	AS 'MODULE_PATHNAME', 'tgtp_bulk_update';
CREATE FUNCTION tgt_profile.batch_status(client text, batch_id bigint, "authorization" text DEFAULT NULL)
	RETURNS jsonb LANGUAGE c STABLE
	AS 'MODULE_PATHNAME', 'tgtp_batch_status';
-- maintenance (cron / pg_cron): profiles not seen for longer than profile_lifetime
CREATE FUNCTION tgt_profile.purge_expired(client text DEFAULT NULL)
	RETURNS bigint LANGUAGE c VOLATILE
	AS 'MODULE_PATHNAME', 'tgtp_purge_expired';

-- PUBLIC executes nothing; each role gets what its job needs.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tgt_profile FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tgt_profile.can_manage(text)
	TO tgt_profile_admin, tgt_profile_approver, tgt_profile_api;
GRANT EXECUTE ON FUNCTION
	tgt_profile.create_client(text, boolean),
	tgt_profile.drop_client(text),
	tgt_profile.purge_expired(text)
	TO tgt_profile_admin;
GRANT EXECUTE ON FUNCTION
	tgt_profile.grant_approver(text, regrole, text),
	tgt_profile.revoke_approver(text, regrole),
	tgt_profile.set_require_auth(text, boolean),
	tgt_profile.generate_token(text, interval, interval),
	tgt_profile.revoke_tokens(text)
	TO tgt_profile_approver;
GRANT EXECUTE ON FUNCTION
	tgt_profile.verify_token(text, text),
	tgt_profile.authorize(text, text)
	TO tgt_profile_approver, tgt_profile_api;
GRANT EXECUTE ON FUNCTION
	tgt_profile.upsert_profile(text, jsonb, text, text, text, boolean),
	tgt_profile.get_profile(text, text, text, text),
	tgt_profile.delete_profile(text, text, text, text),
	tgt_profile.bulk_update(text, text, text, boolean),
	tgt_profile.batch_status(text, bigint, text)
	TO tgt_profile_api;

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

-- User data survives pg_dump.
SELECT pg_catalog.pg_extension_config_dump('tgt_profile.settings', '');
SELECT pg_catalog.pg_extension_config_dump('tgt_profile.approvers', '');
SELECT pg_catalog.pg_extension_config_dump('tgt_profile.token_store', '');
SELECT pg_catalog.pg_extension_config_dump('tgt_profile.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('tgt_profile.profiles', '');
SELECT pg_catalog.pg_extension_config_dump('tgt_profile.aliases', '');
SELECT pg_catalog.pg_extension_config_dump('tgt_profile.batches', '');
SELECT pg_catalog.pg_extension_config_dump('tgt_profile.batch_rejects', '');
SELECT pg_catalog.pg_extension_config_dump('tgt_profile.token_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('tgt_profile.audit_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('tgt_profile.batch_id_seq', '');
