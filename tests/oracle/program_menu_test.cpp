// Every program of the image's menu runs on QEMU and on Bochs through nsvm
// gen's boundary set (`nsvm diff --boundary`), and what the emulator did is
// either what cpu::SvmCpu predicts or a known divergence of that backend:
// nothing unexplained, no program without a vector the emulator ran, and
// the L2 paging vectors (pg/*) all ran.
#include "hardening_support.hpp"

#include <nlohmann/json.hpp>

#include <map>

#include "nsvm/oracle/vector.hpp"

namespace nsvm::oracle::hardening {
namespace {

void boundary_runs_every_program(std::string_view backend) {
    const auto r = nsvm("diff --json --no-progress --backend " + std::string(backend) + " --boundary");
    ASSERT_EQ(r.status, 0) << "unexplained divergences:\n" << r.out.substr(0, 20000) << r.err;
    std::map<std::string, int> ran;  // program -> prog/* vectors the emulator ran and that were explained or agree
    std::size_t vectors = 0;
    std::size_t paging = 0;  // pg/* vectors (L2 paging faults through paging patches) the emulator ran
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line.front() != '{') continue;
        const auto o = nlohmann::json::parse(line);
        if (!o.contains("id")) continue;
        ++vectors;
        EXPECT_FALSE(o["unexplained"].get<bool>()) << o.dump();
        const std::string id = o["id"];
        if (id.starts_with("pg/") && o["outcome"] != "cannot_run") ++paging;
        if (!id.starts_with("prog/") || o["outcome"] == "cannot_run") continue;
        // prog/<variant>: the variant's first word up to '_' names the program
        // for all but the ones named after a state (nop_tf, load_df, ...).
        // The iret program's vectors say which IRET they run: iretq_*, iretd_*.
        const std::string variant = id.substr(5);
        for (std::size_t p = 0; p < kProgramCount; ++p) {
            const std::string name(program_name(static_cast<Program>(p)));
            if (variant == name || variant.starts_with(name + "_")) ++ran[name];
        }
        if (variant.starts_with("iretq") || variant.starts_with("iretd")) ++ran["iret"];
    }
    EXPECT_GT(vectors, 400U);
    // nsvm gen's paging group: #PF and #NPF in long, PAE and legacy L2, data accesses (at CPL 0 and 3) and instruction
    // fetches (docs/oracle.md "Paging patches").
    EXPECT_GE(paging, 49U) << backend << " did not run the pg/* vectors";
    for (std::size_t p = 0; p < kProgramCount; ++p) {
        const std::string name(program_name(static_cast<Program>(p)));
        EXPECT_GT(ran[name], 0) << backend << " ran no prog/" << name << " vector";
    }
    // IRET (gen.cpp): IRETQ intercepted, completed, with vNMI blocking and
    // pending, four faults; IRETD intercepted and completed.
    EXPECT_EQ(ran["iret"], 10) << backend << " did not run every prog/iret* vector";
}

TEST(QemuPrograms, EveryProgramOfTheMenuAgreesOrIsAKnownDivergence) {
    NEED("qemu-system-x86_64");
    boundary_runs_every_program("qemu");
}

TEST(BochsPrograms, EveryProgramOfTheMenuAgreesOrIsAKnownDivergence) {
    NEED("bochs");
    boundary_runs_every_program("bochs");
}

}  // namespace
}  // namespace nsvm::oracle::hardening
