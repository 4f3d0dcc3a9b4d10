#!/usr/bin/env python3
"""Writes fuzz/bugs/NN-name.patch: realistic allocator bugs injected into a
scratch copy of src/ by fuzz/prove-bugs.sh (never into the tree). Each bug is
one textual edit of the current core; rerun this script after the core
changes (it fails if an edit no longer applies exactly once)."""
import difflib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# name, harness, detect, file, old, new, description[, more (old, new) edits of the same file]
BUGS = [
    ("01-bitmap-run-off-by-one", "ops", "", "src/bitmap.c",
     "if (set >= i + n) return i;", "if (set + 1 >= i + n) return i;",
     "Page-run search accepts a run whose last page is in use: medium blocks overlap their neighbour."),
    ("02-slab-padding-off-by-one", "ops", "", "src/slab.c",
     "tm_slab_padding(capacity, w)",
     "tm_slab_padding(capacity + 1, w)",
     "Slab padding starts one bit late: block index == capacity is handed out, past the end of the slab."),
    ("03-block-handed-out-twice", "ops", "", "src/internal.h",
     "atomic_store_explicit(&slab->alloc_bits[w], bits | (1ull << b), memory_order_relaxed);",
     "atomic_store_explicit(&slab->alloc_bits[w], bits | (1u << (b & 31)), memory_order_relaxed);",
     "32-bit shift when taking a block: blocks 32..63 of a word never get their bit, so they are handed out again."),
    ("04-missing-bit-clear-on-free", "ops", "", "src/alloc.c",
     "  atomic_store_explicit(&slab->alloc_bits[w], bits & ~bit, memory_order_relaxed);\n  if (w < slab->hint) slab->hint = w;\n  slab->used--;",
     "  if (w < slab->hint) slab->hint = w;\n  slab->used--;",
     "The owner's free forgets to clear the allocation bit: the bitmap and the used count disagree."),
    ("05-size-class-rounding", "ops", "", "src/internal.h",
     "return 8u + (p - 7u) * 4u + (unsigned)(((size - 1) >> (p - 2)) & 3u);",
     "return 8u + (p - 7u) * 4u + (unsigned)((size >> (p - 2)) & 3u);",
     "Size class computed from size instead of size - 1: a request of exactly 2^k gets a class that is too small."),
    ("06-lost-remote-free", "threads", "", "src/slab.c",
     "  atomic_store_explicit(&slab->has_remote, 1, memory_order_release);\n",
     "",
     "A cross-thread free sets its remote bit but not has_remote: the owner never merges it, the slab never empties."),
    ("07-medium-free-without-lock", "threads", "tsan", "src/arena.c",
     "  tm_arena_t *arena = seg->arena;\n  pthread_mutex_lock(&arena->lock);\n  if (!tm_medium_check(seg, p, op)) {\n    pthread_mutex_unlock(&arena->lock);\n    return;\n  }",
     "  tm_arena_t *arena = seg->arena;\n  if (!tm_medium_check(seg, p, op)) {\n    return;\n  }",
     "Medium free (often from another thread) updates the segment's page maps without the arena lock: a data race.",
     [("  tm_arena_after_free(arena);\n  pthread_mutex_unlock(&arena->lock);\n  tm_heap_t *heap = tm_heap_get();\n  if (heap) {\n    tm_counter_add(&heap->big_frees[0], 1);",
       "  tm_arena_after_free(arena);\n  tm_heap_t *heap = tm_heap_get();\n  if (heap) {\n    tm_counter_add(&heap->big_frees[0], 1);")]),
     ("08-realloc-copies-too-little", "ops", "", "src/alloc.c",
     "  memcpy(q, p, old < size ? old : size);",
     "  memcpy(q, p, (old < size ? old : size) & ~(size_t)15);",
     "realloc copies whole 16-byte granules only: the tail of the preserved prefix is lost when a block moves."),
    ("09-alignment-class-by-size", "ops", "", "src/sizeclass.c",
     "if (tm_class_size[c] % alignment == 0) return c;",
     "if (tm_class_size[c] >= alignment) return c;",
     "An aligned small request takes the first class at least as large as the alignment: blocks are misaligned."),
    ("10-trim-keeps-last-segment", "ops", "", "src/arena.c",
     "    if (seg->used_pages == seg->meta_pages) {\n      returned += TM_SEGMENT_SIZE;",
     "    if (seg->used_pages == seg->meta_pages && next != NULL) {\n      returned += TM_SEGMENT_SIZE;",
     "Trim never releases the last segment of an arena's list: an empty segment leaks past trim."),
    ("11-double-free-unreported", "misuse", "", "src/alloc.c",
     "  if (TM_UNLIKELY(!(bits & bit) || (atomic_load_explicit(&slab->remote_bits[w], memory_order_acquire) & bit))) {\n    tm_report(TINYMALLOC_ERROR_DOUBLE_FREE, op, p, NULL, size, NULL);\n    return;",
     "  if (TM_UNLIKELY(!(bits & bit) || (atomic_load_explicit(&slab->remote_bits[w], memory_order_acquire) & bit))) {\n    (void)op;\n    return;",
     "The owner's double free of a small block is silently ignored instead of reported."),
    ("12-interior-free-accepted", "misuse", "", "src/alloc.c",
     "  if ((size_t)i * size != in_slab) {",
     "  if (false && (size_t)i * size != in_slab) {",
     "A pointer into the middle of a small block is taken for the block: it is freed without a report."),
    ("13-calloc-dirty-small", "ops", "", "src/alloc.c",
     "    return tm_handed_out(p, size, tm_class_size[cls], zero, false);\n  }\n  if (need == 0)",
     "    return tm_handed_out(p, size, tm_class_size[cls], zero, true);\n  }\n  if (need == 0)",
     "calloc trusts slab memory to be clean: a reused small block is returned with old contents."),
    ("14-trim-purges-live-pages", "ops", "", "src/segment.c",
     "candidates[w] = seg->page_dirty[w] & ~seg->page_used[w];",
     "candidates[w] = seg->page_dirty[w];",
     "Purge ignores the used-page map: trim drops the contents of live blocks."),
    ("15-large-free-never-unmaps", "ops", "", "src/large.c",
     "  tm_os_unmap(large->base, large->map_size);\n  tm_heap_t *heap",
     "  tm_heap_t *heap",
     "Freeing a large block forgets to unmap it: the allocator leaks its own mappings."),
]


def main():
    out_dir = os.path.join(ROOT, "fuzz", "bugs")
    ok = True
    for name, harness, detect, path, old, new, text, *more in BUGS:
        with open(os.path.join(ROOT, path)) as f:
            before = f.read()
        after = before
        edits = [(old, new)] + (more[0] if more else [])
        for o, n in edits:
            if after.count(o) != 1:
                print("%s: edit does not apply exactly once to %s" % (name, path), file=sys.stderr)
                ok = False
            after = after.replace(o, n)
        diff = difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                    "a/" + path, "b/" + path, n=3)
        header = ["Bug: %s\n" % text, "Harness: %s\n" % harness]
        if detect:
            header.append("Detect: %s\n" % detect)
        header.append("Generated by fuzz/bugs/make_patches.py against the core of the commit it was made in.\n\n")
        with open(os.path.join(out_dir, name + ".patch"), "w") as f:
            f.write("".join(header) + "".join(diff))
    print("wrote %d patches" % len(BUGS), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
