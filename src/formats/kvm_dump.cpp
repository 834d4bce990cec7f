// Reader for the text KVM's dump_vmcb() prints (arch/x86/kvm/svm/svm.c;
// docs/formats.md "KVM dump_vmcb()").
//
// The text is read by label, never by column: labels are padded to 20
// columns but long ones overflow ("pause filter threshold:3000"), several
// fields share a line in some kernels, and dmesg adds timestamps and the
// "kvm_amd: " prefix. Lines that are not dump lines (other kernel messages
// interleaved) are skipped; a dump line with a garbled value is an error.
#include <algorithm>
#include <array>
#include <charconv>
#include <fmt/format.h>
#include <set>

#include "dump_common.hpp"
#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"

namespace nsvm::formats::detail {
namespace {

using arch::FieldId;

enum class Kind : std::uint8_t {
    field,         ///< one value into a field (or a bit range of it)
    exit_code32,   ///< exit_code, printed with %08x (gotcha 2)
    misc_words,    ///< "intercepts:" = words 3, 4 (and 5 when printed), or one 64-bit value (before 5.10)
    segment,       ///< "es:" .. "tr:", followed by s: a: l: b:
    gpr,           ///< newest kernels' GPR block: KVM's register cache, not the VMCB (gotcha 6)
    not_vmcb,      ///< SEV-ES VMSA-only values (sev_features, pl0_ssp, xcr0, ...)
};

struct Label {
    std::string_view label;
    Kind kind;
    FieldId id = FieldId::asid;
    Radix radix = Radix::hex;
    unsigned shift = 0;
    unsigned bits = 0;
};

// Every label dump_vmcb has printed (a.3), with the radix gotcha 3 lists.
constexpr std::array kLabels = {
    Label{"cr_read", Kind::field, FieldId::intercepts0, Radix::hex, 0, 16},
    Label{"cr_write", Kind::field, FieldId::intercepts0, Radix::hex, 16, 16},
    Label{"dr_read", Kind::field, FieldId::intercepts1, Radix::hex, 0, 16},
    Label{"dr_write", Kind::field, FieldId::intercepts1, Radix::hex, 16, 16},
    Label{"exceptions", Kind::field, FieldId::intercepts2},
    Label{"intercepts", Kind::misc_words},
    // Labels of the patch series that split the 64-bit intercept (Babu Moger,
    // 2020; merged for Linux 5.10): v2/v3 printed words 3 and 4 apart, v1 an
    // extra "intercepts (extended):" line for the new word at 0x014.
    Label{"intercept1", Kind::field, FieldId::intercepts3},
    Label{"intercept2", Kind::field, FieldId::intercepts4},
    Label{"intercepts (extended)", Kind::field, FieldId::intercepts5},
    Label{"pause filter count", Kind::field, FieldId::pause_filter_count, Radix::dec},
    Label{"pause filter threshold", Kind::field, FieldId::pause_filter_thresh, Radix::dec},
    Label{"iopm_base_pa", Kind::field, FieldId::iopm_base_pa},
    Label{"msrpm_base_pa", Kind::field, FieldId::msrpm_base_pa},
    Label{"tsc_offset", Kind::field, FieldId::tsc_offset},
    Label{"asid", Kind::field, FieldId::asid, Radix::dec},
    Label{"tlb_ctl", Kind::field, FieldId::tlb_ctl, Radix::dec},
    Label{"int_ctl", Kind::field, FieldId::int_ctl},
    Label{"int_vector", Kind::field, FieldId::int_vector},
    Label{"int_state", Kind::field, FieldId::int_state},
    Label{"exit_code", Kind::exit_code32, FieldId::exit_code},
    Label{"exit_info1", Kind::field, FieldId::exit_info_1},
    Label{"exit_info2", Kind::field, FieldId::exit_info_2},
    Label{"exit_int_info", Kind::field, FieldId::exit_int_info},
    Label{"exit_int_info_err", Kind::field, FieldId::exit_int_info_err},
    Label{"nested_ctl", Kind::field, FieldId::misc_ctl, Radix::dec},  // gotcha 5: label kept after the rename
    Label{"misc_ctl", Kind::field, FieldId::misc_ctl, Radix::dec},
    Label{"nested_cr3", Kind::field, FieldId::nested_cr3},
    Label{"avic_vapic_bar", Kind::field, FieldId::avic_vapic_bar},
    Label{"ghcb", Kind::field, FieldId::ghcb_gpa},
    Label{"event_inj", Kind::field, FieldId::event_inj},
    Label{"event_inj_err", Kind::field, FieldId::event_inj_err},
    Label{"virt_ext", Kind::field, FieldId::misc_ctl2, Radix::dec},
    Label{"misc_ctl2", Kind::field, FieldId::misc_ctl2, Radix::dec},
    Label{"lbr_ctl", Kind::field, FieldId::misc_ctl2, Radix::dec},  // pre-4.x name of virt_ext
    Label{"next_rip", Kind::field, FieldId::next_rip},
    Label{"avic_backing_page", Kind::field, FieldId::avic_backing_page},
    Label{"avic_logical_id", Kind::field, FieldId::avic_logical_id},
    Label{"avic_physical_id", Kind::field, FieldId::avic_physical_id},
    Label{"vmsa_pa", Kind::field, FieldId::vmsa_pa},
    Label{"allowed_sev_features", Kind::field, FieldId::allowed_sev_features},
    Label{"guest_sev_features", Kind::field, FieldId::guest_sev_features},
    // State save area.
    Label{"es", Kind::segment}, Label{"cs", Kind::segment}, Label{"ss", Kind::segment}, Label{"ds", Kind::segment},
    Label{"fs", Kind::segment}, Label{"gs", Kind::segment}, Label{"gdtr", Kind::segment},
    Label{"ldtr", Kind::segment}, Label{"idtr", Kind::segment}, Label{"tr", Kind::segment},
    Label{"vmpl", Kind::field, FieldId::vmpl, Radix::dec},
    Label{"cpl", Kind::field, FieldId::cpl, Radix::dec},
    Label{"efer", Kind::field, FieldId::efer},
    Label{"cr0", Kind::field, FieldId::cr0},
    Label{"cr2", Kind::field, FieldId::cr2},
    Label{"cr3", Kind::field, FieldId::cr3},
    Label{"cr4", Kind::field, FieldId::cr4},
    Label{"dr6", Kind::field, FieldId::dr6},
    Label{"dr7", Kind::field, FieldId::dr7},
    Label{"rip", Kind::field, FieldId::rip},
    Label{"rflags", Kind::field, FieldId::rflags},
    Label{"rsp", Kind::field, FieldId::rsp},
    Label{"rax", Kind::field, FieldId::rax},
    Label{"s_cet", Kind::field, FieldId::s_cet},
    Label{"ssp", Kind::field, FieldId::ssp},
    Label{"isst_addr", Kind::field, FieldId::isst_addr},
    Label{"star", Kind::field, FieldId::star},
    Label{"lstar", Kind::field, FieldId::lstar},
    Label{"cstar", Kind::field, FieldId::cstar},
    Label{"sfmask", Kind::field, FieldId::sfmask},
    Label{"kernel_gs_base", Kind::field, FieldId::kernel_gs_base},
    Label{"sysenter_cs", Kind::field, FieldId::sysenter_cs},
    Label{"sysenter_esp", Kind::field, FieldId::sysenter_esp},
    Label{"sysenter_eip", Kind::field, FieldId::sysenter_eip},
    Label{"gpat", Kind::field, FieldId::g_pat},
    Label{"dbgctl", Kind::field, FieldId::dbgctl},
    Label{"br_from", Kind::field, FieldId::br_from},
    Label{"br_to", Kind::field, FieldId::br_to},
    Label{"excp_from", Kind::field, FieldId::last_excp_from},
    Label{"excp_to", Kind::field, FieldId::last_excp_to},
    Label{"spec_ctrl", Kind::field, FieldId::spec_ctrl},
    Label{"rbx", Kind::gpr}, Label{"rcx", Kind::gpr}, Label{"rdx", Kind::gpr}, Label{"rsi", Kind::gpr},
    Label{"rdi", Kind::gpr}, Label{"rbp", Kind::gpr}, Label{"r8", Kind::gpr}, Label{"r9", Kind::gpr},
    Label{"r10", Kind::gpr}, Label{"r11", Kind::gpr}, Label{"r12", Kind::gpr}, Label{"r13", Kind::gpr},
    Label{"r14", Kind::gpr}, Label{"r15", Kind::gpr},
    Label{"sev_features", Kind::not_vmcb}, Label{"vintr_ctrl", Kind::not_vmcb}, Label{"pl0_ssp", Kind::not_vmcb},
    Label{"pl1_ssp", Kind::not_vmcb}, Label{"pl2_ssp", Kind::not_vmcb}, Label{"pl3_ssp", Kind::not_vmcb},
    Label{"u_cet", Kind::not_vmcb}, Label{"xcr0", Kind::not_vmcb}, Label{"xss", Kind::not_vmcb},
};

// Gotcha 1: printed from vmcb01 (L1's VMCB) even while L2 runs.
constexpr std::array<std::string_view, 12> kFromVmcb01 = {
    "fs", "gs", "ldtr", "tr", "star", "lstar", "cstar", "sfmask", "kernel_gs_base", "sysenter_cs",
    "sysenter_esp", "sysenter_eip"};

const Label* find_label(std::string_view l) {
    for (const auto& x : kLabels) {
        if (x.label == l) return &x;
    }
    return nullptr;
}

/// Removes what dmesg, journald/syslog and pr_fmt put before the text.
std::string_view strip_prefix(std::string_view s) {
    if (auto p = s.find("kvm_amd: "); p != std::string_view::npos) return trim(s.substr(p + 9));
    if (auto p = s.find("kernel: "); p != std::string_view::npos) s = s.substr(p + 8);
    s = trim(s);
    if (s.starts_with("<")) {  // printk level "<3>"
        if (auto e = s.find('>'); e != std::string_view::npos && e < 4) s = trim(s.substr(e + 1));
    }
    if (s.starts_with("[")) {  // "[  123.456789]"
        if (auto e = s.find(']'); e != std::string_view::npos) s = trim(s.substr(e + 1));
    }
    if (s.starts_with("kvm_amd:")) s = trim(s.substr(8));
    if (s.starts_with("kvm: ")) s = trim(s.substr(5));
    if (s.starts_with("SVM: ")) s = trim(s.substr(5));  // pr_fmt of kernels around 5.x
    return s;
}

struct Pair {
    std::string label;
    std::vector<std::string_view> values;
};
struct Tokens {
    std::vector<Pair> pairs;
    std::string leftover;  ///< words after the last value that belong to no label
};

/// "label: value [value...] label: value" -> pairs. A label may hold blanks
/// ("pause filter count:") and may run into its value ("threshold:3000").
Tokens tokenize(std::string_view s) {
    Tokens t;
    std::vector<std::string_view> pending;
    for (auto tok : words(s)) {
        const auto colon = tok.find(':');
        if (colon != std::string_view::npos) {
            std::string label;
            for (auto w : pending) label += std::string(w) + " ";
            label += tok.substr(0, colon);
            pending.clear();
            t.pairs.push_back({label, {}});
            if (colon + 1 < tok.size()) t.pairs.back().values.push_back(tok.substr(colon + 1));
        } else if (!t.pairs.empty() && pending.empty() &&
                   (t.pairs.back().values.empty() || is_number_token(tok))) {
            t.pairs.back().values.push_back(tok);
        } else {
            pending.push_back(tok);
        }
    }
    for (auto w : pending) t.leftover += (t.leftover.empty() ? "" : " ") + std::string(w);
    return t;
}

bool is_header(std::string_view s) {
    // "[SVM|SEV|SEV-ES|SEV-SNP] [vCPU%u ]VMCB %p, last attempted VMRUN on CPU %d"
    // Not "... on CPU": a mail client wraps the long header before it.
    return s.find("VMCB ") != std::string_view::npos && s.find("last attempted VMRUN") != std::string_view::npos;
}

/// What the end of a dump line still lacks when a mailer wrapped it.
struct Want {
    enum class Kind : std::uint8_t {
        none,    ///< a complete line
        value,   ///< "efer:" at the end, its value on the next line
        digits,  ///< a hex value shorter than dump_vmcb prints it: cut in two
        words,   ///< "intercepts:" with part of its words: old u64 or new words? cannot tell
    };
    Kind kind = Kind::none;
    std::string label;
    std::string field;     ///< the VMCB field the label fills, for errors
    std::size_t have = 0;  ///< digits given (digits)
    std::size_t need = 0;  ///< digits missing (digits)
};

/// Digits of a hex token without its "0x".
std::size_t hex_digit_count(std::string_view t) {
    if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) t.remove_prefix(2);
    return t.size();
}

/// The width dump_vmcb's printf gives the value of pair `k` of `t` (%04x,
/// %08x, %016llx), in hex digits; 0 for decimal values, whose width varies.
std::size_t printed_digits(const Tokens& t, std::size_t k) {
    const auto& label = t.pairs[k].label;
    // Segment members "s: %04x a: %04x l: %08x b: %016llx" after "es:" ...
    static constexpr std::array<std::pair<std::string_view, std::size_t>, 4> kMembers = {
        {{"s", 4}, {"a", 4}, {"l", 8}, {"b", 16}}};
    for (const auto& [m, digits] : kMembers)
        if (label == m) return digits;
    const auto* l = find_label(label);
    if (!l) return 0;
    switch (l->kind) {
        case Kind::exit_code32: return 8;
        case Kind::gpr:
        case Kind::not_vmcb: return 16;
        case Kind::field:
            if (l->radix == Radix::dec) return 0;
            return l->bits ? l->bits / 4 : 2 * arch::info(l->id).width;
        case Kind::misc_words:
        case Kind::segment: break;
    }
    return 0;
}

/// "save.cs.base" for the last pair of "cs:   s: .. a: .. l: .. b:", else empty.
std::string member_field(const Tokens& t) {
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 4> kNames = {
        {{"s", "selector"}, {"a", "attrib"}, {"l", "limit"}, {"b", "base"}}};
    for (const auto& [m, name] : kNames) {
        if (t.pairs.back().label != m) continue;
        for (auto k = t.pairs.size(); k-- > 0;) {
            const auto* l = find_label(t.pairs[k].label);
            if (l && l->kind == Kind::segment) return fmt::format("save.{}.{}", l->label, name);
        }
    }
    return {};
}

Want wanted(std::string_view s) {
    const auto t = tokenize(s);
    Want w;
    if (t.pairs.empty() || !t.leftover.empty() || !find_label(t.pairs.front().label)) return w;
    const auto& last = t.pairs.back();
    const auto* l = find_label(last.label);
    w.label = last.label;
    w.field = member_field(t);
    if (l && l->kind == Kind::segment) return w;  // "cs:" is followed by "s:", never by a value
    if (l && l->kind == Kind::misc_words) {
        const bool whole_u64 = last.values.size() == 1 && hex_digit_count(last.values.front()) == 16;
        w.kind = last.values.empty() ? Want::Kind::value : whole_u64 ? Want::Kind::none : Want::Kind::words;
        return w;
    }
    if (last.values.empty()) {
        w.kind = Want::Kind::value;
        return w;
    }
    const std::size_t digits = printed_digits(t, t.pairs.size() - 1);
    const std::size_t have = hex_digit_count(last.values.back());
    if (digits != 0 && have < digits && last.values.size() == 1) {
        w.kind = Want::Kind::digits;
        w.have = have;
        w.need = digits - have;
    }
    return w;
}

/// The bare numbers a line begins with (a wrapped value), and what follows.
struct Leading {
    std::vector<std::string_view> numbers;
    std::string_view rest;
};

Leading leading_numbers(std::string_view s) {
    Leading out;
    out.rest = s;
    for (auto w : words(s)) {
        if (w.find(':') != std::string_view::npos || !is_number_token(w)) break;
        out.numbers.push_back(w);
        out.rest = s.substr(static_cast<std::size_t>(w.data() + w.size() - s.data()));
    }
    return out;
}

/// Lines a mail client's wrapping may spill one dump line onto.
constexpr int kMaxWrappedLines = 4;

class KvmReader {
public:
    explicit KvmReader(std::string_view source) : st_(source, Format::kvm_dump) {}

    /// One dump (split_dumps gives each its own part of the log, with at
    /// most one header, control area and save area).
    Result read(std::string_view text, int first_line) {
        LineCursor lines(text, first_line);
        while (const auto ln = lines.next()) {
            const auto s = strip_prefix(ln->text);
            if (is_header(s)) continue;
            if (s == "VMCB Control Area:") {
                control_line_ = ln->number;
                continue;
            }
            if (s == "VMCB State Save Area:") {
                save_line_ = ln->number;
                continue;
            }
            if (!control_line_) continue;  // before the dump: unrelated
            auto logical = unwrap(ln->number, s, lines);
            if (!logical) return nsvm::unexpected(std::move(logical.error()));
            if (auto err = line(ln->number, *logical)) return nsvm::unexpected(std::move(*err));
        }
        if (!control_line_)
            return nsvm::unexpected(st_.error(0, "", "no 'VMCB Control Area:' line: this is not KVM dump_vmcb() output "
                                                     "(or the dump is cut off before its control area)"));
        if (!save_line_)
            return nsvm::unexpected(st_.error(0, "", "no 'VMCB State Save Area:' line: the dump is cut off after its "
                                                     "control area"));
        finish_warnings();
        if (vmsa_given_) st_.result().vmsa = vmsa_;
        return st_.finish("this KVM dump_vmcb() text");
    }

private:
    std::optional<Diagnostic> line(int n, std::string_view s) {
        // dump_vmcb prints the decrypted VMSA's "sev_features" with no colon
        // ("%-15s %016llx", "sev_features"): read it as a label.
        std::string colon;
        if (s.starts_with("sev_features") && s.size() > 12 && (s[12] == ' ' || s[12] == '\t')) {
            colon = "sev_features:" + std::string(s.substr(12));
            s = colon;
        }
        auto t = tokenize(s);
        if (t.pairs.empty()) return std::nullopt;
        const auto* first = find_label(t.pairs.front().label);
        if (!first) {
            unknown_line(n, t);
            return std::nullopt;  // an unrelated kernel message
        }
        const bool gpr_line = std::any_of(t.pairs.begin(), t.pairs.end(), [](const Pair& p) {
            const auto* l = find_label(p.label);
            return l && l->kind == Kind::gpr;
        });
        const Label* segment = nullptr;
        for (std::size_t k = 0; k < t.pairs.size(); ++k) {
            const auto& p = t.pairs[k];
            if (segment && (p.label == "s" || p.label == "a" || p.label == "l" || p.label == "b")) {
                if (auto err = segment_member(n, *segment, p)) return err;
                continue;
            }
            segment = nullptr;
            const auto* l = find_label(p.label);
            if (!l) {
                st_.warn_unknown_label(n, fmt::format("'{}:' is not a dump_vmcb label nsvm knows; its value is "
                                                      "ignored",
                                                      printable(p.label)));
                continue;
            }
            if (l->kind == Kind::segment) {
                if (!p.values.empty())
                    return st_.error(n, fmt::format("save.{}", l->label),
                                     fmt::format("expected 's: .. a: .. l: .. b: ..' after '{}:'", l->label));
                if (auto err = st_.once(n, p.label, fmt::format("save.{}", l->label))) return err;
                segment = l;
                continue;
            }
            if (auto err = pair(n, *l, p, gpr_line)) return err;
        }
        if (!t.leftover.empty()) {
            const auto& last = t.pairs.back();
            return st_.error(n, field_name(last.label),
                             fmt::format("unexpected text '{}' after '{}:'", printable(t.leftover), printable(last.label)));
        }
        return std::nullopt;
    }

    /// A mail client's wrapping undone: a line that begins with bare numbers
    /// (never a dump_vmcb line) continues the line before it when that one
    /// ends with a label and no value, or with a hex value shorter than
    /// dump_vmcb prints it and the digits on the next line make it whole.
    /// Any other bare-number line after a dump line is refused: which field
    /// its numbers belong to cannot be told.
    nsvm::expected<std::string, Diagnostic> unwrap(int n, std::string_view s, LineCursor& lines) {
        std::string cur(s);
        for (int joined = 0;; ++joined) {
            const auto want = wanted(cur);
            LineCursor peek = lines;
            const auto next = peek.next();
            if (!next) return cur;
            // A wrapped line carries no log prefix (the mail client made it,
            // not printk), and after its numbers holds nothing or more dump
            // labels: "kvm_amd: 14 callbacks suppressed" is a message.
            const auto ns = strip_prefix(next->text);
            if (ns != trim(next->text)) return cur;
            const auto lead = leading_numbers(ns);
            if (lead.numbers.empty()) return cur;
            if (const auto more = tokenize(lead.rest);
                !trim(lead.rest).empty() && (more.pairs.empty() || !find_label(more.pairs.front().label)))
                return cur;
            const bool dump_line = !tokenize(cur).pairs.empty() && find_label(tokenize(cur).pairs.front().label);
            if (want.kind == Want::Kind::none && !dump_line) return cur;  // an unrelated line before it
            if (auto err = check_wrap(n, next->number, want, lead)) return nsvm::unexpected(std::move(*err));
            // A real wrap spills one or two lines; a chain of them is not a
            // mail client's doing (and would cost quadratic time).
            if (joined == kMaxWrappedLines)
                return nsvm::unexpected(st_.error(next->number, "",
                                                  fmt::format("more than {} lines continue line {}: not a wrapped "
                                                              "dump line",
                                                              kMaxWrappedLines, n)));
            lines = peek;
            const bool glue = want.kind == Want::Kind::digits;  // the two halves of one number
            cur += glue ? std::string(lead.numbers.front()) + std::string(lead.rest)
                        : " " + std::string(trim(ns));
            wrapped_ = true;
        }
    }

    /// The wrapped line `at` (continuing line `n`) is unambiguous, or the error.
    std::optional<Diagnostic> check_wrap(int n, int at, const Want& want, const Leading& lead) {
        const auto field = !want.field.empty() ? want.field : want.label.empty() ? std::string() : field_name(want.label);
        const auto first = printable(lead.numbers.front(), 40);
        switch (want.kind) {
            case Want::Kind::value:
                if (const auto* l = find_label(want.label);
                    lead.numbers.size() == 1 || (l && l->kind == Kind::misc_words))
                    return std::nullopt;
                return st_.error(at, field,
                                 fmt::format("line {} ends with '{}:' and this line begins with {} numbers: a wrapped "
                                             "line, but which is its value cannot be told",
                                             n, printable(want.label), lead.numbers.size()));
            case Want::Kind::digits:
                if (hex_digit_count(lead.numbers.front()) == want.need && !lead.numbers.front().starts_with("0x"))
                    return std::nullopt;
                return st_.error(at, field,
                                 fmt::format("line {} ends with {} of the {} hex digits dump_vmcb prints for '{}:' and "
                                             "this line begins with '{}': a wrapped value, but how it was cut cannot be "
                                             "told",
                                             n, want.have, want.have + want.need, printable(want.label), first));
            case Want::Kind::words:
                return st_.error(at, field,
                                 fmt::format("line {} ends with part of 'intercepts:' and this line begins with '{}': "
                                             "one 64-bit value (kernels before 5.10) or separate words cannot be told "
                                             "apart once wrapped",
                                             n, first));
            case Want::Kind::none: break;
        }
        return st_.error(at, field,
                         fmt::format("this line begins with the bare number '{}' after the complete line {}: a "
                                     "wrapped value whose field cannot be told",
                                     first, n));
    }

    static std::string field_name(const std::string& label) {
        const auto* l = find_label(label);
        if (!l) return label;
        switch (l->kind) {
            case Kind::misc_words: return "control.intercepts[3]";
            case Kind::segment: return "save." + label;
            case Kind::gpr:
            case Kind::not_vmcb: return label;
            case Kind::field:
            case Kind::exit_code32: break;
        }
        return std::string(arch::info(l->id).name);
    }

    std::optional<Diagnostic> segment_member(int n, const Label& seg, const Pair& p) {
        const std::string_view member = p.label == "s" ? "selector" : p.label == "a" ? "attrib" : p.label == "l" ? "limit" : "base";
        const auto id = arch::find_field(fmt::format("save.{}.{}", seg.label, member));
        if (p.values.size() != 1)
            return st_.error(n, arch::info(*id).name, fmt::format("expected one value after '{}:', found {}", p.label,
                                                                  p.values.size()));
        if (auto err = st_.once(n, fmt::format("{}.{}", seg.label, p.label), arch::info(*id).name)) return err;
        return st_.store(n, *id, p.values.front(), Radix::hex);
    }

    std::optional<Diagnostic> pair(int n, const Label& l, const Pair& p, bool gpr_line) {
        const auto field = field_name(p.label);
        if (l.kind == Kind::not_vmcb) {
            if (auto* slot = vmsa_slot(p.label)) return vmsa_value(n, p, *slot);
        }
        if (l.kind == Kind::gpr || l.kind == Kind::not_vmcb) {
            ignored_.insert(p.label);
            return std::nullopt;
        }
        if (p.values.empty()) return st_.error(n, field, fmt::format("no value after '{}:'", p.label));
        if (gpr_line && (l.id == FieldId::rax || l.id == FieldId::rsp) && l.kind == Kind::field) {
            return gpr_copy(n, l, p);
        }
        if (l.kind == Kind::misc_words) return misc_words(n, p, field);
        if (p.values.size() != 1)
            return st_.error(n, field, fmt::format("expected one value after '{}:', found {}", p.label, p.values.size()));
        if (auto err = st_.once(n, p.label, field)) return err;
        if (l.kind == Kind::exit_code32) return exit_code(n, p.values.front());
        return st_.store(n, l.id, p.values.front(), l.radix, l.shift, l.bits);
    }

    /// Where a decrypted-VMSA value goes (checks::VmsaState), or nullptr.
    std::optional<std::uint64_t>* vmsa_slot(std::string_view label) {
        auto& v = vmsa_;
        if (label == "sev_features") return &v.sev_features;
        if (label == "xcr0") return &v.xcr0;
        if (label == "xss") return &v.xss;
        if (label == "u_cet") return &v.u_cet;
        if (label == "pl0_ssp") return &v.pl0_ssp;
        if (label == "pl1_ssp") return &v.pl1_ssp;
        if (label == "pl2_ssp") return &v.pl2_ssp;
        if (label == "pl3_ssp") return &v.pl3_ssp;
        return nullptr;
    }

    /// A value dump_vmcb printed from the decrypted VMSA of an SEV-ES guest
    /// (sev_decrypt_vmsa): not a VMCB field, but what the VMSA reads
    /// (SEV_FEATURES at VMSA 3B0h for snp.allowed_sev_features).
    std::optional<Diagnostic> vmsa_value(int n, const Pair& p, std::optional<std::uint64_t>& slot) {
        const std::string field = "vmsa." + p.label;
        if (p.values.size() != 1)
            return st_.error(n, field, fmt::format("expected one value after '{}', found {}", p.label, p.values.size()));
        if (auto err = st_.once(n, p.label, field)) return err;
        const auto v = parse_hex(p.values.front());
        if (!v) return st_.error(n, field, fmt::format("'{}' is not a hexadecimal number", printable(p.values.front())));
        slot = *v;
        vmsa_given_ = true;
        return std::nullopt;
    }

    /// "intercepts:" since Linux 5.10 is words 3 and 4 (and 5), "%08x %08x";
    /// before it (vmcb_control_area had one `u64 intercept` at 0x00C, split
    /// by commit c62e2e94b9d4 "KVM: SVM: Modify 64 bit intercept field to two
    /// 32 bit vectors") it is one "%016llx". Little-endian, so the low half
    /// is word 3 (0x00C: INTR .. SHUTDOWN) and the high half word 4 (0x010:
    /// VMRUN ..). A lone value wider than 8 digits is that old form.
    std::optional<Diagnostic> misc_words(int n, const Pair& p, const std::string& field) {
        if (p.values.size() > 3)
            return st_.error(n, field, fmt::format("expected 2 or 3 words (vectors 3, 4, 5), found {}",
                                                   p.values.size()));
        if (auto err = st_.once(n, p.label, field)) return err;
        if (p.values.size() == 1 && hex_digits(p.values.front()) > 8) return old_u64_intercept(n, p.values.front());
        for (std::size_t w = 0; w < p.values.size(); ++w) {
            const auto id = static_cast<FieldId>(static_cast<unsigned>(FieldId::intercepts3) + w);
            if (auto err = st_.store(n, id, p.values[w], Radix::hex)) return err;
        }
        return std::nullopt;
    }

    std::optional<Diagnostic> old_u64_intercept(int n, std::string_view text) {
        const auto v = parse_hex(text);
        if (!v)
            return st_.error(n, "control.intercepts[3]",
                             fmt::format("'{}' is not a hexadecimal number (the 64-bit 'intercepts:' of kernels "
                                         "before 5.10)",
                                         printable(text)));
        st_.result().vmcb.set(FieldId::intercepts3, *v & 0xFFFFFFFFU);
        st_.result().vmcb.set(FieldId::intercepts4, *v >> 32);
        st_.mark_given(FieldId::intercepts3);
        st_.mark_given(FieldId::intercepts4);
        return std::nullopt;
    }

    /// Digits of a hex token without its "0x".
    static std::size_t hex_digits(std::string_view t) {
        if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) t.remove_prefix(2);
        return t.size();
    }

    /// Gotcha 6: the newest kernels print a GPR block from KVM's register
    /// cache; its rax/rsp are not the VMCB's. Keep the VMCB value, say so if
    /// they differ.
    std::optional<Diagnostic> gpr_copy(int n, const Label& l, const Pair& p) {
        ignored_.insert(p.label);
        const std::string key = p.label + "#gpr";
        if (auto err = st_.once(n, key, p.label)) return err;
        const auto v = parse_hex(p.values.front());
        if (!v) return st_.error(n, arch::info(l.id).name, fmt::format("'{}' is not a hexadecimal number",
                                                                       printable(p.values.front())));
        if (st_.seen(p.label) && st_.result().vmcb.get(l.id) != *v)
            st_.warn(n, arch::info(l.id).name,
                     fmt::format("the GPR block's {} ({:#x}, KVM's register cache) differs from the VMCB's ({:#x}); "
                                 "kept the VMCB value",
                                 p.label, *v, st_.result().vmcb.get(l.id)));
        return std::nullopt;
    }

    /// Gotcha 2: dump_vmcb prints exit_code with %08x. The VMRUN-failure
    /// codes -1..-4 therefore show as ffffffff..fffffffc; restore them.
    std::optional<Diagnostic> exit_code(int n, std::string_view text) {
        if (auto err = st_.store(n, FieldId::exit_code, text, Radix::hex)) return err;
        const auto v = st_.result().vmcb.get(FieldId::exit_code);
        if (v >= 0xFFFFFFFCULL && v <= 0xFFFFFFFFULL) {
            const std::uint64_t full = v | 0xFFFFFFFF00000000ULL;
            st_.result().vmcb.set(FieldId::exit_code, full);
            st_.warn(n, "control.exit_code",
                     fmt::format("exit_code is truncated to 32 bits by dump_vmcb; ffffffff means VMEXIT_INVALID "
                                 "(read {:08x} as {:#x}, {})",
                                 v, full, arch::exit_code::describe(full).name));
        }
        return std::nullopt;
    }

    void unknown_line(int n, const Tokens& t) {
        // Inside the dump, a lone "identifier: number" line is most likely a
        // field a newer kernel prints: say so rather than drop it silently.
        const auto& p = t.pairs.front();
        const bool ident = std::all_of(p.label.begin(), p.label.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
        });
        if (ident && !p.label.empty() && t.leftover.empty() && !p.values.empty() &&
            std::all_of(t.pairs.begin(), t.pairs.end(), [](const Pair& q) {
                return std::all_of(q.values.begin(), q.values.end(), is_number_token);
            })) {
            st_.warn_unknown_label(n, fmt::format("'{}:' is not a dump_vmcb label nsvm knows; line ignored",
                                                  printable(p.label)));
        }
    }

    void finish_warnings() {
        if (wrapped_)
            st_.warn(0, "",
                     "read lines a mail client had wrapped (a value alone on the next line, or a hex value cut in "
                     "two): errors name the first line of each");
        warn_vmcb01_mix();
        if (!ignored_.empty()) {
            std::string list;
            for (const auto& x : ignored_) list += (list.empty() ? "" : ", ") + x;
            st_.warn(0, "",
                     fmt::format("ignored values that are not VMCB fields (KVM's register cache or the SEV-ES "
                                 "VMSA): {}",
                                 list));
        }
    }

    /// What in the dump suggests that L2 was running when it was taken, or
    /// "". The text never says whether the current VMCB is vmcb01 or vmcb02;
    /// what can is a current state that L1's own state (the vmcb01 fields)
    /// contradicts: L1's SYSCALL entry (LSTAR) is a 64-bit kernel's, in the
    /// upper half, yet the current VMCB runs protected mode outside long
    /// mode or CPL-0 code in the lower half. A 64-bit kernel does neither, so
    /// that state is another kernel's: L2's. Real mode is no sign: KVM enters
    /// SMM (firmware's runtime services) in it with the OS's LSTAR kept.
    [[nodiscard]] std::string l2_sign() {
        using arch::FieldId;
        const auto& v = st_.result().vmcb;
        const auto given = [&](FieldId f) { return st_.given()[static_cast<std::size_t>(f)]; };
        constexpr std::uint64_t kUpperHalf = std::uint64_t{1} << 63;
        if (!given(FieldId::lstar) || (v.get(FieldId::lstar) & kUpperHalf) == 0) return "";
        const auto lstar = v.get(FieldId::lstar);
        if (given(FieldId::efer) && given(FieldId::cr0) && (v.get(FieldId::cr0) & arch::cr0::PE) != 0 &&
            (v.get(FieldId::efer) & arch::efer::LMA) == 0)
            return fmt::format("L1's LSTAR {:#x} is a 64-bit kernel's, but the current VMCB runs protected mode "
                               "with EFER {:#x}, not in long mode",
                               lstar, v.get(FieldId::efer));
        if (given(FieldId::cpl) && given(FieldId::rip) && v.get(FieldId::cpl) == 0 &&
            (v.get(FieldId::rip) & kUpperHalf) == 0)
            return fmt::format("L1's LSTAR {:#x} is a 64-bit kernel's in the upper half, but the current VMCB runs "
                               "CPL-0 code at RIP {:#x}",
                               lstar, v.get(FieldId::rip));
        return "";
    }

    /// Gotcha 1 of dump_vmcb(): some fields come from vmcb01. Said only when
    /// something in the dump suggests L2 ran (l2_sign); otherwise the dump is
    /// most likely of vmcb01 and holds one VMCB's state.
    void warn_vmcb01_mix() {
        const std::string sign = l2_sign();
        if (sign.empty()) return;
        std::vector<std::string> mixed;  // as VMCB fields: "save.fs", "save.lstar"
        std::string list;                // as dump_vmcb() labels
        for (auto l : kFromVmcb01) {
            if (!st_.seen(std::string(l))) continue;
            mixed.push_back("save." + std::string(l));
            list += (list.empty() ? "" : ", ") + std::string(l);
        }
        if (mixed.empty()) return;
        st_.warn(0, "",
                 fmt::format("dump_vmcb prints {} from vmcb01 (L1's VMCB), everything else from the current VMCB, and "
                             "this dump looks taken while L2 ran ({}): it mixes L1 and L2 state",
                             list, sign));
        auto& w = st_.result().warnings.back();
        w.id = "input.vmcb01_fields";
        w.fields = std::move(mixed);
    }

    DumpState st_;
    bool wrapped_ = false;  ///< some line was joined with the next (a mail client wrapped it)
    int control_line_ = 0;
    int save_line_ = 0;
    std::set<std::string> ignored_;
    checks::VmsaState vmsa_;  ///< values of the decrypted VMSA (SEV-ES, newer kernels)
    bool vmsa_given_ = false;
};

}  // namespace

namespace {

/// Where one dump lies in the log.
struct DumpSpan {
    std::size_t begin = 0;  ///< byte offset of its first line
    int first_line = 1;
    int control_line = 0;
    int save_line = 0;
    int header_line = 0;
    std::string_view header;  ///< into the log's text (a span per dump stays small)
};

/// "[SVM|SEV|SEV-ES|SEV-SNP] [vCPU%u ]VMCB %p, last attempted VMRUN on CPU %d"
/// -> its parts; what a kernel does not print stays empty.
void parse_header(std::string_view h, DumpOrigin& o) {
    o.header = std::string(h);
    const auto at = h.find("VMCB ");
    for (auto w : words(h.substr(0, at))) {
        if (w.starts_with("vCPU")) {
            unsigned v = 0;
            const auto digits = w.substr(4);
            const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
            if (ec == std::errc{} && p == digits.data() + digits.size()) o.vcpu = v;
        } else if (o.type.empty()) {
            o.type = std::string(w);
        }
    }
    auto rest = h.substr(at + 5);
    o.vmcb = std::string(trim(rest.substr(0, rest.find(','))));
    if (const auto c = h.rfind("on CPU "); c != std::string_view::npos) {
        const auto digits = trim(h.substr(c + 7));
        unsigned v = 0;
        const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
        if (ec == std::errc{} && p == digits.data() + digits.size()) o.cpu = v;
    }
}

/// Cuts a log into its dumps. A dump begins at its header, or at a "VMCB
/// Control Area:" line no header announced; lines between two dumps belong
/// to the first (they are skipped as unrelated there). A dump that begins
/// before the previous one reached its save area means two dumps' lines are
/// interleaved: refused, never split by guess.
nsvm::expected<std::vector<DumpSpan>, Diagnostic> split_dumps(std::string_view text, std::string_view source) {
    std::vector<DumpSpan> spans(1);
    LineCursor lines(text);
    const auto begin_new = [&](const Line& ln) -> std::optional<Diagnostic> {
        const auto& cur = spans.back();
        if (cur.control_line && !cur.save_line)
            return Diagnostic{std::string(source), ln.number, "",
                              fmt::format("a second dump starts here, before the 'VMCB State Save Area:' of the dump "
                                          "whose control area starts on line {}: the lines of two dumps are "
                                          "interleaved (or the first is cut off); put each dump in a file of its own",
                                          cur.control_line)};
        DumpSpan next;
        next.begin = static_cast<std::size_t>(ln.text.data() - text.data());
        next.first_line = ln.number;
        spans.push_back(std::move(next));
        return std::nullopt;
    };
    while (const auto ln = lines.next()) {
        const auto s = strip_prefix(ln->text);
        if (is_header(s)) {
            if (spans.back().control_line)
                if (auto err = begin_new(*ln)) return nsvm::unexpected(std::move(*err));
            spans.back().header_line = ln->number;
            spans.back().header = s;
        } else if (s == "VMCB Control Area:") {
            if (spans.back().control_line)
                if (auto err = begin_new(*ln)) return nsvm::unexpected(std::move(*err));
            spans.back().control_line = ln->number;
        } else if (s == "VMCB State Save Area:") {
            if (spans.back().save_line)
                if (auto err = begin_new(*ln)) return nsvm::unexpected(std::move(*err));
            spans.back().save_line = ln->number;
        }
    }
    return spans;
}

nsvm::expected<DumpRead, Diagnostic> read_span(std::string_view text, const std::vector<DumpSpan>& spans,
                                               std::size_t k, std::string_view source) {
    const auto& sp = spans[k];
    const std::size_t end = k + 1 < spans.size() ? spans[k + 1].begin : text.size();
    auto r = KvmReader(source).read(text.substr(sp.begin, end - sp.begin), sp.first_line);
    if (!r) return nsvm::unexpected(std::move(r.error()));
    DumpRead d{DumpOrigin{}, std::move(*r)};
    d.origin.index = k + 1;
    d.origin.count = spans.size();
    d.origin.line = sp.header_line ? sp.header_line : sp.control_line;
    if (!sp.header.empty()) parse_header(sp.header, d.origin);
    return d;
}

}  // namespace

DumpsResult read_kvm_dumps(std::string_view text, std::string_view source, DumpSelection sel) {
    auto spans = split_dumps(text, source);
    if (!spans) return nsvm::unexpected(std::move(spans.error()));
    const int second = spans->size() > 1 ? (*spans)[1].first_line : 0;
    return select_dumps(spans->size(), sel, source, second, "dump",
                        [&](std::size_t k) { return read_span(text, *spans, k, source); });
}

Result read_kvm_dump(std::string_view text, std::string_view source) {
    auto r = read_kvm_dumps(text, source, DumpSelection{});
    if (!r) return nsvm::unexpected(std::move(r.error()));
    return std::move(r->front().result);
}

}  // namespace nsvm::formats::detail
