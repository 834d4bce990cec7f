// The one valid 64-bit guest VMCB (the docs/formats.md "VMCB as JSON" example) that the
// checks tests, the nested tests and the benchmarks start from: the repair
// layer's reference VMCB (src/repair/reference_vmcb.cpp), so what
// "valid" means is written down once: a catalogue change that invalidates it
// shows up in all three at the same time instead of in one silent copy.
// No GoogleTest here: nsvm_bench includes it too.
#pragma once

#include <cstdint>

#include "nsvm/arch/intercepts.hpp"  // the tests that start from it set intercepts
#include "nsvm/arch/vmcb.hpp"
#include "nsvm/repair/repair.hpp"

namespace nsvm::test_support {

/// Where the valid guest's permission maps live; tests and benchmarks back
/// these guest-physical ranges when they run the VMCB through nested VMRUN.
inline constexpr std::uint64_t kIopmBase = 0x10000;
inline constexpr std::uint64_t kMsrpmBase = 0x14000;

/// Long mode, paging, CPL 0 code segment, ASID 1, VMRUN and VMMCALL
/// intercepted: every consistency check of every profile passes.
inline arch::Vmcb valid_vmcb64() { return repair::reference_vmcb(); }

}  // namespace nsvm::test_support
