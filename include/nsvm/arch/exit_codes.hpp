// SVM intercept exit codes (APM Vol.2 Appendix C, Table C-1).
#pragma once

#include "nsvm/util/cxx_standard.hpp"  // a clear #error below C++20

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nsvm::arch::exit_code {

inline constexpr std::uint64_t CR0_READ = 0x00, CR0_WRITE = 0x10, DR0_READ = 0x20, DR0_WRITE = 0x30,
                               EXCP_BASE = 0x40, INTR = 0x60, NMI = 0x61, SMI = 0x62, INIT = 0x63, VINTR = 0x64,
                               CR0_SEL_WRITE = 0x65, RDTSC = 0x6E, RDPMC = 0x6F, PUSHF = 0x70, POPF = 0x71,
                               CPUID = 0x72, RSM = 0x73, IRET = 0x74, SWINT = 0x75, INVD = 0x76, PAUSE = 0x77,
                               HLT = 0x78, INVLPG = 0x79, INVLPGA = 0x7A, IOIO = 0x7B, MSR = 0x7C,
                               TASK_SWITCH = 0x7D, FERR_FREEZE = 0x7E, SHUTDOWN = 0x7F, VMRUN = 0x80,
                               VMMCALL = 0x81, VMLOAD = 0x82, VMSAVE = 0x83, STGI = 0x84, CLGI = 0x85,
                               SKINIT = 0x86, RDTSCP = 0x87, ICEBP = 0x88, WBINVD = 0x89, MONITOR = 0x8A,
                               MWAIT = 0x8B, MWAIT_COND = 0x8C, XSETBV = 0x8D, RDPRU = 0x8E,
                               EFER_WRITE_TRAP = 0x8F, CR0_WRITE_TRAP = 0x90, INVLPGB = 0xA0,
                               INVLPGB_ILLEGAL = 0xA1, INVPCID = 0xA2, MCOMMIT = 0xA3, TLBSYNC = 0xA4,
                               BUSLOCK = 0xA5, IDLE_HLT = 0xA6, NPF = 0x400, AVIC_INCOMPLETE_IPI = 0x401,
                               AVIC_NOACCEL = 0x402, VMGEXIT = 0x403, SW = 0xF0000000ULL,
                               INVALID = ~std::uint64_t{0},        // -1 (KVM: SVM_EXIT_ERR)
                               BUSY = ~std::uint64_t{0} - 1,       // -2
                               IDLE_REQUIRED = ~std::uint64_t{0} - 2,  // -3
                               INVALID_PMC = ~std::uint64_t{0} - 3;    // -4

/// QEMU 7.2 stores VMEXIT_INVALID as the 32-bit -1 zero-extended (its
/// cpu_vmexit in target/i386/tcg/sysemu/svm_helper.c takes a uint32_t exit
/// code); KVM's dump_vmcb prints only the low 32 bits ("%08x").
inline constexpr std::uint64_t INVALID_32 = 0xFFFFFFFFULL;

struct Description {
    std::string name;     ///< APM name, e.g. "VMEXIT_CR0_READ", "VMEXIT_INVALID"
    std::string kvm_name; ///< Linux uapi name, e.g. "SVM_EXIT_READ_CR0", "SVM_EXIT_ERR"
    std::string meaning;  ///< one line
    bool known = false;
};

/// Names and explains any 64-bit exit code. Codes that Appendix C does not
/// define come back with known = false and a name such as "UNKNOWN_0x1234".
[[nodiscard]] Description describe(std::uint64_t code);

/// Parses a code given as a number (0x hex, decimal, -1..-4, or bare hex as a
/// dump prints it: "ffffffff", "00000400") or a name
/// ("VMEXIT_NPF", "SVM_EXIT_MSR", "npf", "invalid"). nullopt if neither.
[[nodiscard]] std::optional<std::uint64_t> parse(std::string_view text);

/// True for the codes a failed VMRUN produces (-1..-4), in either 64-bit
/// form or as the 32-bit value QEMU/KVM dumps show.
[[nodiscard]] constexpr bool is_vmrun_failure(std::uint64_t code) noexcept {
    return code >= INVALID_PMC || (code >= 0xFFFFFFFCULL && code <= 0xFFFFFFFFULL);
}

}  // namespace nsvm::arch::exit_code
