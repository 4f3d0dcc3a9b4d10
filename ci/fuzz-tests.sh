#!/usr/bin/env bash
# ci/fuzz-tests.sh: the fuzzing part of the test command (called by
# ci/test.sh). Replays the corpus plain, under Valgrind memcheck and under
# TSan; runs the lifecycle cases a fuzz harness cannot drive; proves with
# injected faults that the checks fire and that a failure found in warm mode
# reproduces alone; runs short libFuzzer and AFL++ smoke runs (custom
# mutators); builds the OSS-Fuzz targets as that infrastructure would; proves
# every injected bug is caught (a patch the core outgrew counts as stale, not
# as missed); runs a seeded sample of src/ mutants; reports coverage. Stays
# within ~12 minutes on 2 cores. Works only under build/fuzz-*.
# Usage: ci/fuzz-tests.sh [--quick] [--no-install]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/fuzz/lib.sh"

quick=0
install=1
for arg in "$@"; do
  case $arg in
  --quick) quick=1 ;; # replays only (no smokes, no bug proof, no mutants)
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
plain=$root/build/fuzz-plain/fuzz

[ "$install" -eq 0 ] || tmf_install_packages "$root"

step "replay corpus (plain build) and the lifecycle cases"
tmf_build_plain "$root" $(tmf_targets replay "${H[@]}") replay_ops_faults replay_threads_faults lifecycle_test
for h in "${H[@]}"; do # and the grammar the mutators use must be the decoders'
  TMF_CHECK_GRAMMAR=1 "$plain/replay_$h" "$root/corpus/$h" || fail "replay_$h over corpus/$h"
done
tmf_replay_with_env_options "$plain" "$root" || fail "replay with TINYMALLOC_* options set"
"$plain/lifecycle_test" || fail "lifecycle_test (calls before init, fork from a signal handler and with stdio, cancellation)"

step "injected faults: every kind of check fires, a warm-mode failure reproduces alone"
faults=$root/build/fuzz-work/faults
rm -rf "$faults"
mkdir -p "$faults/inputs" "$faults/artifacts"
# Four small inputs; the second asks for 12345 bytes, which under
# TMF_FAULT=hidden-leak leaks a mapping that only the deep check sees.
printf '\x00\x00\x00\x64\x00\x04\x00' >"$faults/inputs/1"
printf '\x00\x01\x0c\x39\x30\x04\x01' >"$faults/inputs/2"
printf '\x00\x02\x0c\x88\x13\x04\x02' >"$faults/inputs/3"
printf '\x00\x03\x14\x10\x00\x04\x03' >"$faults/inputs/4"
if TMF_FAULT=hidden-leak TMF_DEEP_EVERY=4 TMF_ARTIFACT_PREFIX="$faults/artifacts/" \
  "$plain/replay_ops_faults" "$faults/inputs" >"$faults/warm.log" 2>&1; then
  fail "hidden-leak: the warm replay of 4 inputs passed (the deep check after the 4th must fail)"
fi
window=$(find "$faults/artifacts" -name 'window-*' | head -n 1)
if [ -z "$window" ]; then
  fail "hidden-leak: the warm-mode failure saved no window"
else
  TMF_FAULT=hidden-leak "$plain/replay_ops_faults" "$faults/inputs/4" >/dev/null 2>&1 ||
    fail "hidden-leak: the last input alone fails (the test needs it to pass)"
  TMF_FAULT=hidden-leak "$plain/replay_ops_faults" "$window" >"$faults/window.log" 2>&1 &&
    fail "hidden-leak: $window passed when replayed alone"
  grep -q 'tinymalloc-fuzz: leak' "$faults/window.log" || fail "hidden-leak: the window's failure does not name the leak"
  "$plain/replay_ops" "$window" >/dev/null 2>&1 || fail "hidden-leak: $window fails on the healthy build"
  tmf_log "$(basename "$window"): fails alone ($(grep -m1 'tinymalloc-fuzz: leak' "$faults/window.log")), passes on the healthy build"
fi
# Each fault must be reported by the check that exists for it.
expect_fault() { # FAULT HARNESS INPUT PATTERN
  local log=$faults/$1-$2.log
  if TMF_FAULT=$1 "$plain/replay_$2_faults" "$3" >"$log" 2>&1; then
    fail "fault $1 went unnoticed by $2"
  elif ! grep -qE "$4" "$log"; then
    fail "fault $1 in $2: expected '$4', got '$(grep -m1 tinymalloc-fuzz "$log")'"
  else
    tmf_log "fault $1 ($2): $(grep -m1 -E "$4" "$log" | cut -c1-120)"
  fi
}
expect_fault double-handout ops "$root/corpus/ops" 'overlap'
expect_fault scribble ops "$root/corpus/ops" 'corrupted at offset'
expect_fault lying-counters ops "$root/corpus/ops" 'counters: .* live blocks'
# In contend the block handed out twice may be freed by both of its holders
# before a producer's check sees it in a slot: the allocator's double free
# report (unexpected by the harness) then names the same fault.
expect_fault double-handout threads "$root/corpus/threads/gen-contend-16.bin" \
  'handed out twice|unexpected misuse report \(kind 1, free of'
expect_fault scribble threads "$root/corpus/threads/gen-contend-16.bin" 'contend: live block .* changed'

step "replay corpus under Valgrind memcheck (Valgrind tracking backend, -gdwarf-4)"
tmf_build_valgrind "$root" $(tmf_targets replay "${H[@]}")
for h in "${H[@]}"; do
  # A fork child cannot free what the parent's other threads held (a block
  # just returned, still in a register): no leak check where children fork.
  leaks=(--leak-check=full --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect)
  if [ "$h" = fork ]; then
    # A fork child cannot free what the parent's other threads held (a block
    # just returned, still in a register): no leak check. Forks while other
    # threads run are slow under Valgrind (its threads take turns): a few
    # inputs take a minute. Every input was replayed plain above (and goes
    # through ASan in the libFuzzer smoke below); memcheck replays a
    # deterministic subset, input by input: the generated and regression
    # seeds, every input with a fork_signal op (where memcheck found the
    # fork-child double release) and the other inputs whose name (a SHA-1)
    # starts with 0 or 1. Each gets 45 s; one that runs out is named and left
    # to the plain replay. Every error memcheck reports still fails the step.
    slow=0
    picked=0
    mkdir -p "$root/build/fuzz-work"
    for input in "$root/corpus/fork"/*; do
      name=$(basename "$input")
      case $name in
      gen-* | regress-* | [01]*) ;;
      *) grep -q ' fork_signal ' <<<"$(python3 "$root/fuzz/decode.py" fork "$input" 2>/dev/null || true)" || continue ;;
      esac
      picked=$((picked + 1))
      status=0
      TMF_WATCHDOG_SECONDS=600 timeout 45 valgrind --tool=memcheck --error-exitcode=99 --quiet --leak-check=no \
        "$root/build/fuzz-valgrind/fuzz/replay_fork" "$input" >"$root/build/fuzz-work/memcheck-fork.log" 2>&1 ||
        status=$?
      if [ "$status" -eq 124 ]; then
        slow=$((slow + 1))
        tmf_log "memcheck replay_fork: $name ran out of its 45 s (too slow under Valgrind; replayed plain above)"
      elif [ "$status" -ne 0 ]; then
        tail -n 40 "$root/build/fuzz-work/memcheck-fork.log"
        fail "memcheck replay_fork $name"
      fi
    done
    tmf_log "memcheck replay_fork: $picked of $(find "$root/corpus/fork" -type f | wc -l) inputs, $slow ran out of time"
    continue
  fi
  TMF_WATCHDOG_SECONDS=120 valgrind --tool=memcheck --error-exitcode=99 --quiet "${leaks[@]}" \
    "$root/build/fuzz-valgrind/fuzz/replay_$h" "$root/corpus/$h" || fail "memcheck replay_$h"
done

step "replay corpus under TSan"
tmf_build_tsan "$root" $(tmf_targets replay "${H[@]}")
for h in threads ops misuse; do
  TMF_WATCHDOG_SECONDS=60 TSAN_OPTIONS="halt_on_error=1" "$root/build/fuzz-tsan/fuzz/replay_$h" "$root/corpus/$h" ||
    fail "TSan replay_$h"
done

if [ "$quick" -eq 1 ]; then
  [ ${#failures[@]} -eq 0 ] || { printf '  - %s\n' "${failures[@]}" >&2; exit 1; }
  step "quick mode: done"
  exit 0
fi

step "libFuzzer smoke (10 s per harness, structure-aware mutator)"
tmf_build_libfuzzer "$root" $(tmf_targets fuzz "${H[@]}")
for h in "${H[@]}"; do
  d=$root/build/fuzz-work/smoke-libfuzzer/$h
  rm -rf "$d"
  mkdir -p "$d/corpus" "$d/crashes"
  cp "$root/corpus/$h/"* "$d/corpus/"
  tmf_libfuzzer_flags "$root" "$h"
  "$root/build/fuzz-libfuzzer/fuzz/fuzz_$h" -max_total_time=10 "${TMF_LF_FLAGS[@]}" -print_final_stats=1 \
    -artifact_prefix="$d/crashes/" "$d/corpus" >"$d/log" 2>&1 ||
    { tail -n 30 "$d/log"; fail "libFuzzer smoke of fuzz_$h found a failure (input in $d/crashes)"; }
  # libFuzzer announces the custom mutator it found (and then uses it for
  # every mutation); "MS: ... Custom" lines appear only with new coverage,
  # which 10 s on a loaded machine may not bring (fork: a few execs/s).
  grep -q 'found LLVMFuzzerCustomMutator' "$d/log" || fail "fuzz_$h: libFuzzer did not find the custom mutator"
  tmf_log "fuzz_$h: $(grep -h 'stat::number_of_executed_units' "$d/log" | awk '{print $2}') execs, $(grep -h 'stat::average_exec_per_sec' "$d/log" | awk '{print $2}') exec/s"
done

step "AFL++ smoke (persistent mode, custom mutator, 6 s per harness)"
tmf_build_afl "$root" $(tmf_targets afl "${H[@]}")
tmf_afl_env
for h in "${H[@]}"; do
  d=$root/build/fuzz-work/smoke-afl/$h
  rm -rf "$d"
  mkdir -p "$d/crashes"
  (
    tmf_afl_harness_env "$root" "$h" "$d/crashes/"
    afl-fuzz -i "$root/corpus/$h" -o "$d/out" -M main -x "$root/fuzz/$h.dict" -V 6 -t 20000 -m none -- \
      "$root/build/fuzz-afl/fuzz/afl_$h" >"$d/log" 2>&1
  ) || { tail -n 30 "$d/log"; fail "afl-fuzz on afl_$h"; }
  st=$d/out/main/fuzzer_stats
  execs=$(sed -nE 's/^execs_done *: *//p' "$st")
  crashes=$(sed -nE 's/^(saved|unique)_crashes *: *//p' "$st" | head -n 1)
  tmf_log "afl_$h: $execs execs, $(sed -nE 's/^execs_per_sec *: *//p' "$st") exec/s, stability $(sed -nE 's/^stability *: *//p' "$st"), crashes ${crashes:-0}"
  [ "${execs:-0}" -gt 0 ] || fail "afl_$h ran no inputs"
  [ "${crashes:-0}" -eq 0 ] || fail "AFL++ smoke of afl_$h found a failure (inputs in $d/out/main/crashes)"
  grep -qi 'custom mutator' "$d/log" || fail "afl_$h: afl-fuzz did not load the custom mutator"
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

step "injected bugs must all be caught (fuzz/bugs/*.patch; stale patches are reported, not failed)"
rc=0
"$root/fuzz/prove-bugs.sh" --time 30 || rc=$?
case $rc in
0) ;;
3) tmf_log "some bug patches are stale: they no longer apply to the current core (see build/fuzz-bugs/results.txt)" ;;
*) fail "injected-bug proof" ;;
esac

step "a finding saved by the bug proof reproduces from the replay driver alone"
bug_dir=""
for d in "$root"/build/fuzz-bugs/*/; do
  if [ -f "$d/reproducer.bin" ] && [ -x "$d/replay" ]; then bug_dir=${d%/}; break; fi
done
if [ -z "$bug_dir" ]; then
  tmf_log "no injected bug applied to this core: the warm-mode window test above stands in"
else
  bug=$(basename "$bug_dir")
  h=$(sed -nE 's/^Harness: *([a-z]+).*/\1/p' "$root/fuzz/bugs/$bug.patch" | head -n 1)
  log=$root/build/fuzz-bugs/repro-check.log
  if "$bug_dir/replay" "$bug_dir/reproducer.bin" >"$log" 2>&1; then
    fail "$bug_dir/reproducer.bin did not fail again on the $bug build"
  fi
  grep -q 'tinymalloc' "$log" || fail "the reproduced failure does not name its check"
  "$plain/replay_$h" "$bug_dir/reproducer.bin" 2>/dev/null ||
    fail "$bug_dir/reproducer.bin fails on the healthy build too (harness bug?)"
  tmf_log "$bug: reproducer fails alone on the buggy build ($(grep -m1 tinymalloc "$log")) and passes on the healthy one"
fi

step "mutation sample: 10 seeded mutants of src/ (fuzz/mutate.py)"
python3 "$root/fuzz/mutate.py" --count 10 --seed 1 --fuzz-time 5 --jobs 2 \
  --out "$root/build/fuzz-mutants/sample" >"$root/build/fuzz-mutants-sample.log" 2>&1 ||
  { tail -n 30 "$root/build/fuzz-mutants-sample.log"; fail "fuzz/mutate.py sample"; }
grep -E '^(mutants|score|killed|survived|stillborn)' "$root/build/fuzz-mutants-sample.log" | while read -r line; do tmf_log "$line"; done

step "coverage of src/ by the committed corpus"
"$root/fuzz/coverage.sh" || fail "coverage report"

if [ ${#failures[@]} -gt 0 ]; then
  tmf_log "${#failures[@]} fuzz check(s) failed after $((SECONDS - start))s:"
  printf '  - %s\n' "${failures[@]}" >&2
  exit 1
fi
step "fuzz tests passed"
