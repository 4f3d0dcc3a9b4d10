/* afl_target: the fuzz target of the AFL++ end-to-end test (afl.sh), built
 * with afl-clang-fast or afl-gcc-fast and no sanitizer. It reads records from
 * stdin, each a type byte, a length byte and that many bytes, and copies
 * each into a NUL-terminated string on the heap. The deliberate bug: an 'U'
 * record (upper-cased copy) gets a block of `len` bytes, one short of the
 * terminator. The seeds hold only 'S' records ('S' and 'U' differ by one
 * bit). The byte written past the end lands in the block's slack with any
 * allocator: the program goes on as if nothing happened, unless the
 * allocator checks the bytes past the request. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *copy_record(unsigned char type, const unsigned char *data, size_t len)
{
  char *s;
  if (type == 'S') {
    s = malloc(len + 1);
    if (s == NULL) return NULL;
    memcpy(s, data, len);
  } else {
    s = malloc(len); /* the bug: no room for the '\0' */
    if (s == NULL) return NULL;
    for (size_t i = 0; i < len; i++)
      s[i] = (char)toupper(data[i]);
  }
  s[len] = '\0';
  return s;
}

int main(void)
{
  unsigned char buf[512];
  ssize_t n = read(0, buf, sizeof buf);
  size_t at = 0, total = 0;
  while (n > 0 && at + 2 <= (size_t)n) {
    unsigned char type = buf[at];
    size_t len = buf[at + 1];
    at += 2;
    if (type != 'S' && type != 'U') break;
    if (len > (size_t)n - at) len = (size_t)n - at;
    char *s = copy_record(type, buf + at, len);
    if (s == NULL) return 1;
    total += strlen(s);
    free(s);
    at += len;
  }
  return total == 0x7fffffff; /* uses the result */
}
