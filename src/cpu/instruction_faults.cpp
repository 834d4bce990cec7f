// Exceptions before the intercept check (see instruction_faults.hpp), each
// from the instruction's page in APM Vol.3.
#include "nsvm/cpu/instruction_faults.hpp"

#include "nsvm/arch/bits.hpp"

namespace nsvm::cpu {

std::optional<InstructionFault> pre_intercept_fault(const checks::CpuModel& cpu, EventKind k,
                                                    const InstructionState& s) noexcept {
    using checks::Feature;
    const bool tsd_blocks = (s.cr4 & arch::cr4::TSD) != 0 && s.cpl > 0;
    switch (k) {
        case EventKind::rdtsc:
            if (tsd_blocks) return InstructionFault{13, "RDTSC with CR4.TSD at CPL > 0: #GP(0)"};
            return std::nullopt;
        case EventKind::rdtscp:
            if (!cpu.has(Feature::rdtscp)) return InstructionFault{6, "RDTSCP not in the CPU's CPUID: #UD"};
            if (tsd_blocks) return InstructionFault{13, "RDTSCP with CR4.TSD at CPL > 0: #GP(0)"};
            return std::nullopt;
        case EventKind::xsetbv:
            if (!cpu.has(Feature::xsave)) return InstructionFault{6, "XSETBV not in the CPU's CPUID: #UD"};
            if ((s.cr4 & arch::cr4::OSXSAVE) == 0) return InstructionFault{6, "XSETBV with CR4.OSXSAVE = 0: #UD"};
            if (s.cpl > 0) return InstructionFault{13, "XSETBV at CPL > 0: #GP(0)"};
            return std::nullopt;
        case EventKind::rdpru:
            if (!cpu.has(Feature::rdpru)) return InstructionFault{6, "RDPRU not in the CPU's CPUID: #UD"};
            return std::nullopt;
        case EventKind::invpcid:
            if (!cpu.has(Feature::invpcid)) return InstructionFault{6, "INVPCID not in the CPU's CPUID: #UD"};
            if (s.cpl > 0) return InstructionFault{13, "INVPCID at CPL > 0: #GP(0)"};
            return std::nullopt;
        case EventKind::fpu:
            // APM 8.2.8 (#NM): an x87 instruction with CR0.EM (no FPU to use)
            // or CR0.TS (its state belongs to another task, for lazy switching).
            if ((s.cr0 & (arch::cr0::EM | arch::cr0::TS)) != 0)
                return InstructionFault{7, "x87 instruction with CR0.EM or CR0.TS: #NM"};
            return std::nullopt;
        case EventKind::lmsw:
        case EventKind::clts:
            // Privileged: #GP(0) at CPL > 0, before the CR0 intercepts.
            if (s.cpl > 0) return InstructionFault{13, "LMSW/CLTS at CPL > 0: #GP(0)"};
            return std::nullopt;
        default: return std::nullopt;
    }
}

}  // namespace nsvm::cpu
