#!/usr/bin/env python3
"""Writes the hand-made seed inputs of corpus/<harness>/ (gen-*.bin) and the
dictionaries fuzz/<harness>.dict, following the op encoding of fuzz/README.md
and fuzz/ops.h. Rerun after changing the encoding: `python3 fuzz/gen_corpus.py`.
Inputs merged from fuzzing runs (other names) are left alone."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

(MALLOC, CALLOC, REALLOC, REALLOC_ZERO, FREE, MEMALIGN, POSIX_MEMALIGN, ALIGNED_ALLOC,
 USABLE_SIZE, CHECK, REALLOCARRAY, BAD_REQUEST, TRIM, FREE_RANGE, BURST, OPTION,
 BULK_ALLOC, BULK_FREE, STATS) = range(19)
(DOUBLE_FREE, INTERIOR_FREE, FOREIGN_FREE, BAD_REALLOC, BAD_USABLE, REMOTE_DOUBLE_FREE,
 HANDLER, CANCEL) = range(19, 27)
YIELD, SPIN, EXIT, CONTEND, RACE_FREE, LATE_FREE, SYNC, RESIZE_RACE = range(19, 27)
FORK, FORK_THREADS, FORK_SIGNAL = range(19, 22)
MARKER = b"\xff\xfeTM"
RUN_MARKER = b"\xff\xfeRS"

BOUNDARIES = [
    0, 1, 8, 15, 16, 17, 32, 48, 64, 96, 112, 128, 129, 160, 192, 224, 256, 320, 384, 448,
    512, 640, 768, 1024, 1280, 2048, 3072, 4096, 6144, 8192, 12288, 14336, 16384, 16400,
    20480, 24576, 32768, 65536, 131072, 262144, 524288, 1044480, 1048576, 1052672, 2097152,
    4190208, 4194304, 4198400]


def u16(v):
    return bytes([v & 0xff, (v >> 8) & 0xff])


def sz(n):
    """Encodes a request of about n bytes with the most specific selector
    (fuzz/common.c: tmf_decode_size, selector % 32)."""
    if n == 0:
        return bytes([31, 0, 0])
    if n <= 1024:
        return bytes([0]) + u16(n)
    if n <= 16384:
        return bytes([12]) + u16(n)
    if n <= (1 << 20):
        return bytes([20]) + u16((n - 16385) >> 4)
    return bytes([22]) + u16(min(65535, (n - (1 << 20) - 1) // 48))


def boundary(i, delta=0):
    """The boundary size BOUNDARIES[i] + delta (delta in -2..2)."""
    for v in range(65536):
        if v % len(BOUNDARIES) == i and (v >> 8) % 5 == delta + 2:
            return bytes([23]) + u16(v)
    raise ValueError(i)


def align(shift):
    return bytes([shift])


def op(code, *parts):
    return bytes([code]) + b"".join(p if isinstance(p, bytes) else bytes([p]) for p in parts)


SMALL = [0, 1, 16, 17, 24, 100, 128, 200, 256, 700, 1024, 2000, 4096, 5000, 8192, 12000, 16384]
MEDIUM = [16385, 20000, 32768, 65536, 100000, 262144, 500000, 1000000, 1 << 20]
LARGE = [(1 << 20) + 1, 1500000, 2 << 20, 3 << 20, 4 << 20]


def ops_seeds():
    s = {}
    s["each-strategy"] = b"".join(op(MALLOC, i, sz(n)) for i, n in enumerate(SMALL + MEDIUM + LARGE)) + \
        b"".join(op(FREE, i) for i in range(len(SMALL + MEDIUM + LARGE)))
    s["boundaries"] = b"".join(op(MALLOC, 2 * i + (d & 1), boundary(i, d))
                               for i in range(len(BOUNDARIES)) for d in (-2, -1, 0, 1, 2)) + \
        op(CHECK) + op(FREE_RANGE, 0, 255) + op(FREE_RANGE, 255, 255)
    s["calloc-junk"] = op(OPTION, 0, 1) + b"".join(op(MALLOC, i, sz(n)) for i, n in enumerate(SMALL + MEDIUM)) + \
        op(FREE_RANGE, 0, 40) + b"".join(op(CALLOC, i, i % 8, sz(n)) for i, n in enumerate(SMALL + MEDIUM + LARGE)) + \
        op(CHECK) + op(OPTION, 0, 0)
    chain = [1, 17, 100, 1000, 5000, 16384, 16385, 40000, 300000, 1 << 20, (1 << 20) + 1, 3 << 20,
             2 << 20, 600000, 20000, 12000, 64, 0]
    s["realloc-chain"] = op(MALLOC, 0, sz(10)) + b"".join(op(REALLOC, 0, sz(n)) for n in chain) + \
        b"".join(op(REALLOC, 1, sz(n)) for n in reversed(chain)) + op(REALLOC_ZERO, 1) + \
        op(REALLOC_ZERO, 2) + op(REALLOC_ZERO, 2) + op(USABLE_SIZE, 2) + op(FREE, 0)
    s["realloc-inplace"] = b"".join(
        op(MALLOC, 0, sz(a)) + op(MALLOC, 1, sz(a)) + op(FREE, 1) + op(REALLOC, 0, sz(b)) + op(REALLOC, 0, sz(c)) + op(FREE, 0)
        for a, b, c in [(20000, 36000, 18000), (40000, 80000, 30000), (200000, 600000, 100000),
                        (1500000, 3000000, 1200000), (2 << 20, (1 << 20) + 5, 3 << 20), (100, 110, 90),
                        (16000, 16384, 8000)])
    s["reallocarray"] = b"".join(op(REALLOCARRAY, i % 4, i % 8, sz(n)) for i, n in enumerate(SMALL + MEDIUM + LARGE)) + \
        op(REALLOCARRAY, 0, 0, sz(0)) + op(FREE_RANGE, 0, 8)
    al = b""
    for code in (MEMALIGN, POSIX_MEMALIGN, ALIGNED_ALLOC):
        for shift in range(0, 23):
            for j, n in enumerate([1, 100, 3000, 20000, 200000, 1500000]):
                if shift > 20 and n > 100:
                    continue
                al += op(code, (shift * 6 + j) % 256, align(shift), sz(n))
            al += op(FREE_RANGE, 0, 255)
        for bad in range(248, 256):
            al += op(code, 7, align(bad), sz(64))
    s["alignments"] = al + op(CHECK)
    s["usable-check-trim"] = b"".join(op(MALLOC, i, sz(n)) for i, n in enumerate(SMALL + MEDIUM + LARGE)) + \
        b"".join(op(USABLE_SIZE, i) for i in range(32)) + op(FREE_RANGE, 0, 3) + op(FREE_RANGE, 18, 4) + \
        op(TRIM) + op(CHECK) + op(OPTION, 1, 0) + op(FREE_RANGE, 5, 6) + op(TRIM) + op(CHECK) + op(OPTION, 1, 25)
    s["bad-requests"] = b"".join(op(BAD_REQUEST, v, k) for v in range(9) for k in (0, 1, 7)) + \
        b"".join(op(BAD_REQUEST, 8, k) for k in (22, 23, 46, 47, 70, 71)) + \
        op(MALLOC, 3, sz(100)) + op(MALLOC, 1, sz(50000)) + op(MALLOC, 7, sz(2 << 20)) + \
        op(BAD_REQUEST, 4, 3) + op(BAD_REQUEST, 4, 1) + op(BAD_REQUEST, 4, 7) + op(CHECK)
    burst = b""
    for n in [16, 48, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 12288, 16384, 20000, 200000]:
        burst += op(BURST, 0, 63, sz(n)) + op(BURST, 64, 64 | 40, sz(n)) + op(BURST, 128, 128 | 20, sz(n))
        burst += op(MALLOC, 0, sz(n)) + op(FREE_RANGE, 0, 64) + op(FREE_RANGE, 64, 64)
    s["bursts"] = burst + op(CHECK)
    bulk = b""
    for n, count in [(16, 8191), (64, 3000), (1000, 200), (2048, 70), (0, 100)]:
        bulk += op(BULK_ALLOC, u16(count), sz(n)) + op(BULK_FREE, 1) + op(BULK_FREE, 64 | 2 | (1 << 3)) + \
            op(CHECK) + op(BULK_FREE, 0)
    bulk += op(BULK_ALLOC, u16(5000), sz(33)) + op(BULK_ALLOC, u16(5000), sz(17)) + op(TRIM) + op(BULK_FREE, 64)
    s["bulk"] = bulk
    s["options"] = op(OPTION, 0, 1) + op(MALLOC, 0, sz(300)) + op(FREE, 0) + op(MALLOC, 0, sz(40000)) + \
        op(REALLOC, 0, sz(90000)) + op(REALLOC, 0, sz(20000)) + op(FREE, 0) + op(OPTION, 1, 0) + \
        op(MALLOC, 1, sz(300000)) + op(FREE, 1) + op(OPTION, 2, 0) + op(OPTION, 3, 0) + op(OPTION, 3, 1) + \
        op(OPTION, 4, 0) + op(OPTION, 4, 1) + op(OPTION, 5, 0) + op(OPTION, 5, 9) + op(OPTION, 5, 200) + \
        op(MALLOC, 2, sz(2 << 20)) + op(OPTION, 3, 0) + op(OPTION, 3, 1) + op(FREE, 2) + op(OPTION, 0, 0)
    med = b"".join(op(MALLOC, i, sz(100000 + 4096 * (i % 5))) for i in range(60))
    med += b"".join(op(FREE, i) for i in range(0, 60, 2)) + op(CHECK)
    med += b"".join(op(MALLOC, 100 + i, sz(250000)) for i in range(10))
    med += b"".join(op(FREE, i) for i in range(1, 60, 2)) + op(TRIM) + op(CHECK)
    s["medium-fragment"] = med
    s["segment-churn"] = b"".join(op(MALLOC, i, sz(1 << 20)) for i in range(12)) + op(FREE_RANGE, 0, 12) + \
        op(TRIM) + b"".join(op(MALLOC, i, sz(900000)) for i in range(12)) + op(FREE_RANGE, 0, 6) + op(TRIM) + \
        b"".join(op(MALLOC, 20 + i, sz(4000)) for i in range(40)) + op(CHECK)
    # several aligned blocks of one kind live at once: only the second and
    # later blocks of a slab show a class whose size is not a multiple
    many = b""
    slot = 0
    for shift in (5, 6, 7, 8, 9, 10, 11, 12, 13, 14):
        for n in (24, 48, 80, 100, 200, 300, 700, 1500, 3000, 9000):
            for k in range(3):
                code = (MEMALIGN, POSIX_MEMALIGN, ALIGNED_ALLOC)[k]
                many += op(code, slot % 256, align(shift), sz(n))
                slot += 1
        many += op(FREE_RANGE, 0, 255)
    s["aligned-many"] = many + op(CHECK)
    s["stats"] = b"".join(op(MALLOC, i, sz(n)) + op(STATS) for i, n in enumerate(SMALL + MEDIUM + LARGE)) + \
        op(BULK_ALLOC, u16(300), sz(40)) + op(STATS) + op(FREE_RANGE, 0, 12) + op(STATS) + op(BULK_FREE, 0) + op(STATS)
    # several runs in one input: the allocator stays warm between them (the
    # state a fuzzing process runs inputs in), the deep check after the last
    s["warm-runs"] = RUN_MARKER.join([
        b"".join(op(MALLOC, i, sz(n)) for i, n in enumerate(SMALL + MEDIUM)) + op(FREE_RANGE, 0, 30),
        op(BULK_ALLOC, u16(2000), sz(48)) + op(BULK_FREE, 1) + op(BULK_FREE, 0),
        op(BURST, 0, 63, sz(4096)) + op(TRIM) + op(FREE_RANGE, 0, 64),
        b"".join(op(MALLOC, i, sz(n)) for i, n in enumerate(LARGE)) + op(REALLOC, 0, sz(100)) + op(CHECK)])
    s["mixed"] = bytes((i * 37 + 11) % 256 for i in range(600))
    return s


def misuse_seeds():
    s = {}
    blocks = b"".join(op(MALLOC, i, sz(n)) for i, n in enumerate([24, 5000, 16384, 40000, 800000, 2 << 20]))
    s["double-free"] = blocks + b"".join(op(DOUBLE_FREE, i) for i in range(6)) + \
        op(BULK_ALLOC, u16(50), sz(64)) + op(MALLOC, 0, sz(64)) + op(DOUBLE_FREE, 0)
    s["interior"] = blocks + b"".join(op(INTERIOR_FREE, i, u16(k)) for i in range(6) for k in (0, 7, 15, 16, 4095, 60000))
    fo = blocks
    for kind in range(6):
        for d in (0, 16, 4096, 65535):
            fo += op(FOREIGN_FREE, kind | (0x80 if d & 16 else 0), u16(d))
            if kind == 4:
                fo += bytes([0x10, 0x32, 0x54, 0x76, 0x18, 0x2a, 0, 0])
    s["foreign"] = fo
    s["bad-realloc-usable"] = blocks + op(OPTION, 4, 0) + \
        b"".join(op(BAD_REALLOC, k, u16(32 * k + 16)) + sz(100) + op(BAD_USABLE, k | 0x80, u16(16 * k + 1)) for k in (0, 1, 2, 3, 5)) + \
        op(OPTION, 4, 1) + op(MALLOC, 9, sz(50)) + op(FREE, 9) + op(BAD_REALLOC, 3, u16(0)) + sz(10)
    s["freed-slab"] = op(BURST, 0, 15, sz(4096)) + op(FREE_RANGE, 0, 15) + op(DOUBLE_FREE, 15) + op(TRIM) + \
        op(MALLOC, 0, sz(3 << 20)) + op(DOUBLE_FREE, 0) + op(MALLOC, 1, sz(70000)) + op(DOUBLE_FREE, 1) + op(CHECK)
    sizes = [24, 5000, 16384, 40000, 800000, 2 << 20]
    stale = b"".join(op(MALLOC, i, sz(n)) for i, n in enumerate(sizes))
    for i in range(6):
        stale += op(DOUBLE_FREE, i) + op(FOREIGN_FREE, 6, u16(0)) + op(BAD_REALLOC, 6, u16(0)) + sz(64) + \
            op(BAD_USABLE, 6, u16(0))
    s["stale-pointers"] = stale
    remote = b""
    for i, n in enumerate(sizes * 2):
        remote += op(MALLOC, i, sz(n)) + op(REMOTE_DOUBLE_FREE, i)
    s["remote-double-free"] = remote + op(BURST, 40, 10, sz(128)) + op(REMOTE_DOUBLE_FREE, 41) + \
        op(REMOTE_DOUBLE_FREE, 42) + op(CHECK)
    # a released slab: free a whole slab's worth of blocks of several classes,
    # trim, then free a stale pointer into the released slot
    rel = b""
    for n in (1024, 2048, 4096, 8192):
        rel += op(BURST, 0, 63, sz(n)) + op(FREE_RANGE, 1, 63) + op(DOUBLE_FREE, 0) + op(TRIM) + \
            op(FOREIGN_FREE, 6, u16(0))
    s["released-slab"] = rel
    # reentrancy: the handler allocates and frees small, medium and large
    # blocks while it handles each kind of report, for blocks of each kind
    s["reentrant-medium"] = op(MALLOC, 0, sz(40000)) + op(DOUBLE_FREE, 0)
    re = op(HANDLER, 31) + blocks
    for i in range(6):
        re += op(INTERIOR_FREE, i, u16(17)) + op(BAD_USABLE, 3 | 0x80, u16(1)) + op(DOUBLE_FREE, i) + \
            op(FOREIGN_FREE, 6, u16(0)) + op(BAD_REALLOC, 6, u16(0)) + sz(100)
    s["reentrant-all"] = re + op(FOREIGN_FREE, 0, u16(8)) + op(HANDLER, 7) + blocks + \
        b"".join(op(REMOTE_DOUBLE_FREE, i) for i in range(6))
    # a double free of a block in a high word of its slab after the owner
    # took a block from word 0 again: still a double free (the slab's
    # high-water word must not move down)
    s["double-free-high-word"] = b"".join(op(BURST, 64 * i, 63, sz(16)) for i in range(3)) + op(FREE, 0) + \
        op(MALLOC, 0, sz(16)) + op(DOUBLE_FREE, 150) + op(DOUBLE_FREE, 190)
    # detection mode: a large block freed into the quarantine (still mapped,
    # not live), then its stale pointer asked for its size and reallocated
    s["detect-large-stale"] = op(OPTION, 6, 1) + op(MALLOC, 0, sz(1245185)) + op(DOUBLE_FREE, 0) + \
        op(BAD_USABLE, 6, u16(0)) + op(BAD_REALLOC, 6, u16(0), sz(64)) + op(OPTION, 6, 0)
    # detection mode: a write after free into a quarantined medium block
    # (handler mask bit 5), with live blocks around and the handler reentering
    s["write-after-free"] = blocks + op(HANDLER, 0x27) + op(HANDLER, 0x3f) + op(CHECK)
    # misuse by a thread with a pending cancellation
    ca = blocks
    for i in range(6):
        ca += op(CANCEL, i, 1) + op(CANCEL, i, 0)
    s["cancel"] = ca + op(CANCEL, 0, 2) + op(OPTION, 4, 0) + op(MALLOC, 0, sz(24)) + op(CANCEL, 0, 0) + op(OPTION, 4, 1)
    s["mixed"] = bytes((i * 53 + 5) % 256 for i in range(500))
    return s


def threads_seeds():
    s = {}

    def streams(header, *chunks):
        return bytes([header]) + MARKER.join(chunks)

    alloc = b"".join(op(MALLOC, i, sz(n)) for i, n in enumerate([16, 100, 1000, 4000, 16384, 30000, 300000, 2 << 20] * 4))
    frees = op(SPIN, 255) + op(YIELD) + b"".join(op(FREE, i) for i in range(32))
    reallocs = op(SPIN, 200) + b"".join(op(REALLOC, i, sz(n)) for i, n in enumerate([50, 5000, 60000, 10, 2000000, 64] * 5))
    # header: threads = 2 + h % 3, waves = 1 + (h / 3) % 2
    s["cross-free-2"] = streams(0, alloc, frees)
    s["cross-free-3"] = streams(1, alloc, frees, reallocs)
    s["cross-free-4"] = streams(2, alloc, reallocs, frees, op(BULK_ALLOC, u16(2000), sz(48)) + op(BULK_FREE, 2))
    # two waves: the first wave allocates and exits, the second frees into
    # the abandoned slabs and allocates from adopted ones.
    s["waves-2"] = streams(3, alloc, op(BULK_ALLOC, u16(3000), sz(32)) + op(EXIT),
                           frees + op(BULK_FREE, 1), reallocs + op(MALLOC, 200, sz(32)))
    s["waves-4"] = streams(5, alloc, alloc, op(BURST, 100, 63, sz(256)), op(BULK_ALLOC, u16(1000), sz(128)),
                           frees, reallocs, op(BULK_FREE, 0), op(FREE_RANGE, 0, 255))
    churn = b"".join(op(MALLOC, i % 16, sz(24 + i)) + op(FREE, (i + 5) % 16) for i in range(200))
    s["churn-3"] = streams(1, churn, churn.replace(bytes([FREE]), bytes([REALLOC_ZERO])), churn + op(TRIM))
    s["trim-race"] = streams(0, alloc + op(TRIM) + frees, op(TRIM) + op(BULK_ALLOC, u16(500), sz(64)) + op(TRIM) + op(BULK_FREE, 0))
    # two threads churning medium runs in the same arena at the same time
    def medium_loop(base):
        return b"".join(op(MALLOC, base + i % 8, sz(20000 + 4096 * (i % 7))) + op(FREE, base + (i + 3) % 8)
                        for i in range(150))
    s["medium-race"] = streams(0, medium_loop(0), medium_loop(16))
    s["medium-race-3"] = streams(1, medium_loop(0) + op(BULK_ALLOC, u16(300), sz(100)), medium_loop(16),
                                 b"".join(op(REALLOC, i % 8, sz(30000 + 8192 * (i % 5))) for i in range(100)))
    # the owner fills slabs, another thread frees into them while the owner
    # spins, then the owner allocates again: remote frees merged into full slabs
    fill = b"".join(op(BURST, 16 * k, 15, sz(n)) for k, n in enumerate([4096, 8192, 16384, 2048]))
    s["remote-refill"] = streams(0, fill + op(SPIN, 255) * 8 + b"".join(op(MALLOC, 100 + i, sz(4096)) for i in range(40)),
                                 op(SPIN, 255) * 2 + op(FREE_RANGE, 0, 64))
    # contention: producers replace blocks in lock-free slots while up to 8
    # consumers free them (remote frees) and the owners merge; shape bits:
    # 0 two producers, 1-3 consumers - 1, 4-5 slots 4 << n, 6 owner frees
    # too, 7 consumers realloc; last byte: rounds 32 * (1 + n % 32)
    s["contend-16"] = streams(0, op(CONTEND, 0x3e, sz(16), 31), op(CONTEND, 0x3f, sz(16), 31))
    s["contend-mixed"] = streams(1, op(CONTEND, 0x7e, sz(4096), 15) + op(CONTEND, 0x0e, sz(48), 31),
                                 op(CONTEND, 0xbf, sz(200), 15), alloc + frees)
    s["contend-owner-frees"] = streams(0, op(CONTEND, 0x5e, sz(1024), 31) + op(CONTEND, 0x4b, sz(16000), 31))
    # a few blocks per slab: the owner runs out of room and merges remote
    # frees all the time, while up to 8 consumers free remotely
    s["contend-merge"] = streams(0, b"".join(op(CONTEND, 0x3e, sz(n), 31) for n in (16384, 12288, 8192, 16000)),
                                 b"".join(op(CONTEND, 0x3f, sz(n), 31) for n in (16384, 6000, 10000)))
    # two or three threads free one block at once (mode bit 0: the caller
    # does not free, bit 1: two helpers); the allocator may report it once
    s["race-free"] = streams(0, b"".join(op(MALLOC, i, sz(n)) + op(RACE_FREE, i, i % 4) + op(MALLOC, i, sz(n))
                                         for i, n in enumerate([16, 100, 1000, 4000, 16384, 30000, 300000, 2 << 20] * 4)),
                             op(BURST, 64, 63, sz(32)) + op(SYNC) + b"".join(op(RACE_FREE, 64 + i, i % 4) for i in range(60)))
    # the same, again and again on fresh blocks (mode bit 2: 1 + (mode >> 3) % 32
    # more races): the window of a racing free is a few instructions. (Large
    # blocks too once the open finding "a racing double free of a large block
    # called not allocated" is fixed: fuzz/findings/README.md.)
    s["race-free-again"] = streams(0, b"".join(op(MALLOC, i, sz(n)) + op(RACE_FREE, i, m)
                                               for i, (n, m) in enumerate([(300000, 0xff), (40000, 0xfe),
                                                                           (5000, 0xff), (100, 0xff)])))
    # large blocks: each extra free must be reported at once (a single
    # exchange claims the block); 4 times the rounds
    s["race-free-large-again"] = streams(0, b"".join(op(MALLOC, i, sz(n)) + op(RACE_FREE, i, m)
                                                     for i, (n, m) in enumerate([(2 << 20, 0xfc), ((1 << 20) + 4096, 0xfe),
])))
    # thread lifecycle: TSD destructors free (and allocate) in the last
    # destructor round, after the allocator handed the heap back (mode bits
    # 0, 1: also a small/medium one, 2: medium/large instead, 4: allocate too)
    s["late-free"] = streams(0, b"".join(op(LATE_FREE, m, sz(n)) for m, n in [(0, 24), (0x13, 100), (0x17, 5000),
                                                                            (0x10, 40000), (3, 2 << 20)]),
                             alloc + op(EXIT), op(LATE_FREE, 0x11, sz(64)) + frees)
    # realloc while another thread frees the neighbours (mode 0) or maps and
    # unmaps large blocks (mode 1) next to a large block that shrinks and grows
    s["resize-race-medium"] = streams(0, b"".join(op(RESIZE_RACE, 8 * i, 0, sz(n)) for i, n in enumerate(
        [20000, 100000, 300000, 800000])), alloc + op(SYNC) + frees)
    # the medium episode repeated (mode bits 4-7: 6 * (1 + n) resizes)
    s["resize-race-medium-again"] = streams(0, b"".join(op(RESIZE_RACE, 8 * i, 0xf0, sz(n)) for i, n in enumerate(
        [40000, 200000])))
    # the gap race (mode bits 0-1 = 2): round after round the caller grows a
    # 5-32 page block in place while a helper asks for a 33-45 page run that
    # the first fit puts right after it (bits 4-7: 16 * (1 + n) rounds)
    s["resize-race-gap"] = streams(0, op(RESIZE_RACE, 11, 0xfa, sz(34)) + op(RESIZE_RACE, 12, 0xf2, sz(70000)),
                                   op(RESIZE_RACE, 40, 0x3e, sz(9000)))
    # the map race (mode bits 0 and 4): round after round a 6-13 MiB block
    # shrinks to about 1 MiB while a helper maps 3-6 MiB blocks, offset by
    # 0 to 65535 spins (bits 5-7: 17 * (1 + n) rounds)
    s["resize-race-map"] = streams(0, op(RESIZE_RACE, 3, 0xff, sz(100)) + op(RESIZE_RACE, 3, 0xfd, sz(10)))
    s["resize-race-large"] = streams(0, op(RESIZE_RACE, 3, 1, sz(10)) + op(RESIZE_RACE, 3, 7, sz(100)),
                                     b"".join(op(MALLOC, 10 + i, sz(3 << 20)) + op(FREE, 10 + i) for i in range(8)))
    s["sync"] = streams(1, alloc + op(SYNC) + frees + op(SYNC), op(SYNC) + reallocs + op(SYNC),
                        op(SYNC) + op(BULK_ALLOC, u16(500), sz(24)) + op(SYNC) + op(BULK_FREE, 0))
    s["mixed"] = bytes([4]) + bytes((i * 29 + 3) % 256 for i in range(700))
    return s


def fork_seeds():
    s = {}
    blocks = b"".join(op(MALLOC, i, sz(n)) for i, n in enumerate(SMALL + MEDIUM + LARGE))
    # fork with blocks live; mode bits: 0 child verifies every block, 1 child
    # reallocs an inherited block, 2 child frees everything it inherited
    s["fork-live"] = blocks + op(FORK, 1, 1) + op(FORK, 20, 7) + op(FREE_RANGE, 0, 8) + op(FORK, 9, 2) + \
        op(BULK_ALLOC, u16(1000), sz(64)) + op(FORK, 200, 4) + op(BULK_FREE, 0)
    # fork while 1-3 threads allocate (shape bits 0-1 threads - 1, 2 medium,
    # 3 large, 4 realloc, 5 the stdio pair, 6-7 forks - 1)
    s["fork-threads"] = op(FORK_THREADS, 0x02, sz(100)) + op(FORK_THREADS, 0x5e, sz(3000)) + blocks + \
        op(FORK_THREADS, 0xc1, sz(24))
    s["fork-stdio"] = op(FORK_THREADS, 0xe0, sz(200)) + op(FORK_THREADS, 0xf6, sz(40))
    # fork from a signal handler that interrupts an allocation (shape bits
    # 0-2 period 10 << n us, 3-5 rounds, 5 realloc, 6 medium, 7 four forks)
    s["fork-signal-medium"] = op(FORK_SIGNAL, 0x40 | 0x38 | 0x80 | 1, sz(40000))
    s["fork-signal"] = op(FORK_SIGNAL, 0x3a | 0x80, sz(64)) + op(FORK_SIGNAL, 0x22 | 0x80, sz(2 << 20)) + \
        blocks + op(FORK_SIGNAL, 0x63, sz(5000))
    s["mixed"] = bytes((i * 41 + 7) % 256 for i in range(400))
    return s


def write(harness, seeds):
    d = os.path.join(ROOT, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):
        if old.startswith("gen-"):
            os.remove(os.path.join(d, old))
    for name, data in seeds.items():
        with open(os.path.join(d, "gen-%s.bin" % name), "wb") as f:
            f.write(data)
    print("corpus/%s: %d generated seeds" % (harness, len(seeds)), file=sys.stderr)


def esc(data):
    return "".join("\\x%02x" % b for b in data)


def dictionary(harness):
    """Tokens: one template per op, every boundary size, the alignments."""
    names = ["malloc", "calloc", "realloc", "realloc_zero", "free", "memalign", "posix_memalign",
             "aligned_alloc", "usable_size", "check", "reallocarray", "bad_request", "trim",
             "free_range", "burst", "option", "bulk_alloc", "bulk_free", "stats"]
    samples = {
        MALLOC: op(MALLOC, 1, sz(100)), CALLOC: op(CALLOC, 2, 3, sz(3000)), REALLOC: op(REALLOC, 1, sz(40000)),
        REALLOC_ZERO: op(REALLOC_ZERO, 1), FREE: op(FREE, 1), MEMALIGN: op(MEMALIGN, 3, align(12), sz(5000)),
        POSIX_MEMALIGN: op(POSIX_MEMALIGN, 4, align(6), sz(200)),
        ALIGNED_ALLOC: op(ALIGNED_ALLOC, 5, align(16), sz(70000)), USABLE_SIZE: op(USABLE_SIZE, 1),
        CHECK: op(CHECK), REALLOCARRAY: op(REALLOCARRAY, 1, 4, sz(4000)), BAD_REQUEST: op(BAD_REQUEST, 4, 1),
        TRIM: op(TRIM), FREE_RANGE: op(FREE_RANGE, 0, 64), BURST: op(BURST, 0, 63, sz(1024)),
        OPTION: op(OPTION, 0, 1), BULK_ALLOC: op(BULK_ALLOC, u16(4096), sz(16)), BULK_FREE: op(BULK_FREE, 2),
        STATS: op(STATS)}
    lines = ["# fuzz/%s.dict: tokens for the %s harness (generated by fuzz/gen_corpus.py)." % (harness, harness),
             "# Op templates, boundary sizes and alignments; encoding in fuzz/README.md."]
    for code, data in samples.items():
        lines.append('op_%s="%s"' % (names[code], esc(data)))
    if harness == "misuse":
        for name, data in [("double_free", op(DOUBLE_FREE, 1)), ("interior_free", op(INTERIOR_FREE, 1, u16(8))),
                           ("foreign_free", op(FOREIGN_FREE, 3, u16(16))),
                           ("bad_realloc", op(BAD_REALLOC, 0x83, u16(1)) + sz(64)),
                           ("bad_usable_size", op(BAD_USABLE, 5, u16(32))),
                           ("remote_double_free", op(REMOTE_DOUBLE_FREE, 1)),
                           ("stale_free", op(FOREIGN_FREE, 6, u16(0))),
                           ("handler_all", op(HANDLER, 31)), ("handler_none", op(HANDLER, 0)),
                           ("write_after_free", op(HANDLER, 0x27)),
                           ("cancel_double_free", op(CANCEL, 1, 0)), ("cancel_interior", op(CANCEL, 1, 1)),
                           ("cancel_stats", op(CANCEL, 0, 2))]:
            lines.append('op_%s="%s"' % (name, esc(data)))
    if harness == "threads":
        lines.append('stream_marker="%s"' % esc(MARKER))
        lines.append('op_yield="%s"' % esc(op(YIELD)))
        lines.append('op_spin="%s"' % esc(op(SPIN, 100)))
        lines.append('op_exit="%s"' % esc(op(EXIT)))
        for name, data in [("contend_16", op(CONTEND, 0x3e, sz(16), 31)), ("contend_4k", op(CONTEND, 0x7f, sz(4096), 15)),
                           ("race_free", op(RACE_FREE, 1, 0)), ("race_free_remote", op(RACE_FREE, 1, 3)),
                           ("race_free_again", op(RACE_FREE, 1, 0xff)),
                           ("late_free", op(LATE_FREE, 0x13, sz(100))), ("sync", op(SYNC)),
                           ("resize_race", op(RESIZE_RACE, 1, 0, sz(100000))),
                           ("resize_race_large", op(RESIZE_RACE, 1, 1, sz(10))),
                           ("resize_race_gap", op(RESIZE_RACE, 1, 0xfa, sz(34))),
                           ("resize_race_map", op(RESIZE_RACE, 1, 0xff, sz(100)))]:
            lines.append('op_%s="%s"' % (name, esc(data)))
    if harness == "fork":
        for name, data in [("fork", op(FORK, 1, 1)), ("fork_threads", op(FORK_THREADS, 0x5e, sz(3000))),
                           ("fork_stdio", op(FORK_THREADS, 0xe0, sz(200))),
                           ("fork_signal", op(FORK_SIGNAL, 0xf9, sz(40000)))]:
            lines.append('op_%s="%s"' % (name, esc(data)))
    if harness != "threads":
        lines.append('run_marker="%s"' % esc(RUN_MARKER))
    for i, b in enumerate(BOUNDARIES):
        lines.append('size_%d="%s"' % (b, esc(boundary(i))))
    for shift in (4, 6, 12, 13, 16, 20, 22):
        lines.append('align_%d="%s"' % (1 << shift, esc(align(shift))))
    with open(os.path.join(ROOT, "fuzz", harness + ".dict"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    for h in ("ops", "misuse", "threads", "fork"):
        dictionary(h)
    write("ops", ops_seeds())
    write("misuse", misuse_seeds())
    write("threads", threads_seeds())
    write("fork", fork_seeds())
