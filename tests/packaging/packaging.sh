#!/usr/bin/env bash
# tests/packaging/packaging.sh STEP: one packaging test (ctest label
# packaging, registered by tests/packaging/CMakeLists.txt, which sets the
# TM_* variables below). Each step works in $TM_WORK/STEP only.
#   install                cmake --install of this build into $TM_WORK/prefix
#   find_package           a CMake project finds it (version, components) and
#                          links each tinymalloc:: target, shared and static
#   version                find_package's version and component rules
#   pkg_config             the .pc files: flags, shared and fully static links
#   subdirectory           a CMake project embeds the source tree (add_subdirectory)
#   fetchcontent           ... or gets it with FetchContent
#   no_check               configure succeeds with Check (and pkg-config) hidden
#   readme_job             the README's sanitizer CI job, run verbatim
#   find_package_variants  the job's install, used through tinymalloc::asan[_static]
#                          and tinymalloc::valgrind[_static]
# Exit status 0 pass, 77 skipped (a tool is missing), anything else fail.
set -euo pipefail # (no `| grep -q` below: an early exit of grep fails the pipeline)
here=$(cd "$(dirname "$0")" && pwd)
: "${TM_SRC:?}" "${TM_BUILD:?}" "${TM_WORK:?}" "${TM_VERSION:?}" "${TM_LIBDIR:?}"
step=${1:?usage: packaging.sh STEP}
cc=${TM_CC:-cc}
prefix=$TM_WORK/prefix
libdir=$prefix/$TM_LIBDIR
IFS=. read -r major minor patch <<<"$TM_VERSION"
dir=$TM_WORK/$step
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"

say() { echo "packaging.$step: $*"; }
fail() {
  echo "packaging.$step: FAIL: $*" >&2
  exit 1
}
skip() {
  echo "packaging.$step: SKIPPED: $*"
  exit 77
}
# quiet LOG CMD...: runs CMD with its output in LOG; shows the log on failure.
quiet() {
  local log=$1
  shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    fail "$* (log: $dir/$log)"
  fi
}
has() { grep -qE -- "$2" "$1" || fail "$1 lacks /$2/: $(tail -n 20 "$1")"; }
lacks() { if grep -qE -- "$2" "$1"; then fail "$1 has /$2/"; fi; }

generator=(-G "${TM_GENERATOR:-Ninja}")
[ -z "${TM_MAKE_PROGRAM:-}" ] || generator+=(-DCMAKE_MAKE_PROGRAM="$TM_MAKE_PROGRAM")

needed() { readelf -d "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
# loads BINARY LIBRARY DIR: BINARY loads the shared LIBRARY, found in DIR.
loads() {
  needed "$1" | grep -x "$2" >/dev/null || fail "$1 does not load $2 (NEEDED: $(needed "$1" | tr '\n' ' '))"
  ldd "$1" | grep -F "$2 => $3/$2" >/dev/null || fail "$1 does not find $2 in $3: $(ldd "$1" | grep tinymalloc)"
}
# linked_in BINARY SYMBOL: no tinymalloc shared library is loaded, and
# SYMBOL is defined in BINARY itself (a static link).
linked_in() {
  if needed "$1" | grep tinymalloc >/dev/null; then fail "$1 loads $(needed "$1" | grep tinymalloc | tr '\n' ' ')"; fi
  nm "$1" | grep -E " T $2\$" >/dev/null || fail "$1 does not contain $2"
}
# fully_static BINARY: no dynamic loader at all (-static).
fully_static() { if readelf -l "$1" | grep INTERP >/dev/null; then fail "$1 is dynamically linked"; fi; }

runs() { # runs LOG CMD...: CMD exits 0
  local log=$1
  shift
  "$@" >"$log" 2>&1 || fail "$* exited with $? ($(tail -n 5 "$log"))"
}
app_ok() { runs "$1.log" "$1" && has "$1.log" "^app: tinymalloc $TM_VERSION ok$"; }
override_ok() { runs "$1.log" "$1" && has "$1.log" "^override_app: malloc and free are tinymalloc's$"; }

bug_line=$(grep -n 'copy\[i\] = text\[i\]' "$here/demo.c" | cut -d: -f1)
# asan_catches PROGRAM: demo.c built for ASan passes, and its overflow is reported.
asan_catches() {
  local p=$1 log
  log=$(basename "$p")
  runs "$log.clean.log" "$p" && has "$log.clean.log" "^hello, sanitizer CI$" && lacks "$log.clean.log" "Sanitizer"
  if "$p" --off-by-one >"$log.bug.log" 2>&1; then fail "$p --off-by-one exited 0: the overflow was not caught"; fi
  has "$log.bug.log" "ERROR: AddressSanitizer: use-after-poison on address"
  has "$log.bug.log" "WRITE of size 1 at"
  has "$log.bug.log" "#0 0x[0-9a-f]+ in main .*demo.c:$bug_line"
}
memcheck=(valgrind --error-exitcode=99)
# memcheck_catches PROGRAM: the same under memcheck.
memcheck_catches() {
  local p=$1 log
  log=$(basename "$p")
  runs "$log.clean.log" "${memcheck[@]}" "$p" && has "$log.clean.log" "ERROR SUMMARY: 0 errors"
  local status=0
  "${memcheck[@]}" "$p" --off-by-one >"$log.bug.log" 2>&1 || status=$?
  [ "$status" -eq 99 ] || fail "memcheck exited $status, not 99, on $p --off-by-one ($(tail -n 5 "$log.bug.log"))"
  has "$log.bug.log" "Invalid write of size 1"
  has "$log.bug.log" "at 0x[0-9A-Fa-f]+: main \\(demo.c:$bug_line\\)"
  has "$log.bug.log" "Address 0x[0-9A-Fa-f]+ is 0 bytes after a block of size 19 alloc'd"
}
need_tools() {
  for tool in "$@"; do command -v "$tool" >/dev/null || skip "$tool is not installed"; done
}
need_variant_prerequisites() {
  need_tools valgrind pkg-config
  echo '#include <valgrind/memcheck.h>' | cc -E -x c - >/dev/null 2>&1 ||
    skip "valgrind/memcheck.h is missing (Debian package valgrind)"
}

# consumer BUILD_DIR CMAKE_ARGS...: configures and builds consumer/.
consumer() {
  local build=$1
  shift
  quiet configure.log cmake -S "$here/consumer" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Debug \
    -DTM_EXPECT_VERSION="$TM_VERSION" "$@"
  quiet build.log cmake --build "$build"
}
# consumer_programs BUILD_DIR SHARED_LIB_DIR: the four programs of every consumer.
consumer_programs() {
  local b=$1 lib=$2
  loads "$b/app_shared" libtinymalloc.so.0 "$lib"
  app_ok "$b/app_shared"
  linked_in "$b/app_static" tinymalloc
  app_ok "$b/app_static"
  loads "$b/override_shared" libtinymalloc-override.so "$lib"
  override_ok "$b/override_shared"
  linked_in "$b/override_static" malloc
  override_ok "$b/override_static"
}

# The blocks of README.md marked <!-- packaging-test: NAME --> (the fenced
# block that follows the marker).
readme_block() {
  awk -v marker="<!-- packaging-test: $1 -->" '
    $0 == marker { found = 1; next }
    found == 1 && /^```/ { found = 2; next }
    found == 2 && /^```/ { exit }
    found == 2 { print }' "$TM_SRC/README.md"
}

case $step in
install)
  rm -rf "$prefix"
  quiet install.log cmake --install "$TM_BUILD" --prefix "$prefix"
  files=(include/tinymalloc.h "$TM_LIBDIR"/libtinymalloc.so.0 "$TM_LIBDIR"/libtinymalloc.a
    "$TM_LIBDIR"/libtinymalloc-override.so "$TM_LIBDIR"/libtinymalloc-override.a
    "$TM_LIBDIR"/cmake/tinymalloc/tinymallocConfig.cmake "$TM_LIBDIR"/cmake/tinymalloc/tinymallocConfigVersion.cmake
    "$TM_LIBDIR"/pkgconfig/tinymalloc.pc "$TM_LIBDIR"/pkgconfig/tinymalloc-override.pc)
  if [ "${TM_VARIANTS:-OFF}" = ON ]; then
    for v in asan valgrind; do
      files+=("$TM_LIBDIR/libtinymalloc-$v.so.0" "$TM_LIBDIR/libtinymalloc-$v.a" "$TM_LIBDIR/pkgconfig/tinymalloc-$v.pc")
    done
  fi
  for f in "${files[@]}"; do [ -e "$prefix/$f" ] || fail "cmake --install did not install $f"; done
  for pc in "$libdir"/pkgconfig/*.pc; do
    grep -qxF "prefix=$prefix" "$pc" || fail "$pc does not name the prefix installed into: $(head -n 1 "$pc")"
  done
  # Nothing installed may point back into the source or build tree.
  if sed "s|$prefix||g" "$libdir"/pkgconfig/*.pc "$libdir"/cmake/tinymalloc/*.cmake | grep -F "$TM_SRC"; then
    fail "installed package files name the source or build tree"
  fi
  say "installed $(find "$prefix" -type f | wc -l) files into $prefix"
  ;;

find_package)
  consumer build -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" -DTM_REQUIRE_VERSION="$major.$minor" \
    -DTM_COMPONENTS="tinymalloc;override"
  has configure.log "consumer: found tinymalloc $TM_VERSION in $libdir/cmake/tinymalloc$"
  consumer_programs build "$libdir"
  say "find_package(tinymalloc $major.$minor): four programs linked with the imported targets run"
  ;;

version)
  # probe VERSION [COMPONENTS]: configure log in probe-N.log, status returned.
  n=0
  probe() {
    n=$((n + 1))
    cmake -S "$here/consumer" -B "probe-$n" "${generator[@]}" -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
      -DTM_PROBE_ONLY=ON -DTM_REQUIRE_VERSION="$1" -DTM_COMPONENTS="${2:-}" >"probe-$n.log" 2>&1
  }
  accepts() { probe "$@" || fail "find_package(tinymalloc $1 ${2:-}) failed: $(grep -A3 'CMake Error' "probe-$n.log")"; }
  rejects() {
    if probe "$1" "${2:-}"; then fail "find_package(tinymalloc $1 ${2:-}) accepted version $TM_VERSION"; fi
    tr -s '[:space:]' ' ' <"probe-$n.log" >"probe-$n.flat" # CMake wraps its messages
    has "probe-$n.flat" "$3"
  }
  incompatible="compatible with requested version|not compatible|not suitable|version: $TM_VERSION"
  accepts "$major.$minor"
  accepts "$TM_VERSION"
  accepts "" "tinymalloc;override"
  rejects "$major.$minor.$((patch + 1))" "" "$incompatible"
  rejects "$major.$((minor + 1))" "" "$incompatible"
  rejects "$((major + 1)).0" "" "$incompatible"
  if [ "$major" -eq 0 ] && [ "$minor" -gt 0 ]; then
    rejects "0.$((minor - 1))" "" "$incompatible" # before 1.0 each minor release may break the API
  fi
  rejects "$major.$minor" nosuch "has no component nosuch"
  if [ "${TM_VARIANTS:-OFF}" = ON ]; then
    accepts "$major.$minor" "asan;valgrind"
  else
    rejects "$major.$minor" asan "has no component asan"
  fi
  say "$n find_package probes gave the expected answer"
  ;;

pkg_config)
  need_tools pkg-config
  export PKG_CONFIG_PATH=$libdir/pkgconfig
  flags() { pkg-config "$@" | xargs; } # one line, single spaces
  for name in tinymalloc tinymalloc-override; do
    [ "$(flags --modversion $name)" = "$TM_VERSION" ] || fail "$name --modversion: $(flags --modversion $name)"
    [ "$(flags --cflags $name)" = "-I$prefix/include" ] || fail "$name --cflags: $(flags --cflags $name)"
    [ "$(flags --libs $name)" = "-L$libdir -l$name" ] || fail "$name --libs: $(flags --libs $name)"
    [ "$(flags --static --libs $name)" = "-L$libdir -l$name -pthread" ] ||
      fail "$name --static --libs: $(flags --static --libs $name)"
  done
  strict=(-std=c11 -Wall -Wextra -Werror -pedantic)
  # shellcheck disable=SC2046 # pkg-config prints a flag list
  {
    quiet cc1.log "$cc" "${strict[@]}" "$here/consumer/app.c" -o app_shared $(pkg-config --cflags --libs tinymalloc) \
      -Wl,-rpath,"$(pkg-config --variable=libdir tinymalloc)"
    quiet cc2.log "$cc" "${strict[@]}" -static "$here/consumer/app.c" -o app_static \
      $(pkg-config --cflags --static --libs tinymalloc)
    quiet cc3.log "$cc" "${strict[@]}" "$here/consumer/override_app.c" -o override_shared \
      $(pkg-config --cflags --libs tinymalloc-override) -Wl,-rpath,"$(pkg-config --variable=libdir tinymalloc-override)"
    quiet cc4.log "$cc" "${strict[@]}" -static "$here/consumer/override_app.c" -o override_static \
      $(pkg-config --cflags --static --libs tinymalloc-override)
  }
  loads app_shared libtinymalloc.so.0 "$libdir"
  app_ok ./app_shared
  fully_static app_static
  app_ok ./app_static
  loads override_shared libtinymalloc-override.so "$libdir"
  override_ok ./override_shared
  fully_static override_static
  override_ok ./override_static
  if [ "${TM_VARIANTS:-OFF}" = ON ]; then
    [ "$(flags --libs tinymalloc-asan)" = "-L$libdir -ltinymalloc-asan -fsanitize=address" ] ||
      fail "tinymalloc-asan --libs: $(flags --libs tinymalloc-asan)"
    [ "$(flags --static --libs tinymalloc-valgrind)" = "-L$libdir -ltinymalloc-valgrind -pthread" ] ||
      fail "tinymalloc-valgrind --static --libs: $(flags --static --libs tinymalloc-valgrind)"
  fi
  say "pkg-config flags right; shared and -static programs of tinymalloc and tinymalloc-override run"
  ;;

subdirectory | fetchcontent)
  consumer build -DCMAKE_C_COMPILER="$cc" -DTM_VIA="$step" -DTM_SOURCE_DIR="$TM_SRC"
  sub=$(dirname "$(find build -name libtinymalloc.so.0 | head -n 1)")
  [ -n "$sub" ] || fail "no libtinymalloc.so.0 was built inside the consumer's build"
  consumer_programs build "$(cd "$sub" && pwd)"
  say "$step: four programs linked with tinymalloc::tinymalloc, ::tinymalloc_static, ::override, ::override_static run"
  ;;

no_check)
  # Check hidden from pkg-config, then pkg-config itself hidden: both
  # configure, say once which Debian package brings the unit tests back, and
  # define every other test.
  mkdir empty
  message="Check not found, so the unit tests .* are skipped; install the Debian packages check and pkg-config"
  hidden() { # hidden NAME "VAR=VALUE..." CMAKE_ARG...
    local name=$1 vars=$2
    shift 2
    # shellcheck disable=SC2086 # the variable assignments are words
    quiet "$name.log" env $vars cmake -S "$TM_SRC" -B "$name" "${generator[@]}" -DCMAKE_C_COMPILER="$cc" "$@"
    [ "$(grep -cE "$message" "$name.log")" -eq 1 ] || fail "$name.log does not say once why test_core is skipped"
    lacks "$name.log" "CMake Error"
    ctest --test-dir "$name" -N >"$name.tests" 2>&1
    lacks "$name.tests" "Test +#[0-9]+: core$"
    has "$name.tests" "Test +#[0-9]+: stress$"
  }
  hidden pc-without-check "PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR=$dir/empty"
  hidden without-pkg-config "" -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON
  # The same detection finds Check where it is installed (as in CI).
  if pkg-config --exists check 2>/dev/null; then
    ctest --test-dir "$TM_BUILD" -N >build.tests 2>&1
    has build.tests "Test +#[0-9]+: core$"
  fi
  say "configure without Check succeeds with one message; test_core is skipped, the rest defined"
  ;;

readme_job)
  need_variant_prerequisites
  need_tools cmake
  # The README's demo.c is tests/packaging/demo.c.
  readme_block demo.c >readme-demo.c
  diff -u "$here/demo.c" readme-demo.c >demo.diff || fail "README.md's demo.c differs from tests/packaging/demo.c: $(cat demo.diff)"
  setup=$(readme_block setup)
  asan_job=$(readme_block asan-job)
  memcheck_job=$(readme_block memcheck-job)
  [ -n "$setup" ] && [ -n "$asan_job" ] && [ -n "$memcheck_job" ] || fail "README.md lacks a packaging-test block"
  # The job's layout: a tinymalloc checkout in tinymalloc/ and demo.c. (The
  # link goes when the step ends: tools that walk the source tree would find
  # it again inside the build tree.)
  ln -s "$TM_SRC" tinymalloc
  trap 'rm -f "$dir/tinymalloc"' EXIT
  cp "$here/demo.c" .
  job() { # job NAME BLOCK: the setup, a marker, then BLOCK, as one bash -e script
    printf '%s\necho "== setup done"\n%s\n' "$setup" "$2" >"$1.sh"
    local status=0
    bash -e "$1.sh" >"$1.log" 2>&1 || status=$?
    has "$1.log" "^== setup done$"
    [ "$status" -ne 0 ] || fail "the $1 job passed: the overflow in demo.c was not caught"
  }
  job asan "$asan_job"
  has asan.log "ERROR: AddressSanitizer: use-after-poison on address"
  has asan.log "WRITE of size 1 at"
  has asan.log "#0 0x[0-9a-f]+ in main .*demo.c:$bug_line"
  runs asan.clean.log ./demo-asan && has asan.clean.log "^hello, sanitizer CI$"
  job memcheck "$memcheck_job"
  has memcheck.log "Invalid write of size 1"
  has memcheck.log "at 0x[0-9A-Fa-f]+: main \\(demo.c:$bug_line\\)"
  has memcheck.log "Address 0x[0-9A-Fa-f]+ is 0 bytes after a block of size 19 alloc'd"
  runs memcheck.clean.log valgrind --error-exitcode=1 ./demo-memcheck && has memcheck.clean.log "ERROR SUMMARY: 0 errors"
  say "README job: ASan and memcheck each report the off-by-one write in demo.c:$bug_line, clean runs stay clean"
  ;;

find_package_variants)
  # The README job's installation (tests/packaging runs it first), from CMake.
  need_variant_prerequisites
  job_prefix=$TM_WORK/readme_job/tm
  [ -d "$job_prefix" ] || fail "no installation from packaging.readme_job in $job_prefix"
  consumer build -DCMAKE_C_COMPILER=cc -DCMAKE_PREFIX_PATH="$job_prefix" -DTM_REQUIRE_VERSION="$major.$minor" \
    -DTM_COMPONENTS="asan;valgrind"
  for v in asan valgrind; do
    loads build/demo_${v}_shared "libtinymalloc-$v.so.0" "$job_prefix/lib"
    linked_in build/demo_${v}_static tinymalloc
  done
  asan_catches build/demo_asan_shared
  asan_catches build/demo_asan_static
  memcheck_catches build/demo_valgrind_shared
  memcheck_catches build/demo_valgrind_static
  say "tinymalloc::asan[_static] and tinymalloc::valgrind[_static]: the overflow is reported, clean runs stay clean"
  ;;

*)
  fail "unknown step"
  ;;
esac
