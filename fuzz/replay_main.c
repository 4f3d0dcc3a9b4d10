/* The plain replay driver: runs the harness over files and directories
 * (every regular file in them, in name order), each input alone and in
 * order, without any fuzzing engine. Used by ctest, Valgrind, TSan, the
 * coverage report and to reproduce a saved crash: `replay_<harness> FILE`. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"

static const char *current_input;

/* Names the signal and the input that crashed, then lets the signal do its work. */
static void on_fatal_signal(int sig)
{
  const char *name = sig == SIGABRT ? "abort" : sig == SIGSEGV ? "SIGSEGV" : "SIGBUS";
  static const char prefix[] = "tinymalloc-fuzz: ";
  static const char middle[] = " while replaying ";
  ssize_t ignored = write(2, prefix, sizeof prefix - 1);
  ignored = write(2, name, strlen(name));
  ignored = write(2, middle, sizeof middle - 1);
  if (current_input) {
    ignored = write(2, current_input, strlen(current_input));
  }
  ignored = write(2, "\n", 1);
  (void)ignored;
  signal(sig, SIG_DFL);
  raise(sig);
}

static int replay_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return -1;
  }
  size_t cap = 4096, len = 0;
  unsigned char *buf = malloc(cap);
  for (;;) {
    if (len == cap) {
      cap *= 2;
      unsigned char *grown = realloc(buf, cap);
      if (!grown) {
        fclose(f);
        free(buf);
        return -1;
      }
      buf = grown;
    }
    size_t n = fread(buf + len, 1, cap - len, f);
    if (n == 0) break;
    len += n;
  }
  fclose(f);
  current_input = path;
  tmf_run(buf, len);
  current_input = NULL;
  free(buf);
  return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

static int replay_path(const char *path, unsigned *count)
{
  struct stat st;
  if (stat(path, &st) != 0) {
    perror(path);
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    if (replay_file(path) != 0) return -1;
    ++*count;
    return 0;
  }
  struct dirent **entries;
  int n = scandir(path, &entries, NULL, by_name);
  if (n < 0) {
    perror(path);
    return -1;
  }
  int rc = 0;
  for (int i = 0; i < n; i++) {
    if (entries[i]->d_name[0] != '.' && rc == 0) {
      size_t size = strlen(path) + strlen(entries[i]->d_name) + 2;
      char *child = malloc(size);
      snprintf(child, size, "%s/%s", path, entries[i]->d_name);
      struct stat cst;
      if (stat(child, &cst) == 0 && S_ISREG(cst.st_mode)) {
        rc = replay_file(child);
        ++*count;
      }
      free(child);
    }
    free(entries[i]);
  }
  free(entries);
  return rc;
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE_OR_DIR...\n  replays inputs of the \"%s\" harness\n", argv[0], tmf_harness_name);
    return 2;
  }
  /* TMF_DEEP_EVERY=N (N > 1) replays as a warm fuzzing process would run
   * the inputs (used to test the window a warm-mode failure saves). */
  const char *every = getenv("TMF_DEEP_EVERY");
  if (every && atoi(every) > 1) tmf_set_fuzzing_mode(getenv("TMF_ARTIFACT_PREFIX"));
  signal(SIGABRT, on_fatal_signal);
  signal(SIGSEGV, on_fatal_signal);
  signal(SIGBUS, on_fatal_signal);
  unsigned count = 0;
  for (int i = 1; i < argc; i++)
    if (replay_path(argv[i], &count) != 0) return 1;
  fprintf(stderr, "replay_%s: %u inputs replayed, no failure\n", tmf_harness_name, count);
  return 0;
}
