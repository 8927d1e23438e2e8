#!/usr/bin/env bash
# `make test`: install missing Debian packages, build and install the
# extension, then run every test suite, each on its own throwaway cluster,
# continuing after a failing suite:
#
#   1. pg_regress       REGRESS of the Makefile (sql/, expected/)
#   2. isolation        ISOLATION of the Makefile (test/isolation/)
#   3. TAP              test/t/*.pl, as the postgres user, from a copy of test/
#   4. citus            test/citus/*.pl the same way, on a Citus cluster (a
#                       coordinator and two workers); Citus is installed from
#                       TGT_CITUS_DIR when missing, the suite skipped (0 passed,
#                       0 failed, with the reason) where it cannot be
#   5. unit             make -C test/unit check   (when test/unit/Makefile exists)
#   6. fuzz             bash test/fuzz/run.sh     (when it exists; FUZZ_SECONDS)
#   7. package          bash test/tools/package-test.sh: the Debian package
#                       built, installed into the system PostgreSQL, used
#                       and removed again (as root; skipped otherwise)
#   8. demo             bash test/tools/demo.sh (`make demo`), one test
#   9. majors           bash test/tools/majors.sh: the suites above again on
#                       each other PostgreSQL major Debian carries (15, 17,
#                       18), in Debian chroots (TGT_MAJORS; see majors.sh)
#
# The PostgreSQL major is this system's (or PG_MAJOR's, PG_CONFIG's,
# TGT_PG_BINDIR's: see pg_major.sh).
#
# The last line is always `N passed, N failed`, counting every individual
# test of every suite (a suite that could not run counts as one failure);
# the exit status is non-zero when anything failed.
#
# Environment: FUZZ_SECONDS (passed to the fuzz suite), TAP_TESTS="011 017" (only
# the TAP scripts whose names start so), KEEP_TMP=1 (keep the
# temporary directories), SUITES="regress isolation partitioned tap citus unit
# fuzz package demo majors" (a subset), TGT_MAJORS ("17 18", or none: the
# majors suite), TGT_CITUS_DIR (Citus's test files: install.sh and the
# tarballs; default ../shared/citus beside the repository).
set -u -o pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO" || exit 1

ALL_SUITES="regress isolation partitioned tap citus unit fuzz package demo majors"
SUITES=${SUITES:-$ALL_SUITES}
echo "== PostgreSQL $PG_MAJOR: $PG_CONFIG"
TOTAL_PASS=0
TOTAL_FAIL=0
SUMMARY=()

# Print the last lines of a file (all of it when short).
show_file() {
	local f=$1 max=${2:-400} n
	[[ -s $f ]] || return 0
	n=$(wc -l <"$f")
	echo "----- $f$( ((n > max)) && echo " (last $max of $n lines)") -----"
	tail -n "$max" "$f"
	echo "----- end of $(basename "$f") -----"
}

finish() {
	_cleanup
	echo
	echo "== summary"
	local line
	for line in "${SUMMARY[@]}"; do
		echo "   $line"
	done
	echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
	((TOTAL_FAIL == 0))
	exit $?
}

# suite_done NAME PASS FAIL [NOTE]
suite_done() {
	local name=$1 pass=$2 fail=$3 note=${4:-}
	TOTAL_PASS=$((TOTAL_PASS + pass))
	TOTAL_FAIL=$((TOTAL_FAIL + fail))
	local line
	line=$(printf '%-10s %s passed, %s failed%s' "$name" "$pass" "$fail" "${note:+ ($note)}")
	SUMMARY+=("$line")
	echo "-- $name: $pass passed, $fail failed${note:+ ($note)}"
}

# Top-level TAP result lines: `ok 3 - name`, `not ok 3`, `ok - name` (not
# indented subtest lines, nor the bare `ok` verdict that prove prints).
TAP_LINE='^(not )?ok( [0-9]+([[:space:]]|$)| - )'

# Count the TAP results of a log: sets TAP_OK and TAP_NOTOK.
# `not ok ... # TODO` is an expected failure and counts as passed.
count_tap() {
	local lines
	lines=$(grep -E "$TAP_LINE" "$1")
	TAP_OK=$(grep -cE '^ok|#[[:space:]]*TODO' <<<"$lines")
	TAP_NOTOK=$(grep -E '^not ok' <<<"$lines" | grep -cvE '#[[:space:]]*TODO')
}

# Sets PGR_OK / PGR_FAILED from pg_regress output (PG 15 format
# `test NAME ... ok  25 ms`, parallel `     NAME ... FAILED`; also the PG 16+
# TAP format `ok 1 - NAME`).
count_pg_regress() {
	local f=$1
	PGR_OK=$(grep -cE '^(test )?[[:space:]]*[^[:space:]]+[[:space:]]+\.\.\. (ok|failed \(ignored\))|^ok [0-9]+[[:space:]]+[-+]' "$f")
	PGR_FAILED=$(grep -cE '^(test )?[[:space:]]*[^[:space:]]+[[:space:]]+\.\.\. FAILED|^not ok [0-9]+' "$f")
}

# The REGRESS and ISOLATION lists (make print-tests) and their options.
read_makefile_lists() {
	local out
	if ! out=$(make -s --no-print-directory -C "$REPO" PG_CONFIG="$PG_CONFIG" \
		print-tests </dev/null 2>&1); then
		echo "$out" >&2
		log_error "make print-tests failed"
		return 1
	fi
	read -ra REGRESS_TESTS <<<"$(sed -n 's/^REGRESS=//p' <<<"$out")"
	read -ra ISOLATION_TESTS <<<"$(sed -n 's/^ISOLATION=//p' <<<"$out")"

	# The options as the Makefile defines them (PGXS appends --dbname, which
	# is given explicitly below).
	# shellcheck disable=SC2016  # $(...) is make syntax here
	local rule='tgt-print-opts: ; @echo "REGRESS_OPTS=$(REGRESS_OPTS)"; echo "ISOLATION_OPTS=$(ISOLATION_OPTS)"'
	local opts_regress="" opts_iso=""
	if out=$(make -s --no-print-directory -C "$REPO" PG_CONFIG="$PG_CONFIG" \
		--eval="$rule" tgt-print-opts </dev/null 2>/dev/null); then
		opts_regress=$(sed -n 's/^REGRESS_OPTS=//p' <<<"$out")
		opts_iso=$(sed -n 's/^ISOLATION_OPTS=//p' <<<"$out")
	else
		log_info "   (could not read REGRESS_OPTS from the Makefile; using the defaults)"
		opts_regress="--load-extension=pgcrypto --load-extension=tgt_profile"
		opts_iso=$opts_regress
	fi
	local o
	REGRESS_OPTS=()
	ISOLATION_OPTS=()
	for o in $opts_regress; do [[ $o == --dbname=* ]] || REGRESS_OPTS+=("$o"); done
	for o in $opts_iso; do [[ $o == --dbname=* ]] || ISOLATION_OPTS+=("$o"); done
}

# run_regress_suite NAME PROGRAM INPUTDIR OPTS_ARRAY_NAME TESTS_ARRAY_NAME
run_regress_suite() {
	local name=$1 prog=$2 inputdir=$3
	local -n opts_ref=$4 tests_ref=$5
	local ntests=${#tests_ref[@]}
	echo
	echo "== $name: $ntests test(s) with $(basename "$prog") on a temporary cluster"
	if ((ntests == 0)); then
		suite_done "$name" 0 0 "no tests listed"
		return
	fi
	if [[ ! -x $prog ]]; then
		log_error "$prog not found (install postgresql-server-dev-$PG_MAJOR, or run test/tools/deps.sh)"
		suite_done "$name" 0 1 "could not run"
		return
	fi
	# CLUSTER_CONF: extra postgresql.conf settings for a variant of the suite
	# shellcheck disable=SC2086  # word splitting of name=value pairs is wanted
	if ! cluster_start ${CLUSTER_CONF:-}; then
		suite_done "$name" 0 1 "could not start a cluster"
		return
	fi
	local out
	make_tmpdir out "$name"
	local -a cmd=("$prog"
		--host="$PGHOST" --port="$PGPORT" --user=postgres
		--inputdir="$inputdir" --outputdir="$out"
		--bindir="$PG_BINDIR" --dbname=contrib_regression
		"${opts_ref[@]}" "${tests_ref[@]}")
	local rc=0
	SHOW=1 run_logged "$out/pg_regress.log" "${cmd[@]}" || rc=$?
	count_pg_regress "$out/pg_regress.log"
	local pass=$PGR_OK fail=$PGR_FAILED note=""
	if ((pass + fail < ntests)); then
		note="$((ntests - pass - fail)) did not run"
		fail=$((ntests - pass))
	fi
	if ((rc != 0 && fail == 0)); then
		fail=1
		note="$(basename "$prog") exited with status $rc"
	fi
	if ((fail > 0)); then
		show_file "$out/regression.diffs" 1000
		if [[ ! -s $out/regression.diffs ]]; then
			show_file "$CLUSTER_LOG" 100
		fi
	fi
	cluster_stop
	suite_done "$name" "$pass" "$fail" "$note"
}

suite_regress() {
	run_regress_suite regress \
		"$PGXS_DIR/src/test/regress/pg_regress" "$REPO" \
		REGRESS_OPTS REGRESS_TESTS
}

suite_isolation() {
	run_regress_suite isolation \
		"$PGXS_DIR/src/test/isolation/pg_isolation_regress" "$REPO/test/isolation" \
		ISOLATION_OPTS ISOLATION_TESTS
}

# The same regression, isolation and TAP tests against an install whose profiles
# table is hash-partitioned by client (tgt_profile.profile_partitions); where
# the catalog differs, expected/NAME_1.out holds the partitioned output.
suite_partitioned() {
	CLUSTER_CONF="tgt_profile.profile_partitions=4" run_regress_suite partitioned-regress \
		"$PGXS_DIR/src/test/regress/pg_regress" "$REPO" \
		REGRESS_OPTS REGRESS_TESTS
	CLUSTER_CONF="tgt_profile.profile_partitions=4" run_regress_suite partitioned-isolation \
		"$PGXS_DIR/src/test/isolation/pg_isolation_regress" "$REPO/test/isolation" \
		ISOLATION_OPTS ISOLATION_TESTS
	suite_tap partitioned-tap "tgt_profile.profile_partitions = 4"
}

# TAP: PostgreSQL::Test::Cluster runs initdb itself, which refuses root, so
# the scripts run as postgres from a copy of test/ that postgres owns (the
# clone may be under /root).  The environment is the one of PGXS's
# prove_installcheck; the working directory is the copy of test/.
# suite_tap [NAME [CONF [DIR]]]: CONF, a postgresql.conf line, reaches every
# node the scripts make through PostgreSQL::Test::Cluster's TEMP_CONFIG; DIR,
# the directory of the scripts under test/ (default t; TAP_TESTS filters
# test/t only).
suite_tap() {
	local suite=${1:-tap} conf=${2:-} sub=${3:-t}
	echo
	local -a scripts
	shopt -s nullglob
	if [[ -n ${TAP_TESTS:-} && $sub == t ]]; then
		local t
		for t in $TAP_TESTS; do scripts+=("$REPO"/test/t/"$t"*.pl); done
	else
		scripts=("$REPO"/test/"$sub"/*.pl)
	fi
	shopt -u nullglob
	echo "== $suite: ${#scripts[@]} script(s) in test/$sub, run as postgres${conf:+ (with $conf)}"
	if ((${#scripts[@]} == 0)); then
		suite_done "$suite" 0 0 "no test/$sub/*.pl"
		return
	fi
	if is_root && ! id postgres >/dev/null 2>&1; then
		log_error "no 'postgres' user (run test/tools/deps.sh)"
		suite_done "$suite" 0 1 "could not run"
		return
	fi
	local tap
	make_tmpdir tap "$suite"
	local -a extra=()
	if [[ -n $conf ]]; then
		printf '%s\n' "$conf" >"$tap/temp.conf"
		extra=(TEMP_CONFIG="$tap/temp.conf")
	fi
	if ! cp -a "$REPO/test" "$tap/test" || ! mkdir -p "$tap/tmp" ||
		{ is_root && ! chown -R postgres: "$tap"; }; then
		suite_done "$suite" 0 1 "could not copy test/ to $tap"
		return
	fi
	local perldir=$PGXS_DIR/src/test/perl
	local pass=0 fail=0 s name log rc
	for s in "${scripts[@]}"; do
		name=$(basename "$s" .pl)
		log=$tap/prove-$name.log
		rc=0
		run_logged "$log" env --chdir="$tap/test" "${AS_POSTGRES[@]}" env \
			PATH="$PG_BINDIR:$PATH" HOME="$tap" TMPDIR="$tap/tmp" \
			TESTDIR="$tap/test" PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress" \
			PG_CONFIG="$PG_CONFIG" "${extra[@]}" \
			prove -v -I "$perldir" -I . "$sub/$name.pl" || rc=$?
		count_tap "$log"
		local died=0
		if ((rc != 0)) && { ((TAP_NOTOK == 0)) ||
			grep -qE 'test returned 255|Parse errors:' "$log"; }; then
			died=1
		fi
		pass=$((pass + TAP_OK))
		fail=$((fail + TAP_NOTOK + died))
		printf '   %s/%s.pl: %d ok, %d not ok%s\n' "$sub" "$name" "$TAP_OK" "$TAP_NOTOK" \
			"$( ((died)) && echo "; the script died or broke its plan: 1 more failure")"
		if ((rc != 0 || TAP_NOTOK > 0)); then
			show_file "$log" 400
			local l
			for l in "$tap/test/tmp_check/log/regress_log_$name" \
				"$tap/test/tmp_check/log/${name}"_*.log; do
				show_file "$l" 300
			done
		fi
	done
	stop_servers_under "$tap" # nodes a failing script left running
	suite_done "$suite" "$pass" "$fail"
}

# Citus: a test dependency that Debian does not ship.  TGT_CITUS_DIR holds
# its install.sh (prebuilt for PostgreSQL 15 on amd64, built from source for
# 15-18 otherwise, ../shared/citus/README.md).  Installed into the
# PostgreSQL under test when missing; where it cannot be, the suite is
# skipped, saying why, and counts nothing.
suite_citus() {
	echo
	local dir=${TGT_CITUS_DIR:-$REPO/../shared/citus}
	local libdir share major why=""
	libdir=$("$PG_CONFIG" --pkglibdir)
	share=$("$PG_CONFIG" --sharedir)
	major=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
	if [[ ! -f $dir/install.sh ]]; then
		why="no Citus test files (install.sh) in TGT_CITUS_DIR=$dir"
	elif [[ -f $libdir/citus.so && -f $share/extension/citus.control ]]; then
		echo "== citus: Citus found in $libdir"
	elif ! [[ $major =~ ^(15|16|17|18)$ ]]; then
		why="no Citus in $dir supports PostgreSQL $major"
	elif ! is_root; then
		why="Citus is not installed in $libdir, and installing it needs root"
	else
		echo "== citus: installing Citus for PostgreSQL $major: bash $dir/install.sh $PG_CONFIG"
		local d log rc=0
		make_tmpdir d citus-install
		log=$d/install.log
		run_logged "$log" bash "$dir/install.sh" "$PG_CONFIG" || rc=$?
		if ((rc != 0)); then
			show_file "$log" 60
			why="installing Citus failed (install.sh exited with status $rc; its output above)"
		elif [[ ! -f $libdir/citus.so || ! -f $share/extension/citus.control ]]; then
			show_file "$log" 60
			why="install.sh succeeded but $libdir/citus.so or citus.control is still missing"
		else
			sed 's/^/   /' "$log"
		fi
	fi
	if [[ -n $why ]]; then
		echo "== citus: skipped: $why"
		suite_done citus 0 0 "skipped: $why"
		return
	fi
	suite_tap citus "" citus
}

# run_tap_suite NAME LIST WHAT CMD...: run CMD, which prints TAP lines, and
# count them.  LIST=1 prints its result lines (and `# SKIP` notes: the
# first one becomes the suite's note); WHAT names CMD in the note when it
# fails without a `not ok`.  On failure, the log without its passing lines.
run_tap_suite() {
	local name=$1 list=$2 what=$3
	shift 3
	local dir log rc=0
	make_tmpdir dir "$name"
	log=$dir/$name.log
	run_logged "$log" "$@" || rc=$?
	count_tap "$log"
	local fail=$TAP_NOTOK note
	((list)) && grep -E "$TAP_LINE|^# SKIP" "$log" | sed 's/^/   /'
	note=$(sed -n 's/^# SKIP \(.*\)/skipped: \1/p' "$log" | head -n 1)
	if ((rc != 0 && fail == 0)); then
		fail=1
		note="$what exited with status $rc"
	fi
	if ((rc != 0 || TAP_NOTOK > 0)); then
		grep -vE '^ok( |$)' "$log" >"$log.failures"
		show_file "$log.failures" 400
	fi
	suite_done "$name" "$TAP_OK" "$fail" "$note"
}

suite_unit() {
	echo
	if [[ ! -f $REPO/test/unit/Makefile ]]; then
		echo "== unit: no test/unit/Makefile"
		suite_done unit 0 0 "no test/unit/Makefile"
		return
	fi
	echo "== unit: make -C test/unit check"
	# unit tests are many: their lines are not listed
	run_tap_suite unit 0 "make check" make -C "$REPO/test/unit" --no-print-directory \
		PG_CONFIG="$PG_CONFIG" check
}

# `make demo`, the README's other command, as one test: it must run to
# the end (in the majors' chroots too, so on each Debian release's fresh
# system).
suite_demo() {
	echo
	echo "== demo: bash test/tools/demo.sh (make demo)"
	local dir log rc=0
	make_tmpdir dir demo
	log=$dir/demo.log
	run_logged "$log" bash "$REPO/test/tools/demo.sh" || rc=$?
	if ((rc != 0)); then
		show_file "$log" 200
		suite_done demo 0 1 "make demo exited with status $rc"
		return
	fi
	suite_done demo 1 0
}

suite_fuzz() {
	echo
	if [[ ! -f $REPO/test/fuzz/run.sh ]]; then
		echo "== fuzz: no test/fuzz/run.sh"
		suite_done fuzz 0 0 "no test/fuzz/run.sh"
		return
	fi
	echo "== fuzz: bash test/fuzz/run.sh (FUZZ_SECONDS=${FUZZ_SECONDS:-default})"
	run_tap_suite fuzz 1 run.sh bash "$REPO/test/fuzz/run.sh"
}

# The package route (test/tools/package-test.sh prints TAP lines): builds
# postgresql-NN-tgt-profile from a copy of the source, installs it into the
# system PostgreSQL of this major, runs CREATE EXTENSION and a smoke test on
# a throwaway cluster, removes it and puts back what it replaced.
suite_package() {
	echo
	echo "== package: bash test/tools/package-test.sh (PostgreSQL $PG_MAJOR)"
	run_tap_suite package 1 package-test.sh bash "$REPO/test/tools/package-test.sh"
}

# The other suites of this run again on every other major Debian carries,
# each in a chroot of its Debian release (test/tools/majors.sh); one result
# per major, and the chroot's own summary lines shown under it.
suite_majors() {
	echo
	if [[ ${TGT_MAJORS:-} == none ]]; then
		echo "== majors: skipped (TGT_MAJORS=none)"
		suite_done majors 0 0 "skipped: TGT_MAJORS=none"
		return
	fi
	# Every suite of this run but this one (all of them when only this one).
	local s inner=""
	for s in $SUITES; do
		[[ $s == majors ]] || inner+="${inner:+ }$s"
	done
	if [[ -z $inner ]]; then
		for s in $ALL_SUITES; do
			[[ $s == majors ]] || inner+="${inner:+ }$s"
		done
	fi
	local dir rc=0
	make_tmpdir dir majors
	: >"$dir/results"
	SHOW=1 run_logged "$dir/majors.log" env MAJORS_RESULTS="$dir/results" \
		MAJORS_SUITES="$inner" \
		bash "$REPO/test/tools/majors.sh" || rc=$?
	local kind name pass fail note got=0
	while IFS=$'\t' read -r kind name pass fail note; do
		case $kind in
		RESULT)
			suite_done "$name" "$pass" "$fail" "$note"
			got=1
			;;
		DETAIL) SUMMARY+=("  [${name#majors-}] $pass") ;;
		esac
	done <"$dir/results"
	if ((!got)); then
		if ((rc == 0)); then
			suite_done majors 0 0 "no other major to test"
		else
			suite_done majors 0 1 "majors.sh exited with status $rc and no result"
		fi
	fi
}

# ---------------------------------------------------------------------------

echo "== deps: bash test/tools/deps.sh"
if ! bash "$REPO/test/tools/deps.sh" </dev/null; then
	suite_done deps 0 1 "missing Debian packages"
	finish
fi

if ! build_and_install; then
	suite_done build 0 1 "the extension does not build; no suite was run"
	finish
fi

PGXS_DIR=$("$PG_CONFIG" --pkglibdir)/pgxs
# Filled by read_makefile_lists, used through namerefs.
# shellcheck disable=SC2034
REGRESS_TESTS=() ISOLATION_TESTS=() REGRESS_OPTS=() ISOLATION_OPTS=()
if ! read_makefile_lists; then
	suite_done makefile 0 1 "make print-tests failed"
fi

for suite in $SUITES; do
	case $suite in
	regress) suite_regress ;;
	isolation) suite_isolation ;;
	partitioned) suite_partitioned ;;
	tap) suite_tap ;;
	citus) suite_citus ;;
	unit) suite_unit ;;
	fuzz) suite_fuzz ;;
	package) suite_package ;;
	demo) suite_demo ;;
	majors) suite_majors ;;
	*)
		log_error "unknown suite '$suite' in SUITES"
		suite_done "$suite" 0 1 "unknown suite"
		;;
	esac
done

finish
