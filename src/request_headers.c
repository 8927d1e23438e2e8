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
 * JSON object whose "authorization" member is the header.  Unset, empty or
 * not JSON counts as absent.  Returns a palloc'd copy or NULL.
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
	auth = json_object_get(root, "authorization");
	if (json_is_string(auth))
		result = pnstrdup(json_string_value(auth), json_string_length(auth));
	json_decref(root);
	return result;
}
