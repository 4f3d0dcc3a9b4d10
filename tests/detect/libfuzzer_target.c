/* libfuzzer_target: a libFuzzer target built with -fsanitize=fuzzer and no
 * other sanitizer (libfuzzer.sh). The first byte gives a length; the target
 * copies that many bytes into a block one byte too short for the terminator
 * it then writes: a heap off-by-one that only an allocator that checks the
 * bytes past the request sees. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1) return 0;
  size_t len = data[0] % 64;
  char *s = malloc(len); /* the bug: no room for the '\0' */
  if (s == NULL) return 0;
  memset(s, 'a', len);
  s[len] = '\0';
  __asm__ volatile("" : : "r"(s) : "memory"); /* the block is used: keep the calls */
  free(s);
  return 0;
}
