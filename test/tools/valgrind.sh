#!/usr/bin/env bash
# `make valgrind`: the pg_regress suite (REGRESS of the Makefile, with the
# options run-tests.sh uses) against a throwaway server that runs under
# valgrind memcheck, then a scan of valgrind's logs:
#
#   - an error whose report (stack, or origin of an uninitialised value)
#     passes through tgt_profile.so is the extension's: printed in full, and
#     the exit status is 1;
#   - an error only in PostgreSQL or its libraries is counted and listed
#     as informational (not ours to fix, and not a failure);
#   - a regression diff is shown but is no failure here (timing under
#     valgrind differs; `make test` is the judge of the expected output);
#     a server crash or a suite that did not run is (exit status 2).
#
# Not part of `make test`: the suite runs some 20-50 times slower.
#
# What memcheck can and cannot see here.  Debian's postgres is not built with
# USE_VALGRIND, so memcheck knows palloc only by its malloc'd blocks (8 kB
# and more): it reports reads of uninitialised memory (also palloc'd memory
# never written), invalid reads and writes outside any malloc'd block
# (malloc'd memory of libjansson or OpenSSL, static buffers, overruns off
# the end of a block), bad system-call arguments and overlapping memcpy;
# it does not see a read after pfree, a write past the end of a palloc
# chunk inside its block, or palloc'd memory that is never freed.  (Those
# are the job of the memory-context checks of an assert-enabled build, and
# of the ASan fuzzers for the batch readers.)  Leak checking is off: a
# backend frees its memory contexts, not its malloc'd blocks, on exit.
#
# Environment: SKIP_BUILD=1 (test the installed extension as is; otherwise
# make && make install first, like run-tests.sh), KEEP_TMP=1 (keep the
# cluster, the pg_regress output and the valgrind logs), VALGRIND_OPTS
# (more valgrind options), REGRESS="a b" (a subset of the tests).
set -u -o pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO" || exit 1

START=$SECONDS
elapsed() {
	local s=$((SECONDS - START))
	printf '%dm%02ds' $((s / 60)) $((s % 60))
}
finish() {
	local rc=$1
	echo "== valgrind: done in $(elapsed) (exit status $rc)"
	_cleanup
	exit "$rc"
}

VALGRIND=$(command -v valgrind) || {
	log_error "valgrind not found: apt-get install valgrind (or make deps)"
	exit 2
}

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
	build_and_install || finish 2
fi
PGXS_DIR=$("$PG_CONFIG" --pkglibdir)/pgxs
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
SO=$PKGLIBDIR/tgt_profile.so
[[ -f $SO ]] || {
	log_error "$SO is not installed (make install)"
	finish 2
}

# The REGRESS list and REGRESS_OPTS, as run-tests.sh reads them.
out=$(make -s --no-print-directory -C "$REPO" PG_CONFIG="$PG_CONFIG" print-tests </dev/null 2>&1) || {
	echo "$out" >&2
	log_error "make print-tests failed"
	finish 2
}
read -ra TESTS <<<"${REGRESS:-$(sed -n 's/^REGRESS=//p' <<<"$out")}"
# shellcheck disable=SC2016  # $(...) is make syntax here
rule='tgt-print-opts: ; @echo "REGRESS_OPTS=$(REGRESS_OPTS)"'
opts=$(make -s --no-print-directory -C "$REPO" PG_CONFIG="$PG_CONFIG" --eval="$rule" \
	tgt-print-opts </dev/null 2>/dev/null | sed -n 's/^REGRESS_OPTS=//p') ||
	opts="--load-extension=pgcrypto --load-extension=tgt_profile"
OPTS=()
for o in $opts; do [[ $o == --dbname=* ]] || OPTS+=("$o"); done
((${#TESTS[@]} > 0)) || {
	log_error "no REGRESS tests listed"
	finish 2
}

# PostgreSQL's own suppressions (src/tools/valgrind.supp, not shipped by
# Debian) with additions for this build: test/tools/valgrind.supp.
SUPP=$REPO/test/tools/valgrind.supp

make_tmpdir DIR valgrind || finish 2
DATA=$DIR/data SOCK=$DIR/sock VGLOG=$DIR/vg LOG=$DIR/server.log
as_postgres mkdir -p "$SOCK" "$VGLOG" "$DIR/tmp" || finish 2
if ! cp "$SUPP" "$DIR/valgrind.supp"; then finish 2; fi

echo "== valgrind: ${#TESTS[@]} pg_regress test(s) against a server under valgrind memcheck"
echo "   $($VALGRIND --version), $("$PG_BINDIR/postgres" --version)"
if ! as_postgres "$PG_BINDIR/initdb" -D "$DATA" -U postgres --auth=trust \
	--encoding=UTF8 --locale=C --no-sync </dev/null >"$DIR/initdb.log" 2>&1; then
	cat "$DIR/initdb.log" >&2
	finish 2
fi
PORT=$(_free_port)
cat >>"$DATA/postgresql.conf" <<EOF
# added by test/tools/valgrind.sh (the settings of common.sh cluster_start,
# and what keeps a server under valgrind small and quiet)
listen_addresses = ''
port = $PORT
unix_socket_directories = '$SOCK'
fsync = off
synchronous_commit = off
full_page_writes = off
max_prepared_transactions = 10
max_connections = 20
shared_buffers = 32MB
huge_pages = off
autovacuum = off
jit = off
max_parallel_workers_per_gather = 0
log_line_prefix = '%m [%p] '
EOF

# The postmaster runs under valgrind; its backends are forks of it and so
# are checked too (--trace-children for anything it execs).  Each process
# writes its own log.  --error-exitcode stays off: a backend that exits
# with it is taken for a crash and the postmaster would restart, failing
# every test that follows; the logs are the verdict.
cat >"$DIR/postgres-valgrind" <<EOF
#!/bin/sh
# valgrind's own temporary files: a directory the postgres user can write
TMPDIR="$DIR/tmp"
export TMPDIR
exec "$VALGRIND" --tool=memcheck --quiet --trace-children=yes \\
	--leak-check=no --track-origins=yes --read-var-info=no --num-callers=40 --fullpath-after= \\
	--error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END --gen-suppressions=all \\
	--suppressions="$DIR/valgrind.supp" ${VALGRIND_OPTS:-} \\
	--log-file="$VGLOG/valgrind.%p.log" "$PG_BINDIR/postgres" "\$@"
EOF
chmod 755 "$DIR/postgres-valgrind"
if is_root; then chown postgres: "$DIR/valgrind.supp" "$DIR/postgres-valgrind" || finish 2; fi

echo "   starting the server under valgrind (this takes a while)"
if ! as_postgres "$PG_BINDIR/pg_ctl" -D "$DATA" -p "$DIR/postgres-valgrind" -l "$LOG" \
	-w -t 600 start </dev/null >"$DIR/pg_ctl.log" 2>&1; then
	cat "$DIR/pg_ctl.log" "$LOG" >&2
	log_error "the server did not start under valgrind"
	finish 2
fi
echo "   started in $(elapsed)"

make_tmpdir OUT valgrind-regress || finish 2
rc=0
SHOW=1 run_logged "$OUT/pg_regress.log" "$PGXS_DIR/src/test/regress/pg_regress" \
	--host="$SOCK" --port="$PORT" --user=postgres \
	--inputdir="$REPO" --outputdir="$OUT" --bindir="$PG_BINDIR" \
	--dbname=contrib_regression "${OPTS[@]}" "${TESTS[@]}" || rc=$?
echo "   pg_regress finished in $(elapsed) (status $rc)"

# Stop the server: every backend's log is complete once it has exited.
as_postgres "$PG_BINDIR/pg_ctl" -D "$DATA" -m fast -w -t 600 stop </dev/null >/dev/null 2>&1 ||
	_pg_kill "$DATA"

status=0
ran=$(grep -cE '^(test )?[[:space:]]*[^[:space:]]+[[:space:]]+\.\.\. ' "$OUT/pg_regress.log")
failed=$(grep -cE '\.\.\. FAILED' "$OUT/pg_regress.log")
if ((ran == 0)); then
	log_error "pg_regress ran no test"
	tail -n 50 "$OUT/pg_regress.log" "$LOG" >&2
	status=2
elif ((failed > 0)); then
	echo "-- $failed test(s) differ from the expected output under valgrind (not counted" \
		"here; make test judges the output). The diffs:"
	tail -n 200 "$OUT/regression.diffs"
fi
if grep -E 'terminated by signal|terminated by exception|server process \(PID [0-9]+\) exited with exit code|terminating any other active server processes' "$LOG"; then
	log_error "a server process crashed under valgrind (server log lines above)"
	status=2
fi

# Split every log into its error reports (between the markers, with the
# suppression that follows) and sort them by whether tgt_profile.so is on
# the stack.  Report each distinct error once, with how often it occurred.
shopt -s nullglob
logs=("$VGLOG"/valgrind.*.log)
shopt -u nullglob
# Our frames: the module's name (no line information), or one of our source
# files (--fullpath-after= prints the path the module was compiled from).
OUR_SRC=$(for f in "$REPO"/src/*.c; do basename "$f" .c; done | paste -sd '|')
export OUR_SRC
summary=$(perl -e '
	my $ours_re = qr{tgt_profile\.so|/src/(?:$ENV{OUR_SRC})\.c:\d+};
	my (%ours, %theirs, %count, %first);
	for my $f (@ARGV) {
		open(my $fh, "<", $f) or next;
		my ($in, $block) = (0, "");
		while (my $l = <$fh>) {
			$l =~ s/^==\d+== ?//;
			if ($l =~ /^VALGRINDERROR-BEGIN/) { ($in, $block) = (1, ""); next; }
			if ($l =~ /^VALGRINDERROR-END/) {
				$in = 0;
				# the key: kind of error and the function names of the stack
				my @fns = $block =~ /^\s+(?:at|by) 0x[0-9A-F]+: (\S+)/mg;
				my ($kind) = $block =~ /^(\S[^\n]*)/;
				(my $k = $kind) =~ s/0x[0-9A-F]+|\d+ bytes?/N/g;
				my $key = join(" ", $k, @fns);
				$count{$key}++;
				$first{$key} //= "$f:\n$block";
				if ($block =~ $ours_re) { $ours{$key} = 1 }
				else { $theirs{$key} = 1 }
				next;
			}
			$block .= $l if $in;
		}
	}
	my ($no, $nt) = (0, 0);
	$no += $count{$_} for keys %ours;
	$nt += $count{$_} for keys %theirs;
	print "OURS $no ", scalar(keys %ours), "\n";
	print "THEIRS $nt ", scalar(keys %theirs), "\n";
	for my $key (sort keys %ours) {
		print "---- extension error ($count{$key} time(s)), first in $first{$key}\n";
	}
	for my $key (sort keys %theirs) {
		my ($kind) = $first{$key} =~ /:\n(\S[^\n]*)/;
		my @fns = ($first{$key} =~ /^\s+(?:at|by) 0x[0-9A-F]+: (\S+)/mg)[0 .. 5];
		print "     info: ${kind} ($count{$key}x) in ", join(" < ", grep { defined } @fns), "\n";
	}
' "${logs[@]}")
read -r _ n_ours k_ours <<<"$(sed -n 1p <<<"$summary")"
read -r _ n_theirs k_theirs <<<"$(sed -n 2p <<<"$summary")"

echo
echo "== valgrind: ${#logs[@]} process log(s) in $VGLOG"
if ((n_ours > 0)); then
	sed -n '/^---- extension error/,$p' <<<"$summary" | sed '/^     info: /d'
fi
if ((n_theirs > 0)); then
	echo "-- informational: $n_theirs error(s) ($k_theirs distinct) with no tgt_profile frame," \
		"in PostgreSQL or its libraries:"
	grep '^     info: ' <<<"$summary"
fi
echo "-- pg_regress: $ran test(s) run, $failed differing from the expected output"
if ((n_ours > 0)); then
	log_error "$n_ours valgrind error(s) ($k_ours distinct) in tgt_profile code (reports above)"
	status=1
else
	echo "-- no valgrind error in tgt_profile code"
fi
[[ ${KEEP_TMP:-0} == 1 ]] && echo "   (KEEP_TMP=1: logs kept in $DIR)"
finish "$status"
