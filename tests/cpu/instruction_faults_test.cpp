// Exceptions before the intercept check (instruction_faults.hpp): each rule
// at its boundary, and on the processor: an intercepted instruction the CPU
// lacks is #UD, not the intercept's #VMEXIT.
#include <gtest/gtest.h>

#include "nsvm/arch/bits.hpp"
#include "nsvm/cpu/instruction_faults.hpp"

namespace nsvm::cpu {
namespace {
using checks::Feature;

checks::CpuModel with_all() {
    checks::CpuModel m;
    for (Feature f : {Feature::rdtscp, Feature::rdpru, Feature::invpcid, Feature::xsave}) m.set(f);
    return m;
}

std::uint8_t vector_of(const checks::CpuModel& m, EventKind k, std::uint64_t cr4, std::uint8_t cpl,
                       std::uint64_t cr0 = arch::cr0::PE) {
    const auto f = pre_intercept_fault(m, k, InstructionState{cr0, cr4, cpl});
    return f ? f->vector : 0;
}

TEST(InstructionFaults, X87WithEmOrTsIsNm) {
    const auto all = with_all();
    using namespace arch::cr0;
    EXPECT_EQ(vector_of(all, EventKind::fpu, 0, 3, PE | MP | NE), 0);
    EXPECT_EQ(vector_of(all, EventKind::fpu, 0, 0, PE | TS), 7);
    EXPECT_EQ(vector_of(all, EventKind::fpu, 0, 0, PE | EM), 7);
    EXPECT_EQ(vector_of(all, EventKind::cpuid, 0, 0, PE | TS), 0) << "TS concerns the FPU only";
}

TEST(InstructionFaults, AnInstructionTheCpuLacksIsUd) {
    const auto all = with_all();
    constexpr std::uint64_t kOsxsave = arch::cr4::OSXSAVE;
    for (auto [k, f] : {std::pair{EventKind::rdtscp, Feature::rdtscp}, std::pair{EventKind::rdpru, Feature::rdpru},
                        std::pair{EventKind::invpcid, Feature::invpcid}, std::pair{EventKind::xsetbv, Feature::xsave}}) {
        EXPECT_EQ(vector_of(all, k, kOsxsave, 0), 0) << event_name(k);
        auto without = all;
        without.set(f, false);
        EXPECT_EQ(vector_of(without, k, kOsxsave, 0), 6) << event_name(k);
        EXPECT_EQ(vector_of(without, k, kOsxsave, 3), 6) << event_name(k) << ": #UD comes before the CPL #GP";
    }
}

TEST(InstructionFaults, CplAndTsdBoundaries) {
    const auto all = with_all();
    constexpr std::uint64_t tsd = arch::cr4::TSD, osx = arch::cr4::OSXSAVE;
    EXPECT_EQ(vector_of(all, EventKind::rdtsc, tsd, 0), 0);
    EXPECT_EQ(vector_of(all, EventKind::rdtsc, tsd, 1), 13);
    EXPECT_EQ(vector_of(all, EventKind::rdtsc, 0, 3), 0);
    EXPECT_EQ(vector_of(all, EventKind::rdtscp, tsd, 1), 13);
    EXPECT_EQ(vector_of(all, EventKind::rdtscp, 0, 3), 0);
    EXPECT_EQ(vector_of(all, EventKind::xsetbv, osx, 1), 13);
    EXPECT_EQ(vector_of(all, EventKind::xsetbv, 0, 0), 6) << "CR4.OSXSAVE = 0";
    EXPECT_EQ(vector_of(all, EventKind::invpcid, 0, 1), 13);
    EXPECT_EQ(vector_of(all, EventKind::rdpru, tsd, 3), 0);
    EXPECT_EQ(vector_of(all, EventKind::cpuid, tsd, 3), 0) << "no rule for the others";
}

// APM Vol.4 XSETBV (#GP(0) for an XCR other than XCR0 or a value XCR0 cannot
// hold), Intel SDM Vol.1 13.3: each rule at its boundary.
TEST(InstructionFaults, XsetbvValuesEveryProcessorRefuses) {
    using arch::bit;
    EXPECT_EQ(xsetbv_fault(0, 1), nullptr) << "x87 only, the reset value";
    EXPECT_EQ(xsetbv_fault(0, 0x3), nullptr) << "x87 | SSE";
    EXPECT_EQ(xsetbv_fault(0, 0x7), nullptr) << "x87 | SSE | AVX";
    EXPECT_EQ(xsetbv_fault(0, 0xE7), nullptr) << "with all of AVX-512";
    EXPECT_EQ(xsetbv_fault(0, 0x1F), nullptr) << "with both MPX components";
    EXPECT_EQ(xsetbv_fault(0, 0x60003), nullptr) << "with both AMX components";
    EXPECT_EQ(xsetbv_fault(0, bit(62) | 1), nullptr) << "LWP (AMD) is a user component of XCR0";
    EXPECT_NE(xsetbv_fault(1, 1), nullptr) << "XCR1 is XGETBV's only";
    EXPECT_NE(xsetbv_fault(0xFFFFFFFF, 1), nullptr);
    EXPECT_NE(xsetbv_fault(0, 0), nullptr) << "x87 clear";
    EXPECT_NE(xsetbv_fault(0, 0x6), nullptr) << "x87 clear";
    EXPECT_NE(xsetbv_fault(0, 0x5), nullptr) << "AVX without SSE";
    EXPECT_NE(xsetbv_fault(0, 0x9), nullptr) << "half of MPX";
    EXPECT_NE(xsetbv_fault(0, 0x11), nullptr) << "half of MPX";
    EXPECT_NE(xsetbv_fault(0, 0x67), nullptr) << "two of AVX-512's three";
    EXPECT_NE(xsetbv_fault(0, 0xE3), nullptr) << "AVX-512 without AVX";
    EXPECT_NE(xsetbv_fault(0, 0x20003), nullptr) << "half of AMX";
    EXPECT_NE(xsetbv_fault(0, bit(8) | 1), nullptr) << "PT is a supervisor component";
    EXPECT_NE(xsetbv_fault(0, bit(11) | 1), nullptr) << "CET_U is IA32_XSS's";
    EXPECT_NE(xsetbv_fault(0, bit(16) | 1), nullptr) << "HWP is a supervisor component";
    EXPECT_EQ(xsetbv_fault(0, bit(9) | 1), nullptr) << "PKRU is a user component";
    EXPECT_NE(xsetbv_fault(0, bit(63) | 1), nullptr) << "XCR0[63] is reserved";
}

}  // namespace
}  // namespace nsvm::cpu
