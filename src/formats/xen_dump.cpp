// Reader for the text Xen's svm_vmcb_dump() prints, as `xl dmesg` shows it:
// every line behind "(XEN)", optionally followed by a console timestamp.
// Values are "%#x" (so zero prints as "0", not "0x0"), "0x%016x", or decimal
// for cpl and the yes/no flags. Older Xen versions print other labels
// (exitintinfo, np_enable, guest_asid) and the segments as "CS: sel=0x0010,
// attr=0x0a9b, limit=..., base=..."; the reader goes by label, never by order.
//
// 'xl debug-keys v' dumps every vCPU of every HVM domain in one go (Xen's
// vmcb_dump key handler: ">>> Domain 1 <<<", a tab and "VCPU 0", then the
// dump): each is one dump of the log, named d1v0 as Xen names vCPUs.
// Xen's own validator, svm_vmcb_isvalid(), prints one line per failed check;
// those lines are mapped to nsvm check ids (kIsvalidReasons) and travel with
// the dump of the vCPU they name, so nsvm check can set Xen's verdict beside
// its own.
#include <algorithm>
#include <array>
#include <charconv>
#include <map>
#include <fmt/format.h>

#include "dump_common.hpp"
#include "nsvm/arch/bits.hpp"

namespace nsvm::formats::detail {
namespace {

using arch::FieldId;

enum class Kind : std::uint8_t {
    field,     ///< one value into one field
    raw8,      ///< a 64-bit union Xen prints whole (vintr, int_stat, exit_int_info)
    vmload,    ///< "virtual vmload/vmsave = %d": derived from virt_ext bit 1
    ignore,    ///< VMCB size, its addresses
};

struct Label {
    std::string_view label;
    Kind kind;
    FieldId id = FieldId::asid;
    Radix radix = Radix::hex;
    std::uint16_t offset = 0;  ///< raw8
};

constexpr std::array kLabels = {
    Label{"cr_intercepts", Kind::field, FieldId::intercepts0},
    Label{"dr_intercepts", Kind::field, FieldId::intercepts1},
    Label{"exception_intercepts", Kind::field, FieldId::intercepts2},
    Label{"general1_intercepts", Kind::field, FieldId::intercepts3},
    Label{"general2_intercepts", Kind::field, FieldId::intercepts4},
    Label{"general3_intercepts", Kind::field, FieldId::intercepts5},
    Label{"iopm_base_pa", Kind::field, FieldId::iopm_base_pa},
    Label{"msrpm_base_pa", Kind::field, FieldId::msrpm_base_pa},
    Label{"tsc_offset", Kind::field, FieldId::tsc_offset},
    Label{"tlb_control", Kind::field, FieldId::tlb_ctl},
    Label{"vintr", Kind::raw8, FieldId::int_ctl, Radix::hex, 0x060},  // int_ctl + int_vector
    Label{"int_stat", Kind::raw8, FieldId::int_state, Radix::hex, 0x068},
    Label{"interrupt_shadow", Kind::raw8, FieldId::int_state, Radix::hex, 0x068},  // older Xen
    Label{"exitcode", Kind::field, FieldId::exit_code},  // 64-bit in Xen: no truncation
    Label{"exit_int_info", Kind::raw8, FieldId::exit_int_info, Radix::hex, 0x088},
    Label{"exitintinfo", Kind::raw8, FieldId::exit_int_info, Radix::hex, 0x088},  // older Xen
    Label{"exitinfo1", Kind::field, FieldId::exit_info_1},
    Label{"exitinfo2", Kind::field, FieldId::exit_info_2},
    Label{"asid", Kind::field, FieldId::asid},
    Label{"guest_asid", Kind::field, FieldId::asid},
    Label{"np_ctrl", Kind::field, FieldId::misc_ctl},
    Label{"np_enable", Kind::field, FieldId::misc_ctl},
    Label{"virtual vmload/vmsave", Kind::vmload, FieldId::misc_ctl2, Radix::dec},
    Label{"virt_ext", Kind::field, FieldId::misc_ctl2},
    Label{"cpl", Kind::field, FieldId::cpl, Radix::dec},
    Label{"efer", Kind::field, FieldId::efer},
    Label{"star", Kind::field, FieldId::star},
    Label{"lstar", Kind::field, FieldId::lstar},
    Label{"CR0", Kind::field, FieldId::cr0},
    Label{"CR2", Kind::field, FieldId::cr2},
    Label{"CR3", Kind::field, FieldId::cr3},
    Label{"CR4", Kind::field, FieldId::cr4},
    Label{"RSP", Kind::field, FieldId::rsp},
    Label{"RIP", Kind::field, FieldId::rip},
    Label{"RAX", Kind::field, FieldId::rax},
    Label{"RFLAGS", Kind::field, FieldId::rflags},
    Label{"DR6", Kind::field, FieldId::dr6},
    Label{"DR7", Kind::field, FieldId::dr7},
    Label{"CSTAR", Kind::field, FieldId::cstar},
    Label{"SFMask", Kind::field, FieldId::sfmask},
    Label{"KernGSBase", Kind::field, FieldId::kernel_gs_base},
    Label{"PAT", Kind::field, FieldId::g_pat},
    Label{"SSP", Kind::field, FieldId::ssp},
    Label{"S_CET", Kind::field, FieldId::s_cet},
    Label{"ISST", Kind::field, FieldId::isst_addr},
    Label{"H_CR3", Kind::field, FieldId::nested_cr3},
    Label{"CleanBits", Kind::field, FieldId::clean},
    Label{"sysenter_cs", Kind::field, FieldId::sysenter_cs},
    Label{"sysenter_esp", Kind::field, FieldId::sysenter_esp},
    Label{"sysenter_eip", Kind::field, FieldId::sysenter_eip},
    Label{"Size of VMCB", Kind::ignore},
    Label{"paddr", Kind::ignore},
    Label{"vaddr", Kind::ignore},
    Label{"address", Kind::ignore},  // older Xen: "Size of VMCB = %d, address = %p"
};

constexpr std::array<std::string_view, 10> kSegs = {"CS", "DS", "SS", "ES", "FS", "GS", "GDTR", "LDTR", "IDTR", "TR"};

const Label* find_label(std::string_view l) {
    for (const auto& x : kLabels) {
        if (x.label == l) return &x;
    }
    return nullptr;
}

/// Removes "(XEN)" and an optional console timestamp "[  12.345]" /
/// "[2026-11-25 03:46:35.123]".
std::string_view strip_prefix(std::string_view s) {
    if (auto p = s.find("(XEN)"); p != std::string_view::npos) s = s.substr(p + 5);
    s = trim(s);
    if (s.starts_with("[")) {
        if (auto e = s.find(']'); e != std::string_view::npos) s = trim(s.substr(e + 1));
    }
    return s;
}

struct Pair {
    std::string label;
    std::string_view value;
};

/// "label = value label2 = value2", with commas and "RFLAGS=0x.." allowed,
/// and np_ctrl's flag decoration dropped (it repeats bits of the value):
/// ":[ NP][ SEV]" in some versions, ": NP SEV_ES" (flag words after a colon,
/// to the end of the line) in others.
std::vector<Pair> tokenize(std::string& s, std::string& leftover) {
    if (auto p = s.find(":["); p != std::string::npos) {
        const auto e = s.rfind(']');
        s.erase(p, (e == std::string::npos || e < p ? s.size() : e + 1) - p);
    } else if (auto n = s.find("np_ctrl"); n != std::string::npos) {
        if (auto c = s.find(": ", n); c != std::string::npos) s.erase(c);
    }
    std::string spaced;
    for (char c : s) {
        if (c == ',') {
            spaced += ' ';
        } else if (c == '=') {
            spaced += " = ";
        } else {
            spaced += c;
        }
    }
    s = spaced;
    std::vector<Pair> out;
    std::vector<std::string_view> pending;
    const auto toks = words(s);
    for (std::size_t i = 0; i < toks.size(); ++i) {
        if (toks[i] == "=") {
            std::string label;
            for (auto w : pending) label += (label.empty() ? "" : " ") + std::string(w);
            pending.clear();
            out.push_back({label, i + 1 < toks.size() && toks[i + 1] != "=" ? toks[i + 1] : std::string_view{}});
            if (!out.back().value.empty()) ++i;
        } else {
            pending.push_back(toks[i]);
        }
    }
    for (auto w : pending) leftover += (leftover.empty() ? "" : " ") + std::string(w);
    return out;
}

class XenReader {
public:
    explicit XenReader(std::string_view source) : st_(source, Format::xen_dump) {}

    /// Reads one dump: `text` is its part of the log, whose first line is
    /// line `first_line` of the input (split_xen_dumps cut it out).
    Result read(std::string_view text, int first_line) {
        LineCursor lines(text, first_line);
        while (const auto ln = lines.next()) {
            const auto s = strip_prefix(ln->text);
            if (s.empty() || s.starts_with("Dumping guest's current state")) continue;
            if (auto err = line(ln->number, s)) return nsvm::unexpected(std::move(*err));
        }
        if (!st_.seen("cr_intercepts"))
            return nsvm::unexpected(st_.error(0, "", "no 'cr_intercepts = ...' line: this is not Xen svm_vmcb_dump() "
                                                     "output (or it is cut off before the control area)"));
        if (!st_.seen("CR0"))
            return nsvm::unexpected(st_.error(0, "", "no 'CR0 = ...' line: the Xen dump is cut off before the guest "
                                                     "state"));
        finish_vmload();
        return st_.finish("this Xen svm_vmcb_dump() text");
    }

private:
    std::optional<Diagnostic> line(int n, std::string_view s) {
        const auto w = words(s);
        if (w.empty()) return std::nullopt;
        if (w.front() == "event_inj") return event_inj(n, w);
        if (w.size() == 4 && w[0] == "sel" && w[1] == "attr" && w[2] == "limit" && w[3] == "base") {
            seg_table_ = true;
            return std::nullopt;
        }
        if (w.front().ends_with(":")) {
            // Only rows of svm_vmcb_dump's table: other Xen dumps (VMX, host
            // registers) print "CS:" lines in other shapes.
            const auto seg = w.front().substr(0, w.front().size() - 1);
            if (std::find(kSegs.begin(), kSegs.end(), seg) == kSegs.end()) return std::nullopt;
            if (w.size() > 1 && w[1].starts_with("sel=")) return keyed_segment(n, seg, s.substr(s.find(':') + 1));
            if (seg_table_) return segment(n, seg, w);
            return std::nullopt;
        }
        std::string text(s), leftover;
        const auto pairs = tokenize(text, leftover);
        if (pairs.empty() || !find_label(pairs.front().label)) return std::nullopt;  // unrelated line
        for (const auto& p : pairs) {
            const auto* l = find_label(p.label);
            if (!l) {
                st_.warn_unknown_label(n, fmt::format("'{} =' is not an svm_vmcb_dump label nsvm knows; its value "
                                                      "is ignored",
                                                      printable(p.label)));
                continue;
            }
            if (auto err = pair(n, *l, p)) return err;
        }
        if (!leftover.empty())
            return st_.error(n, "", fmt::format("unexpected text '{}'", printable(leftover)));
        return std::nullopt;
    }

    std::optional<Diagnostic> pair(int n, const Label& l, const Pair& p) {
        const std::string field(l.kind == Kind::ignore ? std::string_view{} : arch::info(l.id).name);
        if (p.value.empty()) return st_.error(n, field, fmt::format("no value after '{} ='", p.label));
        if (auto err = st_.once(n, p.label, field)) return err;
        switch (l.kind) {
            case Kind::ignore: return std::nullopt;
            case Kind::field: return st_.store(n, l.id, p.value, l.radix);
            case Kind::raw8: return st_.store_raw8(n, l.offset, field, p.value);
            case Kind::vmload: vmload_ = {n, std::string(p.value)}; return std::nullopt;
        }
        return std::nullopt;
    }

    /// "CS: 0008 0a9b ffffffff 0000000000000000" (sel attr limit base).
    std::optional<Diagnostic> segment(int n, std::string_view seg, const std::vector<std::string_view>& w) {
        std::string lower(seg);
        for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (w.size() != 5)
            return st_.error(n, "save." + lower,
                             fmt::format("expected 'sel attr limit base' (4 values) after '{}:', found {}", seg,
                                         w.size() - 1));
        if (auto err = st_.once(n, std::string(seg), "save." + lower)) return err;
        constexpr std::array<std::string_view, 4> members = {"selector", "attrib", "limit", "base"};
        for (std::size_t k = 0; k < 4; ++k) {
            const auto id = arch::find_field(fmt::format("save.{}.{}", lower, members[k]));
            if (auto err = st_.store(n, *id, w[k + 1], Radix::hex)) return err;
        }
        return std::nullopt;
    }

    /// Older Xen: "CS: sel=0x0010, attr=0x0a9b, limit=0xffffffff,
    /// base=0x0000000000000000", all four keys, in any order.
    std::optional<Diagnostic> keyed_segment(int n, std::string_view seg, std::string_view rest) {
        std::string lower(seg);
        for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        const std::string field = "save." + lower;
        std::string text(rest), leftover;
        const auto pairs = tokenize(text, leftover);
        constexpr std::array<std::pair<std::string_view, std::string_view>, 4> keys = {
            std::pair{std::string_view("sel"), std::string_view("selector")}, std::pair{std::string_view("attr"), std::string_view("attrib")},
            std::pair{std::string_view("limit"), std::string_view("limit")}, std::pair{std::string_view("base"), std::string_view("base")}};
        if (pairs.size() != keys.size() || !leftover.empty())
            return st_.error(n, field,
                             fmt::format("expected 'sel=.., attr=.., limit=.., base=..' after '{}:'", seg));
        if (auto err = st_.once(n, std::string(seg), field)) return err;
        for (const auto& kv : keys) {
            // (not a structured binding: clang 14 cannot capture one in a lambda)
            const std::string_view key = kv.first, member = kv.second;
            const auto p = std::find_if(pairs.begin(), pairs.end(), [&](const Pair& x) { return x.label == key; });
            if (p == pairs.end() || p->value.empty())
                return st_.error(n, field, fmt::format("no '{}=' value in the '{}:' line", key, seg));
            const auto id = arch::find_field(fmt::format("{}.{}", field, member));
            if (auto err = st_.store(n, *id, p->value, Radix::hex)) return err;
        }
        return std::nullopt;
    }

    /// "event_inj %016x, valid? %d, ec? %d, type %u, vector %#x": the raw
    /// 64-bit EVENTINJ (event_inj + event_inj_err) and four parts of it.
    std::optional<Diagnostic> event_inj(int n, const std::vector<std::string_view>& w) {
        if (w.size() < 2) return st_.error(n, "control.event_inj", "no value after 'event_inj'");
        std::string_view raw = w[1];
        if (raw.ends_with(",")) raw.remove_suffix(1);
        if (auto err = st_.once(n, "event_inj", "control.event_inj")) return err;
        if (auto err = st_.store_raw8(n, 0x0A8, "control.event_inj", raw)) return err;
        const std::uint64_t v = arch::load_le(st_.result().vmcb.page(), 0x0A8, 8);
        // Cross-check the decoded parts Xen prints after the raw value.
        const std::array<std::pair<std::string_view, std::uint64_t>, 4> parts = {
            std::pair{std::string_view("valid?"), (v >> 31) & 1}, std::pair{std::string_view("ec?"), (v >> 11) & 1},
            std::pair{std::string_view("type"), (v >> 8) & 7}, std::pair{std::string_view("vector"), v & 0xFF}};
        for (std::size_t i = 2; i + 1 < w.size(); i += 2) {
            for (const auto& [name, expect] : parts) {
                if (w[i] != name) continue;
                std::string_view t = w[i + 1];
                if (t.ends_with(",")) t.remove_suffix(1);
                const auto got = name == "vector" ? parse_hex(t) : parse_signed_dec(t, 4);
                if (!got || *got != expect)
                    st_.warn(n, "control.event_inj",
                             fmt::format("'{} {}' does not match the raw value {:#x} ({} = {}); used the raw value", name,
                                         printable(t), v, name, expect));
            }
        }
        return std::nullopt;
    }

    /// "virtual vmload/vmsave" is virt_ext bit 1 (V_VMSAVE_VMLOAD) in words;
    /// check it against virt_ext once both are read.
    void finish_vmload() {
        if (!vmload_) return;
        const auto& [n, text] = *vmload_;
        const auto v = parse_signed_dec(text, 4);
        if (!st_.seen("virt_ext") && v && *v != 0) {
            // Older Xen prints only this flag: keep what it tells.
            st_.result().vmcb.set(FieldId::misc_ctl2, arch::misc_ctl2::V_VMSAVE_VMLOAD);
        }
        const bool bit = (st_.result().vmcb.get(FieldId::misc_ctl2) >> 1) & 1;
        if (!v || (*v != 0) != bit) {
            st_.warn(n, "control.misc_ctl2",
                     fmt::format("'virtual vmload/vmsave = {}' does not match virt_ext bit 1; used virt_ext",
                                 printable(text)));
        }
        vmload_.reset();
    }

    DumpState st_;
    std::optional<std::pair<int, std::string>> vmload_;
    bool seg_table_ = false;  ///< the "sel attr limit base" header was seen
};

}  // namespace

namespace {

/// One reason svm_vmcb_isvalid() prints, and the nsvm checks that decide the
/// same condition. Xen has printed several wordings over its versions (the
/// older "CR4: bits [63:19] are not zero", the newer "CR4: invalid value ...");
/// each is an entry. `text` is how the reason begins (or, for the 2025
/// event-injection reasons, a phrase it holds).
struct IsvalidReason {
    std::string_view text;
    std::array<std::string_view, 2> checks{};  ///< empty: Xen's own rule, no VMRUN check
    std::string_view field{};  ///< the field whose value Xen prints in the reason ("(%#x)")
    std::string_view note{};
};

// Why CR4 and EFER can disagree: Xen checks them against the domain's CPUID
// policy (hvm_cr4_guest_valid_bits, hvm_efer_valid), the processor against
// its own features (APM 15.5.1): a feature the host has but the domain's
// policy hides fails in Xen and runs on the hardware.
constexpr std::string_view kPolicyNote =
    "Xen checks this against the domain's CPUID policy; the processor (and nsvm's CPU model) against the CPU's "
    "features: a feature the CPU has but the policy hides fails in Xen only";

constexpr std::array kIsvalidReasons = {
    IsvalidReason{"EFER: SVME bit not set", {"efer.svme"}, "save.efer"},
    IsvalidReason{"CR0: CD bit is zero and NW bit set", {"cr0.cd_nw"}, "save.cr0"},
    IsvalidReason{"CR0: bits [63:32] are not zero", {"cr0.upper"}, "save.cr0"},
    IsvalidReason{"CR3: MBZ bits are set", {"cr3.mbz"}, "save.cr3",
                  "Xen checks CR3 only with CR0.PG = 1, by the paging mode's format"},
    IsvalidReason{"CR4: invalid value", {"cr4.mbz"}, "save.cr4", kPolicyNote},
    IsvalidReason{"CR4: invalid bits are set", {"cr4.mbz"}, "save.cr4", kPolicyNote},
    IsvalidReason{"CR4: bits [63:19] are not zero", {"cr4.mbz"}, "save.cr4"},
    IsvalidReason{"CR4: bits [17:11] are not zero", {"cr4.mbz"}, "save.cr4"},
    IsvalidReason{"DR6: bits [63:32] are not zero", {"dr6.upper"}, "save.dr6"},
    IsvalidReason{"DR7: bits [63:32] are not zero", {"dr7.upper"}, "save.dr7"},
    IsvalidReason{"EFER: unknown bits are not zero", {"efer.mbz"}, "save.efer"},
    IsvalidReason{"EFER: bits [63:15] are not zero", {"efer.mbz"}, "save.efer"},
    // "EFER: %s": the reasons hvm_efer_valid() gives.
    IsvalidReason{"EFER: Unknown bits set", {"efer.mbz"}, "save.efer"},
    IsvalidReason{"EFER: SCE without feature", {"efer.mbz"}, "save.efer", kPolicyNote},
    IsvalidReason{"EFER: NX without feature", {"efer.mbz"}, "save.efer", kPolicyNote},
    IsvalidReason{"EFER: FFXSE without feature", {"efer.mbz"}, "save.efer", kPolicyNote},
    IsvalidReason{"EFER: TCE without feature", {"efer.mbz"}, "save.efer", kPolicyNote},
    IsvalidReason{"EFER: AutoIBRS without feature", {"efer.mbz"}, "save.efer", kPolicyNote},
    IsvalidReason{"EFER: LME/LMA without feature", {"efer.lm_unsupported"}, "save.efer", kPolicyNote},
    // svm_vmcb_isvalid asks hvm_efer_valid with CR0.PG unknown: this reason
    // means LMA without LME (the xen profile's efer.lma_without_lme).
    IsvalidReason{"EFER: LMA/LME/CR0.PG inconsistency", {"efer.lma_without_lme"}, "save.efer",
                  "the APM names no VMRUN check for EFER.LMA (APM 3.1.7 makes it a status bit)"},
    IsvalidReason{"EFER: SVME without nested virt", {}, "save.efer",
                  "a Xen configuration rule (the domain has no nested virtualization), no VMRUN check"},
    IsvalidReason{"EFER_LME and CR0.PG are both set and CR4.PAE is zero", {"long_mode.pae"}},
    IsvalidReason{"EFER_LME and CR0.PG are both set and CR0.PE is zero", {"long_mode.pe"}},
    IsvalidReason{"EFER_LME, CR0.PG, CR4.PAE, CS.L and CS.D are all non-zero", {"long_mode.cs_l_d"}},
    IsvalidReason{"GENERAL2_INTERCEPT: VMRUN intercept bit is clear", {"intercept.vmrun"}, "control.intercepts[4]"},
    IsvalidReason{"eventinj: MBZ bits are set", {"event_inj.reserved"}},
    IsvalidReason{"Invalid Injected Event Type", {"event_inj.type"}},
    IsvalidReason{"does not belong to an exception", {"event_inj.vector"}},
    IsvalidReason{"nested paging enabled but host cr3 is 0", {},  {},
                  "an older Xen's own rule: APM 15.25.4 checks only nCR3's reserved bits, not a zero nCR3"},
};

[[nodiscard]] bool is_identifier(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
    });
}

[[nodiscard]] bool all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// "d1v0" -> {1, 0} (Xen's %pv; the idle domain's "d[IDLE]v0" is no guest).
[[nodiscard]] std::optional<std::pair<std::uint32_t, std::uint32_t>> parse_vcpu_name(std::string_view s) {
    if (!s.starts_with("d")) return std::nullopt;
    const auto v = s.find('v');
    if (v == std::string_view::npos) return std::nullopt;
    const auto d = s.substr(1, v - 1), c = s.substr(v + 1);
    if (!all_digits(d) || !all_digits(c) || d.size() > 9 || c.size() > 9) return std::nullopt;
    std::uint32_t dn = 0, cn = 0;
    std::from_chars(d.data(), d.data() + d.size(), dn);
    std::from_chars(c.data(), c.data() + c.size(), cn);
    return std::pair{dn, cn};
}

/// The first number after a reason ("(0x20020)", "0x20020 (valid ...", "(1d01)").
[[nodiscard]] std::optional<std::uint64_t> first_number(std::string_view rest) {
    for (auto w : words(rest)) {
        while (!w.empty() && (w.front() == '(' || w.front() == ':')) w.remove_prefix(1);
        while (!w.empty() && (w.back() == ')' || w.back() == ',' || w.back() == ':' || w.back() == '.'))
            w.remove_suffix(1);
        if (auto v = parse_hex(w)) return v;
    }
    return std::nullopt;
}

/// Domain and vCPU of 'xl debug-keys v' context lines.
struct XenContext {
    std::optional<std::uint32_t> domain, vcpu;
};

/// Where one svm_vmcb_dump() lies in the paste.
struct XenSpan {
    std::size_t begin = 0;
    int first_line = 1;
    int start_line = 0;      ///< its "Dumping guest's ..." line, else its cr_intercepts line
    bool control = false;    ///< cr_intercepts seen
    bool guest = false;      ///< CR0 seen
    std::string from;        ///< "key_handler", "svm_vmexit_handler"
    XenContext who;
};

struct XenSplit {
    std::vector<XenSpan> spans;
    std::vector<XenIsvalidLine> reasons;
    std::size_t reasons_dropped = 0;  ///< validator lines beyond kMaxIsvalidLines
};

/// Validator lines kept from one paste. Xen prints at most one per check of
/// svm_vmcb_isvalid() for a refused VMCB; a log of millions of them must not
/// cost gigabytes (each keeps its text).
constexpr std::size_t kMaxIsvalidLines = 1024;

/// ">>> Domain 1 <<<" -> 1.
[[nodiscard]] std::optional<std::uint32_t> domain_line(std::string_view s) {
    if (!s.starts_with(">>> Domain ") || !s.ends_with(" <<<")) return std::nullopt;
    const auto n = trim(s.substr(11, s.size() - 15));
    std::uint32_t v = 0;
    if (!all_digits(n) || n.size() > 9) return std::nullopt;
    std::from_chars(n.data(), n.data() + n.size(), v);
    return v;
}

/// "VCPU 0" (after a tab in Xen's key handler) -> 0; "VCPU 1: not
/// initialized" -> nullopt with `uninitialised` set (no dump follows).
[[nodiscard]] std::optional<std::uint32_t> vcpu_line(std::string_view s, bool& uninitialised) {
    const auto w = words(s);
    if (w.size() < 2 || w[0] != "VCPU") return std::nullopt;
    auto n = w[1];
    uninitialised = n.ends_with(":");
    if (uninitialised) n.remove_suffix(1);
    if (!all_digits(n) || n.size() > 9) return std::nullopt;
    std::uint32_t v = 0;
    std::from_chars(n.data(), n.data() + n.size(), v);
    return v;
}

/// Cuts a Xen paste into its svm_vmcb_dump() outputs and collects Xen's
/// validator lines. A dump begins at "Dumping guest's current state at ..."
/// or at a cr_intercepts line no such line announced; one that begins before
/// the previous reached its guest state (CR0) means two dumps' lines are
/// mixed: refused, never split by guess.
nsvm::expected<XenSplit, Diagnostic> split_xen_dumps(std::string_view text, std::string_view source) {
    XenSplit out;
    out.spans.resize(1);
    XenContext pending;
    LineCursor lines(text);
    const auto begin_new = [&](const Line& ln) -> std::optional<Diagnostic> {
        const auto& cur = out.spans.back();
        if (cur.control && !cur.guest)
            return Diagnostic{std::string(source), ln.number, "",
                              fmt::format("a second dump starts here, before the guest state ('CR0 = ...') of the "
                                          "dump starting on line {}: the lines of two dumps are interleaved (or the "
                                          "first is cut off); put each dump in a file of its own",
                                          cur.start_line)};
        XenSpan next;
        next.begin = static_cast<std::size_t>(ln.text.data() - text.data());
        next.first_line = ln.number;
        out.spans.push_back(std::move(next));
        return std::nullopt;
    };
    const auto start = [&](XenSpan& sp, int line) {
        if (sp.start_line) return;
        sp.start_line = line;
        sp.who = pending;
        pending.vcpu.reset();  // the next dump names its own vCPU
    };
    while (const auto ln = lines.next()) {
        const auto s = strip_prefix(ln->text);
        bool uninitialised = false;
        if (const auto d = domain_line(s)) {
            pending = XenContext{d, std::nullopt};
        } else if (const auto v = vcpu_line(s, uninitialised)) {
            if (uninitialised) {
                pending.vcpu.reset();
            } else {
                pending.vcpu = v;
            }
        } else if (s.starts_with("Dumping guest's current state")) {
            if (out.spans.back().control || out.spans.back().start_line)
                if (auto err = begin_new(*ln)) return nsvm::unexpected(std::move(*err));
            auto& sp = out.spans.back();
            start(sp, ln->number);
            constexpr std::string_view at = "state at ";
            if (const auto p = s.find(at); p != std::string_view::npos) {
                auto f = s.substr(p + at.size());
                while (f.ends_with(".")) f.remove_suffix(1);
                sp.from = printable(f, 80);
            }
        } else if (s.starts_with("cr_intercepts")) {
            if (out.spans.back().control)
                if (auto err = begin_new(*ln)) return nsvm::unexpected(std::move(*err));
            start(out.spans.back(), ln->number);
            out.spans.back().control = true;
        } else if (s.starts_with("CR0 =") || s.starts_with("CR0=")) {
            out.spans.back().guest = true;
        } else if (out.reasons.size() >= kMaxIsvalidLines) {
            if (xen_isvalid_line(s)) ++out.reasons_dropped;
        } else if (auto r = xen_isvalid_line(s)) {
            r->line = ln->number;
            out.reasons.push_back(std::move(*r));
        }
    }
    return out;
}

[[nodiscard]] std::string span_name(const XenSpan& sp) {
    if (sp.who.domain && sp.who.vcpu) return fmt::format("d{}v{}", *sp.who.domain, *sp.who.vcpu);
    return {};
}

/// "d1v0, dumped at key_handler" / "dumped at svm_vmexit_handler".
[[nodiscard]] std::string span_header(const XenSpan& sp) {
    std::string h = span_name(sp);
    if (h.empty() && sp.who.domain) h = fmt::format("domain {}", *sp.who.domain);
    if (!sp.from.empty()) h += (h.empty() ? "" : ", ") + fmt::format("dumped at {}", sp.from);
    return h;
}

nsvm::expected<DumpRead, Diagnostic> read_xen_span(std::string_view text, const std::vector<XenSpan>& spans,
                                                   std::size_t k, std::string_view source) {
    const auto& sp = spans[k];
    const std::size_t end = k + 1 < spans.size() ? spans[k + 1].begin : text.size();
    auto r = XenReader(source).read(text.substr(sp.begin, end - sp.begin), sp.first_line);
    if (!r) return nsvm::unexpected(std::move(r.error()));
    DumpRead d{DumpOrigin{}, std::move(*r)};
    d.origin.index = k + 1;
    d.origin.count = spans.size();
    d.origin.line = sp.start_line;
    d.origin.header = span_header(sp);
    d.origin.domain = sp.who.domain;
    d.origin.vcpu = sp.who.vcpu;
    return d;
}

/// Which dump a validator line is about: the dump of the vCPU it names, or
/// the only dump when it names none (older Xen) or the dump is unnamed (one
/// svm_vmcb_dump at a VMEXIT_INVALID). npos: none.
[[nodiscard]] std::size_t dump_of(const XenIsvalidLine& r, const std::vector<XenSpan>& spans,
                                  const std::map<std::string, std::size_t>& by_name) {
    if (!r.vcpu.empty()) {
        if (const auto it = by_name.find(r.vcpu); it != by_name.end()) return it->second;
    }
    if (spans.size() == 1 && (r.vcpu.empty() || span_name(spans[0]).empty())) return 0;
    return std::string_view::npos;
}

/// Xen's verdict without a VMCB: say what it was, in nsvm's ids, and what to
/// give instead (exit 2: the user can add the dump).
[[nodiscard]] Diagnostic verdict_without_dump(const std::vector<XenIsvalidLine>& reasons, std::size_t dropped,
                                              std::string_view source) {
    std::string said;
    constexpr std::size_t kListed = 10;  // a long log's list is cut, the count is not
    for (std::size_t i = 0; i < std::min(reasons.size(), kListed); ++i) {
        const auto& r = reasons[i];
        std::string ids;
        for (const auto& c : r.checks) ids += (ids.empty() ? "" : ", ") + c;
        said += fmt::format("{}line {} '{}' ({})", said.empty() ? "" : "; ", r.line, printable(r.reason, 120),
                            ids.empty() ? "no nsvm check: " + std::string(r.note) : "nsvm " + ids);
    }
    if (reasons.size() + dropped > kListed) said += fmt::format("; and {} more", reasons.size() + dropped - kListed);
    return Diagnostic{std::string(source), reasons.front().line, "",
                      fmt::format("this paste holds Xen's svm_vmcb_isvalid() verdict but no svm_vmcb_dump() of a "
                                  "VMCB to check: {}. Add the dump ('xl debug-keys v', then 'xl dmesg') or give the "
                                  "VMCB as JSON",
                                  said)};
}

}  // namespace
}  // namespace nsvm::formats::detail

namespace nsvm::formats {

std::optional<XenIsvalidLine> xen_isvalid_line(std::string_view s) {
    using namespace detail;
    s = trim(s);
    for (const auto& e : kIsvalidReasons) {
        const auto p = s.find(e.text);
        if (p == std::string_view::npos) continue;
        // What precedes the reason: nothing, or "%pv[%s]: " (d1v0[func]:) as
        // newer Xen prints it, or "%s: " (func:) as older Xen does. The 2025
        // event reasons are matched inside their text: the prefix is the
        // part before their "eventinj:" / "Invalid" start.
        std::string_view prefix = s.substr(0, p);
        std::string_view reason = s.substr(p);
        if (e.text == "does not belong to an exception") {
            const auto q = prefix.find("Invalid Injected Event");
            if (q == std::string_view::npos) continue;
            reason = s.substr(q);
            prefix = s.substr(0, q);
        }
        if (const auto ev = prefix.rfind("eventinj: "); ev != std::string_view::npos && ev + 10 == prefix.size()) {
            reason = s.substr(ev);
            prefix = prefix.substr(0, ev);
        }
        XenIsvalidLine out;
        if (!prefix.empty()) {
            if (!prefix.ends_with(": ")) continue;
            auto who = prefix.substr(0, prefix.size() - 2);
            if (const auto b = who.find('['); b != std::string_view::npos && who.ends_with("]")) {
                const auto v = who.substr(0, b);
                if (!parse_vcpu_name(v)) continue;
                out.vcpu = std::string(v);
                who = who.substr(b + 1, who.size() - b - 2);
            }
            if (!is_identifier(who)) continue;
            out.from = std::string(who);
        }
        out.reason = printable(trim(reason), 200);
        for (auto c : e.checks)
            if (!c.empty()) out.checks.emplace_back(c);
        out.note = std::string(e.note);
        if (!e.field.empty()) {
            out.field = std::string(e.field);
            out.value = first_number(s.substr(p + e.text.size()));
        }
        return out;
    }
    return std::nullopt;
}

std::vector<std::string_view> xen_isvalid_checks() {
    std::vector<std::string_view> out;
    for (const auto& e : detail::kIsvalidReasons)
        for (auto c : e.checks)
            if (!c.empty() && std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
    return out;
}

}  // namespace nsvm::formats

namespace nsvm::formats::detail {

DumpsResult read_xen_dumps(std::string_view text, std::string_view source, DumpSelection sel) {
    auto split = split_xen_dumps(text, source);
    if (!split) return nsvm::unexpected(std::move(split.error()));
    const auto& spans = split->spans;
    if (spans.size() == 1 && !spans.front().control && !split->reasons.empty())
        return nsvm::unexpected(verdict_without_dump(split->reasons, split->reasons_dropped, source));
    // Each validator line goes with the dump of the vCPU it names.
    std::vector<std::vector<XenIsvalidLine>> by_dump(spans.size());
    std::vector<Diagnostic> unmatched;
    std::map<std::string, std::size_t> by_name;  // "d1v0" -> its first dump
    if (!split->reasons.empty())
        for (std::size_t k = 0; k < spans.size(); ++k)
            if (auto n = span_name(spans[k]); !n.empty()) by_name.emplace(std::move(n), k);
    if (split->reasons_dropped > 0)
        unmatched.push_back(Diagnostic{std::string(source), 0, "",
                                       fmt::format("{} more svm_vmcb_isvalid() lines ignored: only the first {} are "
                                                   "compared",
                                                   split->reasons_dropped, kMaxIsvalidLines)});
    for (auto& r : split->reasons) {
        const auto k = dump_of(r, spans, by_name);
        if (k == std::string_view::npos) {
            unmatched.push_back(Diagnostic{
                std::string(source), r.line, "",
                fmt::format("Xen's svm_vmcb_isvalid() line '{}' {}: not compared with any dump",
                            printable(r.reason, 120),
                            r.vcpu.empty() ? std::string("names no vCPU and the input holds several dumps")
                                           : fmt::format("is about {}, of which the input holds no dump", r.vcpu))});
            continue;
        }
        by_dump[k].push_back(std::move(r));
    }
    const int second = spans.size() > 1 ? spans[1].first_line : 0;
    auto out = select_dumps(spans.size(), sel, source, second, "VMCB dump", [&](std::size_t k) {
        auto d = read_xen_span(text, spans, k, source);
        if (d) d->result.xen_isvalid = by_dump[k];
        return d;
    });
    if (out && !unmatched.empty()) {
        auto& w = out->front().result.warnings;
        w.insert(w.end(), unmatched.begin(), unmatched.end());
    }
    return out;
}

Result read_xen_dump(std::string_view text, std::string_view source) {
    auto r = read_xen_dumps(text, source, DumpSelection{});
    if (!r) return nsvm::unexpected(std::move(r.error()));
    return std::move(r->front().result);
}

}  // namespace nsvm::formats::detail
