#!/usr/bin/env python3
"""fuzz/decode.py HARNESS FILE...: prints an input as the harness decodes it,
one op a line (runs, streams, opcodes, operands, decoded sizes), to read a
finding. Mirrors fuzz/grammar.c and fuzz/common.c; encoding in fuzz/README.md."""
import sys

SHARED = [("malloc", "sZ"), ("calloc", "sbZ"), ("realloc", "sZ"), ("realloc0", "s"), ("free", "s"),
          ("memalign", "saZ"), ("posix_memalign", "saZ"), ("aligned_alloc", "saZ"), ("usable_size", "s"),
          ("check", ""), ("reallocarray", "sbZ"), ("bad_request", "bb"), ("trim", ""), ("free_range", "sb"),
          ("burst", "sbZ"), ("option", "bb"), ("bulk_alloc", "wZ"), ("bulk_free", "b"), ("stats", "")]
OPS = {
    "ops": SHARED,
    "misuse": SHARED + [("double_free", "s"), ("interior_free", "sw"), ("foreign_free", "B"), ("bad_realloc", "BZ"),
                        ("bad_usable_size", "B"), ("remote_double_free", "s"), ("handler", "b"), ("cancel", "sb")],
    "threads": SHARED + [("yield", ""), ("spin", "b"), ("exit", ""), ("contend", "bZb"), ("race_free", "sb"),
                         ("late_free", "bZ"), ("sync", ""), ("resize_race", "sbZ")],
    "fork": SHARED + [("fork", "sb"), ("fork_threads", "bZ"), ("fork_signal", "bZ")],
}
BOUNDARY = [0, 1, 8, 15, 16, 17, 32, 48, 64, 96, 112, 128, 129, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 1024,
            1280, 2048, 3072, 4096, 6144, 8192, 12288, 14336, 16384, 16400, 20480, 24576, 32768, 65536, 131072,
            262144, 524288, 1044480, 1048576, 1052672, 2097152, 4190208, 4194304, 4198400]
RUN, STREAM = b"\xff\xfeRS", b"\xff\xfeTM"


def size(sel, v):
    s = sel % 32
    if s < 12:
        return v % 1025
    if s < 20:
        return v % 16385
    if s < 22:
        return 16385 + ((v << 4) % ((1 << 20) - 16384))
    if s == 22:
        return (1 << 20) + 1 + v * 48
    if s < 30:
        return max(0, BOUNDARY[v % 48] + (v >> 8) % 5 - 2)
    return v if s == 30 else 0


def ops(table, data, indent):
    i = 0
    while i < len(data):
        code = data[i] % len(table)
        name, layout = table[code]
        i += 1
        parts = []
        for t in layout:
            b = data[i:i + 14]
            get = lambda k: b[k] if k < len(b) else 0
            if t == "Z":
                parts.append("size %d" % size(get(0), get(1) | get(2) << 8))
                i += 3
            elif t == "w":
                parts.append("u16 %d" % (get(0) | get(1) << 8))
                i += 2
            elif t == "B":
                extra = get(0) % 7 == 4
                parts.append("bad kind %d d %d%s" % (get(0) % 7, get(1) | get(2) << 8,
                                                      " addr %#x" % int.from_bytes(bytes(b[3:11]), "little")
                                                      if extra else ""))
                i += 11 if extra else 3
            elif t == "s":
                parts.append("slot %d" % get(0))
                i += 1
            elif t == "a":
                a = get(0)
                parts.append("align %s" % ("invalid %d" % a if a >= 248 else 1 << (a % 23)))
                i += 1
            else:
                parts.append("%d" % get(0))
                i += 1
        print("%s%-18s %s" % (indent, name, ", ".join(parts)))


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in OPS:
        sys.exit("usage: fuzz/decode.py ops|misuse|threads|fork FILE...")
    table = OPS[sys.argv[1]]
    for path in sys.argv[2:]:
        data = open(path, "rb").read()
        print("== %s (%d bytes)" % (path, len(data)))
        for r, run in enumerate(data.split(RUN)):
            print("run %d:" % r)
            if sys.argv[1] != "threads":
                ops(table, run, "  ")
                continue
            if not run:
                continue
            print("  threads %d, waves %d" % (2 + run[0] % 3, 1 + (run[0] // 3) % 2))
            for k, stream in enumerate(run[1:].split(STREAM, 15)):
                print("  stream %d:" % k)
                ops(table, stream, "    ")


if __name__ == "__main__":
    main()
