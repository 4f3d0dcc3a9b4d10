#!/usr/bin/env bash
# ci/fuzz.sh: the fuzzing main job. Installs what is missing, builds the
# harnesses, fuzzes every harness (libFuzzer by default, AFL++ with
# --engine afl) within a time budget, shows progress and ends with a summary
# per harness (execs, coverage, corpus, findings with the command that
# reproduces each). Works only under build/fuzz-* (and corpus/ with --merge).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: ci/fuzz.sh [options]
  --engine libfuzzer|afl   fuzzing engine (default libfuzzer)
  --time SECONDS           total time budget, shared by the harnesses (default 240)
  --jobs N                 fuzzing processes per harness (default 1)
  --harness NAME           fuzz only this harness (ops, threads, misuse, fork); repeatable
  --merge                  merge new coverage-increasing inputs into corpus/<harness>/
  --coverage               also report src/ line coverage of the resulting corpus
  --no-install             do not install missing Debian packages
The exit status is 1 when any harness found a failure.
EOF
}

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../fuzz/lib.sh
. "$root/fuzz/lib.sh"

engine=libfuzzer
budget=240
jobs=1
merge=0
coverage=0
install=1
harnesses=()
while [ $# -gt 0 ]; do
  case $1 in
  --engine) engine=$2; shift 2 ;;
  --engine=*) engine=${1#*=}; shift ;;
  --time) budget=$2; shift 2 ;;
  --time=*) budget=${1#*=}; shift ;;
  --jobs) jobs=$2; shift 2 ;;
  --jobs=*) jobs=${1#*=}; shift ;;
  --harness) harnesses+=("$2"); shift 2 ;;
  --harness=*) harnesses+=("${1#*=}"); shift ;;
  --merge) merge=1; shift ;;
  --coverage) coverage=1; shift ;;
  --no-install) install=0; shift ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
  esac
done
[ ${#harnesses[@]} -gt 0 ] || harnesses=("${TMF_HARNESSES[@]}")
case $engine in libfuzzer | afl) ;; *) echo "unknown engine $engine" >&2; exit 2 ;; esac
[ "$jobs" -ge 1 ] 2>/dev/null || { echo "--jobs needs a positive number" >&2; exit 2; }
per_harness=$((budget / ${#harnesses[@]}))
[ "$per_harness" -ge 10 ] || per_harness=10

[ "$install" -eq 0 ] || tmf_install_packages "$root"

tmf_log "building (engine $engine)"
tmf_build_plain "$root" $(tmf_targets replay "${harnesses[@]}")
if [ "$engine" = libfuzzer ] || [ "$merge" -eq 1 ]; then
  tmf_build_libfuzzer "$root" $(tmf_targets fuzz "${harnesses[@]}")
fi
if [ "$engine" = afl ]; then
  tmf_build_afl "$root" $(tmf_targets afl "${harnesses[@]}")
fi

work=$root/build/fuzz-work/$engine
mkdir -p "$work"
summary=$work/summary.txt
: >"$summary"
found_any=0

# Prints "execs execs_per_sec coverage corpus" from the newest libFuzzer
# status line of the given logs (summed over jobs; coverage is the maximum).
libfuzzer_status() {
  local execs=0 rate=0 cov=0 line n r c
  for log in "$@"; do
    line=$(grep -aE '^#[0-9]+' "$log" 2>/dev/null | tail -n 1 || true)
    [ -n "$line" ] || continue
    n=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$line")
    r=$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' <<<"$line")
    c=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$line")
    execs=$((execs + n))
    rate=$((rate + ${r:-0}))
    [ "${c:-0}" -le "$cov" ] || cov=$c
  done
  echo "$execs $rate $cov"
}

afl_stat() { sed -nE "s/^$2 *: *//p" "$1" 2>/dev/null | head -n 1; }

# True while any of the given processes runs.
any_alive() {
  local p
  for p in "$@"; do kill -0 "$p" 2>/dev/null && return 0; done
  return 1
}

fuzz_libfuzzer() {
  local h=$1 dir=$work/$h
  local bin=$root/build/fuzz-libfuzzer/fuzz/fuzz_$h
  mkdir -p "$dir/corpus" "$dir/crashes"
  cp -n "$root/corpus/$h/"* "$dir/corpus/" 2>/dev/null || true
  rm -f "$dir"/job-*.log
  local pids=() j
  tmf_libfuzzer_flags "$root" "$h"
  for ((j = 0; j < jobs; j++)); do
    "$bin" -max_total_time="$per_harness" "${TMF_LF_FLAGS[@]}" -timeout=30 -print_final_stats=1 \
      -artifact_prefix="$dir/crashes/" -seed=$((j + 1)) "$dir/corpus" >"$dir/job-$j.log" 2>&1 &
    pids+=($!)
  done
  local start=$SECONDS p
  while :; do
    any_alive "${pids[@]}" || break
    sleep 10
    read -r execs rate cov < <(libfuzzer_status "$dir"/job-*.log)
    tmf_log "$h: $((SECONDS - start))/${per_harness}s execs $execs ($rate/s) cov $cov corpus $(ls "$dir/corpus" | wc -l)"
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  local elapsed=$((SECONDS - start))
  read -r execs rate cov < <(libfuzzer_status "$dir"/job-*.log)
  local total
  total=$(grep -ah 'stat::number_of_executed_units' "$dir"/job-*.log | awk '{s += $2} END {print s + 0}')
  [ "$total" -gt 0 ] || total=$execs
  report "$h" "$total" "$elapsed" "cov $cov edges" "$(ls "$dir/corpus" | wc -l)" "$dir/crashes" \
    "$bin" "$root/build/fuzz-plain/fuzz/replay_$h"
}

fuzz_afl() {
  local h=$1 dir=$work/$h
  local bin=$root/build/fuzz-afl/fuzz/afl_$h
  tmf_afl_env
  mkdir -p "$dir/crashes"
  tmf_afl_harness_env "$root" "$h" "$dir/crashes/"
  local seeds=$dir/seeds
  rm -rf "$seeds"
  mkdir -p "$seeds"
  cp "$root/corpus/$h/"* "$seeds/"
  local resume=()
  [ ! -d "$dir/out/main/queue" ] || resume=(-i -)
  local pids=() j
  for ((j = 0; j < jobs; j++)); do
    local role=(-M main)
    [ "$j" -eq 0 ] || role=(-S "sec$j")
    local input=(-i "$seeds")
    [ ${#resume[@]} -eq 0 ] || input=("${resume[@]}")
    AFL_AUTORESUME=1 afl-fuzz "${input[@]}" -o "$dir/out" "${role[@]}" -x "$root/fuzz/$h.dict" \
      -V "$per_harness" -t 20000 -m none -- "$bin" >"$dir/job-$j.log" 2>&1 &
    pids+=($!)
  done
  local start=$SECONDS p
  while :; do
    any_alive "${pids[@]}" || break
    sleep 10
    local s=$dir/out/main/fuzzer_stats
    tmf_log "$h: $((SECONDS - start))/${per_harness}s execs $(afl_stat "$s" execs_done) ($(afl_stat "$s" execs_per_sec)/s) map $(afl_stat "$s" bitmap_cvg) corpus $(afl_stat "$s" corpus_count)"
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  local elapsed=$((SECONDS - start)) total=0 cvg="" corpus=0 st
  for st in "$dir"/out/*/fuzzer_stats; do
    [ -f "$st" ] || continue
    total=$((total + $(afl_stat "$st" execs_done | cut -d. -f1)))
  done
  cvg=$(afl_stat "$dir/out/main/fuzzer_stats" bitmap_cvg)
  corpus=$(afl_stat "$dir/out/main/fuzzer_stats" corpus_count)
  if [ "$total" -eq 0 ]; then
    tmf_log "$h: afl-fuzz produced no statistics; its log:"
    tail -n 30 "$dir/job-0.log" >&2
  fi
  mkdir -p "$dir/crashes"
  find "$dir/out" -path '*/crashes/id:*' -exec cp {} "$dir/crashes/" \; 2>/dev/null || true
  report "$h" "$total" "$elapsed" "map ${cvg:-?}" "${corpus:-0}" "$dir/crashes" "$bin <" \
    "$root/build/fuzz-plain/fuzz/replay_$h"
}

# report HARNESS EXECS SECONDS COVERAGE CORPUS CRASH_DIR ENGINE_CMD REPLAY_CMD
report() {
  local h=$1 execs=$2 secs=$3 cov=$4 corpus=$5 crashes=$6 engine_cmd=$7 replay=$8
  [ "$secs" -gt 0 ] || secs=1
  local n
  n=$(find "$crashes" -type f ! -name README.txt | wc -l)
  {
    printf '%-8s execs %-9s %6s/s  %-16s corpus %-5s findings %s\n' "$h" "$execs" "$((execs / secs))" \
      "$cov" "$corpus" "$n"
    local f
    while IFS= read -r f; do
      [ -n "$f" ] || continue
      case $(basename "$f") in
      window-*) printf '    finding: %s (the runs since the last deep check: fails alone)\n' "$f" ;;
      *) printf '    finding: %s\n' "$f" ;;
      esac
      printf '      reproduce: %s %q\n' "$engine_cmd" "$f"
      printf '      or plain:  %s %q\n' "$replay" "$f"
    done < <(find "$crashes" -type f ! -name README.txt | sort)
  } >>"$summary"
  [ "$n" -eq 0 ] || found_any=1
}

tmf_log "fuzzing ${harnesses[*]} for ${per_harness}s each with $jobs job(s)"
for h in "${harnesses[@]}"; do
  "fuzz_$engine" "$h"
done

if [ "$merge" -eq 1 ]; then
  for h in "${harnesses[@]}"; do
    src=$work/$h/corpus
    [ "$engine" = libfuzzer ] || src=$work/$h/out/main/queue
    before=$(ls "$root/corpus/$h" | wc -l)
    # Edges only (no hit counts): keep corpus/ small, one input per new edge.
    "$root/build/fuzz-libfuzzer/fuzz/fuzz_$h" -merge=1 -use_counters=0 -max_len="$(tmf_max_len "$h")" "$root/corpus/$h" "$src" \
      >"$work/$h/merge.log" 2>&1 || { tail -n 20 "$work/$h/merge.log" >&2; exit 1; }
    tmf_log "$h: merged $(($(ls "$root/corpus/$h" | wc -l) - before)) new inputs into corpus/$h"
  done
fi

if [ "$coverage" -eq 1 ]; then
  "$root/fuzz/coverage.sh" --corpus-root "$work" "${harnesses[@]}" | tail -n 3 >>"$summary" || true
fi

echo
echo "==== fuzzing summary ($engine, ${per_harness}s per harness, $jobs job(s); work dir $work)"
cat "$summary"
exit "$found_any"
