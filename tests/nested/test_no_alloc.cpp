// The VMRUN / #VMEXIT / routing paths allocate nothing: a counting global
// operator new, armed only around the calls under test. Covered: a VMRUN that
// enters L2, MSR and I/O exits L0 handles, an exit reflected to L1 as a
// #VMEXIT, a failed VMRUN (#VMEXIT(INVALID) through fail_vmrun), and the
// steady-state round trip nsvm_bench measures. Also: the per-vCPU footprint
// docs/performance.md states is the code's.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <new>
#include <regex>
#include <string>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/nested/vcpu.hpp"
#include "support/nested_machine.hpp"
#include "support/valid_vmcb.hpp"

namespace {
std::atomic<bool> g_armed{false};
std::atomic<std::size_t> g_allocs{0};

void* counted_alloc(std::size_t n, std::size_t align) {
    if (g_armed.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
    n = n ? n : 1;
    void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align)
                                                : std::malloc(n);
    if (!p) throw std::bad_alloc();
    return p;
}
}  // namespace

// Every allocating form ends up here: new[] and the nothrow forms call these
// in libstdc++, but the over-aligned forms do not, so they are replaced too.
void* operator new(std::size_t n) { return counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_alloc(n, static_cast<std::size_t>(a)); }
// The replacement pair is malloc/free on both sides, which g++ cannot see.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

using namespace nsvm;
using arch::FieldId;
namespace ec = arch::exit_code;

namespace {
using test_support::kVmcb12;

/// The nested test machine; the Vcpu exists before the counter is armed.
struct Machine : test_support::NestedMachine {
    Machine() { EXPECT_TRUE(backed); }
    std::uint64_t vmcb12_exit_code() {
        arch::Vmcb v;
        EXPECT_TRUE(peek_vmcb12(v));
        return v.get(FieldId::exit_code);
    }
};
}  // namespace

TEST(NoAllocation, VmrunVmexitRoutingAndFailurePath) {
    Machine m;
    auto v = test_support::valid_vmcb64();
    v.set_intercept(arch::intercept::MSR_PROT);
    v.set_intercept(arch::intercept::IOIO_PROT);
    v.set_intercept(arch::intercept::CPUID);
    ASSERT_TRUE(m.mem.write_vmcb(kVmcb12, v));

    g_allocs = 0;
    g_armed = true;
    const auto r1 = m.vcpu.l1_vmrun();
    const auto r2 = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::rdmsr, .index = arch::msr::EFER});
    const auto r3 = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::io, .index = 0x80});
    const auto r4 = m.vcpu.l1_vmrun();
    const auto r5 = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cpuid});
    g_armed = false;
    EXPECT_EQ(r1.outcome, nested::Outcome::entered_l2);
    EXPECT_EQ(r2.outcome, nested::Outcome::handled_by_l0);
    EXPECT_EQ(r3.outcome, nested::Outcome::handled_by_l0);  // L1's IOPM is all zero
    EXPECT_EQ(r4.outcome, nested::Outcome::exception);      // L1 is not running while L2 does
    EXPECT_EQ(r5.outcome, nested::Outcome::vmexit_to_l1);
    EXPECT_EQ(r5.exit_code, ec::CPUID);
    EXPECT_EQ(m.vmcb12_exit_code(), ec::CPUID);  // the #VMEXIT really reached vmcb12
    EXPECT_EQ(g_allocs.load(), 0U);

    v.set(FieldId::cr0, 0xA0050033);  // NW without CD
    ASSERT_TRUE(m.mem.write_vmcb(kVmcb12, v));
    g_allocs = 0;
    g_armed = true;
    const auto r6 = m.vcpu.l1_vmrun();
    g_armed = false;
    EXPECT_EQ(r6.outcome, nested::Outcome::vmrun_failed);
    EXPECT_EQ(m.vmcb12_exit_code(), ec::INVALID);
    EXPECT_FALSE(m.vcpu.gif());
    EXPECT_EQ(g_allocs.load(), 0U);
}

// The loop BM_NestedRoundTrip times, many times over: nothing allocates once
// the machine is set up, not only on the first pass.
TEST(NoAllocation, RepeatedRoundTripsAndFailedVmruns) {
    Machine m;
    auto good = test_support::valid_vmcb64();  // L1 intercepts VMMCALL
    auto bad = good;
    bad.set(FieldId::cr0, 0xA0050033);
    int entered = 0, reflected = 0, failed = 0;
    for (int i = 0; i < 100; ++i) {
        ASSERT_TRUE(m.mem.write_vmcb(kVmcb12, i % 10 == 9 ? bad : good));
        g_allocs = 0;
        g_armed = true;
        const auto in = m.vcpu.l1_vmrun();
        const auto out = in.outcome == nested::Outcome::entered_l2
                             ? m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmmcall})
                             : in;
        g_armed = false;
        ASSERT_EQ(g_allocs.load(), 0U) << "iteration " << i;
        entered += in.outcome == nested::Outcome::entered_l2;
        reflected += out.outcome == nested::Outcome::vmexit_to_l1 && out.exit_code == ec::VMMCALL;
        failed += in.outcome == nested::Outcome::vmrun_failed;
    }
    EXPECT_EQ(entered, 90);
    EXPECT_EQ(reflected, 90);
    EXPECT_EQ(failed, 10);
}

// docs/performance.md states the nested engine's per-vCPU footprint; this
// keeps the stated figures equal to the code's, so neither drifts silently.
TEST(Memory, PerVcpuStateMatchesDocsPerformance) {
    std::ifstream in(std::string(NSVM_SOURCE_DIR) + "/docs/performance.md");
    ASSERT_TRUE(in) << "docs/performance.md not found";
    const std::string doc{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    const auto figure = [&](const std::string& what) -> long long {
        const std::regex re("`" + what + "` = ([0-9]+) bytes");
        std::smatch m;
        return std::regex_search(doc, m, re) ? std::stoll(m[1]) : -1;
    };
    EXPECT_EQ(figure("nested::Vcpu::kStateBytes"), static_cast<long long>(nested::Vcpu::kStateBytes));
    EXPECT_EQ(figure("sizeof\\(nested::Vcpu\\)"), static_cast<long long>(sizeof(nested::Vcpu)));
    // kStateBytes counts the VMCBs and permission maps; the rest of the
    // object (pointers, L0 config, flags, the processor's registers and
    // MSRs) is small next to them. The VMCBs are page-aligned, so the
    // processor and the Vcpu each round up to whole pages: at most one page
    // of padding each, with the small members kept after the pages.
    EXPECT_GE(sizeof(nested::Vcpu), nested::Vcpu::kStateBytes);
    EXPECT_LE(sizeof(nested::Vcpu), nested::Vcpu::kStateBytes + 2 * arch::kVmcbSize);
}
