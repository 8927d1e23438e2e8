/*-------------------------------------------------------------------------
 *
 * read_adobe.c
 *	  Reader for Adobe Target's profile batch file.
 *
 *		batch=pcId,param1,param2
 *		123,value1,
 *		124,,value2
 *
 * The first line names the key column (pcId or thirdPartyId) and then the
 * attributes; every other non-blank line is one record.  Names and values
 * are percent-encoded UTF-8 ("+" is a plus sign, not a space); cells are
 * split on "," (there is no quoting: a comma in a value is %2C).  An empty
 * cell leaves the attribute unchanged, so it is left out of the record, and
 * a short row simply leaves its trailing attributes unchanged.
 *
 * A broken header breaks the whole batch (TP_FATAL); a broken row is a
 * record error and the batch goes on.  Error texts name the problem and the
 * column, never the data: a batch may carry personal data.
 *
 * Plain C, no PostgreSQL headers: see record.h.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "read_internal.h"

/* Longest piece of a column name quoted in a record error */
#define NAME_IN_REASON	64

/*
 * Most columns a header may name.  Each costs about 64 bytes of state, so
 * without a bound a 50 MB header of one-letter names would take gigabytes;
 * no row could set that many attributes within a profile's size limit.
 */
#define MAX_COLUMNS		100000

typedef struct adobe_col
{
	const char *name;			/* decoded, in adobe_state.names */
	size_t		len;
	int			colno;			/* 1-based; the key column is 1 */
} adobe_col;

typedef struct adobe_state
{
	const char *next;			/* start of the next line */
	const char *end;			/* end of the batch */
	tp_key_kind key_kind;
	adobe_col	key;			/* the key column's header */
	int			ncols;			/* attribute columns, after the key */
	adobe_col  *cols;			/* [ncols] */
	char	   *names;			/* decoded header names */
	int64_t		row;

	/* reused from record to record */
	char	   *scratch;		/* decoded cells of the current row */
	size_t		scratch_cap;
	tp_attr    *attrs;			/* [ncols] */
	char		reason[256];
} adobe_state;

/* What went wrong with a cell */
typedef enum cell_status
{
	CELL_OK,
	CELL_BAD_ESCAPE,
	CELL_BAD_UTF8,
	CELL_NUL
} cell_status;

static inline int
hex_value(unsigned char c)
{
	if ((unsigned) (c - '0') <= 9)
		return c - '0';
	c |= 0x20;
	if ((unsigned) (c - 'a') <= 5)
		return c - 'a' + 10;
	return -1;
}

/*
 * Percent-decode cell s[0..len).  A cell without '%' is used in place, so
 * the common case copies nothing; otherwise it is decoded at *out, which
 * advances (decoding never makes a cell longer).  The result must be UTF-8
 * without NUL.
 */
static cell_status
decode_cell(const char *s, size_t len, char **out,
			const char **val, size_t *vlen)
{
	const char *e = s + len;
	const char *pct = memchr(s, '%', len);
	char	   *o;
	int			rc;

	if (pct == NULL)
	{
		*val = s;
		*vlen = len;
	}
	else
	{
		o = *out;
		*val = o;
		while (pct)
		{
			int			hi,
						lo;

			memcpy(o, s, pct - s);
			o += pct - s;
			if (e - pct < 3 ||
				(hi = hex_value(pct[1])) < 0 || (lo = hex_value(pct[2])) < 0)
				return CELL_BAD_ESCAPE;
			*o++ = (char) (hi << 4 | lo);
			s = pct + 3;
			pct = memchr(s, '%', e - s);
		}
		memcpy(o, s, e - s);
		o += e - s;
		*vlen = o - *val;
		*out = o;
	}

	rc = tp_utf8_check(*val, *vlen);
	if (rc == TP_UTF8_INVALID)
		return CELL_BAD_UTF8;
	if (rc == TP_UTF8_NUL)
		return CELL_NUL;
	return CELL_OK;
}

static const char *
cell_problem(cell_status cs)
{
	switch (cs)
	{
		case CELL_BAD_ESCAPE:
			return "bad percent escape (a '%' must be followed by two hex digits)";
		case CELL_BAD_UTF8:
			return "invalid UTF-8";
		case CELL_NUL:
			return "NUL character (%00)";
		case CELL_OK:
			break;
	}
	return "bad cell";
}

/* Find the end of the line at p: *eol excludes "\n" and a "\r" before it. */
static inline const char *
line_end(const char *p, const char *end, const char **eol)
{
	const char *nl = memchr(p, '\n', end - p);
	const char *e = nl ? nl : end;

	if (e > p && e[-1] == '\r')
		e--;
	*eol = e;
	return nl ? nl + 1 : end;
}

/*
 * A carriage return that does not end its line: the file's lines end in
 * CR alone (old Mac style), or mix line ends.  Such a file cannot be split
 * into the lines it means, so it is refused whole rather than read as one
 * long line (a header swallowing every row, a key holding "a\rb").
 */
static bool
bare_cr(const char *p, const char *eol)
{
	return memchr(p, '\r', eol - p) != NULL;
}

#define BARE_CR_PROBLEM \
	"a carriage return (CR) that does not end its line; lines must end in LF or CRLF"

/*
 * A control character (C0, DEL, C1) or a byte-order mark (U+FEFF) in a
 * decoded, valid UTF-8 header name: never meant as part of a name, and
 * invisible in every message that names the column.
 */
static bool
odd_name(const char *name, size_t len)
{
	const unsigned char *p = (const unsigned char *) name;

	for (size_t i = 0; i < len; i++)
	{
		if (p[i] < 0x20 || p[i] == 0x7F)
			return true;
		if (p[i] == 0xC2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9F)
			return true;
		if (p[i] == 0xEF && i + 2 < len && p[i + 1] == 0xBB && p[i + 2] == 0xBF)
			return true;
	}
	return false;
}

static bool
blank_line(const char *p, const char *eol)
{
	while (p < eol && tp_is_blank(*p))
		p++;
	return p == eol;
}

static int
compare_cols(const void *a, const void *b)
{
	const adobe_col *x = *(const adobe_col *const *) a;
	const adobe_col *y = *(const adobe_col *const *) b;
	int			c;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	c = memcmp(x->name, y->name, x->len);
	if (c != 0)
		return c;
	return x->colno - y->colno;
}

static bool
is_name(const adobe_col *c, const char *name)
{
	size_t		n = strlen(name);

	return c->len == n && memcmp(c->name, name, n) == 0;
}

/*
 * Refuse a header that repeats a name: sorting makes it O(n log n) however
 * many columns a hostile header has.
 */
static bool
check_duplicates(tp_reader *r, adobe_state *st)
{
	adobe_col **sorted;
	int			n = st->ncols + 1;
	int			i;
	bool		ok = true;

	sorted = tp_alloc(sizeof(adobe_col *) * n);
	if (sorted == NULL)
	{
		tp_fail(r, "out of memory");
		return false;
	}
	sorted[0] = &st->key;
	for (i = 0; i < st->ncols; i++)
		sorted[i + 1] = &st->cols[i];
	qsort(sorted, n, sizeof(adobe_col *), compare_cols);

	for (i = 1; i < n; i++)
	{
		if (sorted[i]->len == sorted[i - 1]->len &&
			memcmp(sorted[i]->name, sorted[i - 1]->name, sorted[i]->len) == 0)
		{
			tp_fail(r, "bad batch header: column %d repeats the name of column %d",
					sorted[i]->colno, sorted[i - 1]->colno);
			ok = false;
			break;
		}
	}
	tp_free(sorted);
	return ok;
}

/* Decode the header cells after "batch=" into st->key and st->cols. */
static bool
parse_header(tp_reader *r, adobe_state *st, const char *p, const char *eol)
{
	const char *q;
	int			ncells = 1;
	int			colno;
	char	   *out;

	for (q = p; (q = memchr(q, ',', eol - q)) != NULL; q++)
	{
		if (++ncells > MAX_COLUMNS)
		{
			tp_fail(r, "bad batch header: more than %d columns", MAX_COLUMNS);
			return false;
		}
	}

	st->names = tp_alloc((eol - p) + 1);
	st->cols = tp_alloc(sizeof(adobe_col) * ncells);
	st->attrs = tp_alloc(sizeof(tp_attr) * ncells);
	if (!st->names || !st->cols || !st->attrs)
	{
		tp_fail(r, "out of memory");
		return false;
	}
	st->ncols = ncells - 1;
	out = st->names;

	for (colno = 1; colno <= ncells; colno++)
	{
		const char *comma = memchr(p, ',', eol - p);
		const char *cend = comma ? comma : eol;
		adobe_col  *c = colno == 1 ? &st->key : &st->cols[colno - 2];
		cell_status cs;

		if (colno % TP_INTERRUPT_EVERY == 0)
			tp_check_interrupts();
		c->colno = colno;
		if (cend == p)
		{
			if (colno == 1)
				tp_fail(r, "bad batch header: the first column must be pcId or thirdPartyId");
			else
				tp_fail(r, "bad batch header: column %d has an empty name", colno);
			return false;
		}
		cs = decode_cell(p, cend - p, &out, &c->name, &c->len);
		if (cs != CELL_OK)
		{
			tp_fail(r, "bad batch header: %s in column %d",
					cell_problem(cs), colno);
			return false;
		}
		if (odd_name(c->name, c->len))
		{
			tp_fail(r, "bad batch header: the name of column %d holds a control character or a byte-order mark",
					colno);
			return false;
		}
		p = cend + 1;
	}

	if (is_name(&st->key, "pcId"))
		st->key_kind = TP_KEY_PCID;
	else if (is_name(&st->key, "thirdPartyId"))
		st->key_kind = TP_KEY_THIRD_PARTY_ID;
	else
	{
		tp_fail(r, "bad batch header: unknown key column; the first column must be pcId or thirdPartyId");
		return false;
	}

	if (!check_duplicates(r, st))
		return false;

	/* the other key column would silently become an attribute */
	for (colno = 0; colno < st->ncols; colno++)
	{
		if (is_name(&st->cols[colno], "pcId") ||
			is_name(&st->cols[colno], "thirdPartyId"))
		{
			tp_fail(r, "bad batch header: column %d is a second key column; a batch has one key column, pcId or thirdPartyId",
					colno + 2);
			return false;
		}
	}
	return true;
}

bool
tp_adobe_open(tp_reader *r, const char *start)
{
	adobe_state *st;
	const char *eol;

	st = tp_alloc(sizeof(adobe_state));
	if (st == NULL)
	{
		tp_fail(r, "out of memory");
		return false;
	}
	memset(st, 0, sizeof(adobe_state));
	r->state = st;
	st->end = r->data + r->len;

	st->next = line_end(start, st->end, &eol);
	if (bare_cr(start, eol))
	{
		tp_fail(r, "bad batch header: %s", BARE_CR_PROBLEM);
		tp_adobe_close(r);
		return false;
	}
	if (!parse_header(r, st, start + strlen("batch="), eol))
	{
		tp_adobe_close(r);
		return false;
	}
	return true;
}

/*
 * Put "column N (name)" in buf: the name comes from the header, not from the
 * row, and is cut short and stripped of control characters so the reason
 * stays one short line.
 */
static void
column_label(const adobe_col *c, char *buf, size_t buflen)
{
	char		name[NAME_IN_REASON + 4];
	size_t		n = c->len;
	size_t		i;

	if (n > NAME_IN_REASON)
	{
		n = NAME_IN_REASON;
		/* do not cut a UTF-8 character in two */
		while (n > 0 && ((unsigned char) c->name[n] & 0xC0) == 0x80)
			n--;
	}
	for (i = 0; i < n; i++)
	{
		unsigned char ch = (unsigned char) c->name[i];

		name[i] = (ch < 0x20 || ch == 0x7F) ? '?' : (char) ch;
	}
	if (n < c->len)
	{
		memcpy(name + n, "...", 3);
		n += 3;
	}
	name[n] = '\0';
	snprintf(buf, buflen, "column %d (%s)", c->colno, name);
}

static void
cell_error(adobe_state *st, tp_record *rec, const adobe_col *c,
		   const char *problem)
{
	char		label[NAME_IN_REASON + 32];

	column_label(c, label, sizeof(label));
	snprintf(st->reason, sizeof(st->reason), "%s in %s", problem, label);
	rec->error = st->reason;
}

static void
too_many_cells(adobe_state *st, tp_record *rec, int64_t cells,
			   const char *rest, const char *eol)
{
	const char *q;

	/* count the cells that were not looked at, for a useful message */
	for (q = rest; (q = memchr(q, ',', eol - q)) != NULL; q++)
		cells++;
	snprintf(st->reason, sizeof(st->reason),
			 "too many cells: the row has %lld, the header has %d column%s",
			 (long long) cells, st->ncols + 1, st->ncols == 0 ? "" : "s");
	rec->error = st->reason;
}

/* Split and decode one row into rec; sets rec->error for a bad row. */
static void
parse_row(adobe_state *st, const char *p, const char *eol, tp_record *rec)
{
	char	   *out = st->scratch;
	int			col = 0;		/* 0 is the key, then st->cols[col - 1] */

	for (;;)
	{
		const char *comma = memchr(p, ',', eol - p);
		const char *cend = comma ? comma : eol;
		const char *val;
		size_t		vlen;
		cell_status cs;

		if (col > st->ncols)
		{
			too_many_cells(st, rec, col + 1, p, eol);
			return;
		}
		if (col % TP_INTERRUPT_EVERY == TP_INTERRUPT_EVERY - 1)
			tp_check_interrupts();
		if (cend > p)
		{
			cs = decode_cell(p, cend - p, &out, &val, &vlen);
			if (cs != CELL_OK)
			{
				cell_error(st, rec, col == 0 ? &st->key : &st->cols[col - 1],
						   cell_problem(cs));
				return;
			}
			if (col == 0)
			{
				rec->key = val;
				rec->key_len = vlen;
			}
			else
			{
				tp_attr    *a = &st->attrs[rec->nattrs++];

				a->name = st->cols[col - 1].name;
				a->name_len = st->cols[col - 1].len;
				a->kind = TP_VAL_STRING;
				a->value = val;
				a->value_len = vlen;
			}
		}
		else if (col == 0)
		{
			cell_error(st, rec, &st->key, "empty key");
			return;
		}
		if (comma == NULL)
			return;
		p = comma + 1;
		col++;
	}
}

tp_status
tp_adobe_next(tp_reader *r, tp_record *rec)
{
	adobe_state *st = r->state;
	const char *line;
	const char *eol;
	char	   *scratch;

	do
	{
		if (st->next >= st->end)
			return TP_EOF;
		line = st->next;
		st->next = line_end(line, st->end, &eol);
		if (bare_cr(line, eol))
			return tp_fail(r, "record %lld: %s", (long long) st->row + 1,
						   BARE_CR_PROBLEM);
	} while (blank_line(line, eol));

	/* decoded cells are never longer than the line */
	scratch = tp_grow(st->scratch, &st->scratch_cap, eol - line, 1);
	if (scratch == NULL)
		return tp_fail(r, "out of memory");
	st->scratch = scratch;

	memset(rec, 0, sizeof(tp_record));
	rec->row = ++st->row;
	rec->key_kind = st->key_kind;
	rec->attrs = st->attrs;
	rec->shared_names = true;	/* they are the header's */
	parse_row(st, line, eol, rec);
	if (rec->error)
	{
		/* a rejected record carries its key when the key cell was good */
		rec->nattrs = 0;
	}
	return TP_RECORD;
}

void
tp_adobe_close(tp_reader *r)
{
	adobe_state *st = r->state;

	if (st == NULL)
		return;
	tp_free(st->names);
	tp_free(st->cols);
	tp_free(st->attrs);
	tp_free(st->scratch);
	tp_free(st);
	r->state = NULL;
}
