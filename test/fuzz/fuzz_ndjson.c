/*-------------------------------------------------------------------------
 *
 * fuzz_ndjson.c
 *	  libFuzzer target of the NDJSON reader (src/read_json.c).
 *
 * An input that does not start with '{' gets a first line "{}" so that it
 * is read as NDJSON whatever the mutation did to its first byte.
 *
 *-------------------------------------------------------------------------
 */
#include "fuzz_common.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 0 && data[0] == '{')
		fuzz_read_all((const char *) data, size);
	else
		fuzz_read_prefixed("{}\n", data, size);
	return 0;
}
