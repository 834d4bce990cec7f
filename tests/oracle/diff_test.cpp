// compare(): field-by-field divergences, known divergences named (never
// hidden), fields that follow from an explained exit, and the summary.
#include <gtest/gtest.h>

#include <set>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/oracle/diff.hpp"
#include "nsvm/oracle/gen.hpp"
#include "nsvm/oracle/model.hpp"

namespace nsvm::oracle {
namespace {

using arch::FieldId;
namespace ec = arch::exit_code;

Result exit_result(const Vector& v, std::uint64_t code, std::uint64_t i1 = 0, std::uint64_t i2 = 0) {
    Result r;
    r.id = v.id;
    r.status = Status::vmexit;
    r.vmcb = v.vmcb;
    r.vmcb.set(FieldId::exit_code, code);
    r.vmcb.set(FieldId::exit_info_1, i1);
    r.vmcb.set(FieldId::exit_info_2, i2);
    r.probe_ok = true;
    return r;
}

Prediction exit_prediction(std::uint64_t code) {
    Prediction p;
    p.exit_code = code;
    p.exit_info_1 = 0;
    p.exit_info_2 = 0;
    p.exit_int_info = 0;
    p.gif = false;
    return p;
}

const checks::Profile& prof(checks::ProfileId id) { return checks::profile(id); }

TEST(Diff, AgreementHasNoFields) {
    const auto v = base_vector(BaseMode::long64);
    const auto d = compare(v, exit_prediction(ec::VMMCALL), exit_result(v, ec::VMMCALL), Backend::qemu,
                           prof(checks::ProfileId::qemu));
    EXPECT_EQ(d.outcome, Outcome::agree);
    EXPECT_TRUE(d.fields.empty());
}

TEST(Diff, AnUnknownDifferenceIsUnexplainedAndNamesBothValues) {
    const auto v = base_vector(BaseMode::long64);
    const auto d = compare(v, exit_prediction(ec::VMMCALL), exit_result(v, ec::HLT), Backend::qemu,
                           prof(checks::ProfileId::qemu));
    EXPECT_EQ(d.outcome, Outcome::differ);
    ASSERT_EQ(d.fields.size(), 1U);
    EXPECT_EQ(d.fields[0].field, "exit_code");
    EXPECT_EQ(d.fields[0].model, "0x81");
    EXPECT_EQ(d.fields[0].oracle, "0x78");
    EXPECT_TRUE(d.unexplained());
}

TEST(Diff, AKnownDivergenceIsExplainedAndItsFollowOnFieldsToo) {
    // Bochs turns nested paging on for any bit of the NP_ENABLE byte.
    auto v = base_vector(BaseMode::long64);
    v.vmcb.set(FieldId::misc_ctl, arch::misc_ctl::SSS_CHECK);
    const auto d = compare(v, exit_prediction(ec::VMMCALL), exit_result(v, ec::NPF, 0x20000000F, 0x300000),
                           Backend::bochs, prof(checks::ProfileId::bochs));
    EXPECT_EQ(d.outcome, Outcome::differ);
    EXPECT_FALSE(d.unexplained());
    ASSERT_EQ(d.fields.size(), 3U);  // exit_code, exit_info_1, exit_info_2: kept, not hidden
    EXPECT_NE(d.fields[0].reason.find("bochs.np_enable_whole_byte"), std::string::npos);
    EXPECT_NE(d.fields[1].reason.find("follows from"), std::string::npos);
    // The same exit on QEMU is not explained by a Bochs divergence.
    const auto q = compare(v, exit_prediction(ec::VMMCALL), exit_result(v, ec::NPF, 0x20000000F, 0x300000),
                           Backend::qemu, prof(checks::ProfileId::qemu));
    EXPECT_TRUE(q.unexplained());
}

TEST(Diff, CannotRunIsItsOwnOutcomeUnlessTheModelExpectsAHang) {
    const auto v = base_vector(BaseMode::long64, Program::hlt);
    Result r;
    r.status = Status::cannot_run;
    r.reason = "timeout";
    EXPECT_EQ(compare(v, exit_prediction(ec::HLT), r, Backend::qemu, prof(checks::ProfileId::qemu)).outcome,
              Outcome::cannot_run);
    Prediction hang;
    hang.status = Status::cannot_run;
    EXPECT_EQ(compare(v, hang, r, Backend::qemu, prof(checks::ProfileId::qemu)).outcome, Outcome::agree);
}

TEST(Diff, SummaryCountsPerCheckAndPerKnownDivergence) {
    auto v = base_vector(BaseMode::long64);
    v.checks = {"asid.zero"};
    Summary s;
    s.add(compare(v, exit_prediction(ec::VMMCALL), exit_result(v, ec::VMMCALL), Backend::qemu,
                  prof(checks::ProfileId::qemu)));
    s.add(compare(v, exit_prediction(ec::VMMCALL), exit_result(v, ec::HLT), Backend::qemu,
                  prof(checks::ProfileId::qemu)));
    EXPECT_EQ(s.total, 2U);
    EXPECT_EQ(s.agree, 1U);
    EXPECT_EQ(s.differ, 1U);
    EXPECT_TRUE(s.has_unexplained());
    EXPECT_EQ(s.per_check["asid.zero"].agree, 1U);
    EXPECT_EQ(s.per_check["asid.zero"].differ, 1U);
}

TEST(Diff, EveryKnownDivergenceHasABackendAFieldAndAReason) {
    std::set<std::string_view> ids;
    for (const auto& k : known_divergences()) {
        EXPECT_TRUE(ids.insert(k.id).second) << k.id;
        EXPECT_EQ(k.id.substr(0, backend_name(k.backend).size()), backend_name(k.backend)) << k.id;
        EXPECT_FALSE(k.field.empty()) << k.id;
        EXPECT_GT(k.reason.size(), 40U) << k.id;
    }
}

}  // namespace
}  // namespace nsvm::oracle

namespace nsvm::oracle {
namespace {

TEST(Diff, AValidExitIsComparedOnEveryVmcbField) {
    // The model follows base/long64 to its intercepted VMMCALL at the entry.
    const auto v = base_vector(BaseMode::long64);
    const auto model = make_image_model(*checks::find_builtin_model("qemu-tcg"), prof(checks::ProfileId::qemu));
    const auto p = model->predict(v);
    ASSERT_TRUE(p.rest_unchanged) << p.path;
    ASSERT_EQ(p.guest_rip, std::optional<std::uint64_t>(program_entry(Program::vmmcall)));
    auto r = exit_result(v, ec::VMMCALL);
    EXPECT_EQ(compare(v, p, r, Backend::qemu, prof(checks::ProfileId::qemu)).outcome, Outcome::agree);
    // Any other field the emulator changed is a divergence, named by field.
    r.vmcb.set(FieldId::cr4, v.vmcb.get(FieldId::cr4) | arch::cr4::PGE);
    r.vmcb.set(FieldId::event_inj, arch::event::V | 0x30);
    const auto d = compare(v, p, r, Backend::qemu, prof(checks::ProfileId::qemu));
    EXPECT_TRUE(d.whole_vmcb);
    ASSERT_EQ(d.fields.size(), 2U);
    EXPECT_EQ(d.fields[0].field, "save.cr4");
    EXPECT_EQ(d.fields[1].field, "control.event_inj.V");
    EXPECT_TRUE(d.unexplained());
}

TEST(Diff, TheModelFollowsAnExceptionToTheStubWithItsStackFrame) {
    // UD2 without its intercept: #UD through the 64-bit L2 IDT (frame of five
    // qwords below the 16-aligned RSP), then the stub's "mov eax, 6; vmmcall".
    const auto v = base_vector(BaseMode::long64, Program::ud2);
    const auto model = make_image_model(*checks::find_builtin_model("zen4"), prof(checks::ProfileId::apm));
    const auto p = model->predict(v);
    ASSERT_TRUE(p.rest_unchanged) << p.path;
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::VMMCALL));
    EXPECT_EQ(p.guest_rax, std::optional<std::uint64_t>(6));
    EXPECT_EQ(p.guest_rip, std::optional<std::uint64_t>(NSVM_OR_L2_STUBS_PA + 16 * 6 + 5));
    EXPECT_EQ(p.guest_rsp, std::optional<std::uint64_t>((NSVM_OR_L2_STACK_TOP & ~0xFULL) - 40));
    // zen4 has NRIPS: the intercepted VMMCALL's nRIP is the next instruction.
    EXPECT_EQ(p.next_rip, std::optional<std::uint64_t>(NSVM_OR_L2_STUBS_PA + 16 * 6 + 8));
}

}  // namespace
}  // namespace nsvm::oracle

namespace nsvm::oracle {
namespace {

TEST(Diff, BochsVirtualInterruptDivergencesAreNamed) {
    // tests/oracle/data/virtual_interrupts.jsonl, vi/if1_vintr and
    // vnmi/pending_nofeature, as Bochs 2.7 ran them.
    auto v = base_vector(BaseMode::long64, Program::cpuid);
    v.vmcb.set_intercept(arch::intercept::CPUID);
    v.vmcb.set_intercept(arch::intercept::VINTR);
    v.vmcb.set(FieldId::int_ctl, arch::int_ctl::V_IRQ | arch::int_ctl::V_IGN_TPR);
    v.vmcb.set(FieldId::rflags, arch::rflags::FIXED1 | arch::rflags::IF);
    const auto& bochs = prof(checks::ProfileId::bochs);
    const auto model = make_image_model(*checks::find_builtin_model("bochs-ryzen"), bochs);
    auto p = model->predict(v);
    ASSERT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::VINTR)) << p.path;
    auto r = exit_result(v, ec::CPUID);
    // Bochs ran CPUID first (V_IRQ still pending, written back as 1).
    r.vmcb.set(FieldId::next_rip, program_entry(Program::cpuid) + 2);
    auto d = compare(v, p, r, Backend::bochs, bochs);
    EXPECT_FALSE(d.unexplained()) << format_diff(d, true);
    EXPECT_EQ(compare(v, p, r, Backend::qemu, bochs).unexplained(), true);

    auto w = base_vector(BaseMode::long64, Program::vmmcall);
    w.vmcb.set(FieldId::int_ctl, arch::int_ctl::V_NMI_PENDING);
    p = model->predict(w);
    ASSERT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << p.path;
    r = exit_result(w, ec::VMMCALL);
    r.vmcb.set(FieldId::int_ctl, 0);
    r.vmcb.set(FieldId::next_rip, program_entry(Program::vmmcall) + 3);
    d = compare(w, p, r, Backend::bochs, bochs);
    ASSERT_EQ(d.fields.size(), 1U) << format_diff(d, true);
    EXPECT_EQ(d.fields[0].field, "control.int_ctl");
    EXPECT_TRUE(d.fields[0].explained);
    EXPECT_EQ(d.fields[0].reason.substr(0, 23), "bochs.int_ctl_byte_0x61");
}

TEST(Diff, AVirtualInterruptTakenByOneSideOnlyIsNamedByWhoTookIt) {
    // V_IRQ at VMRUN, not intercepted: the model delivers it through L2's IDT
    // (the stub's VMMCALL), Bochs runs CPUID first and leaves V_IRQ pending.
    auto v = base_vector(BaseMode::long64, Program::cpuid);
    v.vmcb.set_intercept(arch::intercept::CPUID);
    v.vmcb.set(FieldId::int_ctl, arch::int_ctl::V_IRQ | arch::int_ctl::V_IGN_TPR);
    v.vmcb.set(FieldId::int_vector, 0x41);
    v.vmcb.set(FieldId::rflags, arch::rflags::FIXED1 | arch::rflags::IF);
    const auto& bochs = prof(checks::ProfileId::bochs);
    auto p = make_image_model(*checks::find_builtin_model("bochs-ryzen"), bochs)->predict(v);
    ASSERT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << p.path;
    auto r = exit_result(v, ec::CPUID);
    r.vmcb.set(FieldId::next_rip, program_entry(Program::cpuid) + 2);
    auto d = compare(v, p, r, Backend::bochs, bochs);
    EXPECT_FALSE(d.unexplained()) << format_diff(d, true);
    EXPECT_TRUE(compare(v, p, r, Backend::qemu, bochs).unexplained()) << "the Bochs divergence is Bochs' only";

    // V_INTR_PRIO = V_TPR: the model leaves it pending (APM 15.21.4: above
    // V_TPR only); an emulator that took it wrote V_IRQ = 0 back.
    v.vmcb.set(FieldId::int_ctl, arch::int_ctl::V_IRQ | (std::uint64_t{5} << 16) | 5);
    const auto& qemu = prof(checks::ProfileId::qemu);
    p = make_image_model(*checks::find_builtin_model("qemu-tcg"), qemu)->predict(v);
    ASSERT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::CPUID)) << p.path;
    r = exit_result(v, ec::VMMCALL);
    r.vmcb.set(FieldId::int_ctl, (std::uint64_t{5} << 16) | 5);
    d = compare(v, p, r, Backend::qemu, qemu);
    EXPECT_FALSE(d.unexplained()) << format_diff(d, true);
    ASSERT_FALSE(d.fields.empty());
    EXPECT_EQ(d.fields[0].reason.substr(0, 25), "qemu.virq_priority_ge_tpr") << format_diff(d, true);
    // One priority step above V_TPR both take it: nothing to explain.
    v.vmcb.set(FieldId::int_ctl, arch::int_ctl::V_IRQ | (std::uint64_t{6} << 16) | 5);
    p = make_image_model(*checks::find_builtin_model("qemu-tcg"), qemu)->predict(v);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << p.path;
}

}  // namespace
}  // namespace nsvm::oracle
