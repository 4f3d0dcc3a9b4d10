#!/usr/bin/env bash
# fuzz/speed.sh: measures the fuzzing speed of each harness on one core, from
# the committed corpus, for libFuzzer (ASan+UBSan, build/fuzz-libfuzzer) and
# AFL++ (build/fuzz-afl). The machine is shared, so besides libFuzzer's and
# AFL++'s own execs/s (wall clock) it prints execs per CPU second of the
# fuzzing process (what the harness does with a core of its own) and the
# load average; a finding ends a run early (its line says so).
# Usage: fuzz/speed.sh [--time S] [--cpu N] [--engine libfuzzer|afl|both] [HARNESS...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/fuzz/lib.sh"
secs=30 cpu=1 engine=both harnesses=()
while [ $# -gt 0 ]; do
  case $1 in
  --time) secs=$2; shift 2 ;;
  --cpu) cpu=$2; shift 2 ;;
  --engine) engine=$2; shift 2 ;;
  *) harnesses+=("$1"); shift ;;
  esac
done
[ ${#harnesses[@]} -gt 0 ] || harnesses=("${TMF_HARNESSES[@]}")
work=$root/build/fuzz-work/speed
mkdir -p "$work"
cpu_seconds() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; }

if [ "$engine" != afl ]; then
  tmf_build_libfuzzer "$root" $(tmf_targets fuzz "${harnesses[@]}")
  for h in "${harnesses[@]}"; do
    d=$work/libfuzzer-$h
    rm -rf "$d"
    mkdir -p "$d/corpus" "$d/crashes"
    cp "$root/corpus/$h/"* "$d/corpus/"
    load0=$(cut -d' ' -f1 /proc/loadavg)
    if declare -F tmf_libfuzzer_flags >/dev/null; then
      tmf_libfuzzer_flags "$root" "$h"
    else # a tree from before the flags had a helper
      TMF_LF_FLAGS=(-dict="$root/fuzz/$h.dict" -max_len=4096 -rss_limit_mb=4096)
    fi
    /usr/bin/time -f '%U %S' -o "$d/time" taskset -c "$cpu" "$root/build/fuzz-libfuzzer/fuzz/fuzz_$h" \
      -max_total_time="$secs" "${TMF_LF_FLAGS[@]}" -timeout=30 -print_final_stats=1 -artifact_prefix="$d/crashes/" \
      "$d/corpus" >"$d/log" 2>&1 || true
    load1=$(cut -d' ' -f1 /proc/loadavg)
    execs=$(sed -nE 's/^stat::number_of_executed_units: *//p' "$d/log")
    rate=$(sed -nE 's/^stat::average_exec_per_sec: *//p' "$d/log")
    cpus=$(awk '{print $1 + $2}' "$d/time" | tail -n 1)
    printf 'libfuzzer %-8s execs %-7s %5s/s wall  %6.0f/s per CPU second  load %s-%s  findings %s\n' "$h" "${execs:-0}" \
      "${rate:-0}" "$(awk -v e="${execs:-0}" -v c="$cpus" 'BEGIN{print (c > 0 ? e / c : 0)}')" "$load0" "$load1" \
      "$(find "$d/crashes" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' -o -name 'window-*' \) | wc -l)"
  done
fi
if [ "$engine" != libfuzzer ]; then
  tmf_build_afl "$root" $(tmf_targets afl "${harnesses[@]}")
  tmf_afl_env
  for h in "${harnesses[@]}"; do
    d=$work/afl-$h
    rm -rf "$d"
    mkdir -p "$d"
    load0=$(cut -d' ' -f1 /proc/loadavg)
    mut=()
    [ ! -f "$root/build/fuzz-afl/afl-mutator-$h.so" ] ||
      mut=(env AFL_CUSTOM_MUTATOR_LIBRARY="$root/build/fuzz-afl/afl-mutator-$h.so" TMF_ARTIFACT_PREFIX="$d/")
    /usr/bin/time -f '%U %S' -o "$d/time" "${mut[@]}" taskset -c "$cpu" afl-fuzz -i "$root/corpus/$h" -o "$d/out" -M main -x "$root/fuzz/$h.dict" -V "$secs" \
      -t 20000 -m none -- "$root/build/fuzz-afl/fuzz/afl_$h" >"$d/log" 2>&1 || true
    load1=$(cut -d' ' -f1 /proc/loadavg)
    st=$d/out/main/fuzzer_stats
    execs=$(sed -nE 's/^execs_done *: *//p' "$st" 2>/dev/null)
    rate=$(sed -nE 's/^execs_per_sec *: *//p' "$st" 2>/dev/null)
    cpus=$(awk '{print $1 + $2}' "$d/time" | tail -n 1)
    printf 'afl++     %-8s execs %-7s %5s/s wall  %6.0f/s per CPU second  stability %s  load %s-%s  crashes %s\n' \
      "$h" "${execs:-0}" "${rate:-0}" "$(awk -v e="${execs:-0}" -v c="$cpus" 'BEGIN{print (c > 0 ? e / c : 0)}')" "$(sed -nE 's/^stability *: *//p' "$st" 2>/dev/null)" "$load0" "$load1" \
      "$(sed -nE 's/^(saved|unique)_crashes *: *//p' "$st" 2>/dev/null | head -n 1)"
  done
fi
