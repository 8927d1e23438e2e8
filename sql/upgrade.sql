-- ALTER EXTENSION UPDATE from every earlier version gives the catalog of a
-- fresh install, and keeps the data.

-- Everything of ours a user can tell apart, as (kind, name, detail).
CREATE FUNCTION pg_temp.tgtp_catalog() RETURNS TABLE (kind text, name text, detail text)
LANGUAGE sql AS $$
	SELECT 'function', p.oid::regprocedure::text,
		   concat_ws(' | ', p.prosecdef, p.provolatile, p.proisstrict, p.proretset, p.prorows,
					 p.proacl::text, pg_get_function_result(p.oid), pg_get_function_arguments(p.oid),
					 p.prosrc, p.probin, p.proconfig::text)
	  FROM pg_proc p WHERE p.pronamespace = 'tgt_profile'::regnamespace
	UNION ALL
	SELECT 'relation', c.relname,
		   concat_ws(' | ', c.relkind, c.relacl::text, c.relrowsecurity, c.relforcerowsecurity,
					 c.reloptions::text, c.relispartition, pg_get_partkeydef(c.oid),
					 pg_get_expr(c.relpartbound, c.oid))
	  FROM pg_class c WHERE c.relnamespace = 'tgt_profile'::regnamespace
	UNION ALL
	SELECT 'column', c.relname || '.' || a.attname,
		   concat_ws(' | ', format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attnum,
					 a.attacl::text, pg_get_expr(d.adbin, d.adrelid))
	  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	 WHERE c.relnamespace = 'tgt_profile'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
	UNION ALL
	SELECT 'policy', tablename || '.' || policyname,
		   concat_ws(' | ', permissive, cmd, roles::text, qual, with_check)
	  FROM pg_policies WHERE schemaname = 'tgt_profile'
	UNION ALL
	SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = 'tgt_profile'
	UNION ALL
	SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid)
	  FROM pg_constraint WHERE connamespace = 'tgt_profile'::regnamespace
	UNION ALL
	SELECT 'trigger', tgrelid::regclass::text || '.' || tgname,
		   concat_ws(' | ', pg_get_triggerdef(oid), tgenabled)
	  FROM pg_trigger
	 WHERE NOT tgisinternal
	   AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'tgt_profile'::regnamespace)
	UNION ALL
	SELECT 'view', c.relname, pg_get_viewdef(c.oid)
	  FROM pg_class c WHERE c.relnamespace = 'tgt_profile'::regnamespace AND c.relkind = 'v'
	UNION ALL
	SELECT 'dumped', c.relname, ''
	  FROM pg_extension e, unnest(e.extconfig) AS cfg(oid) JOIN pg_class c ON c.oid = cfg.oid
	 WHERE e.extname = 'tgt_profile'
	UNION ALL
	SELECT 'member', pg_describe_object(d.classid, d.objid, d.objsubid), ''
	  FROM pg_depend d
	 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
	   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tgt_profile')
	UNION ALL
	SELECT 'schema', nspname, concat_ws(' | ', nspacl::text, pg_get_userbyid(nspowner))
	  FROM pg_namespace WHERE nspname = 'tgt_profile'
$$;

SELECT version, installed FROM (
	SELECT version, version = (SELECT extversion FROM pg_extension WHERE extname = 'tgt_profile') AS installed
	  FROM pg_available_extension_versions WHERE name = 'tgt_profile') v ORDER BY version;
SELECT source, target, path FROM pg_extension_update_paths('tgt_profile') WHERE path IS NOT NULL ORDER BY 1, 2;

-- Install 1.0 and fill it.
DROP EXTENSION tgt_profile;
DROP SCHEMA tgt_profile;
CREATE EXTENSION tgt_profile VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'tgt_profile';
CREATE ROLE regress_upg_appr IN ROLE tgt_profile_approver;
SELECT tgt_profile.create_client('upg', true);
SELECT tgt_profile.grant_approver('upg', 'regress_upg_appr');
UPDATE tgt_profile.settings SET token_ttl = '7 days' WHERE client = 'upg';
SELECT token AS old_token FROM tgt_profile.generate_token('upg') \gset
SELECT token AS upg_token FROM tgt_profile.generate_token('upg', grace => '1 hour') \gset
SELECT status FROM tgt_profile.upsert_profile('upg', '{"tier": "gold"}', 'v1', 'crm-1', 'Bearer ' || :'upg_token');
SELECT rows_created, rows_rejected
  FROM tgt_profile.bulk_update('upg', E'batch=pcId,a\nv2,x\nv3,%ZZ\n', 'Bearer ' || :'upg_token');
CREATE TEMP VIEW data_counts AS
	SELECT (SELECT count(*) FROM tgt_profile.settings) AS settings,
		   (SELECT count(*) FROM tgt_profile.approvers) AS approvers,
		   (SELECT count(*) FROM tgt_profile.token_store) AS tokens,
		   (SELECT count(*) FROM tgt_profile.profiles) AS profiles,
		   (SELECT count(*) FROM tgt_profile.batches) AS batches,
		   (SELECT count(*) FROM tgt_profile.batch_rejects) AS rejects,
		   (SELECT count(*) FROM tgt_profile.audit_log) AS audit;
CREATE TEMP TABLE before_update AS SELECT * FROM data_counts;

-- Update, and find the data intact.
ALTER EXTENSION tgt_profile UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'tgt_profile';
TABLE data_counts EXCEPT TABLE before_update;
SELECT tgt_profile.verify_token('upg', :'upg_token') AS current_token,
	   tgt_profile.verify_token('upg', :'old_token') AS in_grace;
SELECT tgt_profile.get_profile('upg', 'v1', "authorization" => 'Bearer ' || :'upg_token')->'profile' AS profile;
SELECT client, profiles, valid_tokens, rows_today, daily_row_limit FROM tgt_profile.client_stats;
SET ROLE regress_upg_appr;
SELECT client, profiles FROM tgt_profile.client_stats;
RESET ROLE;
CREATE TEMP TABLE updated AS SELECT * FROM pg_temp.tgtp_catalog();

-- A fresh install of the new version has the same catalog.
DROP VIEW data_counts;
DROP EXTENSION tgt_profile;
DROP SCHEMA tgt_profile;
CREATE EXTENSION tgt_profile;
CREATE TEMP TABLE fresh AS SELECT * FROM pg_temp.tgtp_catalog();
SELECT count(*) > 100 AS catalog_is_large FROM fresh;
SELECT 'only after update' AS side, * FROM (TABLE updated EXCEPT TABLE fresh) a
UNION ALL
SELECT 'only in fresh install', * FROM (TABLE fresh EXCEPT TABLE updated) b
ORDER BY 1, 2, 3;


-- The same from 1.1 (a database created with the previous release).
DROP EXTENSION tgt_profile;
DROP SCHEMA tgt_profile;
CREATE EXTENSION tgt_profile VERSION '1.1';
SELECT extversion FROM pg_extension WHERE extname = 'tgt_profile';
SELECT tgt_profile.create_client('upg11', true);
SELECT token AS upg11_token FROM tgt_profile.generate_token('upg11') \gset
SELECT status FROM tgt_profile.upsert_profile('upg11', '{"tier": "gold"}', 'v1', NULL, 'Bearer ' || :'upg11_token');
-- this library with the 1.1 objects (no aliases yet): the calls that
-- would read or write aliases work as in 1.1
SELECT status FROM tgt_profile.upsert_profile('upg11', '{}', 'v2', 'crm-2', 'Bearer ' || :'upg11_token');
SELECT tgt_profile.get_profile('upg11', 'v2', "authorization" => 'Bearer ' || :'upg11_token')->'aliases' AS aliases;
SELECT tgt_profile.delete_profile('upg11', 'v2', "authorization" => 'Bearer ' || :'upg11_token') AS deleted;
SELECT rows_created FROM tgt_profile.bulk_update('upg11', E'batch=pcId,a\nv3,x\n', 'Bearer ' || :'upg11_token');
SELECT tgt_profile.purge_expired('upg11') AS purged;
ALTER EXTENSION tgt_profile UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'tgt_profile';
SELECT tgt_profile.verify_token('upg11', :'upg11_token') AS token_valid,
	   tgt_profile.get_profile('upg11', 'v1', "authorization" => 'Bearer ' || :'upg11_token')->'profile' AS profile;
CREATE TEMP TABLE updated_11 AS SELECT * FROM pg_temp.tgtp_catalog();
SELECT 'only after update' AS side, * FROM (TABLE updated_11 EXCEPT TABLE fresh) a
UNION ALL
SELECT 'only in fresh install', * FROM (TABLE fresh EXCEPT TABLE updated_11) b
ORDER BY 1, 2, 3;
SELECT tgt_profile.drop_client('upg11');

DROP ROLE regress_upg_appr;
