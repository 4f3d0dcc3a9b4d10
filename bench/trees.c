/* trees: binary trees built and dropped (after the well-known allocation
 * benchmark, written here). A long-lived tree of depth MAX_DEPTH stays alive
 * while, for each even depth d from 4 up to MAX_DEPTH, 2^(MAX_DEPTH - d + 4) trees
 * of depth d are built, walked and freed. Node counts and the sum of node
 * values are checked against their closed forms. */
#include "bench.h"

enum { MAX_DEPTH = 17 };

typedef struct node {
  struct node *left, *right;
  uint64_t value;
} node_t;

static node_t *build(int depth, uint64_t value) {
  node_t *n = xmalloc(sizeof *n);
  n->value = value;
  if (depth > 0) {
    n->left = build(depth - 1, 2 * value);
    n->right = build(depth - 1, 2 * value + 1);
  } else {
    n->left = n->right = NULL;
  }
  return n;
}

/* Returns the number of nodes; adds their values to *sum. */
static uint64_t walk(const node_t *n, uint64_t *sum) {
  *sum += n->value;
  if (n->left == NULL)
    return 1;
  return 1 + walk(n->left, sum) + walk(n->right, sum);
}

static void drop(node_t *n) {
  if (n->left != NULL) {
    drop(n->left);
    drop(n->right);
  }
  free(n);
}

/* A tree of depth d rooted at value 1 numbers its nodes 1 .. 2^(d+1)-1
 * (heap order), so its values sum to N(N+1)/2 with N = 2^(d+1)-1. */
static void check_tree(const node_t *t, int depth) {
  uint64_t sum = 0, count = walk(t, &sum), n = ((uint64_t)1 << (depth + 1)) - 1;
  if (count != n || sum != n * (n + 1) / 2)
    bench_fail("tree of depth %d: %llu nodes summing to %llu", depth, (unsigned long long)count,
               (unsigned long long)sum);
}

int main(void) {
  node_t *long_lived = build(MAX_DEPTH, 1);
  uint64_t trees = 0;
  for (int d = 4; d <= MAX_DEPTH; d += 2) {
    long iterations = 1L << (MAX_DEPTH - d + 4);
    for (long i = 0; i < iterations; i++) {
      node_t *t = build(d, 1);
      check_tree(t, d);
      drop(t);
      trees++;
    }
  }
  check_tree(long_lived, MAX_DEPTH);
  drop(long_lived);
  printf("trees: %llu trees built and dropped\n", (unsigned long long)trees);
  return 0;
}
