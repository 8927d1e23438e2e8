/*-------------------------------------------------------------------------
 *
 * read_ahead.c
 *	  The record stream read ahead: a reader (read_dispatch.c) run in a
 *	  thread of its own, which fills the next block of records while the
 *	  caller applies the current one.  Parsing a JSON batch (libjansson)
 *	  costs about as much as applying it; on a second core it then costs
 *	  nothing but the copy of each record into a block.
 *
 * The thread is plain C and never calls PostgreSQL: it blocks every signal
 * (they all go to the backend's own thread), and it allocates with malloc
 * (the allocator hooks of read_common.c are per thread, and jansson's go
 * through them), keeping a list of what it holds.  It checks for a stop
 * request between records, and through its interrupt hook inside a long
 * one: there the hook jumps out of the reader (as the server's does), and
 * the list frees whatever the reader and jansson held.  The caller waits
 * for a block in slices, calling its own interrupt hook (the server's
 * CHECK_FOR_INTERRUPTS, which may not return) between them, and must call
 * tp_ahead_stop() on every path, errors included: it tells the thread to
 * stop, joins it and frees everything.
 *
 * Two blocks: the caller reads one while the thread fills the other.  A
 * block holds at most block_records records and, but for a single record
 * larger than that, block_bytes of their copies: the memory of a read
 * stays bounded whatever the batch holds.
 *
 * Without a thread (asked for, or one could not be started) the same calls
 * read the batch directly, in the caller's thread.
 *
 * Plain C, no PostgreSQL headers: see record.h.
 *
 *-------------------------------------------------------------------------
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "read_internal.h"

/* How long the caller waits before it checks for interrupts again */
#define WAIT_SLICE_NS	(10 * 1000 * 1000)

/* A segment of a block's copies; segments never move once written. */
typedef struct segment
{
	struct segment *next;
	size_t		cap;
	size_t		used;
	char		data[];
} segment;

typedef enum block_state
{
	BLOCK_FREE,					/* the thread may fill it */
	BLOCK_FULL					/* the caller may read it */
} block_state;

typedef struct block
{
	block_state state;
	tp_record  *recs;
	size_t		nrecs;
	size_t		bytes;			/* of the copies */
	size_t		next;			/* the caller's position */
	tp_status	end;			/* TP_RECORD: more blocks follow */
	segment    *segs;
	char		errbuf[256];	/* for TP_FATAL */
} block;

struct tp_ahead
{
	/* set before the thread starts, then read only */
	const char *data;
	size_t		len;
	int64_t		max_members;
	size_t		block_records;
	size_t		block_bytes;
	char	   *errbuf;			/* the caller's */
	size_t		errlen;
	bool		threaded;

	pthread_t	thread;
	pthread_mutex_t mutex;
	pthread_cond_t changed;		/* any state below changed */

	/* under mutex */
	int			opened;			/* 0 not yet, 1 open, -1 failed */
	tp_format	format;
	char		open_err[256];
	bool		stop;			/* the caller asks the thread to end */
	block		blocks[2];

	/* the caller's own */
	int			current;		/* the block being read */
	bool		holding;		/* it holds the current block */
	tp_status	done;			/* TP_RECORD until the stream ended */

	/* the reader: the thread's, or the caller's without a thread */
	tp_reader  *reader;
	int			filling;		/* the thread's: the block it fills next */
	jmp_buf		abort;			/* the thread's: where a stop inside a record
								 * lands */
};

/* ---------- the thread's allocator: malloc, with a list to free on a stop ---------- */

/* Before each allocation: 16 bytes, so that malloc's alignment stays. */
typedef struct tracked
{
	struct tracked *prev;
	struct tracked *next;
} tracked;

static _Thread_local tracked *thread_live;	/* the list's head */
static _Thread_local tp_ahead *thread_self;

static void *
thread_malloc(size_t size)
{
	tracked    *t;

	if (size > SIZE_MAX - sizeof(tracked) || (t = malloc(sizeof(tracked) + size)) == NULL)
		return NULL;
	t->prev = thread_live;
	t->next = thread_live->next;
	thread_live->next->prev = t;
	thread_live->next = t;
	return t + 1;
}

static void
thread_free(void *ptr)
{
	tracked    *t;

	if (ptr == NULL)
		return;
	t = (tracked *) ptr - 1;
	t->prev->next = t->next;
	t->next->prev = t->prev;
	free(t);
}

/* Free what the reader and jansson held when a stop jumped out of them. */
static void
thread_free_all(void)
{
	while (thread_live->next != thread_live)
		thread_free(thread_live->next + 1);
}

static bool stop_requested(tp_ahead *a);

/* The thread's interrupt hook: a stop leaves the record at once. */
static void
thread_interrupts(void)
{
	if (stop_requested(thread_self))
		longjmp(thread_self->abort, 1);
}

/* ---------- blocks (the thread's side, or the caller's without one) ---------- */

/* Room for size bytes aligned for any type, or NULL when out of memory. */
static void *
block_alloc(block *b, size_t size, size_t min_seg)
{
	segment    *s = b->segs;
	size_t		off;

	if (s)
	{
		off = (s->used + 7) & ~(size_t) 7;
		if (off + size <= s->cap)
		{
			s->used = off + size;
			b->bytes += size;
			return s->data + off;
		}
	}
	s = malloc(sizeof(segment) + (size > min_seg ? size : min_seg));
	if (s == NULL)
		return NULL;
	s->cap = size > min_seg ? size : min_seg;
	s->used = size;
	s->next = b->segs;
	b->segs = s;
	b->bytes += size;
	return s->data;
}

/* Empty a block for the next fill, keeping one segment for reuse. */
static void
block_clear(block *b)
{
	segment    *keep = NULL;

	while (b->segs)
	{
		segment    *s = b->segs;

		b->segs = s->next;
		if (keep == NULL || s->cap > keep->cap)
		{
			if (keep)
				free(keep);
			keep = s;
		}
		else
			free(s);
	}
	if (keep)
	{
		keep->used = 0;
		keep->next = NULL;
	}
	b->segs = keep;
	b->nrecs = 0;
	b->bytes = 0;
	b->next = 0;
	b->end = TP_RECORD;
}

static char *
copy_bytes(block *b, size_t min_seg, const char *s, size_t len)
{
	char	   *c = block_alloc(b, len + 1, min_seg);

	if (c)
	{
		if (len)
			memcpy(c, s, len);
		c[len] = '\0';
	}
	return c;
}

/*
 * Copy a reader record into the block; false when out of memory.  The
 * names of an Adobe record are shared and stay valid while the reader is
 * open, which it is until tp_ahead_stop(): they are not copied.
 */
static bool
block_add(tp_ahead *a, block *b, const tp_record *in)
{
	size_t		seg = a->block_bytes / 4 + 64;
	tp_record  *out = &b->recs[b->nrecs];

	*out = *in;
	out->attrs = NULL;
	if (in->key && (out->key = copy_bytes(b, seg, in->key, in->key_len)) == NULL)
		return false;
	if (in->error && (out->error = copy_bytes(b, seg, in->error, strlen(in->error))) == NULL)
		return false;
	if (in->nattrs > 0)
	{
		out->attrs = block_alloc(b, sizeof(tp_attr) * in->nattrs, seg);
		if (out->attrs == NULL)
			return false;
		for (int i = 0; i < in->nattrs; i++)
		{
			const tp_attr *ia = &in->attrs[i];
			tp_attr    *oa = &out->attrs[i];

			*oa = *ia;
			if (!in->shared_names &&
				(oa->name = copy_bytes(b, seg, ia->name, ia->name_len)) == NULL)
				return false;
			if (ia->value &&
				(oa->value = copy_bytes(b, seg, ia->value, ia->value_len)) == NULL)
				return false;
		}
	}
	b->nrecs++;
	return true;
}

static bool
stop_requested(tp_ahead *a)
{
	bool		stop;

	pthread_mutex_lock(&a->mutex);
	stop = a->stop;
	pthread_mutex_unlock(&a->mutex);
	return stop;
}

/*
 * Fill b from the reader until it is full or the stream ends; b->end says
 * which.  A thread also ends the fill when asked to stop.
 */
static void
block_fill(tp_ahead *a, block *b)
{
	tp_record	rec;
	tp_status	st;

	block_clear(b);
	/* the reader reports a fatal error there: the block carries it */
	a->reader->errbuf = b->errbuf;
	a->reader->errlen = sizeof(b->errbuf);
	while (b->nrecs < a->block_records && (b->nrecs == 0 || b->bytes < a->block_bytes))
	{
		if (a->threaded && stop_requested(a))
		{
			b->end = TP_EOF;	/* nobody reads it */
			return;
		}
		st = tp_reader_next(a->reader, &rec);
		if (st != TP_RECORD)
		{
			b->end = st;
			return;
		}
		if (!block_add(a, b, &rec))
		{
			snprintf(b->errbuf, sizeof(b->errbuf), "out of memory");
			b->end = TP_FATAL;
			return;
		}
	}
}

/* ---------- the thread ---------- */

static void
open_reader(tp_ahead *a, char *errbuf, size_t errlen)
{
	a->reader = tp_reader_open(a->data, a->len, errbuf, errlen);
	if (a->reader)
		tp_reader_limit_members(a->reader, a->max_members);
}

/* Wait, holding the mutex, until the caller changes something. */
static void
thread_wait(tp_ahead *a)
{
	pthread_cond_wait(&a->changed, &a->mutex);
}

/*
 * Open the reader, fill blocks until the stream ends or the caller stops
 * us, then wait for the stop: an Adobe record's names live in the reader.
 */
static void
thread_read(tp_ahead *a)
{
	tp_status	end = TP_RECORD;

	/* the caller reads open_err once opened says so, under the mutex */
	open_reader(a, a->open_err, sizeof(a->open_err));
	pthread_mutex_lock(&a->mutex);
	a->opened = a->reader ? 1 : -1;
	if (a->reader)
		a->format = tp_reader_format(a->reader);
	pthread_cond_broadcast(&a->changed);

	while (a->reader && end == TP_RECORD)
	{
		block	   *b = &a->blocks[a->filling];

		while (!a->stop && b->state != BLOCK_FREE)
			thread_wait(a);
		if (a->stop)
			break;
		pthread_mutex_unlock(&a->mutex);
		block_fill(a, b);
		end = b->end;
		pthread_mutex_lock(&a->mutex);
		b->state = BLOCK_FULL;
		a->filling ^= 1;
		pthread_cond_broadcast(&a->changed);
	}

	while (!a->stop)
		thread_wait(a);
	pthread_mutex_unlock(&a->mutex);
	tp_reader_close(a->reader);
}

static void *
ahead_main(void *arg)
{
	tp_ahead   *a = arg;
	tracked		live;

	live.prev = live.next = &live;
	thread_live = &live;
	thread_self = a;
	tp_set_allocator(thread_malloc, thread_free);
	tp_set_interrupt_hook(thread_interrupts);
	/* a stop inside a record lands here, with the mutex free */
	if (setjmp(a->abort) == 0)
		thread_read(a);
	thread_free_all();			/* the reader's and jansson's after a stop */
	return NULL;
}

/* ---------- the caller's side ---------- */

/*
 * Wait until the thread opened the reader (which == -1) or filled block
 * which; between slices the interrupt hook may not return.
 */
/* Under the mutex: has the thread opened the reader (-1) or filled which? */
static bool
caller_ready(tp_ahead *a, int which)
{
	return which < 0 ? a->opened != 0 : a->blocks[which].state == BLOCK_FULL;
}

static void
caller_wait(tp_ahead *a, int which)
{
	for (;;)
	{
		struct timespec until;
		bool		ready;

		pthread_mutex_lock(&a->mutex);
		ready = caller_ready(a, which);
		if (!ready)
		{
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += WAIT_SLICE_NS;
			if (until.tv_nsec >= 1000000000L)
			{
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			(void) pthread_cond_timedwait(&a->changed, &a->mutex, &until);
			ready = caller_ready(a, which);
		}
		pthread_mutex_unlock(&a->mutex);
		if (ready)
			return;
		tp_check_interrupts();
	}
}

static bool
start_thread(tp_ahead *a)
{
	sigset_t	all;
	sigset_t	old;
	int			rc;

	if (pthread_mutex_init(&a->mutex, NULL) != 0)
		return false;
	if (pthread_cond_init(&a->changed, NULL) != 0)
	{
		pthread_mutex_destroy(&a->mutex);
		return false;
	}
	/* the thread inherits the mask: every signal stays the backend's */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&a->thread, NULL, ahead_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
	{
		pthread_cond_destroy(&a->changed);
		pthread_mutex_destroy(&a->mutex);
		return false;
	}
	return true;
}

tp_ahead *
tp_ahead_start(const char *data, size_t len, int64_t max_members,
			   size_t block_records, size_t block_bytes, bool thread,
			   char *errbuf, size_t errlen)
{
	tp_ahead   *a = calloc(1, sizeof(tp_ahead));

	if (errbuf && errlen > 0)
		errbuf[0] = '\0';
	if (a == NULL)
		return NULL;
	a->data = data;
	a->len = len;
	a->max_members = max_members;
	a->block_records = block_records > 0 ? block_records : 1;
	a->block_bytes = block_bytes;
	a->errbuf = errbuf;
	a->errlen = errlen;
	a->done = TP_RECORD;
	for (int i = 0; i < 2; i++)
	{
		a->blocks[i].recs = malloc(sizeof(tp_record) * a->block_records);
		if (a->blocks[i].recs == NULL)
		{
			tp_ahead_stop(a);
			return NULL;
		}
	}
	a->threaded = thread && start_thread(a);
	if (!a->threaded)
	{
		/* read in the caller's thread, with the caller's allocator */
		open_reader(a, errbuf, errlen);
		a->opened = a->reader ? 1 : -1;
		if (a->reader)
			a->format = tp_reader_format(a->reader);
	}
	return a;
}

bool
tp_ahead_threaded(const tp_ahead *a)
{
	return a->threaded;
}

bool
tp_ahead_open(tp_ahead *a)
{
	if (a->threaded)
	{
		caller_wait(a, -1);
		if (a->opened < 0 && a->errbuf && a->errlen > 0)
			snprintf(a->errbuf, a->errlen, "%s", a->open_err);
	}
	return a->opened > 0;
}

tp_format
tp_ahead_format(const tp_ahead *a)
{
	return a->format;
}

/*
 * Take the current block: wait for the thread to fill it, or fill it here
 * without a thread.
 */
static void
take_block(tp_ahead *a)
{
	if (a->threaded)
		caller_wait(a, a->current);
	else
		block_fill(a, &a->blocks[a->current]);
}

/* Hand the block read back to the thread, which fills it again. */
static void
release_block(tp_ahead *a)
{
	if (!a->threaded)
		return;
	pthread_mutex_lock(&a->mutex);
	a->blocks[a->current].state = BLOCK_FREE;
	pthread_cond_broadcast(&a->changed);
	pthread_mutex_unlock(&a->mutex);
	a->current ^= 1;
}

tp_status
tp_ahead_next(tp_ahead *a, tp_record *rec)
{
	if (a->opened != 1)
		return TP_FATAL;		/* tp_ahead_open() said why */
	while (a->done == TP_RECORD)
	{
		block	   *b = &a->blocks[a->current];

		if (!a->holding)
		{
			take_block(a);
			a->holding = true;
		}
		if (b->next < b->nrecs)
		{
			*rec = b->recs[b->next++];
			return TP_RECORD;
		}
		if (b->end != TP_RECORD)
		{
			a->done = b->end;
			if (a->done == TP_FATAL && a->errbuf && a->errlen > 0)
				snprintf(a->errbuf, a->errlen, "%s", b->errbuf);
			break;
		}
		release_block(a);
		a->holding = false;
	}
	return a->done;
}

void
tp_ahead_stop(tp_ahead *a)
{
	if (a == NULL)
		return;
	if (a->threaded)
	{
		pthread_mutex_lock(&a->mutex);
		a->stop = true;
		pthread_cond_broadcast(&a->changed);
		pthread_mutex_unlock(&a->mutex);
		pthread_join(a->thread, NULL);
		pthread_cond_destroy(&a->changed);
		pthread_mutex_destroy(&a->mutex);
	}
	else if (a->reader)
		tp_reader_close(a->reader);
	for (int i = 0; i < 2; i++)
	{
		block_clear(&a->blocks[i]);
		free(a->blocks[i].segs);
		free(a->blocks[i].recs);
	}
	free(a);
}
