/*-------------------------------------------------------------------------
 *
 * read_json.c
 *	  Readers for NDJSON (one object a line) and JSON array batches, on
 *	  libjansson.
 *
 * Each object has exactly one key member, "pcId" or "thirdPartyId", whose
 * value is a non-empty string; the other members are attributes.  Only one
 * record is parsed at a time, so memory stays proportional to the largest
 * record, not to the batch: NDJSON is cut into lines, and a JSON array is
 * walked element by element, each parsed by json_loadb() with
 * JSON_DISABLE_EOF_CHECK, which says where the element ended.
 *
 * A record that is bad on its own (not an object, a duplicate key, a number
 * out of range, \u0000, no key...) is a record error and the batch goes on.
 * In a JSON array an element that jansson refuses is still a record error
 * when it is well-formed JSON, because then its end is known; when it is not,
 * the array does not parse and the batch is broken (TP_FATAL).  Error texts
 * never quote the input (jansson's own messages do, so they are not used).
 *
 * Plain C, no PostgreSQL headers: see record.h.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "read_internal.h"

/* Room for one formatted number: "%.17g" of a double needs at most 24 */
#define NUMBER_ROOM		32

typedef enum array_state
{
	ARRAY_FIRST,				/* just after '[' */
	ARRAY_AFTER,				/* after an element */
	ARRAY_DONE					/* after ']' */
} array_state;

/* A stretch of the batch text. */
typedef struct tp_span
{
	const char *p;
	size_t		len;
} tp_span;

typedef struct json_state
{
	const char *next;			/* NDJSON: the next line; array: where the
								 * previous element ended */
	const char *end;			/* end of the batch */

	/*
	 * The first NUL byte at or after next, or end.  No JSON text holds one,
	 * and jansson must not see one: after a number it drops a NUL and then
	 * misreports how far it read.  So jansson only ever gets the bytes
	 * before it, and a record that reaches it is refused.
	 */
	const char *nul;
	int64_t		line;			/* NDJSON: number of the last line read */
	int64_t		row;
	array_state astate;

	/* the current record: freed by the next call */
	json_t	   *cur;

	/* reused from record to record */
	tp_attr    *attrs;
	size_t		attrs_cap;
	char	   *nums;			/* text of the record's numbers */
	size_t		nums_cap;
	tp_span    *lits;			/* the record's number literals, in order */
	size_t		lits_cap;
	size_t		nlits;
	unsigned char *stack;		/* for tp_json_skip */
	size_t		stack_cap;
	char		reason[128];	/* a record error that needs a number */

	/*
	 * Where errors are, for a JSON array: line and column of track_pos,
	 * moved forward on demand only, so a batch without errors never pays
	 * for it and one with many errors stays linear.
	 */
	const char *track_pos;
	int64_t		track_line;
	int64_t		track_chars;	/* characters before track_pos in its line */
} json_state;

static inline const char *
skip_ws(const char *s, const char *e)
{
	while (s < e && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
		s++;
	return s;
}

/* The first NUL byte at or after from, or the end of the batch. */
static inline const char *
next_nul(json_state *st, const char *from)
{
	const char *z = memchr(from, '\0', st->end - from);

	return z ? z : st->end;
}

/*
 * Line of pos, and the number of characters before it in that line.
 */
static void
locate(tp_reader *r, json_state *st, const char *pos,
	   int64_t *line, int64_t *chars_before)
{
	const char *s = st->track_pos;
	const char *nl;

	if (pos < s)
	{
		/* not expected: callers move forward; start again to stay right */
		s = r->data;
		st->track_line = 1;
		st->track_chars = 0;
	}
	while ((nl = memchr(s, '\n', pos - s)) != NULL)
	{
		st->track_line++;
		st->track_chars = 0;
		s = nl + 1;
	}
	st->track_chars += tp_utf8_chars(s, pos - s);
	st->track_pos = pos;
	*line = st->track_line;
	*chars_before = st->track_chars;
}

/*
 * A reason for jansson's refusal.  jansson's text quotes the input ("near
 * '...'"), so only its code is used, and for a lone surrogate the start of
 * its message, which is fixed text.
 */
static const char *
jansson_reason(const json_error_t *err)
{
	switch (json_error_code(err))
	{
		case json_error_invalid_utf8:
			return "invalid UTF-8";
		case json_error_premature_end_of_input:
			return "invalid JSON: unexpected end of input";
		case json_error_end_of_input_expected:
			return "invalid JSON: unexpected data after the object";
		case json_error_null_character:
			return "a string contains \\u0000 (NUL)";
		case json_error_null_byte_in_key:
			return "a key contains \\u0000 (NUL)";
		case json_error_duplicate_key:
			return "duplicate key";
		case json_error_numeric_overflow:
			return "number out of range";
		case json_error_stack_overflow:
			return "nesting too deep (more than 2048 levels)";
		default:
			break;
	}
	if (strncmp(err->text, "invalid Unicode '", 17) == 0)
		return "invalid JSON: \\u escape of an unpaired UTF-16 surrogate";
	return "invalid JSON syntax";
}

/*
 * The column of a jansson error, given the characters before its position
 * in the line: the position is just past the character jansson stumbled
 * on, except for invalid UTF-8, where it stops before the bad byte.
 */
static inline int64_t
jansson_column(int64_t chars_before, const json_error_t *err)
{
	if (json_error_code(err) == json_error_invalid_utf8 || chars_before == 0)
		return chars_before + 1;
	return chars_before;
}

/* jansson returns NULL without a code only when an allocation failed */
static inline bool
jansson_out_of_memory(const json_error_t *err)
{
	return json_error_code(err) == json_error_out_of_memory ||
		json_error_code(err) == json_error_unknown;
}

static inline void
jansson_reset(json_error_t *err)
{
	/* json_loadb does not reset the code of an error it does not set */
	err->text[JSON_ERROR_TEXT_LENGTH - 1] = json_error_unknown;
}

/* Shortest "%.Ng" that reads back as the same double, as JSON text. */
static size_t
format_real(double d, char *buf)
{
	int			prec;
	int			len = 0;
	int			i;

	for (prec = 15; prec <= 17; prec++)
	{
		len = snprintf(buf, NUMBER_ROOM, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	/* a locale with a decimal comma must not make invalid JSON */
	for (i = 0; i < len; i++)
		if (buf[i] == ',')
			buf[i] = '.';
	return len;
}

static bool
key_member(const char *name, size_t len, tp_key_kind *kind)
{
	if (len == 4 && memcmp(name, "pcId", 4) == 0)
		*kind = TP_KEY_PCID;
	else if (len == 12 && memcmp(name, "thirdPartyId", 12) == 0)
		*kind = TP_KEY_THIRD_PARTY_ID;
	else
		return false;
	return true;
}

/* Room for the attributes and numbers of an object of n members. */
static bool
reserve_record(json_state *st, size_t n)
{
	void	   *p;

	p = tp_grow(st->attrs, &st->attrs_cap, n ? n : 1, sizeof(tp_attr));
	if (p == NULL)
		return false;
	st->attrs = p;
	p = tp_grow(st->nums, &st->nums_cap, n ? n * NUMBER_ROOM : 1, 1);
	if (p == NULL)
		return false;
	st->nums = p;
	p = tp_grow(st->lits, &st->lits_cap, n ? n : 1, sizeof(tp_span));
	if (p == NULL)
		return false;
	st->lits = p;
	return true;
}

/* Set one attribute from a member's value. */
static void
set_value(tp_attr *a, json_t *v, char **nums, const tp_span *lit)
{
	a->value = NULL;
	a->value_len = 0;
	switch (json_typeof(v))
	{
		case JSON_STRING:
			a->kind = TP_VAL_STRING;
			a->value = json_string_value(v);
			a->value_len = json_string_length(v);
			break;
		case JSON_INTEGER:
		case JSON_REAL:
			if (lit)
			{
				/* the number as written: 4.0 stays 4.0, as in jsonb */
				a->kind = TP_VAL_NUMBER;
				a->value = lit->p;
				a->value_len = lit->len;
				break;
			}
			if (json_typeof(v) == JSON_REAL)
			{
				a->kind = TP_VAL_NUMBER;
				a->value = *nums;
				a->value_len = format_real(json_real_value(v), *nums);
				*nums += a->value_len;
				break;
			}
			a->kind = TP_VAL_NUMBER;
			a->value = *nums;
			a->value_len = snprintf(*nums, NUMBER_ROOM,
									"%" JSON_INTEGER_FORMAT,
									json_integer_value(v));
			*nums += a->value_len;
			break;
		case JSON_TRUE:
			a->kind = TP_VAL_TRUE;
			break;
		case JSON_FALSE:
			a->kind = TP_VAL_FALSE;
			break;
		case JSON_NULL:
			a->kind = TP_VAL_NULL;
			break;
		case JSON_OBJECT:
		case JSON_ARRAY:
			a->kind = TP_VAL_NESTED;
			break;
	}
}

static void scan_number_literals(json_state *st, const char *s, const char *e,
								 char *plain);

/*
 * Turn a parsed value into rec (whose row is set), text being the value's
 * text.  Returns the reason when it is not a good record.  The strings stay
 * jansson's, valid while st->cur is.
 */
static const char *
fill_record(json_state *st, json_t *obj, const char *text, const char *text_end,
			tp_record *rec)
{
	void	   *it;
	char	   *nums = st->nums;
	bool		have_key = false;
	bool		scanned = false;
	size_t		lit = 0;

	rec->attrs = st->attrs;
	if (!json_is_object(obj))
		return "not a JSON object";

	for (it = json_object_iter(obj); it; it = json_object_iter_next(obj, it))
	{
		const char *name = json_object_iter_key(it);
		size_t		len = json_object_iter_key_len(it);
		json_t	   *v = json_object_iter_value(it);
		tp_key_kind kind;

		if ((rec->nattrs + 1) % TP_INTERRUPT_EVERY == 0)
			tp_check_interrupts();
		/* the text of numbers takes a second pass: only records with one */
		if (json_is_number(v) && !scanned)
		{
			scan_number_literals(st, text, text_end, NULL);
			scanned = true;
		}
		if (key_member(name, len, &kind))
		{
			if (json_is_number(v))
				lit++;			/* keep the literals in step */
			if (have_key)
				return "both pcId and thirdPartyId: a record has one key";
			have_key = true;
			rec->key_kind = kind;
			if (!json_is_string(v) || json_string_length(v) == 0)
				return kind == TP_KEY_PCID ?
					"pcId must be a non-empty string" :
					"thirdPartyId must be a non-empty string";
			rec->key = json_string_value(v);
			rec->key_len = json_string_length(v);
			continue;
		}
		st->attrs[rec->nattrs].name = name;
		st->attrs[rec->nattrs].name_len = len;
		set_value(&st->attrs[rec->nattrs], v, &nums,
				  json_is_number(v) && lit < st->nlits ? &st->lits[lit] : NULL);
		if (json_is_number(v))
			lit++;
		rec->nattrs++;
	}
	if (!have_key)
		return "no key: an object needs pcId or thirdPartyId";
	return NULL;
}

static const char *skip_string(const char *s, const char *e);
static const char *skip_number(const char *s, const char *e);
static const char *skip_scalar(const char *s, const char *e);

/*
 * jansson keeps numbers as int64 or double, so 4.0 would come back as 4
 * and 0.12345678901234567890 rounded.  The object parsed fine, so its text
 * is well-formed: walk its top-level members once and note the text of each
 * number value, in order (jansson iterates members in that order too).
 * plain, when not NULL, is a copy of s[0..e) in which each of these numbers
 * is overwritten by a 0 and blanks (see load_plain_numbers).
 */
static void
scan_number_literals(json_state *st, const char *s, const char *e, char *plain)
{
	const char *start = s;

	st->nlits = 0;
	s = skip_ws(s, e);
	if (s >= e || *s++ != '{')
		return;
	for (;;)
	{
		const char *v;

		s = skip_ws(s, e);
		if (s >= e || *s != '"' || (s = skip_string(s, e)) == NULL)
			return;
		s = skip_ws(s, e);
		if (s >= e || *s++ != ':')
			return;
		v = s = skip_ws(s, e);
		if (s >= e)
			return;
		if (*s == '{' || *s == '[')
		{
			if (tp_json_skip(s, e, &s, &st->stack, &st->stack_cap) != TP_SKIP_OK)
				return;
		}
		else if ((s = skip_scalar(s, e)) == NULL)
			return;
		else if (*v == '-' || (*v >= '0' && *v <= '9'))
		{
			if (plain)
			{
				plain[v - start] = '0';
				memset(plain + (v - start) + 1, ' ', (s - v) - 1);
			}
			if (st->nlits < st->lits_cap)
			{
				st->lits[st->nlits].p = v;
				st->lits[st->nlits].len = s - v;
				st->nlits++;
				if (st->nlits % TP_INTERRUPT_EVERY == 0)
					tp_check_interrupts();
			}
		}
		s = skip_ws(s, e);
		if (s >= e || *s++ != ',')
			return;
	}
}

/*
 * jansson keeps a number as an int64 or a double and refuses any other (a
 * 400-digit integer, 1e400), which type numeric, and so upsert_profile,
 * accepts.  A record's numbers are taken from its text anyway
 * (scan_number_literals), so such a record is parsed again from a copy of
 * s[0..e) in which every top-level number reads 0, padded with blanks to
 * its length: jansson's positions stay those of the original.  Whether
 * numeric takes the number is checked with the other limits (attributes.c).
 * A number nested deeper is still refused, as its record is anyway.
 */
static json_t *load_json(const char *s, const char *e, size_t flags, json_error_t *err);

static json_t *
load_plain_numbers(json_state *st, const char *s, const char *e, size_t flags,
				   json_error_t *err)
{
	char	   *copy = tp_alloc(e - s);
	json_t	   *obj;

	if (copy == NULL)
		return NULL;			/* err still says why the first parse failed */
	memcpy(copy, s, e - s);
	scan_number_literals(st, s, e, copy);
	jansson_reset(err);
	obj = load_json(copy, copy + (e - s), flags, err);
	tp_free(copy);
	return obj;
}

static inline bool
number_refused(const json_error_t *err)
{
	return json_error_code(err) == json_error_numeric_overflow;
}

/*
 * Take the parsed object into rec; false when out of memory.  A bad record
 * leaves rec->error set and no attributes.
 */
static bool
take_record(json_state *st, json_t *obj, const char *text, const char *text_end,
			tp_record *rec)
{
	st->cur = obj;
	if (json_is_object(obj) && !reserve_record(st, json_object_size(obj)))
		return false;
	rec->error = fill_record(st, obj, text, text_end, rec);
	if (rec->error)
		rec->nattrs = 0;
	return true;
}

static void
release_record(json_state *st)
{
	if (st->cur)
	{
		json_decref(st->cur);
		st->cur = NULL;
	}
}

/*
 * Does the object whose '{' is at s have more members than the reader's
 * limit?  Only its top level is walked, and only when its text (which ends
 * by e) is long enough to hold that many: a member takes at least five
 * bytes ("":0,).  Nothing is built, so a line of millions of members costs
 * a scan, not a tree.  A text that breaks before the limit answers false:
 * jansson then says what is wrong with it.
 */
static bool
over_member_limit(tp_reader *r, json_state *st, const char *s, const char *e)
{
	int64_t		n = 0;

	if (r->max_members == 0 || (e - s) / 5 <= r->max_members)
		return false;
	s = skip_ws(s + 1, e);
	if (s < e && *s == '}')
		return false;
	for (;;)
	{
		if (s >= e || *s != '"' || (s = skip_string(s, e)) == NULL)
			return false;
		s = skip_ws(s, e);
		if (s >= e || *s++ != ':')
			return false;
		s = skip_ws(s, e);
		if (s >= e)
			return false;
		if (*s == '{' || *s == '[')
		{
			if (tp_json_skip(s, e, &s, &st->stack, &st->stack_cap) != TP_SKIP_OK)
				return false;
		}
		else if ((s = skip_scalar(s, e)) == NULL)
			return false;
		if (++n > r->max_members)
			return true;
		if (n % TP_INTERRUPT_EVERY == 0)
			tp_check_interrupts();
		s = skip_ws(s, e);
		if (s >= e || *s++ != ',')
			return false;
		s = skip_ws(s, e);
	}
}

static const char *
member_limit_reason(tp_reader *r, json_state *st)
{
	snprintf(st->reason, sizeof(st->reason),
			 "too many members: a record may have at most %lld",
			 (long long) r->max_members);
	return st->reason;
}

/* A text that jansson reads piece by piece (see load_json). */
typedef struct json_feed
{
	const char *p;
	const char *e;
	size_t		since;			/* bytes given since the last interrupt check */
} json_feed;

static size_t
feed_piece(void *buf, size_t buflen, void *data)
{
	json_feed  *f = data;
	size_t		n = (size_t) (f->e - f->p) < buflen ? (size_t) (f->e - f->p) : buflen;

	memcpy(buf, f->p, n);
	f->p += n;
	f->since += n;
	if (f->since >= TP_INTERRUPT_BYTES)
	{
		f->since = 0;
		tp_check_interrupts();
	}
	return n;
}

/*
 * jansson's json_loadb on s[0..e - s), except that a long text is handed
 * over a piece at a time, with an interrupt check between pieces: parsing
 * one record of tens of megabytes takes seconds.  Positions in err are the
 * same either way.
 */
static json_t *
load_json(const char *s, const char *e, size_t flags, json_error_t *err)
{
	json_feed	f;

	if (e - s < TP_INTERRUPT_BYTES)
		return json_loadb(s, e - s, flags, err);
	f.p = s;
	f.e = e;
	f.since = 0;
	return json_load_callback(feed_piece, &f, flags, err);
}

/* ---------------------------------------------------------------- NDJSON */

static tp_status
ndjson_next(tp_reader *r, json_state *st, tp_record *rec)
{
	const char *line;
	const char *eol;
	const char *p;
	json_t	   *obj;
	json_error_t err;

	/* find the next line that is not blank */
	do
	{
		const char *nl;

		if (st->next >= st->end)
			return TP_EOF;
		line = st->next;
		nl = memchr(line, '\n', st->end - line);
		eol = nl ? nl : st->end;
		st->next = nl ? nl + 1 : st->end;
		st->line++;
		if (st->nul < line)
			st->nul = next_nul(st, line);
		for (p = line; p < eol && tp_is_blank(*p); p++)
			;
	} while (p == eol);

	memset(rec, 0, sizeof(tp_record));
	rec->row = ++st->row;
	rec->line = st->line;
	/* leading blanks are ASCII: bytes are characters */
	rec->column = p - line + 1;

	if (*p != '{')
	{
		rec->error = "not a JSON object";
		return TP_RECORD;
	}
	if (st->nul < eol)
	{
		rec->error = "invalid JSON: NUL byte";
		rec->column = tp_utf8_chars(line, st->nul - line) + 1;
		st->nul = next_nul(st, eol);
		return TP_RECORD;
	}

	if (over_member_limit(r, st, p, eol))
	{
		rec->error = member_limit_reason(r, st);
		return TP_RECORD;
	}

	jansson_reset(&err);
	obj = load_json(p, eol, JSON_REJECT_DUPLICATES, &err);
	if (obj == NULL && number_refused(&err))
		obj = load_plain_numbers(st, p, eol, JSON_REJECT_DUPLICATES, &err);
	if (obj == NULL)
	{
		size_t		pos = err.position;

		if (jansson_out_of_memory(&err))
			return tp_fail(r, "out of memory while parsing line %lld",
						   (long long) st->line);
		if (pos > (size_t) (eol - p))
			pos = eol - p;
		rec->error = jansson_reason(&err);
		rec->column = jansson_column(tp_utf8_chars(line, (p - line) + pos),
									 &err);
		return TP_RECORD;
	}
	if (!take_record(st, obj, p, eol, rec))
		return tp_fail(r, "out of memory");
	if (rec->error == NULL)
		rec->line = rec->column = 0;
	return TP_RECORD;
}

/* ------------------------------------------------------------ JSON array */

static tp_status
array_fail(tp_reader *r, json_state *st, const char *pos, const char *what)
{
	int64_t		line,
				chars;

	locate(r, st, pos, &line, &chars);
	return tp_fail(r, "JSON array: %s at line %lld, column %lld",
				   what, (long long) line, (long long) (chars + 1));
}

/*
 * Line and column of the error jansson found in the element at p, which
 * cannot be past limit.
 */
static void
jansson_where(tp_reader *r, json_state *st, const char *p, const char *limit,
			  const json_error_t *err, int64_t *line, int64_t *column)
{
	size_t		pos = err->position;

	if (pos > (size_t) (limit - p))
		pos = limit - p;
	locate(r, st, p + pos, line, column);
	*column = jansson_column(*column, err);
}

/*
 * Move over the separator after an element, or the closing ']'.  Returns
 * where the next element starts, or NULL at the end (TP_EOF, or a fatal
 * error when *status says so).
 */
static const char *
array_separator(tp_reader *r, json_state *st, tp_status *status)
{
	const char *p = skip_ws(st->next, st->nul);

	*status = TP_EOF;
	if (st->astate == ARRAY_AFTER && p < st->nul && *p == ',')
	{
		p = skip_ws(p + 1, st->nul);
		if (p < st->nul && *p == ']')
		{
			*status = array_fail(r, st, p, "expected a value after ','");
			return NULL;
		}
	}
	else if (st->astate == ARRAY_AFTER && p < st->nul && *p != ']')
	{
		*status = array_fail(r, st, p, "expected ',' or ']'");
		return NULL;
	}

	if (p == st->end)
		*status = tp_fail(r, "JSON array: missing ']' at the end of the batch");
	else if (p == st->nul)
		*status = array_fail(r, st, p, "NUL byte");
	else if (*p == ']')
	{
		st->astate = ARRAY_DONE;
		p = skip_ws(p + 1, st->end);
		if (p < st->end)
			*status = array_fail(r, st, p, "unexpected data after the closing ']'");
	}
	else
		return p;
	return NULL;
}

static tp_status
array_next(tp_reader *r, json_state *st, tp_record *rec)
{
	const char *p;
	const char *vend = NULL;
	json_t	   *obj = NULL;
	json_error_t err;
	tp_status	status;
	int64_t		line,
				column;
	int			skip;

	if (st->astate == ARRAY_DONE)
		return TP_EOF;
	p = array_separator(r, st, &status);
	if (p == NULL)
		return status;

	memset(rec, 0, sizeof(tp_record));
	rec->row = ++st->row;
	st->astate = ARRAY_AFTER;

	if (*p == '{' && over_member_limit(r, st, p, st->nul))
	{
		skip = tp_json_skip(p, st->nul, &vend, &st->stack, &st->stack_cap);
		if (skip == TP_SKIP_NOMEM)
			return tp_fail(r, "out of memory");
		if (skip == TP_SKIP_BAD)
			return array_fail(r, st, vend, "invalid JSON syntax");
		st->next = vend;
		rec->error = member_limit_reason(r, st);
		locate(r, st, p, &rec->line, &rec->column);
		rec->column++;
		return TP_RECORD;
	}
	if (*p == '{')
	{
		jansson_reset(&err);
		obj = load_json(p, st->nul,
						 JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &err);
		if (obj == NULL && number_refused(&err))
		{
			/* the copy holds the element only: find where it ends */
			skip = tp_json_skip(p, st->nul, &vend, &st->stack, &st->stack_cap);
			if (skip == TP_SKIP_NOMEM)
				return tp_fail(r, "out of memory");
			if (skip == TP_SKIP_OK)
				obj = load_plain_numbers(st, p, vend,
										 JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &err);
		}
		if (obj)
		{
			st->next = p + err.position;
			if (!take_record(st, obj, p, st->next, rec))
				return tp_fail(r, "out of memory");
			if (rec->error)
			{
				locate(r, st, p, &rec->line, &rec->column);
				rec->column++;
			}
			return TP_RECORD;
		}
		if (jansson_out_of_memory(&err))
			return tp_fail(r, "out of memory while parsing element %lld",
						   (long long) st->row);
	}

	/*
	 * jansson refused the element, or it is no object: a record error if it
	 * is well-formed JSON, else the array is broken.
	 */
	skip = tp_json_skip(p, st->nul, &vend, &st->stack, &st->stack_cap);
	if (skip == TP_SKIP_NOMEM)
		return tp_fail(r, "out of memory");

	if (*p == '{')
		jansson_where(r, st, p, skip == TP_SKIP_OK ? vend : st->nul, &err,
					  &line, &column);
	else
	{
		locate(r, st, skip == TP_SKIP_OK ? p : vend, &line, &column);
		column++;
	}

	if (skip == TP_SKIP_BAD && vend == st->nul && st->nul < st->end)
		return array_fail(r, st, vend, "NUL byte");
	if (skip == TP_SKIP_BAD)
		return tp_fail(r, "JSON array: element %lld does not parse (%s) at line %lld, column %lld",
					   (long long) st->row,
					   *p == '{' ? jansson_reason(&err) : "invalid JSON syntax",
					   (long long) line, (long long) column);

	st->next = vend;
	rec->error = *p == '{' ? jansson_reason(&err) : "not a JSON object";
	rec->line = line;
	rec->column = column;
	return TP_RECORD;
}

/* ------------------------------------------------------- syntax checking */

static inline bool
is_digit(char c)
{
	return (unsigned) (c - '0') <= 9;
}

static inline bool
is_hex(char c)
{
	return is_digit(c) || (unsigned) ((c | 0x20) - 'a') <= 5;
}

/* Past the string at s (a '"'), or NULL. */
static const char *
skip_string(const char *s, const char *e)
{
	for (s++; s < e; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c == '"')
			return s + 1;
		if (c < 0x20)
			return NULL;
		if (c != '\\')
			continue;
		if (e - s < 2)
			return NULL;
		switch (s[1])
		{
			case '"':
			case '\\':
			case '/':
			case 'b':
			case 'f':
			case 'n':
			case 'r':
			case 't':
				s++;
				break;
			case 'u':
				if (e - s < 6 || !is_hex(s[2]) || !is_hex(s[3]) ||
					!is_hex(s[4]) || !is_hex(s[5]))
					return NULL;
				s += 5;
				break;
			default:
				return NULL;
		}
	}
	return NULL;
}

static const char *
skip_digits(const char *s, const char *e)
{
	if (s == e || !is_digit(*s))
		return NULL;
	while (s < e && is_digit(*s))
		s++;
	return s;
}

/* Past the number at s, or NULL. */
static const char *
skip_number(const char *s, const char *e)
{
	if (s < e && *s == '-')
		s++;
	if (s < e && *s == '0')
		s++;
	else if ((s = skip_digits(s, e)) == NULL)
		return NULL;
	if (s < e && *s == '.' && (s = skip_digits(s + 1, e)) == NULL)
		return NULL;
	if (s < e && (*s == 'e' || *s == 'E'))
	{
		s++;
		if (s < e && (*s == '+' || *s == '-'))
			s++;
		s = skip_digits(s, e);
	}
	return s;
}

static const char *
skip_literal(const char *s, const char *e, const char *word)
{
	size_t		n = strlen(word);

	if ((size_t) (e - s) < n || memcmp(s, word, n) != 0)
		return NULL;
	return s + n;
}

/* Past the scalar at s, or NULL. */
static const char *
skip_scalar(const char *s, const char *e)
{
	switch (*s)
	{
		case '"':
			return skip_string(s, e);
		case 't':
			return skip_literal(s, e, "true");
		case 'f':
			return skip_literal(s, e, "false");
		case 'n':
			return skip_literal(s, e, "null");
		default:
			return skip_number(s, e);
	}
}

int
tp_json_skip(const char *s, const char *e, const char **endp,
			 unsigned char **stack, size_t *stack_cap)
{
	size_t		depth = 0;
	bool		want_key = false;	/* after '{' or ',' in an object */
	uint32_t	steps = 0;

	for (;;)
	{
		const char *v;

		if (++steps % TP_INTERRUPT_EVERY == 0)
			tp_check_interrupts();

		/* s is where a value, or with want_key a member, begins */
		s = skip_ws(s, e);
		if (s == e)
			break;
		if (want_key)
		{
			if (*s != '"' || (v = skip_string(s, e)) == NULL)
				break;
			s = skip_ws(v, e);
			if (s == e || *s != ':')
				break;
			s++;
			want_key = false;
			continue;
		}
		if (*s == '{' || *s == '[')
		{
			unsigned char *stk = tp_grow(*stack, stack_cap, depth + 1, 1);

			if (stk == NULL)
				return TP_SKIP_NOMEM;
			*stack = stk;
			stk[depth++] = *s == '{' ? '}' : ']';
			v = skip_ws(s + 1, e);
			if (v < e && *v == stk[depth - 1])
			{
				s = v + 1;		/* empty: a complete value */
				depth--;
			}
			else
			{
				want_key = *s == '{';
				s++;
				continue;
			}
		}
		else if ((v = skip_scalar(s, e)) == NULL)
			break;
		else
			s = v;

		/* after a value: close what ends here, find the next one */
		for (;;)
		{
			if (depth == 0)
			{
				*endp = s;
				return TP_SKIP_OK;
			}
			s = skip_ws(s, e);
			if (s < e && *s == (char) (*stack)[depth - 1])
			{
				s++;
				depth--;
				continue;
			}
			if (s < e && *s == ',')
			{
				s++;
				want_key = (*stack)[depth - 1] == '}';
			}
			else
			{
				*endp = s;
				return TP_SKIP_BAD;
			}
			break;
		}
	}
	*endp = s;
	return TP_SKIP_BAD;
}

/* ------------------------------------------------------------ interface */

bool
tp_json_open(tp_reader *r, const char *start)
{
	json_state *st = tp_alloc(sizeof(json_state));

	if (st == NULL)
	{
		tp_fail(r, "out of memory");
		return false;
	}
	memset(st, 0, sizeof(json_state));
	r->state = st;
	st->end = r->data + r->len;
	st->nul = next_nul(st, r->data);
	st->track_pos = r->data;
	st->track_line = 1;
	if (r->format == TP_FORMAT_JSON_ARRAY)
	{
		st->next = start + 1;	/* past '[' */
		st->astate = ARRAY_FIRST;
	}
	else
		st->next = r->data;		/* lines count from the start */
	return true;
}

tp_status
tp_json_next(tp_reader *r, tp_record *rec)
{
	json_state *st = r->state;

	release_record(st);
	if (r->format == TP_FORMAT_JSON_ARRAY)
		return array_next(r, st, rec);
	return ndjson_next(r, st, rec);
}

void
tp_json_close(tp_reader *r)
{
	json_state *st = r->state;

	if (st == NULL)
		return;
	release_record(st);
	tp_free(st->attrs);
	tp_free(st->nums);
	tp_free(st->lits);
	tp_free(st->stack);
	tp_free(st);
	r->state = NULL;
}
