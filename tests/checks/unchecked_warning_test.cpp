// A check some profiles do not apply can say what happens when they meet a
// VMCB that violates it (the entry's when_unchecked): a warning with the
// check's id instead of a failure (issue 11, item 6: EFER.LMA without LME and
// PG, which KVM's nested code says SVM does not check, and on which Xen hit
// BUG()).
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

TEST(UncheckedWarning, ProfilesThatDoNotCheckLmaWarnWithTheConsequence) {
    for (auto p : {ProfileId::kvm, ProfileId::qemu, ProfileId::bochs, ProfileId::xen}) {
        const auto r = run(lma_paging_off(), p);
        EXPECT_EQ(r.verdict, Verdict::valid) << profile(p).name;
        const auto* w = warning(r, "efer.lma_without_lme_pg");
        ASSERT_NE(w, nullptr) << profile(p).name;
        EXPECT_NE(w->message.find("does not check it"), std::string::npos) << w->message;
        EXPECT_NE(w->message.find("BUG()"), std::string::npos) << w->message;
        EXPECT_NE(w->message.find(std::string("profile ") + std::string(profile(p).name)), std::string::npos)
            << w->message;
        EXPECT_EQ(w->fields, (std::vector<std::string>{"save.efer", "save.cr0"}));
    }
}

TEST(UncheckedWarning, NoWarningWhereTheCheckAppliesOrHolds) {
    // apm applies the check: a failure, not a warning.
    const auto apm = run(lma_paging_off(), ProfileId::apm);
    EXPECT_EQ(apm.verdict, Verdict::vmexit_invalid);
    EXPECT_EQ(warning(apm, "efer.lma_without_lme_pg"), nullptr);
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

TEST(UncheckedWarning, OnlyChecksSomeProfileSkipsCarryAConsequence) {
    for (const auto& c : catalogue()) {
        if (c.when_unchecked.empty()) continue;
        const bool someone_skips = std::any_of(all_profiles().begin(), all_profiles().end(),
                                               [&](const Profile& p) { return !c.applies(p); });
        EXPECT_TRUE(someone_skips) << c.id << ": no built-in profile skips it; its consequence text is never read";
    }
    EXPECT_FALSE(find_check("efer.lma_without_lme_pg")->when_unchecked.empty());
}
