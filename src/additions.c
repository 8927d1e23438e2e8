/*-------------------------------------------------------------------------
 *
 * additions.c
 *	  Objects a DBA attaches to the extension's tables, refused before our
 *	  functions write those tables as the owner.
 *
 * Our functions write as the extension owner (a superuser) with search_path
 * "pg_catalog, pg_temp" (caller.c).  Code attached to a table we write -- a
 * trigger, a rule, a CHECK constraint, a column default or generated
 * column, a domain's constraint, an index expression, predicate or operator
 * class -- would run with the owner's rights inside the caller's call, and
 * an unqualified relation name in it resolves into the caller's temporary
 * schema, whose own triggers then run as the owner too (no search_path
 * keeps pg_temp out of relation lookup).  So such objects are refused, with
 * an error that names the object and says what to do instead: the change
 * feed that sees every write is logical replication (a publication).
 *
 * Allowed: internal triggers calling built-in functions (foreign keys; a
 * cascade carries the write into the referencing table, which is checked
 * the same way), the extension's own trigger functions, and expressions
 * that call only built-in functions and operators, or ours.  "Ours" is a C
 * function in schema tgt_profile: only a superuser creates C functions, and
 * only the schema's owner or a superuser creates anything in it.
 *
 * Expressions are checked as stored, parsed but not simplified (the
 * simplification would call immutable functions: the check runs nothing),
 * so an SQL function is refused even where the executor would inline it.
 * What is read is relcache and syscache data, with the locks the write
 * takes anyway: no catalog scan on the way of a call that passes
 * (upsert_profile is a hot path), unless a table has a column of a domain
 * type; and a relation found clean is not walked again until the next
 * relcache invalidation.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"

#include "access/amapi.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/transam.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/dependency.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_index.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "partitioning/partdesc.h"
#include "rewrite/prs2lock.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

static void check_relation(Relation rel, List **visited);

/* ----- what may run ----- */

/* A C function in schema tgt_profile (see the header comment). */
static bool
function_is_ours(Oid funcid)
{
	HeapTuple	tup;
	Form_pg_proc proc;
	bool		ours;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tup))
		return false;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	ours = proc->prolang == ClanguageId &&
		proc->pronamespace == get_namespace_oid(TGTP_SCHEMA, true);
	ReleaseSysCache(tup);
	return ours;
}

/*
 * Citus's own trigger on a distributed table's shell (it forwards a
 * TRUNCATE to the shards): a C function of the extension citus, which only
 * a superuser installs.  Part of the engine that holds the table, as the
 * table access method is.
 */
static bool
function_is_citus_truncate(Oid funcid)
{
	Oid			citus = get_extension_oid("citus", true);
	char	   *name;
	bool		ok;

	if (!OidIsValid(citus) || getExtensionOfObject(ProcedureRelationId, funcid) != citus)
		return false;
	name = get_func_name(funcid);
	ok = name != NULL && strcmp(name, "citus_truncate_trigger") == 0;
	return ok;
}

/* Built in, or ours. */
static bool
function_is_trusted(Oid funcid)
{
	return funcid < FirstNormalObjectId || function_is_ours(funcid);
}

/*
 * An operator class's support function is called with datums only, never
 * runs SQL of its own when written in C, and only a superuser creates an
 * operator class: one in C (pg_trgm's, btree_gist's) is allowed, one in
 * SQL or a procedural language is not.
 */
static bool
support_is_trusted(Oid funcid)
{
	HeapTuple	tup;
	bool		compiled;

	if (!OidIsValid(funcid) || function_is_trusted(funcid))
		return true;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tup))
		return false;
	compiled = ((Form_pg_proc) GETSTRUCT(tup))->prolang == ClanguageId;
	ReleaseSysCache(tup);
	return compiled;
}

static Oid	untrusted_in_type(Oid typid);

static bool
untrusted_callback(Oid funcid, void *context)
{
	if (function_is_trusted(funcid))
		return false;
	*(Oid *) context = funcid;
	return true;
}

/*
 * Walk an expression; sets *bad to the first function it calls that is not
 * trusted, including those of the constraints of a domain it coerces to.
 */
static bool
untrusted_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, untrusted_callback, context))
		return true;
	if (IsA(node, CoerceToDomain))
	{
		Oid			bad = untrusted_in_type(((CoerceToDomain *) node)->resulttype);

		if (OidIsValid(bad))
		{
			*(Oid *) context = bad;
			return true;
		}
	}
	return expression_tree_walker(node, untrusted_walker, context);
}

static Oid
untrusted_in_expr(Node *expr)
{
	Oid			bad = InvalidOid;

	check_stack_depth();
	(void) untrusted_walker(expr, &bad);
	return bad;
}

/*
 * One domain's CHECK constraints and default, as stored (the type cache
 * simplifies its copies, calling immutable functions on constants).  A
 * catalog scan, but only for a column of a domain type, which none of the
 * extension's tables has.
 */
static Oid
untrusted_in_domain(Oid typid)
{
	Relation	con = table_open(ConstraintRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			bad = InvalidOid;

	ScanKeyInit(&key, Anum_pg_constraint_contypid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(typid));
	scan = systable_beginscan(con, ConstraintTypidIndexId, true, NULL, 1, &key);
	while (!OidIsValid(bad) && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		bin = heap_getattr(tup, Anum_pg_constraint_conbin,
									   RelationGetDescr(con), &isnull);

		if (((Form_pg_constraint) GETSTRUCT(tup))->contype == CONSTRAINT_CHECK && !isnull)
			bad = untrusted_in_expr(stringToNode(TextDatumGetCString(bin)));
	}
	systable_endscan(scan);
	table_close(con, AccessShareLock);
	return OidIsValid(bad) ? bad : untrusted_in_expr(get_typdefault(typid));
}

/*
 * A column's type may be a domain (or an array of one) whose constraints,
 * and those of the domains it is based on, run on every value written, and
 * whose default fills a column that has none of its own.
 */
static Oid
untrusted_in_type(Oid typid)
{
	TypeCacheEntry *tc = lookup_type_cache(typid, 0);
	HeapTuple	tup;
	Oid			base;
	Oid			bad;

	if (tc->typtype != TYPTYPE_DOMAIN)
		return (OidIsValid(tc->typelem) && tc->typlen == -1)
			? untrusted_in_type(tc->typelem) : InvalidOid;
	if (OidIsValid(bad = untrusted_in_domain(typid)))
		return bad;
	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", typid);
	base = ((Form_pg_type) GETSTRUCT(tup))->typbasetype;
	ReleaseSysCache(tup);
	return untrusted_in_type(base);
}

/* ----- refusing ----- */

static char *
qualified_name(Relation rel)
{
	return quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
									  RelationGetRelationName(rel));
}

/*
 * what: "trigger \"x\"", "check constraint \"y\"", ...; calls: the function
 * an expression would call, InvalidOid for a trigger or a rule.
 */
static void
refuse(Relation rel, const char *what, Oid calls)
{
	char	   *table = qualified_name(rel);

	if (!OidIsValid(calls))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s has %s, which tgt_profile will not run as its owner",
						table, what),
				 errdetail("tgt_profile writes its tables as the extension owner, with the calling role's temporary schema on the search path: a trigger or rule would run with the owner's rights, and a caller could redirect it."),
				 errhint("Drop it; to follow changes, publish the table (CREATE PUBLICATION ... FOR TABLE %s) and subscribe to it, as the README shows.",
						 table)));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("table %s has %s calling function %s, which tgt_profile will not run as its owner",
					table, what, format_procedure(calls)),
			 errdetail("tgt_profile writes its tables as the extension owner, with the calling role's temporary schema on the search path: a function other than a built-in one would run with the owner's rights, and a caller could redirect it."),
			 errhint("Drop it, or write it with built-in functions and operators only; see the README.")));
}

static char *
rule_name(Oid ruleid)
{
	Relation	rewrite = table_open(RewriteRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *name = "?";

	ScanKeyInit(&key, Anum_pg_rewrite_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ruleid));
	scan = systable_beginscan(rewrite, RewriteOidIndexId, true, NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
		name = pstrdup(NameStr(((Form_pg_rewrite) GETSTRUCT(tup))->rulename));
	systable_endscan(scan);
	table_close(rewrite, AccessShareLock);
	return name;
}

/* ----- one relation ----- */

static bool
is_cascade(Oid funcid)
{
	return funcid == F_RI_FKEY_CASCADE_DEL || funcid == F_RI_FKEY_CASCADE_UPD ||
		funcid == F_RI_FKEY_SETNULL_DEL || funcid == F_RI_FKEY_SETNULL_UPD ||
		funcid == F_RI_FKEY_SETDEFAULT_DEL || funcid == F_RI_FKEY_SETDEFAULT_UPD;
}

/*
 * Triggers: internal ones calling built-in functions (a cascade's table is
 * checked too), and the extension's own.  Any other is refused, even one
 * calling a built-in trigger function: the rule is simplest to state.
 */
static void
check_triggers(Relation rel, List **visited)
{
	TriggerDesc *td = rel->trigdesc;

	for (int i = 0; td != NULL && i < td->numtriggers; i++)
	{
		Trigger    *t = &td->triggers[i];

		if (t->tgisinternal && t->tgfoid < FirstNormalObjectId)
		{
			if (is_cascade(t->tgfoid) && !list_member_oid(*visited, t->tgconstrrelid))
			{
				Relation	other = table_open(t->tgconstrrelid, RowExclusiveLock);

				check_relation(other, visited);
				table_close(other, NoLock);
			}
			continue;
		}
		if (!function_is_ours(t->tgfoid) && !function_is_citus_truncate(t->tgfoid))
			refuse(rel, psprintf("trigger \"%s\"", t->tgname), InvalidOid);
	}
	if (rel->rd_rules != NULL && rel->rd_rules->numLocks > 0)
		refuse(rel, psprintf("rule \"%s\"", rule_name(rel->rd_rules->rules[0]->ruleId)),
			   InvalidOid);
}

/* CHECK constraints, column defaults, generated columns, domain types. */
static void
check_columns(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	TupleConstr *constr = desc->constr;
	Oid			bad;

	for (int i = 0; constr != NULL && i < constr->num_check; i++)
		if (OidIsValid(bad = untrusted_in_expr(stringToNode(constr->check[i].ccbin))))
			refuse(rel, psprintf("check constraint \"%s\"", constr->check[i].ccname),
				   bad);
	for (int i = 0; constr != NULL && i < constr->num_defval; i++)
	{
		AttrDefault *d = &constr->defval[i];
		Form_pg_attribute att = TupleDescAttr(desc, d->adnum - 1);

		if (OidIsValid(bad = untrusted_in_expr(stringToNode(d->adbin))))
			refuse(rel,
				   psprintf(att->attgenerated ? "generated column \"%s\"" : "a default for column \"%s\"",
							NameStr(att->attname)),
				   bad);
	}
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && att->atttypid >= FirstNormalObjectId &&
			OidIsValid(bad = untrusted_in_type(att->atttypid)))
			refuse(rel,
				   psprintf("column \"%s\" of type %s", NameStr(att->attname),
							format_type_be(att->atttypid)),
				   bad);
	}
}

/*
 * An index's expressions or predicate as stored, not as the relcache
 * serves them: RelationGetIndexExpressions() simplifies them first, which
 * inlines SQL functions and calls immutable ones on constants -- running
 * the very code we are about to refuse.
 */
static Node *
stored_index_expr(Relation idx, AttrNumber attnum)
{
	bool		isnull;
	Datum		d = SysCacheGetAttr(INDEXRELID, idx->rd_indextuple, attnum, &isnull);

	return isnull ? NULL : stringToNode(TextDatumGetCString(d));
}

/* Index expressions and predicates, operator classes, exclusion operators. */
static void
check_index(Relation rel, Relation idx)
{
	const char *name = RelationGetRelationName(idx);
	int			nkeys = IndexRelationGetNumberOfKeyAttributes(idx);
	Oid			bad;

	if (OidIsValid(bad = untrusted_in_expr(stored_index_expr(idx, Anum_pg_index_indexprs))))
		refuse(rel, psprintf("index \"%s\" with an expression", name), bad);
	if (OidIsValid(bad = untrusted_in_expr(stored_index_expr(idx, Anum_pg_index_indpred))))
		refuse(rel, psprintf("index \"%s\" with a predicate", name), bad);
	for (int col = 1; col <= nkeys; col++)
		for (int proc = 1; proc <= idx->rd_indam->amsupport; proc++)
			if (!support_is_trusted(index_getprocid(idx, col, proc)))
				refuse(rel, psprintf("index \"%s\" with an operator class", name),
					   index_getprocid(idx, col, proc));
	if (idx->rd_index->indisexclusion)
	{
		Oid		   *ops;
		Oid		   *procs;
		uint16	   *strats;

		RelationGetExclusionInfo(idx, &ops, &procs, &strats);
		for (int col = 0; col < nkeys; col++)
			if (!function_is_trusted(procs[col]))
				refuse(rel, psprintf("exclusion constraint \"%s\"", name), procs[col]);
	}
}

static void
check_indexes(Relation rel)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;

	foreach(lc, indexes)
	{
		/* the lock the executor takes to insert index entries */
		Relation	idx = index_open(lfirst_oid(lc), RowExclusiveLock);

		check_index(rel, idx);
		index_close(idx, NoLock);
	}
	list_free(indexes);
}

/*
 * Relations found clean, with the tables their cascades write, since the
 * last relcache invalidation.  Whatever can attach code to a table (a
 * trigger, rule, constraint, default, index, partition) invalidates that
 * table's relcache entry; a domain's constraint, a type or a function
 * sends a syscache invalidation; any of them empties the set, so a hit
 * answers what the check would; the caller's lock keeps a concurrent
 * change out until our write is done.  Spares upsert_profile the walk on
 * every call.
 */
#define CLEAN_MAX 64

static Oid	clean[CLEAN_MAX];
static int	nclean = 0;
static bool clean_callback_registered = false;

static void
forget_clean(Datum arg, Oid relid)
{
	nclean = 0;
}

/* a domain's constraints, a type or a function changed */
static void
forget_clean_syscache(Datum arg, int cacheid, uint32 hashvalue)
{
	nclean = 0;
}

static bool
clean_relation(Oid relid)
{
	for (int i = 0; i < nclean; i++)
		if (clean[i] == relid)
			return true;
	return false;
}

static void
remember_clean(Oid relid)
{
	if (!clean_callback_registered)
	{
		CacheRegisterRelcacheCallback(forget_clean, (Datum) 0);
		CacheRegisterSyscacheCallback(CONSTROID, forget_clean_syscache, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, forget_clean_syscache, (Datum) 0);
		CacheRegisterSyscacheCallback(PROCOID, forget_clean_syscache, (Datum) 0);
		clean_callback_registered = true;
	}
	if (nclean < CLEAN_MAX)
		clean[nclean++] = relid;
}

/*
 * One relation (not its partitions), and the tables a cascading foreign key
 * would write from it.  The caller holds the lock its write takes, so
 * nothing can be attached between this check and the write.
 */
static void
check_relation(Relation rel, List **visited)
{
	check_stack_depth();
	if (clean_relation(RelationGetRelid(rel)))
		return;
	*visited = lappend_oid(*visited, RelationGetRelid(rel));
	check_triggers(rel, visited);
	check_columns(rel);
	check_indexes(rel);
	remember_clean(RelationGetRelid(rel));
}

/* rel and, when it is partitioned, every partition (parent first). */
static void
check_tree(Relation rel, List **visited)
{
	PartitionDesc pd;

	check_relation(rel, visited);
	if (rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		return;
	pd = RelationGetPartitionDesc(rel, false);
	for (int i = 0; i < pd->nparts; i++)
	{
		Relation	part = table_open(pd->oids[i], RowExclusiveLock);

		check_tree(part, visited);
		table_close(part, NoLock);
	}
}

/* ----- entry points ----- */

/*
 * Raise when rel (locked by the caller for its write) has an object that
 * would run code as the owner when we write it: rel itself, not its
 * partitions.
 */
void
tp_check_no_dba_code(Relation rel)
{
	List	   *visited = NIL;

	check_relation(rel, &visited);
	list_free(visited);
}

/*
 * Before writing the relation that holds a client's profiles (from
 * tp_open_profiles): a partition's parent first (a statement through SQL
 * fires the parent's statement triggers; its row triggers, CHECK
 * constraints and indexes are the partitions' too, and are reported under
 * the parent's name), then the relation.
 */
void
tp_check_profiles_writable(Relation rel)
{
	if (rel->rd_rel->relispartition)
	{
		/* the table, or on Citus its shard on this node */
		Relation	parent = table_open(get_partition_parent(RelationGetRelid(rel), false),
										RowExclusiveLock);

		tp_check_no_dba_code(parent);
		table_close(parent, NoLock);
	}
	tp_check_no_dba_code(rel);
}

static void
note_target(TpPlan *p, const RangeVar *target)
{
	if (target->schemaname == NULL || strcmp(target->schemaname, TGTP_SCHEMA) != 0)
		elog(ERROR, "statement writes a table outside schema %s: \"%s\"", TGTP_SCHEMA, p->sql);
	for (int i = 0; i < p->nwrites; i++)
		if (strcmp(p->writes[i], target->relname) == 0)
			return;
	if (p->nwrites == TP_PLAN_MAX_WRITES)
		elog(ERROR, "statement writes too many tables: \"%s\"", p->sql);
	p->writes[p->nwrites++] = MemoryContextStrdup(TopMemoryContext, target->relname);
}

/* The tables a statement names as its targets, in data-modifying WITHs too. */
static void
note_statement(TpPlan *p, Node *stmt)
{
	WithClause *with = NULL;
	ListCell   *lc;

	if (stmt == NULL)
		return;
	switch (nodeTag(stmt))
	{
		case T_InsertStmt:
			note_target(p, ((InsertStmt *) stmt)->relation);
			with = ((InsertStmt *) stmt)->withClause;
			break;
		case T_UpdateStmt:
			note_target(p, ((UpdateStmt *) stmt)->relation);
			with = ((UpdateStmt *) stmt)->withClause;
			break;
		case T_DeleteStmt:
			note_target(p, ((DeleteStmt *) stmt)->relation);
			with = ((DeleteStmt *) stmt)->withClause;
			break;
		case T_MergeStmt:
			note_target(p, ((MergeStmt *) stmt)->relation);
			with = ((MergeStmt *) stmt)->withClause;
			break;
		case T_SelectStmt:
			with = ((SelectStmt *) stmt)->withClause;
			break;
		default:
			break;
	}
	if (with != NULL)
		foreach(lc, with->ctes)
			note_statement(p, ((CommonTableExpr *) lfirst(lc))->ctequery);
}

/*
 * Once, when tp_exec prepares a plan: the tables it writes, read from the
 * statement as written (before rules rewrite it, so a rule present at that
 * moment cannot hide a target), by name (a reinstall changes the OIDs).
 */
void
tp_plan_note_writes(TpPlan *p, SPIPlanPtr plan)
{
	ListCell   *lc;

	p->nwrites = 0;
	foreach(lc, SPI_plan_get_plan_sources(plan))
	{
		CachedPlanSource *ps = lfirst(lc);

		if (ps->raw_parse_tree != NULL)
			note_statement(p, ps->raw_parse_tree->stmt);
	}
	if (p->client_arg < 0 || p->client_arg > p->nargs ||
		(p->client_arg > 0 && p->argtypes[p->client_arg - 1] != TEXTOID))
		elog(ERROR, "client_arg %d is not a text argument of \"%s\"", p->client_arg, p->sql);
}

/*
 * Before each execution: every table the statement writes, locked as the
 * statement will lock it.  Profiles of one client ($client_arg): the
 * parent and that client's partition; otherwise every partition.
 */
void
tp_plan_check_writes(TpPlan *p, Datum *values, const char *nulls)
{
	for (int i = 0; i < p->nwrites; i++)
	{
		int			arg = p->client_arg - 1;
		Relation	rel;

		if (arg >= 0 && strcmp(p->writes[i], "profiles") == 0 &&
			(nulls == NULL || nulls[arg] != 'n'))
		{
			tp_open_profiles(TextDatumGetCString(values[arg]), NULL, RowExclusiveLock,
							 &rel, NULL);
			tp_check_profiles_writable(rel);
		}
		else
		{
			List	   *visited = NIL;

			rel = tp_open_table(p->writes[i], RowExclusiveLock);
			check_tree(rel, &visited);
			list_free(visited);
		}
		table_close(rel, NoLock);	/* the statement writes it next */
	}
}
