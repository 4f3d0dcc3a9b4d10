/* error.c owns the one way tinymalloc reports misuse: one line on stderr
 * written with write(2) (no stdio, no allocation) naming the operation, the
 * pointer and the fault, then the program's handler or abort(). It runs with
 * no tinymalloc lock held and with thread cancellation disabled (write is a
 * cancellation point: a pending cancel must not swallow the report). It also
 * formats numbers for the other writers (stats, check, warnings). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "options.h"

static _Atomic(tinymalloc_error_handler_t) tm_error_handler;
static _Atomic(void *) tm_error_handler_arg;

tinymalloc_error_handler_t tinymalloc_set_error_handler(tinymalloc_error_handler_t handler, void *arg)
{
  atomic_store_explicit(&tm_error_handler_arg, arg, memory_order_relaxed);
  return atomic_exchange_explicit(&tm_error_handler, handler, memory_order_acq_rel);
}

size_t tm_fmt_hex(char *buf, uintptr_t v)
{
  char tmp[2 * sizeof v];
  size_t n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  buf[0] = '0';
  buf[1] = 'x';
  for (size_t i = 0; i < n; i++)
    buf[2 + i] = tmp[n - 1 - i];
  return n + 2;
}

size_t tm_fmt_dec(char *buf, uint64_t v)
{
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++)
    buf[i] = tmp[n - 1 - i];
  return n;
}

/* A bounded string builder on the stack. */
typedef struct {
  char text[320];
  size_t len;
} tm_line_t;

static void tm_line_str(tm_line_t *line, const char *s)
{
  size_t n = strlen(s);
  if (n > sizeof line->text - 2 - line->len) n = sizeof line->text - 2 - line->len;
  memcpy(line->text + line->len, s, n);
  line->len += n;
}

static void tm_line_num(tm_line_t *line, uint64_t v, bool hex)
{
  char buf[24];
  buf[hex ? tm_fmt_hex(buf, (uintptr_t)v) : tm_fmt_dec(buf, v)] = '\0';
  tm_line_str(line, buf);
}

static const char *tm_fault_phrase(tinymalloc_error_kind_t kind, const char *op)
{
  bool is_free = strcmp(op, "free") == 0;
  bool is_realloc = strcmp(op, "realloc") == 0;
  if (kind == TINYMALLOC_ERROR_DOUBLE_FREE)
    return is_free ? "double free of " : is_realloc ? "realloc of freed block " : "usable_size of freed block ";
  if (kind == TINYMALLOC_ERROR_HEAP_OVERFLOW) return "heap overflow of block ";
  if (kind == TINYMALLOC_ERROR_WRITE_AFTER_FREE) return "write after free of block ";
  return is_free ? "invalid free of " : is_realloc ? "invalid realloc of " : "invalid usable_size of ";
}

static void tm_write_all(const char *text, size_t len)
{
  while (len > 0) {
    ssize_t n = write(STDERR_FILENO, text, len);
    if (n <= 0) return;
    text += n;
    len -= (size_t)n;
  }
}

void tm_report(const char *op, const tm_fault_t *f)
{
  tm_line_t line = {.len = 0};
  tm_line_str(&line, "tinymalloc: ");
  tm_line_str(&line, tm_fault_phrase(f->kind, op));
  tm_line_num(&line, (uintptr_t)f->p, true);
  tm_line_str(&line, " (");
  if (f->kind == TINYMALLOC_ERROR_HEAP_OVERFLOW) {
    tm_line_num(&line, f->block_size, false);
    tm_line_str(&line, " bytes requested; byte ");
    tm_line_num(&line, f->offset, false);
    tm_line_str(&line, " overwritten, found by ");
    tm_line_str(&line, op);
  } else if (f->kind == TINYMALLOC_ERROR_WRITE_AFTER_FREE) {
    tm_line_str(&line, "block of ");
    tm_line_num(&line, f->block_size, false);
    tm_line_str(&line, " bytes; byte ");
    tm_line_num(&line, f->offset, false);
    tm_line_str(&line, " changed while it was free, found when it ");
    tm_line_str(&line, f->detail ? f->detail : "left the quarantine");
  } else if (f->block_start != NULL) {
    tm_line_str(&line, "interior pointer: ");
    tm_line_num(&line, (uint64_t)((const uint8_t *)f->p - (const uint8_t *)f->block_start), false);
    tm_line_str(&line, " bytes into the block of ");
    tm_line_num(&line, f->block_size, false);
    tm_line_str(&line, " bytes at ");
    tm_line_num(&line, (uintptr_t)f->block_start, true);
  } else {
    if (f->detail) tm_line_str(&line, f->detail);
    if (f->detail && f->block_size) tm_line_str(&line, "; ");
    if (f->block_size) {
      tm_line_str(&line, "block of ");
      tm_line_num(&line, f->block_size, false);
      tm_line_str(&line, " bytes");
    }
  }
  tm_line_str(&line, ")");
  int cancel_state;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
  if (TM_OPTION(show_errors)) {
    line.text[line.len] = '\n';
    tm_write_all(line.text, line.len + 1);
  }
  line.text[line.len] = '\0';
  tinymalloc_error_handler_t handler = atomic_load_explicit(&tm_error_handler, memory_order_acquire);
  if (handler == NULL) abort();
  handler(f->kind, op, (void *)f->p, line.text, atomic_load_explicit(&tm_error_handler_arg, memory_order_relaxed));
  pthread_setcancelstate(cancel_state, NULL);
}

void tm_report_all(const char *op, tm_faults_t *faults)
{
  unsigned n = faults->count < TM_FAULTS_MAX ? faults->count : TM_FAULTS_MAX;
  faults->count = 0;
  for (unsigned i = 0; i < n; i++)
    tm_report(op, &faults->fault[i]);
}

void tm_warn(const char *a, const char *b)
{
  tm_line_t line = {.len = 0};
  tm_line_str(&line, "tinymalloc: warning: ");
  tm_line_str(&line, a);
  tm_line_str(&line, b);
  line.text[line.len++] = '\n';
  int cancel_state;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
  tm_write_all(line.text, line.len);
  pthread_setcancelstate(cancel_state, NULL);
}
