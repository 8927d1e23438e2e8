#!/usr/bin/env bash
# bench-memory.sh: peak backend memory of bulk_update on hostile batches
# (DESIGN.md "Memory": below twice the batch plus 64 MB, whatever it holds).
#
# test/bench/bulk/gen_hostile.py writes the batches (see there):
#   one_profile   one profile of 1,500 attributes updated by 9,999 records
#   wide_header   an Adobe file of 100,000 columns, every cell filled (50 MB)
#   many_members  one NDJSON line of 4.9 million members (50 MB)
#   existing      4,000 records of 4,000 existing profiles of ~60 kB each
# Each runs on a fresh connection of a throwaway cluster, from a table (not
# a literal), with tgt_profile.max_batch_bytes = 100MB; the profiles table
# is emptied before each but the last (whose profiles are made first).
# test/bench/bulk/memsample.pl samples the backend's RssAnon every
# SAMPLE_MS (20) ms; "peak MB" is the highest sample minus the first.
# Memory only: no timings are printed (other bench scripts time).
#
# Usage: bash test/bench/bench-memory.sh   (TGT_PG_BINDIR: the server copy;
# BUILD=1 builds and installs first; KEEP_TMP=1 keeps the files; BATCHES:
# a subset of the names above)
set -u -o pipefail

# shellcheck source-path=SCRIPTDIR source=../tools/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tools/common.sh"
cd "$REPO" || exit 1

BULK=$REPO/test/bench/bulk
SAMPLE_MS=${SAMPLE_MS:-20}
PSQL=$PG_BINDIR/psql

die() {
	log_error "$*"
	exit 1
}
psql_q() { "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

if [[ ${BUILD:-0} == 1 ]]; then
	build_and_install || exit 1
fi

DATA=""
make_tmpdir DATA memdata || die "no temporary directory"
python3 "$BULK/gen_hostile.py" "$DATA" || die "gen_hostile.py failed"
chmod -R a+rX "$DATA"
declare -A BYTES
while read -r f b; do BYTES[$f]=$b; done <"$DATA/sizes"

cluster_start log_min_messages=warning || die "could not start the cluster"
psql_q -v dir="$DATA" <<'SQL' >/dev/null || die "setup failed"
SET client_min_messages = warning;
CREATE EXTENSION tgt_profile CASCADE;
SELECT tgt_profile.create_client('c');
CREATE UNLOGGED TABLE batch (name text PRIMARY KEY, body text NOT NULL);
ALTER TABLE batch ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO batch VALUES
  ('one_profile', pg_read_file(:'dir' || '/one_profile.ndjson')),
  ('wide_header', pg_read_file(:'dir' || '/wide_header.csv')),
  ('many_members', pg_read_file(:'dir' || '/many_members.ndjson')),
  ('existing', pg_read_file(:'dir' || '/existing.ndjson'));
SQL

# measure NAME: bulk_update of batch NAME; sets PEAK_MB and RESULT
measure() {
	local memf=$DATA/mem.$1 out base peak
	cat >"$memf.sql" <<EOF
SET tgt_profile.max_batch_bytes = '100MB';
SELECT pg_backend_pid() AS pid \gset
\setenv BENCH_PID :pid
\! perl '$BULK/memsample.pl' "\$BENCH_PID" '$memf' $SAMPLE_MS </dev/null >/dev/null 2>&1 &
\! i=0; while [ ! -e '$memf.ready' ] && [ \$i -lt 500 ]; do sleep 0.01; i=\$((i+1)); done
SELECT format('total=%s created=%s updated=%s unchanged=%s rejected=%s', rows_total,
              rows_created, rows_updated, rows_unchanged, rows_rejected) AS r
  FROM tgt_profile.bulk_update('c', (SELECT body FROM batch WHERE name = '$1')) \gset
\! touch '$memf.stop'
\echo RESULT :r
EOF
	out=$("$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -f "$memf.sql" 2>&1)
	local rc=$?
	for _ in $(seq 1 300); do [[ -s $memf ]] && break; sleep 0.01; done
	if ((rc != 0)) || [[ ! -s $memf ]]; then
		printf '%s\n' "$out" >&2
		die "measurement of $1 failed"
	fi
	RESULT=$(sed -n 's/^RESULT //p' <<<"$out")
	read -r base peak _ <"$memf"
	PEAK_MB=$(perl -e 'printf "%.1f", ($ARGV[1] - $ARGV[0]) / 1024' "$base" "$peak")
}

mb() { perl -e 'printf "%.1f", $ARGV[0] / 1048576' "$1"; }

printf '%-14s %9s %9s %11s  %-6s %s\n' batch "batch MB" "peak MB" "bound MB" goal result
MISSED=0
for name in ${BATCHES:-one_profile wide_header many_members existing}; do
	file=$(cd "$DATA" && ls "$name".*)
	psql_q -c "TRUNCATE tgt_profile.profiles" >/dev/null || die "truncate failed"
	if [[ $name == existing ]]; then
		# 4,000 profiles of about 60 kB each (random text: stored out of line)
		psql_q -c "INSERT INTO tgt_profile.profiles (client, tnt_id, attributes, created_at, updated_at, last_seen_at)
		           SELECT 'c', format('e%s', lpad(i::text, 5, '0')),
		                  (SELECT jsonb_object_agg(format('k%s', j), md5(i || '-' || j))
		                     FROM generate_series(1, 1300) j), now(), now(), now()
		             FROM generate_series(0, 3999) i" >/dev/null || die "preload failed"
		psql_q -c "VACUUM ANALYZE tgt_profile.profiles" >/dev/null
	fi
	measure "$name"
	bmb=$(mb "${BYTES[$file]}")
	bound=$(perl -e 'printf "%.1f", 2 * $ARGV[0] + 64' "$bmb")
	ok=ok
	perl -e 'exit(!($ARGV[0] <= $ARGV[1]))' "$PEAK_MB" "$bound" || { ok=MISSED; MISSED=$((MISSED + 1)); }
	printf '%-14s %9s %9s %11s  %-6s %s\n' "$name" "$bmb" "$PEAK_MB" "$bound" "$ok" "$RESULT"
done
echo "peak MB: peak RssAnon growth of the backend; bound: 2 x batch + 64 MB (DESIGN.md \"Memory\")."
((MISSED == 0))
