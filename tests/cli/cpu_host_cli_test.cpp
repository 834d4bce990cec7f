// `--cpu host` (a model from this machine's CPUID, on AMD; a clear exit-2
// message elsewhere) and the built-in model list with zen5, through the binary.
#include <gtest/gtest.h>

#include <string>

#include "report_helpers.hpp"
#include "run_nsvm.hpp"

using cli_test::contains;
using cli_test::nsvm;

TEST(CliCpuHost, AModelOfThisHostOrAClearMessage) {
    const auto r = nsvm("cpu show host");
    if (r.status == 0) {
        EXPECT_TRUE(contains(r.out, "host")) << r.out;
        EXPECT_TRUE(contains(r.out, "svm")) << r.out;
    } else {
        EXPECT_EQ(r.status, 2) << r.out << r.err;
        EXPECT_TRUE(contains(r.err, "--cpu host: this host")) << r.err;
        EXPECT_TRUE(contains(r.err, "name a model (nsvm cpu list)")) << r.err;
    }
    const auto check = nsvm("check --cpu host examples/valid-vmcb.json");
    EXPECT_EQ(check.status == 2, r.status != 0) << check.out << check.err;
}

TEST(CliCpuHost, Zen5IsListedAndZen4StaysTheDefault) {
    const auto r = nsvm("cpu list");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "zen5")) << r.out;
    EXPECT_TRUE(contains(r.out, "Turin")) << r.out;
    EXPECT_TRUE(contains(r.out.substr(0, r.out.find('\n')), "zen4")) << r.out;
    EXPECT_TRUE(contains(r.out.substr(0, r.out.find('\n')), "(default)")) << r.out;
}
