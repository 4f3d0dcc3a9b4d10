#!/bin/sh
# Valgrind memcheck on a program run with the override library preloaded. With
# --soname-synonyms=somalloc=nouserintercepts memcheck leaves tinymalloc's
# malloc in place (the program sees tinymalloc serve it) and finds no error;
# without it Valgrind replaces malloc (the documented pitfall). When the core
# was built with its Valgrind client requests (TRACK=valgrind), a read of a
# freed block must be reported as well.
# Arguments: VALGRIND VG_PROBE TRACK [LIBRARY] (LIBRARY defaults to
# TM_OVERRIDE_LIB; the build passes a copy without debug information when
# clang wrote DWARF 5 that Valgrind 3.19 cannot read).
. "$(dirname "$0")/lib.sh"
VALGRIND=$1
PROBE=$2
TRACK=$3
LIBRARY=${4:-$TM_OVERRIDE_LIB}
vg="env LD_PRELOAD=$LIBRARY $VALGRIND -q --error-exitcode=99 --leak-check=no --track-origins=no"

$vg --soname-synonyms=somalloc=nouserintercepts "$PROBE" >"$WORK/with.out" 2>"$WORK/with.err" ||
  { cat "$WORK/with.err" >&2; fail "memcheck found errors, or the program failed, with nouserintercepts"; }
grep -qx 'malloc served by tinymalloc' "$WORK/with.out" || fail "with nouserintercepts: $(cat "$WORK/with.out")"
echo "ok: under memcheck with somalloc=nouserintercepts, tinymalloc serves malloc and no error is found"

$vg "$PROBE" >"$WORK/without.out" 2>"$WORK/without.err" || true
grep -qx 'malloc served by another allocator' "$WORK/without.out" ||
  fail "without the synonym Valgrind was expected to replace malloc: $(cat "$WORK/without.out")"
echo "ok: without it, Valgrind replaces tinymalloc's malloc (why the option is documented)"

if [ "$TRACK" = valgrind ]; then
  status=0
  $vg --soname-synonyms=somalloc=nouserintercepts "$PROBE" use-after-free >"$WORK/uaf.out" 2>"$WORK/uaf.err" || status=$?
  [ "$status" -eq 99 ] || { cat "$WORK/uaf.err" >&2; fail "use after free: memcheck exit $status, expected 99"; }
  grep -q 'Invalid read of size 1' "$WORK/uaf.err" || fail "use after free: no 'Invalid read' report"
  echo "ok: memcheck reports a read of a freed tinymalloc block (client requests)"
else
  echo "note: core built without TINYMALLOC_VALGRIND: memcheck cannot see inside tinymalloc blocks"
fi
echo "PASS: valgrind"
