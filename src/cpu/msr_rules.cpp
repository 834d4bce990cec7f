// The #GP rules of the SVM MSRs (APM 15.30) and what a write stores.
#include "nsvm/cpu/msr_rules.hpp"

#include "nsvm/arch/bits.hpp"

namespace nsvm::cpu {
using checks::Feature;

namespace {
MsrWrite gp(const char* why) noexcept { return MsrWrite{why, 0, true}; }
MsrWrite ok(std::uint64_t stored) noexcept { return MsrWrite{nullptr, stored, true}; }

MsrWrite efer_write(const checks::CpuModel& cpu, std::uint64_t value, const SvmMsrState& s) noexcept {
    using namespace arch;
    // APM 3.1.7: reserved bits are MBZ. LMA is not written by WRMSR: the
    // processor sets it when paging turns long mode on (APM 14.6.1); KVM's
    // set_efer keeps the current LMA the same way.
    if ((value & cpu.efer_reserved_bits() & ~efer::LMA) != 0) return gp("EFER reserved bit: #GP(0)");
    // APM 15.30.1: with VM_CR.SVMDIS = 1, EFER.SVME is MBZ.
    if ((value & efer::SVME) != 0 && (s.vm_cr & vm_cr::SVMDIS) != 0)
        return gp("EFER.SVME with VM_CR.SVMDIS = 1: #GP(0)");
    return ok((value & ~efer::LMA) | (s.efer & efer::LMA));
}

MsrWrite vm_cr_write(std::uint64_t value, const SvmMsrState& s) noexcept {
    using namespace arch;
    // APM 15.30.1: bits 63:5 MBZ. Setting SVMDIS while EFER.SVME = 1 is
    // #GP(0) whatever LOCK is (the value written is judged, even where LOCK
    // then ignores the bit). While LOCK = 1, writes to LOCK and SVMDIS are
    // ignored; only SVM_KEY clears LOCK.
    if ((value & vm_cr::kMbz) != 0) return gp("VM_CR bits 63:5 are MBZ: #GP(0)");
    if ((value & vm_cr::SVMDIS) != 0 && (s.efer & efer::SVME) != 0)
        return gp("VM_CR.SVMDIS while EFER.SVME = 1: #GP(0)");
    constexpr std::uint64_t locked = vm_cr::LOCK | vm_cr::SVMDIS;
    if ((s.vm_cr & vm_cr::LOCK) != 0) value = (value & ~locked) | (s.vm_cr & locked);
    return ok(value);
}
}  // namespace

MsrWrite debugctl_write(std::uint64_t value, std::uint64_t reserved) noexcept {
    if ((value & reserved) != 0) return gp("DebugCtl reserved bit: #GP(0)");
    return ok(value);
}

MsrWrite svm_msr_write(const checks::CpuModel& cpu, std::uint32_t msr, std::uint64_t value,
                       const SvmMsrState& state) noexcept {
    using namespace arch;
    // WRMSR is a privileged instruction (APM Vol.3 WRMSR): #GP(0) at CPL > 0,
    // before any MSR is looked at.
    if (state.cpl != 0) return gp("WRMSR at CPL > 0: #GP(0)");
    switch (msr) {
        case msr::EFER: return efer_write(cpu, value, state);
        case msr::VM_CR: return vm_cr_write(value, state);
        case msr::VM_HSAVE_PA:
            // APM 15.30.4: bits 11:0 and the bits at and above MAXPHYADDR MBZ.
            if ((value & 0xFFF) != 0 || (value & cpu.reserved_pa_bits()) != 0)
                return gp("VM_HSAVE_PA not page aligned or beyond MAXPHYADDR: #GP(0)");
            return ok(value);
        case msr::TSC_RATIO:
            // APM 15.30.5: only with TSC scaling (CPUID Fn8000_000A_EDX[4]); bits 63:40 MBZ.
            if (!cpu.has(Feature::tsc_scale)) return gp("TSC_RATIO without TSC scaling: #GP(0)");
            if ((value & bits(63, 40)) != 0) return gp("TSC_RATIO bits 63:40 are MBZ: #GP(0)");
            return ok(value);
        case msr::TSC_AUX:
            // APM vol. 3 RDTSCP: TSC_AUX exists with RDTSCP (CPUID
            // Fn8000_0001_EDX[27]); RDTSCP returns its bits 31:0. AMD
            // processors ignore bits 63:32 of a write (KVM's
            // kvm_set_msr_common stores (u32)data for an AMD guest); no #GP.
            if (!cpu.has(Feature::rdtscp)) return gp("TSC_AUX without RDTSCP: #GP(0)");
            return ok(value & 0xFFFFFFFFULL);
        case msr::PAT:
            // APM 7.8.1: each entry must be a defined memory type.
            if (!pat_valid(value)) return gp("PAT with a reserved memory type: #GP(0)");
            return ok(value);
        case msr::DEBUGCTL: return debugctl_write(value, debugctl::kReserved);
        default: return MsrWrite{nullptr, value, false};
    }
}

}  // namespace nsvm::cpu
