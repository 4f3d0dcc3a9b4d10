# override.cmake owns the drop-in malloc replacement: libtinymalloc-override.so
# (for LD_PRELOAD or linking) and libtinymalloc-override.a (static links), both
# the core objects plus src/override.c. Included by the top-level
# CMakeLists.txt after the core targets exist; it defines no core targets.

add_library(tm_override_objects OBJECT src/override.c)
target_include_directories(tm_override_objects PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/include
                                                       ${CMAKE_CURRENT_SOURCE_DIR}/src)
# -fno-builtin: the compiler must not turn any of these definitions into a
# call to another member of the family (or to itself).
target_compile_options(tm_override_objects PRIVATE ${TM_CORE_FLAGS} -fno-builtin)
target_compile_definitions(tm_override_objects PRIVATE _GNU_SOURCE ${TM_TRACK_DEFINITIONS})

add_library(tinymalloc_override SHARED $<TARGET_OBJECTS:tm_objects> $<TARGET_OBJECTS:tm_override_objects>)
set_target_properties(tinymalloc_override PROPERTIES OUTPUT_NAME tinymalloc-override)
target_include_directories(tinymalloc_override PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>)
target_link_libraries(tinymalloc_override PUBLIC Threads::Threads)
tm_public_name(tinymalloc_override override)
# nodelete: blocks handed out must outlive a dlclose of the library.
# -Bsymbolic-functions: malloc -> tinymalloc is a direct call, not a PLT hop.
# --no-undefined: a missing core symbol is a link error, not a load failure
# (not with sanitizers: their runtime is linked into executables only).
target_link_options(tinymalloc_override PRIVATE -Wl,-z,nodelete -Wl,-Bsymbolic-functions)
if(NOT CMAKE_C_FLAGS MATCHES "-fsanitize=")
  target_link_options(tinymalloc_override PRIVATE -Wl,--no-undefined)
endif()

add_library(tinymalloc_override_static STATIC $<TARGET_OBJECTS:tm_objects>
                                              $<TARGET_OBJECTS:tm_override_objects>)
set_target_properties(tinymalloc_override_static PROPERTIES OUTPUT_NAME tinymalloc-override)
target_include_directories(tinymalloc_override_static PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>)
target_link_libraries(tinymalloc_override_static PUBLIC Threads::Threads)
tm_public_name(tinymalloc_override_static override_static)
# Installed (and exported as tinymalloc::override, tinymalloc::override_static)
# by cmake/install.cmake.
