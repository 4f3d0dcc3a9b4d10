/* A fuzzing "engine" that does no fuzzing, for checking a fuzzing-service
 * build script locally (ci/packaging-tests.sh): archived into a library and
 * passed as $LIB_FUZZING_ENGINE, it supplies main() to any libFuzzer-style
 * target (LLVMFuzzerTestOneInput, optional LLVMFuzzerInitialize) and runs the
 * target once on each input named on the command line; a directory stands for
 * the regular files in it, in name order. Arguments starting with '-' are
 * engine flags and are ignored, so a command line written for libFuzzer
 * (`target -runs=0 dir`) works too. Exit status 0 when every input ran. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static unsigned long inputs_run;

static int run_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return -1;
  }
  size_t cap = 4096, len = 0;
  uint8_t *buf = malloc(cap);
  size_t n;
  while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) {
      uint8_t *bigger = realloc(buf, cap * 2);
      if (!bigger) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = bigger;
      cap *= 2;
    }
  }
  int failed = ferror(f) || !buf;
  fclose(f);
  if (failed) {
    fprintf(stderr, "replay-engine: cannot read %s\n", path);
    free(buf);
    return -1;
  }
  /* The target gets a buffer of exactly len bytes, as under libFuzzer. */
  uint8_t *exact = malloc(len ? len : 1);
  if (!exact) {
    free(buf);
    return -1;
  }
  memcpy(exact, buf, len);
  free(buf);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  inputs_run++;
  return 0;
}

static int only_files(const struct dirent *e) { return e->d_name[0] != '.'; }

static int run_path(const char *path)
{
  struct stat st;
  if (stat(path, &st) != 0) {
    perror(path);
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) return run_file(path);
  struct dirent **names;
  int count = scandir(path, &names, only_files, alphasort);
  if (count < 0) {
    perror(path);
    return -1;
  }
  int status = 0;
  for (int i = 0; i < count; i++) {
    size_t size = strlen(path) + strlen(names[i]->d_name) + 2;
    char *child = malloc(size);
    if (child) {
      snprintf(child, size, "%s/%s", path, names[i]->d_name);
      if (stat(child, &st) == 0 && S_ISREG(st.st_mode) && run_file(child) != 0) status = -1;
      free(child);
    } else {
      status = -1;
    }
    free(names[i]);
  }
  free(names);
  return status;
}

int main(int argc, char **argv)
{
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  int status = 0;
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] == '-') continue;
    if (run_path(argv[i]) != 0) status = 1;
  }
  fprintf(stderr, "replay-engine: %lu inputs run\n", inputs_run);
  return status;
}
