/*-------------------------------------------------------------------------
 *
 * bench_readers.c
 *	  Throughput of the batch readers on generated batches of 500,000
 *	  records, each a key and five string attributes of 10-20 characters,
 *	  as NDJSON, JSON array and Adobe batch file.  `make -C test/unit bench`.
 *
 * The batch is built in memory first; only reading it is timed (best of
 * three runs), with the peak of the readers' own allocations.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "record.h"

#define NRECORDS	500000
#define NRUNS		3

#include "count_alloc.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A value of 10-20 letters and digits, different for each record. */
static int
value(char *buf, long i, int attr)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned long h = (unsigned long) i * 2654435761UL + attr * 40503UL;
	int			len = 10 + (int) (h % 11);
	int			k;

	for (k = 0; k < len; k++)
	{
		buf[k] = chars[h % 36];
		h = h * 6364136223846793005UL + 1442695040888963407UL;
		h ^= h >> 29;
	}
	buf[len] = '\0';
	return len;
}

static char *
generate(tp_format format, size_t *len)
{
	static const char *names[5] = {"firstName", "lastName", "tier", "city", "segment"};
	size_t		cap = (size_t) NRECORDS * 200 + 256;
	char	   *b = malloc(cap);
	size_t		n = 0;
	long		i;
	int			a;
	char		v[32];

	if (b == NULL)
		abort();
	if (format == TP_FORMAT_ADOBE)
		n += sprintf(b + n, "batch=pcId,firstName,lastName,tier,city,segment\n");
	else if (format == TP_FORMAT_JSON_ARRAY)
		n += sprintf(b + n, "[\n");
	for (i = 1; i <= NRECORDS; i++)
	{
		if (format == TP_FORMAT_ADOBE)
		{
			n += sprintf(b + n, "visitor-%ld", i);
			for (a = 0; a < 5; a++)
			{
				value(v, i, a);
				n += sprintf(b + n, ",%s", v);
			}
			b[n++] = '\n';
			continue;
		}
		if (format == TP_FORMAT_JSON_ARRAY && i > 1)
			b[n++] = ',';
		n += sprintf(b + n, "{\"pcId\":\"visitor-%ld\"", i);
		for (a = 0; a < 5; a++)
		{
			value(v, i, a);
			n += sprintf(b + n, ",\"%s\":\"%s\"", names[a], v);
		}
		n += sprintf(b + n, "}\n");
	}
	if (format == TP_FORMAT_JSON_ARRAY)
		n += sprintf(b + n, "]\n");
	*len = n;
	return b;
}

static void
bench(const char *what, tp_format format)
{
	size_t		len;
	char	   *batch = generate(format, &len);
	double		best = 1e30;
	int			run;
	long		records = 0;
	long		bytes = 0;

	for (run = 0; run < NRUNS; run++)
	{
		char		errbuf[256];
		tp_reader  *r;
		tp_record	rec;
		tp_status	st;
		double		t0 = now(),
					t;
		int			i;

		peak_bytes = live_bytes = 0;
		records = bytes = 0;
		r = tp_reader_open(batch, len, errbuf, sizeof(errbuf));
		if (r == NULL)
		{
			fprintf(stderr, "%s: %s\n", what, errbuf);
			exit(1);
		}
		while ((st = tp_reader_next(r, &rec)) == TP_RECORD)
		{
			if (rec.error)
			{
				fprintf(stderr, "%s: record %lld: %s\n", what,
						(long long) rec.row, rec.error);
				exit(1);
			}
			records++;
			/* look at the values, as a consumer would */
			for (i = 0; i < rec.nattrs; i++)
				bytes += rec.attrs[i].value_len;
		}
		tp_reader_close(r);
		if (st != TP_EOF || records != NRECORDS)
		{
			fprintf(stderr, "%s: %s after %ld records\n", what, errbuf, records);
			exit(1);
		}
		t = now() - t0;
		if (t < best)
			best = t;
	}
	printf("%-10s %6.1f MB  %7.0f ms  %6.0f MB/s  %9.0f records/s  peak %zu bytes\n",
		   what, len / 1e6, best * 1000, len / 1e6 / best, records / best,
		   peak_bytes);
	free(batch);
}

int
main(void)
{
	tp_set_allocator(count_malloc, count_free);
	bench("ndjson", TP_FORMAT_NDJSON);
	bench("json array", TP_FORMAT_JSON_ARRAY);
	bench("adobe", TP_FORMAT_ADOBE);
	return 0;
}
