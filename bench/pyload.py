"""pyload: a fixed Python workload for the allocator benchmarks.

Run as `python3 pyload.py` with PYTHONMALLOC=malloc, so that every object
allocation goes to malloc (and so to the preloaded allocator). It builds and
drops objects, dicts, lists, strings, tuples and sets the way ordinary programs
do, and checks each result against a value computed another way; a wrong
result raises and the interpreter exits non-zero.
"""
import collections
import json
import random
import re
import sys


class Record:
    def __init__(self, ident, name, tags):
        self.ident = ident
        self.name = name
        self.tags = tags
        self.children = []


def build_records(rng, count):
    records = {}
    for i in range(count):
        rec = Record(i, "rec-%06d-%s" % (i, "x" * (i % 40)), [rng.randrange(1000) for _ in range(i % 8)])
        records[rec.name] = rec
        if i > 0:
            parent = records["rec-%06d-%s" % (i // 2, "x" * ((i // 2) % 40))]
            parent.children.append(rec)
    return records


def main():
    rng = random.Random(20240601)
    total = 0
    for round_ in range(2):
        records = build_records(rng, 40000)
        assert len(records) == 40000
        # Every record but the root is a child of exactly one record.
        assert sum(len(r.children) for r in records.values()) == 40000 - 1
        # JSON round trip of a structure built from the records.
        doc = [{"id": r.ident, "name": r.name, "tags": r.tags, "kids": [c.ident for c in r.children]}
               for r in records.values() if r.ident % 3 == round_ % 3]
        text = json.dumps(doc, sort_keys=True)
        back = json.loads(text)
        assert back == doc
        # Strings: split, join, regular expressions, formatting.
        words = text.replace('"', " ").replace(",", " ").split()
        counts = collections.Counter(w for w in words if w.isdigit())
        assert sum(counts.values()) == sum(1 for w in words if w.isdigit())
        joined = "|".join(sorted(set(re.findall(r"rec-(\d+)", text))))
        assert joined.count("|") == len(doc) - 1
        # Sorting tuples; drop half of the records, then the rest.
        pairs = sorted(((len(r.tags), r.name) for r in records.values()), reverse=True)
        assert all(pairs[i] >= pairs[i + 1] for i in range(len(pairs) - 1))
        for name in [p[1] for p in pairs[::2]]:
            del records[name]
        assert len(records) == 20000
        total += len(doc) + len(pairs)
        del records, doc, back, text, words, pairs
    # Small-object churn: a queue of short-lived tuples and strings.
    queue = collections.deque()
    acc = 0
    for i in range(200000):
        queue.append((i, str(i), [i] * (i % 5)))
        if len(queue) > 1000:
            j, s, lst = queue.popleft()
            assert int(s) == j and len(lst) == j % 5
            acc += j
    n = 200000 - 1000  # popped items are 0 .. n-1
    assert acc == n * (n - 1) // 2
    print("pyload: ok", total, acc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
