/* libFuzzer's custom mutator hooks for every harness: the structure-aware
 * mutations of mutator.c over the harness's grammar (grammar.c), with
 * libFuzzer's own byte-level mutator as the occasional fallback. Linked only
 * into the libFuzzer targets. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_common.h"
#include "grammar.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);
size_t LLVMFuzzerCustomCrossOver(const uint8_t *data1, size_t size1, const uint8_t *data2, size_t size2, uint8_t *out,
                                 size_t max_out_size, unsigned int seed);

static const tmf_grammar_t *grammar(void)
{
  static const tmf_grammar_t *g;
  if (g == NULL) g = tmf_grammar_find(tmf_harness_name);
  return g;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
  if (grammar() == NULL) return LLVMFuzzerMutate(data, size, max_size);
  return tmf_mutate(grammar(), data, size, max_size, seed, LLVMFuzzerMutate);
}

size_t LLVMFuzzerCustomCrossOver(const uint8_t *data1, size_t size1, const uint8_t *data2, size_t size2, uint8_t *out,
                                 size_t max_out_size, unsigned int seed)
{
  if (grammar() == NULL) return 0;
  return tmf_crossover(grammar(), data1, size1, data2, size2, out, max_out_size, seed);
}
