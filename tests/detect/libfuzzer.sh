#!/bin/sh
# The detection mode under libFuzzer without ASan, as docs/detect.md tells
# users to run it: a target built with -fsanitize=fuzzer only, the override
# library preloaded, TINYMALLOC_DETECT=1 in the environment.
#   1. Replaying an input that overflows its block by one byte must end in
#      tinymalloc's heap overflow report (the libFuzzer runtime allocates
#      before libc has set up `environ`: the options must still be read).
#   2. The same input without the mode passes (the bug is invisible).
#   3. Fuzzing from a seed that does not overflow (length 0) finds the crash.
# Exits 77 (ctest: skipped) when clang cannot build a libFuzzer target.
# Arguments: TARGET_SOURCE OVERRIDE_LIBRARY WORK_DIR.
set -eu
SOURCE=$1
LIB=$2
WORK=$3
rm -rf "$WORK"
mkdir -p "$WORK/seeds" "$WORK/artifacts"
if ! clang -g -O1 -fsanitize=fuzzer "$SOURCE" -o "$WORK/target" 2>"$WORK/build.log"; then
  cat "$WORK/build.log"
  echo "SKIP: clang cannot build a libFuzzer target (Debian package clang)"
  exit 77
fi
printf '\030' >"$WORK/overflow" # length 24: malloc(24), byte 24 written
printf '\000' >"$WORK/seeds/zero"

status=0
TINYMALLOC_DETECT=1 LD_PRELOAD=$LIB "$WORK/target" "$WORK/overflow" >"$WORK/replay.log" 2>&1 || status=$?
if [ "$status" -eq 0 ] || ! grep -q "tinymalloc: heap overflow of block .* (24 bytes requested; byte 24 overwritten, found by free)" "$WORK/replay.log"; then
  cat "$WORK/replay.log"
  echo "FAIL: with TINYMALLOC_DETECT=1 the replay of the off-by-one was not reported (status $status)"
  exit 1
fi
echo "with the mode: $(grep -m1 'tinymalloc: heap overflow' "$WORK/replay.log")"

if ! LD_PRELOAD=$LIB "$WORK/target" "$WORK/overflow" >"$WORK/control.log" 2>&1; then
  cat "$WORK/control.log"
  echo "FAIL: without the mode the replay failed: the test must depend on the mode"
  exit 1
fi
echo "without the mode: the same input passes"

status=0
TINYMALLOC_DETECT=1 LD_PRELOAD=$LIB "$WORK/target" -max_total_time=120 -artifact_prefix="$WORK/artifacts/" \
  "$WORK/seeds" >"$WORK/fuzz.log" 2>&1 || status=$?
crash=$(find "$WORK/artifacts" -name 'crash-*' | head -n 1)
if [ "$status" -eq 0 ] || [ -z "$crash" ] || ! grep -q "tinymalloc: heap overflow" "$WORK/fuzz.log"; then
  tail -n 20 "$WORK/fuzz.log"
  echo "FAIL: libFuzzer with the mode found no heap overflow in 120 s"
  exit 1
fi
echo "libFuzzer with the mode: $(grep -m1 'tinymalloc: heap overflow' "$WORK/fuzz.log"), $(grep -m1 -o 'Done [0-9]* runs\|#[0-9]*' "$WORK/fuzz.log" | tail -n 1)"
echo "PASS"
