// A member given twice in a vector's JSON object is refused with the file,
// the line and the member, not silently resolved as "the last one wins".
#include "hardening_support.hpp"


namespace nsvm::oracle::hardening {
namespace {

TEST(DuplicateMembers, AreRefusedWithFileLineAndMember) {
    const std::string good = to_json_line(named(base_vector(BaseMode::long64), "good"));
    struct Case {
        std::string text, member;
    };
    const std::vector<Case> cases = {
        {R"({"id": "a", "id": "b", "vmcb": {}})", "id"},
        {R"({"id": "a", "vmcb": {}, "host": {"gif": 0, "gif": 1}})", "host.gif"},
        {R"({"id": "a", "vmcb": {"save": {"cr0": "0x11", "cr0": "0x80000011"}}})", "vmcb.save.cr0"},
    };
    for (const auto& c : cases) {
        const auto r = parse_vectors("# comment\n" + good + "\n" + c.text + "\n", "dup.jsonl");
        ASSERT_FALSE(r.has_value()) << c.text;
        EXPECT_EQ(r.error().file, "dup.jsonl");
        EXPECT_EQ(r.error().line, 3);
        EXPECT_EQ(r.error().field, c.member);
        EXPECT_NE(r.error().message.find("duplicate"), std::string::npos) << r.error().message;
    }
    const auto arr = parse_vectors(R"([{"id": "a", "vmcb": {}, "note": "x", "note": "y"}])", "dup.json");
    ASSERT_FALSE(arr.has_value());
    EXPECT_EQ(arr.error().field, "note");

    const auto f = write_temp("dup.jsonl", good + "\n" + cases[1].text + "\n");
    for (const std::string cmd : {"diff --backend qemu ", "oracle run --backend qemu "}) {
        const auto r = nsvm(cmd + f.string());
        EXPECT_EQ(r.status, 2) << cmd << r.err;
        EXPECT_NE(r.err.find("dup.jsonl:2: host.gif: duplicate"), std::string::npos) << r.err;
    }
}

}  // namespace
}  // namespace nsvm::oracle::hardening
