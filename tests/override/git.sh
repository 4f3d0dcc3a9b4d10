#!/bin/sh
# git on tinymalloc: the same scripted history (init, 20 commits, log, gc,
# fsck) built plainly and with tinymalloc preloaded must give identical
# commit ids, log, packed object list and a clean fsck. Fixed dates and
# identities make the commit ids reproducible.
. "$(dirname "$0")/lib.sh"
export GIT_AUTHOR_NAME=tinymalloc GIT_AUTHOR_EMAIL=tm@example.invalid \
       GIT_COMMITTER_NAME=tinymalloc GIT_COMMITTER_EMAIL=tm@example.invalid \
       GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' GIT_COMMITTER_DATE='2024-01-01T00:00:00Z' \
       GIT_CONFIG_NOSYSTEM=1 HOME="$WORK" LC_ALL=C TZ=UTC

history() {
  repo=$1
  git init -q -b main "$repo"
  cd "$repo"
  git config gc.auto 0
  i=1
  while [ "$i" -le 20 ]; do
    mkdir -p dir0 dir1 dir2 dir3 dir4
    # 30 files a commit, a third of them changed each time.
    awk -v n="$i" 'BEGIN { for (f = 0; f < 30; f++) if ((f + n) % 3 == 0) {
        file = sprintf("dir%d/file%02d.txt", f % 5, f)
        for (l = 0; l < 150; l++) printf "commit %d file %d line %d %s\n", n, f, l, substr("abcdefghijklmnopqrstuvwxyz", (l * n) % 26 + 1) > file
        close(file) } }'
    git add -A
    git commit -q -m "commit $i"
    i=$((i + 1))
  done
  git log --stat --format='%H %s' >log.out
  git gc -q --aggressive
  git fsck --full --strict --no-progress >fsck.out
  git count-objects -v | grep -E '^(count|in-pack|packs)' >objects.out
  git verify-pack -v .git/objects/pack/*.idx | awk '{ print $1, $2 }' | sort >pack.out
  cat log.out fsck.out objects.out pack.out
  cd - >/dev/null
}

history "$WORK/plain" >"$WORK/plain.out"
(
  export LD_PRELOAD="$TM_OVERRIDE_LIB" TINYMALLOC_SHOW_STATS=1
  history "$WORK/tm"
) >"$WORK/tm.out" 2>"$WORK/tm.err"
expect_same "$WORK/plain.out" "$WORK/tm.out" "git init/commit/log/gc/fsck"
grep -q '^[0-9a-f]\{40\} commit 20$' "$WORK/tm.out" || fail "git: the log lacks the last commit"
expect_interposed "$WORK/tm.err" 5000 "git"
echo "PASS: git"
