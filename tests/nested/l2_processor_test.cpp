// L2 runs on the processor (docs/nested.md, "L2 runs on the processor"): the
// processor's VMRUN of vmcb02 applies the hardware's checks whatever profile
// L1's VMRUN was emulated with, and L2's exceptions reach L2's own IDT.
#include <gtest/gtest.h>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

// Bochs checks no CR3 bits (profile cr3_rule = none), so the bochs profile's
// L0 lets a 64-bit vmcb12 with CR3 bits above MAXPHYADDR through; the
// processor's VMRUN of vmcb02 refuses it (APM 15.5.1), and that
// SVM_EXIT_ERR reaches L1 as #VMEXIT(VMEXIT_INVALID) (KVM's
// nested_svm_intercept), with the check that failed. Under the kvm profile
// the same vmcb12 already fails L0's own checks.
TEST(L2OnProcessor, AVmcb02TheProcessorRefusesIsVmexitInvalidToL1) {
    auto v = valid_vmcb12();
    v.set(FieldId::cr3, v.get(FieldId::cr3) | (std::uint64_t{1} << 60));
    {
        Machine m(checks::ProfileId::bochs);
        m.put(v);
        const auto r = m.vmrun();
        ASSERT_EQ(r.outcome, Outcome::vmrun_failed) << r.note;
        EXPECT_EQ(r.reason, nested::FailReason::vmcb02_refused);
        ASSERT_NE(r.failed_check, nullptr);
        EXPECT_EQ(r.failed_check->id, "cr3.mbz");
        EXPECT_EQ(m.vcpu.mode(), nested::Mode::l1);
        EXPECT_FALSE(m.vcpu.gif());
        EXPECT_FALSE(m.vcpu.hardware().in_guest());
        EXPECT_EQ(m.vmcb12().get(FieldId::exit_code), ec::INVALID);
    }
    {
        Machine m(checks::ProfileId::kvm);
        m.put(v);
        const auto r = m.vmrun();
        ASSERT_EQ(r.outcome, Outcome::vmrun_failed);
        EXPECT_EQ(r.reason, nested::FailReason::consistency_check);
    }
}

namespace {
constexpr std::uint64_t kUdHandler = l2_handler(6);
}  // namespace

// L2 raises #UD; L0 intercepts #UD for itself (KVM's vmcb01), L1 does not:
// L0 re-injects it and the processor's VMRUN delivers it through L2's IDT,
// so L2 continues at its handler with the frame on its stack.
TEST(L2OnProcessor, AnExceptionOnlyL0InterceptsReachesL2sOwnHandler) {
    Machine m;
    auto v = valid_vmcb12();
    give_l2_an_idt(m, v);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto rip = m.vcpu.vmcb02().get(FieldId::rip);
    const auto r = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::exception, .index = 6});
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0) << r.note;
    EXPECT_EQ(r.exit_code, ec::EXCP_BASE + 6);
    ASSERT_EQ(m.vcpu.mode(), nested::Mode::l2);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), kUdHandler);
    EXPECT_EQ(m.vcpu.vmcb02().segment(arch::Seg::cs).selector, 8);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rsp), kStackTop - 40);  // SS, RSP, RFLAGS, CS, RIP
    std::uint64_t pushed_rip = 0;
    ASSERT_TRUE(m.mem.read_u64(kStackTop - 40, pushed_rip));
    EXPECT_EQ(pushed_rip, rip);  // a fault: the faulting instruction's RIP
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

// vmcb12's EVENTINJ is the processor's to deliver at the VMRUN of vmcb02.
TEST(L2OnProcessor, Vmcb12EventInjIsDeliveredThroughL2sIdtAtVmrun) {
    Machine m;
    auto v = valid_vmcb12();
    give_l2_an_idt(m, v);
    v.set(FieldId::event_inj, arch::event::V | (3U << arch::event::kTypeShift) | 6);
    m.put(v);
    const auto r = m.vmrun();
    ASSERT_EQ(r.outcome, Outcome::entered_l2) << r.note;
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), kUdHandler);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::event_inj) & arch::event::V, 0U);
}

// Restoring a nested state enters L2 on the processor, which loads some
// registers in a forced form (CR0.ET reads as 1, APM 3.1.1); vmcb02 must
// keep them as the blob gave them, so save -> restore -> save is the
// identity (found by fuzz_nested).
TEST(L2OnProcessor, RestoreKeepsVmcb02AsSavedWhatTheProcessorLoaded) {
    Machine m;
    auto v = valid_vmcb12();
    v.set(FieldId::cr0, v.get(FieldId::cr0) & ~arch::cr0::ET);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    EXPECT_NE(m.vcpu.hardware().regs().cr0 & arch::cr0::ET, 0U);  // what the processor loaded
    const auto blob = m.vcpu.save_state();
    ASSERT_TRUE(m.vcpu.restore_state(blob));
    EXPECT_EQ(m.vcpu.save_state(), blob);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::cr0) & arch::cr0::ET, 0U);
}

// Found by fuzz_nested (CPU-time campaign of 2026-12-07): L2's own MOV CR3 in
// long mode wrote bits 2:0 and 11:5, which the processor's MOV CR3 takes
// (only bits at or above MAXPHYADDR are MBZ, APM 5.3.2), and the apm
// profile's VMRUN check then refused vmcb02 at L0's next resume. Hardware
// runs those bits at VMRUN too (kvm-unit-tests test_cr3, "CR3 non-MBZ
// reserved bits"), so the processor takes the same CR3 at both.
TEST(L2OnProcessor, L2sMovCr3WithReservedLowBitsKeepsVmcb02Runnable) {
    Machine m;
    auto v = valid_vmcb12();
    v.set_intercept(arch::intercept::VMMCALL);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const std::uint64_t cr3 = 0x3030303;  // bits 0, 1 and 8, 9: reserved, not MBZ
    const auto w = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cr_write, .index = 3, .value = cr3});
    EXPECT_EQ(w.outcome, Outcome::no_exit) << w.note;
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::cr3), cr3);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr) << m.vcpu.check_invariants();
    // L0 resumes L2 on the processor after the next exit it handles, and L1's
    // #VMEXIT carries the CR3 L2 wrote.
    const auto x = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmmcall});
    ASSERT_EQ(x.outcome, Outcome::vmexit_to_l1) << x.note;
    EXPECT_EQ(m.vmcb12().get(FieldId::cr3), cr3);
    // Bits at or above MAXPHYADDR are MBZ: MOV CR3 is #GP there, as VMRUN fails them.
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto bad = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cr_write, .index = 3, .value = std::uint64_t{1} << 52});
    EXPECT_NE(m.vcpu.vmcb02().get(FieldId::cr3), std::uint64_t{1} << 52) << bad.note;
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}
