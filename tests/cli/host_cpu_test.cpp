// The CLI's CPUID reader (tools/nsvm/host_cpu.hpp) on this machine: an AMD
// host with SVM gives a model, any other host the message `--cpu host` shows.
#include <gtest/gtest.h>

#include <string>

#include "host_cpu.hpp"

namespace nsvm::cli {
namespace {

TEST(HostCpu, ReadsThisMachinesCpuid) {
    const auto id = read_host_cpuid();
#if defined(__x86_64__) || defined(__i386__)
    ASSERT_TRUE(id.has_value());
    EXPECT_EQ(id->vendor.size(), 12U) << id->vendor;
    // Leaf 1 exists on every x86-64 processor: its EDX has FPU (bit 0).
    EXPECT_NE(id->std1.edx & 1U, 0U);
    EXPECT_EQ(id->brand.find('\0'), std::string::npos) << "NULs are trimmed";
#else
    EXPECT_FALSE(id.has_value());
#endif
}

TEST(HostCpu, AModelOfThisHostOrTheReasonThereIsNone) {
    const auto m = host_model();
    if (m) {
        EXPECT_EQ(m->name, "host");
        EXPECT_TRUE(m->has(checks::Feature::svm));
        EXPECT_GE(m->maxphyaddr, 32U);
    } else {
        EXPECT_NE(m.error().find("name a model (nsvm cpu list)"), std::string::npos) << m.error();
        EXPECT_EQ(m.error().rfind("this host", 0), 0U) << m.error();
    }
}

}  // namespace
}  // namespace nsvm::cli
