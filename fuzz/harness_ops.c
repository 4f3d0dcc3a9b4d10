/* Harness "ops": one thread runs a sequence of allocation ops (every entry
 * point, every size strategy and alignment) against the shadow map; every
 * few ops tinymalloc's counters must agree with it exactly, and every
 * input ends with the leak and reset checks of tmf_run. Encoding:
 * fuzz/README.md. */
#include "ops.h"

const char tmf_harness_name[] = "ops";

/* The counters are cheap but not free (the core may count live blocks from
 * its bitmaps): a warm fuzzing process compares them every few ops, after
 * every check op and at the end of the run; a replay after every op. */
#define TMF_OPS_COUNTERS_EVERY 8

size_t tmf_harness_run_one(const uint8_t *data, size_t size)
{
  static tmf_ops_t ctx;
  tmf_install_strict_handler(); /* idempotent: one atomic store */
  tmf_reader_t r;
  tmf_reader_init(&r, data, size);
  tmf_ops_init(&ctx, false);
  unsigned due = 0;
  while (!tmf_reader_done(&r)) {
    size_t op_start = r.pos;
    unsigned opcode = tmf_read_u8(&r) % TMF_OP_COUNT;
    tmf_watchdog_note(tmf_ops_name(opcode));
    if (tmf_disabled(tmf_ops_name(opcode))) {
      tmf_skip_operands(&r, opcode);
      continue;
    }
    tmf_ops_step(&ctx, &r, opcode);
    tmf_check_decoded(&r, op_start, opcode);
    if (tmf_due(&due, TMF_OPS_COUNTERS_EVERY) || opcode == TMF_OP_CHECK) tmf_ops_expect_stats(&ctx);
  }
  tmf_ops_expect_stats(&ctx);
  tmf_ops_finish(&ctx);
  return 0;
}
