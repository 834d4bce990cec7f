// One processor: where L0 applies an architectural rule to L1 (WRMSR, the
// SVM instruction gates, MOV to CR/DR), nested::Vcpu and cpu::SvmCpu use the
// same code in cpu/, so the two cannot disagree. These properties drive both
// with the same generated inputs and compare what each does.
#include <gtest/gtest.h>

#include <random>

#include "nsvm/arch/bits.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/cpu/svm_cpu.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/nested/vcpu.hpp"
#include "support/valid_vmcb.hpp"

using namespace nsvm;
using arch::FieldId;

namespace {

/// Values around the boundaries of the SVM MSRs' rules: page alignment,
/// MAXPHYADDR, TSC_RATIO's bit 40, the VM_CR bits, PAT memory types.
std::uint64_t boundary_value(std::mt19937_64& rng, unsigned maxphyaddr) {
    const std::uint64_t picks[] = {
        0,
        arch::vm_cr::LOCK,
        arch::vm_cr::SVMDIS,
        arch::vm_cr::LOCK | arch::vm_cr::SVMDIS,
        arch::vm_cr::DPD | arch::vm_cr::R_INIT,
        arch::bit(5),
        0x1000,
        0x1001,
        (std::uint64_t{1} << maxphyaddr) - 0x1000,
        std::uint64_t{1} << maxphyaddr,
        std::uint64_t{1} << 32,
        (std::uint64_t{1} << 40) - 1,
        std::uint64_t{1} << 40,
        0x0007040600070406ULL,  // power-on PAT
        0x0007040600070402ULL,  // a reserved memory type (2)
        arch::efer::SVME | arch::efer::LME | arch::efer::NXE,
        arch::efer::SVME | arch::efer::LMA,
        arch::bit(9),  // EFER bit 9: reserved
        ~std::uint64_t{0},
    };
    const std::uint64_t v = picks[rng() % std::size(picks)];
    return rng() % 4 == 0 ? v ^ (std::uint64_t{1} << (rng() % 64)) : v;
}

}  // namespace

TEST(OneProcessor, SvmMsrWritesAgreeBetweenTheProcessorAndL0) {
    // KVM's svm_set_msr for L1 and the processor's WRMSR judge EFER, VM_CR,
    // VM_HSAVE_PA, TSC_RATIO, PAT and TSC_AUX by the same rules (APM 15.30): over
    // sequences of writes, both raise #GP for the same writes and hold the
    // same values, VM_CR's LOCK included.
    const checks::CpuModel model = checks::default_model();
    const std::uint32_t msrs[] = {arch::msr::EFER, arch::msr::VM_CR, arch::msr::VM_HSAVE_PA, arch::msr::TSC_RATIO,
                                  arch::msr::PAT, arch::msr::TSC_AUX};
    std::mt19937_64 rng(20261206);
    unsigned faults = 0, writes = 0;
    for (int seq = 0; seq < 400; ++seq) {
        cpu::GuestMemory mem_hw(model.maxphyaddr), mem_l1(model.maxphyaddr);
        cpu::SvmCpu hw(model, checks::profile(checks::ProfileId::apm), mem_hw);
        nested::Vcpu l1(model, checks::profile(checks::ProfileId::apm), mem_l1, nested::L0Config::kvm_default());
        hw.regs() = cpu::SvmCpu::long_mode_host();
        l1.vmcb01().set(FieldId::efer, hw.regs().efer);
        l1.vmcb01().set(FieldId::cr0, hw.regs().cr0);
        for (int i = 0; i < 12; ++i) {
            const std::uint32_t msr = msrs[rng() % std::size(msrs)];
            const std::uint64_t value = boundary_value(rng, model.maxphyaddr);
            SCOPED_TRACE(testing::Message() << "sequence " << seq << " write " << i << ": MSR " << std::hex << msr
                                            << " <- " << value);
            const cpu::SvmResult h = hw.wrmsr(msr, value);
            const nested::StepResult n = l1.l1_wrmsr(msr, value);
            const bool hw_gp = h.outcome == cpu::SvmOutcome::exception;
            const bool l1_gp = n.outcome == nested::Outcome::exception;
            ASSERT_EQ(hw_gp, l1_gp) << "processor: " << h.note << "; L0: " << n.note;
            if (hw_gp) {
                EXPECT_EQ(h.vector, 13);
                EXPECT_EQ(n.vector, 13);
                ++faults;
            }
            ++writes;
            std::uint64_t got = 0;
            ASSERT_EQ(l1.l1_rdmsr(arch::msr::VM_CR, got).outcome, nested::Outcome::l1_continues);
            EXPECT_EQ(got, hw.msrs().vm_cr);
            ASSERT_EQ(l1.l1_rdmsr(arch::msr::EFER, got).outcome, nested::Outcome::l1_continues);
            EXPECT_EQ(got, hw.regs().efer);
            EXPECT_EQ(l1.vm_hsave_pa(), hw.msrs().vm_hsave_pa);
            EXPECT_EQ(l1.tsc_ratio(), hw.msrs().tsc_ratio);
            ASSERT_EQ(l1.l1_rdmsr(arch::msr::TSC_AUX, got).outcome, nested::Outcome::l1_continues);
            EXPECT_EQ(got, hw.msrs().tsc_aux);
            EXPECT_EQ(l1.vmcb01().get(FieldId::g_pat), hw.regs().pat);
        }
    }
    // The generator reaches both sides of the rules.
    EXPECT_GT(faults, writes / 10);
    EXPECT_LT(faults, writes * 9 / 10);
}

TEST(OneProcessor, VmCrSvmdisWhileSvmeIsGpEvenWhenLockIgnoresTheBit) {
    // APM 15.30.1: setting SVMDIS while EFER.SVME = 1 is #GP(0) whatever LOCK
    // is. The processor model and L0's emulation once disagreed here (L0
    // judged the value after LOCK had masked SVMDIS out).
    const checks::CpuModel model = checks::default_model();
    cpu::GuestMemory mem(model.maxphyaddr);
    nested::Vcpu l1(model, checks::profile(checks::ProfileId::apm), mem, nested::L0Config::kvm_default());
    l1.vmcb01().set(FieldId::efer, arch::efer::SVME);
    ASSERT_EQ(l1.l1_wrmsr(arch::msr::VM_CR, arch::vm_cr::LOCK).outcome, nested::Outcome::l1_continues);
    const nested::StepResult r = l1.l1_wrmsr(arch::msr::VM_CR, arch::vm_cr::LOCK | arch::vm_cr::SVMDIS);
    EXPECT_EQ(r.outcome, nested::Outcome::exception);
    EXPECT_EQ(r.vector, 13);
    std::uint64_t vm_cr = 0;
    ASSERT_EQ(l1.l1_rdmsr(arch::msr::VM_CR, vm_cr).outcome, nested::Outcome::l1_continues);
    EXPECT_EQ(vm_cr, arch::vm_cr::LOCK);
}

TEST(OneProcessor, WrmsrAtCplThreeIsGpForL1AsOnTheProcessor) {
    // WRMSR is privileged (APM Vol.3): #GP(0) at CPL > 0 before the MSR is
    // looked at, for L1 as for the processor.
    const checks::CpuModel model = checks::default_model();
    cpu::GuestMemory mem(model.maxphyaddr);
    nested::Vcpu l1(model, checks::profile(checks::ProfileId::apm), mem, nested::L0Config::kvm_default());
    l1.vmcb01().set(FieldId::cpl, 3);
    const nested::StepResult r = l1.l1_wrmsr(arch::msr::STAR, 1);
    EXPECT_EQ(r.outcome, nested::Outcome::exception);
    EXPECT_EQ(r.vector, 13);
    EXPECT_EQ(l1.vmcb01().get(FieldId::star), 0U);
}

namespace {
/// The cpu tests' valid 64-bit guest, CR and DR writes and exceptions not
/// intercepted, so each side decides an illegal value itself.
arch::Vmcb guest_without_cr_dr_intercepts() {
    arch::Vmcb v = test_support::valid_vmcb64();
    for (unsigned n = 0; n < 16; ++n) {
        v.set_intercept(arch::intercept::cr_write(n), false);
        v.set_intercept(arch::intercept::dr_write(n), false);
    }
    for (unsigned vec = 0; vec < 32; ++vec) v.set_intercept(arch::intercept::exception(vec), false);
    v.set_intercept(arch::intercept::SELECTIVE_CR0, false);
    return v;
}

std::uint64_t control_value(std::mt19937_64& rng, unsigned cr, unsigned maxphyaddr) {
    using namespace arch;
    const std::uint64_t cr0s[] = {cr0::PE | cr0::PG | cr0::ET, cr0::PE | cr0::ET, cr0::PG | cr0::ET,
                                  cr0::PE | cr0::PG | cr0::NW, cr0::PE | cr0::PG | cr0::NW | cr0::CD,
                                  cr0::PE | cr0::PG | bit(32)};
    const std::uint64_t cr4s[] = {cr4::PAE, 0, cr4::PAE | cr4::PCIDE, cr4::PAE | bit(63), cr4::PAE | bit(31)};
    const std::uint64_t cr3s[] = {0x1000, std::uint64_t{1} << maxphyaddr, bit(63) | 0x2000, (std::uint64_t{1} << maxphyaddr) - 0x1000};
    const std::uint64_t drs[] = {0x400, 0xFFFF0FF0, bit(32) | 0x400, bit(63)};
    switch (cr) {
        case 0: return cr0s[rng() % std::size(cr0s)];
        case 3: return cr3s[rng() % std::size(cr3s)];
        case 4: return cr4s[rng() % std::size(cr4s)];
        default: return drs[rng() % std::size(drs)];
    }
}
}  // namespace

TEST(OneProcessor, L2ControlRegisterWritesAgreeWithTheProcessor) {
    // L2's MOV to CR0/CR3/CR4/DR6/DR7 that L1 does not intercept: on the
    // processor the guest takes #GP(0) for an illegal value (intercepted here); under L0
    // (whose own CR intercepts catch the write, as KVM's do) L0 emulates it
    // and must inject the same #GP(0) and otherwise leave the same CR0, CR3,
    // CR4 and EFER (EFER.LMA following CR0.PG) in vmcb02.
    const checks::CpuModel model = checks::default_model();
    const arch::Vmcb guest = guest_without_cr_dr_intercepts();
    constexpr std::uint64_t kVmcb = 0x20000, kHsave = 0x50000;
    std::mt19937_64 rng(612);
    unsigned gp = 0, done = 0;
    for (int seq = 0; seq < 300; ++seq) {
        cpu::GuestMemory hw_mem(model.maxphyaddr), l1_mem(model.maxphyaddr);
        cpu::SvmCpu hw(model, checks::profile(checks::ProfileId::kvm), hw_mem);
        // The processor's guest intercepts #GP, so that an illegal write is
        // seen as #VMEXIT(0x4D) (the guest has no IDT to deliver it through).
        arch::Vmcb hw_guest = guest;
        hw_guest.set_intercept(arch::intercept::exception(13));
        ASSERT_TRUE(hw_mem.map(kVmcb) && hw_mem.map(kHsave) && hw_mem.write_vmcb(kVmcb, hw_guest));
        hw.regs() = cpu::SvmCpu::long_mode_host();
        hw.regs().rax = kVmcb;
        hw.msrs().vm_hsave_pa = kHsave;
        ASSERT_EQ(hw.vmrun().outcome, cpu::SvmOutcome::entered_guest);

        nested::Vcpu l0(model, checks::profile(checks::ProfileId::kvm), l1_mem, nested::L0Config::kvm_default());
        // Under L0 the #GP(0) L0 injects is delivered by the processor
        // through L2's IDT: one in memory nobody backs is taken without a
        // handler (an empty IDT would triple-fault).
        arch::Vmcb l0_guest = guest;
        l0_guest.set_segment(arch::Seg::idtr, {0, 0, 0xFFF, 0x7000000});
        ASSERT_TRUE(l1_mem.map(kVmcb) && l1_mem.map(kHsave) && l1_mem.write_vmcb(kVmcb, l0_guest));
        l0.set_vm_hsave_pa(kHsave);
        l0.vmcb01().set(FieldId::rax, kVmcb);
        ASSERT_EQ(l0.l1_vmrun().outcome, nested::Outcome::entered_l2);

        for (int i = 0; i < 8; ++i) {
            const unsigned regs[] = {0, 3, 4, 6, 7};
            const unsigned n = regs[rng() % std::size(regs)];
            cpu::Event e;
            e.kind = n >= 6 ? cpu::EventKind::dr_write : cpu::EventKind::cr_write;
            e.index = n;
            e.value = control_value(rng, n, model.maxphyaddr);
            e.insn_len = 3;
            SCOPED_TRACE(testing::Message() << "sequence " << seq << " step " << i << ": MOV " << (n >= 6 ? "DR" : "CR")
                                            << n << " <- 0x" << std::hex << e.value);
            const cpu::SvmResult h = hw.guest_event(e);
            const nested::StepResult s = l0.l2_event(e);
            const bool hw_gp = h.outcome == cpu::SvmOutcome::vmexit && h.exit_code == arch::exit_code::EXCP_BASE + 13;
            const bool l0_gp = s.outcome == nested::Outcome::exception && s.vector == 13;
            ASSERT_EQ(hw_gp, l0_gp) << "processor: " << h.note << "; L0: " << s.note;
            if (!hw_gp) {
                ASSERT_EQ(h.outcome, cpu::SvmOutcome::no_exit) << h.note;
                ASSERT_NE(s.outcome, nested::Outcome::vmexit_to_l1) << s.note;
            }
            gp += hw_gp;
            ++done;
            if (hw_gp) {
                // Nothing changed on either side; the host resumes the guest
                // where it faulted, unless VMRUN's own checks refuse a state
                // the guest reached legally (e.g. long mode left): then this
                // sequence ends.
                const arch::Vmcb after = [&] {
                    arch::Vmcb v;
                    EXPECT_TRUE(hw_mem.peek_vmcb(kVmcb, v));
                    return v;
                }();
                EXPECT_EQ(l0.vmcb02().get(FieldId::cr0), after.get(FieldId::cr0));
                EXPECT_EQ(l0.vmcb02().get(FieldId::cr4), after.get(FieldId::cr4));
                EXPECT_EQ(l0.vmcb02().get(FieldId::efer), after.get(FieldId::efer));
                if (hw.vmrun().outcome != cpu::SvmOutcome::entered_guest) break;
                continue;
            }
            EXPECT_EQ(l0.vmcb02().get(FieldId::cr0), hw.regs().cr0);
            EXPECT_EQ(l0.vmcb02().get(FieldId::cr3), hw.regs().cr3);
            EXPECT_EQ(l0.vmcb02().get(FieldId::cr4), hw.regs().cr4);
            EXPECT_EQ(l0.vmcb02().get(FieldId::efer), hw.regs().efer);
        }
    }
    EXPECT_GT(gp, done / 10);
    EXPECT_LT(gp, done * 9 / 10);
}

TEST(OneProcessor, L1SvmInstructionGatesAgreeWithTheProcessor) {
    // L0 judges L1's VMRUN, VMLOAD, VMSAVE, STGI, CLGI and INVLPGA with the
    // processor's gates: over generated L1 states (EFER.SVME, CR0.PE/PG,
    // CPL, RFLAGS.VM, rAX alignment and width, VM_HSAVE_PA = 0) and every
    // profile, the same instructions fault with the same vector and name the
    // same catalogue check.
    const checks::CpuModel model = checks::default_model();
    constexpr std::uint64_t kPage = 0x20000, kHsave = 0x50000;
    using Insn = cpu::SvmInsn;
    const Insn insns[] = {Insn::vmrun, Insn::vmload, Insn::vmsave, Insn::stgi, Insn::clgi, Insn::invlpga};
    const std::uint64_t raxes[] = {kPage, kPage + 8, std::uint64_t{1} << model.maxphyaddr};
    std::mt19937_64 rng(2026);
    unsigned faults = 0, runs = 0;
    for (const auto pid : {checks::ProfileId::apm, checks::ProfileId::kvm, checks::ProfileId::qemu,
                           checks::ProfileId::bochs, checks::ProfileId::xen, checks::ProfileId::hyperv}) {
        const checks::Profile& profile = checks::profile(pid);
        for (int i = 0; i < 300; ++i) {
            cpu::Registers regs = cpu::SvmCpu::long_mode_host();
            if (rng() % 5 == 0) regs.efer &= ~arch::efer::SVME;
            if (rng() % 6 == 0) regs.cr0 &= ~arch::cr0::PG;
            if (rng() % 8 == 0) regs.cr0 &= ~(arch::cr0::PE | arch::cr0::PG);
            if (rng() % 5 == 0) regs.cpl = 3;
            if (rng() % 8 == 0) regs.rflags |= arch::rflags::VM;
            regs.rax = raxes[rng() % std::size(raxes)];
            const std::uint64_t hsave = rng() % 6 == 0 ? 0 : kHsave;
            const Insn insn = insns[rng() % std::size(insns)];
            SCOPED_TRACE(testing::Message() << "profile " << profile.name << " insn " << unsigned(insn) << " efer 0x"
                                            << std::hex << regs.efer << " cr0 0x" << regs.cr0 << " cpl "
                                            << unsigned(regs.cpl) << " rflags 0x" << regs.rflags << " rax 0x"
                                            << regs.rax << " hsave 0x" << hsave);

            cpu::GuestMemory hw_mem(model.maxphyaddr), l1_mem(model.maxphyaddr);
            for (cpu::GuestMemory* m : {&hw_mem, &l1_mem}) ASSERT_TRUE(m->map(kPage) && m->map(kHsave));
            cpu::SvmCpu hw(model, profile, hw_mem);
            hw.regs() = regs;
            hw.msrs().vm_hsave_pa = hsave;
            nested::Vcpu l0(model, profile, l1_mem, nested::L0Config::kvm_default());
            cpu::store_registers(regs, l0.vmcb01());
            l0.set_vm_hsave_pa(hsave);

            cpu::SvmResult h;
            nested::StepResult n;
            switch (insn) {
                case Insn::vmrun: h = hw.vmrun(), n = l0.l1_vmrun(); break;
                case Insn::vmload: h = hw.vmload(), n = l0.l1_vmload(); break;
                case Insn::vmsave: h = hw.vmsave(), n = l0.l1_vmsave(); break;
                case Insn::stgi: h = hw.stgi(), n = l0.l1_stgi(); break;
                case Insn::clgi: h = hw.clgi(), n = l0.l1_clgi(); break;
                default: h = hw.invlpga(0), n = l0.l1_invlpga(); break;
            }
            // A gate is the only way either side faults before reading memory.
            const checks::Check* hw_gate = h.outcome == cpu::SvmOutcome::exception ? h.failed_check : nullptr;
            const checks::Check* l0_gate = n.outcome == nested::Outcome::exception ? n.failed_check : nullptr;
            ASSERT_EQ(hw_gate, l0_gate) << "processor: " << h.note << "; L0: " << n.note;
            if (hw_gate != nullptr) {
                EXPECT_EQ(h.vector, n.vector);
                ++faults;
            }
            ++runs;
        }
    }
    EXPECT_GT(faults, runs / 5);
    EXPECT_LT(faults, runs * 4 / 5);
}

TEST(OneProcessor, L1VmloadVmsaveMoveTheProcessorsState) {
    // VMLOAD and VMSAVE by L1 (L0 emulates them into and out of vmcb01, as
    // KVM's vmload_vmsave_interception) move exactly the state the processor's
    // VMLOAD and VMSAVE move (APM 15.5.2), for random page contents.
    const checks::CpuModel model = checks::default_model();
    constexpr std::uint64_t kPage = 0x20000, kOut = 0x30000;
    std::mt19937_64 rng(1552);
    for (int i = 0; i < 100; ++i) {
        arch::Vmcb page;
        for (auto& b : page.page()) b = static_cast<std::uint8_t>(rng());
        cpu::GuestMemory hw_mem(model.maxphyaddr), l1_mem(model.maxphyaddr);
        for (cpu::GuestMemory* m : {&hw_mem, &l1_mem}) {
            ASSERT_TRUE(m->map(kPage) && m->map(kOut) && m->write_vmcb(kPage, page));
        }
        cpu::SvmCpu hw(model, checks::profile(checks::ProfileId::apm), hw_mem);
        hw.regs() = cpu::SvmCpu::long_mode_host();
        hw.regs().rax = kPage;
        nested::Vcpu l0(model, checks::profile(checks::ProfileId::apm), l1_mem, nested::L0Config::kvm_default());
        cpu::store_registers(hw.regs(), l0.vmcb01());
        ASSERT_EQ(hw.vmload().outcome, cpu::SvmOutcome::completed);
        ASSERT_EQ(l0.l1_vmload().outcome, nested::Outcome::l1_continues);
        // Then both VMSAVE to a fresh page, which must come out the same.
        hw.regs().rax = kOut;
        l0.vmcb01().set(FieldId::rax, kOut);
        ASSERT_EQ(hw.vmsave().outcome, cpu::SvmOutcome::completed);
        ASSERT_EQ(l0.l1_vmsave().outcome, nested::Outcome::l1_continues);
        arch::Vmcb from_hw, from_l0;
        ASSERT_TRUE(hw_mem.peek_vmcb(kOut, from_hw) && l1_mem.peek_vmcb(kOut, from_l0));
        EXPECT_EQ(from_hw.page(), from_l0.page());
        for (arch::Seg s : arch::kVmloadSegments) {
            EXPECT_EQ(from_hw.segment(s), page.segment(s));
            EXPECT_EQ(l0.vmcb01().segment(s), page.segment(s));
        }
        for (FieldId f : arch::kVmloadFields) EXPECT_EQ(l0.vmcb01().get(f), page.get(f));
    }
}
