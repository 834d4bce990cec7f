// What every nested test starts from: the nested test machine
// (tests/support/nested_machine.hpp) with GoogleTest assertions on its set-up
// steps, the vmcb12 these tests run, and the names they use for the layout.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/nested/vcpu.hpp"
#include "support/nested_machine.hpp"
#include "support/valid_vmcb.hpp"

namespace nsvm::nested_test {

using arch::FieldId;
using nested::Outcome;
namespace ic = arch::intercept;
namespace ec = arch::exit_code;

using test_support::kHsave;
using test_support::kVmcb12;
inline constexpr std::uint64_t kMsrpm = test_support::kMsrpmBase, kIopm = test_support::kIopmBase;
inline constexpr std::uint64_t kSmbase = test_support::kSmbase;

/// Where L2's IDT says it is: memory L1 never backs, so an exception the
/// processor delivers in L2 is taken without its handler being modelled
/// (cpu::Delivery::not_modelled) instead of triple-faulting on an empty IDT.
inline constexpr std::uint64_t kL2Idt = 0x7000000;

/// The shared valid guest without its VMMCALL intercept, as the nested tests'
/// vmcb12 always was: L1 does not see L2's VMMCALL, which is then #UD in L2
/// (L0 never serves L2's hypercalls; KVM's recalc_intercepts). L2 has an
/// IDT of 256 long-mode gates at kL2Idt.
inline arch::Vmcb valid_vmcb12() {
    auto v = test_support::valid_vmcb64();
    v.set_intercept(ic::VMMCALL, false);
    v.set_segment(arch::Seg::idtr, {0, 0, 0xFFF, kL2Idt});
    return v;
}

// L2's memory, in L1's physical memory (L1 has no nested paging: L2's GPA is
// L1's PA): 4-level tables mapping the low 2 MiB 1:1 with one 2 MiB page,
// an IDT whose 256 interrupt gates lead vector n to l2_handler(n), a GDT with
// a 64-bit code segment at selector 8, a stack.
inline constexpr std::uint64_t kPml4 = 0x60000, kIdt = 0x100000, kGdt = 0x101000, kStackTop = 0x103000,
                               kHandlers = 0x109000;
[[nodiscard]] constexpr std::uint64_t l2_handler(unsigned vector) { return kHandlers + vector * 0x10ULL; }

/// KVM's configuration with the module parameter vnmi = 0: L1's NMIs are
/// L0's to inject and hold in software (the STGI window, the IRET intercept).
inline nested::L0Config kvm_without_vnmi() {
    auto l0 = nested::L0Config::kvm_default();
    l0.vnmi = false;
    return l0;
}

struct Machine;
void give_l2_an_idt(Machine& m, arch::Vmcb& v);

/// `v` with L2 at CPL 3: CPL, and CS and SS at DPL 3 (SS's RPL too), as a
/// consistent user-mode guest state.
inline void at_cpl3(arch::Vmcb& v) {
    v.set(FieldId::cpl, 3);
    auto cs = v.segment(arch::Seg::cs);
    cs.attrib |= 3 << 5;  // DPL, attrib bits 6:5
    v.set_segment(arch::Seg::cs, cs);
    auto ss = v.segment(arch::Seg::ss);
    ss.attrib |= 3 << 5;
    ss.selector |= 3;
    v.set_segment(arch::Seg::ss, ss);
}

struct Machine : test_support::NestedMachine {
    explicit Machine(checks::ProfileId p = checks::ProfileId::kvm, nested::Options o = {},
                     const nested::L0Config& l0 = nested::L0Config::kvm_default())
        : NestedMachine(p, o, l0) {
        EXPECT_TRUE(backed);
    }
    void put(const arch::Vmcb& v) { ASSERT_TRUE(put_vmcb12(v)); }
    arch::Vmcb vmcb12() {
        arch::Vmcb v;
        EXPECT_TRUE(peek_vmcb12(v));
        return v;
    }
    /// L1 does CLGI, `k` arrives and is held, then L1 runs VMRUN on `v`.
    nested::StepResult vmrun_with_held(cpu::EventKind k, const arch::Vmcb& v = valid_vmcb12()) {
        put(v);
        (void)vcpu.l1_clgi();
        EXPECT_EQ(vcpu.external(k).outcome, Outcome::held_pending);
        return vmrun();
    }
    /// L2 runs on valid_vmcb12 and an SMI L1 does not intercept takes the
    /// vCPU into SMM (SMRAM at the default SMBASE, 0x30000).
    void enter_smm_from_l2() {
        ASSERT_TRUE(map_smram());
        put(valid_vmcb12());
        ASSERT_EQ(vmrun().outcome, Outcome::entered_l2);
        ASSERT_EQ(vcpu.external(cpu::EventKind::smi).outcome, Outcome::smm_entered);
    }
    /// L1 runs `v` (valid_vmcb12 plus the intercept `bit`), L2 then runs.
    void enter_l2_intercepting(unsigned bit, const arch::Vmcb& base = valid_vmcb12()) {
        arch::Vmcb v = base;
        v.set_intercept(bit);
        put(v);
        ASSERT_EQ(vmrun().outcome, Outcome::entered_l2);
    }
};

inline void give_l2_an_idt(Machine& m, arch::Vmcb& v) {
    ASSERT_TRUE(m.mem.map(kPml4, 0x3000) && m.mem.map(kIdt, 0x4000));
    ASSERT_TRUE(m.mem.write_u64(kPml4, (kPml4 + 0x1000) | 7) && m.mem.write_u64(kPml4 + 0x1000, (kPml4 + 0x2000) | 7) &&
                m.mem.write_u64(kPml4 + 0x2000, 0x87));  // PD[0]: 2 MiB page at 0, P RW US PS
    for (unsigned n = 0; n < 256; ++n) {
        // 64-bit interrupt gate (type 0xE, P, DPL 0), CS = 8.
        const std::uint64_t h = l2_handler(n);
        const std::uint64_t lo =
            (h & 0xFFFF) | (std::uint64_t{8} << 16) | (std::uint64_t{0x8E} << 40) | (((h >> 16) & 0xFFFF) << 48);
        ASSERT_TRUE(m.mem.write_u64(kIdt + n * 16, lo) && m.mem.write_u64(kIdt + n * 16 + 8, h >> 32));
    }
    ASSERT_TRUE(m.mem.write_u64(kGdt + 8, 0x00209A0000000000ULL));  // 64-bit code, P, DPL 0
    v.set(FieldId::cr3, kPml4);
    v.set_segment(arch::Seg::idtr, {0, 0, 0xFFF, kIdt});
    v.set_segment(arch::Seg::gdtr, {0, 0, 0xF, kGdt});
    v.set(FieldId::rsp, kStackTop);
}

}  // namespace nsvm::nested_test
