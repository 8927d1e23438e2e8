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
 * The cache is a fresh cache (fresh_cache.c): PostgreSQL's catalog-cache
 * protocol, driven by the token_store_changed trigger, and used only while
 * that trigger is installed and fires always.  Only hashes are cached; the
 * one-entry memo of the last token text is zeroed at the end of every
 * transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"

#include "fresh_cache.h"
#include "access/xact.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "utils/builtins.h"

/* Tokens longer than this are refused before anything else is done. */
#define MAX_PRESENTED_LEN 1024

/* Entries kept at most; the cache is emptied when it is full. */
#define TOKEN_CACHE_MAX 4096

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

static void memo_forget(void);

static TpFreshCache token_cache = {
	.relname = "token_store",
	.trigger = "token_store_changed",
	.keysize = sizeof(TokenCacheKey),
	.entrysize = sizeof(TokenCacheEntry),
	.max_entries = TOKEN_CACHE_MAX,
	.on_reset = memo_forget,
};

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

/* Register the end-of-transaction hook once, then prepare the cache. */
static bool
token_cache_prepare(void)
{
	static bool registered = false;

	if (!registered)
	{
		RegisterXactCallback(memo_forget_at_xact_end, NULL);
		registered = true;
	}
	return tp_fresh_cache_prepare(&token_cache);
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

/*
 * The token row, from the cache when it may answer, else from the table.
 * False for a malformed token.  The cache holds only well-formed tokens,
 * so a hit needs no format check (the common case: one token, many calls).
 */
static bool
lookup_token(const char *client, const char *token, size_t len, TokenCacheEntry *out)
{
	TokenCacheKey key;
	TokenCacheEntry *e;

	memset(&key, 0, sizeof(key));
	strlcpy(key.client, client, sizeof(key.client));
	tp_token_hash(token, len, key.digest);
	e = (TokenCacheEntry *) tp_fresh_cache_find(&token_cache, &key);
	if (e != NULL)
	{
		*out = *e;
		return true;
	}
	if (!tp_token_well_formed(token, len))
		return false;
	read_token(&key, out);
	tp_fresh_cache_keep(&token_cache, out);
	return true;
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
	bool		usable;

	if (len != TP_TOKEN_TEXT_LEN || strlen(client) >= sizeof(memo.client))
		return false;
	usable = token_cache_prepare();
	/* the memo holds only well-formed tokens */
	if (usable && memo_matches(client, token))
		row = memo.row;
	else
	{
		if (!lookup_token(client, token, len, &row))
			return false;
		if (tp_fresh_cache_may_keep(&token_cache, &row.key))
			memo_store(client, token, &row);
	}
	now = tp_clock();
	return row.found && row.expires_at > now && (!row.revoked || row.revoked_at > now);
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
