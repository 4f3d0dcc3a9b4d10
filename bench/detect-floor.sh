#!/bin/sh
# bench/detect-floor.sh: the least the detection mode's checks can cost.
#
# Builds a second override library from this checkout's src/ with
# bench/detect-floor.patch applied: the mode's passes over the bytes alone
# (fill checked at a hand-out, canary written; canary checked and fill
# written at a free; the forced slack), on the normal mode's fast paths, with
# no quarantine, no claim, no side table and nothing for large blocks (the
# patch's comment says exactly what). Then runs the benchmark suite with
# bench/run.py: tinymalloc's normal mode, TINYMALLOC_DETECT=1 and that floor,
# as ratios to the normal mode, in time and memory and in instructions per
# operation (callgrind: counts, which the machine's load does not change;
# --no-callgrind skips them).
#
#   bench/detect-floor.sh [--runs N] [other bench/run.py options]
#
# The report goes to build/bench/detect-floor.md (docs/detect.md quotes it).
# The floor library is a measurement, never a build of tinymalloc to use: its
# checks report nothing.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/build/bench/floor"
rm -rf "$work"
mkdir -p "$work/src"
cp -R "$root/CMakeLists.txt" "$root/cmake" "$root/include" "$root/src" "$work/src/"
(cd "$work/src" && patch -s -p1 <"$root/bench/detect-floor.patch")
cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTINYMALLOC_TESTS=OFF \
  -DTINYMALLOC_INSTALL=OFF >/dev/null
cmake --build "$work/build" --target tinymalloc_override >/dev/null
lib="$work/build/libtinymalloc-override.so"
test -f "$lib"
exec python3 "$root/bench/run.py" --alloc tinymalloc \
  --variant 'detect=tinymalloc+TINYMALLOC_DETECT=1' --variant "floor=$lib" \
  --out "$root/build/bench/detect-floor.md" "$@"
