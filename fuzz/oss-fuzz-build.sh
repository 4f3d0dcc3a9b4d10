#!/usr/bin/env bash
# fuzz/oss-fuzz-build.sh: the OSS-Fuzz / ClusterFuzzLite build script. Uses
# their conventions ($CC, $CFLAGS, $LIB_FUZZING_ENGINE, $OUT, optional $SRC
# and $WORK; $CXX and $CXXFLAGS, by default clang++ and $CFLAGS, link the
# targets, as OSS-Fuzz requires even of C projects since its engine libraries
# are C++) to build fuzz_<harness> for every harness, and puts next to each
# target its dictionary, options and seed corpus zip. Test it locally with
# ci/fuzz-tests.sh (which sets the variables as that infrastructure does).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
: "${CC:=clang}" "${CFLAGS:=}" "${LIB_FUZZING_ENGINE:=-fsanitize=fuzzer}" "${CXX:=clang++}" "${CXXFLAGS:=$CFLAGS}"
: "${OUT:?OUT must name the output directory}"
work=${WORK:-$(mktemp -d)}
mkdir -p "$OUT" "$work/tinymalloc-objs"

# The tracking backend follows the sanitizer: ASan poisons tinymalloc's
# blocks; under MSan/UBSan-only builds the core runs untracked.
defs=(-D_GNU_SOURCE)
hdefs=(-D_GNU_SOURCE)
case " $CFLAGS " in *-fsanitize=address*) defs+=(-DTM_TRACK_ASAN=1) hdefs+=(-DTMF_TRACKED_CORE=1) ;; esac
core_flags=(-std=c11 -fvisibility=hidden -fno-builtin-malloc -fno-builtin-calloc -fno-builtin-realloc
  -fno-builtin-free -ftls-model=initial-exec -Wall)

# shellcheck disable=SC2086 # CFLAGS is a flag list by convention
objs=()
for f in "$root"/src/*.c; do
  case $(basename "$f") in override.c) continue ;; esac # the malloc symbols are not fuzzed here
  o=$work/tinymalloc-objs/$(basename "$f" .c).o
  $CC $CFLAGS "${core_flags[@]}" "${defs[@]}" -I"$root/include" -I"$root/src" -c "$f" -o "$o"
  objs+=("$o")
done
. "$root/fuzz/lib.sh"
# The structure-aware mutator calls LLVMFuzzerMutate, which libFuzzer and
# AFL++'s driver provide; an engine without it (a plain replay main) gets
# the targets without the mutator.
mutator=()
case ${FUZZING_ENGINE:-libfuzzer} in libfuzzer | afl) mutator=(libfuzzer_mutator.c) ;; esac
for h in "${TMF_HARNESSES[@]}"; do
  hobjs=()
  for f in common.c shadow.c grammar.c mutator.c ops.c "harness_$h.c" libfuzzer_main.c "${mutator[@]}"; do
    o=$work/tinymalloc-objs/$h-$(basename "$f" .c).o
    $CC $CFLAGS -std=c11 "${hdefs[@]}" -Wall -I"$root/include" -I"$root/fuzz" -c "$root/fuzz/$f" -o "$o"
    hobjs+=("$o")
  done
  $CXX $CXXFLAGS $LIB_FUZZING_ENGINE "${hobjs[@]}" "${objs[@]}" -lpthread -o "$OUT/fuzz_$h"
  cp "$root/fuzz/$h.dict" "$OUT/fuzz_$h.dict"
  tmf_libfuzzer_flags "$root" "$h"
  {
    echo "[libfuzzer]"
    echo "dict = fuzz_$h.dict"
    for f in "${TMF_LF_FLAGS[@]}"; do
      case $f in -dict=*) ;; *) f=${f#-}; echo "${f%%=*} = ${f#*=}" ;; esac
    done
  } >"$OUT/fuzz_$h.options"
  rm -f "$OUT/fuzz_${h}_seed_corpus.zip"
  (cd "$root/corpus/$h" && zip -q -j "$OUT/fuzz_${h}_seed_corpus.zip" ./*)
done
echo "oss-fuzz-build: built $(ls "$OUT"/fuzz_* | grep -vcE '\.(dict|options|zip)$') targets in $OUT"
