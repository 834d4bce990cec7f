#include "nsvm/arch/exit_codes.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <fmt/format.h>

#include "nsvm/arch/bits.hpp"

namespace nsvm::arch::exit_code {
namespace {

struct Named {
    std::uint64_t code;
    std::string_view apm;   // without the VMEXIT_ prefix
    std::string_view kvm;   // without the SVM_EXIT_ prefix
    std::string_view meaning;
};

// APM Appendix C, Table C-1 (codes outside the CR/DR/exception ranges).
constexpr std::array kNamed = {
    Named{0x60, "INTR", "INTR", "physical maskable interrupt (INTR intercept)"},
    Named{0x61, "NMI", "NMI", "physical NMI"},
    Named{0x62, "SMI", "SMI", "system-management interrupt; EXITINFO1[0] = 1 for an I/O-trap SMI"},
    Named{0x63, "INIT", "INIT", "physical INIT signal"},
    Named{0x64, "VINTR", "VINTR", "virtual interrupt ready to be taken (V_IRQ window)"},
    Named{0x65, "CR0_SEL_WRITE", "CR0_SEL_WRITE", "write to CR0 changing bits other than TS or MP"},
    Named{0x66, "IDTR_READ", "IDTR_READ", "read of IDTR (SIDT)"},
    Named{0x67, "GDTR_READ", "GDTR_READ", "read of GDTR (SGDT)"},
    Named{0x68, "LDTR_READ", "LDTR_READ", "read of LDTR (SLDT)"},
    Named{0x69, "TR_READ", "TR_READ", "read of TR (STR)"},
    Named{0x6A, "IDTR_WRITE", "IDTR_WRITE", "write of IDTR (LIDT)"},
    Named{0x6B, "GDTR_WRITE", "GDTR_WRITE", "write of GDTR (LGDT)"},
    Named{0x6C, "LDTR_WRITE", "LDTR_WRITE", "write of LDTR (LLDT)"},
    Named{0x6D, "TR_WRITE", "TR_WRITE", "write of TR (LTR)"},
    Named{0x6E, "RDTSC", "RDTSC", "RDTSC instruction"},
    Named{0x6F, "RDPMC", "RDPMC", "RDPMC instruction"},
    Named{0x70, "PUSHF", "PUSHF", "PUSHF instruction"},
    Named{0x71, "POPF", "POPF", "POPF instruction"},
    Named{0x72, "CPUID", "CPUID", "CPUID instruction"},
    Named{0x73, "RSM", "RSM", "RSM instruction"},
    Named{0x74, "IRET", "IRET", "IRET instruction"},
    Named{0x75, "SWINT", "SWINT", "software interrupt (INTn)"},
    Named{0x76, "INVD", "INVD", "INVD instruction"},
    Named{0x77, "PAUSE", "PAUSE", "PAUSE instruction (after the pause filter)"},
    Named{0x78, "HLT", "HLT", "HLT instruction"},
    Named{0x79, "INVLPG", "INVLPG", "INVLPG instruction; EXITINFO1 = linear address (decode assists)"},
    Named{0x7A, "INVLPGA", "INVLPGA", "INVLPGA instruction"},
    Named{0x7B, "IOIO", "IOIO", "IN/OUT/INS/OUTS; EXITINFO1 = port and access, EXITINFO2 = next rIP"},
    Named{0x7C, "MSR", "MSR", "RDMSR (EXITINFO1 = 0) or WRMSR (EXITINFO1 = 1)"},
    Named{0x7D, "TASK_SWITCH", "TASK_SWITCH", "task switch"},
    Named{0x7E, "FERR_FREEZE", "FERR_FREEZE", "FERR freeze (legacy FERR handling)"},
    Named{0x7F, "SHUTDOWN", "SHUTDOWN", "shutdown (triple fault)"},
    Named{0x80, "VMRUN", "VMRUN", "VMRUN executed by the guest"},
    Named{0x81, "VMMCALL", "VMMCALL", "VMMCALL executed by the guest"},
    Named{0x82, "VMLOAD", "VMLOAD", "VMLOAD executed by the guest"},
    Named{0x83, "VMSAVE", "VMSAVE", "VMSAVE executed by the guest"},
    Named{0x84, "STGI", "STGI", "STGI executed by the guest"},
    Named{0x85, "CLGI", "CLGI", "CLGI executed by the guest"},
    Named{0x86, "SKINIT", "SKINIT", "SKINIT executed by the guest"},
    Named{0x87, "RDTSCP", "RDTSCP", "RDTSCP instruction"},
    Named{0x88, "ICEBP", "ICEBP", "ICEBP (INT1) instruction"},
    Named{0x89, "WBINVD", "WBINVD", "WBINVD or WBNOINVD instruction"},
    Named{0x8A, "MONITOR", "MONITOR", "MONITOR or MONITORX instruction"},
    Named{0x8B, "MWAIT", "MWAIT", "MWAIT or MWAITX, unconditionally"},
    Named{0x8C, "MWAIT_CONDITIONAL", "MWAIT_COND", "MWAIT or MWAITX with the monitor armed"},
    Named{0x8D, "XSETBV", "XSETBV", "XSETBV instruction"},
    Named{0x8E, "RDPRU", "RDPRU", "RDPRU instruction"},
    Named{0x8F, "EFER_WRITE_TRAP", "EFER_WRITE_TRAP", "write to EFER (trap, after the write)"},
    Named{0xA0, "INVLPGB", "INVLPGB", "INVLPGB instruction"},
    Named{0xA1, "INVLPGB_ILLEGAL", "INVLPGB_ILLEGAL", "INVLPGB with an illegal operand"},
    Named{0xA2, "INVPCID", "INVPCID", "INVPCID instruction"},
    Named{0xA3, "MCOMMIT", "MCOMMIT", "MCOMMIT instruction"},
    Named{0xA4, "TLBSYNC", "TLBSYNC", "TLBSYNC instruction"},
    Named{0xA5, "BUSLOCK", "BUS_LOCK", "bus lock (threshold counter reached zero)"},
    Named{0xA6, "IDLE_HLT", "IDLE_HLT", "HLT with no pending virtual interrupt"},
    Named{0x400, "NPF", "NPF",
          "nested page fault; EXITINFO1 = #PF-style error code (+bit 32 final translation, bit 33 table walk), "
          "EXITINFO2 = faulting guest-physical address"},
    Named{0x401, "AVIC_INCOMPLETE_IPI", "AVIC_INCOMPLETE_IPI", "AVIC IPI delivery not completed"},
    Named{0x402, "AVIC_NOACCEL", "AVIC_UNACCELERATED_ACCESS", "AVIC access not accelerated"},
    Named{0x403, "VMGEXIT", "VMGEXIT", "VMGEXIT from an SEV-ES guest"},
    Named{0xF0000000ULL, "SW", "SW",
          "reserved for host software (APM C-1 prints F000_000h, a typo for F000_0000h); KVM uses it for the "
          "nested exit forced by an SMI"},
    Named{INVALID, "INVALID", "ERR", "VMRUN failed a consistency check (illegal guest state)"},
    Named{BUSY, "BUSY", "BUSY", "VMRUN: the VMSA is busy (VIntrCtrl.BUSY, APM 15.36.16)"},
    Named{IDLE_REQUIRED, "IDLE_REQUIRED", "IDLE_REQUIRED",
          "VMRUN: SMT protection needs the sibling thread idle (APM 15.36.17)"},
    Named{INVALID_PMC, "INVALID_PMC", "INVALID_PMC", "VMRUN: illegal PMC virtualization state (APM 15.39)"},
};

constexpr std::array<std::string_view, 16> kKvmCrName = {"0", "1", "2", "3", "4", "5", "6", "7",
                                                         "8", "9", "10", "11", "12", "13", "14", "15"};

std::string upper(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

}  // namespace

Description describe(std::uint64_t code) {
    if (code < 0x40) {
        const bool dr = code >= 0x20;
        const bool write = (code & 0x10) != 0;
        const auto n = kKvmCrName[code & 0xF];
        const std::string reg = std::string(dr ? "DR" : "CR") + std::string(n);
        return {fmt::format("VMEXIT_{}_{}", reg, write ? "WRITE" : "READ"),
                fmt::format("SVM_EXIT_{}_{}", write ? "WRITE" : "READ", reg),
                fmt::format("{} of {} (MOV {}); with decode assists EXITINFO1[3:0] = GPR, bit 63 = MOV",
                            write ? "write" : "read", reg, write ? "to" : "from"),
                true};
    }
    if (code < 0x60) {
        const unsigned v = static_cast<unsigned>(code - 0x40);
        return {fmt::format("VMEXIT_EXCP{}", v), fmt::format("SVM_EXIT_EXCP_BASE+{}", v),
                fmt::format("exception vector {} (#{}){}", v, kExceptionNames[v],
                            v == 14 ? "; EXITINFO1 = #PF error code, EXITINFO2 = faulting address" : ""),
                true};
    }
    if (code >= 0x90 && code < 0xA0) {
        const auto n = code - 0x90;
        return {fmt::format("VMEXIT_CR{}_WRITE_TRAP", n), fmt::format("SVM_EXIT_CR{}_WRITE_TRAP", n),
                fmt::format("write to CR{} (trap, after the write; EXITINFO1 = new value)", n), true};
    }
    for (const auto& e : kNamed) {
        if (e.code == code) {
            return {"VMEXIT_" + std::string(e.apm), "SVM_EXIT_" + std::string(e.kvm), std::string(e.meaning), true};
        }
    }
    if (code == INVALID_32) {
        return {"VMEXIT_INVALID (32-bit form)", "SVM_EXIT_ERR",
                "VMEXIT_INVALID truncated to 32 bits (KVM's dump_vmcb prints %08x; QEMU 7.2 stores it "
                "zero-extended): VMRUN failed a consistency check",
                true};
    }
    if (code >= 0x80000000ULL && code <= 0x8000FFFFULL) {
        return {fmt::format("SEV_ES_VMGEXIT_0x{:x}", code), "SVM_VMGEXIT_*",
                "SEV-ES software-defined VMGEXIT code (GHCB protocol)", true};
    }
    return {fmt::format("UNKNOWN_0x{:x}", code), "", "not an exit code defined by APM Appendix C", false};
}

namespace {

/// At least four hex digits only, with a digit a-f or a leading zero
/// ("0400"): the form a dump prints an exit code in, never a decimal a person
/// types nor a short name such as "db".
bool looks_like_dump_hex(std::string_view s) noexcept {
    if (s.size() < 4) return false;
    bool letter = false;
    for (char c : s) {
        const bool dec = c >= '0' && c <= '9';
        const bool hex = (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (!dec && !hex) return false;
        letter |= hex;
    }
    return letter || (s.size() > 1 && s.front() == '0');
}

}  // namespace

std::optional<std::uint64_t> parse(std::string_view text) {
    if (text.empty()) return std::nullopt;
    // Negative forms -1..-4.
    if (text.front() == '-') {
        unsigned n = 0;
        auto [p, ec] = std::from_chars(text.data() + 1, text.data() + text.size(), n);
        if (ec == std::errc{} && p == text.data() + text.size() && n >= 1 && n <= 4) return ~std::uint64_t{0} - (n - 1);
        return std::nullopt;
    }
    std::uint64_t v = 0;
    std::string_view digits = text;
    int base = 10;
    if (digits.starts_with("0x") || digits.starts_with("0X")) {
        digits.remove_prefix(2);
        base = 16;
    } else if (looks_like_dump_hex(digits)) {
        // As dumps print it (KVM's "%08x", Xen's "%016lx"): "ffffffff",
        // "00000400" are hex, although the latter has only decimal digits.
        base = 16;
    }
    if (!digits.empty()) {
        auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
        if (ec == std::errc{} && p == digits.data() + digits.size()) return v;
        if (ec == std::errc::result_out_of_range) return std::nullopt;
    }
    // Names, with or without prefixes.
    std::string s = upper(text);
    for (std::string_view prefix : {"VMEXIT_", "SVM_EXIT_"}) {
        if (std::string_view(s).starts_with(prefix)) s.erase(0, prefix.size());
    }
    for (const auto& e : kNamed) {
        if (s == e.apm || s == e.kvm) return e.code;
    }
    if (s == "ERR") return INVALID;
    for (std::uint64_t c = 0; c < 0x60; ++c) {
        auto d = describe(c);
        for (std::string_view prefix : {"VMEXIT_", "SVM_EXIT_"}) {
            for (const auto& n : {d.name, d.kvm_name}) {
                if (std::string_view(n).starts_with(prefix) && std::string_view(n).substr(prefix.size()) == s) return c;
            }
        }
    }
    for (std::uint64_t c = 0x90; c < 0xA0; ++c) {
        if (describe(c).name.substr(7) == s) return c;
    }
    return std::nullopt;
}

}  // namespace nsvm::arch::exit_code
