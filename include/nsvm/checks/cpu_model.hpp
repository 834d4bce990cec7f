// CPU models: what the consistency checks depend on (docs/formats.md "CPU model").
// MAXPHYADDR, the virtual-address width, CPUID features and SVM limits.
#pragma once

#include <bitset>
#include <cstddef>
#include <iterator>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "nsvm/util/expected.hpp"

namespace nsvm::checks {

/// CPU features, named after Linux /proc/cpuinfo flags where one exists.
/// Keep kFeatureNames in the same order.
#define NSVM_FEATURES(X)                                                                                  \
    X(lm) X(nx) X(pae) X(pse) X(pge) X(pcid) X(smep) X(smap) X(umip) X(pku) X(la57) X(fsgsbase) X(xsave)    \
    X(fxsr_opt) X(shstk) X(ibt) X(lam) X(fred) X(autoibrs) X(svm) X(npt) X(nrip_save) X(flushbyasid) X(vgif) \
    X(vnmi) X(lbrv) X(v_vmsave_vmload) X(avic) X(x2avic) X(sev) X(sev_es) X(sev_snp) X(tsc_scale)           \
    X(pausefilter) X(pfthreshold) X(decodeassists) X(vmcbclean) X(gmet) X(sss_check) X(svm_lock)            \
    X(pmc_virt) X(ibs_virt) X(idle_hlt) X(bus_lock_threshold) X(skinit) X(mcommit) X(erap)          \
    X(tce) X(uai) X(pks) X(sev_64bit_host) X(allowed_sev_features) X(rdtscp) X(rdpru) X(invpcid)

enum class Feature : std::uint8_t {
#define NSVM_X(f) f,
    NSVM_FEATURES(NSVM_X)
#undef NSVM_X
    count_
};
inline constexpr std::size_t kFeatureCount = static_cast<std::size_t>(Feature::count_);

[[nodiscard]] std::string_view feature_name(Feature f) noexcept;
/// Accepts the canonical names, '-' for '_', case-insensitively, and common
/// aliases (nrips, np, ospke, flush_by_asid, avic_x2apic ...).
[[nodiscard]] std::optional<Feature> find_feature(std::string_view name) noexcept;
/// Every canonical feature name, in Feature order (for suggestions and listings).
[[nodiscard]] std::span<const std::string_view> feature_names() noexcept;

/// A register bit that exists only with a CPUID feature.
struct FeatureGate {
    Feature feature;
    std::uint64_t bits;
};

/// APM 3.1.3: CR4 bits that exist only with a CPUID feature. Setting one whose
/// feature is absent is an MBZ violation. VMXE and SMXE (Intel only), bit 15,
/// KL, UINTR and every undefined bit stay reserved on AMD.
inline constexpr FeatureGate kCr4FeatureBits[] = {
    {Feature::pse, 1ULL << 4},      {Feature::pae, 1ULL << 5},       {Feature::pge, 1ULL << 7},
    {Feature::umip, 1ULL << 11},    {Feature::la57, 1ULL << 12},     {Feature::fsgsbase, 1ULL << 16},
    {Feature::pcid, 1ULL << 17},    {Feature::xsave, 1ULL << 18},    {Feature::smep, 1ULL << 20},
    {Feature::smap, 1ULL << 21},    {Feature::pku, 1ULL << 22},      {Feature::shstk, 1ULL << 23},
    {Feature::ibt, 1ULL << 23},     {Feature::pks, 1ULL << 24},      {Feature::lam, 1ULL << 28},
    {Feature::fred, 1ULL << 32},
};
/// CR4 bits every AMD64 CPU has: VME PVI TSD DE MCE PCE OSFXSR OSXMMEXCPT.
inline constexpr std::uint64_t kCr4AlwaysValid = 0xF | (1ULL << 6) | (1ULL << 8) | (1ULL << 9) | (1ULL << 10);

/// APM 3.1.7: EFER bits that exist only with a CPUID feature. LMSLE (bit 13)
/// stays reserved: Zen reports EferLmsleUnsupported (Fn8000_0008_EBX[20]) and
/// no model here offers it; INTWB likewise.
inline constexpr FeatureGate kEferFeatureBits[] = {
    {Feature::lm, (1ULL << 8) | (1ULL << 10)}, {Feature::nx, 1ULL << 11},      {Feature::svm, 1ULL << 12},
    {Feature::fxsr_opt, 1ULL << 14},           {Feature::tce, 1ULL << 15},     {Feature::mcommit, 1ULL << 17},
    {Feature::uai, 1ULL << 20},                {Feature::autoibrs, 1ULL << 21},
};
/// EFER.SCE exists on every AMD64 CPU (SYSCALL, Fn8000_0001_EDX[11]).
inline constexpr std::uint64_t kEferAlwaysValid = 1;

static_assert(kFeatureCount <= 64, "the feature set must fit one word for the branch-free masks");

struct CpuModel {
    std::string name;
    std::string description;
    unsigned maxphyaddr = 48;      ///< CPUID Fn8000_0008_EAX[7:0]
    unsigned va_width = 48;        ///< 57 with LA57
    std::uint32_t num_asids = 32768;            ///< CPUID Fn8000_000A_EBX
    std::uint32_t num_encrypted_guests = 0;     ///< CPUID Fn8000_001F_ECX

    [[nodiscard]] const std::bitset<kFeatureCount>& features() const noexcept { return features_; }
    [[nodiscard]] bool has(Feature f) const noexcept { return features_[static_cast<std::size_t>(f)]; }
    void set(Feature f, bool on = true) noexcept {
        features_.set(static_cast<std::size_t>(f), on);
        derive_masks();
    }
    /// No feature at all (a feature list that replaces a model's).
    void clear_features() noexcept {
        features_.reset();
        derive_masks();
    }
    /// Bits at or above MAXPHYADDR: a GPA with any of them set is illegal.
    [[nodiscard]] std::uint64_t reserved_pa_bits() const noexcept {
        return maxphyaddr >= 64 ? 0 : ~((std::uint64_t{1} << maxphyaddr) - 1);
    }
    /// CR4 bits that are MBZ on this CPU (architecturally reserved bits plus
    /// feature bits whose feature is absent), APM 3.1.3.
    [[nodiscard]] std::uint64_t cr4_reserved_bits() const noexcept { return cr4_reserved_; }
    /// EFER bits that are MBZ on this CPU, APM 3.1.7.
    [[nodiscard]] std::uint64_t efer_reserved_bits() const noexcept { return efer_reserved_; }

    friend bool operator==(const CpuModel&, const CpuModel&) = default;

private:
    /// The masks above, from the features: every VMRUN's checks read them, so
    /// they are derived when a feature changes, not on every read.
    void derive_masks() noexcept {
        cr4_reserved_ = ~valid_bits(kCr4FeatureBits, kCr4AlwaysValid);
        efer_reserved_ = ~valid_bits(kEferFeatureBits, kEferAlwaysValid);
    }
    template <std::size_t N>
    [[nodiscard]] std::uint64_t valid_bits(const FeatureGate (&gates)[N], std::uint64_t always) const noexcept {
        const std::uint64_t w = features_.to_ullong();
        std::uint64_t valid = always;
        for (const FeatureGate& g : gates) valid |= (0 - ((w >> static_cast<unsigned>(g.feature)) & 1)) & g.bits;
        return valid;
    }

    std::bitset<kFeatureCount> features_;
    std::uint64_t cr4_reserved_ = ~kCr4AlwaysValid;    ///< no features: only the always-valid bits
    std::uint64_t efer_reserved_ = ~kEferAlwaysValid;
};

/// Built-in models: "zen4" (default, a modern EPYC Genoa), "zen5" (EPYC
/// Turin), "zen3", "qemu-tcg" (QEMU 7.2 TCG -cpu max), "bochs-ryzen" (Bochs
/// 2.7 ryzen).
[[nodiscard]] std::span<const CpuModel> builtin_models();
[[nodiscard]] const CpuModel& default_model();
[[nodiscard]] nsvm::expected<CpuModel, std::string> find_builtin_model(std::string_view name);

/// One CPUID leaf's registers.
struct CpuidRegs {
    std::uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};
/// The CPUID leaves a model of the host is built from (AMD APM Vol. 3
/// Appendix E). A leaf above the processor's highest one stays all zeros.
struct HostCpuid {
    std::string vendor;  ///< Fn0000_0000 EBX, EDX, ECX: "AuthenticAMD", "GenuineIntel", ...
    std::string brand;   ///< Fn8000_0002..4, spaces trimmed (may be empty)
    CpuidRegs std1;      ///< Fn0000_0001
    CpuidRegs std7;      ///< Fn0000_0007, ECX = 0
    CpuidRegs ext1;      ///< Fn8000_0001
    CpuidRegs ext8;      ///< Fn8000_0008
    CpuidRegs svm;       ///< Fn8000_000A (SVM revision and features)
    CpuidRegs sev;       ///< Fn8000_001F (memory encryption)
    CpuidRegs ext21;     ///< Fn8000_0021 (extended features 2)
};
/// The model of a processor with these CPUID values, named "host"; an error
/// (for `--cpu host`) when the vendor is not AMD or CPUID reports no SVM.
/// Pure: executing CPUID on this machine is the CLI's job (`--cpu host`), so
/// that the checks stay a function of VMCB, CPU model and profile.
[[nodiscard]] nsvm::expected<CpuModel, std::string> model_from_cpuid(const HostCpuid& id);

/// Applies "+x,-y" edits (or a list of such tokens); the error names the
/// unknown feature and the closest known one.
[[nodiscard]] nsvm::expected<void, std::string> apply_feature_edits(CpuModel& model, std::string_view edits);

}  // namespace nsvm::checks
