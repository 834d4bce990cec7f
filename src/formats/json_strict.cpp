// parse_json_strict: a linear pre-pass over the text (depth, duplicate keys,
// number range, each with its line) and then nlohmann's parser, whose own
// errors carry a byte offset we turn into line and column.
#include "nsvm/formats/json_strict.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <set>
#include <vector>

#include <fmt/format.h>

#include "nsvm/util/text.hpp"

namespace nsvm::formats {
namespace {

/// Appends code point `cp` as UTF-8.
void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

/// The pre-pass. It only looks for what nlohmann accepts silently or reports
/// without a position; anything malformed it leaves to nlohmann (it stops
/// scanning at the first thing it does not understand).
class Scanner {
public:
    Scanner(std::string_view text, std::string_view source, const JsonLimits& limits)
        : text_(text), source_(source), limits_(limits) {}

    [[nodiscard]] std::optional<Diagnostic> run() {
        while (i_ < text_.size()) {
            const char c = text_[i_];
            if (c == '\n') {
                newline();
                continue;
            }
            if (c == '/') {
                if (unterminated_comment())
                    return error("", "a /* comment starts here and is never closed (no \"*/\" follows)");
                if (!skip_comment()) return std::nullopt;
                continue;
            }
            if (c == '{' || c == '[') {
                if (frames_.size() >= limits_.max_depth)
                    return error(path(), fmt::format("nesting deeper than {} levels of arrays and objects (the limit "
                                                     "on input; see docs/limits.md)",
                                                     limits_.max_depth));
                frames_.push_back(Frame{c == '{', c == '{', {}, {}, 0});
                ++i_;
                continue;
            }
            if (c == '}' || c == ']') {
                if (frames_.empty()) return std::nullopt;  // unbalanced: nlohmann says where
                frames_.pop_back();
                ++i_;
                continue;
            }
            if (c == ',') {
                if (!frames_.empty()) {
                    auto& f = frames_.back();
                    if (f.object) {
                        f.expect_key = true;
                    } else {
                        ++f.index;
                    }
                }
                ++i_;
                continue;
            }
            if (c == '"') {
                if (auto err = string()) return err;
                if (i_ > text_.size()) return std::nullopt;  // unterminated
                continue;
            }
            if (c == '-' || (c >= '0' && c <= '9')) {
                if (auto err = number()) return err;
                continue;
            }
            ++i_;  // blanks, ':', literals; junk is nlohmann's to report
        }
        return std::nullopt;
    }

private:
    struct Frame {
        bool object;
        bool expect_key;             ///< the next string is a member name
        std::set<std::string> keys;  ///< names seen in this object, decoded
        std::string key;             ///< the member being read (decoded)
        std::size_t index;           ///< the array element being read
    };

    void newline() {
        ++line_;
        ++i_;
        line_start_ = i_;
    }

    /// "/*" at i_ without a "*/" after it: reported here, at the line
    /// where it starts (nlohmann would name the end of the input).
    [[nodiscard]] bool unterminated_comment() const {
        return limits_.allow_comments && text_.substr(i_, 2) == "/*" &&
               text_.find("*/", i_ + 2) == std::string_view::npos;
    }

    /// Skips "// ..." or "/* ... */"; false when the text is not a comment
    /// or the comment is unterminated (nlohmann reports both).
    bool skip_comment() {
        if (!limits_.allow_comments || i_ + 1 >= text_.size()) return false;
        if (text_[i_ + 1] == '/') {
            const auto nl = text_.find('\n', i_);
            i_ = nl == std::string_view::npos ? text_.size() : nl;
            return true;
        }
        if (text_[i_ + 1] != '*') return false;
        const auto end = text_.find("*/", i_ + 2);
        if (end == std::string_view::npos) return false;
        for (; i_ < end + 2; ++i_) {
            if (text_[i_] == '\n') line_start_ = i_ + 1, ++line_;
        }
        return true;
    }

    /// Reads a string at i_ ('"'); a member name is decoded and checked for
    /// duplicates. Leaves i_ past the closing quote, or past the end when
    /// the string is unterminated.
    std::optional<Diagnostic> string() {
        const bool is_key = !frames_.empty() && frames_.back().object && frames_.back().expect_key;
        const std::size_t line = line_, col = i_ - line_start_ + 1;
        std::string decoded;
        ++i_;
        while (i_ < text_.size() && text_[i_] != '"') {
            const char c = text_[i_];
            if (c == '\n') return mark_unterminated();  // raw newlines are invalid inside strings
            if (c != '\\') {
                if (is_key) decoded.push_back(c);
                ++i_;
                continue;
            }
            if (i_ + 1 >= text_.size()) return mark_unterminated();
            if (is_key) decode_escape(decoded);
            else i_ += 2;
        }
        if (i_ >= text_.size()) return mark_unterminated();
        ++i_;  // the closing quote
        if (!is_key) return std::nullopt;
        auto& f = frames_.back();
        f.expect_key = false;
        if (!f.keys.insert(decoded).second) {
            f.key = decoded;
            return Diagnostic{std::string(source_), static_cast<int>(line), path(),
                              fmt::format("member given twice in one object (column {}; JSON readers would keep "
                                          "only one of them silently)",
                                          col)};
        }
        f.key = std::move(decoded);
        return std::nullopt;
    }

    std::optional<Diagnostic> mark_unterminated() {
        i_ = text_.size() + 1;
        return std::nullopt;
    }

    /// Decodes the escape at i_ ('\\') into `out` and steps over it.
    void decode_escape(std::string& out) {
        const char e = text_[i_ + 1];
        i_ += 2;
        switch (e) {
            case 'b': out.push_back('\b'); return;
            case 'f': out.push_back('\f'); return;
            case 'n': out.push_back('\n'); return;
            case 'r': out.push_back('\r'); return;
            case 't': out.push_back('\t'); return;
            case 'u': break;
            default: out.push_back(e); return;  // '"', '\\', '/'; others are nlohmann's to refuse
        }
        auto cp = hex4();
        if (!cp) return;
        if (*cp >= 0xD800 && *cp <= 0xDBFF && text_.substr(i_, 2) == "\\u") {
            i_ += 2;
            if (const auto lo = hex4(); lo && *lo >= 0xDC00 && *lo <= 0xDFFF) {
                cp = 0x10000 + ((*cp - 0xD800) << 10) + (*lo - 0xDC00);
            }
        }
        append_utf8(out, *cp);
    }

    std::optional<std::uint32_t> hex4() {
        if (i_ + 4 > text_.size()) return std::nullopt;
        std::uint32_t v = 0;
        for (std::size_t k = 0; k < 4; ++k) {
            const char c = text_[i_ + k];
            const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                                                : -1;
            if (d < 0) return std::nullopt;
            v = v * 16 + static_cast<std::uint32_t>(d);
        }
        i_ += 4;
        return v;
    }

    /// A number token: refused when it overflows a double (nlohmann would
    /// throw an out_of_range that knows neither line nor member).
    std::optional<Diagnostic> number() {
        const std::size_t start = i_;
        bool fractional = false;
        while (i_ < text_.size()) {
            const char c = text_[i_];
            if (c == '.' || c == 'e' || c == 'E') fractional = true;
            if (!(c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' || (c >= '0' && c <= '9'))) break;
            ++i_;
        }
        const std::string_view tok = text_.substr(start, i_ - start);
        // Integers nlohmann stores as double once past 64 bits: 20 digits
        // and a sign are safe; longer ones go through strtod like the rest.
        if (!fractional && tok.size() <= 21) return std::nullopt;
        const std::string copy(tok);
        errno = 0;
        const double d = std::strtod(copy.c_str(), nullptr);
        if (!std::isinf(d)) return std::nullopt;
        return error(path(), fmt::format("the number {} is beyond the range of a double (about 1.8e308)",
                                         util::printable(tok, 40)),
                     start);
    }

    [[nodiscard]] Diagnostic error(std::string field, std::string message) const { return error(std::move(field), std::move(message), i_); }
    [[nodiscard]] Diagnostic error(std::string field, std::string message, std::size_t at) const {
        return Diagnostic{std::string(source_), static_cast<int>(line_), std::move(field),
                          fmt::format("column {}: {}", at - line_start_ + 1, message)};
    }

    /// "save.cr0", "features[2]": where the scanner is, for messages. A
    /// path as deep as the limit shows its first levels and the count.
    [[nodiscard]] std::string path() const {
        constexpr std::size_t kShown = 8;
        std::string p;
        for (std::size_t k = 0; k < frames_.size(); ++k) {
            const auto& f = frames_[k];
            if (k == kShown) {
                p += fmt::format("\u2026({} levels)", frames_.size());
                break;
            }
            if (f.object) {
                if (f.expect_key && f.keys.empty()) break;  // before the first member
                p += (p.empty() ? "" : ".") + util::printable(f.key, 40);
            } else {
                p += fmt::format("[{}]", f.index);
            }
        }
        return p;
    }

    std::string_view text_;
    std::string_view source_;
    JsonLimits limits_;
    std::vector<Frame> frames_;
    std::size_t i_ = 0;
    std::size_t line_ = 1;
    std::size_t line_start_ = 0;
};

/// nlohmann's parse_error carries a byte offset; people want line and column.
Diagnostic parse_error_diagnostic(const nlohmann::json::parse_error& e, std::string_view text, std::string_view source) {
    const std::size_t pos = std::min<std::size_t>(e.byte == 0 ? 0 : e.byte - 1, text.size());
    const auto before = text.substr(0, pos);
    const int line = 1 + static_cast<int>(std::count(before.begin(), before.end(), '\n'));
    const auto nl = before.rfind('\n');
    const std::size_t col = pos - (nl == std::string_view::npos ? 0 : nl + 1) + 1;
    std::string what = e.what();
    // Drop nlohmann's "[json.exception.parse_error.N] parse error at line L, column C: ".
    if (auto c = what.find("column"); c != std::string::npos) {
        if (auto colon = what.find(": ", c); colon != std::string::npos) what = what.substr(colon + 2);
    } else if (auto colon = what.find("parse error: "); colon != std::string::npos) {
        what = what.substr(colon + 13);
    }
    return Diagnostic{std::string(source), line, "",
                      fmt::format("malformed JSON at column {}: {}", col, util::printable(what, 200))};
}

}  // namespace

nsvm::expected<nlohmann::json, Diagnostic> parse_json_strict(std::string_view text, std::string_view source,
                                                             const JsonLimits& limits) {
    if (auto err = Scanner(text, source, limits).run()) return nsvm::unexpected(std::move(*err));
    try {
        return nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/true, limits.allow_comments);
    } catch (const nlohmann::json::parse_error& e) {
        return nsvm::unexpected(parse_error_diagnostic(e, text, source));
    } catch (const nlohmann::json::exception& e) {
        // The pre-pass catches the cases we know of (number overflow); this
        // keeps any other refusal of nlohmann's an input error, not a crash.
        return nsvm::unexpected(Diagnostic{std::string(source), 0, "",
                                           fmt::format("cannot read JSON: {}", util::printable(e.what(), 200))});
    }
}

std::string describe_json(const nlohmann::json& v) {
    switch (v.type()) {
        case nlohmann::json::value_t::object:
            return v.empty() ? "an empty object" : fmt::format("an object of {} member{}", v.size(), v.size() == 1 ? "" : "s");
        case nlohmann::json::value_t::array:
            return v.empty() ? "an empty array" : fmt::format("an array of {}", v.size());
        case nlohmann::json::value_t::string:
            return fmt::format("the string \"{}\"", util::printable(v.get_ref<const std::string&>(), 40));
        case nlohmann::json::value_t::null: return "null";
        case nlohmann::json::value_t::boolean: return v.get<bool>() ? "true" : "false";
        case nlohmann::json::value_t::binary: return "binary data";
        case nlohmann::json::value_t::discarded: return "nothing";
        default: return "the number " + v.dump();  // a scalar: short whatever the input
    }
}

}  // namespace nsvm::formats
