// L2's TSC: L0 runs vmcb02 with the offset composed from vmcb01's and
// vmcb12's (KVM's kvm_calc_nested_tsc_offset) and, with TSC scaling, with
// L1's TSC_RATIO in the processor's TSC_RATIO MSR (KVM's
// nested_svm_update_tsc_ratio_msr / svm_write_tsc_multiplier), back to L1's
// multiplier (1.0) at the #VMEXIT. APM 15.30.4 (TSC offset), 15.30.5 (TSC
// ratio), vol. 3 RDTSC / RDTSCP.
#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;
using checks::Feature;

namespace {
constexpr std::uint64_t kOne = cpu::kTscRatioOne;
constexpr std::uint64_t kOneAndAHalf = std::uint64_t{3} << 31;  // 1.5 in 8.32
constexpr std::uint64_t kHostTsc = 0x1'0000'0000ULL;
constexpr std::uint64_t kL1Offset = 0x1000;  // vmcb01's: L0's offset for L1
constexpr std::uint64_t kL2Offset = 0x20;    // vmcb12's: L1's offset for L2

cpu::Event rdtsc(cpu::EventKind k = cpu::EventKind::rdtsc) {
    return cpu::Event{.kind = k, .insn_len = static_cast<std::uint8_t>(k == cpu::EventKind::rdtscp ? 3 : 2)};
}

/// L1 (with or without TSC scaling) writes TSC_RATIO = `ratio` where it can,
/// and runs L2 on valid_vmcb12 with kL2Offset, VMMCALL and `extra` intercepted.
void run_l2(Machine& m, bool tsc_scale, std::uint64_t ratio, unsigned extra = ic::VMMCALL) {
    m.cpu.set(Feature::tsc_scale, tsc_scale);
    m.vcpu.set_host_tsc(kHostTsc);
    m.vcpu.vmcb01().set(FieldId::tsc_offset, kL1Offset);
    const nested::StepResult w = m.vcpu.l1_wrmsr(arch::msr::TSC_RATIO, ratio);
    // Without TSC scaling the MSR does not exist (APM 15.30.5): #GP(0).
    ASSERT_EQ(w.outcome, tsc_scale ? Outcome::l1_continues : Outcome::exception);
    arch::Vmcb v = valid_vmcb12();
    v.set(FieldId::tsc_offset, kL2Offset);
    v.set(FieldId::rax, 0x5555);
    v.set_intercept(ic::VMMCALL);
    v.set_intercept(extra);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
}
}  // namespace

TEST(NestedTsc, L2ReadsTheComposedOffsetPlusTheHostTscScaledByL1sRatio) {
    Machine m;
    run_l2(m, true, kOneAndAHalf);
    // While vmcb02 runs the processor scales by L1's ratio.
    EXPECT_EQ(m.vcpu.hardware().msrs().tsc_ratio, kOneAndAHalf);
    EXPECT_EQ(m.vcpu.l2_tsc_ratio(), kOneAndAHalf);
    // vmcb02's offset: L1's scaled by L2's ratio, plus L2's.
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::tsc_offset), kL1Offset * 3 / 2 + kL2Offset);
    EXPECT_EQ(m.vcpu.l2_event(rdtsc()).outcome, Outcome::no_exit);
    // L2's TSC = (L1's TSC) x 1.5 + L2's offset = (host + 0x1000) x 1.5 + 0x20.
    const std::uint64_t want = (kHostTsc + kL1Offset) * 3 / 2 + kL2Offset;
    EXPECT_EQ(m.vcpu.hardware().regs().rax, want & 0xFFFFFFFF);
    EXPECT_EQ(m.vcpu.hardware().regs().rdx, want >> 32);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    // L2's RAX reaches vmcb12 at the next #VMEXIT to L1; RDX stays in the processor.
    const nested::StepResult x = m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmmcall, .insn_len = 3});
    ASSERT_EQ(x.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(m.vmcb12().get(FieldId::rax), want & 0xFFFFFFFF);
    EXPECT_EQ(m.vcpu.hardware().regs().rdx, want >> 32);
    // L1 runs with its own multiplier again (1.0: L0 does not scale L1).
    EXPECT_EQ(m.vcpu.hardware().msrs().tsc_ratio, kOne);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(NestedTsc, WithoutTscScalingL2ReadsHostPlusBothOffsets) {
    Machine m;
    run_l2(m, false, kOneAndAHalf);
    EXPECT_EQ(m.vcpu.hardware().msrs().tsc_ratio, kOne);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::tsc_offset), kL1Offset + kL2Offset);
    EXPECT_EQ(m.vcpu.l2_event(rdtsc()).outcome, Outcome::no_exit);
    const std::uint64_t want = kHostTsc + kL1Offset + kL2Offset;
    EXPECT_EQ(m.vcpu.hardware().regs().rax, want & 0xFFFFFFFF);
    EXPECT_EQ(m.vcpu.hardware().regs().rdx, want >> 32);
}

TEST(NestedTsc, RatioOneLeavesTheOffsetsUnscaled) {
    Machine m;
    run_l2(m, true, kOne);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::tsc_offset), kL1Offset + kL2Offset);
    EXPECT_EQ(m.vcpu.l2_event(rdtsc()).outcome, Outcome::no_exit);
    EXPECT_EQ(m.vcpu.hardware().regs().rax, (kHostTsc + kL1Offset + kL2Offset) & 0xFFFFFFFF);
    EXPECT_EQ(m.vcpu.hardware().regs().rdx, 1U);
}

TEST(NestedTsc, L1InterceptingRdtscGetsTheExitAndNoResult) {
    for (const auto& [kind, bit] : {std::pair{cpu::EventKind::rdtsc, ic::RDTSC},
                                    std::pair{cpu::EventKind::rdtscp, ic::RDTSCP}}) {
        Machine m;
        run_l2(m, true, kOneAndAHalf, bit);
        const nested::StepResult r = m.vcpu.l2_event(rdtsc(kind));
        EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1) << r.note;
        EXPECT_EQ(r.exit_code, bit == ic::RDTSC ? ec::RDTSC : ec::RDTSCP);
        EXPECT_EQ(m.vmcb12().get(FieldId::exit_code), r.exit_code);
        EXPECT_EQ(m.vmcb12().get(FieldId::rax), 0x5555U) << "L1 emulates it: L2's RAX as it was";
        EXPECT_EQ(m.vcpu.hardware().msrs().tsc_ratio, kOne);
        EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    }
}

TEST(NestedTsc, L2RdtscpReadsL1sTscAux) {
    Machine m;
    ASSERT_EQ(m.vcpu.l1_wrmsr(arch::msr::TSC_AUX, 0xFFFF'0000'0000'0007ULL).outcome, Outcome::l1_continues);
    std::uint64_t aux = 0;
    ASSERT_EQ(m.vcpu.l1_rdmsr(arch::msr::TSC_AUX, aux).outcome, Outcome::l1_continues);
    EXPECT_EQ(aux, 7U) << "bits 63:32 ignored";
    run_l2(m, true, kOne);
    EXPECT_EQ(m.vcpu.l2_event(rdtsc(cpu::EventKind::rdtscp)).outcome, Outcome::no_exit);
    EXPECT_EQ(m.vcpu.hardware().regs().rcx, 7U);
    EXPECT_EQ(m.vcpu.hardware().regs().rax, (kHostTsc + kL1Offset + kL2Offset) & 0xFFFFFFFF);
}

TEST(NestedTsc, L0EmulatesAnRdtscOnlyItIntercepts) {
    // An L0 that intercepts RDTSC for itself returns what the processor
    // would have: L2's TSC with vmcb02's offset and L2's ratio.
    nested::L0Config l0 = nested::L0Config::kvm_default();
    l0.intercept_words[ic::RDTSC / 32] |= 1U << (ic::RDTSC % 32);
    Machine m(checks::ProfileId::kvm, {}, l0);
    run_l2(m, true, kOneAndAHalf);
    const auto rip = m.vcpu.vmcb02().get(FieldId::rip);
    const nested::StepResult r = m.vcpu.l2_event(rdtsc());
    EXPECT_EQ(r.outcome, Outcome::handled_by_l0) << r.note;
    const std::uint64_t want = (kHostTsc + kL1Offset) * 3 / 2 + kL2Offset;
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rax), want & 0xFFFFFFFF);
    EXPECT_EQ(m.vcpu.hardware().regs().rdx, want >> 32);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), rip + 2);
    EXPECT_EQ(m.vcpu.hardware().msrs().tsc_ratio, kOneAndAHalf) << "L2 runs on";
}

TEST(NestedTsc, ARestoredStateRunsEachLevelWithItsMultiplier) {
    Machine m;
    run_l2(m, true, kOneAndAHalf);
    const std::vector<std::uint8_t> in_l2 = m.vcpu.save_state();
    ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::vmmcall, .insn_len = 3}).outcome,
              Outcome::vmexit_to_l1);
    const std::vector<std::uint8_t> in_l1 = m.vcpu.save_state();
    ASSERT_TRUE(m.vcpu.restore_state(in_l2).has_value());
    EXPECT_EQ(m.vcpu.hardware().msrs().tsc_ratio, kOneAndAHalf);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    ASSERT_TRUE(m.vcpu.restore_state(in_l1).has_value());
    EXPECT_EQ(m.vcpu.hardware().msrs().tsc_ratio, kOne);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}
