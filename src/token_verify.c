/*-------------------------------------------------------------------------
 *
 * token_verify.c
 *	  Is this token valid for this client now?  verify_token, and the check
 *	  authorize.c makes, with a per-backend cache that answers only what a
 *	  fresh read would.
 *
 * A token is found by (client, SHA-256) in token_store's unique index,
 * read as committed at the moment of the call (store.c's fresh snapshot),
 * whatever the caller's isolation level or imported snapshot; its window
 * is compared with the clock, not the transaction's start.  No SPI, no
 * write, so it works on a hot standby.
 *
 * The cache follows PostgreSQL's catalog-cache protocol.  Every write to
 * token_store fires a statement trigger (token_store_changed) that
 * invalidates token_store's relcache entry; the invalidation reaches every
 * backend, and hot standbys through the commit record.  Each call first
 * accepts pending invalidations (any relcache invalidation empties the
 * cache); a miss then reads under a snapshot taken after that, and the row
 * is kept only when no invalidation arrived during the read.  A committed
 * revocation's invalidation is sent after the commit became visible, so a
 * read that missed the revocation is always followed by the invalidation
 * that discards it, before the next call answers.
 *
 * The cache is used only while the trigger it relies on is installed and
 * fires always (a database still at an older schema version, a disabled
 * trigger or one that session_replication_role would skip means every call
 * reads the table).  Only hashes are cached; the one-entry memo of the last
 * token text is zeroed at the end of every transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* Tokens longer than this are refused before anything else is done. */
#define MAX_PRESENTED_LEN 1024

/* Entries kept at most; the cache is emptied when it is full. */
#define TOKEN_CACHE_MAX 4096

/* The trigger the cache relies on (tgt_profile--1.1 and later). */
#define INVALIDATION_TRIGGER "token_store_changed"

typedef struct TokenCacheKey
{
	char		client[65];
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
} TokenCacheKey;

/* What the index lookup found (or that it found nothing). */
typedef struct TokenCacheEntry
{
	TokenCacheKey key;
	bool		found;
	TimestampTz expires_at;
	bool		revoked;
	TimestampTz revoked_at;
} TokenCacheEntry;

static HTAB *token_cache = NULL;
static bool token_cache_stale = true;	/* an invalidation arrived */
static bool token_cache_usable = false; /* the trigger is installed */
static bool callbacks_registered = false;

/*
 * The last token verified, by its text, so that a statement checking one
 * token many times hashes it once.  Emptied with the cache and at the end
 * of every transaction.
 */
static struct
{
	bool		used;
	char		client[65];
	char		token[TP_TOKEN_TEXT_LEN];
	TokenCacheEntry row;
}			memo;

static void
memo_forget(void)
{
	if (memo.used)
		explicit_bzero(&memo, sizeof(memo));
}

static void
memo_forget_at_xact_end(XactEvent event, void *arg)
{
	memo_forget();
}

static void
token_cache_invalidate(Datum arg, Oid relid)
{
	/* any relation: cheaper than looking up which one is ours */
	token_cache_stale = true;
}

/*
 * Does token_store carry our invalidation trigger, enabled ALWAYS, for
 * every kind of write?  Read from the relcache entry, so a change of the
 * trigger (ALTER EXTENSION UPDATE, DISABLE TRIGGER) is itself an
 * invalidation that brings us back here.
 */
static bool
invalidation_installed(void)
{
	Relation	rel = tp_open_table("token_store", AccessShareLock);
	TriggerDesc *td = rel->trigdesc;
	bool		found = false;

	for (int i = 0; td != NULL && i < td->numtriggers && !found; i++)
	{
		Trigger    *t = &td->triggers[i];
		char	   *fname;

		if (strcmp(t->tgname, INVALIDATION_TRIGGER) != 0 ||
			t->tgenabled != TRIGGER_FIRES_ALWAYS ||
			TRIGGER_FOR_ROW(t->tgtype) ||
			!TRIGGER_FOR_INSERT(t->tgtype) || !TRIGGER_FOR_UPDATE(t->tgtype) ||
			!TRIGGER_FOR_DELETE(t->tgtype) || !TRIGGER_FOR_TRUNCATE(t->tgtype))
			continue;
		fname = get_func_name(t->tgfoid);
		found = fname != NULL && strcmp(fname, INVALIDATION_TRIGGER) == 0 &&
			get_func_namespace(t->tgfoid) == RelationGetNamespace(rel);
	}
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Accept pending invalidations; after any, start an empty cache and decide
 * again whether it may be used.  Checking the trigger opens a relation,
 * which may accept further invalidations: repeat until none arrived.
 */
static void
token_cache_prepare(void)
{
	if (!callbacks_registered)
	{
		CacheRegisterRelcacheCallback(token_cache_invalidate, (Datum) 0);
		RegisterXactCallback(memo_forget_at_xact_end, NULL);
		callbacks_registered = true;
	}
	AcceptInvalidationMessages();
	if (token_cache != NULL && hash_get_num_entries(token_cache) >= TOKEN_CACHE_MAX)
		token_cache_stale = true;
	while (token_cache_stale)
	{
		token_cache_stale = false;
		memo_forget();
		if (token_cache != NULL)
		{
			hash_destroy(token_cache);
			token_cache = NULL;
		}
		token_cache_usable = invalidation_installed();
	}
	if (token_cache == NULL && token_cache_usable)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(TokenCacheKey);
		ctl.entrysize = sizeof(TokenCacheEntry);
		ctl.hcxt = TopMemoryContext;
		token_cache = hash_create("tgt_profile token cache", 256, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
}

/* The token row by (client, hash), read as committed now. */
static void
read_token(const TokenCacheKey *key, TokenCacheEntry *out)
{
	static const AttrNumber cols[3] = {3, 7, 8};	/* hash, expires_at, revoked_at */
	Datum		keys[2];
	Datum		v[3];
	bool		n[3];
	bytea	   *key_hash = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);

	SET_VARSIZE(key_hash, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	memcpy(VARDATA(key_hash), key->digest, PG_SHA256_DIGEST_LENGTH);
	keys[0] = CStringGetTextDatum(key->client);
	keys[1] = PointerGetDatum(key_hash);
	memset(out, 0, sizeof(*out));
	out->key = *key;
	/* the index found it by hash; compare once more in constant time */
	out->found = tp_lookup("token_store", "token_store_hash_key", 2, keys, 3, cols, v, n) &&
		VARSIZE_ANY_EXHDR(DatumGetPointer(v[0])) == PG_SHA256_DIGEST_LENGTH &&
		timingsafe_bcmp(VARDATA_ANY(DatumGetPointer(v[0])), key->digest,
						PG_SHA256_DIGEST_LENGTH) == 0;
	if (out->found)
	{
		out->expires_at = DatumGetTimestampTz(v[1]);
		out->revoked = !n[2];
		out->revoked_at = n[2] ? 0 : DatumGetTimestampTz(v[2]);
	}
}

/* The token row, from the cache when it may answer, else from the table. */
static void
lookup_token(const char *client, const char *token, size_t len, TokenCacheEntry *out)
{
	TokenCacheKey key;
	TokenCacheEntry *e;
	bool		hit;

	memset(&key, 0, sizeof(key));
	strlcpy(key.client, client, sizeof(key.client));
	tp_token_hash(token, len, key.digest);
	if (token_cache != NULL)
	{
		e = (TokenCacheEntry *) hash_search(token_cache, &key, HASH_FIND, NULL);
		if (e != NULL)
		{
			*out = *e;
			return;
		}
	}
	read_token(&key, out);
	/* keep nothing read while an invalidation arrived */
	if (token_cache != NULL && !token_cache_stale)
	{
		e = (TokenCacheEntry *) hash_search(token_cache, &key, HASH_ENTER, &hit);
		*e = *out;
	}
}

static bool
memo_matches(const char *client, const char *token)
{
	return memo.used && strcmp(memo.client, client) == 0 &&
		timingsafe_bcmp(memo.token, token, TP_TOKEN_TEXT_LEN) == 0;
}

static void
memo_store(const char *client, const char *token, const TokenCacheEntry *row)
{
	memo.used = true;
	strlcpy(memo.client, client, sizeof(memo.client));
	memcpy(memo.token, token, TP_TOKEN_TEXT_LEN);
	memo.row = *row;
}

/*
 * Is this token valid for this client now?  Never raises for any input: a
 * malformed token is refused without a lookup, a well-formed one by the
 * stored hash and its validity window, judged by the clock.
 */
bool
tp_token_is_valid(const char *client, const char *token, size_t len)
{
	TokenCacheEntry row;
	TimestampTz now;

	if (len != TP_TOKEN_TEXT_LEN || strlen(client) >= sizeof(memo.client))
		return false;
	token_cache_prepare();
	/* the memo holds only well-formed tokens */
	if (token_cache_usable && memo_matches(client, token))
		row = memo.row;
	else
	{
		if (!tp_token_well_formed(token, len))
			return false;
		lookup_token(client, token, len, &row);
		if (token_cache_usable && !token_cache_stale)
			memo_store(client, token, &row);
	}
	now = tp_clock();
	return row.found && row.expires_at > now && (!row.revoked || row.revoked_at > now);
}

/*
 * AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON token_store FOR EACH
 * STATEMENT: tell every backend's token cache (see above).
 */
TP_SQL_FUNCTION(tgtp_token_store_changed)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "token_store_changed must be called as a trigger");
	CacheInvalidateRelcache(td->tg_relation);
	PG_RETURN_POINTER(NULL);
}

/* verify_token(client, token) RETURNS boolean; false, never an error. */
TP_SQL_FUNCTION(tgtp_verify_token)
{
	text	   *client;
	text	   *token;
	char	   *client_str;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);
	client = PG_GETARG_TEXT_PP(0);
	token = PG_GETARG_TEXT_PP(1);
	if (VARSIZE_ANY_EXHDR(client) > 64 || VARSIZE_ANY_EXHDR(token) > MAX_PRESENTED_LEN)
		PG_RETURN_BOOL(false);
	client_str = text_to_cstring(client);
	PG_RETURN_BOOL(tp_token_is_valid(client_str, VARDATA_ANY(token),
									 VARSIZE_ANY_EXHDR(token)));
}
