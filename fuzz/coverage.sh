#!/usr/bin/env bash
# fuzz/coverage.sh: clang source-based coverage of src/ reached by replaying
# a corpus (default: the committed corpus/<harness>/) through the replay
# drivers. Writes build/fuzz-cov/report.txt (per file) and html/, prints the
# TOTAL line. Usage: fuzz/coverage.sh [--corpus-root DIR] [HARNESS...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/fuzz/lib.sh"
corpus_root=""
if [ "${1:-}" = "--corpus-root" ]; then corpus_root=$2; shift 2; fi
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=("${TMF_HARNESSES[@]}")

dir=$root/build/fuzz-cov
tmf_build_coverage "$root" $(tmf_targets replay "${harnesses[@]}")
rm -rf "$dir/profiles"
mkdir -p "$dir/profiles"
objects=()
for h in "${harnesses[@]}"; do
  inputs=("$root/corpus/$h")
  if [ -n "$corpus_root" ] && [ -d "$corpus_root/$h/corpus" ]; then inputs+=("$corpus_root/$h/corpus"); fi
  if [ -n "$corpus_root" ] && [ -d "$corpus_root/$h/out/main/queue" ]; then inputs+=("$corpus_root/$h/out/main/queue"); fi
  LLVM_PROFILE_FILE="$dir/profiles/$h-%p.profraw" "$dir/fuzz/replay_$h" "${inputs[@]}" 2>"$dir/replay-$h.log" ||
    { tail -n 5 "$dir/replay-$h.log" >&2; exit 1; }
  objects+=(-object "$dir/fuzz/replay_$h")
done
# The same corpus once more under options taken from the environment.
if [ ${#harnesses[@]} -eq ${#TMF_HARNESSES[@]} ]; then
  LLVM_PROFILE_FILE="$dir/profiles/env-%p.profraw" tmf_replay_with_env_options "$dir/fuzz" "$root" ||
    { echo "replay with environment options failed" >&2; exit 1; }
fi
llvm-profdata merge -sparse "$dir"/profiles/*.profraw -o "$dir/merged.profdata"
sources=()
for f in "$root"/src/*.c "$root"/src/*.h; do
  case $(basename "$f") in
  override.c) continue ;; # the malloc symbols: not linked into the harnesses
  track.h) continue ;;    # tool hooks: empty in this (untracked) build
  esac
  sources+=("$f")
done
llvm-cov report "${objects[@]:1}" -instr-profile="$dir/merged.profdata" "${sources[@]}" >"$dir/report.txt"
llvm-cov show "${objects[@]:1}" -instr-profile="$dir/merged.profdata" -format=html -output-dir="$dir/html" \
  -show-line-counts-or-regions "${sources[@]}" >/dev/null 2>&1 || true
llvm-cov show "${objects[@]:1}" -instr-profile="$dir/merged.profdata" "${sources[@]}" >"$dir/lines.txt" 2>/dev/null || true
echo "coverage of src/ by ${harnesses[*]} (report $dir/report.txt, html $dir/html/index.html):"
grep -E '^(Filename|TOTAL)' "$dir/report.txt"
