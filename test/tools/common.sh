# shellcheck shell=bash
# Helpers shared by demo.sh and run-tests.sh.  Source it, do not run it:
#
#   . "$(dirname "$0")/common.sh"
#
# Sourcing sets REPO (the repository root), PG_MAJOR (pg_major.sh says how
# it is found), PG_BINDIR, PG_CONFIG and a trap
# that, on EXIT, INT and TERM (also after a failure), stops every cluster
# started with cluster_start and removes every directory made with
# make_tmpdir.  Set KEEP_TMP=1 to keep the directories for a post-mortem.
#
# Functions:
#   as_postgres CMD...     run CMD as the postgres user (as is when not root)
#   make_tmpdir VAR [NAME] set VAR to a new temporary directory, owned by
#                          postgres, removed on exit
#   build_and_install      make -j2 && make install, quiet unless it fails
#   cluster_start [DIR] [--tcp] [NAME=VALUE...]
#                          initdb + start a throwaway cluster in DIR (default:
#                          a new make_tmpdir), on a private unix socket
#                          directory and a free port; --tcp also listens on
#                          127.0.0.1; NAME=VALUE lines go to postgresql.conf.
#                          Exports PGHOST PGPORT PGUSER=postgres
#                          PGDATABASE=postgres, and CLUSTER_DIR, CLUSTER_DATA,
#                          CLUSTER_LOG (the server log).
#   cluster_stop           stop the cluster started last and remove its
#                          directory (when cluster_start made it)
#   run_logged LOG CMD...  run CMD, output to LOG (and to stdout, live, when
#                          SHOW=1); returns its status.  Unlike a plain
#                          foreground command, an INT/TERM received meanwhile
#                          stops CMD and cleans up at once.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
# shellcheck source-path=SCRIPTDIR source=pg_major.sh
. "$(dirname "${BASH_SOURCE[0]}")/pg_major.sh"
pg_major_detect || exit 1
# The server installation: TGT_PG_BINDIR (a relocated copy), else the one
# of a PG_CONFIG given, else Debian's /usr/lib/postgresql/PG_MAJOR.
if [[ -n ${TGT_PG_BINDIR:-} ]]; then
	PG_BINDIR=$TGT_PG_BINDIR
elif [[ -n ${PG_CONFIG:-} ]]; then
	PG_BINDIR=$("$PG_CONFIG" --bindir 2>/dev/null) || PG_BINDIR=$(dirname "$PG_CONFIG")
else
	PG_BINDIR=/usr/lib/postgresql/$PG_MAJOR/bin
fi
PG_CONFIG=$PG_BINDIR/pg_config
export REPO PG_MAJOR PG_BINDIR PG_CONFIG

# Settings of the caller's environment that would redirect our clients.
unset PGSERVICE PGSERVICEFILE PGHOSTADDR PGOPTIONS PGDATA PGPASSWORD \
	PGPASSFILE PGSSLMODE PGTARGETSESSIONATTRS PGREQUIRESSL 2>/dev/null || true

_TMPDIRS=()        # removed on exit, in reverse order
_CLUSTER_DIRS=()   # clusters started and not yet stopped (their base dirs)
_CLUSTER_OWNED=()  # 1 when cluster_start made the base dir

log_info() { printf '%s\n' "$*"; }
log_error() { printf 'ERROR: %s\n' "$*" >&2; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# The prefix that runs a command as the postgres user (initdb and postgres
# refuse root); empty when not root.
AS_POSTGRES=()
if is_root; then
	if command -v runuser >/dev/null 2>&1; then
		AS_POSTGRES=(runuser -u postgres --)
	else
		# shellcheck disable=SC2016  # expanded by the inner shell
		AS_POSTGRES=(su postgres -s /bin/sh -c '"$0" "$@"' --)
	fi
fi

as_postgres() {
	"${AS_POSTGRES[@]}" "$@"
}

# make_tmpdir VAR [NAME]: not $(...), the registration must happen in this
# shell, not in a subshell.
make_tmpdir() {
	local _d
	_d=$(mktemp -d "${TMPDIR:-/tmp}/tgt_profile-${2:-tmp}.XXXXXX") || return 1
	_TMPDIRS+=("$_d")
	if is_root; then
		chown postgres: "$_d" || return 1
		# A TMPDIR that postgres cannot reach (under /root, say): use /tmp.
		if ! as_postgres test -w "$_d" 2>/dev/null; then
			_d=$(mktemp -d "/tmp/tgt_profile-${2:-tmp}.XXXXXX") || return 1
			_TMPDIRS+=("$_d")
			chown postgres: "$_d" || return 1
		fi
	fi
	printf -v "$1" '%s' "$_d"
}

# Build and install the extension; the compiler output is shown only when
# something fails.
build_and_install() {
	local log rc=0
	log=$(mktemp "${TMPDIR:-/tmp}/tgt_profile-build.XXXXXX.log") || return 1
	_TMPDIRS+=("$log")
	log_info "== build: make PG_CONFIG=$PG_CONFIG -j2 && make install"
	if ! make -C "$REPO" --no-print-directory PG_CONFIG="$PG_CONFIG" -j2 \
		</dev/null >"$log" 2>&1; then
		rc=1
		cat "$log" >&2
		log_error "build failed (make PG_CONFIG=$PG_CONFIG in $REPO); compiler output above"
	elif ! make -C "$REPO" --no-print-directory PG_CONFIG="$PG_CONFIG" install \
		</dev/null >>"$log" 2>&1; then
		rc=1
		cat "$log" >&2
		log_error "make install failed; output above"
		is_root || log_error "(make install needs write access to $("$PG_CONFIG" --pkglibdir): run as root)"
	else
		log_info "   built and installed into $("$PG_CONFIG" --pkglibdir)"
	fi
	rm -f "$log"
	return "$rc"
}

# snapshot_library DIR: copy the installed library to DIR/lib, taken when
# no one is writing it (two copies a second apart agree), so that a
# benchmark measures one build however others reinstall meanwhile; sets LIB
# (the installed one) and LIB_MD5 (of the copy).
snapshot_library() {
	local try
	LIB=$("$PG_CONFIG" --pkglibdir)/tgt_profile.so
	mkdir -p "$1/lib" || return 1
	for try in $(seq 1 30); do
		cp "$LIB" "$1/lib/tgt_profile.so" && sleep 1 && cmp -s "$LIB" "$1/lib/tgt_profile.so" && break
		if ((try == 30)); then
			log_error "$LIB keeps changing"
			return 1
		fi
	done
	# shellcheck disable=SC2034 # for the sourcing benchmark
	LIB_MD5=$(md5sum <"$1/lib/tgt_profile.so" | cut -c 1-12)
}

# A free TCP port on the loopback interface (the kernel picks it).
_free_port() {
	local p
	p=$(perl -MIO::Socket::INET -e \
		'my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
		 LocalPort => 0, Proto => "tcp") or exit 1; print $s->sockport' 2>/dev/null)
	if [[ -z $p ]]; then
		p=$((20000 + RANDOM % 40000))
	fi
	printf '%s\n' "$p"
}

cluster_start() {
	local dir="" tcp=0 owned=0 arg
	local -a conf=()
	for arg in "$@"; do
		case $arg in
		--tcp) tcp=1 ;;
		*=*) conf+=("$arg") ;;
		*) dir=$arg ;;
		esac
	done
	if is_root && ! id postgres >/dev/null 2>&1; then
		log_error "no 'postgres' user to run the cluster as (run test/tools/deps.sh)"
		return 1
	fi
	if [[ -z $dir ]]; then
		make_tmpdir dir cluster || return 1
		owned=1
	else
		mkdir -p "$dir" || return 1
		if is_root; then chown postgres: "$dir" || return 1; fi
	fi
	local data=$dir/data sock=$dir/sock log=$dir/server.log
	as_postgres mkdir -p "$sock" || return 1

	if ! as_postgres "$PG_BINDIR/initdb" -D "$data" -U postgres --auth=trust \
		--encoding=UTF8 --locale=C --no-sync </dev/null >"$dir/initdb.log" 2>&1; then
		cat "$dir/initdb.log" >&2
		log_error "initdb failed in $data"
		return 1
	fi

	local listen="''" attempt port
	((tcp)) && listen="'127.0.0.1'"
	for attempt in 1 2 3 4 5; do
		((attempt > 1)) && log_info "   port taken, retrying ($attempt)"
		port=$(_free_port)
		{
			echo "# added by test/tools/common.sh cluster_start"
			echo "listen_addresses = $listen"
			echo "port = $port"
			echo "unix_socket_directories = '$sock'"
			echo "fsync = off"
			echo "synchronous_commit = off"
			echo "full_page_writes = off"
			echo "max_prepared_transactions = 10"
			printf '%s\n' "${conf[@]}"
		} >"$data/postgresql.auto.conf.tgt"
		# postgresql.conf: the last occurrence wins, so re-appending is fine.
		cat "$data/postgresql.auto.conf.tgt" >>"$data/postgresql.conf"
		rm -f "$data/postgresql.auto.conf.tgt"
		_CLUSTER_DIRS+=("$dir")
		_CLUSTER_OWNED+=("$owned")
		if as_postgres "$PG_BINDIR/pg_ctl" -D "$data" -l "$log" -w -t 60 \
			start </dev/null >"$dir/pg_ctl.log" 2>&1; then
			export PGHOST=$sock PGPORT=$port PGUSER=postgres PGDATABASE=postgres
			export CLUSTER_DIR=$dir CLUSTER_DATA=$data CLUSTER_LOG=$log
			return 0
		fi
		unset '_CLUSTER_DIRS[-1]' '_CLUSTER_OWNED[-1]'
		_pg_kill "$data"
		# Retry only when the port was taken meanwhile.
		grep -q "Address already in use\|could not create any TCP/IP sockets" \
			"$log" 2>/dev/null || break
	done
	cat "$dir/pg_ctl.log" "$log" >&2 2>/dev/null
	log_error "could not start postgres in $data"
	return 1
}

# Last resort when pg_ctl stop failed: kill the postmaster we started.
_pg_kill() {
	local data=$1 pid
	[[ -r $data/postmaster.pid ]] || return 0
	pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null)
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	kill -QUIT "$pid" 2>/dev/null || return 0
	local i
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	sleep 0.2
}

# Stop every server still running from a data directory under DIR (TAP
# nodes left behind by an interrupted prove, for instance).
stop_servers_under() {
	local dir=$1 pidfile
	[[ -d $dir ]] || return 0
	while IFS= read -r pidfile; do
		as_postgres "$PG_BINDIR/pg_ctl" -D "$(dirname "$pidfile")" -m immediate \
			-w -t 30 stop </dev/null >/dev/null 2>&1 ||
			_pg_kill "$(dirname "$pidfile")"
	done < <(find "$dir" -maxdepth 6 -name postmaster.pid -type f 2>/dev/null)
}

_cluster_stop_dir() {
	local dir=$1 owned=$2 data=$1/data
	if [[ -f $data/postmaster.pid ]]; then
		as_postgres "$PG_BINDIR/pg_ctl" -D "$data" -m fast -w -t 30 stop \
			</dev/null >/dev/null 2>&1 ||
			as_postgres "$PG_BINDIR/pg_ctl" -D "$data" -m immediate -w -t 30 stop \
				</dev/null >/dev/null 2>&1 ||
			_pg_kill "$data"
	fi
	if [[ $owned == 1 && ${KEEP_TMP:-0} != 1 ]]; then
		rm -rf "$dir"
	fi
}

cluster_stop() {
	local n=${#_CLUSTER_DIRS[@]}
	((n > 0)) || return 0
	_cluster_stop_dir "${_CLUSTER_DIRS[n - 1]}" "${_CLUSTER_OWNED[n - 1]}"
	unset '_CLUSTER_DIRS[n-1]' '_CLUSTER_OWNED[n-1]'
	unset PGHOST PGPORT PGUSER PGDATABASE CLUSTER_DIR CLUSTER_DATA CLUSTER_LOG
	return 0
}

# A command in the background, waited for, so that a signal interrupts the
# wait at once (bash defers traps until a foreground command ends, and
# ignores an INT that a foreground child such as psql handled itself).
_CHILD=""
_TAIL=""
run_logged() {
	local log=$1 rc
	shift
	: >"$log"
	# Its own process group (setsid execs in place here: a background job of
	# a non-interactive shell is no group leader), so that an interruption
	# can stop it together with its children.
	setsid "$@" </dev/null >"$log" 2>&1 &
	_CHILD=$!
	if [[ ${SHOW:-0} == 1 ]]; then
		tail -n +1 -s 0.2 -f --pid="$_CHILD" "$log" &
		_TAIL=$!
	fi
	wait "$_CHILD"
	rc=$?
	_CHILD=""
	if [[ -n $_TAIL ]]; then
		wait "$_TAIL"
		_TAIL=""
	fi
	return "$rc"
}

_kill_child() {
	local pid=$_CHILD i
	[[ -n $pid ]] || return 0
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
	[[ -n $_TAIL ]] && kill -TERM "$_TAIL" 2>/dev/null
	_CHILD=""
	_TAIL=""
}

_cleanup_done=0
_cleanup() {
	((_cleanup_done)) && return 0
	_cleanup_done=1
	while ((${#_CLUSTER_DIRS[@]} > 0)); do
		cluster_stop
	done
	if [[ ${KEEP_TMP:-0} == 1 ]]; then
		local d
		for d in "${_TMPDIRS[@]}"; do
			stop_servers_under "$d"
			[[ -e $d ]] && log_info "KEEP_TMP=1: kept $d"
		done
		return 0
	fi
	local i
	for ((i = ${#_TMPDIRS[@]} - 1; i >= 0; i--)); do
		stop_servers_under "${_TMPDIRS[i]}"
		rm -rf "${_TMPDIRS[i]}"
	done
	_TMPDIRS=()
}

_on_signal() {
	local sig=$1 code=$2
	trap - INT TERM
	echo "interrupted (SIG$sig): stopping test clusters" >&2
	_kill_child
	_cleanup
	trap - EXIT
	exit "$code"
}

trap '_cleanup' EXIT
trap '_on_signal INT 130' INT
trap '_on_signal TERM 143' TERM
