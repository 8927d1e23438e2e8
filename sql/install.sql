-- Install, catalog lint and the install-hijack cases.
-- pg_regress created the extension (REGRESS_OPTS); it must end up installed.

-- The extension is neither trusted nor relocatable, and needs pgcrypto.
SELECT extname, extrelocatable, extversion FROM pg_extension WHERE extname = 'tgt_profile';
SELECT p.name, p.trusted, p.superuser, p.requires
  FROM pg_available_extension_versions p WHERE p.name = 'tgt_profile';

-- Row-level security is enabled on every table of the schema (and on the
-- partitions of profiles, when it is partitioned).
SELECT c.relname, c.relrowsecurity
  FROM pg_class c
 WHERE c.relnamespace = 'tgt_profile'::regnamespace AND c.relkind IN ('r', 'p')
   AND NOT c.relispartition
 ORDER BY 1;
SELECT count(*) AS partitions_without_rls
  FROM pg_class c
 WHERE c.relnamespace = 'tgt_profile'::regnamespace AND c.relkind = 'r' AND c.relispartition
   AND NOT c.relrowsecurity;

-- Every SECURITY DEFINER function pins a search_path ending in pg_temp
-- (we have none: the C functions switch user themselves).
SELECT p.oid::regprocedure
  FROM pg_proc p
 WHERE p.pronamespace = 'tgt_profile'::regnamespace AND p.prosecdef
   AND NOT coalesce(array_to_string(p.proconfig, ',') ~ '^search_path=.*pg_temp$', false);

-- PUBLIC may execute none of our functions and use nothing in the schema.
SELECT p.oid::regprocedure AS public_executable
  FROM pg_proc p
 WHERE p.pronamespace = 'tgt_profile'::regnamespace
   AND has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY 1;
SELECT has_schema_privilege('public', 'tgt_profile', 'USAGE') AS public_usage;
SELECT c.relname AS public_readable
  FROM pg_class c
 WHERE c.relnamespace = 'tgt_profile'::regnamespace
   AND has_table_privilege('public', c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE');

-- Every privilege granted on our objects, pinned: an accidental grant fails here.
SELECT c.relname, a.grantee::regrole, a.privilege_type
  FROM pg_class c, aclexplode(c.relacl) a
 WHERE c.relnamespace = 'tgt_profile'::regnamespace
   AND a.grantee <> c.relowner
 ORDER BY 1, 2, 3;
SELECT c.relname, att.attname, a.grantee::regrole, a.privilege_type
  FROM pg_class c JOIN pg_attribute att ON att.attrelid = c.oid,
       aclexplode(att.attacl) a
 WHERE c.relnamespace = 'tgt_profile'::regnamespace
 ORDER BY 1, 2, 3, 4;
SELECT p.oid::regprocedure, a.grantee::regrole, a.privilege_type
  FROM pg_proc p, aclexplode(p.proacl) a
 WHERE p.pronamespace = 'tgt_profile'::regnamespace
   AND a.grantee <> p.proowner
 ORDER BY 1, 2;

-- The roles exist, cannot log in, and admin includes the other two.
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'tgt\_profile\_%' ORDER BY 1;
SELECT pg_has_role('tgt_profile_admin', 'tgt_profile_approver', 'USAGE') AS admin_is_approver,
       pg_has_role('tgt_profile_admin', 'tgt_profile_api', 'USAGE') AS admin_is_api,
       pg_has_role('tgt_profile_api', 'tgt_profile_approver', 'USAGE') AS api_is_approver;

-- Policies: one read policy per table, update only on settings.
SELECT tablename, policyname, cmd FROM pg_policies WHERE schemaname = 'tgt_profile' ORDER BY 1, 2;

-- The tokens view shows no hash.
SELECT attname FROM pg_attribute
 WHERE attrelid = 'tgt_profile.tokens'::regclass AND attnum > 0 ORDER BY attnum;

-- User data is dumped (partitions too).
SELECT c.relname
  FROM pg_extension e, unnest(e.extconfig) AS cfg(oid) JOIN pg_class c ON c.oid = cfg.oid
 WHERE e.extname = 'tgt_profile' AND NOT c.relispartition ORDER BY 1;
SELECT count(*) AS partitions_not_dumped
  FROM pg_class c
 WHERE c.relnamespace = 'tgt_profile'::regnamespace AND c.relkind = 'r' AND c.relispartition
   AND c.oid <> ALL ((SELECT extconfig FROM pg_extension WHERE extname = 'tgt_profile')::oid[]);

-- Hijack 1: a tgt_profile schema pre-created by an ordinary role.
-- (DROP EXTENSION leaves the schema: the control file names it, so it is
-- not a member of the extension.)
DROP EXTENSION tgt_profile;
DROP SCHEMA tgt_profile;
CREATE ROLE regress_intruder;
CREATE SCHEMA tgt_profile AUTHORIZATION regress_intruder;
-- An error raised by the install script carries a CONTEXT that PostgreSQL
-- words differently by major (18 adds the statement and the script's line):
-- our message, detail and hint are what is tested.
\set SHOW_CONTEXT never
CREATE EXTENSION tgt_profile;
DROP SCHEMA tgt_profile;

-- Hijack 2: our own schema, but with a function planted in it beforehand.
CREATE SCHEMA tgt_profile;
GRANT CREATE ON SCHEMA tgt_profile TO regress_intruder;
SET ROLE regress_intruder;
CREATE FUNCTION tgt_profile.verify_token(text, text) RETURNS boolean
	LANGUAGE sql AS 'SELECT true';
RESET ROLE;
CREATE EXTENSION tgt_profile;
\set SHOW_CONTEXT errors
DROP FUNCTION tgt_profile.verify_token(text, text);
DROP SCHEMA tgt_profile;

-- Hijack 3: a hostile search_path during install: a schema defining
-- =(text,text), lower() and a temp table named like an internal one.
CREATE SCHEMA regress_evil AUTHORIZATION regress_intruder;
SET ROLE regress_intruder;
CREATE FUNCTION regress_evil.texteq_evil(text, text) RETURNS boolean
	LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'hijacked: = called'; END$$;
CREATE OPERATOR regress_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_evil.texteq_evil);
CREATE FUNCTION regress_evil.lower(text) RETURNS text
	LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'hijacked: lower called'; END$$;
CREATE FUNCTION regress_evil.length(bytea) RETURNS integer
	LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'hijacked: length called'; END$$;
RESET ROLE;
CREATE TEMP TABLE settings (client text);
CREATE TEMP TABLE token_store (client text);
SET search_path = regress_evil, pg_catalog, public;
CREATE EXTENSION tgt_profile;
-- and the functions ignore the hostile path at run time too
SELECT tgt_profile.create_client('evil-path');
SELECT count(*) FROM tgt_profile.generate_token('evil-path');
SELECT tgt_profile.revoke_tokens('evil-path');
SELECT tgt_profile.set_require_auth('evil-path', true);
SELECT tgt_profile.drop_client('evil-path');
RESET search_path;
DROP TABLE pg_temp.settings, pg_temp.token_store;
DROP SCHEMA regress_evil CASCADE;
DROP ROLE regress_intruder;
SELECT count(*) AS audit_rows FROM tgt_profile.audit_log WHERE client = 'evil-path';
