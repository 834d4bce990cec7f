#include "nsvm/arch/intercepts.hpp"

#include <array>
#include <cctype>
#include <charconv>

#include "nsvm/arch/bits.hpp"

namespace nsvm::arch::intercept {
namespace {

constexpr std::array<std::string_view, 32> kWord3 = {
    "INTR",       "NMI",        "SMI",        "INIT",      "VINTR",      "SELECTIVE_CR0", "STORE_IDTR",
    "STORE_GDTR", "STORE_LDTR", "STORE_TR",   "LOAD_IDTR", "LOAD_GDTR",  "LOAD_LDTR",     "LOAD_TR",
    "RDTSC",      "RDPMC",      "PUSHF",      "POPF",      "CPUID",      "RSM",           "IRET",
    "INTN",       "INVD",       "PAUSE",      "HLT",       "INVLPG",     "INVLPGA",       "IOIO_PROT",
    "MSR_PROT",   "TASK_SWITCH", "FERR_FREEZE", "SHUTDOWN"};
constexpr std::array<std::string_view, 16> kWord4 = {
    "VMRUN", "VMMCALL", "VMLOAD", "VMSAVE", "STGI",  "CLGI",       "SKINIT", "RDTSCP",
    "ICEBP", "WBINVD",  "MONITOR", "MWAIT", "MWAIT_COND", "XSETBV", "RDPRU", "TRAP_EFER_WRITE"};
constexpr std::array<std::string_view, 7> kWord5 = {"INVLPGB", "INVLPGB_ILLEGAL", "INVPCID", "MCOMMIT",
                                                    "TLBSYNC", "BUSLOCK",         "IDLE_HLT"};

std::string upper(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

}  // namespace

std::string name(unsigned b) {
    if (b < 16) return "CR" + std::to_string(b) + "_READ";
    if (b < 32) return "CR" + std::to_string(b - 16) + "_WRITE";
    if (b < 48) return "DR" + std::to_string(b - 32) + "_READ";
    if (b < 64) return "DR" + std::to_string(b - 48) + "_WRITE";
    if (b < 96) return "EXCEPTION_" + std::to_string(b - 64);
    if (b < 128) return std::string(kWord3[b - 96]);
    if (b < 144) return std::string(kWord4[b - 128]);
    if (b < 160) return "TRAP_CR" + std::to_string(b - 144) + "_WRITE";
    if (b < 167) return std::string(kWord5[b - 160]);
    return {};
}

std::optional<unsigned> find(std::string_view raw) {
    const std::string s = upper(raw);
    for (unsigned b = 0; b < kBits; ++b) {
        const auto n = name(b);
        if (!n.empty() && n == s) return b;
    }
    // Aliases people write: "INTn", "SELECTIVE_CR0_WRITE", "IOIO", "MSR", "EFER_WRITE_TRAP".
    if (s == "SEL_CR0" || s == "CR0_SEL_WRITE" || s == "SELECTIVE_CR0_WRITE") return SELECTIVE_CR0;
    if (s == "IOIO") return IOIO_PROT;
    if (s == "MSR") return MSR_PROT;
    if (s == "SWINT") return INTN;
    if (s == "EFER_WRITE_TRAP") return TRAP_EFER_WRITE;
    // Exception short names: "PF", "#PF", "EXCP14", "EXCEPTION14".
    std::string_view e = s;
    if (!e.empty() && e.front() == '#') e.remove_prefix(1);
    for (unsigned v = 0; v < 32; ++v) {
        if (e == kExceptionNames[v] && !(e.front() >= '0' && e.front() <= '9')) return exception(v);
    }
    for (std::string_view prefix : {"EXCP", "EXCEPTION", "EXCP_"}) {
        if (e.starts_with(prefix)) {
            auto digits = e.substr(prefix.size());
            unsigned v = 0;
            auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
            if (ec == std::errc{} && p == digits.data() + digits.size() && v < 32 && !digits.empty())
                return exception(v);
        }
    }
    return std::nullopt;
}

}  // namespace nsvm::arch::intercept
