// docs/peer-bugs.md cannot rot: every reproducer under
// tests/oracle/data/peer-bugs/ runs through `nsvm diff` against its emulator,
// and each of its vectors must differ, explained by exactly the known
// divergence the file is named after (vector ids are "<known id>/<name>"),
// with nothing unexplained. Files under peer-bugs/profile/ show behaviour the
// backend's profile encodes: they agree under the backend's profile and
// differ from the APM profile's prediction.
#include "hardening_support.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

#include "nsvm/oracle/diff.hpp"

namespace nsvm::oracle::hardening {
namespace {

const fs::path kDir = fs::path(NSVM_SOURCE_DIR) / "tests/oracle/data/peer-bugs";

/// The reproducer files of one backend ("qemu.x.jsonl", "bochs.y.jsonl").
std::vector<fs::path> reproducers(std::string_view backend) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(kDir))
        if (e.is_regular_file() && e.path().extension() == ".jsonl" &&
            e.path().filename().string().starts_with(std::string(backend) + "."))
            files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
}

/// The JSON lines of `nsvm diff --json`: one object per vector, then the summary.
std::vector<nlohmann::json> json_lines(const std::string& out) {
    std::vector<nlohmann::json> v;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);)
        if (!line.empty() && line.front() == '{') v.push_back(nlohmann::json::parse(line));
    return v;
}

void each_reproducer_shows_its_divergence(std::string_view backend) {
    const auto files = reproducers(backend);
    ASSERT_FALSE(files.empty()) << "no reproducer for " << backend << " in " << kDir;
    // One file per known divergence of the backend, and no file for a name the table lacks.
    std::set<std::string> named;
    for (const auto& k : known_divergences())
        if (std::string(backend_name(k.backend)) == backend) named.insert(std::string(k.id));
    std::set<std::string> have;
    std::string args = "diff --json --backend " + std::string(backend);
    for (const auto& f : files) {
        have.insert(f.stem().string());
        args += " '" + f.string() + "'";
    }
    EXPECT_EQ(have, named) << "docs/peer-bugs.md: every known divergence of " << backend
                           << " has a reproducer named after it";

    const auto r = nsvm(args);
    ASSERT_EQ(r.status, 0) << r.out << r.err;  // 0: nothing unexplained
    const auto objs = json_lines(r.out);
    ASSERT_FALSE(objs.empty()) << r.out;
    std::set<std::string> seen;
    for (const auto& o : objs) {
        if (!o.contains("id")) continue;  // the summary
        const std::string id = o["id"];
        const std::string known = id.substr(0, id.find('/'));
        seen.insert(known);
        EXPECT_EQ(o["outcome"], "differ") << id << " no longer shows " << known << ": " << o.dump();
        EXPECT_FALSE(o["unexplained"].get<bool>()) << o.dump();
        for (const auto& d : o["divergences"]) {
            ASSERT_TRUE(d["explained"].get<bool>()) << id << ": " << d.dump();
            const std::string reason = d["reason"];
            EXPECT_EQ(reason.substr(0, reason.find(':')), known) << id << ": " << d.dump();
        }
    }
    EXPECT_EQ(seen, have) << "every reproducer's vectors ran";
}

TEST(PeerBugs, EachQemuReproducerShowsExactlyItsKnownDivergence) {
    NEED("qemu-system-x86_64");
    each_reproducer_shows_its_divergence("qemu");
}

TEST(PeerBugs, EachBochsReproducerShowsExactlyItsKnownDivergence) {
    NEED("bochs");
    each_reproducer_shows_its_divergence("bochs");
}

/// Behaviour a profile encodes: the backend's profile predicts it (agree),
/// the APM profile does not, and the fields that differ are the ones named.
void profile_reproducer(std::string_view backend, std::string_view cpu, const fs::path& file,
                        const std::set<std::string>& fields) {
    auto r = nsvm("diff --json --backend " + std::string(backend) + " '" + file.string() + "'");
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    for (const auto& o : json_lines(r.out))
        if (o.contains("id")) {
            EXPECT_EQ(o["outcome"], "agree") << o.dump();
        }
    r = nsvm("diff --json --backend " + std::string(backend) + " --cpu " + std::string(cpu) + " --profile apm '" +
             file.string() + "'");
    ASSERT_EQ(r.status, 1) << r.out << r.err;  // the APM's prediction differs, unexplained
    std::size_t vectors = 0;
    for (const auto& o : json_lines(r.out)) {
        if (!o.contains("id")) continue;
        ++vectors;
        std::set<std::string> got;
        for (const auto& d : o["divergences"]) got.insert(d["field"].get<std::string>());
        EXPECT_EQ(got, fields) << o.dump();
    }
    EXPECT_GT(vectors, 0U);
}

TEST(PeerBugs, SegmentBasesComeBackCanonicalOnQemuAndBochs) {
    // ES and GDTR base bit 56, DS base bit 47: QEMU 7.2 sign-extends from
    // its CPU's virtual-address width (57 with LA57, CR4.LA57 or not), so DS
    // stays; Bochs 2.7 from bit 47, so all three change (ES, GDTR to 0).
    const auto file = kDir / "profile/canonical_writeback.jsonl";
    if (on_path("qemu-system-x86_64")) profile_reproducer("qemu", "qemu-tcg", file, {"save.es.base", "save.gdtr.base"});
    if (on_path("bochs")) profile_reproducer("bochs", "bochs-ryzen", file, {"save.es.base", "save.ds.base", "save.gdtr.base"});
    if (!on_path("qemu-system-x86_64") && !on_path("bochs")) GTEST_SKIP() << "neither emulator is on PATH";
}

}  // namespace
}  // namespace nsvm::oracle::hardening
