#!/usr/bin/env python3
"""Checks tinymalloc_stats_print against the figures of tinymalloc_stats():
runs stats_probe, parses its JSON report strictly, checks that it agrees with
the probe's own snapshot and with itself (class and arena sums), and that
the human report shows the same numbers."""
import json
import re
import subprocess
import sys

def fail(message):
    print("stats_check: FAIL: " + message)
    sys.exit(1)

out = subprocess.run([sys.argv[1]], check=True, capture_output=True, text=True).stdout
lines = out.split("\n")
expect = {}
json_line = None
separator = None
for index, line in enumerate(lines):
    if line.startswith("expect "):
        _, key, value = line.split()
        expect[key] = int(value)
    elif line.startswith("{") and json_line is None:
        json_line = line
    elif line == "----":
        separator = index
        break
if json_line is None or separator is None or len(expect) != 10:
    fail("probe output incomplete:\n" + out)
report = json.loads(json_line)  # one line, strict JSON

for key, value in expect.items():
    if key in ("class_count", "arena_count"):
        continue
    if report[key] != value:
        fail(f"JSON {key}={report[key]}, tinymalloc_stats says {value}")
if len(report["classes"]) != expect["class_count"] or len(report["arenas"]) != expect["arena_count"]:
    fail("JSON lists a different number of classes or arenas than class_count/arena_count")
if report["live_blocks"] < 1012 or report["medium_blocks"] < 10 or report["large_blocks"] < 2:
    fail("the probe's 1000 small, 10 medium and 2 large blocks are not all counted")
if report["small_blocks"] + report["medium_blocks"] + report["large_blocks"] != report["live_blocks"]:
    fail("small + medium + large != live_blocks")
if sum(c["live_blocks"] for c in report["classes"]) != report["small_blocks"]:
    fail("class live_blocks do not add up to small_blocks")
if sum(a["medium_blocks"] for a in report["arenas"]) != report["medium_blocks"]:
    fail("arena medium_blocks do not add up")
if sum(a["large_blocks"] for a in report["arenas"]) != report["large_blocks"]:
    fail("arena large_blocks do not add up")
# 100-byte requests are served by the 112-byte class, or by 128 in tracked
# builds, which take every block 16 bytes (the redzone) larger.
fit = [c for c in report["classes"] if c["block_size"] >= 100 and c["live_blocks"] >= 1000]
if not fit or fit[0]["block_size"] > 128 or fit[0]["allocs"] < 1000:
    fail("the class serving 100-byte requests does not show the 1000 live blocks")
sizes = [c["block_size"] for c in report["classes"]]
if sizes != sorted(sizes) or len(set(sizes)) != len(sizes):
    fail("class block sizes are not strictly increasing")
if not (report["mapped_bytes"] >= report["live_bytes"] and report["peak_mapped_bytes"] >= report["mapped_bytes"]):
    fail("mapped below live bytes, or peak mapped below mapped")
if report["resident_bytes"] < 6 << 20 or report["resident_bytes"] > report["mapped_bytes"]:
    fail("resident bytes do not cover the two touched 3 MiB blocks, or exceed mapped")

human = "\n".join(lines[separator + 1:])
labels = {"live blocks": "live_blocks", "live bytes": "live_bytes", "allocations": "total_allocs",
          "frees": "total_frees", "medium blocks": "medium_blocks", "large blocks": "large_blocks",
          "segments": "segments", "metadata bytes": "metadata_bytes"}
if not human.startswith("tinymalloc statistics\n"):
    fail("human report does not start with its title")
for label, key in labels.items():
    match = re.search(r"^  " + label + r" +(\d+)", human, re.M)
    if not match or int(match.group(1)) != report[key]:
        fail(f"human '{label}' line disagrees with JSON {key}={report[key]}")
match = re.search(r"^  live bytes +\d+  \((\d+)(\.\d)? (B|KiB|MiB|GiB)\)$", human, re.M)
if not match:
    fail("live bytes line lacks its unit")
rows = re.findall(r"^ +(\d+) +(\d+) +(\d+) +(\d+)$", human.split("arenas\n")[0], re.M)
if not any(int(r[0]) == fit[0]["block_size"] and int(r[1]) == fit[0]["live_blocks"] for r in rows):
    fail("size class table lacks the 100-byte class row")
arena_rows = re.findall(r"^ +\d+ +\d+ +\d+ +\d+ +\d+ +\d+$", human.split("arenas\n")[1], re.M)
if len(arena_rows) != expect["arena_count"]:
    fail("arena table has %d rows, expected %d" % (len(arena_rows), expect["arena_count"]))
print("stats_check: JSON and human reports agree with tinymalloc_stats (%d classes, %d arenas)"
      % (len(report["classes"]), len(report["arenas"])))
