// A check some profiles do not apply, and a warning check, say what happens
// when VMRUN goes ahead on a VMCB that violates them (the entry's
// when_unchecked): a warning with the check's id instead of a failure. The
// warning check: EFER.LMA without LME and PG, which KVM's nested code says SVM
// does not check, and on which Xen hit BUG().
#include <gtest/gtest.h>

#include <algorithm>

#include "fixtures.hpp"
#include "nsvm/checks/catalogue.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"

using namespace nsvm;
using namespace nsvm::checks;
using namespace nsvm::checks::test;

namespace {

const Warning* warning(const Report& r, std::string_view id) {
    const auto it = std::find_if(r.warnings.begin(), r.warnings.end(), [&](const Warning& w) { return w.id == id; });
    return it == r.warnings.end() ? nullptr : &*it;
}

Report run(const arch::Vmcb& v, ProfileId p) {
    const CpuModel cpu = model("zen4");
    return evaluate(Context{v, cpu, profile(p), nullptr, nullptr});
}

arch::Vmcb lma_paging_off() {
    auto v = valid_vmcb64();
    v.set(FieldId::cr0, 0x00050033);  // PE = 1, PG = 0, EFER.LMA still 1
    return v;
}

}  // namespace

TEST(UncheckedWarning, EveryProfileWarnsAboutLmaWithTheConsequence) {
    for (const auto& p : all_profiles()) {
        const auto r = run(lma_paging_off(), p.id);
        EXPECT_EQ(r.verdict, Verdict::valid) << p.name;
        EXPECT_TRUE(r.failures.empty()) << p.name;
        const auto* w = warning(r, "efer.lma_without_lme_pg");
        ASSERT_NE(w, nullptr) << p.name;
        EXPECT_NE(w->message.find("not checked by SVM"), std::string::npos) << w->message;
        EXPECT_NE(w->message.find("BUG()"), std::string::npos) << w->message;
        EXPECT_NE(w->message.find("CR0 = 0x50033 (PG=0"), std::string::npos) << w->message;
        EXPECT_EQ(w->fields, (std::vector<std::string>{"save.efer", "save.cr0"}));
    }
}

TEST(UncheckedWarning, XensOwnRuleFailsLmaWithoutLmeAndTheWarningStays) {
    auto v = valid_vmcb64();
    v.set(FieldId::efer, arch::efer::SVME | arch::efer::LMA | arch::efer::NXE);  // LME = 0, PG = 1
    const auto xen = run(v, ProfileId::xen);
    ASSERT_EQ(xen.failures.size(), 1U);
    EXPECT_EQ(xen.failures[0].check->id, "efer.lma_without_lme");
    EXPECT_EQ(xen.verdict, Verdict::vmexit_invalid);
    EXPECT_NE(warning(xen, "efer.lma_without_lme_pg"), nullptr);
    // No other profile applies Xen's rule; a profile that skips it and meets
    // the state warns through the warning check, not twice.
    for (auto p : {ProfileId::apm, ProfileId::kvm, ProfileId::qemu, ProfileId::bochs, ProfileId::hyperv}) {
        const auto r = run(v, p);
        EXPECT_EQ(r.verdict, Verdict::valid) << profile(p).name;
        EXPECT_EQ(warning(r, "efer.lma_without_lme"), nullptr) << profile(p).name;
        EXPECT_NE(warning(r, "efer.lma_without_lme_pg"), nullptr) << profile(p).name;
    }
}

TEST(UncheckedWarning, NoWarningWhereTheStateIsConsistentOrUndecided) {
    // A consistent EFER: nothing to say under any profile.
    const CpuModel zen4 = model("zen4");
    const auto valid = valid_vmcb64();
    for (const auto& p : all_profiles())
        EXPECT_EQ(warning(evaluate(Context{valid, zen4, p, nullptr, nullptr}), "efer.lma_without_lme_pg"), nullptr)
            << p.name;
    // Partial input that does not give CR0 cannot decide it: no warning.
    std::vector<bool> given(arch::kFields.size(), true);
    given[static_cast<std::size_t>(FieldId::cr0)] = false;
    const auto v = lma_paging_off();
    const auto partial = evaluate_partial(Context{v, zen4, profile(ProfileId::kvm), nullptr, nullptr}, given);
    EXPECT_EQ(warning(partial, "efer.lma_without_lme_pg"), nullptr);
}

TEST(UncheckedWarning, AConsequenceIsCarriedOnlyWhereItCanBeRead) {
    std::size_t warning_checks = 0;
    for (const auto& c : catalogue()) {
        if (c.outcome == Outcome::warning) {
            ++warning_checks;
            EXPECT_FALSE(c.when_unchecked.empty()) << c.id << ": a warning check must say what happens";
            // evaluate() warns for it under every profile, whatever applies() says.
            EXPECT_EQ(c.profiles, kAllProfiles) << c.id << ": a warning check applies under every profile";
            continue;
        }
        if (c.when_unchecked.empty()) continue;
        const bool someone_skips = std::any_of(all_profiles().begin(), all_profiles().end(),
                                               [&](const Profile& p) { return !c.applies(p); });
        EXPECT_TRUE(someone_skips) << c.id << ": no built-in profile skips it; its consequence text is never read";
    }
    EXPECT_GE(warning_checks, 1U);
    EXPECT_EQ(find_check("efer.lma_without_lme_pg")->outcome, Outcome::warning);
}
