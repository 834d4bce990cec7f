// Catalogue invariants, profile/knob consistency, and property tests over
// many generated VMCBs (fast path == full report, first_failure == report).
#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <random>
#include <set>

#include <fmt/format.h>

#include "fixtures.hpp"
#include "nsvm/arch/vmcb_fields.hpp"

// Counting global allocator: proves the fast paths never allocate.
namespace {
std::atomic<std::size_t> g_allocations{0};
}  // namespace
void* operator new(std::size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
// GCC 12 flags free() on memory from a replaced operator new (a known false
// positive of -Wmismatched-new-delete once the replacement is inlined).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace nsvm::checks::test {
namespace {

TEST(FastPath, NeverAllocates) {
    auto bad = valid_vmcb_pae32();
    bad.set(FieldId::asid, 0);
    bad.set(FieldId::cr0, 0xA0050033);
    bad.set(FieldId::event_inj, arch::event::V | (3U << 8) | 2U);
    MapMemory mem;
    mem.words = {{0x2000, 0x1003}, {0x2008, 0}, {0x2010, 0}, {0x2018, 0}};
    const auto good = valid_vmcb64();
    const auto host = valid_host();
    std::size_t verdicts = 0;
    // Warm-up: the first call of profile()/default_model() builds their
    // function-local statics (choice texts); that one-time set-up is not the
    // hot path, so it happens before the counter is read.
    for (auto p : kAllProfileIds) (void)profile(p).choices();
    (void)default_model();
    (void)catalogue();
    const std::size_t before = g_allocations.load();
    for (auto p : kAllProfileIds) {
        for (const arch::Vmcb* v : std::array<const arch::Vmcb*, 2>{&good, &bad}) {
            const Context c{*v, default_model(), profile(p), &host, &mem};
            verdicts += vmrun_would_succeed(c) ? 1 : 0;
            verdicts += first_failure(c, Stage::instruction, Stage::memory) == nullptr ? 1 : 0;
            for (const auto& chk : catalogue()) verdicts += chk.violated(c) ? 1 : 0;
        }
    }
    EXPECT_EQ(g_allocations.load(), before);
    EXPECT_GT(verdicts, 0U);
    // evaluate() may allocate (strings, vectors): the counter does see it.
    const Context c{bad, default_model(), profile(ProfileId::apm)};
    (void)evaluate(c);
    EXPECT_GT(g_allocations.load(), before);
}

TEST(Catalogue, IdsAreUniqueStableAndWellFormed) {
    std::set<std::string_view> ids;
    for (const auto& c : nsvm::checks::catalogue()) {
        EXPECT_TRUE(ids.insert(c.id).second) << "duplicate id " << c.id;
        ASSERT_FALSE(c.id.empty());
        EXPECT_NE(c.id.find('.'), std::string_view::npos) << c.id;
        for (char ch : c.id) {
            EXPECT_TRUE(std::islower(static_cast<unsigned char>(ch)) || std::isdigit(static_cast<unsigned char>(ch)) ||
                        ch == '.' || ch == '_')
                << c.id;
        }
        EXPECT_EQ(find_check(c.id), &c);
    }
    EXPECT_EQ(find_check("no.such_check"), nullptr);
    EXPECT_GE(catalogue().size(), 50U);
}

TEST(Catalogue, EveryEntryIsComplete) {
    for (const auto& c : nsvm::checks::catalogue()) {
        EXPECT_FALSE(c.apm.empty()) << c.id;
        EXPECT_FALSE(c.ref.empty()) << c.id;
        EXPECT_FALSE(c.message.empty()) << c.id;
        EXPECT_FALSE(c.hint.empty()) << c.id;
        EXPECT_NE(c.violated, nullptr) << c.id;
        EXPECT_NE(c.profiles, 0) << c.id;
        EXPECT_EQ(c.profiles & ~kAllProfiles, 0) << c.id;
        if (c.stage != Stage::instruction) {
            EXPECT_FALSE(c.fields.empty()) << c.id;
        }
        EXPECT_EQ(c.needs_memory != nullptr, c.stage == Stage::memory) << c.id;
    }
}

TEST(Catalogue, EveryFieldExists) {
    for (const auto& c : nsvm::checks::catalogue()) {
        for (auto f : c.fields) {
            const auto id = arch::find_field(f);
            ASSERT_TRUE(id.has_value()) << c.id << ": " << f;
            EXPECT_EQ(arch::info(*id).name, f) << c.id << ": use the full name, not an alias";
        }
    }
}

TEST(Catalogue, OrderedByStage) {
    Stage last = Stage::instruction;
    for (const auto& c : nsvm::checks::catalogue()) {
        EXPECT_GE(c.stage, last) << c.id;
        last = c.stage;
    }
}

TEST(Catalogue, CoversTheApmRows) {
    std::set<std::string_view> refs;
    for (const auto& c : catalogue()) refs.insert(c.ref);
    for (const char* r : {"C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9", "C10", "C11", "C12", "C13", "C14",
                          "C16", "C17", "C18", "C21", "E1", "E2", "E3", "E4", "N1", "N2", "N3", "N4", "V1", "A1", "A2",
                          "A3", "A4", "S1", "S2", "S3", "S4", "S5", "P4", "P5", "P6", "P7", "P9", "P10"})
        EXPECT_TRUE(refs.count(r)) << r;
}

// Every VMEXIT_INVALID condition of the APM has a check or is listed as not
// decided, with its reason (docs/checks.md "Not decided"); never both. C1-C21
// are the APM 15.5.1 list in the manual's order (C15, illegal event
// injection, is the heading of E1-E4, APM 15.20); N, V, A, S, P come from
// APM 15.25, 15.21.10, 15.29, 15.34-15.35 and 15.36.
TEST(Catalogue, EveryApmRowIsCheckedOrListedAsNotDecided) {
    std::set<std::string_view> refs, open;
    for (const auto& c : catalogue()) refs.insert(c.ref);
    for (const auto& u : undecided()) {
        EXPECT_FALSE(refs.count(u.ref)) << u.ref << " is both checked and listed as not decided";
        EXPECT_TRUE(open.insert(u.ref).second) << u.ref << " listed twice";
        EXPECT_FALSE(u.condition.empty() || u.why.empty() || u.apm.empty()) << u.ref;
    }
    std::vector<std::string> rows;
    for (int i = 1; i <= 21; ++i) rows.push_back("C" + std::to_string(i));
    for (int i = 1; i <= 4; ++i) rows.push_back("E" + std::to_string(i)), rows.push_back("N" + std::to_string(i)),
                                 rows.push_back("A" + std::to_string(i));
    for (int i = 1; i <= 5; ++i) rows.push_back("S" + std::to_string(i));
    for (int i = 1; i <= 12; ++i) rows.push_back("P" + std::to_string(i));
    for (int i = 1; i <= 3; ++i) rows.push_back("X" + std::to_string(i));
    rows.push_back("V1");
    for (const auto& r : rows) {
        if (r == "C15") continue;
        EXPECT_TRUE(refs.count(r) || open.count(r)) << r << " has neither a check nor a reason";
    }
}

TEST(Catalogue, InferredRulesAreMarked) {
    for (const char* id : {"avic.requires_np", "sev_es.requires_sev", "sev_es.requires_lbrv"}) {
        ASSERT_NE(find_check(id), nullptr) << id;
        EXPECT_TRUE(find_check(id)->inferred) << id;
    }
    EXPECT_FALSE(find_check("cr0.cd_nw")->inferred);
}

// Which profiles apply a check is derived from the check's applies(), which
// reads profile settings: the displayed mask is exactly that.
TEST(Catalogue, ProfileMaskIsDerivedFromTheSettings) {
    for (const auto& c : nsvm::checks::catalogue()) {
        ASSERT_NE(c.applies, nullptr) << c.id;
        ProfileMask m = 0;
        for (const auto& p : all_profiles())
            if (c.applies(p)) m = static_cast<ProfileMask>(m | mask_of(p.id));
        EXPECT_EQ(c.profiles, m) << c.id;
    }
}

// A profile's identity chooses nothing: the same settings under another id
// and name apply the same checks with the same verdicts.
TEST(Catalogue, ProfileIdentityChoosesNothing) {
    const auto good = valid_vmcb64();
    auto bad = valid_vmcb_pae32();
    bad.set(FieldId::asid, 0);
    bad.set(FieldId::cr3, bit(40) | 0x2000);
    bad.set(FieldId::event_inj, arch::event::V | (3U << 8) | 31U);
    const auto host = valid_host();
    for (const auto& p : all_profiles()) {
        for (const auto& other : all_profiles()) {
            Profile renamed = p;
            renamed.id = other.id;
            renamed.name = other.name;
            for (const arch::Vmcb* v : std::array<const arch::Vmcb*, 2>{&good, &bad}) {
                const Context a{*v, default_model(), p, &host, nullptr};
                const Context b{*v, default_model(), renamed, &host, nullptr};
                for (const auto& c : nsvm::checks::catalogue()) {
                    EXPECT_EQ(c.applies(p), c.applies(renamed)) << c.id;
                    EXPECT_EQ(c.violated(a), c.violated(b)) << c.id;
                }
                EXPECT_EQ(vmrun_would_succeed(a), vmrun_would_succeed(b)) << p.name << " as " << other.name;
            }
        }
    }
}

// A check is one entry of rules.hpp: an entry defined but left out of the
// catalogue (AllRules) is counted where it is defined, and fails here.
TEST(Catalogue, EveryDefinedRuleIsInTheCatalogue) {
    EXPECT_EQ(catalogue().size(), rules_defined())
        << "src/checks/rules.hpp defines a rule that rules::AllRules does not list (or lists one twice)";
}

// Every entry's boundary values straddle its limit: under some profile that
// applies the check, at least one value passes it and at least one fails it.
TEST(Catalogue, BoundaryValuesStraddleEveryCheck) {
    for (const auto& c : nsvm::checks::catalogue()) {
        ASSERT_FALSE(c.boundary.empty()) << c.id << " has no boundary values";
        bool passes = false, fails = false;
        std::set<std::string_view> names;
        for (const auto& b : c.boundary) {
            EXPECT_TRUE(names.insert(b.name).second) << c.id << ": " << b.name << " twice";
            const auto bc = realize(b);
            for (const auto& p : all_profiles()) {
                if (!c.applies(p)) continue;
                (c.violated(bc.ctx(p)) ? fails : passes) = true;
            }
        }
        EXPECT_TRUE(passes) << c.id << ": no boundary value passes it";
        EXPECT_TRUE(fails) << c.id << ": no boundary value fails it";
    }
}

/// Does `text` name `id` as a whole word ("cr4.mbz (rules::...)", "a and b")?
bool names(std::string_view text, std::string_view id) {
    for (std::size_t at = text.find(id); at != std::string_view::npos; at = text.find(id, at + 1)) {
        const bool starts = at == 0 || text[at - 1] == ' ' || text[at - 1] == ',' || text[at - 1] == '(';
        const std::size_t end = at + id.size();
        const bool ends = end == text.size() || text[end] == ' ' || text[end] == ',' || text[end] == ')';
        if (starts && ends) return true;
    }
    return false;
}

// A setting's declared reader, where it names checks, is true: flipping the
// setting changes, under some profile, whether each named check applies or
// its verdict on one of the check's own boundary values.
TEST(ProfileSettings, ChecksNamedAsReadersSeeTheSetting) {
    std::size_t named = 0;
    for (const auto& s : settings()) {
        for (const auto& c : nsvm::checks::catalogue()) {
            if (!names(s.read_by, c.id)) continue;
            ++named;
            bool seen = false;
            for (const auto& p : all_profiles()) {
                for (const auto& q : s.others(p)) {
                    if (c.applies(p) != c.applies(q)) seen = true;
                    for (const auto& b : c.boundary) {
                        const auto bc = realize(b);
                        if (c.applies(p) && c.violated(bc.ctx(p)) != c.violated(bc.ctx(q))) seen = true;
                    }
                }
            }
            EXPECT_TRUE(seen) << "setting " << s.key << " names " << c.id
                              << " as its reader, but flipping it changes nothing that check decides";
        }
    }
    EXPECT_GE(named, 30U);  // most settings are read by the catalogue
}

// A check's per-profile reasons are the rows of the settings it reads: the
// entry names exactly the settings whose change, under some profile, changes
// whether it applies or its verdict on one of its boundary values.
TEST(Catalogue, EachCheckNamesTheSettingsItReads) {
    for (const auto& c : nsvm::checks::catalogue()) {
        std::set<std::string_view> seen;
        std::vector<BoundaryCase> cases;
        for (const auto& b : c.boundary) cases.push_back(realize(b));
        for (const auto& s : settings()) {
            for (const auto& p : all_profiles()) {
                for (const auto& q : s.others(p)) {
                    bool changed = c.applies(p) != c.applies(q);
                    for (const auto& bc : cases)
                        changed = changed || (c.applies(p) && c.violated(bc.ctx(p)) != c.violated(bc.ctx(q)));
                    if (changed) seen.insert(s.key);
                }
            }
        }
        const std::set<std::string_view> named(c.settings.begin(), c.settings.end());
        std::string want;
        for (auto k : seen) want += fmt::format("{}\"{}\"", want.empty() ? "" : ", ", k);
        EXPECT_EQ(named, seen) << c.id << " reads NSVM_SETTINGS(" << want << ")";
    }
}

// A witness per check: proof that every check can fail, alone, under at
// least one profile (no check that cannot fail); a warning check, that it
// warns alone with nothing failing.
TEST(Catalogue, EveryCheckCanFailAlone) {
    std::set<std::string> failed_alone;
    // Mutations of the valid guest, each meant to trip exactly one check.
    std::vector<Scenario> cases;
    auto add = [&](ProfileId p, auto&& mutate, CpuModel cpu = default_model()) {
        Scenario s;
        s.profile = p;
        s.cpu = std::move(cpu);
        mutate(s);
        cases.push_back(std::move(s));
    };
    using P = ProfileId;
    const auto host = valid_host();
    add(P::apm, [&](Scenario& s) { s.host = host; s.host->efer = 0; });
    add(P::apm, [&](Scenario& s) { s.host = host; s.host->cr0 = 0; });
    add(P::kvm, [&](Scenario& s) { s.host = host; s.host->cr0 = arch::cr0::PE; s.host->efer = arch::efer::SVME; });
    add(P::apm, [&](Scenario& s) { s.host = host; s.host->cpl = 3; });
    add(P::apm, [&](Scenario& s) { s.host = host; s.host->rax = 0x1004; });
    add(P::kvm, [&](Scenario& s) { s.host = host; s.host->vm_hsave_pa = 0; });
    add(P::kvm, [&](Scenario& s) { s.host = host; s.host->smm = true; });
    add(P::apm, [&](Scenario& s) { s.host = host; s.host->rax = bit(60); });
    add(P::apm, [](Scenario& s) { s.vmcb.set_intercept(arch::intercept::VMRUN, false); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::asid, 0); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::msrpm_base_pa, ~0ULL); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::iopm_base_pa, ~0ULL); });
    add(P::apm, [&](Scenario& s) {
        s.vmcb.set(FieldId::misc_ctl, 1);
        s.host = host;
        s.host->cr0 = arch::cr0::PE;
    });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::misc_ctl, 1); s.vmcb.set(FieldId::nested_cr3, bit(55)); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::misc_ctl, 1); s.vmcb.set(FieldId::g_pat, 2); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::misc_ctl, arch::misc_ctl::SSS_CHECK); }, model("zen4", "+sss_check"));
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::int_ctl, arch::int_ctl::V_NMI_ENABLE); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::int_ctl, arch::int_ctl::X2AVIC_ENABLE); });
    add(P::apm, [](Scenario& s) {
        s.vmcb.set(FieldId::misc_ctl, 1);
        s.vmcb.set(FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE);
        s.vmcb.set(FieldId::avic_physical_id, 0x1FF);
    });
    add(P::apm, [](Scenario& s) {
        s.vmcb.set(FieldId::misc_ctl, 1);
        s.vmcb.set(FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE);
        s.vmcb.set(FieldId::avic_backing_page, bit(45));
    }, [] { auto m = default_model(); m.maxphyaddr = 44; return m; }());
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::misc_ctl, arch::misc_ctl::SEV_ENABLE); });
    add(P::apm, [&](Scenario& s) { s.vmcb.set(FieldId::misc_ctl, 3); s.host = host; s.host->hwcr = 0; });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::misc_ctl, 3); s.vmcb.set(FieldId::asid, 5000); });
    add(P::apm, [&](Scenario& s) {
        s.vmcb.set(FieldId::misc_ctl, 3);
        s.host = host;
        s.host->efer = arch::efer::SVME;
    });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::misc_ctl, 5); s.vmcb.set(FieldId::misc_ctl2, 1); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::misc_ctl, 7); });
    // An SEV-SNP guest whose VMSA gives SEV_FEATURES (VMSA 3B0h), as a KVM
    // dump's decrypted VMSA does: what the SNP checks read.
    auto snp = [](Scenario& s, std::uint64_t sev_features) {
        s.vmcb.set(FieldId::misc_ctl, 7);
        s.vmcb.set(FieldId::misc_ctl2, 1);
        s.vmsa = vmsa_with(sev_features);
    };
    add(P::apm, [&](Scenario& s) { snp(s, bit(8)); s.vmcb.set(FieldId::misc_ctl, 7 | arch::misc_ctl::SSS_CHECK); });
    add(P::apm, [&](Scenario& s) { snp(s, bit(3) | bit(4)); });
    add(P::apm, [&](Scenario& s) { snp(s, bit(3)); s.vmcb.set(FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE); });
    add(P::apm, [&](Scenario& s) { snp(s, bit(4)); s.vmcb.set(FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE); });
    // P9: a Zen 5 mask against the VMSA's SEV_FEATURES (as a KVM dump gives it).
    add(P::apm, [&](Scenario& s) {
        snp(s, bit(9));
        s.vmcb.set(FieldId::allowed_sev_features, bit(63));
    }, model("zen5"));
    add(P::apm, [&](Scenario& s) { snp(s, bit(16) | bit(4)); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::efer, 0x0D00); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::cr0, 0xA0050033); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::cr0, 0x180050033); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::cr3, bit(52) | 0x1000); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::cr4, 0x6F8 | arch::cr4::VMXE); });
    add(P::bochs, [](Scenario& s) { s.vmcb = valid_vmcb_pae32(); s.vmcb.set(FieldId::cr4, 0x6F8 | arch::cr4::PCIDE); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::dr6, bit(33)); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::dr7, bit(33)); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::efer, 0x1D00 | bit(3)); });
    add(P::apm, [](Scenario&) {}, model("zen4", "-lm"));
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::cr0, 0x00050033); });  // LMA=1, PG=0: a warning
    add(P::xen, [](Scenario& s) { s.vmcb.set(FieldId::efer, 0x1C00); });     // LMA=1, LME=0 (and a warning)
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::cr4, 0x6D8); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::cr0, 0x80050032); });
    add(P::apm, [](Scenario& s) { s.vmcb.set_segment(arch::Seg::cs, {8, 0xE9B, 0xFFFFFFFF, 0}); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::s_cet, bit(7)); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::cr4, 0x6F8 | arch::cr4::CET); s.vmcb.set(FieldId::cr0, 0x80040033); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::event_inj, arch::event::V | (6U << 8)); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::event_inj, arch::event::V | (3U << 8) | 15U); });
    add(P::apm, [](Scenario& s) { s.vmcb.set(FieldId::event_inj, arch::event::V | (3U << 8) | 5U); });
    add(P::apm, [&](Scenario& s) { snp(s, 0); s.vmcb.set(FieldId::event_inj, arch::event::V | (4U << 8) | 0x21U); });
    add(P::apm, [&](Scenario& s) { snp(s, bit(3)); s.vmcb.set(FieldId::event_inj, arch::event::V | 0x20U); });
    add(P::xen, [](Scenario& s) { s.vmcb.set(FieldId::event_inj, 1U << 20); });
    static MapMemory bad_pdpe;
    bad_pdpe.words = {{0x2000, 0x1003}, {0x2008, 0}, {0x2010, 0}, {0x2018, 0}};
    add(P::apm, [](Scenario& s) { s.vmcb = valid_vmcb_pae32(); s.memory = &bad_pdpe; });
    static MapMemory no_vmsa;  // backs nothing: the SEV-ES guest's VMSA page is unreadable
    add(P::apm, [&](Scenario& s) {
        s.vmcb.set(FieldId::misc_ctl, 7);
        s.vmcb.set(FieldId::misc_ctl2, 1);
        s.memory = &no_vmsa;
    });

    std::set<std::string> warned_alone;
    for (const auto& s : cases) {
        const auto ids = s.failing();
        if (ids.empty()) {  // a witness for a warning check
            EXPECT_TRUE(s.ok());
            std::vector<std::string> warned;
            for (const auto& c : catalogue())
                if (c.outcome == Outcome::warning && s.warns(c.id)) warned.emplace_back(c.id);
            EXPECT_EQ(warned.size(), 1U) << join(warned);
            if (warned.size() == 1) warned_alone.insert(warned[0]);
            continue;
        }
        EXPECT_EQ(ids.size(), 1U) << join(ids);
        EXPECT_FALSE(s.ok());
        if (ids.size() == 1) failed_alone.insert(ids[0]);
    }
    for (const auto& c : nsvm::checks::catalogue()) {
        const auto& seen = c.outcome == Outcome::warning ? warned_alone : failed_alone;
        EXPECT_TRUE(seen.count(std::string(c.id))) << "no witness for " << c.id;
    }
}

// --- Property tests ---

/// A random VMCB near the valid one: a few fields mutated at random, biased
/// towards the bits the checks look at.
arch::Vmcb random_vmcb(std::mt19937_64& rng) {
    auto v = valid_vmcb64();
    if (rng() % 8 == 0) v = valid_vmcb_pae32();
    if (rng() % 16 == 0) v = valid_vmcb_legacy32();
    const FieldId targets[] = {FieldId::efer,        FieldId::cr0,           FieldId::cr3,
                               FieldId::cr4,         FieldId::dr6,           FieldId::dr7,
                               FieldId::asid,        FieldId::iopm_base_pa,  FieldId::msrpm_base_pa,
                               FieldId::event_inj,   FieldId::misc_ctl,      FieldId::misc_ctl2,
                               FieldId::int_ctl,     FieldId::nested_cr3,    FieldId::g_pat,
                               FieldId::s_cet,       FieldId::cs_attrib,     FieldId::intercepts4,
                               FieldId::intercepts3, FieldId::guest_sev_features, FieldId::allowed_sev_features,
                               FieldId::avic_physical_id, FieldId::avic_backing_page};
    const unsigned n = 1 + static_cast<unsigned>(rng() % 4);
    for (unsigned i = 0; i < n; ++i) {
        const auto f = targets[rng() % std::size(targets)];
        std::uint64_t x = v.get(f);
        switch (rng() % 4) {
            case 0: x ^= bit(static_cast<unsigned>(rng() % 64)); break;   // one bit
            case 1: x = rng(); break;                                     // anything
            case 2: x ^= bit(static_cast<unsigned>(rng() % 12)); break;   // low bits
            default: x = (rng() % 2) ? (bit(static_cast<unsigned>(30 + rng() % 30)) - 0x1000 * (rng() % 4)) : 0;
        }
        v.set(f, x);
    }
    return v;
}

TEST(Property, FastPathAgreesWithTheFullReport) {
    std::mt19937_64 rng(20260425);
    std::vector<CpuModel> models(builtin_models().begin(), builtin_models().end());
    models.push_back(model("zen4", "+sss_check,+ibt,+lam,-vnmi"));
    std::size_t invalid = 0, total = 0;
    for (int seed = 0; seed < 4000; ++seed) {
        Scenario s;
        s.vmcb = random_vmcb(rng);
        s.cpu = models[rng() % models.size()];
        // The SNP checks read the VMSA's SEV_FEATURES: sometimes given, a
        // few bits or anything.
        if (rng() % 3 == 0) {
            const std::uint64_t few = bit(static_cast<unsigned>(rng() % 18)) | bit(static_cast<unsigned>(rng() % 18));
            s.vmsa = vmsa_with(rng() % 4 == 0 ? rng() : few);
        }
        if (rng() % 3 == 0) {
            s.host = valid_host();
            if (rng() % 2) s.host->efer ^= bit(static_cast<unsigned>(rng() % 16));
            if (rng() % 4 == 0) s.host->cr0 ^= arch::cr0::PG;
            if (rng() % 8 == 0) s.host->cpl = 3;
            if (rng() % 4 == 0) s.host->rax = rng();
            if (rng() % 4 == 0) s.host->address_size = (rng() % 2) ? 32 : 16;
            if (rng() % 8 == 0) s.host->vm_hsave_pa = (rng() % 2) ? 0 : 0x7000;
            if (rng() % 16 == 0) s.host->smm = true;
        }
        for (auto p : kAllProfileIds) {
            s.profile = p;
            const auto ctx = s.ctx();
            const auto r = evaluate(ctx);
            const bool fast = vmrun_would_succeed(ctx);
            ASSERT_EQ(fast, r.failures.empty()) << "seed " << seed << " profile " << profile(p).name;
            ASSERT_EQ(r.verdict == Verdict::valid, r.failures.empty());
            const Check* first = first_failure(ctx, Stage::instruction, Stage::memory);
            ASSERT_EQ(first, r.failures.empty() ? nullptr : r.failures.front().check);
            // Failures come in catalogue order, one per check, only from applying checks.
            const Check* prev = nullptr;
            for (const auto& f : r.failures) {
                ASSERT_TRUE((f.check->profiles & mask_of(p)) != 0) << f.check->id;
                ASSERT_TRUE(prev == nullptr || prev < f.check);
                prev = f.check;
                ASSERT_TRUE(f.check->violated(ctx));
            }
            // Per-stage first_failure matches the first failure of that stage.
            for (auto st : {Stage::instruction, Stage::control, Stage::save, Stage::event, Stage::memory}) {
                const Check* want = nullptr;
                for (const auto& f : r.failures)
                    if (f.check->stage == st) {
                        want = f.check;
                        break;
                    }
                ASSERT_EQ(first_failure(ctx, st, st), want);
            }
            invalid += r.failures.empty() ? 0 : 1;
            ++total;
        }
    }
    // The generator must exercise both outcomes.
    EXPECT_GT(invalid, total / 10);
    EXPECT_LT(invalid, total - total / 10);
}

TEST(Property, CompletelyRandomPagesNeverCrashAndAgree) {
    std::mt19937_64 rng(7);
    for (int seed = 0; seed < 500; ++seed) {
        arch::Vmcb v;
        for (auto& b : v.page()) b = static_cast<std::uint8_t>(rng());
        for (auto p : kAllProfileIds) {
            const Context c{v, default_model(), profile(p)};
            EXPECT_EQ(vmrun_would_succeed(c), evaluate(c).failures.empty());
        }
    }
}

TEST(Property, EvaluationIsDeterministic) {
    std::mt19937_64 rng(99);
    for (int i = 0; i < 200; ++i) {
        const auto v = random_vmcb(rng);
        const Context c{v, default_model(), profile(ProfileId::apm)};
        const auto a = evaluate(c), b = evaluate(c);
        ASSERT_EQ(a.failures.size(), b.failures.size());
        for (std::size_t k = 0; k < a.failures.size(); ++k) {
            EXPECT_EQ(a.failures[k].check, b.failures[k].check);
            EXPECT_EQ(a.failures[k].detail, b.failures[k].detail);
        }
    }
}

TEST(Speed, VerdictsPerSecond) {
    // A coarse guard (the benchmark measures properly): even an unoptimized
    // build must manage a million verdicts per second on a valid VMCB.
    const auto v = valid_vmcb64();
    const Context c{v, default_model(), profile(ProfileId::apm)};
    const auto t0 = std::chrono::steady_clock::now();
    std::size_t ok = 0;
    constexpr std::size_t kN = 2'000'000;
    for (std::size_t i = 0; i < kN; ++i) ok += vmrun_would_succeed(c) ? 1 : 0;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(ok, kN);
    RecordProperty("verdicts_per_second", static_cast<int>(static_cast<double>(kN) / s));
    std::printf("[ info ] %.1f M verdicts/s (valid VMCB, apm, zen4)\n", static_cast<double>(kN) / s / 1e6);
    EXPECT_GT(static_cast<double>(kN) / s, 1e6);
}

}  // namespace
}  // namespace nsvm::checks::test

// The checks decided by the VMSA's SEV_FEATURES (which nsvm repair leaves
// unrepaired beyond their VMCB half) are derived from the entry, not listed:
// exactly the checks whose boundary witnesses give a VMSA SEV_FEATURES value.
TEST(Catalogue, SevFeaturesChecksAreThoseWhoseWitnessesGiveTheVmsaValue) {
    int derived = 0;
    for (const auto& c : nsvm::checks::catalogue()) {
        bool witness_gives_it = false;
        for (const auto& b : c.boundary) witness_gives_it |= b.vmsa_sev_features.has_value();
        EXPECT_EQ(c.decided_by_vmsa_sev_features(), witness_gives_it) << c.id;
        derived += c.decided_by_vmsa_sev_features() ? 1 : 0;
    }
    EXPECT_GE(derived, 7);  // P4-P7, P10, the EVENTINJ half of P6, Secure AVIC
}
