#!/usr/bin/env bash
# bench-scale.sh: does bulk_update's cost per record stay flat as the table
# grows?  The same batch applied to a client that already holds 0, 1, 5 and
# 10 million profiles, side by side with the plain SQL, on one throwaway
# cluster, in one run (issue 13, "cost that stays flat as the table grows").
#
# The batch: test/bench/bulk/gen.py's N (500,000) records, Adobe CSV
# (batch.csv), half of whose keys exist: its preload (preload.copy, N/2
# keys of the batch with other values) is in both tables throughout, so the
# batch creates N/2 profiles and updates N/2.
#
# Two tables of the same shape and storage parameters (the reloptions of
# tgt_profile.profiles and of its primary key are copied onto the plain
# table, so a fillfactor given to profiles applies to both):
#
#   bulk_update   tgt_profile.bulk_update('c', batch) into tgt_profile.profiles
#   COPY staging  bench-bulk.sh's csv_staging, the same SQL: COPY the CSV into
#                 a TEMP table, then INSERT ... SELECT ... ON CONFLICT DO
#                 UPDATE into bench.plain_target
#
# Sizes: client 'c' holds SIZE generated profiles besides the preload, and
# other clients (OTHER_CLIENTS, "b d e") hold SIZE more between them, so
# that the heap mixes clients and the index holds other clients' keys
# around c's.  Size 0 is the empty table with the preload alone: exactly
# bench-bulk.sh's "half" state, the reference.  The generated rows come from
# SQL (generate_series; tnt_id = md5(client:i) + ".35_0"; 5 string
# attributes of 10-20 hex characters), inserted in key order (the sort is
# cheap, random inserts into a 20-million-row index are not), both tables
# at once (2 cores); the tables grow from one size to the next, never
# rebuilt.  After each growth: VACUUM ANALYZE, CHECKPOINT.
#
# Comparable states: a first, uncounted pass at size 0 warms up (library,
# files, caches), then the tables are truncated and preloaded again.  At
# each size both tables hold "the size's rows + the preload", vacuumed,
# analysed and checkpointed; each method is measured ROUNDS (2)
# times, in its own table, after a CHECKPOINT (so that neither pays for
# the other's dirty buffers), on a fresh connection.  Then the batch is
# undone in both tables: its N/2 new keys deleted, the preload's values
# written back, VACUUM ANALYZE, CHECKPOINT, before the next round or
# growth.  This is cheap (the batch's rows only, no rebuild of millions of
# rows) and leaves what a real table would have: the space of the batch's
# dead tuples, reused by the next writes, and index pages split by the
# batch.  Both tables go through the same history, so the two columns stay
# comparable at every size.  Undo and growth are checked (row counts), and
# after each measurement the two tables must hold the same values for the
# batch's keys.
#
# Seconds are wall clock around the statement(s) as seen by the client,
# commit included (measure() in bulk/lib.sh).  Where the time goes: the
# backend's CPU seconds (/proc/PID/stat) and the heap and index blocks of
# the target that were not in shared buffers ("reads": from the OS page
# cache or the disk) during the measurement.
#
# Server settings: PostgreSQL's defaults (shared_buffers 128MB, work_mem
# 4MB, max_wal_size 1GB, ...) with fsync, synchronous_commit and
# full_page_writes on, as bench-bulk.sh; only the fill sessions raise their
# own work_mem (the sort of the generated rows).
#
# Usage: bash test/bench/bench-scale.sh    (as root or as the postgres user)
# Environment:
#   SIZES ("1000000 5000000 10000000")  c's profiles at each measurement,
#                     ascending (size 0 is always measured first)
#   OTHER_CLIENTS ("b d e")  clients that hold as many rows again
#   N (500000)        records in the batch
#   ROUNDS (2)        measure each method that many times at each size (the
#                     batch undone in between) and report the best time: a
#                     round costs little next to the growth, and 2 damp
#                     other people's load on a shared machine
#   BUILD=1           build and install the extension first (PG_CONFIG or
#                     TGT_PG_BINDIR say which server, see common.sh)
#   BENCH_TMP         base of the files and the cluster
#                     (/var/tmp/tgt_profile-benchscale); about 2.6 KB per
#                     profile of the largest size must be free (26 GB for
#                     10 million)
#   KEEP_TMP=1        keep them
#   BENCH_SETTINGS    more server settings, "name=value ..." (e.g.
#                     "shared_buffers=4GB" for a server sized for 10 million
#                     profiles)
# About 35 minutes with the default sizes on 2 cores.
set -u -o pipefail

# shellcheck source-path=SCRIPTDIR source=../tools/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tools/common.sh"
cd "$REPO" || exit 1

BENCH_TMP=${BENCH_TMP:-/var/tmp/tgt_profile-benchscale}
# shellcheck source-path=SCRIPTDIR source=bulk/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bulk/lib.sh"
read -r -a SIZE_LIST <<<"${SIZES:-1000000 5000000 10000000}"
read -r -a OTHERS <<<"${OTHER_CLIENTS:-b d e}"
ROUNDS=${ROUNDS:-2}
T_START=$SECONDS

prev=0
for s in "${SIZE_LIST[@]}"; do
	if [[ ! $s =~ ^[0-9]+$ ]] || ((s <= prev)); then
		die "SIZES must be ascending positive integers (got '${SIZES:-}')"
	fi
	prev=$s
done
((${#SIZE_LIST[@]} > 0)) || die "SIZES is empty"
((${#OTHERS[@]} > 0)) || die "OTHER_CLIENTS is empty"
LARGEST=${SIZE_LIST[-1]}
# Two tables of 2 x LARGEST rows of ~450 bytes with their index, WAL, the
# fill's sort files: about 2.6 KB per profile of the largest size.
need_kb=$((LARGEST * 26 / 10 + 2000000))
free_kb=$(df -Pk "$BENCH_TMP" | awk 'NR == 2 { print $4 }')
((free_kb > need_kb)) ||
	die "$BENCH_TMP has $((free_kb / 1048576)) GB free, about $((need_kb / 1048576)) GB are needed for SIZES up to $LARGEST: set BENCH_TMP to a larger file system, or smaller SIZES"

bench_install
bench_files
bench_cluster

# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------

TABLES=(tgt_profile.profiles bench.plain_target)
# The preload (to restore its values) and the batch's new keys (to delete
# them), and the same storage parameters on both targets.
psql_q -v preload="$DATA/preload.copy" -v batch="$DATA/batch.copy" -v others="${OTHERS[*]}" -f - >/dev/null <<'EOF' || die "fixtures failed"
SELECT tgt_profile.create_client(o) FROM unnest(string_to_array(:'others', ' ')) o;
CREATE UNLOGGED TABLE bench.preload (LIKE tgt_profile.profiles);
COPY bench.preload FROM :'preload';
ALTER TABLE bench.preload ADD PRIMARY KEY (client, tnt_id);
CREATE UNLOGGED TABLE bench.batch_rows (LIKE tgt_profile.profiles);
COPY bench.batch_rows FROM :'batch';
CREATE UNLOGGED TABLE bench.new_keys AS
  SELECT client, tnt_id FROM bench.batch_rows
  EXCEPT SELECT client, tnt_id FROM bench.preload;
ALTER TABLE bench.new_keys ADD PRIMARY KEY (client, tnt_id);
DROP TABLE bench.batch_rows;
SELECT 'ALTER TABLE bench.plain_target SET (' || array_to_string(reloptions, ', ') || ')'
  FROM pg_class WHERE oid = 'tgt_profile.profiles'::regclass AND reloptions IS NOT NULL \gexec
SELECT 'ALTER INDEX bench.plain_target_pkey SET (' || array_to_string(reloptions, ', ') || ')'
  FROM pg_class WHERE oid = 'tgt_profile.profiles_pkey'::regclass AND reloptions IS NOT NULL \gexec
VACUUM ANALYZE bench.preload, bench.new_keys;
EOF
[[ $(psql_q -c "SELECT relkind FROM pg_class WHERE oid = 'tgt_profile.profiles'::regclass") == r ]] ||
	die "tgt_profile.profiles is partitioned here: this benchmark wants one plain table (no partitions setting)"
RELOPTS=$(psql_q -c "SELECT coalesce(array_to_string(reloptions, ', '), 'none')
                       FROM pg_class WHERE oid = 'tgt_profile.profiles'::regclass")
IDXOPTS=$(psql_q -c "SELECT coalesce(array_to_string(reloptions, ', '), 'none')
                       FROM pg_class WHERE oid = 'tgt_profile.profiles_pkey'::regclass")
[[ $RELOPTS == "$(psql_q -c "SELECT coalesce(array_to_string(reloptions, ', '), 'none')
                              FROM pg_class WHERE oid = 'bench.plain_target'::regclass")" ]] ||
	die "the plain table did not get the storage parameters of profiles ($RELOPTS)"
NEW_KEYS=$(psql_q -c "SELECT count(*) FROM bench.new_keys")
PRELOAD=$(psql_q -c "SELECT count(*) FROM bench.preload")
((NEW_KEYS + PRELOAD == N)) || die "preload ($PRELOAD) and new keys ($NEW_KEYS) do not add up to the batch ($N)"

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

# steady TABLE...: vacuumed, analysed, checkpointed, so that a measurement
# pays for neither the previous writes nor a pending autovacuum.
steady() {
	local t
	for t in "$@"; do
		psql_q -c "VACUUM (ANALYZE) $t" >/dev/null || die "VACUUM of $t failed"
	done
	psql_q -c "CHECKPOINT" >/dev/null || die "CHECKPOINT failed"
}

# grow TABLE FROM TO: add the generated rows FROM+1..TO of client c, and
# as many of the other clients (split between them), in key order.  The
# same rows in both tables (deterministic).
grow() {
	local t=$1 from=$2 to=$3 k=${#OTHERS[@]} out
	out=$(psql_q -v c0="$from" -v c1="$to" -v o0="$((from / k))" -v o1="$((to / k))" \
		-v others="${OTHERS[*]}" -f - <<EOF
SET work_mem = '1GB';
INSERT INTO $t (client, tnt_id, attributes, created_at, updated_at, last_seen_at)
SELECT client, h || '.35_0',
       jsonb_build_object('param1', substr(v, 1, 10 + i % 11),
                          'param2', substr(v, 21, 10 + (i / 11) % 11),
                          'param3', substr(v, 41, 10 + (i / 121) % 11),
                          'param4', substr(v, 61, 10 + (i / 1331) % 11),
                          'param5', substr(v, 81, 10 + (i / 14641) % 11)),
       ts, ts, ts
  FROM (SELECT client, i, h, md5(h || '1') || md5(h || '2') || md5(h || '3') || md5(h || '4') AS v,
               timestamptz '2024-05-01 00:00:00+00' AS ts
          FROM (SELECT client, i, md5(client || ':' || i) AS h
                  FROM (SELECT 'c' AS client, i FROM generate_series(:c0 + 1, :c1) i
                        UNION ALL
                        SELECT o, i FROM unnest(string_to_array(:'others', ' ')) o,
                                         generate_series(:o0 + 1, :o1) i) s) s2) s3
 ORDER BY h;
\echo ROWS :ROW_COUNT
EOF
	) || die "growing $t to $to failed"
	[[ $out == "ROWS $((to - from + k * (to / k - from / k)))" ]] || die "growing $t: $out"
}

# undo TABLE: take the batch back (its new keys deleted, the preload's
# values written back), checked by the row counts.
undo() {
	local t=$1 out
	out=$(psql_q -f - <<EOF
BEGIN;
DELETE FROM $t t USING bench.new_keys k WHERE t.client = k.client AND t.tnt_id = k.tnt_id;
\echo DELETED :ROW_COUNT
UPDATE $t t SET attributes = p.attributes, created_at = p.created_at,
       updated_at = p.updated_at, last_seen_at = p.last_seen_at
  FROM bench.preload p WHERE t.client = p.client AND t.tnt_id = p.tnt_id;
\echo RESTORED :ROW_COUNT
COMMIT;
EOF
	) || die "undoing the batch in $t failed"
	[[ $out == "DELETED $NEW_KEYS"$'\n'"RESTORED $PRELOAD" ]] || die "undoing the batch in $t: $out"
}

# batch_fp TABLE: count and checksum of the batch's keys' rows (the whole
# table is too large for one string).
batch_fp() {
	psql_q -c "SELECT count(*) || ' ' || sum(hashtext(t.tnt_id || ' ' || t.attributes::text)::bigint)
	             FROM $1 t WHERE t.client = 'c' AND t.tnt_id IN
	                  (SELECT tnt_id FROM bench.preload UNION ALL SELECT tnt_id FROM bench.new_keys)" ||
		die "checksum of $1 failed"
}

# table_mb TABLE: heap + indexes + TOAST
table_mb() {
	psql_q -c "SELECT round(pg_total_relation_size('$1') / 1048576.0)"
}

# both CMD ARGS...: run CMD for each target table at once (one core each).
both() {
	local pids=() t p rc=0
	for t in "${TABLES[@]}"; do
		"$@" "$t" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	((rc == 0)) || die "$1 failed on one of the tables"
}
grow_to() { grow "$3" "$1" "$2"; }

# sql_for TABLE: the method measured on TABLE.
sql_for() {
	if [[ $1 == tgt_profile.profiles ]]; then sql_bulk csv; else sql_plain csv_staging; fi
}

# ---------------------------------------------------------------------------
# the runs
# ---------------------------------------------------------------------------

log_info "== storage parameters of profiles: $RELOPTS (primary key: $IDXOPTS), copied to the plain table"
for t in "${TABLES[@]}"; do
	psql_q -c "COPY $t FROM '$DATA/preload.copy'" >/dev/null || die "preload of $t failed"
done
steady "${TABLES[@]}"

LOAD_START=$(cut -d ' ' -f 1-3 /proc/loadavg)
declare -A B_SECS B_CPU B_READ B_HIT S_SECS S_CPU S_READ S_HIT MB_P MB_S FILL_SECS
MISMATCH=0
cur=0
# The first pass, at size 0, only warms up (the library loaded, the files
# and the batch in the caches): its figures would flatter the other sizes.
# Then both tables are emptied and preloaded again (bench-bulk's "half").
for size in warmup 0 "${SIZE_LIST[@]}"; do
	if [[ $size == warmup ]]; then
		log_info "== warm-up at size 0 (not counted)"
		for t in "${TABLES[@]}"; do
			measure "$t" "$(sql_for "$t")"
			reset_target "$t" preload.copy
		done
		log_info "   (warmed up)"
		continue
	fi
	if ((size > cur)); then
		log_info "== growing both tables to $size profiles of c + $size of ${OTHERS[*]}"
		t0=$SECONDS
		both grow_to "$cur" "$size"
		steady "${TABLES[@]}"
		FILL_SECS[$size]=$((SECONDS - t0))
		cur=$size
		log_info "   $((SECONDS - t0)) s"
	fi
	MB_P[$size]=$(table_mb tgt_profile.profiles)
	MB_S[$size]=$(table_mb bench.plain_target)

	for round in $(seq 1 "$ROUNDS"); do
		psql_q -c "CHECKPOINT" >/dev/null || die "CHECKPOINT failed"
		measure tgt_profile.profiles "$(sql_for tgt_profile.profiles)"
		[[ $INFO == "complete total=$N created=$NEW_KEYS updated=$PRELOAD "* ]] || die "bulk_update at $size: $INFO"
		if [[ -z ${B_SECS[$size]:-} ]] || le "$SECS" "${B_SECS[$size]}"; then
			B_SECS[$size]=$SECS B_CPU[$size]=$CPU_SECS B_READ[$size]=$BLKS_READ B_HIT[$size]=$BLKS_HIT
		fi
		log_info "   $size  bulk_update    $(printf '%7.2f s' "$SECS")  CPU $CPU_SECS s, blocks read $BLKS_READ, hit $BLKS_HIT  ($INFO)"

		psql_q -c "CHECKPOINT" >/dev/null || die "CHECKPOINT failed"
		measure bench.plain_target "$(sql_for bench.plain_target)"
		[[ $INFO == "rows=$N" ]] || die "COPY staging at $size: $INFO"
		if [[ -z ${S_SECS[$size]:-} ]] || le "$SECS" "${S_SECS[$size]}"; then
			S_SECS[$size]=$SECS S_CPU[$size]=$CPU_SECS S_READ[$size]=$BLKS_READ S_HIT[$size]=$BLKS_HIT
		fi
		log_info "   $size  COPY staging   $(printf '%7.2f s' "$SECS")  CPU $CPU_SECS s, blocks read $BLKS_READ, hit $BLKS_HIT  ($INFO)"

		fp1=$(batch_fp tgt_profile.profiles)
		fp2=$(batch_fp bench.plain_target)
		if [[ $fp1 != "$fp2" || $fp1 != "$N "* ]]; then
			log_error "at $size the two tables hold other values for the batch's keys: $fp1 vs $fp2"
			MISMATCH=1
		fi
		if [[ $size != "$LARGEST" || $round != "$ROUNDS" ]]; then
			both undo
			steady "${TABLES[@]}"
		fi
	done
done

# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------

per100k() { perl -e 'printf "%.3f", $ARGV[0] * 100000 / $ARGV[1]' "$1" "$N"; }

echo
echo "bulk_update vs COPY staging as the table grows: $N CSV records (5 string attributes of"
echo "10-20 characters), half of them existing, applied to client c holding SIZE more profiles,"
echo "clients ${OTHERS[*]} holding SIZE more between them.  $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')."
echo "s/100k: seconds per 100,000 records.  x size 0: bulk_update's s/100k / its s/100k at size 0"
echo "(stage x size 0: the same for the staging SQL).  table MB: profiles, heap + index + TOAST."
echo "staging/bulk: the staging SQL's seconds / bulk_update's (above 1: bulk_update is faster)."
printf '%10s %9s %12s %12s %12s %13s %9s %13s %13s\n' "c's size" "table MB" "bulk_update" "staging" \
	"bulk s/100k" "stage s/100k" "x size 0" "stage x size 0" "staging/bulk"
for size in 0 "${SIZE_LIST[@]}"; do
	printf '%10s %9s %10.2f s %10.2f s %12s %13s %9s %14s %13s\n' "$size" "${MB_P[$size]}" \
		"${B_SECS[$size]}" "${S_SECS[$size]}" "$(per100k "${B_SECS[$size]}")" \
		"$(per100k "${S_SECS[$size]}")" "$(ratio "${B_SECS[$size]}" "${B_SECS[0]}")" \
		"$(ratio "${S_SECS[$size]}" "${S_SECS[0]}")" "$(ratio "${S_SECS[$size]}" "${B_SECS[$size]}")"
done
echo
echo "Where the time goes: the backend's CPU seconds, and the target's heap + index blocks not found"
echo "in shared buffers (read from the OS cache or the disk) / found there, during the measurement."
printf '%10s %10s %10s %21s %10s %10s %21s\n' "c's size" "bulk s" "bulk CPU" "bulk blocks read/hit" \
	"stage s" "stage CPU" "stage blocks read/hit"
for size in 0 "${SIZE_LIST[@]}"; do
	printf '%10s %10.2f %10.2f %21s %10.2f %10.2f %21s\n' "$size" "${B_SECS[$size]}" "${B_CPU[$size]}" \
		"${B_READ[$size]}/${B_HIT[$size]}" "${S_SECS[$size]}" "${S_CPU[$size]}" "${S_READ[$size]}/${S_HIT[$size]}"
done

echo
echo "Goals:"
r=$(ratio "${B_SECS[$LARGEST]}" "${B_SECS[0]}")
le "$r" 1.5 && ok=1 || ok=0
goal "$ok" "at $LARGEST profiles, bulk_update's cost per record is ${r}x its cost at size 0 (goal <= 1.5)"
r=$(ratio "${S_SECS[$LARGEST]}" "${B_SECS[$LARGEST]}")
perl -e 'exit(!($ARGV[0] > 1))' "$r" && ok=1 || ok=0
goal "$ok" "at $LARGEST profiles, bulk_update is ${r}x faster than the COPY-staging SQL (goal > 1)"
((MISMATCH)) && goal 0 "both methods left the same values (see the errors above)"

echo
echo "Settings: PostgreSQL $PG_MAJOR defaults${BENCH_SETTINGS:+ but $BENCH_SETTINGS} (shared_buffers $(psql_q -c 'SHOW shared_buffers')), fsync=on,"
echo "synchronous_commit=on, full_page_writes=on; storage parameters of profiles (copied to the plain"
echo "table): $RELOPTS, of its primary key: $IDXOPTS.  Library: $LIB as of the start (md5 $LIB_MD5...)."
fills=""
for size in "${SIZE_LIST[@]}"; do fills+=" $size: ${FILL_SECS[$size]} s;"; done
mbs=""
for size in 0 "${SIZE_LIST[@]}"; do mbs+=" ${MB_S[$size]}"; done
echo "Growing both tables (with VACUUM ANALYZE, CHECKPOINT):${fills%;}.  Plain table MB:$mbs."
echo "Rounds: $ROUNDS (best time of each method at each size).  Load average (1/5/15 min) at the start: $LOAD_START; at the end: $(cut -d ' ' -f 1-3 /proc/loadavg)."
echo "Total run time: $((SECONDS - T_START)) s."
((MISSED == 0))
