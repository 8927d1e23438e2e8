/*-------------------------------------------------------------------------
 *
 * fuzz_json_array.c
 *	  libFuzzer target of the JSON array reader (src/read_json.c).
 *
 * The reader tells a record error from a broken array with its own syntax
 * checker (tp_json_skip) whenever jansson refuses an element, so this
 * target also holds the two against each other on the whole input: what
 * jansson parses the checker must accept, ending at the same byte; what the
 * checker accepts and jansson refuses must be refused for a reason that
 * makes a well-formed value a record error (range, depth, UTF-8 in a
 * string, a lone surrogate, NUL in a key).
 *
 * The comparison stops at the first NUL byte, as the reader does (see
 * json_state.nul in read_json.c).  An input that does not start with '['
 * is read after a '['.
 *
 *-------------------------------------------------------------------------
 */
#include <jansson.h>

#include "fuzz_common.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
compare_with_jansson(const char *s, size_t size)
{
	json_error_t err;
	json_t	   *j;
	const char *end = NULL;
	unsigned char *stack = NULL;
	size_t		cap = 0;
	int			rc;

	const char *nul = memchr(s, '\0', size);

	/* jansson drops a NUL byte after a number: the readers stop before one */
	if (nul)
		size = nul - s;
	if (size == 0 || (s[0] != '[' && s[0] != '{'))
		return;
	j = json_loadb(s, size, JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL, &err);
	rc = tp_json_skip(s, s + size, &end, &stack, &cap);
	FUZZ_ASSERT(rc != TP_SKIP_NOMEM);
	if (j)
	{
		FUZZ_ASSERT(rc == TP_SKIP_OK && end == s + err.position);
		json_decref(j);
	}
	else if (rc == TP_SKIP_OK)
	{
		switch (json_error_code(&err))
		{
			case json_error_invalid_utf8:
			case json_error_numeric_overflow:
			case json_error_stack_overflow:
			case json_error_null_byte_in_key:
				break;
			case json_error_invalid_syntax:
				FUZZ_ASSERT(strncmp(err.text, "invalid Unicode '", 17) == 0);
				break;
			default:
				FUZZ_ASSERT(0);
		}
	}
	tp_free(stack);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	compare_with_jansson((const char *) data, size);
	if (size > 0 && data[0] == '[')
		fuzz_read_all((const char *) data, size);
	else
		fuzz_read_prefixed("[", data, size);
	return 0;
}
