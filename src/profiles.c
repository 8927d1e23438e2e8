/*-------------------------------------------------------------------------
 *
 * profiles.c
 *	  The single-profile API: upsert, get, delete, and the expiry purge.
 *
 * upsert_profile reads the profile without a lock, merges in memory, and
 * writes only when something changed (or last_seen_at is getting old): an
 * unchanged upsert writes no tuple and no WAL.  The write replaces the row
 * version it read (profile_write.c); when a concurrent transaction changed
 * or deleted the row first, the write does not happen and the upsert starts
 * over on the newer version.  So no committed
 * attribute is ever lost, and nobody waits on a lock it does not need.
 *
 * A pcId merged into a customer's profile (merge => true, a login) is an
 * alias of it (aliases.c), resolved wherever a pcId is accepted.  The merge
 * is the one write that changes two profiles: it locks both rows, and
 * never waits for a lock while it holds one it took (see merge_round), so
 * it cannot deadlock with a batch, an upsert or another merge.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "attributes.h"
#include "profile_write.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/* How often a conflicting concurrent change may send an upsert round. */
#define MAX_ROUNDS 100

/* A profile as read: found or not, and its row. */
typedef struct ProfileRow
{
	bool		found;
	TpProfileRow row;
} ProfileRow;

/*
 * Read one profile by (client, tnt_id) or (client, third_party_id), with
 * the given snapshot, copying it into the current memory context.  On
 * Citus, where the client's shard is on another node, through SQL (the
 * remote statement's snapshot).
 */
static void
read_profile(const char *client, bool by_third_party, const char *id,
			 Snapshot snap, ProfileRow *row)
{
	Relation	rel;
	Relation	idx;
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;

	memset(row, 0, sizeof(*row));
	if (!tp_open_profiles(client, by_third_party ? "profiles_third_party_id_key" : "profiles_pkey",
						  AccessShareLock, &rel, &idx))
	{
		List	   *rows = tp_sql_profiles(client, by_third_party, CStringGetTextDatum(id), false);

		row->found = rows != NIL;
		if (row->found)
			tp_profile_row_read(linitial(rows), RelationGetDescr(rel), &row->row);
		list_free_deep(rows);
		table_close(rel, AccessShareLock);
		return;
	}
	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(client));
	ScanKeyInit(&keys[1], by_third_party ? TP_COL_THIRD_PARTY_ID : TP_COL_TNT_ID,
				BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(id));
	keys[0].sk_collation = idx->rd_indcollation[0];
	keys[1].sk_collation = idx->rd_indcollation[1];

	scan = systable_beginscan(rel, RelationGetRelid(idx), true, snap, 2, keys);
	tup = systable_getnext(scan);
	row->found = HeapTupleIsValid(tup);
	if (row->found)
		tp_profile_row_read(tup, RelationGetDescr(rel), &row->row);
	systable_endscan(scan);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
}

/*
 * The snapshot an upsert reads with: the newest (read committed), and one
 * that sees what this very statement wrote before (several upserts of one
 * profile in one SELECT), since the write must replace the newest version.
 */
static Snapshot
read_snapshot(void)
{
	CommandCounterIncrement();
	return RegisterSnapshot(GetTransactionSnapshot());
}

/* A random opaque tnt_id for a profile created from a third-party id. */
char *
tp_new_tnt_id(void)
{
	uint8		b[16];

	if (!pg_strong_random(b, sizeof(b)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for a tnt_id")));
	b[6] = (b[6] & 0x0f) | 0x40;	/* UUID version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;
	return psprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
					b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
					b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static void
check_id_arg(const char *what, const char *id)
{
	char		buf[TP_REASON_LEN];
	const char *why;

	if (id != NULL && (why = tp_id_check(what, id, strlen(id), buf, sizeof(buf))) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s", why)));
}

static char *
opt_text(FunctionCallInfo fcinfo, int argno)
{
	return PG_ARGISNULL(argno) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

static void
require_key(const char *pc_id, const char *third_party_id)
{
	if (pc_id == NULL && third_party_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a profile is identified by pc_id or third_party_id"),
				 errhint("Pass at least one of them.")));
	check_id_arg("pc_id", pc_id);
	check_id_arg("third_party_id", third_party_id);
}

static void
link_conflict(const char *third_party_id, const char *detail, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNIQUE_VIOLATION),
			 errmsg("third-party id \"%s\" cannot be linked to this profile", third_party_id),
			 errdetail("%s", detail),
			 errhint("Nothing was changed.%s", hint)));
}

/*
 * The profile a pcId names: the profile whose tnt_id it is, else the one
 * it is an alias of (the aliases are read only for a pcId that is no
 * profile).
 */
static void
read_pc_id(const char *client, const char *pc_id, Snapshot snap, ProfileRow *row)
{
	char	   *target;

	read_profile(client, false, pc_id, snap, row);
	if (!row->found && (target = tp_alias_target(client, pc_id, snap)) != NULL)
		read_profile(client, false, target, snap, row);
}

/*
 * What an upsert does: write row (found false: a new one), linking the
 * third-party id to it when link; or, for a merge, fold row (the pcId's
 * profile, or none) into into, the profile of the third-party id.
 */
typedef struct Target
{
	ProfileRow	row;
	bool		link;
	bool		merge;
	ProfileRow	into;
} Target;

static void
resolve_target(const char *client, const char *pc_id, const char *tpid, bool merge,
			   Snapshot snap, Target *t)
{
	memset(t, 0, sizeof(*t));
	if (pc_id == NULL)
	{
		read_profile(client, true, tpid, snap, &t->row);
		return;
	}
	read_pc_id(client, pc_id, snap, &t->row);
	if (tpid == NULL)
		return;
	if (t->row.found && t->row.row.third_party_id != NULL)
	{
		if (strcmp(t->row.row.third_party_id, tpid) != 0)
			link_conflict(tpid, "The profile of this pc_id already has a different third-party id.", "");
		return;
	}
	read_profile(client, true, tpid, snap, &t->into);
	if (!t->into.found)
	{
		t->link = true;
		return;
	}
	if (!merge)
		link_conflict(tpid, "The third-party id belongs to another profile.",
					  " To merge this pc_id's profile into it (a login), pass merge => true.");
	t->merge = true;
}

static bool
insert_profile(const char *client, const char *tnt_id, const char *tpid, Jsonb *attrs)
{
	static TpPlan plan = {
		"INSERT INTO tgt_profile.profiles "
		"  (client, tnt_id, third_party_id, attributes, created_at, updated_at, last_seen_at) "
		"VALUES ($1, $2, $3, $4, $5, $5, $5) ON CONFLICT DO NOTHING",
		5, {TEXTOID, TEXTOID, TEXTOID, JSONBOID, TIMESTAMPTZOID}, .client_arg = 1
	};
	Datum		v[5];
	char		nulls[5] = {' ', ' ', tpid ? ' ' : 'n', ' ', ' '};

	v[0] = CStringGetTextDatum(client);
	v[1] = CStringGetTextDatum(tnt_id);
	v[2] = tpid ? CStringGetTextDatum(tpid) : (Datum) 0;
	v[3] = JsonbPGetDatum(attrs);
	v[4] = TimestampTzGetDatum(tp_now());
	return tp_exec(&plan, v, nulls, false, 0) == 1;
}

/* Write the version we read; false when a concurrent change got there first. */
static bool
update_by_sql(const TpProfileRow *row, const char *client, const TpProfileRow *written)
{
	static TpPlan plan = {
		"UPDATE tgt_profile.profiles "
		"   SET attributes = $4, third_party_id = $5, updated_at = $6, last_seen_at = $7 "
		" WHERE ctid OPERATOR(pg_catalog.=) $3 AND client OPERATOR(pg_catalog.=) $1 "
		"   AND tnt_id OPERATOR(pg_catalog.=) $2",
		7, {TEXTOID, TEXTOID, TIDOID, JSONBOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID},
		.client_arg = 1
	};
	Datum		v[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', written->third_party_id ? ' ' : 'n', ' ', ' '};

	v[0] = CStringGetTextDatum(client);
	v[1] = CStringGetTextDatum(row->tnt_id);
	v[2] = PointerGetDatum(&row->tid);
	v[3] = JsonbPGetDatum(written->attributes);
	v[4] = written->third_party_id ? CStringGetTextDatum(written->third_party_id) : (Datum) 0;
	v[5] = TimestampTzGetDatum(written->updated_at);
	v[6] = TimestampTzGetDatum(written->last_seen_at);
	return tp_exec(&plan, v, nulls, false, 0) == 1;
}

/*
 * Write the version we read, straight into the table (profile_write.c;
 * through SQL when the table has triggers); false when a concurrent change
 * got there first.
 */
static bool
update_profile(const TpProfileRow *row, const char *client, const char *tpid,
			   Jsonb *attrs, bool changed)
{
	TpProfileRow written = *row;
	TpRowWriter *w;
	bool		done;

	written.third_party_id = tpid;
	written.attributes = attrs;
	written.updated_at = changed ? tp_now() : row->updated_at;
	written.last_seen_at = tp_now();
	w = tp_writer_open(client, CMD_UPDATE);
	if (w == NULL)
		return update_by_sql(row, client, &written);
	done = tp_writer_update(w, (ItemPointer) &row->tid, &written);
	tp_writer_close(w);
	return done;
}

static void
raise_reason(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", why)));
}

/* Delete one profile by its tnt_id; how many rows went (0 or 1). */
static int
delete_profile_row(const char *client, const char *tnt_id)
{
	static TpPlan plan = {
		"DELETE FROM tgt_profile.profiles "
		" WHERE client OPERATOR(pg_catalog.=) $1 AND tnt_id OPERATOR(pg_catalog.=) $2",
		2, {TEXTOID, TEXTOID}, .client_arg = 1
	};
	Datum		v[2];

	v[0] = CStringGetTextDatum(client);
	v[1] = CStringGetTextDatum(tnt_id);
	return tp_exec(&plan, v, NULL, false, 0);
}

/* ---------- identity merge ---------- */

static Jsonb *
empty_attributes(void)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
}

/* A profile locked by lock_profile. */
typedef struct LockedRow
{
	bool		found;
	char	   *tnt_id;
	char	   *third_party_id;
	Jsonb	   *attributes;
} LockedRow;

/*
 * Lock one profile by its full key (tnt_id, or third-party id), without
 * waiting (an error 55P03 when another transaction holds it), and read it
 * as it now is.  By the full key of a unique index, so that no plan can
 * make it a scan of the client's rows.
 */
static void
lock_profile(const char *client, bool by_third_party, const char *key, LockedRow *out)
{
	static TpPlan by_tnt = {
		"SELECT p.tnt_id, p.third_party_id, p.attributes FROM tgt_profile.profiles p "
		" WHERE p.client OPERATOR(pg_catalog.=) $1 AND p.tnt_id OPERATOR(pg_catalog.=) $2 "
		"   FOR UPDATE NOWAIT",
		2, {TEXTOID, TEXTOID}
	};
	static TpPlan by_tp = {
		"SELECT p.tnt_id, p.third_party_id, p.attributes FROM tgt_profile.profiles p "
		" WHERE p.client OPERATOR(pg_catalog.=) $1 AND p.third_party_id OPERATOR(pg_catalog.=) $2 "
		"   FOR UPDATE NOWAIT",
		2, {TEXTOID, TEXTOID}
	};
	Datum		v[2];
	int			nest = NewGUCNestLevel();

	v[0] = CStringGetTextDatum(client);
	v[1] = CStringGetTextDatum(key);
	memset(out, 0, sizeof(*out));

	/*
	 * NOWAIT covers the row found, not the newer versions FOR UPDATE then
	 * locks (read committed): for those PostgreSQL waits for the updater.
	 * A lock timeout turns that wait into the same 55P03 too.  (An error
	 * unwinds the setting with the subtransaction.)
	 */
	(void) set_config_option("lock_timeout", "1", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	out->found = tp_exec(by_third_party ? &by_tp : &by_tnt, v, NULL, false, 0) == 1;
	AtEOXact_GUC(true, nest);
	if (out->found)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		bool		tp_null;
		Datum		tp = SPI_getbinval(tup, desc, 2, &tp_null);

		out->tnt_id = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
		out->third_party_id = tp_null ? NULL : TextDatumGetCString(tp);
		out->attributes = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 3, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Lock the pcId's profile and the third-party id's, without waiting, and
 * read them as they now are: still a merge (the pcId's profile without a
 * third-party id, the id on another profile)?
 */
static bool
lock_pair(const char *client, const char *pc_id, const char *tpid,
		  LockedRow *from, LockedRow *into)
{
	lock_profile(client, false, pc_id, from);
	lock_profile(client, true, tpid, into);
	return from->found && from->third_party_id == NULL &&
		into->found && strcmp(into->tnt_id, pc_id) != 0;
}

/*
 * Write the merge of the locked pair: the survivor gets the pcId's
 * attributes under its own (its own win), then the call's; the pcId's row
 * goes and the pcId becomes an alias of the survivor.  Audited.  false
 * when a concurrent merge made the pcId an alias first (of this profile or
 * another): the caller rolls back and starts over, and finds that alias.
 */
static bool
write_merge(const char *client, const char *pc_id, const char *tpid,
			const LockedRow *from, const LockedRow *into,
			const tp_attr *attrs, int nattrs, const char *actor)
{
	static TpPlan update = {
		"UPDATE tgt_profile.profiles SET attributes = $3, updated_at = $4, last_seen_at = $4 "
		" WHERE client OPERATOR(pg_catalog.=) $1 AND tnt_id OPERATOR(pg_catalog.=) $2",
		4, {TEXTOID, TEXTOID, JSONBOID, TIMESTAMPTZOID}, .client_arg = 1
	};
	static TpPlan alias = {
		"INSERT INTO tgt_profile.aliases (client, pc_id, tnt_id, created_at) VALUES ($1, $2, $3, $4) "
		"ON CONFLICT DO NOTHING",
		4, {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID}
	};
	Jsonb	   *base = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
														  JsonbPGetDatum(from->attributes),
														  JsonbPGetDatum(into->attributes)));
	Jsonb	   *merged;
	bool		changed;
	char		buf[TP_REASON_LEN];
	const char *why;
	Datum		v[4];
	StringInfoData detail;

	merged = tp_attrs_merge(base, attrs, nattrs, &changed, buf, sizeof(buf), &why);
	if (why)
		raise_reason(why);
	v[0] = CStringGetTextDatum(client);
	v[1] = CStringGetTextDatum(into->tnt_id);
	v[2] = JsonbPGetDatum(merged);
	v[3] = TimestampTzGetDatum(tp_now());
	if (tp_exec(&update, v, NULL, false, 0) != 1)
		elog(ERROR, "the locked profile of a merge was not updated");
	if (delete_profile_row(client, pc_id) != 1)
		elog(ERROR, "the locked profile of a merge was not deleted");
	v[1] = CStringGetTextDatum(pc_id);
	v[2] = CStringGetTextDatum(into->tnt_id);
	if (tp_exec(&alias, v, NULL, false, 0) != 1)
		return false;

	initStringInfo(&detail);
	appendStringInfoString(&detail, "{\"pcId\": ");
	escape_json(&detail, pc_id);
	appendStringInfoString(&detail, ", \"tntId\": ");
	escape_json(&detail, into->tnt_id);
	appendStringInfoString(&detail, ", \"thirdPartyId\": ");
	escape_json(&detail, tpid);
	appendStringInfoChar(&detail, '}');
	tp_audit(client, actor, "merge_profiles", detail.data);
	return true;
}

/* A row to wait for: a profile by its tnt_id or its third-party id. */
typedef struct RowKey
{
	const char *client;
	bool		by_third_party;
	const char *key;
} RowKey;

static bool
lock_row(void *arg)
{
	static TpPlan by_tnt = {
		"SELECT 1 FROM tgt_profile.profiles p WHERE p.client OPERATOR(pg_catalog.=) $1 "
		"   AND p.tnt_id OPERATOR(pg_catalog.=) $2 FOR UPDATE",
		2, {TEXTOID, TEXTOID}
	};
	static TpPlan by_tp = {
		"SELECT 1 FROM tgt_profile.profiles p WHERE p.client OPERATOR(pg_catalog.=) $1 "
		"   AND p.third_party_id OPERATOR(pg_catalog.=) $2 FOR UPDATE",
		2, {TEXTOID, TEXTOID}
	};
	RowKey	   *k = arg;
	Datum		v[2];

	v[0] = CStringGetTextDatum(k->client);
	v[1] = CStringGetTextDatum(k->key);
	(void) tp_exec(k->by_third_party ? &by_tp : &by_tnt, v, NULL, false, 0);
	return false;				/* let go of the lock at once */
}

/*
 * Wait, holding no lock of ours, until the transaction that holds the row
 * of (client, key) ends: lock it, in a subtransaction rolled back at once.
 */
static void
wait_for_row(const char *client, bool by_third_party, const char *key)
{
	RowKey		k = {client, by_third_party, key};
	bool		raised;

	(void) tp_in_subtransaction(lock_row, &k, ERRCODE_SUCCESSFUL_COMPLETION, &raised);
}

/* A merge's arguments, and its result. */
typedef struct MergeCall
{
	const char *client;
	const char *pc_id;
	const char *tpid;
	bool		exists;			/* the pcId's profile was read */
	const tp_attr *attrs;
	int			nattrs;
	const char *actor;
	const char *tnt_id;			/* set when merged */
} MergeCall;

/* The merge's writes; false when the rows changed since resolve_target. */
static bool
merge_attempt(void *arg)
{
	MergeCall  *m = arg;
	LockedRow	from;
	LockedRow	into;

	if (!m->exists && !insert_profile(m->client, m->pc_id, NULL, empty_attributes()))
		return false;			/* created meanwhile */
	if (!lock_pair(m->client, m->pc_id, m->tpid, &from, &into) ||
		!write_merge(m->client, m->pc_id, m->tpid, &from, &into, m->attrs, m->nattrs, m->actor))
		return false;
	m->tnt_id = into.tnt_id;
	return true;
}

/*
 * One round of a merge (resolve_target chose it); false when the rows
 * changed since they were read, or one was locked: start over.
 *
 * Inside a subtransaction: a pcId that is no profile yet is inserted as an
 * empty one first, so that a concurrent creation of it conflicts with this
 * merge on the primary key (and waits for it, or makes it start over)
 * instead of leaving a profile and an alias of one pcId; then both rows
 * are locked without waiting.  When one is locked by another transaction
 * the subtransaction is rolled back, so the merge holds neither, and waits
 * for each row in turn holding nothing: it never waits while it holds a
 * row, so no cycle of waits (a deadlock) can go through it.
 */
static bool
merge_round(const char *client, const char *pc_id, const char *tpid, bool exists,
			const tp_attr *attrs, int nattrs, const char *actor, const char **tnt_id)
{
	MergeCall	m = {client, pc_id, tpid, exists, attrs, nattrs, actor, NULL};
	bool		locked_out;

	/* rows are inserted: drop_client waits for us, or we find the client gone */
	tp_lock_client(client, TP_LOCK_ROWS);
	tp_require_client(client, NULL);

	if (tp_in_subtransaction(merge_attempt, &m, ERRCODE_LOCK_NOT_AVAILABLE, &locked_out))
	{
		*tnt_id = m.tnt_id;
		return true;
	}
	if (locked_out)
	{
		wait_for_row(client, false, pc_id);
		wait_for_row(client, true, tpid);
	}
	return false;
}

/* ---------- linking a third-party id ---------- */

typedef struct LinkCall
{
	const TpProfileRow *row;
	const char *client;
	const char *tpid;
	Jsonb	   *attrs;
} LinkCall;

/* The link's writes; false when the id or the row changed meanwhile. */
static bool
link_attempt(void *arg)
{
	LinkCall   *l = arg;
	char	   *claim = tp_new_tnt_id();
	LockedRow	row;

	/*
	 * Claim the id first, with an empty profile that holds it: a
	 * transaction that is giving the id to another profile is waited for
	 * here, while we hold no row (false when it did); nobody can take it
	 * from us after.
	 */
	if (!insert_profile(l->client, claim, l->tpid, empty_attributes()))
		return false;
	lock_profile(l->client, false, l->row->tnt_id, &row);
	if (!row.found || row.third_party_id != NULL)
		return false;
	(void) delete_profile_row(l->client, claim);
	return update_profile(l->row, l->client, l->tpid, l->attrs, true);
}

/*
 * Link the third-party id to the profile read, in a subtransaction that
 * never waits for a lock while it holds a row (see link_attempt), so that
 * no cycle of waits can go through it: a row held by another transaction
 * undoes the attempt, which waits for that row holding nothing.  false:
 * start over (the id may have gone to another profile: then a merge, or a
 * 23505 that says why).
 */
static bool
update_linking(const TpProfileRow *row, const char *client, const char *tpid, Jsonb *attrs)
{
	LinkCall	l = {row, client, tpid, attrs};
	bool		locked_out;

	if (tp_in_subtransaction(link_attempt, &l, ERRCODE_LOCK_NOT_AVAILABLE, &locked_out))
		return true;
	if (locked_out)
		wait_for_row(client, false, row->tnt_id);
	return false;
}

/*
 * After creating the profile of a pcId: was the pcId made an alias
 * meanwhile (a merge that committed after our read)?  Read as committed
 * now.  Under REPEATABLE READ or SERIALIZABLE the transaction's snapshot
 * cannot see the merged profile: a serialization failure.
 */
static bool
alias_made_meanwhile(const char *client, const char *pc_id)
{
	if (!tp_client_has_aliases(client, NULL) || tp_alias_target(client, pc_id, NULL) == NULL)
		return false;
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access due to a concurrent merge of pc_id \"%s\"", pc_id),
				 errhint("Retry the transaction.")));
	return true;
}

typedef struct CreateCall
{
	const char *client;
	const char *pc_id;
	const char *tpid;
	Jsonb	   *attrs;
} CreateCall;

static bool
create_attempt(void *arg)
{
	CreateCall *c = arg;

	return insert_profile(c->client, c->pc_id, c->tpid, c->attrs) &&
		!alias_made_meanwhile(c->client, c->pc_id);
}

/*
 * Create the profile of a pcId; false when it exists after all, or became
 * an alias meanwhile: start over (onto the merged profile).  In a
 * subtransaction, so that a row taken back is gone with it: a row of ours
 * that we deleted would still make a creator of the pcId wait for us, and
 * we may wait for that creator in the next round (a deadlock).
 */
static bool
create_pc_id_profile(const char *client, const char *pc_id, const char *tpid, Jsonb *attrs)
{
	CreateCall	c = {client, pc_id, tpid, attrs};
	bool		unused;

	return tp_in_subtransaction(create_attempt, &c, ERRCODE_SUCCESSFUL_COMPLETION, &unused);
}

/*
 * One round of an upsert; false when a concurrent change means starting
 * over.  *status and *tnt_id are set on success.
 */
static bool
upsert_round(const char *client, const char *pc_id, const char *tpid, bool merge,
			 const tp_attr *attrs, int nattrs, const char *actor,
			 const char **status, const char **tnt_id)
{
	Target		t;
	ProfileRow	row;
	bool		link;
	bool		changed;
	Jsonb	   *merged;
	char		buf[TP_REASON_LEN];
	const char *why;
	Snapshot	snap = read_snapshot();

	resolve_target(client, pc_id, tpid, merge, snap, &t);
	UnregisterSnapshot(snap);
	if (t.merge)
	{
		*status = "merged";
		return merge_round(client, pc_id, tpid, t.row.found, attrs, nattrs, actor, tnt_id);
	}
	row = t.row;
	link = t.link;
	merged = tp_attrs_merge(row.found ? row.row.attributes : NULL, attrs, nattrs,
							&changed, buf, sizeof(buf), &why);
	if (why)
		raise_reason(why);

	if (!row.found && nattrs > 0 && tp_attrs_only_removals(attrs, nattrs))
	{
		/* nothing to remove from a profile that does not exist: create none */
		*tnt_id = pc_id;
		*status = "unchanged";
		return true;
	}
	if (!row.found)
	{
		/*
		 * A new row: drop_client waits for us, or we find the client gone.
		 * An update needs no such lock: drop_client's DELETE meets the row.
		 */
		tp_lock_client(client, TP_LOCK_ROWS);
		tp_require_client(client, NULL);
		*tnt_id = pc_id ? pstrdup(pc_id) : tp_new_tnt_id();
		*status = "created";
		if (pc_id == NULL)		/* a new random tnt_id: no alias can have it */
			return insert_profile(client, *tnt_id, tpid, merged);
		return create_pc_id_profile(client, pc_id, tpid, merged);
	}

	*tnt_id = row.row.tnt_id;
	*status = (changed || link) ? "updated" : "unchanged";
	if (!changed && !link && !tp_last_seen_stale(client, row.row.last_seen_at, NULL))
		return true;			/* nothing to write, not even last_seen_at */
	if (link)
		return update_linking(&row.row, client, tpid, merged);
	return update_profile(&row.row, client, row.row.third_party_id, merged, changed);
}

/*
 * upsert_profile(client, attributes, pc_id, third_party_id, authorization,
 *				  merge) RETURNS TABLE (tnt_id text, status text)
 */
TP_SQL_FUNCTION(tgtp_upsert_profile)
{
	char	   *client = tp_text_arg(fcinfo, 0, "client");
	char	   *pc_id = opt_text(fcinfo, 2);
	char	   *tpid = opt_text(fcinfo, 3);
	/* (a 1.1 definition, before ALTER EXTENSION UPDATE, passes five) */
	bool		merge = PG_NARGS() > 5 && !PG_ARGISNULL(5) && PG_GETARG_BOOL(5);
	char	   *actor = NULL;
	tp_attr    *attrs;
	int			nattrs;
	char		buf[TP_REASON_LEN];
	const char *why;
	const char *status = NULL;
	const char *tnt_id = NULL;
	TpPrivState st;
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	int			round;

	tp_authorize_arg(fcinfo, client, 4);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("attributes must not be null"),
				 errhint("Pass '{}' to register a profile without attributes.")));
	require_key(pc_id, tpid);
	nattrs = tp_attrs_from_jsonb(PG_GETARG_JSONB_P(1), &attrs);
	if ((why = tp_attrs_check(attrs, nattrs, buf, sizeof(buf))) != NULL)
		raise_reason(why);
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "upsert_profile must return a composite");

	if (merge)
		actor = tp_caller_name();	/* the audit's, before we act as the owner */
	tp_begin(&st, true);
	for (round = 0; round < MAX_ROUNDS; round++)
	{
		CHECK_FOR_INTERRUPTS();
		if (upsert_round(client, pc_id, tpid, merge, attrs, nattrs, actor, &status, &tnt_id))
			break;
	}
	if (tnt_id)
		tnt_id = MemoryContextStrdup(st.outer, tnt_id);
	tp_end(&st);
	if (round == MAX_ROUNDS)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not upsert the profile: it kept changing concurrently"),
				 errhint("Retry the call.")));

	nulls[0] = (tnt_id == NULL);	/* removals only, by third-party id */
	values[0] = tnt_id ? CStringGetTextDatum(tnt_id) : (Datum) 0;
	values[1] = CStringGetTextDatum(status);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/* Locate a profile for get/delete: by pc_id, else by third_party_id. */
static void
find_profile(const char *client, const char *pc_id, const char *tpid, Snapshot snap,
			 ProfileRow *row)
{
	require_key(pc_id, tpid);
	if (pc_id)
		read_pc_id(client, pc_id, snap, row);
	else
		read_profile(client, true, tpid, snap, row);
	/* both given: they must name the same profile */
	if (row->found && pc_id && tpid &&
		(row->row.third_party_id == NULL || strcmp(row->row.third_party_id, tpid) != 0))
		row->found = false;
}

static void
append_timestamp(StringInfo buf, const char *key, TimestampTz t)
{
	char		ts[MAXDATELEN + 1];

	appendStringInfo(buf, ", \"%s\": \"%s\"", key,
					 JsonEncodeDateTime(ts, TimestampTzGetDatum(t), TIMESTAMPTZOID, NULL));
}

/*
 * The pcIds merged into the profile.  Only a profile with a third-party id
 * can have any: the others cost no read.
 */
static void
append_aliases(StringInfo buf, const char *client, const TpProfileRow *row)
{
	List	   *aliases = NIL;
	ListCell   *lc;

	if (row->third_party_id != NULL)
		aliases = tp_profile_aliases(client, row->tnt_id,
									 ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot());
	appendStringInfoString(buf, ", \"aliases\": [");
	foreach(lc, aliases)
	{
		if (lc != list_head(aliases))
			appendStringInfoString(buf, ", ");
		escape_json(buf, lfirst(lc));
	}
	appendStringInfoChar(buf, ']');
}

/*
 * get_profile(client, pc_id, third_party_id, authorization) RETURNS jsonb
 * Read-only: works on a hot standby.
 */
TP_SQL_FUNCTION(tgtp_get_profile)
{
	char	   *client = tp_text_arg(fcinfo, 0, "client");
	char	   *pc_id;
	char	   *tpid;
	ProfileRow	row;
	StringInfoData buf;

	tp_authorize_arg(fcinfo, client, 3);
	pc_id = opt_text(fcinfo, 1);
	tpid = opt_text(fcinfo, 2);
	find_profile(client, pc_id, tpid,
				 ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot(), &row);
	if (!row.found)
		PG_RETURN_NULL();

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"tntId\": ");
	escape_json(&buf, row.row.tnt_id);
	appendStringInfoString(&buf, ", \"thirdPartyId\": ");
	if (row.row.third_party_id)
		escape_json(&buf, row.row.third_party_id);
	else
		appendStringInfoString(&buf, "null");
	appendStringInfoString(&buf, ", \"profile\": ");
	(void) JsonbToCString(&buf, &row.row.attributes->root, VARSIZE(row.row.attributes));
	append_timestamp(&buf, "createdAt", row.row.created_at);
	append_timestamp(&buf, "updatedAt", row.row.updated_at);
	append_timestamp(&buf, "lastSeenAt", row.row.last_seen_at);
	append_aliases(&buf, client, &row.row);
	appendStringInfoChar(&buf, '}');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

/*
 * delete_profile(client, pc_id, third_party_id, authorization) RETURNS
 * boolean: the profile and the pcIds merged into it.
 */
TP_SQL_FUNCTION(tgtp_delete_profile)
{
	static TpPlan unlink = {
		"DELETE FROM tgt_profile.aliases "
		" WHERE client OPERATOR(pg_catalog.=) $1 AND tnt_id OPERATOR(pg_catalog.=) $2",
		2, {TEXTOID, TEXTOID}
	};
	char	   *client = tp_text_arg(fcinfo, 0, "client");
	char	   *pc_id;
	char	   *tpid;
	ProfileRow	row;
	TpPrivState st;
	Datum		v[2];
	bool		deleted = false;
	int			round;

	tp_authorize_arg(fcinfo, client, 3);
	pc_id = opt_text(fcinfo, 1);
	tpid = opt_text(fcinfo, 2);
	tp_begin(&st, true);
	for (round = 0; round < MAX_ROUNDS && !deleted; round++)
	{
		Snapshot	snap = read_snapshot();

		CHECK_FOR_INTERRUPTS();
		find_profile(client, pc_id, tpid, snap, &row);
		UnregisterSnapshot(snap);
		if (!row.found)
			break;
		/*
		 * Gone between the read and the delete (under read committed): a
		 * deletion, or a merge that made its pcId an alias; look again.
		 */
		deleted = delete_profile_row(client, row.row.tnt_id) > 0;
	}
	/* after the profile, so that a merge into it that we waited for is seen */
	/*
	 * Whatever the row read said: a link and a merge into the profile may
	 * have committed while our DELETE waited for them.
	 */
	if (deleted && tp_aliases_installed())
	{
		v[0] = CStringGetTextDatum(client);
		v[1] = CStringGetTextDatum(row.row.tnt_id);
		(void) tp_exec(&unlink, v, NULL, false, 0);
	}
	tp_end(&st);
	if (round == MAX_ROUNDS && !deleted)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not delete the profile: it kept changing concurrently"),
				 errhint("Retry the call.")));
	PG_RETURN_BOOL(deleted);
}

/*
 * The clients to purge and their profile_lifetime, as lists in the current
 * memory context.
 */
static int
purge_clients(const char *client, char ***clients, Interval **lifetimes)
{
	static TpPlan plan = {
		"SELECT client, profile_lifetime FROM tgt_profile.settings "
		" WHERE $1::text IS NULL OR client OPERATOR(pg_catalog.=) $1 ORDER BY client",
		1, {TEXTOID}
	};
	Datum		v = client ? CStringGetTextDatum(client) : (Datum) 0;
	char		nulls[1] = {client ? ' ' : 'n'};
	int			n = tp_exec(&plan, &v, nulls, true, 0);

	*clients = palloc(sizeof(char *) * Max(n, 1));
	*lifetimes = palloc(sizeof(Interval) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;

		(*clients)[i] = TextDatumGetCString(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		(*lifetimes)[i] = *DatumGetIntervalP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
	return n;
}

/*
 * Delete one client's profiles last seen before cutoff, and the pcIds
 * merged into them, in one statement; audited.
 */
static int64
purge_client(const char *client, TimestampTz cutoff, const char *actor)
{
	/* before ALTER EXTENSION UPDATE to 1.2 (no aliases) */
	static TpPlan plan_1_1 = {
		"WITH gone AS ("
		"  DELETE FROM tgt_profile.profiles "
		"   WHERE client OPERATOR(pg_catalog.=) $1 AND last_seen_at OPERATOR(pg_catalog.<) $2 "
		"  RETURNING 1) "
		"SELECT pg_catalog.count(*), 0::bigint FROM gone",
		2, {TEXTOID, TIMESTAMPTZOID}, .client_arg = 1
	};
	static TpPlan plan = {
		"WITH gone AS ("
		"  DELETE FROM tgt_profile.profiles "
		"   WHERE client OPERATOR(pg_catalog.=) $1 AND last_seen_at OPERATOR(pg_catalog.<) $2 "
		"  RETURNING tnt_id, third_party_id), "
		"unlinked AS ("
		"  DELETE FROM tgt_profile.aliases a "
		"   WHERE a.client OPERATOR(pg_catalog.=) $1 "
		"     AND a.tnt_id OPERATOR(pg_catalog.=) ANY (SELECT g.tnt_id FROM gone g "
		"                                               WHERE g.third_party_id IS NOT NULL) "
		"  RETURNING 1) "
		"SELECT (SELECT pg_catalog.count(*) FROM gone), (SELECT pg_catalog.count(*) FROM unlinked)",
		2, {TEXTOID, TIMESTAMPTZOID}, .client_arg = 1
	};
	Datum		v[2];
	bool		isnull;
	int64		n;
	int64		aliases;

	v[0] = CStringGetTextDatum(client);
	v[1] = TimestampTzGetDatum(cutoff);
	(void) tp_exec(tp_aliases_installed() ? &plan : &plan_1_1, v, NULL, false, 0);
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	aliases = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (n > 0)
		tp_audit(client, actor, "purge_expired",
				 aliases > 0
				 ? psprintf("{\"profiles\": " INT64_FORMAT ", \"aliases\": " INT64_FORMAT "}", n, aliases)
				 : psprintf("{\"profiles\": " INT64_FORMAT "}", n));
	return n;
}

/*
 * purge_expired(client DEFAULT NULL) RETURNS bigint: delete profiles not
 * seen for longer than their client's profile_lifetime.  Audited per client.
 * Each client's cutoff is computed on its own, and a lifetime outside the
 * bounds (a row written while the settings_guard trigger was disabled) is
 * skipped with a WARNING: one client's settings never fail the others'
 * purge.
 */
TP_SQL_FUNCTION(tgtp_purge_expired)
{
	char	   *client = opt_text(fcinfo, 0);
	char	   *actor = tp_caller_name();
	TpPrivState st;
	char	  **clients;
	Interval   *lifetimes;
	int64		total = 0;
	int			n;

	tp_require_admin("purge expired profiles");
	if (client)
	{
		tp_check_client_code(client);
		tp_require_client(client, NULL);
	}
	tp_begin(&st, true);
	n = purge_clients(client, &clients, &lifetimes);
	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (!tp_duration_within(&lifetimes[i], TP_MIN_LIFETIME_USECS, true))
		{
			ereport(WARNING,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("profiles of client \"%s\" were not purged: its profile_lifetime is out of bounds",
							clients[i]),
					 errdetail("profile_lifetime is %s.",
							   DatumGetCString(DirectFunctionCall1(interval_out,
																   IntervalPGetDatum(&lifetimes[i])))),
					 errhint("Set it between 1 hour and " TP_MAX_DURATION_TEXT ".")));
			continue;
		}
		total += purge_client(clients[i],
							  DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
																	  TimestampTzGetDatum(tp_now()),
																	  IntervalPGetDatum(&lifetimes[i]))),
							  actor);
	}
	tp_end(&st);
	PG_RETURN_INT64(total);
}
