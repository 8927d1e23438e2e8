/*-------------------------------------------------------------------------
 *
 * store.c
 *	  Reading and writing the extension's tables.
 *
 * Hot read paths (settings, approvers, tokens) use a direct index lookup:
 * no SPI, no planner, no sequence, no write, so they are cheap and work on
 * a hot standby.  Such reads bypass row-level security by design; every
 * caller of tp_lookup has checked the caller's rights first (or, like
 * verify_token, reveals nothing but a yes or no).
 *
 * Writes go through SPI with plans prepared once per backend.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "catalog/pg_index.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "partitioning/partbounds.h"
#include "utils/partcache.h"
#include "partitioning/partdesc.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/syscache.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

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

static Oid
relation_oid(const char *relname)
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
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s.%s\" does not exist", TGTP_SCHEMA, relname),
				 errhint("The extension tgt_profile may be damaged; reinstall it.")));
	return relid;
}

Relation
tp_open_table(const char *relname, LOCKMODE mode)
{
	return table_open(relation_oid(relname), mode);
}

Relation
tp_open_index(const char *indexname, LOCKMODE mode)
{
	return index_open(relation_oid(indexname), mode);
}

/*
 * profiles may be hash-partitioned by client: the partition that holds a
 * client's rows, found the way tuple routing finds it.
 */
static Oid
profiles_partition(Relation parent, const char *client)
{
	PartitionKey key = RelationGetPartitionKey(parent);
	PartitionDesc pd = RelationGetPartitionDesc(parent, false);
	Datum		value = CStringGetTextDatum(client);
	bool		isnull = false;
	uint64		hash;
	int			part;

	if (key->strategy != PARTITION_STRATEGY_HASH || key->partnatts != 1 ||
		key->partattrs[0] != 1 || pd->nparts == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("tgt_profile.profiles must be hash-partitioned by client"),
				 errhint("Install with tgt_profile.profile_partitions set; see the README.")));
	hash = compute_partition_hash_value(1, key->partsupfunc, key->partcollation,
										&value, &isnull);
	part = pd->boundinfo->indexes[hash % get_hash_partition_greatest_modulus(pd->boundinfo)];
	if (part < 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("no partition of tgt_profile.profiles holds client \"%s\"", client)));
	return pd->oids[part];
}

/*
 * Open the relation that holds a client's profiles, and (unless indexname
 * is NULL) its copy of one of the profiles indexes: the table itself, or
 * the client's partition.
 */
void
tp_open_profiles(const char *client, const char *indexname, LOCKMODE mode,
				 Relation *rel, Relation *idx)
{
	Relation	parent = tp_open_table("profiles", mode);
	Oid			index_oid = indexname ? relation_oid(indexname) : InvalidOid;

	if (parent->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
	{
		*rel = parent;
		if (indexname)
			*idx = index_open(index_oid, mode);
		return;
	}
	*rel = table_open(profiles_partition(parent, client), mode);
	if (indexname)
		*idx = index_open(index_get_partition(*rel, index_oid), mode);
	table_close(parent, NoLock);	/* keep its lock until the end */
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
 * Fetch one row by the full key of a unique index and copy the wanted
 * columns into the current memory context.  Returns false when there is no
 * such row.  keys are in index column order.
 */
bool
tp_lookup(const char *relname, const char *indexname,
		  int nkeys, const Datum *keys,
		  int ncols, const AttrNumber *cols, Datum *values, bool *nulls)
{
	Relation	rel = tp_open_table(relname, AccessShareLock);
	Relation	idx = tp_open_index(indexname, AccessShareLock);
	Snapshot	snap = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	ScanKeyData skeys[INDEX_MAX_KEYS];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found;

	Assert(nkeys <= IndexRelationGetNumberOfKeyAttributes(idx));
	for (int i = 0; i < nkeys; i++)
	{
		/* systable_beginscan wants heap column numbers */
		ScanKeyInit(&skeys[i], idx->rd_index->indkey.values[i],
					BTEqualStrategyNumber, equality_proc(idx, i), keys[i]);
		skeys[i].sk_collation = idx->rd_indcollation[i];
	}

	scan = systable_beginscan(rel, RelationGetRelid(idx), true, snap, nkeys, skeys);
	tup = systable_getnext(scan);
	found = HeapTupleIsValid(tup);
	if (found)
	{
		TupleDesc	desc = RelationGetDescr(rel);

		for (int i = 0; i < ncols; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, cols[i] - 1);
			Datum		d = heap_getattr(tup, cols[i], desc, &nulls[i]);

			values[i] = nulls[i] ? (Datum) 0 : datumCopy(d, att->attbyval, att->attlen);
		}
	}
	systable_endscan(scan);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return found;
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
	int			rc;

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
	tp_plan_check_writes(p, values, nulls);
	rc = SPI_execute_plan(p->plan, values, nulls, read_only, count);
	/* SPI returns in its own procedure context: stay in the caller's */
	MemoryContextSwitchTo(caller_cxt);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
			 p->sql, SPI_result_code_string(rc));
	return (int) SPI_processed;
}

TimestampTz
tp_now(void)
{
	return GetCurrentTransactionStartTimestamp();
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

/* The client's settings; false when there is no such client. */
bool
tp_get_settings(const char *client, TpSettings *out)
{
	static const AttrNumber cols[5] = {2, 3, 4, 5, 6};
	Datum		key = CStringGetTextDatum(client);
	Datum		v[5];
	bool		n[5];

	if (!tp_lookup("settings", "settings_pkey", 1, &key, 5, cols, v, n))
		return false;
	out->require_auth = DatumGetBool(v[0]);
	out->token_ttl = *DatumGetIntervalP(v[1]);
	out->max_token_ttl = *DatumGetIntervalP(v[2]);
	out->profile_lifetime = *DatumGetIntervalP(v[3]);
	out->has_daily_row_limit = !n[4];
	out->daily_row_limit = n[4] ? 0 : DatumGetInt64(v[4]);
	return true;
}

void
tp_require_client(const char *client, TpSettings *out)
{
	TpSettings	dummy;

	if (!tp_get_settings(client, out ? out : &dummy))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("client \"%s\" does not exist", client),
				 errhint("Create it with tgt_profile.create_client().")));
}
