/* AFL++ custom mutator (AFL_CUSTOM_MUTATOR_LIBRARY): the structure-aware
 * mutations of mutator.c over one harness's grammar, picked at build time
 * with -DTMF_MUTATOR_HARNESS="ops" (fuzz/lib.sh builds one library per
 * harness). AFL++ keeps its own havoc stage as well. Built with the plain
 * compiler: it runs inside afl-fuzz, not inside the target. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grammar.h"

#ifndef TMF_MUTATOR_HARNESS
#error "build with -DTMF_MUTATOR_HARNESS=\"<harness>\""
#endif

typedef struct afl_mutator_s {
  const tmf_grammar_t *g;
  uint64_t seed;
  uint8_t *buf;
  size_t cap;
} afl_mutator_t;

void *afl_custom_init(void *afl, unsigned int seed);
size_t afl_custom_fuzz(void *data, unsigned char *buf, size_t buf_size, unsigned char **out_buf, unsigned char *add_buf,
                       size_t add_buf_size, size_t max_size);
const char *afl_custom_describe(void *data, size_t max_description_len);
void afl_custom_deinit(void *data);

void *afl_custom_init(void *afl, unsigned int seed)
{
  (void)afl;
  afl_mutator_t *m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  m->g = tmf_grammar_find(TMF_MUTATOR_HARNESS);
  m->seed = seed;
  if (m->g == NULL) {
    free(m);
    return NULL;
  }
  return m;
}

size_t afl_custom_fuzz(void *data, unsigned char *buf, size_t buf_size, unsigned char **out_buf, unsigned char *add_buf,
                       size_t add_buf_size, size_t max_size)
{
  afl_mutator_t *m = data;
  if (max_size > m->cap) {
    uint8_t *grown = realloc(m->buf, max_size);
    if (grown == NULL) {
      *out_buf = buf;
      return buf_size;
    }
    m->buf = grown;
    m->cap = max_size;
  }
  m->seed++;
  size_t n;
  if (add_buf != NULL && add_buf_size > 0 && (m->seed & 7) == 0) {
    n = tmf_crossover(m->g, buf, buf_size, add_buf, add_buf_size, m->buf, max_size, m->seed);
  } else {
    n = buf_size < max_size ? buf_size : max_size;
    memcpy(m->buf, buf, n);
    n = tmf_mutate(m->g, m->buf, n, max_size, m->seed, NULL);
  }
  *out_buf = m->buf;
  return n;
}

const char *afl_custom_describe(void *data, size_t max_description_len)
{
  (void)data;
  (void)max_description_len;
  return "tinymalloc-ops";
}

void afl_custom_deinit(void *data)
{
  afl_mutator_t *m = data;
  if (m) free(m->buf);
  free(m);
}
