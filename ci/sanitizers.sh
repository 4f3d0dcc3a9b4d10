#!/usr/bin/env bash
# ci/sanitizers.sh owns the sanitizer and Valgrind runs: it builds the
# san-asan (ASan+UBSan, clang), san-tsan (TSan, clang) and san-memcheck
# (gcc, Valgrind backend, every test under memcheck) presets from
# ci/presets-sanitizers.json and runs the whole ctest suite in each, bug
# programs included. It installs missing Debian packages and must never
# touch anything outside build/san-*. Usage: ci/sanitizers.sh [asan|tsan|memcheck]...
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(asan tsan memcheck)

install_missing_packages() {
  local missing=()
  while read -r pkg; do
    pkg=${pkg%%#*}
    pkg=${pkg//[[:space:]]/}
    [ -n "$pkg" ] || continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done <ci/packages-sanitizers.txt
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "sanitizers.sh: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}

# The presets live in ci/presets-sanitizers.json; CMakePresets.json is meant
# to include it. Until it does, a temporary CMakeUserPresets.json includes it.
user_presets_made=0
ensure_presets() {
  if cmake --list-presets 2>/dev/null | grep -q '"san-asan"'; then return 0; fi
  if [ -e CMakeUserPresets.json ]; then
    echo "sanitizers.sh: add \"include\": [\"ci/presets-sanitizers.json\"] to CMakePresets.json" >&2
    exit 1
  fi
  printf '{ "version": 4, "include": [ "ci/presets-sanitizers.json" ] }\n' >CMakeUserPresets.json
  user_presets_made=1
}
cleanup() { if [ "$user_presets_made" -eq 1 ]; then rm -f CMakeUserPresets.json; fi; }
trap cleanup EXIT

run_config() {
  local name=san-$1 start=$SECONDS log=build/san-$1.build.log
  echo "==== $name: configure + build"
  cmake --preset "$name" >"$log" 2>&1 || { cat "$log"; return 1; }
  cmake --build --preset "$name" -j "$(nproc)" >>"$log" 2>&1 || { cat "$log"; return 1; }
  rm -f "$log"
  echo "==== $name: ctest"
  if ! ctest --preset "$name" -j "$(nproc)"; then
    echo "==== $name: FAILED after $((SECONDS - start)) s"
    return 1
  fi
  echo "==== $name: passed in $((SECONDS - start)) s"
}

for config in "${configs[@]}"; do
  case $config in
    asan | tsan | memcheck) ;;
    *) echo "sanitizers.sh: unknown configuration $config (asan, tsan, memcheck)" >&2; exit 2 ;;
  esac
done
install_missing_packages
ensure_presets
mkdir -p build
total=$SECONDS
failed=()
for config in "${configs[@]}"; do
  run_config "$config" || failed+=("$config") # every configuration runs, then the verdict
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "sanitizers.sh: FAILED: ${failed[*]} (of ${configs[*]}) in $((SECONDS - total)) s"
  exit 1
fi
echo "sanitizers.sh: all passed (${configs[*]}) in $((SECONDS - total)) s"
