// Check throughput: verdict only and full report, on valid and invalid
// VMCBs; dump parsing speed. Target (issue 5): >= 20 M verdicts/s per core,
// judged by scripts/bench.sh from items_per_second (CPU time, one thread).
#include <benchmark/benchmark.h>

#include <fstream>
#include <iterator>
#include <string>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/checks/evaluate.hpp"
#include "nsvm/formats/vmcb_io.hpp"
#include "support/valid_vmcb.hpp"

using namespace nsvm;

namespace {

// The same valid guest the tests use (tests/support), so the figure is for
// the VMCB the suite proves valid under every profile.
arch::Vmcb valid_guest() { return test_support::valid_vmcb64(); }

arch::Vmcb invalid_guest() {
    auto v = valid_guest();
    v.set(arch::FieldId::efer, 0x0D00);        // SVME clear
    v.set(arch::FieldId::cr0, 0x20050033);     // NW without CD, PG clear
    v.set(arch::FieldId::asid, 0);
    return v;
}

void BM_VerdictValid(benchmark::State& state) {
    const auto v = valid_guest();
    const checks::Context ctx{v, checks::default_model(), checks::profile(checks::ProfileId::apm)};
    for (auto _ : state) benchmark::DoNotOptimize(checks::vmrun_would_succeed(ctx));
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerdictValid);

void BM_VerdictInvalid(benchmark::State& state) {
    const auto v = invalid_guest();
    const checks::Context ctx{v, checks::default_model(), checks::profile(checks::ProfileId::apm)};
    for (auto _ : state) benchmark::DoNotOptimize(checks::vmrun_would_succeed(ctx));
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerdictInvalid);

void BM_FullReportValid(benchmark::State& state) {
    const auto v = valid_guest();
    const checks::Context ctx{v, checks::default_model(), checks::profile(checks::ProfileId::apm)};
    for (auto _ : state) benchmark::DoNotOptimize(checks::evaluate(ctx));
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FullReportValid);

void BM_FullReportInvalid(benchmark::State& state) {
    const auto v = invalid_guest();
    const checks::Context ctx{v, checks::default_model(), checks::profile(checks::ProfileId::apm)};
    for (auto _ : state) benchmark::DoNotOptimize(checks::evaluate(ctx));
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FullReportInvalid);

void BM_ParseKvmDump(benchmark::State& state) {
    // A dump as dump_vmcb() prints it: rendered from the valid guest via the
    // reader's own fixture is not available here, so we build the text.
    std::string text =
        "kvm_amd: VMCB Control Area:\n"
        "kvm_amd: cr_read:            0013\nkvm_amd: cr_write:           0013\n"
        "kvm_amd: dr_read:            ffff\nkvm_amd: dr_write:           ffff\n"
        "kvm_amd: exceptions:         00060042\n"
        "kvm_amd: intercepts:         bfc7f7ff 0000ffff\n"
        "kvm_amd: pause filter count: 3000\nkvm_amd: pause filter threshold:128\n"
        "kvm_amd: iopm_base_pa:       0000000101bb0000\nkvm_amd: msrpm_base_pa:      0000000101bbc000\n"
        "kvm_amd: tsc_offset:         fffffe4bd51b8f3f\nkvm_amd: asid:               1\n"
        "kvm_amd: tlb_ctl:            0\nkvm_amd: int_ctl:            01000000\n"
        "kvm_amd: int_vector:         00000000\nkvm_amd: int_state:          00000000\n"
        "kvm_amd: exit_code:          ffffffff\nkvm_amd: exit_info1:         0000000000000000\n"
        "kvm_amd: exit_info2:         0000000000000000\nkvm_amd: exit_int_info:      00000000\n"
        "kvm_amd: exit_int_info_err:  00000000\nkvm_amd: nested_ctl:         1\n"
        "kvm_amd: nested_cr3:         0000000103cf2000\nkvm_amd: avic_vapic_bar:     0000000000000000\n"
        "kvm_amd: ghcb:               0000000000000000\nkvm_amd: event_inj:          00000000\n"
        "kvm_amd: event_inj_err:      00000000\nkvm_amd: virt_ext:           1\n"
        "kvm_amd: next_rip:           0000000000000000\nkvm_amd: avic_backing_page:  0000000000000000\n"
        "kvm_amd: avic_logical_id:    0000000000000000\nkvm_amd: avic_physical_id:   0000000000000000\n"
        "kvm_amd: vmsa_pa:            0000000000000000\n"
        "kvm_amd: VMCB State Save Area:\n"
        "kvm_amd: es:   s: 0010 a: 0093 l: ffffffff b: 0000000000000000\n"
        "kvm_amd: cs:   s: 0008 a: 029b l: ffffffff b: 0000000000000000\n"
        "kvm_amd: ss:   s: 0010 a: 0093 l: ffffffff b: 0000000000000000\n"
        "kvm_amd: ds:   s: 0010 a: 0093 l: ffffffff b: 0000000000000000\n"
        "kvm_amd: fs:   s: 0000 a: 0000 l: ffffffff b: 0000000000000000\n"
        "kvm_amd: gs:   s: 0000 a: 0000 l: ffffffff b: ffff888237c00000\n"
        "kvm_amd: gdtr: s: 0000 a: 0000 l: 0000007f b: fffffe0000001000\n"
        "kvm_amd: ldtr: s: 0000 a: 0082 l: 0000ffff b: 0000000000000000\n"
        "kvm_amd: idtr: s: 0000 a: 0000 l: 00000fff b: fffffe0000000000\n"
        "kvm_amd: tr:   s: 0040 a: 008b l: 00004087 b: fffffe0000003000\n"
        "kvm_amd: cpl:            0                efer:         0000000000001d01\n"
        "kvm_amd: cr0:            0000000080050033 cr2:          0000000000000000\n"
        "kvm_amd: cr3:            000000010bc10000 cr4:          0000000000350ef0\n"
        "kvm_amd: dr6:            00000000ffff0ff0 dr7:          0000000000000400\n"
        "kvm_amd: rip:            ffffffff81c0a7ee rflags:       0000000000000246\n"
        "kvm_amd: rsp:            ffffffff82803e48 rax:          0000000000000000\n"
        "kvm_amd: star:           0023001000000000 lstar:        ffffffff81e00080\n"
        "kvm_amd: cstar:          ffffffff81e01660 sfmask:       0000000000257fd5\n"
        "kvm_amd: kernel_gs_base: 0000000000000000 sysenter_cs:  0000000000000010\n"
        "kvm_amd: sysenter_esp:   fffffe0000003000 sysenter_eip: ffffffff81e01890\n"
        "kvm_amd: gpat:           0007040600070406 dbgctl:       0000000000000000\n"
        "kvm_amd: br_from:        0000000000000000 br_to:        0000000000000000\n"
        "kvm_amd: excp_from:      0000000000000000 excp_to:      0000000000000000\n";
    const auto bytes = std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
    for (auto _ : state) {
        auto r = formats::read_vmcb(bytes, formats::Format::kvm_dump, "bench");
        if (!r) {
            state.SkipWithError("dump did not parse");
            break;
        }
        benchmark::DoNotOptimize(r);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_ParseKvmDump);

// A bundled example file, parsed in the format it is in; bytes/s is the figure.
void parse_example(benchmark::State& state, const char* name, formats::Format format) {
    std::ifstream in(std::string(NSVM_SOURCE_DIR) + "/examples/" + name, std::ios::binary);
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (text.empty()) {
        state.SkipWithError("example file missing");
        return;
    }
    const auto bytes = std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
    for (auto _ : state) {
        auto r = formats::read_vmcb(bytes, format, "bench");
        if (!r) {
            state.SkipWithError("example did not parse");
            break;
        }
        benchmark::DoNotOptimize(r);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
void BM_ParseXenDump(benchmark::State& state) { parse_example(state, "xen-dump.txt", formats::Format::xen_dump); }
BENCHMARK(BM_ParseXenDump);
void BM_ParseJson(benchmark::State& state) { parse_example(state, "valid-vmcb.json", formats::Format::json); }
BENCHMARK(BM_ParseJson);

}  // namespace

BENCHMARK_MAIN();
