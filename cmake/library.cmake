# libnsvm: every layer but the CLI in one library, static (libnsvm.a) and
# shared (libnsvm.so). Both are made of the layers' own objects
# ($<TARGET_OBJECTS>), so nothing is compiled twice and the per-layer
# libraries keep "a layer links only the layers below it" for the project's
# own tests. Installs the headers, both libraries, the CLI, nsvmConfig.cmake
# (find_package(nsvm) -> nsvm::nsvm, nsvm::nsvm_static) and nsvm.pc.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(NSVM_LIBRARY_LAYERS arch checks cpu nested formats scenario oracle repair capi)
set(nsvm_objects "")
foreach(layer ${NSVM_LIBRARY_LAYERS})
  list(APPEND nsvm_objects $<TARGET_OBJECTS:nsvm_${layer}>)
endforeach()

foreach(kind static shared)
  string(TOUPPER ${kind} KIND)
  add_library(nsvm_${kind} ${KIND} ${nsvm_objects})
  set_target_properties(nsvm_${kind} PROPERTIES OUTPUT_NAME nsvm LINKER_LANGUAGE CXX)
  target_include_directories(nsvm_${kind} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include> $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  # What the public headers need (expected.hpp says so with an #error), not
  # the C++23 the library itself is built with: C++20 consumers are welcome.
  target_compile_features(nsvm_${kind} PUBLIC cxx_std_20)
  # decode.hpp hands out nlohmann::json; the rest is private to the library.
  target_link_libraries(nsvm_${kind} PUBLIC nlohmann_json::nlohmann_json
                        PRIVATE fmt::fmt yaml-cpp Threads::Threads)
endforeach()
# nsvm::nsvm is the shared library (what most embedders want: one copy of
# the model per process, no private dependencies to find); nsvm::nsvm_static
# for those who link everything in.
set_target_properties(nsvm_shared PROPERTIES EXPORT_NAME nsvm VERSION ${PROJECT_VERSION}
                      SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
set_target_properties(nsvm_static PROPERTIES EXPORT_NAME nsvm_static)
add_library(nsvm::nsvm ALIAS nsvm_shared)
add_library(nsvm::nsvm_static ALIAS nsvm_static)

install(TARGETS nsvm_static nsvm_shared EXPORT nsvmTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS nsvm RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${NSVM_MAN_PAGE} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${NSVM_BASH_COMPLETION} DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/nsvm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h")
install(FILES ${PROJECT_BINARY_DIR}/include/nsvm/version.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/nsvm)

set(nsvm_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/nsvm)
install(EXPORT nsvmTargets NAMESPACE nsvm:: DESTINATION ${nsvm_cmake_dir})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/nsvmConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/nsvmConfig.cmake INSTALL_DESTINATION ${nsvm_cmake_dir})
# 0.x: a new minor version may change the C++ API, so only the same minor matches.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/nsvmConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/nsvmConfig.cmake ${PROJECT_BINARY_DIR}/nsvmConfigVersion.cmake
        DESTINATION ${nsvm_cmake_dir})

# nsvm.pc finds its prefix from where it lies (${pcfiledir}), so an install
# with `cmake --install build --prefix DIR` is right whatever DIR is.
file(RELATIVE_PATH NSVM_PC_TO_PREFIX /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" NSVM_PC_TO_PREFIX "${NSVM_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/nsvm.pc.in ${PROJECT_BINARY_DIR}/nsvm.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/nsvm.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
