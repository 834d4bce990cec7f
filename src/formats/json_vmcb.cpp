// The VMCB as JSON (docs/formats.md "VMCB as JSON"): reader and writer.
//
// Member names are Linux's vmcb_control_area / vmcb_save_area names so a KVM
// developer can write them from memory; old and new names are both accepted
// (arch::kFieldAliases). Unknown members, values that do not fit their field,
// negative numbers, floats and duplicate members are errors: a typo must
// never turn into a silent zero.
#include <algorithm>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <map>

#include "nsvm/arch/intercepts.hpp"
#include "nsvm/formats/json_strict.hpp"
#include "nsvm/util/text.hpp"
#include "readers.hpp"

namespace nsvm::formats {
namespace detail {
namespace {

// The reader parses into nlohmann::json (members sorted, O(log n) lookups and
// inserts); ordered_json inserts in O(n), which made a whole VMCB cost O(n^2).
// The writer keeps ordered_json: its output follows the VMCB layout.
using json = nlohmann::json;
using arch::FieldId;
using arch::FieldKind;

constexpr std::array<std::string_view, 4> kSegMembers = {"selector", "attrib", "limit", "base"};
constexpr std::array<std::string_view, 8> kHostMembers = {"efer", "cr0", "cr4", "rflags",
                                                          "cpl", "rax", "address_size", "hwcr"};
constexpr std::array<std::string_view, 4> kTopMembers = {"control", "save", "host", "reserved_bytes"};

[[nodiscard]] bool is_intercept_word(FieldId id) {
    return static_cast<unsigned>(id) <= static_cast<unsigned>(FieldId::intercepts5);
}
[[nodiscard]] bool is_segment_member(const arch::FieldInfo& f) {
    return f.area() == arch::Area::save && f.member().find('.') != std::string_view::npos;
}

std::string hex(std::uint64_t v) { return fmt::format("{:#x}", v); }

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
}  // namespace detail

// ------------------------------------------------------------------ writer

std::string write_json(const arch::Vmcb& v) {
    using nlohmann::ordered_json;
    using namespace detail;
    ordered_json control = ordered_json::object();
    ordered_json save = ordered_json::object();

    // Intercepts by name; bits without a name (word 5 bits 31:7 are SBZ)
    // keep their raw value in intercept_words so nothing is lost.
    ordered_json names = ordered_json::array();
    std::array<std::uint32_t, 6> unnamed{};
    for (unsigned b = 0; b < arch::intercept::kBits; ++b) {
        if (!v.intercept(b)) continue;
        const auto n = arch::intercept::name(b);
        if (n.empty()) {
            unnamed[b / 32] |= std::uint32_t{1} << (b % 32);
        } else {
            names.push_back(n);
        }
    }
    if (!names.empty()) control["intercepts"] = names;
    if (std::any_of(unnamed.begin(), unnamed.end(), [](auto w) { return w != 0; })) {
        ordered_json words = ordered_json::array();
        for (auto w : unnamed) words.push_back(hex(w));
        control["intercept_words"] = words;
    }

    for (const auto& f : arch::kFields) {
        if (is_intercept_word(f.id)) continue;
        auto& area = f.area() == arch::Area::control ? control : save;
        if (is_segment_member(f)) {
            if (!f.member().ends_with(".selector")) continue;
            const auto seg = static_cast<arch::Seg>((f.offset - arch::kSaveAreaOffset) / 16);
            const auto s = v.segment(seg);
            if (s == arch::Segment{}) continue;
            area[std::string(arch::kSegNames[static_cast<std::size_t>(seg)])] = {
                {"selector", hex(s.selector)}, {"attrib", hex(s.attrib)}, {"limit", hex(s.limit)}, {"base", hex(s.base)}};
            continue;
        }
        if (f.kind == FieldKind::bytes) {
            auto b = v.bytes(f.id);
            const auto last = std::find_if(b.rbegin(), b.rend(), [](auto x) { return x != 0; });
            if (last == b.rend()) continue;
            area[std::string(f.member())] = hex_bytes(b.first(static_cast<std::size_t>(b.rend() - last)));
            continue;
        }
        if (const auto x = v.get(f.id); x != 0) area[std::string(f.member())] = hex(x);
    }

    ordered_json out = ordered_json::object();
    out["control"] = control;
    out["save"] = save;

    // Non-zero bytes outside every field, as runs: raw -> json -> raw is lossless.
    ordered_json reserved = ordered_json::object();
    const auto& cover = field_coverage();
    const auto& page = v.page();
    for (std::size_t i = 0; i < arch::kVmcbSize;) {
        if (cover.test(i) || page[i] == 0) {
            ++i;
            continue;
        }
        std::size_t j = i;
        while (j < arch::kVmcbSize && !cover.test(j) && page[j] != 0) ++j;
        reserved[fmt::format("{:#05x}", i)] = hex_bytes(std::span(page).subspan(i, j - i));
        i = j;
    }
    if (!reserved.empty()) out["reserved_bytes"] = reserved;
    return out.dump(2) + "\n";
}

namespace detail {
namespace {

// ------------------------------------------------------------------ reader

class JsonReader {
public:
    explicit JsonReader(std::string_view source) : source_(source), set_by_(arch::kFields.size()) {
        result_.format = Format::json;
    }

    std::optional<Diagnostic> read(const json& top) {
        if (!top.is_object())
            return fail("", fmt::format("the top level must be a JSON object with \"control\" and \"save\", not {}",
                                        top.type_name()));
        for (const auto& [key, val] : top.items()) {
            std::optional<Diagnostic> err;
            if (key == "control") {
                err = read_area(val, arch::Area::control);
            } else if (key == "save") {
                err = read_area(val, arch::Area::save);
            } else if (key == "host") {
                err = read_host(val);
            } else if (key == "reserved_bytes") {
                err = read_reserved(val);
            } else {
                err = unknown(key, key, kTopMembers, "");
            }
            if (err) return err;
        }
        return std::nullopt;
    }
    ReadResult& result() { return result_; }

private:
    Diagnostic fail(std::string field, std::string message) const {
        return Diagnostic{source_, 0, std::move(field), std::move(message)};
    }

    template <class Range>
    Diagnostic unknown(const std::string& path, std::string_view member, const Range& candidates,
                       std::string_view prefix) const {
        const auto best = util::closest(member, candidates);
        std::string msg = "unknown member";
        if (!best.empty()) msg += fmt::format(" (did you mean \"{}{}\"?)", prefix, best);
        return fail(printable(path, 120), msg);
    }

    /// A JSON integer or a string "0x1f" / "31" / "0b101".
    static nsvm::expected<std::uint64_t, std::string> number(const json& v) {
        if (v.is_number_unsigned()) return v.get<std::uint64_t>();
        if (v.is_number_integer()) return nsvm::unexpected(fmt::format("negative number {} is not allowed", v.dump()));
        if (v.is_number_float())
            return nsvm::unexpected(fmt::format(
                "{} is not an unsigned integer (no fractions or exponents; values above 2^64-1 are "
                "impossible; write 64-bit values as hex strings)",
                v.dump()));
        if (v.is_string()) {
            const auto& s = v.get_ref<const std::string&>();
            if (auto x = util::parse_u64(s)) return *x;
            return nsvm::unexpected(
                fmt::format("\"{}\" is not a number (use 0x.., decimal or 0b..; at most 64 bits)", printable(s)));
        }
        return nsvm::unexpected(fmt::format("expected a number or a numeric string, got {}", v.type_name()));
    }

    std::optional<Diagnostic> read_area(const json& obj, arch::Area area) {
        const std::string prefix = area == arch::Area::control ? "control." : "save.";
        if (!obj.is_object()) return fail(prefix.substr(0, prefix.size() - 1), "must be a JSON object");
        for (const auto& [key, val] : obj.items()) {
            const std::string path = prefix + key;
            std::optional<Diagnostic> err;
            if (area == arch::Area::control && key == "intercepts") {
                err = read_intercept_names(val);
            } else if (area == arch::Area::control && key == "intercept_words") {
                err = read_intercept_words(val);
            } else if (area == arch::Area::save && is_segment_name(key)) {
                err = read_segment(path, key, val);
            } else if (auto id = arch::find_field(path);
                       id && !is_segment_member(arch::info(*id)) && !is_intercept_word(*id)) {
                // The vectors go through "intercepts"/"intercept_words" only,
                // so names and words always OR and never overwrite each other.
                err = read_field(path, *id, val);
            } else {
                err = unknown(path, key, member_names(area), prefix);
            }
            if (err) return err;
        }
        return std::nullopt;
    }

    static bool is_segment_name(std::string_view key) {
        return std::find(arch::kSegNames.begin(), arch::kSegNames.end(), key) != arch::kSegNames.end();
    }

    static std::vector<std::string> member_names(arch::Area area) {
        std::vector<std::string> names;
        if (area == arch::Area::control) names = {"intercepts", "intercept_words"};
        for (const auto& f : arch::kFields) {
            if (f.area() != area || is_intercept_word(f.id) || is_segment_member(f)) continue;
            names.emplace_back(f.member());
        }
        if (area == arch::Area::save) names.insert(names.end(), arch::kSegNames.begin(), arch::kSegNames.end());
        for (const auto& a : arch::kFieldAliases) {
            if (arch::info(a.id).area() == area) names.emplace_back(a.alias.substr(a.alias.find('.') + 1));
        }
        return names;
    }

    std::optional<Diagnostic> mark(const std::string& path, FieldId id) {
        auto& by = set_by_[static_cast<std::size_t>(id)];
        if (!by.empty())
            return fail(path, fmt::format("{} is given twice (also as \"{}\")", arch::info(id).name, by));
        by = path;
        return std::nullopt;
    }

    std::optional<Diagnostic> read_field(const std::string& path, FieldId id, const json& val) {
        if (auto err = mark(path, id)) return err;
        const auto& f = arch::info(id);
        if (f.kind == FieldKind::bytes) return read_byte_run(path, result_.vmcb.bytes(id), val);
        auto x = number(val);
        if (!x) return fail(path, x.error());
        if (!arch::Vmcb::fits(id, *x))
            return fail(path, fmt::format("value {:#x} is too wide for this {}-bit field (max {:#x})", *x, 8 * f.width,
                                          arch::width_mask(f.width)));
        result_.vmcb.set(id, *x);
        return std::nullopt;
    }

    /// Byte runs (insn_bytes, requested_irr, ...) are hex strings in memory
    /// order ("0f01d8" or "0f 01 d8"); missing trailing bytes are zero.
    std::optional<Diagnostic> read_byte_run(const std::string& path, std::span<std::uint8_t> out, const json& val) {
        if (!val.is_string())
            return fail(path, fmt::format("expected a hex string of bytes in memory order (e.g. \"0f01d8\"), got {}",
                                          val.type_name()));
        auto bytes = parse_byte_string(val.get_ref<const std::string&>());
        if (!bytes) return fail(path, bytes.error());
        if (bytes->size() > out.size())
            return fail(path, fmt::format("{} bytes given; the field holds {}", bytes->size(), out.size()));
        std::copy(bytes->begin(), bytes->end(), out.begin());
        return std::nullopt;
    }

    static nsvm::expected<std::vector<std::uint8_t>, std::string> parse_byte_string(std::string_view s) {
        std::string digits;
        for (char c : s) {
            if (c == ' ' || c == ':' || c == '_') continue;
            if (!std::isxdigit(static_cast<unsigned char>(c)))
                return nsvm::unexpected(fmt::format("\"{}\" is not a hex byte string", printable(s)));
            digits.push_back(c);
        }
        if (digits.size() % 2 != 0)
            return nsvm::unexpected(fmt::format("\"{}\" has an odd number of hex digits", printable(s)));
        std::vector<std::uint8_t> out;
        for (std::size_t i = 0; i < digits.size(); i += 2) {
            out.push_back(static_cast<std::uint8_t>(*parse_hex(std::string_view(digits).substr(i, 2))));
        }
        return out;
    }

    std::optional<Diagnostic> read_intercept_names(const json& val) {
        if (!val.is_array())
            return fail("control.intercepts", fmt::format("expected a list of intercept names, got {}", val.type_name()));
        for (std::size_t i = 0; i < val.size(); ++i) {
            const auto path = fmt::format("control.intercepts[{}]", i);
            const auto& e = val[i];
            if (!e.is_string())
                return fail(path, fmt::format("expected an intercept name such as \"VMRUN\", got {} (raw words go "
                                              "in \"intercept_words\")",
                                              describe_json(e)));
            const auto& n = e.get_ref<const std::string&>();
            const auto bit = find_intercept(n);
            if (!bit) {
                std::vector<std::string> all;
                for (unsigned b = 0; b < arch::intercept::kBits; ++b) {
                    if (auto s = arch::intercept::name(b); !s.empty()) all.push_back(std::move(s));
                }
                std::string upper(n);
                for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                const auto best = util::closest(upper, all);
                return fail(path, fmt::format("unknown intercept \"{}\"{}", printable(n),
                                              best.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", best)));
            }
            result_.vmcb.set_intercept(*bit);
        }
        return std::nullopt;
    }

    /// arch::intercept::find, with the exact upper-case names looked up in a
    /// table built once (find() formats every name per call).
    static std::optional<unsigned> find_intercept(const std::string& n) {
        static const auto table = [] {
            std::map<std::string, unsigned, std::less<>> t;
            for (unsigned b = 0; b < arch::intercept::kBits; ++b) {
                if (auto s = arch::intercept::name(b); !s.empty()) t.emplace(std::move(s), b);
            }
            return t;
        }();
        std::string upper(n);
        for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (auto it = table.find(upper); it != table.end()) return it->second;
        return arch::intercept::find(n);
    }

    std::optional<Diagnostic> read_intercept_words(const json& val) {
        if (!val.is_array() || val.size() > 6)
            return fail("control.intercept_words",
                        "expected a list of at most 6 words (0 = CR, 1 = DR, 2 = exceptions, 3-5 = misc)");
        for (std::size_t i = 0; i < val.size(); ++i) {
            const auto path = fmt::format("control.intercept_words[{}]", i);
            auto x = number(val[i]);
            if (!x) return fail(path, x.error());
            if (*x > 0xFFFFFFFFULL) return fail(path, fmt::format("value {:#x} is too wide for a 32-bit word", *x));
            const auto w = static_cast<unsigned>(i);
            result_.vmcb.set_intercept_word(w, result_.vmcb.intercept_word(w) | static_cast<std::uint32_t>(*x));
        }
        return std::nullopt;
    }

    std::optional<Diagnostic> read_segment(const std::string& path, const std::string& name, const json& val) {
        if (!val.is_object())
            return fail(path, fmt::format("a segment is an object {{\"selector\", \"attrib\", \"limit\", \"base\"}}, "
                                          "not {}",
                                          val.type_name()));
        for (const auto& [key, x] : val.items()) {
            const std::string mpath = path + "." + key;
            const auto id = arch::find_field("save." + name + "." + key);
            if (!id) return unknown(mpath, key, kSegMembers, path + ".");
            if (auto err = read_field(mpath, *id, x)) return err;
        }
        return std::nullopt;
    }

    std::optional<Diagnostic> read_host(const json& val) {
        if (!val.is_object()) return fail("host", "must be a JSON object {efer, cr0, cr4, rflags, cpl, rax, address_size}");
        checks::HostState h;
        for (const auto& [key, x] : val.items()) {
            const std::string path = "host." + key;
            if (std::find(kHostMembers.begin(), kHostMembers.end(), key) == kHostMembers.end())
                return unknown(path, key, kHostMembers, "host.");
            auto n = number(x);
            if (!n) return fail(path, n.error());
            if (key == "efer") h.efer = *n;
            if (key == "cr0") h.cr0 = *n;
            if (key == "cr4") h.cr4 = *n;
            if (key == "rflags") h.rflags = *n;
            if (key == "rax") h.rax = *n;
            if (key == "hwcr") h.hwcr = *n;
            if (key == "cpl") {
                if (*n > 3) return fail(path, fmt::format("CPL {} is not 0..3", *n));
                h.cpl = static_cast<std::uint8_t>(*n);
            }
            if (key == "address_size") {
                if (*n != 16 && *n != 32 && *n != 64) return fail(path, fmt::format("{} is not 16, 32 or 64", *n));
                h.address_size = static_cast<unsigned>(*n);
            }
        }
        result_.host = h;
        return std::nullopt;
    }

    std::optional<Diagnostic> read_reserved(const json& val) {
        if (!val.is_object()) return fail("reserved_bytes", "must be an object {\"0x018\": \"hex bytes\"}");
        const auto& cover = field_coverage();
        for (const auto& [key, x] : val.items()) {
            const std::string path = "reserved_bytes." + key;
            const auto off = util::parse_u64(key);
            if (!off || *off >= arch::kVmcbSize) return fail(printable(path), "the key must be a byte offset below 0x1000");
            if (!x.is_string()) return fail(printable(path), "expected a hex string of bytes");
            auto bytes = parse_byte_string(x.get_ref<const std::string&>());
            if (!bytes) return fail(printable(path), bytes.error());
            if (*off + bytes->size() > arch::kVmcbSize)
                return fail(printable(path), "the bytes run past the end of the 4 KiB page");
            for (std::size_t i = 0; i < bytes->size(); ++i) {
                const std::size_t at = *off + i;
                if (cover.test(at)) {
                    const auto f = std::find_if(arch::kFields.begin(), arch::kFields.end(), [&](const auto& fi) {
                        return at >= fi.offset && at < std::size_t{fi.offset} + fi.width;
                    });
                    return fail(printable(path), fmt::format("byte {:#05x} belongs to {}; give it by name", at, f->name));
                }
                if (reserved_set_.test(at)) return fail(printable(path), fmt::format("byte {:#05x} is given twice", at));
                reserved_set_.set(at);
                result_.vmcb.page()[at] = (*bytes)[i];
            }
        }
        return std::nullopt;
    }

    std::string source_;
    ReadResult result_;
    std::vector<std::string> set_by_;  ///< per kFields entry: the member path that set it
    std::bitset<arch::kVmcbSize> reserved_set_;
};

}  // namespace

Result read_json(std::string_view text, std::string_view source) {
    // Duplicate members, hostile depth and numbers beyond a double are
    // refused here, with their line: the reader below never sees them.
    auto top = parse_json_strict(text, source);
    if (!top) return nsvm::unexpected(std::move(top.error()));
    return read_vmcb_json(*top, source);
}

}  // namespace detail

nsvm::expected<ReadResult, Diagnostic> read_vmcb_json(const nlohmann::json& top, std::string_view source) {
    try {
        detail::JsonReader reader(source);
        if (auto err = reader.read(top)) return nsvm::unexpected(std::move(*err));
        return std::move(reader.result());
    } catch (const std::exception& e) {
        // Safety net only (allocation): bad input is reported as a Diagnostic.
        return nsvm::unexpected(
            Diagnostic{std::string(source), 0, "", fmt::format("internal error while reading: {}", e.what())});
    }
}

}  // namespace nsvm::formats
