/*-------------------------------------------------------------------------
 *
 * read_common.c
 *	  Helpers shared by the Adobe and JSON readers: allocation, errors,
 *	  UTF-8.  They sit below the readers and call none of them; the format
 *	  dispatcher above the readers is read_dispatch.c.
 *
 * Plain C, no PostgreSQL headers: see record.h.
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "read_internal.h"

/*
 * The hooks are the calling thread's: a reader run ahead in a thread of its
 * own (read_ahead.c) allocates with malloc and has no interrupt hook, while
 * the server's thread keeps palloc and CHECK_FOR_INTERRUPTS.
 */
static _Thread_local tp_malloc_fn tp_malloc_hook = malloc;
static _Thread_local tp_free_fn tp_free_hook = free;
_Thread_local tp_interrupt_fn tp_interrupt_hook = NULL;

void
tp_set_allocator(tp_malloc_fn m, tp_free_fn f)
{
	tp_malloc_hook = m ? m : malloc;
	tp_free_hook = f ? f : free;
	/*
	 * jansson allocates the parsed records: keep it in the same place.  Its
	 * hooks are global, so they go through ours, which are per thread (set
	 * once: another thread may be reading them).
	 */
	{
		json_malloc_t jm;
		json_free_t jf;

		json_get_alloc_funcs(&jm, &jf);
		if (jm != tp_alloc || jf != tp_free)
			json_set_alloc_funcs(tp_alloc, tp_free);
	}
}

void
tp_set_interrupt_hook(tp_interrupt_fn f)
{
	tp_interrupt_hook = f;
}

void *
tp_alloc(size_t size)
{
	return tp_malloc_hook(size);
}

void
tp_free(void *ptr)
{
	if (ptr)
		tp_free_hook(ptr);
}

void *
tp_grow(void *buf, size_t *cap, size_t need, size_t elsize)
{
	size_t		newcap;
	void	   *nbuf;

	if (buf && need <= *cap)
		return buf;

	newcap = *cap < 16 ? 16 : *cap;
	while (newcap < need)
	{
		if (newcap > SIZE_MAX / 2)
			return NULL;
		newcap *= 2;
	}
	if (newcap > SIZE_MAX / elsize)
		return NULL;

	/* the hooks have no realloc (palloc's repalloc needs a context) */
	nbuf = tp_alloc(newcap * elsize);
	if (nbuf == NULL)
		return NULL;
	if (buf)
	{
		memcpy(nbuf, buf, *cap * elsize);
		tp_free(buf);
	}
	*cap = newcap;
	return nbuf;
}

tp_status
tp_fail(tp_reader *r, const char *fmt,...)
{
	va_list		ap;

	r->failed = true;
	if (r->errbuf && r->errlen > 0)
	{
		va_start(ap, fmt);
		vsnprintf(r->errbuf, r->errlen, fmt, ap);
		va_end(ap);
	}
	return TP_FATAL;
}

/*
 * Check that s[0..len) is well-formed UTF-8 (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF) without a NUL character, which no
 * PostgreSQL text can hold.
 */
int
tp_utf8_check(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *) s;
	const unsigned char *end = p + len;

	while (p < end)
	{
		unsigned char c;
		size_t		n;
		unsigned char lo = 0x80,
					hi = 0xBF;

		/* ASCII is the common case: take it eight bytes at a time */
		while (end - p >= 8)
		{
			uint64_t	w;

			memcpy(&w, p, 8);
			if (w & UINT64_C(0x8080808080808080))
				break;
			/* the classic "has a zero byte" test */
			if ((w - UINT64_C(0x0101010101010101)) & ~w &
				UINT64_C(0x8080808080808080))
				return TP_UTF8_NUL;
			p += 8;
		}
		if (p >= end)
			break;

		c = *p;
		if (c < 0x80)
		{
			if (c == 0)
				return TP_UTF8_NUL;
			p++;
			continue;
		}

		if (c >= 0xC2 && c <= 0xDF)
			n = 1;
		else if (c >= 0xE0 && c <= 0xEF)
		{
			n = 2;
			if (c == 0xE0)
				lo = 0xA0;		/* overlong */
			else if (c == 0xED)
				hi = 0x9F;		/* surrogates */
		}
		else if (c >= 0xF0 && c <= 0xF4)
		{
			n = 3;
			if (c == 0xF0)
				lo = 0x90;		/* overlong */
			else if (c == 0xF4)
				hi = 0x8F;		/* above U+10FFFF */
		}
		else
			return TP_UTF8_INVALID;

		if ((size_t) (end - p) <= n)
			return TP_UTF8_INVALID;
		if (p[1] < lo || p[1] > hi)
			return TP_UTF8_INVALID;
		if (n >= 2 && (p[2] & 0xC0) != 0x80)
			return TP_UTF8_INVALID;
		if (n >= 3 && (p[3] & 0xC0) != 0x80)
			return TP_UTF8_INVALID;
		p += n + 1;
	}
	return TP_UTF8_OK;
}

int64_t
tp_utf8_chars(const char *s, size_t len)
{
	int64_t		n = 0;
	size_t		i;

	for (i = 0; i < len; i++)
		n += ((unsigned char) s[i] & 0xC0) != 0x80;
	return n;
}
