# fuzz/lib.sh: shell helpers shared by ci/fuzz.sh, ci/fuzz-tests.sh,
# fuzz/prove-bugs.sh and fuzz/oss-fuzz-build.sh (sourced, never run): package
# installation, the build flavours under build/fuzz-*, and logging. It must
# never touch anything outside build/fuzz-* (and corpus/ when merging).

TMF_HARNESSES=(ops threads misuse fork)

tmf_log() { printf '[fuzz %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Installs the packages listed in ci/packages-fuzz.txt that are missing.
tmf_install_packages() {
  local root=$1 missing=() pkg
  while read -r pkg; do
    pkg=${pkg%%#*}
    pkg=${pkg//[[:space:]]/}
    [ -n "$pkg" ] || continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done <"$root/ci/packages-fuzz.txt"
  [ ${#missing[@]} -gt 0 ] || return 0
  tmf_log "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# tmf_build SRC_ROOT BUILD_DIR TARGETS... -- CMAKE_ARGS...
# Configures (once) and builds the given targets; the log is printed on
# failure. $TMF_CMAKE_ARGS adds configure arguments to every build.
tmf_build() {
  local src=$1 dir=$2
  shift 2
  local targets=() args=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do targets+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  args=("$@")
  mkdir -p "$dir"
  local log=$dir/build.log
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    if ! cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTINYMALLOC_TESTS=OFF \
      "${args[@]}" ${TMF_CMAKE_ARGS:-} >"$log" 2>&1; then
      cat "$log" >&2
      return 1
    fi
  fi
  if ! cmake --build "$dir" -j "$(nproc)" --target "${targets[@]}" >>"$log" 2>&1; then
    tail -n 60 "$log" >&2
    return 1
  fi
}

# The build flavours. Each prints nothing on success.
tmf_build_plain() { tmf_build "$1" "$1/build/fuzz-plain" "${@:2}" -- ; }
tmf_build_libfuzzer() { tmf_build "$1" "$1/build/fuzz-libfuzzer" "${@:2}" -- -DCMAKE_C_COMPILER=clang -DTINYMALLOC_FUZZ=ON; }
tmf_build_afl() {
  tmf_build "$1" "$1/build/fuzz-afl" "${@:2}" -- -DCMAKE_C_COMPILER=afl-clang-fast || return 1
  tmf_build_afl_mutators "$1"
}

# The AFL++ custom mutators, one shared library per harness
# (build/fuzz-afl/afl-mutator-<h>.so), built with the plain compiler: they run
# inside afl-fuzz, not inside the target.
tmf_build_afl_mutators() {
  local root=$1 h out
  for h in "${TMF_HARNESSES[@]}"; do
    out=$root/build/fuzz-afl/afl-mutator-$h.so
    if [ ! -f "$out" ] || [ -n "$(find "$root/fuzz" -newer "$out" -name '*mutator*.c' -o -newer "$out" -name 'grammar.[ch]')" ]; then
      cc -std=c11 -O2 -shared -fPIC -Wall -Wextra -Werror -DTMF_MUTATOR_HARNESS="\"$h\"" -I"$root/fuzz" \
        "$root/fuzz/afl_mutator.c" "$root/fuzz/mutator.c" "$root/fuzz/grammar.c" -o "$out" || return 1
    fi
  done
}

# The environment of an afl-fuzz run of harness $2: the structure-aware
# mutator, and where a warm-mode failure saves its window ($3, a prefix).
tmf_afl_harness_env() {
  local root=$1 h=$2
  export AFL_CUSTOM_MUTATOR_LIBRARY=$root/build/fuzz-afl/afl-mutator-$h.so
  export TMF_ARTIFACT_PREFIX=$3
}

# Writes to $2 the smallest seed of harness $1 that allocates: one malloc
# (threads: after the header byte), to measure what the fuzzer finds alone.
tmf_one_op_seed() {
  case $1 in
  threads) printf '\x00\x00\x01\x00\x40\x00' >"$2" ;;
  *) printf '\x00\x01\x00\x40\x00' >"$2" ;;
  esac
}

# The longest input the engines make for a harness: an op is 1 to 14 bytes,
# so 1 KiB holds a couple of hundred ops (threads: several streams).
tmf_max_len() { case $1 in threads) echo 2048 ;; *) echo 1024 ;; esac; }

# Sets TMF_LF_FLAGS to the libFuzzer flags every run of harness $2 uses
# (besides time, corpus and artifacts): its input size and dictionary, and
# for ops and misuse the energy of an input scaled down with its execution
# time (the fuzzer spends its time on the cheap inputs that reach the same
# code). Not for threads and fork: there a slow input (a contention episode,
# a fork storm) is often the one that hits a race, and must run again and
# again.
tmf_libfuzzer_flags() {
  local root=$1 h=$2
  TMF_LF_FLAGS=(-max_len="$(tmf_max_len "$h")" -dict="$root/fuzz/$h.dict" -rss_limit_mb=4096)
  case $h in ops | misuse) TMF_LF_FLAGS+=(-entropic_scale_per_exec_time=1) ;; esac
}
tmf_build_tsan() { tmf_build "$1" "$1/build/fuzz-tsan" "${@:2}" -- -DCMAKE_C_COMPILER=clang -DTMF_SANITIZE=thread; }
tmf_build_valgrind() { tmf_build "$1" "$1/build/fuzz-valgrind" "${@:2}" -- -DCMAKE_C_COMPILER=clang -DTMF_TRACK=valgrind; }
tmf_build_coverage() { tmf_build "$1" "$1/build/fuzz-cov" "${@:2}" -- -DCMAKE_C_COMPILER=clang -DTMF_COVERAGE=ON; }

# Every target of a flavour for the given harnesses, e.g. tmf_targets fuzz ops threads.
tmf_targets() {
  local prefix=$1 h
  shift
  for h in "$@"; do printf '%s_%s\n' "$prefix" "$h"; done
}

# The AFL++ environment for headless runs on a shared machine.
tmf_afl_env() {
  export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
  export AFL_SKIP_CRASHES=1 AFL_NO_FORKSRV_WARN=1 AFL_FAST_CAL=1
}

# Replays the corpus under non-default options read from the environment at
# initialisation (junk, immediate or disabled purge, verbose, a fixed arena
# count, statistics at exit, unknown names and bad values that must be
# ignored with a warning), and every corpus in the detection mode: the
# libFuzzer targets are ASan builds, where the mode is a no-op, so only this
# plain replay (and AFL++) runs the mode's paths under the harnesses' ops.
# Usage: tmf_replay_with_env_options BUILD_FUZZ_DIR ROOT
tmf_replay_with_env_options() {
  local bin=$1 root=$2 h
  env TINYMALLOC_JUNK=on TINYMALLOC_PURGE_DELAY_MS=0 TINYMALLOC_VERBOSE=yes TINYMALLOC_ARENAS=3 \
    TINYMALLOC_SHOW_STATS=2 TINYMALLOC_NO_SUCH_OPTION=1 TINYMALLOC_SHOW_ERRORS=5x \
    "$bin/replay_ops" "$root/corpus/ops" 2>/dev/null || return 1
  env TINYMALLOC_PURGE_DELAY_MS=-1 TINYMALLOC_ARENAS=1 TINYMALLOC_JUNK=false TINYMALLOC_SHOW_STATS=1 \
    "$bin/replay_threads" "$root/corpus/threads" 2>/dev/null || return 1
  env TINYMALLOC_SHOW_ERRORS=off TINYMALLOC_PURGE_DELAY_MS=1000 "$bin/replay_misuse" "$root/corpus/misuse" 2>/dev/null ||
    return 1
  for h in ops threads misuse; do
    env TINYMALLOC_DETECT=1 "$bin/replay_$h" "$root/corpus/$h" 2>/dev/null || return 1
  done
}
