// MOV to CR0/CR3/CR4/CR8/DR6/DR7 rules (see control_regs.hpp).
#include "nsvm/cpu/control_regs.hpp"

#include "nsvm/arch/bits.hpp"

namespace nsvm::cpu {

namespace {
const char* cr0_fault(std::uint64_t value, const ControlState& s) noexcept {
    using namespace arch;
    // APM 3.1.1: bits 63:32 MBZ; NW without CD and PG without PE are #GP.
    if ((value >> 32) != 0) return "CR0 bits 63:32 are MBZ: #GP(0)";
    if ((value & cr0::NW) != 0 && (value & cr0::CD) == 0) return "CR0.NW without CR0.CD: #GP(0)";
    if ((value & cr0::PG) != 0 && (value & cr0::PE) == 0) return "CR0.PG without CR0.PE: #GP(0)";
    const bool long_mode = (s.efer & efer::LMA) != 0;
    // APM 14.7: long mode is left by clearing CR0.PG from compatibility
    // mode only; never with CR4.PCIDE set (APM 3.1.3; KVM's kvm_set_cr0).
    const bool clears_pg = (s.cr0 & cr0::PG) != 0 && (value & cr0::PG) == 0;
    if (clears_pg && long_mode && s.cs_l) return "CR0.PG cleared in 64-bit mode: #GP(0)";
    if (clears_pg && (s.cr4 & cr4::PCIDE) != 0) return "CR0.PG cleared with CR4.PCIDE: #GP(0)";
    // APM 14.6.1: activating long mode (CR0.PG with EFER.LME) needs CR4.PAE
    // and a code segment that is not 64-bit.
    const bool sets_pg = (s.cr0 & cr0::PG) == 0 && (value & cr0::PG) != 0;
    if (sets_pg && (s.efer & efer::LME) != 0 && (s.cr4 & cr4::PAE) == 0)
        return "long mode activated without CR4.PAE: #GP(0)";
    if (sets_pg && (s.efer & efer::LME) != 0 && s.cs_l) return "long mode activated with CS.L = 1: #GP(0)";
    return nullptr;
}
}  // namespace

const char* mov_to_cr_fault(const checks::CpuModel& cpu, unsigned cr, std::uint64_t value,
                            const ControlState& s) noexcept {
    using namespace arch;
    switch (cr) {
        case 0: return cr0_fault(value, s);
        case 3:
            // Bits at and above MAXPHYADDR are MBZ; with CR4.PCIDE bit 63 is
            // the no-flush bit, not part of CR3 (cr3_as_written).
            return (cr3_as_written(value, s.cr4) & cpu.reserved_pa_bits()) != 0 ? "CR3 beyond MAXPHYADDR: #GP(0)"
                                                                                 : nullptr;
        case 4:
            if ((value & cpu.cr4_reserved_bits()) != 0) return "CR4 reserved bit: #GP(0)";
            // APM 3.1.3: CR4.PAE cannot be cleared while long mode is active.
            if ((s.efer & efer::LMA) != 0 && (value & cr4::PAE) == 0) return "CR4.PAE cleared in long mode: #GP(0)";
            return nullptr;
        case 8:
            // APM 3.1.5 (TPR): CR8 bits 63:4 are reserved, MBZ.
            return (value >> 4) != 0 ? "CR8 bits 63:4 are MBZ: #GP(0)" : nullptr;
        default: return nullptr;
    }
}

const char* mov_to_dr_fault(unsigned dr, std::uint64_t value) noexcept {
    if (dr == 6 && (value & arch::dr6::kMbz) != 0) return "DR6 bits 63:32 are MBZ: #GP(0)";
    if (dr == 7 && (value & arch::dr7::kMbz) != 0) return "DR7 bits 63:32 are MBZ: #GP(0)";
    return nullptr;
}

std::uint64_t cr0_as_written(std::uint64_t value) noexcept { return value | arch::cr0::ET; }

std::uint64_t cr3_as_written(std::uint64_t value, std::uint64_t cr4) noexcept {
    return (cr4 & arch::cr4::PCIDE) != 0 ? (value & ~arch::bit(63)) : value;
}

std::uint64_t efer_after_cr0_write(std::uint64_t efer, std::uint64_t cr0) noexcept {
    using namespace arch;
    if ((efer & efer::LME) == 0) return efer;
    return (cr0 & cr0::PG) != 0 ? (efer | efer::LMA) : (efer & ~efer::LMA);
}

}  // namespace nsvm::cpu
