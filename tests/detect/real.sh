#!/bin/sh
# A real program of tests/override run again with the detection mode on: the
# script (python.sh, git.sh, ...) compares the program's output under
# tinymalloc with a plain run and fails on any "tinymalloc: " line, so a
# false report, an abort or a changed result fails it. TINYMALLOC_DETECT=1 is
# exported, then lib.sh is sourced exactly as the script sources it, and a
# heap overflow probe run through lib.sh's own `preload` must be reported:
# proof that the variable survives lib.sh's scrub of the environment and
# reaches the preloaded library, so the script really runs in the mode.
# Arguments: PROBE (detect_overflow) SCRIPT ARGS... Needs TM_OVERRIDE_LIB.
set -eu
PROBE=$1
SCRIPT=$2
shift 2
export TINYMALLOC_DETECT=1
. "$(dirname "$SCRIPT")/lib.sh"
[ "${TINYMALLOC_DETECT:-}" = 1 ] || fail "lib.sh unset TINYMALLOC_DETECT"
status=0
preload "$PROBE" --case small-24-by-1 >"$WORK/probe.out" 2>"$WORK/probe.err" || status=$?
grep -Eq '^tinymalloc: heap overflow of block 0x[0-9a-f]+ \(24 bytes requested; byte 24 overwritten, found by free\)$' \
  "$WORK/probe.err" || fail "probe: the mode is not on in lib.sh's environment (status $status): $(cat "$WORK/probe.err")"
[ "$status" -eq 134 ] || fail "probe: exit status $status, expected 134 (SIGABRT)"
echo "probe: the mode is on in this environment ($(grep '^tinymalloc: heap' "$WORK/probe.err"))"
sh "$SCRIPT" "$@" || fail "$(basename "$SCRIPT") failed with TINYMALLOC_DETECT=1"
echo "PASS: $(basename "$SCRIPT") with TINYMALLOC_DETECT=1"
