// The architectural pieces: guest memory, MSRPM/IOPM lookups, intercept
// decisions with their exit information, the nested page-table walker.
#include <gtest/gtest.h>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/cpu/events.hpp"
#include "nsvm/cpu/memory.hpp"
#include "nsvm/cpu/npt.hpp"

using namespace nsvm;
using cpu::EventKind;
namespace ic = arch::intercept;
namespace ec = arch::exit_code;

TEST(GuestMemory, UnbackedReadFailsAndCopiesNothing) {
    cpu::GuestMemory m(40);
    ASSERT_TRUE(m.map(0x1000));
    ASSERT_TRUE(m.write_u64(0x1ff8, 0x1122334455667788ULL));
    std::uint64_t v = 0;
    EXPECT_TRUE(m.read_u64(0x1ff8, v));
    EXPECT_EQ(v, 0x1122334455667788ULL);
    EXPECT_FALSE(m.read_u64(0x1ffc, v));  // crosses into an unbacked page
    EXPECT_FALSE(m.read_u64(0x5000, v));
    EXPECT_FALSE(m.map(1ULL << 40));       // beyond MAXPHYADDR
    EXPECT_FALSE(m.write_u64(0x3000, 1));
}

TEST(GuestMemory, WatchCountsReadsOfOnePage) {
    cpu::GuestMemory m;
    ASSERT_TRUE(m.map(0x20000, 0x2000));
    m.watch(0x20000);
    arch::Vmcb v;
    EXPECT_TRUE(m.read_vmcb(0x20000, v));
    std::uint8_t b = 0;
    EXPECT_TRUE(m.read_u8(0x21000, b));  // other page: not counted
    EXPECT_TRUE(m.peek_vmcb(0x20000, v)); // peeks are not counted
    EXPECT_EQ(m.watched_reads(), 1U);
}

TEST(Msrpm, BitNumbersOfTheThreeRanges) {
    EXPECT_EQ(cpu::msrpm_bit(0x0), 0U);
    EXPECT_EQ(cpu::msrpm_bit(0x1FFF), 0x3FFEU);
    EXPECT_EQ(cpu::msrpm_bit(0xC0000080), 0x800U * 8 + 0x100U);
    EXPECT_EQ(cpu::msrpm_bit(0xC0010117), 0x1000U * 8 + 0x117U * 2);
    EXPECT_FALSE(cpu::msrpm_bit(0x2000).has_value());
    EXPECT_FALSE(cpu::msrpm_bit(0xC0002000).has_value());
    EXPECT_FALSE(cpu::msrpm_bit(0x40000000).has_value());
}

TEST(Decide, MsrReadAndWriteBitsAndOutOfRange) {
    std::array<std::uint8_t, cpu::kMsrpmSize> map{};
    const auto b = *cpu::msrpm_bit(0xC0000081);
    map[(b + 1) / 8] |= static_cast<std::uint8_t>(1U << ((b + 1) % 8));  // write only
    arch::Vmcb v;
    v.set_intercept(ic::MSR_PROT);
    const cpu::Bitmap msrpm{nullptr, 0, map}, none{};
    cpu::Event e{.kind = EventKind::rdmsr, .index = 0xC0000081};
    EXPECT_FALSE(cpu::decide(v, msrpm, none, e, 0x100, 0, {}).has_value());
    e.kind = EventKind::wrmsr;
    auto x = cpu::decide(v, msrpm, none, e, 0x100, 0, {});
    ASSERT_TRUE(x);
    EXPECT_EQ(x->code, ec::MSR);
    EXPECT_EQ(x->info1, 1U);
    EXPECT_EQ(x->next_rip, 0x102U);
    e.index = 0x40000000;  // outside every range: always intercepted
    EXPECT_TRUE(cpu::decide(v, msrpm, none, e, 0, 0, {}).has_value());
    v.set_intercept(ic::MSR_PROT, false);
    EXPECT_FALSE(cpu::decide(v, msrpm, none, e, 0, 0, {}).has_value());
}

TEST(Decide, IoChecksEveryByteAndEncodesExitInfo) {
    std::array<std::uint8_t, cpu::kIopmSize> iopm{};
    iopm[0x80 / 8] |= 1U << (0x80 % 8);
    arch::Vmcb v;
    v.set_intercept(ic::IOIO_PROT);
    const cpu::Bitmap io{nullptr, 0, iopm}, none{};
    cpu::Event e{.kind = EventKind::io, .index = 0x7E, .size = 2, .in = true};
    EXPECT_FALSE(cpu::decide(v, none, io, e, 0x10, 0, {}).has_value());  // 0x7E, 0x7F
    e.size = 4;                                                           // 0x7E..0x81
    auto x = cpu::decide(v, none, io, e, 0x10, 0, {});
    ASSERT_TRUE(x);
    EXPECT_EQ(x->code, ec::IOIO);
    EXPECT_EQ(x->info1, (0x7EULL << 16) | arch::bit(9) | arch::bit(6) | 1U);
    EXPECT_EQ(x->info2, 0x12U);
    e.index = 0xFFFF;  // spills past port 0xFFFF into the third page
    e.size = 2;
    iopm[0x10000 / 8] = 1;
    EXPECT_TRUE(cpu::decide(v, none, io, e, 0, 0, {}).has_value());
}

TEST(Decide, SelectiveCr0WriteOnlyForBitsOtherThanTsMp) {
    arch::Vmcb v;
    v.set_intercept(ic::SELECTIVE_CR0);
    const cpu::Bitmap none{};
    cpu::Event e{.kind = EventKind::cr_write, .index = 0, .value = 0x80050033 | arch::cr0::TS};
    EXPECT_FALSE(cpu::decide(v, none, none, e, 0, 0x80050033, {}).has_value());
    e.value = 0x80050033 | arch::cr0::CD;
    auto x = cpu::decide(v, none, none, e, 0, 0x80050033, {});
    ASSERT_TRUE(x);
    EXPECT_EQ(x->code, ec::CR0_SEL_WRITE);
    v.set_intercept(ic::cr_write(0));
    EXPECT_EQ(cpu::decide(v, none, none, e, 0, 0x80050033, {})->code, ec::CR0_WRITE);
}

TEST(Decide, ExceptionCarriesErrorCodeAndCr2) {
    arch::Vmcb v;
    v.set_intercept(ic::exception(14));
    const cpu::Bitmap none{};
    cpu::Event e{.kind = EventKind::exception, .index = 14, .error_code = 6, .cr2 = 0xdead000};
    auto x = cpu::decide(v, none, none, e, 0, 0, {});
    ASSERT_TRUE(x);
    EXPECT_EQ(x->code, ec::EXCP_BASE + 14);
    EXPECT_EQ(x->info1, 6U);
    EXPECT_EQ(x->info2, 0xdead000U);
    EXPECT_EQ(x->next_rip, 0U);
}

TEST(PauseFilter, ExitsWhenTheCountReachesZero) {
    arch::Vmcb v;
    v.set(arch::FieldId::pause_filter_count, 3);
    EXPECT_FALSE(cpu::pause_filter_exits(v));
    EXPECT_FALSE(cpu::pause_filter_exits(v));
    EXPECT_TRUE(cpu::pause_filter_exits(v));
}

TEST(Npt, WalksLargePagesAndReportsFaults) {
    cpu::GuestMemory m(48);
    ASSERT_TRUE(m.map(0x10000, 0x4000));
    // PML4[0] -> PDPT 0x11000; PDPT[0] -> PD 0x12000; PD[1] = 2 MiB page at 0x400000 (RW, US).
    ASSERT_TRUE(m.write_u64(0x10000, 0x11007));
    ASSERT_TRUE(m.write_u64(0x11000, 0x12007));
    ASSERT_TRUE(m.write_u64(0x12008, 0x400087));
    // PDPT[1] = 1 GiB page at 0x80000000, read-only.
    ASSERT_TRUE(m.write_u64(0x11008, 0x80000085));
    auto r = cpu::npt_walk(m, 0x10000, 0x212345, {.write = true}, cpu::NestedPagingMode{.nxe = true});
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.hpa, 0x412345U);
    std::uint64_t pde = 0;
    ASSERT_TRUE(m.read_u64(0x12008, pde));
    EXPECT_EQ(pde & 0x60, 0x60U);  // accessed and dirty
    r = cpu::npt_walk(m, 0x10000, 0x40001000, {}, cpu::NestedPagingMode{.nxe = true});
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.hpa, 0x80001000U);
    r = cpu::npt_walk(m, 0x10000, 0x40001000, {.write = true}, cpu::NestedPagingMode{.nxe = true});
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.info1, cpu::npf::FINAL_GPA | cpu::npf::P | cpu::npf::RW | cpu::npf::US);
    EXPECT_EQ(r.info2, 0x40001000U);
    // The denied write: A (set by the read before) but no D (APM 5.4.2).
    std::uint64_t pdpe = 0;
    ASSERT_TRUE(m.read_u64(0x11008, pdpe));
    EXPECT_EQ(pdpe, 0x80000085U | 0x20U);
    // Reserved bit in a 2 MiB PDE (bit 13).
    ASSERT_TRUE(m.write_u64(0x12010, 0x600087 | (1ULL << 13)));
    r = cpu::npt_walk(m, 0x10000, 0x400000, {}, cpu::NestedPagingMode{.nxe = true});
    ASSERT_FALSE(r.ok);
    EXPECT_NE(r.info1 & cpu::npf::RSV, 0U);
    // Not present.
    r = cpu::npt_walk(m, 0x10000, 0x1000000000ULL, {.fetch = true}, cpu::NestedPagingMode{.nxe = true});
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.info1, cpu::npf::FINAL_GPA | cpu::npf::US | cpu::npf::ID);
}
