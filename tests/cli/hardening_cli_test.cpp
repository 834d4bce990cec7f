// Hostile input through the nsvm binary: every case exits with status 2 and
// a message naming the file (and line or field where there is one), never 3
// ("internal error"), a crash or a silent success. Big and deep inputs are
// generated here into a temporary directory, not committed.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "report_helpers.hpp"
#include "run_nsvm.hpp"

using cli_test::contains;
using cli_test::nsvm;
using cli_test::nsvm_with;
using cli_test::write_temp;
namespace fs = std::filesystem;

namespace {

/// Status 2 and "nsvm: <needle>..." on stderr, nothing that looks like a crash.
void expect_bad_input(const cli_test::Result& r, const std::string& needle) {
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_EQ(r.err.rfind("nsvm: ", 0), 0U) << r.err;
    EXPECT_TRUE(contains(r.err, needle)) << "expected '" << needle << "' in:\n" << r.err;
    EXPECT_FALSE(contains(r.err, "internal error")) << r.err;
}

}  // namespace

// ---------------------------------------------------------------- finding 1

TEST(CliHardening, DeepJsonIsExit2WithFileAndLine) {
    const auto f = write_temp("deep.json", "{\"save\":\n" + std::string(100000, '[') + "\n");
    const auto r = nsvm("check '" + f.string() + "'");
    expect_bad_input(r, f.string() + ":2: save");
    EXPECT_TRUE(contains(r.err, "nesting deeper than 64 levels")) << r.err;
}

// ---------------------------------------------------------------- finding 2

TEST(CliHardening, DevZeroStopsAtTheInputLimit) {
    const auto r = nsvm_with("NSVM_MAX_INPUT=1M", "check /dev/zero");
    expect_bad_input(r, "/dev/zero: input larger than the limit of 1048576 bytes; set NSVM_MAX_INPUT");
}

TEST(CliHardening, StdinStopsAtTheInputLimit) {
    const auto r = nsvm_with("NSVM_MAX_INPUT=64K", "check - < /dev/zero");
    expect_bad_input(r, "<stdin>: input larger than the limit of 65536 bytes");
}

TEST(CliHardening, DefaultInputLimitIs64MiB) {
    const auto r = nsvm("decode /dev/zero");
    expect_bad_input(r, "/dev/zero: input larger than the limit of 67108864 bytes");
}

TEST(CliHardening, InputAtTheLimitIsRead) {
    const auto f = write_temp("page.bin", std::string(4096, '\0'));
    EXPECT_EQ(nsvm_with("NSVM_MAX_INPUT=4096", "decode '" + f.string() + "'").status, 0);
    expect_bad_input(nsvm_with("NSVM_MAX_INPUT=4095", "decode '" + f.string() + "'"),
                     f.string() + ": input larger than the limit of 4095 bytes");
}

TEST(CliHardening, BadLimitIsExit2NamingTheVariable) {
    expect_bad_input(nsvm_with("NSVM_MAX_INPUT=lots", "check examples/valid-vmcb.json"),
                     "NSVM_MAX_INPUT=lots: expected a size in bytes");
}

TEST(CliHardening, DirectoryIsExit2) {
    const auto dir = fs::temp_directory_path();
    expect_bad_input(nsvm("check '" + dir.string() + "'"), dir.string() + ": is a directory");
    expect_bad_input(nsvm("check --cpu '" + dir.string() + "' examples/valid-vmcb.json"),
                     dir.string() + ": is a directory");
    expect_bad_input(nsvm("cpu show '" + dir.string() + "'"), dir.string() + ": is a directory");
}

TEST(CliHardening, RawOfTheWrongSizeIsExit2) {
    const auto small = write_temp("small.bin", std::string(100, '\0'));
    expect_bad_input(nsvm("check --format raw '" + small.string() + "'"),
                     small.string() + ": raw VMCB truncated: found 100 bytes, expected exactly 4096");
    const auto big = write_temp("big.bin", std::string(4097, '\0'));
    expect_bad_input(nsvm("decode --format raw '" + big.string() + "'"),
                     big.string() + ": raw VMCB oversized: found 4097 bytes");
}

// ---------------------------------------------------------------- finding 3

TEST(CliHardening, InterleavedKvmDumpsSayInterleaved) {
    const auto f = write_temp("mixed.log",
                              "kvm_amd: VMCB Control Area:\nkvm_amd: asid: 1\nkvm_amd: VMCB Control Area:\n"
                              "kvm_amd: asid: 2\nkvm_amd: VMCB State Save Area:\n");
    expect_bad_input(nsvm("check '" + f.string() + "'"), f.string() + ":3: a second dump starts here");
}

// ---------------------------------------------------------------- findings 4, 5

TEST(CliHardening, TenMegabyteNameIsQuickEscapedAndCut) {
    const std::string name = "\\u001b[2J" + std::string(10'000'000, 'q');  // the escape, spelled in JSON
    const auto f = write_temp("huge-name.json", "{\"save\": {\"" + name + "\": 1}}");
    const auto r = nsvm("check '" + f.string() + "'");
    expect_bad_input(r, "save.\\x1b[2Jqqq");
    EXPECT_TRUE(contains(r.err, "unknown member")) << r.err.substr(0, 300);
    EXPECT_FALSE(contains(r.err, "\x1b")) << "raw escape echoed";
    EXPECT_LT(r.err.size(), 1000U);
}

TEST(CliHardening, ControlCharactersInOptionValuesAreEscaped) {
    for (const std::string opt : {"--cpu", "--profile", "--features"}) {
        const auto r = nsvm("check " + opt + " \"$(printf 'x\\033[31mred')\" examples/valid-vmcb.json");
        expect_bad_input(r, "x\\x1b[31mred");
        EXPECT_FALSE(contains(r.err, "\x1b")) << opt << ": " << r.err;
    }
}

// ---------------------------------------------------------------- finding 6

TEST(CliHardening, DuplicateKeyInACpuModelIsExit2WithLine) {
    const auto f = write_temp("dup-model.json", "{\"base\": \"zen3\",\n\"maxphyaddr\": 40,\n\"maxphyaddr\": 48}\n");
    expect_bad_input(nsvm("check --cpu '" + f.string() + "' examples/valid-vmcb.json"),
                     f.string() + ":3: maxphyaddr: member given twice");
}

// ---------------------------------------------------------------- finding 7

TEST(CliHardening, HostileFilesAreExit2ForEveryReadingCommand) {
    struct Case {
        std::string name, content, needle;
    };
    const std::vector<Case> cases = {
        {"empty.bin", "", "empty input"},
        {"nuls.bin", std::string(100, '\0'), "cannot tell the format"},
        {"bad-utf8.json", "{\"save\": {\"cr0\": \"\xff\xfe\"}}", ":1:"},
        {"bracket.json", "[", "cannot tell the format"},  // not an object: no format starts so
        {"open.json", "{\"save\": [", ":1:"},
        {"deep.json", std::string(5000, '{'), ":1:"},
        {"inf.json", "{\"save\": {\"cr0\": 1e999}}", ":1: save.cr0:"},
        {"neg.json", "{\"save\": {\"cr0\": -1}}", "save.cr0: negative number -1"},
        {"big.json", "{\"save\": {\"cr0\": 123456789012345678901234567890}}", "save.cr0:"},
        {"long-string.json", "{\"save\": {\"cr0\": \"" + std::string(10'000'000, '7') + "\"}}", "save.cr0:"},
        {"comment.json", "// a VMCB\n{\"save\": {\"cr0\": \"0x11\"}, \"control\": 5}", "control: must be a JSON object"},
        {"open-comment.json", "\n\n/* no end\n{}", ":3:"},
    };
    for (const auto& c : cases) {
        const auto f = write_temp(c.name, c.content);
        for (const std::string cmd : {"check", "decode", "convert --to json"}) {
            SCOPED_TRACE(cmd + " " + c.name);
            const auto r = nsvm(cmd + " '" + f.string() + "'");
            expect_bad_input(r, f.string());
            EXPECT_TRUE(contains(r.err, c.needle)) << r.err.substr(0, 400);
            EXPECT_LT(r.err.size(), 1000U);
        }
    }
}

TEST(CliHardening, HostileCpuModelsAreExit2) {
    const std::vector<std::pair<std::string, std::string>> models = {
        {"", ":1:"},
        {std::string(100, '\0'), ":1:"},
        {"[", ":1:"},
        {std::string(3000, '['), ":1:"},
        {"{\"maxphyaddr\": 1e999}", ":1: maxphyaddr:"},
        {"{\"num_asids\": -1}", "num_asids"},
        {"{\"name\": \"" + std::string(10'000'000, 'n') + "\"}", "name"},
        {"{\"features\": [\"" + std::string(10'000'000, 'f') + "\"]}", "unknown CPU feature"},
    };
    int i = 0;
    for (const auto& [content, needle] : models) {
        const auto f = write_temp("model-" + std::to_string(i++) + ".json", content);
        for (const std::string& cmd : {"cpu show '" + f.string() + "'",
                                      "check --cpu '" + f.string() + "' examples/valid-vmcb.json"}) {
            SCOPED_TRACE(cmd);
            const auto r = nsvm(cmd);
            expect_bad_input(r, f.string());
            EXPECT_TRUE(contains(r.err, needle)) << r.err.substr(0, 400);
            EXPECT_LT(r.err.size(), 1000U);
        }
    }
}

// ---------------------------------------------------------------- finding 8

TEST(CliHardening, WriteErrorOnStdoutIsExit2) {
    for (const std::string cmd : {"check examples/valid-vmcb.json", "decode examples/valid-vmcb.json",
                                  "convert --to json examples/valid-vmcb.json", "cpu list", "checks list"}) {
        SCOPED_TRACE(cmd);
        const auto r = nsvm_with("", cmd, "/dev/full");
        EXPECT_EQ(r.status, 2) << r.err;
        EXPECT_EQ(r.err, "nsvm: error writing to standard output: No space left on device\n");
    }
}

TEST(CliHardening, WriteErrorOnOutputFileIsExit2) {
    const auto r = nsvm("convert --to json -o /dev/full examples/valid-vmcb.json");
    expect_bad_input(r, "/dev/full: cannot write");
}
