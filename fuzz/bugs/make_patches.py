#!/usr/bin/env python3
"""Writes fuzz/bugs/NN-name.patch: realistic allocator bugs injected into a
scratch copy of src/ by fuzz/prove-bugs.sh (never into the tree). Each bug is
one or a few textual edits of the current core (each must match exactly once);
rerun this script after the core changes (it fails if an edit no longer
applies exactly once)."""
import difflib
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# name, harness, detect ("tsan": the TSan replay; "rare": a window of a few
# instructions, see fuzz/prove-bugs.sh), description, edits: [(file, old, new), ...]
# Harness "lifecycle": the bug is caught by fuzz/lifecycle_test (what no fuzz
# harness can drive: calls before initialisation), built against the patched core.
BUGS = [
    ("01-bitmap-run-off-by-one", "ops", "",
     "Page-run search accepts a run whose last page is in use: medium blocks overlap their neighbour.",
     [("src/bitmap.c", "if (set >= i + n) return i;", "if (set + 1 >= i + n) return i;")]),
    ("02-slab-padding-off-by-one", "ops", "",
     "Slab padding starts one bit late: block index == capacity is handed out, past the end of the slab.",
     [("src/slab.c",
       "atomic_store_explicit(&slab->bits[w].alloc, tm_slab_padding(capacity, w), memory_order_relaxed);",
       "atomic_store_explicit(&slab->bits[w].alloc, tm_slab_padding(capacity + 1, w), memory_order_relaxed);")]),
    ("03-block-handed-out-twice", "ops", "",
     "32-bit shift in the owner's free: freeing block 32..63 of a word clears the bit of block 0..31, "
     "which is live and is handed out again.",
     [("src/slab.h",
       "  uint64_t bit = 1ull << (index & 63);\n  uint64_t bits = atomic_load_explicit(&slab->bits[w].alloc, memory_order_relaxed);\n  if (TM_UNLIKELY(!(bits & bit) ||",
       "  uint64_t bit = (uint64_t)(1u << (index & 31));\n  uint64_t bits = atomic_load_explicit(&slab->bits[w].alloc, memory_order_relaxed);\n  if (TM_UNLIKELY(!(bits & bit) ||")]),
    ("04-missing-bit-clear-on-free", "ops", "",
     "The owner's free forgets to clear the allocation bit: the bitmap and the used count disagree.",
     [("src/slab.h", "  atomic_store_explicit(&slab->bits[w].alloc, bits & ~bit, memory_order_relaxed);\n  slab->free_words |= 1ull << w;\n",
       "  slab->free_words |= 1ull << w;\n")]),
    ("05-size-class-rounding", "ops", "",
     "Size class computed from size instead of size - 1: some requests above 1 KiB get a class that is too small.",
     [("src/sizeclass.h", "return 8u + (p - 7u) * 4u + (unsigned)(((size - 1) >> (p - 2)) & 3u);",
       "return 8u + (p - 7u) * 4u + (unsigned)((size >> (p - 2)) & 3u);")]),
    ("06-lost-remote-free", "threads", "",
     "The owner's merge reads a remote word and then clears it (a load and a store, not one exchange): a remote "
     "free landing in between is lost, its block stays allocated for ever.",
     [("src/slab.c",
       "    uint64_t remote = atomic_exchange_explicit(&slab->bits[w].remote, 0, memory_order_seq_cst);",
       "    uint64_t remote = atomic_load_explicit(&slab->bits[w].remote, memory_order_acquire);\n"
       "    atomic_store_explicit(&slab->bits[w].remote, 0, memory_order_release);")]),
    ("07-medium-free-without-lock", "threads", "tsan",
     "A medium free that does not fit the heap cache gives its pages back without the arena lock: a data race "
     "on the segment's page maps.",
     [("src/medium.c",
       "  tm_lock(&arena->lock);\n  if (arena->lost) { /* a fork child's arena torn by a vanished thread: leak */\n"
       "    tm_unlock(&arena->lock);\n    return;\n  }\n  tm_medium_give_back(arena, seg, page, pages);\n"
       "  tm_purge_unlock(arena);",
       "  if (arena->lost) return; /* a fork child's arena torn by a vanished thread: leak */\n"
       "  tm_medium_give_back(arena, seg, page, pages);")]),
    ("08-realloc-copies-too-little", "ops", "",
     "realloc copies whole 16-byte granules only: the tail of the preserved prefix is lost when a block moves.",
     [("src/alloc.c", "  memcpy(q, p, old < size ? old : size);",
       "  memcpy(q, p, (old < size ? old : size) & ~(size_t)15);")]),
    ("09-alignment-class-by-size", "ops", "",
     "An aligned small request takes the first class at least as large as the alignment: blocks are misaligned.",
     [("src/sizeclass.c", "if (tm_class_size[c] % alignment == 0) return c;",
       "if (tm_class_size[c] >= alignment) return c;")]),
    ("10-trim-keeps-last-segment", "ops", "",
     "Trim keeps one empty segment per arena, as the purge tick does: an empty segment survives trim (seen only "
     "by the deep check: the warm-mode window test).",
     [("src/purge.c", "  return tm_purge_run_unlock(arena, true, 0);", "  return tm_purge_run_unlock(arena, true, 1);")]),
    ("11-double-free-unreported", "misuse", "",
     "The slow free of a small block that is not live returns silently: a double free is ignored, not reported.",
     [("src/alloc.c",
       "  if (!tm_slab_block_live(slab, index) || tm_slab_block_held(slab, index)) {\n    tm_slab_fault(slab, index, p, fault);\n    return;\n  }",
       "  if (!tm_slab_block_live(slab, index) || tm_slab_block_held(slab, index)) {\n    return;\n  }")]),
    ("12-interior-free-accepted", "misuse", "",
     "A pointer up to 15 bytes into a small block is taken for the block (granules compared, not bytes): it is "
     "freed without a report.",
     [("src/ptr.c", "} else if ((size_t)index * size != in_slab) {",
       "} else if (((size_t)index * size) >> 4 != in_slab >> 4) {")]),
    ("13-calloc-dirty-small", "ops", "",
     "calloc trusts slab memory to be clean: a reused small block is returned with old contents.",
     [("src/alloc.c", "    return tm_handed_out(p, size, tm_class_size[cls], zero, false, TM_OUT_SMALL);",
       "    return tm_handed_out(p, size, tm_class_size[cls], zero, true, TM_OUT_SMALL);")]),
    ("14-trim-purges-live-pages", "ops", "",
     "Purge ignores the used-page map: trim drops the contents of live blocks and frees their pages.",
     [("src/purge.c", "      uint64_t free_dirty = seg->dirty[w] & ~seg->page_used[w];",
       "      uint64_t free_dirty = seg->dirty[w];")]),
    ("15-large-free-never-unmaps", "ops", "",
     "Mappings leaving the large cache (expired, evicted, trimmed) are never unmapped: the allocator leaks its "
     "own mappings.",
     [("src/large.c", "    bytes += c->map_size;\n    tm_os_unmap(c, c->map_size);\n", "    bytes += c->map_size;\n")]),
    ("16-remote-free-second-read", "threads", "",
     "Contention: the remote free reads the allocation bit again after its fetch_or (and after notifying the "
     "owner) and, seeing it clear, "
     "withdraws its remote bit and reports a double free; the owner merging at that moment makes a correct "
     "free look like a double free (the false double free of the core v2 issue).",
     [("src/slab.h",
       "  if (before == 0) tm_slab_notify(slab);\n  tm_grace_exit(me);\n",
       "  if (before == 0) tm_slab_notify(slab);\n"
       "  if (!(before & bit) && !(atomic_load_explicit(&slab->bits[w].alloc, memory_order_acquire) & bit)) {\n"
       "    /* the block looks free after all: take the mark back */\n"
       "    atomic_fetch_and_explicit(&slab->bits[w].remote, ~bit, memory_order_seq_cst);\n"
       "    tm_grace_exit(me);\n"
       "    return false;\n"
       "  }\n"
       "  tm_grace_exit(me);\n")]),
    ("17-report-under-lock", "misuse", "",
     "Reentrancy: a bad free of a medium pointer is reported (and the program's handler called) while the "
     "arena lock is held; a handler that allocates a medium block deadlocks.",
     [("src/medium.c",
       "  tm_lock(&arena->lock);\n  tm_medium_explain(seg, p, fault);\n  tm_unlock(&arena->lock);",
       "  tm_lock(&arena->lock);\n  tm_medium_explain(seg, p, fault);\n  tm_report(\"free\", fault);\n"
       "  fault->kind = 0; /* reported */\n  tm_unlock(&arena->lock);")]),
    ("18-late-free-new-heap", "threads", "",
     "Thread lifecycle: the TSD destructor resets the thread's heap pointer to NULL instead of the dead-thread "
     "heap, so an allocation from a later destructor creates a heap that no destructor hands back.",
     [("src/heap.c", "  tm_heap_drain(heap, &faults);\n  tm_thread_heap = &tm_dead_heap;",
       "  tm_heap_drain(heap, &faults);\n  tm_thread_heap = NULL;")]),
    ("19-large-claim-not-atomic", "threads", "rare",
     "Two frees at once: the large free claims the block with a load and a store of `live` instead of one "
     "exchange; two threads freeing it together both pass, the block is released twice.",
     [("src/large.c",
       "  if (atomic_exchange_explicit(&large->live, 0, memory_order_acq_rel) == 0) {\n"
       "    tm_fault_set(fault, TINYMALLOC_ERROR_DOUBLE_FREE, tm_large_user(large), NULL, large->usable, NULL);\n"
       "    return false;\n  }\n",
       "  if (atomic_load_explicit(&large->live, memory_order_acquire) == 0) {\n"
       "    tm_fault_set(fault, TINYMALLOC_ERROR_DOUBLE_FREE, tm_large_user(large), NULL, large->usable, NULL);\n"
       "    return false;\n  }\n  atomic_store_explicit(&large->live, 0, memory_order_release);\n")]),
    ("20-medium-grow-check-then-take", "threads", "rare",
     "realloc against neighbours: the medium in-place growth checks that the following pages are free before it "
     "takes the arena lock, and takes them under the lock without checking again; a neighbour allocated in "
     "between overlaps the grown block.",
     [("src/medium.c",
       "  size_t want = (need + TM_PAGE_SIZE - 1) >> TM_PAGE_SHIFT;\n  tm_lock(&arena->lock);\n",
       "  size_t want = (need + TM_PAGE_SIZE - 1) >> TM_PAGE_SHIFT;\n"
       "  size_t had = tm_run_pages(seg, page); /* readable without the lock */\n"
       "  bool room = want <= had || (page + want <= TM_SEGMENT_PAGES && !tm_bits_any(seg->page_used, page + had, want - had));\n"
       "  tm_lock(&arena->lock);\n"),
      ("src/medium.c",
       "    ok = page + want <= TM_SEGMENT_PAGES && !tm_bits_any(seg->page_used, page + have, want - have);\n",
       "    ok = room && have == had;\n")]),
    ("21-large-shrink-unmap-first", "threads", "rare",
     "Large resize against mappings: the large shrink unmaps the tail before it marks the tail's segment-map "
     "entries freed; another thread's mapping that lands there in between is marked freed (its later free is "
     "called a double free).",
     [("src/large.c",
       "    tm_lock(&arena->lock);\n    tm_large_set_extent(large, new_map);\n    tm_unlock(&arena->lock);\n"
       "    if (old_end > keep_end) tm_segmap_set(keep_end, old_end - keep_end, TM_SEG_FREED_LARGE, TM_SEG_FREED_LARGE);\n"
       "    tm_os_unmap((uint8_t *)large + new_map, old_map - new_map);\n",
       "    tm_os_unmap((uint8_t *)large + new_map, old_map - new_map);\n"
       "    tm_lock(&arena->lock);\n    tm_large_set_extent(large, new_map);\n    tm_unlock(&arena->lock);\n"
       "    if (old_end > keep_end) tm_segmap_set(keep_end, old_end - keep_end, TM_SEG_FREED_LARGE, TM_SEG_FREED_LARGE);\n")]),
    ("22-segmap-mapped-by-constructor", "lifecycle", "",
     "Initialisation: the segment map is a pointer to a mapping made by the load-time constructor, and every "
     "path indexes it unchecked; a call from an earlier constructor or .preinit_array dereferences NULL.",
     [("src/segmap.h", "extern _Atomic uint8_t tm_segmap[TM_SEGMAP_ENTRIES] TM_HIDDEN;",
       "extern _Atomic uint8_t *tm_segmap TM_HIDDEN;\n/* Maps the segment map (the load-time constructor). */\nvoid tm_segmap_init(void) TM_HIDDEN;"),
      ("src/segmap.c", "#include \"segmap.h\"\n\n_Atomic uint8_t tm_segmap[TM_SEGMAP_ENTRIES];\n",
       "#include <sys/mman.h>\n\n#include \"segmap.h\"\n\n_Atomic uint8_t *tm_segmap;\n\n"
       "void tm_segmap_init(void)\n{\n  /* Reserved, not committed: the kernel backs the pages the map touches. */\n"
       "  void *map = mmap(NULL, TM_SEGMAP_ENTRIES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);\n"
       "  if (map != MAP_FAILED) tm_segmap = map;\n}\n"),
      ("src/alloc.c", "__attribute__((constructor(101))) static void tm_at_load(void)\n{\n  tm_init_at_load();",
       "__attribute__((constructor(101))) static void tm_at_load(void)\n{\n  tm_segmap_init();\n  tm_init_at_load();")]),
    ("23-atfork-takes-arena-locks", "fork", "",
     "Fork: a pthread_atfork prepare handler takes every arena lock (released in parent and child); a fork "
     "from a signal handler that interrupted the allocator, or a fork while a thread holding a FILE lock waits "
     "for an arena lock and another flushes every stream, deadlocks.",
     [("src/fork.c", "static void tm_fork_child(void)\n{\n",
       "static void tm_fork_prepare(void)\n{\n  for (uint32_t i = 0; i < TM_MAX_ARENAS; i++)\n    tm_lock(&tm_arenas[i].lock);\n}\n\n"
       "static void tm_fork_parent(void)\n{\n  for (uint32_t i = 0; i < TM_MAX_ARENAS; i++)\n    tm_unlock(&tm_arenas[i].lock);\n}\n\n"
       "static void tm_fork_child(void)\n{\n  tm_fork_parent();\n"),
      ("src/fork.c", "pthread_atfork(NULL, NULL, tm_fork_child)", "pthread_atfork(tm_fork_prepare, tm_fork_parent, tm_fork_child)")]),
    ("24-report-cancellable", "misuse", "",
     "Cancellation: the report is written and the handler called with cancellation enabled; a thread with a "
     "pending cancellation is cancelled inside the double free's report (write is a cancellation point).",
     [("src/error.c",
       "  int cancel_state;\n  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);\n  if (TM_OPTION(show_errors)) {",
       "  if (TM_OPTION(show_errors)) {"),
      ("src/error.c",
       "  handler(f->kind, op, (void *)f->p, line.text, atomic_load_explicit(&tm_error_handler_arg, memory_order_relaxed));\n"
       "  pthread_setcancelstate(cancel_state, NULL);\n",
       "  handler(f->kind, op, (void *)f->p, line.text, atomic_load_explicit(&tm_error_handler_arg, memory_order_relaxed));\n")]),
]


def read_core(path, rev):
    """A file of the core: the working tree, or its version at commit `rev`."""
    if rev is None:
        with open(os.path.join(ROOT, path)) as f:
            return f.read()
    return subprocess.run(["git", "-C", ROOT, "show", "%s:%s" % (rev, path)], check=True,
                          stdout=subprocess.PIPE).stdout.decode()


def main():
    # --rev REV: write the patches against the core of commit REV (HEAD while
    # src/ has uncommitted changes of someone else's), not the working tree.
    rev = sys.argv[sys.argv.index("--rev") + 1] if "--rev" in sys.argv else None
    out_dir = os.path.join(ROOT, "fuzz", "bugs")
    ok = True
    for name, harness, detect, text, edits in BUGS:
        before, after, order = {}, {}, []
        for path, o, n in edits:
            if path not in before:
                before[path] = after[path] = read_core(path, rev)
                order.append(path)
            if after[path].count(o) != 1:
                print("%s: edit does not apply exactly once to %s" % (name, path), file=sys.stderr)
                ok = False
            after[path] = after[path].replace(o, n)
        diff = []
        for path in order:
            diff += difflib.unified_diff(before[path].splitlines(True), after[path].splitlines(True),
                                         "a/" + path, "b/" + path, n=3)
        header = ["Bug: %s\n" % text, "Harness: %s\n" % harness]
        if detect in ("tsan", "tsan+rare"):
            header.append("Detect: tsan\n")
        if detect in ("rare", "tsan+rare"):
            header.append("Expect: rare\n")
        header.append("Generated by fuzz/bugs/make_patches.py against the core of the commit it was made in.\n\n")
        with open(os.path.join(out_dir, name + ".patch"), "w") as f:
            f.write("".join(header) + "".join(diff))
    print("wrote %d patches" % len(BUGS), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
