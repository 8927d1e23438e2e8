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
