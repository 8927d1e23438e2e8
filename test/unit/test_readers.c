/*-------------------------------------------------------------------------
 *
 * test_readers.c
 *	  Unit tests of the batch readers (src/read_*.c), without PostgreSQL.
 *
 * Each case runs a batch through the reader and compares a one-line dump of
 * the record stream with the expected one.  Every case also checks that no
 * error text contains the word SECRET (the bad inputs carry it, so an error
 * that quoted the input would show) and that the reader freed everything it
 * allocated.  Output is TAP; the exit status is non-zero on any failure.
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "read_internal.h"

/* ------------------------------------------------------------ allocator */

#include "count_alloc.h"

/* ------------------------------------------------------------------ TAP */

/* Results are kept and printed at the end, after the plan. */
typedef struct result
{
	bool		ok;
	char	   *desc;
	char	   *diag;
} result;

static result *results;
static int	nresults;
static int	results_cap;

static char *
xstrdup(const char *s)
{
	char	   *d = malloc(strlen(s) + 1);

	if (d == NULL)
		abort();
	strcpy(d, s);
	return d;
}

/* Put before each description: how the cases are read (see dump()) */
static const char *desc_prefix = "";

static void
record_result(bool ok, const char *desc, const char *diag)
{
	char		full[1024];

	snprintf(full, sizeof(full), "%s%s", desc_prefix, desc);
	desc = full;
	if (nresults == results_cap)
	{
		results_cap = results_cap ? results_cap * 2 : 256;
		results = realloc(results, sizeof(result) * results_cap);
		if (results == NULL)
			abort();
	}
	results[nresults].ok = ok;
	results[nresults].desc = xstrdup(desc);
	results[nresults].diag = diag ? xstrdup(diag) : NULL;
	nresults++;
}

/* ------------------------------------------------------------- strings */

typedef struct sbuf
{
	char	   *s;
	size_t		len;
	size_t		cap;
} sbuf;

static void
sb_add(sbuf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap)
	{
		b->cap = (b->len + n + 1) * 2;
		b->s = realloc(b->s, b->cap);
		if (b->s == NULL)
			abort();
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void
sb_printf(sbuf *b, const char *fmt,...)
{
	char		tmp[1024];
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	sb_add(b, tmp, n < (int) sizeof(tmp) ? (size_t) n : sizeof(tmp) - 1);
}

/* Printable ASCII as is, other bytes as \xHH. */
static void
sb_escaped(sbuf *b, const char *p, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) p[i];

		if (c >= 0x20 && c < 0x7F)
			sb_add(b, (const char *) &c, 1);
		else
			sb_printf(b, "\\x%02X", c);
	}
}

/* ----------------------------------------------------------------- dump */

/* Every error text seen by the current case, to look for SECRET in it. */
static sbuf errors_seen;

/* tp_reader_limit_members() of the readers dump() opens (0: none) */
static int64_t member_limit;

static void
dump_record(sbuf *b, const tp_record *rec)
{
	int			i;
	const char *kn = rec->key_kind == TP_KEY_PCID ? "pcId" : "thirdPartyId";

	sb_printf(b, "%lld", (long long) rec->row);
	if (rec->error)
	{
		sb_printf(b, " ERR(%s)", rec->error);
		sb_printf(&errors_seen, "%s\n", rec->error);
		if (rec->line || rec->column)
			sb_printf(b, " @%lld:%lld", (long long) rec->line,
					  (long long) rec->column);
		if (rec->key)
		{
			sb_printf(b, " %s=", kn);
			sb_escaped(b, rec->key, rec->key_len);
		}
		if (rec->nattrs != 0)
			sb_printf(b, " (%d attrs!)", rec->nattrs);
		return;
	}
	sb_printf(b, " %s=", kn);
	if (rec->key)
		sb_escaped(b, rec->key, rec->key_len);
	else
		sb_printf(b, "(null!)");
	sb_add(b, " {", 2);
	for (i = 0; i < rec->nattrs; i++)
	{
		const tp_attr *a = &rec->attrs[i];

		if (i > 0)
			sb_add(b, ", ", 2);
		sb_escaped(b, a->name, a->name_len);
		sb_add(b, ":", 1);
		switch (a->kind)
		{
			case TP_VAL_STRING:
				sb_add(b, "\"", 1);
				sb_escaped(b, a->value, a->value_len);
				sb_add(b, "\"", 1);
				break;
			case TP_VAL_NUMBER:
				sb_escaped(b, a->value, a->value_len);
				break;
			case TP_VAL_TRUE:
				sb_printf(b, "true");
				break;
			case TP_VAL_FALSE:
				sb_printf(b, "false");
				break;
			case TP_VAL_NULL:
				sb_printf(b, "null");
				break;
			case TP_VAL_NESTED:
				sb_printf(b, "nested");
				break;
		}
	}
	sb_add(b, "}", 1);
}

/*
 * How dump() reads: the reader itself, or the read-ahead (read_ahead.c)
 * with a thread or without, in blocks of AHEAD_RECORDS records and
 * AHEAD_BYTES bytes: small, so that every case crosses blocks.
 */
typedef enum read_mode
{
	READ_DIRECT,
	READ_AHEAD_THREAD,
	READ_AHEAD_INLINE
} read_mode;

static read_mode mode = READ_DIRECT;

#define AHEAD_RECORDS	2
#define AHEAD_BYTES		64

/* The stream through the mode's calls (reader or ahead, one is NULL). */
static tp_status
next_of(tp_reader *r, tp_ahead *a, tp_record *rec)
{
	return a ? tp_ahead_next(a, rec) : tp_reader_next(r, rec);
}

/*
 * The whole record stream of a batch, as "rec | rec | EOF" or ending in
 * "FATAL(message)"; an open failure is "OPEN(message)".
 */
static char *
dump(const char *data, size_t len, tp_format *format)
{
	sbuf		b = {0};
	char		errbuf[512];
	tp_reader  *r = NULL;
	tp_ahead   *a = NULL;
	tp_record	rec;
	tp_status	st;
	int			n = 0;

	if (mode == READ_DIRECT)
		r = tp_reader_open(data, len, errbuf, sizeof(errbuf));
	else
	{
		a = tp_ahead_start(data, len, member_limit, AHEAD_RECORDS, AHEAD_BYTES,
						   mode == READ_AHEAD_THREAD, errbuf, sizeof(errbuf));
		if (a == NULL)
			abort();
		if (tp_ahead_threaded(a) != (mode == READ_AHEAD_THREAD))
			sb_printf(&b, "(threaded %d!) ", (int) tp_ahead_threaded(a));
		if (!tp_ahead_open(a))
		{
			tp_ahead_stop(a);
			a = NULL;
		}
	}
	if (r == NULL && a == NULL)
	{
		sb_printf(&b, "OPEN(%s)", errbuf);
		sb_printf(&errors_seen, "%s\n", errbuf);
		return b.s;
	}
	if (format)
		*format = a ? tp_ahead_format(a) : tp_reader_format(r);
	if (r)
		tp_reader_limit_members(r, member_limit);
	while ((st = next_of(r, a, &rec)) == TP_RECORD)
	{
		dump_record(&b, &rec);
		sb_add(&b, " | ", 3);
		if (++n > 10000)
			break;
	}
	if (st == TP_EOF)
	{
		sb_printf(&b, "EOF");
		/* EOF stays EOF */
		if (next_of(r, a, &rec) != TP_EOF)
			sb_printf(&b, " (then not EOF!)");
	}
	else if (st == TP_FATAL)
	{
		sb_printf(&b, "FATAL(%s)", errbuf);
		sb_printf(&errors_seen, "%s\n", errbuf);
		/* a broken batch stays broken */
		if (next_of(r, a, &rec) != TP_FATAL)
			sb_printf(&b, " (then not FATAL!)");
	}
	else
		sb_printf(&b, "(too many records)");
	if (a)
		tp_ahead_stop(a);
	else
		tp_reader_close(r);
	return b.s;
}

/*
 * One case: data[0..len) must dump as expected, with no SECRET in any error
 * text and nothing left allocated.
 */
static void
check_len(const char *desc, const char *data, size_t len, const char *expected)
{
	char	   *got;
	char		diag[8192];
	bool		ok;
	char	   *copy;

	/* a private copy, so that ASan/valgrind see any read past its end */
	copy = malloc(len ? len : 1);
	if (len)
		memcpy(copy, data, len);
	errors_seen.len = 0;
	if (errors_seen.s)
		errors_seen.s[0] = '\0';

	got = dump(copy, len, NULL);
	ok = strcmp(got, expected) == 0;
	if (!ok)
		snprintf(diag, sizeof(diag), "expected: %s\n     got: %s", expected, got);
	else if (errors_seen.s && strstr(errors_seen.s, "SECRET"))
	{
		ok = false;
		snprintf(diag, sizeof(diag), "an error quotes the input: %s", errors_seen.s);
	}
	else if (live_bytes != 0)
	{
		ok = false;
		snprintf(diag, sizeof(diag), "%zu bytes still allocated after close",
				 live_bytes);
	}
	record_result(ok, desc, ok ? NULL : diag);
	live_bytes = 0;
	free(got);
	free(copy);
}

static void
check(const char *desc, const char *data, const char *expected)
{
	check_len(desc, data, strlen(data), expected);
}

static void
check_true(const char *desc, bool ok, const char *diag)
{
	record_result(ok, desc, ok ? NULL : diag);
}

/* --------------------------------------------------------- format cases */

static void
test_format(void)
{
	static const struct
	{
		const char *data;
		tp_format	format;
	}			cases[] = {
		{"[]", TP_FORMAT_JSON_ARRAY},
		{" \r\n\t[]", TP_FORMAT_JSON_ARRAY},
		{"{\"pcId\":\"1\"}", TP_FORMAT_NDJSON},
		{"\n\n  {\"pcId\":\"1\"}", TP_FORMAT_NDJSON},
		{"batch=pcId,a", TP_FORMAT_ADOBE},
		{"\nbatch=pcId,a", TP_FORMAT_ADOBE},
	};
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		tp_format	f = (tp_format) -1;
		char		desc[128];
		char	   *got = dump(cases[i].data, strlen(cases[i].data), &f);

		snprintf(desc, sizeof(desc), "format: detected for case %zu", i + 1);
		check_true(desc, f == cases[i].format, got);
		free(got);
	}

	check_len("format: empty input", "", 0, "OPEN(empty batch)");
	check_len("format: NULL input", NULL, 0, "OPEN(empty batch)");
	check("format: whitespace only", " \n\r\n\t ",
		  "OPEN(empty batch: it holds nothing but whitespace)");
	check("format: BOM before batch=", "\xEF\xBB\xBF" "batch=pcId,a\n1,x\n",
		  "OPEN(batch starts with a UTF-8 byte-order mark (BOM); save it without one)");
	check("format: BOM before JSON array", "\xEF\xBB\xBF[{\"pcId\":\"1\"}]",
		  "OPEN(batch starts with a UTF-8 byte-order mark (BOM); save it without one)");
	check("format: BOM before NDJSON", "\xEF\xBB\xBF{\"pcId\":\"1\"}\n",
		  "OPEN(batch starts with a UTF-8 byte-order mark (BOM); save it without one)");
	check("format: unrecognised text", "SECRET,a,b\n1,2,3\n",
		  "OPEN(unrecognised batch format: a batch starts with \"batch=\" (Adobe batch file), \"{\" (NDJSON) or \"[\" (JSON array))");
	check("format: JSON scalar root (number)", "42",
		  "OPEN(unrecognised batch format: a batch starts with \"batch=\" (Adobe batch file), \"{\" (NDJSON) or \"[\" (JSON array))");
	check("format: JSON scalar root (string)", "\"SECRET\"",
		  "OPEN(unrecognised batch format: a batch starts with \"batch=\" (Adobe batch file), \"{\" (NDJSON) or \"[\" (JSON array))");
	check("format: JSON scalar root (true)", "true",
		  "OPEN(unrecognised batch format: a batch starts with \"batch=\" (Adobe batch file), \"{\" (NDJSON) or \"[\" (JSON array))");
	check("format: batch= is case-sensitive", "BATCH=pcId,a\n",
		  "OPEN(unrecognised batch format: a batch starts with \"batch=\" (Adobe batch file), \"{\" (NDJSON) or \"[\" (JSON array))");
	check("format: truncated batch=", "batch",
		  "OPEN(unrecognised batch format: a batch starts with \"batch=\" (Adobe batch file), \"{\" (NDJSON) or \"[\" (JSON array))");
	check_len("format: NUL byte first", "\0batch=pcId", 11,
			  "OPEN(unrecognised batch format: a batch starts with \"batch=\" (Adobe batch file), \"{\" (NDJSON) or \"[\" (JSON array))");
}

/* ---------------------------------------------------------- Adobe cases */

#define HDR_ERR(m) "OPEN(bad batch header: " m ")"

static void
test_adobe(void)
{
	/* the documentation's sample */
	check("adobe: documentation sample",
		  "batch=pcId,param1,param2,param3,param4\n123,value1\n124,,value2\n125,,,value3\n126,,,,value4\n",
		  "1 pcId=123 {param1:\"value1\"} | 2 pcId=124 {param2:\"value2\"} | "
		  "3 pcId=125 {param3:\"value3\"} | 4 pcId=126 {param4:\"value4\"} | EOF");
	check("adobe: DESIGN sample with trailing empty cell",
		  "batch=pcId,param1,param2\n123,value1,\n",
		  "1 pcId=123 {param1:\"value1\"} | EOF");
	check("adobe: thirdPartyId key column",
		  "batch=thirdPartyId,tier\ncrm-1,gold\n",
		  "1 thirdPartyId=crm-1 {tier:\"gold\"} | EOF");
	check("adobe: full rows",
		  "batch=pcId,a,b\n1,x,y\n2,z,w\n",
		  "1 pcId=1 {a:\"x\", b:\"y\"} | 2 pcId=2 {a:\"z\", b:\"w\"} | EOF");

	/* line ends, blank lines */
	check("adobe: CRLF line ends",
		  "batch=pcId,a,b\r\n1,x,y\r\n2,,w\r\n",
		  "1 pcId=1 {a:\"x\", b:\"y\"} | 2 pcId=2 {b:\"w\"} | EOF");
	check("adobe: last line without newline",
		  "batch=pcId,a\n1,x\n2,y",
		  "1 pcId=1 {a:\"x\"} | 2 pcId=2 {a:\"y\"} | EOF");
	check("adobe: last line without newline, CR only",
		  "batch=pcId,a\n1,x\r",
		  "1 pcId=1 {a:\"x\"} | EOF");
	check("adobe: blank lines are skipped and not numbered",
		  "batch=pcId,a\n\n1,x\n\r\n   \n\t\n2,y\n\n",
		  "1 pcId=1 {a:\"x\"} | 2 pcId=2 {a:\"y\"} | EOF");
	check("adobe: whitespace before the header",
		  "\n \nbatch=pcId,a\n1,x\n",
		  "1 pcId=1 {a:\"x\"} | EOF");

	/* short rows, empty cells */
	check("adobe: short rows and key-only rows",
		  "batch=pcId,a,b,c\n1\n2,x\n3,,,z\n",
		  "1 pcId=1 {} | 2 pcId=2 {a:\"x\"} | 3 pcId=3 {c:\"z\"} | EOF");
	check("adobe: only empty cells",
		  "batch=pcId,a,b\n1,,\n",
		  "1 pcId=1 {} | EOF");
	check("adobe: spaces are kept",
		  "batch=pcId,a\n1, x \n",
		  "1 pcId=1 {a:\" x \"} | EOF");
	check("adobe: header with the key column only",
		  "batch=pcId\n1\n2\n",
		  "1 pcId=1 {} | 2 pcId=2 {} | EOF");

	/* header only, empty */
	check("adobe: header only", "batch=pcId,a,b\n", "EOF");
	check("adobe: header only without newline", "batch=pcId,a,b", "EOF");
	check("adobe: header only, CRLF and blank lines", "batch=pcId,a\r\n\r\n\n", "EOF");

	/* percent-decoding */
	check("adobe: values are percent-decoded, + stays +",
		  "batch=pcId,a,b,c,d\n1,x%2Cy,a+b,100%25,%E2%82%ac\n",
		  "1 pcId=1 {a:\"x,y\", b:\"a+b\", c:\"100%\", d:\"\\xE2\\x82\\xAC\"} | EOF");
	check("adobe: names are percent-decoded, + stays +",
		  "batch=pcId,caf%C3%A9,a+b,x%20y\n1,p,q,r\n",
		  "1 pcId=1 {caf\\xC3\\xA9:\"p\", a+b:\"q\", x y:\"r\"} | EOF");
	check("adobe: key is percent-decoded",
		  "batch=pcId,a\nab%2Fc%20d,x\n",
		  "1 pcId=ab/c d {a:\"x\"} | EOF");
	check("adobe: key column name is percent-decoded",
		  "batch=pc%49d,a\n1,x\n",
		  "1 pcId=1 {a:\"x\"} | EOF");
	check("adobe: raw UTF-8 values",
		  "batch=pcId,a\n1,\xC3\xA9t\xC3\xA9 \xF0\x9F\x98\x80\n",
		  "1 pcId=1 {a:\"\\xC3\\xA9t\\xC3\\xA9 \\xF0\\x9F\\x98\\x80\"} | EOF");
	check("adobe: a quote is an ordinary character",
		  "batch=pcId,a\n1,\"x\n",
		  "1 pcId=1 {a:\"\"x\"} | EOF");

	/* bad rows: rejected alone */
	check("adobe: too many cells",
		  "batch=pcId,a,b\n1,x,y,SECRET\n2,z\n",
		  "1 ERR(too many cells: the row has 4, the header has 3 columns) pcId=1 | 2 pcId=2 {a:\"z\"} | EOF");
	check("adobe: too many cells (trailing comma)",
		  "batch=pcId,a\n1,x,\n",
		  "1 ERR(too many cells: the row has 3, the header has 2 columns) pcId=1 | EOF");
	check("adobe: too many cells, counted to the end",
		  "batch=pcId\n1,SECRET,,,\n",
		  "1 ERR(too many cells: the row has 5, the header has 1 column) pcId=1 | EOF");
	check("adobe: bad percent escape (non-hex)",
		  "batch=pcId,a,b\n1,%G1SECRET,y\n2,z\n",
		  "1 ERR(bad percent escape (a '%' must be followed by two hex digits) in column 2 (a)) pcId=1 | 2 pcId=2 {a:\"z\"} | EOF");
	check("adobe: bad percent escape (truncated)",
		  "batch=pcId,a,b\n1,x,SECRET%4\n",
		  "1 ERR(bad percent escape (a '%' must be followed by two hex digits) in column 3 (b)) pcId=1 | EOF");
	check("adobe: bad percent escape (lone % at line end)",
		  "batch=pcId,a\n1,SECRET%\r\n",
		  "1 ERR(bad percent escape (a '%' must be followed by two hex digits) in column 2 (a)) pcId=1 | EOF");
	check("adobe: bad percent escape in the key",
		  "batch=pcId,a\nSECRET%zz,x\n",
		  "1 ERR(bad percent escape (a '%' must be followed by two hex digits) in column 1 (pcId)) | EOF");
	check("adobe: invalid UTF-8 after decoding",
		  "batch=pcId,a\n1,SECRET%FF\n",
		  "1 ERR(invalid UTF-8 in column 2 (a)) pcId=1 | EOF");
	check("adobe: invalid UTF-8, raw bytes",
		  "batch=pcId,a\n1,SECRET\xC3\x28\n",
		  "1 ERR(invalid UTF-8 in column 2 (a)) pcId=1 | EOF");
	check("adobe: invalid UTF-8, overlong",
		  "batch=pcId,a\n1,%C0%AF\n",
		  "1 ERR(invalid UTF-8 in column 2 (a)) pcId=1 | EOF");
	check("adobe: invalid UTF-8, encoded surrogate",
		  "batch=pcId,a\n1,%ED%A0%80\n",
		  "1 ERR(invalid UTF-8 in column 2 (a)) pcId=1 | EOF");
	check("adobe: invalid UTF-8, above U+10FFFF",
		  "batch=pcId,a\n1,%F4%90%80%80\n",
		  "1 ERR(invalid UTF-8 in column 2 (a)) pcId=1 | EOF");
	check("adobe: invalid UTF-8, truncated sequence",
		  "batch=pcId,a,b\n1,%E2%82,x\n",
		  "1 ERR(invalid UTF-8 in column 2 (a)) pcId=1 | EOF");
	check("adobe: invalid UTF-8 in the key",
		  "batch=pcId,a\n\xFFSECRET,x\n",
		  "1 ERR(invalid UTF-8 in column 1 (pcId)) | EOF");
	check("adobe: NUL character from %00",
		  "batch=pcId,a\n1,SECRET%00\n",
		  "1 ERR(NUL character (%00) in column 2 (a)) pcId=1 | EOF");
	check_len("adobe: raw NUL byte", "batch=pcId,a\n1,SECRET\0x\n", 23,
			  "1 ERR(NUL character (%00) in column 2 (a)) pcId=1 | EOF");
	check("adobe: empty key",
		  "batch=pcId,a\n,SECRET\n2,y\n",
		  "1 ERR(empty key in column 1 (pcId)) | 2 pcId=2 {a:\"y\"} | EOF");
	check("adobe: row of commas only",
		  "batch=pcId,a\n,\n",
		  "1 ERR(empty key in column 1 (pcId)) | EOF");
	check("adobe: one bad row in the middle",
		  "batch=pcId,a\n1,x\n2,%zSECRET\n3,z\n",
		  "1 pcId=1 {a:\"x\"} | 2 ERR(bad percent escape (a '%' must be followed by two hex digits) in column 2 (a)) pcId=2 | 3 pcId=3 {a:\"z\"} | EOF");
	check("adobe: long column name is cut short in a reason",
		  "batch=pcId,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n1,%\n",
		  "1 ERR(bad percent escape (a '%' must be followed by two hex digits) in column 2 (aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...)) pcId=1 | EOF");
	check("adobe: control characters of a name refuse the header",
		  "batch=pcId,a%0Ab\n1,%\n",
		  HDR_ERR("the name of column 2 holds a control character or a byte-order mark"));

	/* bad headers: the whole batch */
	check("adobe: unknown key column", "batch=SECRET,a\n1,x\n",
		  HDR_ERR("unknown key column; the first column must be pcId or thirdPartyId"));
	check("adobe: key column is case-sensitive", "batch=pcid,a\n1,x\n",
		  HDR_ERR("unknown key column; the first column must be pcId or thirdPartyId"));
	check("adobe: tntId is not a key column", "batch=tntId,a\n1,x\n",
		  HDR_ERR("unknown key column; the first column must be pcId or thirdPartyId"));
	check("adobe: empty header", "batch=\n1,x\n",
		  HDR_ERR("the first column must be pcId or thirdPartyId"));
	check("adobe: empty key column name", "batch=,a\n1,x\n",
		  HDR_ERR("the first column must be pcId or thirdPartyId"));
	check("adobe: duplicate header names", "batch=pcId,a,b,a\n1,x\n",
		  HDR_ERR("column 4 repeats the name of column 2"));
	check("adobe: duplicate header names after decoding", "batch=pcId,ab,%61b\n1,x\n",
		  HDR_ERR("column 3 repeats the name of column 2"));
	check("adobe: header repeats the key column", "batch=pcId,a,pcId\n1,x\n",
		  HDR_ERR("column 3 repeats the name of column 1"));
	check("adobe: header names both key columns", "batch=pcId,a,thirdPartyId\n1,x\n",
		  HDR_ERR("column 3 is a second key column; a batch has one key column, pcId or thirdPartyId"));
	check("adobe: empty header name", "batch=pcId,a,,b\n1,x\n",
		  HDR_ERR("column 3 has an empty name"));
	check("adobe: trailing comma in header", "batch=pcId,a,\n1,x\n",
		  HDR_ERR("column 3 has an empty name"));
	check("adobe: bad percent escape in header", "batch=pcId,SECRET%2\n1,x\n",
		  HDR_ERR("bad percent escape (a '%' must be followed by two hex digits) in column 2"));
	check("adobe: bad percent escape in header key", "batch=pc%XXId,a\n",
		  HDR_ERR("bad percent escape (a '%' must be followed by two hex digits) in column 1"));
	check("adobe: invalid UTF-8 in header (decoded)", "batch=pcId,a,SECRET%C3%28\n1,x\n",
		  HDR_ERR("invalid UTF-8 in column 3"));
	check("adobe: invalid UTF-8 in header (raw)", "batch=pcId,SECRET\xFF\n1,x\n",
		  HDR_ERR("invalid UTF-8 in column 2"));
	check("adobe: NUL in header", "batch=pcId,SECRET%00\n1,x\n",
		  HDR_ERR("NUL character (%00) in column 2"));
	check("adobe: header with CRLF", "batch=pcId,a\r\n1,x\r\n",
		  "1 pcId=1 {a:\"x\"} | EOF");

	/* a file that cannot be split into lines, names no message can show */
	check("adobe: CR-only line ends", "batch=pcId,tier\rcr1,gold\r",
		  HDR_ERR("a carriage return (CR) that does not end its line; lines must end in LF or CRLF"));
	check("adobe: CR-only line ends after an LF header", "batch=pcId,tier\ncr1,gold\rcr2,SECRET\r",
		  "FATAL(record 1: a carriage return (CR) that does not end its line; lines must end in LF or CRLF)");
	check("adobe: a bare CR in a later line", "batch=pcId,tier\r\n1,x\r\n2,y\r3,SECRET\r\n",
		  "1 pcId=1 {tier:\"x\"} | FATAL(record 2: a carriage return (CR) that does not end its line; lines must end in LF or CRLF)");
	check("adobe: a bare CR in a blank line", "batch=pcId,tier\n1,x\n \r \n2,y\n",
		  "1 pcId=1 {tier:\"x\"} | FATAL(record 2: a carriage return (CR) that does not end its line; lines must end in LF or CRLF)");
	check("adobe: control character in a header name (decoded)", "batch=pcId,ti%0Aer\n1,x\n",
		  HDR_ERR("the name of column 2 holds a control character or a byte-order mark"));
	check("adobe: control character in a header name (raw tab)", "batch=pcId,a,ti\ter\n1,x\n",
		  HDR_ERR("the name of column 3 holds a control character or a byte-order mark"));
	check("adobe: DEL in a header name", "batch=pcId,ti%7Fer\n1,x\n",
		  HDR_ERR("the name of column 2 holds a control character or a byte-order mark"));
	check("adobe: C1 control in a header name", "batch=pcId,ti%C2%85er\n1,x\n",
		  HDR_ERR("the name of column 2 holds a control character or a byte-order mark"));
	check("adobe: byte-order mark in a header name", "batch=pcId,%EF%BB%BFtier\n1,x\n",
		  HDR_ERR("the name of column 2 holds a control character or a byte-order mark"));
	check("adobe: byte-order mark before the key column", "batch=\xEF\xBB\xBFpcId,tier\n1,x\n",
		  HDR_ERR("the name of column 1 holds a control character or a byte-order mark"));
	check("adobe: other non-ASCII names are fine", "batch=pcId,%C2%A0t\xC3\xA9\xEF\xBB\xBE\n1,x\n",
		  "1 pcId=1 {\\xC2\\xA0t\\xC3\\xA9\\xEF\\xBB\\xBE:\"x\"} | EOF");
}

static void
test_adobe_columns(void)
{
	sbuf		b = {0};
	int			i;
	char	   *got;
	tp_format	f;

	/* a header at the column limit is accepted, one more is refused */
	sb_printf(&b, "batch=pcId");
	for (i = 1; i < 100000; i++)
		sb_printf(&b, ",c%d", i);
	sb_printf(&b, "\n1,v\n");
	got = dump(b.s, b.len, &f);
	check_true("adobe: 100000 columns are accepted",
			   strcmp(got, "1 pcId=1 {c1:\"v\"} | EOF") == 0, got);
	free(got);
	b.len = 0;
	sb_printf(&b, "batch=pcId");
	for (i = 1; i <= 100000; i++)
		sb_printf(&b, ",c%d", i);
	got = dump(b.s, b.len, &f);
	check_true("adobe: more than 100000 columns are refused",
			   strcmp(got, "OPEN(bad batch header: more than 100000 columns)") == 0, got);
	free(got);
	live_bytes = 0;

	/* many duplicate-free names in random-looking order: sort-based check */
	b.len = 0;
	sb_printf(&b, "batch=pcId");
	for (i = 0; i < 50000; i++)
		sb_printf(&b, ",n%d", (i * 7919) % 50000);
	sb_printf(&b, ",n4242\n");
	got = dump(b.s, b.len, &f);
	check_true("adobe: a duplicate among 50001 names is found",
			   strstr(got, "repeats the name of column") != NULL, got);
	free(got);
	free(b.s);
	live_bytes = 0;
}

/* --------------------------------------------------------- NDJSON cases */

static void
test_ndjson(void)
{
	char		deep[8000];
	int			i,
				n;

	check("ndjson: every value kind",
		  "{\"pcId\":\"1\",\"s\":\"x\",\"i\":42,\"r\":1.5,\"t\":true,\"f\":false,\"n\":null,\"o\":{\"a\":1},\"a\":[1]}\n",
		  "1 pcId=1 {s:\"x\", i:42, r:1.5, t:true, f:false, n:null, o:nested, a:nested} | EOF");
	check("ndjson: thirdPartyId key",
		  "{\"thirdPartyId\":\"crm-1\",\"tier\":\"gold\",\"old\":null}\n",
		  "1 thirdPartyId=crm-1 {tier:\"gold\", old:null} | EOF");
	check("ndjson: key only",
		  "{\"pcId\":\"1\"}\n",
		  "1 pcId=1 {} | EOF");
	check("ndjson: numbers keep their text, as jsonb input does",
		  "{\"pcId\":\"1\",\"a\":0.1,\"b\":-0,\"c\":1e2,\"d\":-12.5e-3,\"e\":9223372036854775807,\"f\":-9223372036854775808,\"g\":1e-400,\"h\":0.30000000000000004,\"i\":1.7976931348623157e308}\n",
		  "1 pcId=1 {a:0.1, b:-0, c:1e2, d:-12.5e-3, e:9223372036854775807, f:-9223372036854775808, g:1e-400, h:0.30000000000000004, i:1.7976931348623157e308} | EOF");
	check("ndjson: 4.0 and 20 digits stay as written, nested numbers do not shift",
		  "{\"pcId\":\"1\",\"n\":{\"x\":1,\"y\":[2,3]},\"exact\":4.0,\"long\":0.12345678901234567890}\n",
		  "1 pcId=1 {n:nested, exact:4.0, long:0.12345678901234567890} | EOF");
	check("json array: numbers keep their text",
		  "[{\"pcId\":\"1\",\"exact\":4.0 , \"sci\" : 1E+2}]",
		  "1 pcId=1 {exact:4.0, sci:1E+2} | EOF");
	check("ndjson: escapes and UTF-8 are decoded",
		  "{\"pcId\":\"\\u00e9\",\"k\\n\":\"a\\\"b\\\\c\\/\\t\",\"e\":\"\\ud83d\\ude00\",\"r\":\"\xC3\xA9\"}\n",
		  "1 pcId=\\xC3\\xA9 {k\\x0A:\"a\"b\\c/\\x09\", e:\"\\xF0\\x9F\\x98\\x80\", r:\"\\xC3\\xA9\"} | EOF");
	check("ndjson: CRLF line ends",
		  "{\"pcId\":\"1\",\"a\":\"x\"}\r\n{\"pcId\":\"2\"}\r\n",
		  "1 pcId=1 {a:\"x\"} | 2 pcId=2 {} | EOF");
	check("ndjson: last line without newline",
		  "{\"pcId\":\"1\"}\n{\"pcId\":\"2\"}",
		  "1 pcId=1 {} | 2 pcId=2 {} | EOF");
	check("ndjson: blank lines are skipped and not numbered",
		  "\n{\"pcId\":\"1\"}\n\n  \r\n\t\n{\"pcId\":\"2\"}\n\n",
		  "1 pcId=1 {} | 2 pcId=2 {} | EOF");
	check("ndjson: whitespace around objects",
		  "  {\"pcId\" : \"1\" , \"a\" : 1 }  \r\n",
		  "1 pcId=1 {a:1} | EOF");
	check("ndjson: one bad line in the middle is rejected alone",
		  "{\"pcId\":\"1\"}\n{\"pcId\":\"2\",\"a\":SECRET}\n{\"pcId\":\"3\"}\n",
		  "1 pcId=1 {} | 2 ERR(invalid JSON syntax) @2:22 | 3 pcId=3 {} | EOF");
	check("ndjson: line numbers count blank lines",
		  "\n\n{\"pcId\":\"1\"}\n\n  {\"pcId\":2}\n",
		  "1 pcId=1 {} | 2 ERR(pcId must be a non-empty string) @5:3 | EOF");

	/* not an object */
	check("ndjson: array line",
		  "{\"pcId\":\"1\"}\n[{\"pcId\":\"SECRET\"}]\n",
		  "1 pcId=1 {} | 2 ERR(not a JSON object) @2:1 | EOF");
	check("ndjson: scalar lines",
		  "{\"pcId\":\"1\"}\n\"SECRET\"\n42\nnull\nSECRET\n",
		  "1 pcId=1 {} | 2 ERR(not a JSON object) @2:1 | 3 ERR(not a JSON object) @3:1 | "
		  "4 ERR(not a JSON object) @4:1 | 5 ERR(not a JSON object) @5:1 | EOF");

	/* keys */
	check("ndjson: no key",
		  "{\"a\":\"SECRET\"}\n",
		  "1 ERR(no key: an object needs pcId or thirdPartyId) @1:1 | EOF");
	check("ndjson: both keys",
		  "{\"pcId\":\"1\",\"thirdPartyId\":\"SECRET\"}\n",
		  "1 ERR(both pcId and thirdPartyId: a record has one key) @1:1 pcId=1 | EOF");
	check("ndjson: empty key",
		  "{\"pcId\":\"\",\"a\":\"SECRET\"}\n",
		  "1 ERR(pcId must be a non-empty string) @1:1 | EOF");
	check("ndjson: numeric key",
		  "{\"thirdPartyId\":123}\n",
		  "1 ERR(thirdPartyId must be a non-empty string) @1:1 | EOF");
	check("ndjson: null key",
		  "{\"pcId\":null}\n",
		  "1 ERR(pcId must be a non-empty string) @1:1 | EOF");
	check("ndjson: key names are case-sensitive",
		  "{\"PCID\":\"1\"}\n",
		  "1 ERR(no key: an object needs pcId or thirdPartyId) @1:1 | EOF");

	/* what jansson refuses */
	check("ndjson: duplicate keys",
		  "{\"pcId\":\"1\",\"a\":1,\"a\":\"SECRET\"}\n{\"pcId\":\"2\"}\n",
		  "1 ERR(duplicate key) @1:21 | 2 pcId=2 {} | EOF");
	check("ndjson: duplicate key column",
		  "{\"pcId\":\"1\",\"pcId\":\"SECRET\"}\n",
		  "1 ERR(duplicate key) @1:18 | EOF");
	check("ndjson: \\u0000 in a value",
		  "{\"pcId\":\"1\",\"a\":\"SECRET\\u0000\"}\n{\"pcId\":\"2\"}\n",
		  "1 ERR(a string contains \\u0000 (NUL)) @1:30 | 2 pcId=2 {} | EOF");
	check("ndjson: \\u0000 in a key",
		  "{\"pcId\":\"1\",\"SECRET\\u0000\":1}\n",
		  "1 ERR(a key contains \\u0000 (NUL)) @1:26 | EOF");
	check("ndjson: lone high surrogate",
		  "{\"pcId\":\"1\",\"a\":\"SECRET\\ud800\"}\n",
		  "1 ERR(invalid JSON: \\u escape of an unpaired UTF-16 surrogate) @1:30 | EOF");
	check("ndjson: lone low surrogate",
		  "{\"pcId\":\"1\",\"a\":\"\\udc00SECRET\"}\n",
		  "1 ERR(invalid JSON: \\u escape of an unpaired UTF-16 surrogate) @1:30 | EOF");
	check("ndjson: invalid UTF-8",
		  "{\"pcId\":\"1\",\"a\":\"SECRET\xFF\"}\n{\"pcId\":\"2\"}\n",
		  "1 ERR(invalid UTF-8) @1:24 | 2 pcId=2 {} | EOF");
	check("ndjson: invalid UTF-8 after multibyte characters",
		  "{\"pcId\":\"\xC3\xA9\xC3\xA9\",\"a\":\"\xED\xA0\x80\"}\n",
		  "1 ERR(invalid UTF-8) @1:19 | EOF");
	check("ndjson: NaN",
		  "{\"pcId\":\"1\",\"a\":NaN}\n",
		  "1 ERR(invalid JSON syntax) @1:19 | EOF");
	check("ndjson: Infinity",
		  "{\"pcId\":\"1\",\"a\":-Infinity}\n",
		  "1 ERR(invalid JSON syntax) @1:17 | EOF");
	/* numbers jansson refuses are passed on as written: numeric decides */
	check("ndjson: 1e999",
		  "{\"pcId\":\"1\",\"a\":1e999}\n",
		  "1 pcId=1 {a:1e999} | EOF");
	check("ndjson: huge integer",
		  "{\"pcId\":\"1\",\"a\":123456789012345678901234567890}\n",
		  "1 pcId=1 {a:123456789012345678901234567890} | EOF");
	check("ndjson: huge negative integer, among others",
		  "{\"pcId\":\"1\", \"s\":\"x\",\"a\":-9223372036854775809 ,\"b\":2.5,\"c\":-1E+400}\n",
		  "1 pcId=1 {s:\"x\", a:-9223372036854775809, b:2.5, c:-1E+400} | EOF");
	check("ndjson: huge number nested (refused with its record)",
		  "{\"pcId\":\"1\",\"o\":[1e999]}\n",
		  "1 ERR(number out of range) @1:22 | EOF");
	check("ndjson: huge number and a duplicate key",
		  "{\"pcId\":\"1\",\"a\":1e999,\"a\":1}\n",
		  "1 ERR(duplicate key) @1:25 | EOF");
	check("ndjson: huge number as the key",
		  "{\"pcId\":1e999}\n",
		  "1 ERR(pcId must be a non-empty string) @1:1 | EOF");
	check("ndjson: trailing garbage after the object",
		  "{\"pcId\":\"1\"} SECRET\n",
		  "1 ERR(invalid JSON: unexpected data after the object) @1:19 | EOF");
	check("ndjson: two objects on a line",
		  "{\"pcId\":\"1\"}{\"pcId\":\"2\"}\n",
		  "1 ERR(invalid JSON: unexpected data after the object) @1:13 | EOF");
	check("ndjson: truncated last line",
		  "{\"pcId\":\"1\"}\n{\"pcId\":\"SECRET",
		  "1 pcId=1 {} | 2 ERR(invalid JSON: unexpected end of input) @2:15 | EOF");
	check("ndjson: object split over two lines",
		  "{\"pcId\":\"1\",\n\"a\":1}\n",
		  "1 ERR(invalid JSON: unexpected end of input) @1:12 | 2 ERR(not a JSON object) @2:1 | EOF");
	check("ndjson: trailing comma in an object",
		  "{\"pcId\":\"1\",}\n",
		  "1 ERR(invalid JSON syntax) @1:13 | EOF");
	check("ndjson: single quotes",
		  "{'pcId':'SECRET'}\n",
		  "1 ERR(invalid JSON syntax) @1:2 | EOF");
	check("ndjson: control character in a string",
		  "{\"pcId\":\"1\",\"a\":\"SECRET\tx\"}\n",
		  "1 ERR(invalid JSON syntax) @1:23 | EOF");
	check_len("ndjson: NUL byte in a string",
			  "{\"pcId\":\"1\",\"a\":\"SEC\0RET\"}\n", 27,
			  "1 ERR(invalid JSON: NUL byte) @1:21 | EOF");
	check_len("ndjson: NUL byte after a number (jansson would drop it)",
			  "{\"pcId\":\"1\",\"a\":1\0}\n{\"pcId\":\"2\"}\n\0\n{\"pcId\":\"3\"}", 47,
			  "1 ERR(invalid JSON: NUL byte) @1:18 | 2 pcId=2 {} | 3 ERR(not a JSON object) @3:1 | 4 pcId=3 {} | EOF");

	/* nesting depth */
	n = sprintf(deep, "{\"pcId\":\"1\",\"a\":");
	for (i = 0; i < 2100; i++)
		deep[n++] = '[';
	for (i = 0; i < 2100; i++)
		deep[n++] = ']';
	n += sprintf(deep + n, "}\n{\"pcId\":\"2\"}\n");
	check_len("ndjson: nesting deeper than 2048", deep, n,
			  "1 ERR(nesting too deep (more than 2048 levels)) @1:2064 | 2 pcId=2 {} | EOF");
	n = sprintf(deep, "{\"pcId\":\"1\",\"a\":");
	for (i = 0; i < 1000; i++)
		deep[n++] = '[';
	for (i = 0; i < 1000; i++)
		deep[n++] = ']';
	n += sprintf(deep + n, "}\n");
	check_len("ndjson: nesting of 1000 is a nested value", deep, n,
			  "1 pcId=1 {a:nested} | EOF");
}

/* ----------------------------------------------------- JSON array cases */

static void
test_json_array(void)
{
	char		deep[8000];
	int			i,
				n;

	check("array: two records",
		  "[{\"pcId\":\"1\",\"a\":\"x\",\"n\":2.5},{\"thirdPartyId\":\"t\",\"b\":false,\"c\":null}]",
		  "1 pcId=1 {a:\"x\", n:2.5} | 2 thirdPartyId=t {b:false, c:null} | EOF");
	check("array: whitespace and newlines everywhere",
		  " \n[ \r\n {\"pcId\":\"1\"} \n , \t{ \"pcId\" : \"2\" }\r\n ] \n\n",
		  "1 pcId=1 {} | 2 pcId=2 {} | EOF");
	check("array: empty", "[]", "EOF");
	check("array: empty with whitespace", " [ \n ] \n", "EOF");
	check("array: nested values",
		  "[{\"pcId\":\"1\",\"o\":{\"x\":[1,{\"y\":\"]\"}]},\"a\":[]}]",
		  "1 pcId=1 {o:nested, a:nested} | EOF");

	/* broken structure: fatal */
	check("array: missing ']'", "[{\"pcId\":\"1\"}",
		  "1 pcId=1 {} | FATAL(JSON array: missing ']' at the end of the batch)");
	check("array: missing ']' after ','", "[{\"pcId\":\"1\"},",
		  "1 pcId=1 {} | FATAL(JSON array: missing ']' at the end of the batch)");
	check("array: '[' alone", "[", "FATAL(JSON array: missing ']' at the end of the batch)");
	check("array: missing ','", "[{\"pcId\":\"1\"} {\"pcId\":\"SECRET\"}]",
		  "1 pcId=1 {} | FATAL(JSON array: expected ',' or ']' at line 1, column 15)");
	check("array: trailing comma", "[{\"pcId\":\"1\"},\n ]",
		  "1 pcId=1 {} | FATAL(JSON array: expected a value after ',' at line 2, column 2)");
	check("array: leading comma", "[,{\"pcId\":\"1\"}]",
		  "FATAL(JSON array: element 1 does not parse (invalid JSON syntax) at line 1, column 2)");
	check("array: trailing garbage", "[{\"pcId\":\"1\"}] SECRET",
		  "1 pcId=1 {} | FATAL(JSON array: unexpected data after the closing ']' at line 1, column 16)");
	check("array: second array", "[{\"pcId\":\"1\"}]\n[]",
		  "1 pcId=1 {} | FATAL(JSON array: unexpected data after the closing ']' at line 2, column 1)");
	check("array: syntax error in an element", "[{\"pcId\":\"1\"},\n{\"pcId\":\"2\",}]",
		  "1 pcId=1 {} | FATAL(JSON array: element 2 does not parse (invalid JSON syntax) at line 2, column 13)");
	check("array: unterminated string", "[{\"pcId\":\"SECRET",
		  "FATAL(JSON array: element 1 does not parse (invalid JSON: unexpected end of input) at line 1, column 16)");
	check("array: NaN", "[{\"pcId\":\"1\",\"a\":NaN}]",
		  "FATAL(JSON array: element 1 does not parse (invalid JSON syntax) at line 1, column 20)");
	check("array: NaN as an element", "[NaN]",
		  "FATAL(JSON array: element 1 does not parse (invalid JSON syntax) at line 1, column 2)");
	check("array: invalid UTF-8 outside a string", "[{\"pcId\":\"1\"},\xFF]",
		  "1 pcId=1 {} | FATAL(JSON array: element 2 does not parse (invalid JSON syntax) at line 1, column 15)");
	check_len("array: NUL byte after a number (jansson would drop it)",
			  "[{\"pcId\":\"1\",\"a\":1\0},{\"pcId\":\"2\"}]", 34,
			  "FATAL(JSON array: NUL byte at line 1, column 19)");
	check_len("array: NUL byte between elements",
			  "[{\"pcId\":\"1\"},\n\0{\"pcId\":\"2\"}]", 29,
			  "1 pcId=1 {} | FATAL(JSON array: NUL byte at line 2, column 1)");
	check_len("array: NUL byte after ']'", "[]\0", 3,
			  "FATAL(JSON array: unexpected data after the closing ']' at line 1, column 3)");
	check_len("array: NUL byte as an element", "[1\0]", 4,
			  "1 ERR(not a JSON object) @1:2 | FATAL(JSON array: NUL byte at line 1, column 3)");
	check("array: unbalanced nesting", "[{\"pcId\":\"1\",\"a\":[[[}]",
		  "FATAL(JSON array: element 1 does not parse (invalid JSON syntax) at line 1, column 21)");

	/* bad records: rejected alone */
	check("array: elements that are not objects",
		  "[1, \"SECRET\", null, [\"SECRET\"], {\"pcId\":\"1\"}, true, -2.5e3]",
		  "1 ERR(not a JSON object) @1:2 | 2 ERR(not a JSON object) @1:5 | 3 ERR(not a JSON object) @1:15 | "
		  "4 ERR(not a JSON object) @1:21 | 5 pcId=1 {} | 6 ERR(not a JSON object) @1:47 | "
		  "7 ERR(not a JSON object) @1:53 | EOF");
	check("array: duplicate keys",
		  "[{\"pcId\":\"1\",\"a\":1,\"a\":\"SECRET\"},{\"pcId\":\"2\"}]",
		  "1 ERR(duplicate key) @1:22 | 2 pcId=2 {} | EOF");
	check("array: \\u0000",
		  "[{\"pcId\":\"1\",\"a\":\"SECRET\\u0000\"},{\"pcId\":\"2\"}]",
		  "1 ERR(a string contains \\u0000 (NUL)) @1:31 | 2 pcId=2 {} | EOF");
	check("array: lone surrogate",
		  "[{\"pcId\":\"1\",\"a\":\"\\udfffSECRET\"},{\"pcId\":\"2\"}]",
		  "1 ERR(invalid JSON: \\u escape of an unpaired UTF-16 surrogate) @1:31 | 2 pcId=2 {} | EOF");
	check("array: invalid UTF-8 in a string",
		  "[{\"pcId\":\"1\",\"a\":\"SECRET\xC0\xAF\"},\n{\"pcId\":\"2\"}]",
		  "1 ERR(invalid UTF-8) @1:25 | 2 pcId=2 {} | EOF");
	check("array: 1e999",
		  "[{\"pcId\":\"1\",\"a\":1e999},{\"pcId\":\"2\"}]",
		  "1 pcId=1 {a:1e999} | 2 pcId=2 {} | EOF");
	check("array: huge integer",
		  "[{\"pcId\":\"1\",\"a\":99999999999999999999 },{\"pcId\":\"2\",\"b\":1e-999999}]",
		  "1 pcId=1 {a:99999999999999999999} | 2 pcId=2 {b:1e-999999} | EOF");
	check("array: huge number nested",
		  "[{\"pcId\":\"1\",\"a\":{\"b\":1e999}},{\"pcId\":\"2\"}]",
		  "1 ERR(number out of range) @1:27 | 2 pcId=2 {} | EOF");
	check("array: huge number in a broken element",
		  "[{\"pcId\":\"1\",\"a\":1e999,]",
		  "FATAL(JSON array: element 1 does not parse (number out of range) at line 1, column 22)");
	check("array: no key, both keys, bad keys",
		  "[{\"a\":\"SECRET\"},\n {\"pcId\":\"1\",\"thirdPartyId\":\"SECRET\"},\n {\"pcId\":\"\"},\n {\"thirdPartyId\":[\"SECRET\"]},\n {\"pcId\":\"5\"}]",
		  "1 ERR(no key: an object needs pcId or thirdPartyId) @1:2 | "
		  "2 ERR(both pcId and thirdPartyId: a record has one key) @2:2 pcId=1 | "
		  "3 ERR(pcId must be a non-empty string) @3:2 | "
		  "4 ERR(thirdPartyId must be a non-empty string) @4:2 | "
		  "5 pcId=5 {} | EOF");
	check("array: error columns count characters",
		  "[{\"pcId\":\"\xC3\xA9\xC3\xA9\"}, {\"x\":1}]",
		  "1 pcId=\\xC3\\xA9\\xC3\\xA9 {} | 2 ERR(no key: an object needs pcId or thirdPartyId) @1:17 | EOF");

	/* nesting depth */
	n = sprintf(deep, "[{\"pcId\":\"1\",\"a\":");
	for (i = 0; i < 2100; i++)
		deep[n++] = '[';
	for (i = 0; i < 2100; i++)
		deep[n++] = ']';
	n += sprintf(deep + n, "},{\"pcId\":\"2\"}]");
	check_len("array: nesting deeper than 2048 in an element", deep, n,
			  "1 ERR(nesting too deep (more than 2048 levels)) @1:2065 | 2 pcId=2 {} | EOF");
	n = 0;
	deep[n++] = '[';
	for (i = 0; i < 3000; i++)
		deep[n++] = '[';
	for (i = 0; i < 3000; i++)
		deep[n++] = ']';
	n += sprintf(deep + n, ",{\"pcId\":\"2\"}]");
	check_len("array: an element nested 3000 deep", deep, n,
			  "1 ERR(not a JSON object) @1:2 | 2 pcId=2 {} | EOF");
	n = 0;
	deep[n++] = '[';
	for (i = 0; i < 3000; i++)
		deep[n++] = '[';
	deep[n++] = ']';
	check_len("array: unbalanced deep nesting", deep, n,
			  "FATAL(JSON array: element 1 does not parse (invalid JSON syntax) at line 1, column 3003)");
}

/* A hand-picked set of inputs for the syntax checker alone. */
static void
test_skip(void)
{
	static const struct
	{
		const char *in;
		int			ok;			/* 1: valid, then consumed = len - tail */
		int			tail;
	}			cases[] = {
		{"{}", 1, 0}, {"[]", 1, 0}, {"{} ", 1, 1}, {"0", 1, 0}, {"-0.5e+10,", 1, 1},
		{"\"a\\u12aF\\n\"", 1, 0}, {"{\"a\":[1,{\"b\":null}],\"c\":true}x", 1, 1},
		{"[1,2,]", 0, 0}, {"{\"a\"}", 0, 0}, {"{\"a\":}", 0, 0}, {"01", 1, 1},
		{"1.", 0, 0}, {".5", 0, 0}, {"1e", 0, 0}, {"-", 0, 0}, {"tru", 0, 0},
		{"\"\\x\"", 0, 0}, {"\"\\u12\"", 0, 0}, {"\"a", 0, 0}, {"[1 2]", 0, 0},
		{"{,}", 0, 0}, {"{\"a\":1,}", 0, 0}, {"[}", 0, 0}, {"{]", 0, 0},
		{"\"\x01\"", 0, 0}, {"\"\xFF\"", 1, 0}, {"[\"\\ud800\"]", 1, 0},
	};
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		const char *in = cases[i].in;
		size_t		len = strlen(in);
		const char *end = NULL;
		unsigned char *stack = NULL;
		size_t		cap = 0;
		int			rc = tp_json_skip(in, in + len, &end, &stack, &cap);
		bool		ok;
		char		desc[128];

		if (cases[i].ok)
			ok = rc == TP_SKIP_OK && end == in + len - cases[i].tail;
		else
			ok = rc == TP_SKIP_BAD;
		count_free(stack);
		live_bytes = 0;
		snprintf(desc, sizeof(desc), "skip: syntax check case %zu", i + 1);
		check_true(desc, ok, in);
	}
}

/* ---------------------------------------------------------- big batches */

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Read a whole batch; returns the number of good records, -1 on trouble. */
static long
read_all(const char *data, size_t len, long *errors, char *last_key,
		 size_t keylen)
{
	char		errbuf[256];
	tp_reader  *r = tp_reader_open(data, len, errbuf, sizeof(errbuf));
	tp_record	rec;
	tp_status	st;
	long		good = 0;

	*errors = 0;
	if (r == NULL)
		return -1;
	while ((st = tp_reader_next(r, &rec)) == TP_RECORD)
	{
		if (rec.error)
			(*errors)++;
		else
		{
			good++;
			snprintf(last_key, keylen, "%.*s", (int) rec.key_len, rec.key);
		}
	}
	tp_reader_close(r);
	return st == TP_EOF ? good : -1;
}

static void
big_batch(const char *what, const sbuf *b, long expect)
{
	long		good,
				errors;
	char		last[64] = "";
	char		desc[256];
	char		diag[256];
	double		t0,
				t;
	bool		ok;

	live_bytes = peak_bytes = 0;
	t0 = now();
	good = read_all(b->s, b->len, &errors, last, sizeof(last));
	t = now() - t0;
	ok = good == expect && errors == 0 && strcmp(last, "p500000") == 0;
	snprintf(desc, sizeof(desc), "%s: %ld records (%.1f MB) read end to end",
			 what, expect, b->len / 1e6);
	snprintf(diag, sizeof(diag), "good %ld, errors %ld, last key %s",
			 good, errors, last);
	check_true(desc, ok, diag);

	/* memory proportional to one record, not to the batch */
	snprintf(desc, sizeof(desc),
			 "%s: peak reader memory %zu bytes (under 64 kB), all freed",
			 what, peak_bytes);
	snprintf(diag, sizeof(diag), "peak %zu, left %zu", peak_bytes, live_bytes);
	check_true(desc, peak_bytes < 65536 && live_bytes == 0, diag);
	/* a note for whoever reads the log, not a test */
	printf("# %s: %.0f ms, %.0f MB/s, %.0f records/s\n",
		   what, t * 1000, b->len / 1e6 / t, expect / t);
}

static void
test_big(void)
{
	sbuf		b = {0};
	long		i;

	/* 500,000 NDJSON lines of five 10-20 character strings */
	for (i = 1; i <= 500000; i++)
		sb_printf(&b, "{\"pcId\":\"p%ld\",\"firstName\":\"Given%07ld\",\"lastName\":\"Family-%07ldxyz\","
				  "\"tier\":\"gold-member-%04ld\",\"city\":\"City of %07ld\",\"segment\":\"seg-%ld-abcdefghij\"}\n",
				  i, i, i, i % 10000, i, i % 97);
	big_batch("ndjson", &b, 500000);

	/* the same as a JSON array */
	b.len = 0;
	sb_add(&b, "[\n", 2);
	for (i = 1; i <= 500000; i++)
		sb_printf(&b, "%s{\"pcId\":\"p%ld\",\"firstName\":\"Given%07ld\",\"lastName\":\"Family-%07ldxyz\","
				  "\"tier\":\"gold-member-%04ld\",\"city\":\"City of %07ld\",\"segment\":\"seg-%ld-abcdefghij\"}\n",
				  i > 1 ? "," : "", i, i, i, i % 10000, i, i % 97);
	sb_add(&b, "]\n", 2);
	big_batch("json array", &b, 500000);

	/* and as an Adobe batch file */
	b.len = 0;
	sb_printf(&b, "batch=pcId,firstName,lastName,tier,city,segment\n");
	for (i = 1; i <= 500000; i++)
		sb_printf(&b, "p%ld,Given%07ld,Family-%07ldxyz,gold-member-%04ld,City%%20of%%20%07ld,seg-%ld-abcdefghij\n",
				  i, i, i, i % 10000, i, i % 97);
	big_batch("adobe", &b, 500000);
	free(b.s);
}

/* Records stay valid until the next call, and a reused reader buffer
 * does not corrupt them. */
static void
test_lifetime(void)
{
	const char *batch = "batch=pcId,a\n1,x%41y\n2,%42\n";
	char		errbuf[256];
	tp_reader  *r = tp_reader_open(batch, strlen(batch), errbuf, sizeof(errbuf));
	tp_record	rec;
	char		first[16] = "";
	bool		ok = r != NULL;

	if (ok && tp_reader_next(r, &rec) == TP_RECORD && rec.nattrs == 1)
		snprintf(first, sizeof(first), "%.*s", (int) rec.attrs[0].value_len,
				 rec.attrs[0].value);
	ok = ok && strcmp(first, "xAy") == 0;
	ok = ok && tp_reader_next(r, &rec) == TP_RECORD && rec.nattrs == 1 &&
		rec.attrs[0].value_len == 1 && rec.attrs[0].value[0] == 'B';
	ok = ok && rec.key_len == 1 && rec.key[0] == '2';
	tp_reader_close(r);
	check_true("lifetime: records decode into reused buffers", ok, first);
	check_true("lifetime: close frees everything", live_bytes == 0, "leak");
	live_bytes = 0;
	tp_reader_close(NULL);
	check_true("lifetime: close(NULL) is harmless", true, NULL);
}

/* ------------------------------------------- limits and interrupts */

static long interrupts;

static void
count_interrupt(void)
{
	interrupts++;
}

/* Does the stream of r look as expected?  (It may read all of it.) */
typedef bool (*stream_check) (tp_reader *r, tp_record *rec);

/*
 * Read b with the counting interrupt hook (and a member limit): the case
 * passes when check says so and the hook ran at least min_calls times.
 */
static void
check_interrupts(const char *desc, const sbuf *b, int64_t limit,
				 stream_check check, long min_calls)
{
	char		errbuf[256];
	char		diag[64];
	tp_reader  *r;
	tp_record	rec;
	bool		ok;

	interrupts = 0;
	r = tp_reader_open(b->s, b->len, errbuf, sizeof(errbuf));
	ok = r != NULL;
	if (ok)
	{
		tp_reader_limit_members(r, limit);
		ok = check(r, &rec);
		tp_reader_close(r);
	}
	snprintf(diag, sizeof(diag), "%ld calls", interrupts);
	check_true(desc, ok && interrupts >= min_calls, diag);
}

static bool
wide_ndjson_read(tp_reader *r, tp_record *rec)
{
	return tp_reader_next(r, rec) == TP_RECORD && rec->error == NULL &&
		rec->nattrs == 200000 && !rec->shared_names;
}

static bool
rejected_then_eof(tp_reader *r, tp_record *rec)
{
	return tp_reader_next(r, rec) == TP_RECORD && rec->error != NULL &&
		tp_reader_next(r, rec) == TP_EOF;
}

static bool
wide_adobe_read(tp_reader *r, tp_record *rec)
{
	return tp_reader_next(r, rec) == TP_RECORD && rec->error == NULL &&
		rec->nattrs == 70000 && rec->shared_names;
}

static bool
long_text_read(tp_reader *r, tp_record *rec)
{
	if (tp_reader_next(r, rec) != TP_RECORD || rec->error != NULL ||
		rec->nattrs != 1 || rec->attrs[0].value_len != 3000000 ||
		memcmp(rec->attrs[0].value + 2999990, "0123456789", 10) != 0)
		return false;
	return tp_reader_next(r, rec) == TP_RECORD && rec->error == NULL &&
		rec->nattrs == 1 && rec->attrs[0].value_len == 3 &&
		tp_reader_next(r, rec) == TP_EOF;
}

/* One record of n members "mN":1 (and the key) as an NDJSON line. */
static void
wide_record(sbuf *b, const char *open, int n, const char *close)
{
	sb_printf(b, "%s{\"pcId\":\"w\"", open);
	for (int i = 0; i < n; i++)
		sb_printf(b, ",\"m%d\":1", i);
	sb_printf(b, "}%s", close);
}

static void
test_limits(void)
{
	sbuf		b = {0};

	member_limit = 3;
	check("limit: a record of more members than the limit is rejected, the next one read",
		  "{\"pcId\":\"k\",\"a\":1,\"b\":2,\"c\":3}\n{\"pcId\":\"j\",\"a\":1,\"b\":\"SECRET\"}\n",
		  "1 ERR(too many members: a record may have at most 3) @1:1 | 2 pcId=j {a:1, b:\"SECRET\"} | EOF");
	check("limit: counts top-level members only",
		  "{\"pcId\":\"k\",\"a\":{\"x\":1,\"y\":2,\"z\":[1,2,3]},\"b\":[1,2,3,4,5,6]}",
		  "1 pcId=k {a:nested, b:nested} | EOF");
	check("limit: JSON array, the element after is read",
		  "[{\"pcId\":\"k\",\"a\":1,\"b\":2,\"c\":3},\n {\"pcId\":\"j\",\"a\":1}]",
		  "1 ERR(too many members: a record may have at most 3) @1:2 | 2 pcId=j {a:1} | EOF");
	check("limit: JSON array whose long element breaks is broken",
		  "[{\"pcId\":\"k\",\"a\":1,\"b\":2,\"c\":3,}]",
		  "FATAL(JSON array: invalid JSON syntax at line 1, column 32)");
	check("limit: a broken line under the limit is jansson's to describe",
		  "{\"pcId\":\"k\",\"a\":1,\"b\":2,\"c\" 3}",
		  "1 ERR(invalid JSON syntax) @1:29 | EOF");
	check("limit: Adobe rows are not limited (their columns are)",
		  "batch=pcId,a,b,c,d\nk,1,2,3,4\n",
		  "1 pcId=k {a:\"1\", b:\"2\", c:\"3\", d:\"4\"} | EOF");
	member_limit = 0;

	/* the interrupt hook: members, cells and a long text */
	tp_set_interrupt_hook(count_interrupt);
	wide_record(&b, "", 200000, "\n");
	check_interrupts("interrupts: a record of 200,000 members (2.6 MB) calls the hook",
					 &b, 0, wide_ndjson_read, 3);

	b.len = 0;
	wide_record(&b, "[", 200000, "]");
	check_interrupts("interrupts: skipping an over-long element calls the hook",
					 &b, 1000, rejected_then_eof, 1);

	b.len = 0;
	sb_printf(&b, "batch=pcId");
	for (int i = 0; i < 70000; i++)
		sb_printf(&b, ",c%d", i);
	sb_printf(&b, "\nk");
	for (int i = 0; i < 70000; i++)
		sb_printf(&b, ",v");
	check_interrupts("interrupts: an Adobe header and row of 70,000 cells call the hook; names are shared",
					 &b, 0, wide_adobe_read, 2);

	/* a text of megabytes reaches jansson piece by piece, unchanged */
	b.len = 0;
	sb_printf(&b, "[{\"pcId\":\"s\",\"v\":\"");
	for (int i = 0; i < 300000; i++)
		sb_printf(&b, "0123456789");
	sb_printf(&b, "\"}, {\"pcId\":\"t\",\"n\":4.0}]");
	check_interrupts("interrupts: a 3 MB element is parsed in pieces, with the hook between",
					 &b, 0, long_text_read, 2);

	tp_set_interrupt_hook(NULL);
	check_true("limits: everything freed", live_bytes == 0, "leak");
	live_bytes = 0;
	free(b.s);
}

/*
 * A stop while the thread is inside a long record, or before it read
 * anything, or after the end: each joins the thread (valgrind and the
 * fuzzers' sanitizers would see what it left).
 */
static void
test_ahead_stop(void)
{
	sbuf		b = {0};
	char		errbuf[256];

	sb_printf(&b, "{\"pcId\":\"s\",\"v\":\"");
	for (int i = 0; i < 1000000; i++)
		sb_printf(&b, "0123456789");
	sb_printf(&b, "\"}\n{\"pcId\":\"t\"}\n");
	for (int when = 0; when < 3; when++)
	{
		tp_ahead   *a = tp_ahead_start(b.s, b.len, 0, 1, 64, true, errbuf, sizeof(errbuf));
		tp_record	rec;
		bool		ok = a != NULL && tp_ahead_open(a);

		if (ok && when == 1)
			ok = tp_ahead_next(a, &rec) == TP_RECORD && rec.attrs[0].value_len == 10000000;
		if (ok && when == 2)
			ok = tp_ahead_next(a, &rec) == TP_RECORD && tp_ahead_next(a, &rec) == TP_RECORD &&
				tp_ahead_next(a, &rec) == TP_EOF;
		tp_ahead_stop(a);
		check_true(when == 0 ? "read ahead: a stop during a 10 MB record" :
				   when == 1 ? "read ahead: a stop after a 10 MB record" :
				   "read ahead: a stop after the end", ok, "the records read were wrong");
	}
	free(b.s);
}

int
main(void)
{
	int			i;
	int			failed = 0;

	tp_set_allocator(count_malloc, count_free);

	test_format();
	test_adobe();
	test_adobe_columns();
	test_ndjson();
	test_json_array();
	/* the same streams read ahead, with a thread and without */
	for (mode = READ_AHEAD_THREAD; mode <= READ_AHEAD_INLINE; mode++)
	{
		desc_prefix = mode == READ_AHEAD_THREAD ? "read ahead, thread: " : "read ahead, inline: ";
		test_format();
		test_adobe();
		test_adobe_columns();
		test_ndjson();
		test_json_array();
	}
	mode = READ_DIRECT;
	desc_prefix = "";
	test_ahead_stop();
	test_skip();
	test_lifetime();
	test_limits();
	test_big();

	printf("1..%d\n", nresults);
	for (i = 0; i < nresults; i++)
	{
		printf("%sok %d - %s\n", results[i].ok ? "" : "not ", i + 1,
			   results[i].desc);
		if (!results[i].ok)
		{
			char	   *line = results[i].diag;

			failed++;
			/* each line of the diagnostic as a TAP comment */
			while (line && *line)
			{
				char	   *nl = strchr(line, '\n');
				int			n = nl ? (int) (nl - line) : (int) strlen(line);

				printf("#   %.*s\n", n, line);
				line = nl ? nl + 1 : NULL;
			}
		}
	}
	if (failed)
		printf("# %d of %d tests failed\n", failed, nresults);
	return failed ? 1 : 0;
}
