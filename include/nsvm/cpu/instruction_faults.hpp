// The exceptions an instruction raises before its intercept is checked:
// "instruction intercepts are checked after simple exceptions (such as #GP
// when CPL is incorrect, or #UD) have been checked" (APM 15.7). An
// instruction the CPU model does not offer is #UD, whoever intercepts it, so
// a guest whose CPUID lacks RDTSCP, XSETBV, RDPRU or INVPCID gets #UD even
// where its hypervisor set the intercept (KVM does the same for L2 on L1's
// CPUID: svm_recalc_instruction_intercepts and the nested intercept checks;
// kvm-unit-tests, Dec 2025). The SVM instructions' own gates are in gates.hpp.
#pragma once

#include <cstdint>
#include <optional>

#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/cpu/events.hpp"

namespace nsvm::cpu {

struct InstructionFault {
    std::uint8_t vector = 6;  ///< #UD (6), #NM (7) or #GP (13, error code 0)
    const char* note = "";    ///< static string
};

/// The state the checks read.
struct InstructionState {
    std::uint64_t cr0 = 0;
    std::uint64_t cr4 = 0;
    std::uint8_t cpl = 0;
};

/// #UD, #NM or #GP(0) for `k` on `cpu` in state `s`, or nullopt when the
/// instruction reaches its intercept check.
[[nodiscard]] std::optional<InstructionFault> pre_intercept_fault(const checks::CpuModel& cpu, EventKind k,
                                                                  const InstructionState& s) noexcept;

/// The #GP(0) of an XSETBV that reaches execution (not intercepted: the
/// intercept is checked first, and an intercepted XSETBV exits with the
/// value unjudged, as a MOV to CR does) with an XCR index or a value that
/// every processor refuses (APM Vol.4 XSETBV, 11.5.2; Intel SDM Vol.1 13.3):
/// its note, or nullptr. What a processor refuses beyond these, a component
/// its CPUID Fn0000_000D does not report, depends on the CPU and is not
/// modelled (checks::CpuModel has no XCR0 support mask): such a value
/// passes here.
[[nodiscard]] const char* xsetbv_fault(std::uint32_t index, std::uint64_t value) noexcept;

}  // namespace nsvm::cpu
