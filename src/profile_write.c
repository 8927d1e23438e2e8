/*-------------------------------------------------------------------------
 *
 * profile_write.c
 *	  A profile row: read from a tuple, and written the way COPY and logical
 *	  replication do: straight into the table and its indexes, without an
 *	  SQL statement.
 *
 * A bulk update writes tens of thousands of rows a chunk.  Through SQL each
 * chunk paid for building arrays, unnesting them, planning-cache checks,
 * executor start-up and a join back by ctid (a TID rescan per row); here a
 * new row costs what it costs COPY (heap_multi_insert, then one entry per
 * index) and a changed row what it costs logical replication's apply
 * (table_tuple_update at the row version that was read, then the index
 * entries when the update is not HOT).
 *
 * The rules SQL would apply still apply: NOT NULL and CHECK constraints
 * (ExecConstraints), unique indexes (checked by the index insert, 23505),
 * partition constraints, replica identity for published tables; logical
 * decoding sees every row written here.  Triggers, rules and expressions
 * calling functions other than built-in ones, which a DBA may attach, are
 * refused before anything is written (additions.c).  What is not done here
 * is firing the internal triggers that remain (foreign keys a DBA added)
 * and enforcing forced row-level security: tp_writer_open() returns NULL
 * for a table that has either (or a shape other than the one the extension
 * created), and the caller writes through SQL instead.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"
#include "pg_compat.h"

#include "profile_write.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/sysattr.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/* Buffered new rows, flushed together (COPY's limits). */
#define WRITE_BUFFER_ROWS	1000
#define WRITE_BUFFER_BYTES	65535

static const Oid column_types[TP_PROFILE_NATTS] = {
	TEXTOID, TEXTOID, TEXTOID, JSONBOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID
};

struct TpRowWriter
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	Datum		client;
	BulkInsertState bistate;	/* inserts only */
	TupleTableSlot *slots[WRITE_BUFFER_ROWS];
	int			nbuffered;
	Size		buffered_bytes;
	TupleTableSlot *update_slot;
};

/* Copy a stored profile row into the current memory context. */
static void
read_row(HeapTuple tup, TupleDesc desc, TpProfileRow *row, bool expand)
{
	bool		isnull;
	Datum		d;

	row->tid = tup->t_self;
	row->tnt_id = TextDatumGetCString(heap_getattr(tup, TP_COL_TNT_ID, desc, &isnull));
	d = heap_getattr(tup, TP_COL_THIRD_PARTY_ID, desc, &isnull);
	row->third_party_id = isnull ? NULL : TextDatumGetCString(d);
	d = heap_getattr(tup, TP_COL_ATTRIBUTES, desc, &isnull);
	row->attributes = expand ? DatumGetJsonbPCopy(d) : (Jsonb *) DatumGetPointer(datumCopy(d, false, -1));
	row->created_at = DatumGetTimestampTz(heap_getattr(tup, TP_COL_CREATED_AT, desc, &isnull));
	row->updated_at = DatumGetTimestampTz(heap_getattr(tup, TP_COL_UPDATED_AT, desc, &isnull));
	row->last_seen_at = DatumGetTimestampTz(heap_getattr(tup, TP_COL_LAST_SEEN_AT, desc, &isnull));
}

void
tp_profile_row_read(HeapTuple tup, TupleDesc desc, TpProfileRow *row)
{
	read_row(tup, desc, row, true);
}

void
tp_profile_row_read_stored(HeapTuple tup, TupleDesc desc, TpProfileRow *row)
{
	read_row(tup, desc, row, false);
}

/*
 * Can rows be written here without SQL?  Not when a trigger would have to
 * fire (only internal ones pass tp_check_profiles_writable: a foreign key's),
 * when row-level security is forced on the owner, or when the table's
 * columns are not the ones the extension created (SQL fills what a DBA
 * added, with its defaults).
 */
static bool
writable_directly(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);

	if (rel->trigdesc != NULL || rel->rd_rel->relforcerowsecurity)
		return false;
	if (desc->natts != TP_PROFILE_NATTS)
		return false;
	for (int i = 0; i < TP_PROFILE_NATTS; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->atttypid != column_types[i] || att->attgenerated)
			return false;
	}
	return true;
}

/*
 * A partition's parent must allow it too: SQL would write through the
 * parent, firing its statement triggers and applying its forced policies.
 */
static bool
parent_writable_directly(Relation rel)
{
	Relation	parent;
	bool		ok;

	if (!rel->rd_rel->relispartition)
		return true;
	/* the table, or on Citus the shard of the table (locked with it) */
	parent = table_open(get_partition_parent(RelationGetRelid(rel), false), NoLock);
	ok = writable_directly(parent);
	table_close(parent, NoLock);
	return ok;
}

/*
 * The executor state the index and constraint code expects: a one-entry
 * range table (the error paths report the row with its column privileges,
 * the index code asks which columns an update changes) and a result
 * relation with its indexes open.
 */
static void
init_estate(TpRowWriter *w, CmdType op)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	Bitmapset  *updated = NULL;

	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(w->rel);
	rte->relkind = w->rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	if (op == CMD_UPDATE)
	{
		/* an update may link a third-party id; the pcId never changes */
		updated = bms_make_singleton(TP_COL_THIRD_PARTY_ID - FirstLowInvalidHeapAttributeNumber);
		updated = bms_add_member(updated, TP_COL_ATTRIBUTES - FirstLowInvalidHeapAttributeNumber);
		updated = bms_add_member(updated, TP_COL_UPDATED_AT - FirstLowInvalidHeapAttributeNumber);
		updated = bms_add_member(updated, TP_COL_LAST_SEEN_AT - FirstLowInvalidHeapAttributeNumber);
	}
	w->estate = CreateExecutorState();
	tp_init_range_table(w->estate, rte, op == CMD_INSERT ? ACL_INSERT : ACL_UPDATE, updated);
	w->estate->es_output_cid = GetCurrentCommandId(true);
	w->estate->es_snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : InvalidSnapshot;

	w->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(w->rri, w->rel, 1, NULL, 0);
	tp_check_valid_result_rel(w->rri, op);
	ExecOpenIndices(w->rri, false);
}

/*
 * Start writing the client's profiles (op: CMD_INSERT or CMD_UPDATE), or
 * NULL when the table must be written through SQL (see writable_directly).
 * Must run as the owner, like the SQL it replaces; raises when a DBA
 * attached code that would run as the owner (additions.c).
 */
TpRowWriter *
tp_writer_open(const char *client, CmdType op)
{
	const char *command = op == CMD_INSERT ? "INSERT" : "UPDATE";
	TpRowWriter *w;

	/* what the executor checks first (25006 on a hot standby) */
	PreventCommandIfReadOnly(command);
	PreventCommandIfParallelMode(command);

	w = palloc0(sizeof(TpRowWriter));
	/* on Citus, a shard on another node is written through SQL only */
	if (!tp_open_profiles(client, NULL, RowExclusiveLock, &w->rel, NULL))
	{
		table_close(w->rel, NoLock);
		pfree(w);
		return NULL;
	}
	tp_check_profiles_writable(w->rel);
	if (!writable_directly(w->rel) || !parent_writable_directly(w->rel))
	{
		table_close(w->rel, NoLock);	/* kept: the SQL statement writes next */
		pfree(w);
		return NULL;
	}
	w->client = CStringGetTextDatum(client);
	init_estate(w, op);
	if (op == CMD_INSERT)
		w->bistate = GetBulkInsertState();
	else
		w->update_slot = table_slot_create(w->rel, NULL);
	return w;
}

static void
check_row(TpRowWriter *w, TupleTableSlot *slot)
{
	ExecConstraints(w->rri, slot, w->estate);
	if (w->rel->rd_rel->relispartition)
		ExecPartitionCheck(w->rri, slot, w->estate, true);
}

static void
fill_row(TpRowWriter *w, TupleTableSlot *slot, const TpProfileRow *row)
{
	Datum	   *v = slot->tts_values;
	bool	   *n = slot->tts_isnull;

	ExecClearTuple(slot);
	v[TP_COL_CLIENT - 1] = w->client;
	v[TP_COL_TNT_ID - 1] = CStringGetTextDatum(row->tnt_id);
	n[TP_COL_THIRD_PARTY_ID - 1] = (row->third_party_id == NULL);
	v[TP_COL_THIRD_PARTY_ID - 1] = row->third_party_id ? CStringGetTextDatum(row->third_party_id) : (Datum) 0;
	v[TP_COL_ATTRIBUTES - 1] = JsonbPGetDatum(row->attributes);
	v[TP_COL_CREATED_AT - 1] = TimestampTzGetDatum(row->created_at);
	v[TP_COL_UPDATED_AT - 1] = TimestampTzGetDatum(row->updated_at);
	v[TP_COL_LAST_SEEN_AT - 1] = TimestampTzGetDatum(row->last_seen_at);
	n[TP_COL_CLIENT - 1] = n[TP_COL_TNT_ID - 1] = n[TP_COL_ATTRIBUTES - 1] = false;
	n[TP_COL_CREATED_AT - 1] = n[TP_COL_UPDATED_AT - 1] = n[TP_COL_LAST_SEEN_AT - 1] = false;
	ExecStoreVirtualTuple(slot);
}

/* Write the buffered new rows to the table, then their index entries. */
void
tp_writer_flush(TpRowWriter *w)
{
	ExprContext *econtext = GetPerTupleExprContext(w->estate);

	MemoryContext old;

	if (w->nbuffered == 0)
		return;
	/* the heap code leaves its working copies in the current context */
	old = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);
	table_multi_insert(w->rel, w->slots, w->nbuffered, w->estate->es_output_cid,
					   0, w->bistate);
	MemoryContextSwitchTo(old);
	for (int i = 0; i < w->nbuffered; i++)
	{
		/* a unique index that already holds the key raises 23505 here */
		tp_insert_index_entries(w->rri, w->slots[i], w->estate, false,
								TP_UPDATE_INDEXES_ALL);
		ExecClearTuple(w->slots[i]);
	}
	w->nbuffered = 0;
	w->buffered_bytes = 0;
	ResetExprContext(econtext);
}

/* Add a new profile row (written by the next flush). */
void
tp_writer_insert(TpRowWriter *w, const TpProfileRow *row)
{
	TupleTableSlot *slot;

	if (w->slots[w->nbuffered] == NULL)
		w->slots[w->nbuffered] = table_slot_create(w->rel, NULL);
	slot = w->slots[w->nbuffered];
	fill_row(w, slot, row);
	check_row(w, slot);
	w->nbuffered++;
	w->buffered_bytes += VARSIZE(row->attributes) + 64;
	if (w->nbuffered == WRITE_BUFFER_ROWS || w->buffered_bytes > WRITE_BUFFER_BYTES)
		tp_writer_flush(w);
}

/*
 * Replace the row version at tid, the one the caller read, with row.
 * Returns false when that version is no longer the latest (a concurrent
 * update or delete committed since, or our own statement's): the caller
 * reads the row again, with a new snapshot.
 */
bool
tp_writer_update(TpRowWriter *w, ItemPointer tid, const TpProfileRow *row)
{
	TupleTableSlot *slot = w->update_slot;
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	TpUpdateIndexes update_indexes;
	TM_Result	res;

	fill_row(w, slot, row);
	check_row(w, slot);
	res = table_tuple_update(w->rel, tid, slot, w->estate->es_output_cid,
							 w->estate->es_snapshot, InvalidSnapshot,
							 true, &tmfd, &lockmode, &update_indexes);
	switch (res)
	{
		case TM_Ok:
			break;
		case TM_SelfModified:

			/*
			 * Our own statement wrote a newer version (say, two upserts of
			 * one profile in one SELECT): make it visible to the next read.
			 */
			CommandCounterIncrement();
			return false;
		case TM_Updated:
		case TM_Deleted:
			/* under repeatable read a newer version is never visible */
			if (IsolationUsesXactSnapshot())
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent update")));
			return false;
		default:
			elog(ERROR, "unexpected result %d updating a profile", (int) res);
	}
	tp_insert_index_entries(w->rri, slot, w->estate, true, update_indexes);
	ResetExprContext(GetPerTupleExprContext(w->estate));
	return true;
}

/* Flush what is buffered and release everything. */
void
tp_writer_close(TpRowWriter *w)
{
	tp_writer_flush(w);
	if (w->bistate)
		FreeBulkInsertState(w->bistate);
	for (int i = 0; i < WRITE_BUFFER_ROWS && w->slots[i]; i++)
		ExecDropSingleTupleTableSlot(w->slots[i]);
	if (w->update_slot)
		ExecDropSingleTupleTableSlot(w->update_slot);
	ExecCloseIndices(w->rri);
	FreeExecutorState(w->estate);
	table_close(w->rel, NoLock);	/* the lock stays until commit */
	pfree(w);
}
