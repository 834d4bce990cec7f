// The instruction gates of the SVM instructions: the #UD and #GP(0) checks
// that come before anything else the instruction does, and before its
// intercept when a guest executes it (APM 15.4, 15.5.1, Table 15-7; the
// instruction pages of VMRUN, VMLOAD, VMSAVE, STGI, CLGI, INVLPGA, SKINIT).
// They are the checks catalogue's instruction stage; this chooses which of
// them each instruction applies. The processor (SvmCpu) and L0's emulation
// of L1's SVM instructions (nested::Vcpu, KVM's nested_svm_check_permissions)
// both ask here.
#pragma once

#include <cstdint>

#include "nsvm/checks/catalogue.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"

namespace nsvm::cpu {

enum class SvmInsn : std::uint8_t { vmrun, vmload, vmsave, stgi, clgi, invlpga, skinit, vmmcall };

/// Where the instruction runs: the host's own VMRUN also has the VM_HSAVE_PA
/// and SMM gates; a guest's VMRUN exits through its mandatory intercept
/// (APM 15.5.1) before those matter.
enum class GateContext : std::uint8_t { host, guest };

/// The first gate `insn` fails on a processor in state `h`, or nullptr.
/// VMMCALL has none (APM 15.5.3: no CPL check; #UD only when not intercepted).
/// `h` is a temporary the gates adjust in place (the caller's, not a copy:
/// the gates run on every SVM instruction, and copying a state just built
/// field by field stalled on store forwarding, docs/performance.md).
[[nodiscard]] const checks::Check* svm_instruction_gate(SvmInsn insn, checks::HostState&& h,
                                                        const checks::CpuModel& cpu, const checks::Profile& profile,
                                                        GateContext where) noexcept;

/// The exception a failed gate raises: #UD (6) or #GP(0) (13), with a static
/// note; the gate itself is the report's failed_check.
struct GateFault {
    std::uint8_t vector;
    const char* note;
};
[[nodiscard]] GateFault gate_fault(const checks::Check& gate) noexcept;

}  // namespace nsvm::cpu
