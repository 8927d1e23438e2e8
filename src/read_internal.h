/*-------------------------------------------------------------------------
 *
 * read_internal.h
 *	  Shared between the batch readers (read_adobe.c, read_json.c), the
 *	  helpers below them (read_common.c), the dispatcher above them
 *	  (read_dispatch.c), the read-ahead above that (read_ahead.c) and their
 *	  tests; not part of the record stream interface.
 *
 * Plain C, no PostgreSQL headers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TGTP_READ_INTERNAL_H
#define TGTP_READ_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

#if defined(__GNUC__) || defined(__clang__)
#define TP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TP_PRINTF(f, a)
#endif

struct tp_reader
{
	tp_format	format;
	const char *data;			/* the whole batch */
	size_t		len;
	char	   *errbuf;			/* the caller's, for fatal errors */
	size_t		errlen;
	bool		failed;			/* a fatal error was reported */
	int64_t		max_members;	/* JSON records: see tp_reader_limit_members */
	void	   *state;			/* the format's own state */
};

/* Allocation through the hooks of tp_set_allocator(). */
extern void *tp_alloc(size_t size);
extern void tp_free(void *ptr);

/*
 * The interrupt hook of tp_set_interrupt_hook().  Loops over the members,
 * cells or bytes of one record call tp_check_interrupts() every
 * TP_INTERRUPT_EVERY steps (of bytes: every TP_INTERRUPT_BYTES).
 */
#define TP_INTERRUPT_EVERY	65536
#define TP_INTERRUPT_BYTES	(1024 * 1024)

extern _Thread_local tp_interrupt_fn tp_interrupt_hook;

static inline void
tp_check_interrupts(void)
{
	if (tp_interrupt_hook)
		tp_interrupt_hook();
}

/*
 * Return an array of at least need elements of elsize bytes holding the
 * content of buf (whose capacity *cap is updated): buf itself when it is big
 * enough, else a new array and buf is freed.  It grows geometrically, so
 * repeated calls stay linear.  NULL when out of memory (only possible with a
 * malloc-style allocator); buf is then untouched.
 */
extern void *tp_grow(void *buf, size_t *cap, size_t need, size_t elsize);

/* Report a fatal error: fill errbuf, mark the reader failed. */
extern tp_status tp_fail(tp_reader *r, const char *fmt,...) TP_PRINTF(2, 3);

/* Result of tp_utf8_check */
#define TP_UTF8_OK		0
#define TP_UTF8_INVALID	1		/* not well-formed UTF-8 */
#define TP_UTF8_NUL		2		/* well-formed, but holds a NUL character */

extern int	tp_utf8_check(const char *s, size_t len);

/* Number of characters (UTF-8 lead bytes) in s[0..len). */
extern int64_t tp_utf8_chars(const char *s, size_t len);

/* Whitespace within a line; a line of nothing else is blank. */
static inline bool
tp_is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Per-format entry points, dispatched by read_dispatch.c */
extern bool tp_adobe_open(tp_reader *r, const char *start);
extern tp_status tp_adobe_next(tp_reader *r, tp_record *rec);
extern void tp_adobe_close(tp_reader *r);

extern bool tp_json_open(tp_reader *r, const char *start);
extern tp_status tp_json_next(tp_reader *r, tp_record *rec);
extern void tp_json_close(tp_reader *r);

/*
 * Strict RFC 8259 syntax check of the one JSON value at s[0..e - s), that
 * builds nothing.  Strings are not checked for UTF-8, \u escapes not for
 * surrogates, numbers not for range, objects not for duplicate keys, nesting
 * not for depth: that is what tells a well-formed value that jansson refuses
 * (a record error) from a broken array (a fatal error).  *stack and
 * *stack_cap are a reusable buffer for the nesting.  *endp is set to just
 * past the value, or for TP_SKIP_BAD to where the syntax broke.
 */
#define TP_SKIP_OK		0
#define TP_SKIP_BAD		1
#define TP_SKIP_NOMEM	2

extern int	tp_json_skip(const char *s, const char *e, const char **endp,
						 unsigned char **stack, size_t *stack_cap);

#endif							/* TGTP_READ_INTERNAL_H */
