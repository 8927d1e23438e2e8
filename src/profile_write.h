/*-------------------------------------------------------------------------
 *
 * profile_write.h
 *	  Writing profile rows without SQL statements (profile_write.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROFILE_WRITE_H
#define PROFILE_WRITE_H

#include "nodes/nodes.h"
#include "storage/itemptr.h"
#include "utils/jsonb.h"

/* One row of tgt_profile.profiles (the client is the writer's). */
typedef struct TpProfileRow
{
	const char *tnt_id;
	const char *third_party_id;	/* NULL when none */
	Jsonb	   *attributes;
	TimestampTz created_at;
	TimestampTz updated_at;
	TimestampTz last_seen_at;
} TpProfileRow;

typedef struct TpRowWriter TpRowWriter;

extern TpRowWriter *tp_writer_open(const char *client, CmdType op);
extern void tp_writer_insert(TpRowWriter *w, const TpProfileRow *row);
extern void tp_writer_flush(TpRowWriter *w);
extern bool tp_writer_update(TpRowWriter *w, ItemPointer tid, const TpProfileRow *row);
extern void tp_writer_close(TpRowWriter *w);

#endif							/* PROFILE_WRITE_H */
