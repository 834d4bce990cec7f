// The VMRUN / #VMEXIT / routing paths allocate nothing: a counting global
// operator new, armed only around the calls under test.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "nsvm/arch/intercepts.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/nested/vcpu.hpp"

namespace {
std::atomic<bool> g_armed{false};
std::atomic<std::size_t> g_allocs{0};
}  // namespace

void* operator new(std::size_t n) {
    if (g_armed.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
// The replacement pair is malloc/free on both sides, which g++ cannot see.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

using namespace nsvm;
using arch::FieldId;

TEST(NoAllocation, VmrunVmexitRoutingAndFailurePath) {
    const auto cpu = checks::default_model();
    cpu::GuestMemory mem(cpu.maxphyaddr);
    ASSERT_TRUE(mem.map(0x20000));
    ASSERT_TRUE(mem.map(0x50000));
    ASSERT_TRUE(mem.map(0x14000, cpu::kMsrpmSize));
    ASSERT_TRUE(mem.map(0x10000, cpu::kIopmSize));
    auto vcpu = std::make_unique<nested::Vcpu>(cpu, checks::profile(checks::ProfileId::kvm), mem,
                                               nested::L0Config::kvm_default());
    vcpu->set_vm_hsave_pa(0x50000);
    arch::Vmcb v;
    v.set_intercept(arch::intercept::VMRUN);
    v.set_intercept(arch::intercept::MSR_PROT);
    v.set_intercept(arch::intercept::IOIO_PROT);
    v.set_intercept(arch::intercept::CPUID);
    v.set(FieldId::asid, 1);
    v.set(FieldId::iopm_base_pa, 0x10000);
    v.set(FieldId::msrpm_base_pa, 0x14000);
    v.set_segment(arch::Seg::cs, {0x8, 0xA9B, 0xFFFFFFFF, 0});
    v.set(FieldId::efer, 0x1D00);
    v.set(FieldId::cr0, 0x80050033);
    v.set(FieldId::cr4, 0x6F8);
    v.set(FieldId::cr3, 0x1000);
    v.set(FieldId::dr6, 0xFFFF0FF0);
    v.set(FieldId::dr7, 0x400);
    v.set(FieldId::rflags, 2);
    v.set(FieldId::g_pat, 0x0007040600070406ULL);
    ASSERT_TRUE(mem.write_vmcb(0x20000, v));
    vcpu->vmcb01().set(FieldId::rax, 0x20000);

    g_allocs = 0;
    g_armed = true;
    const auto r1 = vcpu->l1_vmrun();
    const auto r2 = vcpu->l2_event(cpu::Event{.kind = cpu::EventKind::rdmsr, .index = 0xC0000080});
    const auto r3 = vcpu->l2_event(cpu::Event{.kind = cpu::EventKind::io, .index = 0x80});
    const auto r4 = vcpu->l1_vmrun();
    const auto r5 = vcpu->l2_event(cpu::Event{.kind = cpu::EventKind::cpuid});
    g_armed = false;
    EXPECT_EQ(r1.outcome, nested::Outcome::entered_l2);
    EXPECT_EQ(r2.outcome, nested::Outcome::handled_by_l0);
    EXPECT_EQ(r3.outcome, nested::Outcome::handled_by_l0);  // L1's IOPM is all zero
    EXPECT_EQ(r4.outcome, nested::Outcome::exception);      // L1 is not running while L2 does
    EXPECT_EQ(r5.outcome, nested::Outcome::vmexit_to_l1);
    EXPECT_EQ(g_allocs.load(), 0U);

    v.set(FieldId::cr0, 0xA0050033);
    ASSERT_TRUE(mem.write_vmcb(0x20000, v));
    g_allocs = 0;
    g_armed = true;
    const auto r6 = vcpu->l1_vmrun();
    g_armed = false;
    EXPECT_EQ(r6.outcome, nested::Outcome::vmrun_failed);
    EXPECT_EQ(g_allocs.load(), 0U);
}
