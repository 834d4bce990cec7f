// CPU models: names, aliases, edits, derived reserved bits, the built-in
// models, the JSON model reader, and the profiles' choice listings.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "fixtures.hpp"
#include "nsvm/formats/cpu_model_json.hpp"

namespace nsvm::checks::test {
namespace {

TEST(Features, NamesRoundTrip) {
    std::set<std::string_view> seen;
    for (std::size_t i = 0; i < kFeatureCount; ++i) {
        const auto f = static_cast<Feature>(i);
        const auto n = feature_name(f);
        ASSERT_FALSE(n.empty());
        EXPECT_TRUE(seen.insert(n).second) << n;
        EXPECT_EQ(find_feature(n), f) << n;
    }
    EXPECT_EQ(feature_names().size(), kFeatureCount);
}

TEST(Features, AliasesAndSpellings) {
    EXPECT_EQ(find_feature("nrips"), Feature::nrip_save);
    EXPECT_EQ(find_feature("NRIP_SAVE"), Feature::nrip_save);
    EXPECT_EQ(find_feature("np"), Feature::npt);
    EXPECT_EQ(find_feature("ospke"), Feature::pku);
    EXPECT_EQ(find_feature("sev-es"), Feature::sev_es);
    EXPECT_EQ(find_feature("flush_by_asid"), Feature::flushbyasid);
    EXPECT_FALSE(find_feature("nosuchfeature").has_value());
    EXPECT_FALSE(find_feature("").has_value());
}

TEST(Features, EditsApplyAtomicallyAndSuggest) {
    auto m = default_model();
    ASSERT_TRUE(apply_feature_edits(m, "-la57, +pcid ,-sev_snp").has_value());
    EXPECT_FALSE(m.has(Feature::la57));
    EXPECT_EQ(m.va_width, 48U);
    EXPECT_FALSE(m.has(Feature::sev_snp));
    ASSERT_TRUE(apply_feature_edits(m, "la57").has_value());
    EXPECT_TRUE(m.has(Feature::la57));
    EXPECT_EQ(m.va_width, 57U);

    auto before = m.features();
    auto r = apply_feature_edits(m, "-npt,+vgiff");
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find("vgiff"), std::string::npos) << r.error();
    EXPECT_NE(r.error().find("'vgif'"), std::string::npos) << r.error();
    EXPECT_EQ(m.features(), before);  // nothing applied
    EXPECT_FALSE(apply_feature_edits(m, "+").has_value());
    EXPECT_TRUE(apply_feature_edits(m, "").has_value());
}

// The reserved-bit masks are derived when a feature changes (the checks read
// them on every VMRUN): each gate's bit follows its feature, both ways.
TEST(Models, ReservedMasksFollowEveryFeatureChange) {
    CpuModel m = default_model();
    for (const FeatureGate& g : kCr4FeatureBits) {
        m.set(g.feature, false);
        // CET (bit 23) exists with shadow stacks or IBT: check it with both off.
        if (g.bits == arch::bit(23)) m.set(g.feature == Feature::shstk ? Feature::ibt : Feature::shstk, false);
        EXPECT_EQ(m.cr4_reserved_bits() & g.bits, g.bits) << static_cast<int>(g.feature);
        m.set(g.feature, true);
        EXPECT_EQ(m.cr4_reserved_bits() & g.bits, 0U) << static_cast<int>(g.feature);
    }
    for (const FeatureGate& g : kEferFeatureBits) {
        m.set(g.feature, false);
        EXPECT_EQ(m.efer_reserved_bits() & g.bits, g.bits) << static_cast<int>(g.feature);
        m.set(g.feature, true);
        EXPECT_EQ(m.efer_reserved_bits() & g.bits, 0U) << static_cast<int>(g.feature);
    }
    m.clear_features();
    EXPECT_EQ(m.cr4_reserved_bits(), ~kCr4AlwaysValid);
    EXPECT_EQ(m.efer_reserved_bits(), ~kEferAlwaysValid);
    EXPECT_EQ(CpuModel{}.cr4_reserved_bits(), ~kCr4AlwaysValid);  // a model built with no features
}

TEST(Models, BuiltinsAreAsDocumented) {
    std::set<std::string> names;
    for (const auto& m : builtin_models()) names.insert(m.name);
    for (const char* n : {"zen4", "zen3", "qemu-tcg", "bochs-ryzen"}) EXPECT_TRUE(names.count(n)) << n;
    EXPECT_EQ(default_model().name, "zen4");

    const auto z4 = model("zen4");
    EXPECT_EQ(z4.maxphyaddr, 52U);
    EXPECT_EQ(z4.va_width, 57U);
    for (auto f : {Feature::la57, Feature::vnmi, Feature::x2avic, Feature::sev, Feature::sev_es, Feature::sev_snp,
                   Feature::npt, Feature::nrip_save, Feature::vgif, Feature::avic, Feature::autoibrs})
        EXPECT_TRUE(z4.has(f)) << feature_name(f);
    EXPECT_FALSE(z4.has(Feature::ibt));

    const auto z3 = model("zen3");
    EXPECT_EQ(z3.maxphyaddr, 48U);
    EXPECT_FALSE(z3.has(Feature::la57));
    EXPECT_FALSE(z3.has(Feature::vnmi));
    EXPECT_TRUE(z3.has(Feature::sev_snp));

    const auto q = model("qemu-tcg");
    EXPECT_EQ(q.maxphyaddr, 40U);
    EXPECT_EQ(q.num_asids, 16U);
    EXPECT_TRUE(q.has(Feature::npt));
    EXPECT_TRUE(q.has(Feature::vgif));
    for (auto f : {Feature::nrip_save, Feature::decodeassists, Feature::vmcbclean, Feature::pausefilter, Feature::avic,
                   Feature::flushbyasid, Feature::lbrv})
        EXPECT_FALSE(q.has(f)) << feature_name(f);

    const auto b = model("bochs-ryzen");
    EXPECT_EQ(b.maxphyaddr, 40U);
    EXPECT_EQ(b.num_asids, 32768U);
    for (auto f : {Feature::npt, Feature::lbrv, Feature::svm_lock, Feature::nrip_save, Feature::flushbyasid,
                   Feature::pausefilter})
        EXPECT_TRUE(b.has(f)) << feature_name(f);
    EXPECT_FALSE(b.has(Feature::vgif));

    auto bad = find_builtin_model("zen5x");
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(bad.error().find("zen4"), std::string::npos) << bad.error();
}

// Zen 5 (Turin): Zen 4's features plus ALLOWED_SEV_FEATURES and PMC/IBS
// virtualization; zen4 stays the default; no other model has the mask.
TEST(Models, Zen5IsZen4PlusAllowedSevFeatures) {
    const auto z5 = model("zen5");
    const auto z4 = model("zen4");
    EXPECT_EQ(z5.maxphyaddr, 52U);
    EXPECT_EQ(z5.va_width, 57U);
    EXPECT_TRUE(z5.has(Feature::la57));
    EXPECT_TRUE(z5.has(Feature::allowed_sev_features));
    EXPECT_TRUE(z5.has(Feature::pmc_virt));
    EXPECT_TRUE(z5.has(Feature::ibs_virt));
    for (std::size_t i = 0; i < kFeatureCount; ++i) {
        const auto f = static_cast<Feature>(i);
        if (z4.has(f)) {
            EXPECT_TRUE(z5.has(f)) << feature_name(f);
        }
    }
    for (const auto& m : builtin_models()) {
        if (m.name != "zen5") {
            EXPECT_FALSE(m.has(Feature::allowed_sev_features)) << m.name;
        }
    }
    EXPECT_EQ(default_model().name, "zen4");
    EXPECT_EQ(find_feature("allowed-sev-features"), Feature::allowed_sev_features);
}

// CPUID values -> model (--cpu host), with synthetic leaves.
HostCpuid genoa_cpuid() {
    HostCpuid id;
    id.vendor = "AuthenticAMD";
    id.brand = "AMD EPYC 9654 96-Core Processor";
    id.std1.edx = (1U << 3) | (1U << 6) | (1U << 13) | (1U << 24);  // PSE PAE PGE FXSR
    id.std1.ecx = (1U << 17) | (1U << 26);                          // PCID XSAVE
    id.std7.ebx = 1U | (1U << 7) | (1U << 10) | (1U << 20);         // FSGSBASE SMEP INVPCID SMAP
    id.std7.ecx = (1U << 2) | (1U << 3) | (1U << 7) | (1U << 16);   // UMIP PKU CET_SS LA57
    id.ext1.ecx = (1U << 2) | (1U << 12);                           // SVM SKINIT
    id.ext1.edx = (1U << 20) | (1U << 25) | (1U << 27) | (1U << 29);  // NX FFXSR RDTSCP LM
    id.ext8.eax = 0x3934;                                           // 52-bit PA, 57-bit VA
    id.ext8.ebx = 1U << 4;                                          // RDPRU
    id.svm.ebx = 32768;
    // NP LbrVirt SVML NRIPS TscRate VmcbClean FlushByAsid DecodeAssists
    // PauseFilter PFThreshold AVIC VMSAVEvirt VGIF x2AVIC VNMI
    id.svm.edx = 0xFFU | (1U << 10) | (1U << 12) | (1U << 13) | (1U << 15) | (1U << 16) | (1U << 18) | (1U << 25);
    id.sev.eax = (1U << 1) | (1U << 3) | (1U << 4);  // SEV SEV-ES SNP
    id.sev.ecx = 1006;
    id.ext21.eax = (1U << 7) | (1U << 8);  // UAI AutoIBRS
    return id;
}

TEST(HostCpuid, AmdZen4LeavesGiveAZen4Model) {
    const auto m = model_from_cpuid(genoa_cpuid());
    ASSERT_TRUE(m.has_value()) << m.error();
    EXPECT_EQ(m->name, "host");
    EXPECT_NE(m->description.find("EPYC 9654"), std::string::npos) << m->description;
    EXPECT_EQ(m->maxphyaddr, 52U);
    EXPECT_EQ(m->va_width, 57U);
    EXPECT_EQ(m->num_asids, 32768U);
    EXPECT_EQ(m->num_encrypted_guests, 1006U);
    const auto z4 = model("zen4");
    for (std::size_t i = 0; i < kFeatureCount; ++i) {
        const auto f = static_cast<Feature>(i);
        if (f == Feature::tce || f == Feature::sev_64bit_host) continue;  // not set in the synthetic leaves
        EXPECT_EQ(m->has(f), z4.has(f)) << feature_name(f);
    }
    // Fn8000_001F_EAX[27]: ALLOWED_SEV_FEATURES (Zen 5).
    auto id = genoa_cpuid();
    id.sev.eax |= 1U << 27;
    EXPECT_TRUE(model_from_cpuid(id)->has(Feature::allowed_sev_features));
    // A smaller physical-address width, no LA57.
    id.ext8.eax = 0x3030;
    id.std7.ecx &= ~(1U << 16);
    const auto small = model_from_cpuid(id);
    EXPECT_EQ(small->maxphyaddr, 48U);
    EXPECT_EQ(small->va_width, 48U);
    EXPECT_FALSE(small->has(Feature::la57));
}

// The bit positions checked against public sources (cpu_model.cpp's table):
// Fn8000_001F_EAX[11] 64BitHost, Fn8000_0021_EAX[24] ERAPS; their
// neighbours (bit 10, HwCacheCoherency; bit 23 and 25) set nothing.
TEST(HostCpuid, Sev64BitHostIsBit11AndErapsIsBit24) {
    auto id = genoa_cpuid();
    ASSERT_FALSE(model_from_cpuid(id)->has(Feature::sev_64bit_host));
    ASSERT_FALSE(model_from_cpuid(id)->has(Feature::erap));
    id.sev.eax |= 1U << 10;
    id.ext21.eax |= (1U << 23) | (1U << 25);
    EXPECT_FALSE(model_from_cpuid(id)->has(Feature::sev_64bit_host));
    EXPECT_FALSE(model_from_cpuid(id)->has(Feature::erap));
    id.sev.eax |= 1U << 11;
    id.ext21.eax |= 1U << 24;
    EXPECT_TRUE(model_from_cpuid(id)->has(Feature::sev_64bit_host));
    EXPECT_TRUE(model_from_cpuid(id)->has(Feature::erap));
}

TEST(HostCpuid, IntelIsRefusedWithAClearMessage) {
    auto id = genoa_cpuid();
    id.vendor = "GenuineIntel";
    const auto m = model_from_cpuid(id);
    ASSERT_FALSE(m.has_value());
    EXPECT_EQ(m.error(), "this host's CPU is GenuineIntel, not AMD: name a model (nsvm cpu list)");
}

TEST(HostCpuid, NoSvmIsRefusedWithAClearMessage) {
    auto id = genoa_cpuid();
    id.ext1.ecx &= ~(1U << 2);  // a VM without nested SVM
    const auto m = model_from_cpuid(id);
    ASSERT_FALSE(m.has_value());
    EXPECT_NE(m.error().find("reports no SVM (CPUID Fn8000_0001_ECX[2] = 0"), std::string::npos) << m.error();
    EXPECT_NE(m.error().find("name a model (nsvm cpu list)"), std::string::npos) << m.error();
}

// The checks layer is a function of VMCB, CPU model and profile: it turns
// CPUID values into a model but never executes CPUID itself (the CLI does,
// for --cpu host), so no verdict depends on the machine that computes it.
TEST(HostCpuid, TheChecksLayerNeverExecutesCpuid) {
    namespace fs = std::filesystem;
    const fs::path root(NSVM_SOURCE_DIR);
    std::size_t files = 0;
    for (const auto& dir : {root / "src/checks", root / "include/nsvm/checks"}) {
        for (const auto& e : fs::recursive_directory_iterator(dir)) {
            if (!e.is_regular_file()) continue;
            std::ifstream f(e.path());
            const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
            ++files;
            EXPECT_EQ(text.find("cpuid.h"), std::string::npos) << e.path();
            EXPECT_EQ(text.find("__cpuid"), std::string::npos) << e.path();
            EXPECT_EQ(text.find("__get_cpuid"), std::string::npos) << e.path();
        }
    }
    EXPECT_GE(files, 5U);
}

TEST(Models, ReservedBitsFollowFeatures) {
    auto m = default_model();
    EXPECT_EQ(m.cr4_reserved_bits() & arch::cr4::LA57, 0U);
    EXPECT_NE(m.cr4_reserved_bits() & (arch::cr4::VMXE | arch::cr4::SMXE | arch::bit(15)), 0U);
    ASSERT_TRUE(apply_feature_edits(m, "-la57,-pcid,-xsave,-shstk,-pku").has_value());
    for (auto b : {arch::cr4::LA57, arch::cr4::PCIDE, arch::cr4::OSXSAVE, arch::cr4::CET, arch::cr4::PKE})
        EXPECT_NE(m.cr4_reserved_bits() & b, 0U) << b;
    ASSERT_TRUE(apply_feature_edits(m, "+ibt").has_value());
    EXPECT_EQ(m.cr4_reserved_bits() & arch::cr4::CET, 0U);  // CET needs shstk or ibt

    auto e = default_model();
    EXPECT_EQ(e.efer_reserved_bits() & (arch::efer::SVME | arch::efer::LME | arch::efer::NXE | arch::efer::AIBRSE), 0U);
    EXPECT_NE(e.efer_reserved_bits() & arch::efer::LMSLE, 0U);
    ASSERT_TRUE(apply_feature_edits(e, "-lm,-nx,-svm,-fxsr_opt,-autoibrs").has_value());
    for (auto b : {arch::efer::LME, arch::efer::LMA, arch::efer::NXE, arch::efer::SVME, arch::efer::FFXSR,
                   arch::efer::AIBRSE})
        EXPECT_NE(e.efer_reserved_bits() & b, 0U) << b;
    EXPECT_EQ(e.efer_reserved_bits() & arch::efer::SCE, 0U);
}

// --- JSON model files ---

class CpuJson : public ::testing::Test {
protected:
    // One directory per test process: ctest runs tests in parallel (and two
    // checkouts may run theirs at once); a shared one was removed by one
    // test's TearDown under another test's feet.
    std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("nsvm_checks_cpu_json-" + std::to_string(::getpid()));
    void SetUp() override { std::filesystem::create_directories(dir); }
    void TearDown() override { std::filesystem::remove_all(dir); }
    nsvm::expected<CpuModel, std::string> read(const std::string& name, const std::string& text) {
        const auto p = dir / name;
        std::ofstream(p) << text;
        std::ifstream f(p);
        std::string content((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        return formats::read_cpu_model_json(content, p.string());
    }
};

TEST_F(CpuJson, ExampleFromTheInterfaceSpec) {
    auto m = read("epyc.json", R"({ "name": "my-epyc", "base": "zen4", "maxphyaddr": 46,
                                   "features": ["-la57", "+pcid"] })");
    ASSERT_TRUE(m.has_value()) << m.error();
    EXPECT_EQ(m->name, "my-epyc");
    EXPECT_EQ(m->maxphyaddr, 46U);
    EXPECT_FALSE(m->has(Feature::la57));
    EXPECT_EQ(m->va_width, 48U);
    EXPECT_TRUE(m->has(Feature::pcid));
    EXPECT_TRUE(m->has(Feature::sev_snp));  // from the base
    // The model drives the checks: CR3 bit 46 is now illegal.
    Scenario s;
    s.cpu = *m;
    s.vmcb.set(FieldId::cr3, arch::bit(46));
    EXPECT_TRUE(fails_only(s, "cr3.mbz"));
    s.vmcb.set(FieldId::cr3, arch::bit(46) - 0x1000);
    EXPECT_TRUE(fails_only(s, ""));
}

TEST_F(CpuJson, FullListOptionalKeysAndDefaults) {
    auto m = read("full.json", R"({"base": "qemu-tcg", "features": ["lm", "nx", "pae", "svm", "npt", "la57"],
                                   "num_asids": "0x40", "num_encrypted_guests": 15, "va_width": 57,
                                   "description": "hand-made"})");
    ASSERT_TRUE(m.has_value()) << m.error();
    EXPECT_EQ(m->maxphyaddr, 40U);  // from the base
    EXPECT_EQ(m->num_asids, 64U);
    EXPECT_EQ(m->num_encrypted_guests, 15U);
    EXPECT_EQ(m->description, "hand-made");
    EXPECT_TRUE(m->has(Feature::npt));
    EXPECT_FALSE(m->has(Feature::vgif));  // the full list replaced the base's
    EXPECT_FALSE(m->has(Feature::smep));
    auto d = read("edits.json", R"({"features": "+sss_check,-vnmi"})");
    ASSERT_TRUE(d.has_value()) << d.error();
    EXPECT_EQ(d->maxphyaddr, default_model().maxphyaddr);  // no base: the default model
    EXPECT_TRUE(d->has(Feature::sss_check));
    EXPECT_FALSE(d->has(Feature::vnmi));
}

TEST_F(CpuJson, BadFilesNameTheFileAndKey) {
    struct Bad {
        const char* text;
        std::vector<const char*> needles;
    };
    const Bad bad[] = {
        {R"({"maxphyaddrr": 46})", {"maxphyaddrr", "did you mean 'maxphyaddr'"}},
        {R"({"maxphyaddr": 53})", {"maxphyaddr", "53", "32..52"}},
        {R"({"maxphyaddr": 31})", {"maxphyaddr", "31"}},
        {R"({"maxphyaddr": -1})", {"maxphyaddr", "negative"}},
        {R"({"maxphyaddr": "forty"})", {"maxphyaddr", "forty"}},
        {R"({"maxphyaddr": 46.5})", {"maxphyaddr"}},
        {R"({"base": "zen44"})", {"base", "zen4"}},
        {R"({"base": 4})", {"base"}},
        {R"({"features": ["+la57", "pcid"]})", {"features", "mixes"}},
        {R"({"features": ["+nosuch"]})", {"features", "nosuch"}},
        {R"({"features": ["+vgiff"]})", {"features", "'vgif'"}},
        {R"({"features": [1]})", {"features", "item 0"}},
        {R"({"features": {"la57": true}})", {"features"}},
        {R"({"va_width": 50})", {"va_width", "50"}},
        {R"({"num_asids": 0})", {"num_asids"}},
        {R"({"num_asids": "0x100000000"})", {"num_asids"}},
        {R"({"name": ""})", {"name"}},
        {R"([1, 2])", {"object"}},
        {R"({"name": "x",)", {".json:1: malformed JSON at column 14"}},
        {"", {".json:1: malformed JSON"}},
    };
    int i = 0;
    for (const auto& b : bad) {
        const std::string file = "bad" + std::to_string(i++) + ".json";
        auto m = read(file, b.text);
        ASSERT_FALSE(m.has_value()) << b.text;
        EXPECT_NE(m.error().find(file), std::string::npos) << m.error();
        for (auto n : b.needles) EXPECT_NE(m.error().find(n), std::string::npos) << b.text << " -> " << m.error();
    }
}

TEST_F(CpuJson, GarbageNeverCrashes) {
    std::mt19937_64 rng(3);
    const std::string pieces[] = {"{", "}", "[", "]", "\"maxphyaddr\"", ":", ",", "\"features\"", "\"+la57\"",
                                  "52", "-3", "1e400", "null", "true", "\"base\"", "\"zen3\"", "\"\\u0000\"", "\xff"};
    int ok = 0;
    for (int i = 0; i < 2000; ++i) {
        std::string text;
        const auto n = rng() % 12;
        for (std::uint64_t k = 0; k < n; ++k) text += pieces[rng() % std::size(pieces)];
        auto m = formats::read_cpu_model_json(text, "fuzz.json");
        if (m) {
            ++ok;
            EXPECT_GE(m->maxphyaddr, 32U);
            EXPECT_LE(m->maxphyaddr, 52U);
        } else {
            EXPECT_NE(m.error().find("fuzz.json"), std::string::npos) << m.error();
        }
    }
    // The empty object is a valid model: the default one, named after the file.
    auto empty = formats::read_cpu_model_json("{}", "empty.json");
    ASSERT_TRUE(empty.has_value());
    EXPECT_EQ(empty->name, "empty.json");
    EXPECT_EQ(empty->features(), default_model().features());
    RecordProperty("valid_garbage", ok);
}

// --- Profiles ---

TEST(Profiles, FiveProfilesFoundByName) {
    ASSERT_EQ(all_profiles().size(), kProfileCount);
    for (const auto& p : all_profiles()) {
        EXPECT_EQ(find_profile(p.name), p.id);
        EXPECT_EQ(&profile(p.id), &p);
        EXPECT_FALSE(p.description.empty());
    }
    EXPECT_EQ(all_profiles()[0].name, "apm");
    auto bad = find_profile("kvmm");
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(bad.error().find("'kvm'"), std::string::npos) << bad.error();
}

TEST(Profiles, EveryProfileListsTheSameChoicesWithReasons) {
    const auto apm = profile(ProfileId::apm).choices();
    ASSERT_GE(apm.size(), 40U);
    for (const auto& p : all_profiles()) {
        const auto cs = p.choices();
        ASSERT_EQ(cs.size(), apm.size()) << p.name;
        std::set<std::string_view> keys;
        for (std::size_t i = 0; i < cs.size(); ++i) {
            EXPECT_EQ(cs[i].key, apm[i].key) << p.name;  // same keys, same order
            EXPECT_TRUE(keys.insert(cs[i].key).second) << cs[i].key;
            EXPECT_FALSE(cs[i].value.empty()) << p.name << " " << cs[i].key;
            EXPECT_GE(cs[i].reason.size(), 3U) << p.name << " " << cs[i].key;
        }
    }
}

TEST(Profiles, EveryKnownAmbiguityIsANamedChoice) {
    // Where the APM is silent or ambiguous, where QEMU 7.2 or Bochs 2.7 differ
    // from it, and where KVM's nested checks differ (docs/formats.md
    // "Behaviour profiles"; `nsvm profile show` gives each reason).
    std::set<std::string_view> keys;
    for (const auto& c : profile(ProfileId::apm).choices()) keys.insert(c.key);
    for (const char* k : {"msrpm_checked_size", "failure_writeback", "eventinj_reserved_bits_fail", "cs_l_d_any_mode",
                          "canonical_writeback", "inferred_rules", "cr3_rule", "event_vector_rule", "bitmap_limit_rule",
                          "pdpe_check", "cet_checks", "exit_code_32bit", "nrip_on_every_exit", "efer_lma_without_lme_checked",
                          "lma_source", "np_without_feature", "ncr3_rule", "g_pat_check", "vnmi_check", "dr6_reserved",
                          "dr7_reserved", "efer_rule", "long_mode_pe_check", "pcide_without_lma_fails",
                          "vmexit_dr7_from_hsave", "hsave_used", "hsave_zero_gp", "ud_without_paging",
                          "smm_vmrun_ud", "v86_vmrun_ud", "clear_gif_on_failure", "cr3_late_failure",
                          "late_failure_full_vmexit", "pa_check_width"})
        EXPECT_TRUE(keys.count(k)) << k;
}

TEST(Profiles, ValuesDifferWhereImplementationsDo) {
    auto value = [](ProfileId p, std::string_view key) {
        for (const auto& c : profile(p).choices())
            if (c.key == key) return c.value;
        return std::string("?");
    };
    EXPECT_EQ(value(ProfileId::bochs, "cs_l_d_any_mode"), "yes");
    EXPECT_EQ(value(ProfileId::apm, "cs_l_d_any_mode"), "no");
    EXPECT_EQ(value(ProfileId::qemu, "exit_code_32bit"), "yes");
    EXPECT_EQ(value(ProfileId::xen, "eventinj_reserved_bits_fail"), "yes");
    EXPECT_EQ(value(ProfileId::kvm, "cr3_rule"), "kvm_legal_gpa");
    EXPECT_EQ(value(ProfileId::qemu, "iopm_checked_size"), "0x2001");
    EXPECT_EQ(value(ProfileId::bochs, "pa_check_width"), "40");
}

}  // namespace
}  // namespace nsvm::checks::test
