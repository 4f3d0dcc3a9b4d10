#!/bin/sh
# expect.sh runs one program (maybe under a tool) and judges its report: the
# exit status must be as expected, every --has pattern must appear and no
# --lacks pattern may. @TARGET@ in a pattern stands for the address the
# program announced ("tm_bug: target 0x..."). It must never change the program.
#
# usage: expect.sh --status pass|fail [--has ERE]... [--lacks ERE]... -- CMD...
set -u

status=pass
has_file=$(mktemp) lacks_file=$(mktemp) log=$(mktemp)
trap 'rm -f "$has_file" "$lacks_file" "$log"' EXIT
while [ $# -gt 0 ]; do
  case $1 in
    --status) status=$2; shift 2 ;;
    --has) printf '%s\n' "$2" >>"$has_file"; shift 2 ;;
    --lacks) printf '%s\n' "$2" >>"$lacks_file"; shift 2 ;;
    --) shift; break ;;
    *) echo "expect.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

"$@" >"$log" 2>&1
rc=$?
target=$(sed -n 's/^tm_bug: target \(0x[0-9a-f]*\)$/\1/p' "$log" | head -n 1)

fail() {
  echo "expect.sh: FAILED: $*" >&2
  echo "---- output of: $* (exit $rc)" >&2
  cat "$log" >&2
  exit 1
}

case $status in
  pass) [ "$rc" -eq 0 ] || fail "expected exit 0, got $rc" ;;
  fail) [ "$rc" -ne 0 ] || fail "expected a failing exit, got 0" ;;
  *) echo "expect.sh: bad --status $status" >&2; exit 2 ;;
esac
while IFS= read -r pattern; do
  pattern=$(printf '%s' "$pattern" | sed "s/@TARGET@/${target:-NO-TARGET-ANNOUNCED}/g")
  grep -Eq -- "$pattern" "$log" || fail "missing /$pattern/"
  echo "expect.sh: found: $(grep -E -m 1 -- "$pattern" "$log")"
done <"$has_file"
while IFS= read -r pattern; do
  if grep -Eq -- "$pattern" "$log"; then fail "unexpected /$pattern/"; fi
done <"$lacks_file"
echo "expect.sh: ok (exit $rc)"
exit 0
