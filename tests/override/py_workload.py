"""A deterministic allocation-heavy Python workload with threads, for the
python3 override test: under PYTHONMALLOC=malloc every object comes from the
C allocator. Prints one digest line per task; a plain run and a run on
tinymalloc must print exactly the same."""
import hashlib
import json
import random
import re
import threading
import zlib

def churn(seed):
    rng = random.Random(seed)
    table = {}
    for i in range(25000):
        key = "k%d-%d" % (rng.randrange(20000), i % 7)
        table[key] = [rng.random() for _ in range(rng.randrange(1, 6))]
        if i % 3 == 0:
            table.pop("k%d-%d" % (rng.randrange(20000), i % 7), None)
    text = json.dumps(table, sort_keys=True)
    back = json.loads(text)
    words = re.findall(r'"k(\d+)-(\d)"', text)
    blob = bytearray()
    for a, b in words[:10000]:
        blob += (a * int(b or 1)).encode()
    packed = zlib.compress(bytes(blob), 6)
    digest = hashlib.sha256(text.encode() + packed).hexdigest()
    return "seed %d: %d keys, %d words, %d packed, %s" % (
        seed, len(back), len(words), len(packed), digest[:16])

def strings(seed):
    rng = random.Random(seed)
    parts = ["".join(chr(97 + rng.randrange(26)) for _ in range(rng.randrange(1, 40))) for _ in range(20000)]
    big = " ".join(parts)
    for _ in range(5):
        big = big.upper().replace("A", "aa").lower()
    counts = {}
    for word in big.split():
        counts[word[:3]] = counts.get(word[:3], 0) + 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    return "strings %d: %d chars, top %s" % (seed, len(big), top)

results = {}
def run(name, fn, seed):
    results[name] = fn(seed)

threads = [threading.Thread(target=run, args=("churn%d" % s, churn, s)) for s in range(4)]
threads += [threading.Thread(target=run, args=("strings%d" % s, strings, s)) for s in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for name in sorted(results):
    print(results[name])
# Large buffers that grow by realloc (bytes joins, list growth).
sizes = []
data = b""
for i in range(120):
    data += bytes([i % 251]) * 20000
    if i % 50 == 0:
        sizes.append(len(data))
print("grown", sizes, hashlib.md5(data).hexdigest())
