/*-------------------------------------------------------------------------
 *
 * read_dispatch.c
 *	  The record stream's entry points (record.h): recognise the format from
 *	  the first bytes and hand each call to its reader (read_adobe.c,
 *	  read_json.c).  Above the readers; the helpers they share are below
 *	  them, in read_common.c.
 *
 * Plain C, no PostgreSQL headers: see record.h.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include "read_internal.h"

static tp_reader *
open_failed(tp_reader *r, char *errbuf, size_t errlen, const char *msg)
{
	if (r)
		tp_free(r);
	if (errbuf && errlen > 0)
		snprintf(errbuf, errlen, "%s", msg);
	return NULL;
}

tp_reader *
tp_reader_open(const char *data, size_t len, char *errbuf, size_t errlen)
{
	const char *p = data;
	const char *end = data + len;
	tp_reader  *r;
	bool		ok;

	if (errbuf && errlen > 0)
		errbuf[0] = '\0';
	if (data == NULL || len == 0)
		return open_failed(NULL, errbuf, errlen, "empty batch");
	if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
		return open_failed(NULL, errbuf, errlen,
						   "batch starts with a UTF-8 byte-order mark (BOM); save it without one");

	while (p < end && (tp_is_blank(*p) || *p == '\n'))
		p++;
	if (p == end)
		return open_failed(NULL, errbuf, errlen,
						   "empty batch: it holds nothing but whitespace");

	r = tp_alloc(sizeof(tp_reader));
	if (r == NULL)
		return open_failed(NULL, errbuf, errlen, "out of memory");
	memset(r, 0, sizeof(tp_reader));
	r->data = data;
	r->len = len;
	r->errbuf = errbuf;
	r->errlen = errlen;

	if (*p == '[' || *p == '{')
	{
		r->format = *p == '[' ? TP_FORMAT_JSON_ARRAY : TP_FORMAT_NDJSON;
		ok = tp_json_open(r, p);
	}
	else if (end - p >= 6 && memcmp(p, "batch=", 6) == 0)
	{
		r->format = TP_FORMAT_ADOBE;
		ok = tp_adobe_open(r, p);
	}
	else
		return open_failed(r, errbuf, errlen,
						   "unrecognised batch format: a batch starts with \"batch=\" (Adobe batch file), \"{\" (NDJSON) or \"[\" (JSON array)");

	if (!ok)
	{
		/* the format's open has filled errbuf and freed its own state */
		tp_free(r);
		return NULL;
	}
	return r;
}

void
tp_reader_limit_members(tp_reader *r, int64_t max)
{
	r->max_members = max > 0 ? max : 0;
}

tp_format
tp_reader_format(const tp_reader *r)
{
	return r->format;
}

tp_status
tp_reader_next(tp_reader *r, tp_record *rec)
{
	if (r->failed)
		return TP_FATAL;
	if (r->format == TP_FORMAT_ADOBE)
		return tp_adobe_next(r, rec);
	return tp_json_next(r, rec);
}

void
tp_reader_close(tp_reader *r)
{
	if (r == NULL)
		return;
	if (r->format == TP_FORMAT_ADOBE)
		tp_adobe_close(r);
	else
		tp_json_close(r);
	tp_free(r);
}
