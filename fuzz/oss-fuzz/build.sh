#!/bin/bash -eu
# Builds every fuzz target (fuzz/fuzz_*.cpp) the way OSS-Fuzz and
# ClusterFuzzLite build a project: with the compilers and flags they give in
# $CC, $CXX, $CFLAGS, $CXXFLAGS (sanitizers and coverage instrumentation
# included), linked with the fuzzing engine in $LIB_FUZZING_ENGINE, into $OUT.
# No CMake preset is assumed: CMake builds libnsvm.a with exactly those
# flags, and each target is compiled and linked here. Next to each target go
# its seed corpus (<target>_seed_corpus.zip, from fuzz/corpus/) and its
# options (<target>.options: the input size the targets are tuned for).
#
#   CC=clang CXX=clang++ CFLAGS="-fsanitize=address,fuzzer-no-link" CXXFLAGS="$CFLAGS" \
#   LIB_FUZZING_ENGINE=-fsanitize=fuzzer OUT=/tmp/out fuzz/oss-fuzz/build.sh
#
# $WORK (scratch, default a directory under $OUT's parent) holds the CMake
# build; NSVM_BUILD_JOBS (default: the cores) its parallelism.
src=$(cd "$(dirname "$0")/../.." && pwd)
: "${CC:?set by the fuzzing infrastructure}" "${CXX:?}" "${LIB_FUZZING_ENGINE:?}" "${OUT:?}"
CFLAGS=${CFLAGS:-}
CXXFLAGS=${CXXFLAGS:-}
work=${WORK:-$(dirname "$OUT")/nsvm-oss-fuzz-work}
build=$work/nsvm-build
jobs=${NSVM_BUILD_JOBS:-$(nproc)}
mkdir -p "$OUT" "$build"

# The library only: no tests, benchmarks, Python module or CLI.
# No CMAKE_BUILD_TYPE: its -O flags would come after $CFLAGS and override the
# infrastructure's choice.
cmake -S "$src" -B "$build" \
  -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_C_FLAGS="$CFLAGS" -DCMAKE_CXX_FLAGS="$CXXFLAGS" \
  -DNSVM_BUILD_TESTS=OFF -DNSVM_BUILD_BENCH=OFF -DNSVM_BUILD_PYTHON=OFF -DNSVM_BUILD_FUZZ=OFF > "$build/configure.log"
cmake --build "$build" --target nsvm_static -j "$jobs"

for target_src in "$src"/fuzz/fuzz_*.cpp; do
  name=$(basename "$target_src" .cpp)
  # -std=c++2b: C++23 as the project builds it; tests/ for the nested test
  # machine fuzz_nested drives; the engine comes last, as OSS-Fuzz links it.
  $CXX $CXXFLAGS -std=c++2b -I "$src/include" -I "$build/include" -I "$src/tests" -I "$src/fuzz" \
    -c "$target_src" -o "$build/$name.o"
  $CXX $CXXFLAGS "$build/$name.o" -o "$OUT/$name" "$build/libnsvm.a" -lyaml-cpp -lfmt -pthread $LIB_FUZZING_ENGINE
  corpus=$src/fuzz/corpus/${name#fuzz_}
  if [[ -d "$corpus" ]] && command -v zip > /dev/null; then
    rm -f "$OUT/${name}_seed_corpus.zip"
    (cd "$corpus" && zip -q -r "$OUT/${name}_seed_corpus.zip" .)
  fi
  printf '[libfuzzer]\nmax_len = 16384\n' > "$OUT/$name.options"
  echo "built $OUT/$name"
done
