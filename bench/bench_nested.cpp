// Nested SVM engine throughput: the L1 VMRUN -> L2 VMMCALL -> #VMEXIT to L1
// round trip, a failed VMRUN, MSR-exit routing through the merged MSRPM and a
// nested page walk. Target (issue 5): >= 2 M round trips/s per core, judged
// by scripts/bench.sh from items_per_second (CPU time, one thread).
//
// Every loop checks the outcome it measures and stops with an error when it
// differs, so a figure can never come from a path that went elsewhere (a
// VMRUN that silently fails is much faster than one that enters L2).
#include <benchmark/benchmark.h>

#include <memory>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/cpu/npt.hpp"
#include "nsvm/nested/vcpu.hpp"
#include "support/nested_machine.hpp"
#include "support/valid_vmcb.hpp"

using namespace nsvm;

namespace {

/// The nested test machine (tests/support/nested_machine.hpp: KVM's default
/// L0 running one L1, the default CPU model, the kvm profile) with `vmcb12`
/// written, or null when its guest memory could not be set up. On the heap:
/// it holds several VMCBs and permission maps.
std::unique_ptr<test_support::NestedMachine> machine_with(const arch::Vmcb& vmcb12) {
    auto m = std::make_unique<test_support::NestedMachine>();
    if (!m->backed || !m->put_vmcb12(vmcb12)) return nullptr;
    return m;
}

/// L1 VMRUN, L2 VMMCALL (L1 intercepts it), #VMEXIT to L1: one item.
void round_trips(benchmark::State& state, const arch::Vmcb& vmcb12) {
    const auto m = machine_with(vmcb12);
    if (!m) return state.SkipWithError("guest memory setup failed");
    const cpu::Event vmmcall{.kind = cpu::EventKind::vmmcall};
    for (auto _ : state) {
        const auto in = m->vcpu.l1_vmrun();
        const auto out = m->vcpu.l2_event(vmmcall);
        if (in.outcome != nested::Outcome::entered_l2 || out.outcome != nested::Outcome::vmexit_to_l1) {
            state.SkipWithError("round trip did not enter L2 and exit to L1");
            break;
        }
        benchmark::DoNotOptimize(out);
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_NestedRoundTrip(benchmark::State& state) { round_trips(state, test_support::valid_vmcb64()); }
BENCHMARK(BM_NestedRoundTrip);

// The same round trip with MSR_PROT set, as every real L1 (KVM, Xen, Hyper-V)
// sets it: each VMRUN also merges L1's MSRPM with L0's (KVM's
// nested_svm_merge_msrpm; APM 15.11).
void BM_NestedRoundTripMsrProt(benchmark::State& state) {
    auto v = test_support::valid_vmcb64();
    v.set_intercept(arch::intercept::MSR_PROT);
    round_trips(state, v);
}
BENCHMARK(BM_NestedRoundTripMsrProt);

void BM_NestedFailedVmrun(benchmark::State& state) {
    auto v = test_support::valid_vmcb64();
    // ASID 0: the failure the peers' timing loop uses too (oracle/timing.hpp),
    // so the two figures time the same check.
    v.set(arch::FieldId::asid, 0);
    const auto m = machine_with(v);
    if (!m) return state.SkipWithError("guest memory setup failed");
    for (auto _ : state) {
        const auto r = m->vcpu.l1_vmrun();
        if (r.outcome != nested::Outcome::vmrun_failed) {
            state.SkipWithError("VMRUN did not fail");
            break;
        }
        benchmark::DoNotOptimize(r);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NestedFailedVmrun);

// L1 sets MSR_PROT with an all-zero MSRPM, so vmcb02 uses the merged map and
// every RDMSR in L2 is decided by it: EFER is L0's (handled by L0, L2 goes
// on), FS_BASE is passed through by both (no exit). One item = one decision.
void BM_NestedMsrRouting(benchmark::State& state) {
    auto v = test_support::valid_vmcb64();
    v.set_intercept(arch::intercept::MSR_PROT);
    const auto m = machine_with(v);
    if (!m) return state.SkipWithError("guest memory setup failed");
    if (m->vcpu.l1_vmrun().outcome != nested::Outcome::entered_l2) return state.SkipWithError("VMRUN failed");
    const cpu::Event to_l0{.kind = cpu::EventKind::rdmsr, .index = arch::msr::EFER};
    const cpu::Event through{.kind = cpu::EventKind::rdmsr, .index = arch::msr::FS_BASE};
    for (auto _ : state) {
        const auto a = m->vcpu.l2_event(to_l0);
        const auto b = m->vcpu.l2_event(through);
        if (a.outcome != nested::Outcome::handled_by_l0 || b.outcome != nested::Outcome::no_exit) {
            state.SkipWithError("MSR routing went elsewhere");
            break;
        }
        benchmark::DoNotOptimize(b);
    }
    state.SetItemsProcessed(2 * state.iterations());
}
BENCHMARK(BM_NestedMsrRouting);

// A full 4-level walk to a 4 KiB page (PML4 -> PDPT -> PD -> PT), read access.
void BM_NestedPageWalk(benchmark::State& state) {
    cpu::GuestMemory mem(48);
    constexpr std::uint64_t ncr3 = 0x10000, gpa = 0x5123;
    const bool ok = mem.map(ncr3, 0x4000) && mem.write_u64(ncr3, 0x11007) && mem.write_u64(0x11000, 0x12007) &&
                    mem.write_u64(0x12000, 0x13007) && mem.write_u64(0x13000 + 8 * 5, 0x7000007);
    if (!ok) return state.SkipWithError("table setup failed");
    for (auto _ : state) {
        const auto r = cpu::npt_walk(mem, ncr3, gpa, {}, cpu::NestedPagingMode{.nxe = true});
        if (!r.ok || r.hpa != 0x7000123) {
            state.SkipWithError("walk did not translate");
            break;
        }
        benchmark::DoNotOptimize(r);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NestedPageWalk);

}  // namespace
