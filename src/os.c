/* os.c owns every conversation with the kernel about memory: mmap, munmap,
 * mremap, madvise, mincore, and the clock. Nothing else in tinymalloc maps
 * or unmaps. It keeps the mapped / purged counters, lifts tool poison before
 * memory goes back to the kernel, and never allocates. */
#include <errno.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "os.h"
#include "track.h"

/* ThreadSanitizer does not see the kernel order addresses between mappings:
 * mremap is not intercepted, so addresses a mapping gains or moves to keep
 * the shadow of whoever used them before, and it reports a race between that
 * earlier user and the new owner (tests/regress/large_shrink_race.c). Under
 * it, giving addresses back releases and taking them acquires one sync
 * object: the happens-before the kernel's mapping lock gives. */
#if defined(__SANITIZE_THREAD__)
#define TM_OS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TM_OS_TSAN 1
#endif
#endif
#ifdef TM_OS_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static char tm_os_address_space;
#define TM_OS_GIVE() __tsan_release(&tm_os_address_space)
#define TM_OS_TAKE() __tsan_acquire(&tm_os_address_space)
#else
#define TM_OS_GIVE() ((void)0)
#define TM_OS_TAKE() ((void)0)
#endif

_Atomic size_t tm_os_mapped, tm_os_mapped_peak, tm_os_meta_mapped, tm_os_purged, tm_os_unmapped;

static void tm_os_account_map(size_t size)
{
  size_t now = atomic_fetch_add_explicit(&tm_os_mapped, size, memory_order_relaxed) + size;
  size_t peak = atomic_load_explicit(&tm_os_mapped_peak, memory_order_relaxed);
  while (now > peak && !atomic_compare_exchange_weak_explicit(&tm_os_mapped_peak, &peak, now, memory_order_relaxed,
                                                              memory_order_relaxed)) {
  }
}

static bool tm_os_fits_segmap(uintptr_t start, size_t size) { return ((start + size - 1) >> TM_ADDRESS_BITS) == 0; }

/* Over-maps by the alignment and trims both ends. */
void *tm_os_map_aligned(size_t size, size_t alignment)
{
  if (size > TM_MAX_REQUEST || alignment > TM_MAX_REQUEST - size) {
    errno = ENOMEM;
    return NULL;
  }
  size_t over = size + (alignment > TM_PAGE_SIZE ? alignment : 0);
  uint8_t *raw = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) {
    errno = ENOMEM;
    return NULL;
  }
  uintptr_t aligned = ((uintptr_t)raw + alignment - 1) & ~(uintptr_t)(alignment - 1);
  size_t head = aligned - (uintptr_t)raw;
  size_t tail = over - head - size;
  if (head) munmap(raw, head);
  if (tail) munmap((uint8_t *)aligned + size, tail);
  if (!tm_os_fits_segmap(aligned, size)) { /* beyond what the segment map covers */
    munmap((void *)aligned, size);
    errno = ENOMEM;
    return NULL;
  }
  tm_os_account_map(size); /* callers call tm_track_os_map on the data pages */
  TM_OS_TAKE();
  return (void *)aligned;
}

void *tm_os_map_meta(size_t size)
{
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  atomic_fetch_add_explicit(&tm_os_meta_mapped, size, memory_order_relaxed);
  TM_OS_TAKE();
  return p;
}

/* The calls below run on free paths: a free keeps errno. */
void tm_os_unmap_meta(void *p, size_t size)
{
  int saved = errno;
  TM_OS_GIVE();
  munmap(p, size);
  atomic_fetch_sub_explicit(&tm_os_meta_mapped, size, memory_order_relaxed);
  errno = saved;
}

void tm_os_unmap(void *p, size_t size)
{
  int saved = errno;
  tm_track_os_unmap(p, size);
  TM_OS_GIVE();
  munmap(p, size);
  errno = saved;
  atomic_fetch_sub_explicit(&tm_os_mapped, size, memory_order_relaxed);
  atomic_fetch_add_explicit(&tm_os_unmapped, size, memory_order_relaxed);
}

void tm_os_purge(void *p, size_t size)
{
  int saved = errno;
  tm_track_os_purge(p, size);
  madvise(p, size, MADV_DONTNEED);
  errno = saved;
  atomic_fetch_add_explicit(&tm_os_purged, size, memory_order_relaxed);
}

bool tm_os_protect(void *p, size_t size, bool accessible)
{
  int saved = errno;
  int result = mprotect(p, size, accessible ? PROT_READ | PROT_WRITE : PROT_NONE);
  errno = saved;
  return result == 0;
}

bool tm_os_grow_in_place(void *base, size_t old_size, size_t new_size)
{
  if (!tm_os_fits_segmap((uintptr_t)base, new_size)) return false;
  int saved = errno;
  void *moved = mremap(base, old_size, new_size, 0);
  errno = saved;
  if (moved == MAP_FAILED) return false;
  TM_OS_TAKE();
  tm_os_account_map(new_size - old_size);
  tm_track_os_map_block((uint8_t *)base + old_size, new_size - old_size);
  return true;
}

static void *tm_os_move_pages(void *base, size_t old_size, size_t new_size, size_t alignment);

/* Reserves an aligned destination first (PROT_NONE), then lets the kernel
 * move the pages there: no copy, whatever the size. */
void *tm_os_move(void *base, size_t old_size, size_t new_size, size_t alignment)
{
  if (new_size > TM_MAX_REQUEST || alignment > TM_MAX_REQUEST - new_size) return NULL;
  int saved = errno;
  TM_OS_GIVE();
  void *moved = tm_os_move_pages(base, old_size, new_size, alignment);
  if (moved) TM_OS_TAKE();
  errno = saved;
  return moved;
}

static void *tm_os_move_pages(void *base, size_t old_size, size_t new_size, size_t alignment)
{
  size_t over = new_size + alignment;
  uint8_t *raw = mmap(NULL, over, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return NULL;
  uintptr_t aligned = ((uintptr_t)raw + alignment - 1) & ~(uintptr_t)(alignment - 1);
  size_t head = aligned - (uintptr_t)raw, tail = over - head - new_size;
  if (!tm_os_fits_segmap(aligned, new_size) ||
      mremap(base, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)aligned) == MAP_FAILED) {
    munmap(raw, over);
    return NULL;
  }
  if (head) munmap(raw, head);
  if (tail) munmap((uint8_t *)aligned + new_size, tail);
  if (new_size > old_size)
    tm_os_account_map(new_size - old_size);
  else
    atomic_fetch_sub_explicit(&tm_os_mapped, old_size - new_size, memory_order_relaxed);
  return (void *)aligned;
}

uint64_t tm_os_now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

size_t tm_os_resident(const void *p, size_t size)
{
  unsigned char vec[256];
  size_t resident = 0;
  for (size_t off = 0; off < size; off += sizeof vec * TM_PAGE_SIZE) {
    size_t len = size - off < sizeof vec * TM_PAGE_SIZE ? size - off : sizeof vec * TM_PAGE_SIZE;
    if (mincore((uint8_t *)p + off, len, vec) != 0) continue;
    for (size_t i = 0; i < (len + TM_PAGE_SIZE - 1) / TM_PAGE_SIZE; i++)
      resident += (vec[i] & 1) * TM_PAGE_SIZE;
  }
  return resident;
}
