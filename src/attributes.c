/*-------------------------------------------------------------------------
 *
 * attributes.c
 *	  Validate and merge profile attributes: one path for single and bulk.
 *
 * Both upsert_profile (a jsonb argument) and bulk_update (records from the
 * batch readers) hand this module a list of tp_attr.  The check applies the
 * GUC limits; the merge sets named attributes, removes those given as JSON
 * null, keeps the rest, and says whether anything changed, so an unchanged
 * update can skip its write entirely.
 *
 * Reasons are returned as text, not raised: the single path raises them as
 * 22023, the bulk path records them as the reason of a rejected row.  They
 * name the attribute and the limit, never a value.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"

#include "attributes.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

/* Longest piece of a name quoted in a reason, in bytes. */
#define QUOTE_NAME_MAX 64

static const char *
reason(char *buf, size_t buflen, const char *fmt,...) pg_attribute_printf(3, 4);

static const char *
reason(char *buf, size_t buflen, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, buflen, fmt, ap);
	va_end(ap);
	return buf;
}

/*
 * How much of a name a reason quotes: at most QUOTE_NAME_MAX bytes, cut on
 * a character boundary, so the reason stays valid text (it is raised as a
 * message or stored in batch_rejects).
 */
static int
quote_len(const char *name, size_t len)
{
	return pg_mbcliplen(name, (int) Min(len, (size_t) INT_MAX), QUOTE_NAME_MAX);
}

/*
 * Characters in s when there may be more than limit, else 0: a string of
 * at most limit bytes cannot have more characters, and need not be counted.
 */
static int
chars_over(const char *s, size_t len, int limit)
{
	int			n;

	if (len <= (size_t) limit)
		return 0;
	n = pg_mbstrlen_with_len(s, (int) len);
	return n > limit ? n : 0;
}

/* The key of a profile: non-empty, at most max_id_length characters. */
const char *
tp_id_check(const char *what, const char *id, size_t len, char *buf, size_t buflen)
{
	int			n;

	if (len == 0)
		return reason(buf, buflen, "%s is empty", what);
	if ((n = chars_over(id, len, tgtp_max_id_length)) > 0)
		return reason(buf, buflen, "%s has %d characters, more than tgt_profile.max_id_length (%d)",
					  what, n, tgtp_max_id_length);
	return NULL;
}

/*
 * The digits of a JSON number literal, as set_var_from_str reads them.
 * *ok is false when the text is no JSON number at all.
 */
typedef struct NumberText
{
	bool		ok;
	bool		zero;			/* every digit is 0 */
	int64		nint;			/* digits before the point */
	int64		nfrac;			/* digits after it */
	int64		first;			/* index of the first non-zero digit */
	int64		exp;			/* the exponent, saturated */
} NumberText;

static void
scan_digits(const char **p, const char *e, NumberText *t, int64 *count)
{
	for (; *p < e && **p >= '0' && **p <= '9'; (*p)++, (*count)++)
		if (t->zero && **p != '0')
		{
			t->zero = false;
			t->first = t->nint + t->nfrac;
		}
}

static NumberText
number_text(const char *s, size_t len)
{
	const char *p = s;
	const char *e = s + len;
	NumberText	t = {false, true, 0, 0, 0, 0};
	bool		neg_exp = false;

	if (p < e && *p == '-')
		p++;
	scan_digits(&p, e, &t, &t.nint);
	if (p < e && *p == '.')
	{
		p++;
		scan_digits(&p, e, &t, &t.nfrac);
		if (t.nfrac == 0)
			return t;
	}
	if (t.nint == 0)
		return t;
	if (p < e && (*p == 'e' || *p == 'E'))
	{
		const char *d;

		if (++p < e && (*p == '+' || *p == '-'))
			neg_exp = (*p++ == '-');
		for (d = p; p < e && *p >= '0' && *p <= '9'; p++)
			t.exp = Min(t.exp * 10 + (*p - '0'), (int64) PG_INT32_MAX);
		if (p == d)
			return t;
		if (neg_exp)
			t.exp = -t.exp;
	}
	t.ok = (p == e);
	return t;
}

/*
 * Whether type numeric takes the JSON number literal s, and if so the
 * characters of the text numeric_out prints for it (what max_value_length
 * counts, so that a literal in a batch and the same literal in a jsonb
 * argument count alike).  numeric_in itself cannot be asked: it raises,
 * PostgreSQL 15 has no soft input errors, and a subtransaction per record
 * would cost every batch.  So its limits are applied here, as
 * set_var_from_str and make_result apply them: an exponent within
 * INT_MAX / 2, at most NUMERIC_DSCALE_MAX (16383) digits after the point,
 * and a first significant digit whose base-10000 weight fits in int16
 * (below 10^131072).
 */
static bool
number_chars(const char *s, size_t len, int64 *chars)
{
	NumberText	t = number_text(s, len);
	int64		dscale;
	int64		e10;

	if (!t.ok || t.exp >= PG_INT32_MAX / 2 || t.exp <= -(PG_INT32_MAX / 2))
		return false;
	dscale = Max(t.nfrac - t.exp, 0);
	if (dscale > 16383)
		return false;
	/* the decimal exponent of the first significant digit */
	e10 = t.nint - 1 - t.first + t.exp;
	if (!t.zero && e10 > 4 * (int64) PG_INT16_MAX + 3)
		return false;
	*chars = (!t.zero && s[0] == '-') + (!t.zero && e10 >= 0 ? e10 + 1 : 1) +
		(dscale > 0 ? dscale + 1 : 0);
	return true;
}

/*
 * Check a record's attributes against the limits.  NULL when they are
 * good, else the reason (in buf).
 */
const char *
tp_attrs_check(const tp_attr *attrs, int nattrs, char *buf, size_t buflen)
{
	for (int i = 0; i < nattrs; i++)
	{
		const tp_attr *a = &attrs[i];
		int			n;

		if (a->name_len == 0)
			return reason(buf, buflen, "an attribute name is empty");
		if ((n = chars_over(a->name, a->name_len, tgtp_max_name_length)) > 0)
			return reason(buf, buflen,
						  "an attribute name has %d characters, more than tgt_profile.max_name_length (%d)",
						  n, tgtp_max_name_length);
		if ((a->name_len == 4 && memcmp(a->name, "pcId", 4) == 0) ||
			(a->name_len == 12 && memcmp(a->name, "thirdPartyId", 12) == 0))
			return reason(buf, buflen, "attribute name \"%.*s\" is reserved for the profile's key",
						  (int) a->name_len, a->name);
	}
	for (int i = 0; i < nattrs; i++)
	{
		const tp_attr *a = &attrs[i];
		int64		n = 0;

		if (a->kind == TP_VAL_NESTED)
			return reason(buf, buflen,
						  "attribute \"%.*s\" is an object or array; attribute values must be strings, numbers or booleans",
						  quote_len(a->name, a->name_len), a->name);
		if (a->kind == TP_VAL_NUMBER && !number_chars(a->value, a->value_len, &n))
			return reason(buf, buflen,
						  "attribute \"%.*s\" is a number out of the range of type numeric",
						  quote_len(a->name, a->name_len), a->name);
		if (a->kind == TP_VAL_STRING)
			n = chars_over(a->value, a->value_len, tgtp_max_value_length);
		if (n > tgtp_max_value_length)
			return reason(buf, buflen,
						  "attribute \"%.*s\" has a value of " INT64_FORMAT " characters, more than tgt_profile.max_value_length (%d)",
						  quote_len(a->name, a->name_len), a->name, n, tgtp_max_value_length);
	}
	return NULL;
}

/*
 * Whether a record only removes attributes (or names none): it can change
 * an existing profile but never creates one (DESIGN.md "Records of removals
 * only").
 */
bool
tp_attrs_only_removals(const tp_attr *attrs, int nattrs)
{
	for (int i = 0; i < nattrs; i++)
		if (attrs[i].kind != TP_VAL_NULL)
			return false;
	return true;
}

static void
set_string(JsonbValue *v, const char *s, size_t len)
{
	v->type = jbvString;
	v->val.string.val = (char *) s;
	v->val.string.len = (int) len;
}

/* A tp_attr value as a JsonbValue (not for NULL or NESTED). */
static void
attr_value(const tp_attr *a, JsonbValue *v)
{
	switch (a->kind)
	{
		case TP_VAL_STRING:
			set_string(v, a->value, a->value_len);
			break;
		case TP_VAL_NUMBER:
			v->type = jbvNumeric;
			v->val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
																 CStringGetDatum(pnstrdup(a->value, a->value_len)),
																 ObjectIdGetDatum(InvalidOid),
																 Int32GetDatum(-1)));
			break;
		case TP_VAL_TRUE:
		case TP_VAL_FALSE:
			v->type = jbvBool;
			v->val.boolean = a->kind == TP_VAL_TRUE;
			break;
		default:
			elog(ERROR, "unexpected attribute kind %d", (int) a->kind);
	}
}

static bool
same_scalar(const JsonbValue *a, const JsonbValue *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvString:
			return a->val.string.len == b->val.string.len &&
				memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
		case jbvBool:
			return a->val.boolean == b->val.boolean;
		case jbvNumeric:
			/* 1.0 and 1 differ as stored text, so compare the text */
			return strcmp(DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(a->val.numeric))),
						  DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(b->val.numeric)))) == 0;
		default:
			return false;		/* a nested value stored by hand: replace it */
	}
}

/*
 * jsonb keeps an object's keys sorted by length, then bytes, each key once
 * (lengthCompareJsonbStringValue in jsonb_util.c); the merge below walks the
 * stored keys and the record's names in that order.
 */
static int
key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return alen < blen ? -1 : 1;
	return memcmp(a, b, alen);
}

static int
cmp_attr_ptr(const void *x, const void *y)
{
	const tp_attr *a = *(const tp_attr *const *) x;
	const tp_attr *b = *(const tp_attr *const *) y;
	int			c = key_cmp(a->name, a->name_len, b->name, b->name_len);

	/* equal names keep the record's order: the last one wins */
	if (c == 0)
		c = a < b ? -1 : (a > b ? 1 : 0);
	return c;
}

/* The record's attributes in key order, only the last of each name. */
static int
sorted_updates(const tp_attr *attrs, int nattrs, const tp_attr **out)
{
	int			n = 0;

	for (int i = 0; i < nattrs; i++)
		out[i] = &attrs[i];
	if (nattrs > 1)
		qsort(out, nattrs, sizeof(tp_attr *), cmp_attr_ptr);
	for (int i = 0; i < nattrs; i++)
	{
		if (i + 1 < nattrs &&
			key_cmp(out[i]->name, out[i]->name_len, out[i + 1]->name, out[i + 1]->name_len) == 0)
			continue;			/* a later one of the same name decides */
		out[n++] = out[i];
	}
	return n;
}

/* The stored pairs of a profile's attributes, in key order. */
static int
stored_pairs(Jsonb *old, JsonbPair *pairs, bool *nested)
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	k;
	int			n = 0;

	if (old == NULL)
		return 0;
	it = JsonbIteratorInit(&old->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		pairs[n].key = k;
		(void) JsonbIteratorNext(&it, &pairs[n].value, true);
		/* a nested value can only have been stored by hand */
		*nested |= (pairs[n].value.type == jbvBinary);
		n++;
	}
	return n;
}

/* An object of sorted, distinct pairs as jsonb. */
static Jsonb *
build_object(JsonbPair *pairs, int n, bool nested)
{
	JsonbValue	obj;
	JsonbParseState *state = NULL;

	if (!nested)
	{
		/* already in jsonb's order: converted as it is, nothing re-sorted */
		obj.type = jbvObject;
		obj.val.object.nPairs = n;
		obj.val.object.pairs = pairs;
		return JsonbValueToJsonb(&obj);
	}
	/* a nested value is a container to unpack: pushJsonbValue does that */
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < n; i++)
	{
		pushJsonbValue(&state, WJB_KEY, &pairs[i].key);
		pushJsonbValue(&state, WJB_VALUE, &pairs[i].value);
	}
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

/*
 * Merge validated attrs into old (NULL for a new profile).  Sets *changed.
 * Returns the new attributes, or NULL with *why set when the result would
 * exceed max_profile_bytes.  When nothing changed the old value is returned.
 */
Jsonb *
tp_attrs_merge(Jsonb *old, const tp_attr *attrs, int nattrs, bool *changed,
			   char *buf, size_t buflen, const char **why)
{
	int			nold = old ? (int) JsonContainerSize(&old->root) : 0;
	const tp_attr **upd = palloc(sizeof(tp_attr *) * Max(nattrs, 1));
	JsonbPair  *stored = palloc(sizeof(JsonbPair) * Max(nold, 1));
	JsonbPair  *out = palloc(sizeof(JsonbPair) * Max(nold + nattrs, 1));
	bool		nested = false;
	bool		any = (old == NULL);
	int			nupd,
				i = 0,
				j = 0,
				n = 0;
	Jsonb	   *result;

	*why = NULL;
	nupd = sorted_updates(attrs, nattrs, upd);
	nold = stored_pairs(old, stored, &nested);
	while (i < nold || j < nupd)
	{
		const tp_attr *a = j < nupd ? upd[j] : NULL;
		int			c = i >= nold ? 1 : (a == NULL ? -1 :
										 key_cmp(stored[i].key.val.string.val, stored[i].key.val.string.len,
												 a->name, a->name_len));

		if (c < 0)
		{
			out[n++] = stored[i++];		/* kept as it is */
			continue;
		}
		/* the record names this attribute: set it, or remove it (null) */
		if (a->kind != TP_VAL_NULL)
		{
			set_string(&out[n].key, a->name, a->name_len);
			attr_value(a, &out[n].value);
			any |= (c > 0 || !same_scalar(&stored[i].value, &out[n].value));
			n++;
		}
		else
			any |= (c == 0);
		if (c == 0)
			i++;
		j++;
	}
	*changed = any;
	if (!any)
		return old;

	result = build_object(out, n, nested);
	if (VARSIZE(result) > (Size) tgtp_max_profile_bytes)
	{
		*why = reason(buf, buflen,
					  "the profile would take %zu bytes, more than tgt_profile.max_profile_bytes (%d)",
					  (size_t) VARSIZE(result), tgtp_max_profile_bytes);
		return NULL;
	}
	return result;
}

/*
 * The attributes argument of upsert_profile as a list of tp_attr.  Raises
 * 22023 when it is not a JSON object.
 */
int
tp_attrs_from_jsonb(Jsonb *obj, tp_attr **out)
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	k,
				v;
	int			n = 0;
	tp_attr    *attrs;

	if (!JB_ROOT_IS_OBJECT(obj))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("attributes must be a JSON object"),
				 errhint("Pass an object of name/value pairs, for example '{\"tier\": \"gold\"}'.")));

	attrs = palloc0(sizeof(tp_attr) * Max(JsonContainerSize(&obj->root), 1));
	it = JsonbIteratorInit(&obj->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		tp_attr    *a;

		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &v, true);
		a = &attrs[n++];
		a->name = k.val.string.val;
		a->name_len = k.val.string.len;
		switch (v.type)
		{
			case jbvString:
				a->kind = TP_VAL_STRING;
				a->value = v.val.string.val;
				a->value_len = v.val.string.len;
				break;
			case jbvNumeric:
				a->kind = TP_VAL_NUMBER;
				a->value = DatumGetCString(DirectFunctionCall1(numeric_out,
															   NumericGetDatum(v.val.numeric)));
				a->value_len = strlen(a->value);
				break;
			case jbvBool:
				a->kind = v.val.boolean ? TP_VAL_TRUE : TP_VAL_FALSE;
				break;
			case jbvNull:
				a->kind = TP_VAL_NULL;
				break;
			default:
				a->kind = TP_VAL_NESTED;
				break;
		}
	}
	*out = attrs;
	return n;
}
