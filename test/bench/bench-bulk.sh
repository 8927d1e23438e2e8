#!/usr/bin/env bash
# bench-bulk.sh: bulk_update against COPY and against the plain SQL an expert
# would write, side by side, on one throwaway cluster, in one run.
#
# test/bench/bulk/gen.py writes one batch of N (500,000) records with random
# Adobe-like tntIds and 5 string attributes of 10-20 characters, as an Adobe
# batch file (CSV), NDJSON and a JSON array, plus the same rows in COPY text
# format.  Two starting states of the target table:
#
#   new   the table is empty: every record creates a profile;
#   half  the table holds every other key of the batch (N/2 rows, other
#         values of the same attributes): half the records update.
#
# Methods, each timed alone on a fresh connection, with its target table
# reset (TRUNCATE, preload, VACUUM ANALYZE, CHECKPOINT) just before:
#
#   COPY            COPY ... FROM a server-side file of the same rows into a
#                   table of the same shape as tgt_profile.profiles (the
#                   practical limit; for "half" that table starts with N/2
#                   other keys, the same size, since COPY cannot merge)
#   bulk_update     tgt_profile.bulk_update('c', batch) into tgt_profile.profiles
#   plain SQL       into a table of the same shape, each ending in
#                     INSERT ... ON CONFLICT (client, tnt_id) DO UPDATE SET
#                     attributes = p.attributes || EXCLUDED.attributes,
#                     updated_at = ..., last_seen_at = ...
#                   (the timestamps too, as bulk_update sets them):
#     csv    COPY staging      COPY the CSV into a TEMP table (text columns),
#                              then INSERT ... SELECT jsonb_build_object(...)
#     ndjson split by line     string_to_table(batch, E'\n'), each line ::jsonb
#     ndjson COPY staging      COPY the lines into a TEMP table (jsonb column)
#     json   array elements    jsonb_array_elements(batch::jsonb)
#   The plain SQL validates nothing and keeps no batch record; bulk_update
#   does both (and counts created/updated/unchanged).
#
# The batch reaches bulk_update and the split/array SQL from an unlogged
# table (bench.batch, filled by pg_read_file before any timing), never as a
# literal; the file read is not timed.  The COPY methods read their
# server-side file inside the timing, as COPY does.  Seconds are wall clock
# around the statement(s) as seen by the client, commit included.
#
# Peak private memory: test/bench/bulk/memsample.pl samples RssAnon of the
# measured backend every SAMPLE_MS (20) ms from just before to just after
# the timed statement(s); "peak MB" is the highest sample minus the first
# (the fresh, idle backend).  RssAnon counts the backend's own memory
# (palloc/malloc), not shared_buffers (see memsample.pl for why not VmHWM or
# Private_Dirty).  A peak shorter than the interval can be missed.
#
# WAL MB is pg_current_wal_lsn() after minus before, in the measuring
# session.  Last, "unchanged": the batch is applied once more in each format
# to a table that already holds it; WAL bytes, the growth of n_tup_upd and
# n_tup_ins of tgt_profile.profiles, and (pg_walinspect) the number of WAL
# records that touch tgt_profile.profiles or its indexes are shown.
#
# Server settings: PostgreSQL's defaults (shared_buffers 128MB, work_mem
# 4MB, max_wal_size 1GB, ...) with fsync = on, synchronous_commit = on and
# full_page_writes = on (cluster_start's test settings turned back to the
# defaults); autovacuum stays on (each reset ends with VACUUM ANALYZE, so it
# has nothing to do during a run).  Only tgt_profile.max_batch_bytes is set
# (200MB, per session): the batches are 59-93 MB.
#
# Usage: bash test/bench/bench-bulk.sh    (as root or as the postgres user)
# Environment:
#   N (500000)        records in the batch
#   SAMPLE_MS (20)    memory sampling interval
#   ROUNDS (1)        run the new and half measurements that many times and
#                     report each method's best time (and highest peak); on
#                     a shared machine 2 rounds damp other people's load
#   BUILD=1           build and install the extension first (otherwise the
#                     installed one is used: a private copy of its library,
#                     taken at the start, see "fixtures")
#   BENCH_TMP         base of the files (~500 MB) and the cluster
#                     (/var/tmp/tgt_profile-benchbulk)
#   KEEP_TMP=1        keep them
#   PERF_DIR=DIR      `perf record -g` the backend during each timed
#                     bulk_update (new, half) into DIR/benchbulk.FMT.STATE.perf
#                     (perf inflates those times: for profiles, not figures)
# About 4-7 minutes a round on 2 cores.
set -u -o pipefail

# shellcheck source-path=SCRIPTDIR source=../tools/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tools/common.sh"
cd "$REPO" || exit 1

BENCH_TMP=${BENCH_TMP:-/var/tmp/tgt_profile-benchbulk}
# shellcheck source-path=SCRIPTDIR source=bulk/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bulk/lib.sh"
ROUNDS=${ROUNDS:-1}
T_START=$SECONDS

bench_install
bench_files
bench_cluster

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

# fingerprint TABLE: count and md5 of every (tnt_id, attributes), for the
# check that every method leaves the same profiles.
fingerprint() {
	psql_q -c "SELECT count(*) || ' ' || md5(string_agg(tnt_id || ' ' || attributes::text, E'\n' ORDER BY tnt_id))
	             FROM $1" || die "fingerprint of $1 failed"
}

# ---------------------------------------------------------------------------
# the methods (sql_copy, sql_bulk, sql_plain: bulk/lib.sh)
# ---------------------------------------------------------------------------

FORMATS=(csv ndjson json)
declare -A PLAIN_METHODS=(
	[csv]="csv_staging csv_staging_ff"
	[ndjson]="ndjson_split ndjson_staging"
	[json]="json_elements"
)
declare -A PLAIN_LABEL=(
	[csv_staging]="plain: COPY staging"
	[csv_staging_ff]="plain: staging, same ff"
	[ndjson_split]="plain: split by line"
	[ndjson_staging]="plain: COPY staging"
	[json_elements]="plain: array elements"
)
declare -A FILE_OF=([csv]=batch.csv [ndjson]=batch.ndjson [json]=batch.json)

# results, keyed "method|format|state"
declare -A R_SECS R_PEAK R_WAL R_HOT
ROWS=() # keys in the order run
declare -A FPR # fingerprint of the first method per state

record() { # KEY: the best time of the rounds, the highest peak
	if [[ -z ${R_SECS[$1]:-} ]]; then
		R_SECS[$1]=$SECS R_PEAK[$1]=$PEAK_MB R_WAL[$1]=$WAL_BYTES
		R_HOT[$1]=$(perl -e 'print $ARGV[1] > 0 ? sprintf("%d%%", 100 * $ARGV[0] / $ARGV[1]) : ""' "$DHOT" "$DUPD")
		ROWS+=("$1")
		return
	fi
	perl -e 'exit(!($ARGV[0] < $ARGV[1]))' "$SECS" "${R_SECS[$1]}" && R_SECS[$1]=$SECS R_WAL[$1]=$WAL_BYTES
	perl -e 'exit(!($ARGV[0] > $ARGV[1]))' "$PEAK_MB" "${R_PEAK[$1]}" && R_PEAK[$1]=$PEAK_MB
	return 0
}

check_fp() { # KEY TABLE STATE
	local fp
	fp=$(fingerprint "$2")
	if [[ -z ${FPR[$3]:-} ]]; then
		FPR[$3]=$fp
	elif [[ ${FPR[$3]} != "$fp" ]]; then
		log_error "$1 left other profiles than the first method of '$3': $fp vs ${FPR[$3]}"
		MISMATCH=1
	fi
}
MISMATCH=0

# ---------------------------------------------------------------------------
# the runs
# ---------------------------------------------------------------------------

LOAD_START=$(cut -d ' ' -f 1-3 /proc/loadavg)
for round in $(seq 1 "$ROUNDS"); do
	((ROUNDS > 1)) && log_info "== round $round of $ROUNDS"
	for state in new half; do
		pre="" pre_other=""
		if [[ $state == half ]]; then pre=preload.copy pre_other=preload_other.copy; fi

		reset_target bench.copy_target "$pre_other"
		measure bench.copy_target "$(sql_copy)"
		log_info "   $state  COPY                        $(printf '%7.2f s' "$SECS")"
		record "COPY|copy|$state"

		for fmt in "${FORMATS[@]}"; do
			reset_target tgt_profile.profiles "$pre"
			PERF_OUT=""
			[[ -n ${PERF_DIR:-} ]] && PERF_OUT=$PERF_DIR/benchbulk.$fmt.$state.perf
			measure tgt_profile.profiles "$(sql_bulk "$fmt")"
			PERF_OUT=""
			log_info "   $state  bulk_update $(printf '%-6s' "$fmt")          $(printf '%7.2f s' "$SECS")  ($INFO) HOT $DHOT of $DUPD updates"
			[[ $INFO == complete* ]] || die "bulk_update $fmt: $INFO"
			record "bulk_update|$fmt|$state"
			check_fp "bulk_update $fmt $state" "tgt_profile.profiles WHERE client = 'c'" "$state"

			for m in ${PLAIN_METHODS[$fmt]}; do
				# *_ff: the same SQL into a table with profiles' fillfactor
				target=bench.plain_target sql=$(sql_plain "${m%_ff}")
				if [[ $m == *_ff ]]; then
					target=bench.plain_target_ff
					sql=${sql//bench.plain_target AS p/bench.plain_target_ff AS p}
				fi
				reset_target "$target" "$pre"
				measure "$target" "$sql"
				log_info "   $state  $(printf '%-27s' "$m") $(printf '%7.2f s' "$SECS")  ($INFO) HOT $DHOT of $DUPD updates"
				record "$m|$fmt|$state"
				check_fp "$m $state" "$target" "$state"
			done
		done
	done
done

# Unchanged: the profiles hold the batch (the last run above applied it);
# send it again in each format.
log_info "== unchanged re-sends"
psql_q -c "VACUUM (ANALYZE) tgt_profile.profiles" -c "CHECKPOINT" >/dev/null || die "vacuum failed"
declare -A U_INFO U_DUPD U_DINS U_WALREC
for fmt in "${FORMATS[@]}"; do
	measure tgt_profile.profiles "$(sql_bulk "$fmt")"
	record "bulk_update|$fmt|unchanged"
	U_INFO[$fmt]=$INFO U_DUPD[$fmt]=$DUPD U_DINS[$fmt]=$DINS
	U_WALREC[$fmt]="n/a"
	if ((HAVE_WALINSPECT)); then
		# WAL records with a block of the profiles table or one of its indexes
		U_WALREC[$fmt]=$(psql_q -c "
			SELECT count(*) FROM pg_get_wal_records_info('$LSN0', '$LSN1') w
			 WHERE EXISTS (SELECT 1 FROM pg_class c
			                WHERE c.oid IN (SELECT 'tgt_profile.profiles'::regclass
			                                UNION ALL SELECT indexrelid FROM pg_index
			                                 WHERE indrelid = 'tgt_profile.profiles'::regclass)
			                  AND w.block_ref LIKE '%/' || pg_relation_filenode(c.oid) || ' %')") ||
			U_WALREC[$fmt]="?"
	fi
	log_info "   unchanged bulk_update $(printf '%-6s' "$fmt")   $(printf '%7.2f s' "$SECS")  ($INFO) WAL $WAL_BYTES B, n_tup_upd +$DUPD, n_tup_ins +$DINS, WAL records on profiles: ${U_WALREC[$fmt]}"
done

# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------

best_plain() { # FORMAT STATE -> seconds of the fastest plain method
	local b="" m s
	for m in ${PLAIN_METHODS[$1]}; do
		s=${R_SECS[$m|$1|$2]}
		if [[ -z $b ]] || le "$s" "$b"; then b=$s; fi
	done
	printf '%s' "$b"
}

label_of() { # METHOD
	case $1 in
	COPY) echo "COPY (practical limit)" ;;
	bulk_update) echo "bulk_update" ;;
	*) echo "${PLAIN_LABEL[$1]}" ;;
	esac
}

echo
echo "bulk_update, $N records, 5 string attributes of 10-20 characters; $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "x COPY: seconds / COPY's seconds for the same state (lower is better).  vs best plain: the"
echo "fastest plain SQL of that format's seconds / this method's seconds (higher is better)."
echo "peak MB: peak private (RssAnon) growth of the backend.  half = N/2 of the keys exist."
printf '%-24s %-7s %-9s %8s %8s %12s %8s %8s %8s %5s\n' method format state seconds "x COPY" "vs best plain" "peak MB" "batch MB" "WAL MB" HOT
for key in "${ROWS[@]}"; do
	IFS='|' read -r m fmt state <<<"$key"
	s=${R_SECS[$key]}
	cstate=$state
	[[ $state == unchanged ]] && cstate=half
	xc=$(ratio "$s" "${R_SECS[COPY|copy|$cstate]}")
	vbp="" bmb=""
	if [[ $fmt != copy ]]; then
		[[ $state != unchanged ]] && vbp=$(ratio "$(best_plain "$fmt" "$state")" "$s")
		bmb=$(mb "${BYTES[${FILE_OF[$fmt]}]}")
	else
		bmb=$(mb "${BYTES[batch.copy]}")
	fi
	printf '%-24s %-7s %-9s %8.2f %8s %12s %8s %8s %8s %5s\n' "$(label_of "$m")" "$fmt" "$state" "$s" "$xc" \
		"$vbp" "${R_PEAK[$key]}" "$bmb" "$(mb "${R_WAL[$key]}")" "${R_HOT[$key]:-}"
done
echo "(unchanged: the batch sent again to profiles that hold it; x COPY is against COPY 'half')"

echo
echo "Goals:"
# CSV: <= 1.2 x COPY; the JSON formats, parsed by the reader's thread
# meanwhile: <= 1.1 x (issue 13)
for fmt in "${FORMATS[@]}"; do
	r=$(ratio "${R_SECS[bulk_update|$fmt|new]}" "${R_SECS[COPY|copy|new]}")
	lim=1.1
	[[ $fmt == csv ]] && lim=1.2
	le "$r" "$lim" && ok=1 || ok=0
	goal "$ok" "new,  $fmt: bulk_update $r x COPY's time (goal <= $lim)"
done
for fmt in "${FORMATS[@]}"; do
	r=$(ratio "$(best_plain "$fmt" half)" "${R_SECS[bulk_update|$fmt|half]}")
	le 1.25 "$r" && ok=1 || ok=0
	goal "$ok" "half, $fmt: bulk_update ${r}x faster than the best plain SQL for $fmt (goal >= 1.25)"
done
for fmt in "${FORMATS[@]}"; do
	r=$(ratio "${R_SECS[csv_staging|csv|half]}" "${R_SECS[bulk_update|$fmt|half]}")
	le 1.25 "$r" && ok=1 || ok=0
	goal "$ok" "half, $fmt: bulk_update ${r}x faster than the COPY-staging method (csv) (goal >= 1.25)"
done
for fmt in ndjson json; do
	for state in new half; do
		r=$(ratio "$(best_plain "$fmt" "$state")" "${R_SECS[bulk_update|$fmt|$state]}")
		le 1.5 "$r" && ok=1 || ok=0
		goal "$ok" "$(printf '%-5s' "$state,") $fmt: bulk_update ${r}x faster than the best plain SQL for $fmt (goal >= 1.5)"
	done
done
for key in "${ROWS[@]}"; do
	IFS='|' read -r m fmt state <<<"$key"
	[[ $m == bulk_update ]] || continue
	bmb=$(mb "${BYTES[${FILE_OF[$fmt]}]}")
	le "${R_PEAK[$key]}" "$(perl -e 'print 2 * $ARGV[0]' "$bmb")" && ok=1 || ok=0
	goal "$ok" "$(printf '%-10s' "$state,") $fmt: peak private memory ${R_PEAK[$key]} MB for a $bmb MB batch (goal <= 2x = $(perl -e 'printf "%.1f", 2 * $ARGV[0]' "$bmb") MB)"
done
for fmt in "${FORMATS[@]}"; do
	w=${R_WAL[bulk_update|$fmt|unchanged]}
	ok=0
	[[ ${U_DUPD[$fmt]} == 0 && ${U_DINS[$fmt]} == 0 && ${U_WALREC[$fmt]} =~ ^(0|n/a)$ &&
		${U_INFO[$fmt]} == *"unchanged=$N "* ]] && ok=1
	goal "$ok" "unchanged, $fmt: ${U_INFO[$fmt]#complete }; n_tup_upd +${U_DUPD[$fmt]}, n_tup_ins +${U_DINS[$fmt]}; WAL $w bytes in all, ${U_WALREC[$fmt]} WAL records on profiles or its indexes (the rest: the batches row, commit)"
done
((MISMATCH)) && goal 0 "every method left the same profiles (see the errors above)"

echo
echo "Settings: PostgreSQL $PG_MAJOR defaults${BENCH_SETTINGS:+ but $BENCH_SETTINGS}, fsync=on, synchronous_commit=on, full_page_writes=on;"
echo "tgt_profile.max_batch_bytes=200MB per session.  Library: $LIB as of the start (md5 $LIB_MD5...)."
echo "Storage parameters: tgt_profile.profiles $(psql_q -c "SELECT COALESCE(array_to_string(reloptions, ','), 'none') FROM pg_class WHERE oid = 'tgt_profile.profiles'::regclass"),"
echo "bench.plain_target none (LIKE copies none), bench.plain_target_ff as profiles.  HOT: the share of updates that were HOT."
echo "Rounds: $ROUNDS.  Load average (1/5/15 min) at the start: $LOAD_START; at the end: $(cut -d ' ' -f 1-3 /proc/loadavg)."
echo "Total run time: $((SECONDS - T_START)) s."
((MISSED == 0))
