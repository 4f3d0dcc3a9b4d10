# variants.cmake owns the sanitizer-aware variants of the library that a
# user's sanitizer CI links instead of libtinymalloc. With
# TINYMALLOC_SANITIZER_VARIANTS=ON the core is compiled twice more, next to
# the plain libraries, each time with one tracking backend of src/track.h:
#
#   libtinymalloc-asan.{so,a}      -fsanitize=address, TM_TRACK_ASAN=1: blocks
#                                  poisoned and unpoisoned for AddressSanitizer;
#                                  for programs built with -fsanitize=address
#                                  (CMake tinymalloc::asan, ::asan_static;
#                                  pkg-config tinymalloc-asan)
#   libtinymalloc-valgrind.{so,a}  TM_TRACK_VALGRIND=1: memcheck client
#                                  requests (no-ops outside Valgrind)
#                                  (tinymalloc::valgrind, ::valgrind_static;
#                                  pkg-config tinymalloc-valgrind)
#
# Same API and header as libtinymalloc. Sets TM_VARIANT_TARGETS (for
# install.cmake); never changes how the plain libraries are built. Included
# by the top-level CMakeLists.txt after the core targets.

option(TINYMALLOC_SANITIZER_VARIANTS "Also build and install libtinymalloc-asan and libtinymalloc-valgrind" OFF)
set(TM_VARIANT_TARGETS "")
if(NOT TINYMALLOC_SANITIZER_VARIANTS)
  return()
endif()

if(TINYMALLOC_ASAN OR TINYMALLOC_VALGRIND OR CMAKE_C_FLAGS MATCHES "-fsanitize=")
  message(FATAL_ERROR "TINYMALLOC_SANITIZER_VARIANTS builds the variants next to the plain library: "
                      "configure it without -fsanitize flags, TINYMALLOC_ASAN and TINYMALLOC_VALGRIND")
endif()

include(CheckCSourceCompiles)
include(CheckIncludeFile)
# A failed check is tried again at the next configure (after apt-get install).
foreach(result TM_VARIANT_HAVE_ASAN TM_HAVE_MEMCHECK_H)
  if(DEFINED ${result} AND NOT ${result})
    unset(${result} CACHE)
  endif()
endforeach()
set(CMAKE_REQUIRED_FLAGS -fsanitize=address)
set(CMAKE_REQUIRED_LINK_OPTIONS -fsanitize=address)
check_c_source_compiles([[
#include <sanitizer/asan_interface.h>
static char byte;
int main(void) { return __asan_address_is_poisoned(&byte); }
]] TM_VARIANT_HAVE_ASAN)
unset(CMAKE_REQUIRED_FLAGS)
unset(CMAKE_REQUIRED_LINK_OPTIONS)
if(NOT TM_VARIANT_HAVE_ASAN)
  message(FATAL_ERROR "TINYMALLOC_SANITIZER_VARIANTS: ${CMAKE_C_COMPILER} cannot build and link -fsanitize=address "
                      "programs (gcc needs its libasan, clang Debian's libclang-rt-14-dev)")
endif()
check_include_file(valgrind/memcheck.h TM_HAVE_MEMCHECK_H)
if(NOT TM_HAVE_MEMCHECK_H)
  message(FATAL_ERROR "TINYMALLOC_SANITIZER_VARIANTS: libtinymalloc-valgrind needs <valgrind/memcheck.h> "
                      "(Debian package valgrind)")
endif()

# tm_sanitizer_variant(NAME DEFINITIONS ... COMPILE_OPTIONS ... USAGE_LINK_OPTIONS ...)
# defines tinymalloc_<NAME> (shared) and tinymalloc_<NAME>_static, both
# libtinymalloc-<NAME>, from a copy of the core compiled with the given
# definitions and options; USAGE_LINK_OPTIONS are needed by every program
# that links either library.
function(tm_sanitizer_variant name)
  cmake_parse_arguments(V "" "" "DEFINITIONS;COMPILE_OPTIONS;USAGE_LINK_OPTIONS" ${ARGN})
  set(objects tm_objects_${name})
  add_library(${objects} OBJECT ${TM_CORE_SOURCES} ${TM_TRACK_SOURCES})
  target_include_directories(${objects} PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(${objects} PRIVATE ${TM_CORE_FLAGS} ${V_COMPILE_OPTIONS})
  target_compile_definitions(${objects} PRIVATE _GNU_SOURCE ${V_DEFINITIONS})

  add_library(tinymalloc_${name} SHARED $<TARGET_OBJECTS:${objects}>)
  set_target_properties(tinymalloc_${name} PROPERTIES OUTPUT_NAME tinymalloc-${name}
                        VERSION ${PROJECT_VERSION} SOVERSION 0)
  add_library(tinymalloc_${name}_static STATIC $<TARGET_OBJECTS:${objects}>)
  set_target_properties(tinymalloc_${name}_static PROPERTIES OUTPUT_NAME tinymalloc-${name})
  foreach(target tinymalloc_${name} tinymalloc_${name}_static)
    target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>)
    target_link_libraries(${target} PUBLIC Threads::Threads)
    if(V_USAGE_LINK_OPTIONS)
      target_link_options(${target} INTERFACE ${V_USAGE_LINK_OPTIONS})
    endif()
  endforeach()
  tm_public_name(tinymalloc_${name} ${name})
  tm_public_name(tinymalloc_${name}_static ${name}_static)
  set(TM_VARIANT_TARGETS ${TM_VARIANT_TARGETS} tinymalloc_${name} tinymalloc_${name}_static PARENT_SCOPE)
endfunction()

# The ASan variant's shared library is linked with -fsanitize=address too: with
# gcc that records libasan as a dependency; clang leaves the runtime to the
# program, as it does for every instrumented shared library.
tm_sanitizer_variant(asan DEFINITIONS TM_TRACK_ASAN=1
                     COMPILE_OPTIONS -fsanitize=address -fno-omit-frame-pointer
                     USAGE_LINK_OPTIONS -fsanitize=address)
target_link_options(tinymalloc_asan PRIVATE -fsanitize=address)

set(tm_valgrind_options "")
if(CMAKE_C_COMPILER_ID MATCHES "Clang")
  set(tm_valgrind_options -gdwarf-4) # Valgrind 3.19 cannot read clang 14's DWARF 5
endif()
tm_sanitizer_variant(valgrind DEFINITIONS TM_TRACK_VALGRIND=1 COMPILE_OPTIONS ${tm_valgrind_options})
message(STATUS "tinymalloc: sanitizer variants libtinymalloc-asan and libtinymalloc-valgrind")
