#!/bin/sh
# Runs `misuse MODE` (a plain program) with tinymalloc preloaded and expects
# SIGABRT with exactly one tinymalloc report line matching PATTERN on stderr:
# the misuse went through the interposed free/realloc and was caught.
# TINYMALLOC_SHOW_ERRORS=0 in the environment expects the abort with no line.
# Arguments: MISUSE_PROGRAM MODE PATTERN.
. "$(dirname "$0")/lib.sh"
PROGRAM=$1
MODE=$2
PATTERN=$3
status=0
LD_PRELOAD="$TM_OVERRIDE_LIB" TINYMALLOC_SHOW_ERRORS=${EXPECT_SHOW_ERRORS:-1} "$PROGRAM" "$MODE" \
  >"$WORK/out" 2>"$WORK/err" || status=$?
cat "$WORK/err"
grep -q 'was not detected' "$WORK/out" && fail "misuse $MODE: not detected"
[ "$status" -eq 134 ] || fail "misuse $MODE: exit status $status, expected 134 (SIGABRT)"
lines=$(grep -c '^tinymalloc: ' "$WORK/err" || true)
if [ "${EXPECT_SHOW_ERRORS:-1}" = 0 ]; then
  [ "$lines" -eq 0 ] || fail "misuse $MODE: a report was written although TINYMALLOC_SHOW_ERRORS=0"
  echo "PASS: misuse $MODE aborted silently"
  exit 0
fi
[ "$lines" -eq 1 ] || fail "misuse $MODE: $lines tinymalloc report lines, expected 1"
grep -Eq "^tinymalloc: $PATTERN" "$WORK/err" || fail "misuse $MODE: report does not match '$PATTERN'"
echo "PASS: misuse $MODE reported and aborted"
