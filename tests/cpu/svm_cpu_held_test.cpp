// A host-held VMCB (cpu::HeldVmcb, how the nested engine's L0 runs vmcb02 on
// the processor) is the same VMCB as one read from memory: the same checks,
// loads, exits and write-back. Also the guest's own VMLOAD/VMSAVE (APM
// 15.33.1) and MOV to CR3's no-flush bit (APM 3.1.2).
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "cpu/svm_cpu_fixture.hpp"
#include "nsvm/cpu/control_regs.hpp"
#include "nsvm/cpu/npt.hpp"

using namespace nsvm;
using namespace nsvm::cpu;
using namespace nsvm::cpu::test;
using arch::FieldId;
namespace ec = arch::exit_code;
namespace ic = arch::intercept;

namespace {
Event vmmcall() { return Event{.kind = EventKind::vmmcall, .insn_len = 3}; }

/// A guest64 with a few fields drawn so that some VMRUNs fail their checks.
arch::Vmcb drawn_guest(std::mt19937_64& g) {
    using namespace arch;
    arch::Vmcb v = guest64();
    v.set_intercept(ic::MSR_PROT);
    v.set_intercept(ic::IOIO_PROT);
    v.set(FieldId::msrpm_base_pa, kMsrpm);
    v.set(FieldId::iopm_base_pa, kIopm);
    switch (g() % 8) {
        case 0: v.set(FieldId::cr3, v.get(FieldId::cr3) | (std::uint64_t{1} << (40 + g() % 24))); break;
        case 1: v.set(FieldId::cr0, v.get(FieldId::cr0) | (std::uint64_t{1} << (32 + g() % 32))); break;
        case 2: v.set(FieldId::dr7, v.get(FieldId::dr7) | (g() << 32)); break;
        case 3: v.set(FieldId::efer, v.get(FieldId::efer) & ~efer::SVME); break;
        case 4: v.set(FieldId::event_inj, event::V | (3U << event::kTypeShift) | (g() % 32)); break;
        case 5: v.set(FieldId::asid, 0); break;
        default: break;
    }
    v.set(FieldId::rip, g());
    v.set(FieldId::rsp, g() & ~std::uint64_t{0xF});
    v.set(FieldId::rflags, 2 | (g() & 0xCD5));
    return v;
}
}  // namespace

TEST(SvmCpuHeld, PropertyAHeldVmcbRunsExactlyAsTheSameVmcbInMemory) {
    std::mt19937_64 g(0x4E1D);
    unsigned entered = 0, failed = 0;
    for (int i = 0; i < 400; ++i) {
        SCOPED_TRACE(i);
        const arch::Vmcb v = drawn_guest(g);
        Machine in_memory, held;
        in_memory.put(v);
        // The held VMCB brings the same maps as bytes.
        std::vector<std::uint8_t> msrpm(kMsrpmSize), iopm(kIopmSize);
        ASSERT_TRUE(held.mem.read(kMsrpm, msrpm) && held.mem.read(kIopm, iopm));
        arch::Vmcb held_vmcb = v;
        const HeldVmcb hv{&held_vmcb, msrpm, iopm};

        const SvmResult a = in_memory.cpu.vmrun();
        const SvmResult b = held.cpu.vmrun(hv);
        ASSERT_EQ(a.outcome, b.outcome) << a.note << " / " << b.note;
        ASSERT_EQ(a.exit_code, b.exit_code);
        ASSERT_EQ(a.failed_check, b.failed_check);
        ASSERT_EQ(a.injection, b.injection);
        ASSERT_EQ(in_memory.cpu.regs(), held.cpu.regs());
        ASSERT_EQ(in_memory.cpu.gif(), held.cpu.gif());
        if (a.outcome == SvmOutcome::entered_guest) {
            ++entered;
            // A guest step, then the #VMEXIT: the same write-back, the same host.
            const Event e = (g() & 1) ? vmmcall() : Event{.kind = EventKind::rdmsr, .index = 0xC0000080, .insn_len = 2};
            const SvmResult x = in_memory.cpu.guest_event(e);
            const SvmResult y = held.cpu.guest_event(e);
            ASSERT_EQ(x.outcome, y.outcome);
            ASSERT_EQ(x.exit_code, y.exit_code);
            if (x.outcome != SvmOutcome::vmexit) {
                ASSERT_EQ(in_memory.cpu.vmexit(ec::INTR, 0, 0, 0).outcome, SvmOutcome::vmexit);
                ASSERT_EQ(held.cpu.vmexit(ec::INTR, 0, 0, 0).outcome, SvmOutcome::vmexit);
            }
        } else {
            ++failed;
        }
        ASSERT_EQ(in_memory.cpu.regs(), held.cpu.regs());
        ASSERT_FALSE(held.cpu.in_guest());
        const arch::Vmcb written = in_memory.vmcb();
        for (std::size_t b2 = 0; b2 < arch::kVmcbSize; ++b2)
            ASSERT_EQ(written.page()[b2], held_vmcb.page()[b2]) << "byte 0x" << std::hex << b2;
        // The held run kept its host state inside the processor: HSAVE untouched.
        arch::Vmcb hsave;
        ASSERT_TRUE(held.mem.peek_vmcb(kHsave, hsave));
        ASSERT_TRUE(hsave == arch::Vmcb{});
    }
    EXPECT_GT(entered, 100U);
    EXPECT_GT(failed, 100U);
}

TEST(SvmCpuGuest, VirtualVmloadTranslatesRaxThroughTheNestedTables) {
    // APM 15.33.1: with V_VMSAVE_VMLOAD under nested paging, a guest VMLOAD
    // that is not intercepted takes rAX as a guest-physical address; a fault
    // in the nested tables is #VMEXIT(NPF) with the GPA in EXITINFO2.
    Machine m;
    ASSERT_TRUE(m.cpu_model.has(checks::Feature::v_vmsave_vmload));
    constexpr std::uint64_t ncr3 = 0x70000, gpa = 0x5000, spa = 0x80000;
    ASSERT_TRUE(m.mem.map(ncr3, 0x4000) && m.mem.map(spa));
    ASSERT_TRUE(m.mem.write_u64(ncr3, 0x71007) && m.mem.write_u64(0x71000, 0x72007) &&
                m.mem.write_u64(0x72000, 0x73007) && m.mem.write_u64(0x73000 + 8 * (gpa >> 12), spa | 7));
    arch::Vmcb page;
    page.set(FieldId::lstar, 0xFFFFFFFF81000000ULL);
    ASSERT_TRUE(m.mem.write_vmcb(spa, page));
    arch::Vmcb v = guest64();
    v.set_intercept(ic::VMLOAD, false);
    v.set_intercept(ic::VMSAVE, false);
    v.set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE);
    v.set(FieldId::nested_cr3, ncr3);
    v.set(FieldId::misc_ctl2, arch::misc_ctl2::V_VMSAVE_VMLOAD);
    v.set(FieldId::rax, gpa);
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    const auto rip = m.cpu.regs().rip;
    const SvmResult r = m.cpu.guest_event(Event{.kind = EventKind::vmload, .insn_len = 3});
    ASSERT_EQ(r.outcome, SvmOutcome::no_exit) << r.note;
    EXPECT_EQ(m.cpu.regs().lstar, 0xFFFFFFFF81000000ULL);
    EXPECT_EQ(m.cpu.regs().rip, rip + 3);
    // An address the nested tables do not map.
    m.cpu.regs().rax = 0x6000;
    const SvmResult f = m.cpu.guest_event(Event{.kind = EventKind::vmsave, .insn_len = 3});
    ASSERT_EQ(f.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(f.exit_code, ec::NPF);
    EXPECT_EQ(f.exit_info_2, 0x6000U);
    EXPECT_NE(f.exit_info_1 & npf::RW, 0U);  // VMSAVE writes
}

TEST(SvmCpuGuest, UnvirtualizedGuestVmloadUsesRaxAsAPhysicalAddress) {
    // Without V_VMSAVE_VMLOAD a VMLOAD the hypervisor forgot to intercept
    // reads system-physical memory at rAX (why KVM keeps it intercepted for
    // L2 unless L1 has nested paging: CVE-2021-3656).
    Machine m;
    arch::Vmcb page;
    page.set(FieldId::star, 0x0023001000000000ULL);
    ASSERT_TRUE(m.mem.write_vmcb(kVmsave, page));
    arch::Vmcb v = guest64();
    v.set_intercept(ic::VMLOAD, false);
    v.set(FieldId::rax, kVmsave);
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    ASSERT_EQ(m.cpu.guest_event(Event{.kind = EventKind::vmload, .insn_len = 3}).outcome, SvmOutcome::no_exit);
    EXPECT_EQ(m.cpu.regs().star, 0x0023001000000000ULL);
    m.cpu.regs().rax = 0x900000;  // not backed: #GP(0), delivered through the guest's IDT
    const SvmResult r = m.cpu.guest_event(Event{.kind = EventKind::vmload, .insn_len = 3});
    EXPECT_EQ(r.outcome, SvmOutcome::delivered);
    EXPECT_EQ(r.vector, 13);
}

TEST(ControlRegs, Cr3Bit63IsTheNoFlushHintOnlyWithPcide) {
    // APM 3.1.2 / KVM's kvm_set_cr3: with CR4.PCIDE bit 63 is not stored;
    // without it, it is a bit beyond MAXPHYADDR: #GP(0).
    const checks::CpuModel model = checks::default_model();
    const std::uint64_t cr3 = arch::bit(63) | 0x2000;
    const ControlState pcid{arch::efer::LME | arch::efer::LMA, 0x80050033, arch::cr4::PAE | arch::cr4::PCIDE, true};
    const ControlState no_pcid{arch::efer::LME | arch::efer::LMA, 0x80050033, arch::cr4::PAE, true};
    EXPECT_EQ(mov_to_cr_fault(model, 3, cr3, pcid), nullptr);
    EXPECT_EQ(cr3_as_written(cr3, pcid.cr4), 0x2000U);
    EXPECT_NE(mov_to_cr_fault(model, 3, cr3, no_pcid), nullptr);
    EXPECT_EQ(cr3_as_written(cr3, no_pcid.cr4), cr3);
    // Bit 62 is an address bit either way.
    EXPECT_NE(mov_to_cr_fault(model, 3, arch::bit(62) | 0x2000, pcid), nullptr);
}
