-- Objects a DBA attaches to the extension's tables.  Our functions write
-- those tables as the extension owner (a superuser), with the calling
-- role's temporary schema on the search path: a trigger, a rule, or an
-- expression calling a function other than a built-in one would run with
-- the owner's rights inside the caller's call.  Such objects are refused
-- (55000), and the caller gains nothing.
SELECT tgt_profile.create_client('dba');
SELECT status FROM tgt_profile.upsert_profile('dba', '{"a": 1}', 'old-1');
SELECT status FROM tgt_profile.upsert_profile('dba', '{"a": 1}', 'old-2');
SELECT tgt_profile.create_client('dba2');
SELECT status FROM tgt_profile.upsert_profile('dba2', '{"a": 1}', 'old-3');
UPDATE tgt_profile.profiles SET last_seen_at = now() - interval '1 year'
 WHERE (client, tnt_id) IN (('dba', 'old-2'), ('dba2', 'old-3'));
CREATE ROLE regress_dba_api IN ROLE tgt_profile_api;
CREATE ROLE regress_dba_admin IN ROLE tgt_profile_admin;

-- The change log the README used to suggest: a trigger that records every
-- write in a table named without its schema.
CREATE TABLE public.profile_changes (op text, tnt_id text);
CREATE FUNCTION public.regress_dba_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		INSERT INTO profile_changes VALUES (TG_OP, OLD.tnt_id);
	ELSE
		INSERT INTO profile_changes VALUES (TG_OP, NEW.tnt_id);
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER regress_dba_log AFTER INSERT OR UPDATE OR DELETE ON tgt_profile.profiles
	FOR EACH ROW EXECUTE FUNCTION public.regress_dba_log();

-- escalated(role): was the role made a superuser?  (It is made an ordinary
-- role again, so that each call below is judged on its own.)
CREATE FUNCTION public.regress_dba_escalated(r text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
	s boolean;
BEGIN
	SELECT rolsuper INTO s FROM pg_roles WHERE rolname = r;
	EXECUTE format('ALTER ROLE %I NOSUPERUSER', r);
	RETURN s;
END
$$;

-- The attack: an API caller plants a temporary table of that name whose
-- own trigger makes the role named in a setting of the caller's a superuser.
SET ROLE regress_dba_api;
CREATE TEMP TABLE profile_changes (op text, tnt_id text);
CREATE FUNCTION pg_temp.regress_escalate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('ALTER ROLE %I SUPERUSER', current_setting('regress.attacker'));
	RETURN NEW;
END
$$;
CREATE TRIGGER regress_escalate BEFORE INSERT ON profile_changes
	FOR EACH ROW EXECUTE FUNCTION pg_temp.regress_escalate();
SET regress.attacker = 'regress_dba_api';
\set VERBOSITY default
SELECT * FROM tgt_profile.upsert_profile('dba', '{"a": 2}', 'atk-1');
\set VERBOSITY sqlstate
RESET ROLE;
SELECT public.regress_dba_escalated('regress_dba_api') AS escalated;
-- an update of an existing profile, batches (new and existing profiles), a
-- delete: the same
SET ROLE regress_dba_api;
SELECT * FROM tgt_profile.upsert_profile('dba', '{"a": 2}', 'old-1');
RESET ROLE;
SELECT public.regress_dba_escalated('regress_dba_api') AS escalated;
SET ROLE regress_dba_api;
SELECT rows_total FROM tgt_profile.bulk_update('dba', E'batch=pcId,a\natk-2,1\nold-1,3\n');
RESET ROLE;
SELECT public.regress_dba_escalated('regress_dba_api') AS escalated;
SET ROLE regress_dba_api;
SELECT rows_total FROM tgt_profile.bulk_update('dba', E'batch=pcId,a\nold-1,4\n');
RESET ROLE;
SELECT public.regress_dba_escalated('regress_dba_api') AS escalated;
SET ROLE regress_dba_api;
SELECT tgt_profile.delete_profile('dba', 'old-1');
RESET ROLE;
SELECT public.regress_dba_escalated('regress_dba_api') AS escalated;
SET ROLE regress_dba_api;
-- reading runs nothing of the DBA's: allowed
SELECT tgt_profile.get_profile('dba', 'old-1')->'profile' AS profile;
-- an unchanged upsert writes nothing, and so runs nothing: allowed
SELECT status FROM tgt_profile.upsert_profile('dba', '{"a": 1}', 'old-1');
RESET ROLE;
-- purge_expired, by a tgt_profile_admin member in the same session
SET ROLE regress_dba_admin;
SET regress.attacker = 'regress_dba_admin';
SELECT tgt_profile.purge_expired('dba');
RESET ROLE;
SELECT public.regress_dba_escalated('regress_dba_admin') AS escalated;
SET ROLE regress_dba_admin;
SELECT tgt_profile.purge_expired();
RESET ROLE;
SELECT public.regress_dba_escalated('regress_dba_admin') AS escalated;
SELECT count(*) AS changes_logged FROM pg_temp.profile_changes;
SELECT client, tnt_id, attributes FROM tgt_profile.profiles WHERE client IN ('dba', 'dba2') ORDER BY 1, 2;
DROP TABLE pg_temp.profile_changes;
DROP FUNCTION pg_temp.regress_escalate();

-- Without an attacker the trigger is refused just the same (it used to
-- fail every upsert with "relation does not exist"); a statement trigger
-- and a rule too.
SELECT public.state($$SELECT tgt_profile.upsert_profile('dba', '{"a": 2}', 'new-1')$$) AS row_trigger;
DROP TRIGGER regress_dba_log ON tgt_profile.profiles;
CREATE TRIGGER regress_dba_stmt AFTER INSERT ON tgt_profile.profiles
	FOR EACH STATEMENT EXECUTE FUNCTION public.regress_dba_log();
SELECT public.state($$SELECT tgt_profile.upsert_profile('dba', '{"a": 2}', 'new-1')$$) AS statement_trigger;
SELECT public.state($$SELECT tgt_profile.bulk_update('dba', E'batch=pcId,a\nnew-1,1\n')$$) AS statement_trigger;
DROP TRIGGER regress_dba_stmt ON tgt_profile.profiles;
CREATE RULE regress_dba_rule AS ON INSERT TO tgt_profile.profiles
	DO ALSO INSERT INTO public.profile_changes VALUES ('INSERT', NEW.tnt_id);
SELECT public.state($$SELECT tgt_profile.upsert_profile('dba', '{"a": 2}', 'new-1')$$) AS rule;
DROP RULE regress_dba_rule ON tgt_profile.profiles;
-- a trigger calling a built-in trigger function is refused too
CREATE TRIGGER regress_dba_builtin BEFORE UPDATE ON tgt_profile.profiles
	FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
SELECT public.try($$SELECT tgt_profile.upsert_profile('dba', '{"a": 2}', 'old-1')$$) AS builtin_trigger;
DROP TRIGGER regress_dba_builtin ON tgt_profile.profiles;
-- and so is a trigger on the partition that holds the client's profiles
-- alone (on the partitioned layout; on the other, the table itself)
DO $$
BEGIN
	EXECUTE format('CREATE TRIGGER regress_dba_part AFTER UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION public.regress_dba_log()',
				   (SELECT tableoid::regclass FROM tgt_profile.profiles WHERE client = 'dba' LIMIT 1));
END
$$;
SELECT public.try($$SELECT tgt_profile.upsert_profile('dba', '{"a": 2}', 'old-1')$$) AS upsert,
	   public.try($$SELECT tgt_profile.bulk_update('dba', E'batch=pcId,a\nold-1,2\n')$$) AS bulk_update,
	   public.try($$SELECT tgt_profile.delete_profile('dba', 'old-1')$$) AS delete_profile;
DO $$
BEGIN
	EXECUTE format('DROP TRIGGER regress_dba_part ON %s',
				   (SELECT tableoid::regclass FROM tgt_profile.profiles WHERE client = 'dba' LIMIT 1));
END
$$;
SELECT count(*) AS changes_logged FROM public.profile_changes;
DROP FUNCTION public.regress_dba_log();

-- Expressions that call a function other than a built-in one: a CHECK
-- constraint, an index expression or predicate, a default, a generated
-- column, a domain's constraint, an operator class.
CREATE FUNCTION public.regress_dba_true(jsonb) RETURNS boolean
	LANGUAGE sql IMMUTABLE AS $$SELECT true$$;
CREATE FUNCTION public.regress_dba_key(jsonb) RETURNS text
	LANGUAGE sql IMMUTABLE AS $$SELECT $1->>'a'$$;
ALTER TABLE tgt_profile.profiles ADD CONSTRAINT regress_dba_check CHECK (public.regress_dba_true(attributes));
SELECT public.state($$SELECT tgt_profile.upsert_profile('dba', '{"a": 2}', 'x-check_constraint')$$) AS check_constraint;
SELECT public.state($$SELECT tgt_profile.upsert_profile('dba', '{"a": 3}', 'old-1')$$) AS check_constraint_update;
ALTER TABLE tgt_profile.profiles DROP CONSTRAINT regress_dba_check;
CREATE INDEX regress_dba_expr ON tgt_profile.profiles (public.regress_dba_key(attributes));
SELECT public.state($$SELECT tgt_profile.upsert_profile('dba', '{"a": 2}', 'x-index_expression')$$) AS index_expression;
SELECT public.state($$SELECT tgt_profile.bulk_update('dba', E'batch=pcId,a\nx-index_bulk,1\nold-1,5\n')$$) AS index_expression;
DROP INDEX tgt_profile.regress_dba_expr;
CREATE INDEX regress_dba_pred ON tgt_profile.profiles (client) WHERE public.regress_dba_true(attributes);
SELECT public.state($$SELECT tgt_profile.upsert_profile('dba', '{"a": 2}', 'x-index_predicate')$$) AS index_predicate;
DROP INDEX tgt_profile.regress_dba_pred;
ALTER TABLE tgt_profile.profiles ADD COLUMN regress_key text GENERATED ALWAYS AS (public.regress_dba_key(attributes)) STORED;
SELECT public.state($$SELECT tgt_profile.upsert_profile('dba', '{"a": 2}', 'x-generated_column')$$) AS generated_column;
ALTER TABLE tgt_profile.profiles DROP COLUMN regress_key;
CREATE FUNCTION public.regress_dba_note() RETURNS text LANGUAGE sql AS $$SELECT 'note'$$;
ALTER TABLE tgt_profile.profiles ADD COLUMN regress_note text;
ALTER TABLE tgt_profile.profiles ALTER COLUMN regress_note SET DEFAULT public.regress_dba_note();
SELECT public.state($$SELECT tgt_profile.upsert_profile('dba', '{"a": 2}', 'x-column_default')$$) AS column_default;
ALTER TABLE tgt_profile.profiles DROP COLUMN regress_note;
CREATE DOMAIN public.regress_dba_dom AS text CHECK (public.regress_dba_true(VALUE::jsonb));
ALTER TABLE tgt_profile.profiles ADD COLUMN regress_dom public.regress_dba_dom;
SELECT public.state($$SELECT tgt_profile.upsert_profile('dba', '{"a": 2}', 'x-domain_check')$$) AS domain_check;
ALTER TABLE tgt_profile.profiles DROP COLUMN regress_dom;
DROP DOMAIN public.regress_dba_dom;
-- a constraint added to a column's domain later is seen too (the table's
-- relcache entry is not invalidated by it; the constraint's own
-- invalidation empties what the check remembers as clean)
CREATE DOMAIN public.regress_dba_dom2 AS text;
ALTER TABLE tgt_profile.profiles ADD COLUMN regress_dom2 public.regress_dba_dom2;
SELECT public.try($$SELECT tgt_profile.upsert_profile('dba', '{"a": 4}', 'old-1')$$) AS plain_domain;
ALTER DOMAIN public.regress_dba_dom2 ADD CONSTRAINT regress_later CHECK (public.regress_dba_true(VALUE::jsonb));
SELECT public.state($$SELECT tgt_profile.upsert_profile('dba', '{"a": 4}', 'old-1')$$) AS domain_constraint_added;
ALTER TABLE tgt_profile.profiles DROP COLUMN regress_dom2;
DROP DOMAIN public.regress_dba_dom2;
CREATE FUNCTION public.regress_dba_cmp(text, text) RETURNS integer
	LANGUAGE sql IMMUTABLE AS $$SELECT pg_catalog.bttextcmp($1, $2)$$;
CREATE OPERATOR CLASS public.regress_dba_ops FOR TYPE text USING btree AS
	OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
	FUNCTION 1 public.regress_dba_cmp(text, text);
CREATE INDEX regress_dba_opclass ON tgt_profile.profiles (tnt_id public.regress_dba_ops);
SELECT public.state($$SELECT tgt_profile.upsert_profile('dba', '{"a": 2}', 'x-operator_class')$$) AS operator_class;
DROP INDEX tgt_profile.regress_dba_opclass;
DROP OPERATOR FAMILY public.regress_dba_ops USING btree;
SELECT count(*) AS written FROM tgt_profile.profiles WHERE client = 'dba' AND (tnt_id LIKE 'x-%' OR attributes <> '{"a": 1}');

-- Built-in functions and operators are fine: a CHECK constraint holds
-- (23514), an index expression and a column with a default are kept up.
ALTER TABLE tgt_profile.profiles ADD CONSTRAINT regress_dba_builtin CHECK (NOT attributes ? 'forbidden');
CREATE INDEX regress_dba_lower ON tgt_profile.profiles (lower(attributes->>'a'));
ALTER TABLE tgt_profile.profiles ADD COLUMN regress_at timestamptz DEFAULT pg_catalog.clock_timestamp();
SELECT status FROM tgt_profile.upsert_profile('dba', '{"a": "X"}', 'new-1');
SELECT status FROM tgt_profile.upsert_profile('dba', '{"a": "Y"}', 'new-1');
SELECT rows_total, rows_created, rows_updated FROM tgt_profile.bulk_update('dba', E'batch=pcId,a\nnew-2,Z\nnew-1,W\n');
SELECT public.try($$SELECT tgt_profile.upsert_profile('dba', '{"forbidden": 1}', 'new-1')$$) AS builtin_check;
SET enable_seqscan = off;
SELECT tnt_id, regress_at IS NOT NULL AS has_default FROM tgt_profile.profiles
 WHERE lower(attributes->>'a') IN ('w', 'z') ORDER BY tnt_id;
RESET enable_seqscan;
ALTER TABLE tgt_profile.profiles DROP COLUMN regress_at;
DROP INDEX tgt_profile.regress_dba_lower;
ALTER TABLE tgt_profile.profiles DROP CONSTRAINT regress_dba_builtin;

-- A foreign key from a DBA's table is fine (its internal triggers fire, and
-- a cascade deletes); a trigger on that table, which the cascade would
-- fire, is refused.
CREATE FUNCTION public.regress_dba_nothing() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RETURN NULL;
END
$$;
CREATE TABLE public.regress_dba_notes (client text, tnt_id text, note text,
	FOREIGN KEY (client, tnt_id) REFERENCES tgt_profile.profiles (client, tnt_id) ON DELETE CASCADE);
INSERT INTO public.regress_dba_notes VALUES ('dba', 'new-2', 'n');
SELECT status FROM tgt_profile.upsert_profile('dba', '{"b": 1}', 'new-2');
CREATE TRIGGER regress_dba_notes_log AFTER DELETE ON public.regress_dba_notes
	FOR EACH ROW EXECUTE FUNCTION public.regress_dba_nothing();
SELECT public.state($$SELECT tgt_profile.delete_profile('dba', 'new-2')$$) AS cascade_trigger;
DROP TRIGGER regress_dba_notes_log ON public.regress_dba_notes;
SELECT tgt_profile.delete_profile('dba', 'new-2') AS deleted;
SELECT count(*) AS notes_left FROM public.regress_dba_notes;
DROP TABLE public.regress_dba_notes;

-- The same for every other table our functions write as the owner: a
-- trigger on audit_log refuses the token calls (and every audited call),
-- one on token_store or settings too; the extension's own triggers run.
CREATE TRIGGER regress_dba_audit AFTER INSERT ON tgt_profile.audit_log
	FOR EACH ROW EXECUTE FUNCTION public.regress_dba_nothing();
SELECT public.state($$SELECT tgt_profile.generate_token('dba')$$) AS generate_token;
SELECT public.try($$SELECT tgt_profile.revoke_tokens('dba')$$) AS revoke_tokens,
	   public.try($$SELECT tgt_profile.set_require_auth('dba', true)$$) AS set_require_auth,
	   public.try($$UPDATE tgt_profile.settings SET token_ttl = '1 day' WHERE client = 'dba'$$) AS settings_update,
	   public.try($$SELECT tgt_profile.grant_approver('dba', 'regress_dba_api')$$) AS grant_approver;
DROP TRIGGER regress_dba_audit ON tgt_profile.audit_log;
CREATE TRIGGER regress_dba_tokens BEFORE INSERT ON tgt_profile.token_store
	FOR EACH ROW EXECUTE FUNCTION public.regress_dba_nothing();
SELECT public.try($$SELECT tgt_profile.generate_token('dba')$$) AS generate_token;
DROP TRIGGER regress_dba_tokens ON tgt_profile.token_store;
CREATE TRIGGER regress_dba_settings BEFORE DELETE ON tgt_profile.settings
	FOR EACH ROW EXECUTE FUNCTION public.regress_dba_nothing();
SELECT public.try($$SELECT tgt_profile.drop_client('dba')$$) AS drop_client;
DROP TRIGGER regress_dba_settings ON tgt_profile.settings;
CREATE TRIGGER regress_dba_batches BEFORE INSERT ON tgt_profile.batch_rejects
	FOR EACH ROW EXECUTE FUNCTION public.regress_dba_nothing();
SELECT public.try($$SELECT tgt_profile.bulk_update('dba', E'batch=pcId,a\nnew-3,1\n')$$) AS bulk_update;
DROP TRIGGER regress_dba_batches ON tgt_profile.batch_rejects;
SELECT count(*) AS tokens FROM tgt_profile.generate_token('dba');
SELECT tgt_profile.revoke_tokens('dba') AS revoked;

DROP ROLE regress_dba_api, regress_dba_admin;
DROP TABLE public.profile_changes;
DROP FUNCTION public.regress_dba_escalated(text), public.regress_dba_true(jsonb), public.regress_dba_key(jsonb), public.regress_dba_note(),
	public.regress_dba_cmp(text, text), public.regress_dba_nothing();
SELECT tgt_profile.drop_client('dba'), tgt_profile.drop_client('dba2');
