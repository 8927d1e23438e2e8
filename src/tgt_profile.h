/*-------------------------------------------------------------------------
 *
 * tgt_profile.h
 *	  Declarations shared by the server-side modules of tgt_profile.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TGT_PROFILE_H
#define TGT_PROFILE_H

#include "postgres.h"

#include "access/htup.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/relcache.h"
#include "utils/timestamp.h"

#define TGTP_SCHEMA			"tgt_profile"
#define TGTP_ROLE_ADMIN		"tgt_profile_admin"

/* module.c: limits (GUCs) */
extern int	tgtp_max_batch_bytes;
extern int	tgtp_max_batch_rows;
extern bool tgtp_batch_read_ahead;
extern int	tgtp_max_name_length;
extern int	tgtp_max_value_length;
extern int	tgtp_max_profile_bytes;
extern int	tgtp_max_id_length;
extern int	tgtp_profile_partitions;
extern int	tgtp_profile_fillfactor;
extern char *tgtp_token_header;	/* tgt_profile.token_header */

#define TP_MAX_HEADER_NAME_LEN	64

/* caller.c: who calls, what they may do, and acting as the owner */
typedef enum TpLevel
{
	TP_LEVEL_NONE = 0,
	TP_LEVEL_APPROVER,
	TP_LEVEL_ADMIN				/* client admin, tgt_profile_admin or superuser */
} TpLevel;

typedef struct TpPrivState
{
	MemoryContext outer;		/* the caller's context: copy results here */
	Oid			saved_user;
	int			saved_sec;
	int			guc_level;
} TpPrivState;

extern Oid	tp_caller(void);
extern char *tp_caller_name(void);
extern bool tp_is_admin(Oid role);
extern TpLevel tp_client_level(const char *client, Oid role);
extern void tp_require_admin(const char *what);
extern void tp_require_level(const char *client, TpLevel need, const char *what);
extern void tp_check_client_code(const char *client);
extern char *tp_text_arg(FunctionCallInfo fcinfo, int argno, const char *argname);
extern void tp_begin(TpPrivState *st, bool as_owner);
extern void tp_end(TpPrivState *st);
extern Datum tp_call_quietly(PGFunction body, FunctionCallInfo fcinfo);

/*
 * Defines a SQL-callable function whose every error, raised by us or by
 * PostgreSQL while it runs, hides the statement text from the server log
 * (a statement may carry a token as a literal).  Use as
 *		TP_SQL_FUNCTION(tgtp_name)
 *		{
 *			... the body, as of a PG_FUNCTION_INFO_V1 function ...
 *		}
 */
#define TP_SQL_FUNCTION(name) \
	static Datum name##_body(PG_FUNCTION_ARGS); \
	PG_FUNCTION_INFO_V1(name); \
	Datum \
	name(PG_FUNCTION_ARGS) \
	{ \
		return tp_call_quietly(name##_body, fcinfo); \
	} \
	static Datum \
	name##_body(PG_FUNCTION_ARGS)

/* store.c: the storage layer (direct reads, snapshots, per-client locks) */
#define TP_PLAN_MAX_WRITES	4

typedef struct TpPlan
{
	const char *sql;
	int			nargs;
	Oid			argtypes[8];
	SPIPlanPtr	plan;
	/*
	 * n > 0: the statement writes the profiles of the client in $n only (a
	 * NULL there: of any client); 0: of any client.  The DBA-additions check
	 * then looks at that client's partition only.
	 */
	int			client_arg;
	/* set when prepared (additions.c): the tables the statement writes */
	int			nwrites;
	const char *writes[TP_PLAN_MAX_WRITES];
} TpPlan;

extern Oid	tp_relation_oid(const char *relname);
extern Oid	tp_relation_oid_if_any(const char *relname);
extern Relation tp_open_table(const char *relname, LOCKMODE mode);
extern Relation tp_open_index(const char *indexname, LOCKMODE mode);
extern bool tp_open_rows(const char *relname, const char *client, const char *indexname,
						 LOCKMODE mode, Relation *rel, Relation *idx);
extern bool tp_open_profiles(const char *client, const char *indexname, LOCKMODE mode,
							 Relation *rel, Relation *idx);

/* remote.c: a client's rows on another node (Citus), through routed SQL */
extern List *tp_sql_profiles(const char *client, bool by_third_party, Datum id, bool many);
extern List *tp_remote_query_rows(const char *sql, int nargs, const Oid *types,
								  const Datum *args, const char *nulls, bool with_tid);
extern List *tp_remote_fresh_rows(const char *relname, const char *indexname, int nkeys,
								  const Datum *keys);
extern void tp_remote_lock_client(const char *client, int kind);

/*
 * placement.c: which relation holds a client's rows on this node (the
 * table, its hash partition, the local Citus shard), InvalidOid with
 * *elsewhere set when they are on another node; that relation's copy of
 * one of our indexes; and the relation in our schema (the table or its
 * partition, on Citus the shell) that holds them or whose shard does.
 */
extern Oid	tp_client_relation(const char *relname, const char *client, bool *elsewhere);
extern Oid	tp_client_index(const char *indexname, Oid client_rel);
extern Oid	tp_client_shell(const char *relname, const char *client);
extern bool tp_client_rows_here(const char *relname, const char *client);

/*
 * A scan of one of our tables, by a client's key, under a fresh snapshot;
 * on Citus, where the client's shard is on another node, a read through SQL.
 */
typedef struct TpScan
{
	Relation	table;			/* the table in our schema (on Citus, the shell) */
	Relation	rel;			/* the relation scanned (table, partition, shard) */
	Relation	idx;
	Snapshot	snap;
	struct SysScanDescData *scan;
	List	   *rows;			/* read through SQL (rel and idx NULL) */
	int			next;
} TpScan;

typedef enum TpClientLock
{
	TP_LOCK_ROWS,				/* writing the client's profiles */
	TP_LOCK_TOKENS,				/* generating or revoking its tokens */
	TP_LOCK_BATCHES,			/* a batch (the daily quota) */
	TP_LOCK_DROP				/* drop_client */
} TpClientLock;

extern Snapshot tp_fresh_snapshot(void);
extern void tp_fresh_scan_begin(TpScan *scan, const char *relname, const char *indexname,
								int nkeys, const Datum *keys);
extern HeapTuple tp_scan_next(TpScan *scan);
extern void tp_scan_columns(TpScan *scan, HeapTuple tup, int ncols, const AttrNumber *cols,
							Datum *values, bool *nulls);
extern void tp_scan_end(TpScan *scan);
extern bool tp_lookup(const char *relname, const char *indexname,
					  int nkeys, const Datum *keys,
					  int ncols, const AttrNumber *cols, Datum *values, bool *nulls);
extern int	tp_exec(TpPlan *p, Datum *values, const char *nulls, bool read_only,
					long count);
extern int	tp_exec_fresh(TpPlan *p, Datum *values, const char *nulls, bool read_only,
						  long count);
extern void tp_lock_client(const char *client, TpClientLock kind);
extern bool tp_in_subtransaction(bool (*body) (void *arg), void *arg, int caught, bool *raised);
extern void tp_audit(const char *client, const char *actor, const char *action,
					 const char *detail_json);
extern TimestampTz tp_now(void);
extern TimestampTz tp_clock(void);

/* additions.c: objects a DBA attaches to our tables, refused before we write them */
extern void tp_check_no_dba_code(Relation rel);
extern void tp_check_profiles_writable(Relation rel);
extern void tp_plan_note_writes(TpPlan *p, SPIPlanPtr plan);
extern void tp_plan_check_writes(TpPlan *p, Datum *values, const char *nulls);

/* settings.c: a client's settings, read as committed now, and their bounds */
typedef struct TpSettings
{
	bool		require_auth;
	Interval	token_ttl;
	Interval	max_token_ttl;
	Interval	profile_lifetime;
	bool		has_daily_row_limit;
	int64		daily_row_limit;
} TpSettings;

extern bool tp_get_settings(const char *client, TpSettings *out);
extern void tp_require_client(const char *client, TpSettings *out);

/* Bounds on the settings' durations (DESIGN.md "Bounds on settings") */
#define TP_MAX_DURATION_TEXT	"10 years"
#define TP_MAX_DURATION_MONTHS	(10 * MONTHS_PER_YEAR)
#define TP_MIN_LIFETIME_USECS	USECS_PER_HOUR
#define TP_SANE_YEARS			100

extern bool tp_interval_sane(const Interval *iv);
extern bool tp_duration_within(const Interval *iv, int64 min_usecs, bool min_inclusive);
extern bool tp_last_seen_stale(const char *client, TimestampTz last_seen,
							   const Interval *lifetime);

/* authorize.c */
extern void tp_authorize(const char *client, const char *header, size_t header_len);
extern void tp_authorize_arg(FunctionCallInfo fcinfo, const char *client, int argno);

/* request_headers.c */
extern char *tp_header_from_request(void);

/* profiles.c */
extern char *tp_new_tnt_id(void);

/*
 * aliases.c: pcIds merged into another profile (upsert_profile's merge),
 * read through the storage layer.  snap NULL: a fresh snapshot.
 */
typedef struct TpAlias
{
	char	   *pc_id;
	char	   *tnt_id;
} TpAlias;

extern bool tp_aliases_installed(void);
extern bool tp_client_has_aliases(const char *client, Snapshot snap);
extern int	tp_aliases_of_keys(const char *client, char **pc_ids, int n, Snapshot snap,
							   TpAlias **out);
extern char *tp_alias_target(const char *client, const char *pc_id, Snapshot snap);
extern List *tp_profile_aliases(const char *client, const char *tnt_id, Snapshot snap);

/* token_verify.c: verification and its per-backend cache */
extern bool tp_token_is_valid(const char *client, const char *token, size_t len);

/* token_format.c */
#define TP_TOKEN_PREFIX		"tgtp_"
#define TP_TOKEN_PREFIX_LEN	5
#define TP_TOKEN_SECRET_LEN	32	/* 256 bits from the CSPRNG */
#define TP_TOKEN_TEXT_LEN	53	/* prefix + base64url(secret + crc32c) */
#define TP_TOKEN_HINT_LEN	9	/* prefix + 4 characters */

extern void tp_token_new(char *out);	/* out: TP_TOKEN_TEXT_LEN + 1 bytes */
extern bool tp_token_well_formed(const char *token, size_t len);
extern void tp_token_hash(const char *token, size_t len, uint8 *digest);

#endif							/* TGT_PROFILE_H */
