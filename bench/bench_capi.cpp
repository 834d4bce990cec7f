// The C API's fast verdict against the C++ call it wraps: the handle
// indirection, the NULL checks and the Context built per call must cost
// little (target: the C API within 2x of checks::vmrun_would_succeed).
// Same VMCB, CPU model and profile on both sides.
#include <benchmark/benchmark.h>

#include "nsvm/checks/evaluate.hpp"
#include "nsvm/nsvm.h"
#include "support/valid_vmcb.hpp"

using namespace nsvm;

namespace {

/// A C API VMCB and checker for the valid guest (apm profile, default model).
struct CHandles {
    nsvm_vmcb* vmcb = nullptr;
    nsvm_checker* checker = nullptr;
    CHandles() {
        const auto v = test_support::valid_vmcb64();
        if (nsvm_vmcb_read(v.page().data(), v.page().size(), NSVM_FORMAT_RAW, "bench", &vmcb) != NSVM_OK ||
            nsvm_checker_new(nullptr, "apm", &checker) != NSVM_OK)
            std::abort();
    }
    ~CHandles() {
        nsvm_vmcb_free(vmcb);
        nsvm_checker_free(checker);
    }
    CHandles(const CHandles&) = delete;
    CHandles& operator=(const CHandles&) = delete;
};

void BM_CApiVerdictValid(benchmark::State& state) {
    const CHandles h;
    for (auto _ : state) benchmark::DoNotOptimize(nsvm_vmrun_would_succeed(h.checker, h.vmcb));
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CApiVerdictValid);

/// The C++ call as an embedder makes it: Context built per call.
void BM_CxxVerdictValidPerCall(benchmark::State& state) {
    const auto v = test_support::valid_vmcb64();
    const auto& cpu = checks::default_model();
    const auto& profile = checks::profile(checks::ProfileId::apm);
    for (auto _ : state) {
        benchmark::DoNotOptimize(&v);
        const checks::Context ctx{v, cpu, profile, nullptr, nullptr};
        benchmark::DoNotOptimize(checks::vmrun_would_succeed(ctx));
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CxxVerdictValidPerCall);

}  // namespace
