#!/usr/bin/env bash
# Build the libFuzzer targets of the batch readers with ASan and UBSan and
# run each for a bounded time on a copy of its seed corpus (the repository
# is not modified; new inputs the fuzzer finds are thrown away).
#
#   FUZZ_SECONDS   seconds per target (default 60)
#   CLANG          the compiler (default: clang, else the newest clang-NN)
#
# Prints one TAP line per target, `ok - fuzz <target> (<runs> runs)` or
# `not ok - fuzz <target>`, and exits non-zero when a target failed.  The
# input that made a target fail is kept under test/fuzz/bin/crashes/.
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BIN=$HERE/bin
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
TARGETS="fuzz_adobe fuzz_ndjson fuzz_json_array"

# Debian's `clang` (the default LLVM, with libclang-rt-dev), else the
# newest clang-NN found in PATH.
find_clang() {
	if command -v clang >/dev/null 2>&1; then
		echo clang
		return
	fi
	local d f
	local IFS=:
	for d in $PATH; do
		for f in "$d"/clang-[0-9]*; do
			[[ -x $f && $(basename "$f") =~ ^clang-[0-9]+$ ]] && basename "$f"
		done
	done | sort -t- -k2,2n -u | tail -n 1
}

CC=${CLANG:-$(find_clang)}

fail=0
if [[ -z $CC ]]; then
	for t in $TARGETS; do
		echo "not ok - fuzz $t"
	done
	echo "# clang not found (install clang and libclang-rt-dev, or run test/tools/deps.sh)"
	exit 1
fi

CFLAGS=(-std=gnu99 -g -O1 -fsanitize=fuzzer,address,undefined
	-fno-sanitize-recover=all -I"$REPO/src")
READERS=("$REPO/src/read_ahead.c" "$REPO/src/read_dispatch.c" "$REPO/src/read_common.c" "$REPO/src/read_adobe.c" "$REPO/src/read_json.c")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tgtp-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$BIN"

for t in $TARGETS; do
	log=$TMP/$t.log
	if ! "$CC" "${CFLAGS[@]}" -o "$BIN/$t" "$HERE/$t.c" "${READERS[@]}" \
		-ljansson -pthread >"$log" 2>&1; then
		echo "not ok - fuzz $t"
		echo "# build failed:"
		sed 's/^/#   /' "$log"
		fail=1
		continue
	fi

	corpus=$TMP/corpus-$t
	mkdir -p "$corpus" "$TMP/artifacts-$t"
	cp "$HERE/corpus/$t/"* "$corpus/" 2>/dev/null

	dict=()
	[[ -f $HERE/$t.dict ]] && dict=(-dict="$HERE/$t.dict")

	# -timeout flags an input that takes seconds: a sign of quadratic work
	rc=0
	(cd "$TMP" && "$BIN/$t" -max_total_time="$SECONDS_PER_TARGET" \
		-max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$TMP/artifacts-$t/" "${dict[@]}" "$corpus") \
		>"$log" 2>&1 || rc=$?

	runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
	if ((rc == 0)) && [[ -n $runs ]]; then
		echo "ok - fuzz $t ($runs runs)"
	else
		echo "not ok - fuzz $t"
		echo "# $t exited with status $rc; the end of its log:"
		tail -n 40 "$log" | sed 's/^/#   /'
		if compgen -G "$TMP/artifacts-$t/*" >/dev/null; then
			mkdir -p "$BIN/crashes"
			cp "$TMP/artifacts-$t/"* "$BIN/crashes/"
			echo "# failing input kept in $BIN/crashes/"
		fi
		fail=1
	fi
done

exit $fail
