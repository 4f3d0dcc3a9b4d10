# track.cmake owns the choice of tracking backend (src/track.h): the options
# TINYMALLOC_ASAN and TINYMALLOC_VALGRIND, the compile definitions they give
# the core (TM_TRACK_DEFINITIONS), its extra sources (TM_TRACK_SOURCES) and
# TM_TRACKED_BUILD for every target of a tracked build. Included by the
# top-level CMakeLists.txt before any target; it must never define targets
# or change flags other than the sanitizer ones it documents.

set(_tm_asan_default OFF)
if(CMAKE_C_FLAGS MATCHES "-fsanitize=[^ ]*address")
  set(_tm_asan_default ON)
endif()
option(TINYMALLOC_ASAN "Poison tinymalloc blocks for AddressSanitizer (ON when CMAKE_C_FLAGS has -fsanitize=address)"
       ${_tm_asan_default})
option(TINYMALLOC_VALGRIND "Describe tinymalloc blocks to Valgrind memcheck with client requests" OFF)
option(TINYMALLOC_MEMCHECK_SUITE "Run every test executable under memcheck (with TINYMALLOC_VALGRIND)" OFF)

if(TINYMALLOC_ASAN AND TINYMALLOC_VALGRIND)
  message(FATAL_ERROR "TINYMALLOC_ASAN and TINYMALLOC_VALGRIND exclude each other: an ASan binary cannot run under Valgrind")
endif()
if(TINYMALLOC_ASAN AND NOT _tm_asan_default)
  # Asked for the backend without the flags: build everything with ASan, so
  # that the core, the tests and the programs agree.
  add_compile_options(-fsanitize=address -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address)
endif()

set(TM_TRACK_DEFINITIONS "")
# Relative to the top-level source directory, like TM_CORE_SOURCES.
set(TM_TRACK_SOURCES src/track.c)

# Tests see it: tinymalloc_usable_size returns the requested size there
# (1: ASan, always; 2: Valgrind, when running under Valgrind).
if(TINYMALLOC_ASAN)
  add_compile_definitions(TM_TRACKED_BUILD=1)
elseif(TINYMALLOC_VALGRIND)
  add_compile_definitions(TM_TRACKED_BUILD=2)
endif()
if(TINYMALLOC_ASAN)
  list(APPEND TM_TRACK_DEFINITIONS TM_TRACK_ASAN=1)
  message(STATUS "tinymalloc: tracking backend ASan (blocks poisoned, LSan root regions)")
elseif(TINYMALLOC_VALGRIND)
  include(CheckIncludeFile)
  check_include_file(valgrind/memcheck.h TM_HAVE_MEMCHECK_H)
  if(NOT TM_HAVE_MEMCHECK_H)
    message(FATAL_ERROR "TINYMALLOC_VALGRIND needs <valgrind/memcheck.h> (Debian package valgrind)")
  endif()
  list(APPEND TM_TRACK_DEFINITIONS TM_TRACK_VALGRIND=1)
  # One memcheck command line for the bug programs and the whole suite: any
  # error or definite/indirect leak fails the run, and memcheck sees
  # tinymalloc only through its client requests, even in a program that
  # links tinymalloc's malloc statically.
  find_program(TM_VALGRIND_EXECUTABLE valgrind)
  set(TM_MEMCHECK_COMMAND ${TM_VALGRIND_EXECUTABLE} --tool=memcheck --error-exitcode=99 --leak-check=full
      --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect
      --soname-synonyms=somalloc=nouserintercepts --num-callers=16 --trace-children=yes
      --suppressions=${CMAKE_CURRENT_LIST_DIR}/../tests/sanitizer/memcheck.supp)
  if(TINYMALLOC_MEMCHECK_SUITE)
    if(NOT TM_VALGRIND_EXECUTABLE)
      message(FATAL_ERROR "TINYMALLOC_MEMCHECK_SUITE needs valgrind")
    endif()
    # add_test() runs an executable target through the emulator.
    set(CMAKE_CROSSCOMPILING_EMULATOR ${TM_MEMCHECK_COMMAND})
  endif()
  if(CMAKE_C_COMPILER_ID MATCHES "Clang")
    # Valgrind 3.19 cannot read clang 14's default DWARF 5.
    add_compile_options(-gdwarf-4)
  endif()
  message(STATUS "tinymalloc: tracking backend Valgrind memcheck (client requests)")
endif()
