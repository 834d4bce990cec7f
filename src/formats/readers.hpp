// Internal to the formats layer: the per-format readers and the helpers they
// share. Not installed; the public API is nsvm/formats/vmcb_io.hpp.
#pragma once

#include <bitset>
#include <optional>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nsvm/formats/vmcb_io.hpp"
#include "nsvm/util/text.hpp"

namespace nsvm::formats::detail {

using Result = nsvm::expected<ReadResult, Diagnostic>;
using DumpsResult = nsvm::expected<std::vector<DumpRead>, Diagnostic>;

/// Which dumps of a log to read.
struct DumpSelection {
    enum class Mode : std::uint8_t {
        first,  ///< read_vmcb: the first, and a warning that more follow
        all,    ///< every dump, in order
        one,    ///< only dump `index` (1-based)
    };
    Mode mode = Mode::first;
    std::size_t index = 0;
};

[[nodiscard]] Result read_raw(std::span<const std::uint8_t> data, std::string_view source);
[[nodiscard]] Result read_json(std::string_view text, std::string_view source);
[[nodiscard]] Result read_kvm_dump(std::string_view text, std::string_view source);
/// Every dump_vmcb() output in a log (one per vCPU or failure), as `sel` asks.
[[nodiscard]] DumpsResult read_kvm_dumps(std::string_view text, std::string_view source, DumpSelection sel);
[[nodiscard]] Result read_xen_dump(std::string_view text, std::string_view source);
/// Every svm_vmcb_dump() output of a Xen paste ('xl debug-keys v' prints one
/// per domain and vCPU), as `sel` asks, each with Xen's validator lines about it.
[[nodiscard]] DumpsResult read_xen_dumps(std::string_view text, std::string_view source, DumpSelection sel);
[[nodiscard]] Result read_qemu_dump(std::string_view text, std::string_view source);
/// xxd / hexdump -C / od -A x -t x1 text of the page (hexdump.cpp).
[[nodiscard]] Result read_hexdump(std::string_view text, std::string_view source);
/// One of the first lines is a dump tool's line at the start of a page.
[[nodiscard]] bool looks_like_hexdump(std::string_view text);

/// Bytes of the page that some named field covers (everything else is
/// reserved and travels in JSON's "reserved_bytes").
[[nodiscard]] const std::bitset<arch::kVmcbSize>& field_coverage();

/// User text made safe to print and to put into JSON (one helper for the
/// whole project: util::printable).
using util::printable;

/// One line of the input (LF or CRLF removed) with its 1-based number.
struct Line {
    int number;
    std::string_view text;
};

/// The input's lines one at a time. The dump readers walk a log of any size
/// with it in O(1) memory (a vector of every line cost 24 bytes per input
/// byte for a file of newlines).
class LineCursor {
public:
    /// `first_number`: the number of the text's first line (a part of a
    /// larger input keeps the input's line numbers).
    explicit LineCursor(std::string_view text, int first_number = 1) : rest_(text), number_(first_number) {}
    [[nodiscard]] std::optional<Line> next() {
        if (done_) return std::nullopt;
        const auto nl = rest_.find('\n');
        std::string_view l = rest_.substr(0, nl);
        if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
        if (nl == std::string_view::npos) {
            done_ = true;
            if (l.empty()) return std::nullopt;  // no empty last line after a final newline
        } else {
            rest_.remove_prefix(nl + 1);
            if (rest_.empty()) done_ = true;
        }
        return Line{number_++, l};
    }

private:
    std::string_view rest_;
    int number_;
    bool done_ = false;
};

/// Trims blanks at both ends.
[[nodiscard]] std::string_view trim(std::string_view s);

/// Parses hex digits with an optional 0x prefix ("0", "0x1f", "0000ffff").
/// nullopt on junk, empty or more than 64 bits.
[[nodiscard]] std::optional<std::uint64_t> parse_hex(std::string_view s);
/// Parses a decimal number that printf's %d/%lld produced for a field of
/// `width` bytes: a leading '-' is the two's complement of the field.
[[nodiscard]] std::optional<std::uint64_t> parse_signed_dec(std::string_view s, unsigned width);

/// The single warning a dump reader gives for fields it had no value for
/// (so they read as zero): "the dump does not give N fields ...: a, b, c".
/// `given[i]` tells whether kFields[i] was set from the text.
[[nodiscard]] std::optional<Diagnostic> missing_fields_warning(std::string_view source, std::string_view what,
                                                               const std::vector<bool>& given);

}  // namespace nsvm::formats::detail
