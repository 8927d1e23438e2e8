/*-------------------------------------------------------------------------
 *
 * tokens.c
 *	  The token lifecycle: generate (and so rotate), revoke, verify.
 *
 * A client has at most one active token.  generate_token revokes every
 * token of the client that is still valid, at once or after a grace period,
 * and inserts the new one; the client's settings row is locked first, so
 * two concurrent regenerations leave exactly one valid token.
 *
 * verify_token is a read-only index lookup by (client, SHA-256): no SPI, no
 * write, so it works on a hot standby.  Its answers are cached per backend
 * until the next change of token_store anywhere (an invalidation, see the
 * token cache below), so a regenerated token fails on the next call of every
 * session.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "commands/trigger.h"
#include "utils/snapmgr.h"
#include "storage/proc.h"

PG_FUNCTION_INFO_V1(tgtp_generate_token);
PG_FUNCTION_INFO_V1(tgtp_revoke_tokens);
PG_FUNCTION_INFO_V1(tgtp_verify_token);
PG_FUNCTION_INFO_V1(tgtp_token_store_changed);

/* Tokens longer than this are refused before anything else is done. */
#define MAX_PRESENTED_LEN 1024

static TimestampTz
plus(TimestampTz t, const Interval *iv)
{
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												   TimestampTzGetDatum(t),
												   IntervalPGetDatum(iv)));
}

static char *
interval_text(const Interval *iv)
{
	return DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(iv)));
}

static int
interval_sign(const Interval *iv)
{
	Interval	zero = {0};

	return DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(iv),
											 IntervalPGetDatum(&zero)));
}

/*
 * Durations use calendar arithmetic ('1 year' is a year): expires_in must
 * be positive and end no later than now + max_token_ttl; grace lies in
 * [0, max_token_ttl].
 */
static void
check_durations(const TpSettings *s, const Interval *expires_in, const Interval *grace)
{
	TimestampTz now = tp_now();
	TimestampTz limit = plus(now, &s->max_token_ttl);
	TimestampTz end;
	TimestampTz grace_end;

	/*
	 * A duration whose fields reach beyond a century is out of bounds
	 * (max_token_ttl is at most 10 years): say so before the calendar
	 * arithmetic below could overflow (22008).  Its sign, as PostgreSQL
	 * compares intervals, picks the message.
	 */
	end = tp_interval_sane(expires_in) ? plus(now, expires_in)
		: (interval_sign(expires_in) > 0 ? DT_NOEND : DT_NOBEGIN);
	grace_end = tp_interval_sane(grace) ? plus(now, grace) : DT_NOEND;

	if (end <= now)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_in must be positive"),
				 errdetail("expires_in was %s.", interval_text(expires_in))));
	if (end > limit)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_in exceeds the client's max_token_ttl of %s",
						interval_text(&s->max_token_ttl)),
				 errdetail("expires_in was %s.", interval_text(expires_in)),
				 errhint("Ask a member of tgt_profile_admin to raise settings.max_token_ttl, or ask for a shorter lifetime.")));
	if (grace_end < now || grace_end > limit)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("grace must lie between 0 and the client's max_token_ttl of %s",
						interval_text(&s->max_token_ttl)),
				 errdetail("grace was %s.", interval_text(grace))));
}

/* Lock the client's settings row: serialises regenerations of one client. */
static void
lock_client(const char *client, TpSettings *s)
{
	static TpPlan plan = {
		"SELECT 1 FROM tgt_profile.settings WHERE client OPERATOR(pg_catalog.=) $1 FOR UPDATE",
		1, {TEXTOID}
	};
	Datum		v = CStringGetTextDatum(client);

	if (tp_exec(&plan, &v, NULL, false, 1) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("client \"%s\" does not exist", client)));
	/* re-read under the lock: a concurrent UPDATE may have committed */
	(void) tp_get_settings(client, s);
}

/*
 * Revoke every still-valid token of the client at revoke_at (now, or the end
 * of a grace period), never extending one past its own expiry or an earlier
 * revocation.  A token whose revocation would not move earlier is left
 * alone, so tokens already in grace are not rewritten by every rotation.
 * Returns how many were revoked.
 */
static int
revoke_valid(const char *client, TimestampTz revoke_at)
{
	static TpPlan plan = {
		"UPDATE tgt_profile.token_store "
		"   SET revoked_at = LEAST(COALESCE(revoked_at, 'infinity'::timestamptz), $3, expires_at) "
		" WHERE client OPERATOR(pg_catalog.=) $1 "
		"   AND expires_at OPERATOR(pg_catalog.>) $2 "
		"   AND (revoked_at IS NULL OR revoked_at OPERATOR(pg_catalog.>) LEAST($3, expires_at))",
		3, {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID}
	};
	Datum		v[3];

	v[0] = CStringGetTextDatum(client);
	v[1] = TimestampTzGetDatum(tp_now());
	v[2] = TimestampTzGetDatum(revoke_at);
	return tp_exec(&plan, v, NULL, false, 0);
}

static int64
insert_token(const char *client, const char *token, TimestampTz expires_at,
			 const char *actor)
{
	static TpPlan plan = {
		"INSERT INTO tgt_profile.token_store "
		"  (client, token_hash, hint, created_at, created_by, expires_at) "
		"VALUES ($1, $2, $3, $4, $5, $6) RETURNING token_id",
		6, {TEXTOID, BYTEAOID, TEXTOID, TIMESTAMPTZOID, TEXTOID, TIMESTAMPTZOID}
	};
	bytea	   *hash = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	Datum		v[6];
	bool		isnull;

	SET_VARSIZE(hash, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	tp_token_hash(token, TP_TOKEN_TEXT_LEN, (uint8 *) VARDATA(hash));
	v[0] = CStringGetTextDatum(client);
	v[1] = PointerGetDatum(hash);
	v[2] = PointerGetDatum(cstring_to_text_with_len(token, TP_TOKEN_HINT_LEN));
	v[3] = TimestampTzGetDatum(tp_now());
	v[4] = CStringGetTextDatum(actor);
	v[5] = TimestampTzGetDatum(expires_at);
	if (tp_exec(&plan, v, NULL, false, 1) != 1)
		elog(ERROR, "token insert returned no row");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * generate_token(client, expires_in DEFAULT NULL, grace DEFAULT '0')
 *		RETURNS TABLE (token text, token_id bigint, expires_at timestamptz)
 */
Datum
tgtp_generate_token(PG_FUNCTION_ARGS)
{
	char	   *client = tp_text_arg(fcinfo, 0, "client");
	char	   *actor = tp_caller_name();
	TpSettings	s;
	Interval	expires_in;
	Interval	grace;
	TupleDesc	desc;
	TpPrivState st;
	char		token[TP_TOKEN_TEXT_LEN + 1];
	TimestampTz expires_at;
	int64		token_id;
	int			revoked;
	StringInfoData detail;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	HeapTuple	result;

	tp_check_client_code(client);
	tp_require_level(client, TP_LEVEL_APPROVER, "generate tokens");
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "generate_token must return a composite");
	desc = BlessTupleDesc(desc);

	tp_begin(&st, true);
	lock_client(client, &s);
	expires_in = PG_ARGISNULL(1) ? s.token_ttl : *PG_GETARG_INTERVAL_P(1);
	memset(&grace, 0, sizeof(grace));
	if (!PG_ARGISNULL(2))
		grace = *PG_GETARG_INTERVAL_P(2);
	check_durations(&s, &expires_in, &grace);

	expires_at = plus(tp_now(), &expires_in);
	revoked = revoke_valid(client, plus(tp_now(), &grace));
	tp_token_new(token);
	token_id = insert_token(client, token, expires_at, actor);

	initStringInfo(&detail);
	appendStringInfo(&detail, "{\"token_id\": " INT64_FORMAT ", \"expires_at\": ", token_id);
	escape_json(&detail, timestamptz_to_str(expires_at));
	appendStringInfo(&detail, ", \"grace\": ");
	escape_json(&detail, interval_text(&grace));
	appendStringInfo(&detail, ", \"revoked\": %d}", revoked);
	tp_audit(client, actor, "generate_token", detail.data);
	tp_end(&st);

	values[0] = PointerGetDatum(cstring_to_text_with_len(token, TP_TOKEN_TEXT_LEN));
	values[1] = Int64GetDatum(token_id);
	values[2] = TimestampTzGetDatum(expires_at);
	explicit_bzero(token, sizeof(token));
	result = heap_form_tuple(desc, values, nulls);
	/* the text copy lives on in the result; scrub the one we made here */
	explicit_bzero(VARDATA(DatumGetPointer(values[0])), TP_TOKEN_TEXT_LEN);
	PG_RETURN_DATUM(HeapTupleGetDatum(result));
}

/* revoke_tokens(client) RETURNS integer: how many valid tokens it revoked. */
Datum
tgtp_revoke_tokens(PG_FUNCTION_ARGS)
{
	char	   *client = tp_text_arg(fcinfo, 0, "client");
	char	   *actor = tp_caller_name();
	TpPrivState st;
	TpSettings	s;
	int			revoked;
	char		detail[64];

	tp_check_client_code(client);
	tp_require_level(client, TP_LEVEL_APPROVER, "revoke tokens");
	tp_begin(&st, true);
	lock_client(client, &s);
	revoked = revoke_valid(client, tp_now());
	snprintf(detail, sizeof(detail), "{\"revoked\": %d}", revoked);
	tp_audit(client, actor, "revoke_tokens", detail);
	tp_end(&st);
	PG_RETURN_INT32(revoked);
}

/*
 * A one-entry memo of the last verification.  Within one snapshot of one
 * transaction the answer cannot change: the rows visible are the same and
 * now() is the same.  So a statement that checks the same token many times
 * (a loop, a join) pays for the lookup once.  The key is the snapshot's
 * content, not its address: a new statement after any commit has a new
 * completion count, so a regenerated token fails on the very next
 * statement, as without the memo.  The token text is zeroed at the end of
 * every transaction.
 */
typedef struct VerifyMemo
{
	bool		used;
	LocalTransactionId lxid;
	TransactionId xmin;
	TransactionId xmax;
	uint32		xcnt;
	int32		subxcnt;
	bool		suboverflowed;
	bool		during_recovery;
	CommandId	curcid;
	uint64		completions;
	char		client[65];
	char		token[TP_TOKEN_TEXT_LEN];
	bool		result;
} VerifyMemo;

static VerifyMemo memo;
static bool memo_callback_registered = false;

static void
memo_forget(XactEvent event, void *arg)
{
	if (memo.used)
		explicit_bzero(&memo, sizeof(memo));
}

static bool
memo_matches(Snapshot snap, const char *client, const char *token)
{
	return memo.used &&
		memo.lxid == MyProc->lxid &&
		memo.completions == snap->snapXactCompletionCount &&
		memo.xmin == snap->xmin && memo.xmax == snap->xmax &&
		memo.xcnt == snap->xcnt && memo.subxcnt == snap->subxcnt &&
		memo.suboverflowed == snap->suboverflowed &&
		memo.during_recovery == snap->takenDuringRecovery &&
		memo.curcid == snap->curcid &&
		strcmp(memo.client, client) == 0 &&
		timingsafe_bcmp(memo.token, token, TP_TOKEN_TEXT_LEN) == 0;
}

static void
memo_store(Snapshot snap, const char *client, const char *token, bool result)
{
	if (!memo_callback_registered)
	{
		RegisterXactCallback(memo_forget, NULL);
		memo_callback_registered = true;
	}
	memo.used = true;
	memo.lxid = MyProc->lxid;
	memo.completions = snap->snapXactCompletionCount;
	memo.xmin = snap->xmin;
	memo.xmax = snap->xmax;
	memo.xcnt = snap->xcnt;
	memo.subxcnt = snap->subxcnt;
	memo.suboverflowed = snap->suboverflowed;
	memo.during_recovery = snap->takenDuringRecovery;
	memo.curcid = snap->curcid;
	strlcpy(memo.client, client, sizeof(memo.client));
	memcpy(memo.token, token, TP_TOKEN_TEXT_LEN);
	memo.result = result;
}

/*
 * Is this token valid for this client now?  Never raises for any input: a
 * malformed token is refused without a lookup, a well-formed one by the
 * stored hash and its validity window.
 */
/*
 * A backend-local cache of token rows by (client, SHA-256): what the index
 * lookup found (or that it found nothing), and the row's validity window.
 * Every write to token_store fires a statement trigger that invalidates
 * token_store's relcache entry; the invalidation reaches every backend (and
 * hot standbys, through the commit record), and our relcache callback then
 * empties the cache.  Each lookup first accepts pending invalidations, so a
 * token revoked by a committed transaction fails on the next call anywhere,
 * exactly as without the cache.  Only hashes are kept, never token text.
 */
#define TOKEN_CACHE_MAX 4096

typedef struct TokenCacheKey
{
	char		client[65];
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
} TokenCacheKey;

typedef struct TokenCacheEntry
{
	TokenCacheKey key;
	bool		found;
	TimestampTz expires_at;
	bool		revoked;
	TimestampTz revoked_at;
} TokenCacheEntry;

static HTAB *token_cache = NULL;
static bool token_cache_stale = true;

static void
token_cache_invalidate(Datum arg, Oid relid)
{
	/* any relation: cheaper than looking up which one is ours */
	token_cache_stale = true;
}

static HTAB *
token_cache_get(void)
{
	if (token_cache == NULL)
		CacheRegisterRelcacheCallback(token_cache_invalidate, (Datum) 0);
	AcceptInvalidationMessages();
	if (token_cache != NULL && (token_cache_stale ||
								hash_get_num_entries(token_cache) >= TOKEN_CACHE_MAX))
	{
		hash_destroy(token_cache);
		token_cache = NULL;
	}
	if (token_cache == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(TokenCacheKey);
		ctl.entrysize = sizeof(TokenCacheEntry);
		ctl.hcxt = TopMemoryContext;
		token_cache = hash_create("tgt_profile token cache", 256, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		token_cache_stale = false;
	}
	return token_cache;
}

/* The token row by (client, hash), from the cache or the index. */
static void
lookup_token(const char *client, const uint8 *digest, TokenCacheEntry *out)
{
	static const AttrNumber cols[3] = {3, 7, 8};	/* hash, expires_at, revoked_at */
	HTAB	   *cache = token_cache_get();
	TokenCacheKey key;
	TokenCacheEntry *e;
	bool		hit;
	Datum		keys[2];
	Datum		v[3];
	bool		n[3];
	bytea	   *key_hash;

	memset(&key, 0, sizeof(key));
	strlcpy(key.client, client, sizeof(key.client));
	memcpy(key.digest, digest, PG_SHA256_DIGEST_LENGTH);
	e = (TokenCacheEntry *) hash_search(cache, &key, HASH_FIND, NULL);
	if (e != NULL)
	{
		*out = *e;
		return;
	}

	key_hash = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	SET_VARSIZE(key_hash, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	memcpy(VARDATA(key_hash), digest, PG_SHA256_DIGEST_LENGTH);
	keys[0] = CStringGetTextDatum(client);
	keys[1] = PointerGetDatum(key_hash);
	memset(out, 0, sizeof(*out));
	out->key = key;
	/* the index found it by hash; compare once more in constant time */
	out->found = tp_lookup("token_store", "token_store_hash_key", 2, keys, 3, cols, v, n) &&
		VARSIZE_ANY_EXHDR(DatumGetPointer(v[0])) == PG_SHA256_DIGEST_LENGTH &&
		timingsafe_bcmp(VARDATA_ANY(DatumGetPointer(v[0])), digest,
						PG_SHA256_DIGEST_LENGTH) == 0;
	if (out->found)
	{
		out->expires_at = DatumGetTimestampTz(v[1]);
		out->revoked = !n[2];
		out->revoked_at = n[2] ? 0 : DatumGetTimestampTz(v[2]);
	}
	/* an invalidation that arrived during the lookup leaves nothing stale */
	if (!token_cache_stale)
	{
		e = (TokenCacheEntry *) hash_search(cache, &key, HASH_ENTER, &hit);
		*e = *out;
	}
}

static bool
token_row_valid(const char *client, const char *token, size_t len)
{
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	TokenCacheEntry row;
	TimestampTz now = tp_now();

	tp_token_hash(token, len, digest);
	lookup_token(client, digest, &row);
	return row.found && row.expires_at > now && (!row.revoked || row.revoked_at > now);
}

/*
 * AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON token_store FOR EACH
 * STATEMENT: tell every backend's token cache (see above).
 */
Datum
tgtp_token_store_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "token_store_changed must be called as a trigger");
	CacheInvalidateRelcache(td->tg_relation);
	PG_RETURN_POINTER(NULL);
}

bool
tp_token_is_valid(const char *client, const char *token, size_t len)
{
	Snapshot	snap;
	bool		result;

	if (len != TP_TOKEN_TEXT_LEN || strlen(client) >= sizeof(memo.client))
		return false;
	snap = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	if (memo_matches(snap, client, token))
		return memo.result;
	result = tp_token_well_formed(token, len) && token_row_valid(client, token, len);
	memo_store(snap, client, token, result);
	return result;
}

/* verify_token(client, token) RETURNS boolean; false, never an error. */
Datum
tgtp_verify_token(PG_FUNCTION_ARGS)
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
