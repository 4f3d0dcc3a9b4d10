#!/usr/bin/env bash
# fuzz/prove-bugs.sh: proof that the harnesses catch real allocator bugs.
# Each fuzz/bugs/*.patch is applied to a scratch copy of src/ (never to the
# tree itself) under build/fuzz-bugs/, built, and hunted with a time bound;
# the run fails unless every bug is caught and its reproducer fails again
# when replayed alone, in a fresh process, by the replay driver. A patch that
# no longer applies to src/ (the core changed under it) is reported as a
# STALE PATCH, not as a bug the harnesses missed; the run then exits with 3
# (1 when a bug was missed or did not reproduce).
#
# Usage: fuzz/prove-bugs.sh [--time SECONDS] [--from-scratch] [--core-from REV] [PATCH...]
#   --core-from     take the core (src/, include/) from commit REV instead of
#                   the working tree (when src/ has someone else's edits)
#   --time          libFuzzer time bound per bug (default 45)
#   --from-scratch  skip the corpus replay and fuzz from a one-op seed, to
#                   measure how long the fuzzer itself needs
# A patch names its harness in a line "Harness: NAME" and may ask for the
# TSan replay with "Detect: tsan" (data races on the cross-thread path).
# "Expect: rare" marks a race whose window is a few instructions: not
# catching it within the bound is reported (RARELY CAUGHT) but does not fail
# the run; a catch is replayed alone 20 times instead of 5, and if that
# misses the window, the corpus replay is run again (up to 5 times: REPRO
# "corpus" when it fails again); a catch that reproduces neither way is
# counted with the rare ones (REPRO "no"), not failed.
# "Harness: lifecycle" means fuzz/lifecycle_test (calls before initialisation
# and the other cases no fuzz harness can drive), built against the patched
# core and run as it is, in both modes.
# Builds call the compiler directly: the harness and the untouched core
# files are compiled once per flavour, each bug recompiles only what its
# patch touches (everything when it touches a header).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/fuzz/lib.sh"

limit=45
scratch_mode=0
core_rev=""
patches=()
while [ $# -gt 0 ]; do
  case $1 in
  --time) limit=$2; shift 2 ;;
  --from-scratch) scratch_mode=1; shift ;;
  --core-from) core_rev=$2; shift 2 ;;
  *) patches+=("$(realpath "$1")"); shift ;;
  esac
done
[ ${#patches[@]} -gt 0 ] || patches=("$root"/fuzz/bugs/*.patch)

base=${TMF_BUGS_DIR:-$root/build/fuzz-bugs}
mkdir -p "$base"
# One snapshot of the core for the whole run: the pristine objects and every
# patched tree come from it, even if src/ changes meanwhile.
snap=$base/snapshot
rm -rf "$snap" "$base"/pristine-*
mkdir -p "$snap"
if [ -n "$core_rev" ]; then
  git -C "$root" archive "$core_rev" src include | tar -x -C "$snap"
else
  cp -r "$root/include" "$root/src" "$snap/"
fi
table=$base/results.txt
: >"$table"
failed=0
jobs=$(nproc)

now_ms() { date +%s%3N; }

CORE_FLAGS=(-std=c11 -D_GNU_SOURCE -fvisibility=hidden -fno-builtin-malloc -fno-builtin-calloc
  -fno-builtin-realloc -fno-builtin-free -ftls-model=initial-exec -g1 -O1)
SAN_LF=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
# flavour -> extra flags for the core, for the harness, and for the link
flavour_flags() {
  case $1 in
  plain) CORE_X=() HARN_X=() LINK_X=() ;;
  tsan) CORE_X=(-fsanitize=thread) HARN_X=(-fsanitize=thread) LINK_X=(-fsanitize=thread) ;;
  libfuzzer)
    CORE_X=(-fsanitize=fuzzer-no-link "${SAN_LF[@]}" -DTM_TRACK_ASAN=1)
    HARN_X=("${SAN_LF[@]}" -DTMF_TRACKED_CORE=1)
    LINK_X=(-fsanitize=fuzzer "${SAN_LF[@]}")
    ;;
  esac
}

core_sources() { # the core as the fuzz builds link it: src/*.c without the malloc symbols
  local f
  for f in "$1"/src/*.c; do [ "$(basename "$f")" = override.c ] || echo "$f"; done
}

# compile OUT_DIR FLAGS... -- SOURCES...: parallel, one object per source.
compile() {
  local out=$1
  shift
  local flags=()
  while [ "$1" != "--" ]; do flags+=("$1"); shift; done
  shift
  mkdir -p "$out"
  printf '%s\n' "$@" | xargs -P "$jobs" -I{} sh -c 'clang "$@" -c "$0" -o "'"$out"'/$(basename "$0" .c).o"' {} "${flags[@]}"
}

# The pristine objects of a flavour: core and harness support (built once).
pristine() {
  local flavour=$1 dir=$base/pristine-$1
  [ -f "$dir/.done" ] && return 0
  flavour_flags "$flavour"
  rm -rf "$dir"
  local core=() harness=() h
  mapfile -t core < <(core_sources "$snap")
  compile "$dir/core" "${CORE_FLAGS[@]}" "${CORE_X[@]}" -I"$snap/include" -I"$snap/src" -- "${core[@]}" || return 1
  harness=("$root"/fuzz/{common,shadow,grammar,mutator,ops,replay_main,libfuzzer_main,libfuzzer_mutator}.c)
  for h in "${TMF_HARNESSES[@]}"; do harness+=("$root/fuzz/harness_$h.c"); done
  compile "$dir/fuzz" -std=c11 -D_GNU_SOURCE -g1 -O1 "${HARN_X[@]}" -I"$root/include" -I"$root/fuzz" -- "${harness[@]}" || return 1
  touch "$dir/.done"
}

# build_bug TREE PATCH FLAVOUR HARNESS OUT: links OUT from the pristine
# objects and the recompiled files of the patched tree.
build_bug() {
  local tree=$1 patch=$2 flavour=$3 h=$4 out=$5
  pristine "$flavour" || return 1
  flavour_flags "$flavour"
  local pdir=$base/pristine-$flavour objdir
  objdir=$(dirname "$out")/obj-$flavour
  rm -rf "$objdir"
  mkdir -p "$objdir"
  local touched=() all=() f
  mapfile -t touched < <(sed -nE 's|^\+\+\+ b/(src/[^[:space:]]+).*|\1|p' "$patch")
  mapfile -t all < <(core_sources "$tree")
  local recompile=()
  if printf '%s\n' "${touched[@]}" | grep -q '\.h$'; then
    recompile=("${all[@]}")
  else
    for f in "${touched[@]}"; do recompile+=("$tree/$f"); done
  fi
  compile "$objdir" "${CORE_FLAGS[@]}" "${CORE_X[@]}" -I"$tree/include" -I"$tree/src" -- "${recompile[@]}" || return 1
  local objs=() o
  for o in "$pdir"/core/*.o; do
    if [ -f "$objdir/$(basename "$o")" ]; then objs+=("$objdir/$(basename "$o")"); else objs+=("$o"); fi
  done
  local driver=(replay_main)
  [ "$flavour" != libfuzzer ] || driver=(libfuzzer_main libfuzzer_mutator)
  local support=() d
  for d in common shadow grammar mutator ops "${driver[@]}" "harness_$h"; do support+=("$pdir/fuzz/$d.o"); done
  clang "${LINK_X[@]}" "${support[@]}" "${objs[@]}" -lpthread -o "$out"
}

# build_lifecycle TREE PATCH OUT: fuzz/lifecycle_test linked with the plain
# objects of the patched core.
build_lifecycle() {
  local tree=$1 patch=$2 out=$3
  pristine plain || return 1
  flavour_flags plain
  local pdir=$base/pristine-plain objdir
  objdir=$(dirname "$out")/obj-lifecycle
  rm -rf "$objdir"
  mkdir -p "$objdir"
  local touched=() all=() recompile=() f o objs=()
  mapfile -t touched < <(sed -nE 's|^\+\+\+ b/(src/[^[:space:]]+).*|\1|p' "$patch")
  mapfile -t all < <(core_sources "$tree")
  if printf '%s\n' "${touched[@]}" | grep -q '\.h$'; then
    recompile=("${all[@]}")
  else
    for f in "${touched[@]}"; do recompile+=("$tree/$f"); done
  fi
  compile "$objdir" "${CORE_FLAGS[@]}" -I"$tree/include" -I"$tree/src" -- "${recompile[@]}" || return 1
  for o in "$pdir"/core/*.o; do
    if [ -f "$objdir/$(basename "$o")" ]; then objs+=("$objdir/$(basename "$o")"); else objs+=("$o"); fi
  done
  clang -std=c11 -D_GNU_SOURCE -g1 -O1 -I"$root/include" "$root/fuzz/lifecycle_test.c" "${objs[@]}" -lpthread -o "$out"
}

# The most telling line of a failure log: the harness's own verdict first,
# then a sanitizer's, then the allocator's report.
first_report() {
  grep -E 'tinymalloc-fuzz: ' "$1" | grep -v -E ' while replaying |warm mode: ' | head -n 1 | grep . ||
    grep -m1 -E 'WARNING: ThreadSanitizer|ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error' "$1" ||
    grep -m1 -E 'tinymalloc' "$1"
}

# Replays each file alone (up to `tries` times: a data race needs the right
# interleaving); prints the first that fails. With a 4th argument, that file
# (the one the replay log names) is tried first, up to `first_tries` times.
first_failing_input() {
  local bin=$1 dir=$2 tries=${3:-1} first=${4:-} first_tries=${5:-1} f t
  if [ -n "$first" ] && [ -f "$first" ]; then
    for ((t = 0; t < first_tries; t++)); do
      if ! timeout 60 "$bin" "$first" >/dev/null 2>&1; then
        echo "$first"
        return 0
      fi
    done
  fi
  for f in "$dir"/*; do
    for ((t = 0; t < tries; t++)); do
      if ! timeout 60 "$bin" "$f" >/dev/null 2>&1; then
        echo "$f"
        return 0
      fi
    done
  done
  return 1
}

record() { printf '%-28s %-8s %-14s %7s  %-5s %s\n' "$@" | tee -a "$table"; }

stale=0
rare=0
record BUG HARNESS "CAUGHT BY" "TIME" "REPRO" "FIRST REPORT"
for patch in "${patches[@]}"; do
  name=$(basename "$patch" .patch)
  harness=$(sed -nE 's/^Harness: *([a-z]+).*/\1/p' "$patch" | head -n 1)
  detect=$(sed -nE 's/^Detect: *([a-z]+).*/\1/p' "$patch" | head -n 1)
  expect=$(sed -nE 's/^Expect: *([a-z]+).*/\1/p' "$patch" | head -n 1)
  [ -n "$harness" ] || harness=ops
  dir=$base/$name
  tree=$dir/tree
  rm -rf "$dir"
  mkdir -p "$tree"
  cp -r "$snap/include" "$snap/src" "$tree/"
  if ! (cd "$tree" && patch -p1 -s -f --dry-run --no-backup-if-mismatch <"$patch") >"$dir/patch.log" 2>&1; then
    # The core changed under the patch: that says nothing about the harnesses.
    record "$name" "$harness" "STALE PATCH" "-" "-" \
      "no longer applies to src/ ($(grep -m1 -oE 'can.t find file to patch|[0-9]+ out of [0-9]+ hunks? FAILED' "$dir/patch.log" || echo "see $dir/patch.log"))"
    stale=$((stale + 1))
    rm -rf "$tree"
    continue
  fi
  (cd "$tree" && patch -p1 -s -f --no-backup-if-mismatch <"$patch") >"$dir/patch.log" 2>&1
  corpus=$root/corpus/$harness
  caught="" elapsed="-" repro="-" reason="" input=""

  if [ "$detect" = tsan ]; then
    if ! build_bug "$tree" "$patch" tsan "$harness" "$dir/replay-tsan" >"$dir/build.log" 2>&1; then
      record "$name" "$harness" "BUILD FAILED" "-" "-" "$(grep -m1 error "$dir/build.log")"
      failed=1
      continue
    fi
    t0=$(now_ms)
    for attempt in 1 2 3; do # a race shows only when the threads overlap
      if ! TSAN_OPTIONS="halt_on_error=1 exitcode=66" timeout 120 "$dir/replay-tsan" "$corpus" >"$dir/tsan.log" 2>&1; then
        caught="TSan replay"
        elapsed=$(($(now_ms) - t0))
        reason=$(first_report "$dir/tsan.log")
        input=$(TSAN_OPTIONS="halt_on_error=1 exitcode=66" first_failing_input "$dir/replay-tsan" "$corpus" 5) && repro=yes || repro=no
        break
      fi
    done
  fi

  if [ "$harness" = lifecycle ]; then
    if ! build_lifecycle "$tree" "$patch" "$dir/lifecycle_test" >"$dir/build.log" 2>&1; then
      record "$name" "$harness" "BUILD FAILED" "-" "-" "$(grep -m1 error "$dir/build.log")"
      failed=1
      continue
    fi
    t0=$(now_ms)
    if ! timeout 300 "$dir/lifecycle_test" >"$dir/lifecycle.log" 2>&1; then
      caught="lifecycle_test"
      elapsed=$(($(now_ms) - t0))
      reason=$(grep -m1 FAILED "$dir/lifecycle.log")
      # Deterministic: it must fail again (the healthy build passes it: ci/fuzz-tests.sh).
      if ! timeout 300 "$dir/lifecycle_test" >/dev/null 2>&1; then repro=yes; else repro=no; fi
    fi
  fi

  if [ -z "$caught" ] && [ "$scratch_mode" -eq 0 ] && [ "$harness" != lifecycle ]; then
    if ! build_bug "$tree" "$patch" plain "$harness" "$dir/replay" >"$dir/build.log" 2>&1; then
      record "$name" "$harness" "BUILD FAILED" "-" "-" "$(grep -m1 error "$dir/build.log")"
      failed=1
      continue
    fi
    t0=$(now_ms)
    if ! timeout 120 "$dir/replay" "$corpus" >"$dir/replay.log" 2>&1; then
      caught="corpus replay"
      elapsed=$(($(now_ms) - t0))
      reason=$(first_report "$dir/replay.log")
      # A rare race replays its interleaving a few times in 20 at best:
      # the input the log names gets 20 tries.
      named=$(sed -nE 's/.* while replaying (.*)$/\1/p' "$dir/replay.log" | head -n 1)
      first_tries=1
      [ "$expect" = rare ] && first_tries=20
      input=$(first_failing_input "$dir/replay" "$corpus" 1 "$named" "$first_tries") && repro=yes || repro=no
      # The replay is warm: a rare race may need the state the inputs before
      # the named one left. The corpus replayed again (the replay driver
      # alone, no fuzzer) that fails again reproduces it too.
      if [ "$repro" = no ] && [ "$expect" = rare ]; then
        for ((t = 0; t < 5; t++)); do
          if ! timeout 120 "$dir/replay" "$corpus" >"$dir/replay-again.log" 2>&1; then
            repro=corpus
            break
          fi
        done
      fi
    fi
  fi

  if [ -z "$caught" ] && [ "$harness" != lifecycle ]; then
    if ! build_bug "$tree" "$patch" libfuzzer "$harness" "$dir/fuzz" >"$dir/build.log" 2>&1 ||
      ! build_bug "$tree" "$patch" plain "$harness" "$dir/replay" >>"$dir/build.log" 2>&1; then
      record "$name" "$harness" "BUILD FAILED" "-" "-" "$(grep -m1 error "$dir/build.log")"
      failed=1
      continue
    fi
    seeds=$dir/seeds
    mkdir -p "$seeds" "$dir/crashes"
    if [ "$scratch_mode" -eq 1 ]; then
      tmf_one_op_seed "$harness" "$seeds/one-malloc" # one malloc: the fuzzer finds the rest
    else
      cp "$corpus/"* "$seeds/"
    fi
    tmf_libfuzzer_flags "$root" "$harness"
    t0=$(now_ms)
    timeout $((limit + 60)) "$dir/fuzz" -max_total_time="$limit" "${TMF_LF_FLAGS[@]}" -timeout=20 \
      -artifact_prefix="$dir/crashes/" "$seeds" >"$dir/libfuzzer.log" 2>&1
    # A window (the runs since the last deep check) fails alone; the crash
    # file may need the runs before it.
    input=$(find "$dir/crashes" -type f -name 'window-*' | head -n 1)
    [ -n "$input" ] || input=$(find "$dir/crashes" -type f | head -n 1)
    if [ -n "$input" ]; then
      caught="libFuzzer"
      elapsed=$(($(now_ms) - t0))
      reason=$(first_report "$dir/libfuzzer.log")
      # A saved finding must fail again when replayed alone, without the
      # engine; a race needs the right interleaving: up to 5 tries for the
      # multi-threaded harnesses.
      tries=1
      case $harness in threads | fork) tries=5 ;; esac
      [ "$expect" = rare ] && tries=20
      repro=no
      : >"$dir/repro.log"
      for ((t = 0; t < tries; t++)); do
        if ! timeout 60 "$dir/replay" "$input" >>"$dir/repro.log" 2>&1 ||
          ! timeout 60 "$dir/fuzz" "$input" >>"$dir/repro.log" 2>&1; then
          repro=yes
          break
        fi
      done
    fi
  fi

  if [ -z "$caught" ] && [ "$expect" = rare ]; then
    record "$name" "$harness" "RARELY CAUGHT" "${limit}s+" "-" "(a window of a few instructions: not found this time)"
    rare=$((rare + 1))
  elif [ -z "$caught" ]; then
    record "$name" "$harness" "NOT CAUGHT" "${limit}s+" "-" ""
    failed=1
  else
    record "$name" "$harness" "$caught" "$(awk -v ms="$elapsed" 'BEGIN{printf "%.1fs", ms/1000}')" "$repro" \
      "$(cut -c1-110 <<<"$reason")"
    if [ "$repro" = no ] && [ "$expect" = rare ]; then
      rare=$((rare + 1)) # caught, but its window was not met again: like a rare race not caught
    elif [ "$repro" = no ]; then
      failed=1
    fi
    [ -z "$input" ] || [ "$repro" = corpus ] || cp "$input" "$dir/reproducer.bin"
  fi
  rm -rf "$tree" "$dir"/obj-* "$dir/seeds" # keep binaries, logs and the reproducer
done

if [ "$failed" -ne 0 ]; then
  echo "prove-bugs: FAILED: not every injected bug was caught and reproduced (see $table)" >&2
  exit 1
fi
if [ "$stale" -ne 0 ]; then
  echo "prove-bugs: $stale of ${#patches[@]} patches are stale (they no longer apply to src/: regenerate them" \
    "against the current core); the other $((${#patches[@]} - stale)) were caught and reproduced alone (table: $table)" >&2
  exit 3
fi
if [ "$rare" -ne 0 ]; then
  echo "prove-bugs: $((${#patches[@]} - rare)) of ${#patches[@]} injected bugs caught and reproduced alone;" \
    "$rare marked 'Expect: rare' not caught or not reproduced this time (table: $table)"
  exit 0
fi
echo "prove-bugs: all ${#patches[@]} injected bugs caught and reproduced alone (table: $table)"
