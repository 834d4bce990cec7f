// Boundary tests: every check at its last passing and first failing value,
// one violation at a time from a known-valid VMCB, under every profile
// (expected outcomes written from APM 15.5.1, 15.20 and the other sections
// each check cites, from QEMU 7.2's helper_vmrun and Bochs 2.7's svm.cc, and
// from KVM's nested_vmcb_check_save / nested_vmcb_check_controls).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "nsvm/arch/exit_codes.hpp"

#include "fixtures.hpp"

namespace nsvm::checks::test {
namespace {

using P = ProfileId;

class PerProfile : public ::testing::TestWithParam<ProfileId> {
protected:
    [[nodiscard]] Scenario scn(const arch::Vmcb& v = valid_vmcb64(), CpuModel cpu = default_model()) const {
        Scenario s;
        s.vmcb = v;
        s.cpu = std::move(cpu);
        s.profile = GetParam();
        return s;
    }
    /// The hyperv profile is the hardware's (apm) but for its CR3 rule, so a
    /// list that names apm names hyperv too; `exactly` does not.
    [[nodiscard]] bool is(std::initializer_list<P> ps) const {
        const P me = GetParam() == P::hyperv ? P::apm : GetParam();
        for (auto p : ps)
            if (p == me || p == GetParam()) return true;
        return false;
    }
    [[nodiscard]] bool is_exactly(std::initializer_list<P> ps) const {
        for (auto p : ps)
            if (p == GetParam()) return true;
        return false;
    }
    /// `id` when this profile applies the rule, else "" (expected valid).
    [[nodiscard]] std::string_view when(std::initializer_list<P> ps, std::string_view id) const {
        return is(ps) ? id : std::string_view{};
    }
    [[nodiscard]] std::string_view exactly(std::initializer_list<P> ps, std::string_view id) const {
        return is_exactly(ps) ? id : std::string_view{};
    }
};

INSTANTIATE_TEST_SUITE_P(Profiles, PerProfile, ::testing::ValuesIn(kAllProfileIds), profile_param_name);

arch::Vmcb with(const arch::Vmcb& base, FieldId f, std::uint64_t value) {
    arch::Vmcb v = base;  // by reference: a 64-byte aligned VMCB by value changes ABI (g++ notes it)
    v.set(f, value);
    return v;
}

TEST_P(PerProfile, ValidGuestsPassOnEveryBuiltinModel) {
    for (const auto& m : builtin_models()) {
        EXPECT_TRUE(fails_only(scn(valid_vmcb64(), m), "")) << m.name;
        EXPECT_TRUE(fails_only(scn(valid_vmcb_pae32(), m), "")) << m.name;
        EXPECT_TRUE(fails_only(scn(valid_vmcb_legacy32(), m), "")) << m.name;
    }
}

// C1
TEST_P(PerProfile, EferSvme) {
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::efer, 0x1D00)), ""));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::efer, 0x0D00)), "efer.svme"));
}

// C2
TEST_P(PerProfile, Cr0CdNw) {
    const auto base = 0x80050033ULL;
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::cr0, base | arch::cr0::CD | arch::cr0::NW)), ""));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::cr0, base | arch::cr0::CD)), ""));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::cr0, base | arch::cr0::NW)), "cr0.cd_nw"));
}

// C3
TEST_P(PerProfile, Cr0Upper) {
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::cr0, 0x80050033ULL)), ""));  // bit 31 = PG is legal
    for (unsigned b : {32U, 47U, 63U})
        EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::cr0, 0x80050033ULL | bit(b))), "cr0.upper")) << b;
}

// C4: long mode, MAXPHYADDR 52 (zen4)
TEST_P(PerProfile, Cr3LongModeMaxphyaddr) {
    const std::uint64_t top = bit(52) - 0x1000;
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::cr3, top)), ""));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::cr3, bit(52))), when({P::apm, P::kvm, P::qemu, P::xen}, "cr3.mbz")));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::cr3, bit(63))), when({P::apm, P::kvm, P::qemu, P::xen}, "cr3.mbz")));
    // A smaller MAXPHYADDR moves the boundary.
    auto m = model("zen4");
    m.maxphyaddr = 40;
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::cr3, bit(40) - 0x1000), m), ""));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::cr3, bit(40)), m), when({P::apm, P::kvm, P::qemu, P::xen}, "cr3.mbz")));
}

TEST_P(PerProfile, Cr3LongModeLowBits) {
    // PWT|PCD (bits 4:3) are legal; 2:0 and 11:5 are reserved, not MBZ: the
    // hardware runs them (kvm-unit-tests test_cr3), Xen and Hyper-V refuse them.
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::cr3, 0x1018)), ""));
    for (std::uint64_t low : {0x1ULL, 0x4ULL, 0x20ULL, 0x800ULL})
        EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::cr3, 0x1000 | low)), exactly({P::xen, P::hyperv}, "cr3.mbz")))
            << low;
    // With CR4.PCIDE, bits 11:0 are the PCID: legal for apm; Xen still tests cr3 & 7 and 0xfe0.
    auto v = with(valid_vmcb64(), FieldId::cr4, 0x6F8 | arch::cr4::PCIDE);
    EXPECT_TRUE(fails_only(scn(with(v, FieldId::cr3, 0x1000)), ""));
    EXPECT_TRUE(fails_only(scn(with(v, FieldId::cr3, 0x1FFF)), when({P::xen}, "cr3.mbz")));
}

TEST_P(PerProfile, Cr3Pae32) {
    const auto pae = valid_vmcb_pae32();
    // bits 31:5 are the PDPT base, 4:3 PWT/PCD.
    EXPECT_TRUE(fails_only(scn(with(pae, FieldId::cr3, 0xFFFFFFF8)), ""));
    // AMD hardware ignores bits 4:0 with PAE (kvm-unit-tests 2026, 32-bit PAE
    // guest); Xen and Hyper-V's format check reject 2:0.
    EXPECT_TRUE(fails_only(scn(with(pae, FieldId::cr3, 0xFFFFFFE1)), exactly({P::xen, P::hyperv}, "cr3.mbz")));
    // Bits below MAXPHYADDR above 31: hardware and KVM run them; Hyper-V's
    // format check makes 63:32 must-be-zero outside long mode.
    EXPECT_TRUE(fails_only(scn(with(pae, FieldId::cr3, bit(32))), exactly({P::hyperv}, "cr3.mbz")));
    EXPECT_TRUE(fails_only(scn(with(pae, FieldId::cr3, bit(51))), exactly({P::hyperv}, "cr3.mbz")));
    EXPECT_TRUE(fails_only(scn(with(pae, FieldId::cr3, bit(52))), when({P::apm, P::kvm, P::qemu}, "cr3.mbz")));
}

TEST_P(PerProfile, Cr3Legacy32) {
    const auto leg = valid_vmcb_legacy32();
    EXPECT_TRUE(fails_only(scn(with(leg, FieldId::cr3, 0xFFFFF018)), ""));
    // 2-level paging: AMD hardware ignores bits 2:0 and 11:5 (kvm-unit-tests
    // 2026, non-PAE guest); Xen and Hyper-V reject them.
    EXPECT_TRUE(fails_only(scn(with(leg, FieldId::cr3, 0xFFFFF020)), exactly({P::xen, P::hyperv}, "cr3.mbz")));
    EXPECT_TRUE(fails_only(scn(with(leg, FieldId::cr3, 0xFFFFF001)), exactly({P::xen, P::hyperv}, "cr3.mbz")));
    EXPECT_TRUE(fails_only(scn(with(leg, FieldId::cr3, bit(32) | 0x1000)), exactly({P::hyperv}, "cr3.mbz")));
    EXPECT_TRUE(fails_only(scn(with(leg, FieldId::cr3, bit(52) | 0x1000)), when({P::apm, P::kvm, P::qemu}, "cr3.mbz")));
}

// Paging off, as KVM's SMM entry from a long-mode guest with PCID leaves it
// (CR0.PG = PE = 0, CR3 with PCID bits and bits above 31): AMD hardware runs
// it, Hyper-V rejects it (kvm 2024, "Workaround overly strict CR3 check by
// Hyper-V"), Xen looks at CR3 only with paging on.
TEST_P(PerProfile, Cr3PagingOff) {
    auto off = valid_vmcb_legacy32();
    off.set(FieldId::cr0, off.get(FieldId::cr0) & ~arch::cr0::PG);
    EXPECT_TRUE(fails_only(scn(with(off, FieldId::cr3, 0x11a2c4805)), exactly({P::hyperv}, "cr3.mbz")));
    EXPECT_TRUE(fails_only(scn(with(off, FieldId::cr3, 0x1000)), ""));
}

TEST(Cr3Qemu, KeyedOnTheHostLma) {
    Scenario s;
    s.profile = P::qemu;
    s.vmcb = with(valid_vmcb_legacy32(), FieldId::cr3, bit(52));
    s.host = valid_host();
    EXPECT_TRUE(fails_only(s, "cr3.mbz"));  // host in long mode: guest CR3 bits >= PA width fail
    s.host->efer &= ~(arch::efer::LMA | arch::efer::LME);
    EXPECT_TRUE(fails_only(s, ""));  // 32-bit host: QEMU does not test CR3
    s.vmcb = with(valid_vmcb64(), FieldId::cr3, bit(52));
    EXPECT_TRUE(fails_only(s, ""));  // even for a 64-bit guest
}

TEST(Cr3Kvm, LamBitsAreIgnoredWithLam) {
    Scenario s;
    s.profile = P::kvm;
    s.vmcb = with(valid_vmcb64(), FieldId::cr3, 0x1000 | bit(61));
    EXPECT_TRUE(fails_only(s, "cr3.mbz"));
    s.cpu = model("zen4", "+lam");
    EXPECT_TRUE(fails_only(s, ""));
}

// C5: each feature-gated CR4 bit, with the feature and without.
struct Cr4Gate {
    std::uint64_t bit;
    std::string_view feature;
};
constexpr Cr4Gate kCr4Gates[] = {
    {arch::cr4::PSE, "pse"},       {arch::cr4::PGE, "pge"},     {arch::cr4::UMIP, "umip"},
    {arch::cr4::LA57, "la57"},     {arch::cr4::FSGSBASE, "fsgsbase"}, {arch::cr4::PCIDE, "pcid"},
    {arch::cr4::OSXSAVE, "xsave"}, {arch::cr4::SMEP, "smep"},   {arch::cr4::SMAP, "smap"},
    {arch::cr4::PKE, "pku"},       {arch::cr4::CET, "shstk"},   {arch::cr4::PKS, "pks"},
    {arch::cr4::LAM_SUP, "lam"},   {arch::cr4::FRED, "fred"},
};

TEST_P(PerProfile, Cr4FeatureBits) {
    for (const auto& g : kCr4Gates) {
        const auto v = with(valid_vmcb64(), FieldId::cr4, 0x6F8 | g.bit);
        auto with_f = model("zen4", fmt::format("+{}", g.feature));
        auto without = model("zen4", fmt::format("-{},-ibt", g.feature));
        // QEMU's TCG treats CET and bits 63:32 as reserved whatever CPUID says,
        // and does not gate PSE, PGE and PCIDE on CPUID at all.
        const bool qemu_always = is({P::qemu}) && (g.bit & (arch::cr4::CET | arch::bits(63, 32))) != 0;
        const bool qemu_ungated =
            is({P::qemu}) && (g.bit & (arch::cr4::PSE | arch::cr4::PGE | arch::cr4::PCIDE)) != 0;
        EXPECT_TRUE(fails_only(scn(v, with_f), qemu_always ? "cr4.mbz" : "")) << g.feature;
        EXPECT_TRUE(fails_only(scn(v, without), qemu_ungated ? "" : "cr4.mbz")) << g.feature;
    }
}

TEST_P(PerProfile, Cr4AlwaysReservedBits) {
    // VMXE, SMXE (Intel), bit 15, KL, UINTR and undefined bits, on every model.
    for (unsigned b : {13U, 14U, 15U, 19U, 25U, 26U, 27U, 29U, 30U, 31U, 33U, 40U, 63U}) {
        for (const auto& m : builtin_models()) {
            EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::cr4, 0x6F8 | bit(b)), m), "cr4.mbz"))
                << "bit " << b << " on " << m.name;
        }
    }
    // Bits every AMD64 CPU has.
    for (unsigned b : {0U, 1U, 2U, 3U, 6U, 8U, 9U, 10U})
        EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::cr4, 0x6F8 | bit(b))), "")) << b;
}

TEST_P(PerProfile, Cr4PcideOutsideLongMode) {
    // Bochs runs its MOV-CR4 rule: PCIDE needs long mode.
    const auto v = with(valid_vmcb_pae32(), FieldId::cr4, 0x6F8 | arch::cr4::PCIDE);
    EXPECT_TRUE(fails_only(scn(v), when({P::bochs}, "cr4.pcide_without_long_mode")));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::cr4, 0x6F8 | arch::cr4::PCIDE)), ""));
}

// C6, C7
TEST_P(PerProfile, Dr6Dr7Upper) {
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::dr6, 0xFFFFFFFFULL)), ""));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::dr6, 0xFFFF0FF0ULL | bit(32))), "dr6.upper"));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::dr6, bit(63))), "dr6.upper"));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::dr7, 0xFFFFFFFFULL)), ""));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::dr7, 0x400ULL | bit(32))), "dr7.upper"));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::dr7, bit(63))), "dr7.upper"));
}

// C8: each EFER bit.
TEST_P(PerProfile, EferFeatureBits) {
    struct G {
        std::uint64_t bit;
        std::string_view feature;
    };
    const G gates[] = {{arch::efer::NXE, "nx"},          {arch::efer::FFXSR, "fxsr_opt"}, {arch::efer::TCE, "tce"},
                       {arch::efer::MCOMMIT, "mcommit"}, {arch::efer::UAIE, "uai"},      {arch::efer::AIBRSE, "autoibrs"}};
    const std::uint64_t qemu_valid = arch::efer::SCE | arch::efer::LME | arch::efer::LMA | arch::efer::NXE |
                                     arch::efer::SVME | arch::efer::FFXSR;
    // KVM never lets a guest set MCOMMIT or UAIE, whatever the CPU (kvm_valid_efer).
    const std::uint64_t kvm_never = arch::efer::MCOMMIT | arch::efer::UAIE;
    for (const auto& g : gates) {
        const auto v = with(valid_vmcb64(), FieldId::efer, 0x1D00 | g.bit);
        const bool in_qemu_list = (g.bit & qemu_valid) != 0;
        const bool refused_with_feature = (is({P::qemu}) && !in_qemu_list) || (is({P::kvm}) && (g.bit & kvm_never) != 0);
        EXPECT_TRUE(fails_only(scn(v, model("zen4", fmt::format("+{}", g.feature))),
                               refused_with_feature ? "efer.mbz" : ""))
            << g.feature;
        EXPECT_TRUE(fails_only(scn(v, model("zen4", fmt::format("-{}", g.feature))),
                               is({P::qemu}) && in_qemu_list ? "" : "efer.mbz"))
            << g.feature;
    }
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::efer, 0x1D00 | arch::efer::SCE)), ""));
    for (unsigned b : {1U, 7U, 9U, 13U, 16U, 18U, 19U, 22U, 32U, 63U})
        EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::efer, 0x1D00 | bit(b))), "efer.mbz")) << b;
}

// C9
TEST_P(PerProfile, EferLongModeWithoutLm) {
    const auto no_lm = model("zen4", "-lm");
    EXPECT_TRUE(fails_only(scn(valid_vmcb64(), no_lm), "efer.lm_unsupported"));
    EXPECT_TRUE(fails_only(scn(valid_vmcb_pae32(), no_lm), ""));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb_pae32(), FieldId::efer, arch::efer::SVME | arch::efer::LMA), no_lm),
                           "efer.lm_unsupported"));
}

// EFER.LMA against LME && PG (APM 3.1.7): a state no processor can reach,
// which VMRUN does not check (KVM's nested_vmcb_check_save): a warning under
// every profile, never a failure. Xen's own rule is narrower: svm_vmcb_isvalid
// asks hvm_efer_valid with CR0.PG unknown, so it rejects LMA without LME only,
// and the xen-devel case (a 64-bit vmcb12 with paging off) passes it.
TEST_P(PerProfile, EferLmaWithoutPaging) {
    constexpr std::string_view kWarning = "efer.lma_without_lme_pg";
    constexpr std::uint64_t kLme = arch::efer::SVME | arch::efer::LME | arch::efer::NXE;  // 0x1900
    constexpr std::uint64_t kLmeLma = kLme | arch::efer::LMA;                            // 0x1D00
    const auto paging_off = with(valid_vmcb64(), FieldId::cr0, 0x00050033);             // PE=1, PG=0
    // Last quiet: LME=1, PG=0, LMA=0 (the step of the long-mode entry
    // sequence before CR0.PG is set). First warned: the same with LMA=1.
    const auto before = scn(with(paging_off, FieldId::efer, kLme));
    EXPECT_TRUE(fails_only(before, ""));
    EXPECT_FALSE(before.warns(kWarning));
    const auto stale = scn(with(paging_off, FieldId::efer, kLmeLma));
    EXPECT_TRUE(fails_only(stale, ""));
    EXPECT_TRUE(stale.warns(kWarning));
    // The xen-devel case: a 64-bit vmcb12 with CR0.PG (and PE) cleared. Xen's
    // check lets it through too.
    const auto xen_case = with(valid_vmcb64(), FieldId::cr0, 0x00050032);
    EXPECT_TRUE(fails_only(scn(xen_case), ""));
    EXPECT_TRUE(scn(xen_case).warns(kWarning));
    EXPECT_FALSE(scn(with(xen_case, FieldId::efer, kLme)).warns(kWarning));
    // LMA without LME (PG=1): the same impossible state, and Xen's rule.
    const auto no_lme = scn(with(valid_vmcb64(), FieldId::efer, arch::efer::SVME | arch::efer::LMA | arch::efer::NXE));
    EXPECT_TRUE(fails_only(no_lme, when({P::xen}, "efer.lma_without_lme")));
    EXPECT_TRUE(no_lme.warns(kWarning));
    // LMA = 0 while LME && PG: long mode is derived from LME && PG; not flagged.
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::efer, kLme)), ""));
    EXPECT_FALSE(scn(with(valid_vmcb64(), FieldId::efer, kLme)).warns(kWarning));
    // PG=0 and LME=0 with a stale LMA (a 32-bit guest built from a 64-bit host's EFER).
    const auto legacy = scn(with(with(valid_vmcb_legacy32(), FieldId::cr0, 0x00050033), FieldId::efer,
                                 arch::efer::SVME | arch::efer::LMA));
    EXPECT_TRUE(fails_only(legacy, when({P::xen}, "efer.lma_without_lme")));
    EXPECT_TRUE(legacy.warns(kWarning));
    // Without long mode, only efer.lm_unsupported (C9) reports LMA.
    const auto no_lm =
        scn(with(paging_off, FieldId::efer, arch::efer::SVME | arch::efer::LMA), model("zen4", "-lm"));
    EXPECT_TRUE(fails_only(no_lm, "efer.lm_unsupported"));
    EXPECT_FALSE(no_lm.warns(kWarning));
}

// EFER.LME=1, CR0.PG=0, CS.L=1: long mode is enabled but not active, and
// CS.L selects 64-bit mode only while long mode is active (APM 4.8.1), so
// the APM's C12 rule (LME, PG, PAE, L, D all set) does not apply: legal
// everywhere. With CS.D too, only Bochs' any-mode CS.L&&CS.D rule fires.
TEST_P(PerProfile, CsLWithLmeButPagingOff) {
    auto v = with(with(valid_vmcb64(), FieldId::cr0, 0x00050033), FieldId::efer,
                  arch::efer::SVME | arch::efer::LME | arch::efer::NXE);
    v.set_segment(arch::Seg::cs, {0x8, 0xA9B, 0xFFFFFFFF, 0});  // L=1, D=0
    EXPECT_TRUE(fails_only(scn(v), ""));
    v.set_segment(arch::Seg::cs, {0x8, 0xE9B, 0xFFFFFFFF, 0});  // L=1, D=1
    EXPECT_TRUE(fails_only(scn(v), when({P::bochs}, "long_mode.cs_l_d")));
    // The same with the stale LMA: a warning everywhere, and Bochs' CS rule.
    v.set(FieldId::efer, arch::efer::SVME | arch::efer::LME | arch::efer::LMA | arch::efer::NXE);
    EXPECT_TRUE(fails_only(scn(v), when({P::bochs}, "long_mode.cs_l_d")));
    EXPECT_TRUE(scn(v).warns("efer.lma_without_lme_pg"));
}

// C10, C11
TEST_P(PerProfile, LongModeNeedsPaeAndPe) {
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::cr4, 0x6F8 & ~arch::cr4::PAE)), "long_mode.pae"));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::cr0, 0x80050032)),
                           when({P::apm, P::kvm, P::qemu, P::xen}, "long_mode.pe")));
    // LME without PG is not long mode yet: legal.
    auto v = with(valid_vmcb64(), FieldId::cr0, 0x00050033);
    v.set(FieldId::efer, arch::efer::SVME | arch::efer::LME);
    EXPECT_TRUE(fails_only(scn(with(v, FieldId::cr4, 0)), ""));
    // Paged real mode (PE=0, PG=1) with LME=0 is legal (APM 15.19).
    auto prm = with(valid_vmcb_legacy32(), FieldId::cr0, 0x80000010);
    EXPECT_TRUE(fails_only(scn(prm), ""));
}

// C12
TEST_P(PerProfile, CsLAndD) {
    auto v = valid_vmcb64();
    v.set_segment(arch::Seg::cs, {0x8, 0xA9B, 0xFFFFFFFF, 0});  // L only
    EXPECT_TRUE(fails_only(scn(v), ""));
    v.set_segment(arch::Seg::cs, {0x8, 0xE9B, 0xFFFFFFFF, 0});  // L and D
    EXPECT_TRUE(fails_only(scn(v), "long_mode.cs_l_d"));
    auto w = valid_vmcb_pae32();
    w.set_segment(arch::Seg::cs, {0x8, 0xE9B, 0xFFFFFFFF, 0});
    EXPECT_TRUE(fails_only(scn(w), when({P::bochs}, "long_mode.cs_l_d")));
    // LME and PG without PAE: long_mode.pae fails everywhere; KVM (and Bochs,
    // in any mode) also reject CS.L && CS.D, which KVM tests without PAE.
    auto x = with(valid_vmcb64(), FieldId::cr4, 0x6F8 & ~arch::cr4::PAE);
    x.set_segment(arch::Seg::cs, {0x8, 0xE9B, 0xFFFFFFFF, 0});
    std::vector<std::string> expect = {"long_mode.pae"};
    if (is({P::kvm, P::bochs})) expect.push_back("long_mode.cs_l_d");
    EXPECT_EQ(scn(x).failing(), expect);
}

// C13
TEST_P(PerProfile, VmrunIntercept) {
    auto v = valid_vmcb64();
    v.set_intercept(arch::intercept::VMRUN, false);
    EXPECT_TRUE(fails_only(scn(v), "intercept.vmrun"));
    v.set_intercept_word(4, 0xFFFFFFFF);
    EXPECT_TRUE(fails_only(scn(v), ""));
}

// C14
TEST_P(PerProfile, MsrpmBoundary) {
    const std::uint64_t L52 = bit(52), L40 = bit(40);
    auto at = [](std::uint64_t base) { return with(valid_vmcb64(), FieldId::msrpm_base_pa, base); };
    if (is({P::apm, P::kvm})) {  // last byte of the 8 KiB map below 2^52
        EXPECT_TRUE(fails_only(scn(at(L52 - 0x2000)), ""));
        EXPECT_TRUE(fails_only(scn(at(L52 - 0x2000 + 0xFFF)), ""));  // bits 11:0 ignored
        EXPECT_TRUE(fails_only(scn(at(L52 - 0x1000)), "msrpm.limit"));
        EXPECT_TRUE(fails_only(scn(at(~0ULL)), "msrpm.limit"));
    } else if (is({P::qemu})) {  // page base >= 2^52 - 8K fails
        EXPECT_TRUE(fails_only(scn(at(L52 - 0x3000)), ""));
        EXPECT_TRUE(fails_only(scn(at(L52 - 0x2000)), "msrpm.limit"));
    } else if (is({P::bochs})) {  // page base against 40 bits only
        EXPECT_TRUE(fails_only(scn(at(L40 - 0x1000)), ""));
        EXPECT_TRUE(fails_only(scn(at(L40 - 0x1000 + 0xFFF)), ""));
        EXPECT_TRUE(fails_only(scn(at(L40)), "msrpm.limit"));
    } else {  // xen: not checked
        EXPECT_TRUE(fails_only(scn(at(~0ULL)), ""));
    }
}

TEST_P(PerProfile, IopmBoundary) {
    const std::uint64_t L52 = bit(52), L40 = bit(40);
    auto at = [](std::uint64_t base) { return with(valid_vmcb64(), FieldId::iopm_base_pa, base); };
    if (is({P::apm, P::kvm})) {  // 12 KiB map; kvm-unit-tests: L-12K OK, L-8K ERR
        EXPECT_TRUE(fails_only(scn(at(L52 - 0x3000)), ""));
        EXPECT_TRUE(fails_only(scn(at(L52 - 0x2000 - 2)), ""));
        EXPECT_TRUE(fails_only(scn(at(L52 - 0x2000)), "iopm.limit"));
        EXPECT_TRUE(fails_only(scn(at(L52 - 0x1000)), "iopm.limit"));
    } else if (is({P::qemu})) {  // page base >= 2^52 - (8K + 1) fails
        EXPECT_TRUE(fails_only(scn(at(L52 - 0x3000)), ""));
        EXPECT_TRUE(fails_only(scn(at(L52 - 0x2000)), "iopm.limit"));
    } else if (is({P::bochs})) {
        EXPECT_TRUE(fails_only(scn(at(L40 - 0x1000)), ""));
        EXPECT_TRUE(fails_only(scn(at(L40)), "iopm.limit"));
    } else {
        EXPECT_TRUE(fails_only(scn(at(~0ULL)), ""));
    }
}

TEST(Msrpm, CheckedSizeIsAProfileParameter) {
    // kvm-unit-tests' test_msrpm_iopm_bitmap_addrs expects MSRPM base L-8K to
    // fail, which fits a 12 KiB rule rather than APM 15.11's 8 KiB map.
    Profile p = profile(P::apm);
    p.msrpm_checked_size = 0x3000;
    const auto v = with(valid_vmcb64(), FieldId::msrpm_base_pa, bit(52) - 0x2000);
    const Context c{v, default_model(), p};
    EXPECT_FALSE(vmrun_would_succeed(c));
    ASSERT_EQ(evaluate(c).failures.size(), 1U);
    EXPECT_EQ(evaluate(c).failures[0].check->id, "msrpm.limit");
}

// C16
TEST_P(PerProfile, AsidZero) {
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::asid, 1)), ""));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::asid, 0xFFFFFFFF)), ""));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::asid, 0)), when({P::apm, P::kvm, P::qemu, P::bochs}, "asid.zero")));
}

// N1-N3
arch::Vmcb np_on(const arch::Vmcb& base = valid_vmcb64()) {
    arch::Vmcb v = base;
    v.set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE);
    v.set(FieldId::nested_cr3, 0x5000);
    return v;
}

TEST_P(PerProfile, NestedPagingHostPaging) {
    auto s = scn(np_on());
    s.host = valid_host();
    EXPECT_TRUE(fails_only(s, ""));
    s.host->cr0 &= ~arch::cr0::PG;
    s.host->efer &= ~(arch::efer::LMA | arch::efer::LME);
    // kvm: L1 without paging gets #UD before anything else.
    EXPECT_TRUE(fails_only(s, is({P::kvm}) ? "gate.paging" : when({P::apm, P::bochs}, "np.host_paging")));
}

TEST_P(PerProfile, NestedCr3) {
    EXPECT_TRUE(fails_only(scn(with(np_on(), FieldId::nested_cr3, bit(52) - 0x1000)), when({P::bochs}, "np.ncr3")));
    EXPECT_TRUE(fails_only(scn(with(np_on(), FieldId::nested_cr3, bit(40) - 0x1000)), ""));
    EXPECT_TRUE(fails_only(scn(with(np_on(), FieldId::nested_cr3, bit(52))), when({P::apm, P::kvm, P::bochs}, "np.ncr3")));
    // Without NP_ENABLE, nCR3 is not looked at.
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::nested_cr3, ~0ULL)), ""));
    // Bochs checks nCR3 only while the host is in long mode.
    auto s = scn(with(np_on(), FieldId::nested_cr3, bit(40)));
    s.host = valid_host();
    s.host->efer &= ~(arch::efer::LMA | arch::efer::LME);
    EXPECT_TRUE(fails_only(s, ""));
    s.host = valid_host();
    EXPECT_TRUE(fails_only(s, when({P::bochs}, "np.ncr3")));
}

TEST_P(PerProfile, NpEnableWithoutTheFeature) {
    // apm/bochs ignore NP_ENABLE without npt, kvm sanitizes it, qemu/xen honour it.
    const auto m = model("zen4", "-npt");
    EXPECT_TRUE(fails_only(scn(with(np_on(), FieldId::nested_cr3, bit(52)), m), ""));
    EXPECT_TRUE(fails_only(scn(with(np_on(), FieldId::g_pat, 0x02), m), ""));
}

TEST_P(PerProfile, GPat) {
    const auto v = np_on();
    for (std::uint64_t t : {0ULL, 1ULL, 4ULL, 5ULL, 6ULL, 7ULL})
        EXPECT_TRUE(fails_only(scn(with(v, FieldId::g_pat, (0x0007040600070406ULL & ~0xFFULL) | t)), "")) << t;
    for (std::uint64_t t : {2ULL, 3ULL, 8ULL, 0xFFULL})
        EXPECT_TRUE(fails_only(scn(with(v, FieldId::g_pat, t << 56)), when({P::apm, P::bochs}, "np.g_pat"))) << t;
    // Without nested paging G_PAT is unused.
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::g_pat, 0x02)), ""));
}

// N4
TEST_P(PerProfile, SupervisorShadowStackCheckNeedsNp) {
    const auto m = model("zen4", "+sss_check");
    const auto v = with(valid_vmcb64(), FieldId::misc_ctl, arch::misc_ctl::SSS_CHECK);
    EXPECT_TRUE(fails_only(scn(v, m), when({P::apm}, "np.sss_without_np")));
    EXPECT_TRUE(fails_only(scn(with(np_on(), FieldId::misc_ctl, arch::misc_ctl::SSS_CHECK | arch::misc_ctl::NP_ENABLE), m), ""));
    EXPECT_TRUE(fails_only(scn(v, default_model()), ""));  // no such feature: bit ignored
    auto s = scn(v, m);
    s.host = valid_host();
    s.host->efer &= ~arch::efer::NXE;  // ignored silently with host NXE = 0
    EXPECT_TRUE(fails_only(s, ""));
}

// V1
TEST_P(PerProfile, VirtualNmiNeedsTheNmiIntercept) {
    auto v = with(valid_vmcb64(), FieldId::int_ctl, arch::int_ctl::V_NMI_ENABLE);
    EXPECT_TRUE(fails_only(scn(v), when({P::apm, P::kvm}, "vnmi.nmi_intercept")));
    EXPECT_TRUE(fails_only(scn(v, model("zen4", "-vnmi")), when({P::kvm}, "vnmi.nmi_intercept")));
    v.set_intercept(arch::intercept::NMI);
    EXPECT_TRUE(fails_only(scn(v), ""));
}

// A1-A4
TEST_P(PerProfile, Avic) {
    auto on = with(np_on(), FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE);
    EXPECT_TRUE(fails_only(scn(on), ""));
    EXPECT_TRUE(fails_only(scn(with(np_on(), FieldId::int_ctl, arch::int_ctl::X2AVIC_ENABLE)),
                           when({P::apm}, "avic.x2avic_without_avic")));
    EXPECT_TRUE(fails_only(scn(with(on, FieldId::avic_physical_id, 0x1000 | 255)), ""));
    EXPECT_TRUE(fails_only(scn(with(on, FieldId::avic_physical_id, 0x1000 | 256)), when({P::apm}, "avic.physical_max_index")));
    auto x2 = with(np_on(), FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE | arch::int_ctl::X2AVIC_ENABLE);
    EXPECT_TRUE(fails_only(scn(with(x2, FieldId::avic_physical_id, 0x1000 | 511)), ""));
    EXPECT_TRUE(fails_only(scn(with(x2, FieldId::avic_physical_id, 0x1000 | 512)), when({P::apm}, "avic.physical_max_index")));
    auto m48 = default_model();
    m48.maxphyaddr = 48;
    EXPECT_TRUE(fails_only(scn(with(on, FieldId::avic_backing_page, bit(48) - 0x1000), m48), ""));
    EXPECT_TRUE(fails_only(scn(with(on, FieldId::avic_backing_page, bit(48)), m48), when({P::apm}, "avic.table_address")));
    EXPECT_TRUE(fails_only(scn(with(on, FieldId::avic_logical_id, bit(49)), m48), when({P::apm}, "avic.table_address")));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE)),
                           when({P::apm}, "avic.requires_np")));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE), model("zen4", "-avic")), ""));
}

// S1-S5, P4-P10
arch::Vmcb sev(const arch::Vmcb& base = valid_vmcb64()) {
    arch::Vmcb v = np_on(base);
    v.set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE | arch::misc_ctl::SEV_ENABLE);
    return v;
}
arch::Vmcb sev_es() {
    auto v = sev();
    v.set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE | arch::misc_ctl::SEV_ENABLE | arch::misc_ctl::SEV_ES_ENABLE);
    v.set(FieldId::misc_ctl2, arch::misc_ctl2::LBR_VIRT);
    return v;
}

// SEV_FEATURES bits (APM 15.35, Table 15-36; VMSA 3B0h).
namespace sevf_test {
constexpr std::uint64_t kSnp = bit(0), kRestricted = bit(3), kAlternate = bit(4), kVmplSss = bit(8),
                        kSecureAvic = bit(16);
}  // namespace sevf_test

TEST_P(PerProfile, Sev) {
    EXPECT_TRUE(fails_only(scn(sev()), ""));
    EXPECT_TRUE(fails_only(scn(with(sev(), FieldId::misc_ctl, arch::misc_ctl::SEV_ENABLE)), when({P::apm}, "sev.requires_np")));
    EXPECT_TRUE(fails_only(scn(with(sev(), FieldId::asid, 1006)), ""));  // Genoa: 1006 encrypted guests
    EXPECT_TRUE(fails_only(scn(with(sev(), FieldId::asid, 1007)), when({P::apm}, "sev.asid_range")));
    auto s = scn(sev());
    s.host = valid_host();
    EXPECT_TRUE(fails_only(s, ""));
    s.host->hwcr = 0;
    EXPECT_TRUE(fails_only(s, when({P::apm}, "sev.smm_lock")));
    s.host = valid_host();
    s.host->efer &= ~(arch::efer::LMA | arch::efer::LME);
    EXPECT_TRUE(fails_only(s, when({P::apm}, "sev.host_64bit")));
    // A CPU without SEV ignores the bit.
    EXPECT_TRUE(fails_only(scn(with(sev(), FieldId::misc_ctl, arch::misc_ctl::SEV_ENABLE), model("zen4", "-sev")), ""));
}

TEST_P(PerProfile, SevEs) {
    EXPECT_TRUE(fails_only(scn(sev_es()), ""));
    EXPECT_TRUE(fails_only(scn(with(sev_es(), FieldId::misc_ctl2, 0)), when({P::apm}, "sev_es.requires_lbrv")));
    EXPECT_TRUE(fails_only(scn(with(sev_es(), FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE | arch::misc_ctl::SEV_ES_ENABLE)),
                           when({P::apm}, "sev_es.requires_sev")));
}

// P4-P7, P10 and P6's event half read SEV_FEATURES where VMRUN reads it: the
// VMSA (offset 3B0h, APM Appendix B Table B-4), here as a KVM dump's
// decrypted VMSA gives it. Each check at its boundary: the last passing and
// the first failing SEV_FEATURES.
Scenario snp_scn(const PerProfile& t, const arch::Vmcb& v, std::optional<std::uint64_t> sev_features) {
    Scenario s;
    s.vmcb = v;
    s.profile = t.GetParam();
    if (sev_features) s.vmsa = vmsa_with(*sev_features);
    return s;
}

/// The ids of the "not decided" warnings of a report.
std::vector<std::string> needs_warnings(const Report& r) {
    std::vector<std::string> out;
    for (const auto& w : r.warnings)
        if (w.message.find("needs the VMSA's SEV_FEATURES") != std::string::npos &&
            w.message.find("not decided") != std::string::npos)
            out.push_back(w.id);
    std::sort(out.begin(), out.end());
    return out;
}

TEST_P(PerProfile, SnpFeatureCombinations) {
    using namespace arch;
    using namespace sevf_test;
    const auto es = sev_es();
    const auto avic = with(es, FieldId::int_ctl, int_ctl::AVIC_ENABLE);
    const auto sss = with(es, FieldId::misc_ctl, es.get(FieldId::misc_ctl) | misc_ctl::SSS_CHECK);
    const auto at = [&](const arch::Vmcb& v, std::uint64_t f) { return snp_scn(*this, v, f); };
    // P5: one injection mode passes, both fail.
    EXPECT_TRUE(fails_only(at(es, kSnp | kRestricted), ""));
    EXPECT_TRUE(fails_only(at(es, kSnp | kAlternate), ""));
    EXPECT_TRUE(fails_only(at(es, kRestricted | kAlternate), when({P::apm}, "snp.restricted_and_alternate")));
    // P6, P7: an injection mode passes without AVIC, fails with it.
    EXPECT_TRUE(fails_only(at(avic, kSnp), ""));
    EXPECT_TRUE(fails_only(at(avic, kRestricted), when({P::apm}, "snp.restricted_with_avic")));
    EXPECT_TRUE(fails_only(at(avic, kAlternate), when({P::apm}, "snp.alternate_with_avic")));
    // P10: Secure AVIC alone passes; with a mode or the VMCB's AVIC it fails.
    EXPECT_TRUE(fails_only(at(es, kSecureAvic), ""));
    EXPECT_TRUE(fails_only(at(es, kSecureAvic | kRestricted), when({P::apm}, "snp.secure_avic_conflict")));
    EXPECT_TRUE(fails_only(at(es, kSecureAvic | kAlternate), when({P::apm}, "snp.secure_avic_conflict")));
    EXPECT_TRUE(fails_only(at(avic, kSecureAvic), when({P::apm}, "snp.secure_avic_conflict")));
    // P4: VmplSSS passes without SSSCheckEn, fails with it; SSSCheckEn alone passes.
    EXPECT_TRUE(fails_only(at(es, kVmplSss), ""));
    EXPECT_TRUE(fails_only(at(sss, 0), ""));
    EXPECT_TRUE(fails_only(at(sss, kVmplSss), when({P::apm}, "snp.vmpl_sss")));
    // Just below each failing value: the neighbouring bits (7 and 9 around
    // VmplSSS, 2 and 5 around the injection modes, 15 and 17 around Secure AVIC).
    EXPECT_TRUE(fails_only(at(sss, bit(7) | bit(9)), ""));
    EXPECT_TRUE(fails_only(at(avic, bit(2) | bit(5)), ""));
    EXPECT_TRUE(fails_only(at(es, bit(15) | bit(17) | kRestricted), ""));
    // A CPU without SNP: SEV_FEATURES is not checked.
    auto nosnp = at(avic, kSecureAvic | kRestricted | kAlternate);
    nosnp.cpu = model("zen4", "-sev_snp");
    EXPECT_TRUE(fails_only(nosnp, ""));
}

// Without the VMSA's SEV_FEATURES (no decrypted VMSA, no guest memory), each
// check whose other conditions hold is not decided: a warning, no failure.
TEST_P(PerProfile, SnpChecksWithoutTheVmsaAreNotDecided) {
    using namespace arch;
    const auto es = sev_es();
    const auto avic_sss = with(with(es, FieldId::int_ctl, int_ctl::AVIC_ENABLE), FieldId::misc_ctl,
                               es.get(FieldId::misc_ctl) | misc_ctl::SSS_CHECK);
    const auto evt = with(es, FieldId::event_inj, event::V | (3U << 8) | 14U | event::EV);
    const bool applies = profile(GetParam()).sev_checks;
    const auto expect = [&](const arch::Vmcb& v, std::vector<std::string> ids) {
        const auto r = snp_scn(*this, v, std::nullopt).report();
        EXPECT_TRUE(r.failures.empty());
        EXPECT_EQ(needs_warnings(r), applies ? ids : std::vector<std::string>{});
    };
    expect(es, {"snp.restricted_and_alternate", "snp.secure_avic_conflict"});
    expect(avic_sss, {"snp.alternate_with_avic", "snp.restricted_and_alternate", "snp.restricted_with_avic",
                      "snp.secure_avic_conflict", "snp.vmpl_sss"});
    expect(evt, {"event_inj.restricted_injection", "snp.restricted_and_alternate", "snp.secure_avic_conflict"});
    // #HV is the one event Restricted Injection allows: no need to know.
    expect(with(es, FieldId::event_inj, event::V | (3U << 8) | 28U),
           {"snp.restricted_and_alternate", "snp.secure_avic_conflict"});
    // Not an SNP guest (SEV only, or no SNP on the CPU): nothing to decide.
    expect(sev(), {});
    auto nosnp = snp_scn(*this, avic_sss, std::nullopt);
    nosnp.cpu = model("zen4", "-sev_snp");
    EXPECT_TRUE(needs_warnings(nosnp.report()).empty());
    // A decrypted VMSA without its sev_features line decides nothing either.
    auto partial = snp_scn(*this, es, std::nullopt);
    partial.vmsa = VmsaState{};
    partial.vmsa->xcr0 = 7;
    const std::vector<std::string> both = {"snp.restricted_and_alternate", "snp.secure_avic_conflict"};
    EXPECT_EQ(needs_warnings(partial.report()), applies ? both : std::vector<std::string>{});
}

// VMCB 140h GUEST_SEV_FEATURES is not what VMRUN reads: alone it decides
// none of the checks, whatever it holds.
TEST_P(PerProfile, SnpChecksIgnoreTheVmcbGuestSevFeatures) {
    using namespace arch;
    using namespace sevf_test;
    const auto es = sev_es();
    const auto all = with(with(with(es, FieldId::int_ctl, int_ctl::AVIC_ENABLE), FieldId::misc_ctl,
                               es.get(FieldId::misc_ctl) | misc_ctl::SSS_CHECK),
                          FieldId::event_inj, event::V | (0U << 8) | 0x20U);
    for (std::uint64_t gsf : {kRestricted | kAlternate, kRestricted, kAlternate, kSecureAvic | kRestricted, kVmplSss,
                              ~std::uint64_t{0}}) {
        const auto v = with(all, FieldId::guest_sev_features, gsf);
        // With the VMSA's SEV_FEATURES 0: every check passes.
        EXPECT_TRUE(fails_only(snp_scn(*this, v, 0), "")) << std::hex << gsf;
        // Without it: not decided, whatever 140h says.
        const auto r = snp_scn(*this, v, std::nullopt).report();
        EXPECT_TRUE(r.failures.empty()) << std::hex << gsf;
        EXPECT_EQ(needs_warnings(r).size(), profile(GetParam()).sev_checks ? 6U : 0U) << std::hex << gsf;
    }
    // ... and 140h = 0 does not hide a VMSA that violates them.
    EXPECT_TRUE(fails_only(snp_scn(*this, with(es, FieldId::guest_sev_features, 0), kRestricted | kAlternate),
                           when({P::apm}, "snp.restricted_and_alternate")));
}

// SEV_FEATURES from guest memory: the VMSA page at control.vmsa_pa, offset
// 3B0h (what SvmCpu's VMRUN evaluates with its memory).
TEST(SnpFeatureCombinations, ReadTheVmsaPageInMemory) {
    using namespace sevf_test;
    MapMemory mem;
    mem.words = {{0x5000, 0}, {0x5FF8, 0}, {0x5000 + 0x3B0, kRestricted | kAlternate}};
    Scenario s;
    s.vmcb = with(sev_es(), FieldId::vmsa_pa, 0x5000);
    s.memory = &mem;
    EXPECT_TRUE(fails_only(s, "snp.restricted_and_alternate"));
    mem.words[0x5000 + 0x3B0] = kRestricted;
    EXPECT_TRUE(fails_only(s, ""));
    EXPECT_TRUE(s.report().warnings.empty());
    // The VMSA page backed but its SEV_FEATURES word not: not decided.
    mem.words.erase(0x5000 + 0x3B0);
    EXPECT_TRUE(fails_only(s, ""));
    EXPECT_EQ(needs_warnings(s.report()),
              (std::vector<std::string>{"snp.restricted_and_alternate", "snp.secure_avic_conflict"}));
    // A decrypted VMSA's value comes first.
    mem.words[0x5000 + 0x3B0] = 0;
    s.vmsa = vmsa_with(kSecureAvic | kAlternate);
    EXPECT_TRUE(fails_only(s, "snp.secure_avic_conflict"));
}

// P9 (APM 15.36.20): ALLOWED_SEV_FEATURES, a Zen 5 feature, against the
// VMSA's SEV_FEATURES (VMSA 3B0h), not the VMCB's GUEST_SEV_FEATURES.
TEST_P(PerProfile, SnpAllowedSevFeatures) {
    const auto allowed = with(sev_es(), FieldId::allowed_sev_features, bit(63) | bit(0) | bit(5));
    const auto in_vmsa = [&](const arch::Vmcb& v, std::string_view cpu, std::optional<std::uint64_t> sev_features) {
        auto s = scn(v, model(cpu));
        if (sev_features) s.vmsa = vmsa_with(*sev_features);
        return s;
    };
    // zen5: every bit inside the mask passes; one bit outside, the lowest
    // (bit 1) or the highest the mask covers (bit 61), fails.
    EXPECT_TRUE(fails_only(in_vmsa(allowed, "zen5", bit(0) | bit(5)), ""));
    EXPECT_TRUE(fails_only(in_vmsa(allowed, "zen5", bit(0) | bit(1)), when({P::apm}, "snp.allowed_sev_features")));
    EXPECT_TRUE(fails_only(in_vmsa(allowed, "zen5", bit(61)), when({P::apm}, "snp.allowed_sev_features")));
    // Bits 63:62 of SEV_FEATURES are not compared (the mask is 61:0).
    EXPECT_TRUE(fails_only(in_vmsa(allowed, "zen5", bit(62) | bit(63)), ""));
    // Bit 63 clear: no mask, anything goes.
    EXPECT_TRUE(fails_only(in_vmsa(with(sev_es(), FieldId::allowed_sev_features, bit(0)), "zen5", bit(9)), ""));
    // zen4 and zen3 have no ALLOWED_SEV_FEATURES: the check does not run.
    EXPECT_TRUE(fails_only(in_vmsa(allowed, "zen4", bit(9)), ""));
    EXPECT_TRUE(fails_only(in_vmsa(allowed, "zen3", bit(9)), ""));
    // The VMCB's GUEST_SEV_FEATURES is not what the check reads.
    EXPECT_TRUE(fails_only(in_vmsa(with(allowed, FieldId::guest_sev_features, bit(9)), "zen5", bit(0)), ""));
    // Without the VMSA's SEV_FEATURES: not decided, said in a warning, no failure.
    const auto r = in_vmsa(allowed, "zen5", std::nullopt).report();
    EXPECT_TRUE(r.failures.empty());
    const auto w = std::find_if(r.warnings.begin(), r.warnings.end(),
                                [](const Warning& x) { return x.id == "snp.allowed_sev_features"; });
    if (profile(GetParam()).sev_checks) {
        ASSERT_NE(w, r.warnings.end());
        EXPECT_NE(w->message.find("needs the VMSA's SEV_FEATURES"), std::string::npos) << w->message;
        EXPECT_NE(w->message.find("not decided"), std::string::npos) << w->message;
    } else {
        EXPECT_EQ(w, r.warnings.end());
    }
    // ... and no warning when the mask is off or the CPU lacks the feature.
    for (const auto& s : {in_vmsa(with(sev_es(), FieldId::allowed_sev_features, bit(0)), "zen5", std::nullopt),
                          in_vmsa(allowed, "zen4", std::nullopt)}) {
        const auto q = s.report();
        EXPECT_TRUE(std::none_of(q.warnings.begin(), q.warnings.end(),
                                 [](const Warning& x) { return x.id == "snp.allowed_sev_features"; }));
    }
}

// SEV_FEATURES from guest memory: the VMSA page at control.vmsa_pa.
TEST(SnpAllowedSevFeatures, ReadsTheVmsaPageInMemory) {
    MapMemory mem;
    mem.words = {{0x5000, 0}, {0x5FF8, 0}, {0x5000 + 0x3B0, bit(9)}};
    Scenario s;
    s.vmcb = with(with(sev_es(), FieldId::allowed_sev_features, bit(63)), FieldId::vmsa_pa, 0x5000);
    s.cpu = model("zen5");
    s.memory = &mem;
    EXPECT_TRUE(fails_only(s, "snp.allowed_sev_features"));
    mem.words[0x5000 + 0x3B0] = 0;
    EXPECT_TRUE(fails_only(s, ""));
}

// C17, C18
TEST_P(PerProfile, Cet) {
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::s_cet, 0x3)), ""));
    for (unsigned b : {2U, 5U, 6U, 9U, 10U, 63U})
        EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::s_cet, bit(b))), when({P::apm}, "cet.s_cet_reserved"))) << b;
    // With IBT the ENDBR controls exist; 9:6 stay reserved.
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::s_cet, bit(2) | bit(12)), model("zen4", "+ibt")), ""));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::s_cet, bit(7)), model("zen4", "+ibt")), when({P::apm}, "cet.s_cet_reserved")));
    // A CPU without CET has no CET state to check.
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::s_cet, bit(63)), model("zen4", "-shstk")), ""));
    auto cet = with(valid_vmcb64(), FieldId::cr4, 0x6F8 | arch::cr4::CET);
    const char* qemu = is({P::qemu}) ? "cr4.mbz" : nullptr;  // QEMU: CR4.CET always reserved
    EXPECT_TRUE(fails_only(scn(cet), qemu ? qemu : ""));
    auto nowp = with(cet, FieldId::cr0, 0x80050033 & ~arch::cr0::WP);
    if (!is({P::qemu})) {
        EXPECT_TRUE(fails_only(scn(nowp), when({P::apm}, "cet.cr0_wp")));
    } else {
        EXPECT_TRUE(fails_only(scn(nowp), "cr4.mbz"));
    }
}

// E1-E4: every vector under every type.
bool apm_exception(unsigned v) {
    static const std::set<unsigned> ok = {0, 1, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 18, 19, 21, 28, 29, 30};
    return ok.count(v) != 0;  // zen4 has shstk (#CP) and sev_es (#VC)
}

TEST_P(PerProfile, EventInjectionEveryTypeAndVector) {
    for (unsigned type = 0; type < 8; ++type) {
        for (unsigned vec = 0; vec < 256; ++vec) {
            const std::uint32_t e = arch::event::V | (type << 8) | vec;
            std::string_view expect;
            if (type == 1 || type >= 5) {
                expect = "event_inj.type";
            } else if (type == 3) {
                bool ok = false;
                if (is({P::apm, P::kvm})) ok = apm_exception(vec);
                if (is({P::qemu})) ok = vec != 2 && vec < 31;
                if (is({P::bochs, P::xen})) ok = vec != 2 && vec <= 31;
                if (!ok) expect = "event_inj.vector";
                // valid_vmcb64 is a 64-bit guest: #BR/#OF cannot occur (apm, bochs).
                else if ((vec == 4 || vec == 5) && is({P::apm})) expect = "event_inj.mode";
            }
            ASSERT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::event_inj, e)), expect))
                << "type " << type << " vector " << vec;
            // V = 0: nothing is injected, nothing is checked.
            ASSERT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::event_inj, e & ~arch::event::V)), ""));
        }
    }
}

TEST_P(PerProfile, EventVectorsDependOnTheModel) {
    // #CP needs shstk, #VC needs sev_es (apm, kvm).
    const auto cp = with(valid_vmcb64(), FieldId::event_inj, arch::event::V | (3U << 8) | 21U | arch::event::EV);
    const auto vc = with(valid_vmcb64(), FieldId::event_inj, arch::event::V | (3U << 8) | 29U | arch::event::EV);
    EXPECT_TRUE(fails_only(scn(cp, model("zen4", "-shstk")), when({P::apm, P::kvm}, "event_inj.vector")));
    EXPECT_TRUE(fails_only(scn(vc, model("zen4", "-sev_es")), when({P::apm, P::kvm}, "event_inj.vector")));
}

TEST_P(PerProfile, EventInjectionInA32BitGuest) {
    // #BR is possible in a 32-bit guest.
    const auto br = with(valid_vmcb_pae32(), FieldId::event_inj, arch::event::V | (3U << 8) | 5U);
    EXPECT_TRUE(fails_only(scn(br), ""));
}

TEST_P(PerProfile, EventInjectionReservedBits) {
    const std::uint32_t e = arch::event::V | (3U << 8) | 14U | arch::event::EV;
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::event_inj, e)), ""));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::event_inj, e | (1U << 12))), when({P::xen}, "event_inj.reserved")));
    EXPECT_TRUE(fails_only(scn(with(valid_vmcb64(), FieldId::event_inj, e | (1U << 30))), when({P::xen}, "event_inj.reserved")));
}

// P6: with Restricted Injection only #HV (exception vector 28) may be injected.
// Restricted Injection is the VMSA's SEV_FEATURES bit 3 (VMSA 3B0h).
TEST_P(PerProfile, EventInjectionWithRestrictedInjection) {
    using arch::event::V;
    const auto es = sev_es();
    const auto ri = [&](const arch::Vmcb& v, std::uint64_t f = bit(0) | bit(3)) { return snp_scn(*this, v, f); };
    EXPECT_TRUE(fails_only(ri(es), ""));                                              // nothing injected
    EXPECT_TRUE(fails_only(ri(with(es, FieldId::event_inj, V | (3U << 8) | 28U)), ""));  // #HV: the one allowed
    // Neighbours of the allowed event: #VC (29), #SX (30), vector 27, and #HV as the wrong type.
    for (std::uint32_t e : {V | (3U << 8) | 29U, V | (3U << 8) | 30U, V | (3U << 8) | 14U, V | (0U << 8) | 28U,
                            V | (0U << 8) | 0x20U, V | (2U << 8) | 2U})
        EXPECT_TRUE(fails_only(ri(with(es, FieldId::event_inj, e)), when({P::apm}, "event_inj.restricted_injection")))
            << std::hex << e;
    // INTn is also an E4 violation for any SEV-ES guest: both are reported
    // (E4 in the event stage, P6 with the VMSA reads).
    std::vector<std::string> both;
    if (is({P::apm})) both = {"event_inj.sev_es", "event_inj.restricted_injection"};
    EXPECT_EQ(ri(with(es, FieldId::event_inj, V | (4U << 8) | 0x80U)).failing(), both);
    // EVENTINJ.V = 0: no event, no check; without Restricted Injection (just
    // below: SEV_FEATURES bits 2 and 4), #PF is fine.
    EXPECT_TRUE(fails_only(ri(with(es, FieldId::event_inj, (3U << 8) | 14U)), ""));
    EXPECT_TRUE(fails_only(ri(with(es, FieldId::event_inj, V | (3U << 8) | 14U), bit(0)), ""));
    EXPECT_TRUE(fails_only(ri(with(es, FieldId::event_inj, V | (3U << 8) | 14U), bit(0) | bit(2)), ""));
    // Restricted Injection on a CPU without SNP: the SEV_FEATURES bit means nothing.
    auto nosnp = ri(with(es, FieldId::event_inj, V | (3U << 8) | 14U));
    nosnp.cpu = model("zen4", "-sev_snp");
    EXPECT_TRUE(fails_only(nosnp, ""));
}

TEST_P(PerProfile, EventInjectionIntoSevEs) {
    EXPECT_TRUE(fails_only(scn(with(sev_es(), FieldId::event_inj, arch::event::V | (3U << 8) | 14U)), ""));
    EXPECT_TRUE(fails_only(scn(with(sev_es(), FieldId::event_inj, arch::event::V | (4U << 8) | 0x80U)),
                           when({P::apm}, "event_inj.sev_es")));
    EXPECT_TRUE(fails_only(scn(with(sev_es(), FieldId::event_inj, arch::event::V | (3U << 8) | 3U)),
                           when({P::apm}, "event_inj.sev_es")));
}

// S5: any fault in the VMRUN flow of an SEV-ES guest; the one nsvm decides
// is a VMSA page that cannot be read (its RMP entry, checksum and BUSY bit
// are not modelled). Without guest memory: a warning, never a guess.
TEST_P(PerProfile, VmsaOfAnSevEsGuest) {
    const bool applies = is({P::apm});
    auto s = scn(with(sev_es(), FieldId::vmsa_pa, 0x7000));
    const auto r = s.report();
    EXPECT_TRUE(r.failures.empty());
    // (The SNP checks on the VMSA's SEV_FEATURES warn too: SnpChecksWithoutTheVmsaAreNotDecided.)
    const auto w = std::find_if(r.warnings.begin(), r.warnings.end(),
                                [](const Warning& x) { return x.id == "sev_es.vmsa_unreadable"; });
    ASSERT_EQ(w != r.warnings.end(), applies);
    if (applies) {
        EXPECT_NE(w->message.find("needs guest memory"), std::string::npos);
    }
    MapMemory mem;
    mem.words[0x7000] = 0;
    mem.words[0x7000 + 0x3B0] = 0;  // SEV_FEATURES
    mem.words[0x7FF8] = 0;
    s.memory = &mem;
    EXPECT_TRUE(fails_only(s, ""));
    EXPECT_TRUE(s.report().warnings.empty());
    s.vmcb.set(FieldId::vmsa_pa, 0x7FFF);  // bits 11:0 select no other page
    EXPECT_TRUE(fails_only(s, ""));
    s.vmcb.set(FieldId::vmsa_pa, 0x8000);  // the next page: not backed
    EXPECT_TRUE(fails_only(s, when({P::apm}, "sev_es.vmsa_unreadable")));
    s.vmcb.set(FieldId::vmsa_pa, 0x7000);
    mem.words.erase(0x7FF8);  // the page is only partly readable
    EXPECT_TRUE(fails_only(s, when({P::apm}, "sev_es.vmsa_unreadable")));
    // Not SEV-ES (SEV only): the VMSA pointer is not used.
    s.vmcb = with(sev(), FieldId::vmsa_pa, 0x8000);
    EXPECT_TRUE(fails_only(s, ""));
    s.memory = nullptr;
    EXPECT_TRUE(s.report().warnings.empty());
}

// C21
TEST_P(PerProfile, PdpesOfAPaeGuest) {
    const auto v = valid_vmcb_pae32();  // CR3 = 0x2000
    auto s = scn(v);
    // Without guest memory: a warning, never a guess.
    const auto r = s.report();
    EXPECT_TRUE(r.failures.empty());
    EXPECT_EQ(r.verdict, Verdict::valid);
    const bool applies = is({P::apm, P::kvm, P::bochs});
    ASSERT_EQ(r.warnings.size(), applies ? 1U : 0U);
    if (applies) {
        EXPECT_EQ(r.warnings[0].id, "pdpe.reserved");
        EXPECT_NE(r.warnings[0].message.find("needs guest memory"), std::string::npos);
    }
    MapMemory mem;
    for (unsigned i = 0; i < 4; ++i) mem.words[0x2000 + 8 * i] = 0x10000 * (i + 1) | 1;
    s.memory = &mem;
    EXPECT_TRUE(fails_only(s, ""));
    EXPECT_TRUE(s.report().warnings.empty());
    const unsigned pa = is({P::bochs}) ? 40 : 52;
    mem.words[0x2018] = (bit(pa) - 0x1000) | 1;  // highest legal address
    EXPECT_TRUE(fails_only(s, ""));
    for (std::uint64_t bad : {bit(1), bit(2), bit(5), bit(8), bit(pa), bit(63)}) {
        mem.words[0x2018] = 0x40000 | 1 | bad;
        EXPECT_TRUE(fails_only(s, when({P::apm, P::kvm, P::bochs}, "pdpe.reserved"))) << bad;
        mem.words[0x2018] = 0x40000 | bad;  // not present: not checked
        EXPECT_TRUE(fails_only(s, "")) << bad;
    }
    mem.words.erase(0x2008);  // unreadable
    EXPECT_TRUE(fails_only(s, when({P::apm, P::kvm, P::bochs}, "pdpe.reserved")));
    // With nested paging the PDPEs are not read at VMRUN.
    s.vmcb = np_on(v);
    EXPECT_TRUE(fails_only(s, ""));
    // A long-mode guest does not use PDPEs this way.
    s.vmcb = valid_vmcb64();
    s.memory = nullptr;
    EXPECT_TRUE(s.report().warnings.empty());
}

// Instruction gates
TEST_P(PerProfile, InstructionGates) {
    auto s = scn();
    s.host = valid_host();
    EXPECT_TRUE(fails_only(s, ""));
    s.host->efer &= ~arch::efer::SVME;
    EXPECT_TRUE(fails_only(s, "gate.efer_svme"));
    EXPECT_EQ(s.report().verdict, Verdict::ud);
    s.host = valid_host();
    s.host->cr0 = 0;
    s.host->efer = arch::efer::SVME;
    EXPECT_TRUE(fails_only(s, "gate.protected_mode"));
    s.host = valid_host();
    s.host->cpl = 3;
    EXPECT_TRUE(fails_only(s, "gate.cpl"));
    EXPECT_EQ(s.report().verdict, Verdict::gp);
    s.host = valid_host();
    s.host->rflags |= arch::rflags::VM;
    EXPECT_TRUE(fails_only(s, "gate.cpl"));
    s.host = valid_host();
    s.host->rax = 0x1001;
    EXPECT_TRUE(fails_only(s, "gate.rax_alignment"));
    s.host->rax = 0x1800;
    EXPECT_TRUE(fails_only(s, "gate.rax_alignment"));
    const unsigned pa = is({P::bochs}) ? 40 : 52;
    s.host->rax = bit(pa) - 0x1000;
    EXPECT_TRUE(fails_only(s, ""));
    s.host->rax = bit(pa);
    EXPECT_TRUE(fails_only(s, "gate.rax_maxphyaddr"));
    // Outside 64-bit address size only EAX is used.
    s.host->rax = bit(40) | bit(52) | 0x1000;
    s.host->address_size = 32;
    EXPECT_TRUE(fails_only(s, ""));
    s.host->address_size = 16;
    s.host->rax = 0xFFFF0000ULL | 0x1000;
    EXPECT_TRUE(fails_only(s, ""));
    s.host->rax = 0x10001;
    EXPECT_TRUE(fails_only(s, "gate.rax_alignment"));
}

TEST(Gates, GatesComeFirstInTheVerdict) {
    Scenario s;
    s.vmcb = with(valid_vmcb64(), FieldId::efer, 0);  // also invalid
    s.host = valid_host();
    s.host->cpl = 3;
    s.host->efer &= ~arch::efer::SVME;
    const auto r = s.report();
    EXPECT_EQ(r.verdict, Verdict::ud);  // #UD before #GP before VMEXIT
    ASSERT_GE(r.failures.size(), 3U);
    EXPECT_EQ(r.failures[0].check->id, "gate.efer_svme");
    EXPECT_EQ(r.failures[1].check->id, "gate.cpl");
    s.host->efer |= arch::efer::SVME;
    EXPECT_EQ(s.report().verdict, Verdict::gp);
    s.host->cpl = 0;
    EXPECT_EQ(s.report().verdict, Verdict::vmexit_invalid);
    EXPECT_EQ(s.report().exit_code, arch::exit_code::INVALID);
}

TEST_P(PerProfile, KvmOnlyGates) {
    auto s = scn();
    s.host = valid_host();
    s.host->vm_hsave_pa = 0x7000;
    EXPECT_TRUE(fails_only(s, ""));
    s.host->vm_hsave_pa = 0;
    EXPECT_TRUE(fails_only(s, when({P::kvm}, "gate.hsave_zero")));
    if (is({P::kvm})) {
        EXPECT_EQ(s.report().verdict, Verdict::gp);
    }
    s.host->vm_hsave_pa.reset();  // unknown: not evaluated
    EXPECT_TRUE(fails_only(s, ""));
    s.host->smm = true;
    EXPECT_TRUE(fails_only(s, when({P::kvm}, "gate.smm")));
    if (is({P::kvm})) {
        EXPECT_EQ(s.report().verdict, Verdict::ud);
    }
    // KVM order: the hsave #GP comes before the SMM #UD (KVM's nested_svm_vmrun).
    s.host->vm_hsave_pa = 0;
    if (is({P::kvm})) {
        EXPECT_EQ(s.report().verdict, Verdict::gp);
    }
}

TEST(Gates, NotEvaluatedWithoutHostState) {
    Scenario s;  // no host
    for (const auto& c : catalogue()) {
        if (c.stage == Stage::instruction) {
            EXPECT_FALSE(c.violated(s.ctx())) << c.id;
        }
    }
}

TEST(Verdict, QemuStoresThe32BitCode) {
    Scenario s;
    s.profile = P::qemu;
    s.vmcb = with(valid_vmcb64(), FieldId::asid, 0);
    EXPECT_EQ(s.report().exit_code, arch::exit_code::INVALID_32);
    s.profile = P::apm;
    EXPECT_EQ(s.report().exit_code, arch::exit_code::INVALID);
}

TEST(ModelProfilePairs, EmulatorProfilesWithTheirOwnModels) {
    // QEMU 7.2 TCG -cpu max: 40-bit PA, no PCID, LA57 and PKS present.
    Scenario q;
    q.profile = P::qemu;
    q.cpu = model("qemu-tcg");
    EXPECT_TRUE(fails_only(q, ""));
    // No PCID in -cpu max, yet QEMU does not gate CR4.PCIDE on it (found by nsvm diff).
    q.vmcb = with(valid_vmcb64(), FieldId::cr4, 0x6F8 | arch::cr4::PCIDE);
    EXPECT_TRUE(fails_only(q, ""));
    q.vmcb = with(valid_vmcb64(), FieldId::cr4, 0x6F8 | arch::cr4::PCIDE | arch::cr4::CET);
    EXPECT_TRUE(fails_only(q, "cr4.mbz"));
    q.vmcb = with(valid_vmcb64(), FieldId::cr4, 0x6F8 | arch::cr4::LA57 | arch::cr4::PKS | arch::cr4::PKE);
    EXPECT_TRUE(fails_only(q, ""));
    q.vmcb = with(valid_vmcb64(), FieldId::msrpm_base_pa, bit(40) - 0x3000);
    EXPECT_TRUE(fails_only(q, ""));
    q.vmcb = with(valid_vmcb64(), FieldId::msrpm_base_pa, bit(40) - 0x2000);
    EXPECT_TRUE(fails_only(q, "msrpm.limit"));
    q.vmcb = with(valid_vmcb64(), FieldId::cr3, bit(40));
    EXPECT_TRUE(fails_only(q, "cr3.mbz"));
    // QEMU honours NP_ENABLE without validating nCR3 or G_PAT.
    q.vmcb = with(with(np_on(), FieldId::nested_cr3, ~0ULL), FieldId::g_pat, 0x02);
    EXPECT_TRUE(fails_only(q, ""));

    // Bochs 2.7 ryzen: no PKU/UMIP/LA57/PCID; NP with G_PAT checks.
    Scenario b;
    b.profile = P::bochs;
    b.cpu = model("bochs-ryzen");
    EXPECT_TRUE(fails_only(b, ""));
    for (auto bit4 : {arch::cr4::PKE, arch::cr4::UMIP, arch::cr4::LA57, arch::cr4::PCIDE}) {
        b.vmcb = with(valid_vmcb64(), FieldId::cr4, 0x6F8 | bit4);
        EXPECT_TRUE(fails_only(b, "cr4.mbz")) << bit4;
    }
    b.vmcb = with(np_on(), FieldId::g_pat, 0x03);
    EXPECT_TRUE(fails_only(b, "np.g_pat"));
    b.vmcb = with(valid_vmcb64(), FieldId::iopm_base_pa, bit(40) - 0x1000);  // base only: the map's end is not checked
    EXPECT_TRUE(fails_only(b, ""));
}

TEST(Reports, SimultaneousViolationsAllReportedInCatalogueOrder) {
    Scenario s;
    s.vmcb.set(FieldId::efer, 0x0D00);               // efer.svme
    s.vmcb.set(FieldId::cr0, 0x20050033);            // cr0.cd_nw, and PG off with EFER.LMA = 1:
                                                     // efer.lma_without_lme_pg (a warning)
    s.vmcb.set(FieldId::asid, 0);                    // asid.zero
    s.vmcb.set(FieldId::dr7, bit(40));               // dr7.upper
    s.vmcb.set(FieldId::event_inj, arch::event::V | (1U << 8));  // event_inj.type
    const std::vector<std::string> expect = {"asid.zero", "efer.svme", "cr0.cd_nw", "dr7.upper", "event_inj.type"};
    EXPECT_EQ(s.failing(), expect);
    EXPECT_TRUE(s.warns("efer.lma_without_lme_pg"));
    const auto r = s.report();
    EXPECT_EQ(r.verdict, Verdict::vmexit_invalid);
    for (const auto& f : r.failures) EXPECT_FALSE(f.detail.empty()) << f.check->id;
    // first_failure agrees, stage by stage.
    const auto ctx = s.ctx();
    EXPECT_EQ(first_failure(ctx, Stage::instruction, Stage::memory)->id, "asid.zero");
    EXPECT_EQ(first_failure(ctx, Stage::save, Stage::save)->id, "efer.svme");
    EXPECT_EQ(first_failure(ctx, Stage::event, Stage::memory)->id, "event_inj.type");
    EXPECT_EQ(first_failure(ctx, Stage::memory, Stage::memory), nullptr);
}

TEST(Reports, DetailsRenderTheValues) {
    Scenario s;
    s.vmcb.set(FieldId::cr0, 0xA0000011);  // PG stays on: only CD=0/NW=1 is wrong
    auto r = s.report();
    ASSERT_EQ(r.failures.size(), 1U);
    EXPECT_EQ(r.failures[0].check->id, "cr0.cd_nw");
    EXPECT_EQ(r.failures[0].check->fields[0], "save.cr0");
    EXPECT_NE(r.failures[0].detail.find("CR0 = 0xa0000011"), std::string::npos) << r.failures[0].detail;

    s.vmcb = with(valid_vmcb64(), FieldId::cr4, 0x6F8 | arch::cr4::VMXE);
    r = s.report();
    ASSERT_EQ(r.failures.size(), 1U);
    EXPECT_NE(r.failures[0].detail.find("VMXE"), std::string::npos) << r.failures[0].detail;

    s.vmcb = with(valid_vmcb64(), FieldId::msrpm_base_pa, bit(52) - 0x1000);
    r = s.report();
    ASSERT_EQ(r.failures.size(), 1U);
    EXPECT_NE(r.failures[0].detail.find("0x10000000000fff"), std::string::npos) << r.failures[0].detail;

    s.vmcb = with(valid_vmcb64(), FieldId::event_inj, arch::event::V | (3U << 8) | 2U);
    r = s.report();
    ASSERT_EQ(r.failures.size(), 1U);
    EXPECT_NE(r.failures[0].detail.find("VECTOR=2"), std::string::npos) << r.failures[0].detail;

    s.vmcb = with(valid_vmcb64(), FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE);
    r = s.report();
    ASSERT_EQ(r.failures.size(), 1U);
    EXPECT_NE(r.failures[0].detail.find("inferred"), std::string::npos) << r.failures[0].detail;

    // A warning check's warning renders the values too.
    s.vmcb = with(valid_vmcb64(), FieldId::cr0, 0x00050032);
    r = s.report();
    EXPECT_TRUE(r.failures.empty());
    EXPECT_EQ(r.verdict, Verdict::valid);
    ASSERT_EQ(r.warnings.size(), 1U);
    EXPECT_EQ(r.warnings[0].id, "efer.lma_without_lme_pg");
    EXPECT_NE(r.warnings[0].message.find("EFER = 0x1d00 (LMA=1, LME=1), CR0 = 0x50032 (PG=0, PE=0)"),
              std::string::npos)
        << r.warnings[0].message;
}

}  // namespace
}  // namespace nsvm::checks::test
