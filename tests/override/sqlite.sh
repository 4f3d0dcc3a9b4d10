#!/bin/sh
# sqlite3 on tinymalloc: 300,000 rows, two indexes, aggregates, updates,
# deletes, VACUUM and an integrity check must print exactly what the plain
# run prints. Argument: SQLITE3.
. "$(dirname "$0")/lib.sh"
SQLITE=$1
cat >"$WORK/script.sql" <<'SQL'
PRAGMA journal_mode = MEMORY;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -20000;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT, w REAL);
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 300000)
INSERT INTO t SELECT x, (x * 7919) % 1000, printf('%08x-%d', (x * 2654435761) % 4294967296, x % 97), x / 7.0 FROM n;
CREATE INDEX t_k ON t(k, v);
CREATE INDEX t_v ON t(v);
SELECT count(*), sum(k), min(v), max(v), round(avg(w), 3) FROM t;
SELECT k, count(*), min(v), max(id) FROM t WHERE k < 1000 GROUP BY k ORDER BY count(*) DESC, k LIMIT 15;
SELECT count(DISTINCT substr(v, 1, 3)), total(length(v)) FROM t;
SELECT group_concat(id, ',') FROM (SELECT id FROM t WHERE v LIKE 'ab%' ORDER BY v LIMIT 40);
UPDATE t SET v = v || '-updated' WHERE k % 10 = 3;
DELETE FROM t WHERE k % 3 = 0;
SELECT count(*), sum(length(v)) FROM t;
VACUUM;
PRAGMA integrity_check;
SELECT k, sum(w) FROM t GROUP BY k HAVING k % 100 = 1 ORDER BY k;
SQL
"$SQLITE" "$WORK/plain.db" <"$WORK/script.sql" >"$WORK/plain.out"
preload "$SQLITE" "$WORK/tm.db" <"$WORK/script.sql" >"$WORK/tm.out" 2>"$WORK/tm.err"
expect_same "$WORK/plain.out" "$WORK/tm.out" "sqlite3 300k rows"
grep -qx ok "$WORK/tm.out" || fail "sqlite3: integrity_check did not say ok"
expect_interposed "$WORK/tm.err" 100000 "sqlite3"
echo "PASS: sqlite3"
