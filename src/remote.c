/*-------------------------------------------------------------------------
 *
 * remote.c
 *	  The storage layer's reach to a client's rows on another node of a
 *	  Citus cluster: through SQL that Citus routes to the client's shard, in
 *	  the same distributed transaction.
 *
 * Where placement.c says a client's rows are on another node, a read or a
 * lock cannot be done here directly.  Profiles are read with a plain SELECT
 * (tp_sql_profiles): they follow the transaction's isolation, as the direct
 * read does.  Authorization state (settings, approvers, tokens) must be
 * read fresh whatever the isolation level (DESIGN.md), and a remote
 * statement under REPEATABLE READ keeps the snapshot of its transaction's
 * first statement on that node; so the read runs there instead, as a call
 * of fresh_rows() that Citus routes to the shard: on its node the rows are
 * local, and the storage layer reads them under a fresh snapshot, as on one
 * node (and sees what this transaction wrote there).  The per-client locks
 * are taken the same way, by lock_client() on the shard's node.
 *
 * Both helpers are SQL functions of our schema, revoked from PUBLIC: only
 * the owner calls them (we switch to it first), and they refuse to run
 * where the client's rows are not local, so a call never travels on.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

/*
 * A client's profiles on another node, read through SQL, which Citus
 * routes to the client's shard: the one whose tnt_id (or third_party_id)
 * is id, or when many those whose key is an element of the text[] id.
 * Returned in the current memory context as tuples of the table's row
 * type, each with t_self set to the row's ctid on its node, which an
 * UPDATE ... WHERE ctid = $n routed the same way finds again (or misses,
 * when the row changed since).  Read as the owner, under the transaction's
 * isolation (on that node), as the direct read is.
 */
List *
tp_sql_profiles(const char *client, bool by_third_party, Datum id, bool many)
{
	Oid			types[2] = {TEXTOID, many ? TEXTARRAYOID : TEXTOID};
	Datum		args[2] = {CStringGetTextDatum(client), id};
	char	   *sql;

	sql = psprintf("SELECT p.ctid, p FROM %s.profiles p "
				   " WHERE p.client OPERATOR(pg_catalog.=) $1 AND p.%s OPERATOR(pg_catalog.=) %s($2)",
				   TGTP_SCHEMA, by_third_party ? "third_party_id" : "tnt_id",
				   many ? "ANY " : "");
	return tp_remote_query_rows(sql, 2, types, args, NULL, true);
}

/*
 * Run a query that returns rows of one of our tables as its last column (a
 * whole-row value), preceded by their ctid when with_tid, and copy them into
 * the current memory context as tuples of the table's row type.  As the
 * owner, with our search_path.
 */
List *
tp_remote_query_rows(const char *sql, int nargs, const Oid *types, const Datum *args,
					 const char *nulls, bool with_tid)
{
	TpPrivState st;
	List	   *rows = NIL;
	int			rc;
	int			col = with_tid ? 2 : 1;

	tp_begin(&st, true);
	rc = SPI_execute_with_args(sql, nargs, (Oid *) types, (Datum *) args, nulls, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed for \"%s\": %s",
			 sql, SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		bool		isnull;
		Datum		whole = SPI_getbinval(row, SPI_tuptable->tupdesc, col, &isnull);
		HeapTupleHeader th;
		HeapTupleData tmp;
		MemoryContext old;
		HeapTuple	copy;

		if (isnull)
			continue;
		th = DatumGetHeapTupleHeader(whole);
		tmp.t_len = HeapTupleHeaderGetDatumLength(th);
		tmp.t_data = th;
		tmp.t_tableOid = InvalidOid;
		ItemPointerSetInvalid(&tmp.t_self);
		old = MemoryContextSwitchTo(st.outer);
		copy = heap_copytuple(&tmp);
		if (with_tid)
			copy->t_self = *(ItemPointer) DatumGetPointer(SPI_getbinval(row, SPI_tuptable->tupdesc,
																		 1, &isnull));
		rows = lappend(rows, copy);
		MemoryContextSwitchTo(old);
	}
	tp_end(&st);
	return rows;
}

/*
 * The rows a fresh scan of relname by indexname's first nkeys columns
 * would find on the node that holds the client's shard (keys[0] is the
 * client, keys[1], if any, a bytea).  Routed through the client's settings
 * row: a client without one has no rows in any of our tables.
 */
List *
tp_remote_fresh_rows(const char *relname, const char *indexname, int nkeys,
					 const Datum *keys)
{
	static const Oid types[3] = {TEXTOID, BYTEAOID, TEXTOID};
	Datum		args[3];
	char		nulls[3] = {' ', nkeys == 2 ? ' ' : 'n', ' '};
	char	   *sql;

	if (nkeys < 1 || nkeys > 2)
		elog(ERROR, "a fresh remote read takes one or two keys, not %d", nkeys);

	args[0] = keys[0];
	args[1] = nkeys == 2 ? keys[1] : (Datum) 0;
	args[2] = CStringGetTextDatum(indexname);
	sql = psprintf("SELECT %s.fresh_rows(NULL::%s.%s, $3, s.client, $2) "
				   "  FROM %s.settings s WHERE s.client OPERATOR(pg_catalog.=) $1",
				   TGTP_SCHEMA, TGTP_SCHEMA, quote_identifier(relname), TGTP_SCHEMA);
	return tp_remote_query_rows(sql, 3, types, args, nulls, false);
}

/*
 * Take a per-client lock on the node that holds the client's shard, where
 * every call for the client that runs there takes it too, inside this
 * transaction (held until it ends).  A client that does not exist has no
 * row to route to: nothing is locked, and the caller's read of the client
 * finds it missing.
 */
void
tp_remote_lock_client(const char *client, int kind)
{
	static TpPlan plan = {
		"SELECT tgt_profile.lock_client(s.client, $2) FROM tgt_profile.settings s "
		" WHERE s.client OPERATOR(pg_catalog.=) $1",
		2, {TEXTOID, INT4OID}
	};
	TpPrivState st;
	Datum		v[2];

	v[0] = CStringGetTextDatum(client);
	v[1] = Int32GetDatum((int32) kind);
	tp_begin(&st, true);
	(void) tp_exec(&plan, v, NULL, false, 0);
	tp_end(&st);
}

/* Both helpers run only where the client's rows are. */
static void
require_local(const char *relname, const char *client)
{
	if (!tp_client_rows_here(relname, client))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the rows of client \"%s\" are not on this node", client),
				 errhint("The shard placements changed meanwhile; retry.")));
}

/*
 * fresh_rows(NULL::<our table>, index, client, key) RETURNS SETOF <that
 * table> (1.2, internal): the rows a fresh scan of the table by the index's
 * first one or two columns finds, on the node that holds the client's rows.
 */
TP_SQL_FUNCTION(tgtp_fresh_rows)
{
	/* what tp_fresh_scan_begin reads (its names must be static) */
	static const char *const scans[][2] = {
		{"settings", "settings_pkey"},
		{"approvers", "approvers_pkey"},
		{"token_store", "token_store_hash_key"},
	};
	Oid			relid = get_typ_typrelid(get_fn_expr_argtype(fcinfo->flinfo, 0));
	const char *relname = NULL;
	const char *indexname = NULL;
	char	   *client;
	Datum		keys[2];
	int			nkeys = 1;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TpScan		scan;
	HeapTuple	tup;

	for (int i = 0; i < lengthof(scans) && !PG_ARGISNULL(1); i++)
	{
		if (relid == tp_relation_oid(scans[i][0]) &&
			strcmp(text_to_cstring(PG_GETARG_TEXT_PP(1)), scans[i][1]) == 0)
		{
			relname = scans[i][0];
			indexname = scans[i][1];
		}
	}
	if (relname == NULL || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fresh_rows() reads settings, approvers and token_store of schema %s by their keys only",
						TGTP_SCHEMA)));
	client = text_to_cstring(PG_GETARG_TEXT_PP(2));
	keys[0] = PG_GETARG_DATUM(2);
	if (!PG_ARGISNULL(3))
		keys[nkeys++] = PG_GETARG_DATUM(3);
	require_local(relname, client);

	InitMaterializedSRF(fcinfo, 0);
	tp_fresh_scan_begin(&scan, relname, indexname, nkeys, keys);
	while (HeapTupleIsValid(tup = tp_scan_next(&scan)))
		tuplestore_puttuple(rsinfo->setResult, tup);
	tp_scan_end(&scan);
	return (Datum) 0;
}

/*
 * lock_client(client, kind) (1.2, internal): tp_lock_client on this node,
 * the one that holds the client's rows.
 */
TP_SQL_FUNCTION(tgtp_lock_client)
{
	char	   *client = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int32		kind = PG_GETARG_INT32(1);

	if (kind < TP_LOCK_ROWS || kind > TP_LOCK_DROP)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lock kind %d is not one of tgt_profile's", kind)));
	require_local("settings", client);
	tp_lock_client(client, (TpClientLock) kind);
	PG_RETURN_BOOL(true);
}
