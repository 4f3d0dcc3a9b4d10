#!/bin/sh
# Every TINYMALLOC_<NAME> option changes behaviour observably, and a bad
# value only warns. options_probe (linked with the override library) prints
# what it sees; each run below sets one option and compares with the default.
# Arguments: OPTIONS_PROBE MISUSE_PROGRAM.
. "$(dirname "$0")/lib.sh"
PROBE=$1
MISUSE=$2

# probe_value OUTPUT_FILE KEY
probe_value() { sed -n "s/^$2=//p" "$1"; }
# expect_value FILE KEY VALUE WHAT
expect_value() {
  got=$(probe_value "$1" "$2")
  [ "$got" = "$3" ] || { cat "$1" >&2; fail "$4: $2=$got, expected $3"; }
  echo "ok: $4: $2=$got"
}

# JUNK: fresh blocks filled with 0xa5 and freed ones with 0x5a; off by default.
"$PROBE" junk >"$WORK/junk-off" 2>"$WORK/junk-off.err"
TINYMALLOC_JUNK=1 "$PROBE" junk >"$WORK/junk-on" 2>"$WORK/junk-on.err"
expect_value "$WORK/junk-off" fresh zero "JUNK unset"
expect_value "$WORK/junk-off" freed uniform-0x11 "JUNK unset"
expect_value "$WORK/junk-on" fresh uniform-0xa5 "JUNK=1"
expect_value "$WORK/junk-on" freed uniform-0x5a "JUNK=1"

# SHOW_STATS: nothing at exit by default, the text report with 1, JSON with 2.
"$PROBE" nothing 2>"$WORK/stats-off.err"
TINYMALLOC_SHOW_STATS=1 "$PROBE" nothing 2>"$WORK/stats-1.err"
TINYMALLOC_SHOW_STATS=2 "$PROBE" nothing 2>"$WORK/stats-2.err"
[ ! -s "$WORK/stats-off.err" ] || fail "SHOW_STATS unset: something was printed"
grep -q '^tinymalloc statistics$' "$WORK/stats-1.err" || fail "SHOW_STATS=1: no text report"
grep -Eq '^  allocations +[1-9][0-9]*$' "$WORK/stats-1.err" || fail "SHOW_STATS=1: no allocations line"
python3 -c 'import json, sys; r = json.loads(open(sys.argv[1]).read()); assert r["total_allocs"] > 0, r' \
  "$WORK/stats-2.err" || fail "SHOW_STATS=2: stderr is not one JSON report with allocations"
echo "ok: SHOW_STATS off/1/2 print nothing/text/JSON at exit"

# SHOW_ERRORS: the report line of a double free appears by default and not
# with 0; the abort happens either way.
sh "$(dirname "$0")/misuse.sh" "$MISUSE" double-free 'double free of 0x[0-9a-f]+' >/dev/null
EXPECT_SHOW_ERRORS=0 sh "$(dirname "$0")/misuse.sh" "$MISUSE" double-free '' >/dev/null
echo "ok: SHOW_ERRORS=0 suppresses the report line, not the abort"

# PURGE_DELAY_MS: 0 purges freed pages at once; -1 never (only trim does).
TINYMALLOC_PURGE_DELAY_MS=0 "$PROBE" purge >"$WORK/purge-0"
TINYMALLOC_PURGE_DELAY_MS=-1 "$PROBE" purge >"$WORK/purge-never"
purged_now=$(probe_value "$WORK/purge-0" purged_by_free)
[ "$purged_now" -gt 0 ] || fail "PURGE_DELAY_MS=0: frees purged nothing"
expect_value "$WORK/purge-never" purged_by_free 0 "PURGE_DELAY_MS=-1"
expect_value "$WORK/purge-never" trim_returned_something 1 "PURGE_DELAY_MS=-1 then trim"
echo "ok: PURGE_DELAY_MS=0 purged $purged_now bytes at free"

# ARENAS: one arena takes every thread; three arenas are three.
TINYMALLOC_ARENAS=1 "$PROBE" arenas >"$WORK/arenas-1"
TINYMALLOC_ARENAS=3 "$PROBE" arenas >"$WORK/arenas-3"
"$PROBE" arenas >"$WORK/arenas-default"
expect_value "$WORK/arenas-1" arena_count 1 "ARENAS=1"
expect_value "$WORK/arenas-1" busiest 7 "ARENAS=1 (main + 6 threads in arena 0)"
expect_value "$WORK/arenas-3" arena_count 3 "ARENAS=3"
expect_value "$WORK/arenas-3" threads 7 "ARENAS=3"
cpus=$(getconf _NPROCESSORS_ONLN)
expect_value "$WORK/arenas-default" arena_count "$cpus" "ARENAS unset (one per CPU)"

# VERBOSE: the configuration is printed at start.
TINYMALLOC_VERBOSE=1 TINYMALLOC_ARENAS=5 "$PROBE" nothing 2>"$WORK/verbose.err"
grep -q 'verbose: arenas 5$' "$WORK/verbose.err" || { cat "$WORK/verbose.err" >&2; fail "VERBOSE=1: no configuration"; }
"$PROBE" nothing 2>"$WORK/quiet.err"
[ ! -s "$WORK/quiet.err" ] || fail "VERBOSE unset: something was printed"
echo "ok: VERBOSE=1 prints the configuration"

# Bad values and unknown names warn and keep the default; the program runs.
TINYMALLOC_JUNK=banana TINYMALLOC_ARENAS=100000 TINYMALLOC_NO_SUCH=1 "$PROBE" junk \
  >"$WORK/bad" 2>"$WORK/bad.err" || fail "bad option values: the program failed"
grep -q 'TINYMALLOC_JUNK=banana' "$WORK/bad.err" || fail "bad JUNK value: no warning"
grep -q 'TINYMALLOC_ARENAS=100000' "$WORK/bad.err" || fail "bad ARENAS value: no warning"
grep -q 'TINYMALLOC_NO_SUCH=1' "$WORK/bad.err" || fail "unknown option: no warning"
expect_value "$WORK/bad" fresh zero "JUNK=banana keeps the default"

# The API: set takes effect at once; bad names, values and late arenas fail.
TINYMALLOC_PURGE_DELAY_MS=77 "$PROBE" set >"$WORK/set"
expect_value "$WORK/set" junk_after_set uniform-0xa5 "option_set(junk, 1)"
expect_value "$WORK/set" set_unknown -1 "option_set(unknown)"
expect_value "$WORK/set" set_out_of_range -1 "option_set(junk, 7)"
expect_value "$WORK/set" set_arenas_late -1 "option_set(arenas) after allocating"
expect_value "$WORK/set" purge_delay_ms 77 "option_get(purge_delay_ms) from the environment"
expect_value "$WORK/set" show_errors 1 "option_get(show_errors) default"
echo "PASS: options"
