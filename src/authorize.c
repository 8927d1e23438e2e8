/*-------------------------------------------------------------------------
 *
 * authorize.c
 *	  The require-auth check and the parsing of "Authorization: Bearer".
 *
 * The token comes from the authorization argument, "Bearer <token>" only,
 * or, when that argument is NULL, from the request header named by
 * tgt_profile.token_header (read from request.headers, request_headers.c),
 * where it may also come bare.  The argument always wins.
 *
 * authorize(client, authorization) raises 28000 when the client requires
 * authentication and no token is presented, 28P01 when the token is not
 * valid (one message, whether invalid, revoked or expired).  It needs no
 * session state, so it works through pgbouncer's transaction pooling, and
 * it writes nothing, so it works on a hot standby.
 *
 * Failed authentications go to the server log with the client, the role
 * and the token's hint, never to a table: the failing transaction would
 * roll that row back.  Our errors hide the statement text from the log, so
 * a token passed as a literal is not logged by them either.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"
#include "pg_compat.h"

#include "fmgr.h"
#include "utils/builtins.h"

/*
 * Find the token in a header value "Bearer <token>": the scheme
 * case-insensitively, then one or more spaces.  Anything else is no token.
 */
static bool
parse_bearer(const char *header, size_t len, const char **token, size_t *token_len)
{
	size_t		i = 6;

	if (header == NULL || len <= 7 || pg_strncasecmp(header, "bearer", 6) != 0 ||
		header[6] != ' ')
		return false;
	while (i < len && header[i] == ' ')
		i++;
	/* trailing spaces or tabs are not part of the token */
	while (len > i && (header[len - 1] == ' ' || header[len - 1] == '\t'))
		len--;
	if (i >= len)
		return false;
	*token = header + i;
	*token_len = len - i;
	return true;
}

/*
 * Find the token in the request header named by tgt_profile.token_header:
 * bare ("tgtp_...", recognised by the token prefix) or "Bearer <token>".
 * A custom header such as x-profile-token has no scheme to carry, so a
 * bare token is its natural form; anything else (another scheme, a JWT)
 * is no token, as in the argument.
 */
static bool
parse_request_header(const char *header, size_t len, const char **token, size_t *token_len)
{
	if (header == NULL)
		return false;
	/* optional whitespace around a field value is not part of it (RFC 7230) */
	while (len > 0 && (header[0] == ' ' || header[0] == '\t'))
	{
		header++;
		len--;
	}
	while (len > 0 && (header[len - 1] == ' ' || header[len - 1] == '\t'))
		len--;
	if (len >= TP_TOKEN_PREFIX_LEN &&
		memcmp(header, TP_TOKEN_PREFIX, TP_TOKEN_PREFIX_LEN) == 0)
	{
		*token = header;
		*token_len = len;
		return true;
	}
	return parse_bearer(header, len, token, token_len);
}

static void
report_failure(const char *client, const char *token, size_t len)
{
	bool		formed = tp_token_well_formed(token, len);

	ereport(LOG,
			(errmsg("tgt_profile: authentication failed for client \"%s\"", client),
			 formed
			 ? errdetail("Role \"%s\" presented token %.*s..., which is revoked, expired or unknown.",
						 tp_caller_name(), TP_TOKEN_HINT_LEN, token)
			 : errdetail("Role \"%s\" presented a malformed token.", tp_caller_name()),
			 errhidestmt(true), errhidecontext(true)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PASSWORD),
			 errmsg("invalid authorization token for client \"%s\"", client),
			 errdetail("The token is not valid: it may be mistyped, revoked or expired."),
			 errhint("Ask an approver of the client for a new token."),
			 errhidestmt(true)));
}

/*
 * 28000: the client requires a token and none was presented, in the
 * argument or (when the argument was NULL) in the request header.
 */
tp_noreturn static void report_no_token(const char *client, bool from_request);

static void
report_no_token(const char *client, bool from_request)
{
	ereport(LOG,
			(errmsg("tgt_profile: authentication failed for client \"%s\"", client),
			 from_request
			 ? errdetail("Role \"%s\" presented no token in request header \"%s\".",
						 tp_caller_name(), tgtp_token_header)
			 : errdetail("Role \"%s\" presented no bearer token.", tp_caller_name()),
			 errhidestmt(true), errhidecontext(true)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("client \"%s\" requires authentication", client),
			 from_request
			 ? errdetail("No authorization argument was given, and request header \"%s\" (tgt_profile.token_header) holds no token.",
						 tgtp_token_header)
			 : errdetail("No bearer token was presented."),
			 errhint("Pass \"Bearer <token>\" as the authorization argument, as a bind parameter, or the token in request header \"%s\".",
					 tgtp_token_header),
			 errhidestmt(true)));
}

/*
 * The check every profile function makes first.  header may be NULL (then
 * request.headers is read).
 */
void
tp_authorize(const char *client, const char *header, size_t header_len)
{
	TpSettings	s;
	char	   *from_request = NULL;
	const char *token;
	size_t		token_len;

	tp_check_client_code(client);
	tp_require_client(client, &s);
	if (!s.require_auth)
		return;

	if (header == NULL)
	{
		from_request = tp_header_from_request();
		header_len = from_request ? strlen(from_request) : 0;
		if (!parse_request_header(from_request, header_len, &token, &token_len))
			report_no_token(client, true);
	}
	else if (!parse_bearer(header, header_len, &token, &token_len))
		report_no_token(client, false);
	if (!tp_token_is_valid(client, token, token_len))
		report_failure(client, token, token_len);
	if (from_request)
	{
		explicit_bzero(from_request, header_len);
		pfree(from_request);
	}
}

/*
 * authorize() with the header taken from argument argno of a SQL function
 * (NULL: request.headers is read).  Every profile function starts here.
 */
void
tp_authorize_arg(FunctionCallInfo fcinfo, const char *client, int argno)
{
	text	   *header = PG_ARGISNULL(argno) ? NULL : PG_GETARG_TEXT_PP(argno);

	tp_authorize(client,
				 header ? VARDATA_ANY(header) : NULL,
				 header ? VARSIZE_ANY_EXHDR(header) : 0);
}

/* authorize(client, authorization DEFAULT NULL) RETURNS void */
TP_SQL_FUNCTION(tgtp_authorize)
{
	tp_authorize_arg(fcinfo, tp_text_arg(fcinfo, 0, "client"), 1);
	PG_RETURN_VOID();
}
