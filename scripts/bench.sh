#!/usr/bin/env bash
# make bench: runs nsvm_bench, the no-allocation test and the peer timings
# (`nsvm oracle timing` on QEMU TCG and Bochs), then prints one table: each
# issue-5 target with the figure measured now and met / NOT met, the other
# figures, and nsvm's speed against the peers measured in the same run.
#
#   scripts/bench.sh [BENCH_DIR [TOOLS_DIR]]     (defaults: build, BENCH_DIR)
#
# BENCH_DIR holds nsvm_bench (make bench: build-bench, the `bench` preset:
# -O3 with link-time optimization); TOOLS_DIR the allocation test
# (nsvm_nested_tests) and the CLI for the peers' timing (the default build).
# The table names the build nsvm_bench came from.
#
# Environment: NSVM_BENCH_REPETITIONS (default 3; the median is reported, as
# the machine is shared and single runs are noisy), NSVM_PEER_TIMEOUT
# (seconds per emulator, default 900), NSVM_SKIP_PEERS=1 to skip the
# emulators. Exit status 1 when a target is not met; a peer that cannot run
# is reported as unavailable, with the reason, and never fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
tools=${2:-$build}
bench="$build/nsvm_bench"
nsvm="$tools/nsvm"
nested_tests="$tools/nsvm_nested_tests"
# How nsvm_bench was built, from its CMake cache (printed with the figures).
cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" 2>/dev/null | head -1; }
build_kind="$(cache_value CMAKE_BUILD_TYPE)"
[[ "$(cache_value CMAKE_INTERPROCEDURAL_OPTIMIZATION)" == ON ]] && build_kind="$build_kind, link-time optimization"
export NSVM_BENCH_BUILD="${build_kind:-unknown} ($build)"
reps=${NSVM_BENCH_REPETITIONS:-3}
peer_timeout=${NSVM_PEER_TIMEOUT:-900}

if [[ ! -x "$bench" ]]; then
  echo "bench: $bench is not built (is libbenchmark-dev installed? run ./scripts/install-deps.sh)" >&2
  exit 2
fi
command -v python3 > /dev/null || { echo "bench: python3 is missing (./scripts/install-deps.sh)" >&2; exit 2; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "bench: $bench (${reps} repetitions, median)"
"$bench" --benchmark_format=json --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
  > "$out/bench.json"

# The allocation target is a property, proved by the counting-allocator test.
alloc_status="missing"
if [[ -x "$nested_tests" ]]; then
  if "$nested_tests" --gtest_filter='NoAllocation.*' --gtest_brief=1 > "$out/alloc.log" 2>&1; then
    alloc_status="pass"
  else
    alloc_status="fail"
    cat "$out/alloc.log" >&2
  fi
fi

# Peers: one JSON object on stdout and exit 0, or a reason on stderr.
for backend in qemu bochs; do
  reason=""
  if [[ "${NSVM_SKIP_PEERS:-0}" == 1 ]]; then
    reason="skipped (NSVM_SKIP_PEERS=1)"
  elif [[ ! -x "$nsvm" ]]; then
    reason="$nsvm is not built"
  else
    echo "bench: $nsvm oracle timing --backend $backend --json (up to ${peer_timeout}s)"
    rc=0
    timeout "$peer_timeout" "$nsvm" oracle timing --backend "$backend" --json \
      > "$out/$backend.json" 2> "$out/$backend.err" || rc=$?
    if ((rc == 124)); then
      reason="timed out after ${peer_timeout}s"
    elif ((rc != 0)); then
      reason=$(grep -v '^[[:space:]]*$' "$out/$backend.err" | tail -1 || true)
      reason="exit status $rc${reason:+: $reason}"
    fi
  fi
  if [[ -n "$reason" ]]; then
    printf '%s' "$reason" > "$out/$backend.reason"
    rm -f "$out/$backend.json"
  fi
done

python3 - "$out" "$alloc_status" <<'PY'
import json, math, os, sys

out, alloc_status = sys.argv[1], sys.argv[2]
NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

with open(os.path.join(out, "bench.json")) as f:
    doc = json.load(f)
ctx = doc.get("context", {})
runs = {}
for b in doc.get("benchmarks", []):
    name = b.get("run_name", b["name"])
    # Prefer the median of the repetitions; fall back to a single run.
    if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
        continue
    if b.get("run_type") == "aggregate" or name not in runs:
        runs[name] = b

def rate(name, key="items_per_second"):
    b = runs.get(name)
    if b is None or b.get("error_occurred"):
        return None, (b or {}).get("error_message", "not run")
    v = b.get(key)
    return (float(v), "") if v else (None, f"{key} missing")

def ns_per_item(name):
    # items_per_second is a rate over CPU time, so this is CPU ns per item.
    v, _ = rate(name)
    return 1e9 / v if v else None

def human(v, unit):
    if v is None:
        return "n/a"
    for f, p in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= f:
            return f"{v / f:.2f} {p}{unit}"
    return f"{v:.1f} {unit}"

failed = False
rows = []
def target(label, name, minimum, unit="/s"):
    global failed
    v, why = rate(name)
    ok = v is not None and v >= minimum
    failed |= not ok
    rows.append((label, human(v, unit) if v is not None else f"not measured: {why}",
                 ">= " + human(minimum, unit), "met" if ok else "NOT met"))

def info(label, name, key="items_per_second", unit="/s"):
    v, why = rate(name, key)
    if key == "bytes_per_second" and v is not None:
        rows.append((label, f"{v / 1e6:.1f} MB/s", "-", ""))
    else:
        rows.append((label, human(v, unit) if v is not None else f"not measured: {why}", "-", ""))

target("check verdicts/s, valid VMCB (BM_VerdictValid)", "BM_VerdictValid", 20e6)
target("check verdicts/s, invalid VMCB (BM_VerdictInvalid)", "BM_VerdictInvalid", 20e6)
target("nested round trips/s (BM_NestedRoundTrip)", "BM_NestedRoundTrip", 2e6)
# Issue 13: a verdict through the C API within 2x of the C++ call, both
# measured in this run (docs/library.md "Fast verdict: C API against C++").
capi_ns, cxx_ns = ns_per_item("BM_CApiVerdictValid"), ns_per_item("BM_CxxVerdictValidPerCall")
info("check verdicts/s through the C API (BM_CApiVerdictValid)", "BM_CApiVerdictValid")
info("check verdicts/s, C++ with the Context per call (BM_CxxVerdictValidPerCall)", "BM_CxxVerdictValidPerCall")
capi_ok = capi_ns is not None and cxx_ns is not None and capi_ns <= 2 * cxx_ns
failed |= not capi_ok
rows.append(("C API verdict time over the C++ call's", f"{capi_ns / cxx_ns:.2f}x" if capi_ns and cxx_ns
             else "not measured", "<= 2x", "met" if capi_ok else "NOT met"))
# Issue 9 (one processor) bounds the round trip at 250 ns per core.
rt_ns = ns_per_item("BM_NestedRoundTrip")
rt_ok = rt_ns is not None and rt_ns <= 250
failed |= not rt_ok
rows.append(("nested round trip time (BM_NestedRoundTrip)", f"{rt_ns:.0f} ns" if rt_ns else "not measured",
             "<= 250 ns", "met" if rt_ok else "NOT met"))
alloc_ok = alloc_status == "pass"
failed |= not alloc_ok
rows.append(("heap allocations on VMRUN/#VMEXIT (NoAllocation.*)",
             {"pass": "0", "fail": "> 0 (test failed)", "missing": "not measured: nsvm_nested_tests not built"}[alloc_status],
             "0", "met" if alloc_ok else "NOT met"))
info("full reports/s, valid VMCB", "BM_FullReportValid")
info("full reports/s, invalid VMCB", "BM_FullReportInvalid")
info("nested round trips/s with MSR_PROT (MSRPM merge)", "BM_NestedRoundTripMsrProt")
info("failed nested VMRUNs/s", "BM_NestedFailedVmrun")
info("MSR exits routed via merged MSRPM/s", "BM_NestedMsrRouting")
info("nested page walks/s (4 levels, 4 KiB)", "BM_NestedPageWalk")
info("KVM dump_vmcb() parsing", "BM_ParseKvmDump", "bytes_per_second")
info("Xen svm_vmcb_dump() parsing", "BM_ParseXenDump", "bytes_per_second")
info("JSON VMCB parsing", "BM_ParseJson", "bytes_per_second")

w = [max(len(r[i]) for r in rows + [("figure", "measured", "target", "verdict")]) for i in range(4)]
print()
print(f"nsvm_bench on {ctx.get('host_name', '?')}: {ctx.get('num_cpus', '?')} CPUs at "
      f"{ctx.get('mhz_per_cpu', '?')} MHz, nsvm built {os.environ.get('NSVM_BENCH_BUILD', '?')}, "
      f"figures per core (CPU time, one thread)")
fmt = f"  {{:<{w[0]}}}  {{:>{w[1]}}}  {{:>{w[2]}}}  {{}}"
print(fmt.format("figure", "measured", "target", "verdict"))
for r in rows:
    print(fmt.format(*r))

nsvm_rt, nsvm_fail = ns_per_item("BM_NestedRoundTrip"), ns_per_item("BM_NestedFailedVmrun")
print()
print("Peers (oracle test image timing loops, same run):")
names = {"qemu": "QEMU TCG", "bochs": "Bochs"}
for backend in ("qemu", "bochs"):
    label = names[backend]
    reason_file = os.path.join(out, backend + ".reason")
    if os.path.exists(reason_file):
        print(f"  {label}: peer figure unavailable: {open(reason_file).read().strip()}")
        continue
    try:
        with open(os.path.join(out, backend + ".json")) as f:
            peer = json.load(f)
        rt, fv = float(peer["roundtrip_ns"]), float(peer["failed_vmrun_ns"])
        n = int(peer["iterations"])
        if peer.get("backend") != backend or not (rt > 0 and fv > 0 and math.isfinite(rt) and math.isfinite(fv)):
            raise ValueError("implausible figures")
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"  {label}: peer figure unavailable: unreadable timing output ({e})")
        continue
    def ratio(peer_ns, own_ns):
        return f"nsvm {peer_ns / own_ns:.1f}x faster" if own_ns else "nsvm figure missing"
    print(f"  {label} ({n} iterations): round trip {rt:.0f} ns vs nsvm {nsvm_rt or float('nan'):.0f} ns "
          f"({ratio(rt, nsvm_rt)}); failed VMRUN {fv:.0f} ns vs nsvm {nsvm_fail or float('nan'):.0f} ns "
          f"({ratio(fv, nsvm_fail)})")

sys.exit(1 if failed else 0)
PY
