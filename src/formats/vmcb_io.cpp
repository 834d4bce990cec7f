// Format names, detection, dispatch, the raw reader/writer and the helpers
// the text readers share.
#include "nsvm/formats/vmcb_io.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <exception>
#include <fmt/format.h>

#include "readers.hpp"

namespace nsvm::formats {
namespace detail {

const std::bitset<arch::kVmcbSize>& field_coverage() {
    static const auto cover = [] {
        std::bitset<arch::kVmcbSize> b;
        for (const auto& f : arch::kFields) {
            for (std::size_t i = 0; i < f.width; ++i) b.set(f.offset + i);
        }
        return b;
    }();
    return cover;
}

std::string_view trim(std::string_view s) {
    const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; };
    while (!s.empty() && blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && blank(s.back())) s.remove_suffix(1);
    return s;
}

std::optional<std::uint64_t> parse_hex(std::string_view s) {
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
    if (s.empty()) return std::nullopt;
    std::uint64_t v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
    if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
    return v;
}

std::optional<std::uint64_t> parse_signed_dec(std::string_view s, unsigned width) {
    const bool neg = !s.empty() && s.front() == '-';
    if (neg) s.remove_prefix(1);
    if (s.empty()) return std::nullopt;
    std::uint64_t v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
    if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
    const std::uint64_t mask = arch::width_mask(width);
    if (!neg) return v <= mask ? std::optional(v) : std::nullopt;
    // printf's %d of a field with the top bit set: the magnitude is at most
    // 2^(8*width-1); the field holds its two's complement.
    const std::uint64_t limit = (mask >> 1) + 1;
    if (v == 0 || v > limit) return std::nullopt;
    return (~v + 1) & mask;
}

std::optional<Diagnostic> missing_fields_warning(std::string_view source, std::string_view what,
                                                 const std::vector<bool>& given) {
    std::vector<std::string> names;
    for (std::size_t i = 0; i < arch::kFields.size(); ++i) {
        if (given[i]) continue;
        const auto& f = arch::kFields[i];
        // A segment missing as a whole is named once ("save.fs").
        const auto name = f.name;
        const auto dot = name.rfind('.');
        const bool seg_member = name.starts_with("save.") && name.find('.') != dot;
        if (seg_member) {
            // The four members of a segment are consecutive in kFields.
            const std::size_t k = name.ends_with("selector") ? 0 : name.ends_with("attrib") ? 1
                                  : name.ends_with("limit")  ? 2
                                                             : 3;
            const std::size_t base = i - k;
            if (!given[base] && !given[base + 1] && !given[base + 2] && !given[base + 3]) {
                if (k == 0) names.emplace_back(name.substr(0, dot));
                continue;
            }
        }
        names.emplace_back(name);
    }
    if (names.empty()) return std::nullopt;
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    // The text up to ';' is the warning's summary: nsvm's short form keeps it
    // and names only the fields the checks read (tools/nsvm/warnings.cpp).
    return Diagnostic{std::string(source), 0, "",
                      fmt::format("{} does not give {} VMCB field{}; they read as zero: {}", what, names.size(),
                                  names.size() == 1 ? "" : "s", list),
                      "input.missing_fields", std::move(names)};
}

Result read_raw(std::span<const std::uint8_t> data, std::string_view source) {
    if (data.size() != arch::kVmcbSize) {
        const char* what = data.empty() ? "empty input" : data.size() < arch::kVmcbSize ? "truncated" : "oversized";
        return nsvm::unexpected(Diagnostic{std::string(source), 0, "",
                                           fmt::format("raw VMCB {}: found {} bytes, expected exactly {} (one 4 KiB "
                                                       "page)",
                                                       what, data.size(), arch::kVmcbSize)});
    }
    ReadResult r;
    r.format = Format::raw;
    std::copy(data.begin(), data.end(), r.vmcb.page().begin());
    return r;
}

}  // namespace detail

std::optional<Format> parse_format(std::string_view name) {
    if (name == "auto" || name == "auto-detect" || name == "auto_detect") return Format::auto_detect;
    if (name == "raw" || name == "bin") return Format::raw;
    if (name == "json") return Format::json;
    if (name == "kvm-dump" || name == "kvm_dump" || name == "kvm") return Format::kvm_dump;
    if (name == "xen-dump" || name == "xen_dump" || name == "xen") return Format::xen_dump;
    if (name == "qemu-dump" || name == "qemu_dump" || name == "qemu") return Format::qemu_dump;
    if (name == "hexdump" || name == "hex" || name == "xxd" || name == "od") return Format::hexdump;
    return std::nullopt;
}

std::string_view format_name(Format f) {
    switch (f) {
        case Format::auto_detect: return "auto";
        case Format::raw: return "raw";
        case Format::json: return "json";
        case Format::kvm_dump: return "kvm-dump";
        case Format::xen_dump: return "xen-dump";
        case Format::qemu_dump: return "qemu-dump";
        case Format::hexdump: return "hexdump";
    }
    return "auto";
}

std::string to_string(const Diagnostic& d) {
    std::string out = d.file;
    if (d.line > 0) out += fmt::format("{}{}", out.empty() ? "line " : ":", d.line);
    if (!d.field.empty()) out += (out.empty() ? "" : ": ") + d.field;
    if (!d.message.empty()) out += (out.empty() ? "" : ": ") + d.message;
    return out;
}

namespace {

bool looks_binary(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c < 0x09 || (c > 0x0D && c < 0x20 && c != 0x1B);
    });
}

std::size_t earliest(std::string_view s, std::initializer_list<std::string_view> markers) {
    std::size_t best = std::string_view::npos;
    for (auto m : markers) best = std::min(best, s.find(m));
    return best;
}

}  // namespace

Format detect_format(std::span<const std::uint8_t> data) {
    const std::string_view s(reinterpret_cast<const char*>(data.data()), data.size());
    if (s.empty()) return Format::auto_detect;
    if (s.size() == arch::kVmcbSize && looks_binary(s)) return Format::raw;
    std::string_view body = s;
    if (body.starts_with("\xEF\xBB\xBF")) body.remove_prefix(3);  // UTF-8 BOM
    body = detail::trim(body);
    // No other format starts with '{' or a C comment, which the JSON reader
    // accepts: a commented JSON file is JSON even if its comment is broken.
    if (body.starts_with("{") || body.starts_with("//") || body.starts_with("/*")) return Format::json;
    // A dump tool's lines start with an offset; no hypervisor's dump does.
    if (detail::looks_like_hexdump(body)) return Format::hexdump;
    // KVM: the section headers, the pr_fmt prefix, the header line and the
    // first control label (KVM's dump_vmcb in arch/x86/kvm/svm/svm.c).
    const auto kvm = earliest(s, {"VMCB Control Area", "VMCB State Save Area", "kvm_amd:", "cr_read:",
                                  "last attempted VMRUN on CPU"});
    // Xen: the console prefix and svm_vmcb_dump's first lines (a.4).
    const auto xen = earliest(s, {"(XEN)", "cr_intercepts =", "general1_intercepts", "Dumping guest's current state"});
    // QEMU: the failure line, or its register lines (x86_cpu_dump_state).
    auto qemu = earliest(s, {"entry failed, hardware error"});
    if (qemu == std::string_view::npos && s.find("EFER=") != std::string_view::npos &&
        s.find("CR0=") != std::string_view::npos)
        qemu = earliest(s, {"EAX=", "RAX=", "EIP=", "RIP=", "CR0="});
    if (qemu != std::string_view::npos && qemu < kvm && qemu < xen) return Format::qemu_dump;
    if (xen != std::string_view::npos && xen < kvm) return Format::xen_dump;
    if (kvm != std::string_view::npos) return Format::kvm_dump;
    if (s.size() == arch::kVmcbSize) return Format::raw;
    return Format::auto_detect;
}

static detail::DumpsResult read_text(std::span<const std::uint8_t> data, Format fmt, std::string_view source_name,
                                     detail::DumpSelection sel);

namespace {

/// Quoted-printable text, as list archives store some mails: a soft line
/// break ('=' at a line's end), or "=20" / "=3D" for a space and '='. Only
/// for text nothing else recognises (or a dump format the user named): a
/// QEMU register dump is full of "=" before hex digits.
bool looks_quoted_printable(std::string_view s) {
    return s.find("=\n") != std::string_view::npos || s.find("=\r\n") != std::string_view::npos ||
           s.find("=20") != std::string_view::npos || s.find("=3D") != std::string_view::npos;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/// RFC 2045 section 6.7 decoding: "=XX" is a byte, '=' before a line break
/// joins the lines; anything else is kept. Never longer than the input.
std::string decode_quoted_printable(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '=') {
            out.push_back(s[i]);
            continue;
        }
        if (i + 1 < s.size() && s[i + 1] == '\n') {
            ++i;
        } else if (i + 2 < s.size() && s[i + 1] == '\r' && s[i + 2] == '\n') {
            i += 2;
        } else if (i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2])));
            i += 2;
        } else {
            out.push_back('=');
        }
    }
    return out;
}

}  // namespace

/// Quoted-printable decoding (when it applies), then detection and the reader.
static detail::DumpsResult read_any(std::span<const std::uint8_t> data, Format fmt, std::string_view source_name,
                                    detail::DumpSelection sel) {
    const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
    const Format seen = fmt == Format::auto_detect ? detect_format(data) : fmt;
    const bool qp_candidate = seen == Format::kvm_dump || seen == Format::xen_dump || seen == Format::auto_detect;
    if (qp_candidate && looks_quoted_printable(text)) {
        const std::string decoded = decode_quoted_printable(text);
        auto r = read_text(std::span(reinterpret_cast<const std::uint8_t*>(decoded.data()), decoded.size()), fmt,
                           source_name, sel);
        if (r) {
            for (auto& d : *r)
                d.result.warnings.push_back(Diagnostic{
                    std::string(source_name), 0, "",
                    "read as quoted-printable text, as mail archives store it (=20 a space, '=' at a line end joins "
                    "two lines): line numbers are the decoded text's"});
        }
        return r;
    }
    return read_text(data, fmt, source_name, sel);
}

nsvm::expected<ReadResult, Diagnostic> read_vmcb(std::span<const std::uint8_t> data, Format fmt,
                                                 std::string_view source_name) {
    auto r = read_any(data, fmt, source_name, detail::DumpSelection{});
    if (!r) return nsvm::unexpected(std::move(r.error()));
    return std::move(r->front().result);
}

nsvm::expected<std::vector<DumpRead>, Diagnostic> read_dumps(std::span<const std::uint8_t> data, Format fmt,
                                                             std::string_view source_name,
                                                             std::optional<std::size_t> only) {
    detail::DumpSelection sel{detail::DumpSelection::Mode::all, 0};
    if (only) sel = {detail::DumpSelection::Mode::one, *only};
    return read_any(data, fmt, source_name, sel);
}

/// A format with one VMCB per input, as a list of one dump.
static detail::DumpsResult one_dump(detail::Result r, detail::DumpSelection sel, const std::string& source) {
    if (!r) return nsvm::unexpected(std::move(r.error()));
    if (sel.mode == detail::DumpSelection::Mode::one && sel.index != 1)
        return nsvm::unexpected(Diagnostic{source, 0, "",
                                           fmt::format("there is no dump {}: the input holds 1 ({})", sel.index,
                                                       format_name(r->format))});
    std::vector<DumpRead> out;
    out.push_back(DumpRead{DumpOrigin{}, std::move(*r)});
    return out;
}

static detail::DumpsResult read_text(std::span<const std::uint8_t> data, Format fmt, std::string_view source_name,
                                     detail::DumpSelection sel) {
    const std::string source(source_name);
    try {
        const bool detected = fmt == Format::auto_detect;
        if (detected) {
            fmt = detect_format(data);
            if (fmt == Format::auto_detect) {
                if (data.empty())
                    return nsvm::unexpected(Diagnostic{source, 0, "", "empty input (0 bytes): no VMCB"});
                return nsvm::unexpected(Diagnostic{
                    source, 0, "",
                    fmt::format("cannot tell the format of {} bytes (not a 4096-byte raw page, no JSON object, no "
                                "KVM dump_vmcb, Xen svm_vmcb_dump or QEMU register dump lines, no xxd/hexdump/od "
                                "lines); give --format raw|json|kvm-dump|xen-dump|qemu-dump|hexdump",
                                data.size())});
            }
        }
        const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
        if (detected && fmt == Format::raw && !looks_binary(text)) {
            auto r = detail::read_raw(data, source);
            if (r) {
                r->warnings.push_back(Diagnostic{
                    source, 0, "",
                    "read as a raw VMCB only because it is 4096 bytes long, but it looks like text (no JSON object, no "
                    "KVM or Xen dump lines); give --format if that is wrong"});
            }
            return one_dump(std::move(r), sel, source);
        }
        switch (fmt) {
            case Format::raw: return one_dump(detail::read_raw(data, source), sel, source);
            case Format::json: return one_dump(detail::read_json(text, source), sel, source);
            case Format::kvm_dump: return detail::read_kvm_dumps(text, source, sel);
            case Format::xen_dump: return detail::read_xen_dumps(text, source, sel);
            case Format::qemu_dump: return one_dump(detail::read_qemu_dump(text, source), sel, source);
            case Format::hexdump: return one_dump(detail::read_hexdump(text, source), sel, source);
            case Format::auto_detect: break;
        }
        return nsvm::unexpected(Diagnostic{source, 0, "", "unknown format"});
    } catch (const std::exception& e) {
        // Safety net only: the readers report bad input as Diagnostics.
        return nsvm::unexpected(Diagnostic{source, 0, "", fmt::format("internal error while reading: {}", e.what())});
    }
}

std::vector<std::uint8_t> write_raw(const arch::Vmcb& vmcb) {
    return std::vector<std::uint8_t>(vmcb.page().begin(), vmcb.page().end());
}

}  // namespace nsvm::formats
