/* White-box tests of the pieces the fuzzers reach only slowly: the page-run
 * search, the size-class tables, a slab's block index arithmetic and its
 * take / local free / remote free / merge rules, the segment map, and the
 * detection mode's fill and canary checks. They
 * call the core's internal functions directly (the static library exports
 * them to the linker; they are hidden only in the shared one).
 *
 * Each check compares against a plain reference written here (a loop over
 * every bit, every size, every offset), so an off-by-one in the core (a
 * `<=` made `<`, a constant off by one) fails here at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap.h"
#include "detect.h"
#include "segmap.h"
#include "segment.h"
#include "sizeclass.h"
#include "slab.h"
#include "tinymalloc.h"

static int failures;
static int checks;

#define EXPECT(cond, ...)                                                                                              \
  do {                                                                                                                 \
    checks++;                                                                                                          \
    if (!(cond)) {                                                                                                     \
      failures++;                                                                                                      \
      fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond);                                                \
      fprintf(stderr, __VA_ARGS__);                                                                                    \
      fputc('\n', stderr);                                                                                             \
      if (failures > 20) exit(1);                                                                                      \
    }                                                                                                                  \
  } while (0)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* ---- page-run search --------------------------------------------------- */

static bool ref_bit(const uint64_t *w, size_t i) { return (w[i / 64] >> (i % 64)) & 1; }

static size_t ref_find_clear_run(const uint64_t *w, size_t nbits, size_t from, size_t n, size_t align)
{
  for (size_t i = (from + align - 1) / align * align; i + n <= nbits; i += align) {
    size_t k = 0;
    while (k < n && !ref_bit(w, i + k))
      k++;
    if (k == n) return i;
  }
  return SIZE_MAX;
}

/* tm_bits_set / tm_bits_clear of [first, first + n) on a copy of `words`
 * (1024 bits): that range reads `value`, every other bit is unchanged. */
static void expect_range_written(const uint64_t *words, size_t first, size_t n, bool value)
{
  uint64_t copy[1024 / 64];
  memcpy(copy, words, sizeof copy);
  if (value)
    tm_bits_set(copy, first, n);
  else
    tm_bits_clear(copy, first, n);
  for (size_t i = 0; i < 1024; i++) {
    bool want = (i >= first && i < first + n) ? value : ref_bit(words, i);
    if (ref_bit(copy, i) != want) {
      EXPECT(false, "%s [%zu, +%zu) left bit %zu wrong", value ? "set" : "clear", first, n, i);
      return;
    }
  }
}

static void test_page_run_search(void)
{
  enum { MAXBITS = 1024 };
  uint64_t words[MAXBITS / 64];
  static const size_t sizes[] = {1, 2, 63, 64, 65, 127, 128, 129, 500, 1024};
  static const size_t aligns[] = {1, 2, 4, 8, 16, 64, 256};

  /* Runs that end exactly at the last bit (the bound `i + n <= nbits`). */
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t nbits = sizes[s];
    for (size_t n = 1; n <= nbits; n++) {
      memset(words, 0xff, sizeof words);
      tm_bits_clear(words, nbits - n, n);
      size_t got = tm_bits_find_clear_run(words, nbits, 0, n, 1);
      EXPECT(got == nbits - n, "nbits %zu n %zu: run at the end found at %zu", nbits, n, got);
      got = tm_bits_find_clear_run(words, nbits, 0, n + 1, 1);
      EXPECT(got == SIZE_MAX, "nbits %zu n %zu: a run one too long found at %zu", nbits, n + 1, got);
    }
  }
  /* Every bit clear: the whole map is one run; one more bit does not fit. */
  memset(words, 0, sizeof words);
  EXPECT(tm_bits_find_clear_run(words, MAXBITS, 0, MAXBITS, 1) == 0, "whole map");
  EXPECT(tm_bits_find_clear_run(words, MAXBITS, 0, MAXBITS + 1, 1) == SIZE_MAX, "longer than the map");
  EXPECT(tm_bits_find_clear_run(words, MAXBITS, 1, MAXBITS, 1) == SIZE_MAX, "from 1, the whole map");

  /* Random maps of every density against the reference. */
  for (int iter = 0; iter < 60000; iter++) {
    size_t nbits = sizes[rnd() % (sizeof sizes / sizeof sizes[0])];
    unsigned density = (unsigned)(rnd() % 5); /* 0: sparse set bits ... 4: dense */
    for (size_t i = 0; i < MAXBITS / 64; i++) {
      uint64_t v = rnd();
      for (unsigned d = 0; d < 3 - (density < 3 ? density : 2); d++)
        v &= rnd(); /* thin it out */
      if (density == 4) v |= rnd();
      words[i] = v;
    }
    size_t n = 1 + rnd() % (rnd() % 4 == 0 ? nbits : (nbits < 12 ? nbits : 12));
    size_t align = aligns[rnd() % (sizeof aligns / sizeof aligns[0])];
    size_t from = rnd() % (nbits + 1);
    size_t want = ref_find_clear_run(words, nbits, from, n, align);
    size_t got = tm_bits_find_clear_run(words, nbits, from, n, align);
    EXPECT(got == want, "nbits %zu from %zu n %zu align %zu: found %zu, expected %zu", nbits, from, n, align, got,
           want);
  }

  /* The other bit-range helpers against the reference. */
  for (int iter = 0; iter < 20000; iter++) {
    for (size_t i = 0; i < MAXBITS / 64; i++)
      words[i] = rnd() & rnd();
    size_t first = rnd() % MAXBITS, n = rnd() % (MAXBITS - first + 1);
    size_t count = 0;
    for (size_t i = first; i < first + n; i++)
      count += ref_bit(words, i);
    EXPECT(tm_bits_count(words, first, n) == count, "count [%zu, +%zu)", first, n);
    EXPECT(tm_bits_any(words, first, n) == (count != 0), "any [%zu, +%zu)", first, n);
    bool value = rnd() & 1;
    size_t next = first;
    while (next < MAXBITS && ref_bit(words, next) != value)
      next++;
    EXPECT(tm_bits_next(words, MAXBITS, first, value) == next, "next %d from %zu", value, first);
    expect_range_written(words, first, n, true);
    expect_range_written(words, first, n, false);
  }
}

/* ---- size classes ------------------------------------------------------ */

static void test_size_classes(void)
{
  EXPECT(tm_class_size[0] == 16, "first class %u", tm_class_size[0]);
  EXPECT(tm_class_size[TM_CLASS_COUNT - 1] == TM_SMALL_MAX, "last class %u", tm_class_size[TM_CLASS_COUNT - 1]);
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
    EXPECT(tm_class_size[c] % 16 == 0, "class %u size %u not a multiple of 16", c, tm_class_size[c]);
    if (c) EXPECT(tm_class_size[c] > tm_class_size[c - 1], "class %u not larger than class %u", c, c - 1);
    /* A slab holds at least 4 blocks and at most what its bitmap covers. */
    size_t capacity = TM_SLAB_SIZE / tm_class_size[c];
    EXPECT(capacity >= 4 && capacity <= TM_SLAB_MAX_BLOCKS, "class %u capacity %zu", c, capacity);
  }
  for (size_t size = 0; size <= TM_SMALL_MAX; size++) {
    unsigned c = tm_size_class(size);
    size_t need = size ? size : 1;
    unsigned want = 0;
    while (tm_class_size[want] < need)
      want++;
    if (c != want) {
      EXPECT(c == want, "size %zu maps to class %u (%u bytes), the smallest that fits is %u (%u bytes)", size, c,
             c < TM_CLASS_COUNT ? tm_class_size[c] : 0, want, tm_class_size[want]);
      continue;
    }
    /* The waste the header promises: under 25% of the request above 128 bytes. */
    if (size > 128)
      EXPECT((tm_class_size[c] - size) * 4 < size, "size %zu wastes %zu bytes in class %u", size,
             tm_class_size[c] - size, c);
  }
  for (size_t align = 1; align <= 2 * TM_SMALL_MAX; align <<= 1) {
    for (size_t size = 1; size <= TM_SMALL_MAX + 16; size += (size < 2048 ? 1 : 7)) {
      unsigned want = TM_CLASS_COUNT;
      for (unsigned c = 0; c < TM_CLASS_COUNT; c++)
        if (tm_class_size[c] >= size && tm_class_size[c] % align == 0) {
          want = c;
          break;
        }
      unsigned got = tm_aligned_class(size, align);
      if (got != want) {
        EXPECT(got == want, "aligned class of (%zu, %zu) is %u, expected %u", size, align, got, want);
        break;
      }
    }
  }
}

/* ---- slab geometry and block rules ------------------------------------- */

static tm_arena_t test_arena;
static tm_heap_t test_owner; /* the slab's owner: this thread, in these tests */

static uint64_t alloc_word(tm_slab_t *slab, uint32_t w) { return atomic_load(&slab->bits[w].alloc); }
static uint64_t remote_word(tm_slab_t *slab, uint32_t w) { return atomic_load(&slab->bits[w].remote); }

/* The slab invariants of types.h that hold between operations. */
static void expect_slab_consistent(tm_slab_t *slab, const char *when)
{
  uint32_t allocated = 0;
  for (uint32_t w = 0; w < slab->words; w++) {
    uint64_t pad = tm_slab_padding(slab->capacity, w);
    uint64_t alloc = alloc_word(slab, w);
    EXPECT((alloc & pad) == pad, "%s: padding bit clear in word %u", when, w);
    bool has_free = alloc != ~0ull;
    EXPECT((((slab->free_words >> w) & 1) != 0) == has_free, "%s: free-word summary wrong for word %u", when, w);
    allocated += (uint32_t)__builtin_popcountll(alloc & ~pad);
  }
  EXPECT(allocated == slab->used, "%s: used %u, bitmap says %u", when, slab->used, allocated);
}

static void test_slab_geometry(tm_segment_t *seg)
{
  for (size_t slot = TM_FIRST_SLAB_SLOT; slot < TM_SLOTS; slot++) {
    tm_slab_t *slab = &seg->slabs[slot];
    uint8_t *start = (uint8_t *)seg + slot * TM_SLAB_SIZE;
    EXPECT(tm_slab_start(slab) == start, "slot %zu starts at %p, expected %p", slot, (void *)tm_slab_start(slab),
           (void *)start);
    EXPECT(tm_slab_of((uintptr_t)start) == slab, "first byte of slot %zu", slot);
    EXPECT(tm_slab_of((uintptr_t)start + TM_SLAB_SIZE - 1) == slab, "last byte of slot %zu", slot);
  }
  EXPECT(TM_FIRST_SLAB_SLOT * TM_SLAB_SIZE >= TM_META_PAGES * TM_PAGE_SIZE, "first slab slot overlaps the header");
  EXPECT((TM_FIRST_SLAB_SLOT - 1) * TM_SLAB_SIZE < TM_META_PAGES * TM_PAGE_SIZE, "a slab slot wasted after the header");
  /* The reciprocal gives the exact block index of every byte of a slab. */
  tm_slab_t *slab = &seg->slabs[TM_FIRST_SLAB_SLOT];
  for (unsigned c = 0; c < TM_CLASS_COUNT; c++) {
    tm_slab_carve(slab, c, &test_owner);
    uint32_t size = tm_class_size[c];
    EXPECT(slab->capacity == TM_SLAB_SIZE / size, "class %u capacity %u", c, slab->capacity);
    EXPECT(slab->words == (slab->capacity + 63) / 64, "class %u words %u", c, slab->words);
    for (size_t off = 0; off < TM_SLAB_SIZE; off++) {
      uint32_t index = tm_slab_index(slab, off);
      if (index != off / size) {
        EXPECT(index == off / size, "class %u (%u bytes): offset %zu gives block %u, expected %zu", c, size, off, index,
               off / size);
        break;
      }
    }
    expect_slab_consistent(slab, "fresh carve");
    tm_slab_uncarve(slab);
  }
}

static void test_slab_rules(tm_segment_t *seg)
{
  tm_slab_t *slab = &seg->slabs[TM_FIRST_SLAB_SLOT + 1];
  tm_faults_t faults = {0};
  unsigned cls = tm_size_class(48); /* 1365 blocks: 22 words, the last one padded */
  uint32_t size = tm_class_size[cls];
  tm_slab_carve(slab, cls, &test_owner);
  uint8_t *start = tm_slab_start(slab);

  /* Blocks come out lowest first, each once, until the slab is full. */
  uint32_t taken = 0;
  for (;;) {
    void *p;
    if (!tm_slab_take_fast(slab, &p)) {
      EXPECT(slab->free_words == 0, "the fast take failed with free words %llx", (unsigned long long)slab->free_words);
      EXPECT(tm_slab_take(slab, &faults) == NULL, "the slow take found a block the fast one did not");
      break;
    }
    if (p != start + (size_t)taken * size) {
      EXPECT(false, "take %u returned %p, expected %p", taken, p, (void *)(start + (size_t)taken * size));
      break;
    }
    taken++;
  }
  EXPECT(taken == slab->capacity, "took %u of %u blocks", taken, slab->capacity);
  EXPECT(atomic_load(&slab->high) == slab->words, "high %u after taking every block", atomic_load(&slab->high));
  expect_slab_consistent(slab, "full");

  /* The owner's free: once; a second free of the same block is refused. */
  EXPECT(tm_slab_free_local(slab, 3), "local free of a live block");
  EXPECT(!tm_slab_free_local(slab, 3), "a second local free was accepted");
  EXPECT(slab->used == slab->capacity - 1, "used %u", slab->used);
  tm_fault_t fault = {0};
  tm_slab_fault(slab, 3, start + 3 * size, &fault);
  EXPECT(fault.kind == TINYMALLOC_ERROR_DOUBLE_FREE, "a freed block's fault is kind %d", (int)fault.kind);

  /* Another thread's free: decided by the one fetch_or; pending until merged. */
  EXPECT(tm_slab_free_remote(slab, 70, start + 70 * size, NULL), "remote free of a live block refused");
  EXPECT(!tm_slab_block_live(slab, 70), "a block with a pending remote free still reads live");
  EXPECT(!tm_slab_free_remote(slab, 70, start + 70 * size, NULL), "a second remote free was accepted");
  EXPECT(!tm_slab_free_local(slab, 70), "the owner freed a block whose remote free is pending");
  EXPECT(!tm_slab_free_remote(slab, 3, start + 3 * size, NULL), "remote free of a free block was accepted");
  EXPECT((alloc_word(slab, 1) >> 6) & 1, "a remote free touched the alloc bit");
  EXPECT(tm_slab_merge(slab, &faults) == 1, "merge of one remote free");
  EXPECT(faults.count == 0, "a correct remote free was reported (%u faults)", faults.count);
  EXPECT(remote_word(slab, 1) == 0 && !((alloc_word(slab, 1) >> 6) & 1), "block 70 not free after the merge");
  expect_slab_consistent(slab, "after a merge");
  EXPECT(tm_slab_merge(slab, &faults) == 0, "a second merge freed something");

  /* Blocks freed by the owner and merged come back lowest first. */
  void *p = NULL;
  EXPECT(tm_slab_take_fast(slab, &p) && p == start + 3 * size, "the lowest free block is 3, got %p", p);
  EXPECT(tm_slab_take_fast(slab, &p) && p == start + 70 * size, "then 70, got %p", p);

  /* Two frees of one block raced: a remote bit is left over a free block.
   * The fast take refuses it, the slow take reports it and then takes it. */
  EXPECT(tm_slab_free_local(slab, 5), "local free of block 5");
  atomic_fetch_or(&slab->bits[0].remote, 1ull << 5); /* the racing second free */
  EXPECT(!tm_slab_take_fast(slab, &p), "the fast take handed out a block with a pending free");
  p = tm_slab_take(slab, &faults);
  EXPECT(p == start + 5 * size, "the slow take returned %p", p);
  EXPECT(faults.count == 1 && faults.fault[0].kind == TINYMALLOC_ERROR_DOUBLE_FREE &&
             faults.fault[0].p == start + 5 * size && faults.fault[0].detail != NULL,
         "the stale free was not reported as a double free of block 5 (%u faults)", faults.count);
  EXPECT(remote_word(slab, 0) == 0, "the stale remote bit stayed");
  faults.count = 0;

  /* The merge meets such a bit: it reports it, frees only the live block. */
  EXPECT(tm_slab_free_local(slab, 9), "local free of block 9");
  atomic_fetch_or(&slab->bits[0].remote, 1ull << 9);
  EXPECT(tm_slab_free_remote(slab, 10, start + 10 * size, NULL), "remote free of block 10");
  EXPECT(tm_slab_merge(slab, &faults) == 1, "the merge freed more or less than block 10");
  EXPECT(faults.count == 1 && faults.fault[0].p == start + 9 * size, "the stale bit of block 9 was not reported");
  EXPECT(!(alloc_word(slab, 0) & (1ull << 9)) && !(alloc_word(slab, 0) & (1ull << 10)), "blocks 9, 10 not free");
  expect_slab_consistent(slab, "after a merge with a stale bit");
  faults.count = 0;

  /* Notification: a watched full slab is queued once on its owner's pending
   * list by the first remote free into an empty remote word. */
  while (tm_slab_take_fast(slab, &p)) {
  }
  EXPECT(slab->used == slab->capacity, "refilled");
  EXPECT(tm_slab_watch(slab, &faults) == 0, "watch merged something");
  EXPECT(atomic_load(&slab->notify) == TM_NOTIFY_WANT, "notify %u after watch", atomic_load(&slab->notify));
  EXPECT(tm_slab_free_remote(slab, 100, start + 100 * size, NULL), "remote free of block 100");
  EXPECT(tm_slab_free_remote(slab, 101, start + 101 * size, NULL), "remote free of block 101");
  EXPECT(atomic_load(&slab->notify) == TM_NOTIFY_QUEUED, "notify %u after a remote free", atomic_load(&slab->notify));
  EXPECT(atomic_load(&test_owner.pending) == slab && atomic_load(&slab->pending_next) == NULL,
         "the slab is not queued exactly once");
  atomic_store(&test_owner.pending, NULL);
  atomic_store(&slab->notify, TM_NOTIFY_IDLE);
  EXPECT(tm_slab_merge(slab, &faults) == 2 && faults.count == 0, "merge of the two queued frees");

  /* A block never handed out is an invalid free, not a double free. */
  for (uint32_t i = 0; i < slab->capacity; i++)
    if ((alloc_word(slab, i / 64) >> (i % 64)) & 1) EXPECT(tm_slab_free_local(slab, i), "free %u", i);
  EXPECT(slab->used == 0, "used %u after freeing everything", slab->used);
  expect_slab_consistent(slab, "empty");
  tm_slab_uncarve(slab);
  tm_slab_carve(slab, cls, &test_owner);
  EXPECT(tm_slab_take_fast(slab, &p), "take from a fresh slab");
  EXPECT(atomic_load(&slab->high) == 1, "high %u after one take", atomic_load(&slab->high));
  tm_slab_fault(slab, 64, start + 64 * size, &fault); /* the first block of word 1: never handed out */
  EXPECT(fault.kind == TINYMALLOC_ERROR_INVALID_FREE, "the first block past the high-water word: kind %d",
         (int)fault.kind);
  tm_slab_fault(slab, 63, start + 63 * size, &fault); /* in word 0: a fresh block, but its word was used */
  EXPECT(fault.kind == TINYMALLOC_ERROR_DOUBLE_FREE, "the last block below the high-water word: kind %d",
         (int)fault.kind);
  tm_slab_fault(slab, 1, start + size, &fault);
  EXPECT(fault.kind == TINYMALLOC_ERROR_DOUBLE_FREE, "a free block below the high-water word: kind %d",
         (int)fault.kind);
  EXPECT(tm_slab_free_local(slab, 0), "free block 0");
  tm_slab_uncarve(slab);
}

/* ---- segment map ------------------------------------------------------- */

static void test_segment_map(void)
{
  EXPECT(tm_segmap_kind(0) == TM_SEG_NONE, "address 0");
  EXPECT(tm_segmap_kind((uintptr_t)&failures) == TM_SEG_NONE, "a static variable");
  EXPECT(tm_segmap_kind(~(uintptr_t)0) == TM_SEG_NONE, "the top address");
  EXPECT(tm_segmap_kind((uintptr_t)1 << TM_ADDRESS_BITS) == TM_SEG_NONE, "past the address space");

  tm_segment_t *seg = tm_segment_map(&test_arena);
  EXPECT(seg != NULL, "tm_segment_map");
  if (seg == NULL) return;
  uintptr_t base = (uintptr_t)seg;
  EXPECT((base & TM_SEGMENT_MASK) == 0, "segment %p not aligned", (void *)seg);
  EXPECT(tm_segmap_kind(base) == TM_SEG_ARENA, "first byte of a segment");
  EXPECT(tm_segmap_kind(base + TM_SEGMENT_SIZE - 1) == TM_SEG_ARENA, "last byte of a segment");
  EXPECT(seg->meta_pages == TM_META_PAGES && seg->used_pages == TM_META_PAGES, "header pages %u", seg->meta_pages);
  EXPECT(tm_segment_of((void *)(base + 12345)) == seg, "tm_segment_of");

  /* The page finder of the arena over this segment. */
  tm_segment_attach(&test_arena, seg);
  size_t first = 0;
  EXPECT(tm_segment_find_pages(&test_arena, 3, 1, &first) == seg && first == TM_META_PAGES, "3 pages at %zu", first);
  tm_segment_take_pages(seg, first, 3, NULL);
  EXPECT(tm_segment_find_pages(&test_arena, 16, 16, &first) == seg && first % 16 == 0 && first >= TM_META_PAGES + 3,
         "16 aligned pages at %zu", first);
  EXPECT(tm_segment_find_pages(&test_arena, TM_SEGMENT_PAGES - TM_META_PAGES - 3, 1, &first) == seg &&
             first == TM_META_PAGES + 3,
         "the rest of the segment at %zu", first);
  EXPECT(tm_segment_find_pages(&test_arena, TM_SEGMENT_PAGES - TM_META_PAGES - 2, 1, &first) == NULL,
         "a run one page longer than the free pages was found");
  tm_segment_give_pages(seg, TM_META_PAGES, 3);
  EXPECT(tm_segment_empty(seg), "the segment is not empty after giving its pages back");

  test_slab_geometry(seg);
  test_slab_rules(seg);

  tm_segment_detach(seg);
  tm_segment_unmap(seg);
  EXPECT(tm_segmap_kind(base) == TM_SEG_FREED, "an unmapped segment reads %u", tm_segmap_kind(base));

  /* A large mapping: its head and its body segments. */
  uintptr_t fake = base; /* only the map is written: nothing is mapped here now */
  tm_segmap_set(fake, 3 * TM_SEGMENT_SIZE, TM_SEG_LARGE_HEAD, TM_SEG_LARGE_BODY);
  EXPECT(tm_segmap_kind(fake) == TM_SEG_LARGE_HEAD, "large head");
  EXPECT(tm_segmap_kind(fake + TM_SEGMENT_SIZE) == TM_SEG_LARGE_BODY, "large body 1");
  EXPECT(tm_segmap_kind(fake + 3 * TM_SEGMENT_SIZE - 1) == TM_SEG_LARGE_BODY, "large body 2");
  tm_segmap_set(fake, 3 * TM_SEGMENT_SIZE, TM_SEG_FREED, TM_SEG_FREED);
}

/* The detection mode's fill and canary: every changed byte is found at its
 * offset, whatever the length (the vector loops and the byte loop that
 * names the first changed byte), and nothing outside them is checked. */
static void test_detect_patterns(void)
{
  static uint8_t buf[1 << 17] __attribute__((aligned(64)));
  for (int zero = 0; zero <= 1; zero++) {
    unsigned how = zero ? TM_FILL_ZERO : 0;
    for (size_t len = 16; len <= 1024 + 16; len += 16) {
      tm_detect_fill(buf, len, how);
      EXPECT(tm_detect_fill_check(buf, len, how) == SIZE_MAX, "fresh fill of %zu bytes", len);
      for (size_t o = 0; o < len; o++) {
        buf[o] ^= 0x21;
        size_t at = tm_detect_fill_check(buf, len, how);
        EXPECT(at == o, "fill of %zu (zero %d): byte %zu changed, found %zu", len, zero, o, at);
        buf[o + 1 < len ? o + 1 : o] ^= 0x42; /* a second change after it: still the first */
        at = tm_detect_fill_check(buf, len, how);
        EXPECT(at == o, "fill of %zu: bytes %zu and after changed, found %zu", len, o, at);
        buf[o + 1 < len ? o + 1 : o] ^= 0x42;
        buf[o] ^= 0x21;
      }
    }
    /* Over 64 KiB: the first and last 32 KiB carry the fill, the middle nothing. */
    size_t big = sizeof buf - 4096, edge = (size_t)32 << 10;
    memset(buf, 0x33, big);
    tm_detect_fill(buf, big, 0);
    EXPECT(buf[edge] == 0x33 && buf[big - edge - 1] == 0x33, "the middle of a big block is not filled");
    EXPECT(tm_detect_fill_check(buf, big, 0) == SIZE_MAX, "big fill");
    size_t probes[] = {0, 1, edge - 1, big - edge, big - 17, big - 1};
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
      buf[probes[i]] ^= 1;
      EXPECT(tm_detect_fill_check(buf, big, 0) == probes[i], "big fill: byte %zu", probes[i]);
      buf[probes[i]] ^= 1;
    }
    /* fill_all (TM_FILL_WHOLE): every byte carries the fill, the middle is checked. */
    memset(buf, 0x33, big);
    tm_detect_fill(buf, big, TM_FILL_WHOLE);
    EXPECT(tm_detect_fill_check(buf, big, TM_FILL_WHOLE) == SIZE_MAX, "whole big fill");
    size_t middle[] = {edge, big / 2 + 1, big - edge - 1};
    for (size_t i = 0; i < sizeof middle / sizeof middle[0]; i++) {
      buf[middle[i]] ^= 1;
      EXPECT(tm_detect_fill_check(buf, big, TM_FILL_WHOLE) == middle[i], "whole big fill: byte %zu", middle[i]);
      EXPECT(tm_detect_fill_check(buf, big, 0) == SIZE_MAX, "edges only: byte %zu of the middle read", middle[i]);
      buf[middle[i]] ^= 1;
    }
  }
  for (size_t usable = 16; usable <= 512; usable += 16) {
    for (size_t requested = 0; requested <= usable; requested++) {
      size_t end = tm_detect_fill_length(requested, usable);
      EXPECT(end <= usable && end % 16 == 0 && (requested == usable || end > requested) &&
                 (end == usable || end >= requested + 64),
             "canary end %zu for %zu of %zu", end, requested, usable);
      memset(buf, 'a', usable + 64);
      tm_detect_canary_write(buf, requested, usable);
      EXPECT(tm_detect_canary_check(buf, requested, usable) == SIZE_MAX, "fresh canary %zu/%zu", requested, usable);
      for (size_t i = 0; i < requested; i++)
        if (buf[i] != 'a') {
          EXPECT(buf[i] == 'a', "canary of %zu/%zu wrote byte %zu of the request", requested, usable, i);
          break;
        }
      EXPECT(end == usable || buf[end] == 'a', "canary of %zu/%zu wrote past its end %zu", requested, usable, end);
      for (size_t o = requested; o < end; o++) {
        EXPECT(buf[o] >= 0x80, "canary byte %zu is %#x", o, buf[o]);
        buf[o] ^= 0x01;
        size_t at = tm_detect_canary_check(buf, requested, usable);
        EXPECT(at == o, "canary %zu/%zu: byte %zu changed, found %zu", requested, usable, o, at);
        buf[o] ^= 0x01;
      }
      if (requested > 0) { /* the program's own bytes are not the canary */
        buf[requested - 1] ^= 0x01;
        EXPECT(tm_detect_canary_check(buf, requested, usable) == SIZE_MAX, "request byte taken for canary");
      }
    }
  }
}

int main(void)
{
  tinyfree(tinymalloc(1)); /* initialised, as in any program */
  test_page_run_search();
  test_size_classes();
  test_segment_map();
  test_detect_patterns();
  printf("test_internals: %d checks, %d failed\n", checks, failures);
  return failures != 0;
}
