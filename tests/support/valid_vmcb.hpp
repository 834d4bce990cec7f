// The one valid 64-bit guest VMCB (the interfaces.md §1 example) that the
// checks tests, the nested tests and the benchmarks start from, so what
// "valid" means is written down once: a catalogue change that invalidates it
// shows up in all three at the same time instead of in one silent copy.
// No GoogleTest here: nsvm_bench includes it too.
#pragma once

#include <cstdint>

#include "nsvm/arch/intercepts.hpp"
#include "nsvm/arch/vmcb.hpp"

namespace nsvm::test_support {

/// Where the valid guest's permission maps live; tests and benchmarks back
/// these guest-physical ranges when they run the VMCB through nested VMRUN.
inline constexpr std::uint64_t kIopmBase = 0x10000;
inline constexpr std::uint64_t kMsrpmBase = 0x14000;

/// Long mode, paging, CPL 0 code segment, ASID 1, VMRUN and VMMCALL
/// intercepted: every consistency check of every profile passes.
inline arch::Vmcb valid_vmcb64() {
    using arch::FieldId;
    arch::Vmcb v;
    v.set_intercept(arch::intercept::VMRUN);
    v.set_intercept(arch::intercept::VMMCALL);
    v.set(FieldId::asid, 1);
    v.set(FieldId::iopm_base_pa, kIopmBase);
    v.set(FieldId::msrpm_base_pa, kMsrpmBase);
    v.set_segment(arch::Seg::cs, {0x8, 0xA9B, 0xFFFFFFFF, 0});
    v.set_segment(arch::Seg::ss, {0x10, 0xC93, 0xFFFFFFFF, 0});
    v.set(FieldId::efer, 0x1D00);
    v.set(FieldId::cr0, 0x80050033);
    v.set(FieldId::cr4, 0x6F8);
    v.set(FieldId::cr3, 0x1000);
    v.set(FieldId::dr6, 0xFFFF0FF0);
    v.set(FieldId::dr7, 0x400);
    v.set(FieldId::rflags, 0x2);
    v.set(FieldId::rip, 0x400000);
    v.set(FieldId::g_pat, 0x0007040600070406ULL);
    return v;
}

}  // namespace nsvm::test_support
