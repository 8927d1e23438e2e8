/*-------------------------------------------------------------------------
 *
 * caller.c
 *	  Who calls, what they may do, and acting as the extension owner.
 *
 * Our functions are SECURITY INVOKER on purpose: the caller is current_user
 * at the moment of the call (DESIGN.md, "Caller"), which a SECURITY DEFINER
 * function could no longer see.  Each function checks the caller's rights
 * here, then switches to the extension owner only around its own
 * parameterised statements (tp_begin/tp_end), the way pg_cron does.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"
#include "pg_compat.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "storage/proc.h"
#include "catalog/pg_namespace.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "access/genam.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"


Oid
tp_caller(void)
{
	return GetUserId();
}

char *
tp_caller_name(void)
{
	return GetUserNameFromId(GetUserId(), false);
}

/* tgt_profile_admin (directly or through membership) or a superuser. */
bool
tp_is_admin(Oid role)
{
	Oid			admin;

	if (superuser_arg(role))
		return true;
	admin = get_role_oid(TGTP_ROLE_ADMIN, true);
	return OidIsValid(admin) && has_privs_of_role(role, admin);
}

/*
 * The caller's level on one client: the highest level the approvers table
 * gives to any role whose privileges it has (a group role works as it does
 * for PostgreSQL's own privileges), read as committed now.
 */
TpLevel
tp_client_level(const char *client, Oid role)
{
	static const AttrNumber cols[2] = {2, 3};	/* member, level */
	Datum		key = CStringGetTextDatum(client);
	TpLevel		level = TP_LEVEL_NONE;
	TpScan		scan;
	HeapTuple	tup;

	if (tp_is_admin(role))
		return TP_LEVEL_ADMIN;

	tp_fresh_scan_begin(&scan, "approvers", "approvers_pkey", 1, &key);
	while (level < TP_LEVEL_ADMIN && HeapTupleIsValid(tup = tp_scan_next(&scan)))
	{
		Datum		v[2];
		bool		n[2];
		Oid			member;

		tp_scan_columns(&scan, tup, 2, cols, v, n);
		member = get_role_oid(TextDatumGetCString(v[0]), true);
		if (!OidIsValid(member) || !has_privs_of_role(role, member))
			continue;
		level = Max(level, strcmp(TextDatumGetCString(v[1]), "admin") == 0
					? TP_LEVEL_ADMIN : TP_LEVEL_APPROVER);
	}
	tp_scan_end(&scan);
	return level;
}

void
tp_require_admin(const char *what)
{
	if (!tp_is_admin(tp_caller()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s", what),
				 errdetail("Only members of role \"%s\" may %s.", TGTP_ROLE_ADMIN, what)));
}

/*
 * An approver of one client learns nothing about other clients: lacking
 * rights is reported before whether the client exists.
 */
void
tp_require_level(const char *client, TpLevel need, const char *what)
{
	if (tp_client_level(client, tp_caller()) < need)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s for client \"%s\"", what, client),
				 errhint("%s",
						 need == TP_LEVEL_ADMIN
						 ? "A client admin of this client or a member of tgt_profile_admin may do this."
						 : "An approver of this client or a member of tgt_profile_admin may do this.")));
}

/* ^[a-z0-9][a-z0-9_-]{0,63}$ */
void
tp_check_client_code(const char *client)
{
	size_t		len = strlen(client);
	bool		ok = len >= 1 && len <= 64;

	for (size_t i = 0; ok && i < len; i++)
	{
		char		c = client[i];

		ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			(i > 0 && (c == '_' || c == '-'));
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid client code"),
				 errdetail("A client code is 1 to 64 characters of a-z, 0-9, \"_\" and \"-\", starting with a letter or digit.")));
}

/* A text argument that must not be NULL, as a C string. */
char *
tp_text_arg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be null", argname)));
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/*
 * The role our statements run as: the owner of the tgt_profile schema,
 * which is the role that ran CREATE EXTENSION (the install refuses a schema
 * owned by anyone else).  A syscache lookup, cheap on every call.
 */
static Oid
extension_owner(void)
{
	HeapTuple	tup = SearchSysCache1(NAMESPACENAME, CStringGetDatum(TGTP_SCHEMA));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"tgt_profile\" is not installed in this database")));
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);
	return owner;
}

/* An error context callback that only hides the statement. */
static void
hide_statement(void *arg)
{
	errhidestmt(true);
}

/*
 * Run a SQL-callable function's body (TP_SQL_FUNCTION) with an error
 * context that marks every error raised meanwhile, ours or PostgreSQL's,
 * as hiding the statement: the log gets the message, never the statement
 * text, which may carry a token.  An ERROR unwinds error_context_stack
 * itself.
 */
Datum
tp_call_quietly(PGFunction body, FunctionCallInfo fcinfo)
{
	ErrorContextCallback quiet;
	Datum		result;

	quiet.callback = hide_statement;
	quiet.arg = NULL;
	quiet.previous = error_context_stack;
	error_context_stack = &quiet;
	result = body(fcinfo);
	error_context_stack = quiet.previous;
	return result;
}

/*
 * Start a section of our own SQL: search_path pinned to pg_catalog (so a
 * caller's schema cannot redirect an operator or function), and with
 * as_owner the extension owner as current_user (to write tables the caller
 * may not).  An ERROR unwinds both at (sub)transaction abort.
 */
void
tp_begin(TpPrivState *st, bool as_owner)
{
	st->outer = CurrentMemoryContext;
	GetUserIdAndSecContext(&st->saved_user, &st->saved_sec);
	st->guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	if (as_owner)
		SetUserIdAndSecContext(extension_owner(),
							   st->saved_sec | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

void
tp_end(TpPrivState *st)
{
	SPI_finish();
	SetUserIdAndSecContext(st->saved_user, st->saved_sec);
	AtEOXact_GUC(true, st->guc_level);
}

/*
 * The row-level security predicate is called for every row a query reads,
 * so its answer is kept for the rest of the statement (as a STABLE function
 * would see it); the functions that act on a client read afresh each call.
 */
static struct
{
	bool		used;
	LocalTransactionId lxid;
	TimestampTz statement;
	CommandId	cid;
	Oid			role;
	char		client[65];
	bool		result;
}			manage_memo;

/* tgt_profile.can_manage(client): the row-level security predicate. */
TP_SQL_FUNCTION(tgtp_can_manage)
{
	char	   *client;
	Oid			role = tp_caller();
	TimestampTz statement = GetCurrentStatementStartTimestamp();
	CommandId	cid = GetCurrentCommandId(false);

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	client = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (manage_memo.used && manage_memo.lxid == TP_MY_LXID &&
		manage_memo.statement == statement && manage_memo.cid == cid &&
		manage_memo.role == role && strcmp(manage_memo.client, client) == 0)
		PG_RETURN_BOOL(manage_memo.result);
	manage_memo.result = tp_client_level(client, role) >= TP_LEVEL_APPROVER;
	manage_memo.used = strlen(client) < sizeof(manage_memo.client);
	manage_memo.lxid = TP_MY_LXID;
	manage_memo.statement = statement;
	manage_memo.cid = cid;
	manage_memo.role = role;
	strlcpy(manage_memo.client, client, sizeof(manage_memo.client));
	PG_RETURN_BOOL(manage_memo.result);
}
