#!/bin/sh
# python3 on tinymalloc (PYTHONMALLOC=malloc: every object from malloc): a
# threaded workload must print exactly what the plain run prints, and a few
# of Python's own stdlib test modules must pass. Arguments: PYTHON WORKLOAD.
. "$(dirname "$0")/lib.sh"
PYTHON=$1
WORKLOAD=$2
export PYTHONMALLOC=malloc PYTHONDONTWRITEBYTECODE=1 PYTHONHASHSEED=0

"$PYTHON" "$WORKLOAD" >"$WORK/plain.out"
preload "$PYTHON" "$WORKLOAD" >"$WORK/tm.out" 2>"$WORK/tm.err"
expect_same "$WORK/plain.out" "$WORK/tm.out" "python3 threaded workload"
expect_interposed "$WORK/tm.err" 1000000 "python3 threaded workload"

# Python's own tests judge the interpreter; -j2 runs them in child processes
# (which inherit LD_PRELOAD) on both cores. No statistics report here: some
# tests compare the stderr of the interpreters they start.
if ! LD_PRELOAD="$TM_OVERRIDE_LIB" "$PYTHON" -m test -j2 test_dict test_list test_set test_json test_re test_deque \
     test_threading_local test_queue >"$WORK/regrtest.out" 2>"$WORK/regrtest.err"; then
  tail -30 "$WORK/regrtest.out" >&2
  fail "python3 stdlib tests failed on tinymalloc"
fi
# "Result: SUCCESS" (3.11.7) or "Tests result: SUCCESS" (Debian's 3.11.2).
grep -Eq '^(Tests r|R)esult: SUCCESS' "$WORK/regrtest.out" || fail "python3 stdlib tests: no SUCCESS line"
grep -E '^(Total tests|Tests result|Result|All [0-9]+ tests OK)' "$WORK/regrtest.out" || true
echo "PASS: python3"
