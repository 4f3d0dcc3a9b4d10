/* The op grammar of each harness, for the structure-aware mutators
 * (mutator.c: libFuzzer's LLVMFuzzerCustomMutator, afl_mutator.c: AFL++'s
 * custom mutator): how many opcodes it has and what operands each takes.
 * It must describe the decoders of ops.c and harness_*.c exactly; the
 * encoding is documented in fuzz/README.md. No allocator code here. */
#ifndef TMF_GRAMMAR_H
#define TMF_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Operand types, one character each in an op's layout string:
 *   s  slot (1 byte)            Z  size (3 bytes: selector, u16)
 *   a  alignment (1 byte)       b  any byte
 *   w  u16                      B  bad pointer: kind, u16 (+ u64 when kind % 7 == 4) */
typedef struct tmf_grammar_s {
  const char *name;
  unsigned opcodes;           /* opcode = byte % opcodes */
  bool streams;               /* threads: a header byte, then streams split by the stream marker */
  const char *const *layouts; /* per opcode */
  const uint8_t *weights;     /* per opcode: how often a new op gets this opcode */
} tmf_grammar_t;

extern const uint8_t tmf_stream_marker[4];

/* The grammar of a harness by name, or NULL. */
const tmf_grammar_t *tmf_grammar_find(const char *name);
/* Bytes of operands op `opcode` takes when its operands start at `rest`
 * (avail bytes left; a variable operand looks at its first byte). */
size_t tmf_grammar_operand_len(const tmf_grammar_t *g, unsigned opcode, const uint8_t *rest, size_t avail);

/* Mutates data[0, size) in place (up to max_size bytes) structurally:
 * inserts, deletes, duplicates, swaps and moves ops, tweaks one operand,
 * edits runs and streams. `fallback`, when not NULL, is a byte-level
 * mutator used now and then (libFuzzer's LLVMFuzzerMutate). Returns the
 * new size. */
size_t tmf_mutate(const tmf_grammar_t *g, uint8_t *data, size_t size, size_t max_size, uint64_t seed,
                  size_t (*fallback)(uint8_t *data, size_t size, size_t max_size));
/* Op-aligned crossover of a and b into out (at most max_out bytes). */
size_t tmf_crossover(const tmf_grammar_t *g, const uint8_t *a, size_t a_size, const uint8_t *b, size_t b_size,
                     uint8_t *out, size_t max_out, uint64_t seed);

#endif
