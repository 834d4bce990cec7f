// nsvm gen streams (memory stays flat however many vectors), and --seed and
// --count refuse negative, overflowing and too large values by name.
#include "hardening_support.hpp"

#include <sys/resource.h>

namespace nsvm::oracle::hardening {
namespace {

TEST(GenStream, StreamedVectorsAreTheListedOnes) {
    GenOptions g;
    g.cpu = *checks::find_builtin_model("qemu-tcg");
    g.profile = &checks::profile(checks::ProfileId::qemu);
    g.seed = 3;
    g.count = 2500;  // more than one chunk
    g.shard_index = 1;
    g.shard_count = 3;
    const auto all = generate(g);
    std::vector<std::string> streamed;
    generate_each(g, [&](const Vector& v) { streamed.push_back(to_json_line(v)); });
    ASSERT_EQ(streamed.size(), all.size());
    for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(streamed[i], to_json_line(all[i])) << i;
}

TEST(GenStream, MemoryStaysFlatForManyVectors) {
#if defined(__SANITIZE_ADDRESS__)
    // ASan's quarantine keeps up to 256 MB of freed memory, so peak RSS says
    // nothing about streaming in the sanitizer build; the release build
    // (make test) holds the limit.
    GTEST_SKIP() << "peak RSS is not meaningful under AddressSanitizer";
#endif
    // 20,000 vectors held at once take about 100 MB (a VMCB page each).
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        const int null = ::open("/dev/null", O_WRONLY);
        dup2(null, 2);
        execl(nsvm_binary().c_str(), "nsvm", "gen", "--no-boundary", "--seed", "1", "--count", "20000", "-o",
              "/dev/null", static_cast<char*>(nullptr));
        _exit(127);
    }
    int status = 0;
    rusage ru{};  // this child's own peak, not that of earlier children
    ASSERT_EQ(wait4(pid, &status, 0, &ru), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_LT(ru.ru_maxrss, 48 * 1024) << "peak RSS " << ru.ru_maxrss << " KiB";
}

TEST(GenStream, NegativeOrOverflowingSeedAndCountAreRefused) {
    for (const std::string cmd : {"gen", "diff --backend qemu"}) {
        for (const auto& [args, option] : {std::pair{"--seed -1 --count 1", "--seed"},
                                           std::pair{"--seed 1 --count -5", "--count"},
                                           std::pair{"--seed 18446744073709551616 --count 1", "--seed"},
                                           std::pair{"--seed 1 --count 18446744073709551617", "--count"},
                                           std::pair{"--seed 1 --count 1000000000001", "--count"},
                                           std::pair{"--seed x --count 1", "--seed"}}) {
            const auto r = nsvm(cmd + " " + args + (cmd == "gen" ? " -o /dev/null" : ""));
            EXPECT_EQ(r.status, 2) << cmd << " " << args << ": " << r.err;
            EXPECT_NE(r.err.find(option), std::string::npos) << cmd << " " << args << ": " << r.err;
        }
    }
    EXPECT_EQ(nsvm("gen --no-boundary --seed 0xffffffffffffffff --count 1 -o /dev/null").status, 0);
}

}  // namespace
}  // namespace nsvm::oracle::hardening
