/* stats_print.c owns the statistics report: tinymalloc_stats_print (human
 * text or JSON) and the at-exit report of TINYMALLOC_SHOW_STATS. Reads figures
 * only through tinymalloc_stats(); formats numbers by hand into a stack buffer
 * and writes with write(2), with thread cancellation disabled (write is a
 * cancellation point). It never allocates or uses stdio: it runs at exit,
 * after a crash of the program's heap use, and from malloc_stats. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

#include "error.h"
#include "stats.h"

/* An output buffer on the stack, flushed to the fd when full. Write errors
 * are remembered and end the output quietly: statistics are best effort. */
typedef struct tm_print_buffer_s {
  int fd;
  int failed;
  size_t used;
  char bytes[1024];
} tm_print_buffer_t;

static void print_flush(tm_print_buffer_t *out)
{
  size_t done = 0;
  while (!out->failed && done < out->used) {
    ssize_t n = write(out->fd, out->bytes + done, out->used - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      out->failed = 1;
    else
      done += (size_t)n;
  }
  out->used = 0;
}

static void print_bytes(tm_print_buffer_t *out, const char *text, size_t length)
{
  while (length > 0) {
    if (out->used == sizeof out->bytes) print_flush(out);
    size_t room = sizeof out->bytes - out->used;
    size_t chunk = length < room ? length : room;
    memcpy(out->bytes + out->used, text, chunk);
    out->used += chunk;
    text += chunk;
    length -= chunk;
  }
}

static void print_text(tm_print_buffer_t *out, const char *text) { print_bytes(out, text, strlen(text)); }

/* Decimal (tm_fmt_dec, the one number formatter), right-aligned in `width`
 * columns (0: no padding). */
static void print_number(tm_print_buffer_t *out, size_t value, int width)
{
  char digits[24];
  size_t count = tm_fmt_dec(digits, value);
  for (size_t pad = count; (int)pad < width; pad++)
    print_bytes(out, " ", 1);
  print_bytes(out, digits, count);
}

/* "1.5 MiB"-style size with one decimal, for people; the exact byte count is
 * printed beside it. */
static void print_size_unit(tm_print_buffer_t *out, size_t bytes)
{
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t unit = 0;
  size_t whole = bytes;
  size_t tenths = 0;
  while (whole >= 1024 && unit + 1 < sizeof units / sizeof units[0]) {
    tenths = (whole % 1024) * 10 / 1024;
    whole /= 1024;
    unit++;
  }
  print_number(out, whole, 0);
  if (unit > 0) {
    print_bytes(out, ".", 1);
    print_number(out, tenths, 0);
  }
  print_bytes(out, " ", 1);
  print_text(out, units[unit]);
}

/* One "  label ........ 123456 (120.5 KiB)" line of the human report. */
static void print_line(tm_print_buffer_t *out, const char *label, size_t value, int is_bytes)
{
  size_t length = strlen(label);
  print_text(out, "  ");
  print_bytes(out, label, length);
  for (size_t column = length; column < 16; column++)
    print_bytes(out, " ", 1);
  print_number(out, value, 14);
  if (is_bytes) {
    print_text(out, "  (");
    print_size_unit(out, value);
    print_text(out, ")");
  }
  print_text(out, "\n");
}

static void print_human(tm_print_buffer_t *out, const tinymalloc_stats_t *stats)
{
  print_text(out, "tinymalloc statistics\n");
  print_line(out, "live blocks", stats->live_blocks, 0);
  print_line(out, "live bytes", stats->live_bytes, 1);
  print_line(out, "mapped bytes", stats->mapped_bytes, 1);
  print_line(out, "peak mapped bytes", stats->peak_mapped_bytes, 1);
  print_line(out, "resident bytes", stats->resident_bytes, 1);
  print_line(out, "metadata bytes", stats->metadata_bytes, 1);
  print_line(out, "allocations", stats->total_allocs, 0);
  print_line(out, "frees", stats->total_frees, 0);
  print_line(out, "small blocks", stats->small_blocks, 0);
  print_line(out, "medium blocks", stats->medium_blocks, 0);
  print_line(out, "large blocks", stats->large_blocks, 0);
  print_line(out, "segments", stats->segments, 0);
  print_line(out, "purged bytes", stats->purged_bytes, 1);
  print_line(out, "unmapped bytes", stats->unmapped_bytes, 1);

  /* Classes never used are left out: the table is for reading. */
  print_text(out, "size classes (used ones)\n");
  print_text(out, "    block size     live blocks     allocations     slabs\n");
  for (size_t c = 0; c < stats->class_count && c < TINYMALLOC_MAX_CLASSES; c++) {
    const tinymalloc_class_stats_t *cls = &stats->classes[c];
    if (cls->allocs == 0 && cls->live_blocks == 0 && cls->slabs == 0) continue;
    print_number(out, cls->block_size, 14);
    print_number(out, cls->live_blocks, 16);
    print_number(out, cls->allocs, 16);
    print_number(out, cls->slabs, 10);
    print_text(out, "\n");
  }

  print_text(out, "arenas\n");
  print_text(out, "    arena  segments    mapped bytes   medium    large  threads\n");
  for (size_t a = 0; a < stats->arena_count && a < TINYMALLOC_MAX_ARENAS; a++) {
    const tinymalloc_arena_stats_t *arena = &stats->arenas[a];
    print_number(out, a, 9);
    print_number(out, arena->segments, 10);
    print_number(out, arena->mapped_bytes, 16);
    print_number(out, arena->medium_blocks, 9);
    print_number(out, arena->large_blocks, 9);
    print_number(out, arena->threads, 9);
    print_text(out, "\n");
  }
}

static void print_json_field(tm_print_buffer_t *out, const char *name, size_t value, int first)
{
  if (!first) print_bytes(out, ",", 1);
  print_bytes(out, "\"", 1);
  print_text(out, name);
  print_text(out, "\":");
  print_number(out, value, 0);
}

/* One object on one line; every class and arena in use is listed, so that a
 * tool sees the same figures as tinymalloc_stats() returns. */
static void print_json(tm_print_buffer_t *out, const tinymalloc_stats_t *stats)
{
  print_bytes(out, "{", 1);
  print_json_field(out, "live_blocks", stats->live_blocks, 1);
  print_json_field(out, "live_bytes", stats->live_bytes, 0);
  print_json_field(out, "mapped_bytes", stats->mapped_bytes, 0);
  print_json_field(out, "peak_mapped_bytes", stats->peak_mapped_bytes, 0);
  print_json_field(out, "resident_bytes", stats->resident_bytes, 0);
  print_json_field(out, "metadata_bytes", stats->metadata_bytes, 0);
  print_json_field(out, "total_allocs", stats->total_allocs, 0);
  print_json_field(out, "total_frees", stats->total_frees, 0);
  print_json_field(out, "small_blocks", stats->small_blocks, 0);
  print_json_field(out, "medium_blocks", stats->medium_blocks, 0);
  print_json_field(out, "large_blocks", stats->large_blocks, 0);
  print_json_field(out, "segments", stats->segments, 0);
  print_json_field(out, "purged_bytes", stats->purged_bytes, 0);
  print_json_field(out, "unmapped_bytes", stats->unmapped_bytes, 0);
  print_text(out, ",\"classes\":[");
  for (size_t c = 0; c < stats->class_count && c < TINYMALLOC_MAX_CLASSES; c++) {
    const tinymalloc_class_stats_t *cls = &stats->classes[c];
    print_text(out, c == 0 ? "{" : ",{");
    print_json_field(out, "block_size", cls->block_size, 1);
    print_json_field(out, "live_blocks", cls->live_blocks, 0);
    print_json_field(out, "allocs", cls->allocs, 0);
    print_json_field(out, "slabs", cls->slabs, 0);
    print_text(out, "}");
  }
  print_text(out, "],\"arenas\":[");
  for (size_t a = 0; a < stats->arena_count && a < TINYMALLOC_MAX_ARENAS; a++) {
    const tinymalloc_arena_stats_t *arena = &stats->arenas[a];
    print_text(out, a == 0 ? "{" : ",{");
    print_json_field(out, "segments", arena->segments, 1);
    print_json_field(out, "mapped_bytes", arena->mapped_bytes, 0);
    print_json_field(out, "medium_blocks", arena->medium_blocks, 0);
    print_json_field(out, "large_blocks", arena->large_blocks, 0);
    print_json_field(out, "threads", arena->threads, 0);
    print_text(out, "}");
  }
  print_text(out, "]}\n");
}

TINYMALLOC_API void tinymalloc_stats_print(int fd, int json)
{
  int saved_errno = errno, cancel_state;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
  tinymalloc_stats_t stats;
  tm_print_buffer_t out;
  out.fd = fd;
  out.failed = 0;
  out.used = 0;
  if (tinymalloc_stats(&stats) != 0) {
    print_text(&out, json ? "{\"error\":\"tinymalloc_stats failed\"}\n" : "tinymalloc: statistics unavailable\n");
  } else if (json) {
    print_json(&out, &stats);
  } else {
    print_human(&out, &stats);
  }
  print_flush(&out);
  pthread_setcancelstate(cancel_state, NULL);
  errno = saved_errno;
}

/* The at-exit report goes to the standard error the process started with:
 * many programs close stderr before exit (coreutils' close_stdout does), and
 * fd 2 may even have been reused for a data file by then. So, when
 * TINYMALLOC_SHOW_STATS is on at start, a close-on-exec duplicate of fd 2 is
 * kept from load time (numbered high, out of the way of the program's own).
 * If show_stats is switched on later through the API, fd 2 is used. */
static int stats_exit_fd = -1;

void tm_stats_at_load(void)
{
  if (tinymalloc_option_get("show_stats") > 0) stats_exit_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);
}

/* TINYMALLOC_SHOW_STATS=1 prints the human report at exit, 2 the JSON
 * object. A destructor rather than atexit(): registering with atexit may
 * allocate, and the library's destructor runs after the program's, so the
 * report sees the program's final frees. Both hooks are called from alloc.c's
 * constructor and destructor, so that a static link pulls this file in. */
void tm_stats_at_exit(void)
{
  long show = tinymalloc_option_get("show_stats");
  if (show > 0) tinymalloc_stats_print(stats_exit_fd >= 0 ? stats_exit_fd : STDERR_FILENO, show >= 2);
}
