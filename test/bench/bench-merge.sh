#!/usr/bin/env bash
# bench-merge.sh: identity merges (issue 12) side by side with the plain SQL
# an expert would write, on one throwaway cluster (PostgreSQL defaults,
# fsync, synchronous_commit and full_page_writes on).
#
#   P. pgbench -M prepared, 1 and 2 clients, synchronous_commit off (SYNC):
#      a login that merges two small profiles, each transaction a pair of
#      its own (test/bench/merge/pairs.sql: an anonymous pcId profile of
#      three attributes into a customer's profile of three attributes with
#      a third-party id), with
#        ext        upsert_profile(..., merge => true)
#        expert     one statement on tables of the same shape: both rows
#                   FOR UPDATE, the survivor written with the merged
#                   attributes (Q's win, then the call's), the other
#                   deleted, the alias inserted (merge/merge_expert.pgbench)
#        expert_tx  the same as a transaction of five statements (one
#                   round trip each; not run unless EXPERTS names it)
#      The client has require_auth off (no token: the merge alone is
#      measured).  Before timing, a few pairs are merged by both and must
#      end in the same state, the one the merge rule gives.  Pairs are
#      added ahead of the runs (PAIR_CHUNK at a time), and after each run
#      the aliases it made must number its transactions (no transaction
#      found its pair missing or merged already).
#   B. bulk_update of N (500,000) existing pcId-keyed profiles, Adobe CSV,
#      5 attributes of 10-20 characters, every record changing them; PCT
#      (10) % of the profiles are customers' (a third-party id) with an
#      alias (merge/bulk.sql):
#        alias batch   their records keyed by the alias pcId
#        plain batch   every record keyed by its profile's own tnt_id
#      Same profiles, same new values: both must leave the same profiles.
#      Each run on a fresh connection, after a reset of the state (TRUNCATE,
#      COPY FREEZE, VACUUM ANALYZE, CHECKPOINT); ROUNDS (3) rounds, the two batches
#      in alternating order; times and the ratio alias/plain are medians
#      over the rounds (the ratio per round).  The first round checks the
#      profiles both leave (the plain SQL's too).  References, one run each
#      (REFS=0 skips them): the plain SQL an expert would write for the
#      alias batch (COPY into a staging table, LEFT JOIN the aliases,
#      INSERT ... ON CONFLICT DO UPDATE, into tables of the same shape) and
#      COPY of as many rows of the same size into an empty table of the
#      same shape (bench-bulk.sh compares the batch without aliases with
#      more plain SQL).
#
# pgbench figures as in run-bench.sh: each variant runs BENCH_SECONDS in
# SLICES slices interleaved with the variants it is compared to; a ratio is
# the median of the per-slice ratios, TPS is over all slices.  One summary
# table at the end; exit status 1 when the bulk goal (alias batch <= 1.10x
# the plain batch's time) is missed or a check failed.
#
# Usage: bash test/bench/bench-merge.sh   (also run by `make bench`)
# Environment: PARTS ("P B"), BENCH_SECONDS (10) per pgbench variant and
# client count, SLICES (5), WARMUP_SECONDS (3), SYNC ("off"; "on off" for
# both), EXPERTS ("expert"; "expert expert_tx" adds the five-statement
# transaction), PAIR_CHUNK (100000), N (500000),
# PCT (10), ROUNDS (3), REFS (1; 0 skips the plain SQL and COPY
# references), BUILD=1 (build and install first; otherwise the installed
# extension, built when missing), BENCH_TMP (/var/tmp/tgt_profile-benchmerge),
# KEEP_TMP=1.  About 4 minutes with the defaults on 2 cores (P 1.5, B 2.5).
# PARTS=P or PARTS=B runs one part.
set -u -o pipefail

# shellcheck source-path=SCRIPTDIR source=../tools/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tools/common.sh"
cd "$REPO" || exit 1

MERGE=$REPO/test/bench/merge
BENCH_TMP=${BENCH_TMP:-/var/tmp/tgt_profile-benchmerge}
mkdir -p "$BENCH_TMP" && chmod 755 "$BENCH_TMP" || exit 1
export TMPDIR=$BENCH_TMP
PARTS=${PARTS:-P B}
BENCH_SECONDS=${BENCH_SECONDS:-10}
SLICES=${SLICES:-5}
WARMUP_SECONDS=${WARMUP_SECONDS:-3}
SYNC=${SYNC:-off}
EXPERTS=${EXPERTS:-expert}
PAIR_CHUNK=${PAIR_CHUNK:-100000}
N=${N:-500000}
PCT=${PCT:-10}
ROUNDS=${ROUNDS:-3}
REFS=${REFS:-1}
case " $EXPERTS " in
" expert " | " expert_tx " | " expert expert_tx " | " expert_tx expert ") ;;
*) log_error "EXPERTS must be expert, expert_tx or both"; exit 1 ;;
esac
PSQL=$PG_BINDIR/psql
PGBENCH=$PG_BINDIR/pgbench
T_START=$SECONDS

die() {
	log_error "$*"
	exit 1
}

part() { [[ " $PARTS " == *" $1 "* ]]; }

psql_q() {
	"$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

SUMMARY=()
# shellcheck disable=SC2059  # row FORMAT ARGS...: the format is ours
row() { SUMMARY+=("$(printf "$@")"); }

ratio() { perl -e 'printf "%.2f", $ARGV[1] > 0 ? $ARGV[0] / $ARGV[1] : 0' "$1" "$2"; }
le() { perl -e 'exit(!($ARGV[0] <= $ARGV[1]))' "$1" "$2"; }
# median NUMBER...: of the numbers given
median() {
	perl -e 'my @r = sort { $a <=> $b } @ARGV;
		printf "%.6f", @r % 2 ? $r[$#r / 2] : ($r[@r / 2 - 1] + $r[@r / 2]) / 2' "$@"
}

MISSED=0 # goals missed and checks failed, for the exit status

if [[ ${BUILD:-0} == 1 ]]; then
	build_and_install || exit 1
elif [[ ! -f $("$PG_CONFIG" --sharedir)/extension/tgt_profile.control ]]; then
	log_info "tgt_profile is not installed: building it"
	build_and_install || exit 1
fi

# ---------------------------------------------------------------------------
# files and cluster
# ---------------------------------------------------------------------------

DATA="" # set by make_tmpdir
make_tmpdir DATA mergedata || die "no temporary directory"
# A snapshot of the installed library, so that the whole run measures one
# build (common.sh).
snapshot_library "$DATA" || die "no snapshot of the library"
chmod -R a+rX "$DATA"
is_root && chown postgres: "$DATA"

log_info "== cluster (PostgreSQL defaults, fsync/synchronous_commit/full_page_writes on)"
cluster_start fsync=on synchronous_commit=on full_page_writes=on \
	max_prepared_transactions=0 log_min_messages=warning ||
	die "could not start the cluster"
LOAD_START=$(cut -d ' ' -f 1-3 /proc/loadavg)
psql_q -c "SET client_min_messages = warning" -c "CREATE EXTENSION tgt_profile CASCADE" >/dev/null ||
	die "CREATE EXTENSION tgt_profile failed"
psql_q -c "UPDATE pg_catalog.pg_proc SET probin = '$DATA/lib/tgt_profile'
            WHERE probin = '\$libdir/tgt_profile'" >/dev/null || die "could not point at the library copy"
[[ $(psql_q -c "SELECT count(*) FROM pg_proc WHERE probin = '$DATA/lib/tgt_profile'") -gt 0 ]] ||
	die "no function uses the library copy"
[[ $(psql_q -c "SELECT count(*) FROM pg_proc WHERE pronamespace = 'tgt_profile'::regnamespace
                 AND proname = 'upsert_profile' AND 'merge' = ANY (proargnames)") == 1 ]] ||
	die "upsert_profile has no merge argument: this build predates identity merges (issue 12)"

set_sync() {
	psql_q -c "ALTER SYSTEM SET synchronous_commit = $1" -c "SELECT pg_reload_conf()" >/dev/null ||
		die "could not set synchronous_commit"
}

# ---------------------------------------------------------------------------
# P. merges through pgbench
# ---------------------------------------------------------------------------

# Pairs: PREPARED pairs exist (1 .. PREPARED) in both table pairs;
# NEXT[pool] is the first pair not used yet in a table pair: "ext" for
# tgt_profile's tables, "sql" for the expert's (both expert variants).
PREPARED=0
declare -A NEXT=([ext]=1 [sql]=1)
pool() { if [[ $1 == ext ]]; then printf ext; else printf sql; fi; }

# add_pairs COUNT: pairs PREPARED+1 .. PREPARED+COUNT, in both.
add_pairs() {
	psql_q -c "SELECT public.add_pairs($((PREPARED + 1)), $1)" \
		-c "VACUUM (ANALYZE) tgt_profile.profiles, public.merge_profiles" >/dev/null ||
		die "adding pairs failed"
	PREPARED=$((PREPARED + $1))
}

# The variants: script, and the tables where its aliases go.
variant_script() { printf '%s' "$MERGE/merge_$1.pgbench"; }
variant_aliases() {
	case $1 in
	ext) printf 'tgt_profile.aliases' ;;
	*) printf 'public.merge_aliases' ;;
	esac
}
# aliases_made VARIANT: "count max-pair" of the aliases of client m
aliases_made() {
	psql_q -F ' ' -c "SELECT count(*), coalesce(max(substr(pc_id, 6)::bigint), 0)
	                    FROM $(variant_aliases "$1") WHERE client = 'm'" ||
		die "could not count the aliases of $1"
}

# pgbench_run VARIANT CLIENTS SECONDS|-tN: sets TX (transactions) and SECS
# (seconds they took, without connection time); checks that every
# transaction merged a pair of its own, and moves NEXT[VARIANT] on.
pgbench_run() {
	local v=$1 clients=$2 len=$3 out tps failed before after c0 m1 c1
	local -a dur=(-T "$len")
	[[ $len == -t* ]] && dur=(-t "${len#-t}")
	# The most pairs one run can take: each client takes every CLIENTS-th
	# pair, at most the count asked or 25,000 a second (far above what one
	# client does here).
	local need
	if [[ $len == -t* ]]; then need=$((${len#-t} * clients)); else need=$((len * 25000 * clients)); fi
	while ((NEXT[$(pool "$v")] + need > PREPARED)); do add_pairs "$PAIR_CHUNK"; done
	before=$(aliases_made "$v")
	out=$("$PGBENCH" -n -M prepared -c "$clients" -j "$clients" "${dur[@]}" -f "$(variant_script "$v")" \
		-D i=0 -D base="${NEXT[$(pool "$v")]}" -D nclients="$clients" 2>&1)
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' <<<"$out")
	TX=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
	if [[ -z $tps || -z $TX ]] || grep -q 'ERROR\|FATAL\|aborted' <<<"$out" || [[ ${failed:-0} != 0 ]]; then
		printf '%s\n' "$out" >&2
		die "pgbench $v failed"
	fi
	SECS=$(perl -e 'printf "%.6f", $ARGV[0] / $ARGV[1]' "$TX" "$tps")
	after=$(aliases_made "$v")
	read -r c0 _ <<<"$before"
	read -r c1 m1 <<<"$after"
	(((c1 - c0) == TX)) ||
		die "pgbench $v: $TX transactions made $((c1 - c0)) aliases: some merged nothing (a pair missing or merged twice)"
	((m1 < PREPARED)) || die "pgbench $v used every prepared pair: raise PAIR_CHUNK"
	NEXT[$(pool "$v")]=$((m1 + 1))
}

# pgbench_group CLIENTS VARIANT...: BENCH_SECONDS per variant, as SLICES
# slices interleaved in rotating order (see run-bench.sh).  Sets TPS[V] and
# SLICE_TPS[V].
declare -A TPS SLICE_TPS
pgbench_group() {
	local clients=$1 slice n i k v
	shift
	local -a vs=("$@")
	local -A tx secs
	n=${#vs[@]}
	slice=$(((BENCH_SECONDS + SLICES - 1) / SLICES))
	for v in "${vs[@]}"; do tx[$v]=0 secs[$v]=0 SLICE_TPS[$v]=""; done
	for ((i = 0; i < SLICES; i++)); do
		for ((k = 0; k < n; k++)); do
			v=${vs[(i + k) % n]}
			pgbench_run "$v" "$clients" "$slice"
			tx[$v]=$((tx[$v] + TX))
			secs[$v]=$(perl -e 'print $ARGV[0] + $ARGV[1]' "${secs[$v]}" "$SECS")
			SLICE_TPS[$v]+="$(perl -e 'print $ARGV[0] / $ARGV[1]' "$TX" "$SECS") "
		done
	done
	for v in "${vs[@]}"; do
		TPS[$v]=$(perl -e 'printf "%.0f", $ARGV[0] / $ARGV[1]' "${tx[$v]}" "${secs[$v]}")
	done
}

# slice_ratio VARIANT BASE: the median over the slices of TPS(VARIANT) /
# TPS(BASE) in the same slice.
slice_ratio() {
	perl -e 'my @a = split " ", $ARGV[0]; my @b = split " ", $ARGV[1];
		my @r = sort { $a <=> $b } map { $a[$_] / $b[$_] } 0 .. $#a;
		printf "%.2f", @r % 2 ? $r[$#r / 2] : ($r[@r / 2 - 1] + $r[@r / 2]) / 2' \
		"${SLICE_TPS[$1]}" "${SLICE_TPS[$2]}"
}

# sanity_check: pairs 1..6 merged by each variant (by upsert_profile:
# 1..5 through pgbench, 6 by a direct call, its answer checked; the expert
# variants share pairs 1..6 of their tables), then the state the merge rule
# gives on both sides.
sanity_check() {
	local v ext expert want answer
	local -a ex
	read -r -a ex <<<"$EXPERTS"
	pgbench_run ext 1 -t5
	answer=$(psql_q -F ' ' -c "SELECT tnt_id, status FROM tgt_profile.upsert_profile('m',
	           jsonb_build_object('lastLogin', 6), 'anon-6', 'crm-6', merge => true)") ||
		die "upsert_profile(merge => true) failed"
	[[ $answer == "cust-6 merged" ]] ||
		die "sanity: upsert_profile(merge => true) of pair 6 answered '$answer', expected 'cust-6 merged'"
	NEXT[ext]=7
	for v in "${ex[@]}"; do pgbench_run "$v" 1 "-t$((6 / ${#ex[@]}))"; done
	[[ ${NEXT[sql]} == 7 ]] || die "sanity: the expert variants merged pairs 1..$((NEXT[sql] - 1)), expected 1..6"
	ext=$(psql_q -c "SELECT * FROM public.pair_state('tgt_profile.profiles', 'tgt_profile.aliases', 1, 6)") ||
		die "sanity: reading the merged pairs failed"
	expert=$(psql_q -c "SELECT * FROM public.pair_state('public.merge_profiles', 'public.merge_aliases', 1, 6)") ||
		die "sanity: reading the merged pairs failed"
	want=$(psql_q -c "SELECT k || ': anon gone, alias -> cust-' || k || ', cust crm-' || k || ' ' || public.merged_attributes(k)::text
	                    FROM generate_series(1, 6) k ORDER BY k") || die "sanity: the expected state failed"
	if [[ $ext != "$want" || $expert != "$want" ]]; then
		printf 'upsert_profile:\n%s\nexpert SQL:\n%s\nthe merge rule:\n%s\n' "$ext" "$expert" "$want" >&2
		die "sanity: upsert_profile(merge => true) and the expert SQL do not leave the state the merge rule gives (above)"
	fi
	log_info "   sanity: pairs 1-6 merged alike by upsert_profile and the expert SQL, as the rule says"
}

if part P; then
	log_info "== P. merges, pgbench -M prepared, ${BENCH_SECONDS}s per variant ($SLICES interleaved slices)"
	t0=$SECONDS
	psql_q -f "$MERGE/pairs.sql" >/dev/null || die "merge/pairs.sql failed"
	read -r -a VARIANTS <<<"ext $EXPERTS"
	set_sync off
	add_pairs "$PAIR_CHUNK"
	sanity_check
	for v in "${VARIANTS[@]}"; do pgbench_run "$v" 2 "$WARMUP_SECONDS"; done
	row '%s' "P. a login merging two small profiles (3 attributes each, one in common), a fresh pair every transaction"
	row '   %-58s %10s %10s' "pgbench -M prepared, ${BENCH_SECONDS}s/variant, $SLICES slices" "TPS" "ratio"
	for sync in $SYNC; do
		set_sync "$sync"
		for clients in 1 2; do
			psql_q -c "VACUUM tgt_profile.profiles, tgt_profile.aliases, public.merge_profiles, public.merge_aliases" \
				-c "CHECKPOINT" >/dev/null || die "vacuum failed"
			pgbench_group "$clients" "${VARIANTS[@]}"
			log_info "   synchronous_commit=$sync, $clients client(s): upsert_profile ${TPS[ext]}, expert ${TPS[expert]:-}${TPS[expert_tx]:+, expert 5 statements ${TPS[expert_tx]}} TPS"
			row '   %s' "synchronous_commit = $sync, $clients client(s):"
			row '   %-58s %10s %9sx' "  upsert_profile(..., merge => true)" "${TPS[ext]}" \
				"$(slice_ratio ext "${VARIANTS[1]}")"
			for v in $EXPERTS; do
				case $v in
				expert) label="  expert SQL, one statement (CTE)" ;;
				expert_tx) label="  expert SQL, BEGIN + 5 statements + END" ;;
				esac
				row '   %-58s %10s %9sx' "$label" "${TPS[$v]}" "$(slice_ratio "$v" "${VARIANTS[1]}")"
			done
		done
	done
	read -r n_ext _ <<<"$(aliases_made ext)"
	log_info "   part P took $((SECONDS - t0)) s ($PREPARED pairs prepared)"
	row '   %-58s %10s' "(ratios: TPS / TPS of ${VARIANTS[1]}; pairs merged by upsert_profile)" "$n_ext"
	row ''
	set_sync on
fi

# ---------------------------------------------------------------------------
# B. bulk_update with aliases
# ---------------------------------------------------------------------------

# reset_state TABLES: the state bulk.sql saved, in the extension's tables
# ("ext") or the plain SQL's ("plain"), or the COPY reference's table empty
# ("copy"); then vacuumed, analysed and checkpointed.  COPY FREEZE into
# the tables just truncated writes the rows frozen and all-visible, so the
# VACUUM skips every page; it is there to reset the count of inserted rows,
# which would otherwise start an autovacuum of the table during the run.
reset_state() {
	local tables
	case $1 in
	ext) tables=(tgt_profile.profiles tgt_profile.aliases) ;;
	plain) tables=(bench.plain_profiles bench.plain_aliases) ;;
	copy) tables=(bench.copy_target) ;;
	esac
	local list
	list=$(IFS=,; printf '%s' "${tables[*]}")
	local -a sql=(-c "BEGIN" -c "TRUNCATE $list")
	if [[ $1 != copy ]]; then
		sql+=(-c "COPY ${tables[0]} FROM '$DATA/state.profiles' (FREEZE)"
			-c "COPY ${tables[1]} FROM '$DATA/state.aliases' (FREEZE)")
	fi
	psql_q "${sql[@]}" -c "COMMIT" -c "VACUUM (ANALYZE) $list" -c "CHECKPOINT" >/dev/null ||
		die "reset of the $1 state failed"
}

# measure SQL: run SQL (psql text) on a fresh connection; sets SECS (wall
# clock around it, commit included) and INFO (what it \echo'ed as INFO).
measure() {
	local out
	out=$(
		"$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -f - 2>&1 <<EOF
SET tgt_profile.max_batch_bytes = '200MB';
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
$1
SELECT extract(epoch FROM clock_timestamp()) - :t0 AS secs \gset
\echo RESULT :secs
EOF
	) || {
		printf '%s\n' "$out" >&2
		die "measurement failed: $1"
	}
	SECS=$(sed -n 's/^RESULT //p' <<<"$out")
	INFO=$(sed -n 's/^INFO //p' <<<"$out")
	[[ -n $SECS ]] || die "measurement printed no time: $out"
}

sql_bulk() { # BATCH
	cat <<EOF
SELECT status, rows_total, rows_created, rows_updated, rows_unchanged, rows_not_found, rows_rejected
  FROM tgt_profile.bulk_update('b', (SELECT body FROM bench.batch WHERE name = '$1')) \gset r_
\echo INFO :r_status total=:r_rows_total created=:r_rows_created updated=:r_rows_updated unchanged=:r_rows_unchanged not_found=:r_rows_not_found rejected=:r_rows_rejected
EOF
}

# The plain SQL, the same for both batches: a key that is an alias is
# replaced by the profile it points at.
sql_plain() { # BATCH
	cat <<EOF
BEGIN;
CREATE TEMP TABLE stage (pcid text, param1 text, param2 text, param3 text, param4 text, param5 text)
  ON COMMIT DROP;
COPY stage FROM '$DATA/$1.csv' (FORMAT csv, HEADER true);
INSERT INTO bench.plain_profiles AS p (client, tnt_id, attributes, created_at, updated_at, last_seen_at)
SELECT 'b', coalesce(a.tnt_id, s.pcid),
       jsonb_build_object('param1', param1, 'param2', param2, 'param3', param3, 'param4', param4, 'param5', param5),
       now(), now(), now()
  FROM stage s LEFT JOIN bench.plain_aliases a ON a.client = 'b' AND a.pc_id = s.pcid
ON CONFLICT (client, tnt_id) DO UPDATE
   SET attributes = p.attributes || EXCLUDED.attributes,
       updated_at = EXCLUDED.updated_at, last_seen_at = EXCLUDED.last_seen_at;
\echo INFO rows=:ROW_COUNT
COMMIT;
EOF
}

# fingerprint TABLE: count and md5 of every (tnt_id, third-party id,
# attributes) of client b.
fingerprint() {
	psql_q -c "SELECT count(*) || ' ' || md5(string_agg(tnt_id || ' ' || coalesce(third_party_id, '-') || ' ' || attributes::text,
	                                                     E'\n' ORDER BY tnt_id))
	             FROM $1 WHERE client = 'b'" || die "fingerprint of $1 failed"
}

FP="" # the profiles the first batch left: every other run must leave the same
check_fp() { # WHAT TABLE
	local fp
	fp=$(fingerprint "$2")
	if [[ -z $FP ]]; then
		FP=$fp
	elif [[ $fp != "$FP" ]]; then
		log_error "$1 left other profiles than the first run: $fp vs $FP"
		MISSED=$((MISSED + 1))
	fi
}

if part B; then
	log_info "== B. bulk_update of $N existing profiles, $PCT % keyed by an alias, against the same batch without aliases"
	# Part P's rows go (no autovacuum of them during part B): part B starts
	# from the same state whether P ran or not.
	psql_q -c "SET client_min_messages = warning" \
		-c "TRUNCATE tgt_profile.profiles, tgt_profile.aliases, tgt_profile.audit_log" \
		-c "DROP TABLE IF EXISTS public.merge_profiles, public.merge_aliases" -c "CHECKPOINT" >/dev/null ||
		die "could not empty the profiles"
	log_info "   fixtures (the aliases made by $((N * PCT / 100)) logins with merge => true)"
	t0=$SECONDS
	psql_q -v dir="$DATA" -v n="$N" -v pct="$PCT" -f "$MERGE/bulk.sql" >/dev/null || die "merge/bulk.sql failed"
	log_info "   fixtures took $((SECONDS - t0)) s"
	n_alias=$(psql_q -c "SELECT count(*) FROM tgt_profile.aliases WHERE client = 'b'") || die "no aliases"
	[[ $n_alias == $((N * PCT / 100)) ]] || die "$n_alias aliases of client b, expected $((N * PCT / 100))"
	# A record keyed by an alias reaches the customer's profile (get_profile
	# resolves it too).
	[[ $(psql_q -c "SELECT tgt_profile.get_profile('b', pc_id => r.alias)->>'thirdPartyId' = r.third_party_id
	                  FROM bench.rec r WHERE r.customer ORDER BY r.i LIMIT 1") == t ]] ||
		die "get_profile of an alias pcId does not return the customer's profile"
	MB=$(perl -e 'printf "%.1f", (-s $ARGV[0]) / 1048576' "$DATA/alias.csv")

	declare -A B_SECS=([alias]="" [plain]="")
	B_RATIOS=""
	for round in $(seq 1 "$ROUNDS"); do
		order="alias plain"
		((round % 2 == 0)) && order="plain alias"
		declare -A this=()
		for b in $order; do
			reset_state ext
			measure "$(sql_bulk "$b")"
			log_info "   round $round, $b batch: $(printf '%6.2f s' "$SECS")  ($INFO)"
			[[ $INFO == "complete total=$N created=0 updated=$N unchanged=0 not_found=0 rejected=0" ]] ||
				die "bulk_update of the $b batch: $INFO (expected every record to update an existing profile)"
			B_SECS[$b]+="$SECS "
			this[$b]=$SECS
			if ((round == 1)); then
				check_fp "bulk_update, $b batch" tgt_profile.profiles
				[[ $(psql_q -c "SELECT count(*) FROM tgt_profile.aliases WHERE client = 'b'") == "$n_alias" ]] ||
					die "the $b batch changed the aliases"
			fi
		done
		B_RATIOS+="$(perl -e 'print $ARGV[0] / $ARGV[1]' "${this[alias]}" "${this[plain]}") "
	done
	# shellcheck disable=SC2086  # lists of numbers
	alias_s=$(median ${B_SECS[alias]}) plain_s=$(median ${B_SECS[plain]}) b_ratio=$(median $B_RATIOS)

	if [[ $REFS == 1 ]]; then
		declare -A REF
		reset_state plain
		measure "$(sql_plain alias)"
		log_info "   plain SQL, alias batch: $(printf '%6.2f s' "$SECS")  ($INFO)"
		[[ $INFO == "rows=$N" ]] || die "plain SQL, alias batch: $INFO"
		REF[alias]=$SECS
		check_fp "plain SQL, alias batch" bench.plain_profiles
		reset_state copy
		measure "COPY bench.copy_target FROM '$DATA/state.profiles';"
		log_info "   COPY into an empty table: $(printf '%6.2f s' "$SECS")"
		REF[copy]=$SECS
	fi

	row '%s' "B. $N existing profiles, Adobe CSV ($MB MB), 5 attributes changed each; $PCT % are customers' with an alias"
	row '   %-58s %10s %10s' "median of $ROUNDS rounds (seconds)" "seconds" "ratio"
	row '   %-58s %10.2f %10s' "bulk_update, the customers' records keyed by the alias" "$alias_s" ""
	row '   %-58s %10.2f %10s' "bulk_update, every record keyed by its own tnt_id" "$plain_s" ""
	mark=ok
	if ! le "$b_ratio" 1.10; then mark=MISSED; MISSED=$((MISSED + 1)); fi
	row '   %-58s %10s %9.2fx  %s' "alias batch / plain batch (median of per-round ratios)" "" "$b_ratio" "(goal <= 1.10x: $mark)"
	if [[ $REFS == 1 ]]; then
		row '   %s' "references, one run each:"
		row '   %-58s %10.2f %9sx' "  plain SQL, alias batch (ratio: bulk_update's / this)" "${REF[alias]}" \
			"$(ratio "$alias_s" "${REF[alias]}")"
		row '   %-58s %10.2f %9sx' "  COPY of $N rows of the same size into an empty table" "${REF[copy]}" \
			"$(ratio "$alias_s" "${REF[copy]}")"
		row '   %s' "  (plain SQL: COPY into a staging table, LEFT JOIN the aliases, INSERT ... ON CONFLICT DO UPDATE)"
	fi
	log_info "   part B took $((SECONDS - t0)) s"
	# shellcheck disable=SC2086  # lists of numbers
	row '   %s' "(each round, seconds: alias $(printf '%.2f ' ${B_SECS[alias]})/ plain $(printf '%.2f ' ${B_SECS[plain]}))"
	row ''
fi

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
ver=$(psql_q -c "SHOW server_version")
echo
echo "== summary (bench-merge): PostgreSQL $ver, $(nproc) CPU(s) ${cpu:+($cpu)}, fsync=on"
echo "   library $LIB as of the start (md5 $LIB_MD5...)"
echo "   load average at start: $LOAD_START, at end: $(cut -d ' ' -f 1-3 /proc/loadavg); run time $((SECONDS - T_START)) s"
printf '%s\n' "${SUMMARY[@]}"
((MISSED == 0))
