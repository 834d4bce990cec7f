// CPU models (docs/formats.md "CPU model"): feature names, the built-in models and the
// CR4/EFER reserved-bit masks derived from a model's features.
#include "nsvm/checks/cpu_model.hpp"

#include <array>
#include <cctype>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "nsvm/arch/bits.hpp"
#include "nsvm/util/text.hpp"

namespace nsvm::checks {
namespace {

constexpr std::array<std::string_view, kFeatureCount> kFeatureNames = {
#define NSVM_X(f) #f,
    NSVM_FEATURES(NSVM_X)
#undef NSVM_X
};

struct Alias {
    std::string_view alias;
    Feature feature;
};
// Other spellings people use: the APM's CPUID field names (Fn8000_000A_EDX),
// QEMU's -cpu property names, and older Linux flag names.
constexpr std::array kAliases = {
    Alias{"nrips", Feature::nrip_save},          Alias{"nrip", Feature::nrip_save},
    Alias{"np", Feature::npt},                   Alias{"nested_paging", Feature::npt},
    Alias{"ospke", Feature::pku},                Alias{"flush_by_asid", Feature::flushbyasid},
    Alias{"pause_filter", Feature::pausefilter}, Alias{"pause_filter_threshold", Feature::pfthreshold},
    Alias{"pfthresh", Feature::pfthreshold},     Alias{"decode_assists", Feature::decodeassists},
    Alias{"vmcb_clean", Feature::vmcbclean},     Alias{"vmcbcleanbits", Feature::vmcbclean},
    Alias{"v_vmsave", Feature::v_vmsave_vmload}, Alias{"vls", Feature::v_vmsave_vmload},
    Alias{"virtual_vmload_vmsave", Feature::v_vmsave_vmload},
    Alias{"x2avic_ext", Feature::x2avic},        Alias{"avic_x2apic", Feature::x2avic},
    Alias{"svml", Feature::svm_lock},            Alias{"svm_lock", Feature::svm_lock},
    Alias{"user_shstk", Feature::shstk},         Alias{"cet_ss", Feature::shstk},
    Alias{"auto_ibrs", Feature::autoibrs},       Alias{"ffxsr", Feature::fxsr_opt},
    Alias{"nxe", Feature::nx},                   Alias{"tsc_ratio", Feature::tsc_scale},
    Alias{"tscratemsr", Feature::tsc_scale},     Alias{"sss", Feature::sss_check},
    Alias{"perfctr_virt", Feature::pmc_virt},    Alias{"lm64", Feature::lm},
    Alias{"x86_64", Feature::lm},                Alias{"sevsnp", Feature::sev_snp},
    Alias{"seves", Feature::sev_es},             Alias{"lbr_virt", Feature::lbrv},
    Alias{"vgif_enable", Feature::vgif},         Alias{"upper_address_ignore", Feature::uai},
    Alias{"allowedsevfeatures", Feature::allowed_sev_features},
    Alias{"allowed_sev_features_en", Feature::allowed_sev_features},
};

std::string normalize(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        out.push_back(c == '-' ? '_' : static_cast<char>(std::tolower(u)));
    }
    return out;
}

CpuModel with(std::string name, std::string description, unsigned pa, unsigned va, std::uint32_t asids,
              std::uint32_t enc, std::initializer_list<Feature> fs) {
    CpuModel m;
    m.name = std::move(name);
    m.description = std::move(description);
    m.maxphyaddr = pa;
    m.va_width = va;
    m.num_asids = asids;
    m.num_encrypted_guests = enc;
    for (auto f : fs) m.set(f);
    return m;
}

using F = Feature;

std::vector<CpuModel> make_models() {
    std::vector<CpuModel> v;
    // AMD EPYC 9004 "Genoa" (Zen 4). Sources: AMD PPR for family 19h model
    // 11h (CPUID Fn8000_0008_EAX = 52-bit PA with 57-bit VA via LA57;
    // Fn8000_000A_EBX = 32768 ASIDs; Fn8000_000A_EDX adds vNMI and x2AVIC in
    // Zen 4; Fn8000_001F_ECX = 1006 encrypted guests), and the flags Linux
    // prints in /proc/cpuinfo on Genoa. No IBT, LAM or FRED on AMD; no GMET,
    // PMC/IBS virtualization, idle-HLT or bus-lock threshold before Zen 5.
    v.push_back(with("zen4", "AMD EPYC 9004 (Genoa, Zen 4): 52-bit PA, LA57, SEV-SNP, vNMI, x2AVIC", 52, 57, 32768,
                     1006,
                     {F::lm,        F::nx,         F::pae,       F::pse,           F::pge,       F::pcid,
                      F::smep,      F::smap,       F::umip,      F::pku,           F::la57,      F::fsgsbase,
                      F::xsave,     F::fxsr_opt,   F::shstk,     F::autoibrs,      F::svm,       F::npt,
                      F::nrip_save, F::flushbyasid, F::vgif,     F::vnmi,          F::lbrv,      F::v_vmsave_vmload,
                      F::avic,      F::x2avic,     F::sev,       F::sev_es,        F::sev_snp,   F::tsc_scale,
                      F::pausefilter, F::pfthreshold, F::decodeassists, F::vmcbclean, F::svm_lock, F::skinit,
                      F::tce,       F::uai,        F::sev_64bit_host, F::rdtscp, F::rdpru,  F::invpcid}));
    // AMD EPYC 9005 "Turin" (Zen 5): Zen 4's features plus what AMD names as
    // new in Zen 5. ALLOWED_SEV_FEATURES (VMCB 138h, APM 15.36.20; CPUID
    // Fn8000_001F_EAX[27]): Kim Phillips' KVM series "KVM: SEV: Add support
    // for the ALLOWED_SEV_FEATURES feature" (2025): "AMD EPYC 5th generation
    // processors have introduced" it. The same cover letter lists Zen 5's
    // SEV-ES features as DEBUG_SWAP, PREVENT_HOST_IBS, VMGEXIT_PARAMETER,
    // PMC_VIRTUALIZATION and IBS_VIRTUALIZATION, hence PMC and IBS
    // virtualization. Nothing else is added: what else Turin has is not
    // cited here. 52-bit PA and LA57 as Zen 4; ASIDs and encrypted guests
    // are taken as Genoa's. Unverified: no public source found gives Turin's
    // Fn8000_001F_ECX (encrypted guests, here 1006) or EDX (minimum SEV
    // ASID, which the firmware sets), nor its Fn8000_000A_EBX.
    v.push_back(with("zen5",
                     "AMD EPYC 9005 (Turin, Zen 5): Zen 4 plus ALLOWED_SEV_FEATURES, PMC and IBS virtualization", 52,
                     57, 32768, 1006,
                     {F::lm,        F::nx,         F::pae,       F::pse,           F::pge,       F::pcid,
                      F::smep,      F::smap,       F::umip,      F::pku,           F::la57,      F::fsgsbase,
                      F::xsave,     F::fxsr_opt,   F::shstk,     F::autoibrs,      F::svm,       F::npt,
                      F::nrip_save, F::flushbyasid, F::vgif,     F::vnmi,          F::lbrv,      F::v_vmsave_vmload,
                      F::avic,      F::x2avic,     F::sev,       F::sev_es,        F::sev_snp,   F::tsc_scale,
                      F::pausefilter, F::pfthreshold, F::decodeassists, F::vmcbclean, F::svm_lock, F::skinit,
                      F::tce,       F::uai,        F::sev_64bit_host, F::allowed_sev_features, F::pmc_virt,
                      F::ibs_virt,  F::rdtscp,     F::rdpru,     F::invpcid}));
    // AMD EPYC 7003 "Milan" (Zen 3): 48-bit PA/VA (no LA57), SEV-SNP with 509
    // encrypted guests (Fn8000_001F_ECX), shadow stacks; no vNMI, x2AVIC,
    // AutoIBRS or UAI (those arrived with Zen 4). PPR family 19h model 01h.
    // RDTSCP (every Zen), RDPRU (since Zen 2) and INVPCID (since Zen 3) in
    // all three EPYC models.
    v.push_back(with("zen3", "AMD EPYC 7003 (Milan, Zen 3): 48-bit PA, SEV-SNP", 48, 48, 32768, 509,
                     {F::lm,        F::nx,         F::pae,       F::pse,           F::pge,       F::pcid,
                      F::smep,      F::smap,       F::umip,      F::pku,           F::fsgsbase,  F::xsave,
                      F::fxsr_opt,  F::shstk,      F::svm,       F::npt,           F::nrip_save, F::flushbyasid,
                      F::vgif,      F::lbrv,       F::v_vmsave_vmload, F::avic,    F::sev,       F::sev_es,
                      F::sev_snp,   F::tsc_scale,  F::pausefilter, F::pfthreshold, F::decodeassists,
                      F::vmcbclean, F::svm_lock,   F::skinit,    F::tce,           F::sev_64bit_host,
                      F::rdtscp,    F::rdpru,      F::invpcid}));
    // QEMU 7.2 TCG "-cpu max" (QEMU target/i386/cpu.c
    // TCG_*_FEATURES): 40-bit physical addresses, LA57, UMIP, PKU, PKS, SMEP,
    // SMAP, FSGSBASE, XSAVE, RDTSCP; SVM with TCG_SVM_FEATURES = NPT | VGIF (plus
    // SVME_ADDR_CHK): no NRIPS, decode assists, clean bits, pause filter or
    // AVIC; 16 ASIDs. PCID, INVPCID (user mode only) and RDPRU are not in the
    // 7.2 system-mode TCG feature words.
    v.push_back(with("qemu-tcg", "QEMU 7.2 TCG -cpu max: 40-bit PA, SVM with NPT and VGIF only, 16 ASIDs", 40, 57,
                     16, 0,
                     {F::lm, F::nx, F::pae, F::pse, F::pge, F::smep, F::smap, F::umip, F::pku, F::la57, F::pks,
                      F::fsgsbase, F::xsave, F::fxsr_opt, F::svm, F::npt, F::vgif, F::skinit, F::rdtscp}));
    // Bochs 2.7 "ryzen" (cpu/cpudb/amd/ryzen.cc):
    // CPUID 8000000A EDX = 0x44f (NP, LBRV, SVM-Lock, NRIPS, FlushByAsid,
    // PauseFilter), 32768 ASIDs; physical-address checks use Bochs'
    // compile-time 40 bits. Zen 1 has RDTSCP but no PCID, INVPCID, RDPRU, PKU,
    // UMIP or LA57.
    v.push_back(with("bochs-ryzen", "Bochs 2.7 ryzen: 40-bit PA checks, NP, LBRV, NRIPS, FlushByAsid, PauseFilter",
                     40, 48, 32768, 0,
                     {F::lm, F::nx, F::pae, F::pse, F::pge, F::smep, F::smap, F::fsgsbase, F::xsave, F::fxsr_opt,
                      F::svm, F::npt, F::lbrv, F::svm_lock, F::nrip_save, F::flushbyasid, F::pausefilter,
                      F::skinit, F::rdtscp}));
    return v;
}

const std::vector<CpuModel>& models() {
    static const std::vector<CpuModel> m = make_models();
    return m;
}

}  // namespace

std::string_view feature_name(Feature f) noexcept {
    const auto i = static_cast<std::size_t>(f);
    return i < kFeatureCount ? kFeatureNames[i] : std::string_view{};
}

std::span<const std::string_view> feature_names() noexcept { return kFeatureNames; }

std::optional<Feature> find_feature(std::string_view name) noexcept {
    std::string n;
    try {
        n = normalize(name);
    } catch (...) {
        return std::nullopt;
    }
    for (std::size_t i = 0; i < kFeatureCount; ++i) {
        if (kFeatureNames[i] == n) return static_cast<Feature>(i);
    }
    for (const auto& a : kAliases) {
        if (a.alias == n) return a.feature;
    }
    return std::nullopt;
}

// The gate tables in cpu_model.hpp spell the bits as literals (the header
// stays free of arch/); pin them to the named constants here.
static_assert(kCr4AlwaysValid == (arch::cr4::VME | arch::cr4::PVI | arch::cr4::TSD | arch::cr4::DE | arch::cr4::MCE |
                                  arch::cr4::PCE | arch::cr4::OSFXSR | arch::cr4::OSXMMEXCPT));
static_assert(kCr4FeatureBits[0].bits == arch::cr4::PSE && kCr4FeatureBits[1].bits == arch::cr4::PAE &&
              kCr4FeatureBits[2].bits == arch::cr4::PGE && kCr4FeatureBits[3].bits == arch::cr4::UMIP &&
              kCr4FeatureBits[4].bits == arch::cr4::LA57 && kCr4FeatureBits[5].bits == arch::cr4::FSGSBASE &&
              kCr4FeatureBits[6].bits == arch::cr4::PCIDE && kCr4FeatureBits[7].bits == arch::cr4::OSXSAVE &&
              kCr4FeatureBits[8].bits == arch::cr4::SMEP && kCr4FeatureBits[9].bits == arch::cr4::SMAP &&
              kCr4FeatureBits[10].bits == arch::cr4::PKE && kCr4FeatureBits[11].bits == arch::cr4::CET &&
              kCr4FeatureBits[12].bits == arch::cr4::CET && kCr4FeatureBits[13].bits == arch::cr4::PKS &&
              kCr4FeatureBits[14].bits == arch::cr4::LAM_SUP && kCr4FeatureBits[15].bits == arch::cr4::FRED);
static_assert(kEferAlwaysValid == arch::efer::SCE);
static_assert(kEferFeatureBits[0].bits == (arch::efer::LME | arch::efer::LMA) &&
              kEferFeatureBits[1].bits == arch::efer::NXE && kEferFeatureBits[2].bits == arch::efer::SVME &&
              kEferFeatureBits[3].bits == arch::efer::FFXSR && kEferFeatureBits[4].bits == arch::efer::TCE &&
              kEferFeatureBits[5].bits == arch::efer::MCOMMIT && kEferFeatureBits[6].bits == arch::efer::UAIE &&
              kEferFeatureBits[7].bits == arch::efer::AIBRSE);

std::span<const CpuModel> builtin_models() { return models(); }

const CpuModel& default_model() { return models().front(); }

nsvm::expected<CpuModel, std::string> find_builtin_model(std::string_view name) {
    std::vector<std::string_view> names;
    for (const auto& m : models()) {
        if (m.name == name) return m;
        names.push_back(m.name);
    }
    std::string known;
    for (auto n : names) known += (known.empty() ? "" : ", ") + std::string(n);
    const auto near = util::closest(name, names);
    return nsvm::unexpected(fmt::format("unknown CPU model '{}'{} (built-in models: {})", util::printable(name),
                                        near.empty() ? "" : fmt::format(", did you mean '{}'?", near), known));
}

namespace {

struct CpuidBit {
    std::uint32_t CpuidRegs::*reg;
    unsigned bit;
    Feature feature;
};
constexpr bool on(const CpuidRegs& r, std::uint32_t CpuidRegs::*reg, unsigned bit) noexcept {
    return ((r.*reg >> bit) & 1) != 0;
}

// AMD APM Vol. 3 Appendix E (CPUID), one table per leaf: only the bits of a
// feature nsvm's Feature enum knows. Fn8000_000A_EDX bits nsvm has no
// feature for (SpecCtrl 20, ROGPT 21, HOST_MCE_OVERRIDE 23, TlbiCtl 24,
// ExtLvtAvicAccessChg 27, NestedVirtVmcbAddrChk 28) are not read.
constexpr std::array kStd1 = {
    CpuidBit{&CpuidRegs::edx, 3, Feature::pse},   CpuidBit{&CpuidRegs::edx, 6, Feature::pae},
    CpuidBit{&CpuidRegs::edx, 13, Feature::pge},  CpuidBit{&CpuidRegs::ecx, 17, Feature::pcid},
    CpuidBit{&CpuidRegs::ecx, 26, Feature::xsave},
};
constexpr std::array kStd7 = {
    CpuidBit{&CpuidRegs::ebx, 0, Feature::fsgsbase}, CpuidBit{&CpuidRegs::ebx, 7, Feature::smep},
    CpuidBit{&CpuidRegs::ebx, 20, Feature::smap},    CpuidBit{&CpuidRegs::ecx, 2, Feature::umip},
    CpuidBit{&CpuidRegs::ecx, 3, Feature::pku},      CpuidBit{&CpuidRegs::ecx, 7, Feature::shstk},
    CpuidBit{&CpuidRegs::ecx, 16, Feature::la57},    CpuidBit{&CpuidRegs::ecx, 31, Feature::pks},
    CpuidBit{&CpuidRegs::edx, 20, Feature::ibt},     CpuidBit{&CpuidRegs::ebx, 10, Feature::invpcid},
};
constexpr std::array kExt1 = {
    CpuidBit{&CpuidRegs::ecx, 2, Feature::svm},     CpuidBit{&CpuidRegs::ecx, 12, Feature::skinit},
    CpuidBit{&CpuidRegs::ecx, 17, Feature::tce},    CpuidBit{&CpuidRegs::edx, 20, Feature::nx},
    CpuidBit{&CpuidRegs::edx, 25, Feature::fxsr_opt}, CpuidBit{&CpuidRegs::edx, 27, Feature::rdtscp},
    CpuidBit{&CpuidRegs::edx, 29, Feature::lm},
};
constexpr std::array kExt8 = {CpuidBit{&CpuidRegs::ebx, 4, Feature::rdpru}, CpuidBit{&CpuidRegs::ebx, 8, Feature::mcommit}};
// Fn8000_000A_EDX (APM E.4.9, "SVM Revision and Feature Identification").
constexpr std::array kSvm = {
    CpuidBit{&CpuidRegs::edx, 0, Feature::npt},             CpuidBit{&CpuidRegs::edx, 1, Feature::lbrv},
    CpuidBit{&CpuidRegs::edx, 2, Feature::svm_lock},        CpuidBit{&CpuidRegs::edx, 3, Feature::nrip_save},
    CpuidBit{&CpuidRegs::edx, 4, Feature::tsc_scale},       CpuidBit{&CpuidRegs::edx, 5, Feature::vmcbclean},
    CpuidBit{&CpuidRegs::edx, 6, Feature::flushbyasid},     CpuidBit{&CpuidRegs::edx, 7, Feature::decodeassists},
    CpuidBit{&CpuidRegs::edx, 10, Feature::pausefilter},    CpuidBit{&CpuidRegs::edx, 12, Feature::pfthreshold},
    CpuidBit{&CpuidRegs::edx, 13, Feature::avic},           CpuidBit{&CpuidRegs::edx, 15, Feature::v_vmsave_vmload},
    CpuidBit{&CpuidRegs::edx, 16, Feature::vgif},           CpuidBit{&CpuidRegs::edx, 17, Feature::gmet},
    CpuidBit{&CpuidRegs::edx, 18, Feature::x2avic},         CpuidBit{&CpuidRegs::edx, 19, Feature::sss_check},
    CpuidBit{&CpuidRegs::edx, 25, Feature::vnmi},           CpuidBit{&CpuidRegs::edx, 26, Feature::ibs_virt},
    CpuidBit{&CpuidRegs::edx, 29, Feature::bus_lock_threshold}, CpuidBit{&CpuidRegs::edx, 30, Feature::idle_hlt},
};
// Fn8000_001F_EAX (APM E.4.17, "Encrypted Memory Capabilities"); bit 27
// AllowedSevFeatures as Linux's X86_FEATURE_ALLOWED_SEV_FEATURES (19*32+27).
// Bit 11, 64BitHost ("SEV guest execution only allowed from a 64-bit
// host"): the klauspost/cpuid Go package reads SEV_64BIT from this leaf's
// EAX bit 11, and Cygwin's /proc/cpuinfo table (which follows Linux's flag
// names) lists bit 11 of this word as "sev_64b"; Linux's own
// X86_FEATURE_SEV_64B define was not found in a public source checked.
constexpr std::array kSev = {
    CpuidBit{&CpuidRegs::eax, 1, Feature::sev},  CpuidBit{&CpuidRegs::eax, 3, Feature::sev_es},
    CpuidBit{&CpuidRegs::eax, 4, Feature::sev_snp}, CpuidBit{&CpuidRegs::eax, 11, Feature::sev_64bit_host},
    CpuidBit{&CpuidRegs::eax, 27, Feature::allowed_sev_features},
};
// Fn8000_0021_EAX: UpperAddressIgnore 7, AutomaticIBRS 8, ERAPS 24 (Linux's
// X86_FEATURE_ERAPS is (20*32+24), word 20 being this leaf's EAX).
constexpr std::array kExt21 = {
    CpuidBit{&CpuidRegs::eax, 7, Feature::uai}, CpuidBit{&CpuidRegs::eax, 8, Feature::autoibrs},
    CpuidBit{&CpuidRegs::eax, 24, Feature::erap},
};

template <std::size_t N>
void read_bits(CpuModel& m, const CpuidRegs& r, const std::array<CpuidBit, N>& table) {
    for (const auto& b : table) m.set(b.feature, on(r, b.reg, b.bit));
}

constexpr std::string_view kNameAModel = "name a model (nsvm cpu list)";

}  // namespace

nsvm::expected<CpuModel, std::string> model_from_cpuid(const HostCpuid& id) {
    if (id.vendor != "AuthenticAMD")
        return nsvm::unexpected(fmt::format("this host's CPU is {}, not AMD: {}",
                                            id.vendor.empty() ? std::string("of no known vendor")
                                                              : util::printable(id.vendor),
                                            kNameAModel));
    if (!on(id.ext1, &CpuidRegs::ecx, 2))
        return nsvm::unexpected(fmt::format(
            "this host's CPU reports no SVM (CPUID Fn8000_0001_ECX[2] = 0; a VM without nested SVM, or SVM "
            "disabled in the firmware): {}",
            kNameAModel));
    CpuModel m;
    m.name = "host";
    m.description = id.brand.empty() ? std::string("this host's CPU (CPUID)")
                                     : fmt::format("this host's CPU (CPUID): {}", util::printable(id.brand));
    read_bits(m, id.std1, kStd1);
    read_bits(m, id.std7, kStd7);
    read_bits(m, id.ext1, kExt1);
    read_bits(m, id.ext8, kExt8);
    read_bits(m, id.svm, kSvm);
    read_bits(m, id.sev, kSev);
    read_bits(m, id.ext21, kExt21);
    // Fn8000_0008_EAX[7:0] PhysAddrSize, [15:8] LinAddrSize (57 with LA57).
    const unsigned pa = id.ext8.eax & 0xFF;
    const unsigned va = (id.ext8.eax >> 8) & 0xFF;
    m.maxphyaddr = pa >= 32 && pa <= 52 ? pa : 48;
    m.va_width = va == 57 || m.has(Feature::la57) ? 57 : 48;
    // Fn8000_000A_EBX NASID; Fn8000_001F_ECX NumEncryptedGuests.
    if (id.svm.ebx != 0) m.num_asids = id.svm.ebx;
    m.num_encrypted_guests = m.has(Feature::sev) ? id.sev.ecx : 0;
    return m;
}

nsvm::expected<void, std::string> apply_feature_edits(CpuModel& model, std::string_view edits) {
    // Tokens are separated by commas or whitespace; each is +name, -name or
    // name (= +name). Nothing is applied unless every token is valid.
    std::vector<std::pair<Feature, bool>> parsed;
    std::size_t i = 0;
    while (i < edits.size()) {
        while (i < edits.size() && (edits[i] == ',' || std::isspace(static_cast<unsigned char>(edits[i])))) ++i;
        std::size_t j = i;
        while (j < edits.size() && edits[j] != ',' && !std::isspace(static_cast<unsigned char>(edits[j]))) ++j;
        if (j == i) break;
        std::string_view tok = edits.substr(i, j - i);
        i = j;
        bool on = true;
        if (tok.front() == '+' || tok.front() == '-') {
            on = tok.front() == '+';
            tok.remove_prefix(1);
        }
        if (tok.empty()) return nsvm::unexpected(std::string("empty feature name after '+' or '-'"));
        const auto f = find_feature(tok);
        if (!f) {
            const auto near = util::closest(normalize(tok), kFeatureNames);
            return nsvm::unexpected(fmt::format("unknown CPU feature '{}'{}", util::printable(tok),
                                                near.empty() ? "" : fmt::format(", did you mean '{}'?", near)));
        }
        parsed.emplace_back(*f, on);
    }
    for (auto [f, on] : parsed) {
        model.set(f, on);
        // LA57 widens linear addresses to 57 bits (APM 5.3.1).
        if (f == Feature::la57) model.va_width = on ? 57 : 48;
    }
    return {};
}

}  // namespace nsvm::checks
