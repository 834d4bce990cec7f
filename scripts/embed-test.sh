#!/usr/bin/env bash
# nsvm as others build on it: installs the build into a temporary prefix
# (cmake --install BUILD --prefix TMP) and builds and runs, out of tree,
# every example of examples/embed:
#   C (pkg-config)          gcc and clang-14, shared and static libnsvm
#   C++ (find_package)      g++ and clang++-14, C++20 and C++23, + static
#   Python                  the installed module
#   libFuzzer harness       clang-14 -fsanitize=fuzzer, run for a few seconds
#
#   scripts/embed-test.sh [BUILD_DIR]      (default: build)
# Environment: NSVM_EMBED_FUZZ_SECONDS (default 5), NSVM_EMBED_KEEP=1 keeps
# the temporary directory, CMAKE_GENERATOR as usual.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
fuzz_seconds=${NSVM_EMBED_FUZZ_SECONDS:-5}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsvm-embed.XXXXXX")
if [[ "${NSVM_EMBED_KEEP:-0}" != 1 ]]; then trap 'rm -rf "$tmp"' EXIT; fi
prefix=$tmp/prefix
invalid=$src/examples/kvm-dump-invalid.txt
valid=$src/examples/valid-vmcb.json
failures=0

step() { printf '== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
bad() { printf '   FAILED: %s\n' "$*"; failures=$((failures + 1)); }

# Runs an example on the valid and the invalid VMCB: exit 0 and "succeed"
# on the first, exit 1 and a repair that ends in "succeed" on the second.
check_example() {
  local name=$1; shift
  local out status
  if out=$("$@" "$valid" 2>&1) && grep -q "VMRUN would succeed" <<<"$out"; then :; else
    bad "$name on a valid VMCB"; printf '%s\n' "$out"; return
  fi
  set +e; out=$("$@" "$invalid" zen4 kvm 2>&1); status=$?; set -e
  if [[ $status == 1 ]] && grep -q "repair: " <<<"$out" && grep -Eq "repaired: .*(succeed|entered_l2)" <<<"$out"; then
    ok "$name"
  else
    bad "$name on an invalid VMCB (exit $status)"; printf '%s\n' "$out"
  fi
}

step "install into $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"
version=$("$prefix/bin/nsvm" --version)
expected=$(sed -n 's/^set(PACKAGE_VERSION "\(.*\)")$/\1/p' "$prefix/lib/cmake/nsvm/nsvmConfigVersion.cmake")
[[ "$version" == "nsvm $expected" ]] && ok "$version" || bad "installed CLI says '$version', the package $expected"
for f in include/nsvm/nsvm.h include/nsvm/version.h lib/libnsvm.a lib/pkgconfig/nsvm.pc \
         lib/cmake/nsvm/nsvmConfig.cmake lib/cmake/nsvm/nsvmConfigVersion.cmake; do
  [[ -e "$prefix/$f" ]] || bad "not installed: $f"
done
ls "$prefix"/lib/libnsvm.so* >/dev/null 2>&1 || bad "not installed: lib/libnsvm.so"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig

step "C with pkg-config ($(pkg-config --modversion nsvm))"
for cc in gcc clang-14; do
  mkdir -p "$tmp/c-$cc" && cp "$src"/examples/embed/c/* "$tmp/c-$cc/"
  if make -s -C "$tmp/c-$cc" CC="$cc" check >"$tmp/c-$cc.log" 2>&1; then
    check_example "C, $cc, libnsvm.so" "$tmp/c-$cc/check"
  else bad "C build with $cc"; cat "$tmp/c-$cc.log"; fi
done
if make -s -C "$tmp/c-gcc" CC=gcc check-static >"$tmp/c-static.log" 2>&1; then
  check_example "C, gcc, libnsvm.a" "$tmp/c-gcc/check-static"
else bad "C static build"; cat "$tmp/c-static.log"; fi

step "C++ with find_package(nsvm)"
for cxx in g++ clang++-14; do
  for std in 20 23; do
    dir=$tmp/cpp-$cxx-$std
    if cmake -S "$src/examples/embed/cpp" -B "$dir" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$cxx" \
         -DCMAKE_CXX_STANDARD="$std" -DCMAKE_BUILD_TYPE=Release >"$dir.log" 2>&1 &&
       cmake --build "$dir" >>"$dir.log" 2>&1; then
      check_example "C++$std, $cxx, nsvm::nsvm" "$dir/check_repair"
    else bad "C++$std build with $cxx"; tail -30 "$dir.log"; fi
  done
done
dir=$tmp/cpp-static
if cmake -S "$src/examples/embed/cpp" -B "$dir" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER=clang++-14 \
     -DCMAKE_CXX_STANDARD=20 -DNSVM_EXAMPLE_STATIC=ON >"$dir.log" 2>&1 && cmake --build "$dir" >>"$dir.log" 2>&1; then
  check_example "C++20, clang++-14, nsvm::nsvm_static" "$dir/check_repair"
else bad "C++ static build"; tail -30 "$dir.log"; fi

step "Python"
module=$(find "$prefix" -name 'nsvm*.so' -path '*-packages*' | head -1)
if [[ -z "$module" ]]; then
  bad "the Python module is not installed"
else
  python=python3
  python3 -c 'import sys' 2>/dev/null || python=/usr/bin/python3
  check_example "Python ($(dirname "${module#"$prefix"/}"))" \
    env PYTHONPATH="$(dirname "$module")" "$python" "$src/examples/embed/python/check_and_repair.py"
fi

step "libFuzzer harness (clang-14, ${fuzz_seconds}s)"
mkdir -p "$tmp/fuzz/corpus" && cp "$src"/examples/embed/fuzz/* "$tmp/fuzz/"
if make -s -C "$tmp/fuzz" fuzz_repair >"$tmp/fuzz.log" 2>&1; then
  if (cd "$tmp/fuzz" && ./fuzz_repair -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 corpus) >"$tmp/fuzz-run.log" 2>&1; then
    ok "fuzz_repair: $(grep -o 'Done [0-9]* runs[^$]*' "$tmp/fuzz-run.log" | head -1)"
  else bad "fuzz_repair found a problem"; tail -40 "$tmp/fuzz-run.log"; fi
else bad "fuzzer build"; cat "$tmp/fuzz.log"; fi

if ((failures)); then
  echo "embed-test: $failures failure(s)"
  exit 1
fi
echo "embed-test: every example built and ran"
