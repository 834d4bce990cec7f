// LBR virtualization on the processor (APM 15.23): with LBR_VIRT in the VMCB
// run (misc_ctl2 bit 0, on a CPU with the feature) VMRUN loads the guest's
// DebugCtl, BR_FROM, BR_TO, LASTEXCPFROM and LASTEXCPTO from the save area
// (670h-690h), #VMEXIT saves them back and restores the host's. Without it
// the VMCB's LBR fields are neither loaded nor saved. WRMSR DebugCtl: bits
// 63:6 are reserved (APM 13.1.1.6), #GP(0).
#include "cpu/svm_cpu_fixture.hpp"

using namespace nsvm;
using namespace nsvm::cpu::test;
using arch::FieldId;
using cpu::Event;
using cpu::EventKind;
using cpu::SvmOutcome;
namespace ic = arch::intercept;

namespace {
constexpr cpu::LbrState kHostLbr{arch::debugctl::BTF, 0x11, 0x22, 0x33, 0x44};
constexpr cpu::LbrState kGuestLbr{arch::debugctl::LBR, 0x401000, 0x402000, 0x403000, 0x404000};

arch::Vmcb lbr_guest(bool lbr_virt) {
    arch::Vmcb v = guest64();
    v.set_intercept(ic::MSR_PROT, false);
    v.set(FieldId::misc_ctl2, lbr_virt ? arch::misc_ctl2::LBR_VIRT : 0);
    cpu::store_lbr(kGuestLbr, v);
    return v;
}

Event wrmsr_debugctl(std::uint64_t value) {
    Event e;
    e.kind = EventKind::wrmsr;
    e.index = arch::msr::DEBUGCTL;
    e.value = value;
    e.insn_len = 2;
    return e;
}

Event vmmcall() {
    Event e;
    e.kind = EventKind::vmmcall;
    e.insn_len = 3;
    return e;
}

checks::CpuModel without_lbrv() {
    checks::CpuModel c = checks::default_model();
    c.set(checks::Feature::lbrv, false);
    return c;
}
}  // namespace

TEST(SvmCpuLbr, LbrVirtLoadsTheGuestsAndTheExitSavesThemAndRestoresTheHosts) {
    Machine m;
    m.cpu.regs().lbr = kHostLbr;
    ASSERT_EQ(m.enter(lbr_guest(true)).outcome, SvmOutcome::entered_guest);
    EXPECT_EQ(m.cpu.regs().lbr, kGuestLbr);
    // The guest writes DebugCtl (not intercepted): its own.
    ASSERT_EQ(m.cpu.guest_event(wrmsr_debugctl(0)).outcome, SvmOutcome::no_exit);
    ASSERT_EQ(m.cpu.guest_event(vmmcall()).outcome, SvmOutcome::vmexit);
    EXPECT_EQ(m.cpu.regs().lbr, kHostLbr) << "the host's are back";
    cpu::LbrState saved = kGuestLbr;
    saved.dbgctl = 0;
    EXPECT_EQ(cpu::lbr_from_vmcb(m.vmcb()), saved);
}

TEST(SvmCpuLbr, WithoutLbrVirtTheVmcbsLbrFieldsAreNeitherLoadedNorSaved) {
    Machine m;
    m.cpu.regs().lbr = kHostLbr;
    ASSERT_EQ(m.enter(lbr_guest(false)).outcome, SvmOutcome::entered_guest);
    EXPECT_EQ(m.cpu.regs().lbr, kHostLbr) << "the guest runs with the host's";
    ASSERT_EQ(m.cpu.guest_event(wrmsr_debugctl(arch::debugctl::LBR)).outcome, SvmOutcome::no_exit);
    ASSERT_EQ(m.cpu.guest_event(vmmcall()).outcome, SvmOutcome::vmexit);
    EXPECT_EQ(cpu::lbr_from_vmcb(m.vmcb()), kGuestLbr) << "the VMCB keeps its values";
    EXPECT_EQ(m.cpu.regs().lbr.dbgctl, arch::debugctl::LBR) << "the one DebugCtl the guest wrote";
}

TEST(SvmCpuLbr, WithoutTheFeatureLbrVirtIsIgnored) {
    Machine m(checks::ProfileId::apm, without_lbrv());
    m.cpu.regs().lbr = kHostLbr;
    ASSERT_EQ(m.enter(lbr_guest(true)).outcome, SvmOutcome::entered_guest);
    EXPECT_EQ(m.cpu.regs().lbr, kHostLbr);
    ASSERT_EQ(m.cpu.guest_event(vmmcall()).outcome, SvmOutcome::vmexit);
    EXPECT_EQ(cpu::lbr_from_vmcb(m.vmcb()), kGuestLbr);
}

TEST(SvmCpuLbr, HostAndGuestWrmsrDebugCtlReservedBitsAreGp) {
    // Bits 5:0 are defined (LBR, BTF, PB0-PB3), bit 6 is the first reserved one.
    Machine m;
    EXPECT_EQ(m.cpu.wrmsr(arch::msr::DEBUGCTL, 0x3F).outcome, SvmOutcome::completed);
    EXPECT_EQ(m.cpu.regs().lbr.dbgctl, 0x3FU);
    const auto r = m.cpu.wrmsr(arch::msr::DEBUGCTL, 0x40);
    EXPECT_EQ(r.outcome, SvmOutcome::exception);
    EXPECT_EQ(r.vector, 13);
    EXPECT_EQ(m.cpu.regs().lbr.dbgctl, 0x3FU);

    m.cpu.regs().lbr = {};
    ASSERT_EQ(m.enter(lbr_guest(true)).outcome, SvmOutcome::entered_guest);
    const std::uint64_t rip = m.cpu.regs().rip;
    const auto g = m.cpu.guest_event(wrmsr_debugctl(0x40));
    EXPECT_EQ(g.vector, 13) << g.note;
    EXPECT_EQ(m.cpu.regs().lbr.dbgctl, kGuestLbr.dbgctl);
    EXPECT_EQ(m.cpu.regs().rip, rip);
}
