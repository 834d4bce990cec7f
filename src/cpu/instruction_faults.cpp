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

const char* xsetbv_fault(std::uint32_t index, std::uint64_t value) noexcept {
    using arch::bit;
    using arch::bits;
    // Only XCR0 exists for XSETBV (XCR1, XINUSE, is XGETBV's alone).
    if (index != 0) return "XSETBV of an XCR other than XCR0: #GP(0)";
    // x87 state cannot be disabled (XCR0[0] is 1).
    if ((value & bit(0)) == 0) return "XSETBV with XCR0[0] (x87) clear: #GP(0)";
    // AVX (YMM) state needs SSE (XMM) state.
    if ((value & (bit(2) | bit(1))) == bit(2)) return "XSETBV with XCR0[2] (AVX) set and XCR0[1] (SSE) clear: #GP(0)";
    // MPX's two components (BNDREGS, BNDCSR) are enabled together.
    if (((value >> 3) & 1) != ((value >> 4) & 1)) return "XSETBV with XCR0[3] and XCR0[4] (MPX) unequal: #GP(0)";
    // AVX-512's three components (opmask, ZMM_Hi256, Hi16_ZMM) are enabled
    // together, and only with AVX.
    const std::uint64_t avx512 = value & bits(7, 5);
    if (avx512 != 0 && (avx512 != bits(7, 5) || (value & bit(2)) == 0))
        return "XSETBV with XCR0[7:5] (AVX-512) partial or without AVX: #GP(0)";
    // AMX's TILECFG and TILEDATA are enabled together.
    if (((value >> 17) & 1) != ((value >> 18) & 1)) return "XSETBV with XCR0[17] and XCR0[18] (AMX) unequal: #GP(0)";
    // Supervisor state components (PT 8, PASID 10, CET 11-12, HDC 13,
    // UINTR 14, LBR 15, HWP 16) are IA32_XSS's, never XCR0's; bit 63 is
    // reserved for an extension of XCR0 and never a component.
    if ((value & (bit(8) | bits(16, 10) | bit(63))) != 0)
        return "XSETBV setting a supervisor state component or XCR0[63]: #GP(0)";
    return nullptr;
}

}  // namespace nsvm::cpu
