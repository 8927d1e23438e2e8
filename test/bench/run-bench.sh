#!/usr/bin/env bash
# `make bench`: build and install the extension, start one throwaway cluster
# and measure, side by side, the extension against what a user would write
# without it:
#
#   A. verify_token per call, in one statement of LOOP_N calls, against a
#      PL/pgSQL function doing the same check with pgcrypto's digest()
#      (best of 3 each): the same token every call (the one-entry memo
#      answers all but the first), two valid tokens alternating, distinct
#      unknown tokens with a valid checksum (hash + index lookup every call),
#      distinct tokens with a bad checksum (refused before the lookup).
#   B. pgbench -M prepared, 1 and 2 clients: verify_token and the PL/pgSQL
#      check against SELECT 1.
#   C. pgbench -M prepared, 1 and 2 clients, synchronous_commit on and off:
#      upsert_profile (require_auth on, valid Bearer token) against the bare
#      INSERT ... ON CONFLICT DO UPDATE on a table of the same shape.
#
# Prints one summary table at the end (results depend on the machine, so
# nothing is saved).  The cluster runs with fsync=on and full_page_writes=on
# (unlike the test clusters) so that synchronous_commit means something.
#
# pgbench figures: each variant runs BENCH_SECONDS in total, as SLICES runs
# interleaved with the variants it is compared to, so that other load on
# the machine (a shared CI box) hits all of them alike.  A ratio is the
# median of the per-slice ratios; TPS is over all slices.
#
# Environment: BENCH_SECONDS (15) per pgbench variant, SLICES (5), WARMUP_SECONDS (3),
# LOOP_N (100000) calls per statement in part A, PARTS ("A B C"),
# KEEP_TMP=1 (keep the cluster directory).  About 5 minutes with defaults.
set -u -o pipefail

# shellcheck source-path=SCRIPTDIR source=../tools/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tools/common.sh"
cd "$REPO" || exit 1

BENCH=$REPO/test/bench
BENCH_SECONDS=${BENCH_SECONDS:-15}
WARMUP_SECONDS=${WARMUP_SECONDS:-3}
LOOP_N=${LOOP_N:-100000}
SLICES=${SLICES:-5}
PARTS=${PARTS:-A B C}
NPROFILES=100000 # must match random(1, 100000) in upsert_*.pgbench
PGBENCH=$PG_BINDIR/pgbench
PSQL=$PG_BINDIR/psql

die() {
	log_error "$*"
	exit 1
}

part() { [[ " $PARTS " == *" $1 "* ]]; }

psql_q() {
	"$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

SUMMARY=()
# shellcheck disable=SC2059  # row FORMAT ARGS...: the format is ours
row() { SUMMARY+=("$(printf "$@")"); }

LOAD_START=$(cut -d ' ' -f 1-3 /proc/loadavg)
build_and_install || exit 1

log_info "== cluster"
cluster_start fsync=on full_page_writes=on synchronous_commit=on \
	shared_buffers=256MB max_wal_size=4GB checkpoint_timeout=30min \
	log_min_messages=warning log_checkpoints=off ||
	die "could not start the cluster"

log_info "== fixtures: $NPROFILES profiles in tgt_profile.profiles and bench_bare, $LOOP_N tokens"
psql_q -v N="$NPROFILES" -f "$BENCH/setup.sql" >/dev/null || die "setup.sql failed"

# Two valid tokens: tok1, then tok2 with a day of grace, so that tok1 stays
# valid; tok2 is the current one.  A token of another client checks our
# CRC-32C against the extension's.
TOK1=$(psql_q -c "SELECT token FROM tgt_profile.generate_token('c', '30 days')") || die "generate_token failed"
TOK2=$(psql_q -c "SELECT token FROM tgt_profile.generate_token('c', '30 days', '1 day')") || die "generate_token failed"
OTHER=$(psql_q -c "SELECT token FROM tgt_profile.generate_token('other')") || die "generate_token failed"
perl "$BENCH/tokens.pl" --check "$OTHER" ||
	die "tokens.pl does not compute the extension's checksum; part A's unknown tokens would be malformed"
[[ $(psql_q -c "SELECT tgt_profile.verify_token('c', '$TOK1') AND tgt_profile.verify_token('c', '$TOK2')
	AND public.plpgsql_verify('c', '$TOK1') AND public.plpgsql_verify('c', '$TOK2')
	AND NOT tgt_profile.verify_token('c', '$OTHER') AND NOT public.plpgsql_verify('c', '$OTHER')") == t ]] ||
	die "token fixtures are not as expected"
perl "$BENCH/tokens.pl" "$LOOP_N" |
	psql_q -c "COPY public.bench_tokens FROM STDIN" || die "loading tokens failed"
psql_q -c "SELECT tgt_profile.set_require_auth('c', true)" >/dev/null || die "set_require_auth failed"
psql_q -c "VACUUM (ANALYZE) tgt_profile.profiles, public.bench_bare, public.bench_tokens, tgt_profile.token_store" ||
	die "vacuum failed"

# ---------------------------------------------------------------------------
# A. per-call cost in one statement
# ---------------------------------------------------------------------------

# bench_once NAME QUERY EXPECTED_HITS: one run, in its own transaction;
# sets US (µs per call).
bench_once() {
	local name=$1 q=$2 expect=$3 out hits
	# (psql interpolates :'q' in a script, not in -c)
	out=$(echo "SELECT round(us_per_call::numeric, 4), hits FROM public.bench_once(:'q', :n)" |
		psql_q -F ' ' -v q="$q" -v n="$LOOP_N") ||
		die "part A query failed: $name"
	read -r US hits <<<"$out"
	[[ $hits == "$expect" ]] || die "part A, $name: $hits hits, expected $expect"
}

min() { perl -e 'my $m = shift; for (@ARGV) { $m = $_ if $_ < $m } print $m' "$@"; }

ratio() { perl -e 'printf "%.2f", $ARGV[1] > 0 ? $ARGV[0] / $ARGV[1] : 0' "$1" "$2"; }

if part A; then
	log_info "== A. verify_token per call ($LOOP_N calls in one statement, best of 3)"
	row '%s' "A. verify_token, $LOOP_N calls in one statement, best of 3 (µs per call)"
	row '   %-58s %10s %10s %8s  %s' "" "extension" "PL/pgSQL" "speedup" "(goal >= 20x)"
	# name | query with @F@ for the function | expected hits
	cases=(
		"same valid token every call (literal; memo)|SELECT count(*) FILTER (WHERE @F@('c', '$TOK2')) FROM generate_series(1, $LOOP_N)|$LOOP_N"
		"two valid tokens alternating (memo misses)|SELECT count(*) FILTER (WHERE @F@('c', CASE WHEN i % 2 = 0 THEN '$TOK1' ELSE '$TOK2' END)) FROM generate_series(1, $LOOP_N) i|$LOOP_N"
		"distinct unknown tokens, valid checksum (hash+lookup)|SELECT count(*) FILTER (WHERE @F@('c', unknown)) FROM public.bench_tokens|0"
		"distinct tokens, bad checksum (refused before lookup)|SELECT count(*) FILTER (WHERE @F@('c', malformed)) FROM public.bench_tokens|0"
	)
	for c in "${cases[@]}"; do
		IFS='|' read -r name q expect <<<"$c"
		ext_runs=() plp_runs=()
		for i in 1 2 3; do # alternating, so that a busy moment hits both
			bench_once "$name (extension)" "${q//@F@/tgt_profile.verify_token}" "$expect"
			ext_runs+=("$US")
			bench_once "$name (PL/pgSQL)" "${q//@F@/public.plpgsql_verify}" "$expect"
			plp_runs+=("$US")
		done
		ext=$(min "${ext_runs[@]}") plp=$(min "${plp_runs[@]}")
		log_info "   $name: extension $ext µs, PL/pgSQL $plp µs"
		row '   %-58s %10s %10s %7sx' "$name" "$ext" "$plp" "$(ratio "$plp" "$ext")"
	done
	# The loop itself, for scale.
	loop=()
	for i in 1 2 3; do
		bench_once "empty loop" "SELECT count(*) FILTER (WHERE i > 0) FROM generate_series(1, $LOOP_N) i" "$LOOP_N"
		loop+=("$US")
	done
	row '   %-58s %10s' "(the loop alone: count(*) over generate_series)" "$(min "${loop[@]}")"
	row ''
fi

# ---------------------------------------------------------------------------
# pgbench helpers
# ---------------------------------------------------------------------------

# The variants: a script and its variables (-D values are bound as
# parameters with -M prepared).
variant_args() {
	case $1 in
	select1) ARGS=(-f "$BENCH/select1.pgbench") ;;
	verify) ARGS=(-f "$BENCH/verify.pgbench" -D client=c -D "token=$TOK2") ;;
	verify_plpgsql) ARGS=(-f "$BENCH/verify_plpgsql.pgbench" -D client=c -D "token=$TOK2") ;;
	upsert_ext) ARGS=(-f "$BENCH/upsert_ext.pgbench" -D "auth=Bearer $TOK2") ;;
	upsert_bare) ARGS=(-f "$BENCH/upsert_bare.pgbench") ;;
	*) die "unknown variant $1" ;;
	esac
}

# pgbench_run VARIANT CLIENTS SECONDS: sets TX (transactions) and SECS
# (seconds they took, without connection time).
pgbench_run() {
	local v=$1 clients=$2 secs=$3 out tps failed
	variant_args "$v"
	out=$("$PGBENCH" -n -M prepared -c "$clients" -j "$clients" -T "$secs" "${ARGS[@]}" 2>&1)
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' <<<"$out")
	TX=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
	if [[ -z $tps || -z $TX ]] || grep -q 'ERROR\|FATAL\|aborted' <<<"$out" || [[ ${failed:-0} != 0 ]]; then
		printf '%s\n' "$out" >&2
		die "pgbench $v failed"
	fi
	SECS=$(perl -e 'printf "%.6f", $ARGV[0] / $ARGV[1]' "$TX" "$tps")
}

# pgbench_group CLIENTS VARIANT...: BENCH_SECONDS per variant, as SLICES
# slices interleaved in rotating order, so that a burst of other load on
# the machine hits every variant alike.  Sets TPS[VARIANT] (all its
# transactions over all its seconds) and SLICE_TPS[VARIANT] (one figure per
# slice, for slice_ratio).
declare -A TPS SLICE_TPS
pgbench_group() {
	local clients=$1 slice n i k v
	shift
	local -a vs=("$@")
	local -A tx secs
	n=${#vs[@]}
	slice=$(((BENCH_SECONDS + SLICES - 1) / SLICES))
	for v in "${vs[@]}"; do tx[$v]=0 secs[$v]=0 SLICE_TPS[$v]=""; done
	for ((i = 0; i < SLICES; i++)); do
		for ((k = 0; k < n; k++)); do
			v=${vs[(i + k) % n]}
			pgbench_run "$v" "$clients" "$slice"
			tx[$v]=$((tx[$v] + TX))
			secs[$v]=$(perl -e 'print $ARGV[0] + $ARGV[1]' "${secs[$v]}" "$SECS")
			SLICE_TPS[$v]+="$(perl -e 'print $ARGV[0] / $ARGV[1]' "$TX" "$SECS") "
		done
	done
	for v in "${vs[@]}"; do
		TPS[$v]=$(perl -e 'printf "%.0f", $ARGV[0] / $ARGV[1]' "${tx[$v]}" "${secs[$v]}")
	done
}

# slice_ratio VARIANT BASE: the median over the slices of TPS(VARIANT) /
# TPS(BASE) in the same slice (robust against a burst in one slice).
slice_ratio() {
	perl -e 'my @a = split " ", $ARGV[0]; my @b = split " ", $ARGV[1];
		my @r = sort { $a <=> $b } map { $a[$_] / $b[$_] } 0 .. $#a;
		printf "%.2f", @r % 2 ? $r[$#r / 2] : ($r[@r / 2 - 1] + $r[@r / 2]) / 2' \
		"${SLICE_TPS[$1]}" "${SLICE_TPS[$2]}"
}

warm_up() {
	local v
	for v in "$@"; do pgbench_run "$v" 2 "$WARMUP_SECONDS"; done
}

# ---------------------------------------------------------------------------
# B. verify_token through pgbench
# ---------------------------------------------------------------------------
if part B; then
	log_info "== B. pgbench -M prepared, ${BENCH_SECONDS}s per variant ($SLICES interleaved slices): verify_token vs SELECT 1"
	warm_up select1 verify verify_plpgsql
	row '%s' "B. pgbench -M prepared, ${BENCH_SECONDS}s per variant in $SLICES interleaved slices (TPS; ratio to SELECT 1, median of slices)"
	row '   %-58s %10s %10s  %s' "" "TPS" "ratio" "(goal >= 0.95x for verify_token)"
	for clients in 1 2; do
		pgbench_group "$clients" select1 verify verify_plpgsql
		base=${TPS[select1]} ext=${TPS[verify]} plp=${TPS[verify_plpgsql]}
		log_info "   $clients client(s): SELECT 1 $base, verify_token $ext, PL/pgSQL $plp TPS"
		row '   %-58s %10s %10s' "$clients client(s): SELECT 1" "$base" "1.00x"
		row '   %-58s %10s %9sx' "$clients client(s): SELECT tgt_profile.verify_token(\$1, \$2)" "$ext" "$(slice_ratio verify select1)"
		row '   %-58s %10s %9sx' "$clients client(s): SELECT plpgsql_verify(\$1, \$2)" "$plp" "$(slice_ratio verify_plpgsql select1)"
	done
	row ''
fi

# ---------------------------------------------------------------------------
# C. upsert_profile through pgbench
# ---------------------------------------------------------------------------
set_sync() {
	psql_q -c "ALTER SYSTEM SET synchronous_commit = $1" -c "SELECT pg_reload_conf()" >/dev/null ||
		die "could not set synchronous_commit"
}

if part C; then
	log_info "== C. pgbench -M prepared, ${BENCH_SECONDS}s per variant ($SLICES interleaved slices): upsert_profile vs bare upsert"
	row '%s' "C. upsert of a random visitor (1..$NPROFILES, all existing) with a random value (1..10^9): every call updates"
	row '   %-58s %10s %10s %8s  %s' "pgbench -M prepared, ${BENCH_SECONDS}s/variant, $SLICES slices (TPS)" "extension" "bare SQL" "ratio" "(goal >= 0.9x)"
	set_sync off
	warm_up upsert_bare upsert_ext
	for sync in on off; do
		set_sync "$sync"
		for clients in 1 2; do
			psql_q -c "VACUUM tgt_profile.profiles, public.bench_bare" -c "CHECKPOINT" || die "vacuum failed"
			pgbench_group "$clients" upsert_ext upsert_bare
			ext=${TPS[upsert_ext]} bare=${TPS[upsert_bare]}
			log_info "   synchronous_commit=$sync, $clients client(s): upsert_profile $ext, bare $bare TPS"
			row '   %-58s %10s %10s %7sx' "synchronous_commit = $sync, $clients client(s)" "$ext" "$bare" "$(slice_ratio upsert_ext upsert_bare)"
		done
	done
	# Sanity: the extension really updated profiles.
	changed=$(psql_q -c "SELECT count(*) FROM tgt_profile.profiles WHERE client = 'c' AND attributes->>'attr' <> '0'")
	row '   %-58s %10s' "(profiles changed by upsert_profile during the run)" "$changed"
	row ''
fi

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
ver=$(psql_q -c "SHOW server_version")
echo
echo "== summary: PostgreSQL $ver, $(nproc) CPU(s) ${cpu:+($cpu)}, fsync=on"
echo "   load average at start: $LOAD_START, at end: $(cut -d ' ' -f 1-3 /proc/loadavg)"
printf '%s\n' "${SUMMARY[@]}"
