#!/bin/sh
# The use the detection mode is for, end to end: AFL++ fuzzes afl_target.c (a
# heap off-by-one reachable from its input, built with afl-clang-fast or
# afl-gcc-fast and no sanitizer) with tinymalloc preloaded (AFL_PRELOAD).
#   1. With TINYMALLOC_DETECT=1 AFL++ must save a crash within FIND seconds
#      (default 150; TM_AFL_FIND_SECONDS; the campaign ends at the first
#      crash, which takes well under a second and a few dozen executions on
#      an idle machine: the bound only has to survive a loaded one), and the
#      crash must replay as tinymalloc's heap overflow report.
#   2. The same campaign without the mode must save no crash in BOUND
#      seconds (default 60; TM_AFL_SECONDS), although it ran more executions
#      than the first needed to find the crash and its corpus reaches the
#      off-by-one (its queue entries are replayed with the mode on: at least
#      one must be reported).
# Exits 77 (ctest: skipped) with a message when afl-fuzz or its compilers are
# missing. Arguments: TARGET_SOURCE OVERRIDE_LIBRARY.
set -eu
SOURCE=$1
LIB=$2
BOUND=${TM_AFL_SECONDS:-60}
FIND=${TM_AFL_FIND_SECONDS:-150}

command -v afl-fuzz >/dev/null 2>&1 || {
  echo "SKIP: afl-fuzz not found (Debian package afl++; ci/test.sh installs it)"
  exit 77
}
CC=""
for candidate in afl-clang-fast afl-gcc-fast; do
  if command -v "$candidate" >/dev/null 2>&1; then
    CC=$candidate
    break
  fi
done
[ -n "$CC" ] || {
  echo "SKIP: neither afl-clang-fast nor afl-gcc-fast found (Debian package afl++)"
  exit 77
}
[ -f "$LIB" ] || { echo "FAIL: $LIB does not exist"; exit 1; }

ulimit -c 0 2>/dev/null || true
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tm-detect-afl.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
unset LD_PRELOAD AFL_PRELOAD AFL_USE_ASAN AFL_USE_MSAN AFL_USE_UBSAN AFL_USE_CFISAN AFL_USE_LSAN AFL_USE_TSAN \
  TINYMALLOC_DETECT TINYMALLOC_SHOW_ERRORS TINYMALLOC_QUARANTINE_COUNT TINYMALLOC_QUARANTINE_BYTES 2>/dev/null || true

fail() {
  echo "FAIL: $*"
  exit 1
}

AFL_QUIET=1 "$CC" -O2 -g -o "$WORK/target" "$SOURCE" || fail "$CC could not build $SOURCE"
mkdir "$WORK/in"
printf 'S\005hello' >"$WORK/in/one"
printf 'S\003abcS\002xy' >"$WORK/in/two"
echo "target built with $CC (no sanitizer); seeds hold only 'S' records; bounds: ${FIND} s to find the crash with the mode, ${BOUND} s without it"

# The target and the preload behave as described before any fuzzing.
for seed in "$WORK"/in/*; do
  TINYMALLOC_DETECT=1 LD_PRELOAD="$LIB" "$WORK/target" <"$seed" 2>"$WORK/seed.err" ||
    fail "a seed fails under the mode: $(cat "$WORK/seed.err")"
done

# replay FILE DETECT: the target's exit status on FILE, preloaded; stderr in $WORK/replay.err.
replay() {
  status=0
  TINYMALLOC_DETECT=$2 LD_PRELOAD="$LIB" "$WORK/target" <"$1" >/dev/null 2>"$WORK/replay.err" || status=$?
  return 0
}
REPORT='^tinymalloc: heap overflow of block 0x[0-9a-f]+ \([0-9]+ bytes requested; byte [0-9]+ overwritten, found by free\)$'

# campaign NAME DETECT SECONDS: AFL++ for at most SECONDS; the first crash ends it.
campaign() {
  start=$(date +%s.%N)
  status=0
  env AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 \
    AFL_BENCH_UNTIL_CRASH=1 AFL_PRELOAD="$LIB" TINYMALLOC_DETECT="$2" \
    afl-fuzz -i "$WORK/in" -o "$WORK/$1" -V "$3" -- "$WORK/target" >"$WORK/$1.log" 2>&1 || status=$?
  elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  stats="$WORK/$1/default/fuzzer_stats"
  if [ "$status" -ne 0 ] || [ ! -f "$stats" ]; then
    tail -20 "$WORK/$1.log"
    fail "afl-fuzz ($1) exited with status $status"
  fi
  crashes=$(find "$WORK/$1/default/crashes" -name 'id:*' | wc -l)
  execs=$(awk '$1 == "execs_done" { print $3 }' "$stats")
  echo "$1: afl-fuzz ran ${elapsed} s, $execs executions, $crashes crashes saved"
}

campaign with-mode 1 "$FIND"
[ "$crashes" -ge 1 ] || fail "with TINYMALLOC_DETECT=1, AFL++ saved no crash in $FIND s"
execs_to_find=$execs
first=$(find "$WORK/with-mode/default/crashes" -name 'id:*' | sort | head -1)
echo "first crash: $(basename "$first") (the time: field is milliseconds into the campaign)"
replay "$first" 1
[ "$status" -eq 134 ] || fail "the crash does not abort under the mode when replayed (status $status)"
grep -Eq "$REPORT" "$WORK/replay.err" || fail "the crash replays without the heap overflow report: $(cat "$WORK/replay.err")"
echo "replayed with the mode: $(grep '^tinymalloc: ' "$WORK/replay.err")"
replay "$first" 0
[ "$status" -eq 0 ] || fail "the crash input also fails without the mode (status $status): not the off-by-one"
echo "replayed without the mode: exit status 0, nothing reported"

campaign without-mode 0 "$BOUND"
[ "$crashes" -eq 0 ] || fail "without the mode AFL++ saved $crashes crashes: the target crashes otherwise"
[ "$execs" -gt "$execs_to_find" ] ||
  fail "without the mode AFL++ ran $execs executions, not more than the $execs_to_find the mode needed: too loaded a machine to compare (raise TM_AFL_SECONDS)"
reached=0
for entry in "$WORK"/without-mode/default/queue/id:*; do
  replay "$entry" 1
  if [ "$status" -eq 134 ] && grep -Eq "$REPORT" "$WORK/replay.err"; then reached=$((reached + 1)); fi
done
[ "$reached" -ge 1 ] || fail "the campaign without the mode never reached the off-by-one: the comparison proves nothing"
echo "without the mode: no crash in $BOUND s and $execs executions ($execs_to_find sufficed with the mode) although $reached of its queue entries overflow (each is reported when replayed with the mode)"
echo "PASS: AFL++ finds the off-by-one with the detection mode and not without it"
