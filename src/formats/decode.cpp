// `nsvm decode`: every non-zero field of a VMCB by name, with its bits
// decoded. The bit names come from arch/bits.hpp and arch/intercepts.hpp so
// the decoder and the checks speak the same words.
#include "nsvm/formats/decode.hpp"

#include <algorithm>
#include <bit>
#include <fmt/format.h>
#include <span>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "readers.hpp"

namespace nsvm::formats {
namespace {

using arch::FieldId;
using arch::NamedBit;

std::string hex(std::uint64_t v) { return fmt::format("{:#x}", v); }

/// Flags for the named single bits; the rest of `v` outside `known` is
/// reported as unnamed.
void flags_of(std::uint64_t v, std::span<const NamedBit> names, DecodedField& d) {
    std::uint64_t known = 0;
    for (const auto& nb : names) {
        known |= nb.mask;
        if ((v & nb.mask) != 0 && std::has_single_bit(nb.mask)) d.flags.emplace_back(nb.name);
    }
    if (const auto rest = v & ~known; rest) d.notes.push_back(fmt::format("bits without a name set: {:#x}", rest));
}

constexpr std::array kRflags = {
    NamedBit{"CF", arch::bit(0)},  NamedBit{"fixed1", arch::bit(1)},   NamedBit{"PF", arch::bit(2)},
    NamedBit{"AF", arch::bit(4)},  NamedBit{"ZF", arch::bit(6)},  NamedBit{"SF", arch::bit(7)},
    NamedBit{"TF", arch::bit(8)},  NamedBit{"IF", arch::bit(9)},  NamedBit{"DF", arch::bit(10)},
    NamedBit{"OF", arch::bit(11)}, NamedBit{"IOPL", arch::bits(13, 12)}, NamedBit{"NT", arch::bit(14)},
    NamedBit{"RF", arch::bit(16)}, NamedBit{"VM", arch::bit(17)}, NamedBit{"AC", arch::bit(18)},
    NamedBit{"VIF", arch::bit(19)}, NamedBit{"VIP", arch::bit(20)}, NamedBit{"ID", arch::bit(21)}};

constexpr std::array kDr7 = {
    NamedBit{"L0", arch::bit(0)}, NamedBit{"G0", arch::bit(1)}, NamedBit{"L1", arch::bit(2)},
    NamedBit{"G1", arch::bit(3)}, NamedBit{"L2", arch::bit(4)}, NamedBit{"G2", arch::bit(5)},
    NamedBit{"L3", arch::bit(6)}, NamedBit{"G3", arch::bit(7)}, NamedBit{"LE", arch::bit(8)},
    NamedBit{"GE", arch::bit(9)}, NamedBit{"fixed1", arch::bit(10)}, NamedBit{"GD", arch::bit(13)},
    NamedBit{"RW/LEN", arch::bits(31, 16)}};

std::string_view pat_type(std::uint64_t t) {
    switch (t) {
        case 0: return "UC";
        case 1: return "WC";
        case 4: return "WT";
        case 5: return "WP";
        case 6: return "WB";
        case 7: return "UC-";
        default: return "INVALID";
    }
}

void intercept_word(unsigned w, std::uint32_t v, DecodedField& d) {
    std::uint32_t unnamed = 0;
    for (unsigned b = 0; b < 32; ++b) {
        if (!((v >> b) & 1U)) continue;
        auto n = arch::intercept::name(32 * w + b);
        if (n.empty()) {
            unnamed |= 1U << b;
        } else {
            d.flags.push_back(std::move(n));
        }
    }
    if (unnamed) d.notes.push_back(fmt::format("reserved (SBZ) intercept bits set: {:#x}", unnamed));
}

/// EVENTINJ / EXITINTINFO (APM 15.20, 15.7.2): 31 V, 11 EV, 10:8 TYPE, 7:0 VECTOR.
void event(std::uint32_t v, std::uint32_t err, DecodedField& d) {
    const unsigned type = arch::event::type_of(v);
    const unsigned vec = v & arch::event::VECTOR;
    if (v & arch::event::V) d.flags.emplace_back("V");
    if (v & arch::event::EV) d.flags.emplace_back("EV");
    d.parts.emplace_back("type", fmt::format("{} ({})", type, arch::event::type_name(type)));
    const bool excp = type == 3 && vec < 32;
    d.parts.emplace_back("vector", excp ? fmt::format("{} (#{})", vec, arch::kExceptionNames[vec]) : std::to_string(vec));
    if (v & arch::event::EV) d.parts.emplace_back("error_code", hex(err));
    if (const auto r = v & arch::event::RESERVED; r) d.notes.push_back(fmt::format("reserved bits 30:12 set: {:#x}", r));
    if (!(v & arch::event::V)) d.notes.push_back("V (valid) is clear: no event");
}

std::string_view system_type(unsigned t) {
    constexpr std::array<std::string_view, 16> n = {
        "reserved",          "16-bit TSS (available)", "LDT",          "16-bit TSS (busy)",
        "16-bit call gate",  "task gate",              "16-bit interrupt gate", "16-bit trap gate",
        "reserved",          "TSS (available)",        "reserved",     "TSS (busy)",
        "call gate",         "reserved",               "interrupt gate", "trap gate"};
    return n[t & 0xF];
}

/// Packed attributes (APM 15.5.1): [7:0] = descriptor 47:40, [11:8] = 55:52.
void segment(const arch::Segment& s, DecodedField& d) {
    const unsigned a = s.attrib;
    const unsigned type = a & arch::seg_attr::TYPE;
    d.parts.emplace_back("selector", fmt::format("{:#x} (index {}, {}, RPL {})", s.selector, s.selector >> 3,
                                                 (s.selector & 4) ? "LDT" : "GDT", s.selector & 3));
    if (a == 0) {
        // A null/unusable segment (or GDTR/IDTR, whose attributes are unused).
        d.parts.emplace_back("limit", hex(s.limit));
        d.parts.emplace_back("base", hex(s.base));
        return;
    }
    std::string tname;
    if (a & arch::seg_attr::S) {
        if (type & 8) {
            tname = fmt::format("code{}{}{}", (type & 2) ? ", readable" : ", execute-only",
                                (type & 4) ? ", conforming" : "", (type & 1) ? ", accessed" : "");
        } else {
            tname = fmt::format("data{}{}{}", (type & 2) ? ", writable" : ", read-only",
                                (type & 4) ? ", expand-down" : "", (type & 1) ? ", accessed" : "");
        }
    } else {
        tname = std::string(system_type(type));
    }
    d.parts.emplace_back("type", fmt::format("{:#x} ({})", type, tname));
    d.parts.emplace_back("dpl", std::to_string((a & arch::seg_attr::DPL) >> 5));
    d.parts.emplace_back("limit", hex(s.limit));
    d.parts.emplace_back("base", hex(s.base));
    if (a & arch::seg_attr::S) d.flags.emplace_back("S");
    if (a & arch::seg_attr::P) d.flags.emplace_back("P");
    if (a & arch::seg_attr::AVL) d.flags.emplace_back("AVL");
    if (a & arch::seg_attr::L) d.flags.emplace_back("L");
    if (a & arch::seg_attr::DB) d.flags.emplace_back("D/B");
    if (a & arch::seg_attr::G) d.flags.emplace_back("G");
    if (a & ~0xFFFU) d.notes.push_back(fmt::format("attrib bits 15:12 set ({:#x}); the packed form has 12 bits", a & ~0xFFFU));
}

void integer_field(const arch::Vmcb& vm, const arch::FieldInfo& f, std::uint64_t v, DecodedField& d) {
    switch (f.id) {
        case FieldId::efer: flags_of(v, arch::efer::kNames, d); break;
        case FieldId::cr0: flags_of(v, arch::cr0::kNames, d); break;
        case FieldId::cr4: flags_of(v, arch::cr4::kNames, d); break;
        case FieldId::rflags:
            flags_of(v, kRflags, d);
            if (v & arch::bits(13, 12)) d.parts.emplace_back("IOPL", std::to_string((v >> 12) & 3));
            break;
        case FieldId::dr7:
            flags_of(v, kDr7, d);
            break;
        case FieldId::int_ctl:
            if (v & arch::int_ctl::V_TPR) d.parts.emplace_back("V_TPR", std::to_string(v & arch::int_ctl::V_TPR));
            if (v & arch::int_ctl::V_INTR_PRIO) d.parts.emplace_back("V_INTR_PRIO", std::to_string((v >> 16) & 0xF));
            flags_of(v, arch::int_ctl::kNames, d);
            break;
        case FieldId::int_vector: d.parts.emplace_back("V_INTR_VECTOR", std::to_string(v & 0xFF)); break;
        case FieldId::int_state: {
            constexpr std::array n = {NamedBit{"INTERRUPT_SHADOW", arch::int_state::INTERRUPT_SHADOW},
                                      NamedBit{"GUEST_INTERRUPT_MASK", arch::int_state::GUEST_INTERRUPT_MASK}};
            flags_of(v, n, d);
            break;
        }
        case FieldId::misc_ctl: flags_of(v, arch::misc_ctl::kNames, d); break;
        case FieldId::misc_ctl2: flags_of(v, arch::misc_ctl2::kNames, d); break;
        case FieldId::clean: flags_of(v, arch::clean::kNames, d); break;
        case FieldId::tlb_ctl: d.parts.emplace_back("TLB_CONTROL", std::string(arch::tlb_ctl::name(v))); break;
        case FieldId::event_inj:
            event(static_cast<std::uint32_t>(v), static_cast<std::uint32_t>(vm.get(FieldId::event_inj_err)), d);
            break;
        case FieldId::exit_int_info:
            event(static_cast<std::uint32_t>(v), static_cast<std::uint32_t>(vm.get(FieldId::exit_int_info_err)), d);
            break;
        case FieldId::exit_code: {
            const auto desc = arch::exit_code::describe(v);
            d.parts.emplace_back("name", desc.name);
            if (!desc.kvm_name.empty()) d.parts.emplace_back("kvm", desc.kvm_name);
            if (!desc.meaning.empty()) d.notes.push_back(desc.meaning);
            const auto ei = decode_exit_info_parts(v, vm.get(FieldId::exit_info_1), vm.get(FieldId::exit_info_2));
            for (const auto& n : ei.notes) d.notes.push_back(n);
            break;
        }
        case FieldId::exit_info_1:
        case FieldId::exit_info_2: {
            const auto ei = decode_exit_info_parts(vm.get(FieldId::exit_code), vm.get(FieldId::exit_info_1),
                                                   vm.get(FieldId::exit_info_2));
            d.parts = f.id == FieldId::exit_info_1 ? ei.info1 : ei.info2;
            break;
        }
        case FieldId::g_pat:
            for (unsigned i = 0; i < 8; ++i) {
                d.parts.emplace_back(fmt::format("PA{}", i), std::string(pat_type((v >> (8 * i)) & 0xFF)));
            }
            break;
        default: break;
    }
}

std::string hex_bytes(std::span<const std::uint8_t> b) {
    constexpr std::string_view digits = "0123456789abcdef";
    std::string s;
    s.reserve(2 * b.size());
    for (auto x : b) {
        s.push_back(digits[x >> 4]);
        s.push_back(digits[x & 0xF]);
    }
    return s;
}

}  // namespace

std::vector<DecodedField> decode_fields(const arch::Vmcb& vm) {
    std::vector<DecodedField> out;
    for (const auto& f : arch::kFields) {
        DecodedField d;
        d.name = std::string(f.name);
        d.offset = f.offset;
        d.width = f.width;
        const auto idx = static_cast<unsigned>(f.id);
        if (idx <= static_cast<unsigned>(FieldId::intercepts5)) {
            const auto v = vm.intercept_word(idx);
            if (!v) continue;
            d.value = hex(v);
            intercept_word(idx, v, d);
        } else if (f.area() == arch::Area::save && f.member().find('.') != std::string_view::npos) {
            if (!f.member().ends_with(".selector")) continue;
            const auto seg = static_cast<arch::Seg>((f.offset - arch::kSaveAreaOffset) / 16);
            const auto s = vm.segment(seg);
            if (s == arch::Segment{}) continue;
            d.name = fmt::format("save.{}", arch::kSegNames[static_cast<std::size_t>(seg)]);
            d.width = 16;
            d.value = fmt::format("attrib {:#05x}", s.attrib);
            segment(s, d);
        } else if (f.kind == arch::FieldKind::bytes) {
            const auto b = vm.bytes(f.id);
            if (std::all_of(b.begin(), b.end(), [](auto x) { return x == 0; })) continue;
            d.value = hex_bytes(b);
            if (f.id == FieldId::insn_bytes) {
                const auto n = vm.get(FieldId::insn_len);
                d.notes.push_back(fmt::format("the first {} byte(s) are valid (insn_len)", std::min<std::uint64_t>(n, 15)));
            }
        } else {
            const auto v = vm.get(f.id);
            if (!v) continue;
            d.value = hex(v);
            integer_field(vm, f, v, d);
        }
        out.push_back(std::move(d));
    }
    // Reserved bytes that are not zero: the checks may not care, people do.
    const auto& cover = detail::field_coverage();
    const auto& page = vm.page();
    for (std::size_t i = 0; i < arch::kVmcbSize;) {
        if (cover.test(i) || page[i] == 0) {
            ++i;
            continue;
        }
        std::size_t j = i;
        while (j < arch::kVmcbSize && !cover.test(j) && page[j] != 0) ++j;
        DecodedField d;
        d.name = "reserved";
        d.offset = static_cast<std::uint16_t>(i);
        d.width = static_cast<std::uint16_t>(j - i);
        d.value = hex_bytes(std::span(page).subspan(i, j - i));
        d.notes.push_back(i < 0x400 ? "reserved bytes of the control area are not zero (SBZ)"
                                    : "reserved bytes of the save area are not zero");
        out.push_back(std::move(d));
        i = j;
    }
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.offset < b.offset; });
    return out;
}

std::string decode_text(const arch::Vmcb& vm, bool color) {
    const auto paint = [color](std::string_view code, const std::string& s) {
        return color ? fmt::format("\x1b[{}m{}\x1b[0m", code, s) : s;
    };
    const auto fields = decode_fields(vm);
    if (fields.empty()) return "all fields are zero\n";
    std::string out;
    bool in_save = false;
    out += paint("1", "VMCB control area (000h-3FFh)") + "\n";
    for (const auto& d : fields) {
        if (!in_save && d.offset >= arch::kSaveAreaOffset) {
            in_save = true;
            out += paint("1", "VMCB state save area (400h-FFFh)") + "\n";
        }
        std::string line = fmt::format("  {} {} {}", paint("2", fmt::format("+{:03x}", d.offset)),
                                       paint("36", fmt::format("{:<28}", d.name)), fmt::format("{:<20}", d.value));
        std::string dec;
        for (const auto& fl : d.flags) dec += (dec.empty() ? "" : " ") + fl;
        if (!dec.empty()) dec = paint("32", dec);
        for (const auto& [k, v] : d.parts) dec += (dec.empty() ? "" : "  ") + k + "=" + v;
        out += line + (dec.empty() ? "" : " " + dec);
        while (!out.empty() && out.back() == ' ') out.pop_back();
        out += "\n";
        for (const auto& n : d.notes) out += "        " + paint("33", "note: " + n) + "\n";
    }
    return out;
}

nlohmann::json decode_json(const arch::Vmcb& vm) {
    auto arr = nlohmann::json::array();
    for (const auto& d : decode_fields(vm)) {
        auto parts = nlohmann::json::object();
        for (const auto& [k, v] : d.parts) parts[k] = v;
        arr.push_back({{"name", d.name},
                       {"offset", fmt::format("{:#05x}", d.offset)},
                       {"width", d.width},
                       {"value", d.value},
                       {"flags", d.flags},
                       {"parts", parts},
                       {"notes", d.notes}});
    }
    return {{"fields", arr}};
}

}  // namespace nsvm::formats
