/*-------------------------------------------------------------------------
 *
 * fuzz_adobe.c
 *	  libFuzzer target of the Adobe batch file reader (src/read_adobe.c).
 *
 * An input that starts with "batch=" is read as it is, which fuzzes the
 * header; any other input gets a fixed header, so that the mutations
 * spend their time on the row parser rather than on finding "batch=".
 *
 *-------------------------------------------------------------------------
 */
#include "fuzz_common.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size >= 6 && memcmp(data, "batch=", 6) == 0)
		fuzz_read_all((const char *) data, size);
	else
		fuzz_read_prefixed("batch=pcId,a,b%2Cc,d+e,caf%C3%A9\n", data, size);
	return 0;
}
