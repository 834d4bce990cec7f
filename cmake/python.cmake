# The Python module `nsvm` (bindings/python), built from Debian's pybind11
# against libnsvm's static, position-independent archive, so the module is
# one self-contained .so. Built into build/python (PYTHONPATH=build/python),
# installed into the prefix's site-packages (NSVM_PYTHON_INSTALL_DIR).
option(NSVM_BUILD_PYTHON "Build the Python module (needs pybind11-dev, python3-dev)" ON)
# Built in the sanitizer build too: python3 is not instrumented, so the test
# preloads the ASan runtime (it must come first in the process) and runs
# pytest with leak detection off (the interpreter keeps its objects at exit).
# Not in the fuzz build, whose libraries expect libFuzzer's runtime.
if(NOT NSVM_BUILD_PYTHON OR NSVM_BUILD_FUZZ)
  return()
endif()
find_package(Python3 COMPONENTS Interpreter Development.Module)
find_package(pybind11 CONFIG QUIET)
if(NOT Python3_FOUND OR NOT pybind11_FOUND)
  message(STATUS "nsvm: Python module not built (needs pybind11-dev and python3-dev)")
  return()
endif()

file(GLOB py_srcs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/bindings/python/*.cpp)
if(NOT py_srcs)
  return()
endif()
pybind11_add_module(nsvm_python MODULE ${py_srcs})
set_target_properties(nsvm_python PROPERTIES OUTPUT_NAME nsvm
                      LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/python)
target_link_libraries(nsvm_python PRIVATE nsvm_static fmt::fmt)

# The prefix-relative site directory of the standard "posix_prefix" scheme,
# e.g. lib/python3.11/site-packages.
if(NOT DEFINED NSVM_PYTHON_INSTALL_DIR)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c
            "import sysconfig; print(sysconfig.get_path('platlib', 'posix_prefix', vars={'platbase': '.', 'base': '.'}))"
    OUTPUT_VARIABLE py_site OUTPUT_STRIP_TRAILING_WHITESPACE)
  string(REGEX REPLACE "^\\./" "" py_site "${py_site}")
  set(NSVM_PYTHON_INSTALL_DIR ${py_site} CACHE STRING "Where `cmake --install` puts the Python module (prefix-relative)")
endif()
install(TARGETS nsvm_python LIBRARY DESTINATION ${NSVM_PYTHON_INSTALL_DIR})

# The interpreter that runs tests/python: the one the module was built for,
# unless it lacks pytest (a pyenv python ahead of Debian's on PATH) and the
# system python3 of the same version has it (python3-pytest).
set(NSVM_PYTEST_PYTHON ${Python3_EXECUTABLE})
execute_process(COMMAND ${Python3_EXECUTABLE} -c "import pytest" RESULT_VARIABLE no_pytest OUTPUT_QUIET ERROR_QUIET)
if(no_pytest AND EXISTS /usr/bin/python3)
  execute_process(COMMAND /usr/bin/python3 -c
                  "import sys, pytest; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"
                  OUTPUT_VARIABLE sys_py OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE sys_no_pytest ERROR_QUIET)
  if(NOT sys_no_pytest AND sys_py STREQUAL "${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}")
    set(NSVM_PYTEST_PYTHON /usr/bin/python3)
  endif()
endif()
