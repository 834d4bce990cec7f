// The exec backend (`--backend exec:CMD`): the line protocol's two forms
// round-trip, the reference backend (nsvm's model behind the protocol)
// agrees with the model, and a backend that crashes, hangs, writes garbage
// or floods its output loses exactly the vector in flight.
#include <gtest/gtest.h>

#include <algorithm>

#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/oracle/diff.hpp"
#include "nsvm/oracle/gen.hpp"
#include "nsvm/oracle/model.hpp"
#include "nsvm/oracle/runner.hpp"

namespace nsvm::oracle {
namespace {

using namespace std::chrono_literals;

const std::string kBackend = std::string(NSVM_BINARY_DIR) + "/nsvm_exec_backend";

[[nodiscard]] std::vector<Vector> boundary_vectors() {
    GenOptions g;
    g.cpu = *checks::find_builtin_model("zen4");
    g.profile = &checks::profile(checks::ProfileId::apm);
    return generate_boundary(g);
}

/// The first `n` boundary vectors: enough to have some before and after the
/// one a fault mode picks.
[[nodiscard]] std::vector<Vector> few_vectors(std::size_t n = 8) {
    auto v = boundary_vectors();
    v.resize(std::min(n, v.size()));
    return v;
}

[[nodiscard]] RunnerOptions exec_options(const std::string& args, std::chrono::milliseconds timeout = 0ms) {
    RunnerOptions o;
    o.backend = Backend::exec;
    o.exec_command = kBackend + (args.empty() ? "" : " " + args);
    o.stall_timeout = timeout;
    return o;
}

struct Run {
    std::vector<Result> results;
    RunStats stats;
};

[[nodiscard]] Run run_exec(const RunnerOptions& o, std::span<const Vector> vectors) {
    auto runner = make_runner(o);
    EXPECT_TRUE(runner.has_value()) << (runner ? "" : runner.error());
    if (!runner) return {};
    auto results = (*runner)->run(vectors);
    EXPECT_TRUE(results.has_value()) << (results ? "" : results.error());
    if (!results) return {};
    return {std::move(*results), (*runner)->stats()};
}

TEST(ExecBackend, BackendNames) {
    auto b = find_backend("exec:./my-svm --fast");
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(*b, Backend::exec);
    EXPECT_EQ(exec_command_of("exec:./my-svm --fast"), "./my-svm --fast");
    EXPECT_EQ(exec_command_of("qemu"), "");
    EXPECT_EQ(backend_name(Backend::exec), "exec");
    EXPECT_FALSE(find_backend("exec:").has_value());
    EXPECT_FALSE(find_backend("exec:  ").has_value());
    EXPECT_FALSE(find_backend("exec").has_value());
    EXPECT_NE(find_backend("nope").error().find("exec:CMD"), std::string::npos);
}

TEST(ExecBackend, RequestLineRoundTrips) {
    for (const auto& v : few_vectors(40)) {
        const std::string line = to_json_line(v);
        ASSERT_EQ(line.find('\n'), std::string::npos) << v.id;
        auto back = parse_vectors(line, "request");
        ASSERT_TRUE(back.has_value()) << formats::to_string(back.error());
        ASSERT_EQ(back->size(), 1U);
        EXPECT_EQ(to_json_line(back->front()), line);
        EXPECT_EQ(back->front().vmcb.page(), v.vmcb.page()) << v.id;
    }
}

TEST(ExecBackend, ResponseLineRoundTrips) {
    const auto v = few_vectors(1).front();
    Result exit;
    exit.id = v.id;
    exit.backend = "mine";
    exit.cpu_model = "zen4";
    exit.status = Status::vmexit;
    exit.vmcb = v.vmcb;
    exit.vmcb.set(arch::FieldId::exit_code, 0x81);
    exit.vmcb.set(arch::FieldId::exit_info_2, 0x1234);
    exit.gif = true;
    exit.probe_ok = true;
    exit.vmcb_pa = 0x200000;
    exit.regs[3] = 0xdeadbeef;
    Result exc;
    exc.id = "e";
    exc.backend = "mine";
    exc.status = Status::exception;
    exc.exception_vector = 13;
    exc.error_code = 0;
    exc.probe_ok = true;
    Result lost;
    lost.id = "l";
    lost.backend = "mine";
    lost.reason = "not implemented";
    for (const Result& r : {exit, exc, lost}) {
        const std::string line = to_json_line(r);
        ASSERT_EQ(line.find('\n'), std::string::npos);
        auto back = parse_results(line, "response");
        ASSERT_TRUE(back.has_value()) << formats::to_string(back.error());
        ASSERT_EQ(back->size(), 1U);
        const Result& b = back->front();
        EXPECT_EQ(b.id, r.id);
        EXPECT_EQ(b.status, r.status);
        EXPECT_EQ(b.reason, r.reason);
        EXPECT_EQ(b.exception_vector, r.exception_vector);
        EXPECT_EQ(b.gif, r.gif);
        EXPECT_EQ(to_json_line(b), line);
    }
    auto back = parse_results(to_json_line(exit), "response");
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->front().vmcb.page(), exit.vmcb.page());
    EXPECT_EQ(back->front().regs, exit.regs);
}

// The reference backend answers with the model's prediction: a diff
// against it is the model against itself and must agree on every vector.
TEST(ExecBackend, ModelBackedBackendAgreesWithTheModel) {
    const auto vectors = boundary_vectors();
    ASSERT_GT(vectors.size(), 100U);
    const auto run = run_exec(exec_options(""), vectors);
    ASSERT_EQ(run.results.size(), vectors.size());
    EXPECT_EQ(run.stats.boots, 1U);
    const auto& profile = checks::profile(checks::ProfileId::apm);
    const auto model = make_image_model(*checks::find_builtin_model("zen4"), profile);
    Summary s;
    for (std::size_t i = 0; i < vectors.size(); ++i) {
        EXPECT_EQ(run.results[i].id, vectors[i].id);
        EXPECT_EQ(run.results[i].backend, "nsvm-model");
        const auto d = compare(vectors[i], model->predict(vectors[i]), run.results[i], Backend::exec, profile);
        EXPECT_FALSE(d.unexplained()) << vectors[i].id << ": " << format_diff(d, true);
        s.add(d);
    }
    EXPECT_EQ(s.agree, vectors.size());
    EXPECT_EQ(s.cannot_run, 0U);
}

TEST(ExecBackend, ParallelJobsGiveTheSameResults) {
    const auto vectors = few_vectors(30);
    auto o = exec_options("");
    const auto one = run_exec(o, vectors);
    o.jobs = 3;
    const auto three = run_exec(o, vectors);
    ASSERT_EQ(one.results.size(), vectors.size());
    ASSERT_EQ(three.results.size(), vectors.size());
    EXPECT_EQ(three.stats.boots, 3U);
    for (std::size_t i = 0; i < vectors.size(); ++i)
        EXPECT_EQ(to_json_line(three.results[i]), to_json_line(one.results[i]));
}

/// Runs the few vectors with a fault mode aimed at vector `at`; everything
/// but that vector must come back as a clean run gives it.
void expect_exactly_one_lost(const std::string& mode, std::string_view reason_part, std::size_t boots = 2) {
    constexpr std::size_t kAt = 3;
    const auto vectors = few_vectors();
    const auto clean = run_exec(exec_options(""), vectors);
    const auto faulty = run_exec(exec_options(mode + " '" + vectors[kAt].id + "'", 300ms), vectors);
    ASSERT_EQ(clean.results.size(), vectors.size());
    ASSERT_EQ(faulty.results.size(), vectors.size()) << mode;
    for (std::size_t i = 0; i < vectors.size(); ++i) {
        const auto& r = faulty.results[i];
        EXPECT_EQ(r.id, vectors[i].id);
        if (i == kAt) {
            EXPECT_EQ(r.status, Status::cannot_run) << mode;
            EXPECT_NE(r.reason.find(reason_part), std::string::npos) << mode << ": " << r.reason;
        } else {
            EXPECT_EQ(to_json_line(r), to_json_line(clean.results[i])) << mode << " vector " << i;
        }
    }
    EXPECT_EQ(faulty.stats.cannot_run, 1U) << mode;
    EXPECT_EQ(faulty.stats.boots, boots) << mode;  // the restart after the loss
}

TEST(ExecBackend, CrashLosesOnlyThatVector) { expect_exactly_one_lost("--crash", "ended without an answer"); }
TEST(ExecBackend, HangLosesOnlyThatVector) { expect_exactly_one_lost("--hang", "timeout: no answer within 300 ms"); }
TEST(ExecBackend, GarbageLosesOnlyThatVector) { expect_exactly_one_lost("--garbage", "garbage answer"); }
TEST(ExecBackend, OverlongLineLosesOnlyThatVector) { expect_exactly_one_lost("--flood", "longer than"); }
// A backend refusing one vector says so in a cannot_run answer: no restart.
TEST(ExecBackend, BackendErrorIsThatVectorsCannotRun) {
    expect_exactly_one_lost("--error", "refused by request", 1);
}

TEST(ExecBackend, CommandThatCannotStartFailsTheRunner) {
    RunnerOptions o;
    o.backend = Backend::exec;
    o.exec_command = "/nonexistent/nsvm-exec-backend";
    auto r = make_runner(o);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find("cannot be started"), std::string::npos) << r.error();
    EXPECT_NE(r.error().find("127"), std::string::npos) << r.error();
    o.exec_command = "";
    EXPECT_FALSE(make_runner(o).has_value());
}

TEST(ExecBackend, HandshakeIsChecked) {
    auto none = make_runner(exec_options("--no-handshake", 300ms));
    ASSERT_FALSE(none.has_value());
    EXPECT_NE(none.error().find("no handshake"), std::string::npos) << none.error();
    auto v2 = make_runner(exec_options("--version 2"));
    ASSERT_FALSE(v2.has_value());
    EXPECT_NE(v2.error().find("protocol version 2"), std::string::npos) << v2.error();
    // A backend that never answers the handshake is cut off by the timeout.
    RunnerOptions silent;
    silent.backend = Backend::exec;
    silent.exec_command = "sleep 30";
    silent.stall_timeout = 200ms;
    const auto t0 = std::chrono::steady_clock::now();
    auto s = make_runner(silent);
    ASSERT_FALSE(s.has_value());
    EXPECT_NE(s.error().find("no handshake within 200 ms"), std::string::npos) << s.error();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

}  // namespace
}  // namespace nsvm::oracle
