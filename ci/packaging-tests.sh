#!/usr/bin/env bash
# ci/packaging-tests.sh: the checks of the fuzzing-service and hosted-CI files
# that ctest does not run (the rest of the packaging tests are ctest -L
# packaging). Runs oss-fuzz/build.sh as the OSS-Fuzz builder would ($SRC with
# the checkout in $SRC/tinymalloc and build.sh beside it; $CC, $CXX,
# $CFLAGS, $CXXFLAGS, $LIB_FUZZING_ENGINE, $OUT, $WORK) for each engine
# (libFuzzer; AFL++ with afl-clang-fast and its driver; a plain-replay engine,
# tests/packaging/replay_engine.c) and each sanitizer setting (address,
# undefined), then every target it left in $OUT over every input of its seed
# corpus zip; short libFuzzer and afl-fuzz runs of the address builds; the
# ClusterFuzzLite build (.clusterfuzzlite/build.sh); and a syntax and
# consistency check of the YAML, workflow, Docker and shell files
# (tests/packaging/check_service_files.py). Works only under
# build/packaging-services. About two minutes on two cores.
# Usage: ci/packaging-tests.sh [--quick] [--no-install]
#   --quick       only the libFuzzer/address and replay/undefined builds, no fuzzing runs
#   --no-install  do not apt-get the missing packages of ci/packages-packaging.txt
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$root/build/packaging-services

quick=0
install=1
for arg in "$@"; do
  case $arg in
  --quick) quick=1 ;;
  --no-install) install=0 ;;
  *) echo "usage: ci/packaging-tests.sh [--quick] [--no-install]" >&2; exit 2 ;;
  esac
done

start=$SECONDS
log() { printf '[packaging %3ds] %s\n' "$((SECONDS - start))" "$*"; }
# A failed check is recorded and the others still run.
failures=()
fail() {
  log "FAILED: $*"
  failures+=("$*")
}

if [ "$install" -eq 1 ]; then
  missing=()
  while read -r pkg; do
    pkg=${pkg%%#*}
    pkg=${pkg//[[:space:]]/}
    [ -n "$pkg" ] || continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$pkg")
  done <"$root/ci/packages-packaging.txt"
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

rm -rf "$work"
mkdir -p "$work"

log "YAML, workflow and Dockerfile checks"
python3 "$root/tests/packaging/check_service_files.py" "$root" || fail "service files (check_service_files.py)"
for script in oss-fuzz/build.sh .clusterfuzzlite/build.sh fuzz/oss-fuzz-build.sh ci/packaging-tests.sh \
  tests/packaging/packaging.sh; do
  bash -n "$root/$script" || fail "$script: shell syntax"
done
if command -v shellcheck >/dev/null; then
  (cd "$root" && shellcheck -S warning oss-fuzz/build.sh .clusterfuzzlite/build.sh ci/packaging-tests.sh \
    tests/packaging/packaging.sh) || fail "shellcheck"
fi

# The flags OSS-Fuzz's builder sets (infra/base-images: base-clang's CFLAGS and
# the per-sanitizer SANITIZER_FLAGS_*; libFuzzer adds its coverage flag).
common_flags="-O1 -fno-omit-frame-pointer -gline-tables-only -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION"
ubsan_checks=array-bounds,bool,builtin,enum,float-divide-by-zero,function,integer-divide-by-zero,null,object-size
ubsan_checks+=,return,returns-nonnull-attribute,shift,signed-integer-overflow,unreachable,vla-bound,vptr
declare -A sanitizer_flags=(
  [address]="-fsanitize=address -fsanitize-address-use-after-scope"
  [undefined]="-fsanitize=$ubsan_checks,unsigned-integer-overflow -fno-sanitize-recover=$ubsan_checks"
)
# ... and the runner's options (ClusterFuzz silences the unsigned overflows
# it compiles in for their coverage signal).
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:silence_unsigned_overflow=1

# The plain-replay engine: main() running the target on each file given.
mkdir -p "$work/engines"
clang -O1 -g -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror -c "$root/tests/packaging/replay_engine.c" \
  -o "$work/engines/replay_engine.o"
ar rcs "$work/engines/libreplay_engine.a" "$work/engines/replay_engine.o"

afl_driver=""
for candidate in /usr/lib/afl/libAFLDriver.a /usr/local/lib/afl/libAFLDriver.a /usr/lib/libAFLDriver.a; do
  if [ -f "$candidate" ]; then afl_driver=$candidate; break; fi
done

# service_build NAME SCRIPT ENGINE SANITIZER: runs SCRIPT (the service's
# build.sh) as its builder would; the targets land in $work/NAME/out.
service_build() {
  local name=$1 script=$2 engine=$3 sanitizer=$4
  local d=$work/$name
  mkdir -p "$d/src" "$d/out" "$d/work"
  ln -s "$root" "$d/src/tinymalloc" # the Dockerfiles' checkout or COPY
  cp "$root/$script" "$d/src/build.sh"
  local cc cxx coverage="" engine_lib
  case $engine in
  libfuzzer) cc=clang cxx=clang++ coverage=-fsanitize=fuzzer-no-link engine_lib=-fsanitize=fuzzer ;;
  afl) cc=afl-clang-fast cxx=afl-clang-fast++ engine_lib=$afl_driver ;;
  replay) cc=clang cxx=clang++ engine_lib=$work/engines/libreplay_engine.a ;;
  esac
  local flags="$common_flags ${sanitizer_flags[$sanitizer]} $coverage"
  log "$name: $script, engine $engine, sanitizer $sanitizer"
  if ! (cd "$d/src/tinymalloc" &&
    env CC="$cc" CXX="$cxx" CFLAGS="$flags" CXXFLAGS="$flags" LIB_FUZZING_ENGINE="$engine_lib" \
      SRC="$d/src" OUT="$d/out" WORK="$d/work" FUZZING_ENGINE="$engine" SANITIZER="$sanitizer" \
      FUZZING_LANGUAGE=c ARCHITECTURE=x86_64 nice bash -eu "$d/src/build.sh") >"$d/build.log" 2>&1; then
    tail -n 30 "$d/build.log"
    fail "$name: $script failed (log: $d/build.log)"
    return 1
  fi
  rm "$d/src/tinymalloc"
}

# run_seeds NAME ENGINE: every target in $work/NAME/out, over every input of
# its seed corpus zip; the engine's own output must show each input ran.
run_seeds() {
  local name=$1 engine=$2 out=$work/$1/out targets=() t
  for t in "$out"/*; do
    case $t in *.zip | *.dict | *.options) continue ;; esac
    [ -f "$t" ] && [ -x "$t" ] && targets+=("$t")
  done
  [ ${#targets[@]} -gt 0 ] || { fail "$name: no fuzz target in $out"; return 1; }
  for t in "${targets[@]}"; do
    local base=${t##*/}
    for extra in "$base.dict" "$base.options" "${base}_seed_corpus.zip"; do
      [ -s "$out/$extra" ] || fail "$name: $base has no $extra"
    done
    [ -s "$out/${base}_seed_corpus.zip" ] || continue
    local seeds=$work/$name/seeds/$base
    mkdir -p "$seeds"
    unzip -q -o "$out/${base}_seed_corpus.zip" -d "$seeds"
    local inputs=("$seeds"/*)
    [ -f "${inputs[0]}" ] || { fail "$name: the seed corpus of $base is empty"; continue; }
    # stdout and stderr apart: a block-buffered stdout would split its lines
    # among the harness's reports.
    local runlog=$work/$name/run-$base ran
    if ! (cd "$out" && "./$base" "${inputs[@]}") >"$runlog.out" 2>"$runlog.err"; then
      tail -n 20 "$runlog.err"
      fail "$name: $base failed on its seed corpus (log: $runlog.err)"
      continue
    fi
    case $engine in
    libfuzzer) ran=$(grep -c '^Executed ' "$runlog.err" || true) ;;
    afl) ran=$(grep -c '^Execution successful' "$runlog.out" || true) ;;
    replay) ran=$(sed -n 's/^replay-engine: \([0-9]*\) inputs run$/\1/p' "$runlog.err") ;;
    esac
    if [ "${ran:-0}" -ne ${#inputs[@]} ]; then
      fail "$name: $base ran ${ran:-0} of its ${#inputs[@]} seeds (log: $runlog.out, .err)"
    elif grep -E 'ERROR: AddressSanitizer|runtime error:' "$runlog.err" >/dev/null; then
      fail "$name: $base reported an error on its seeds (log: $runlog.err)"
    else
      log "$name: $base ran all ${#inputs[@]} seeds"
    fi
  done
}

matrix=("libfuzzer address" "libfuzzer undefined" "afl address" "afl undefined" "replay address" "replay undefined")
[ "$quick" -eq 0 ] || matrix=("libfuzzer address" "replay undefined")
builds=()
for entry in "${matrix[@]}"; do
  read -r engine sanitizer <<<"$entry"
  if [ "$engine" = afl ] && { [ -z "$afl_driver" ] || ! command -v afl-clang-fast >/dev/null; }; then
    fail "AFL++ (afl-clang-fast, libAFLDriver.a) is not installed: apt-get install afl++"
    continue
  fi
  builds+=("oss-fuzz-$engine-$sanitizer oss-fuzz/build.sh $engine $sanitizer")
done
builds+=("clusterfuzzlite-libfuzzer-address .clusterfuzzlite/build.sh libfuzzer address")
# Two builds at a time (each compiles one file after another), then the runs.
for build in "${builds[@]}"; do
  # shellcheck disable=SC2086 # the entry is four words
  (service_build $build && touch "$work/${build%% *}.built") &
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n || true; done
done
wait
for build in "${builds[@]}"; do
  read -r name _ engine _ <<<"$build"
  if [ -f "$work/$name.built" ]; then
    run_seeds "$name" "$engine"
  else
    fail "$name: the build failed (log: $work/$name/build.log)"
  fi
done

if [ "$quick" -eq 0 ]; then
  # The builds also fuzz: a few seconds of each engine on one target.
  out=$work/oss-fuzz-libfuzzer-address/out
  if [ -x "$out/fuzz_ops" ]; then
    mkdir -p "$work/fuzz-libfuzzer/corpus"
    cp "$work/oss-fuzz-libfuzzer-address/seeds/fuzz_ops/"* "$work/fuzz-libfuzzer/corpus/"
    if (cd "$out" && ./fuzz_ops -max_total_time=5 -dict=fuzz_ops.dict -artifact_prefix="$work/fuzz-libfuzzer/" \
      "$work/fuzz-libfuzzer/corpus") >"$work/fuzz-libfuzzer/log" 2>&1; then
      log "libFuzzer: fuzz_ops fuzzed for 5 s ($(grep -o 'Done [0-9]* runs' "$work/fuzz-libfuzzer/log"))"
    else
      tail -n 20 "$work/fuzz-libfuzzer/log"
      fail "libFuzzer run of the OSS-Fuzz fuzz_ops (log: $work/fuzz-libfuzzer/log)"
    fi
  fi
  out=$work/oss-fuzz-afl-address/out
  if [ -x "$out/fuzz_ops" ]; then
    d=$work/fuzz-afl
    mkdir -p "$d"
    # afl-fuzz insists on symbolize=0.
    if ASAN_OPTIONS=${ASAN_OPTIONS/symbolize=1/symbolize=0} AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
      AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_FAST_CAL=1 \
      afl-fuzz -i "$work/oss-fuzz-afl-address/seeds/fuzz_ops" -o "$d/out" -x "$out/fuzz_ops.dict" -V 5 \
      -t 10000 -m none -- "$out/fuzz_ops" >"$d/log" 2>&1; then
      execs=$(sed -nE 's/^execs_done *: *//p' "$d/out/default/fuzzer_stats")
      crashes=$(sed -nE 's/^(saved|unique)_crashes *: *//p' "$d/out/default/fuzzer_stats" | head -n 1)
      if [ "${execs:-0}" -gt 0 ] && [ "${crashes:-0}" -eq 0 ]; then
        log "AFL++: fuzz_ops fuzzed for 5 s ($execs executions)"
      else
        fail "afl-fuzz on the OSS-Fuzz fuzz_ops: $execs executions, ${crashes:-0} crashes (in $d/out)"
      fi
    else
      tail -n 20 "$d/log"
      fail "afl-fuzz on the OSS-Fuzz fuzz_ops (log: $d/log)"
    fi
  fi
fi

if [ ${#failures[@]} -gt 0 ]; then
  log "${#failures[@]} check(s) failed:"
  printf '  - %s\n' "${failures[@]}" >&2
  exit 1
fi
log "fuzzing-service and CI files: all checks passed"
