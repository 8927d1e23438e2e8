/*-------------------------------------------------------------------------
 *
 * placement.c
 *	  The storage layer's answer to "which relation holds a client's rows of
 *	  one of our tables on this node": the table itself, its hash partition
 *	  for the client, or, on a Citus cluster, the client's shard when this
 *	  node holds a placement of it (else the rows are elsewhere, and the
 *	  caller goes through SQL, which Citus routes).
 *
 * Citus is neither linked nor called: its catalogs (pg_dist_partition,
 * pg_dist_shard, pg_dist_placement, pg_dist_local_group, all in pg_catalog)
 * are read directly when they exist, and the shard is found the way Citus
 * finds it (FindShardInterval): the distribution column's type's standard
 * hash function (hashtext for text) with the column's collation gives an
 * int32, which falls in exactly one shard's [shardminvalue, shardmaxvalue].
 * The shard relation is <table>_<shardid> in our schema (Citus's
 * AppendShardIdToName), and so is each of its indexes.
 *
 * What costs is cached per backend: for each of our relations, its kind and
 * its distribution (the hash function and the sorted shard intervals, each
 * shard's placement on this node looked up once, when first asked).  Citus
 * sends a relcache invalidation of the distributed table on every change of
 * its rows in those catalogs (its triggers and its C paths alike), and of
 * pg_dist_local_group when that changes; an entry is dropped on an
 * invalidation of its relation, everything on one of those catalogs or a
 * relcache reset.  Names looked up in pg_class (the catalogs, the shard
 * relations and indexes) are looked up again after any change to pg_class
 * or pg_namespace, as store.c's OIDs are.  Without Citus a call costs a
 * hash lookup once cached.
 *
 * The caller holds a lock on the table (tp_open_table): taking it accepted
 * the invalidations that keep the answer current.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_namespace.h"
#include "common/hashfn.h"
#include "mb/pg_wchar.h"
#include "nodes/primnodes.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

/* Where a shard's placement is, as far as this node is concerned. */
#define SHARD_UNKNOWN	0
#define SHARD_LOCAL		1
#define SHARD_REMOTE	2

/* Citus's pg_dist_placement.shardstate of a usable placement */
#define CITUS_SHARD_STATE_ACTIVE 1

typedef struct Shard
{
	int32		min;			/* the hash range it holds, inclusive */
	int32		max;
	int64		shardid;
	char		where;			/* SHARD_* */
	Oid			relid;			/* the shard relation, when local and known */
	uint64		relid_gen;		/* names_gen when relid was looked up */
} Shard;

/* One of our relations (a table or a partition), keyed by its OID. */
typedef struct Dist
{
	Oid			relid;
	bool		valid;			/* cleared by an invalidation */
	char		relkind;
	bool		distributed;	/* a Citus table, hash-distributed by client */
	int			nshards;
	Shard	   *shards;			/* sorted by min, in placement_cxt */
	FmgrInfo	hash;			/* the distribution column's hash function */
	Oid			collation;		/* ... and its collation */
} Dist;

/* Citus's catalogs, found by name in pg_catalog. */
typedef struct CitusCatalogs
{
	Oid			partition;		/* pg_dist_partition, or InvalidOid */
	Oid			partition_idx;	/* ... its index on logicalrelid */
	Oid			shard;
	Oid			shard_relid_idx;
	Oid			shard_shardid_idx;
	Oid			placement;
	Oid			placement_shardid_idx;
	Oid			local_group;
	AttrNumber	part_relid,
				part_method,
				part_key;
	AttrNumber	shard_relid,
				shard_id,
				shard_min,
				shard_max;
	AttrNumber	plc_shardid,
				plc_state,
				plc_group;
	AttrNumber	lg_group;
} CitusCatalogs;

/* An index of a client relation, keyed by our index and that relation. */
typedef struct IndexKey
{
	Oid			index;
	Oid			client_rel;
} IndexKey;

typedef struct IndexEntry
{
	IndexKey	key;
	Oid			result;
	uint64		gen;			/* names_gen when found */
} IndexEntry;

static MemoryContext placement_cxt = NULL;
static HTAB *dist_htab = NULL;
static HTAB *index_htab = NULL;
static bool all_stale = false;	/* drop every Dist entry before the next use */
static uint64 inval_count = 0;	/* invalidations that dropped something */

static CitusCatalogs citus;
static bool citus_known = false;	/* citus looked up since names_gen moved */
static uint64 names_gen = 1;		/* bumped by any pg_class/pg_namespace change */

static int32 local_group;
static bool local_group_known = false;

/* A relcache invalidation: drop what depends on that relation. */
static void
relcache_changed(Datum arg, Oid relid)
{
	Dist	   *d;

	if (!OidIsValid(relid) || (OidIsValid(citus.partition) &&
							   (relid == citus.partition || relid == citus.shard ||
								relid == citus.placement || relid == citus.local_group)))
	{
		all_stale = true;
		local_group_known = false;
		inval_count++;
		return;
	}
	if (dist_htab == NULL)
		return;
	d = hash_search(dist_htab, &relid, HASH_FIND, NULL);
	if (d != NULL)
	{
		d->valid = false;
		inval_count++;
	}
}

/* A pg_class or pg_namespace change: names may lead elsewhere now. */
static void
names_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	citus_known = false;
	names_gen++;
}

/* The cache's memory and hash tables, and its callbacks, once per backend. */
static void
placement_init(void)
{
	HASHCTL		ctl;

	if (placement_cxt != NULL)
		return;
	placement_cxt = AllocSetContextCreate(CacheMemoryContext, "tgt_profile placements",
										  ALLOCSET_SMALL_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(Dist);
	ctl.hcxt = placement_cxt;
	dist_htab = hash_create("tgt_profile relations", 32, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(IndexKey);
	ctl.entrysize = sizeof(IndexEntry);
	ctl.hcxt = placement_cxt;
	index_htab = hash_create("tgt_profile client indexes", 32, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	CacheRegisterRelcacheCallback(relcache_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(RELOID, names_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, names_changed, (Datum) 0);
}

static Oid
catalog_oid(const char *name)
{
	return get_relname_relid(name, PG_CATALOG_NAMESPACE);
}

/* A column of a Citus catalog, by name: its number may differ by version. */
static AttrNumber
catalog_column(Oid rel, const char *name)
{
	AttrNumber	att = get_attnum(rel, name);

	if (att == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("column \"%s\" of Citus's catalog %s is missing", name,
						get_rel_name(rel)),
				 errhint("Use a Citus version tgt_profile supports (see the README).")));
	return att;
}

/*
 * Is Citus installed in this database?  Its catalogs are looked up again
 * after any pg_class change (one cached lookup when it is absent); found
 * under other OIDs than before (dropped and created again), every
 * distribution read from the old ones is dropped.
 */
static bool
citus_installed(void)
{
	Oid			partition;

	if (citus_known)
		return OidIsValid(citus.partition);
	citus_known = true;
	partition = catalog_oid("pg_dist_partition");
	if (partition != citus.partition)
	{
		all_stale = true;
		local_group_known = false;
	}
	if (!OidIsValid(partition))
	{
		memset(&citus, 0, sizeof(citus));
		return false;
	}
	citus.partition = partition;
	citus.partition_idx = catalog_oid("pg_dist_partition_logical_relid_index");
	citus.shard = catalog_oid("pg_dist_shard");
	citus.shard_relid_idx = catalog_oid("pg_dist_shard_logical_relid_index");
	citus.shard_shardid_idx = catalog_oid("pg_dist_shard_shardid_index");
	citus.placement = catalog_oid("pg_dist_placement");
	citus.placement_shardid_idx = catalog_oid("pg_dist_placement_shardid_index");
	citus.local_group = catalog_oid("pg_dist_local_group");
	if (!OidIsValid(citus.shard) || !OidIsValid(citus.placement) ||
		!OidIsValid(citus.local_group))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("Citus's catalogs are incomplete in this database"),
				 errdetail("pg_dist_partition exists, but pg_dist_shard, pg_dist_placement or pg_dist_local_group does not."),
				 errhint("Use a Citus version tgt_profile supports (see the README).")));
	citus.part_relid = catalog_column(citus.partition, "logicalrelid");
	citus.part_method = catalog_column(citus.partition, "partmethod");
	citus.part_key = catalog_column(citus.partition, "partkey");
	citus.shard_relid = catalog_column(citus.shard, "logicalrelid");
	citus.shard_id = catalog_column(citus.shard, "shardid");
	citus.shard_min = catalog_column(citus.shard, "shardminvalue");
	citus.shard_max = catalog_column(citus.shard, "shardmaxvalue");
	citus.plc_shardid = catalog_column(citus.placement, "shardid");
	citus.plc_state = catalog_column(citus.placement, "shardstate");
	citus.plc_group = catalog_column(citus.placement, "groupid");
	citus.lg_group = catalog_column(citus.local_group, "groupid");
	return true;
}

/*
 * A scan of a catalog by one equality key, by index when there is one
 * (systable_beginscan falls back to a heap scan otherwise), under the
 * catalog snapshot.
 */
static SysScanDesc
catalog_scan(Relation rel, Oid index, AttrNumber att, RegProcedure eq, Datum value)
{
	ScanKeyData key;

	ScanKeyInit(&key, att, BTEqualStrategyNumber, eq, value);
	return systable_beginscan(rel, index, OidIsValid(index), NULL, 1, &key);
}

/* This node's Citus group (0 on the coordinator), read once. */
static int32
this_group(void)
{
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		isnull = true;
	Datum		d = (Datum) 0;
	uint64		start = inval_count;

	if (local_group_known)
		return local_group;
	rel = table_open(citus.local_group, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		d = heap_getattr(tup, citus.lg_group, RelationGetDescr(rel), &isnull);
	local_group = isnull ? -1 : DatumGetInt32(d);
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	/* kept unless an invalidation arrived during the read */
	local_group_known = inval_count == start;
	return local_group;
}

static int
shard_cmp(const void *a, const void *b)
{
	int32		x = ((const Shard *) a)->min;
	int32		y = ((const Shard *) b)->min;

	return x < y ? -1 : x > y ? 1 : 0;
}

static int32
shard_bound(HeapTuple tup, TupleDesc desc, AttrNumber att, int64 shardid)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, att, desc, &isnull);

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("shard " INT64_FORMAT " of a hash-distributed table has no hash range",
						shardid)));
	return pg_strtoint32(TextDatumGetCString(d));
}

/*
 * Read a relation's Citus distribution into d: is it a Citus table, by
 * which hash, in which shards.  A Citus table that is not hash-distributed
 * by client (a reference or local table) is refused: our rows could not be
 * found by client.
 */
static void
read_distribution(Dist *d)
{
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		v;
	char		method;
	Var		   *var;
	TypeCacheEntry *tc;
	int			cap = 32;
	MemoryContext old;

	rel = table_open(citus.partition, AccessShareLock);
	scan = catalog_scan(rel, citus.partition_idx, citus.part_relid, F_OIDEQ,
						ObjectIdGetDatum(d->relid));
	tup = systable_getnext(scan);
	if (!HeapTupleIsValid(tup))
	{
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
		return;
	}
	desc = RelationGetDescr(rel);
	method = DatumGetChar(heap_getattr(tup, citus.part_method, desc, &isnull));
	v = heap_getattr(tup, citus.part_key, desc, &isnull);
	var = (method == 'h' && !isnull) ? (Var *) stringToNode(TextDatumGetCString(v)) : NULL;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (var == NULL || !IsA(var, Var) ||
		var->varattno != get_attnum(d->relid, "client"))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table %s is a Citus table, but not hash-distributed by client",
						get_rel_name(d->relid)),
				 errhint("Distribute the extension's tables with tgt_profile.distribute().")));
	tc = lookup_type_cache(var->vartype, TYPECACHE_HASH_PROC_FINFO);
	if (!OidIsValid(tc->hash_proc))
		elog(ERROR, "no hash function for type %u", var->vartype);
	fmgr_info_copy(&d->hash, &tc->hash_proc_finfo, placement_cxt);
	d->collation = var->varcollid;

	/* its shards, sorted by hash range */
	old = MemoryContextSwitchTo(placement_cxt);
	d->shards = palloc(cap * sizeof(Shard));
	MemoryContextSwitchTo(old);
	rel = table_open(citus.shard, AccessShareLock);
	desc = RelationGetDescr(rel);
	scan = catalog_scan(rel, citus.shard_relid_idx, citus.shard_relid, F_OIDEQ,
						ObjectIdGetDatum(d->relid));
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Shard	   *s;

		if (d->nshards == cap)
		{
			cap *= 2;
			d->shards = repalloc(d->shards, cap * sizeof(Shard));
		}
		s = &d->shards[d->nshards];
		s->shardid = DatumGetInt64(heap_getattr(tup, citus.shard_id, desc, &isnull));
		s->min = shard_bound(tup, desc, citus.shard_min, s->shardid);
		s->max = shard_bound(tup, desc, citus.shard_max, s->shardid);
		s->where = SHARD_UNKNOWN;
		s->relid = InvalidOid;
		s->relid_gen = 0;
		d->nshards++;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	qsort(d->shards, d->nshards, sizeof(Shard), shard_cmp);
	d->distributed = true;
}

/*
 * The cached facts about one of our relations, read again when an
 * invalidation dropped them.  They are kept (valid) only when the read
 * completed and no invalidation arrived meanwhile; else the next call
 * reads again.
 */
static Dist *
relation_facts(Oid relid)
{
	Dist	   *d;
	bool		found;
	uint64		start;

	placement_init();
	if (all_stale)
	{
		HASH_SEQ_STATUS st;
		Dist	   *e;

		all_stale = false;
		hash_seq_init(&st, dist_htab);
		while ((e = hash_seq_search(&st)) != NULL)
			e->valid = false;
	}
	d = hash_search(dist_htab, &relid, HASH_ENTER, &found);
	if (found && d->valid)
		return d;
	if (!found)
		d->shards = NULL;
	if (d->shards != NULL)
		pfree(d->shards);
	d->shards = NULL;
	d->nshards = 0;
	d->distributed = false;
	d->valid = false;
	start = inval_count;
	d->relkind = get_rel_relkind(relid);
	if (d->relkind != RELKIND_PARTITIONED_TABLE && citus_installed())
		read_distribution(d);
	d->valid = inval_count == start;
	return d;
}

/*
 * The partition of a hash-partitioned table (profiles, by
 * tgt_profile.profile_partitions) that holds a client's rows, found the
 * way tuple routing finds it.
 */
static Oid
client_partition(Oid relid, const char *client)
{
	Relation	parent = RelationIdGetRelation(relid);
	PartitionKey key = RelationGetPartitionKey(parent);
	PartitionDesc pd = RelationGetPartitionDesc(parent, false);
	Datum		value = CStringGetTextDatum(client);
	bool		isnull = false;
	uint64		hash;
	int			part;
	Oid			result;

	if (key->strategy != PARTITION_STRATEGY_HASH || key->partnatts != 1 ||
		key->partattrs[0] != 1 || pd->nparts == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("tgt_profile.%s must be hash-partitioned by client",
						RelationGetRelationName(parent)),
				 errhint("Install with tgt_profile.profile_partitions set; see the README.")));
	hash = compute_partition_hash_value(1, key->partsupfunc, key->partcollation,
										&value, &isnull);
	part = pd->boundinfo->indexes[hash % get_hash_partition_greatest_modulus(pd->boundinfo)];
	if (part < 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("no partition of tgt_profile.%s holds client \"%s\"",
						RelationGetRelationName(parent), client)));
	result = pd->oids[part];
	RelationClose(parent);
	return result;
}

/*
 * A Citus shard's relation name, as Citus's AppendShardIdToName makes it:
 * name_shardid, or, when that would not fit in NAMEDATALEN, the name cut
 * (on a character boundary), "_", 8 hex digits of its hash, "_shardid".
 */
static void
shard_relname(const char *name, int64 shardid, char *out)
{
	char		suffix[NAMEDATALEN];
	int			len = strlen(name);
	int			slen = snprintf(suffix, sizeof(suffix), "_" INT64_FORMAT, shardid);

	if (len < NAMEDATALEN - slen)
		snprintf(out, NAMEDATALEN, "%s%s", name, suffix);
	else
		snprintf(out, NAMEDATALEN, "%.*s_%.8x%s",
				 pg_mbcliplen(name, len, NAMEDATALEN - slen - 10), name,
				 hash_bytes((const unsigned char *) name, len), suffix);
}

/* Does this node hold an active placement of the shard?  Asked once. */
static bool
shard_is_local(Shard *s)
{
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	int32		group = this_group();
	bool		local = false;

	if (s->where != SHARD_UNKNOWN)
		return s->where == SHARD_LOCAL;
	rel = table_open(citus.placement, AccessShareLock);
	scan = catalog_scan(rel, citus.placement_shardid_idx, citus.plc_shardid, F_INT8EQ,
						Int64GetDatum(s->shardid));
	while (!local && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		n1,
					n2;
		int32		g = DatumGetInt32(heap_getattr(tup, citus.plc_group,
												   RelationGetDescr(rel), &n1));
		int32		state = DatumGetInt32(heap_getattr(tup, citus.plc_state,
													   RelationGetDescr(rel), &n2));

		local = !n1 && !n2 && g == group && state == CITUS_SHARD_STATE_ACTIVE;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	s->where = local ? SHARD_LOCAL : SHARD_REMOTE;
	return local;
}

/* The shard relation of a local placement, by its name beside its table. */
static Oid
shard_relation(Oid table, Shard *s)
{
	char		name[NAMEDATALEN];

	if (OidIsValid(s->relid) && s->relid_gen == names_gen)
		return s->relid;
	shard_relname(get_rel_name(table), s->shardid, name);
	s->relid = get_relname_relid(name, get_rel_namespace(table));
	s->relid_gen = names_gen;
	if (!OidIsValid(s->relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("shard relation \"%s\" of table %s does not exist on this node",
						name, get_rel_name(table)),
				 errdetail("Citus's catalogs place shard " INT64_FORMAT " on this node.",
						   s->shardid),
				 errhint("Check the node's shards with citus_shards, or move the shard again.")));
	return s->relid;
}

/* The shard whose hash range holds the client (Citus's FindShardInterval). */
static Shard *
client_shard(Dist *d, const char *client)
{
	int32		h = DatumGetInt32(FunctionCall1Coll(&d->hash, d->collation,
													CStringGetTextDatum(client)));
	int			lo = 0,
				hi = d->nshards - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		Shard	   *s = &d->shards[mid];

		if (h < s->min)
			hi = mid - 1;
		else if (h > s->max)
			lo = mid + 1;
		else
			return s;
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("no shard of table %s holds client \"%s\"", get_rel_name(d->relid), client),
			 errdetail("The hash %d of the client falls into no shard's range in pg_dist_shard.", h)));
	return NULL;				/* keep the compiler quiet */
}

/*
 * The relation of our schema that holds a client's rows, or on Citus whose
 * shard holds them: the table, or its hash partition for the client (a
 * partition of a partitioned table may itself be partitioned).
 */
static Dist *
client_leaf(const char *relname, const char *client)
{
	Dist	   *d = relation_facts(tp_relation_oid(relname));

	while (d->relkind == RELKIND_PARTITIONED_TABLE)
		d = relation_facts(client_partition(d->relid, client));
	return d;
}

/*
 * That relation's OID: on Citus the shell (or the shell's partition) of
 * the client's shard, as it is on every node.
 */
Oid
tp_client_shell(const char *relname, const char *client)
{
	return client_leaf(relname, client)->relid;
}

/*
 * The OID of the relation on this node that holds client's rows of our
 * table relname (settings, approvers, token_store, audit_log, profiles,
 * aliases, batches, batch_rejects): the table; its hash partition for the client;
 * on Citus, the client's shard when this node holds a placement of it.
 * Otherwise InvalidOid with *elsewhere set: the rows are on another node,
 * and only SQL (which Citus routes) reaches them.  The caller holds a lock
 * on relname.
 */
Oid
tp_client_relation(const char *relname, const char *client, bool *elsewhere)
{
	Dist	   *d = client_leaf(relname, client);
	Shard	   *s;

	*elsewhere = false;
	if (!d->distributed)
		return d->relid;
	s = client_shard(d, client);
	if (!shard_is_local(s))
	{
		*elsewhere = true;
		return InvalidOid;
	}
	return shard_relation(d->relid, s);
}

/*
 * Are client's rows of relname on this node (not on Citus, always)?  A
 * per-backend cache may keep only such rows: a write on another node fires
 * its invalidation there, never here.
 */
bool
tp_client_rows_here(const char *relname, const char *client)
{
	bool		elsewhere;

	(void) tp_client_relation(relname, client, &elsewhere);
	return !elsewhere;
}

/*
 * Is rel a Citus shard of one of our relations?  Then its table (the
 * shell, or the shell's partition) and shard id.  Found among the shards
 * cached, else by its name (Citus's own way: the digits after the last
 * "_") checked in pg_dist_shard.
 */
static bool
shard_of(Oid rel, Oid *table, int64 *shardid)
{
	HASH_SEQ_STATUS st;
	Dist	   *d;
	char	   *name;
	char	   *sep;
	Relation	cat;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	hash_seq_init(&st, dist_htab);
	while ((d = hash_seq_search(&st)) != NULL)
	{
		for (int i = 0; d->valid && i < d->nshards; i++)
			if (d->shards[i].relid == rel && d->shards[i].relid_gen == names_gen)
			{
				*table = d->relid;
				*shardid = d->shards[i].shardid;
				hash_seq_term(&st);
				return true;
			}
	}
	if (!citus_installed())
		return false;
	name = get_rel_name(rel);
	sep = name ? strrchr(name, '_') : NULL;
	if (sep == NULL || sep[1] == '\0' || strspn(sep + 1, "0123456789") != strlen(sep + 1))
		return false;
	*shardid = pg_strtoint64(sep + 1);
	cat = table_open(citus.shard, AccessShareLock);
	scan = catalog_scan(cat, citus.shard_shardid_idx, citus.shard_id, F_INT8EQ,
						Int64GetDatum(*shardid));
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;

		*table = DatumGetObjectId(heap_getattr(tup, citus.shard_relid,
											   RelationGetDescr(cat), &isnull));
		found = get_rel_namespace(*table) == get_rel_namespace(rel);
	}
	systable_endscan(scan);
	table_close(cat, AccessShareLock);
	return found;
}

/* The index of a partition that is attached to index, one of our indexes. */
static Oid
partition_index(Oid partition, Oid index)
{
	Relation	rel = RelationIdGetRelation(partition);
	Oid			result = index_get_partition(rel, index);

	RelationClose(rel);
	if (!OidIsValid(result))
		elog(ERROR, "no index of %s is attached to index %s",
			 get_rel_name(partition), get_rel_name(index));
	return result;
}

static Oid
find_client_index(Oid index, Oid client_rel)
{
	Oid			table = IndexGetRelation(index, false);
	Oid			leaf;
	int64		shardid;
	Oid			leaf_index;
	char		name[NAMEDATALEN];
	Oid			result;

	if (client_rel == table)
		return index;
	if (get_rel_relispartition(client_rel) &&
		get_partition_parent(client_rel, true) == table)
		return partition_index(client_rel, index);
	if (!shard_of(client_rel, &leaf, &shardid))
		elog(ERROR, "relation %s holds no rows of table %s",
			 get_rel_name(client_rel), get_rel_name(table));
	leaf_index = leaf == table ? index : partition_index(leaf, index);
	shard_relname(get_rel_name(leaf_index), shardid, name);
	result = get_relname_relid(name, get_rel_namespace(client_rel));
	if (!OidIsValid(result) || IndexGetRelation(result, true) != client_rel)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("index \"%s\" of shard %s does not exist on this node",
						name, get_rel_name(client_rel)),
				 errhint("The shard was created without the indexes of table %s; recreate them with Citus.",
						 get_rel_name(leaf))));
	return result;
}

/*
 * The OID of the copy of one of our indexes (by name: profiles_pkey, ...)
 * that indexes client_rel, a relation tp_client_relation returned for the
 * index's table: the index itself, its partition's index, or the shard's
 * index (<index>_<shardid>, as Citus names it).
 */
Oid
tp_client_index(const char *indexname, Oid client_rel)
{
	IndexKey	key;
	IndexEntry *e;
	bool		found;

	placement_init();
	memset(&key, 0, sizeof(key));
	key.index = tp_relation_oid(indexname);
	key.client_rel = client_rel;
	e = hash_search(index_htab, &key, HASH_FIND, NULL);
	if (e != NULL && e->gen == names_gen)
		return e->result;
	{
		uint64		gen = names_gen;
		Oid			result = find_client_index(key.index, client_rel);

		e = hash_search(index_htab, &key, HASH_ENTER, &found);
		e->result = result;
		e->gen = gen;			/* a change meanwhile: look again next time */
		return result;
	}
}

/*
 * tgt_profile.client_relation(tbl text, client text) RETURNS regclass:
 * tp_client_relation for DBAs and tests; NULL when the client's rows are
 * on another node.  For profiles, the relation's copies of the profiles
 * indexes are looked up too (tp_client_index), so an error says when one
 * is missing.  Admin only (EXECUTE is granted to tgt_profile_admin).
 */
TP_SQL_FUNCTION(tgtp_client_relation)
{
	static const char *const tables[] = {
		"settings", "approvers", "token_store", "audit_log", "profiles",
		"aliases", "batches", "batch_rejects"
	};
	char	   *tbl = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *client = text_to_cstring(PG_GETARG_TEXT_PP(1));
	const char *relname = NULL;
	Relation	rel;
	bool		elsewhere;
	Oid			result;

	for (int i = 0; i < lengthof(tables) && relname == NULL; i++)
		if (strcmp(tbl, tables[i]) == 0)
			relname = tables[i];
	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a table of tgt_profile that holds clients' rows", tbl),
				 errhint("Name one of settings, approvers, token_store, audit_log, profiles, aliases, batches, batch_rejects.")));
	rel = tp_open_table(relname, AccessShareLock);
	result = tp_client_relation(relname, client, &elsewhere);
	if (!elsewhere && strcmp(relname, "profiles") == 0)
	{
		(void) tp_client_index("profiles_pkey", result);
		(void) tp_client_index("profiles_third_party_id_key", result);
	}
	table_close(rel, NoLock);
	if (elsewhere)
		PG_RETURN_NULL();
	PG_RETURN_OID(result);
}
