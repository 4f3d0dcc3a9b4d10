# Shared helpers of the override shell tests (sourced, POSIX sh): a scratch
# directory, running a command plainly or with tinymalloc preloaded, and the
# proof that tinymalloc really served a run (TINYMALLOC_SHOW_STATS report on
# stderr with at least N allocations). Every check that fails ends the test.
set -eu

: "${TM_OVERRIDE_LIB:?TM_OVERRIDE_LIB must name libtinymalloc-override.so}"
[ -f "$TM_OVERRIDE_LIB" ] || { echo "FAIL: $TM_OVERRIDE_LIB does not exist" >&2; exit 1; }

ulimit -c 0 2>/dev/null || true
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tm-override.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# A run must not inherit options from the caller's environment.
unset TINYMALLOC_VERBOSE TINYMALLOC_SHOW_STATS TINYMALLOC_SHOW_ERRORS TINYMALLOC_JUNK \
      TINYMALLOC_PURGE_DELAY_MS TINYMALLOC_ARENAS LD_PRELOAD 2>/dev/null || true

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# preload CMD...: CMD and every process it starts run on tinymalloc, and each
# prints its statistics on stderr at exit.
preload() {
  LD_PRELOAD="$TM_OVERRIDE_LIB" TINYMALLOC_SHOW_STATS=1 "$@"
}

# expect_interposed STDERR_FILE MIN_ALLOCS WHAT: some process of the run
# reported at least MIN_ALLOCS tinymalloc allocations and no tinymalloc error.
expect_interposed() {
  [ -f "$1" ] || fail "$3: no stderr file $1"
  if grep -E '^tinymalloc: ' "$1" | grep -v '^tinymalloc: warning: verbose' >/dev/null; then
    grep -E '^tinymalloc: ' "$1" >&2
    fail "$3: tinymalloc reported an error"
  fi
  reports=$(grep -c '^tinymalloc statistics$' "$1" || true)
  most=$(awk '$1 == "allocations" && $2 + 0 > m { m = $2 + 0 } END { print m + 0 }' "$1")
  [ "$reports" -ge 1 ] || fail "$3: no tinymalloc statistics report: not interposed"
  [ "$most" -ge "$2" ] || fail "$3: largest process made $most tinymalloc allocations, expected >= $2"
  echo "$3: interposed ($reports processes reported, the largest made $most allocations)"
}

# expect_same FILE_A FILE_B WHAT
expect_same() {
  if ! cmp -s "$1" "$2"; then
    diff "$1" "$2" | head -20 >&2 || true
    fail "$3: output under tinymalloc differs from the plain run"
  fi
  echo "$3: identical to the plain run ($(wc -c <"$1") bytes)"
}
