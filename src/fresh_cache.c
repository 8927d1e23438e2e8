/*-------------------------------------------------------------------------
 *
 * fresh_cache.c
 *	  Per-backend caches of rows of our tables (tokens, settings) that
 *	  answer only what a fresh read would.
 *
 * They follow PostgreSQL's catalog-cache protocol.  Every write to a cached
 * table fires a statement trigger (token_store_changed, settings_changed)
 * that invalidates the table's relcache entry; the invalidation reaches
 * every backend, and hot standbys through the commit record.  Each use
 * first accepts pending invalidations (any relcache invalidation empties
 * every cache); a miss then reads under a snapshot taken after that (the
 * storage layer's fresh snapshot), and the row is kept only when no
 * invalidation arrived during the read.  A committed change's invalidation
 * is sent after the commit became visible, so a read that missed the
 * change is always followed by the invalidation that discards it, before
 * the next use answers.
 *
 * A cache is used only while the trigger it relies on is installed and
 * fires always: a database at an older schema version, a disabled trigger
 * or one that session_replication_role would skip means every call reads
 * the table.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"

#include "fresh_cache.h"
#include "access/table.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* Every cache in use, for the one relcache callback that marks them stale. */
#define MAX_CACHES 4

static TpFreshCache *caches[MAX_CACHES];
static int	ncaches = 0;

static void
mark_stale(Datum arg, Oid relid)
{
	/* any relation: cheaper than looking up which ones are ours */
	for (int i = 0; i < ncaches; i++)
		caches[i]->stale = true;
}

static void
register_cache(TpFreshCache *cache)
{
	for (int i = 0; i < ncaches; i++)
		if (caches[i] == cache)
			return;
	if (ncaches == 0)
		CacheRegisterRelcacheCallback(mark_stale, (Datum) 0);
	if (ncaches == MAX_CACHES)
		elog(ERROR, "too many tgt_profile caches");
	caches[ncaches++] = cache;
	cache->stale = true;
}

/*
 * Does the table carry the named trigger, calling our function of the same
 * name, enabled ALWAYS, for every kind of write?  Read from the relcache
 * entry, so a change of the trigger (ALTER EXTENSION UPDATE, DISABLE
 * TRIGGER) is itself an invalidation that brings us back here.
 */
static bool
invalidation_installed(const char *relname, const char *trigger)
{
	Relation	rel = tp_open_table(relname, AccessShareLock);
	TriggerDesc *td = rel->trigdesc;
	bool		found = false;

	for (int i = 0; td != NULL && i < td->numtriggers && !found; i++)
	{
		Trigger    *t = &td->triggers[i];
		char	   *fname;

		if (strcmp(t->tgname, trigger) != 0 ||
			t->tgenabled != TRIGGER_FIRES_ALWAYS ||
			TRIGGER_FOR_ROW(t->tgtype) ||
			!TRIGGER_FOR_INSERT(t->tgtype) || !TRIGGER_FOR_UPDATE(t->tgtype) ||
			!TRIGGER_FOR_DELETE(t->tgtype) || !TRIGGER_FOR_TRUNCATE(t->tgtype))
			continue;
		fname = get_func_name(t->tgfoid);
		found = fname != NULL && strcmp(fname, trigger) == 0 &&
			get_func_namespace(t->tgfoid) == RelationGetNamespace(rel);
	}
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Accept pending invalidations; after any, start an empty cache and decide
 * again whether it may be used.  Checking the trigger opens a relation,
 * which may accept further invalidations: repeat until none arrived.
 * Returns whether the cache may answer.
 */
bool
tp_fresh_cache_prepare(TpFreshCache *cache)
{
	bool		usable;
	HASHCTL		ctl;

	register_cache(cache);
	AcceptInvalidationMessages();
	if (cache->htab != NULL && hash_get_num_entries(cache->htab) >= cache->max_entries)
		cache->stale = true;
	if (!cache->stale)
		return cache->htab != NULL;
	if (cache->htab != NULL)
	{
		hash_destroy(cache->htab);
		cache->htab = NULL;
	}
	do
	{
		cache->stale = false;
		if (cache->on_reset)
			cache->on_reset();
		usable = invalidation_installed(cache->relname, cache->trigger);
	} while (cache->stale);
	if (!usable)
		return false;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = cache->keysize;
	ctl.entrysize = cache->entrysize;
	ctl.hcxt = TopMemoryContext;
	cache->htab = hash_create(cache->trigger, 256, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	return true;
}

/* The entry kept for key, or NULL. */
void *
tp_fresh_cache_find(TpFreshCache *cache, const void *key)
{
	if (cache->htab == NULL)
		return NULL;
	return hash_search(cache->htab, key, HASH_FIND, NULL);
}

/*
 * Whether what was read since tp_fresh_cache_prepare may be kept: the cache
 * is usable and no invalidation arrived meanwhile.
 */
bool
tp_fresh_cache_intact(TpFreshCache *cache)
{
	return cache->htab != NULL && !cache->stale;
}

/*
 * May a row read since tp_fresh_cache_prepare be kept?  Not when it may be
 * stale, nor when it was read from another node (Citus): a change there
 * invalidates the caches of that node only.  key starts with the client's
 * code.
 */
bool
tp_fresh_cache_may_keep(TpFreshCache *cache, const void *key)
{
	return tp_fresh_cache_intact(cache) &&
		tp_client_rows_here(cache->relname, (const char *) key);
}

/* Keep a row read since tp_fresh_cache_prepare, when it may be kept. */
void
tp_fresh_cache_keep(TpFreshCache *cache, const void *entry)
{
	bool		found;
	void	   *e;

	if (!tp_fresh_cache_may_keep(cache, entry))
		return;
	e = hash_search(cache->htab, entry, HASH_ENTER, &found);
	memcpy(e, entry, cache->entrysize);
}

/*
 * AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ... FOR EACH STATEMENT on a
 * cached table: tell every backend's caches (see above).  Called as
 * token_store_changed and settings_changed.
 */
static Datum
table_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "%s must be called as a trigger", get_func_name(fcinfo->flinfo->fn_oid));
	CacheInvalidateRelcache(td->tg_relation);
	PG_RETURN_POINTER(NULL);
}

TP_SQL_FUNCTION(tgtp_token_store_changed)
{
	return table_changed(fcinfo);
}

TP_SQL_FUNCTION(tgtp_settings_changed)
{
	return table_changed(fcinfo);
}
