/*-------------------------------------------------------------------------
 *
 * bulk.c
 *	  bulk_update and batch_status: a whole batch file in one transaction.
 *
 * The batch is checked against max_batch_bytes before it is parsed, then
 * read record by record (read_adobe.c, read_json.c) into chunks.  Each
 * chunk is applied set-based: index probes in key order fetch the profiles
 * it names, the records are validated and merged in memory with the same
 * code as upsert_profile (attributes.c), in batch order, and the new and
 * changed profiles are written straight into the table, the way COPY does
 * (profile_write.c; through SQL when the table has triggers).  A record
 * that is rejected is recorded in batch_rejects with its number and reason;
 * the others apply.  Chunks, and the rounds a chunk is merged in, are
 * bounded in bytes as well as records, so the memory of a call stays
 * proportional to its batch whatever the batch holds (see CHUNK_BYTES).
 *
 * Batches of one client are serialised by a per-client lock (store.c;
 * DESIGN.md allows it): the daily quota, counted under the lock from what
 * is committed then, stays exact, and two batches can never
 * deadlock on each other's rows.  Single upserts are not blocked by it;
 * should one change a profile between our read and our write, the write
 * (conditional on the row version read, like upsert_profile's) misses and
 * the chunk's records for that profile are merged again on the newer row.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"
#include "pg_compat.h"

#include "attributes.h"
#include "profile_write.h"
#include "access/detoast.h"
#include "access/genam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/tuptable.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "record.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/*
 * Memory is bounded in bytes, whatever the batch holds (DESIGN.md
 * "Memory"): a chunk takes at most CHUNK_RECORDS records and CHUNK_BYTES of
 * their copies; a round of a chunk merges its records until the profiles
 * it expanded and merged hold ROUND_BYTES, and leaves the rest to the next
 * round.  Each merge happens in a context of its own, so a profile keeps
 * one version however many records of the chunk change it.
 */
#define CHUNK_RECORDS	10000
#define CHUNK_BYTES		(8 * 1024 * 1024)
#define ROUND_BYTES		(16 * 1024 * 1024)

/*
 * The first block of the chunk's and the round's contexts: it survives
 * every reset, so the chunks reuse the same pages instead of handing them
 * back to the kernel and faulting them in again (a quarter of the time
 * otherwise).  Only the pages used count as memory.
 */
#define CHUNK_MEMORY	(16 * 1024 * 1024)

/*
 * Most members a JSON record may have, besides its key.  A profile within
 * max_profile_bytes holds at most max_profile_bytes / 9 attributes (each
 * takes two 4-byte entries and a name of at least a byte); a record of
 * more members sets more than fit, and is rejected anyway, or removes more
 * than any profile has.  The reader refuses such a record before it builds
 * it: a line of millions of members costs a scan, not a tree of them.
 */
#define MAX_RECORD_MEMBERS()	(2 * ((int64) tgtp_max_profile_bytes / 9))

typedef enum RecStatus
{
	REC_PENDING,
	REC_CREATED,
	REC_UPDATED,
	REC_UNCHANGED,
	REC_NOT_FOUND,
	REC_REJECTED
} RecStatus;

typedef struct Profile Profile;

typedef struct Rec
{
	int64		row;
	tp_key_kind kind;
	char	   *key;			/* NUL-terminated copy */
	int			nattrs;
	tp_attr    *attrs;			/* copies */
	const char *error;			/* reader's or validation's reason */
	RecStatus	status;			/* REC_REJECTED from the start when invalid */
	Profile    *target;			/* during a round: the profile it applied to */
} Rec;

/* One profile a chunk touches, as it will be after the chunk's records. */
struct Profile
{
	bool		is_new;			/* created by this chunk, else found by the fetch */
	bool		touched;		/* some record applied to it */
	bool		changed;		/* attributes changed */
	bool		conflict;		/* our write missed: merge again */
	bool		expanded;		/* row.attributes is a plain jsonb; else it
								 * is as stored (compressed, out of line),
								 * expanded by the first merge */
	TpProfileRow row;			/* as read, then as it will be written */
};

/*
 * A key of the chunk's map: the key kind and the key itself, compared
 * exactly (hashing only picks the bucket: two keys of one hash are two
 * entries).  str points to a key that outlives the map.
 */
typedef struct ChunkKey
{
	const char *str;
	tp_key_kind kind;
} ChunkKey;

typedef struct KeyEntry
{
	ChunkKey	key;
	Profile    *profile;
} KeyEntry;

typedef struct ChunkMap
{
	HTAB	   *keys;
	Profile   **profiles;		/* every profile of the chunk, once */
	int			nprofiles;
} ChunkMap;

typedef struct BatchCounts
{
	int64		total;
	int64		created;
	int64		updated;
	int64		unchanged;
	int64		not_found;
	int64		rejected;
} BatchCounts;

typedef struct Batch
{
	const char *client;
	int64		batch_id;
	bool		create_missing;
	bool		assume_new;		/* this chunk's keys are taken to be new */
	bool		remote;			/* the client's shard is on another node
								 * (Citus): read and write through SQL */
	bool		has_aliases;	/* the client has merged pcIds (this round) */
	int64		found;			/* existing profiles the last read found */
	int64		row_limit;		/* max_batch_rows or what the quota leaves */
	bool		quota_bound;	/* row_limit comes from the daily quota */
	Interval	lifetime;		/* the client's profile_lifetime */
	BatchCounts counts;
	MemoryContext chunk_cxt;	/* the chunk's records */
	MemoryContext round_cxt;	/* a round's profiles, map and writes */
	MemoryContext merge_cxt;	/* one merge */
	MemoryContext reader_cxt;
	Rec		   *recs;
	int			nrecs;
	Size		chunk_bytes;	/* of the chunk's records */
	Size		round_bytes;	/* of the round's expanded and merged profiles */
} Batch;

/* ---------- reading ---------- */

static char *
copy_str(const char *s, size_t len)
{
	char	   *c = palloc(len + 1);

	memcpy(c, s, len);
	c[len] = '\0';
	return c;
}

static const char *key_kind_name(tp_key_kind k);

/* The reader's reason, or the validation's (the same as upsert_profile's). */
static const char *
record_problem(const tp_record *in, char *buf, size_t buflen)
{
	const char *why;

	if (in->error)
		return in->line > 0
			? psprintf("%s (line " INT64_FORMAT ", column " INT64_FORMAT ")",
					   in->error, (int64) in->line, (int64) in->column)
			: pstrdup(in->error);
	why = tp_id_check(key_kind_name(in->key_kind), in->key, in->key_len, buf, buflen);
	if (why == NULL)
		why = tp_attrs_check(in->attrs, in->nattrs, buf, buflen);
	return why ? pstrdup(why) : NULL;
}

/*
 * Copy a good record's attributes into one block (the reader reuses its
 * buffers): a record of many small members costs its bytes and one tp_attr
 * each, not an allocation per name and value.  The names of an Adobe
 * record are the header's, shared by every record.
 */
static void
copy_attrs(Batch *b, Rec *r, const tp_record *in)
{
	Size		size = 0;
	char	   *data;

	for (int i = 0; i < in->nattrs; i++)
		size += (in->shared_names ? 0 : in->attrs[i].name_len) +
			(in->attrs[i].value ? in->attrs[i].value_len : 0);
	data = MemoryContextAllocHuge(CurrentMemoryContext, Max(size, 1));
	r->attrs = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(tp_attr) * Max(in->nattrs, 1));
	r->nattrs = in->nattrs;
	for (int i = 0; i < in->nattrs; i++)
	{
		const tp_attr *a = &in->attrs[i];

		if (i % 65536 == 65535)
			CHECK_FOR_INTERRUPTS();
		r->attrs[i] = *a;
		if (!in->shared_names)
		{
			memcpy(data, a->name, a->name_len);
			r->attrs[i].name = data;
			data += a->name_len;
		}
		if (a->value)
		{
			memcpy(data, a->value, a->value_len);
			r->attrs[i].value = data;
			data += a->value_len;
		}
	}
	b->chunk_bytes += size + sizeof(tp_attr) * in->nattrs;
}

/*
 * Keep a reader record in the chunk.  It is validated here, while the
 * reader's buffers hold it: a rejected record keeps only its reason and
 * its key as batch_rejects shows it (cut to max_id_length characters), so
 * a huge bad record costs nothing after it was read.
 */
static void
keep_record(Batch *b, const tp_record *in)
{
	Rec		   *r = &b->recs[b->nrecs++];
	char		buf[TP_REASON_LEN];

	memset(r, 0, sizeof(*r));
	r->row = in->row;
	r->kind = in->key_kind;
	r->status = REC_PENDING;
	r->error = record_problem(in, buf, sizeof(buf));
	if (r->error)
	{
		r->status = REC_REJECTED;
		if (in->key)
			r->key = copy_str(in->key, pg_mbcharcliplen(in->key, (int) in->key_len,
														 tgtp_max_id_length));
		b->chunk_bytes += sizeof(Rec) + strlen(r->error) + (r->key ? strlen(r->key) : 0);
		return;
	}
	r->key = copy_str(in->key, in->key_len);
	copy_attrs(b, r, in);
	b->chunk_bytes += sizeof(Rec) + in->key_len;
}

/* ---------- fetching ---------- */

static const char *
key_kind_name(tp_key_kind k)
{
	return k == TP_KEY_PCID ? "pcId" : "thirdPartyId";
}

static uint32
chunk_key_hash(const void *key, Size keysize)
{
	const ChunkKey *k = key;

	return hash_combine((uint32) k->kind,
						hash_bytes((const unsigned char *) k->str, (int) strlen(k->str)));
}

static int
chunk_key_match(const void *key1, const void *key2, Size keysize)
{
	const ChunkKey *a = key1;
	const ChunkKey *b = key2;

	return a->kind != b->kind || strcmp(a->str, b->str) != 0;
}

/* A table of keys (with entries of entrysize bytes) in the current context. */
static HTAB *
key_table(const char *name, long nelem, Size entrysize)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(ChunkKey);
	ctl.entrysize = entrysize;
	ctl.hash = chunk_key_hash;
	ctl.match = chunk_key_match;
	ctl.hcxt = CurrentMemoryContext;
	return hash_create(name, Max(nelem, 16), &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/* Look key up in a key table (action: HASH_FIND or HASH_ENTER). */
static void *
key_search(HTAB *table, tp_key_kind kind, const char *key, HASHACTION action,
		   bool *found)
{
	ChunkKey	k;

	k.str = key;
	k.kind = kind;
	return hash_search(table, &k, action, found);
}

static ChunkMap *
new_map(int nrecs)
{
	ChunkMap   *m = palloc(sizeof(ChunkMap));

	m->keys = key_table("tgt_profile chunk keys", nrecs, sizeof(KeyEntry));
	/* a record adds at most one profile; a fetched row at most two keys */
	m->profiles = palloc(sizeof(Profile *) * (2 * nrecs + 1));
	m->nprofiles = 0;
	return m;
}

/* Register key -> p unless the key already names a profile. */
static void
map_key(ChunkMap *m, tp_key_kind kind, const char *key, Profile *p)
{
	bool		found;
	KeyEntry   *e;

	e = key_search(m->keys, kind, key, HASH_ENTER, &found);
	if (!found)
		e->profile = p;
}

static Profile *
map_add(ChunkMap *m)
{
	Profile    *p = palloc0(sizeof(Profile));

	m->profiles[m->nprofiles++] = p;
	return p;
}

/* The profile a key names in this chunk; NULL when there is none. */
static Profile *
resolve(ChunkMap *m, tp_key_kind kind, const char *key)
{
	KeyEntry   *e = key_search(m->keys, kind, key, HASH_FIND, NULL);

	return e ? e->profile : NULL;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* A fetched row as a Profile of the chunk, under both of its keys. */
static void
keep_fetched(ChunkMap *m, TupleTableSlot *slot)
{
	bool		should_free;
	HeapTuple	tup = ExecFetchSlotHeapTuple(slot, false, &should_free);
	TpProfileRow row;
	Profile    *p;

	/* expanded only if a record merges into it: most rows are only seen */
	tp_profile_row_read_stored(tup, slot->tts_tupleDescriptor, &row);
	if (should_free)
		heap_freetuple(tup);
	if (resolve(m, TP_KEY_PCID, row.tnt_id) != NULL)
		return;					/* fetched already, by its other key */
	p = map_add(m);
	p->row = row;
	map_key(m, TP_KEY_PCID, row.tnt_id, p);
	if (row.third_party_id)
		map_key(m, TP_KEY_THIRD_PARTY_ID, row.third_party_id, p);
}

static Datum array_of(Datum *items, int n, Oid type, int16 len, bool byval, char align);

/*
 * The same where the client's shard is on another node (Citus): one
 * statement for the chunk's keys, which Citus routes to the shard.  rel is
 * the shell standing for it here, closed before returning.
 */
static int
fetch_profiles_by_sql(Batch *b, ChunkMap *m, tp_key_kind kind, char **keys, int nkeys,
					  Relation rel)
{
	Datum	   *ids = palloc(sizeof(Datum) * nkeys);
	List	   *rows;
	ListCell   *lc;
	TupleTableSlot *slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
	int			found = 0;

	for (int i = 0; i < nkeys; i++)
		ids[i] = CStringGetTextDatum(keys[i]);
	rows = tp_sql_profiles(b->client, kind != TP_KEY_PCID,
						   array_of(ids, nkeys, TEXTOID, -1, false, TYPALIGN_INT), true);
	foreach(lc, rows)
	{
		ExecStoreHeapTuple(lfirst(lc), slot, false);
		keep_fetched(m, slot);
		found++;
	}
	ExecDropSingleTupleTableSlot(slot);
	list_free_deep(rows);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Fetch the existing profiles named by the chunk's keys of one kind, by a
 * direct probe of the unique index per key (in key order): a cost per key
 * that no plan choice or table size can change.  The snapshot is taken now,
 * after a command counter increment, so it sees the earlier chunks' writes
 * and (read committed) what others committed meanwhile.
 */
static int
fetch_profiles(Batch *b, ChunkMap *m, tp_key_kind kind, char **keys, int nkeys)
{
	Relation	rel;
	Relation	idx;
	Snapshot	snap;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData sk[2];
	Datum		client = CStringGetTextDatum(b->client);
	int			found = 0;

	if (nkeys == 0)
		return 0;
	qsort(keys, nkeys, sizeof(char *), cmp_str);
	CommandCounterIncrement();
	if (!tp_open_profiles(b->client, kind == TP_KEY_PCID ? "profiles_pkey" : "profiles_third_party_id_key",
						  AccessShareLock, &rel, &idx))
		return fetch_profiles_by_sql(b, m, kind, keys, nkeys, rel);
	snap = RegisterSnapshot(GetTransactionSnapshot());
	slot = table_slot_create(rel, NULL);
	scan = tp_index_beginscan(rel, idx, snap, 2, 0);
	for (int i = 0; i < nkeys; i++)
	{
		if (i > 0 && strcmp(keys[i], keys[i - 1]) == 0)
			continue;
		ScanKeyInit(&sk[0], 1, BTEqualStrategyNumber, F_TEXTEQ, client);
		ScanKeyInit(&sk[1], 2, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(keys[i]));
		sk[0].sk_collation = idx->rd_indcollation[0];
		sk[1].sk_collation = idx->rd_indcollation[1];
		index_rescan(scan, sk, 2, NULL, 0);
		if (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			keep_fetched(m, slot);
			found++;
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	UnregisterSnapshot(snap);
	return found;
}

/*
 * The chunk's pcIds that are no profile but an alias of one (a merged
 * visitor, aliases.c): fetch the profile and register the pcId as one more
 * of its keys.  keys are sorted (fetch_profiles sorted them).  Read only
 * when the client has any alias at all (b->has_aliases), and then only
 * for the pcIds no profile has.
 */
static int
fetch_aliased(Batch *b, ChunkMap *m, char **keys, int nkeys)
{
	char	  **misses;
	char	  **targets;
	int			nmisses = 0;
	TpAlias    *aliases;
	int			n;
	int			found;
	Snapshot	snap;

	if (!b->has_aliases || nkeys == 0)
		return 0;
	misses = palloc(sizeof(char *) * nkeys);
	for (int i = 0; i < nkeys; i++)
		if (resolve(m, TP_KEY_PCID, keys[i]) == NULL)
			misses[nmisses++] = keys[i];
	snap = RegisterSnapshot(GetTransactionSnapshot());
	n = tp_aliases_of_keys(b->client, misses, nmisses, snap, &aliases);
	UnregisterSnapshot(snap);
	if (n == 0)
		return 0;
	targets = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
		targets[i] = aliases[i].tnt_id;
	found = fetch_profiles(b, m, TP_KEY_PCID, targets, n);
	for (int i = 0; i < n; i++)
	{
		Profile    *p = resolve(m, TP_KEY_PCID, aliases[i].tnt_id);

		if (p != NULL)
			map_key(m, TP_KEY_PCID, aliases[i].pc_id, p);
	}
	return found;
}

/*
 * After inserting the chunk's new profiles: was one of their pcIds made
 * an alias since we read (a merge of a pcId unknown then, committed
 * meanwhile; our insert waited for the merge's own insert of that pcId)?
 * Read as committed now.  Such a row is taken back and counted as a write
 * that missed: its records merge again, onto the profile the alias names.
 * Under REPEATABLE READ or SERIALIZABLE that profile is out of sight: a
 * serialization failure.  Returns how many rows were taken back.
 */
static int
take_back_merged(Batch *b, Profile **created, int ncreated)
{
	static TpPlan plan = {
		"DELETE FROM tgt_profile.profiles "
		" WHERE client OPERATOR(pg_catalog.=) $1 AND tnt_id OPERATOR(pg_catalog.=) ANY ($2)",
		2, {TEXTOID, TEXTARRAYOID}, .client_arg = 1
	};
	char	  **keys = palloc(sizeof(char *) * Max(ncreated, 1));
	int			n = 0;
	TpAlias    *aliases;
	int			nmerged;
	Datum	   *ids;
	Datum		v[2];
	HTAB	   *merged;

	for (int i = 0; i < ncreated; i++)
		if (created[i]->row.third_party_id == NULL)	/* created by its pcId */
			keys[n++] = unconstify(char *, created[i]->row.tnt_id);
	if (n == 0 || !tp_client_has_aliases(b->client, NULL))
		return 0;
	nmerged = tp_aliases_of_keys(b->client, keys, n, NULL, &aliases);
	if (nmerged == 0)
		return 0;
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access due to a concurrent merge of pcId \"%s\"",
						aliases[0].pc_id),
				 errhint("Retry the transaction; nothing of the batch was applied.")));
	merged = key_table("tgt_profile merged meanwhile", nmerged, sizeof(ChunkKey));
	ids = palloc(sizeof(Datum) * nmerged);
	for (int i = 0; i < nmerged; i++)
	{
		(void) key_search(merged, TP_KEY_PCID, aliases[i].pc_id, HASH_ENTER, NULL);
		ids[i] = CStringGetTextDatum(aliases[i].pc_id);
	}
	for (int i = 0; i < ncreated; i++)
		if (created[i]->row.third_party_id == NULL &&
			key_search(merged, TP_KEY_PCID, created[i]->row.tnt_id, HASH_FIND, NULL) != NULL)
			created[i]->conflict = true;
	hash_destroy(merged);
	v[0] = CStringGetTextDatum(b->client);
	v[1] = array_of(ids, nmerged, TEXTOID, -1, false, TYPALIGN_INT);
	(void) tp_exec(&plan, v, NULL, false, 0);
	return nmerged;
}

/* ---------- merging ---------- */

/* A new profile for a record's key, registered in the map. */
static Profile *
create_profile(ChunkMap *m, const Rec *r)
{
	Profile    *p = map_add(m);

	p->is_new = true;
	p->expanded = true;
	if (r->kind == TP_KEY_PCID)
		p->row.tnt_id = r->key;
	else
	{
		p->row.tnt_id = tp_new_tnt_id();
		p->row.third_party_id = r->key;
	}
	map_key(m, r->kind, r->key, p);
	return p;
}

/* The attributes of a profile, expanded (once) if they were fetched. */
static Jsonb *
profile_attributes(Batch *b, Profile *p)
{
	if (!p->expanded)
	{
		Pointer		stored = (Pointer) p->row.attributes;

		p->row.attributes = DatumGetJsonbP(PointerGetDatum(stored));
		if ((Pointer) p->row.attributes != stored)
			pfree(stored);
		p->expanded = true;
		b->round_bytes += VARSIZE(p->row.attributes);
	}
	return p->row.attributes;
}

/*
 * Merge a record into old (NULL for a new profile).  A merge allocates
 * several times the profile's size (its pairs, the record's names sorted,
 * the new jsonb), so it runs in a context of its own, reset after each
 * record, and only its result is copied out.  Returns the new attributes,
 * or old when nothing changed, or NULL with *why set.
 */
static Jsonb *
merge_record(Batch *b, Jsonb *old, const Rec *r, bool *changed, const char **why)
{
	char		buf[TP_REASON_LEN];
	MemoryContext cxt = MemoryContextSwitchTo(b->merge_cxt);
	Jsonb	   *merged = tp_attrs_merge(old, r->attrs, r->nattrs, changed, buf, sizeof(buf), why);

	MemoryContextSwitchTo(cxt);
	if (*why)
		*why = MemoryContextStrdup(b->chunk_cxt, *why);
	else if (merged != old)
	{
		Jsonb	   *copy = palloc(VARSIZE(merged));

		memcpy(copy, merged, VARSIZE(merged));
		merged = copy;
	}
	MemoryContextReset(b->merge_cxt);
	return merged;
}

/* Give p its new attributes; the version they replace is freed. */
static void
set_attributes(Batch *b, Profile *p, Jsonb *attrs)
{
	if (p->row.attributes == attrs)
		return;
	if (p->row.attributes)
	{
		b->round_bytes -= VARSIZE(p->row.attributes);
		pfree(p->row.attributes);
	}
	p->row.attributes = attrs;
	b->round_bytes += VARSIZE(attrs);
}

/* Apply one validated record to the profile state; sets its status. */
static void
apply_record(Batch *b, ChunkMap *m, Rec *r)
{
	Profile    *p = resolve(m, r->kind, r->key);
	const char *why;
	bool		changed;
	Jsonb	   *merged;

	if (p == NULL)
	{
		if (tp_attrs_only_removals(r->attrs, r->nattrs))
		{
			/* a record that sets nothing (empty, or only removals) creates none */
			r->status = REC_UNCHANGED;
			return;
		}
		if (!b->create_missing)
		{
			r->status = REC_NOT_FOUND;
			return;
		}
		merged = merge_record(b, NULL, r, &changed, &why);
		if (why)
		{
			r->error = why;
			r->status = REC_REJECTED;
			return;
		}
		p = create_profile(m, r);
		set_attributes(b, p, merged);
		p->touched = true;
		r->target = p;
		r->status = REC_CREATED;
		return;
	}

	if (r->nattrs == 0)
	{
		/* nothing to merge: the profile is only seen (last_seen_at) */
		p->touched = true;
		r->target = p;
		r->status = REC_UNCHANGED;
		return;
	}
	merged = merge_record(b, profile_attributes(b, p), r, &changed, &why);
	if (why)
	{
		r->error = why;
		r->status = REC_REJECTED;
		return;
	}
	set_attributes(b, p, merged);
	p->touched = true;
	p->changed |= changed;
	r->target = p;
	r->status = changed ? REC_UPDATED : REC_UNCHANGED;
}

/* ---------- writing ---------- */

/*
 * The chunk's profiles to write, new or existing, in tnt_id order (the
 * order their rows are locked in, so that two writers cannot deadlock).
 */
typedef struct WriteSet
{
	int			n;
	Profile   **profiles;
} WriteSet;

static int
cmp_profile_key(const void *a, const void *b)
{
	return strcmp((*(Profile *const *) a)->row.tnt_id, (*(Profile *const *) b)->row.tnt_id);
}

/* Bring the timestamps of a profile about to be written up to now. */
static void
stamp(Profile *p, TimestampTz now)
{
	if (p->is_new)
		p->row.created_at = now;
	if (p->is_new || p->changed)
		p->row.updated_at = now;
	p->row.last_seen_at = now;
}

/* ----- through SQL: when the table has triggers (see profile_write.c) ----- */

static Datum
array_of(Datum *items, int n, Oid type, int16 len, bool byval, char align)
{
	return PointerGetDatum(construct_array(items, n, type, len, byval, align));
}

static Datum
tnt_id_array(WriteSet *w)
{
	Datum	   *tnt = palloc(sizeof(Datum) * w->n);

	for (int i = 0; i < w->n; i++)
		tnt[i] = CStringGetTextDatum(w->profiles[i]->row.tnt_id);
	return array_of(tnt, w->n, TEXTOID, -1, false, TYPALIGN_INT);
}

static Datum
attrs_array(WriteSet *w)
{
	Datum	   *attrs = palloc(sizeof(Datum) * w->n);

	for (int i = 0; i < w->n; i++)
		attrs[i] = JsonbPGetDatum(w->profiles[i]->row.attributes);
	return array_of(attrs, w->n, JSONBOID, -1, false, TYPALIGN_INT);
}

/* Mark the profiles whose write did not happen (RETURNING lacked them). */
static int
mark_misses(WriteSet *w)
{
	HTAB	   *done = key_table("tgt_profile written", (long) SPI_processed, sizeof(ChunkKey));
	int			misses = 0;

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		(void) key_search(done, TP_KEY_PCID,
						  TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull)),
						  HASH_ENTER, NULL);
	}
	for (int i = 0; i < w->n; i++)
	{
		if (key_search(done, TP_KEY_PCID, w->profiles[i]->row.tnt_id, HASH_FIND, NULL) == NULL)
		{
			w->profiles[i]->conflict = true;
			misses++;
		}
	}
	hash_destroy(done);
	/* SPI would keep every chunk's RETURNING rows until the call ends */
	SPI_freetuptable(SPI_tuptable);
	return misses;
}

#define INSERT_SQL \
	"INSERT INTO tgt_profile.profiles " \
	"  (client, tnt_id, third_party_id, attributes, created_at, updated_at, last_seen_at) " \
	"SELECT $1, u.t, u.p, u.a, $5, $5, $5 " \
	"  FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4)) AS u(t, p, a) "

static void
insert_args(Batch *b, WriteSet *w, Datum *v)
{
	Datum	   *tp = palloc(sizeof(Datum) * w->n);
	bool	   *tpnull = palloc(sizeof(bool) * w->n);
	int			dims[1] = {w->n};
	int			lbs[1] = {1};

	for (int i = 0; i < w->n; i++)
	{
		const char *id = w->profiles[i]->row.third_party_id;

		tpnull[i] = (id == NULL);
		tp[i] = id ? CStringGetTextDatum(id) : (Datum) 0;
	}
	v[0] = CStringGetTextDatum(b->client);
	v[1] = tnt_id_array(w);
	v[2] = PointerGetDatum(construct_md_array(tp, tpnull, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
	v[3] = attrs_array(w);
	v[4] = TimestampTzGetDatum(tp_now());
}

/*
 * The UPDATE joins the chunk's arrays to the rows by ctid.  Its plan is
 * made once and kept, perhaps while the table is still empty or its
 * statistics stale; the one plan whose cost per row does not depend on the
 * table is a nested loop over a TID scan, so that is the only one offered
 * (at a GUC level of its own, undone at once).
 */
static void
exec_by_tid(TpPlan *plan, Datum *v)
{
	static const char *const off[] = {
		"enable_seqscan", "enable_indexscan", "enable_indexonlyscan",
		"enable_bitmapscan", "enable_hashjoin", "enable_mergejoin"
	};
	int			level = NewGUCNestLevel();

	for (int i = 0; i < lengthof(off); i++)
		(void) set_config_option(off[i], "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	(void) tp_exec(plan, v, NULL, false, 0);
	AtEOXact_GUC(true, level);
}

static int
update_by_sql(Batch *b, WriteSet *w)
{
	static TpPlan plan = {
		"UPDATE tgt_profile.profiles p "
		"   SET attributes = u.a, last_seen_at = $6, "
		"       updated_at = CASE WHEN u.c THEN $6 ELSE p.updated_at END "
		"  FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5)) AS u(t, id, a, c) "
		" WHERE p.client OPERATOR(pg_catalog.=) $1 AND p.tnt_id OPERATOR(pg_catalog.=) u.t "
		"   AND p.ctid OPERATOR(pg_catalog.=) u.id "
		"RETURNING p.tnt_id",
		6, {TEXTOID, TEXTARRAYOID, TIDARRAYOID, JSONBARRAYOID, BOOLARRAYOID, TIMESTAMPTZOID},
		.client_arg = 1
	};
	Datum		v[6];
	Datum	   *tids = palloc(sizeof(Datum) * w->n);
	Datum	   *chg = palloc(sizeof(Datum) * w->n);

	for (int i = 0; i < w->n; i++)
	{
		tids[i] = PointerGetDatum(&w->profiles[i]->row.tid);
		chg[i] = BoolGetDatum(w->profiles[i]->changed);
	}
	v[0] = CStringGetTextDatum(b->client);
	v[1] = tnt_id_array(w);
	v[2] = array_of(tids, w->n, TIDOID, sizeof(ItemPointerData), false, TYPALIGN_SHORT);
	v[3] = attrs_array(w);
	v[4] = array_of(chg, w->n, BOOLOID, 1, true, TYPALIGN_CHAR);
	v[5] = TimestampTzGetDatum(tp_now());
	exec_by_tid(&plan, v);
	return mark_misses(w);
}

/* ----- directly (profile_write.c) ----- */

/* Insert the new profiles; false when the table must be written by SQL. */
static bool
insert_direct(Batch *b, WriteSet *w)
{
	TpRowWriter *wr = tp_writer_open(b->client, CMD_INSERT);

	if (wr == NULL)
		return false;
	for (int i = 0; i < w->n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		tp_writer_insert(wr, &w->profiles[i]->row);
	}
	tp_writer_close(wr);
	return true;
}

/*
 * Write the changed profiles at the row versions the fetch read; a profile
 * changed concurrently since is marked to be merged again.  Returns the
 * number of such misses.
 */
static int
update_existing(Batch *b, WriteSet *w)
{
	TpRowWriter *wr;
	int			misses = 0;

	if (w->n == 0)
		return 0;
	wr = tp_writer_open(b->client, CMD_UPDATE);
	if (wr == NULL)
		return update_by_sql(b, w);
	for (int i = 0; i < w->n; i++)
	{
		Profile    *p = w->profiles[i];

		CHECK_FOR_INTERRUPTS();
		if (!tp_writer_update(wr, &p->row.tid, &p->row))
		{
			p->conflict = true;
			misses++;
		}
	}
	tp_writer_close(wr);
	return misses;
}

/*
 * Insert the chunk's new profiles.  The fetch has just found none of their
 * keys, so a plain insert (one unique check per index, the one it makes
 * anyway) nearly always succeeds; only when a concurrent upsert created one
 * of them meanwhile does it fail, inside a subtransaction, and the slower
 * INSERT ... ON CONFLICT DO NOTHING tells which ones to merge again.
 */
static bool
try_plain_insert(Batch *b, WriteSet *w)
{
	static TpPlan plain = {INSERT_SQL, 5,
	{TEXTOID, TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID, TIMESTAMPTZOID}, .client_arg = 1};
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	/*
	 * Through Citus a unique violation comes back as XX000, from COPY:
	 * there, only the statement that reports its misses is used.
	 */
	if (b->remote)
		return false;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		if (!insert_direct(b, w))
		{
			Datum		v[5];

			insert_args(b, w, v);
			(void) tp_exec(&plain, v, NULL, false, 0);
		}
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *e;

		/* undo the subtransaction first, whatever the error */
		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (e->sqlerrcode != ERRCODE_UNIQUE_VIOLATION)
			ReThrowError(e);
		FreeErrorData(e);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return ok;
}

/* Insert the new profiles; returns the misses, or -1 (see KEYS_EXIST). */
static int
insert_new(Batch *b, WriteSet *w)
{
	static TpPlan careful = {INSERT_SQL "ON CONFLICT DO NOTHING RETURNING tnt_id", 5,
	{TEXTOID, TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID, TIMESTAMPTZOID}, .client_arg = 1};
	Datum		v[5];

	if (w->n == 0 || try_plain_insert(b, w))
		return 0;
	if (b->assume_new)
		return -1;				/* unread keys that exist: nothing written */
	insert_args(b, w, v);
	(void) tp_exec(&careful, v, NULL, false, 0);
	return mark_misses(w);
}

/*
 * Write the chunk's new and changed profiles, in tnt_id order, the new ones
 * first.  Returns how many writes missed because of a concurrent change, or
 * -1 when keys taken to be new exist (then nothing was written).
 */
static int
write_profiles(Batch *b, ChunkMap *m)
{
	Profile   **list = palloc(sizeof(Profile *) * Max(m->nprofiles, 1));
	int			n = 0;
	WriteSet	ins,
				upd;
	TimestampTz now = tp_now();
	int			misses;

	for (int i = 0; i < m->nprofiles; i++)
	{
		Profile    *p = m->profiles[i];

		if (!p->touched)
			continue;
		if (!p->is_new && !p->changed &&
			!tp_last_seen_stale(b->client, p->row.last_seen_at, &b->lifetime))
			continue;			/* unchanged: writes nothing */
		stamp(p, now);
		list[n++] = p;
	}
	qsort(list, n, sizeof(Profile *), cmp_profile_key);

	ins.profiles = palloc(sizeof(Profile *) * Max(n, 1));
	upd.profiles = palloc(sizeof(Profile *) * Max(n, 1));
	ins.n = upd.n = 0;
	for (int i = 0; i < n; i++)
	{
		WriteSet   *w = list[i]->is_new ? &ins : &upd;

		w->profiles[w->n++] = list[i];
	}
	misses = insert_new(b, &ins);
	if (misses < 0)
		return misses;
	misses += take_back_merged(b, ins.profiles, ins.n);
	return misses + update_existing(b, &upd);
}

/* ---------- one chunk ---------- */

typedef enum ApplyResult
{
	APPLIED,					/* every pending record applied */
	WRITES_MISSED,				/* concurrent changes: merge those again */
	KEYS_EXIST,					/* keys taken to be new exist: start over */
	ROUND_FULL					/* ROUND_BYTES reached: the rest next round */
} ApplyResult;

/*
 * Fetch, merge and write the pending records.
 *
 * Reading a key that does not exist costs an index descent, the same as the
 * insert's own unique check after it; a batch of new profiles would pay it
 * twice.  So when the previous chunk found none of its keys, this one takes
 * them to be new and reads only the keys of records that set nothing
 * (whose profiles are touched only if they exist): should one of the others
 * exist after all, the insert fails on the unique index, in its subtransaction, before
 * anything else is written, and the chunk starts over reading every key.
 * The first chunk always reads its keys, so a batch of known profiles never
 * writes (and rolls back) a row on a guess.
 *
 * A round merges records in batch order until the profiles it holds reach
 * ROUND_BYTES (at least one record, so every round progresses), writes,
 * and leaves the records after that pending: the next round reads their
 * profiles again, as written.  Everything a round allocates is in
 * round_cxt, reset when it ends.
 */
static ApplyResult apply_round(Batch *b, bool *pending);

static ApplyResult
apply_pending(Batch *b, bool *pending)
{
	MemoryContext old = MemoryContextSwitchTo(b->round_cxt);
	ApplyResult res = apply_round(b, pending);

	MemoryContextSwitchTo(old);
	for (int i = 0; i < b->nrecs; i++)
		b->recs[i].target = NULL;	/* it was in the round's memory */
	MemoryContextReset(b->round_cxt);
	b->round_bytes = 0;
	return res;
}

static ApplyResult
apply_round(Batch *b, bool *pending)
{
	ChunkMap   *map = new_map(b->nrecs);
	char	  **keys[2];
	int			nkeys[2] = {0, 0};
	int			misses;
	int			next = b->nrecs;	/* the first record left to the next round */
	Snapshot	snap;

	keys[0] = palloc(sizeof(char *) * Max(b->nrecs, 1));
	keys[1] = palloc(sizeof(char *) * Max(b->nrecs, 1));
	/* a pcId may be an alias: never guess that one is new then */
	CommandCounterIncrement();
	snap = RegisterSnapshot(GetTransactionSnapshot());
	b->has_aliases = tp_client_has_aliases(b->client, snap);
	UnregisterSnapshot(snap);
	if (b->has_aliases)
		b->assume_new = false;
	for (int i = 0; i < b->nrecs; i++)
	{
		Rec		   *r = &b->recs[i];

		if (pending[i] && (!b->assume_new || tp_attrs_only_removals(r->attrs, r->nattrs)))
			keys[r->kind][nkeys[r->kind]++] = r->key;
	}
	b->found = fetch_profiles(b, map, TP_KEY_PCID, keys[0], nkeys[0]) +
		fetch_profiles(b, map, TP_KEY_THIRD_PARTY_ID, keys[1], nkeys[1]);
	b->found += fetch_aliased(b, map, keys[0], nkeys[0]);

	for (int i = 0; i < b->nrecs; i++)
		if (pending[i])
		{
			CHECK_FOR_INTERRUPTS();
			if (b->round_bytes > ROUND_BYTES)
			{
				next = i;
				break;
			}
			apply_record(b, map, &b->recs[i]);
		}

	misses = write_profiles(b, map);
	if (misses < 0)
		return KEYS_EXIST;
	for (int i = 0; i < next; i++)
	{
		Rec		   *r = &b->recs[i];

		/* done unless its profile's write missed: then merge it again */
		pending[i] = pending[i] && r->target != NULL && r->target->conflict;
		if (pending[i])
			r->status = REC_PENDING;
	}
	if (misses > 0)
		return WRITES_MISSED;
	return next < b->nrecs ? ROUND_FULL : APPLIED;
}

/* Undo apply_record on the valid records: they are all pending again. */
static void
restart_chunk(Batch *b, const bool *valid, bool *pending)
{
	for (int i = 0; i < b->nrecs; i++)
	{
		pending[i] = valid[i];
		if (valid[i])
		{
			b->recs[i].status = REC_PENDING;
			b->recs[i].error = NULL;
			b->recs[i].target = NULL;
		}
	}
}

static void
record_rejects(Batch *b)
{
	static TpPlan plan = {
		"INSERT INTO tgt_profile.batch_rejects (client, batch_id, row_number, key, reason) "
		"SELECT $1, $2, u.r, u.k, u.why FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5)) AS u(r, k, why)",
		5, {TEXTOID, INT8OID, INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID}
	};
	Datum	   *rows = palloc(sizeof(Datum) * Max(b->nrecs, 1));
	Datum	   *keys = palloc(sizeof(Datum) * Max(b->nrecs, 1));
	bool	   *knull = palloc(sizeof(bool) * Max(b->nrecs, 1));
	Datum	   *why = palloc(sizeof(Datum) * Max(b->nrecs, 1));
	int			n = 0;
	int			dims[1];
	int			lbs[1] = {1};
	Datum		v[5];

	for (int i = 0; i < b->nrecs; i++)
	{
		Rec		   *r = &b->recs[i];

		if (r->status != REC_REJECTED)
			continue;
		rows[n] = Int64GetDatum(r->row);
		knull[n] = (r->key == NULL);
		/* a key over the id limit is cut, so no reject row holds a huge input */
		keys[n] = knull[n] ? (Datum) 0
			: PointerGetDatum(cstring_to_text_with_len(r->key,
													   pg_mbcharcliplen(r->key, strlen(r->key), tgtp_max_id_length)));
		why[n] = CStringGetTextDatum(r->error);
		n++;
	}
	if (n == 0)
		return;
	dims[0] = n;
	v[0] = CStringGetTextDatum(b->client);
	v[1] = Int64GetDatum(b->batch_id);
	v[2] = array_of(rows, n, INT8OID, 8, true, TYPALIGN_DOUBLE);
	v[3] = PointerGetDatum(construct_md_array(keys, knull, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
	v[4] = array_of(why, n, TEXTOID, -1, false, TYPALIGN_INT);
	(void) tp_exec(&plan, v, NULL, false, 0);
}

static void
count_chunk(Batch *b)
{
	for (int i = 0; i < b->nrecs; i++)
	{
		switch (b->recs[i].status)
		{
			case REC_CREATED:
				b->counts.created++;
				break;
			case REC_UPDATED:
				b->counts.updated++;
				break;
			case REC_UNCHANGED:
				b->counts.unchanged++;
				break;
			case REC_NOT_FOUND:
				b->counts.not_found++;
				break;
			case REC_REJECTED:
				b->counts.rejected++;
				break;
			case REC_PENDING:
				elog(ERROR, "batch record left pending");
		}
	}
}

static void
apply_chunk(Batch *b)
{
	bool	   *valid = palloc(sizeof(bool) * Max(b->nrecs, 1));
	bool	   *pending = palloc(sizeof(bool) * Max(b->nrecs, 1));
	int			rounds = 0;
	ApplyResult res;

	/* keep_record validated them */
	for (int i = 0; i < b->nrecs; i++)
		valid[i] = (b->recs[i].status == REC_PENDING);
	memcpy(pending, valid, sizeof(bool) * b->nrecs);
	while ((res = apply_pending(b, pending)) != APPLIED)
	{
		/*
		 * Only a first round may guess: a later one would have to undo the
		 * writes of the rounds before it.
		 */
		b->assume_new = false;
		if (res == KEYS_EXIST)
		{
			/* nothing was written: read every key and start over */
			restart_chunk(b, valid, pending);
			continue;
		}
		if (res == ROUND_FULL)
			continue;			/* progress, not a conflict */
		if (++rounds >= 100)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not apply the batch: its profiles kept changing concurrently"),
					 errhint("Retry the batch.")));
	}
	/* a chunk whose keys all were new suggests the next one's are too */
	b->assume_new = !b->remote && b->create_missing && b->found == 0;
	record_rejects(b);
	count_chunk(b);
	b->nrecs = 0;
	b->chunk_bytes = 0;
	MemoryContextReset(b->chunk_cxt);
}

/* ---------- limits, the batch row, the whole run ---------- */

static void
over_limit(const char *what, int64 limit, const char *detail, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("batch exceeds %s (" INT64_FORMAT ")", what, limit),
			 errdetail("%s", detail),
			 errhint("Nothing of the batch was applied. %s", hint)));
}

/* Records submitted today (UTC) in the client's committed batches. */
static int64
rows_today(const char *client)
{
	static TpPlan plan = {
		"SELECT COALESCE(pg_catalog.sum(rows_total), 0)::bigint "
		"  FROM tgt_profile.batches "
		" WHERE client OPERATOR(pg_catalog.=) $1 "
		"   AND submitted_at OPERATOR(pg_catalog.>=) "
		"       (pg_catalog.date_trunc('day', $2 AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')",
		2, {TEXTOID, TIMESTAMPTZOID}
	};
	Datum		v[2];
	bool		isnull;

	v[0] = CStringGetTextDatum(client);
	v[1] = TimestampTzGetDatum(tp_now());
	(void) tp_exec_fresh(&plan, v, NULL, true, 1);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static void
set_row_limit(Batch *b, const TpSettings *s)
{
	b->row_limit = tgtp_max_batch_rows;
	b->quota_bound = false;
	if (s->has_daily_row_limit)
	{
		int64		left = s->daily_row_limit - rows_today(b->client);

		if (left < b->row_limit)
		{
			b->row_limit = Max(left, 0);
			b->quota_bound = true;
		}
	}
}

static void
check_row_limit(Batch *b, const TpSettings *s)
{
	if (b->counts.total <= b->row_limit)
		return;
	if (b->quota_bound)
		over_limit("the daily row limit of the client", s->daily_row_limit,
				   psprintf("The records submitted today plus this batch's would exceed settings.daily_row_limit of client \"%s\".",
							b->client),
				   "The quota renews at midnight UTC; an admin may raise it.");
	over_limit("tgt_profile.max_batch_rows", tgtp_max_batch_rows,
			   "A batch may hold at most tgt_profile.max_batch_rows records.",
			   "Split the batch.");
}

static const char *
format_name(tp_format f)
{
	return f == TP_FORMAT_ADOBE ? "adobe" : f == TP_FORMAT_NDJSON ? "ndjson" : "json";
}

static int64
insert_batch_row(const char *client, tp_format format, const char *actor)
{
	static TpPlan plan = {
		"INSERT INTO tgt_profile.batches (client, status, format, submitted_by, submitted_at) "
		"VALUES ($1, 'complete', $2, $3, $4) RETURNING batch_id",
		4, {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID}
	};
	Datum		v[4];
	bool		isnull;

	v[0] = CStringGetTextDatum(client);
	v[1] = CStringGetTextDatum(format_name(format));
	v[2] = CStringGetTextDatum(actor);
	v[3] = TimestampTzGetDatum(tp_now());
	(void) tp_exec(&plan, v, NULL, false, 1);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static void
finish_batch_row(Batch *b)
{
	static TpPlan plan = {
		"UPDATE tgt_profile.batches SET rows_total = $3, rows_created = $4, rows_updated = $5, "
		"       rows_unchanged = $6, rows_not_found = $7, rows_rejected = $8 "
		" WHERE client OPERATOR(pg_catalog.=) $1 AND batch_id OPERATOR(pg_catalog.=) $2",
		8, {TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID}
	};
	Datum		v[8];

	v[0] = CStringGetTextDatum(b->client);
	v[1] = Int64GetDatum(b->batch_id);
	v[2] = Int64GetDatum(b->counts.total);
	v[3] = Int64GetDatum(b->counts.created);
	v[4] = Int64GetDatum(b->counts.updated);
	v[5] = Int64GetDatum(b->counts.unchanged);
	v[6] = Int64GetDatum(b->counts.not_found);
	v[7] = Int64GetDatum(b->counts.rejected);
	(void) tp_exec(&plan, v, NULL, false, 0);
}

static void
broken_batch(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("batch cannot be read: %s", why),
			 errhint("Nothing of the batch was applied.")));
}

/*
 * The batch's reader runs ahead in a thread of its own (read_ahead.c,
 * tgt_profile.batch_read_ahead), filling the next chunk's worth of records
 * while this backend applies the current one.  The thread is joined on
 * every path: stop_reading() on success and in the PG_FINALLY of every
 * error, and the exit callback for a FATAL error (which unwinds nothing).
 */
static tp_ahead *reading = NULL;

static void
stop_reading(tp_ahead *a)
{
	reading = NULL;
	tp_ahead_stop(a);
}

static void
stop_reading_at_exit(int code, Datum arg)
{
	if (reading)
		stop_reading(reading);
}

static tp_ahead *
start_reading(const char *data, size_t len, char *errbuf, size_t errlen)
{
	static bool registered = false;

	if (!registered)
	{
		on_proc_exit(stop_reading_at_exit, (Datum) 0);
		registered = true;
	}
	reading = tp_ahead_start(data, len, MAX_RECORD_MEMBERS() + 1,
							 CHUNK_RECORDS, CHUNK_BYTES, tgtp_batch_read_ahead,
							 errbuf, errlen);
	if (reading == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("The batch reader could not be set up.")));
	return reading;
}

/* Read every record, applying them a chunk at a time. */
static void
run_batch(Batch *b, tp_ahead *reader, const char *errbuf, const TpSettings *s)
{
	tp_record	rec;
	tp_status	st;

	b->recs = palloc(sizeof(Rec) * CHUNK_RECORDS);
	b->reader_cxt = AllocSetContextCreate(CurrentMemoryContext, "tgt_profile batch reader",
										  ALLOCSET_DEFAULT_SIZES);
	/*
	 * A chunk needs a few MB; a first block that size survives every reset,
	 * so the chunks reuse the same pages instead of handing them back to the
	 * kernel and faulting them in again (a quarter of the time otherwise).
	 */
	b->chunk_cxt = AllocSetContextCreate(CurrentMemoryContext, "tgt_profile batch chunk",
										 CHUNK_MEMORY, CHUNK_MEMORY, CHUNK_MEMORY);
	b->round_cxt = AllocSetContextCreate(CurrentMemoryContext, "tgt_profile batch round",
										 CHUNK_MEMORY, CHUNK_MEMORY, CHUNK_MEMORY);
	b->merge_cxt = AllocSetContextCreate(CurrentMemoryContext, "tgt_profile batch merge",
										 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		MemoryContext old;

		/* the reader allocates (and frees) record by record in its own context */
		old = MemoryContextSwitchTo(b->reader_cxt);
		st = tp_ahead_next(reader, &rec);
		MemoryContextSwitchTo(old);
		if (st != TP_RECORD)
			break;
		CHECK_FOR_INTERRUPTS();
		b->counts.total++;
		check_row_limit(b, s);
		old = MemoryContextSwitchTo(b->chunk_cxt);
		keep_record(b, &rec);
		MemoryContextSwitchTo(old);
		if (b->nrecs == CHUNK_RECORDS || b->chunk_bytes >= CHUNK_BYTES)
		{
			old = MemoryContextSwitchTo(b->chunk_cxt);
			apply_chunk(b);
			MemoryContextSwitchTo(old);
		}
	}
	if (st == TP_FATAL)
		broken_batch(errbuf);
	if (b->nrecs > 0)
	{
		MemoryContext old = MemoryContextSwitchTo(b->chunk_cxt);

		apply_chunk(b);
		MemoryContextSwitchTo(old);
	}
}

/*
 * bulk_update(client, batch, authorization, create_missing)
 *		RETURNS TABLE (batch_id, status, rows_total, rows_created,
 *					   rows_updated, rows_unchanged, rows_not_found, rows_rejected)
 */
TP_SQL_FUNCTION(tgtp_bulk_update)
{
	char	   *client = tp_text_arg(fcinfo, 0, "client");
	Batch		b;
	TpSettings	s;
	text	   *batch;
	size_t		len;
	char		errbuf[256];
	tp_ahead   *reader;
	TpPrivState st;
	TupleDesc	desc;
	Datum		values[8];
	bool		nulls[8] = {0};
	char	   *actor = tp_caller_name();

	/* before authorize's read of the client: drop_client waits for us */
	tp_lock_client(client, TP_LOCK_ROWS);
	tp_authorize_arg(fcinfo, client, 2);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch must not be null")));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "bulk_update must return a composite");

	/* the size limit is checked before anything is parsed or detoasted */
	len = toast_raw_datum_size(PG_GETARG_DATUM(1)) - VARHDRSZ;
	if (len > (size_t) tgtp_max_batch_bytes)
		over_limit("tgt_profile.max_batch_bytes", tgtp_max_batch_bytes,
				   psprintf("The batch has %zu bytes.", len), "Split the batch.");
	batch = PG_GETARG_TEXT_PP(1);
	len = VARSIZE_ANY_EXHDR(batch);

	memset(&b, 0, sizeof(b));
	b.client = client;
	b.create_missing = PG_ARGISNULL(3) ? true : PG_GETARG_BOOL(3);
	b.remote = !tp_client_rows_here("profiles", client);

	reader = start_reading(VARDATA_ANY(batch), len, errbuf, sizeof(errbuf));
	PG_TRY();
	{
		if (!tp_ahead_open(reader))
			broken_batch(errbuf);

		/*
		 * One batch of a client at a time: the quota is counted, under the
		 * lock, from what is committed now, so it includes the batch we
		 * waited for.
		 */
		tp_lock_client(client, TP_LOCK_BATCHES);
		tp_require_client(client, &s);
		b.lifetime = s.profile_lifetime;
		tp_begin(&st, true);
		set_row_limit(&b, &s);
		b.batch_id = insert_batch_row(client, tp_ahead_format(reader), actor);
		run_batch(&b, reader, errbuf, &s);
	}
	PG_FINALLY();
	{
		stop_reading(reader);
	}
	PG_END_TRY();
	finish_batch_row(&b);
	tp_end(&st);

	values[0] = Int64GetDatum(b.batch_id);
	values[1] = CStringGetTextDatum("complete");
	values[2] = Int64GetDatum(b.counts.total);
	values[3] = Int64GetDatum(b.counts.created);
	values[4] = Int64GetDatum(b.counts.updated);
	values[5] = Int64GetDatum(b.counts.unchanged);
	values[6] = Int64GetDatum(b.counts.not_found);
	values[7] = Int64GetDatum(b.counts.rejected);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/*
 * batch_status(client, batch_id, authorization) RETURNS jsonb: NULL for an
 * unknown batch.  Read with the owner's rights after authorize().
 */
TP_SQL_FUNCTION(tgtp_batch_status)
{
	static TpPlan plan = {
		"SELECT pg_catalog.jsonb_build_object("
		"  'batchId', b.batch_id, 'client', b.client, 'status', b.status, 'format', b.format, "
		"  'batchSize', b.rows_total, 'created', b.rows_created, 'updated', b.rows_updated, "
		"  'unchanged', b.rows_unchanged, 'notFound', b.rows_not_found, 'rejected', b.rows_rejected, "
		"  'submittedBy', b.submitted_by, 'submittedAt', b.submitted_at, "
		"  'rejects', COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object("
		"        'row', r.row_number, 'key', r.key, 'reason', r.reason) ORDER BY r.row_number) "
		"     FROM tgt_profile.batch_rejects r "
		"    WHERE r.client OPERATOR(pg_catalog.=) b.client AND r.batch_id OPERATOR(pg_catalog.=) b.batch_id), "
		"   '[]'::jsonb)) "
		"  FROM tgt_profile.batches b "
		" WHERE b.client OPERATOR(pg_catalog.=) $1 AND b.batch_id OPERATOR(pg_catalog.=) $2",
		2, {TEXTOID, INT8OID}
	};
	char	   *client = tp_text_arg(fcinfo, 0, "client");
	TpPrivState st;
	Datum		v[2];
	Datum		result = (Datum) 0;
	bool		isnull = true;

	tp_authorize_arg(fcinfo, client, 2);
	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	tp_begin(&st, true);
	v[0] = CStringGetTextDatum(client);
	v[1] = PG_GETARG_DATUM(1);
	if (tp_exec(&plan, v, NULL, true, 1) == 1)
	{
		result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
		{
			MemoryContext old = MemoryContextSwitchTo(st.outer);

			result = PointerGetDatum(DatumGetJsonbPCopy(result));
			MemoryContextSwitchTo(old);
		}
	}
	tp_end(&st);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}
