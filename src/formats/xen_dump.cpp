// Reader for the text Xen's svm_vmcb_dump() prints (xen/arch/x86/hvm/svm/vmcb.c),
// as `xl dmesg` shows it: every line behind "(XEN)", optionally followed by a
// console timestamp. Values are "%#x" (so zero prints as "0", not "0x0"),
// "0x%016x", or decimal for cpl and the yes/no flags.
#include <algorithm>
#include <array>
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

    Result read(std::string_view text) {
        LineCursor lines(text);
        while (const auto ln = lines.next()) {
            const auto s = strip_prefix(ln->text);
            const bool start = s.starts_with("Dumping guest's current state");
            const bool again = s.starts_with("cr_intercepts") && st_.seen("cr_intercepts");
            if ((start && st_.any_seen()) || again) {
                if (auto err = next_dump(*ln, lines)) return nsvm::unexpected(std::move(*err));
                break;
            }
            if (start || s.empty()) continue;
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
            if (seg_table_ && std::find(kSegs.begin(), kSegs.end(), seg) != kSegs.end()) return segment(n, seg, w);
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

    /// A second dump starts at `at`. After the first's guest state (CR0),
    /// read the first and say how many follow; before it, the lines of two
    /// dumps are mixed (or the first is cut off): refuse, saying so.
    std::optional<Diagnostic> next_dump(const Line& at, LineCursor rest) {
        if (st_.seen("cr_intercepts") && !st_.seen("CR0"))
            return st_.error(at.number, "",
                             "a second dump starts here, before the guest state ('CR0 = ...') of the first: the lines "
                             "of two dumps are interleaved (or the first is cut off); put each dump in a file of its "
                             "own");
        std::size_t more = 0;
        for (auto l = std::optional<Line>(at); l; l = rest.next()) {
            if (strip_prefix(l->text).starts_with("cr_intercepts")) ++more;
        }
        st_.warn(at.number, "",
                 fmt::format("the input holds more than one VMCB dump ({} more from this line on); read only the first",
                             std::max<std::size_t>(more, 1)));
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

Result read_xen_dump(std::string_view text, std::string_view source) {
    XenReader r(source);
    auto res = r.read(text);
    return res;
}

}  // namespace nsvm::formats::detail
