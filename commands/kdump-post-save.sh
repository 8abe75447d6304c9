#!/bin/sh
# Check the crash dumps kdump saved, after it saved them.
#
#   kdump-post-save.sh [CRASH_DIR] [-- triage options...]
#
# Runs `drgn-mmtools triage` on CRASH_DIR (default /var/crash): every dump
# gets DUMP.mmtools.json beside it, each dump's JSON line is appended to
# CRASH_DIR/mmtools-triage.jsonl, and one line per dump goes to the system
# log (tag drgn-mmtools).  Dumps already reported are skipped, so running it
# at every boot costs nothing once the dumps are checked.
#
# Exit status: triage's (0 clean, 1 findings, 2 a dump could not be checked);
# 127 when drgn-mmtools is not installed.  Wiring: README.md, "Checks after
# kdump".
set -u
dir=${1:-/var/crash}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
tool=${DRGN_MMTOOLS:-drgn-mmtools}
if ! command -v "$tool" >/dev/null 2>&1; then
    echo "kdump-post-save: $tool is not installed" >&2
    exit 127
fi
out=$(mktemp) || exit 2
"$tool" triage "$dir" --jobs 1 "$@" >"$out"
status=$?
cat "$out" >>"$dir/mmtools-triage.jsonl"
if command -v logger >/dev/null 2>&1; then
    while IFS= read -r line; do
        logger -t drgn-mmtools -- "$line"
    done <"$out"
fi
rm -f "$out"
exit $status
