/*-------------------------------------------------------------------------
 *
 * store.c
 *	  The storage layer: every direct read of the extension's tables, the
 *	  snapshot each read uses, the relation that holds a client's rows (found
 *	  in placement.c: table, hash partition or local Citus shard), and the
 *	  per-client locks that order writers against drop_client.
 *
 * Hot read paths (settings, approvers, tokens) use a direct index lookup:
 * no SPI, no planner, no sequence, no write, so they are cheap and work on
 * a hot standby.  Such reads bypass row-level security by design; every
 * caller has checked the caller's rights first (or, like verify_token,
 * reveals nothing but a yes or no).
 *
 * Authorization state is read fresh (DESIGN.md, "Authorization is read
 * fresh"): pending invalidations are accepted, then a new snapshot is
 * taken, whatever the caller's isolation level or imported snapshot.  A
 * transaction that began before a revocation therefore sees it on its next
 * call.  On a hot standby the new snapshot is what has been replayed.
 *
 * Writes go through SPI with plans prepared once per backend; a statement
 * whose rows must be current (a revocation, the daily quota, drop_client)
 * runs under a fresh snapshot too, after the lock that orders it.
 *
 * On Citus, where placement.c says a client's rows are on another node,
 * the same reads and locks happen there, through SQL that Citus routes
 * (remote.c); SQL statements reach the shards by Citus's routing anyway.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "catalog/pg_index.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/syscache.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "storage/lock.h"
#include "storage/procarray.h"

/*
 * Our relations' OIDs, looked up once per backend.  Any change to pg_class
 * or pg_namespace (DROP EXTENSION, a rename, even a VACUUM's statistics)
 * empties the cache, so a stale OID is never used.
 */
#define OID_CACHE_SIZE 16

typedef struct OidCacheEntry
{
	const char *name;			/* one of our static relation names */
	Oid			oid;
} OidCacheEntry;

static OidCacheEntry oid_cache[OID_CACHE_SIZE];
static int	oid_cache_used = 0;
static bool oid_cache_registered = false;

static void
oid_cache_reset(Datum arg, int cacheid, uint32 hashvalue)
{
	oid_cache_used = 0;
}

Oid
tp_relation_oid(const char *relname)
{
	Oid			relid = tp_relation_oid_if_any(relname);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s.%s\" does not exist", TGTP_SCHEMA, relname),
				 errhint("The extension tgt_profile may be damaged; reinstall it.")));
	return relid;
}

/*
 * The same, InvalidOid when there is no such relation: one that a version
 * of the extension before ALTER EXTENSION UPDATE lacks (aliases, 1.2).
 */
Oid
tp_relation_oid_if_any(const char *relname)
{
	Oid			nsp;
	Oid			relid;

	for (int i = 0; i < oid_cache_used; i++)
		if (strcmp(oid_cache[i].name, relname) == 0)
			return oid_cache[i].oid;

	if (!oid_cache_registered)
	{
		CacheRegisterSyscacheCallback(RELOID, oid_cache_reset, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, oid_cache_reset, (Datum) 0);
		oid_cache_registered = true;
	}
	nsp = get_namespace_oid(TGTP_SCHEMA, false);
	relid = get_relname_relid(relname, nsp);
	if (OidIsValid(relid) && oid_cache_used < OID_CACHE_SIZE)
	{
		oid_cache[oid_cache_used].name = relname;
		oid_cache[oid_cache_used].oid = relid;
		oid_cache_used++;
	}
	return relid;
}

Relation
tp_open_table(const char *relname, LOCKMODE mode)
{
	return table_open(tp_relation_oid(relname), mode);
}

Relation
tp_open_index(const char *indexname, LOCKMODE mode)
{
	return index_open(tp_relation_oid(indexname), mode);
}

/*
 * Open the relation that holds a client's rows of relname (profiles,
 * aliases) on this node, and (unless indexname is NULL) its copy of one of
 * the table's indexes: the table itself, the client's partition, or the
 * client's local Citus shard (tp_client_relation, placement.c), and return
 * true.  Where the client's shard is on another node, open the shell that
 * stands for it here (the table, or its partition for the client) without
 * an index, and return false: the caller reads and writes through SQL,
 * which Citus routes.
 */
bool
tp_open_rows(const char *relname, const char *client, const char *indexname, LOCKMODE mode,
			 Relation *rel, Relation *idx)
{
	Relation	parent = tp_open_table(relname, mode);
	bool		elsewhere;
	Oid			relid = tp_client_relation(relname, client, &elsewhere);

	if (elsewhere)
	{
		relid = tp_client_shell(relname, client);
		indexname = NULL;
		if (idx)
			*idx = NULL;
	}
	if (relid == RelationGetRelid(parent))
	{
		*rel = parent;
		if (indexname)
			*idx = index_open(tp_relation_oid(indexname), mode);
		return !elsewhere;
	}
	*rel = table_open(relid, mode);
	if (indexname)
		*idx = index_open(tp_client_index(indexname, relid), mode);
	table_close(parent, NoLock);	/* keep its lock until the end */
	return !elsewhere;
}

/* tp_open_rows of profiles */
bool
tp_open_profiles(const char *client, const char *indexname, LOCKMODE mode,
				 Relation *rel, Relation *idx)
{
	return tp_open_rows("profiles", client, indexname, mode, rel, idx);
}

/* The equality function of an index column (our keys are text or bytea). */
static RegProcedure
equality_proc(Relation idx, int col)
{
	Oid			type = idx->rd_opcintype[col];

	if (type == TEXTOID)
		return F_TEXTEQ;
	if (type == BYTEAOID)
		return F_BYTEAEQ;
	return get_opcode(get_opfamily_member(idx->rd_opfamily[col], type, type,
										  BTEqualStrategyNumber));
}

/*
 * A snapshot that sees what is committed now: invalidations first (what a
 * cache built from this snapshot relies on), then the snapshot.  The caller
 * unregisters it.
 *
 * Taken with GetSnapshotData() into a snapshot of our own, as catalog
 * snapshots are, not with GetLatestSnapshot(): that one refuses to run in
 * parallel mode, and our verification and row-level security functions
 * are PARALLEL SAFE (a parallel scan of profiles calls can_manage() in its
 * workers).  Such a read needs no agreement with the query's snapshot.
 */
Snapshot
tp_fresh_snapshot(void)
{
	static SnapshotData fresh = {SNAPSHOT_MVCC};

	AcceptInvalidationMessages();
	return RegisterSnapshot(GetSnapshotData(&fresh));
}

/*
 * Start a scan of a table by a prefix of one of its unique indexes, under
 * a fresh snapshot.  keys are in index column order; the first is the
 * client's code (every index we scan starts with it), which tells the
 * relation that holds the rows on this node (placement.c).
 */
void
tp_fresh_scan_begin(TpScan *scan, const char *relname, const char *indexname,
					int nkeys, const Datum *keys)
{
	ScanKeyData skeys[INDEX_MAX_KEYS];
	bool		elsewhere;
	Oid			relid;

	memset(scan, 0, sizeof(*scan));
	scan->table = tp_open_table(relname, AccessShareLock);
	relid = tp_client_relation(relname, TextDatumGetCString(keys[0]), &elsewhere);
	if (elsewhere)
	{
		scan->rows = tp_remote_fresh_rows(relname, indexname, nkeys, keys);
		return;
	}
	if (relid == RelationGetRelid(scan->table))
	{
		scan->rel = scan->table;
		scan->idx = tp_open_index(indexname, AccessShareLock);
	}
	else
	{
		scan->rel = table_open(relid, AccessShareLock);
		scan->idx = index_open(tp_client_index(indexname, relid), AccessShareLock);
	}
	scan->snap = tp_fresh_snapshot();
	Assert(nkeys <= IndexRelationGetNumberOfKeyAttributes(scan->idx));
	for (int i = 0; i < nkeys; i++)
	{
		/* systable_beginscan wants heap column numbers */
		ScanKeyInit(&skeys[i], scan->idx->rd_index->indkey.values[i],
					BTEqualStrategyNumber, equality_proc(scan->idx, i), keys[i]);
		skeys[i].sk_collation = scan->idx->rd_indcollation[i];
	}
	scan->scan = systable_beginscan(scan->rel, RelationGetRelid(scan->idx), true,
									scan->snap, nkeys, skeys);
}

/* The next row, or NULL; valid until the next call. */
HeapTuple
tp_scan_next(TpScan *scan)
{
	if (scan->rel == NULL)
		return scan->next < list_length(scan->rows) ?
			(HeapTuple) list_nth(scan->rows, scan->next++) : NULL;
	return systable_getnext(scan->scan);
}

/* Copy the wanted columns of a scanned row into the current context. */
void
tp_scan_columns(TpScan *scan, HeapTuple tup, int ncols, const AttrNumber *cols,
				Datum *values, bool *nulls)
{
	TupleDesc	desc = RelationGetDescr(scan->rel ? scan->rel : scan->table);

	for (int i = 0; i < ncols; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, cols[i] - 1);
		Datum		d = heap_getattr(tup, cols[i], desc, &nulls[i]);

		values[i] = nulls[i] ? (Datum) 0 : datumCopy(d, att->attbyval, att->attlen);
	}
}

void
tp_scan_end(TpScan *scan)
{
	if (scan->rel != NULL)
	{
		systable_endscan(scan->scan);
		UnregisterSnapshot(scan->snap);
		index_close(scan->idx, AccessShareLock);
		if (scan->rel != scan->table)
			table_close(scan->rel, AccessShareLock);
	}
	list_free_deep(scan->rows);
	table_close(scan->table, AccessShareLock);
}

/*
 * Fetch one row by the full key of a unique index, as committed now, and
 * copy the wanted columns into the current memory context.  Returns false
 * when there is no such row.
 */
bool
tp_lookup(const char *relname, const char *indexname,
		  int nkeys, const Datum *keys,
		  int ncols, const AttrNumber *cols, Datum *values, bool *nulls)
{
	TpScan		scan;
	HeapTuple	tup;

	tp_fresh_scan_begin(&scan, relname, indexname, nkeys, keys);
	tup = tp_scan_next(&scan);
	if (HeapTupleIsValid(tup))
		tp_scan_columns(&scan, tup, ncols, cols, values, nulls);
	tp_scan_end(&scan);
	return HeapTupleIsValid(tup);
}

/* The statement's plan, prepared once per backend. */
static SPIPlanPtr
prepared_plan(TpPlan *p)
{
	MemoryContext caller_cxt = CurrentMemoryContext;

	if (p->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(p->sql, p->nargs, p->argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 p->sql, SPI_result_code_string(SPI_result));
		tp_plan_note_writes(p, plan);
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		p->plan = plan;
		MemoryContextSwitchTo(caller_cxt);
	}
	return p->plan;
}

/* SPI returns in its own procedure context: go back to the caller's. */
static int
exec_result(TpPlan *p, int rc, MemoryContext caller_cxt)
{
	MemoryContextSwitchTo(caller_cxt);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
			 p->sql, SPI_result_code_string(rc));
	return (int) SPI_processed;
}

/*
 * Run one of our statements with its plan prepared once per backend.  Must
 * be inside tp_begin/tp_end.  The tables it writes are checked first for
 * objects a DBA attached (additions.c).  Returns SPI_processed.
 */
int
tp_exec(TpPlan *p, Datum *values, const char *nulls, bool read_only, long count)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	SPIPlanPtr	plan = prepared_plan(p);

	tp_plan_check_writes(p, values, nulls);
	return exec_result(p, SPI_execute_plan(plan, values, nulls, read_only, count),
					   caller_cxt);
}

/*
 * tp_exec under a fresh snapshot: the statement sees (and, when it writes,
 * reaches) every row committed before it started, also in a REPEATABLE
 * READ transaction whose own snapshot is older.  Used after a per-client
 * lock, so that what the lock waited for is seen.
 */
int
tp_exec_fresh(TpPlan *p, Datum *values, const char *nulls, bool read_only, long count)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	SPIPlanPtr	plan = prepared_plan(p);
	Snapshot	snap;
	int			rc;

	tp_plan_check_writes(p, values, nulls);
	snap = tp_fresh_snapshot();
	rc = SPI_execute_snapshot(plan, values, nulls, snap, InvalidSnapshot,
							  read_only, true, count);
	UnregisterSnapshot(snap);
	return exec_result(p, rc, caller_cxt);
}

/*
 * Per-client locks, taken on an object no SQL command can lock (the class
 * is our settings table, the object a hash of the client code), so no role
 * can hold one to block us.  Writers of a client's rows share TP_LOCK_ROWS;
 * drop_client takes it exclusively, so it waits for the writers that came
 * before it and the ones after it find the client gone.  Token changes and
 * batches of one client are serialised among themselves only.  Held until
 * the end of the transaction; a hash collision only serialises two clients.
 */
void
tp_lock_client(const char *client, TpClientLock kind)
{
	LOCKTAG		tag;
	uint32		h = hash_bytes((const unsigned char *) client, (int) strlen(client));
	Oid			settings = tp_relation_oid("settings");

	/* the stronger modes cannot be had on a hot standby: say why first */
	if (kind != TP_LOCK_ROWS)
		PreventCommandIfReadOnly(kind == TP_LOCK_TOKENS ? "generate_token or revoke_tokens"
								 : kind == TP_LOCK_BATCHES ? "bulk_update" : "drop_client");
	LockRelationOid(settings, AccessShareLock);
	if (!tp_client_rows_here("settings", client))
	{
		tp_remote_lock_client(client, kind);
		return;
	}
	SET_LOCKTAG_OBJECT(tag, MyDatabaseId, settings, h, 1);
	(void) LockAcquire(&tag, kind == TP_LOCK_DROP ? AccessExclusiveLock : AccessShareLock,
					   false, false);
	if (kind == TP_LOCK_TOKENS || kind == TP_LOCK_BATCHES)
	{
		SET_LOCKTAG_OBJECT(tag, MyDatabaseId, settings, h, kind == TP_LOCK_TOKENS ? 2 : 3);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
	}
}

/*
 * Run body(arg) in a subtransaction of its own: kept when body returns
 * true; rolled back when it returns false, or when it raises an error of
 * SQLSTATE caught (then *raised is set, the error is forgotten and false
 * returned).  Any other error is re-thrown after the rollback.  Lets a
 * write that may meet a concurrent one be undone alone (and its locks let
 * go), so that the caller can start over.
 */
bool
tp_in_subtransaction(bool (*body) (void *arg), void *arg, int caught, bool *raised)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool kept = false;

	*raised = false;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		kept = body(arg);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode != caught)
			ReThrowError(edata);
		FlushErrorState();
		FreeErrorData(edata);
		*raised = true;
		return false;
	}
	PG_END_TRY();
	if (kept)
		ReleaseCurrentSubTransaction();
	else
		RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return kept;
}

/* The time our writes stamp: the transaction's start, like now(). */
TimestampTz
tp_now(void)
{
	return GetCurrentTransactionStartTimestamp();
}

/* The time validity is judged by: the clock (DESIGN.md). */
TimestampTz
tp_clock(void)
{
	return GetCurrentTimestamp();
}

/* One audit row; must run as the owner (inside tp_begin(…, true)). */
void
tp_audit(const char *client, const char *actor, const char *action,
		 const char *detail_json)
{
	static TpPlan plan = {
		"INSERT INTO tgt_profile.audit_log (client, at, actor, action, detail) "
		"VALUES ($1, $2, $3, $4, $5::jsonb)",
		5, {TEXTOID, TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID}
	};
	Datum		values[5];

	values[0] = CStringGetTextDatum(client);
	values[1] = TimestampTzGetDatum(tp_now());
	values[2] = CStringGetTextDatum(actor);
	values[3] = CStringGetTextDatum(action);
	values[4] = CStringGetTextDatum(detail_json ? detail_json : "{}");
	tp_exec(&plan, values, NULL, false, 0);
}
