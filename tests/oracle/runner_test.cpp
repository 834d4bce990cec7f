// The oracle runners end to end: the image boots in QEMU (TCG) and Bochs,
// runs a batch, and every result comes back; a vector that hangs or panics
// the emulator is reported as cannot_run and the rest of the batch still runs.
// These boot real emulators (installed by `make deps`); without one on PATH
// the test is skipped with the reason, and scripts/oracle-ci.sh fails instead.
#include <gtest/gtest.h>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/oracle/gen.hpp"
#include "nsvm/oracle/runner.hpp"
#include "nsvm/oracle/timing.hpp"

namespace nsvm::oracle {
namespace {

using arch::FieldId;
namespace ec = arch::exit_code;

std::unique_ptr<Runner> runner_or_skip(Backend b, std::chrono::milliseconds stall = std::chrono::milliseconds(3000)) {
    RunnerOptions o;
    o.backend = b;
    o.stall_timeout = stall;
    auto r = make_runner(o);
    if (!r) return nullptr;
    return std::move(*r);
}

#define RUNNER_OR_SKIP(var, ...)                                             \
    auto var = runner_or_skip(__VA_ARGS__);                                  \
    if (!(var)) GTEST_SKIP() << "emulator unavailable: " << make_runner({}).error()

Vector named(Vector v, std::string id) {
    v.id = std::move(id);
    return v;
}

std::vector<Vector> mixed_batch() {
    std::vector<Vector> vs;
    vs.push_back(named(base_vector(BaseMode::long64), "vmmcall"));
    auto asid0 = base_vector(BaseMode::long64);
    asid0.vmcb.set(FieldId::asid, 0);
    vs.push_back(named(asid0, "asid0"));
    auto cpuid = base_vector(BaseMode::long64, Program::cpuid);
    cpuid.vmcb.set_intercept(arch::intercept::CPUID, true);
    vs.push_back(named(cpuid, "cpuid"));
    auto nosvme = base_vector(BaseMode::long64);
    nosvme.host.svme = false;
    vs.push_back(named(nosvme, "no-svme"));
    vs.push_back(named(base_vector(BaseMode::legacy32), "legacy32"));
    return vs;
}

void expect_mixed_results(const std::vector<Result>& rs, std::uint64_t invalid) {
    ASSERT_EQ(rs.size(), 5U);
    EXPECT_EQ(rs[0].status, Status::vmexit) << rs[0].reason;
    EXPECT_EQ(rs[0].exit_code(), ec::VMMCALL);
    EXPECT_FALSE(rs[0].gif);  // APM 15.17: #VMEXIT clears GIF
    EXPECT_TRUE(rs[0].probe_ok);
    EXPECT_EQ(rs[1].status, Status::vmexit);
    EXPECT_EQ(rs[1].exit_code(), invalid);
    EXPECT_EQ(rs[1].exit_info_1(), 0U);
    EXPECT_EQ(rs[2].exit_code(), ec::CPUID);
    EXPECT_EQ(rs[3].status, Status::exception);
    EXPECT_EQ(rs[3].exception_vector, 6U);  // VMRUN with EFER.SVME = 0: #UD
    EXPECT_TRUE(rs[3].gif);                 // the gate leaves GIF as it was (set)
    EXPECT_EQ(rs[4].exit_code(), ec::VMMCALL);
    for (std::size_t i = 0; i < rs.size(); ++i) EXPECT_EQ(rs[i].id, mixed_batch()[i].id);
}

TEST(QemuRunner, RunsABatchAndReadsEveryResultBack) {
    RUNNER_OR_SKIP(r, Backend::qemu);
    auto rs = r->run(mixed_batch());
    ASSERT_TRUE(rs.has_value()) << rs.error();
    // QEMU 7.2 writes VMEXIT_INVALID as a zero-extended 32-bit -1.
    expect_mixed_results(*rs, ec::INVALID_32);
    EXPECT_EQ(r->stats().boots, 1U);
}

TEST(QemuRunner, SplitsIntoBatchesAndParallelJobsWithoutChangingResults) {
    RunnerOptions o;
    o.backend = Backend::qemu;
    o.batch_size = 2;
    o.jobs = 2;
    auto r = make_runner(o);
    if (!r) GTEST_SKIP() << r.error();
    auto rs = (*r)->run(mixed_batch());
    ASSERT_TRUE(rs.has_value()) << rs.error();
    expect_mixed_results(*rs, ec::INVALID_32);
    EXPECT_EQ((*r)->stats().boots, 3U);  // jobs of 3 and 2 vectors, 2 per boot: 2 + 1 boots
}

TEST(QemuRunner, AHangingVectorIsCannotRunAndTheRestStillRun) {
    RUNNER_OR_SKIP(r, Backend::qemu, std::chrono::milliseconds(1500));
    std::vector<Vector> vs;
    vs.push_back(named(base_vector(BaseMode::long64), "before"));
    // HLT without its intercept and no interrupt to come: L2 never exits.
    vs.push_back(named(base_vector(BaseMode::long64, Program::hlt), "hang"));
    vs.back().vmcb.set_intercept(arch::intercept::HLT, false);
    vs.push_back(named(base_vector(BaseMode::long64), "after"));
    auto rs = r->run(vs);
    ASSERT_TRUE(rs.has_value()) << rs.error();
    ASSERT_EQ(rs->size(), 3U);
    EXPECT_EQ((*rs)[0].exit_code(), ec::VMMCALL);
    EXPECT_EQ((*rs)[1].status, Status::cannot_run);
    EXPECT_NE((*rs)[1].reason.find("timeout"), std::string::npos) << (*rs)[1].reason;
    EXPECT_EQ((*rs)[2].status, Status::vmexit);
    EXPECT_EQ((*rs)[2].exit_code(), ec::VMMCALL);
    EXPECT_EQ(r->stats().boots, 2U);
}

TEST(BochsRunner, APanicIsCannotRunAndTheRestStillRun) {
    RUNNER_OR_SKIP(r, Backend::bochs);
    std::vector<Vector> vs;
    vs.push_back(named(base_vector(BaseMode::long64), "before"));
    // Bochs 2.7 does not check EFER.LME = CR0.PG = 1 with CR0.PE = 0 and
    // PANICs when it loads that state (docs/oracle.md "How it works").
    auto pe0 = base_vector(BaseMode::long64);
    pe0.vmcb.set(FieldId::cr0, pe0.vmcb.get(FieldId::cr0) & ~arch::cr0::PE);
    vs.push_back(named(pe0, "pe0"));
    vs.push_back(named(base_vector(BaseMode::long64), "after"));
    auto rs = r->run(vs);
    ASSERT_TRUE(rs.has_value()) << rs.error();
    ASSERT_EQ(rs->size(), 3U);
    EXPECT_EQ((*rs)[0].exit_code(), ec::VMMCALL);
    EXPECT_EQ((*rs)[1].status, Status::cannot_run);
    EXPECT_NE((*rs)[1].reason.find("PANIC"), std::string::npos) << (*rs)[1].reason;
    EXPECT_EQ((*rs)[2].exit_code(), ec::VMMCALL);
}

TEST(BochsRunner, RunsABatchAndReadsEveryResultBack) {
    RUNNER_OR_SKIP(r, Backend::bochs);
    auto rs = r->run(mixed_batch());
    ASSERT_TRUE(rs.has_value()) << rs.error();
    expect_mixed_results(*rs, ec::INVALID);
}

// `make bench`'s default loop: 100000 VMRUNs take about a second in QEMU
// TCG, longer than the 0.5 s without progress after which a batch's vector
// is declared hung; the timing loop must still complete.
TEST(PeerTiming, QemuLoopsGiveAPositiveCostPerVmrun) {
    RunnerOptions o;
    o.backend = Backend::qemu;
    if (auto r = make_runner(o); !r) GTEST_SKIP() << r.error();
    auto t = measure_peer(o, 100000);
    ASSERT_TRUE(t.has_value()) << t.error();
    EXPECT_GT(t->roundtrip_ns, 0.0);
    EXPECT_GT(t->failed_vmrun_ns, 0.0);
    EXPECT_EQ(t->iterations, 100000U);
}

}  // namespace
}  // namespace nsvm::oracle
