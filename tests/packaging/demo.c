/* demo.c: copies a string into a tinymalloc block; with --off-by-one the
 * block is one byte short and the copy writes its '\0' past the end. */
#include <stdio.h>
#include <string.h>
#include <tinymalloc.h>

int main(int argc, char **argv)
{
  int off_by_one = argc > 1 && strcmp(argv[1], "--off-by-one") == 0;
  const char *text = "hello, sanitizer CI";
  size_t length = strlen(text);
  char *copy = tinymalloc(off_by_one ? length : length + 1);
  if (copy == NULL) return 1;
  for (size_t i = 0; i <= length; i++)
    copy[i] = text[i];
  printf("%s\n", copy);
  tinyfree(copy);
  return 0;
}
