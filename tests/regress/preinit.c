/* Issue 8, item 4: calls before initialisation, in a program that links
 * libtinymalloc.a (statically; built twice: against the shared libc, and
 * fully -static when libc.a is installed).
 *
 * A .preinit_array entry runs before every constructor of the program,
 * tinymalloc's included, and a constructor of priority 101 runs with (and
 * possibly before) tinymalloc's own. From both, before tinymalloc ever ran:
 * tinyfree(NULL), tinymalloc_usable_size(NULL), a malloc/free pair, calloc,
 * realloc, and an invalid free reported to a handler (the pointer must be
 * classified as "not ours" before anything is initialised). main() then
 * checks that each call did what it should.
 *
 * The bug: tinyfree's fast path indexes the segment map while it is still
 * NULL: tinyfree(NULL) from the preinit entry dies with SIGSEGV.
 *
 * The program re-executes itself ("child") so that the crash of the early
 * code is seen by a parent that can say what happened; the early functions
 * do nothing unless argv[1] is "child" (glibc passes argc/argv to both). */
#include <stdbool.h>

#include "regress.h"

#define STEPS 7
static const char *const step_names[STEPS] = {
    "tinyfree(NULL)",
    "tinymalloc_usable_size(NULL) == 0",
    "tinymalloc(24) + write + tinyfree",
    "tinycalloc(10, 10) zeroed + tinyfree",
    "tinyrealloc(NULL, 40) then realloc to 4000 keeps contents + tinyfree",
    "tinyfree(stack pointer) reported once as an invalid free",
    "tinymalloc(40000) + tinyfree (medium)",
};

typedef struct {
  int done[STEPS]; /* 1 ok, -1 wrong */
} early_t;

static early_t preinit_result, ctor_result;
static int invalid_reports;

static void count_report(tinymalloc_error_kind_t kind, const char *op, void *ptr, const char *message, void *arg)
{
  (void)op, (void)ptr, (void)message, (void)arg;
  if (kind == TINYMALLOC_ERROR_INVALID_FREE) invalid_reports++;
}

static void early_calls(early_t *out, const char *who)
{
  regress_say(who);
  regress_say(": tinyfree(NULL)\n");
  tinyfree(NULL);
  out->done[0] = 1;

  out->done[1] = tinymalloc_usable_size(NULL) == 0 ? 1 : -1;

  char *p = tinymalloc(24);
  if (p) {
    memset(p, 7, 24);
    tinyfree(p);
  }
  out->done[2] = p ? 1 : -1;

  unsigned char *z = tinycalloc(10, 10);
  bool zero = z != NULL;
  for (int i = 0; z && i < 100; i++)
    zero = zero && z[i] == 0;
  tinyfree(z);
  out->done[3] = zero ? 1 : -1;

  char *r = tinyrealloc(NULL, 40);
  bool kept = false;
  if (r) {
    memcpy(r, "before main", 12);
    char *r2 = tinyrealloc(r, 4000);
    kept = r2 && memcmp(r2, "before main", 12) == 0;
    tinyfree(r2 ? r2 : r);
  }
  out->done[4] = kept ? 1 : -1;

  long on_stack[2] = {0};
  int before = invalid_reports;
  tinymalloc_error_handler_t old = tinymalloc_set_error_handler(count_report, NULL);
  tinyfree(regress_launder(&on_stack[1]));
  tinymalloc_set_error_handler(old, NULL);
  out->done[5] = invalid_reports == before + 1 ? 1 : -1;

  void *m = tinymalloc(40000);
  tinyfree(m);
  out->done[6] = m ? 1 : -1;
}

static bool is_child(int argc, char **argv) { return argc > 1 && argv && argv[1] && strcmp(argv[1], "child") == 0; }

static void preinit_entry(int argc, char **argv, char **envp)
{
  (void)envp;
  if (is_child(argc, argv)) early_calls(&preinit_result, "preinit_array");
}
__attribute__((section(".preinit_array"), used)) static void (*const preinit_ptr)(int, char **,
                                                                                  char **) = preinit_entry;

__attribute__((constructor(101))) static void constructor_101(int argc, char **argv, char **envp)
{
  (void)envp;
  if (is_child(argc, argv)) early_calls(&ctor_result, "constructor(101)");
}

static int report(const char *who, const early_t *e)
{
  int bad = 0;
  for (int i = 0; i < STEPS; i++) {
    if (e->done[i] != 1) bad++;
    fprintf(stderr, "%s %s: %s\n", e->done[i] == 1 ? "ok  " : "FAIL", who,
            e->done[i] == 0 ? "never ran" : step_names[i]);
  }
  return bad;
}

static void exec_child(void *arg)
{
  const char *self = arg;
  execl(self, self, "child", (char *)NULL);
  fprintf(stderr, "exec %s: %s\n", self, strerror(errno));
  _exit(126);
}

int main(int argc, char **argv)
{
  if (is_child(argc, argv)) {
    int bad = report("preinit_array", &preinit_result) + report("constructor(101)", &ctor_result);
    REQUIRE(tinymalloc_check() == 0, "tinymalloc_check() after the early calls");
    return bad ? 1 : 0;
  }
  printf("calls into libtinymalloc.a from a .preinit_array entry and a constructor(101)\n");
  static char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  REQUIRE(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
  self[n] = '\0';
  regress_result_t r;
  regress_run(exec_child, self, 20, &r);
  char how[128];
  regress_outcome(&r, how, sizeof how);
  regress_dump(&r);
  if (r.exited && r.code == 0) {
    printf("PASS: %s\n", how);
    return 0;
  }
  printf("FAIL: %s%s\n", how,
         r.signaled && r.sig == SIGSEGV ? " (crashed before main: the first call ran before tinymalloc was initialised)"
                                        : "");
  return 1;
}
