// RDTSC and RDTSCP in a guest (APM vol. 3 RDTSC / RDTSCP): EDX:EAX = the
// host TSC scaled by TSC_RATIO (APM 15.30.5, only with TSC scaling) plus the
// VMCB's TSC_OFFSET (APM 15.30.4), upper halves cleared; RDTSCP's ECX =
// TSC_AUX. RDX and RCX are processor state only: no VMCB holds them.
#include "cpu/svm_cpu_fixture.hpp"

using namespace nsvm;
using namespace nsvm::cpu::test;
using arch::FieldId;
using checks::Feature;
using cpu::Event;
using cpu::EventKind;
using cpu::SvmOutcome;
namespace ic = arch::intercept;
namespace ec = arch::exit_code;

namespace {
constexpr std::uint64_t kOne = std::uint64_t{1} << 32;  // TSC_RATIO 1.0 (8.32)

Event insn(EventKind k) {
    Event e;
    e.kind = k;
    e.insn_len = k == EventKind::rdtscp ? 3 : 2;  // 0F 01 F9 / 0F 31
    return e;
}

checks::CpuModel model_with(bool tsc_scale, bool rdtscp = true) {
    checks::CpuModel m = checks::default_model();
    m.set(Feature::tsc_scale, tsc_scale);
    m.set(Feature::rdtscp, rdtscp);
    return m;
}

/// A guest entered with `offset`; the host TSC and ratio set before VMRUN.
struct TscMachine : Machine {
    TscMachine(checks::CpuModel model, std::uint64_t host_tsc, std::uint64_t ratio, std::uint64_t offset,
               bool intercept_rdtsc = false)
        : Machine(checks::ProfileId::apm, std::move(model)) {
        cpu.msrs().tsc = host_tsc;
        cpu.msrs().tsc_ratio = ratio;
        arch::Vmcb v = guest64();
        v.set(FieldId::tsc_offset, offset);
        v.set_intercept(ic::RDTSC, intercept_rdtsc);
        v.set_intercept(ic::RDTSCP, intercept_rdtsc);
        v.set_intercept(ic::exception(6));
        entered = enter(v).outcome == SvmOutcome::entered_guest;
        cpu.regs().rax = 0xFFFFFFFF'FFFFFFFFULL;
        cpu.regs().rdx = 0xFFFFFFFF'FFFFFFFFULL;
        cpu.regs().rcx = 0xFFFFFFFF'FFFFFFFFULL;
    }
    [[nodiscard]] std::uint64_t edx_eax() const { return (cpu.regs().rdx << 32) | (cpu.regs().rax & 0xFFFFFFFF); }
    bool entered = false;
};
}  // namespace

TEST(SvmCpuTsc, RdtscIsHostTscPlusOffsetWithRatioOne) {
    TscMachine m(model_with(true), 0x1'2345'6789ULL, kOne, 0x10'0000'0000ULL);
    ASSERT_TRUE(m.entered);
    const std::uint64_t rip = m.cpu.regs().rip;
    const cpu::SvmResult r = m.cpu.guest_event(insn(EventKind::rdtsc));
    EXPECT_EQ(r.outcome, SvmOutcome::no_exit);
    EXPECT_EQ(m.edx_eax(), 0x11'2345'6789ULL);
    EXPECT_EQ(m.cpu.regs().rip, rip + 2);
    EXPECT_EQ(m.cpu.regs().rcx, 0xFFFFFFFF'FFFFFFFFULL) << "RDTSC leaves RCX alone";
}

TEST(SvmCpuTsc, UpperHalvesOfRaxAndRdxAreCleared) {
    TscMachine m(model_with(true), 0x1234'5678'9ABC'DEF0ULL, kOne, 0);
    ASSERT_TRUE(m.entered);
    ASSERT_EQ(m.cpu.guest_event(insn(EventKind::rdtsc)).outcome, SvmOutcome::no_exit);
    EXPECT_EQ(m.cpu.regs().rax, 0x9ABC'DEF0ULL);
    EXPECT_EQ(m.cpu.regs().rdx, 0x1234'5678ULL);
}

TEST(SvmCpuTsc, NegativeOffsetWrapsModulo64Bits) {
    // TSC_OFFSET is a signed 64-bit value added modulo 2^64 (APM 15.30.4).
    TscMachine m(model_with(true), 1000, kOne, static_cast<std::uint64_t>(-400));
    ASSERT_TRUE(m.entered);
    ASSERT_EQ(m.cpu.guest_event(insn(EventKind::rdtsc)).outcome, SvmOutcome::no_exit);
    EXPECT_EQ(m.edx_eax(), 600U);
}

TEST(SvmCpuTsc, RatioScalesTheHostTscOnlyWithTscScaling) {
    // TSC_RATIO 2.5 (8.32: integer 2, fraction 0x8000_0000).
    const std::uint64_t ratio = (std::uint64_t{2} << 32) | 0x8000'0000ULL;
    {
        TscMachine m(model_with(true), 0x1'0000'0000ULL, ratio, 7);
        ASSERT_TRUE(m.entered);
        ASSERT_EQ(m.cpu.guest_event(insn(EventKind::rdtsc)).outcome, SvmOutcome::no_exit);
        EXPECT_EQ(m.edx_eax(), 0x2'8000'0007ULL) << "2.5 x 2^32 + 7";
    }
    {
        // Without the feature the MSR does not exist (WRMSR is #GP) and no
        // ratio applies, whatever the register holds.
        TscMachine m(model_with(false), 0x1'0000'0000ULL, ratio, 7);
        ASSERT_TRUE(m.entered);
        ASSERT_EQ(m.cpu.guest_event(insn(EventKind::rdtsc)).outcome, SvmOutcome::no_exit);
        EXPECT_EQ(m.edx_eax(), 0x1'0000'0007ULL);
    }
}

TEST(SvmCpuTsc, RatioWrittenByWrmsrAppliesInTheGuestNotTheHost) {
    Machine m(checks::ProfileId::apm, model_with(true));
    m.cpu.msrs().tsc = 3000;
    ASSERT_EQ(m.cpu.wrmsr(arch::msr::TSC_RATIO, std::uint64_t{3} << 31).outcome, SvmOutcome::completed);  // 1.5
    EXPECT_EQ(m.cpu.guest_tsc(), 3000U) << "the host's TSC is not scaled (APM 15.30.5)";
    m.cpu.regs().rax = kVmcb;
    ASSERT_EQ(m.enter(guest64()).outcome, SvmOutcome::entered_guest);
    ASSERT_EQ(m.cpu.guest_event(insn(EventKind::rdtsc)).outcome, SvmOutcome::no_exit);
    EXPECT_EQ(m.cpu.regs().rax, 4500U);
    EXPECT_EQ(m.cpu.regs().rdx, 0U);
}

TEST(SvmCpuTsc, RdtscpLoadsEcxWithTscAux) {
    Machine host(checks::ProfileId::apm, model_with(true));
    ASSERT_EQ(host.cpu.wrmsr(arch::msr::TSC_AUX, 0xDEAD'BEEF'0000'0042ULL).outcome, SvmOutcome::completed);
    EXPECT_EQ(host.cpu.msrs().tsc_aux, 0x42U) << "bits 63:32 of a write are ignored";

    TscMachine m(model_with(true), 0x5'0000'0010ULL, kOne, 0x20);
    ASSERT_TRUE(m.entered);
    m.cpu.msrs().tsc_aux = 0x8000'0003ULL;
    const cpu::SvmResult r = m.cpu.guest_event(insn(EventKind::rdtscp));
    EXPECT_EQ(r.outcome, SvmOutcome::no_exit);
    EXPECT_EQ(m.cpu.regs().rax, 0x30U);
    EXPECT_EQ(m.cpu.regs().rdx, 5U);
    EXPECT_EQ(m.cpu.regs().rcx, 0x8000'0003ULL) << "ECX = TSC_AUX, upper half of RCX cleared";
}

TEST(SvmCpuTsc, TscAuxWriteWithoutRdtscpIsGp) {
    Machine m(checks::ProfileId::apm, model_with(true, false));
    const cpu::SvmResult r = m.cpu.wrmsr(arch::msr::TSC_AUX, 1);
    EXPECT_EQ(r.outcome, SvmOutcome::exception);
    EXPECT_EQ(r.vector, 13);
    EXPECT_EQ(m.cpu.msrs().tsc_aux, 0U);
}

TEST(SvmCpuTsc, RdtscpWithoutTheFeatureIsUdBeforeTheInterceptAndChangesNothing) {
    TscMachine m(model_with(true, false), 0x1234, kOne, 0, /*intercept_rdtsc=*/true);
    ASSERT_TRUE(m.entered);
    const cpu::Registers before = m.cpu.regs();
    const cpu::SvmResult r = m.cpu.guest_event(insn(EventKind::rdtscp));
    // #UD comes first (APM 15.7): the #VMEXIT is the #UD intercept's, not RDTSCP's.
    EXPECT_EQ(r.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(r.exit_code, ec::EXCP_BASE + 6);
    EXPECT_EQ(m.vmcb().get(FieldId::rax), before.rax);
    EXPECT_EQ(m.cpu.regs().rdx, before.rdx);
    EXPECT_EQ(m.cpu.regs().rcx, before.rcx);
}

TEST(SvmCpuTsc, InterceptedRdtscExitsWithoutAResult) {
    TscMachine m(model_with(true), 0x1234, kOne, 0, /*intercept_rdtsc=*/true);
    ASSERT_TRUE(m.entered);
    const cpu::SvmResult r = m.cpu.guest_event(insn(EventKind::rdtsc));
    EXPECT_EQ(r.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(r.exit_code, ec::RDTSC);
    EXPECT_EQ(m.vmcb().get(FieldId::rax), 0xFFFFFFFF'FFFFFFFFULL) << "the guest's RAX as it was";
    EXPECT_EQ(m.cpu.regs().rdx, 0xFFFFFFFF'FFFFFFFFULL) << "#VMEXIT does not touch RDX";
}

TEST(SvmCpuTsc, RdxAndRcxSurviveVmrunAndVmexit) {
    // Processor state only: VMRUN loads them from nowhere and #VMEXIT saves
    // them nowhere; the guest's result is still there for the host to read.
    TscMachine m(model_with(true), 0xAB'0000'0001ULL, kOne, 0);
    ASSERT_TRUE(m.entered);
    ASSERT_EQ(m.cpu.guest_event(insn(EventKind::rdtscp)).outcome, SvmOutcome::no_exit);
    Event call;
    call.kind = EventKind::vmmcall;
    call.insn_len = 3;
    ASSERT_EQ(m.cpu.guest_event(call).outcome, SvmOutcome::vmexit);
    EXPECT_EQ(m.vmcb().get(FieldId::rax), 1U) << "RAX reaches the VMCB at #VMEXIT";
    EXPECT_EQ(m.cpu.regs().rax, kVmcb) << "the host's RAX is back";
    EXPECT_EQ(m.cpu.regs().rdx, 0xABU);
    EXPECT_EQ(m.cpu.regs().rcx, 0U);
}
