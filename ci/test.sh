#!/usr/bin/env bash
# ci/test.sh: the README's test command and the whole of CI (.ci/run calls
# it). On a fresh Debian 12 machine it installs what is missing (apt-get,
# only then), builds and runs the suite with gcc (release preset) and clang
# (warnings as errors with both), then the sanitizer and Valgrind runs
# (ci/sanitizers.sh), the packaging checks (ci/packaging-tests.sh) and the
# fuzzing checks (ci/fuzz-tests.sh). Exits non-zero on any failure.
# Usage: ci/test.sh [--quick]  (--quick: gcc build and its suite only)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

quick=0
for arg in "$@"; do
  case $arg in
  --quick) quick=1 ;;
  *) echo "usage: ci/test.sh [--quick]" >&2; exit 2 ;;
  esac
done

start=$SECONDS
stage() { printf '\n==== %s (%ds)\n' "$*" "$((SECONDS - start))"; }

install_missing() {
  local wanted=(gcc clang cmake ninja-build make pkg-config check valgrind python3)
  local pkg
  for file in ci/packages*.txt; do
    [ -e "$file" ] || continue
    while read -r pkg; do
      pkg=${pkg%%#*}
      pkg=${pkg//[[:space:]]/}
      [ -n "$pkg" ] && wanted+=("$pkg")
    done <"$file"
  done
  local missing=()
  for pkg in $(printf '%s\n' "${wanted[@]}" | sort -u); do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "all required packages are installed"
    return 0
  fi
  echo "installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

results=()
run_stage() {
  local name=$1
  shift
  stage "$name"
  local t0=$SECONDS
  if "$@"; then
    results+=("PASS  $name ($((SECONDS - t0))s)")
  else
    results+=("FAIL  $name ($((SECONDS - t0))s)")
  fi
}

preset_suite() {
  local preset=$1
  shift
  cmake --preset "$preset" >/dev/null &&
    cmake --build --preset "$preset" -j "$(nproc)" &&
    ctest --preset "$preset" -j "$(nproc)" "$@"
}

stage "dependencies"
install_missing

run_stage "gcc: build + full ctest suite (unit, death, stress, RSS, override, regress, detect, packaging, fuzz replay)" preset_suite release
run_stage "module graph: no dependency cycle among the core's objects (ci/deps.py)" \
  python3 ci/deps.py build/release/CMakeFiles/tm_objects.dir/src
if [ "$quick" -eq 0 ]; then
  run_stage "clang: build (-Werror) + unit, stress and RSS tests" preset_suite clang -L "unit|stress|rss"
  run_stage "packaging: OSS-Fuzz/ClusterFuzzLite builds, YAML/Docker checks (ci/packaging-tests.sh)" \
    ci/packaging-tests.sh --no-install
  run_stage "sanitizers: ASan+UBSan, TSan, Valgrind memcheck (ci/sanitizers.sh)" ci/sanitizers.sh
  run_stage "fuzzing: replays, smoke runs, injected bugs, coverage (ci/fuzz-tests.sh)" ci/fuzz-tests.sh --no-install
fi

stage "summary"
passed=0
failed=0
for r in "${results[@]}"; do
  echo "$r"
  case $r in PASS*) passed=$((passed + 1)) ;; *) failed=$((failed + 1)) ;; esac
done
echo "total time: $((SECONDS - start))s"
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
