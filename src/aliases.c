/*-------------------------------------------------------------------------
 *
 * aliases.c
 *	  Reading the aliases of identity merge: a pcId merged into a customer's
 *	  profile (upsert_profile with merge => true) and the tnt_id it resolves
 *	  to.
 *
 * Every read goes through the storage layer: the relation that holds the
 * client's aliases on this node (the table, on Citus the client's local
 * shard), scanned by a direct index probe; where the shard is on another
 * node, a SELECT that Citus routes there.  A pcId is resolved as a profile
 * first and as an alias only when no profile has it, so the aliases cost
 * nothing to the pcIds that are profiles; and a client that has no alias
 * at all (the usual case) is told by one probe, which spares a batch a
 * probe per new key.
 *
 * The writes (the merge, the deletions with a profile) are SQL statements
 * in profiles.c and clients.c.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"
#include "pg_compat.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/* aliases' columns */
#define COL_PC_ID	2
#define COL_TNT_ID	3

/* An open probe of the client's aliases by one of the table's indexes. */
typedef struct AliasProbe
{
	Relation	rel;
	Relation	idx;
	Snapshot	snap;
	bool		own_snap;		/* registered here (fresh), unregistered at end */
	IndexScanDesc scan;
	TupleTableSlot *slot;
	Datum		client;
} AliasProbe;

/*
 * nkeys: 1 to scan by the client alone, 2 by (client, key).  false: the
 * client's aliases are on another node (rel is the shell, open).
 */
static bool
probe_begin(AliasProbe *p, const char *client, const char *indexname, int nkeys,
			Snapshot snap)
{
	memset(p, 0, sizeof(*p));
	p->client = CStringGetTextDatum(client);
	if (!tp_open_rows("aliases", client, indexname, AccessShareLock, &p->rel, &p->idx))
		return false;
	p->own_snap = (snap == NULL);
	p->snap = snap ? snap : tp_fresh_snapshot();
	p->slot = table_slot_create(p->rel, NULL);
	p->scan = tp_index_beginscan(p->rel, p->idx, p->snap, nkeys, 0);
	return true;
}

/*
 * Position on the entries of (client) or, when key is given, (client, key):
 * as many keys as probe_begin was told.
 */
static void
probe_rescan(AliasProbe *p, const char *key)
{
	ScanKeyData sk[2];

	ScanKeyInit(&sk[0], 1, BTEqualStrategyNumber, F_TEXTEQ, p->client);
	sk[0].sk_collation = p->idx->rd_indcollation[0];
	if (key)
	{
		ScanKeyInit(&sk[1], 2, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(key));
		sk[1].sk_collation = p->idx->rd_indcollation[1];
	}
	index_rescan(p->scan, sk, key ? 2 : 1, NULL, 0);
}

/* The next alias found, its columns copied into the current context. */
static bool
probe_next(AliasProbe *p, TpAlias *out)
{
	bool		isnull;

	if (!index_getnext_slot(p->scan, ForwardScanDirection, p->slot))
		return false;
	out->pc_id = TextDatumGetCString(slot_getattr(p->slot, COL_PC_ID, &isnull));
	out->tnt_id = TextDatumGetCString(slot_getattr(p->slot, COL_TNT_ID, &isnull));
	return true;
}

static void
probe_end(AliasProbe *p)
{
	if (p->scan)
	{
		index_endscan(p->scan);
		ExecDropSingleTupleTableSlot(p->slot);
		index_close(p->idx, AccessShareLock);
		if (p->own_snap)
			UnregisterSnapshot(p->snap);
	}
	table_close(p->rel, AccessShareLock);
}

/*
 * The same through SQL, where the client's aliases are on another node:
 * the rows whose column is (one of) the text value(s) given.  Read under
 * the caller's snapshot on that node (a fresh read is a new statement
 * there, as a read committed transaction's).
 */
static List *
remote_aliases(const char *client, const char *column, Datum value, bool many)
{
	Oid			types[2] = {TEXTOID, many ? TEXTARRAYOID : TEXTOID};
	Datum		args[2] = {CStringGetTextDatum(client), value};
	char	   *sql;

	sql = psprintf("SELECT a FROM %s.aliases a WHERE a.client OPERATOR(pg_catalog.=) $1 "
				   "AND a.%s OPERATOR(pg_catalog.=) %s ORDER BY a.pc_id",
				   TGTP_SCHEMA, column, many ? "ANY ($2)" : "$2");
	return tp_remote_query_rows(sql, 2, types, args, NULL, false);
}

/* A remote row's columns. */
static void
remote_alias(Relation shell, HeapTuple tup, TpAlias *out)
{
	bool		isnull;

	out->pc_id = TextDatumGetCString(heap_getattr(tup, COL_PC_ID, RelationGetDescr(shell), &isnull));
	out->tnt_id = TextDatumGetCString(heap_getattr(tup, COL_TNT_ID, RelationGetDescr(shell), &isnull));
}

/*
 * Is there an aliases table?  Not while the extension's objects are of a
 * version before 1.2 (ALTER EXTENSION UPDATE not yet run): then no pcId is
 * an alias, and the statements that write aliases are not run.
 */
bool
tp_aliases_installed(void)
{
	return OidIsValid(tp_relation_oid_if_any("aliases"));
}

/*
 * Has the client any alias?  One probe: a batch of a client that never
 * merged (most) then reads no alias per key.  Where the client's aliases
 * are on another node (Citus), "maybe" (true): a LIMIT 1 statement routed
 * there each round of a batch would cost what reading the keys costs.
 */
bool
tp_client_has_aliases(const char *client, Snapshot snap)
{
	AliasProbe	p;
	TpAlias		a;
	bool		found;

	if (!tp_aliases_installed())
		return false;
	if (!probe_begin(&p, client, "aliases_pkey", 1, snap))
	{
		/*
		 * On another node: say "maybe", and let the callers read the keys
		 * they need there (a statement each, not one more per round).
		 */
		table_close(p.rel, AccessShareLock);
		return true;
	}
	probe_rescan(&p, NULL);
	found = probe_next(&p, &a);
	probe_end(&p);
	return found;
}

/*
 * The aliases among n pcIds (sorted by the caller, so the probes walk the
 * index in order; duplicates are skipped), into *out (palloc'd); returns
 * how many.
 */
int
tp_aliases_of_keys(const char *client, char **pc_ids, int n, Snapshot snap, TpAlias **out)
{
	AliasProbe	p;
	int			found = 0;

	*out = palloc(sizeof(TpAlias) * Max(n, 1));
	if (n == 0 || !tp_aliases_installed())
		return 0;
	if (!probe_begin(&p, client, "aliases_pkey", 2, snap))
	{
		Datum	   *ids = palloc(sizeof(Datum) * n);
		List	   *rows;
		ListCell   *lc;

		for (int i = 0; i < n; i++)
			ids[i] = CStringGetTextDatum(pc_ids[i]);
		rows = remote_aliases(client, "pc_id",
							  PointerGetDatum(construct_array(ids, n, TEXTOID, -1, false,
															  TYPALIGN_INT)),
							  true);
		foreach(lc, rows)
			remote_alias(p.rel, lfirst(lc), &(*out)[found++]);
		list_free_deep(rows);
		table_close(p.rel, AccessShareLock);
		return found;
	}
	for (int i = 0; i < n; i++)
	{
		if (i > 0 && strcmp(pc_ids[i], pc_ids[i - 1]) == 0)
			continue;
		probe_rescan(&p, pc_ids[i]);
		if (probe_next(&p, &(*out)[found]))
			found++;
	}
	probe_end(&p);
	return found;
}

/* The tnt_id pc_id is an alias of, or NULL. */
char *
tp_alias_target(const char *client, const char *pc_id, Snapshot snap)
{
	TpAlias    *a;
	char	   *key = unconstify(char *, pc_id);

	return tp_aliases_of_keys(client, &key, 1, snap, &a) == 1 ? a->tnt_id : NULL;
}

static int
cmp_cstring(const ListCell *a, const ListCell *b)
{
	return strcmp(lfirst(a), lfirst(b));
}

/* The pcIds merged into profile tnt_id, sorted (a List of C strings). */
List *
tp_profile_aliases(const char *client, const char *tnt_id, Snapshot snap)
{
	AliasProbe	p;
	TpAlias		a;
	List	   *result = NIL;

	if (!tp_aliases_installed())
		return NIL;
	if (!probe_begin(&p, client, "aliases_tnt_id", 2, snap))
	{
		List	   *rows = remote_aliases(client, "tnt_id", CStringGetTextDatum(tnt_id), false);
		ListCell   *lc;

		foreach(lc, rows)
		{
			remote_alias(p.rel, lfirst(lc), &a);
			result = lappend(result, a.pc_id);
		}
		list_free_deep(rows);
		table_close(p.rel, AccessShareLock);
		return result;
	}
	probe_rescan(&p, tnt_id);
	while (probe_next(&p, &a))
		result = lappend(result, a.pc_id);
	probe_end(&p);
	list_sort(result, cmp_cstring);
	return result;
}
