#!/usr/bin/env bash
# The `majors` suite of `make test`: the other suites of the same run,
# again on each PostgreSQL major that Debian's archive carries and this
# machine does not test natively, each inside a minimal Debian chroot of
# the release that carries it:
#
#   15  bookworm (Debian 12)    17  trixie (Debian 13)    18  sid (unstable)
#
# (No Debian release carries 16.)  A chroot is built with
# `debootstrap --variant=minbase` from deb.debian.org into
# ${TGT_CHROOT_CACHE:-/var/cache/tgt_profile/chroots}/<codename> and kept
# there between runs; a stamp file marks a complete build, so an interrupted
# one is redone (delete the directory to rebuild it).  Each run copies the
# source tree (git's tracked and untracked-not-ignored files) to a fresh
# /srv/tgt_profile in the chroot and runs there, as root, in a clean
# environment:
#
#   bash test/tools/deps.sh && make test
#
# with SUITES=$MAJORS_SUITES and TGT_MAJORS=none (no recursion);
# FUZZ_SECONDS, TAP_TESTS and KEEP_TMP are passed on.  /proc, /sys, /dev,
# /dev/pts and /dev/shm (PostgreSQL's POSIX shared memory) are mounted in
# the chroot for the run and always unmounted afterwards, also when
# interrupted.  Needs root.
#
# Environment:
#   TGT_MAJORS      the majors to test: default, all three except this
#                   system's (PG_MAJOR as pg_major.sh finds it); `none`;
#                   or a list such as "17 18"
#   MAJORS_SUITES   the suites to run in each chroot (run-tests.sh passes
#                   its SUITES without `majors`)
#   MAJORS_RESULTS  a file to append the results to, one line per major
#                   `RESULT<TAB>majors-NN<TAB>passed<TAB>failed<TAB>note`
#                   then its chroot's summary lines
#                   `DETAIL<TAB>majors-NN<TAB>line` (run-tests.sh reads it)
#   TGT_CHROOT_CACHE, TGT_DEBIAN_MIRROR (default http://deb.debian.org/debian)
#
# Exit status non-zero when any major failed.
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)
# shellcheck source-path=SCRIPTDIR source=pg_major.sh
. "$HERE/pg_major.sh"
# shellcheck source-path=SCRIPTDIR source=host.sh
. "$HERE/host.sh"

CACHE=${TGT_CHROOT_CACHE:-/var/cache/tgt_profile/chroots}
MIRROR=${TGT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITES_INSIDE=${MAJORS_SUITES:-regress isolation partitioned tap unit fuzz package}
RESULTS=${MAJORS_RESULTS:-/dev/null}
STAMP=.tgt_profile-chroot-complete
# Where the source tree is copied inside a chroot.
SRC_IN=/srv/tgt_profile

# The Debian release that carries each major.
declare -A CODENAME=([15]=bookworm [17]=trixie [18]=sid)
ALL_MAJORS="15 17 18"

FAILED=0
CUR_CHROOT=""   # the chroot mounted now (unmounted on exit)
CHILD=""        # the run in the chroot (stopped on INT/TERM)
TAIL=""

log_error() { printf 'ERROR: %s\n' "$*" >&2; }

# result NAME PASS FAIL NOTE: one major's line for run-tests.sh.
result() {
	printf 'RESULT\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"
	(($3 > 0)) && FAILED=1
	echo "== majors: $1: $2 passed, $3 failed${4:+ ($4)}"
}

# 12m03s
fmt_secs() {
	printf '%dm%02ds' $(($1 / 60)) $(($1 % 60))
}

# The mount points at or under DIR, deepest first.
mounts_under() {
	local dir=$1
	awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' \
		/proc/self/mountinfo | sort -r
}

# The processes whose root directory is DIR (what runs in that chroot); one
# find, not a readlink per process: this runs within the 5 s an
# interruption leaves us.
chroot_pids() {
	find /proc/[0-9]*/root -maxdepth 0 -lname "$1" 2>/dev/null | cut -d/ -f3
}

# Stop whatever still runs in chroot DIR (a server an interrupted run left),
# TERM first, KILL after GRACE tenths of a second.
stop_chroot_processes() {
	local dir=$1 grace=${2:-20} i
	local -a pids
	mapfile -t pids < <(chroot_pids "$dir")
	((${#pids[@]} > 0)) || return 0
	kill -TERM "${pids[@]}" 2>/dev/null
	for ((i = 0; i < grace; i++)); do
		mapfile -t pids < <(chroot_pids "$dir")
		((${#pids[@]} > 0)) || return 0
		sleep 0.1
	done
	kill -KILL "${pids[@]}" 2>/dev/null
	sleep 0.2
}

# Unmount everything mounted under chroot DIR (lazily when busy); returns 1
# when something stays mounted.
umount_chroot() {
	local dir=$1 m
	while IFS= read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ||
			log_error "could not unmount $m"
	done < <(mounts_under "$dir")
	[[ -z $(mounts_under "$dir") ]]
}

# Mount what PostgreSQL and the tools need inside chroot DIR.
mount_chroot() {
	local dir=$1
	CUR_CHROOT=$dir
	mkdir -p "$dir/proc" "$dir/sys" "$dir/dev" || return 1
	mount -t proc proc "$dir/proc" || return 1
	mount -t sysfs sysfs "$dir/sys" || return 1
	mount --bind /dev "$dir/dev" || return 1
	if [[ -d /dev/pts ]]; then
		mount --bind /dev/pts "$dir/dev/pts" || return 1
	fi
	# A private tmpfs, not the host's: PostgreSQL's POSIX shared memory.
	mkdir -p "$dir/dev/shm" 2>/dev/null
	mount -t tmpfs -o mode=1777,nosuid,nodev tgt_shm "$dir/dev/shm" || return 1
	cp -L /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null
	[[ -s $dir/etc/hosts ]] || cp -L /etc/hosts "$dir/etc/hosts" 2>/dev/null
	prepare_apt "$dir"
	return 0
}

# apt in chroot DIR: sid's Release file is valid for a week only, so a
# machine whose clock runs ahead of the mirror (or a stale mirror) would
# refuse it ("Release file ... is expired"); signatures are still checked.
prepare_apt() {
	local dir=$1
	printf '%s\n' '// tgt_profile test chroot (test/tools/majors.sh)' \
		'Acquire::Check-Valid-Until "false";' \
		>"$dir/etc/apt/apt.conf.d/99tgt-profile-valid-until"
}

# Leave the chroot in use as it was found: nothing running, nothing mounted.
release_chroot() {
	[[ -n $CUR_CHROOT ]] || return 0
	stop_chroot_processes "$CUR_CHROOT" "${1:-20}"
	umount_chroot "$CUR_CHROOT"
	CUR_CHROOT=""
}

# shellcheck disable=SC2317  # called from the traps below
on_signal() {
	local sig=$1 code=$2
	trap - INT TERM
	echo "majors: interrupted (SIG$sig): stopping the run in the chroot, unmounting" >&2
	[[ -n $CHILD ]] && kill -TERM "$CHILD" 2>/dev/null
	# run-tests.sh KILLs us 5 s after its TERM: stay well within that.
	release_chroot 15
	[[ -n $TAIL ]] && kill -TERM "$TAIL" 2>/dev/null
	exit "$code"
}
trap 'release_chroot' EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

# Install debootstrap on the host when missing.
ensure_debootstrap() {
	command -v debootstrap >/dev/null 2>&1 && return 0
	echo "majors: installing debootstrap"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get -y -q install debootstrap </dev/null >/dev/null 2>&1; then
		apt-get -q update </dev/null >/dev/null 2>&1
		apt-get -y -q install debootstrap </dev/null >/dev/null 2>&1
	fi
	command -v debootstrap >/dev/null 2>&1 && return 0
	log_error "could not install debootstrap (apt-get install debootstrap)"
	return 1
}

# Build the chroot of CODENAME in DIR unless a complete one is there.
ensure_chroot() {
	local codename=$1 dir=$2 log t0=$SECONDS
	[[ -f $dir/$STAMP ]] && return 0
	ensure_debootstrap || return 1
	if [[ -e $dir ]]; then
		echo "majors: $dir is incomplete (no $STAMP): building it again"
		stop_chroot_processes "$dir"
		if ! umount_chroot "$dir"; then
			log_error "something is still mounted under $dir: not removing it; unmount it and run again"
			return 1
		fi
		rm -rf --one-file-system "$dir" || return 1
	fi
	mkdir -p "$CACHE" || return 1
	log=$CACHE/$codename.debootstrap.log
	echo "majors: debootstrap --variant=minbase $codename $dir $MIRROR (about a minute)"
	if ! debootstrap --variant=minbase "$codename" "$dir" "$MIRROR" \
		</dev/null >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		log_error "debootstrap $codename failed (log: $log)"
		return 1
	fi
	# Packages installed later must not start services in the chroot.
	printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d" &&
		chmod 755 "$dir/usr/sbin/policy-rc.d" || return 1
	date -u +%FT%TZ >"$dir/$STAMP" || return 1
	echo "majors: chroot $codename built in $(fmt_secs $((SECONDS - t0)))"
}


# run_major MAJOR: build or reuse its chroot, run the suites there, report.
run_major() {
	local major=$1 codename=${CODENAME[$1]:-} name=majors-$1
	local t0=$SECONDS
	if [[ -z $codename ]]; then
		result "$name" 0 1 "Debian's archive carries no PostgreSQL $major (bookworm 15, trixie 17, sid 18)"
		return
	fi
	local dir=$CACHE/$codename
	echo
	echo "== majors: PostgreSQL $major in a Debian $codename chroot ($dir)"
	mkdir -p "$CACHE" || {
		result "$name" 0 1 "cannot create $CACHE"
		return
	}
	# One run at a time per chroot (another make test on this machine).
	local lockfd
	exec {lockfd}>"$CACHE/$codename.lock"
	if ! flock -n "$lockfd"; then
		echo "majors: waiting for another run using $dir"
		if ! flock -w 5400 "$lockfd"; then
			exec {lockfd}>&-
			result "$name" 0 1 "$dir stayed in use by another run"
			return
		fi
	fi
	if ! ensure_chroot "$codename" "$dir"; then
		exec {lockfd}>&-
		result "$name" 0 1 "could not build the $codename chroot (see above)"
		return
	fi
	dir=$(cd "$dir" && pwd -P)
	# Leftovers of an interrupted run.
	stop_chroot_processes "$dir"
	umount_chroot "$dir"
	if ! copy_source_tree "$REPO" "$dir$SRC_IN"; then
		exec {lockfd}>&-
		result "$name" 0 1 "could not copy the source tree into $dir$SRC_IN"
		return
	fi
	if ! mount_chroot "$dir"; then
		release_chroot
		exec {lockfd}>&-
		result "$name" 0 1 "could not mount /proc, /sys, /dev in $dir"
		return
	fi

	local -a envs=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
		HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive
		SUITES="$SUITES_INSIDE" TGT_MAJORS=none)
	local v
	for v in FUZZ_SECONDS TAP_TESTS KEEP_TMP; do
		[[ -n ${!v:-} ]] && envs+=("$v=${!v}")
	done
	# Kept until the next run of this major, for a post-mortem.
	local log=$CACHE/$codename.last-run.log rc=0
	echo "   in the chroot: cd $SRC_IN && bash test/tools/deps.sh && make test (SUITES=\"$SUITES_INSIDE\")"
	# dpkg --configure -a: finishes an install an earlier run was
	# interrupted in (apt-get refuses to work until then).
	# shellcheck disable=SC2016  # expanded inside the chroot
	chroot "$dir" /usr/bin/env -i "${envs[@]}" /bin/bash -c \
		'cd "$0" || exit 1; dpkg --configure -a >/dev/null 2>&1
		bash test/tools/deps.sh </dev/null || exit 97; exec make test' \
		"$SRC_IN" </dev/null >"$log" 2>&1 {lockfd}>&- &
	CHILD=$!
	tail -n +1 -s 0.5 -f --pid="$CHILD" "$log" | sed -u "s/^/[$major] /" &
	TAIL=$!
	wait "$CHILD"
	rc=$?
	CHILD=""
	wait "$TAIL"
	TAIL=""
	release_chroot
	# The downloaded .deb files: the cache stays smaller (about 0.5 GB).
	chroot "$dir" apt-get clean </dev/null >/dev/null 2>&1
	exec {lockfd}>&-

	local took note last pass fail found
	took=$(fmt_secs $((SECONDS - t0)))
	last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
	found=$(sed -n 's/^== PostgreSQL \([0-9][0-9]*\):.*/\1/p' "$log" | head -n 1)
	if [[ -z $last ]]; then
		if ((rc == 97)); then
			note="test/tools/deps.sh failed in the $codename chroot"
		else
			note="the run in the $codename chroot ended without its summary (exit status $rc)"
		fi
		result "$name" 0 1 "$note; log: $log; $took"
		return
	fi
	pass=${last%% passed*}
	fail=${last#*passed, }
	fail=${fail%% failed}
	note="$codename, $took"
	if ((rc != 0 && fail == 0)); then
		fail=1
		note="make test exited with status $rc; $note"
	fi
	if [[ -n $found && $found != "$major" ]]; then
		fail=$((fail + 1))
		note="$codename now carries PostgreSQL $found, not $major: update CODENAME in test/tools/majors.sh; $note"
	fi
	result "$name" "$pass" "$fail" "$note"
	# The chroot's summary lines, for the host's summary.
	awk -v name="$name" '
		/^== summary$/ { on = 1; next }
		/^[0-9]+ passed, [0-9]+ failed$/ { on = 0 }
		on { sub(/^ +/, ""); printf "DETAIL\t%s\t%s\n", name, $0 }
	' "$log" >>"$RESULTS"
}

# ---------------------------------------------------------------------------

if [[ $(id -u) -ne 0 ]]; then
	log_error "the majors suite needs root (debootstrap, chroot, mount): run make test as root, or set TGT_MAJORS=none"
	result majors 0 1 "needs root"
	exit 1
fi

host_codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-unknown}")
pg_major_detect || {
	result majors 0 1 "cannot tell this system's PostgreSQL major"
	exit 1
}
case ${TGT_MAJORS:-} in
"")
	majors=""
	for m in $ALL_MAJORS; do
		[[ $m == "$PG_MAJOR" ]] || majors+="$m "
	done
	echo "== majors: this system (Debian $host_codename) tests PostgreSQL $PG_MAJOR natively; in chroots: ${majors:-none}"
	;;
none)
	echo "== majors: skipped (TGT_MAJORS=none)"
	exit 0
	;;
*)
	majors=$TGT_MAJORS
	echo "== majors: TGT_MAJORS=\"$majors\" (this system: Debian $host_codename, PostgreSQL $PG_MAJOR)"
	;;
esac

for m in $majors; do
	run_major "$m"
done
exit "$FAILED"
