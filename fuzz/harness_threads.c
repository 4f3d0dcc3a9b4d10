/* Harness "threads": the input is split into op streams run by 2 to 4
 * threads at once, in one or two waves, over one shared slot table, so that
 * blocks are freed and reallocated by threads that did not allocate them and
 * outlive the thread that did. The shared shadow map is updated under a lock:
 * a block is inserted after the allocator returns it and removed before it
 * is given back, so a block handed out twice overlaps a live one.
 *
 * Beyond the shared ops, the streams model what breaks allocators under
 * threads: producer/consumer contention through lock-free slots while the
 * owners allocate and merge (contend), two or three threads freeing one block
 * at the same instant (race_free), threads whose TSD destructors free and
 * allocate after the allocator tore their heap down (late_free), realloc
 * while another thread frees the neighbours or maps and unmaps large blocks
 * (resize_race), and a rendezvous that lines the threads up (sync). After
 * every wave the counters must be exact, tinymalloc_check() must pass and
 * no exited thread may keep a heap attached. Every thread that allocates is
 * started afresh and exits in the run; helpers that only free come from a
 * pool kept across runs (see helper_start). Encoding: fuzz/README.md. */
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "ops.h"

const char tmf_harness_name[] = "threads";

/* Streams are separated by this marker (also in fuzz/threads.dict). */
static const uint8_t stream_marker[4] = {0xff, 0xfe, 'T', 'M'};
#define TMF_MAX_THREADS 4
#define TMF_MAX_WAVES   2
#define TMF_MAX_CHUNKS  16

/* Ops beyond the shared set that only make sense with threads. */
enum thread_opcode_e {
  THREAD_YIELD = TMF_OP_COUNT,
  THREAD_SPIN,
  THREAD_EXIT,
  THREAD_CONTEND,
  THREAD_RACE_FREE,
  THREAD_LATE_FREE,
  THREAD_SYNC,
  THREAD_RESIZE_RACE,
  THREAD_OPCODE_COUNT
};

static const char *thread_op_name(unsigned opcode)
{
  static const char *const names[] = {"op yield",     "op spin",      "op exit", "op contend",
                                      "op race_free", "op late_free", "op sync", "op resize_race"};
  return opcode < TMF_OP_COUNT ? tmf_ops_name(opcode) : names[opcode - TMF_OP_COUNT];
}

static tmf_ops_t ctx;

/* race_free's frees must race each other, not the reuse of the block: if
 * another thread could allocate between the first free and the last, the
 * last might free that thread's new block (a program's double free the
 * allocator cannot tell from a good free). Every other op holds this gate
 * for reading; race_free holds it for writing while its frees run. */
static pthread_rwlock_t gate;
static pthread_once_t gate_once = PTHREAD_ONCE_INIT;

static void gate_init(void)
{
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&gate, &attr);
  pthread_rwlockattr_destroy(&attr);
}

/* ---- Reports: only about blocks two threads freed at once ---------------- */

/* Blocks race_free freed from two or three threads at the same instant. The
 * allocator may report each such race once, at once or later (when it meets
 * the leftover of the losing free), and may miss it (README: the window of
 * two frees passing each other); every other report fails the input. Kept
 * until the next deep check: a warm run may meet the leftovers of an earlier
 * one. */
#define TMF_MAX_RACED 256
static _Atomic uintptr_t raced_addr[TMF_MAX_RACED];
static atomic_uint raced_races[TMF_MAX_RACED], raced_reports[TMF_MAX_RACED];
static atomic_uint raced_count;

static int raced_find(uintptr_t addr)
{
  unsigned n = atomic_load(&raced_count);
  for (unsigned i = 0; i < n && i < TMF_MAX_RACED; i++)
    if (atomic_load(&raced_addr[i]) == addr) return (int)i;
  return -1;
}

void tmf_harness_after_deep(void);
void tmf_harness_after_deep(void)
{
  unsigned n = atomic_load(&raced_count);
  for (unsigned i = 0; i < n && i < TMF_MAX_RACED; i++) {
    atomic_store(&raced_addr[i], 0);
    atomic_store(&raced_races[i], 0);
    atomic_store(&raced_reports[i], 0);
  }
  atomic_store(&raced_count, 0);
}

static void threads_handler(tinymalloc_error_kind_t kind, const char *op, void *ptr, const char *message, void *arg)
{
  (void)arg;
  int i = raced_find((uintptr_t)ptr);
  if (i >= 0 && kind == TINYMALLOC_ERROR_DOUBLE_FREE) {
    unsigned reports = atomic_fetch_add(&raced_reports[i], 1) + 1;
    unsigned races = atomic_load(&raced_races[i]);
    TMF_REQUIRE(reports <= races, "%u reports about %p, freed twice at once %u times: %s", reports, ptr, races,
                message);
    return;
  }
  tmf_fail("unexpected misuse report (kind %d, %s of %p): %s", (int)kind, op, ptr, message);
}

/* ---- Helpers ----------------------------------------------------------------- */

static void spin_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static int64_t now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Pauses a waiting thread spins before it yields: set once per run, before
 * any thread starts. With one CPU to run on (a fuzzer pinned to a core),
 * none: the thread it waits for cannot run while it spins, so two threads
 * meet soonest by yielding at once, and a race there is a matter of where
 * the scheduler preempts them. */
static unsigned spin_limit;

static void spin_limit_init(void)
{
  cpu_set_t cpus;
  spin_limit = sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_COUNT(&cpus) < 2 ? 0 : 4096;
}

/* Step n of a wait: spinning first (the point is to start at the same
 * instant as the thread awaited), then yielding (on a loaded machine that
 * thread may not be running: spinning would only burn its time slice). */
static void wait_step(unsigned n)
{
  if (n < spin_limit)
    spin_pause();
  else
    sched_yield();
}

/* Waits until a count reaches `target`. */
static void wait_count(atomic_int *count, int target)
{
  for (unsigned n = 0; atomic_load_explicit(count, memory_order_acquire) < target; n++)
    wait_step(n);
}

/* Waits until a flag (0, then 1) is set. */
static void wait_flag(atomic_int *flag) { wait_count(flag, 1); }

/* Threads get 256 KiB stacks (the harness needs a few KiB). With the 8 MiB
 * default the dozen threads of a contend op are more than glibc keeps in
 * its stack cache, and each one then maps and faults in a fresh stack; with
 * 1 MiB ASan still maps a fresh shadow for every thread's stack (it clears
 * the shadow of more than 64 KiB by mapping it again, twice per thread). */
static void start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
  pthread_attr_t attr;
  TMF_REQUIRE(pthread_attr_init(&attr) == 0 && pthread_attr_setstacksize(&attr, (size_t)256 << 10) == 0,
              "pthread_attr_setstacksize failed");
  TMF_REQUIRE(pthread_create(t, &attr, fn, arg) == 0, "pthread_create failed");
  pthread_attr_destroy(&attr);
}

/* Pooled helpers: threads that only free (race_free's helpers, contend's
 * consumers that do not realloc) never get a heap, so nothing of them
 * outlives their task but the thread itself, and that is what a run paid
 * most for: under ASan a thread costs about 150 us to start and join, and
 * such helpers were half of the nine threads of an average run. They are
 * kept across runs and handed a task at a time; a thread that allocates
 * (a worker, a producer, a consumer that reallocs) is started afresh, so
 * that its exit and its heap's teardown happen in every run. An idle pool
 * thread sleeps on its condition variable (spinning would steal the time
 * of the one CPU a pinned fuzzer has). */
#define POOL_MAX 8

typedef struct helper_s {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  void *(*fn)(void *);
  void *arg;
  bool started, busy, taken;
} helper_t;

static helper_t pool[POOL_MAX];
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

static void *helper_main(void *arg)
{
  helper_t *h = arg;
  pthread_mutex_lock(&h->lock);
  for (;;) {
    while (h->fn == NULL)
      pthread_cond_wait(&h->wake, &h->lock);
    void *(*fn)(void *) = h->fn;
    pthread_mutex_unlock(&h->lock);
    fn(h->arg);
    pthread_mutex_lock(&h->lock);
    h->fn = NULL;
    h->busy = false;
    pthread_cond_broadcast(&h->wake);
  }
  return NULL;
}

/* Runs fn(arg) on an idle pool thread (started on first use). */
static helper_t *helper_start(void *(*fn)(void *), void *arg)
{
  pthread_mutex_lock(&pool_lock);
  helper_t *h = NULL;
  for (unsigned i = 0; i < POOL_MAX && h == NULL; i++)
    if (!pool[i].taken) h = &pool[i];
  TMF_REQUIRE(h != NULL, "more than %d pooled helpers at once", POOL_MAX);
  h->taken = true;
  pthread_mutex_unlock(&pool_lock);
  if (!h->started) {
    TMF_REQUIRE(pthread_mutex_init(&h->lock, NULL) == 0 && pthread_cond_init(&h->wake, NULL) == 0,
                "helper pool: init failed");
    h->started = true;
    start_thread(&h->thread, helper_main, h);
    pthread_detach(h->thread);
  }
  pthread_mutex_lock(&h->lock);
  h->arg = arg;
  h->busy = true;
  h->fn = fn;
  pthread_cond_broadcast(&h->wake);
  pthread_mutex_unlock(&h->lock);
  return h;
}

/* Waits until the task is done; the thread goes back to the pool. */
static void helper_join(helper_t *h)
{
  pthread_mutex_lock(&h->lock);
  while (h->busy)
    pthread_cond_wait(&h->wake, &h->lock);
  pthread_mutex_unlock(&h->lock);
  pthread_mutex_lock(&pool_lock);
  h->taken = false;
  pthread_mutex_unlock(&pool_lock);
}

/* ---- contend: producers and consumers through lock-free slots ------------ */

#define CONTEND_MAX_SLOTS     32
#define CONTEND_MAX_CONSUMERS 8

typedef struct contend_s {
  _Atomic uintptr_t slot[CONTEND_MAX_SLOTS];
  _Atomic uintptr_t in_hand[CONTEND_MAX_CONSUMERS + 2]; /* block a thread took and is about to free */
  unsigned nslots, producers, consumers, rounds;
  size_t size;
  bool owner_frees, consumer_reallocs;
  atomic_int go, stop;
  atomic_uint next_tag;
} contend_t;

/* A producer's stamp on a block: its first and last words. */
static void contend_stamp(unsigned char *p, size_t size, uint64_t tag)
{
  if (size >= 8) memcpy(p, &tag, 8);
  if (size >= 16) {
    uint64_t t = ~tag;
    memcpy(p + size - 8, &t, 8);
  }
}

static void contend_verify(const unsigned char *p, size_t size)
{
  if (size < 16) return;
  uint64_t head, tail;
  memcpy(&head, p, 8);
  memcpy(&tail, p + size - 8, 8);
  TMF_REQUIRE(head == ~tail, "contend: live block %p of %zu bytes changed (head %#llx, tail %#llx)", (const void *)p,
              size, (unsigned long long)head, (unsigned long long)tail);
}

/* A block the allocator just handed out must not be in any slot or in any
 * thread's hands: otherwise it was handed out twice. */
static void contend_check_fresh(contend_t *c, uintptr_t p, unsigned me)
{
  for (unsigned i = 0; i < c->nslots; i++)
    TMF_REQUIRE(atomic_load_explicit(&c->slot[i], memory_order_acquire) != p,
                "contend: block %p handed out twice (still in slot %u)", (void *)p, i);
  for (unsigned i = 0; i < c->consumers + c->producers; i++)
    TMF_REQUIRE(i == me || atomic_load_explicit(&c->in_hand[i], memory_order_acquire) != p,
                "contend: block %p handed out twice (thread %u is freeing it)", (void *)p, i);
}

/* Takes the block of slot i into the hands of thread `me` (announced there
 * until just before it is freed, so that a fresh block equal to it is seen
 * as handed out twice), verifies and frees it. A block is announced only
 * while it is certainly live and ours: never before the exchange made it
 * ours (another thread may free it and the allocator rightly hand it out
 * again), and never across a call that may free it (a realloc that moves
 * the block frees the old one inside the call, and the allocator may hand
 * it to another thread before the call returns): the announcement is
 * withdrawn before the realloc and the block it returns announced after. */
static bool contend_take_and_free(contend_t *c, unsigned i, unsigned me, bool may_realloc)
{
  if (atomic_load_explicit(&c->slot[i], memory_order_relaxed) == 0) return false;
  uintptr_t p = atomic_exchange_explicit(&c->slot[i], 0, memory_order_acq_rel);
  if (p == 0) return false;
  atomic_store_explicit(&c->in_hand[me], p, memory_order_seq_cst);
  contend_verify((const unsigned char *)p, c->size);
  if (may_realloc && c->size > 0) {
    /* The block moves to this thread's heap: a remote free of the old one. */
    atomic_store_explicit(&c->in_hand[me], 0, memory_order_seq_cst);
    unsigned char *q = tinyrealloc((void *)p, c->size + 1 + (c->size >> 1));
    TMF_REQUIRE(q != NULL, "contend: realloc returned NULL");
    if ((uintptr_t)q != p) contend_check_fresh(c, (uintptr_t)q, me);
    atomic_store_explicit(&c->in_hand[me], (uintptr_t)q, memory_order_seq_cst);
    contend_verify(q, c->size);
    atomic_store_explicit(&c->in_hand[me], 0, memory_order_seq_cst);
    tinyfree(q);
    return true;
  }
  atomic_store_explicit(&c->in_hand[me], 0, memory_order_seq_cst);
  tinyfree((void *)p);
  return true;
}

typedef struct contend_role_s {
  contend_t *c;
  unsigned index; /* in_hand index */
} contend_role_t;

static void contend_produce(contend_t *c, unsigned me)
{
  unsigned i = me, full = 0;
  for (unsigned n = 0; n < c->rounds; n++) {
    if ((n & 63) == 0 && me == 0) tmf_watchdog_note("op contend"); /* progress: not a hang */
    i = (i + 1) % c->nslots;
    if (c->owner_frees && (n & 3) == 3) contend_take_and_free(c, i, me, false); /* a local free */
    if (atomic_load_explicit(&c->slot[i], memory_order_acquire) != 0) {
      if (++full >= c->nslots) { /* every slot full: let the consumers run */
        full = 0;
        sched_yield();
      }
      continue;
    }
    full = 0;
    unsigned char *p = tinymalloc(c->size);
    TMF_REQUIRE(p != NULL, "contend: malloc(%zu) returned NULL", c->size);
    contend_check_fresh(c, (uintptr_t)p, me);
    contend_stamp(p, c->size, ((uint64_t)me << 48) | atomic_fetch_add(&c->next_tag, 1));
    uintptr_t expected = 0;
    if (!atomic_compare_exchange_strong(&c->slot[i], &expected, (uintptr_t)p)) tinyfree(p); /* raced: own free */
  }
}

static void *contend_consumer(void *arg)
{
  contend_role_t *role = arg;
  contend_t *c = role->c;
  wait_flag(&c->go);
  unsigned i = role->index;
  for (unsigned idle = 0; !atomic_load_explicit(&c->stop, memory_order_acquire) || idle < 2;) {
    bool any = false;
    for (unsigned k = 0; k < c->nslots; k++) {
      i = (i + 1) % c->nslots;
      any |= contend_take_and_free(c, i, role->index, c->consumer_reallocs && (k & 1));
    }
    if (!any) sched_yield(); /* nothing to free: let the producers run */
    if (atomic_load_explicit(&c->stop, memory_order_acquire)) idle += !any;
  }
  return NULL;
}

static void *contend_producer(void *arg)
{
  contend_role_t *role = arg;
  wait_flag(&role->c->go);
  contend_produce(role->c, role->index);
  return NULL;
}

static void op_contend(tmf_reader_t *r)
{
  uint8_t shape = tmf_read_u8(r);
  size_t size = tmf_read_size(r);
  uint8_t iters = tmf_read_u8(r);
  static contend_t c; /* one contend op at a time: taken under a lock */
  static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;
  if (size > TMF_SMALL_LIMIT) size %= TMF_SMALL_LIMIT + 1; /* slabs: what remote frees and merges are about */
  pthread_mutex_lock(&busy);
  memset(&c, 0, sizeof c);
  c.producers = 1 + (shape & 1);
  c.consumers = 1 + ((shape >> 1) & 3); /* with the producers, up to 6 threads: more only queue for 2 cores */
  c.nslots = 4u << ((shape >> 4) & 3);
  c.owner_frees = shape & 0x40;
  c.consumer_reallocs = shape & 0x80;
  c.size = size;
  c.rounds = 16u * (1 + iters % 32);
  pthread_t threads[CONTEND_MAX_CONSUMERS + 1];
  helper_t *pooled[CONTEND_MAX_CONSUMERS + 1];
  contend_role_t roles[CONTEND_MAX_CONSUMERS + 2];
  unsigned n = 0;
  /* The calling thread is producer 0 (it owns the slabs it fills). The
   * other producers and consumers that realloc allocate: fresh threads,
   * whose exit leaves their slabs to the others' frees; consumers that only
   * free come from the pool. */
  for (unsigned p = 1; p < c.producers; p++, n++) {
    roles[n] = (contend_role_t){&c, p};
    start_thread(&threads[n], contend_producer, &roles[n]);
  }
  for (unsigned k = 0; k < c.consumers; k++, n++) {
    roles[n] = (contend_role_t){&c, c.producers + k};
    if (c.consumer_reallocs)
      start_thread(&threads[n], contend_consumer, &roles[n]);
    else
      pooled[n] = helper_start(contend_consumer, &roles[n]);
  }
  atomic_store_explicit(&c.go, 1, memory_order_release);
  contend_produce(&c, 0);
  for (unsigned k = 0; k + 1 < c.producers; k++)
    pthread_join(threads[k], NULL);
  atomic_store_explicit(&c.stop, 1, memory_order_release);
  for (unsigned k = c.producers - 1; k < n; k++) {
    if (c.consumer_reallocs)
      pthread_join(threads[k], NULL);
    else
      helper_join(pooled[k]);
  }
  for (unsigned i = 0; i < c.nslots; i++) /* what the consumers left */
    contend_take_and_free(&c, i, 0, false);
  pthread_mutex_unlock(&busy);
}

/* ---- race_free: one block freed by two or three threads at once ----------- */

/* The helpers stay for every round of an op: round k frees race.p once the
 * caller moved `round` to k, and counts itself done. */
typedef struct race_s {
  void *_Atomic p;
  atomic_int round;
  atomic_int ready;
  atomic_int done;
  unsigned rounds;
} race_t;

static void *race_helper(void *arg)
{
  race_t *race = arg;
  atomic_fetch_add(&race->ready, 1);
  for (unsigned k = 1; k <= race->rounds; k++) {
    wait_count(&race->round, (int)k);
    void *p = atomic_load_explicit(&race->p, memory_order_acquire);
    if (p) tinyfree(p);
    atomic_fetch_add_explicit(&race->done, 1, memory_order_release);
  }
  return NULL;
}

/* Registers `addr` as raced: its double-free reports are expected. -1 when
 * the table is full (the block is then freed once, plainly). */
static int raced_register(uintptr_t addr)
{
  int known = raced_find(addr);
  if (known >= 0) return known;
  unsigned i = atomic_fetch_add(&raced_count, 1);
  if (i >= TMF_MAX_RACED) {
    atomic_fetch_sub(&raced_count, 1);
    return -1;
  }
  atomic_store(&raced_addr[i], addr);
  return (int)i;
}

/* Round k of a race: frees `p` from `frees` threads at once (the caller
 * among them unless caller_frees is false: then two or three helpers race
 * on equal terms). p NULL: the helpers only count the round. */
static void race_round(race_t *race, unsigned k, void *p, int known, unsigned helpers, bool caller_frees, size_t usable)
{
  unsigned frees = helpers + caller_frees;
  unsigned before = p ? atomic_load(&raced_reports[known]) : 0;
  if (p) atomic_fetch_add(&raced_races[known], frees - 1);
  atomic_store_explicit(&race->p, p, memory_order_relaxed);
  atomic_store_explicit(&race->round, (int)k, memory_order_release);
  if (caller_frees && p) tinyfree(p);
  wait_count(&race->done, (int)(k * helpers));
  if (p == NULL) return;
  unsigned reported = atomic_load(&raced_reports[known]) - before;
  /* A large block's free claims it with one exchange: exactly one free
   * wins, every other one is reported at once. (Detection mode: usable
   * sizes are requested sizes, a block over 1 MiB may be medium.) */
  TMF_REQUIRE(usable <= TMF_MEDIUM_MAX || tmf_detect_ever_used() || reported == frees - 1,
              "race_free: %u frees of the large block %p (usable %zu) at once, %u reported, expected %u", frees, p,
              usable, reported, frees - 1);
  /* Fewer reports than extra frees: the allocator accepted two frees of one
   * block (the documented window of small blocks). Its counters may then be
   * one short; it must still never hand the block out twice (the shadow
   * map sees that). */
  if (reported < frees - 1) {
    pthread_mutex_lock(&ctx.lock);
    ctx.slack += frees - 1 - reported;
    pthread_mutex_unlock(&ctx.lock);
  }
}

static void op_race_free(tmf_reader_t *r)
{
  unsigned slot = tmf_read_u8(r);
  uint8_t mode = tmf_read_u8(r);
  tmf_block_t b;
  if (!tmf_ops_take(&ctx, slot, &b)) return;
  tmf_pattern_check((const unsigned char *)b.addr, b.usable, b.id, 0, b.usable, "free");
  int known = raced_register(b.addr);
  if (known < 0) { /* no room to accept its report: an ordinary free */
    tinyfree((void *)b.addr);
    return;
  }
  bool caller_frees = !(mode & 1);
  unsigned helpers = 1 + ((mode >> 1) & 1);
  if (helpers + caller_frees < 2) helpers = 2;
  /* bit 2: the race is run again on fresh blocks of the same size (a window
   * of a few instructions needs many tries); large blocks (cheap to get
   * again from the large cache) 4 times as often. */
  unsigned again = (mode & 4) ? 1 + (mode >> 3) % 32 : 0;
  if (again && b.usable > TMF_MEDIUM_MAX) again *= 4;
  race_t race;
  atomic_init(&race.p, NULL);
  atomic_init(&race.round, 0);
  atomic_init(&race.ready, 0);
  atomic_init(&race.done, 0);
  race.rounds = 1 + again;
  pthread_rwlock_wrlock(&gate);
  /* Junk off while the frees race: the loser of the documented window may
   * fill a block the winner already gave back (an ASan build reports that
   * write); what matters is what happens to the block afterwards. */
  long junk = tinymalloc_option_get("junk");
  if (junk > 0) tinymalloc_option_set("junk", 0);
  helper_t *t[2];
  for (unsigned k = 0; k < helpers; k++)
    t[k] = helper_start(race_helper, &race);
  wait_count(&race.ready, (int)helpers);
  race_round(&race, 1, (void *)b.addr, known, helpers, caller_frees, b.usable);
  for (unsigned k = 2; k <= race.rounds; k++) {
    void *p = NULL;
    int i = -1;
    if (known >= 0) {
      p = tinymalloc(b.requested);
      TMF_REQUIRE(p != NULL, "race_free: malloc(%zu) returned NULL", b.requested);
      i = raced_register((uintptr_t)p);
      if (i < 0) {
        tinyfree(p);
        p = NULL;
        known = -1; /* the table is full: the helpers only count the rounds left */
      }
    }
    race_round(&race, k, p, i, helpers, caller_frees, p ? tinymalloc_usable_size(p) : 0);
  }
  for (unsigned k = 0; k < helpers; k++)
    helper_join(t[k]);
  if (junk > 0) tinymalloc_option_set("junk", junk);
  pthread_rwlock_unlock(&gate);
}

/* ---- late_free: frees and allocations after the heap was torn down -------- */

/* A thread allocates, then its own TSD destructor frees (and, by mode,
 * allocates and frees) in the last destructor round, after the allocator's
 * own destructor handed the thread's heap back: such frees must not leave a
 * heap attached (checked after the wave) nor be lost. */
typedef struct late_s {
  tmf_block_t blocks[3];
  unsigned count;
  unsigned round;
  uint8_t mode;
  size_t size;
} late_t;

static pthread_key_t late_key;
static pthread_once_t late_once = PTHREAD_ONCE_INIT;

static void late_destructor(void *arg)
{
  late_t *late = arg;
  if (++late->round < PTHREAD_DESTRUCTOR_ITERATIONS) {
    pthread_setspecific(late_key, late); /* called again in the next round */
    return;
  }
  for (unsigned i = 0; i < late->count; i++)
    tmf_ops_release(&late->blocks[i]);
  if (late->mode & 0x10) {
    void *p = tinymalloc(late->size);
    TMF_REQUIRE(p != NULL, "late destructor: malloc(%zu) returned NULL", late->size);
    tmf_block_t b = tmf_block_adopt(p, late->size, 16, 1, false);
    tmf_ops_release(&b);
  }
}

static void late_key_create(void)
{
  TMF_REQUIRE(pthread_key_create(&late_key, late_destructor) == 0, "pthread_key_create failed");
}

static void *late_main(void *arg)
{
  late_t *late = arg;
  static const size_t extra[3] = {48, 40000, ((size_t)1 << 20) + 4096};
  late->count = 0;
  {
    void *p = tinymalloc(late->size);
    TMF_REQUIRE(p != NULL, "late_free: malloc(%zu) returned NULL", late->size);
    late->blocks[late->count++] = tmf_block_adopt(p, late->size, 16, tmf_ops_new_id(&ctx), false);
  }
  for (unsigned k = 0; k < 2; k++) { /* mode bits 0, 1: also a small / medium / large one */
    if (!(late->mode & (1u << k))) continue;
    size_t n = extra[(late->mode >> 2 & 1) + k];
    void *p = tinymalloc(n);
    TMF_REQUIRE(p != NULL, "late_free: malloc(%zu) returned NULL", n);
    late->blocks[late->count++] = tmf_block_adopt(p, n, 16, tmf_ops_new_id(&ctx), false);
  }
  pthread_setspecific(late_key, late);
  return NULL;
}

static void op_late_free(tmf_reader_t *r)
{
  uint8_t mode = tmf_read_u8(r);
  size_t size = tmf_read_size(r);
  if (TMF_UNDER_TSAN) return; /* TSan (clang 14) fails its own checks in a late destructor */
  if (!tmf_ops_budget(&ctx, size, 1, 0) || !tmf_ops_budget(&ctx, ((size_t)1 << 20) + 4096, 2, 0)) return;
  pthread_once(&late_once, late_key_create);
  late_t late;
  memset(&late, 0, sizeof late);
  late.mode = mode;
  late.size = size;
  pthread_t t;
  start_thread(&t, late_main, &late);
  pthread_join(t, NULL);
  TMF_REQUIRE(late.round == PTHREAD_DESTRUCTOR_ITERATIONS, "late_free: destructor ran %u times, expected %d",
              late.round, PTHREAD_DESTRUCTOR_ITERATIONS);
}

/* ---- resize_race: realloc while others free neighbours or map and unmap ---- */

typedef struct resize_s {
  unsigned slot;
  bool large;
  unsigned rounds; /* resizes by the caller, and what the helper does meanwhile */
  size_t size;
  atomic_int go;
} resize_t;

/* Resizes the slot's block; returns its new address, 0 if the slot was
 * empty (another stream took the block). */
static uintptr_t realloc_slot(unsigned slot, size_t size)
{
  tmf_block_t old;
  if (!tmf_ops_take(&ctx, slot, &old)) return 0;
  size_t kept = old.usable < size ? old.usable : size;
  size_t boundary = kept > TMF_CANARY_EDGE ? kept - TMF_CANARY_EDGE : 0;
  tmf_pattern_check((const unsigned char *)old.addr, old.usable, old.id, 0, old.usable, "realloc (before)");
  tmf_pattern_fill_dense((unsigned char *)old.addr, old.id, boundary, kept);
  unsigned char *p = tinyrealloc((void *)old.addr, size);
  TMF_REQUIRE(p != NULL, "realloc(%p, %zu) returned NULL", (void *)old.addr, size);
  tmf_pattern_check(p, old.usable, old.id, 0, kept, "realloc (preserved prefix)");
  tmf_pattern_check_dense(p, old.id, boundary, kept, "realloc (end of the preserved prefix)");
  tmf_block_t b = tmf_block_adopt(p, size, 16, old.id, false);
  tmf_ops_put(&ctx, slot, &b);
  return b.addr;
}

static void alloc_slot(unsigned slot, size_t size)
{
  void *p = tinymalloc(size);
  TMF_REQUIRE(p != NULL, "malloc(%zu) returned NULL", size);
  tmf_block_t b = tmf_block_adopt(p, size, 16, tmf_ops_new_id(&ctx), false);
  tmf_ops_put(&ctx, slot, &b);
}

static void *resize_helper(void *arg)
{
  resize_t *rs = arg;
  wait_flag(&rs->go);
  tmf_block_t b;
  for (unsigned k = 0; k < rs->rounds; k++) {
    if (rs->large) { /* map and unmap large blocks next to the one being resized */
      size_t n = ((size_t)(3 + k % 4) << 20) + 4096 * (k % 6);
      void *p = tinymalloc(n);
      TMF_REQUIRE(p != NULL, "malloc(%zu) returned NULL", n);
      b = tmf_block_adopt(p, n, 16, tmf_ops_new_id(&ctx), false);
      tmf_ops_release(&b);
    } else { /* free the neighbours and put fresh blocks there */
      unsigned s = (rs->slot + ((k & 1) ? 1 : TMF_SLOTS - 1)) % TMF_SLOTS;
      if (tmf_ops_take(&ctx, s, &b)) tmf_ops_release(&b);
      alloc_slot(s, rs->size / 2 + 4096 * (k % 6));
    }
  }
  return NULL;
}

/* The gap race: round after round, the caller gets a medium block A of
 * over 32 pages and grows it in place by a few pages while, at the same
 * instant, a helper asks for a run of over 32 pages; neither is ever in a
 * heap's cache, so the first fit puts A where it was the round before and
 * the helper's run right after it when nothing lower fits: whichever takes
 * the pages first under the arena lock must see the other's. One of the
 * two starts a little later each round (0 to 8 steps of 16 spins), to sweep
 * the helper's allocation across the caller's growth. Both blocks are in
 * the shadow map before either is freed: a page handed to both overlaps. */
typedef struct gap_race_s {
  unsigned slot, rounds;
  size_t a, grown, x;
  atomic_int round, grown_round, done;
} gap_race_t;

/* Spins before the racing call of round k: the helper's allocation starts
 * 0 to 7 steps after the caller's growth, then the growth 1 to 8 steps
 * after the allocation. */
static unsigned gap_delay(unsigned k, bool caller)
{
  unsigned d = k % 16;
  if (caller) return d >= 8 ? 16 * (d - 7) : 0;
  return d < 8 ? 16 * d : 0;
}

static void *gap_helper(void *arg)
{
  gap_race_t *g = arg;
  unsigned slot = (g->slot + 1) % TMF_SLOTS;
  for (unsigned k = 1; k <= g->rounds; k++) {
    wait_count(&g->round, (int)k);
    for (volatile unsigned i = 0; i < gap_delay(k, false); i++) {
    }
    alloc_slot(slot, g->x);
    wait_count(&g->grown_round, (int)k);
    tmf_block_t b;
    if (tmf_ops_take(&ctx, slot, &b)) tmf_ops_release(&b);
    atomic_store_explicit(&g->done, (int)k, memory_order_release);
  }
  return NULL;
}

static void gap_race(unsigned slot, uint8_t mode, size_t size)
{
  gap_race_t g;
  g.slot = slot;
  g.rounds = 16 * (1 + (mode >> 4) % 16);
  /* Over 32 pages: neither block goes to a heap's cache when freed, so each
   * round starts from the same page map (the first fit puts the block where
   * the previous round's was). */
  g.a = (size_t)(33 + (size >> 12) % 28) << 12; /* 33 to 60 pages */
  g.grown = g.a + ((size_t)(1 + size % 8) << 12);
  g.x = (size_t)(33 + 4 * ((mode >> 2) & 3)) << 12;
  atomic_init(&g.round, 0);
  atomic_init(&g.grown_round, 0);
  atomic_init(&g.done, 0);
  if (!tmf_ops_budget(&ctx, g.grown + g.x, 2, 0)) return;
  pthread_t t;
  start_thread(&t, gap_helper, &g);
  tmf_block_t b;
  for (unsigned k = 1; k <= g.rounds; k++) {
    alloc_slot(slot, g.a);
    /* Another stream may have taken the slot meanwhile: the round then
     * races nothing, the helper still takes its turn. */
    bool have = tmf_ops_take(&ctx, slot, &b);
    if (have) tmf_pattern_check((const unsigned char *)b.addr, b.usable, b.id, 0, b.usable, "realloc (before)");
    atomic_store_explicit(&g.round, (int)k, memory_order_release);
    for (volatile unsigned i = 0; i < gap_delay(k, true); i++) {
    }
    if (have) {
      unsigned char *p = tinyrealloc((void *)b.addr, g.grown);
      TMF_REQUIRE(p != NULL, "realloc(%p, %zu) returned NULL", (void *)b.addr, g.grown);
      tmf_pattern_check(p, b.usable, b.id, 0, b.usable < g.grown ? b.usable : g.grown, "realloc (preserved prefix)");
      tmf_block_t grown = tmf_block_adopt(p, g.grown, 16, b.id, false);
      tmf_ops_put(&ctx, slot, &grown);
    }
    atomic_store_explicit(&g.grown_round, (int)k, memory_order_release);
    wait_count(&g.done, (int)k);
    if (tmf_ops_take(&ctx, slot, &b)) tmf_ops_release(&b);
  }
  pthread_join(t, NULL);
}

/* The map race: round after round, the caller gets a 6-13 MiB large block
 * and shrinks it to about 1 MiB (the tail's whole segments stop being ours,
 * then go back to the kernel) while, from the same instant on (offset by a
 * sweep of spins), a helper asks for a 3-6 MiB block, bigger each round
 * than what the large cache holds for it most of the time, so that the
 * kernel places a mapping (where the tail was, when that is the highest gap
 * that fits). The helper's block must stay ours: its free is checked like
 * any other (a block marked freed under it is reported as a double free).
 * Then the caller grows its block back (in place, or moved when the tail is
 * taken) while the helper frees its own, and the next round shrinks it
 * again: one block for the whole episode, so a round costs one shrink and
 * one growth of a mapping, not a fresh mapping's page faults too. */
typedef struct map_race_s {
  unsigned slot, rounds;
  size_t a;
  atomic_int round, shrunk_round, done;
} map_race_t;

static void *map_helper(void *arg)
{
  map_race_t *m = arg;
  unsigned slot = (m->slot + 1) % TMF_SLOTS;
  for (unsigned k = 1; k <= m->rounds; k++) {
    wait_count(&m->round, (int)k);
    /* 0 to 65535 spins, doubling round by round: the caller's shrink
     * returns the tail to the kernel only after its lookup, its lock and
     * (in a tracked build) its tool hooks */
    for (volatile unsigned i = 0; i < (1u << (k % 17)) - 1; i++) {
    }
    alloc_slot(slot, ((size_t)(3 + k % 4) << 20) + 4096 * (k % 6));
    wait_count(&m->shrunk_round, (int)k);
    tmf_block_t b;
    if (tmf_ops_take(&ctx, slot, &b)) tmf_ops_release(&b);
    atomic_store_explicit(&m->done, (int)k, memory_order_release);
  }
  return NULL;
}

static void map_race(unsigned slot, uint8_t mode, size_t size)
{
  map_race_t m;
  m.slot = slot;
  m.rounds = 17 * (1 + (mode >> 6)); /* the sweep, 1 to 4 times */
  m.a = ((size_t)(6 + (mode >> 1) % 8) << 20) + size % 4096;
  atomic_init(&m.round, 0);
  atomic_init(&m.shrunk_round, 0);
  atomic_init(&m.done, 0);
  if (!tmf_ops_budget(&ctx, TMF_BIG_BYTES_PER_RUN / 2, 1, 0)) return;
  pthread_t t;
  start_thread(&t, map_helper, &m);
  tmf_block_t b;
  uintptr_t mine = 0; /* the block grown back in the round before */
  for (unsigned k = 1; k <= m.rounds; k++) {
    /* A round starts from the block the round before grew back (in its
     * mapping, or where the growth moved it): a fresh one only if another
     * stream took the slot meanwhile (see gap_race). */
    bool have = tmf_ops_take(&ctx, slot, &b);
    if (!have || b.addr != mine) {
      if (have) tmf_ops_put(&ctx, slot, &b);
      alloc_slot(slot, m.a);
      have = tmf_ops_take(&ctx, slot, &b);
    }
    if (have) tmf_pattern_check((const unsigned char *)b.addr, b.usable, b.id, 0, b.usable, "realloc (before)");
    size_t n = ((size_t)1 << 20) + 8192 + 4096 * (k % 6);
    atomic_store_explicit(&m.round, (int)k, memory_order_release);
    if (have) {
      unsigned char *p = tinyrealloc((void *)b.addr, n);
      TMF_REQUIRE(p != NULL, "realloc(%p, %zu) returned NULL", (void *)b.addr, n);
      tmf_pattern_check(p, b.usable, b.id, 0, n, "realloc (preserved prefix)");
      tmf_block_t shrunk = tmf_block_adopt(p, n, 16, b.id, false);
      tmf_ops_put(&ctx, slot, &shrunk);
    }
    atomic_store_explicit(&m.shrunk_round, (int)k, memory_order_release);
    /* and grows again (moved when the helper's block took the tail) while
     * the helper frees its block */
    mine = realloc_slot(slot, m.a);
    wait_count(&m.done, (int)k);
  }
  if (tmf_ops_take(&ctx, slot, &b)) tmf_ops_release(&b);
  pthread_join(t, NULL);
}

static void op_resize_race(tmf_reader_t *r)
{
  unsigned slot = tmf_read_u8(r) % TMF_SLOTS;
  uint8_t mode = tmf_read_u8(r);
  size_t size = tmf_read_size(r);
  if ((mode & 3) == 2) { /* medium, bit 1: the gap race */
    gap_race(slot, mode, size);
    return;
  }
  if ((mode & 17) == 17) { /* large, bit 4: the map race */
    map_race(slot, mode, size);
    return;
  }
  resize_t rs;
  rs.slot = slot;
  rs.large = mode & 1;
  rs.size = rs.large ? ((size_t)(6 + (mode >> 1) % 8) << 20) + size % 4096 : 16385 + size % ((size_t)1 << 19);
  /* medium: mode bits 4-7 repeat the episode (a check-then-act window of a
   * few instructions needs many tries); large blocks map and unmap too much
   * for that */
  rs.rounds = rs.large ? 6 : 6 * (1 + (mode >> 4) % 16);
  atomic_init(&rs.go, 0);
  /* A large episode counts as half a run's allowance of medium and large
   * bytes: its 6-13 MiB alone are over it, its mappings are mostly left
   * untouched (sparse canaries). */
  if (!(rs.large ? tmf_ops_budget(&ctx, TMF_BIG_BYTES_PER_RUN / 2, 1, 0) : tmf_ops_budget(&ctx, rs.size, 3, 0))) return;
  alloc_slot(slot, rs.size);
  if (!rs.large) {
    alloc_slot((slot + 1) % TMF_SLOTS, rs.size / 2);
    alloc_slot((slot + TMF_SLOTS - 1) % TMF_SLOTS, rs.size / 2);
  }
  pthread_t t;
  start_thread(&t, resize_helper, &rs);
  atomic_store_explicit(&rs.go, 1, memory_order_release);
  for (unsigned k = 0; k < rs.rounds; k++) { /* shrink, grow, shrink ... in place when it can */
    unsigned j = k % 6;
    size_t n = (j & 1) ? rs.size + (rs.large ? ((size_t)2 << 20) : 4096 * (j + 1)) : rs.size / (2 + j);
    if (rs.large && !(j & 1)) n = ((size_t)1 << 20) + 8192 + 4096 * j;
    realloc_slot(slot, n);
  }
  pthread_join(t, NULL);
}

/* ---- sync: line the wave's threads up ---------------------------------------- */

/* The k-th sync of a thread waits for every thread of the wave to arrive
 * at its k-th, except those that left the wave: their arrivals are counted
 * in sync_gone (threads in the high half, their arrivals in the low half). */
static atomic_uint sync_arrivals;
static _Atomic uint64_t sync_gone;
static unsigned sync_threads;

static bool sync_waiting(unsigned k)
{
  uint64_t gone = atomic_load_explicit(&sync_gone, memory_order_acquire);
  unsigned arrivals = atomic_load_explicit(&sync_arrivals, memory_order_acquire) - (unsigned)gone;
  return arrivals < k * (sync_threads - (unsigned)(gone >> 32));
}

static void op_sync(unsigned *my_syncs)
{
  unsigned k = ++*my_syncs;
  atomic_fetch_add(&sync_arrivals, 1);
  int64_t give_up = now_us() + 500; /* a thread busy with a long op */
  for (unsigned n = 0; sync_waiting(k); n++) {
    wait_step(n);
    if ((n & 255) == 0 && now_us() > give_up) break;
  }
}

/* ---- Workers and waves ----------------------------------------------------------- */

typedef struct chunk_s {
  const uint8_t *data;
  size_t size;
} chunk_t;

typedef struct worker_s {
  chunk_t chunks[TMF_MAX_CHUNKS];
  unsigned chunk_count;
  pthread_barrier_t *start;
} worker_t;

static void worker_run(worker_t *w, unsigned *syncs);

static void *worker_main(void *arg)
{
  unsigned syncs = 0;
  worker_run(arg, &syncs);
  atomic_fetch_add_explicit(&sync_gone, ((uint64_t)1 << 32) | syncs, memory_order_release);
  return NULL;
}

static void worker_run(worker_t *w, unsigned *syncs)
{
  pthread_barrier_wait(w->start);
  for (unsigned c = 0; c < w->chunk_count; c++) {
    tmf_reader_t r;
    tmf_reader_init(&r, w->chunks[c].data, w->chunks[c].size);
    while (!tmf_reader_done(&r)) {
      size_t op_start = r.pos;
      unsigned opcode = tmf_read_u8(&r) % THREAD_OPCODE_COUNT;
      tmf_watchdog_note(thread_op_name(opcode));
      if (tmf_disabled(thread_op_name(opcode))) {
        tmf_skip_operands(&r, opcode);
        continue;
      }
      bool gated = opcode < TMF_OP_COUNT || opcode == THREAD_CONTEND || opcode == THREAD_LATE_FREE ||
                   opcode == THREAD_RESIZE_RACE;
      if (gated) pthread_rwlock_rdlock(&gate);
      switch (opcode) {
      case THREAD_YIELD:
        sched_yield();
        break;
      case THREAD_SPIN: {
        unsigned spins = 64u * tmf_read_u8(&r);
        for (volatile unsigned i = 0; i < spins; i++) {
        }
        break;
      }
      case THREAD_EXIT:
        return; /* leave early: the thread's slabs outlive it */
      case THREAD_CONTEND:
        op_contend(&r);
        break;
      case THREAD_RACE_FREE:
        op_race_free(&r);
        break;
      case THREAD_LATE_FREE:
        op_late_free(&r);
        break;
      case THREAD_SYNC:
        op_sync(syncs);
        break;
      case THREAD_RESIZE_RACE:
        op_resize_race(&r);
        break;
      default:
        tmf_ops_step(&ctx, &r, opcode);
        break;
      }
      if (gated) pthread_rwlock_unlock(&gate);
      tmf_check_decoded(&r, op_start, opcode);
    }
  }
}

/* Splits data at every marker into at most TMF_MAX_CHUNKS chunks. */
static unsigned split_chunks(const uint8_t *data, size_t size, chunk_t *chunks)
{
  unsigned n = 0;
  size_t start = 0;
  for (size_t i = 0; i + sizeof stream_marker <= size && n < TMF_MAX_CHUNKS - 1; i++) {
    if (memcmp(data + i, stream_marker, sizeof stream_marker) == 0) {
      chunks[n++] = (chunk_t){data + start, i - start};
      start = i + sizeof stream_marker;
      i = start - 1;
    }
  }
  chunks[n++] = (chunk_t){data + start, size - start};
  return n;
}

size_t tmf_harness_run_one(const uint8_t *data, size_t size)
{
  pthread_once(&gate_once, gate_init);
  spin_limit_init();
  tinymalloc_set_error_handler(threads_handler, NULL);
  if (size == 0) return 0;
  unsigned threads = 2 + data[0] % 3;
  unsigned waves = 1 + (data[0] / 3) % TMF_MAX_WAVES;
  chunk_t chunks[TMF_MAX_CHUNKS];
  unsigned chunk_count = split_chunks(data + 1, size - 1, chunks);

  tmf_ops_init(&ctx, true);
  /* The whole-heap checks after a wave (tinymalloc_check, the attached
   * heaps from the full statistics) run after every run when replaying,
   * every 4th run when fuzzing warm. */
  static unsigned due;
  bool thorough = tmf_due(&due, 4);
  size_t heaps_before = thorough ? tmf_attached_heaps() : 0;
  for (unsigned wave = 0; wave < waves; wave++) {
    worker_t workers[TMF_MAX_THREADS];
    pthread_t ids[TMF_MAX_THREADS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, threads);
    memset(workers, 0, sizeof workers);
    atomic_store(&sync_arrivals, 0);
    atomic_store(&sync_gone, 0);
    sync_threads = threads;
    for (unsigned c = 0; c < chunk_count; c++) {
      if ((c / threads) % waves != wave) continue;
      worker_t *w = &workers[c % threads];
      w->chunks[w->chunk_count++] = chunks[c];
    }
    for (unsigned t = 0; t < threads; t++) {
      workers[t].start = &start;
      start_thread(&ids[t], worker_main, &workers[t]);
    }
    for (unsigned t = 0; t < threads; t++)
      pthread_join(ids[t], NULL);
    pthread_barrier_destroy(&start);
    tmf_watchdog_note("the checks after a wave");
    /* All workers are gone: the counters must be exact again, the metadata
     * consistent, and no exited thread may keep a heap attached. */
    tmf_ops_expect_stats(&ctx);
    if (!thorough) continue;
    int violations = tinymalloc_check();
    TMF_REQUIRE(violations == 0, "tinymalloc_check found %d violations after wave %u", violations, wave);
    size_t heaps = tmf_attached_heaps();
    TMF_REQUIRE(heaps <= heaps_before,
                "thread heaps leak: %zu attached after every worker of wave %u exited, %zu before", heaps, wave,
                heaps_before);
  }
  /* The main thread frees what the workers left: remote frees into slabs
   * whose owners have exited. */
  size_t slack = ctx.slack;
  tmf_ops_finish(&ctx);
  return slack;
}
