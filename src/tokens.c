/*-------------------------------------------------------------------------
 *
 * tokens.c
 *	  The token lifecycle: generate (and so rotate) and revoke.
 *
 * A client has at most one active token.  generate_token revokes every
 * token of the client that is still valid, at once or after a grace period,
 * and inserts the new one.  Token changes of one client are serialised by a
 * per-client lock (store.c) that no other role can hold, and the revoking
 * UPDATE runs under a snapshot taken after the lock: it reaches the token a
 * concurrent call just committed even in a REPEATABLE READ transaction, so
 * two concurrent regenerations leave exactly one valid token.
 *
 * Verification lives below, in token_verify.c.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"

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

/*
 * Serialise the token changes of one client, then read its settings as
 * committed now.  Not a row lock on settings: an approver may lock that row
 * (it may update it), and must not be able to hold up an admin's revocation.
 */
static void
lock_client(const char *client, TpSettings *s)
{
	tp_lock_client(client, TP_LOCK_TOKENS);
	tp_require_client(client, s);
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
	return tp_exec_fresh(&plan, v, NULL, false, 0);
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
TP_SQL_FUNCTION(tgtp_generate_token)
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
TP_SQL_FUNCTION(tgtp_revoke_tokens)
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
