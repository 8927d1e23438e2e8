#!/usr/bin/env bash
# Install the Debian packages that building and testing tgt_profile need,
# for this system's PostgreSQL major, but only those that are missing: a
# second run is one dpkg-query call.
#
#   bash test/tools/deps.sh        (or: make deps)
#
# As root, missing packages are installed with apt-get (apt-get update only
# when something is missing).  As another user, prints what to install and
# exits 1.  Also makes sure the `postgres` system user exists: initdb refuses
# root, so the throwaway clusters run as that user.  Works on Debian 12
# (PostgreSQL 15), 13 (17) and unstable (18).
set -u -o pipefail

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "ERROR: deps: dpkg-query not found: this script expects Debian 12, 13 or unstable" >&2
	exit 1
fi

# The PostgreSQL major built against: PG_MAJOR, else the one of PG_CONFIG
# or TGT_PG_BINDIR, else the system's default (pg_major.sh; common.sh finds
# the same one).
# shellcheck source-path=SCRIPTDIR source=pg_major.sh
. "$(dirname "${BASH_SOURCE[0]}")/pg_major.sh"
# shellcheck source-path=SCRIPTDIR source=host.sh
. "$(dirname "${BASH_SOURCE[0]}")/host.sh"
pg_major_detect || exit 1

# pgcrypto comes with postgresql-NN itself (postgresql-contrib is only a
# metapackage for the default major).  clang and libclang-rt-dev are
# Debian's metapackages for its default LLVM (libFuzzer and the sanitizer
# runtimes are in libclang-rt-NN-dev).  perl: prove and the TAP modules.
required=(
	"postgresql-$PG_MAJOR"
	"postgresql-server-dev-$PG_MAJOR"
	"postgresql-$PG_MAJOR-cron"
	libjansson-dev
	libssl-dev
	libipc-run-perl
	perl
	python3
	pgbouncer
	clang
	libclang-rt-dev
	make
	gcc
)
# Installed along with the required ones when possible; never an error.
optional=(
	valgrind
)


ensure_postgres_user() {
	id postgres >/dev/null 2>&1 && return 0
	if [[ $(id -u) -ne 0 ]]; then
		echo "deps: the 'postgres' user does not exist; as root run:" >&2
		echo "  useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres" >&2
		return 1
	fi
	echo "deps: creating the 'postgres' system user"
	useradd --system --user-group --home-dir /var/lib/postgresql \
		--shell /bin/bash postgres || return 1
}

mapfile -t miss_req < <(missing_of "${required[@]}")
if ((${#miss_req[@]} == 0)); then
	ensure_postgres_user
	exit $?
fi
mapfile -t miss_opt < <(missing_of "${optional[@]}")

if [[ $(id -u) -ne 0 ]]; then
	echo "deps: missing Debian packages: ${miss_req[*]}" >&2
	echo "deps: install them as root with:" >&2
	echo "  apt-get update && apt-get install -y --no-install-recommends ${miss_req[*]} ${miss_opt[*]}" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o Dpkg::Use-Pty=0 -o APT::Install-Recommends=false)
log=$(mktemp "${TMPDIR:-/tmp}/tgt_profile-deps.XXXXXX") || exit 1
trap 'rm -f "$log"' EXIT

echo "deps: installing ${miss_req[*]} ${miss_opt[*]}"
if ! apt-get -q update >"$log" 2>&1; then
	cat "$log" >&2
	echo "deps: apt-get update failed" >&2
	exit 1
fi
if ! apt-get "${apt_opts[@]}" install "${miss_req[@]}" </dev/null >>"$log" 2>&1; then
	cat "$log" >&2
	echo "deps: apt-get install ${miss_req[*]} failed" >&2
	exit 1
fi
if ((${#miss_opt[@]} > 0)) &&
	! apt-get "${apt_opts[@]}" install "${miss_opt[@]}" </dev/null >>"$log" 2>&1; then
	echo "deps: optional packages not installed (continuing): ${miss_opt[*]}"
fi

mapfile -t still < <(missing_of "${required[@]}")
if ((${#still[@]} > 0)); then
	cat "$log" >&2
	echo "deps: still missing after apt-get: ${still[*]}" >&2
	exit 1
fi
ensure_postgres_user || exit 1
echo "deps: done"
