#!/usr/bin/env bash
# `make demo`: install missing Debian packages, build and install the
# extension, start a throwaway cluster, run test/demo/demo.sql with psql
# (each statement echoed before its result), then stop the cluster and
# remove it, also when the demo fails.  Exit status non-zero on failure.
#
# demo.sql runs from the repository root (relative \copy / \ir paths work)
# as the postgres superuser, in the database `postgres`.
set -u -o pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO" || exit 1

DEMO_SQL=test/demo/demo.sql

echo "== deps: bash test/tools/deps.sh"
bash "$REPO/test/tools/deps.sh" </dev/null || exit 1
build_and_install || exit 1

if [[ ! -f $DEMO_SQL ]]; then
	log_error "$DEMO_SQL not found"
	exit 1
fi

echo "== cluster: initdb and start a throwaway PostgreSQL $PG_MAJOR (as postgres)"
# shellcheck disable=SC2119  # no arguments: default directory, unix socket only
cluster_start || exit 1
echo "   socket $PGHOST, port $PGPORT, user $PGUSER, database $PGDATABASE"

echo "== demo: psql -f $DEMO_SQL"
echo
rc=0
"$PG_BINDIR/psql" -X -v ON_ERROR_STOP=1 --echo-queries -P pager=off \
	-f "$DEMO_SQL" </dev/null || rc=$?
echo
if ((rc != 0)); then
	log_error "the demo failed (psql exit status $rc); last lines of the server log:"
	tail -n 30 "$CLUSTER_LOG" >&2
	exit "$rc"
fi
cluster_stop
echo "== demo: done (cluster stopped and removed)"
