#!/bin/bash -eu
# ClusterFuzzLite build script of tinymalloc: the same build as OSS-Fuzz's.
exec "$SRC/tinymalloc/oss-fuzz/build.sh"
