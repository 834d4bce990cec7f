// QEMU's vCPU register dump: what QEMU prints after "KVM: entry failed,
// hardware error 0x..." (the same layout as the monitor's `info registers`
// and `-d cpu`, QEMU's x86_cpu_dump_state). On AMD hosts the hardware error
// is the exit code of the failed VMRUN, and the dump is the guest state KVM
// tried to enter: a save area without any control area.
//
//   EAX=00000000 EBX=... / RAX=... (64-bit layout)     GPRs
//   EIP=0000fff0 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0
//   ES =0000 00000000 0000ffff 00009300 [DPL=0 DS16 [-WA]]
//   LDT=... TR =...  GDT=     base limit   IDT=     base limit
//   CR0=... CR2=... CR3=... CR4=...  DR6=... DR7=...  EFER=...
//
// A segment's flags word is the descriptor's second dword with bits 8-23 in
// place (type 8-11, S 12, DPL 13-14, P 15, AVL 20, L 21, D/B 22, G 23); the
// VMCB's attrib packs the same bits as 7:0 and 11:8 (APM 15.5.1, "segment
// attributes").
#include <array>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "dump_common.hpp"
#include "nsvm/arch/bits.hpp"

namespace nsvm::formats::detail {
namespace {

using arch::FieldId;

struct SegmentKey {
    std::string_view label;  ///< as QEMU prints it, blanks before '=' removed
    FieldId selector, attrib, limit, base;
};
constexpr std::array<SegmentKey, 8> kSegments{{
    {"ES", FieldId::es_selector, FieldId::es_attrib, FieldId::es_limit, FieldId::es_base},
    {"CS", FieldId::cs_selector, FieldId::cs_attrib, FieldId::cs_limit, FieldId::cs_base},
    {"SS", FieldId::ss_selector, FieldId::ss_attrib, FieldId::ss_limit, FieldId::ss_base},
    {"DS", FieldId::ds_selector, FieldId::ds_attrib, FieldId::ds_limit, FieldId::ds_base},
    {"FS", FieldId::fs_selector, FieldId::fs_attrib, FieldId::fs_limit, FieldId::fs_base},
    {"GS", FieldId::gs_selector, FieldId::gs_attrib, FieldId::gs_limit, FieldId::gs_base},
    {"LDT", FieldId::ldtr_selector, FieldId::ldtr_attrib, FieldId::ldtr_limit, FieldId::ldtr_base},
    {"TR", FieldId::tr_selector, FieldId::tr_attrib, FieldId::tr_limit, FieldId::tr_base},
}};

struct TableKey {
    std::string_view label;
    FieldId limit, base;
};
constexpr std::array<TableKey, 2> kTables{{
    {"GDT", FieldId::gdtr_limit, FieldId::gdtr_base},
    {"IDT", FieldId::idtr_limit, FieldId::idtr_base},
}};

/// Registers that are VMCB save-area fields. QEMU prints EAX.. in the
/// 32-bit layout and RAX.. in the 64-bit one.
struct RegisterKey {
    std::string_view label;
    FieldId field;
};
constexpr std::array<RegisterKey, 16> kRegisters{{
    {"EAX", FieldId::rax}, {"RAX", FieldId::rax}, {"ESP", FieldId::rsp}, {"RSP", FieldId::rsp},
    {"EIP", FieldId::rip}, {"RIP", FieldId::rip}, {"EFL", FieldId::rflags}, {"RFL", FieldId::rflags},
    {"CR0", FieldId::cr0}, {"CR2", FieldId::cr2}, {"CR3", FieldId::cr3}, {"CR4", FieldId::cr4},
    {"DR6", FieldId::dr6}, {"DR7", FieldId::dr7}, {"EFER", FieldId::efer}, {"CPL", FieldId::cpl},
}};

/// The VMCB attrib of QEMU's flags word.
[[nodiscard]] constexpr std::uint64_t attrib_of_flags(std::uint64_t flags) noexcept {
    return ((flags >> 8) & 0xFF) | ((flags >> 12) & 0xF00);
}

/// The line with blanks before each '=' removed ("ES =0000" -> "ES=0000")
/// and anything before the first dump label (a log prefix) cut off.
[[nodiscard]] std::string normalize(std::string_view line) {
    std::string out;
    out.reserve(line.size());
    for (char c : line) {
        if (c == '=') {
            while (!out.empty() && out.back() == ' ') out.pop_back();
        }
        out.push_back(c == '\t' ? ' ' : c);
    }
    return out;
}

class QemuReader {
public:
    explicit QemuReader(std::string_view source) : st_(source, Format::qemu_dump) {}

    [[nodiscard]] Result read(std::string_view text) {
        LineCursor lines(text);
        while (const auto line = lines.next()) {
            if (auto e = read_line(*line)) return nsvm::unexpected(std::move(*e));
        }
        if (!st_.seen("CR0") && !st_.seen("EFER") && !st_.seen("CS"))
            return nsvm::unexpected(st_.error(0, "", "no QEMU register dump here (no CR0=, EFER= or CS = line)"));
        return finish();
    }

private:
    [[nodiscard]] std::optional<Diagnostic> read_line(const Line& line) {
        const std::string_view raw = line.text;
        if (const auto p = raw.find("entry failed, hardware error"); p != std::string_view::npos)
            return hardware_error(line.number, trim(raw.substr(p + 28)));
        const std::string norm = normalize(raw);
        const auto toks = words(norm);
        for (std::size_t i = 0; i < toks.size(); ++i) {
            const auto eq = toks[i].find('=');
            if (eq == std::string_view::npos || eq == 0) continue;
            const std::string_view key = toks[i].substr(0, eq);
            std::string_view value = toks[i].substr(eq + 1);
            if (auto e = read_pair(line.number, key, value, toks, i)) return e;
        }
        return std::nullopt;
    }

    /// One KEY=VALUE; segment and table keys take the next tokens too (i moves).
    [[nodiscard]] std::optional<Diagnostic> read_pair(int ln, std::string_view key, std::string_view value,
                                                      const std::vector<std::string_view>& toks, std::size_t& i) {
        for (const auto& s : kSegments) {
            if (key != s.label) continue;
            if (i + 3 >= toks.size())
                return st_.error(ln, arch::info(s.selector).name,
                                 fmt::format("segment line {} needs selector, base, limit and flags", s.label));
            if (auto e = once(ln, key, arch::info(s.selector).name)) return e;
            return segment(ln, s, value, toks[i + 1], toks[i + 2], toks[i + 3], i);
        }
        for (const auto& t : kTables) {
            if (key != t.label) continue;
            // "GDT=     base limit": the value is the next token.
            std::size_t k = i;
            if (value.empty()) value = k + 1 < toks.size() ? toks[++k] : std::string_view{};
            if (k + 1 >= toks.size())
                return st_.error(ln, arch::info(t.base).name, fmt::format("{} needs a base and a limit", t.label));
            if (auto e = once(ln, key, arch::info(t.base).name)) return e;
            if (auto e = st_.store(ln, t.base, value, Radix::hex)) return e;
            if (auto e = st_.store(ln, t.limit, toks[k + 1], Radix::hex)) return e;
            i = k + 1;
            return std::nullopt;
        }
        for (const auto& r : kRegisters) {
            if (key != r.label) continue;
            if (auto e = once(ln, key, arch::info(r.field).name)) return e;
            return st_.store(ln, r.field, value, r.field == FieldId::cpl ? Radix::dec : Radix::hex);
        }
        if (key == "SMM") {
            smm_ = value == "1";
            smm_line_ = ln;
        }
        return std::nullopt;
    }

    [[nodiscard]] std::optional<Diagnostic> segment(int ln, const SegmentKey& s, std::string_view selector,
                                                    std::string_view base, std::string_view limit,
                                                    std::string_view flags, std::size_t& i) {
        if (auto e = st_.store(ln, s.selector, selector, Radix::hex)) return e;
        if (auto e = st_.store(ln, s.base, base, Radix::hex)) return e;
        if (auto e = st_.store(ln, s.limit, limit, Radix::hex)) return e;
        const auto f = parse_hex(flags);
        if (!f || (*f & ~0xFFFFFFULL) != 0)
            return st_.error(ln, arch::info(s.attrib).name,
                             fmt::format("'{}' is not QEMU's 24-bit descriptor flags word", printable(flags)));
        st_.result().vmcb.set(s.attrib, attrib_of_flags(*f));
        st_.mark_given(s.attrib);
        i += 3;
        return std::nullopt;
    }

    /// "KVM: entry failed, hardware error 0xffffffff": on SVM, KVM reports the
    /// VMRUN's exit code as the hardware entry failure reason (svm.c,
    /// handle_exit on SVM_EXIT_ERR -> KVM_EXIT_FAIL_ENTRY).
    [[nodiscard]] std::optional<Diagnostic> hardware_error(int ln, std::string_view value) {
        const auto w = words(value);
        if (w.empty()) return st_.error(ln, "control.exit_code", "no value after 'hardware error'");
        if (auto e = once(ln, "hardware error", "control.exit_code")) return e;
        return st_.store(ln, FieldId::exit_code, w.front(), Radix::hex);
    }

    [[nodiscard]] std::optional<Diagnostic> once(int ln, std::string_view key, std::string_view field) {
        // The first dump of a log is read; a second one is an error that says so
        // rather than a silent mix of two vCPUs' registers.
        if (!st_.seen(std::string(key))) return st_.once(ln, std::string(key), field);
        return st_.error(ln, field,
                         fmt::format("'{}' appears twice: this input holds more than one register dump; give one "
                                     "dump (one vCPU) per file",
                                     printable(key)));
    }

    [[nodiscard]] Result finish() {
        auto& r = st_.result();
        r.partial = true;
        // QEMU prints the EFER the guest sees; the VMCB KVM runs it on always
        // has EFER.SVME set (svm_set_efer: save.efer = efer | EFER_SVME).
        if (st_.seen("EFER")) {
            r.vmcb.set(FieldId::efer, r.vmcb.get(FieldId::efer) | arch::efer::SVME);
            r.warnings.push_back(Diagnostic{st_.source(), 0, "save.efer",
                                            "read as the VMCB KVM builds from this state: EFER.SVME set, as KVM's "
                                            "svm_set_efer always sets it in the VMCB (QEMU prints the guest's view)"});
        }
        r.warnings.push_back(
            Diagnostic{st_.source(), 0, "",
                       "a QEMU register dump has no control area (intercepts, ASID, permission maps, event "
                       "injection): only the checks on the guest state are decided; the others are listed as not "
                       "decided"});
        if (smm_)
            r.warnings.push_back(Diagnostic{
                st_.source(), smm_line_, "SMM",
                "the vCPU was in System Management Mode (SMM=1): KVM enters SMM from a long-mode guest with "
                "CR0.PG = 0 and PE = 0 while keeping the guest's CR3 (PCID bits, bits above 31 set); AMD "
                "hardware runs that state, Hyper-V as L0 (WSL2, Windows hosts) rejects it with VMEXIT_INVALID: "
                "compare --profile apm with --profile hyperv"});
        // The fields QEMU prints are the given ones; the rest are not
        // reported one by one (a hundred control fields) but stay "not
        // given", so the checks that read them are not decided.
        r.given = st_.given();
        return std::move(r);
    }

    DumpState st_;
    bool smm_ = false;
    int smm_line_ = 0;
};

}  // namespace

Result read_qemu_dump(std::string_view text, std::string_view source) { return QemuReader(source).read(text); }

}  // namespace nsvm::formats::detail
