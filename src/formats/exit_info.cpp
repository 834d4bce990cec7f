// EXITINFO1/EXITINFO2 decoding per exit code (APM 15.7-15.14, 15.20 and the
// exit codes of APM Vol.2 Appendix C). Each branch cites the layout it follows.
#include <array>
#include <fmt/format.h>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/formats/decode.hpp"

namespace nsvm::formats {
namespace {

namespace ec = arch::exit_code;
using Parts = std::vector<std::pair<std::string, std::string>>;

std::string hex(std::uint64_t v) { return fmt::format("{:#x}", v); }

constexpr std::array<std::string_view, 16> kGprs = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                                    "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
constexpr std::array<std::string_view, 8> kSegRegs = {"ES", "CS", "SS", "DS", "FS", "GS", "6?", "7?"};

/// #PF-style error code (APM 8.4.2): also the low bits of NPF's EXITINFO1.
std::string pf_error_code(std::uint64_t e) {
    std::string s;
    const auto add = [&](std::string_view x) { s += (s.empty() ? "" : " ") + std::string(x); };
    namespace pf = arch::pf_err;
    add((e & pf::P) ? "P(protection)" : "not-present");
    add((e & pf::RW) ? "write" : "read");
    add((e & pf::US) ? "user" : "supervisor");
    if (e & pf::RSV) add("RSV(reserved bit set)");
    if (e & pf::ID) add("ID(instruction fetch)");
    if (e & pf::PK) add("PK(protection key)");
    if (e & pf::SS) add("SS(shadow stack)");
    return s;
}

void ioio(std::uint64_t i1, std::uint64_t i2, ExitInfoDecoding& d) {
    // APM 15.10.2, EXITINFO1 for IOIO: 31:16 port, 12:10 seg, 9:7 A64/A32/A16,
    // 6:4 SZ32/SZ16/SZ8, 3 REP, 2 STR, 0 TYPE (1 = IN).
    d.info1.emplace_back("port", hex((i1 >> 16) & 0xFFFF));
    d.info1.emplace_back("direction", (i1 & 1) ? "IN" : "OUT");
    d.info1.emplace_back("string", (i1 & 4) ? "yes (INS/OUTS)" : "no");
    d.info1.emplace_back("rep", (i1 & 8) ? "yes" : "no");
    const unsigned sz = (i1 >> 4) & 7;
    d.info1.emplace_back("size", sz == 1 ? "8-bit" : sz == 2 ? "16-bit" : sz == 4 ? "32-bit" : fmt::format("invalid ({:#x})", sz));
    const unsigned as = (i1 >> 7) & 7;
    d.info1.emplace_back("address_size",
                         as == 1 ? "16-bit" : as == 2 ? "32-bit" : as == 4 ? "64-bit" : fmt::format("invalid ({:#x})", as));
    d.info1.emplace_back("segment", std::string(kSegRegs[(i1 >> 10) & 7]) + " (decode assists; string ops only)");
    if (const auto rsvd = i1 & ~std::uint64_t{0xFFFF1FFD}; rsvd) d.notes.push_back(fmt::format("EXITINFO1 reserved bits set: {:#x}", rsvd));
    d.info2.emplace_back("next_rip", hex(i2));
}

void npf(std::uint64_t i1, std::uint64_t i2, ExitInfoDecoding& d) {
    // APM 15.25.6: EXITINFO1 = #PF-style error code; bit 32 = fault on the
    // final guest-physical translation, bit 33 = fault during the guest
    // page-table walk. EXITINFO2 = faulting guest-physical address.
    d.info1.emplace_back("error_code", pf_error_code(i1 & 0xFFFFFFFF));
    if (i1 & arch::npf::FINAL_GPA) d.info1.emplace_back("stage", "final guest-physical address translation (bit 32)");
    if (i1 & arch::npf::GUEST_PT) d.info1.emplace_back("stage", "guest page-table walk (bit 33)");
    if (const auto other = i1 & ~std::uint64_t{0x30000007F}; other)
        d.info1.emplace_back("other_bits", hex(other));
    d.info2.emplace_back("gpa", hex(i2));
}

void exception(unsigned v, std::uint64_t i1, std::uint64_t i2, ExitInfoDecoding& d) {
    d.notes.push_back(fmt::format("exception intercept: vector {} (#{})", v, arch::kExceptionNames[v]));
    if (v == 14) {
        // APM 15.12: #PF intercept: EXITINFO1 = error code, EXITINFO2 = CR2.
        d.info1.emplace_back("error_code", fmt::format("{} ({})", hex(i1), pf_error_code(i1)));
        d.info2.emplace_back("cr2", hex(i2) + " (faulting linear address)");
    } else if (arch::exception_has_error_code(v)) {
        d.info1.emplace_back("error_code", hex(i1));
    } else if (i1 || i2) {
        d.notes.push_back("this exception has no error code; EXITINFO1/2 are not defined for it");
    }
}

void cr_dr(std::uint64_t code, std::uint64_t i1, ExitInfoDecoding& d) {
    // APM 15.8.1 decode assists: EXITINFO1[3:0] = GPR, [63] = 1 for MOV CRx
    // (0 for LMSW/CLTS/SMSW, which carry no GPR); DR accesses have no MOV bit.
    const bool cr = code < 0x20 || code == ec::CR0_SEL_WRITE;
    const bool write = (code >= 0x10 && code < 0x20) || (code >= 0x30 && code < 0x40) || code == ec::CR0_SEL_WRITE;
    const unsigned n = code == ec::CR0_SEL_WRITE ? 0 : static_cast<unsigned>(code & 0xF);
    d.notes.push_back(fmt::format("{} {}{} (needs DecodeAssists for EXITINFO1)", write ? "write to" : "read of",
                                  cr ? "CR" : "DR", n));
    if (cr && !(i1 >> 63)) {
        d.info1.emplace_back("instruction", write ? "LMSW or CLTS (no GPR operand)" : "SMSW (no GPR operand)");
        return;
    }
    if (cr) d.info1.emplace_back("instruction", write ? fmt::format("MOV CR{}, reg", n) : fmt::format("MOV reg, CR{}", n));
    d.info1.emplace_back("gpr", std::string(kGprs[i1 & 0xF]));
}

void task_switch(std::uint64_t i1, std::uint64_t i2, ExitInfoDecoding& d) {
    // APM 15.14.1: EXITINFO1[15:0] = target TSS selector; EXITINFO2[31:0] =
    // error code, [36] IRET, [38] JMP, [44] error code valid.
    d.info1.emplace_back("tss_selector", hex(i1 & 0xFFFF));
    const char* via = (i2 & arch::bit(36)) ? "IRET" : (i2 & arch::bit(38)) ? "JMP" : "CALL, INTn or exception";
    d.info2.emplace_back("reason", via);
    if (i2 & arch::bit(44)) d.info2.emplace_back("error_code", hex(i2 & 0xFFFFFFFF));
}

}  // namespace

ExitInfoDecoding decode_exit_info_parts(std::uint64_t code, std::uint64_t i1, std::uint64_t i2) {
    ExitInfoDecoding d;
    if (ec::is_vmrun_failure(code)) {
        const bool invalid = code == ec::INVALID || code == ec::INVALID_32;
        d.notes.push_back(fmt::format("{}: VMRUN did not enter the guest; EXITINFO1/2 carry nothing{}",
                                      ec::describe(code).name,
                                      invalid ? " (run `nsvm check` on the VMCB to see which consistency check failed)"
                                              : ""));
        if (code <= 0xFFFFFFFFULL)
            d.notes.push_back("this is the 32-bit form of the code (KVM dump_vmcb / QEMU); the VMCB holds it sign-extended");
        return d;
    }
    if (code < 0x40 || code == ec::CR0_SEL_WRITE) {
        cr_dr(code, i1, d);
    } else if (code < 0x60) {
        exception(static_cast<unsigned>(code - 0x40), i1, i2, d);
    } else if (code == ec::IOIO) {
        ioio(i1, i2, d);
    } else if (code == ec::MSR) {
        // APM 15.11: EXITINFO1 = 0 for RDMSR, 1 for WRMSR; EXITINFO2 unused.
        d.info1.emplace_back("access", i1 == 0 ? "RDMSR (read; MSR number in ECX)"
                                               : i1 == 1 ? "WRMSR (write; MSR number in ECX, value in EDX:EAX)"
                                                         : fmt::format("invalid ({:#x}; expected 0 or 1)", i1));
        if (i2) d.notes.push_back("EXITINFO2 is unused for MSR exits but is non-zero");
    } else if (code == ec::NPF) {
        npf(i1, i2, d);
    } else if (code == ec::SMI) {
        // APM 15.13.3: EXITINFO1[0] tells an I/O-trap SMI from any other.
        d.info1.emplace_back("source", (i1 & 1) ? "I/O-trap SMI" : "external/other SMI");
        if (i1 & ~std::uint64_t{1}) d.info1.emplace_back("other_bits", hex(i1 & ~std::uint64_t{1}));
    } else if (code == ec::INVLPG) {
        d.info1.emplace_back("linear_address", hex(i1) + " (decode assists)");
    } else if (code == ec::TASK_SWITCH) {
        task_switch(i1, i2, d);
    } else if (code == ec::EFER_WRITE_TRAP) {
        d.info1.emplace_back("new_efer", hex(i1));
    } else if (code >= 0x90 && code < 0xA0) {
        d.info1.emplace_back(fmt::format("new_cr{}", code - 0x90), hex(i1));
    } else {
        d.notes.push_back("EXITINFO1/EXITINFO2 have no decoding for this exit code in nsvm");
        if (i1) d.info1.emplace_back("raw", hex(i1));
        if (i2) d.info2.emplace_back("raw", hex(i2));
    }
    return d;
}

std::string decode_exit_info(std::uint64_t code, std::uint64_t i1, std::uint64_t i2) {
    const auto d = decode_exit_info_parts(code, i1, i2);
    std::string out;
    const auto block = [&](std::string_view label, std::uint64_t v, const Parts& parts) {
        if (parts.empty()) return;
        out += fmt::format("  {} = {:#x}\n", label, v);
        for (const auto& [k, x] : parts) out += fmt::format("    {:<16} {}\n", k, x);
    };
    block("EXITINFO1", i1, d.info1);
    block("EXITINFO2", i2, d.info2);
    for (const auto& n : d.notes) out += "  note: " + n + "\n";
    return out;
}

nlohmann::json decode_exit_info_json(std::uint64_t code, std::uint64_t i1, std::uint64_t i2) {
    const auto d = decode_exit_info_parts(code, i1, i2);
    const auto obj = [](const Parts& parts) {
        auto o = nlohmann::json::array();
        for (const auto& [k, x] : parts) o.push_back({{"name", k}, {"value", x}});
        return o;
    };
    return {{"exit_code", hex(code)}, {"exit_info_1", hex(i1)}, {"exit_info_2", hex(i2)},
            {"info1", obj(d.info1)},   {"info2", obj(d.info2)},   {"notes", d.notes}};
}

}  // namespace nsvm::formats
