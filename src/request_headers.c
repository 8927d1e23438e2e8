/*-------------------------------------------------------------------------
 *
 * request_headers.c
 *	  Reading the PostgREST request.headers setting with libjansson.
 *
 * Kept apart because jansson's json_object() clashes with the SQL function
 * of that name declared by PostgreSQL's fmgrprotos.h.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"

#include <jansson.h>

#include "utils/guc.h"

/*
 * The PostgREST convention: current_setting('request.headers', true) is a
 * JSON object of the request's headers, names lower-cased, set with
 * set_config(..., true) for one transaction (PostgREST 12 and later).  The
 * member named by tgt_profile.token_header (default "authorization") is the
 * header that carries the token.  Unset, empty (what a transaction-local
 * setting leaves behind), not JSON, not an object or a member that is not
 * a string all count as absent.  Returns a palloc'd copy or NULL.
 */
char *
tp_header_from_request(void)
{
	const char *headers = GetConfigOption("request.headers", true, false);
	json_t	   *root;
	json_t	   *auth;
	char	   *result = NULL;

	if (headers == NULL || headers[0] == '\0')
		return NULL;
	root = json_loads(headers, JSON_REJECT_DUPLICATES, NULL);
	if (root == NULL)
		return NULL;
	auth = json_object_get(root, tgtp_token_header);
	if (json_is_string(auth))
		result = pnstrdup(json_string_value(auth), json_string_length(auth));
	json_decref(root);
	return result;
}
