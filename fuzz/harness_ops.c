/* Harness "ops": one thread runs a sequence of allocation ops (every entry
 * point, every size strategy and alignment) against the shadow map; every
 * few ops tinymalloc's statistics must agree with it exactly, and every
 * input ends with the leak and reset check. Encoding: fuzz/README.md. */
#include "ops.h"

const char tmf_harness_name[] = "ops";

int tmf_harness_run(const uint8_t *data, size_t size)
{
  static tmf_ops_t ctx;
  tmf_install_strict_handler(); /* idempotent: one atomic store */
  tmf_begin_input();
  tmf_reader_t r;
  tmf_reader_init(&r, data, size);
  tmf_ops_init(&ctx, false);
  /* Statistics cost a walk over every mapping (resident bytes): compare
   * them every few ops, after every check op and at the end. */
  for (unsigned n = 1; !tmf_reader_done(&r); n++) {
    unsigned opcode = tmf_read_u8(&r) % TMF_OP_COUNT;
    tmf_ops_step(&ctx, &r, opcode);
    if (n % 8 == 0 || opcode == TMF_OP_CHECK) tmf_ops_expect_stats(&ctx);
  }
  tmf_ops_expect_stats(&ctx);
  tmf_ops_finish(&ctx);
  tmf_end_of_input();
  return 0;
}
