# shellcheck shell=bash
# The PostgreSQL major the scripts build and test against, found in one
# place.  Source it, do not run it:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/pg_major.sh"
#   pg_major_detect || exit 1     # sets and exports PG_MAJOR
#
# In order of precedence:
#   1. PG_MAJOR, when set (PG_MAJOR=17 make test);
#   2. the major of $TGT_PG_BINDIR/pg_config --version (a relocated copy)
#      when TGT_PG_BINDIR is set, else of $PG_CONFIG --version when
#      PG_CONFIG is given (make test PG_CONFIG=...); when that pg_config
#      does not exist yet, the NN of its .../postgresql/NN/... path;
#   3. this Debian system's default major: the postgresql-NN that the
#      `postgresql` metapackage depends on (apt-cache depends postgresql),
#      after an apt-get update when apt does not know that package yet (a
#      fresh machine or docker image has no package lists).

# The major of a pg_config: from its --version ("PostgreSQL 17.6 (Debian
# 17.6-1)"), else from its path; prints nothing when neither tells.
_pg_major_of_config() {
	local cfg=$1 v
	if v=$("$cfg" --version 2>/dev/null); then
		v=$(sed -n 's/^PostgreSQL \([0-9][0-9]*\).*/\1/p' <<<"$v")
		if [[ -n $v ]]; then
			printf '%s\n' "$v"
			return
		fi
	fi
	sed -n 's|.*/postgresql/\([0-9][0-9]*\)/.*|\1|p' <<<"$cfg"
}

# The major of Debian's `postgresql` metapackage, per apt's package lists.
_pg_major_of_apt() {
	apt-cache depends postgresql 2>/dev/null |
		sed -n 's/^ *Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -n 1
}

# Sets and exports PG_MAJOR (see above); on failure says what to do and
# returns 1.
pg_major_detect() {
	local m="" cfg=${PG_CONFIG:-}
	[[ -n ${TGT_PG_BINDIR:-} ]] && cfg=$TGT_PG_BINDIR/pg_config
	if [[ -n ${PG_MAJOR:-} ]]; then
		m=$PG_MAJOR
	elif [[ -n $cfg ]]; then
		m=$(_pg_major_of_config "$cfg")
		if [[ -z $m ]]; then
			echo "ERROR: cannot tell the PostgreSQL major of $cfg (no such program, or no 'PostgreSQL NN' in its --version): set PG_MAJOR=NN" >&2
			return 1
		fi
	elif command -v apt-cache >/dev/null 2>&1; then
		m=$(_pg_major_of_apt)
		if [[ -z $m && $(id -u) -eq 0 ]]; then
			echo "pg_major: apt knows no 'postgresql' package yet: apt-get update" >&2
			apt-get -q update </dev/null >/dev/null 2>&1 ||
				echo "pg_major: apt-get update failed" >&2
			m=$(_pg_major_of_apt)
		fi
		if [[ -z $m ]]; then
			echo "ERROR: apt knows no 'postgresql' package to tell this system's PostgreSQL major: run 'apt-get update' as root, or set PG_MAJOR=NN (or PG_CONFIG=/usr/lib/postgresql/NN/bin/pg_config)" >&2
			return 1
		fi
	else
		echo "ERROR: no apt-cache (not Debian?): set PG_MAJOR=NN or PG_CONFIG=/path/to/pg_config" >&2
		return 1
	fi
	if [[ ! $m =~ ^[0-9]+$ ]]; then
		echo "ERROR: PG_MAJOR must be a number like 17, not '$m'" >&2
		return 1
	fi
	PG_MAJOR=$m
	export PG_MAJOR
}
