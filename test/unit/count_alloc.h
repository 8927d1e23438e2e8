/*
 * count_alloc.h
 *	  A malloc/free pair for tp_set_allocator() that counts live and peak
 *	  bytes, shared by the reader tests and the reader benchmark.
 */
#ifndef COUNT_ALLOC_H
#define COUNT_ALLOC_H

#include <stdlib.h>

static size_t live_bytes;
static size_t peak_bytes;

/* malloc with a size header */
static void *
count_malloc(size_t size)
{
	size_t	   *p = malloc(size + 16);

	if (p == NULL)
		return NULL;
	p[0] = size;
	live_bytes += size;
	if (live_bytes > peak_bytes)
		peak_bytes = live_bytes;
	return (char *) p + 16;
}

static void
count_free(void *ptr)
{
	size_t	   *p;

	if (ptr == NULL)
		return;
	p = (size_t *) ((char *) ptr - 16);
	live_bytes -= p[0];
	free(p);
}

#endif							/* COUNT_ALLOC_H */
