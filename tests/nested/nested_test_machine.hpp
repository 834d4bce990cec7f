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

}  // namespace nsvm::nested_test
