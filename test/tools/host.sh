# shellcheck shell=bash
# Helpers about this machine shared by deps.sh, package-test.sh and
# majors.sh (which run before, or without, common.sh).  Source it:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/host.sh"
#
#   missing_of PKG...        print the names among PKG... that are not fully
#                            installed (dpkg); unknown names count as missing
#   copy_source_tree REPO DEST
#                            DEST (emptied first) gets the source tree of
#                            REPO: git's tracked and untracked files that
#                            are not ignored, so no build products; without
#                            git, everything but .git and the build products

missing_of() {
	local installed p
	# Unknown names make dpkg-query complain and exit 1: they count as missing.
	installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null |
		awk '$2 == "ii" { print $1 }')
	for p in "$@"; do
		grep -qxF -- "$p" <<<"$installed" || printf '%s\n' "$p"
	done
}

copy_source_tree() {
	local repo=$1 dest=$2
	rm -rf --one-file-system "$dest" && mkdir -p "$dest" || return 1
	if command -v git >/dev/null 2>&1 &&
		git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git -C "$repo" ls-files -z -co --exclude-standard |
			tar -C "$repo" --null --ignore-failed-read -T - -cf - 2>/dev/null |
			tar -C "$dest" -xf -
	else
		tar -C "$repo" --exclude=./.git --exclude='*.o' --exclude='*.so' \
			--exclude='*.bc' --exclude='./tgt_profile--*.sql' \
			--exclude=./results --exclude=./tmp_check --exclude=./log \
			--exclude=./regression.diffs --exclude=./regression.out \
			--exclude=./test/isolation/output_iso --exclude=./test/fuzz/bin \
			--exclude=./.pg_version --exclude=./output_iso \
			--exclude=./.tmp -cf - . | tar -C "$dest" -xf -
	fi
}
