// nsvm diff's and oracle run's exit statuses: nothing compared is not
// agreement, and setup the user can fix is 2, not 1 ("divergence").
#include "hardening_support.hpp"

#include "nsvm/arch/bits.hpp"

namespace nsvm::oracle::hardening {
namespace {

using arch::FieldId;

TEST(DiffExitStatus, NothingComparedIsNotAgreement) {
    NEED("qemu-system-x86_64");
    const auto empty = write_temp("empty.jsonl", "# nothing here\n");
    auto r = nsvm("diff --backend qemu " + empty.string());
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find("no vectors in"), std::string::npos) << r.err;
    r = nsvm("oracle run --backend qemu " + empty.string());
    EXPECT_EQ(r.status, 2) << r.err;

    // A hang the model predicts counts as agreement; a Bochs PANIC (2.7
    // does not check EFER.LME = CR0.PG = 1 with CR0.PE = 0) is not compared.
    if (!on_path("bochs")) GTEST_SKIP() << "bochs is not on PATH";
    auto pe0 = named(base_vector(BaseMode::long64), "pe0");
    pe0.vmcb.set(FieldId::cr0, pe0.vmcb.get(FieldId::cr0) & ~arch::cr0::PE);
    const auto panic = write_temp("only-panic.jsonl", lines({pe0}));
    r = nsvm("diff --backend bochs --stall-ms 3000 " + panic.string());
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    EXPECT_NE(r.err.find("no vector was compared (1 could not run)"), std::string::npos) << r.err;
    r = nsvm("diff --json --backend bochs --stall-ms 3000 " + panic.string());
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    EXPECT_NE(r.out.find("\"cannot_run\":1"), std::string::npos) << r.out;
}

TEST(DiffExitStatus, SetupFailuresAreExit2) {
    NEED("qemu-system-x86_64");
    const auto one = write_temp("one.jsonl", lines({named(base_vector(BaseMode::long64), "one")}));
    for (const std::string cmd : {"diff", "oracle run"}) {
        auto r = nsvm(cmd + " --backend qemu --cpu-model no-such-cpu " + one.string());
        EXPECT_EQ(r.status, 2) << cmd << ": " << r.err;
        r = nsvm(cmd + " --backend qemu " + one.string(), "PATH=/nonexistent");
        EXPECT_EQ(r.status, 2) << cmd << ": " << r.err;
        EXPECT_NE(r.err.find("on PATH"), std::string::npos) << r.err;
        if (access("/dev/kvm", R_OK | W_OK) != 0) {
            r = nsvm(cmd + " --backend qemu-kvm " + one.string());
            EXPECT_EQ(r.status, 2) << cmd << ": " << r.err;
            EXPECT_NE(r.err.find("/dev/kvm"), std::string::npos) << r.err;
        }
    }
}

}  // namespace
}  // namespace nsvm::oracle::hardening
