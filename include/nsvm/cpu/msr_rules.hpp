// WRMSR to the SVM MSRs (APM 15.30): which values raise #GP(0) and what the
// MSR holds after a write that does not. The processor (SvmCpu::wrmsr) and
// L0's emulation of L1's WRMSR (nested::Vcpu::l1_wrmsr, KVM's svm_set_msr)
// both apply these rules; there is no second copy.
#pragma once

#include <cstdint>

#include "nsvm/checks/cpu_model.hpp"

namespace nsvm::cpu {

/// The processor state an SVM MSR write is judged against.
struct SvmMsrState {
    std::uint64_t efer = 0;   ///< current EFER (LMA is the processor's)
    std::uint64_t vm_cr = 0;  ///< current VM_CR (LOCK freezes LOCK and SVMDIS)
    std::uint8_t cpl = 0;     ///< WRMSR is privileged: any MSR at CPL > 0 is #GP(0)
};

/// The outcome of a WRMSR: #GP(0) with its reason, or the value the MSR holds
/// afterwards (EFER keeps the current LMA; VM_CR with LOCK = 1 keeps LOCK and
/// SVMDIS). `svm_msr` is false for an MSR these rules do not cover: the
/// caller decides (the value is passed through unchanged). CPL > 0 is #GP(0) for
/// every MSR.
struct MsrWrite {
    const char* gp = nullptr;  ///< static reason of the #GP(0), or nullptr
    std::uint64_t stored = 0;
    bool svm_msr = true;
};

/// EFER (C000_0080), VM_CR (C001_0114), VM_HSAVE_PA (C001_0117), TSC_RATIO
/// (C000_0104), TSC_AUX (C000_0103: bits 31:0 kept), PAT (0277) and DebugCtl (01D9, with the processor's reserved
/// bits, arch::debugctl::kReserved).
[[nodiscard]] MsrWrite svm_msr_write(const checks::CpuModel& cpu, std::uint32_t msr, std::uint64_t value,
                                     const SvmMsrState& state) noexcept;

/// WRMSR DebugCtl (APM vol. 2 13.1.1.6): a value with a bit of `reserved` set
/// is #GP(0), otherwise DebugCtl holds it. The processor's reserved bits are
/// 63:6; a hypervisor that virtualizes fewer bits (KVM's svm_set_msr, which
/// keeps only LBR) judges the guest's value against its own set with the same rule.
[[nodiscard]] MsrWrite debugctl_write(std::uint64_t value, std::uint64_t reserved) noexcept;

}  // namespace nsvm::cpu
