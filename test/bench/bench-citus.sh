#!/usr/bin/env bash
# bench-citus.sh: runs test/bench/bench-citus.pl (tgt_profile on a Citus
# coordinator and two workers against one node; see its header) the way the
# citus suite runs its TAP scripts: as postgres, with PostgreSQL's TAP
# modules.  Needs Citus installed for this major (make test's citus suite
# installs it from ../shared/citus); without it, says so and exits 0.
# BENCH_SECONDS (15) per pgbench run, BULK_ROWS (500000) per bulk_update.
set -u -o pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../tools/common.sh"
cd "$REPO" || exit 1

libdir=$("$PG_CONFIG" --pkglibdir)
if [[ ! -f $libdir/citus.so ]]; then
	log_info "== bench-citus: skipped: no Citus in $libdir (make test's citus suite installs it)"
	exit 0
fi
build_and_install || exit 1
make_tmpdir dir bench-citus
cp -a "$REPO/test" "$dir/test" && mkdir -p "$dir/tmp" || exit 1
is_root && chown -R postgres: "$dir"
pgxs=$("$PG_CONFIG" --pkglibdir)/pgxs
log_info "== bench-citus: a coordinator and two workers against one node (${BENCH_SECONDS:-15} s per pgbench run, ${BULK_ROWS:-500000} rows per batch)"
env --chdir="$dir/test" "${AS_POSTGRES[@]}" env \
	PATH="$PG_BINDIR:$PATH" HOME="$dir" TMPDIR="$dir/tmp" TESTDIR="$dir/test" \
	PG_REGRESS="$pgxs/src/test/regress/pg_regress" PG_CONFIG="$PG_CONFIG" \
	BENCH_SECONDS="${BENCH_SECONDS:-15}" BULK_ROWS="${BULK_ROWS:-500000}" \
	perl -I "$pgxs/src/test/perl" bench/bench-citus.pl 2>&1 | sed -n 's/^# \{0,1\}//p'
