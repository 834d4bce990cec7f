// Reader for a hex dump of the raw 4 KiB VMCB page (docs/formats.md "Hex
// dump of the page"): what `xxd`, `hexdump -C` and `od -A x -t x1` print,
// the form people paste when they have the page itself (a debugger, /dev/mem,
// a crash dump) rather than a hypervisor's dump text.
//
// One job: rebuild the 4096 bytes, then hand them to the raw reader, so the
// page is judged exactly as a raw file would be. Nothing is guessed: a line
// that does not fit, an offset out of order, a gap, bytes past 4 KiB or a
// page cut short is an error naming the file, the line and the VMCB field at
// that offset. One pass over the lines, a fixed 4 KiB buffer, and at most
// kMaxLineBytes bytes parsed per line, whatever the input's size.
#include <algorithm>
#include <array>
#include <fmt/format.h>

#include "readers.hpp"

namespace nsvm::formats::detail {
namespace {

using Page = std::array<std::uint8_t, arch::kVmcbSize>;

/// xxd -c accepts at most 256 columns; no tool prints more bytes on a line.
constexpr std::size_t kMaxLineBytes = 256;
/// Leading lines (a shell prompt, a sentence of a mail) looked at before the
/// first line of the dump, when detecting the format.
constexpr int kDetectLines = 8;

/// How the tool lays out the bytes after the offset.
enum class Style : std::uint8_t {
    xxd,     ///< "00000000: 0100 0000 ...  ascii": groups of 2n digits, bytes in file order
    bytes,   ///< hexdump -C "00000000  01 00 ... |ascii|", od "000000 01 00 ...": one byte a column
};

enum class Kind : std::uint8_t { data, repeat, end };

struct HexLine {
    Kind kind = Kind::data;
    Style style = Style::bytes;
    std::uint64_t offset = 0;
    std::size_t count = 0;
    std::array<std::uint8_t, kMaxLineBytes> bytes{};
};

/// Why a line is not a hex dump line, and at which byte of the line's data
/// (for naming the VMCB field).
struct LineError {
    std::size_t byte = 0;
    std::string message;
    bool after_offset = false;  ///< the line began with an offset: meant as a dump line
};

using LineResult = nsvm::expected<HexLine, LineError>;

[[nodiscard]] bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }
[[nodiscard]] bool is_blank(char c) { return c == ' ' || c == '\t'; }

[[nodiscard]] std::uint8_t hex_value(char c) {
    if (c >= '0' && c <= '9') return static_cast<std::uint8_t>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<std::uint8_t>(c - 'a' + 10);
    return static_cast<std::uint8_t>(c - 'A' + 10);
}

/// The hex part of the line's data, without the character column each tool
/// adds: hexdump -C puts it between '|', od -t x1z between '>' and '<', and
/// xxd after two blanks (its groups are separated by one).
[[nodiscard]] std::string_view hex_area(std::string_view body, Style style) {
    if (style == Style::xxd) {
        if (const auto two = body.find("  "); two != std::string_view::npos) body = body.substr(0, two);
        return body;
    }
    if (const auto bar = body.find_first_of("|>"); bar != std::string_view::npos) body = body.substr(0, bar);
    return body;
}

/// Appends the bytes of one blank-separated token; false (with `err`) when
/// the token is not what `style` prints.
[[nodiscard]] bool take_token(std::string_view tok, Style style, HexLine& out, LineError& err) {
    if (!std::all_of(tok.begin(), tok.end(), is_hex)) {
        err = {out.count, fmt::format("'{}' is not hexadecimal", printable(tok, 40)), true};
        return false;
    }
    if (style == Style::bytes && tok.size() != 2) {
        err = {out.count, fmt::format("'{}' is not a two-digit byte: read only the one-byte columns of "
                                      "'hexdump -C' and 'od -A x -t x1' (hexdump without -C and od -t x2/x4 print "
                                      "words in the host's byte order)",
                                      printable(tok, 40)),
               true};
        return false;
    }
    if (tok.size() % 2 != 0) {
        err = {out.count, fmt::format("'{}' has an odd number of digits: not whole bytes", printable(tok, 40)), true};
        return false;
    }
    for (std::size_t i = 0; i < tok.size(); i += 2) {
        if (out.count == kMaxLineBytes) {
            err = {out.count,
                   fmt::format("more than {} bytes on one line (no dump tool prints that many)", kMaxLineBytes), true};
            return false;
        }
        out.bytes[out.count++] = static_cast<std::uint8_t>(hex_value(tok[i]) << 4 | hex_value(tok[i + 1]));
    }
    return true;
}

/// One line of a dump: "*", an offset alone (hexdump/od's last line), or an
/// offset and the bytes at it.
[[nodiscard]] LineResult parse_line(std::string_view s) {
    s = trim(s);
    HexLine out;
    if (s == "*") {
        out.kind = Kind::repeat;
        return out;
    }
    std::size_t i = 0;
    while (i < s.size() && is_hex(s[i])) ++i;
    if (i == 0) return nsvm::unexpected(LineError{0, "no offset at the start of the line"});
    if (i > 16) return nsvm::unexpected(LineError{0, "the offset has more than 16 hex digits"});
    out.offset = *parse_hex(s.substr(0, i));
    std::string_view body = s.substr(i);
    if (!body.empty() && body.front() == ':') {
        out.style = Style::xxd;
        body.remove_prefix(1);
    } else if (!body.empty() && !is_blank(body.front())) {
        return nsvm::unexpected(LineError{0, fmt::format("'{}' is not an offset", printable(s.substr(0, i + 1), 40))});
    }
    const std::string_view area = trim(hex_area(trim(body), out.style));
    if (area.empty()) {
        if (out.style == Style::xxd) return nsvm::unexpected(LineError{0, "an offset with no bytes after it"});
        out.kind = Kind::end;  // hexdump and od end with the total length
        return out;
    }
    LineError err;
    err.after_offset = true;
    std::size_t p = 0;
    while (p < area.size()) {
        while (p < area.size() && is_blank(area[p])) ++p;
        const std::size_t b = p;
        while (p < area.size() && !is_blank(area[p])) ++p;
        if (p > b && !take_token(area.substr(b, p - b), out.style, out, err)) return nsvm::unexpected(std::move(err));
    }
    return out;
}

/// The VMCB field a byte of the page belongs to, for error messages.
[[nodiscard]] std::string field_at(std::uint64_t offset) {
    for (const auto& f : arch::kFields) {
        if (offset >= f.offset && offset < f.offset + f.width) return std::string(f.name);
    }
    return offset < arch::kVmcbSize ? fmt::format("reserved byte {:#05x}", offset)
                                    : fmt::format("offset {:#x}", offset);
}

class HexdumpReader {
public:
    explicit HexdumpReader(std::string_view source) : source_(source) {}

    Result read(std::string_view text) {
        LineCursor lines(text);
        while (const auto ln = lines.next()) {
            if (trim(ln->text).empty()) continue;
            auto parsed = parse_line(ln->text);
            if (!started_) {
                // Text before the dump (a prompt, a sentence) is not part of
                // it; the first line that was meant as one is kept, to say
                // why it is not, should no dump follow.
                if (!parsed && parsed.error().after_offset && !first_failure_)
                    first_failure_ = error(ln->number, field_at(parsed.error().byte),
                                           fmt::format("not a line of xxd, hexdump -C or od -A x -t x1 output: {}",
                                                       parsed.error().message));
                if (!parsed || parsed->kind != Kind::data) continue;
                if (auto err = start(ln->number, *parsed)) return nsvm::unexpected(std::move(*err));
            }
            if (complete()) {
                if (!parsed) break;  // text after the page: the dump is over
                if (parsed->kind == Kind::end && parsed->offset == base_ + next_) continue;
                return nsvm::unexpected(error(ln->number, field_at(arch::kVmcbSize),
                                              "a line after the whole 4 KiB page: a VMCB hex dump is one page"));
            }
            if (!parsed)
                return nsvm::unexpected(error(ln->number, field_at(next_ + parsed.error().byte),
                                              fmt::format("not a line of xxd, hexdump -C or od -A x -t x1 output: {}",
                                                          parsed.error().message)));
            if (auto err = take(ln->number, *parsed)) return nsvm::unexpected(std::move(*err));
        }
        if (auto err = finish()) return nsvm::unexpected(std::move(*err));
        auto r = read_raw(page_, source_);
        if (r) r->format = Format::hexdump;
        return r;
    }

private:
    [[nodiscard]] Diagnostic error(int line, std::string field, std::string message) const {
        return Diagnostic{source_, line, std::move(field), std::move(message)};
    }
    [[nodiscard]] bool complete() const { return started_ && !repeat_line_ && next_ == arch::kVmcbSize; }

    /// The first data line. Its offset is the page's start: 0, or the page's
    /// address when the tool was told to seek (xxd -s, od -j with -A x).
    std::optional<Diagnostic> start(int line, const HexLine& first) {
        if (first.offset % arch::kVmcbSize != 0)
            return error(line, "",
                         fmt::format("the dump starts at offset {:#x}, inside a page: the lines before it are missing "
                                     "(a VMCB hex dump starts at 0 or at the page's address)",
                                     first.offset));
        started_ = true;
        style_ = first.style;
        base_ = first.offset;
        return std::nullopt;
    }

    std::optional<Diagnostic> take(int line, const HexLine& l) {
        if (l.kind == Kind::repeat) {
            if (repeat_line_ != 0)
                return error(line, field_at(next_), fmt::format("a second '*' with no line between (the first on "
                                                                "line {})",
                                                                repeat_line_));
            repeat_line_ = line;
            return std::nullopt;
        }
        if (l.kind == Kind::data && l.style != style_)
            return error(line, field_at(next_), "this line is laid out as another tool's (xxd's 'offset:' against "
                                                "hexdump's and od's 'offset  bytes'): two dumps mixed?");
        if (l.offset < base_ || l.offset - base_ < next_)
            return error(line, field_at(next_),
                         fmt::format("offset {:#x} is not after the previous line's end ({:#x}): offsets out of order",
                                     l.offset, base_ + next_));
        const std::uint64_t at = l.offset - base_;
        if (l.kind == Kind::end && at > arch::kVmcbSize)
            return error(line, field_at(at), fmt::format("the dump is {:#x} bytes long: more than the 4 KiB page", at));
        // `at` first: an offset near 2^64 plus the count would wrap around.
        if (at > arch::kVmcbSize || at + l.count > arch::kVmcbSize)
            return error(line, field_at(std::min<std::uint64_t>(at, arch::kVmcbSize)),
                         fmt::format("offset {:#x} with {} bytes goes beyond the 4 KiB page (which ends at {:#x})",
                                     l.offset, l.count, base_ + arch::kVmcbSize));
        if (auto err = fill_repeat(line, at)) return err;
        if (at != next_)
            return error(line, field_at(next_),
                         fmt::format("offset jumps from {:#x} to {:#x} with no '*' between: lines are missing",
                                     base_ + next_, l.offset));
        if (l.kind == Kind::end) {
            if (at != arch::kVmcbSize) return truncated(line);
            return std::nullopt;
        }
        std::copy_n(l.bytes.begin(), l.count, page_.begin() + static_cast<std::ptrdiff_t>(next_));
        prev_ = l;
        next_ += l.count;
        last_line_ = line;
        return std::nullopt;
    }

    /// '*': the lines up to the next offset are copies of the line before it.
    std::optional<Diagnostic> fill_repeat(int line, std::uint64_t until) {
        if (repeat_line_ == 0) return std::nullopt;
        const std::size_t width = prev_.count;
        if (width == 0 || until == next_ || (until - next_) % width != 0)
            return error(line, field_at(next_),
                         fmt::format("the '*' on line {} repeats {}-byte lines from {:#x}, but this line's offset "
                                     "{:#x} is not a whole number of them later",
                                     repeat_line_, width, base_ + next_, base_ + until));
        for (; next_ < until; next_ += width)
            std::copy_n(prev_.bytes.begin(), width, page_.begin() + static_cast<std::ptrdiff_t>(next_));
        repeat_line_ = 0;
        return std::nullopt;
    }

    [[nodiscard]] Diagnostic truncated(int line) const {
        return error(line, field_at(next_),
                     fmt::format("the dump ends at offset {:#x} ({} bytes): a VMCB page is 4096 bytes (truncated "
                                 "dump)",
                                 base_ + next_, next_));
    }

    std::optional<Diagnostic> finish() {
        if (!started_ && first_failure_) return std::move(first_failure_);
        if (!started_)
            return error(0, "", "no line of xxd, hexdump -C or od -A x -t x1 output at the start of a page (offset "
                                "0 or a multiple of 4096): not a hex dump of a VMCB page");
        if (repeat_line_ != 0)
            return error(repeat_line_, field_at(next_),
                         "'*' with no offset after it: cannot tell how many lines it repeats (the dump is cut off; "
                         "hexdump and od end with the total length)");
        if (next_ != arch::kVmcbSize) return truncated(last_line_);
        return std::nullopt;
    }

    std::string source_;
    Page page_{};
    bool started_ = false;
    Style style_ = Style::bytes;
    std::uint64_t base_ = 0;
    std::uint64_t next_ = 0;  ///< page offset the next line must start at
    int repeat_line_ = 0;     ///< line of a '*' not yet resolved
    int last_line_ = 0;       ///< line of the last bytes read
    std::optional<Diagnostic> first_failure_;
    HexLine prev_;
};

}  // namespace

bool looks_like_hexdump(std::string_view text) {
    LineCursor lines(text);
    int seen = 0;
    while (const auto ln = lines.next()) {
        if (trim(ln->text).empty()) continue;
        if (++seen > kDetectLines) return false;
        const auto l = parse_line(ln->text);
        if (l && l->kind == Kind::data && l->offset % arch::kVmcbSize == 0 && l->count >= 4) return true;
    }
    return false;
}

Result read_hexdump(std::string_view text, std::string_view source) { return HexdumpReader(source).read(text); }

}  // namespace nsvm::formats::detail
