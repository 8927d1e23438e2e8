/*
 * pg_compat.h
 *		Every difference between the PostgreSQL majors tgt_profile builds
 *		against (15, 16, 17, 18), and nothing else.
 *
 * The rest of the code calls the tp_* names below and never tests
 * PG_VERSION_NUM itself, so a new major is one edit here.  Each entry says
 * which major changed the API and what the older form meant.
 */
#ifndef TGT_PROFILE_PG_COMPAT_H
#define TGT_PROFILE_PG_COMPAT_H

#include "postgres.h"

#include "access/genam.h"
#include "access/tableam.h"
#include "common/base64.h"
#include "executor/executor.h"
#include "nodes/parsenodes.h"
#include "storage/proc.h"
#if PG_VERSION_NUM >= 160000
#include "parser/parse_relation.h"
#endif

#if PG_VERSION_NUM < 150000
#error "tgt_profile needs PostgreSQL 15 or later"
#endif

/*
 * A function that never returns: 18 replaced the attribute written after
 * the declaration by a specifier written before it (the older attribute
 * works in front as well).
 */
#if PG_VERSION_NUM >= 180000
#define tp_noreturn pg_noreturn
#else
#define tp_noreturn pg_attribute_noreturn()
#endif

/* 17 moved the local transaction id into the virtual transaction id. */
#if PG_VERSION_NUM >= 170000
#define TP_MY_LXID	(MyProc->vxid.lxid)
#else
#define TP_MY_LXID	(MyProc->lxid)
#endif

/* 18 types the binary side of base64 as uint8 (it was char). */
static inline int
tp_b64_encode(const uint8 *src, int len, char *dst, int dstlen)
{
#if PG_VERSION_NUM >= 180000
	return pg_b64_encode(src, len, dst, dstlen);
#else
	return pg_b64_encode((const char *) src, len, dst, dstlen);
#endif
}

static inline int
tp_b64_decode(const char *src, int len, uint8 *dst, int dstlen)
{
#if PG_VERSION_NUM >= 180000
	return pg_b64_decode(src, len, dst, dstlen);
#else
	return pg_b64_decode(src, len, (char *) dst, dstlen);
#endif
}

/* 18 added an optional instrumentation argument (none here). */
static inline IndexScanDesc
tp_index_beginscan(Relation heap, Relation index, Snapshot snapshot,
				   int nkeys, int norderbys)
{
#if PG_VERSION_NUM >= 180000
	return index_beginscan(heap, index, snapshot, NULL, nkeys, norderbys);
#else
	return index_beginscan(heap, index, snapshot, nkeys, norderbys);
#endif
}

/*
 * The executor's range table for a direct write to one relation (rte, at
 * index 1) that needs the given privileges and changes updated_cols.
 * 16 moved the privileges out of the range table entry into a separate
 * RTEPermissionInfo list; 18 also wants the relations pruning kept (ours,
 * the only one).
 */
static inline void
tp_init_range_table(EState *estate, RangeTblEntry *rte, AclMode perms,
					Bitmapset *updated_cols)
{
#if PG_VERSION_NUM >= 160000
	List	   *perminfos = NIL;
	RTEPermissionInfo *perminfo = addRTEPermissionInfo(&perminfos, rte);

	perminfo->requiredPerms = perms;
	perminfo->updatedCols = updated_cols;
#if PG_VERSION_NUM >= 180000
	ExecInitRangeTable(estate, list_make1(rte), perminfos, bms_make_singleton(1));
#else
	ExecInitRangeTable(estate, list_make1(rte), perminfos);
#endif
#else
	rte->requiredPerms = perms;
	rte->updatedCols = updated_cols;
	ExecInitRangeTable(estate, list_make1(rte));
#endif
}

/* 17 added the MERGE actions, 18 the ON CONFLICT action (neither here). */
static inline void
tp_check_valid_result_rel(ResultRelInfo *rri, CmdType op)
{
#if PG_VERSION_NUM >= 180000
	CheckValidResultRel(rri, op, ONCONFLICT_NONE, NIL);
#elif PG_VERSION_NUM >= 170000
	CheckValidResultRel(rri, op, NIL);
#else
	CheckValidResultRel(rri, op);
#endif
}

/*
 * Which index entries a heap update needs: 15 answers a bool (all or
 * none); 16 adds "only the summarizing indexes" (BRIN) for HOT updates.
 */
#if PG_VERSION_NUM >= 160000
typedef TU_UpdateIndexes TpUpdateIndexes;
#define TP_UPDATE_INDEXES_NONE	TU_None
#define TP_UPDATE_INDEXES_ALL	TU_All
#define TP_UPDATE_ONLY_SUMMARIZING(u)	((u) == TU_Summarizing)
#else
typedef bool TpUpdateIndexes;
#define TP_UPDATE_INDEXES_NONE	false
#define TP_UPDATE_INDEXES_ALL	true
#define TP_UPDATE_ONLY_SUMMARIZING(u)	false
#endif

/*
 * Insert the index entries of slot's new row version: after an insert
 * (update false, TP_UPDATE_INDEXES_ALL) or an update (what it answered).
 */
static inline void
tp_insert_index_entries(ResultRelInfo *rri, TupleTableSlot *slot, EState *estate,
						bool update, TpUpdateIndexes update_indexes)
{
	if (rri->ri_NumIndices == 0 || (update && update_indexes == TP_UPDATE_INDEXES_NONE))
		return;
#if PG_VERSION_NUM >= 160000
	list_free(ExecInsertIndexTuples(rri, slot, estate, update, false, NULL, NIL,
									TP_UPDATE_ONLY_SUMMARIZING(update_indexes)));
#else
	list_free(ExecInsertIndexTuples(rri, slot, estate, update, false, NULL, NIL));
#endif
}

#endif							/* TGT_PROFILE_PG_COMPAT_H */
