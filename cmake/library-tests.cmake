# Tests of the library as others use it: the C API from plain C99, the
# Python module, and the out-of-tree examples (scripts/embed-test.sh).

# nsvm.h must be C99: a C translation unit includes it and calls the API,
# compiled with the C compiler, strict C99, warnings as errors.
add_executable(nsvm_capi_c_test ${PROJECT_SOURCE_DIR}/tests/capi/c99_test.c)
set_target_properties(nsvm_capi_c_test PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
target_compile_options(nsvm_capi_c_test PRIVATE $<$<COMPILE_LANGUAGE:C>:-Werror -Wno-long-long>)
target_link_libraries(nsvm_capi_c_test PRIVATE nsvm_static)
target_compile_definitions(nsvm_capi_c_test PRIVATE NSVM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
add_test(NAME CApi.C99 COMMAND nsvm_capi_c_test)

if(TARGET nsvm_python)
  add_test(NAME Python.Bindings
           COMMAND ${NSVM_PYTEST_PYTHON} -m pytest -q -p no:cacheprovider ${PROJECT_SOURCE_DIR}/tests/python)
  set(py_env "PYTHONPATH=${PROJECT_BINARY_DIR}/python;NSVM_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  if(NSVM_SANITIZE)
    # The module is instrumented, python3 is not: the ASan runtime is
    # preloaded so that it comes first, with libstdc++ after it (python3 does
    # not link libstdc++, and ASan's __cxa_throw interceptor needs it loaded
    # when ASan starts: without it, the first C++ exception aborts). Leaks
    # are not checked (CPython does not free everything at exit). Any ASan or
    # UBSan report still aborts the interpreter, which fails the test.
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libasan.so
                    OUTPUT_VARIABLE asan_runtime OUTPUT_STRIP_TRAILING_WHITESPACE)
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libstdc++.so
                    OUTPUT_VARIABLE cxx_runtime OUTPUT_STRIP_TRAILING_WHITESPACE)
    list(APPEND py_env "LD_PRELOAD=${asan_runtime} ${cxx_runtime}" "ASAN_OPTIONS=detect_leaks=0:halt_on_error=1"
         "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
  endif()
  set_tests_properties(Python.Bindings PROPERTIES ENVIRONMENT "${py_env}" TIMEOUT 600)
endif()

# Installs into a temporary prefix and builds every example of
# examples/embed out of tree, with gcc and clang, C++20 and C++23, then runs
# the fuzzer for a few seconds. Minutes, not seconds: labelled "embed".
if(NOT NSVM_SANITIZE AND EXISTS ${PROJECT_SOURCE_DIR}/scripts/embed-test.sh)
  add_test(NAME Embed.Examples COMMAND ${PROJECT_SOURCE_DIR}/scripts/embed-test.sh ${PROJECT_BINARY_DIR})
  set_tests_properties(Embed.Examples PROPERTIES TIMEOUT 1200 LABELS embed RUN_SERIAL ON)
endif()
