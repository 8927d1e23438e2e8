/*-------------------------------------------------------------------------
 *
 * profile_write.h
 *	  A profile row: read from a tuple, written without SQL statements
 *	  (profile_write.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROFILE_WRITE_H
#define PROFILE_WRITE_H

#include "access/htup.h"
#include "nodes/nodes.h"
#include "storage/itemptr.h"
#include "utils/jsonb.h"

/* tgt_profile.profiles' columns, in the order the install script creates them */
enum
{
	TP_COL_CLIENT = 1,
	TP_COL_TNT_ID,
	TP_COL_THIRD_PARTY_ID,
	TP_COL_ATTRIBUTES,
	TP_COL_CREATED_AT,
	TP_COL_UPDATED_AT,
	TP_COL_LAST_SEEN_AT,
	TP_PROFILE_NATTS = TP_COL_LAST_SEEN_AT
};

/* One row of tgt_profile.profiles (the client is known to the caller). */
typedef struct TpProfileRow
{
	ItemPointerData tid;		/* where it was read; not used for writing */
	const char *tnt_id;
	const char *third_party_id;	/* NULL when none */
	Jsonb	   *attributes;
	TimestampTz created_at;
	TimestampTz updated_at;
	TimestampTz last_seen_at;
} TpProfileRow;

extern void tp_profile_row_read(HeapTuple tup, TupleDesc desc, TpProfileRow *row);

/*
 * The same, but row->attributes is left as stored (compressed, or a TOAST
 * pointer valid in this transaction): not a jsonb to read before
 * DatumGetJsonbP() expands it, but a value to write back as it is (an
 * update then keeps its TOAST data).
 */
extern void tp_profile_row_read_stored(HeapTuple tup, TupleDesc desc, TpProfileRow *row);

typedef struct TpRowWriter TpRowWriter;

extern TpRowWriter *tp_writer_open(const char *client, CmdType op);
extern void tp_writer_insert(TpRowWriter *w, const TpProfileRow *row);
extern void tp_writer_flush(TpRowWriter *w);
extern bool tp_writer_update(TpRowWriter *w, ItemPointer tid, const TpProfileRow *row);
extern void tp_writer_close(TpRowWriter *w);

#endif							/* PROFILE_WRITE_H */
