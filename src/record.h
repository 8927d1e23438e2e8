/*-------------------------------------------------------------------------
 *
 * record.h
 *	  The normalised record stream that every batch reader produces.
 *
 * The readers (read_adobe.c, read_json.c) are plain C with no PostgreSQL
 * headers, so they can be unit-tested and fuzzed on their own.  Everything
 * that touches PostgreSQL consumes this one stream; the validation of names,
 * values and lengths against the GUC limits happens there (attributes.c), in
 * the same code that checks a single upsert.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TGTP_RECORD_H
#define TGTP_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum tp_format
{
	TP_FORMAT_ADOBE,			/* 'batch=pcId,...' CSV-like file */
	TP_FORMAT_NDJSON,			/* one JSON object a line */
	TP_FORMAT_JSON_ARRAY		/* [ {...}, {...} ] */
} tp_format;

typedef enum tp_key_kind
{
	TP_KEY_PCID,
	TP_KEY_THIRD_PARTY_ID
} tp_key_kind;

typedef enum tp_value_kind
{
	TP_VAL_STRING,				/* value: decoded UTF-8 text */
	TP_VAL_NUMBER,				/* value: a JSON number literal, as written,
								 * perhaps beyond a double's range */
	TP_VAL_TRUE,
	TP_VAL_FALSE,
	TP_VAL_NULL,				/* remove the attribute */
	TP_VAL_NESTED				/* an object or array: the validator rejects it */
} tp_value_kind;

typedef struct tp_attr
{
	const char *name;			/* decoded UTF-8, not NUL-terminated */
	size_t		name_len;
	tp_value_kind kind;
	const char *value;			/* for STRING and NUMBER; NULL otherwise */
	size_t		value_len;
} tp_attr;

typedef struct tp_record
{
	int64_t		row;			/* record number, from 1; blank lines and the
								 * batch= header are not records */
	tp_key_kind key_kind;
	const char *key;			/* not NUL-terminated; never empty when good */
	size_t		key_len;
	int			nattrs;
	tp_attr    *attrs;			/* valid until the next tp_reader_next() */
	bool		shared_names;	/* the attribute names stay valid until the
								 * reader is closed (an Adobe header's): a
								 * consumer may keep them without a copy */

	/* A record error: the record is rejected alone, the batch goes on. */
	const char *error;			/* NULL for a good record; a reason that never
								 * quotes the input */
	int64_t		line;			/* JSON errors: 1-based line in the batch, else 0 */
	int64_t		column;			/* JSON errors: 1-based column, else 0 */
} tp_record;

typedef enum tp_status
{
	TP_RECORD,					/* *rec holds a record (good or rejected) */
	TP_EOF,						/* no more records */
	TP_FATAL					/* the batch is broken as a whole: see errbuf */
} tp_status;

typedef struct tp_reader tp_reader;

/*
 * Allocation hooks, of the calling thread: the server routes them (and
 * jansson's) to palloc in a batch memory context, so an ERROR cannot leak;
 * tools use malloc/free, as does a reader's thread (see tp_ahead_start).
 */
typedef void *(*tp_malloc_fn) (size_t size);
typedef void (*tp_free_fn) (void *ptr);
extern void tp_set_allocator(tp_malloc_fn m, tp_free_fn f);

/*
 * Interrupt hook, of the calling thread: called every so often while a reader works through a long
 * record (many members or cells, a long line), so that the server can
 * honour a query cancel (CHECK_FOR_INTERRUPTS).  It may not return; what
 * the reader allocated is then released by whoever owns the allocator's
 * memory (the server's memory context).  NULL, the default: none.
 */
typedef void (*tp_interrupt_fn) (void);
extern void tp_set_interrupt_hook(tp_interrupt_fn f);

/*
 * Open a reader on data[0..len).  The format is recognised by its first
 * bytes (whitespace before '[' or '{' allowed).  Returns NULL and fills
 * errbuf on a broken batch (no recognisable format, byte-order mark, bad
 * header, empty input).  data must stay valid while the reader is open.
 */
extern tp_reader *tp_reader_open(const char *data, size_t len,
								 char *errbuf, size_t errlen);
extern tp_format tp_reader_format(const tp_reader *r);

/*
 * Refuse JSON records of more than max members (the key included) as record
 * errors, before a tree of them is built: memory then stays proportional to
 * what a record could apply.  0 (the default): no limit.
 */
extern void tp_reader_limit_members(tp_reader *r, int64_t max);

/* Next record; on TP_FATAL errbuf (given to open) says why. */
extern tp_status tp_reader_next(tp_reader *r, tp_record *rec);
extern void tp_reader_close(tp_reader *r);

/*
 * Read ahead (read_ahead.c): the same stream, read by a thread of its own
 * that fills the next block of records while the caller applies the
 * current one.  The thread never calls back into the caller: it blocks
 * every signal, allocates with malloc and stops between records when told
 * to.  A block holds at most block_records records and (but for a single
 * larger record) block_bytes of their copies; two exist at a time.
 *
 * tp_ahead_start() starts the thread (with thread false, or when no thread
 * can be started, the other calls read in the caller's thread instead).
 * NULL only when out of memory.  errbuf must stay valid until
 * tp_ahead_stop(); data too.  tp_ahead_open() waits until the reader is
 * open: false when the batch is broken (errbuf says why, as
 * tp_reader_open's).  tp_ahead_next() is tp_reader_next(); a record stays
 * valid until the next call.  While they wait, both call the interrupt
 * hook every few milliseconds.  tp_ahead_stop() ends the thread, waits
 * for it, and frees everything: the caller must call it on every path,
 * the hook's non-local exits included.
 */
typedef struct tp_ahead tp_ahead;

extern tp_ahead *tp_ahead_start(const char *data, size_t len, int64_t max_members,
								size_t block_records, size_t block_bytes, bool thread,
								char *errbuf, size_t errlen);
extern bool tp_ahead_threaded(const tp_ahead *a);
extern bool tp_ahead_open(tp_ahead *a);
extern tp_format tp_ahead_format(const tp_ahead *a);
extern tp_status tp_ahead_next(tp_ahead *a, tp_record *rec);
extern void tp_ahead_stop(tp_ahead *a);

#endif							/* TGTP_RECORD_H */
