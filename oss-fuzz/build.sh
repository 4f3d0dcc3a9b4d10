#!/bin/bash -eu
# OSS-Fuzz build script of tinymalloc (.clusterfuzzlite/build.sh runs it too).
# The builder runs it with the source in $SRC/tinymalloc (see Dockerfile) and
# $CC, $CXX, $CFLAGS, $CXXFLAGS, $LIB_FUZZING_ENGINE, $OUT and $WORK set for
# the engine and sanitizer of the build. It leaves in $OUT one fuzz_<harness>
# target per harness of fuzz/ (libFuzzer's interface, linked with
# $LIB_FUZZING_ENGINE by $CXX), each with its dictionary (.dict), options
# (.options) and seed corpus (_seed_corpus.zip, from corpus/<harness>).
# ci/packaging-tests.sh runs it locally with libFuzzer, AFL++ and a
# plain-replay engine, with the address and the undefined sanitizer settings.
cd "$SRC/tinymalloc"
./fuzz/oss-fuzz-build.sh
