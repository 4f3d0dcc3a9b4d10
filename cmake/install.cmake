# install.cmake owns what `cmake --install` puts in place and how other builds
# find it: the libraries and the header; the CMake package
#   find_package(tinymalloc [0.1] [COMPONENTS override asan valgrind])
# with the imported targets tinymalloc::tinymalloc (shared),
# tinymalloc::tinymalloc_static, tinymalloc::override,
# tinymalloc::override_static and, when built, tinymalloc::asan[_static] and
# tinymalloc::valgrind[_static]; and one pkg-config file per library
# (tinymalloc, tinymalloc-override, tinymalloc-asan, tinymalloc-valgrind).
# Included by the top-level CMakeLists.txt (TINYMALLOC_INSTALL) after every
# library target exists.

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(tm_installed tinymalloc_shared tinymalloc_static)
foreach(target tinymalloc_override tinymalloc_override_static ${TM_VARIANT_TARGETS})
  if(TARGET ${target})
    list(APPEND tm_installed ${target})
  endif()
endforeach()

install(TARGETS ${tm_installed} EXPORT tinymallocTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/tinymalloc.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# ---- CMake package ----------------------------------------------------------
set(tm_package_dir ${CMAKE_INSTALL_LIBDIR}/cmake/tinymalloc)
set(tm_stage ${PROJECT_BINARY_DIR}/tinymalloc-package)
install(EXPORT tinymallocTargets NAMESPACE tinymalloc:: FILE tinymallocTargets.cmake
        DESTINATION ${tm_package_dir})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/tinymallocConfig.cmake.in
                              ${tm_stage}/tinymallocConfig.cmake INSTALL_DESTINATION ${tm_package_dir})
# Before 1.0 a minor release may change the API (0.2 does not satisfy a
# request for 0.1); from 1.0 on, any release of the same major version does.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(tm_compatibility SameMinorVersion)
else()
  set(tm_compatibility SameMajorVersion)
endif()
write_basic_package_version_file(${tm_stage}/tinymallocConfigVersion.cmake VERSION ${PROJECT_VERSION}
                                 COMPATIBILITY ${tm_compatibility})
install(FILES ${tm_stage}/tinymallocConfig.cmake ${tm_stage}/tinymallocConfigVersion.cmake
        DESTINATION ${tm_package_dir})

# ---- pkg-config ---------------------------------------------------------------
# The files name the prefix that is installed into, which `cmake --install
# --prefix DIR` chooses only at install time: each file is completed from a
# template by the install script itself. Libs.private holds what a static
# link (pkg-config --static) needs besides the archive.
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(tm_pc_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(tm_pc_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()

set(tm_cmake_dir ${CMAKE_CURRENT_LIST_DIR})
function(tm_pkgconfig target name description libs libs_private)
  if(NOT TARGET ${target})
    return()
  endif()
  set(TM_PC_PREFIX "@TM_PC_PREFIX@") # kept for the install-time pass
  set(TM_PC_LIBDIR "${tm_pc_LIBDIR}")
  set(TM_PC_INCLUDEDIR "${tm_pc_INCLUDEDIR}")
  set(TM_PC_NAME ${name})
  set(TM_PC_DESCRIPTION "${description}")
  set(TM_PC_LIBS "${libs}")
  set(TM_PC_LIBS_PRIVATE "${libs_private}")
  set(template ${tm_stage}/pkgconfig/${name}.pc.in)
  set(file ${tm_stage}/pkgconfig/${name}.pc)
  configure_file(${tm_cmake_dir}/tinymalloc.pc.in ${template} @ONLY)
  install(CODE "set(TM_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
configure_file(\"${template}\" \"${file}\" @ONLY)")
  install(FILES ${file} DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endfunction()

tm_pkgconfig(tinymalloc_shared tinymalloc "tinymalloc allocator: the tiny* API (tinymalloc.h)"
             "-ltinymalloc" "-pthread")
tm_pkgconfig(tinymalloc_override tinymalloc-override
             "tinymalloc as the program's malloc, free, calloc, realloc, ... (and the tiny* API)"
             "-ltinymalloc-override" "-pthread")
tm_pkgconfig(tinymalloc_asan tinymalloc-asan
             "tinymalloc for programs built with -fsanitize=address: blocks poisoned for AddressSanitizer"
             "-ltinymalloc-asan -fsanitize=address" "-pthread")
tm_pkgconfig(tinymalloc_valgrind tinymalloc-valgrind
             "tinymalloc for programs run under Valgrind memcheck: blocks described with client requests"
             "-ltinymalloc-valgrind" "-pthread")
