// Hex dumps of the raw page (src/formats/hexdump.cpp): xxd, hexdump -C and
// od -A x -t x1, with their '*' repeat lines, and every class of bad input.
// Fixtures tests/formats/fixtures/vmcb-invalid.{xxd,hexdump-C,od}.txt are the
// page of examples/kvm-dump-invalid.txt as the tools print it:
//   nsvm convert examples/kvm-dump-invalid.txt --to raw -o page.bin
//   xxd page.bin; hexdump -C page.bin; od -A x -t x1 page.bin
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "helpers.hpp"
#include "nsvm/arch/intercepts.hpp"

using namespace nsvm;
using namespace nsvm::formats;
using namespace nsvm::formats::test;
using arch::FieldId;

namespace {

constexpr const char* kFixtures[] = {"vmcb-invalid.xxd.txt", "vmcb-invalid.hexdump-C.txt", "vmcb-invalid.od.txt"};

Format detect(const std::string& t) {
    return detect_format(std::span(reinterpret_cast<const std::uint8_t*>(t.data()), t.size()));
}

/// A page with a few recognisable bytes and long runs of zeros.
arch::Vmcb sample_page() {
    arch::Vmcb v;
    v.set(FieldId::intercepts4, 0x3);  // VMRUN, VMMCALL
    v.set(FieldId::asid, 7);
    v.set(FieldId::efer, 0x1d00);
    v.set(FieldId::cr0, 0x80050033);
    v.set(FieldId::g_pat, 0x0007040600070406ULL);
    return v;
}

/// `v` as `xxd -a` prints it (groups of two bytes, '*' for runs of zero lines).
std::string xxd_a(const arch::Vmcb& v, std::uint64_t base = 0) {
    std::string out;
    bool starred = false;
    const auto& p = v.page();
    for (std::size_t off = 0; off < arch::kVmcbSize; off += 16) {
        const bool zero = std::all_of(p.begin() + off, p.begin() + off + 16, [](std::uint8_t b) { return b == 0; });
        const bool prev_zero = off > 0 && std::all_of(p.begin() + off - 16, p.begin() + off,
                                                      [](std::uint8_t b) { return b == 0; });
        if (zero && prev_zero && off + 16 < arch::kVmcbSize) {
            if (!starred) out += "*\n";
            starred = true;
            continue;
        }
        starred = false;
        out += fmt::format("{:08x}:", base + off);
        for (std::size_t i = 0; i < 16; i += 2) out += fmt::format(" {:02x}{:02x}", p[off + i], p[off + i + 1]);
        out += "  ................\n";
    }
    return out;
}

ReadResult read_ok(const std::string& text, Format f = Format::auto_detect) {
    auto r = read_vmcb(text, f, "page.txt");
    EXPECT_TRUE(r.has_value()) << (r ? "" : to_string(r.error()));
    return r ? *r : ReadResult{};
}

Diagnostic read_bad(const std::string& text) { return read_error(text, Format::hexdump, "bad.txt"); }

std::string lines_of(const std::string& text, std::size_t from, std::size_t count) {
    std::string out;
    std::size_t n = 0, p = 0;
    while (p < text.size()) {
        const auto e = text.find('\n', p);
        if (n >= from && n < from + count) out += text.substr(p, e - p + 1);
        ++n;
        p = e + 1;
    }
    return out;
}

}  // namespace

TEST(Hexdump, ThreeToolsGiveThePageOfTheDump) {
    const auto want = read_vmcb(load("examples/kvm-dump-invalid.txt"), Format::kvm_dump, "dump.txt");
    ASSERT_TRUE(want.has_value());
    for (const char* f : kFixtures) {
        const auto text = fixture(f);
        EXPECT_EQ(detect(text), Format::hexdump) << f;
        const auto r = read_ok(text);
        EXPECT_EQ(r.format, Format::hexdump) << f;
        EXPECT_TRUE(r.vmcb == want->vmcb) << f;
        // The values the demo dump was made with (make_fixtures.py "bad").
        EXPECT_EQ(r.vmcb.get(FieldId::efer), 0x0d01U) << f;  // SVME clear
        EXPECT_EQ(r.vmcb.get(FieldId::cr0), 0xa0050033U) << f;
        EXPECT_EQ(r.vmcb.get(FieldId::asid), 0U) << f;
        EXPECT_EQ(r.vmcb.get(FieldId::event_inj), 0x80000720U) << f;
        EXPECT_EQ(r.vmcb.get(FieldId::exit_code), ~std::uint64_t{0}) << f;
        EXPECT_FALSE(r.vmcb.intercept(arch::intercept::VMRUN)) << f;
        EXPECT_EQ(r.vmcb.segment(arch::Seg::cs), (arch::Segment{0x10, 0xa9b, 0xffffffff, 0})) << f;
        EXPECT_EQ(r.vmcb.get(FieldId::g_pat), 0x0007040600070406ULL) << f;
        EXPECT_TRUE(r.warnings.empty()) << all_warnings(r);
    }
}

TEST(Hexdump, XxdAutoskipStarsAndOtherGroupings) {
    const auto v = sample_page();
    const auto text = xxd_a(v);
    ASSERT_NE(text.find("\n*\n"), std::string::npos);
    EXPECT_TRUE(read_ok(text).vmcb == v);
    // xxd -g1 (bytes) and -g4 -c 32 (wider lines) lay the same bytes out otherwise.
    std::string g1, c32;
    for (std::size_t off = 0; off < arch::kVmcbSize; off += 16) {
        g1 += fmt::format("{:08x}:", off);
        for (std::size_t i = 0; i < 16; ++i) g1 += fmt::format(" {:02x}", v.page()[off + i]);
        g1 += "  ................\n";
    }
    for (std::size_t off = 0; off < arch::kVmcbSize; off += 32) {
        c32 += fmt::format("{:08x}:", off);
        for (std::size_t i = 0; i < 32; i += 4)
            c32 += fmt::format(" {:02x}{:02x}{:02x}{:02x}", v.page()[off + i], v.page()[off + i + 1],
                               v.page()[off + i + 2], v.page()[off + i + 3]);
        c32 += "  " + std::string(32, '.') + "\n";
    }
    EXPECT_TRUE(read_ok(g1).vmcb == v);
    EXPECT_TRUE(read_ok(c32).vmcb == v);
}

TEST(Hexdump, CharacterColumnsThatLookLikeHexAreNotBytes) {
    // hexdump -C's |...| and xxd's column after two blanks may hold hex digits
    // and blanks ("ab 01" as text): never read as bytes.
    auto t = fixture("vmcb-invalid.hexdump-C.txt");
    t.replace(t.find("|"), 18, "|ab 01 |cd  ef:  |");
    EXPECT_TRUE(read_ok(t).vmcb == read_ok(fixture("vmcb-invalid.hexdump-C.txt")).vmcb);
    auto x = fixture("vmcb-invalid.xxd.txt");
    const auto col = x.find("  ") + 2;
    x.replace(col, 16, "ab 01  cd ef 0 1");
    EXPECT_TRUE(read_ok(x).vmcb == read_ok(fixture("vmcb-invalid.xxd.txt")).vmcb);
}

TEST(Hexdump, TextAroundTheDumpAndAPageAddressAreAccepted) {
    const auto v = sample_page();
    const auto r = read_ok("$ xxd -a vmcb.bin\n\n" + xxd_a(v) + "$ \n");
    EXPECT_TRUE(r.vmcb == v);
    // xxd -s / od -j at the page's address: offsets count from it.
    const auto at = read_ok(xxd_a(v, 0x1a2b3000));
    EXPECT_TRUE(at.vmcb == v);
    // od's trailing total and CRLF line ends.
    auto od = fixture("vmcb-invalid.od.txt");
    std::string crlf;
    for (char c : od) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
    EXPECT_TRUE(read_ok(crlf).vmcb == read_ok(od).vmcb);
}

TEST(Hexdump, ExplicitFormatNamesAndDetectionLeavesOtherFormatsAlone) {
    for (const char* name : {"hexdump", "xxd", "od", "hex"}) EXPECT_EQ(parse_format(name), Format::hexdump) << name;
    EXPECT_EQ(format_name(Format::hexdump), "hexdump");
    for (const char* f : {"kvm-newest.txt", "kvm-2024.txt", "kvm-old-interleaved.txt", "kvm-l2.txt", "xen-new.txt",
                          "xen-old.txt", "qemu-entry-failed-smm.txt", "qemu-info-registers-reset.txt"}) {
        EXPECT_NE(detect(fixture(f)), Format::hexdump) << f;
    }
    // "Dec" is hex: a syslog line is not an offset at a page start.
    EXPECT_NE(detect("Dec  6 20:48:07 host kernel: 00 11 22 33\n"), Format::hexdump);
}

TEST(HexdumpErrors, NonHexNamesLineAndField) {
    auto t = fixture("vmcb-invalid.hexdump-C.txt");
    // Line 2 is offset 0x10: its third byte is control.intercepts[4] (0x010..0x013).
    const auto line2 = t.find("\n") + 1;
    t.replace(t.find(" 00 ", line2 + 14), 4, " zz ");
    const auto e = read_bad(t);
    EXPECT_EQ(e.line, 2);
    EXPECT_EQ(e.field, "control.intercepts[4]");
    EXPECT_NE(e.message.find("'zz' is not hexadecimal"), std::string::npos) << to_string(e);
    EXPECT_EQ(to_string(e).rfind("bad.txt:2: control.intercepts[4]: ", 0), 0U) << to_string(e);
}

TEST(HexdumpErrors, OffsetsOutOfOrderOrMissingLines) {
    const auto od = fixture("vmcb-invalid.od.txt");
    // Line 3 (0x20) repeated after line 3: goes backwards.
    auto e = read_bad(lines_of(od, 0, 3) + lines_of(od, 1, 1) + lines_of(od, 3, 100));
    EXPECT_EQ(e.line, 4);
    EXPECT_NE(e.message.find("out of order"), std::string::npos) << to_string(e);
    // A line left out.
    e = read_bad(lines_of(od, 0, 2) + lines_of(od, 3, 100));
    EXPECT_EQ(e.line, 3);
    EXPECT_FALSE(e.field.empty());  // the field at 0x20, where the bytes go missing
    EXPECT_NE(e.message.find("offset jumps from 0x20 to 0x30"), std::string::npos) << to_string(e);
}

TEST(HexdumpErrors, BeyondTheFourKiBPage) {
    const auto xxd = fixture("vmcb-invalid.xxd.txt");
    auto e = read_bad(xxd + "00001000: 0000 0000 0000 0000 0000 0000 0000 0000  ................\n");
    EXPECT_EQ(e.line, 257);
    EXPECT_NE(e.message.find("after the whole 4 KiB page"), std::string::npos) << to_string(e);
    // A line that starts inside the page and runs past it.
    auto t = xxd.substr(0, xxd.rfind("00000ff0:"));
    t += "00000ff0: 0000 0000 0000 0000 0000 0000 0000 0000 0000  ..................\n";
    e = read_bad(t);
    EXPECT_EQ(e.line, 256);
    EXPECT_NE(e.message.find("beyond the 4 KiB page"), std::string::npos) << to_string(e);
    // hexdump's total says more than a page; an offset near 2^64 does not wrap.
    const auto hd = fixture("vmcb-invalid.hexdump-C.txt");
    e = read_bad(hd.substr(0, hd.rfind("00001000")) + "00002000\n");
    EXPECT_NE(e.message.find("more than the 4 KiB page"), std::string::npos) << to_string(e);
    const auto star = hd.substr(0, hd.rfind("*\n") + 2);
    e = read_bad(star + "fffffffffffffff0  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n");
    EXPECT_NE(e.message.find("beyond the 4 KiB page"), std::string::npos) << to_string(e);
}

TEST(HexdumpErrors, TruncatedPageAndDanglingStar) {
    const auto xxd = fixture("vmcb-invalid.xxd.txt");
    auto e = read_bad(lines_of(xxd, 0, 100));
    EXPECT_EQ(e.line, 100);
    EXPECT_NE(e.message.find("ends at offset 0x640 (1600 bytes)"), std::string::npos) << to_string(e);
    // A dump cut after a '*': how far it repeats is unknown, never zeros.
    const auto hd = fixture("vmcb-invalid.hexdump-C.txt");
    const auto cut = hd.substr(0, hd.rfind("*\n") + 2);
    e = read_bad(cut);
    EXPECT_NE(e.message.find("'*' with no offset after it"), std::string::npos) << to_string(e);
    EXPECT_GT(e.line, 0);
    // hexdump's total short of a page.
    e = read_bad(lines_of(hd, 0, 3) + "00000030\n");
    EXPECT_NE(e.message.find("ends at offset 0x30"), std::string::npos) << to_string(e);
    // Nothing that looks like a dump at all.
    e = read_bad("hello\nworld\n");
    EXPECT_NE(e.message.find("not a hex dump of a VMCB page"), std::string::npos) << to_string(e);
    e = read_bad("");
    EXPECT_FALSE(e.message.empty());
}

TEST(HexdumpErrors, WrongShapes) {
    const auto od = fixture("vmcb-invalid.od.txt");
    // od -t x2 / hexdump without -C: words, not bytes.
    auto e = read_bad("0000000 0011 0111\n" + lines_of(od, 1, 100));
    EXPECT_EQ(e.line, 2);  // line 1 is no byte line: the dump would start inside the page
    EXPECT_NE(e.message.find("inside a page"), std::string::npos) << to_string(e);
    e = read_bad(lines_of(od, 0, 1) + "000010 6e7e 0000 0000\n");
    EXPECT_EQ(e.line, 2);
    EXPECT_NE(e.message.find("not a two-digit byte"), std::string::npos) << to_string(e);
    // Odd digit count in an xxd group; more than 256 bytes on a line.
    e = read_bad("00000000: 0100 000\n");
    EXPECT_NE(e.message.find("odd number of digits"), std::string::npos) << to_string(e);
    std::string wide = "00000000:";
    for (int i = 0; i < 300; ++i) wide += " 00";
    e = read_bad(wide + "\n");
    EXPECT_NE(e.message.find("more than 256 bytes"), std::string::npos) << to_string(e);
    // Two '*' in a row; xxd lines mixed into an od dump.
    e = read_bad(lines_of(od, 0, 1) + "*\n*\n001000\n");
    EXPECT_EQ(e.line, 3);
    EXPECT_NE(e.message.find("second '*'"), std::string::npos) << to_string(e);
    e = read_bad(lines_of(od, 0, 1) + "00000010: 0000 0000\n");
    EXPECT_NE(e.message.find("another tool's"), std::string::npos) << to_string(e);
    // A '*' whose span is not a whole number of lines.
    e = read_bad(lines_of(od, 0, 1) + "*\n000018 00\n");
    EXPECT_NE(e.message.find("not a whole number of them"), std::string::npos) << to_string(e);
    // A first line inside a page.
    e = read_bad("00000010: 0000 0000\n");
    EXPECT_NE(e.message.find("inside a page"), std::string::npos) << to_string(e);
}

TEST(HexdumpErrors, HugeInputIsRefusedQuicklyInBoundedMemory) {
    // Eight MiB of one line of bytes, and a million lines of a valid-looking
    // dump that never ends: both stop at the first line that cannot belong.
    std::string one_line = "00000000:";
    one_line.reserve(8u << 20);
    while (one_line.size() < (8u << 20)) one_line += " 00";
    auto e = read_bad(one_line);
    EXPECT_NE(e.message.find("more than 256 bytes"), std::string::npos);
    std::string many;
    many.reserve(1u << 24);
    for (std::uint64_t off = 0; many.size() < (1u << 24); off += 16) many += fmt::format("{:08x}: 0000 0000 0000 0000 0000 0000 0000 0000\n", off);
    e = read_bad(many);
    EXPECT_EQ(e.line, 257);
}
