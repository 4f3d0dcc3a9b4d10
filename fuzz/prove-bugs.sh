#!/usr/bin/env bash
# fuzz/prove-bugs.sh: proof that the harnesses catch real allocator bugs.
# Each fuzz/bugs/*.patch is applied to a scratch copy of the tree (never to
# the tree itself) under build/fuzz-bugs/, built, and hunted with a time
# bound; the run fails unless every bug is caught and its reproducer fails
# again when replayed alone by the plain replay driver.
#
# Usage: fuzz/prove-bugs.sh [--time SECONDS] [--from-scratch] [PATCH...]
#   --time          libFuzzer time bound per bug (default 45)
#   --from-scratch  skip the corpus replay and fuzz from a one-op seed, to
#                   measure how long the fuzzer itself needs
# A patch names its harness in a line "Harness: NAME" and may ask for the
# TSan replay with "Detect: tsan" (data races on the cross-thread path).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/fuzz/lib.sh"

limit=45
scratch_mode=0
patches=()
while [ $# -gt 0 ]; do
  case $1 in
  --time) limit=$2; shift 2 ;;
  --from-scratch) scratch_mode=1; shift ;;
  *) patches+=("$1"); shift ;;
  esac
done
[ ${#patches[@]} -gt 0 ] || patches=("$root"/fuzz/bugs/*.patch)

base=$root/build/fuzz-bugs
mkdir -p "$base"
table=$base/results.txt
: >"$table"
failed=0

now_ms() { date +%s%3N; }

# Copies the parts of the tree a fuzz build needs.
make_tree() {
  local tree=$1
  rm -rf "$tree"
  mkdir -p "$tree"
  cp -r "$root/CMakeLists.txt" "$root/cmake" "$root/include" "$root/src" "$root/fuzz" "$root/corpus" "$tree/"
}

# Replays each file alone; prints the first that fails.
first_failing_input() {
  local bin=$1 dir=$2 f
  for f in "$dir"/*; do
    if ! timeout 60 "$bin" "$f" >/dev/null 2>&1; then
      echo "$f"
      return 0
    fi
  done
  return 1
}

record() { printf '%-28s %-8s %-16s %8s  %-9s %s\n' "$@" | tee -a "$table"; }

record BUG HARNESS "CAUGHT BY" "TIME" "REPRO" "FIRST REPORT"
for patch in "${patches[@]}"; do
  name=$(basename "$patch" .patch)
  harness=$(sed -nE 's/^Harness: *([a-z]+).*/\1/p' "$patch" | head -n 1)
  detect=$(sed -nE 's/^Detect: *([a-z]+).*/\1/p' "$patch" | head -n 1)
  [ -n "$harness" ] || harness=ops
  dir=$base/$name
  tree=$dir/tree
  make_tree "$tree"
  if ! (cd "$tree" && patch -p1 -s --no-backup-if-mismatch <"$patch") >"$dir/patch.log" 2>&1; then
    record "$name" "$harness" "PATCH FAILED" "-" "-" "$(head -c 80 "$dir/patch.log")"
    failed=1
    continue
  fi
  caught="" elapsed="-" repro="-" reason="" input=""

  if [ "$detect" = tsan ]; then
    if ! tmf_build "$tree" "$dir/build-tsan" "replay_$harness" -- -DCMAKE_C_COMPILER=clang -DTMF_SANITIZE=thread; then
      record "$name" "$harness" "BUILD FAILED" "-" "-" ""
      failed=1
      continue
    fi
    t0=$(now_ms)
    if ! TSAN_OPTIONS="halt_on_error=1 exitcode=66" timeout 120 "$dir/build-tsan/fuzz/replay_$harness" \
      "$tree/corpus/$harness" >"$dir/tsan.log" 2>&1; then
      caught="TSan replay"
      elapsed=$(($(now_ms) - t0))
      reason=$(grep -m1 -E 'WARNING: ThreadSanitizer|tinymalloc-fuzz:|tinymalloc:' "$dir/tsan.log")
      input=$(first_failing_input "$dir/build-tsan/fuzz/replay_$harness" "$tree/corpus/$harness") && repro=yes || repro=no
    fi
  fi

  if [ -z "$caught" ]; then
    if ! tmf_build "$tree" "$dir/build" "replay_$harness" -- -DCMAKE_C_COMPILER=clang -DTINYMALLOC_FUZZ=ON; then
      record "$name" "$harness" "BUILD FAILED" "-" "-" ""
      failed=1
      continue
    fi
    replay=$dir/build/fuzz/replay_$harness
    if [ "$scratch_mode" -eq 0 ]; then
      t0=$(now_ms)
      if ! timeout 120 "$replay" "$tree/corpus/$harness" >"$dir/replay.log" 2>&1; then
        caught="corpus replay"
        elapsed=$(($(now_ms) - t0))
        reason=$(grep -m1 -E 'tinymalloc-fuzz:|tinymalloc:|ERROR' "$dir/replay.log")
        input=$(first_failing_input "$replay" "$tree/corpus/$harness") && repro=yes || repro=no
      fi
    fi
    if [ -z "$caught" ] && ! tmf_build "$tree" "$dir/build" "fuzz_$harness" --; then
      record "$name" "$harness" "BUILD FAILED" "-" "-" ""
      failed=1
      continue
    fi
    if [ -z "$caught" ]; then
      seeds=$dir/seeds
      rm -rf "$seeds" "$dir/crashes"
      mkdir -p "$seeds" "$dir/crashes"
      if [ "$scratch_mode" -eq 1 ]; then
        printf '\x00\x01\x00\x40\x00' >"$seeds/one-malloc" # a single malloc: the fuzzer finds the rest
        [ "$harness" != threads ] || printf '\x00\x00\x01\x00\x40\x00' >"$seeds/one-malloc"
      else
        cp "$tree/corpus/$harness/"* "$seeds/"
      fi
      t0=$(now_ms)
      timeout $((limit + 60)) "$dir/build/fuzz/fuzz_$harness" -max_total_time="$limit" -max_len=4096 \
        -dict="$tree/fuzz/$harness.dict" -timeout=20 -rss_limit_mb=4096 -artifact_prefix="$dir/crashes/" \
        "$seeds" >"$dir/libfuzzer.log" 2>&1
      input=$(find "$dir/crashes" -type f | head -n 1)
      if [ -n "$input" ]; then
        caught="libFuzzer"
        elapsed=$(($(now_ms) - t0))
        reason=$(grep -m1 -E 'tinymalloc-fuzz:|tinymalloc:|ERROR: (AddressSanitizer|UndefinedBehavior|libFuzzer)|SUMMARY' "$dir/libfuzzer.log")
        # A saved finding must fail again when replayed alone, without the engine.
        if ! timeout 60 "$replay" "$input" >"$dir/repro.log" 2>&1 ||
          ! timeout 60 "$dir/build/fuzz/fuzz_$harness" "$input" >>"$dir/repro.log" 2>&1; then
          repro=yes
        else
          repro=no
        fi
      fi
    fi
  fi

  if [ -z "$caught" ]; then
    record "$name" "$harness" "NOT CAUGHT" "${limit}s+" "-" ""
    failed=1
  else
    record "$name" "$harness" "$caught" "$(awk -v ms="$elapsed" 'BEGIN{printf "%.1fs", ms/1000}')" "$repro" \
      "$(cut -c1-110 <<<"$reason")"
    [ "$repro" = yes ] || failed=1
    [ -z "$input" ] || cp "$input" "$dir/reproducer.bin"
  fi
  rm -rf "$tree/src" "$dir/build/tm_objects" # keep the logs and the reproducer, drop the bulk
done

if [ "$failed" -ne 0 ]; then
  echo "prove-bugs: FAILED: not every injected bug was caught and reproduced (see $table)" >&2
  exit 1
fi
echo "prove-bugs: all ${#patches[@]} injected bugs caught and reproduced alone (table: $table)"
