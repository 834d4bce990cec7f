// Walks every field of the VMCB table: offset, width, round trip through the
// raw page, and isolation (writing one field never disturbs another).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/arch/vmcb.hpp"
#include "nsvm/arch/vmcb_layout_asserts.hpp"

using namespace nsvm::arch;

TEST(VmcbLayout, EveryFieldRoundTripsAndStaysInItsBytes) {
    for (const auto& f : kFields) {
        SCOPED_TRACE(std::string(f.name));
        Vmcb v;
        if (f.kind == FieldKind::integer) {
            const std::uint64_t pattern = 0x8877665544332211ULL & width_mask(f.width);
            v.set(f.id, pattern);
            EXPECT_EQ(v.get(f.id), pattern);
            // The bytes at the documented offset hold the value, little-endian.
            for (unsigned i = 0; i < f.width; ++i) EXPECT_EQ(v.page()[f.offset + i], 0x11 * (i + 1));
        } else {
            for (auto& b : v.bytes(f.id)) b = 0xAB;
        }
        // Nothing outside [offset, offset + width) changed.
        for (std::size_t i = 0; i < kVmcbSize; ++i) {
            if (i >= f.offset && i < f.offset + f.width) continue;
            ASSERT_EQ(v.page()[i], 0) << "byte " << i;
        }
    }
}

// kFieldRuns is what the vmcb12 cache and vmcb02 preparation move: a field
// outside it would silently read as zero in L2.
TEST(VmcbLayout, FieldRunsCoverEveryFieldInOrder) {
    for (std::size_t i = 1; i < kFieldRuns.size(); ++i) EXPECT_LT(kFieldRuns[i - 1].end, kFieldRuns[i].begin) << i;
    for (const auto& f : kFields) {
        const bool inside = std::any_of(kFieldRuns.begin(), kFieldRuns.end(), [&](ByteRun r) {
            return f.offset >= r.begin && f.offset + f.width <= r.end;
        });
        EXPECT_TRUE(inside) << f.name;
    }
    // Each run starts at a field and ends at the end of one.
    for (const ByteRun r : kFieldRuns) {
        EXPECT_TRUE(std::any_of(kFields.begin(), kFields.end(), [&](const FieldInfo& f) { return f.offset == r.begin; }));
        EXPECT_TRUE(std::any_of(kFields.begin(), kFields.end(),
                                [&](const FieldInfo& f) { return f.offset + f.width == r.end; }));
    }
}

TEST(VmcbLayout, FieldByteCopiesMoveEveryFieldAndNoReservedByte) {
    Vmcb from, to;
    for (std::size_t i = 0; i < kVmcbSize; ++i) from.page()[i] = static_cast<std::uint8_t>(i * 7 + 1);
    to.page().fill(0xEE);
    copy_field_bytes(from.page(), to.page());
    for (const auto& f : kFields) {
        const auto a = from.bytes(f.id), b = to.bytes(f.id);
        EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin())) << f.name;
    }
    std::size_t outside = 0, kept = 0;
    for (std::size_t i = 0; i < kVmcbSize; ++i) {
        const bool in_run =
            std::any_of(kFieldRuns.begin(), kFieldRuns.end(), [&](ByteRun r) { return i >= r.begin && i < r.end; });
        if (in_run) continue;
        ++outside;
        kept += to.page()[i] == 0xEE ? 1 : 0;
    }
    EXPECT_GT(outside, kVmcbSize / 2);  // most of the page is reserved
    EXPECT_EQ(kept, outside);

    Vmcb save_only;
    copy_save_field_bytes(std::span(from.page()).subspan<kSaveAreaOffset>(), save_only.page());
    for (const auto& f : kFields) {
        const auto a = from.bytes(f.id), b = save_only.bytes(f.id);
        if (f.area() == Area::save)
            EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin())) << f.name;
        else
            EXPECT_TRUE(std::all_of(b.begin(), b.end(), [](std::uint8_t x) { return x == 0; })) << f.name;
    }
    clear_field_bytes(to.page());
    for (const auto& f : kFields) EXPECT_EQ(to.get(f.id), 0U) << f.name;
    EXPECT_EQ(to.page()[0x200], 0xEE);  // reserved control bytes stay
}

TEST(VmcbLayout, NamesAreUniqueAndFindable) {
    std::set<std::string_view> names;
    for (const auto& f : kFields) {
        EXPECT_TRUE(names.insert(f.name).second) << f.name;
        auto found = find_field(f.name);
        ASSERT_TRUE(found.has_value());
        EXPECT_EQ(*found, f.id);
        EXPECT_EQ(f.area() == Area::control, f.name.starts_with("control."));
    }
    EXPECT_EQ(find_field("control.nested_ctl"), FieldId::misc_ctl);
    EXPECT_EQ(find_field("control.virt_ext"), FieldId::misc_ctl2);
    EXPECT_FALSE(find_field("control.no_such_field").has_value());
}

TEST(VmcbLayout, SegmentsMatchTheirFields) {
    Vmcb v;
    v.set_segment(Seg::tr, Segment{0x28, 0x8B, 0x67, 0xFFFF800000001000ULL});
    EXPECT_EQ(v.get(FieldId::tr_selector), 0x28U);
    EXPECT_EQ(v.get(FieldId::tr_attrib), 0x8BU);
    EXPECT_EQ(v.get(FieldId::tr_limit), 0x67U);
    EXPECT_EQ(v.get(FieldId::tr_base), 0xFFFF800000001000ULL);
    EXPECT_EQ(v.segment(Seg::tr).base, 0xFFFF800000001000ULL);
}

TEST(VmcbLayout, InterceptBitsMapToWords) {
    Vmcb v;
    v.set_intercept(intercept::VMRUN);
    EXPECT_EQ(v.get(FieldId::intercepts4), 1U);
    v.set_intercept(intercept::exception(14));
    EXPECT_EQ(v.get(FieldId::intercepts2), 1U << 14);
    EXPECT_TRUE(v.intercept(intercept::VMRUN));
    v.set_intercept(intercept::VMRUN, false);
    EXPECT_FALSE(v.intercept(intercept::VMRUN));
}

TEST(Intercepts, NamesRoundTrip) {
    for (unsigned b = 0; b < intercept::kBits; ++b) {
        const auto n = intercept::name(b);
        if (n.empty()) continue;
        EXPECT_EQ(intercept::find(n), b) << n;
    }
    EXPECT_EQ(intercept::find("vmrun"), intercept::VMRUN);
    EXPECT_EQ(intercept::find("PF"), intercept::exception(14));
    EXPECT_EQ(intercept::find("#GP"), intercept::exception(13));
    EXPECT_EQ(intercept::find("EXCEPTION_14"), intercept::exception(14));
    EXPECT_FALSE(intercept::find("NOPE").has_value());
}

TEST(ExitCodes, InterceptBitEqualsExitCode) {
    // APM Appendix C: the exit code of an intercept equals its bit number.
    for (unsigned b = 0; b < 0xA7; ++b) {
        const auto n = intercept::name(b);
        if (n.empty() || b >= 0x90) continue;
        EXPECT_TRUE(exit_code::describe(b).known) << b;
    }
    EXPECT_EQ(exit_code::describe(exit_code::VMRUN).name, "VMEXIT_VMRUN");
    EXPECT_EQ(exit_code::describe(exit_code::INVALID).kvm_name, "SVM_EXIT_ERR");
    EXPECT_EQ(exit_code::describe(0x400).name, "VMEXIT_NPF");
    EXPECT_EQ(exit_code::describe(0x0).name, "VMEXIT_CR0_READ");
    EXPECT_EQ(exit_code::describe(0x4E).name, "VMEXIT_EXCP14");
    EXPECT_FALSE(exit_code::describe(0x500).known);
}

TEST(ExitCodes, ParseNamesAndNumbers) {
    EXPECT_EQ(exit_code::parse("-1"), exit_code::INVALID);
    EXPECT_EQ(exit_code::parse("0xffffffffffffffff"), exit_code::INVALID);
    EXPECT_EQ(exit_code::parse("npf"), 0x400U);
    // As dumps print them (KVM's %08x): bare hex, even with decimal digits only.
    EXPECT_EQ(exit_code::parse("ffffffff"), exit_code::INVALID_32);
    EXPECT_EQ(exit_code::parse("00000400"), 0x400U);
    EXPECT_EQ(exit_code::parse("0000007b"), 0x7BU);
    EXPECT_EQ(exit_code::parse("123"), 123U);  // typed by a person: decimal
    EXPECT_EQ(exit_code::parse("SVM_EXIT_MSR"), 0x7CU);
    EXPECT_EQ(exit_code::parse("VMEXIT_CR3_WRITE"), 0x13U);
    EXPECT_EQ(exit_code::parse("SVM_EXIT_WRITE_CR3"), 0x13U);
    EXPECT_EQ(exit_code::parse("124"), 124U);
    EXPECT_FALSE(exit_code::parse("bogus").has_value());
    EXPECT_FALSE(exit_code::parse("-5").has_value());
}

TEST(Bits, CanonicalAndPat) {
    EXPECT_TRUE(is_canonical(0x00007FFFFFFFFFFFULL, 48));
    EXPECT_FALSE(is_canonical(0x0000800000000000ULL, 48));
    EXPECT_TRUE(is_canonical(0xFFFF800000000000ULL, 48));
    EXPECT_FALSE(is_canonical(0x0100000000000000ULL, 57));
    EXPECT_TRUE(is_canonical(0x00FFFFFFFFFFFFFFULL, 57));
    EXPECT_TRUE(pat_valid(0x0007040600070406ULL));
    EXPECT_FALSE(pat_valid(0x0007040600070402ULL));
    EXPECT_FALSE(pat_valid(0x0807040600070406ULL));
    EXPECT_EQ(bits(11, 5), 0xFE0U);
}

TEST(Bits, PageTableEntryIndexesAndThePse4mFrame) {
    // Long mode (APM 5.3.3): PML4 index in LA 47:39, PT index in 20:12.
    EXPECT_EQ(pte::table_index(0x00007FC0'00201000ULL, 4), 0xFFU);
    EXPECT_EQ(pte::table_index(0x00007FC0'00201000ULL, 1), 0x1U);
    EXPECT_EQ(pte::table_index(0x00007FC0'00201000ULL, 2), 0x1U);
    EXPECT_EQ(pte::level_shift(3), 30U);
    // Legacy (5.3.2): 10-bit indexes, the PD's in LA 31:22.
    EXPECT_EQ(pte::table_index(0xFFC01000ULL, 2, pte::kLegacyIndexBits), 0x3FFU);
    EXPECT_EQ(pte::table_index(0xFFC01000ULL, 1, pte::kLegacyIndexBits), 0x1U);
    // A 4 MiB PDE holds PA 39:32 in bits 20:13; bit 21 stays clear (reserved).
    EXPECT_EQ(pte::pse_4m_pde_frame(0xAB'FFC00000ULL), 0xFFC00000ULL | (0xABULL << 13));
    EXPECT_EQ(pte::pse_4m_pde_frame(0xFF'FFC00000ULL) & pte::kPse4mReserved, 0U);
    for (const std::uint64_t pa : {0x0ULL, 0x400000ULL, 0x1'00400000ULL, 0xFF'FFC00000ULL})
        EXPECT_EQ(pte::pse_4m_frame(pte::pse_4m_pde_frame(pa) | pte::PS | pte::P), pa) << pa;
}
