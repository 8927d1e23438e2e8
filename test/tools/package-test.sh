#!/usr/bin/env bash
# The package route, end to end (the `package` suite of `make test`):
#
#   1. META.json, debian/changelog and tgt_profile.control name one version;
#   2. as root: a copy of the source (nothing is written into the clone);
#      the Debian packages that building it needs are installed when missing
#      (its Build-Depends, with apt-get build-dep); it is built with
#      `dpkg-buildpackage -us -uc`, as the README says (from PostgreSQL 18
#      on that runs the pg_regress and isolation suites on the packaged
#      files: see debian/rules);
#   3. the .deb holds the library, the control file and every versioned SQL
#      script (upgrade scripts included) for PostgreSQL $PG_MAJOR;
#   4. it is installed with `dpkg -i` into the system PostgreSQL $PG_MAJOR
#      (/usr/lib/postgresql/$PG_MAJOR); the autopkgtest (debian/tests) runs
#      the pg_regress and isolation suites against it; a throwaway cluster of
#      that server runs CREATE EXTENSION, a smoke test, and an update from
#      1.0 with the packaged scripts;
#   5. `dpkg -r` removes it, and the files the package replaced (a
#      `make install` of the source, say) are put back as they were, also on
#      failure or interruption.
#
# Prints one TAP line (`ok - ...` / `not ok - ...`) per check; exits non-zero
# when one failed.  As another user than root only step 1 runs (the rest
# prints a `# SKIP` note): dpkg -i and apt-get need root.
#
# Environment: PG_MAJOR (from common.sh), KEEP_TMP=1 (keep the build
# directory and the cluster).
set -u -o pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source-path=SCRIPTDIR source=host.sh
. "$(dirname "${BASH_SOURCE[0]}")/host.sh"

# make test's TAP_TESTS (a filter of test/t) is PGXS's switch for TAP
# suites in `make installcheck`: the package build and its autopkgtest must
# not see it.
unset TAP_TESTS
cd "$REPO" || exit 1

FAILED=0
PKG=postgresql-$PG_MAJOR-tgt-profile
# The system server of this major: the package installs into it, whatever
# TGT_PG_BINDIR points the other suites at.
SYS_BINDIR=/usr/lib/postgresql/$PG_MAJOR/bin

# tap_ok NAME / tap_fail NAME [DETAIL...]: one TAP line (details as comments).
tap_ok() { printf 'ok - %s\n' "$1"; }
tap_fail() {
	printf 'not ok - %s\n' "$1"
	shift
	local l
	for l in "$@"; do printf '#   %s\n' "$l"; done
	FAILED=$((FAILED + 1))
}

# ---------------------------------------------------------------------------
# 1. One version everywhere: the control file's default_version (what
# CREATE EXTENSION installs and the Makefile builds), the Debian package's
# upstream version, and PGXN's semantic version (X.Y becomes X.Y.0).

# Print the semantic version of a PostgreSQL-style X.Y version.
semver_of() {
	local v=$1
	[[ $v =~ ^[0-9]+\.[0-9]+$ ]] && v=$v.0
	printf '%s\n' "$v"
}

check_versions() {
	local control changelog meta meta_ext
	control=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" tgt_profile.control)
	# `tgt-profile (EPOCH:UPSTREAM-REVISION) ...`: the upstream part.
	changelog=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' debian/changelog 2>/dev/null)
	changelog=${changelog#*:}
	[[ $changelog == *-* ]] && changelog=${changelog%-*}
	# perl and JSON::PP come with git on every Debian.
	if ! meta=$(perl -MJSON::PP -e '
		local $/; open my $f, "<", "META.json" or die "META.json: $!\n";
		my $m = JSON::PP->new->decode(<$f>);
		print $m->{version} // "", " ",
			$m->{provides}{tgt_profile}{version} // "", "\n";' 2>&1); then
		tap_fail "META.json parses" "$meta"
		return
	fi
	read -r meta meta_ext <<<"$meta"
	if [[ -z $control ]]; then
		tap_fail "tgt_profile.control has a default_version"
		return
	fi
	local want
	want=$(semver_of "$control")
	if [[ $changelog == "$control" && $meta == "$want" && $meta_ext == "$want" ]]; then
		tap_ok "one version: tgt_profile.control $control, debian/changelog $changelog, META.json $meta"
	else
		tap_fail "one version in tgt_profile.control, debian/changelog and META.json" \
			"tgt_profile.control default_version: $control" \
			"debian/changelog: ${changelog:-(none)} (want $control)" \
			"META.json version: ${meta:-(none)}, provides.tgt_profile.version: ${meta_ext:-(none)} (want $want)"
	fi
}

check_versions
EXTVERSION=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" tgt_profile.control)

finish() {
	if ((FAILED > 0)); then
		echo "# package: $FAILED check(s) failed"
		exit 1
	fi
	exit 0
}

if ! is_root; then
	echo "# SKIP building and installing $PKG: dpkg -i and apt-get need root (run make test as root)"
	finish
fi

# ---------------------------------------------------------------------------
# 2. A copy of the source: the files git knows (tracked, and new ones not
# ignored) or, outside a git checkout, the tree without .git.
# Not make_tmpdir: that chowns to postgres, a user which on a fresh system
# only the server package (a build dependency) creates.  Readable by all:
# the build-time tests' server (user postgres) reads the packaged files in
# the build tree.  Removed on exit like make_tmpdir's.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tgt_profile-package.XXXXXX") || exit 1
_TMPDIRS+=("$WORK")
chmod 755 "$WORK" || exit 1
SRC=$WORK/tgt-profile-$EXTVERSION
if ! copy_source_tree "$REPO" "$SRC"; then
	tap_fail "source copied to $SRC"
	finish
fi


# Build dependencies: dpkg-dev (dpkg-checkbuilddeps), the server and headers
# of this major, then whatever debian/control's Build-Depends still lacks
# (apt-get build-dep on the copy, which adds build-essential).
ensure_build_deps() {
	local log=$WORK/apt.log rc=0
	local -a miss apt=(apt-get -y -q -o Dpkg::Use-Pty=0 -o APT::Install-Recommends=false)
	export DEBIAN_FRONTEND=noninteractive
	mapfile -t miss < <(missing_of dpkg-dev "postgresql-$PG_MAJOR" \
		"postgresql-server-dev-$PG_MAJOR")
	if ((${#miss[@]} > 0)) || ! (cd "$SRC" && dpkg-checkbuilddeps) >/dev/null 2>&1; then
		echo "# installing ${miss[*]} and the Build-Depends of debian/control"
		{ apt-get -q update && { ((${#miss[@]} == 0)) || "${apt[@]}" install "${miss[@]}"; } &&
			(cd "$SRC" && "${apt[@]}" build-dep ./); } </dev/null >"$log" 2>&1 || rc=1
	fi
	if ((rc != 0)); then
		sed 's/^/#   /' "$log"
		return 1
	fi
}

if ensure_build_deps; then
	tap_ok "build dependencies installed (dpkg-checkbuilddeps is satisfied)"
else
	tap_fail "build dependencies installed" \
		"apt-get failed (output above): apt-get build-dep ./ in a clone, then re-run"
	finish
fi

# An installed package of this name is someone's: leave it alone.
if [[ -z $(missing_of "$PKG") ]]; then
	echo "# SKIP installing the built package: $PKG is already installed here (dpkg -r $PKG first)"
	finish
fi

BUILD_LOG=$WORK/dpkg-buildpackage.log
echo "# dpkg-buildpackage -us -uc in $SRC (log: $BUILD_LOG)"
rc=0
run_logged "$BUILD_LOG" env --chdir="$SRC" dpkg-buildpackage -us -uc || rc=$?
DEB=$(find "$WORK" -maxdepth 1 -name "${PKG}_${EXTVERSION}_*.deb" | head -n 1)
if ((rc == 0)) && [[ -n $DEB ]]; then
	tap_ok "dpkg-buildpackage -us -uc builds $(basename "$DEB")"
else
	tap_fail "dpkg-buildpackage -us -uc builds ${PKG}_${EXTVERSION}_*.deb" \
		"exit status $rc; the last lines of $BUILD_LOG:"
	tail -n 60 "$BUILD_LOG" | sed 's/^/#   /'
	finish
fi

# The build-time tests (dh_pgxs_test, from 18 on: see debian/rules):
# pg_regress prints "All N tests passed." per suite.
if ((PG_MAJOR >= 18)) && [[ ${DEB_BUILD_OPTIONS:-} != *nocheck* ]]; then
	mapfile -t passed < <(grep -oE 'All [0-9]+ tests passed' "$BUILD_LOG")
	if grep -q "### End $PG_MAJOR installcheck ###" "$BUILD_LOG" && ((${#passed[@]} >= 2)); then
		tap_ok "build-time tests on the packaged files: regress (${passed[0]#All }), isolation (${passed[1]#All })"
	else
		tap_fail "build-time tests ran the regress and isolation suites" \
			"see $BUILD_LOG (KEEP_TMP=1 keeps it)"
	fi
fi

# ---------------------------------------------------------------------------
# 4. What the package holds.
mapfile -t DEB_FILES < <(dpkg-deb --fsys-tarfile "$DEB" | tar -tf - | sed 's|^\./|/|')
has_file() {
	local f
	for f in "${DEB_FILES[@]}"; do [[ $f == "$1" ]] && return 0; done
	return 1
}
LIBDIR=/usr/lib/postgresql/$PG_MAJOR/lib
EXTDIR=/usr/share/postgresql/$PG_MAJOR/extension
expected=("$LIBDIR/tgt_profile.so" "$EXTDIR/tgt_profile.control"
	"$EXTDIR/tgt_profile--$EXTVERSION.sql")
for f in src/tgt_profile--*.sql; do
	expected+=("$EXTDIR/$(basename "$f")")
done
for f in "${expected[@]}"; do
	if has_file "$f"; then
		tap_ok "the package holds $f"
	else
		tap_fail "the package holds $f"
	fi
done
depends=$(dpkg-deb -f "$DEB" Depends)
if [[ $depends =~ (^|[ ,])postgresql-$PG_MAJOR([ ,]|$) ]]; then
	tap_ok "it depends on postgresql-$PG_MAJOR (which ships pgcrypto)"
else
	tap_fail "it depends on postgresql-$PG_MAJOR" "Depends: $depends"
fi

# ---------------------------------------------------------------------------
# 5. Install, use, remove.  The files the package will replace are saved
# first and put back after dpkg -r, also when something fails meanwhile.
BACKUP=$WORK/backup
INSTALLED=0
mkdir -p "$BACKUP" || exit 1
for f in "${DEB_FILES[@]}"; do
	[[ -f $f && ! -L $f ]] || continue
	if ! mkdir -p "$BACKUP$(dirname "$f")" || ! cp -a "$f" "$BACKUP$f"; then
		tap_fail "saved $f before installing the package"
		finish
	fi
done

# Remove the package (once) and put the saved files back.
_restored=0
restore_system() {
	((_restored)) && return 0
	_restored=1
	((INSTALLED)) || return 0
	local rc=0
	dpkg -r "$PKG" >"$WORK/dpkg-r.log" 2>&1 || rc=$?
	if [[ -d $BACKUP ]]; then
		cp -a "$BACKUP/." / || rc=1
	fi
	((rc == 0)) || log_error "dpkg -r $PKG or putting back the files saved in $BACKUP failed: see $WORK/dpkg-r.log"
	return "$rc"
}
# Interrupted while the package is installed: remove it first (run-tests.sh
# waits 5 seconds before it kills us), then stop the cluster and clean up.
# shellcheck disable=SC2317  # called from the traps below
on_signal() {
	trap - INT TERM
	echo "# interrupted (SIG$1): removing $PKG and putting back the files it replaced" >&2
	_kill_child
	restore_system
	cluster_stop
	_cleanup
	trap - EXIT
	exit "$2"
}
trap 'cluster_stop; restore_system; _cleanup' EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

INSTALLED=1
if dpkg -i "$DEB" >"$WORK/dpkg-i.log" 2>&1 &&
	[[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null) == "ii " ]]; then
	tap_ok "dpkg -i $(basename "$DEB")"
else
	tap_fail "dpkg -i $(basename "$DEB")"
	sed 's/^/#   /' "$WORK/dpkg-i.log"
	finish
fi

# The autopkgtest, as autopkgtest runs it: the regress and isolation suites
# (pg_buildext installcheck) against the installed package, on a throwaway
# cluster of its own (pg_virtualenv).
rc=0
run_logged "$WORK/autopkgtest.log" env --chdir="$SRC" sh debian/tests/installcheck || rc=$?
mapfile -t passed < <(grep -oE 'All [0-9]+ tests passed' "$WORK/autopkgtest.log")
if ((rc == 0 && ${#passed[@]} >= 2)); then
	tap_ok "autopkgtest debian/tests/installcheck on the installed package: regress (${passed[0]#All }), isolation (${passed[1]#All })"
else
	tap_fail "autopkgtest debian/tests/installcheck on the installed package" \
		"exit status $rc; the last lines of its output:"
	tail -n 80 "$WORK/autopkgtest.log" | sed 's/^/#   /'
fi

PG_BINDIR=$SYS_BINDIR
# shellcheck disable=SC2119  # no extra settings for this cluster
if ! cluster_start; then
	tap_fail "a throwaway cluster of $SYS_BINDIR starts"
	finish
fi

# q [PSQL OPTION...] <<<SQL: run the statements in one psql session (from
# standard input, so that :'var' is interpolated), print their output.
q() {
	"$PG_BINDIR/psql" -X -q -t -A -v ON_ERROR_STOP=1 "$@" 2>&1
}

# tap_last NAME OUTPUT WANT: ok when the last line of OUTPUT is WANT.
tap_last() {
	local last
	last=$(tail -n 1 <<<"$2")
	if [[ $last == "$3" ]]; then
		tap_ok "$1"
	else
		local -a lines
		mapfile -t lines <<<"$2"
		tap_fail "$1" "want: '$3', got:" "${lines[@]}"
	fi
}

out=$(q <<<"CREATE EXTENSION tgt_profile CASCADE;
SELECT extversion FROM pg_extension WHERE extname = 'tgt_profile';")
tap_last "CREATE EXTENSION tgt_profile CASCADE installs $EXTVERSION" "$out" "$EXTVERSION"
out=$(q <<<"SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto';")
tap_last "CASCADE created pgcrypto" "$out" 1

# The smoke test of the README's "Getting started", as the superuser.
out=$(q <<<"SELECT 'created' FROM tgt_profile.create_client('pkg');
SELECT 'required' FROM tgt_profile.set_require_auth('pkg', true);
SELECT token FROM tgt_profile.generate_token('pkg', '1 day');")
token=$(tail -n 1 <<<"$out")
if [[ $token =~ ^tgtp_ ]]; then
	tap_ok "create_client, set_require_auth and generate_token"
else
	tap_last "create_client, set_require_auth and generate_token" "$out" "tgtp_..."
fi
out=$(q -v tok="$token" <<<"SELECT tgt_profile.verify_token('pkg', :'tok');")
tap_last "verify_token accepts the new token" "$out" t
out=$(q -v tok="${token}x" <<<"SELECT tgt_profile.verify_token('pkg', :'tok');")
tap_last "verify_token refuses a changed token" "$out" f
out=$(q -v bearer="Bearer $token" <<<"SELECT status FROM tgt_profile.upsert_profile('pkg',
	'{\"tier\": \"gold\"}', pc_id => 'v1', \"authorization\" => :'bearer');")
tap_last "upsert_profile with the token creates a profile" "$out" created
out=$(q -v bearer="Bearer $token" <<<"SELECT tgt_profile.get_profile('pkg', 'v1',
	\"authorization\" => :'bearer')->'profile'->>'tier';")
tap_last "get_profile reads it back" "$out" gold
out=$(q <<<"SELECT tgt_profile.get_profile('pkg', 'v1');")
if [[ $out == *"requires authentication"* ]]; then
	tap_ok "get_profile without the token is refused"
else
	tap_fail "get_profile without the token is refused" "got: $out"
fi

# Every packaged version, and the update path from the oldest.
want=$(for f in src/tgt_profile--*.sql; do
	f=$(basename "$f" .sql)
	[[ $f == *--*--* ]] || echo "${f#tgt_profile--}"
done | { cat; echo "$EXTVERSION"; } | sort -uV | tr '\n' ' ' | sed 's/ $//')
out=$(q <<<"SELECT string_agg(version, ' ' ORDER BY version)
	FROM pg_available_extension_versions WHERE name = 'tgt_profile';")
tap_last "the packaged versions: $want" "$out" "$want"
out=$(q <<<"CREATE DATABASE pkg_update;
\\c pkg_update
CREATE EXTENSION tgt_profile VERSION '1.0' CASCADE;
ALTER EXTENSION tgt_profile UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'tgt_profile';")
tap_last "CREATE EXTENSION ... VERSION '1.0', then ALTER EXTENSION UPDATE reaches $EXTVERSION" "$out" "$EXTVERSION"

cluster_stop
if restore_system; then
	left=()
	for f in "${DEB_FILES[@]}"; do
		[[ -f $f && ! -f $BACKUP$f ]] && left+=("$f")
	done
	if ((${#left[@]} == 0)) && [[ -n $(missing_of "$PKG") ]]; then
		tap_ok "dpkg -r $PKG, and the files it replaced are back"
	else
		tap_fail "dpkg -r $PKG removes its files" "${left[@]}"
	fi
else
	tap_fail "dpkg -r $PKG, and the files it replaced are back"
	sed 's/^/#   /' "$WORK/dpkg-r.log"
fi

finish
