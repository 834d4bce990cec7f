// Hostile JSON (the "no input crashes nsvm" issue): nesting 100,000 deep,
// duplicate members, numbers beyond a double, comments, control characters
// in member names. Every case is an error naming the file, the line and the
// member, in time linear in the input (the ctest timeout catches a
// regression; no timer here).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "nsvm/formats/cpu_model_json.hpp"
#include "nsvm/formats/json_strict.hpp"

using namespace nsvm;
using namespace nsvm::formats;
using namespace nsvm::formats::test;

namespace {

/// `levels` arrays nested in one another, built without recursion.
nlohmann::json deep_array(std::size_t levels) {
    nlohmann::json v = nlohmann::json::array();
    for (std::size_t i = 1; i < levels; ++i) {
        nlohmann::json outer = nlohmann::json::array();
        outer.push_back(std::move(v));
        v = std::move(outer);
    }
    return v;
}

}  // namespace

// ---------------------------------------------------------------- finding 1: depth

TEST(JsonHardening, DeepNestingIsRefusedWithItsLineNotACrash) {
    const std::string text = "{\n  \"control\": {\n    \"intercepts\": " + std::string(100000, '[') + "\n";
    const auto e = read_error(text, Format::json);
    EXPECT_EQ(e.file, "bad.json");
    EXPECT_EQ(e.line, 3);
    // Two objects, then 62 arrays reach the limit of 64: the path shows the
    // first eight levels and the count.
    EXPECT_EQ(e.field, "control.intercepts[0][0][0][0][0][0]\u2026(64 levels)");
    EXPECT_TRUE(contains(e.message, "nesting deeper than 64 levels")) << e.message;
}

TEST(JsonHardening, DepthLimitIsExactAndConfigurable) {
    const auto nested = [](std::size_t n) { return std::string(n, '[') + std::string(n, ']'); };
    EXPECT_TRUE(parse_json_strict(nested(kMaxJsonDepth), "d.json").has_value());
    const auto e = parse_json_strict(nested(kMaxJsonDepth + 1), "d.json");
    ASSERT_FALSE(e.has_value());
    EXPECT_EQ(e.error().line, 1);
    EXPECT_TRUE(contains(e.error().message, "column 65")) << e.error().message;
    EXPECT_FALSE(parse_json_strict(nested(3), "d.json", JsonLimits{.max_depth = 2}).has_value());
}

TEST(JsonHardening, DeepMemberOfAParsedValueIsDescribedNotDumped) {
    // The oracle reads a vector's "vmcb" member with read_vmcb_json: a deep
    // value there must be refused without printing it back (no recursion).
    nlohmann::json vmcb = {{"control", {{"intercepts", nlohmann::json::array()}}}};
    vmcb["control"]["intercepts"].push_back(deep_array(100000));
    const auto r = read_vmcb_json(vmcb, "vectors.json");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().file, "vectors.json");
    EXPECT_EQ(r.error().field, "control.intercepts[0]");
    EXPECT_TRUE(contains(r.error().message, "got an array of 1")) << r.error().message;
}

TEST(JsonHardening, DescribeJsonIsShortWhateverTheValue) {
    EXPECT_EQ(describe_json(nlohmann::json::object({{"a", 1}, {"b", 2}})), "an object of 2 members");
    EXPECT_EQ(describe_json(nlohmann::json::array({1, 2, 3})), "an array of 3");
    EXPECT_EQ(describe_json(nlohmann::json(-5)), "the number -5");
    const auto s = describe_json(nlohmann::json(std::string(10'000'000, 'x') + "\x1b"));
    EXPECT_LT(s.size(), 120U) << s;
    EXPECT_TRUE(contains(s, "(10000001 bytes)")) << s;
}

// ---------------------------------------------------------------- finding 6: duplicates

TEST(JsonHardening, DuplicateMemberNamesLineAndPath) {
    const auto e = read_error("{\"save\": {\n  \"cr0\": \"0x11\",\n  \"cr0\": \"0x13\"\n}}", Format::json);
    EXPECT_EQ(e.line, 3);
    EXPECT_EQ(e.field, "save.cr0");
    EXPECT_TRUE(contains(e.message, "given twice")) << e.message;
    EXPECT_EQ(to_string(e).rfind("bad.json:3: save.cr0: ", 0), 0U) << to_string(e);
}

TEST(JsonHardening, DuplicateSpelledWithAnEscapeIsStillADuplicate) {
    const auto e = parse_json_strict("{\"cr0\": 1,\n\"c\\u0072\\u0030\": 2}", "e.json");
    ASSERT_FALSE(e.has_value());
    EXPECT_EQ(e.error().line, 2);
    EXPECT_EQ(e.error().field, "cr0");
}

TEST(JsonHardening, SameNameInTwoObjectsIsNoDuplicate) {
    EXPECT_TRUE(parse_json_strict(R"({"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 1}, {"x": 2}]})", "ok.json").has_value());
}

TEST(CpuModelHardening, DuplicateKeyIsRefusedWithFileLineAndKey) {
    const auto m = read_cpu_model_json("{\"name\": \"m\",\n \"maxphyaddr\": 40,\n \"maxphyaddr\": 48}", "m.json");
    ASSERT_FALSE(m.has_value());
    EXPECT_EQ(m.error().rfind("m.json:3: maxphyaddr: member given twice", 0), 0U) << m.error();
}

// ---------------------------------------------------------------- finding 7: numbers, comments

TEST(JsonHardening, NumberBeyondADoubleNamesTheField) {
    const auto e = read_error("{\"save\": {\n\"cr0\": 1e999}}", Format::json);
    EXPECT_EQ(e.line, 2);
    EXPECT_EQ(e.field, "save.cr0");
    EXPECT_TRUE(contains(e.message, "beyond the range of a double")) << e.message;
    const auto neg = read_error("{\"save\": {\"cr4\": -1e999}}", Format::json);
    EXPECT_EQ(neg.field, "save.cr4");
    const auto m = read_cpu_model_json("{\"maxphyaddr\": 1e400}", "m.json");
    ASSERT_FALSE(m.has_value());
    EXPECT_EQ(m.error().rfind("m.json:1: maxphyaddr: ", 0), 0U) << m.error();
}

TEST(JsonHardening, HugeIntegersAndNegativesAreErrorsNamingTheField) {
    auto e = read_error(R"({"save": {"cr0": 99999999999999999999999999}})", Format::json);
    EXPECT_EQ(e.field, "save.cr0");
    e = read_error(R"({"save": {"cr0": -1}})", Format::json);
    EXPECT_EQ(e.field, "save.cr0");
    const auto m = read_cpu_model_json(R"({"num_asids": -3})", "m.json");
    ASSERT_FALSE(m.has_value());
    EXPECT_TRUE(contains(m.error(), "num_asids")) << m.error();
}

TEST(JsonHardening, LeadingCommentsAreDetectedAsJson) {
    const std::string line_comment = "// my VMCB\n{\"save\": {\"cr0\": \"0x11\"}}\n";
    const std::string block_comment = "/* my\n VMCB */ {\"save\": {\"cr0\": \"0x11\"}}\n";
    for (const auto& t : {line_comment, block_comment}) {
        const auto r = read_vmcb(t, Format::auto_detect, "c.json");
        ASSERT_TRUE(r.has_value()) << to_string(r.error());
        EXPECT_EQ(r->format, Format::json);
        EXPECT_EQ(r->vmcb.get(arch::FieldId::cr0), 0x11U);
    }
    // A broken comment is still JSON, and the error names its line.
    const auto e = read_error("\n/* never closed\n{\"save\": {}}\n", Format::auto_detect);
    EXPECT_EQ(e.line, 2) << to_string(e);
    EXPECT_TRUE(contains(e.message, "comment")) << e.message;
}

TEST(JsonHardening, JsonMemberNamesAreEchoedEscaped) {
    const auto e = read_error(R"({"save": {"cr\u001b[31m0": 1}})", Format::json);
    EXPECT_EQ(e.field, "save.cr\\x1b[31m0");
    const auto m = read_cpu_model_json("{\"na\\u001bme\": 1}", "m.json");
    ASSERT_FALSE(m.has_value());
    EXPECT_TRUE(contains(m.error(), "unknown key 'na\\x1bme'")) << m.error();
    EXPECT_FALSE(contains(m.error(), "\x1b"));
}

TEST(CpuModelHardening, ControlCharactersInTheModelNameAreRefused) {
    const auto m = read_cpu_model_json(R"({"name": "zen\u001b[31m"})", "m.json");
    ASSERT_FALSE(m.has_value());
    EXPECT_TRUE(contains(m.error(), "m.json: key 'name': 'zen\\x1b[31m' holds a control character")) << m.error();
    const auto longname = read_cpu_model_json("{\"name\": \"" + std::string(100, 'x') + "\"}", "m.json");
    ASSERT_FALSE(longname.has_value());
    EXPECT_TRUE(contains(longname.error(), "longer than 64 bytes")) << longname.error();
}
