// Guest memory that the nested machine runs on: backed lazily, within a budget
// (docs/limits.md).
#include <gtest/gtest.h>

#include "nsvm/arch/vmcb.hpp"
#include "nsvm/cpu/memory.hpp"

using namespace nsvm;

// Guest memory is backed lazily: map() records a range, a page is stored on
// its first write, unwritten backed pages read as zeroes, and stored pages
// are bounded by a budget. A write beyond it fails, changes nothing and is
// remembered, so a caller tells it from unbacked memory.
TEST(GuestMemory, IsBackedLazilyWithinItsBudget) {
    cpu::GuestMemory mem(52);
    ASSERT_TRUE(mem.map(0, std::uint64_t{1} << 40));  // 1 TiB mapped
    ASSERT_TRUE(mem.map(std::uint64_t{1} << 40, 0x1000));  // merged with the range before it
    EXPECT_EQ(mem.stored_bytes(), 0U);
    std::uint64_t v = 1;
    ASSERT_TRUE(mem.read_u64((std::uint64_t{1} << 40) - 8, v));
    EXPECT_EQ(v, 0U);
    EXPECT_TRUE(mem.backed(std::uint64_t{1} << 40));
    EXPECT_FALSE(mem.backed((std::uint64_t{1} << 40) + 0x1000));
    arch::Vmcb vmcb;
    EXPECT_TRUE(mem.peek_vmcb(0x123000, vmcb));
    EXPECT_EQ(vmcb, arch::Vmcb{});
    ASSERT_TRUE(mem.write_u64(0x1ffc, 0x1122334455667788ULL));  // straddles two pages
    EXPECT_EQ(mem.stored_bytes(), 2 * cpu::kPageSize);
    ASSERT_TRUE(mem.read_u64(0x1ffc, v));
    EXPECT_EQ(v, 0x1122334455667788ULL);

    mem.set_budget(3 * cpu::kPageSize);
    EXPECT_FALSE(mem.write_u64(0x4ffc, 7));  // needs two more pages: nothing written
    EXPECT_TRUE(mem.budget_exhausted());
    EXPECT_EQ(mem.budget_refused_gpa(), 0x4ffcU);
    EXPECT_EQ(mem.stored_bytes(), 2 * cpu::kPageSize);
    ASSERT_TRUE(mem.read_u64(0x4ff8, v));
    EXPECT_EQ(v, 0U);
    EXPECT_TRUE(mem.write_u64(0x5000, 7));  // one more page fits
    EXPECT_FALSE(mem.vmcb_in_place(0x9000).has_value());  // a fourth does not
    EXPECT_TRUE(mem.vmcb_in_place(0x5000).has_value());   // a stored page still is
    EXPECT_FALSE(mem.write_u64(std::uint64_t{1} << 41, 1));  // not backed
}

TEST(GuestMemory, SizedLittleEndianReadsAndWritesTouchOnlyTheirBytes) {
    cpu::GuestMemory m;
    ASSERT_TRUE(m.map(0x1000));
    ASSERT_TRUE(m.write_u64(0x1000, 0x1122334455667788ULL));
    ASSERT_TRUE(m.write_le(0x1002, 2, 0xABCDEF));  // the low 2 bytes of the value only
    std::uint64_t v = 0;
    ASSERT_TRUE(m.read_u64(0x1000, v));
    EXPECT_EQ(v, 0x11223344CDEF7788ULL);
    ASSERT_TRUE(m.read_le(0x1004, 4, v));
    EXPECT_EQ(v, 0x11223344U);
    // Widths outside 1..8 and bytes past the backed page: refused, nothing changed.
    EXPECT_FALSE(m.read_le(0x1000, 0, v));
    EXPECT_FALSE(m.write_le(0x1000, 9, 0));
    EXPECT_FALSE(m.write_le(0x1FFE, 4, 0));
    ASSERT_TRUE(m.read_le(0x1FFE, 2, v));
    EXPECT_EQ(v, 0U);
}
