/*-------------------------------------------------------------------------
 *
 * module.c
 *	  _PG_init and the limits of tgt_profile, each a GUC.
 *
 * The limits guard the server (memory, WAL, lock time), so they are
 * PGC_SUSET: a superuser sets them, a caller cannot raise them.  Their
 * defaults follow the Adobe Target limits users already know.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "record.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

int			tgtp_max_batch_bytes = 50 * 1024 * 1024;
int			tgtp_max_batch_rows = 500000;
bool		tgtp_batch_read_ahead = true;
int			tgtp_max_name_length = 128;
int			tgtp_max_value_length = 5000;
int			tgtp_max_profile_bytes = 64 * 1024;
int			tgtp_max_id_length = 256;
int			tgtp_profile_partitions = 0;
int			tgtp_profile_fillfactor = 70;
char	   *tgtp_token_header = NULL;

void		_PG_init(void);

/*
 * The batch readers and jansson allocate through these: palloc in the
 * current memory context, so an ERROR never leaks what they held.  NULL
 * rather than an ERROR on OOM, since they expect to unwind themselves.
 */
static void *
reader_palloc(size_t size)
{
	return palloc_extended(size, MCXT_ALLOC_NO_OOM | MCXT_ALLOC_HUGE);
}

static void
reader_pfree(void *ptr)
{
	if (ptr)
		pfree(ptr);
}

/*
 * The readers call this inside long records: a query cancel must not wait
 * for a record of millions of members to be read.  An ERROR here unwinds
 * out of the reader (and jansson); their memory is the batch's context.
 */
static void
reader_interrupts(void)
{
	CHECK_FOR_INTERRUPTS();
}

static void
define_limit(const char *name, const char *desc, const char *long_desc,
			 int *var, int def, int min, int max, int flags)
{
	DefineCustomIntVariable(name, desc, long_desc, var, def, min, max,
							PGC_SUSET, flags, NULL, NULL, NULL);
}

/*
 * A header name as PostgREST puts it in request.headers: lower case (it
 * lower-cases every name, so an upper-case one would never match), made of
 * RFC 7230 token characters, and short.
 */
static bool
check_token_header(char **newval, void **extra, GucSource source)
{
	const char *s = *newval;
	size_t		len = strlen(s);

	if (len == 0 || len > TP_MAX_HEADER_NAME_LEN)
	{
		GUC_check_errdetail("A header name has 1 to %d characters.",
							TP_MAX_HEADER_NAME_LEN);
		return false;
	}
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c >= 'A' && c <= 'Z')
		{
			GUC_check_errdetail("PostgREST lower-cases the names in request.headers, so a name with an upper-case letter never matches.");
			GUC_check_errhint("Write the header name in lower case, for example \"x-profile-token\".");
			return false;
		}
		if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') &&
			strchr("!#$%&'*+-.^_`|~", c) == NULL)
		{
			GUC_check_errdetail("A header name consists of letters, digits and !#$%%&'*+-.^_`|~ (an RFC 7230 token).");
			return false;
		}
	}
	return true;
}

void
_PG_init(void)
{
	define_limit("tgt_profile.max_batch_bytes",
				 "Largest batch accepted by bulk_update.",
				 "A larger batch is refused whole (SQLSTATE 54000) before it is parsed. Default: Adobe's bulk API file limit.",
				 &tgtp_max_batch_bytes, 50 * 1024 * 1024, 1, 1024 * 1024 * 1024,
				 GUC_UNIT_BYTE);
	define_limit("tgt_profile.max_batch_rows",
				 "Most records accepted in one bulk_update batch.",
				 "A batch with more records is refused whole (SQLSTATE 54000). Default: Adobe's rows per upload.",
				 &tgtp_max_batch_rows, 500000, 1, INT_MAX, 0);
	define_limit("tgt_profile.max_name_length",
				 "Longest attribute name, in characters.",
				 "A longer name is refused (SQLSTATE 22023), or its batch record rejected alone.",
				 &tgtp_max_name_length, 128, 1, 65535, 0);
	define_limit("tgt_profile.max_value_length",
				 "Longest attribute value, in characters.",
				 "A longer value is refused (SQLSTATE 22023), or its batch record rejected alone.",
				 &tgtp_max_value_length, 5000, 1, 10 * 1024 * 1024, 0);
	define_limit("tgt_profile.max_profile_bytes",
				 "Largest stored profile (its attributes as JSON), in bytes.",
				 "An update that would make a profile larger is refused (SQLSTATE 22023), or its batch record rejected alone.",
				 &tgtp_max_profile_bytes, 64 * 1024, 64, 256 * 1024 * 1024,
				 GUC_UNIT_BYTE);
	define_limit("tgt_profile.max_id_length",
				 "Longest pcId or thirdPartyId, in characters.",
				 "A longer id is refused (SQLSTATE 22023), or its batch record rejected alone. At most 512, so that a key always fits in an index entry.",
				 &tgtp_max_id_length, 256, 1, 512, 0);

	DefineCustomBoolVariable("tgt_profile.batch_read_ahead",
							 "Parse a batch in a thread of its own, ahead of applying it.",
							 "On (the default), bulk_update's reader fills the next chunk of records on another core while the backend applies the current one. Off: the backend reads the batch itself.",
							 &tgtp_batch_read_ahead, true,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("tgt_profile.profile_partitions",
							"Hash partitions of tgt_profile.profiles made by CREATE EXTENSION.",
							"0 (the default) makes a plain table. Read only when the extension is installed.",
							&tgtp_profile_partitions, 0, 0, 1024,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("tgt_profile.profile_fillfactor",
							"Fillfactor of tgt_profile.profiles made by CREATE EXTENSION (or set by the upgrade to 1.2).",
							"70 (the default) leaves room on each page for updates that stay HOT. Read only when the extension is installed or upgraded; later, ALTER TABLE ... SET (fillfactor = ...).",
							&tgtp_profile_fillfactor, 70, 10, 100,
							PGC_SUSET, 0, NULL, NULL, NULL);
	/* PGC_SUSET: see the header comment of this file */
	DefineCustomStringVariable("tgt_profile.token_header",
							   "Request header that carries the token when no authorization argument is given.",
							   "The member of request.headers (a JSON object with lower-cased names, as PostgREST sets it) that is read; it may hold the token bare or as \"Bearer <token>\".",
							   &tgtp_token_header, "authorization",
							   PGC_SUSET, 0, check_token_header, NULL, NULL);
	tp_set_allocator(reader_palloc, reader_pfree);
	tp_set_interrupt_hook(reader_interrupts);
	MarkGUCPrefixReserved("tgt_profile");
}
