/*-------------------------------------------------------------------------
 *
 * fuzz_common.h
 *	  What every batch reader fuzz target does with its input: read the
 *	  whole record stream and check the promises of record.h, so that a
 *	  broken promise stops the fuzzer as surely as a sanitizer report.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TGTP_FUZZ_COMMON_H
#define TGTP_FUZZ_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "read_internal.h"

#define FUZZ_ASSERT(c) do { if (!(c)) __builtin_trap(); } while (0)

/* Touch every byte, so that ASan checks the whole range. */
static volatile unsigned fuzz_sink;

static void
fuzz_touch(const char *p, size_t n)
{
	size_t		i;
	unsigned	h = 0;

	for (i = 0; i < n; i++)
		h = h * 31 + (unsigned char) p[i];
	fuzz_sink += h;
}

static void
fuzz_check_attr(const tp_attr *a)
{
	char	   *num;
	char	   *end;
	double		d;

	FUZZ_ASSERT(a->name != NULL);
	fuzz_touch(a->name, a->name_len);
	FUZZ_ASSERT(tp_utf8_check(a->name, a->name_len) == TP_UTF8_OK);
	switch (a->kind)
	{
		case TP_VAL_STRING:
			FUZZ_ASSERT(a->value != NULL);
			fuzz_touch(a->value, a->value_len);
			FUZZ_ASSERT(tp_utf8_check(a->value, a->value_len) == TP_UTF8_OK);
			break;
		case TP_VAL_NUMBER:
			/*
			 * a number in JSON syntax, as written in the input (perhaps
			 * beyond a double's range: numeric's limits are the server's
			 * to check)
			 */
			FUZZ_ASSERT(a->value != NULL);
			FUZZ_ASSERT(a->value_len > 0);
			num = malloc(a->value_len + 1);
			FUZZ_ASSERT(num != NULL);
			memcpy(num, a->value, a->value_len);
			num[a->value_len] = '\0';
			d = strtod(num, &end);
			FUZZ_ASSERT(*end == '\0' && !isnan(d));
			{
				const char *s = num;
				unsigned char *stack = NULL;
				size_t		cap = 0;
				const char *e;

				FUZZ_ASSERT(tp_json_skip(s, s + a->value_len, &e, &stack, &cap) == TP_SKIP_OK &&
							e == s + a->value_len);
				tp_free(stack);
			}
			free(num);
			break;
		case TP_VAL_TRUE:
		case TP_VAL_FALSE:
		case TP_VAL_NULL:
		case TP_VAL_NESTED:
			FUZZ_ASSERT(a->value == NULL);
			break;
		default:
			FUZZ_ASSERT(0);
	}
}

/*
 * Read data[0..size) again through the read-ahead thread (read_ahead.c), in
 * blocks of 3 records or 64 bytes: the same records, keys and end as the
 * reader's own (rows and end given), or a stop after stop_after records
 * (when > 0), which must join the thread wherever it is.
 */
static void
fuzz_read_ahead(const char *data, size_t size, int64_t limit, int64_t rows,
				tp_status end, const char *end_err, int64_t stop_after)
{
	char		errbuf[256];
	tp_ahead   *a = tp_ahead_start(data, size, limit, 3, 64, true, errbuf, sizeof(errbuf));
	tp_record	rec;
	tp_status	st;
	int64_t		row = 0;

	FUZZ_ASSERT(a != NULL);
	if (!tp_ahead_open(a))
	{
		FUZZ_ASSERT(end == TP_FATAL && rows == 0 && strcmp(errbuf, end_err) == 0);
		tp_ahead_stop(a);
		return;
	}
	while ((st = tp_ahead_next(a, &rec)) == TP_RECORD)
	{
		FUZZ_ASSERT(rec.row == ++row);
		if (rec.key)
			fuzz_touch(rec.key, rec.key_len);
		for (int i = 0; i < rec.nattrs; i++)
			fuzz_check_attr(&rec.attrs[i]);
		if (stop_after > 0 && row == stop_after)
			break;
	}
	if (st != TP_RECORD)
	{
		FUZZ_ASSERT(st == end && row == rows);
		if (st == TP_FATAL)
			FUZZ_ASSERT(strcmp(errbuf, end_err) == 0);
	}
	tp_ahead_stop(a);
}

/* Read data[0..size) to its end; returns the number of records. */
static int64_t
fuzz_read_all(const char *data, size_t size)
{
	char		errbuf[256];
	tp_reader  *r;
	tp_record	rec;
	tp_status	st;
	int64_t		row = 0;
	int64_t		limit;

	errbuf[0] = '\0';
	/* a member limit of 0 (none) to 7, from the input's last byte */
	limit = size > 0 ? (unsigned char) data[size - 1] % 8 : 0;
	r = tp_reader_open(data, size, errbuf, sizeof(errbuf));
	if (r == NULL)
	{
		FUZZ_ASSERT(errbuf[0] != '\0');
		fuzz_read_ahead(data, size, limit, 0, TP_FATAL, errbuf, 0);
		return 0;
	}
	tp_reader_limit_members(r, limit);
	while ((st = tp_reader_next(r, &rec)) == TP_RECORD)
	{
		int			i;

		/* records are numbered from 1 without gaps */
		FUZZ_ASSERT(rec.row == ++row);
		if (rec.error)
		{
			FUZZ_ASSERT(strlen(rec.error) > 0 && strlen(rec.error) < 256);
			FUZZ_ASSERT(rec.nattrs == 0);
			if (rec.key)
				fuzz_touch(rec.key, rec.key_len);
			if (tp_reader_format(r) != TP_FORMAT_ADOBE)
				FUZZ_ASSERT(rec.line >= 1 && rec.column >= 1);
			continue;
		}
		FUZZ_ASSERT(rec.key != NULL && rec.key_len > 0);
		fuzz_touch(rec.key, rec.key_len);
		FUZZ_ASSERT(tp_utf8_check(rec.key, rec.key_len) == TP_UTF8_OK);
		FUZZ_ASSERT(rec.nattrs >= 0);
		/* the key is a member too */
		if (limit > 0 && tp_reader_format(r) != TP_FORMAT_ADOBE)
			FUZZ_ASSERT(rec.nattrs < limit);
		for (i = 0; i < rec.nattrs; i++)
		{
			fuzz_check_attr(&rec.attrs[i]);
			if (tp_reader_format(r) == TP_FORMAT_ADOBE)
				FUZZ_ASSERT(rec.attrs[i].kind == TP_VAL_STRING &&
							rec.attrs[i].value_len > 0);
		}
	}
	if (st == TP_FATAL)
	{
		FUZZ_ASSERT(errbuf[0] != '\0');
		/* a broken batch stays broken */
		FUZZ_ASSERT(tp_reader_next(r, &rec) == TP_FATAL);
	}
	else
		FUZZ_ASSERT(st == TP_EOF && tp_reader_next(r, &rec) == TP_EOF);
	tp_reader_close(r);
	/* the same through the read-ahead: to the end, or stopped midway */
	fuzz_read_ahead(data, size, limit, row, st, errbuf,
					size > 1 ? (unsigned char) data[size - 2] % 4 : 0);
	return row;
}

/* Run on prefix + data, for targets that need a recognisable start. */
static void
fuzz_read_prefixed(const char *prefix, const uint8_t *data, size_t size)
{
	size_t		plen = strlen(prefix);
	char	   *buf = malloc(plen + size);

	if (buf == NULL)
		return;
	memcpy(buf, prefix, plen);
	if (size)
		memcpy(buf + plen, data, size);
	fuzz_read_all(buf, plen + size);
	free(buf);
}

#endif							/* TGTP_FUZZ_COMMON_H */
