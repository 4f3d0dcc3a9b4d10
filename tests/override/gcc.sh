#!/bin/sh
# gcc -O2 -g on tinymalloc: the driver, cc1 and as all run preloaded (cc1
# also calls mallinfo2); every object must be byte-identical to the one the
# plain compiler makes. The sources are the project's own C files.
# Arguments: CC SOURCE_DIR.
. "$(dirname "$0")/lib.sh"
CC=$1
SRC=$2
mkdir "$WORK/plain" "$WORK/tm"
cd "$SRC"
count=0
for file in src/*.c tests/override/*.c; do
  name=$(echo "$file" | tr / _)
  flags="-std=c11 -O2 -g -D_GNU_SOURCE -Iinclude -Isrc -Itests/override -c $file"
  # A file that needs flags of its own (a backend, say) is left out; at
  # least ten must take part.
  if ! "$CC" $flags -o "$WORK/plain/$name.o" 2>"$WORK/plain.err"; then
    echo "note: $file does not compile on its own, left out"
    continue
  fi
  preload "$CC" $flags -o "$WORK/tm/$name.o" 2>>"$WORK/tm.err"
  expect_same "$WORK/plain/$name.o" "$WORK/tm/$name.o" "gcc -O2 -g $file" >/dev/null
  count=$((count + 1))
done
[ "$count" -ge 10 ] || fail "gcc: only $count files compiled"
echo "gcc: $count objects identical to the plain compiler's"
expect_interposed "$WORK/tm.err" 10000 "gcc (driver, cc1, as)"
echo "PASS: gcc"
