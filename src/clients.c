/*-------------------------------------------------------------------------
 *
 * clients.c
 *	  Clients, their settings and their approvers.
 *
 * Settings change either through set_require_auth or by a plain UPDATE of
 * tgt_profile.settings (row-level security lets approvers reach their own
 * clients' rows).  Both paths run as the caller and meet the settings_guard
 * trigger, which keeps the limits for tgt_profile_admin and audits the
 * change: one place, whichever way the change was made.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

/* create_client(client, require_auth DEFAULT false) */
TP_SQL_FUNCTION(tgtp_create_client)
{
	static TpPlan plan = {
		"INSERT INTO tgt_profile.settings (client, require_auth, created_at, created_by, updated_at, updated_by) "
		"VALUES ($1, $2, $3, $4, $3, $4) ON CONFLICT (client) DO NOTHING",
		4, {TEXTOID, BOOLOID, TIMESTAMPTZOID, TEXTOID}
	};
	char	   *client = tp_text_arg(fcinfo, 0, "client");
	bool		require_auth = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
	char	   *actor = tp_caller_name();
	TpPrivState st;
	Datum		v[4];

	tp_require_admin("create clients");
	tp_check_client_code(client);

	tp_begin(&st, true);
	v[0] = CStringGetTextDatum(client);
	v[1] = BoolGetDatum(require_auth);
	v[2] = TimestampTzGetDatum(tp_now());
	v[3] = CStringGetTextDatum(actor);
	if (tp_exec(&plan, v, NULL, false, 0) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("client \"%s\" already exists", client)));
	tp_audit(client, actor, "create_client",
			 require_auth ? "{\"require_auth\": true}" : "{\"require_auth\": false}");
	tp_end(&st);
	PG_RETURN_VOID();
}

/*
 * drop_client(client): the client and all its data; the audit log is kept.
 * Profiles, their aliases and batches have no foreign key (it would cost
 * every bulk row a check), so they are deleted here.
 */
TP_SQL_FUNCTION(tgtp_drop_client)
{
	static TpPlan del_settings = {
		"DELETE FROM tgt_profile.settings WHERE client OPERATOR(pg_catalog.=) $1", 1, {TEXTOID}
	};
	static TpPlan del_profiles = {
		"DELETE FROM tgt_profile.profiles WHERE client OPERATOR(pg_catalog.=) $1", 1, {TEXTOID},
		.client_arg = 1
	};
	static TpPlan del_aliases = {
		"DELETE FROM tgt_profile.aliases WHERE client OPERATOR(pg_catalog.=) $1", 1, {TEXTOID}
	};
	static TpPlan del_batches = {
		"DELETE FROM tgt_profile.batches WHERE client OPERATOR(pg_catalog.=) $1", 1, {TEXTOID}
	};
	char	   *client = tp_text_arg(fcinfo, 0, "client");
	char	   *actor = tp_caller_name();
	TpPrivState st;
	Datum		v;
	int			profiles;
	StringInfoData detail;

	tp_require_admin("drop clients");
	tp_check_client_code(client);

	/*
	 * Wait for the client's writers, keep new ones out, then delete what is
	 * committed now: no profile written by a call that raced us survives to
	 * be read by a client re-created with the same code.
	 */
	tp_lock_client(client, TP_LOCK_DROP);
	tp_begin(&st, true);
	v = CStringGetTextDatum(client);
	if (tp_exec_fresh(&del_settings, &v, NULL, false, 0) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("client \"%s\" does not exist", client)));
	profiles = tp_exec_fresh(&del_profiles, &v, NULL, false, 0);
	if (tp_aliases_installed())
		(void) tp_exec_fresh(&del_aliases, &v, NULL, false, 0);
	(void) tp_exec_fresh(&del_batches, &v, NULL, false, 0);
	initStringInfo(&detail);
	appendStringInfo(&detail, "{\"profiles\": %d}", profiles);
	tp_audit(client, actor, "drop_client", detail.data);
	tp_end(&st);
	PG_RETURN_VOID();
}

static const char *
level_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *level = tp_text_arg(fcinfo, argno, "level");

	if (strcmp(level, "approver") != 0 && strcmp(level, "admin") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid approver level \"%s\"", level),
				 errhint("The level is \"approver\" or \"admin\".")));
	return level;
}

static char *
member_arg(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("member must not be null")));
	return GetUserNameFromId(PG_GETARG_OID(argno), false);
}

static char *
approver_detail(const char *member, const char *level)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"member\": ");
	escape_json(&buf, member);
	if (level)
	{
		appendStringInfoString(&buf, ", \"level\": ");
		escape_json(&buf, level);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * grant_approver(client, member, level DEFAULT 'approver'): records the
 * right; membership in tgt_profile_approver (to execute the functions) is
 * the DBA's to grant.
 */
TP_SQL_FUNCTION(tgtp_grant_approver)
{
	static TpPlan plan = {
		"INSERT INTO tgt_profile.approvers (client, member, level, granted_by, granted_at) "
		"VALUES ($1, $2, $3, $4, $5) "
		"ON CONFLICT (client, member) DO UPDATE "
		"SET level = EXCLUDED.level, granted_by = EXCLUDED.granted_by, granted_at = EXCLUDED.granted_at",
		5, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID}
	};
	char	   *client = tp_text_arg(fcinfo, 0, "client");
	char	   *member = member_arg(fcinfo, 1);
	const char *level = level_arg(fcinfo, 2);
	char	   *actor = tp_caller_name();
	TpPrivState st;
	Datum		v[5];

	tp_check_client_code(client);
	tp_require_level(client, TP_LEVEL_ADMIN, "grant approvers");
	tp_require_client(client, NULL);

	tp_begin(&st, true);
	v[0] = CStringGetTextDatum(client);
	v[1] = CStringGetTextDatum(member);
	v[2] = CStringGetTextDatum(level);
	v[3] = CStringGetTextDatum(actor);
	v[4] = TimestampTzGetDatum(tp_now());
	(void) tp_exec(&plan, v, NULL, false, 0);
	tp_audit(client, actor, "grant_approver", approver_detail(member, level));
	tp_end(&st);
	PG_RETURN_VOID();
}

/* revoke_approver(client, member): idempotent; audited when it removed one. */
TP_SQL_FUNCTION(tgtp_revoke_approver)
{
	static TpPlan plan = {
		"DELETE FROM tgt_profile.approvers "
		" WHERE client OPERATOR(pg_catalog.=) $1 AND member OPERATOR(pg_catalog.=) $2",
		2, {TEXTOID, TEXTOID}
	};
	char	   *client = tp_text_arg(fcinfo, 0, "client");
	char	   *member = member_arg(fcinfo, 1);
	char	   *actor = tp_caller_name();
	TpPrivState st;
	Datum		v[2];

	tp_check_client_code(client);
	tp_require_level(client, TP_LEVEL_ADMIN, "revoke approvers");
	tp_require_client(client, NULL);

	tp_begin(&st, true);
	v[0] = CStringGetTextDatum(client);
	v[1] = CStringGetTextDatum(member);
	if (tp_exec(&plan, v, NULL, false, 0) > 0)
		tp_audit(client, actor, "revoke_approver", approver_detail(member, NULL));
	else
		ereport(NOTICE,
				(errmsg("role \"%s\" is not an approver of client \"%s\"", member, client)));
	tp_end(&st);
	PG_RETURN_VOID();
}

/*
 * set_require_auth(client, required): an UPDATE run as the caller, so the
 * trigger audits it exactly like a direct UPDATE.
 */
TP_SQL_FUNCTION(tgtp_set_require_auth)
{
	static TpPlan plan = {
		"UPDATE tgt_profile.settings SET require_auth = $2 "
		" WHERE client OPERATOR(pg_catalog.=) $1",
		2, {TEXTOID, BOOLOID}
	};
	char	   *client = tp_text_arg(fcinfo, 0, "client");
	TpPrivState st;
	Datum		v[2];

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("required must not be null")));
	tp_check_client_code(client);
	tp_require_level(client, TP_LEVEL_APPROVER, "change settings");
	tp_require_client(client, NULL);

	tp_begin(&st, false);
	v[0] = CStringGetTextDatum(client);
	v[1] = PG_GETARG_DATUM(1);
	(void) tp_exec(&plan, v, NULL, false, 0);
	tp_end(&st);
	PG_RETURN_VOID();
}

static bool
column_changed(Relation rel, HeapTuple a, HeapTuple b, int attno)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Form_pg_attribute att = TupleDescAttr(desc, attno - 1);
	bool		an,
				bn;
	Datum		ad = heap_getattr(a, attno, desc, &an);
	Datum		bd = heap_getattr(b, attno, desc, &bn);

	return an != bn || (!an && !datumIsEqual(ad, bd, att->attbyval, att->attlen));
}

/* A settings value as JSON: booleans and numbers bare, the rest as strings. */
static void
append_value(StringInfo buf, Oid type, Datum d, bool isnull)
{
	Oid			outfn;
	bool		varlena;
	char	   *str;

	if (isnull)
	{
		appendStringInfoString(buf, "null");
		return;
	}
	getTypeOutputInfo(type, &outfn, &varlena);
	str = OidOutputFunctionCall(outfn, d);
	if (type == BOOLOID)
		appendStringInfoString(buf, DatumGetBool(d) ? "true" : "false");
	else if (type == INT8OID)
		appendStringInfoString(buf, str);
	else
		escape_json(buf, str);
}

/* Append "col": [old, new] to the audit detail when a column changed. */
static void
diff_column(StringInfo buf, Relation rel, HeapTuple oldtup, HeapTuple newtup,
			int attno, int *nchanged)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Form_pg_attribute att = TupleDescAttr(desc, attno - 1);
	bool		oldnull,
				newnull;
	Datum		o = heap_getattr(oldtup, attno, desc, &oldnull);
	Datum		n = heap_getattr(newtup, attno, desc, &newnull);

	if (!column_changed(rel, oldtup, newtup, attno))
		return;
	appendStringInfo(buf, "%s", (*nchanged)++ ? ", " : "");
	escape_json(buf, NameStr(att->attname));
	appendStringInfoString(buf, ": [");
	append_value(buf, att->atttypid, o, oldnull);
	appendStringInfoString(buf, ", ");
	append_value(buf, att->atttypid, n, newnull);
	appendStringInfoChar(buf, ']');
}

/*
 * Refuse a duration outside its bounds (DESIGN.md "Bounds on settings") as
 * the CHECK constraint named would (23514, its message), and before it: the
 * constraints compare with calendar arithmetic, which a huge field would
 * overflow (22008), and do not see a negative field.
 */
static void
check_duration(Relation rel, HeapTuple tup, int attno, int64 min_usecs,
			   bool min_inclusive, const char *constraint, const char *bounds)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, attno, RelationGetDescr(rel), &isnull);
	Interval   *iv;

	if (isnull || tp_duration_within(DatumGetIntervalP(d), min_usecs, min_inclusive))
		return;					/* NULL: the NOT NULL constraint says so */
	iv = DatumGetIntervalP(d);
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("new row for relation \"%s\" violates check constraint \"%s\"",
					RelationGetRelationName(rel), constraint),
			 errdetail("%s must lie %s; it was %s.",
					   NameStr(TupleDescAttr(RelationGetDescr(rel), attno - 1)->attname), bounds,
					   DatumGetCString(DirectFunctionCall1(interval_out, d))),
			 (iv->month < 0 || iv->day < 0 || iv->time < 0)
			 ? errhint("No part of it (months, days, time) may be negative.") : 0,
			 errtableconstraint(rel, constraint)));
}

/*
 * BEFORE UPDATE ON settings FOR EACH ROW.  Columns 1..6 are client,
 * require_auth, token_ttl, max_token_ttl, profile_lifetime, daily_row_limit;
 * 9 and 10 are updated_at and updated_by.
 */
TP_SQL_FUNCTION(tgtp_settings_guard)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	HeapTuple	oldtup,
				newtup;
	char	   *actor;
	char	   *client;
	bool		isnull;
	StringInfoData detail;
	int			nchanged = 0;
	TpPrivState st;
	int			cols[2] = {9, 10};
	Datum		vals[2];
	bool		repl_nulls[2] = {false, false};

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_BY_UPDATE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "settings_guard must be a BEFORE UPDATE row trigger");
	rel = td->tg_relation;
	oldtup = td->tg_trigtuple;
	newtup = td->tg_newtuple;
	actor = tp_caller_name();
	client = TextDatumGetCString(heap_getattr(oldtup, 1, RelationGetDescr(rel), &isnull));

	if (column_changed(rel, oldtup, newtup, 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a client code cannot be changed"),
				 errhint("Create a new client instead.")));
	if ((column_changed(rel, oldtup, newtup, 4) || column_changed(rel, oldtup, newtup, 6)) &&
		!tp_is_admin(tp_caller()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to change the limits of client \"%s\"", client),
				 errdetail("max_token_ttl and daily_row_limit are changed by members of tgt_profile_admin only.")));

	check_duration(rel, newtup, 3, 0, false, "settings_token_ttl_check",
				   "above 0 and at most " TP_MAX_DURATION_TEXT ", and not above max_token_ttl");
	check_duration(rel, newtup, 4, 0, false, "settings_max_token_ttl_check",
				   "above 0 and at most " TP_MAX_DURATION_TEXT);
	check_duration(rel, newtup, 5, TP_MIN_LIFETIME_USECS, true, "settings_profile_lifetime_check",
				   "between 1 hour and " TP_MAX_DURATION_TEXT);

	initStringInfo(&detail);
	appendStringInfoChar(&detail, '{');
	for (int attno = 2; attno <= 6; attno++)
		diff_column(&detail, rel, oldtup, newtup, attno, &nchanged);
	appendStringInfoChar(&detail, '}');
	if (nchanged == 0)
		return PointerGetDatum(newtup);

	vals[0] = TimestampTzGetDatum(tp_now());
	vals[1] = CStringGetTextDatum(actor);
	newtup = heap_modify_tuple_by_cols(newtup, RelationGetDescr(rel), 2, cols, vals, repl_nulls);

	tp_begin(&st, true);
	tp_audit(client, actor, "update_settings", detail.data);
	tp_end(&st);
	return PointerGetDatum(newtup);
}
