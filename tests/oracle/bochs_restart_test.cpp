// Bochs restarts after a hang as QEMU does, losing only the vector that hung:
// a killed Bochs leaves its disk image's lock behind, which the runner
// removes before the next boot.
#include "hardening_support.hpp"

#include "nsvm/arch/exit_codes.hpp"

namespace nsvm::oracle::hardening {
namespace {

namespace ec = arch::exit_code;
using namespace std::chrono_literals;

TEST(BochsRestart, AHangingVectorLosesOnlyThatVector) {
    NEED("bochs");
    auto r = runner(Backend::bochs, 3000ms);
    ASSERT_TRUE(r);
    const std::vector<Vector> vs = {named(base_vector(BaseMode::long64), "before"), hanging("hang1"),
                                    named(base_vector(BaseMode::long64), "between"), hanging("hang2"),
                                    named(base_vector(BaseMode::long64), "after")};
    const auto rs = r->run(vs);
    ASSERT_TRUE(rs.has_value()) << rs.error();
    ASSERT_EQ(rs->size(), 5U);
    for (std::size_t i : {0U, 2U, 4U}) {
        EXPECT_EQ((*rs)[i].status, Status::vmexit) << vs[i].id << ": " << (*rs)[i].reason;
        EXPECT_EQ((*rs)[i].exit_code(), ec::VMMCALL) << vs[i].id;
    }
    for (std::size_t i : {1U, 3U}) {
        EXPECT_EQ((*rs)[i].status, Status::cannot_run) << vs[i].id;
        EXPECT_NE((*rs)[i].reason.find("timeout"), std::string::npos) << (*rs)[i].reason;
    }
    EXPECT_EQ(r->stats().boots, 3U);
    EXPECT_EQ(r->stats().cannot_run, 2U);
}

}  // namespace
}  // namespace nsvm::oracle::hardening
