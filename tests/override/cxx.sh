#!/bin/sh
# C++ on tinymalloc: g++ (cc1plus preloaded too) builds cxx_workload.cpp to
# the same object as the plain g++, and the program, run preloaded, prints
# what the plain run prints (new/delete through malloc, over-aligned new
# through aligned_alloc, all objects aligned). Arguments: CXX SOURCE.
. "$(dirname "$0")/lib.sh"
CXX=$1
SOURCE=$2
flags="-std=c++17 -O2 -pthread"
"$CXX" $flags -c "$SOURCE" -o "$WORK/plain.o"
preload "$CXX" $flags -c "$SOURCE" -o "$WORK/tm.o" 2>"$WORK/compile.err"
expect_same "$WORK/plain.o" "$WORK/tm.o" "g++ -O2 object"
expect_interposed "$WORK/compile.err" 50000 "g++ (cc1plus)"
"$CXX" -pthread "$WORK/plain.o" -o "$WORK/program"
"$WORK/program" >"$WORK/plain.out"
preload "$WORK/program" >"$WORK/tm.out" 2>"$WORK/tm.err"
expect_same "$WORK/plain.out" "$WORK/tm.out" "C++ program"
grep -q 'aligned NO' "$WORK/tm.out" && fail "C++: an over-aligned object was not aligned"
expect_interposed "$WORK/tm.err" 100000 "C++ program"
echo "PASS: c++"
