/* The op grammars of the harnesses (see grammar.h). Keep in step with
 * ops.c, harness_*.c and fuzz/README.md: ci/fuzz-tests.sh replays the
 * generated seeds and checks that the mutator keeps them decodable. */
#include <string.h>

#include "grammar.h"

const uint8_t tmf_stream_marker[4] = {0xff, 0xfe, 'T', 'M'};

/* ops.c: the 19 ops every harness has. */
#define SHARED_LAYOUTS                                                                                                 \
  "sZ", "sbZ", "sZ", "s", "s", "saZ", "saZ", "saZ", "s", "", "sbZ", "bb", "", "sb", "sbZ", "bb", "wZ", "b", ""
/* Weights of new ops: allocation and free ops most, the costly ones
 * (check, trim, stats, bulk) rarely. */
#define SHARED_WEIGHTS 12, 4, 6, 2, 10, 3, 2, 2, 2, 1, 2, 2, 1, 2, 3, 1, 1, 1, 1

static const char *const ops_layouts[] = {SHARED_LAYOUTS};
static const uint8_t ops_weights[] = {SHARED_WEIGHTS};

static const char *const misuse_layouts[] = {SHARED_LAYOUTS, "s", "sw", "B", "BZ", "B", "s", "b", "sb"};
static const uint8_t misuse_weights[] = {SHARED_WEIGHTS, 4, 3, 3, 2, 2, 3, 1, 1};

static const char *const threads_layouts[] = {SHARED_LAYOUTS, "", "b", "", "bZb", "sb", "bZ", "", "sbZ"};
static const uint8_t threads_weights[] = {SHARED_WEIGHTS, 2, 2, 1, 5, 3, 2, 2, 3};

static const char *const fork_layouts[] = {SHARED_LAYOUTS, "sb", "bZ", "bZ"};
static const uint8_t fork_weights[] = {SHARED_WEIGHTS, 2, 2, 2};

#define COUNT(a) (unsigned)(sizeof(a) / sizeof((a)[0]))
_Static_assert(sizeof ops_layouts / sizeof ops_layouts[0] == sizeof ops_weights, "ops grammar");
_Static_assert(sizeof misuse_layouts / sizeof misuse_layouts[0] == sizeof misuse_weights, "misuse grammar");
_Static_assert(sizeof threads_layouts / sizeof threads_layouts[0] == sizeof threads_weights, "threads grammar");
_Static_assert(sizeof fork_layouts / sizeof fork_layouts[0] == sizeof fork_weights, "fork grammar");

static const tmf_grammar_t grammars[] = {
    {"ops", COUNT(ops_layouts), false, ops_layouts, ops_weights},
    {"misuse", COUNT(misuse_layouts), false, misuse_layouts, misuse_weights},
    {"threads", COUNT(threads_layouts), true, threads_layouts, threads_weights},
    {"fork", COUNT(fork_layouts), false, fork_layouts, fork_weights},
};

const tmf_grammar_t *tmf_grammar_find(const char *name)
{
  for (unsigned i = 0; i < COUNT(grammars); i++)
    if (strcmp(grammars[i].name, name) == 0) return &grammars[i];
  return NULL;
}

size_t tmf_grammar_operand_len(const tmf_grammar_t *g, unsigned opcode, const uint8_t *rest, size_t avail)
{
  size_t n = 0;
  for (const char *t = g->layouts[opcode % g->opcodes]; *t; t++) {
    switch (*t) {
    case 'Z':
      n += 3;
      break;
    case 'w':
      n += 2;
      break;
    case 'B':
      n += (n < avail && rest[n] % 7 == 4) ? 11 : 3;
      break;
    default:
      n += 1;
      break;
    }
  }
  return n;
}
