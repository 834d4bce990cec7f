// Internal: state shared by the two text-dump readers (KVM, Xen): which
// fields the text gave and on which line, the warnings so far, and the
// checked stores that turn a printed value into VMCB bytes.
#pragma once

#include <fmt/format.h>
#include <map>
#include <string>

#include "readers.hpp"

namespace nsvm::formats::detail {

enum class Radix : std::uint8_t { hex, dec };

class DumpState {
public:
    explicit DumpState(std::string_view source, Format f) : source_(source), given_(arch::kFields.size()) {
        result_.format = f;
    }

    [[nodiscard]] Diagnostic error(int line, std::string_view field, std::string message) const {
        return Diagnostic{source_, line, std::string(field), std::move(message)};
    }
    void warn(int line, std::string_view field, std::string message) {
        result_.warnings.push_back(Diagnostic{source_, line, std::string(field), std::move(message)});
    }

    /// A warning about a label the reader does not know. A log can hold one
    /// on every line: the first kMaxLabelWarnings are kept, the rest counted
    /// and summed up by finish() ("and N more").
    void warn_unknown_label(int line, std::string message) {
        if (unknown_labels_++ < kMaxLabelWarnings) warn(line, "", std::move(message));
    }
    static constexpr std::size_t kMaxLabelWarnings = 10;

    /// Records that `label` appeared on `line`; an error if it appeared before
    /// (two dumps interleaved, or a garbled paste): never pick one silently.
    [[nodiscard]] std::optional<Diagnostic> once(int line, const std::string& label, std::string_view field) {
        auto [it, fresh] = label_line_.emplace(label, line);
        if (fresh) return std::nullopt;
        return error(line, field,
                     fmt::format("'{}' appears twice (first on line {}); are two dumps interleaved?", printable(label),
                                 it->second));
    }
    [[nodiscard]] bool seen(const std::string& label) const { return label_line_.contains(label); }
    [[nodiscard]] bool any_seen() const { return !label_line_.empty(); }

    /// Parses `text` in `radix` and stores it into bits [shift, shift+bits)
    /// of field `id` (bits = 0: the whole field).
    [[nodiscard]] std::optional<Diagnostic> store(int line, arch::FieldId id, std::string_view text, Radix radix,
                                                  unsigned shift = 0, unsigned bits = 0) {
        const auto& f = arch::info(id);
        const unsigned width_bits = bits ? bits : 8U * f.width;
        const auto v = parse(text, radix, (width_bits + 7) / 8);
        if (!v)
            return error(line, f.name,
                         fmt::format("'{}' is not a {} number", printable(text),
                                     radix == Radix::hex ? "hexadecimal" : "decimal"));
        const std::uint64_t mask = width_bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << width_bits) - 1;
        if ((*v & ~mask) != 0)
            return error(line, f.name, fmt::format("value {:#x} is too wide for {} bits", *v, width_bits));
        const std::uint64_t old = result_.vmcb.get(id);
        result_.vmcb.set(id, (old & ~(mask << shift)) | (*v << shift));
        given_[static_cast<std::size_t>(id)] = true;
        return std::nullopt;
    }
    /// Stores 8 bytes at `offset` (Xen prints some 64-bit unions that span
    /// two VMCB fields, e.g. vintr = int_ctl + int_vector).
    [[nodiscard]] std::optional<Diagnostic> store_raw8(int line, std::size_t offset, std::string_view field,
                                                       std::string_view text) {
        const auto v = parse_hex(text);
        if (!v) return error(line, field, fmt::format("'{}' is not a hexadecimal number", printable(text)));
        arch::store_le(result_.vmcb.page(), offset, 8, *v);
        for (const auto& f : arch::kFields) {
            if (f.offset >= offset && f.offset < offset + 8) given_[static_cast<std::size_t>(f.id)] = true;
        }
        return std::nullopt;
    }
    void mark_given(arch::FieldId id) { given_[static_cast<std::size_t>(id)] = true; }
    /// Which fields (by arch::FieldId) the text gave so far.
    [[nodiscard]] const std::vector<bool>& given() const { return given_; }

    [[nodiscard]] ReadResult finish(std::string_view what) {
        if (unknown_labels_ > kMaxLabelWarnings)
            warn(0, "", fmt::format("and {} more lines with labels nsvm does not know (ignored; only the first {} "
                                    "are listed)",
                                    unknown_labels_ - kMaxLabelWarnings, kMaxLabelWarnings));
        if (auto w = missing_fields_warning(source_, what, given_)) result_.warnings.push_back(std::move(*w));
        result_.given = given_;  // for --partial: checks on fields not given are not decided
        return std::move(result_);
    }
    [[nodiscard]] ReadResult& result() { return result_; }
    [[nodiscard]] const std::string& source() const { return source_; }

private:
    static std::optional<std::uint64_t> parse(std::string_view s, Radix radix, unsigned width_bytes) {
        if (radix == Radix::hex) return parse_hex(s);
        return parse_signed_dec(s, width_bytes == 0 ? 1 : width_bytes);
    }

    std::string source_;
    ReadResult result_;
    std::vector<bool> given_;
    std::map<std::string, int> label_line_;
    std::size_t unknown_labels_ = 0;
};

/// Dumps of one log read at once (every dump costs a whole VMCB and its
/// warnings; a log of tiny fake dumps must not turn 64 MiB of text into
/// gigabytes). Far more than the vCPUs of any host; --dump N reads any one
/// beyond it.
inline constexpr std::size_t kMaxDumpsAtOnce = 1024;

/// The one way a log of several dumps (KVM's dump_vmcb per vCPU, Xen's
/// 'xl debug-keys v' per domain and vCPU) is read as `sel` asks: every dump,
/// only dump `sel.index`, or the first with a warning that more follow.
/// `read_one(k)` reads dump k (0-based) into a DumpRead; `second_line` is the
/// first line of the second dump (for that warning); `noun` names a dump in
/// it ("dump", "VMCB dump").
template <class ReadOne>
[[nodiscard]] DumpsResult select_dumps(std::size_t count, DumpSelection sel, std::string_view source, int second_line,
                                       std::string_view noun, ReadOne read_one) {
    std::vector<DumpRead> out;
    if (sel.mode == DumpSelection::Mode::one) {
        if (sel.index < 1 || sel.index > count)
            return nsvm::unexpected(Diagnostic{std::string(source), 0, "",
                                               fmt::format("there is no dump {}: the input holds {} dump{}", sel.index,
                                                           count, count == 1 ? "" : "s")});
        auto d = read_one(sel.index - 1);
        if (!d) return nsvm::unexpected(std::move(d.error()));
        out.push_back(std::move(*d));
        return out;
    }
    if (sel.mode == DumpSelection::Mode::all && count > kMaxDumpsAtOnce)
        return nsvm::unexpected(Diagnostic{std::string(source), 0, "",
                                           fmt::format("the input holds {} dumps; nsvm reads at most {} at once: pick "
                                                       "one with --dump N (or split the log)",
                                                       count, kMaxDumpsAtOnce)});
    const std::size_t n = sel.mode == DumpSelection::Mode::all ? count : 1;
    for (std::size_t k = 0; k < n; ++k) {
        auto d = read_one(k);
        if (!d) return nsvm::unexpected(std::move(d.error()));
        out.push_back(std::move(*d));
    }
    if (sel.mode == DumpSelection::Mode::first && count > 1)
        out.front().result.warnings.push_back(Diagnostic{
            std::string(source), second_line, "",
            fmt::format("the input holds more than one {} ({} more from this line on); read only the first "
                        "(nsvm check reports each, --dump N picks one)",
                        noun, count - 1)});
    return out;
}

/// Splits on blanks.
[[nodiscard]] inline std::vector<std::string_view> words(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
        const std::size_t b = i;
        while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
        if (i > b) out.push_back(s.substr(b, i - b));
    }
    return out;
}

/// Hex digits with an optional "0x", or a decimal with an optional '-'.
[[nodiscard]] inline bool is_number_token(std::string_view t) {
    if (t.starts_with("-")) t.remove_prefix(1);
    if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) t.remove_prefix(2);
    if (t.empty()) return false;
    return std::all_of(t.begin(), t.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

}  // namespace nsvm::formats::detail
