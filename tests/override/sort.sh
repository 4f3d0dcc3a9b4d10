#!/bin/sh
# GNU sort on tinymalloc: 400,000 generated lines sorted four ways (plain,
# numeric by field, unique, and with two threads and a 4 MiB buffer, which
# forces temporary files and merges) must equal the plain runs' output.
# Argument: SORT.
. "$(dirname "$0")/lib.sh"
SORT=$1
export LC_ALL=C
awk 'BEGIN { x = 7; for (i = 0; i < 400000; i++) { x = (x * 1103515245 + 12345) % 2147483648;
       printf "%s,%d,%x\n", substr("qwertyuiopasdfghjklzxcvbnm", x % 26 + 1, (x % 7) + 1), x % 100000, x } }' \
  >"$WORK/input"
run_sorts() {
  "$@" "$SORT" "$WORK/input" | cksum
  "$@" "$SORT" -t, -k2,2n -k1,1 "$WORK/input" | cksum
  "$@" "$SORT" -u -t, -k1,1 "$WORK/input" | cksum
  "$@" "$SORT" --parallel=2 -S 4M -T "$WORK" -r "$WORK/input" | cksum
}
run_sorts env >"$WORK/plain.out"
run_sorts env LD_PRELOAD="$TM_OVERRIDE_LIB" TINYMALLOC_SHOW_STATS=1 >"$WORK/tm.out" 2>"$WORK/tm.err"
expect_same "$WORK/plain.out" "$WORK/tm.out" "sort (4 ways)"
expect_interposed "$WORK/tm.err" 50 "sort"
echo "PASS: sort"
