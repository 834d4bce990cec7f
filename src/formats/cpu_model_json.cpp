// CPU model JSON reader (docs/formats.md "CPU model"). See cpu_model_json.hpp.
#include "nsvm/formats/cpu_model_json.hpp"

#include <array>
#include <optional>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nsvm/formats/json_strict.hpp"
#include "nsvm/util/text.hpp"

namespace nsvm::formats {
namespace {

using nlohmann::json;

constexpr std::array<std::string_view, 8> kKeys = {"name",     "description", "base",      "maxphyaddr",
                                                   "va_width", "num_asids",   "num_encrypted_guests", "features"};

/// An unsigned integer from a JSON integer or a "0x.."/decimal string.
nsvm::expected<std::uint64_t, std::string> number(const json& v) {
    if (v.is_number_unsigned()) return v.get<std::uint64_t>();
    if (v.is_number_integer()) {
        const auto i = v.get<std::int64_t>();
        if (i < 0) return nsvm::unexpected(fmt::format("{} is negative", i));
        return static_cast<std::uint64_t>(i);
    }
    if (v.is_string()) {
        const auto s = v.get<std::string>();
        if (auto n = util::parse_u64(s)) return *n;
        return nsvm::unexpected(fmt::format("'{}' is not a number", util::printable(s)));
    }
    return nsvm::unexpected(fmt::format("expected an integer, got {}", describe_json(v)));
}

// The model's name and description are printed by every command that uses
// the model: keep them one short line of text.
constexpr std::size_t kMaxNameLength = 64;
constexpr std::size_t kMaxDescriptionLength = 1024;

/// Why `s` cannot be printed as it is, if it cannot: a control character
/// (an escape sequence or a newline would forge output) or too long.
std::optional<std::string> plain_text(std::string_view s, std::size_t max) {
    if (s.size() > max)
        return fmt::format("'{}' is longer than {} bytes", util::printable(s, 40), max);
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7F)
            return fmt::format("'{}' holds a control character (byte {:#04x} at offset {})", util::printable(s), c, i);
    }
    return std::nullopt;
}

struct Reader {
    std::string_view path;

    [[nodiscard]] std::string err(std::string_view key, std::string_view what) const {
        return fmt::format("{}: key '{}': {}", path, util::printable(key), what);
    }

    nsvm::expected<std::uint64_t, std::string> ranged(const json& obj, std::string_view key, std::uint64_t lo,
                                                      std::uint64_t hi) const {
        auto n = number(obj.at(std::string(key)));
        if (!n) return nsvm::unexpected(err(key, n.error()));
        if (*n < lo || *n > hi) return nsvm::unexpected(err(key, fmt::format("{} is out of range {}..{}", *n, lo, hi)));
        return *n;
    }

    nsvm::expected<checks::CpuModel, std::string> read(std::string_view text) const {
        // Duplicate keys, hostile depth and out-of-range numbers are refused
        // with their line, as in every JSON nsvm reads.
        auto parsed = parse_json_strict(text, path);
        if (!parsed) return nsvm::unexpected(to_string(parsed.error()));
        const json& doc = *parsed;
        if (!doc.is_object())
            return nsvm::unexpected(fmt::format("{}: a CPU model is a JSON object, not {}", path, doc.type_name()));
        for (const auto& [key, val] : doc.items()) {
            bool known = false;
            for (auto k : kKeys) known = known || k == key;
            if (!known) {
                const auto near = util::closest(key, kKeys);
                return nsvm::unexpected(fmt::format("{}: unknown key '{}'{} (keys: name, description, base, maxphyaddr, "
                                                    "va_width, num_asids, num_encrypted_guests, features)",
                                                    path, util::printable(key),
                                                    near.empty() ? "" : fmt::format(", did you mean '{}'?", near)));
            }
        }

        checks::CpuModel m = checks::default_model();
        if (doc.contains("base")) {
            const auto& b = doc.at("base");
            if (!b.is_string()) return nsvm::unexpected(err("base", fmt::format("expected a model name, got {}", b.type_name())));
            auto base = checks::find_builtin_model(b.get<std::string>());
            if (!base) return nsvm::unexpected(err("base", base.error()));
            m = *base;
        }
        m.description = fmt::format("from {}", path);
        if (doc.contains("name")) {
            const auto& n = doc.at("name");
            if (!n.is_string() || n.get<std::string>().empty())
                return nsvm::unexpected(err("name", "expected a non-empty string"));
            if (auto bad = plain_text(n.get_ref<const std::string&>(), kMaxNameLength))
                return nsvm::unexpected(err("name", *bad));
            m.name = n.get<std::string>();
        } else {
            m.name = std::string(path);
        }
        if (doc.contains("description")) {
            const auto& d = doc.at("description");
            if (!d.is_string()) return nsvm::unexpected(err("description", "expected a string"));
            if (auto bad = plain_text(d.get_ref<const std::string&>(), kMaxDescriptionLength))
                return nsvm::unexpected(err("description", *bad));
            m.description = d.get<std::string>();
        }
        if (doc.contains("features")) {
            if (auto r = features(doc.at("features"), m); !r) return nsvm::unexpected(r.error());
        }
        // APM 3.1 / CPUID Fn8000_0008_EAX: implementations report 32..52.
        if (doc.contains("maxphyaddr")) {
            auto n = ranged(doc, "maxphyaddr", 32, 52);
            if (!n) return nsvm::unexpected(n.error());
            m.maxphyaddr = static_cast<unsigned>(*n);
        }
        if (doc.contains("va_width")) {
            auto n = ranged(doc, "va_width", 48, 57);
            if (!n) return nsvm::unexpected(n.error());
            if (*n != 48 && *n != 57) return nsvm::unexpected(err("va_width", fmt::format("{} is neither 48 nor 57", *n)));
            m.va_width = static_cast<unsigned>(*n);
        }
        if (doc.contains("num_asids")) {
            auto n = ranged(doc, "num_asids", 1, 0xFFFFFFFFULL);
            if (!n) return nsvm::unexpected(n.error());
            m.num_asids = static_cast<std::uint32_t>(*n);
        }
        if (doc.contains("num_encrypted_guests")) {
            auto n = ranged(doc, "num_encrypted_guests", 0, 0xFFFFFFFFULL);
            if (!n) return nsvm::unexpected(n.error());
            m.num_encrypted_guests = static_cast<std::uint32_t>(*n);
        }
        return m;
    }

    nsvm::expected<void, std::string> features(const json& f, checks::CpuModel& m) const {
        if (f.is_string()) {
            if (auto r = checks::apply_feature_edits(m, f.get<std::string>()); !r)
                return nsvm::unexpected(err("features", r.error()));
            return {};
        }
        if (!f.is_array())
            return nsvm::unexpected(err("features", fmt::format("expected a list of names, got {}", f.type_name())));
        std::size_t edits = 0;
        std::vector<std::string> items;
        for (std::size_t i = 0; i < f.size(); ++i) {
            if (!f[i].is_string())
                return nsvm::unexpected(err("features", fmt::format("item {} is {}, not a string", i, f[i].type_name())));
            auto s = f[i].get<std::string>();
            if (s.empty()) return nsvm::unexpected(err("features", fmt::format("item {} is empty", i)));
            edits += (s.front() == '+' || s.front() == '-') ? 1 : 0;
            items.push_back(std::move(s));
        }
        if (edits != 0 && edits != items.size())
            return nsvm::unexpected(err("features", "mixes +x/-x edits with plain names; use either edits on 'base' "
                                                    "or a full list"));
        if (edits == 0) m.clear_features();  // a full list replaces the base's features
        std::string joined;
        for (const auto& s : items) joined += s + ",";
        if (auto r = checks::apply_feature_edits(m, joined); !r) return nsvm::unexpected(err("features", r.error()));
        if (edits == 0) m.va_width = m.has(checks::Feature::la57) ? 57 : 48;
        return {};
    }
};

}  // namespace

nsvm::expected<checks::CpuModel, std::string> read_cpu_model_json(std::string_view text, std::string_view path) {
    try {
        return Reader{path}.read(text);
    } catch (const std::exception& e) {  // defensive: nlohmann accessors, allocation
        return nsvm::unexpected(fmt::format("{}: cannot read CPU model: {}", path, e.what()));
    }
}

}  // namespace nsvm::formats
