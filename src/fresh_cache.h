/*-------------------------------------------------------------------------
 *
 * fresh_cache.h
 *	  Per-backend caches of rows of our tables that answer only what a
 *	  fresh read would (DESIGN.md "Authorization is read fresh"), kept by
 *	  PostgreSQL's catalog-cache protocol.  See fresh_cache.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TGT_PROFILE_FRESH_CACHE_H
#define TGT_PROFILE_FRESH_CACHE_H

#include "utils/hsearch.h"

typedef struct TpFreshCache
{
	/* set by the owner */
	const char *relname;		/* the table whose rows are cached */
	const char *trigger;		/* its invalidating trigger, and the
								 * trigger's function, of the same name */
	Size		keysize;		/* an entry starts with its key, and the key
								 * with the client's code (char[]) */
	Size		entrysize;
	long		max_entries;	/* emptied when full */
	void		(*on_reset) (void); /* forget what was derived from it */

	/* kept by fresh_cache.c */
	HTAB	   *htab;			/* NULL while the cache may not be used
								 * (its trigger is missing or not ALWAYS) */
	bool		stale;			/* an invalidation arrived */
} TpFreshCache;

extern bool tp_fresh_cache_prepare(TpFreshCache *cache);
extern void *tp_fresh_cache_find(TpFreshCache *cache, const void *key);
extern bool tp_fresh_cache_intact(TpFreshCache *cache);
extern bool tp_fresh_cache_may_keep(TpFreshCache *cache, const void *key);
extern void tp_fresh_cache_keep(TpFreshCache *cache, const void *entry);

#endif							/* TGT_PROFILE_FRESH_CACHE_H */
