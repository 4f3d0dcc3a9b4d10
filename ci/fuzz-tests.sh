#!/usr/bin/env bash
# ci/fuzz-tests.sh: the fuzzing part of the test command (called by
# ci/test.sh). Replays the corpus plain, under Valgrind memcheck and under
# TSan; runs short libFuzzer and AFL++ smoke runs; builds the OSS-Fuzz
# targets as that infrastructure would; proves every injected bug is caught
# and reproduces alone; reports coverage. Stays within ~10 minutes on 2 cores.
# Works only under build/fuzz-*. Usage: ci/fuzz-tests.sh [--quick] [--no-install]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/fuzz/lib.sh"

quick=0
install=1
for arg in "$@"; do
  case $arg in
  --quick) quick=1 ;; # replays only (no smokes, no bug proof)
  --no-install) install=0 ;;
  *) echo "usage: ci/fuzz-tests.sh [--quick] [--no-install]" >&2; exit 2 ;;
  esac
done

start=$SECONDS
step() { tmf_log "---- $* ($((SECONDS - start))s)"; }
# A failed check is recorded and the run goes on, so that one failure does
# not hide the others; the exit status says whether any check failed.
failures=()
fail() {
  tmf_log "FAILED: $*"
  failures+=("$*")
}
H=("${TMF_HARNESSES[@]}")

[ "$install" -eq 0 ] || tmf_install_packages "$root"

step "replay corpus (plain build)"
tmf_build_plain "$root" $(tmf_targets replay "${H[@]}")
for h in "${H[@]}"; do
  "$root/build/fuzz-plain/fuzz/replay_$h" "$root/corpus/$h" || fail "replay_$h over corpus/$h"
done
tmf_replay_with_env_options "$root/build/fuzz-plain/fuzz" "$root" || fail "replay with TINYMALLOC_* options set"

step "replay corpus under Valgrind memcheck (Valgrind tracking backend, -gdwarf-4)"
tmf_build_valgrind "$root" $(tmf_targets replay "${H[@]}")
for h in "${H[@]}"; do
  valgrind --tool=memcheck --error-exitcode=99 --quiet --leak-check=full \
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
    "$root/build/fuzz-valgrind/fuzz/replay_$h" "$root/corpus/$h" || fail "memcheck replay_$h"
done

step "replay corpus under TSan"
tmf_build_tsan "$root" $(tmf_targets replay "${H[@]}")
for h in threads ops; do
  TSAN_OPTIONS="halt_on_error=1" "$root/build/fuzz-tsan/fuzz/replay_$h" "$root/corpus/$h" || fail "TSan replay_$h"
done

if [ "$quick" -eq 1 ]; then
  [ ${#failures[@]} -eq 0 ] || { printf '  - %s\n' "${failures[@]}" >&2; exit 1; }
  step "quick mode: done"
  exit 0
fi

step "libFuzzer smoke (10 s per harness)"
tmf_build_libfuzzer "$root" $(tmf_targets fuzz "${H[@]}")
for h in "${H[@]}"; do
  d=$root/build/fuzz-work/smoke-libfuzzer/$h
  rm -rf "$d"
  mkdir -p "$d/corpus" "$d/crashes"
  cp "$root/corpus/$h/"* "$d/corpus/"
  "$root/build/fuzz-libfuzzer/fuzz/fuzz_$h" -max_total_time=10 -max_len=4096 -dict="$root/fuzz/$h.dict" \
    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$d/crashes/" "$d/corpus" >"$d/log" 2>&1 ||
    { tail -n 30 "$d/log"; fail "libFuzzer smoke of fuzz_$h found a failure (input in $d/crashes)"; }
  tmf_log "fuzz_$h: $(grep -h 'stat::number_of_executed_units' "$d/log" | awk '{print $2}') execs, $(grep -h 'stat::average_exec_per_sec' "$d/log" | awk '{print $2}') exec/s"
done

step "AFL++ smoke (persistent mode, 10 s per harness)"
tmf_build_afl "$root" $(tmf_targets afl "${H[@]}")
tmf_afl_env
for h in "${H[@]}"; do
  d=$root/build/fuzz-work/smoke-afl/$h
  rm -rf "$d"
  mkdir -p "$d"
  afl-fuzz -i "$root/corpus/$h" -o "$d/out" -M main -x "$root/fuzz/$h.dict" -V 10 -t 10000 -m none -- \
    "$root/build/fuzz-afl/fuzz/afl_$h" >"$d/log" 2>&1 || { tail -n 30 "$d/log"; fail "afl-fuzz on afl_$h"; }
  st=$d/out/main/fuzzer_stats
  execs=$(sed -nE 's/^execs_done *: *//p' "$st")
  crashes=$(sed -nE 's/^(saved|unique)_crashes *: *//p' "$st" | head -n 1)
  tmf_log "afl_$h: $execs execs, $(sed -nE 's/^execs_per_sec *: *//p' "$st") exec/s, stability $(sed -nE 's/^stability *: *//p' "$st"), crashes ${crashes:-0}"
  [ "${execs:-0}" -gt 0 ] || fail "afl_$h ran no inputs"
  [ "${crashes:-0}" -eq 0 ] || fail "AFL++ smoke of afl_$h found a failure (inputs in $d/out/main/crashes)"
done

step "OSS-Fuzz build script (local run with the infrastructure's variables)"
oss=$root/build/fuzz-ossfuzz
rm -rf "$oss"
mkdir -p "$oss/out" "$oss/work"
CC=clang CXX=clang++ SRC=$root WORK=$oss/work OUT=$oss/out LIB_FUZZING_ENGINE=-fsanitize=fuzzer \
  CFLAGS="-O1 -fno-omit-frame-pointer -gline-tables-only -fsanitize=address -fsanitize-address-use-after-scope -fsanitize=fuzzer-no-link" \
  "$root/fuzz/oss-fuzz-build.sh" >"$oss/build.log" 2>&1 || { tail -n 30 "$oss/build.log"; fail "oss-fuzz-build.sh"; }
for h in "${H[@]}"; do
  for f in "fuzz_$h" "fuzz_$h.dict" "fuzz_$h.options" "fuzz_${h}_seed_corpus.zip"; do
    [ -s "$oss/out/$f" ] || fail "oss-fuzz-build.sh did not produce $f"
  done
  mkdir -p "$oss/seeds/$h"
  unzip -q -o "$oss/out/fuzz_${h}_seed_corpus.zip" -d "$oss/seeds/$h"
  (cd "$oss/out" && "./fuzz_$h" -runs=0 "$oss/seeds/$h" >"$oss/run-$h.log" 2>&1) ||
    { tail -n 20 "$oss/run-$h.log"; fail "OSS-Fuzz target fuzz_$h on its seed corpus"; }
done
tmf_log "oss-fuzz targets, dictionaries, options and seed zips OK"

step "injected bugs must all be caught (fuzz/bugs/*.patch)"
"$root/fuzz/prove-bugs.sh" --time 30 || fail "injected-bug proof"

step "a saved finding reproduces from the replay driver alone"
bug_dir=""
for d in "$root"/build/fuzz-bugs/*/; do
  if [ -f "$d/reproducer.bin" ] && [ -x "$d/replay" ]; then bug_dir=${d%/}; break; fi
done
if [ -z "$bug_dir" ]; then
  fail "no reproducer was saved by the bug proof"
else
bug=$(basename "$bug_dir")
h=$(sed -nE 's/^Harness: *([a-z]+).*/\1/p' "$root/fuzz/bugs/$bug.patch" | head -n 1)
log=$root/build/fuzz-bugs/repro-check.log
if "$bug_dir/replay" "$bug_dir/reproducer.bin" >"$log" 2>&1; then
  fail "$bug_dir/reproducer.bin did not fail again on the $bug build"
fi
grep -q 'tinymalloc' "$log" || fail "the reproduced failure does not name its check"
"$root/build/fuzz-plain/fuzz/replay_$h" "$bug_dir/reproducer.bin" 2>/dev/null ||
  fail "$bug_dir/reproducer.bin fails on the healthy build too (harness bug?)"
tmf_log "$bug: reproducer fails alone on the buggy build ($(grep -m1 tinymalloc "$log")) and passes on the healthy one"
fi

step "coverage of src/ by the committed corpus"
"$root/fuzz/coverage.sh" || fail "coverage report"

if [ ${#failures[@]} -gt 0 ]; then
  tmf_log "${#failures[@]} fuzz check(s) failed after $((SECONDS - start))s:"
  printf '  - %s\n' "${failures[@]}" >&2
  exit 1
fi
step "fuzz tests passed"
