# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables set here are for the sourcing script
# Helpers shared by bench-bulk.sh and bench-scale.sh: the batch files, the
# throwaway cluster with its fixtures, the timed measurement and the SQL of
# the methods compared.  Source it after test/tools/common.sh, with BENCH_TMP
# set (the base of the files and the cluster):
#
#   . "$(dirname "${BASH_SOURCE[0]}")/bulk/lib.sh"
#
# Sets BULK (this directory), PSQL, N (500000), SAMPLE_MS (20) and, once
# bench_files and bench_cluster ran, DATA, LIB, LIB_MD5, BYTES[file] and
# HAVE_WALINSPECT.

BULK=$REPO/test/bench/bulk
# Our directories (files, cluster) go under a base of our own: on a shared
# machine, other people's cleanups remove /tmp/tgt_profile-* under our feet.
mkdir -p "$BENCH_TMP" && chmod 755 "$BENCH_TMP" || exit 1
export TMPDIR=$BENCH_TMP
N=${N:-500000}
SAMPLE_MS=${SAMPLE_MS:-20}
PSQL=$PG_BINDIR/psql

die() {
	log_error "$*"
	exit 1
}

psql_q() {
	"$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

# bench_install: BUILD=1 builds and installs the extension; otherwise the
# installed one is used (built when there is none).
bench_install() {
	if [[ ${BUILD:-0} == 1 ]]; then
		build_and_install || exit 1
	elif [[ ! -f $("$PG_CONFIG" --sharedir)/extension/tgt_profile.control ]]; then
		log_info "tgt_profile is not installed: building it"
		build_and_install || exit 1
	fi
}

# bench_files: gen.py's batch of N records into a new DATA directory, and a
# snapshot of the installed library (see bench_cluster) taken when no one
# is writing it: two copies a second apart must agree.
DATA=""
bench_files() {
	make_tmpdir DATA bulkdata || die "no temporary directory"
	log_info "== generating $N records in $DATA"
	python3 "$BULK/gen.py" "$DATA" "$N" || die "gen.py failed"
	snapshot_library "$DATA" || die "no snapshot of the library"
	chmod -R a+rX "$DATA"
	declare -gA BYTES
	local f b
	while read -r f b; do BYTES[$f]=$b; done <"$DATA/sizes"
}

# bench_cluster: a throwaway cluster with PostgreSQL's defaults (fsync,
# synchronous_commit and full_page_writes, which cluster_start turns off for
# tests, back on) and the fixtures of setup.sql.  BENCH_SETTINGS: more
# server settings, "name=value ..." (e.g. shared_buffers=4GB), printed with
# the results.
bench_cluster() {
	log_info "== cluster (PostgreSQL defaults, fsync/synchronous_commit/full_page_writes on${BENCH_SETTINGS:+, $BENCH_SETTINGS})"
	# shellcheck disable=SC2086 # BENCH_SETTINGS is a list of settings
	cluster_start fsync=on synchronous_commit=on full_page_writes=on \
		max_prepared_transactions=0 log_min_messages=warning ${BENCH_SETTINGS:-} ||
		die "could not start the cluster"
	log_info "== fixtures"
	psql_q -v dir="$DATA" -f "$BULK/setup.sql" >/dev/null || die "setup.sql failed"
	# Other people reinstall the extension while we run: the cluster's C
	# functions are pointed at the private copy taken by bench_files, so
	# that the whole run measures one build (and a reinstall cannot pull the
	# library from under a running backend).  A throwaway cluster, so
	# editing pg_proc is harmless.
	psql_q -c "UPDATE pg_catalog.pg_proc SET probin = '$DATA/lib/tgt_profile'
	            WHERE probin = '\$libdir/tgt_profile'" >/dev/null || die "could not point at the library copy"
	[[ $(psql_q -c "SELECT count(*) FROM pg_proc WHERE probin = '$DATA/lib/tgt_profile'") -gt 0 ]] ||
		die "no function uses the library copy"
	HAVE_WALINSPECT=0
	psql_q -c "CREATE EXTENSION pg_walinspect" >/dev/null 2>&1 && HAVE_WALINSPECT=1
	return 0
}

# reset_target TABLE [PRELOAD_FILE]: empty TABLE, load the preload, make the
# state steady (vacuumed, analysed, checkpointed).
reset_target() {
	local t=$1 pre=${2:-} load=""
	[[ -n $pre ]] && load="COPY $t FROM '$DATA/$pre';"
	psql_q -c "TRUNCATE $t" -c "${load:-SELECT}" -c "VACUUM (ANALYZE) $t" -c "CHECKPOINT" \
		>/dev/null || die "reset of $t failed"
}

# measure TARGET SQL: run SQL (psql text, may span statements and use
# :'dir') on a fresh connection; sets SECS, PEAK_MB, WAL_BYTES, DUPD, DINS,
# DHOT (growth of TARGET's n_tup_upd, n_tup_ins and n_tup_hot_upd), INFO (lines the SQL
# \echo'ed with the prefix INFO), CPU_SECS (the backend's user + system CPU
# time meanwhile), BLKS_READ and BLKS_HIT (TARGET's heap and index blocks
# read into shared buffers and found there).  PERF_OUT=FILE: `perf record`
# the backend meanwhile.
MEASURE_N=0
measure() {
	local target=$1 sql=$2 memf out base peak perf_on="" perf_off=""
	local blks="COALESCE(heap_blks_read, 0) + COALESCE(idx_blks_read, 0)"
	local hits="COALESCE(heap_blks_hit, 0) + COALESCE(idx_blks_hit, 0)"
	MEASURE_N=$((MEASURE_N + 1))
	memf=$DATA/mem.$MEASURE_N
	if [[ -n ${PERF_OUT:-} ]]; then
		perf_on="\\! perf record -q -g -p \"\$BENCH_PID\" -o '$PERF_OUT' </dev/null >'$PERF_OUT.log' 2>&1 & echo \$! >'$PERF_OUT.pid'; sleep 0.5"
		perf_off="\\! kill -INT \$(cat '$PERF_OUT.pid'); while kill -0 \$(cat '$PERF_OUT.pid') 2>/dev/null; do sleep 0.1; done"
	fi
	out=$(
		"$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -v dir="$DATA" -f - 2>&1 <<EOF
SET tgt_profile.max_batch_bytes = '200MB';
SELECT pg_backend_pid() AS pid \gset
\setenv BENCH_PID :pid
\! perl '$BULK/memsample.pl' "\$BENCH_PID" '$memf' $SAMPLE_MS </dev/null >/dev/null 2>&1 &
SELECT n_tup_upd AS upd0, n_tup_ins AS ins0, n_tup_hot_upd AS hot0, pg_current_wal_lsn() AS lsn0,
       $blks AS rd0, $hits AS hit0
  FROM pg_stat_user_tables JOIN pg_statio_user_tables USING (relid) WHERE relid = '$target'::regclass \gset
\! i=0; while [ ! -e '$memf.ready' ] && [ \$i -lt 500 ]; do sleep 0.01; i=\$((i+1)); done
$perf_on
\! cut -d ' ' -f 14,15 /proc/\$BENCH_PID/stat >'$memf.cpu0'
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
$sql
SELECT extract(epoch FROM clock_timestamp()) - :t0 AS secs \gset
\! cut -d ' ' -f 14,15 /proc/\$BENCH_PID/stat >'$memf.cpu1'
\! touch '$memf.stop'
$perf_off
SELECT pg_stat_force_next_flush();
SELECT n_tup_upd - :upd0 AS dupd, n_tup_ins - :ins0 AS dins, n_tup_hot_upd - :hot0 AS dhot,
       pg_wal_lsn_diff(pg_current_wal_lsn(), :'lsn0') AS wal, :'lsn0' AS lsn0,
       pg_current_wal_lsn() AS lsn1, $blks - :rd0 AS rd, $hits - :hit0 AS hit
  FROM pg_stat_user_tables JOIN pg_statio_user_tables USING (relid) WHERE relid = '$target'::regclass \gset
\echo RESULT :secs :wal :dupd :dins :lsn0 :lsn1 :rd :hit :dhot
EOF
	)
	local rc=$?
	for _ in $(seq 1 300); do [[ -s $memf ]] && break; sleep 0.01; done
	if ((rc != 0)) || ! grep -q '^RESULT ' <<<"$out" || [[ ! -s $memf ]]; then
		printf '%s\n' "$out" >&2
		die "measurement failed: $sql"
	fi
	read -r _ SECS WAL_BYTES DUPD DINS LSN0 LSN1 BLKS_READ BLKS_HIT DHOT < <(grep '^RESULT ' <<<"$out")
	CPU_SECS=$(perl -e 'my @a = split " ", $ARGV[0]; my @b = split " ", $ARGV[1];
		printf "%.2f", ($b[0] + $b[1] - $a[0] - $a[1]) / $ARGV[2]' \
		"$(cat "$memf.cpu0" 2>/dev/null)" "$(cat "$memf.cpu1" 2>/dev/null)" "$(getconf CLK_TCK)")
	INFO=$(sed -n 's/^INFO //p' <<<"$out")
	read -r base peak _ <"$memf"
	PEAK_MB=$(perl -e 'printf "%.1f", ($ARGV[1] - $ARGV[0]) / 1024' "$base" "$peak")
}

mb() { perl -e 'printf "%.1f", $ARGV[0] / 1048576' "$1"; }
ratio() { perl -e 'printf "%.2f", $ARGV[1] > 0 ? $ARGV[0] / $ARGV[1] : 0' "$1" "$2"; }
le() { perl -e 'exit(!($ARGV[0] <= $ARGV[1]))' "$1" "$2"; }

# goal OK TEXT: one line of the goals; MISSED counts the missed ones.
MISSED=0
goal() {
	local mark=ok
	if [[ $1 != 1 ]]; then
		mark=MISSED
		MISSED=$((MISSED + 1))
	fi
	printf '  %-7s %s\n' "$mark" "$2"
}

# ---------------------------------------------------------------------------
# the methods
# ---------------------------------------------------------------------------

UPSERT_TAIL="ON CONFLICT (client, tnt_id) DO UPDATE
   SET attributes = p.attributes || EXCLUDED.attributes,
       updated_at = EXCLUDED.updated_at, last_seen_at = EXCLUDED.last_seen_at;"
INTO_PLAIN="INSERT INTO bench.plain_target AS p (client, tnt_id, attributes, created_at, updated_at, last_seen_at)"

sql_copy() {
	echo "COPY bench.copy_target FROM '$DATA/batch.copy';"
}

sql_bulk() { # FORMAT
	cat <<EOF
SELECT status, rows_total, rows_created, rows_updated, rows_unchanged, rows_not_found, rows_rejected
  FROM tgt_profile.bulk_update('c', (SELECT body FROM bench.batch WHERE name = '$1')) \gset r_
\echo INFO :r_status total=:r_rows_total created=:r_rows_created updated=:r_rows_updated unchanged=:r_rows_unchanged not_found=:r_rows_not_found rejected=:r_rows_rejected
EOF
}

# plain SQL by method name
sql_plain() {
	case $1 in
	csv_staging)
		cat <<EOF
BEGIN;
CREATE TEMP TABLE stage (pcid text, param1 text, param2 text, param3 text, param4 text, param5 text)
  ON COMMIT DROP;
COPY stage FROM '$DATA/batch.csv' (FORMAT csv, HEADER true);
$INTO_PLAIN
SELECT 'c', pcid,
       jsonb_strip_nulls(jsonb_build_object('param1', param1, 'param2', param2, 'param3', param3,
                                            'param4', param4, 'param5', param5)),
       now(), now(), now()
  FROM stage
$UPSERT_TAIL
\echo INFO rows=:ROW_COUNT
COMMIT;
EOF
		;;
	ndjson_split)
		# OFFSET 0 keeps the subquery whole, so that each line is parsed once
		# (pulled up, line::jsonb would be evaluated for each use of j).
		cat <<EOF
$INTO_PLAIN
SELECT 'c', j->>'pcId', j - 'pcId', now(), now(), now()
  FROM (SELECT l.line::jsonb AS j
          FROM bench.batch b, string_to_table(b.body, E'\n') AS l(line)
         WHERE b.name = 'ndjson' AND l.line <> '' OFFSET 0) s
$UPSERT_TAIL
\echo INFO rows=:ROW_COUNT
EOF
		;;
	ndjson_staging)
		# CSV with a delimiter and quote that never occur: one line, one value.
		cat <<EOF
BEGIN;
CREATE TEMP TABLE stage (j jsonb) ON COMMIT DROP;
COPY stage FROM '$DATA/batch.ndjson' (FORMAT csv, DELIMITER E'\x01', QUOTE E'\x02');
$INTO_PLAIN
SELECT 'c', j->>'pcId', j - 'pcId', now(), now(), now()
  FROM stage
$UPSERT_TAIL
\echo INFO rows=:ROW_COUNT
COMMIT;
EOF
		;;
	json_elements)
		cat <<EOF
$INTO_PLAIN
SELECT 'c', e->>'pcId', e - 'pcId', now(), now(), now()
  FROM bench.batch b, jsonb_array_elements(b.body::jsonb) AS e
 WHERE b.name = 'json'
$UPSERT_TAIL
\echo INFO rows=:ROW_COUNT
EOF
		;;
	esac
}
