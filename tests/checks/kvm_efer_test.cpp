// The kvm profile treats the EFER bits KVM never lets a guest set as
// reserved, whatever the CPU (issue 11, item 6): KVM enables EFER bits per
// host feature (kvm_enable_efer_bits) and refuses the rest (kvm_valid_efer);
// the hardware (apm) accepts every bit whose feature the CPU has.
#include <gtest/gtest.h>

#include <algorithm>

#include "fixtures.hpp"
#include "nsvm/checks/catalogue.hpp"
#include "nsvm/checks/profile.hpp"

using namespace nsvm;
using namespace nsvm::checks;
using namespace nsvm::checks::test;

namespace {

const Failure* failure(const Report& r, std::string_view id) {
    const auto it = std::find_if(r.failures.begin(), r.failures.end(), [&](const Failure& f) { return f.check->id == id; });
    return it == r.failures.end() ? nullptr : &*it;
}

Report run(std::uint64_t efer_bits, ProfileId p, std::string_view features) {
    auto v = valid_vmcb64();
    v.set(FieldId::efer, v.get(FieldId::efer) | efer_bits);
    const CpuModel cpu = model("zen4", features);
    return evaluate(Context{v, cpu, profile(p), nullptr, nullptr});
}

}  // namespace

TEST(KvmEfer, BitsKvmNeverEnablesAreReservedEvenWithTheFeature) {
    for (const auto& [bit, feature] : {std::pair{arch::efer::MCOMMIT, "+mcommit"}, std::pair{arch::efer::UAIE, "+uai"}}) {
        const auto hw = run(bit, ProfileId::apm, feature);
        EXPECT_EQ(failure(hw, "efer.mbz"), nullptr) << feature;  // the CPU has it: the hardware runs it
        EXPECT_EQ(hw.verdict, Verdict::valid) << feature;
        const auto kvm = run(bit, ProfileId::kvm, feature);
        const auto* f = failure(kvm, "efer.mbz");
        ASSERT_NE(f, nullptr) << feature;
        EXPECT_EQ(kvm.verdict, Verdict::vmexit_invalid);
        EXPECT_NE(f->detail.find(bit == arch::efer::MCOMMIT ? "MCOMMIT" : "UAIE"), std::string::npos) << f->detail;
        // Without the feature both reject it.
        const auto none = std::string("-") + (feature + 1);
        EXPECT_NE(failure(run(bit, ProfileId::apm, none), "efer.mbz"), nullptr) << none;
        EXPECT_NE(failure(run(bit, ProfileId::kvm, none), "efer.mbz"), nullptr) << none;
    }
}

TEST(KvmEfer, BitsKvmEnablesPerFeatureFollowTheCpu) {
    // FFXSR and TCE: KVM lets a guest set them when the host has the feature.
    for (const auto& [bit, feature] : {std::pair{arch::efer::FFXSR, "fxsr_opt"}, std::pair{arch::efer::TCE, "tce"}}) {
        EXPECT_EQ(failure(run(bit, ProfileId::kvm, std::string("+") + feature), "efer.mbz"), nullptr) << feature;
        EXPECT_NE(failure(run(bit, ProfileId::kvm, std::string("-") + feature), "efer.mbz"), nullptr) << feature;
    }
    EXPECT_EQ(profile(ProfileId::apm).efer_always_reserved, 0U);
    EXPECT_EQ(profile(ProfileId::kvm).efer_always_reserved, arch::efer::MCOMMIT | arch::efer::UAIE);
}
