// Behaviour profiles (docs/formats.md "Behaviour profiles"): where the APM is silent or
// ambiguous, or implementations differ, each profile makes a named choice,
// with its reason, listed by `nsvm profile show NAME`.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nsvm/util/expected.hpp"

namespace nsvm::checks {

enum class ProfileId : std::uint8_t { apm, kvm, qemu, bochs, xen, hyperv };
inline constexpr std::size_t kProfileCount = 6;

/// Bit set over ProfileId: which profiles apply a check (derived from the
/// check's applies(), for display).
using ProfileMask = std::uint8_t;
[[nodiscard]] constexpr ProfileMask mask_of(ProfileId p) noexcept { return ProfileMask(1U << unsigned(p)); }
inline constexpr ProfileMask kAllProfiles = 0x3F;

/// Which paging modes the CR3 MBZ check looks at (APM 15.5.1 "any MBZ bit of CR3", formats of APM 5.3.2).
enum class Cr3Rule : std::uint8_t {
    by_paging_mode,        ///< apm: long mode: 2:0, 11:5 (none with PCIDE), >= MAXPHYADDR; PAE or legacy
                           ///< paging: >= MAXPHYADDR (low bits ignored); paging off: not checked
    format_always,         ///< hyperv: the format CR4.PAE selects even with paging off, 63:32 MBZ
                           ///< outside long mode (rejects KVM's SMM-entry state)
    long_mode_only,        ///< kvm: only when EFER.LME && CR0.PG (bits >= MAXPHYADDR)
    host_lma_pa_bits,      ///< qemu: bits >= PA width, only when the *host* EFER.LMA = 1
    none,                  ///< bochs: no CR3 check
    xen_low_bits,          ///< xen: cr3 & 7, cr3 & 0xFE0 outside PAE, bits >= MAXPHYADDR in long mode
    kvm_legal_gpa,         ///< kvm: bits >= MAXPHYADDR in any mode (LAM bits 62:61 ignored with lam);
                           ///< decided early when LME&PG, otherwise late by nested_svm_load_cr3
};
/// Which EFER.LMA the model believes for "is the guest in long mode".
enum class LmaSource : std::uint8_t {
    lme_and_pg,            ///< apm/kvm/bochs: long mode = EFER.LME && CR0.PG (the VMCB's LMA is not consulted)
    vmcb,                  ///< qemu/xen: EFER.LMA exactly as the VMCB holds it
};
/// NP_ENABLE set on a CPU model without the npt feature.
enum class NpWithoutFeature : std::uint8_t {
    ignored,               ///< apm/bochs: the bit has no effect; no nested paging, no NP checks
    sanitized,             ///< kvm: cleared in the cached copy before the checks (v7 patch 14)
    honoured,              ///< qemu/xen: nested paging (and its checks) as if the CPU had it
};
/// Which nCR3 bits are checked with NP_ENABLE (APM 15.25.4).
enum class Ncr3Rule : std::uint8_t {
    none,                  ///< qemu/xen: nCR3 taken as is
    pa_bits,               ///< apm/kvm: bits >= MAXPHYADDR
    pa_bits_host_long_mode,///< bochs: bits >= 40, only while the host is in long mode
};
/// How an EVENTINJ exception vector is judged (APM 15.20).
enum class EventVectorRule : std::uint8_t {
    apm_exceptions,        ///< apm/kvm: only defined exception vectors (CP with shstk, VC with sev_es)
    reject_2_and_ge31,     ///< qemu: reject 2 and >= 31
    reject_2_and_gt31,     ///< bochs/xen: reject 2 and > 31
};
/// How far a permission map must stay below 2^MAXPHYADDR (APM 15.10.1, 15.11).
enum class BitmapLimitRule : std::uint8_t {
    last_byte,             ///< apm/kvm: base (page) + size - 1 must be a legal PA
    qemu_base,             ///< qemu: page base >= 2^pa - 8K (MSRPM) / - (8K+1) (IOPM) fails
    base_only,             ///< bochs: only the page base beyond the PA width fails
    none,                  ///< xen: not checked
};
/// What a failed VMRUN leaves in the VMCB's save area (APM 15.6 is silent on it).
enum class FailureWriteback : std::uint8_t {
    exit_fields_only,      ///< apm/kvm: exit_code, exit_info_1/2, event_inj cleared; save area untouched
    host_state,            ///< qemu/bochs: the state live at the failure (host values for early checks)
};

struct Choice {
    std::string_view key;     ///< stable name, e.g. "cr3_rule"
    std::string value;        ///< the profile's value, as text
    std::string_view reason;  ///< why, with the source (APM section, KVM commit, emulator behaviour)
};

/// The settings of a profile. Each member is one row of the settings table in
/// src/checks/profile.cpp, which writes every profile's value beside its
/// reason and names the one check or code path that reads it; a member without
/// a row, or a row nothing reads, fails tests/nested/settings_read_test.cpp.
/// No member has a default here: the table is the only place values are written.
struct Profile {
    ProfileId id{};
    std::string_view name;
    std::string_view description;

    // --- Consistency checks (read by the catalogue's applies() and predicates) ---
    Cr3Rule cr3_rule{};
    LmaSource lma_source{};
    bool efer_lma_without_lme_checked{};     ///< EFER.LMA = 1 with LME = 0 fails (Xen's rule)
    EventVectorRule event_vector_rule{};
    bool event_type_check{};                 ///< E2
    bool event_vector_check{};               ///< E3
    bool eventinj_reserved_bits_fail{};      ///< EVENTINJ[30:12] != 0 fails
    bool eventinj_impossible_in_mode{};      ///< E1: #BR/#OF injected into a 64-bit guest
    bool sev_es_event_check{};               ///< E4
    BitmapLimitRule bitmap_limit_rule{};
    std::uint32_t msrpm_checked_size{};      ///< bytes covered by the MSRPM extent rule
    std::uint32_t iopm_checked_size{};       ///< bytes covered by the IOPM extent rule
    unsigned pa_check_width{};               ///< 0: the model's MAXPHYADDR
    std::uint64_t efer_fixed_valid{};        ///< 0: model-derived EFER MBZ set; else the only valid bits
    std::uint64_t efer_always_reserved{};    ///< EFER bits rejected whatever the model says (never let a guest set)
    bool efer_lm_check{};                    ///< C9 LME/LMA without long mode
    std::uint64_t cr4_always_reserved{};     ///< CR4 bits rejected whatever the model says
    std::uint64_t cr4_ungated{};             ///< feature CR4 bits accepted even without the feature
    std::uint64_t dr6_reserved{};            ///< DR6 bits whose being set fails (C6)
    std::uint64_t dr7_reserved{};            ///< DR7 bits whose being set fails (C7)
    bool cs_l_d_any_mode{};                  ///< CS.L && CS.D illegal in any mode
    bool cs_l_d_needs_pae{};                 ///< CS.L && CS.D checked only with CR4.PAE as well
    bool long_mode_pe_check{};               ///< C11 LME && PG && !PE
    bool pcide_without_lma_fails{};          ///< CR4.PCIDE outside long mode fails
    bool cet_checks{};                       ///< C17, C18
    bool asid_check{};                       ///< C16
    bool vmrun_intercept_check{};            ///< C13
    NpWithoutFeature np_without_feature{};
    Ncr3Rule ncr3_rule{};
    bool g_pat_check{};                      ///< N3, only with nested paging
    bool np_host_paging_check{};             ///< N1 (needs host state)
    bool sss_check{};                        ///< N4
    bool vnmi_check{};                       ///< V1
    bool vnmi_needs_feature{};               ///< V1 only when the model has vnmi
    bool avic_checks{};                      ///< A1-A3
    bool sev_checks{};                       ///< S1-S4, P-rows decidable from the VMCB
    bool inferred_rules{};                   ///< A4, S5: requirements with no named exit
    bool pdpe_check{};                       ///< C21 PAE PDPEs (needs guest memory)
    bool ud_without_paging{};                ///< VMRUN with host CR0.PG = 0 is #UD
    bool smm_vmrun_ud{};                     ///< VMRUN in SMM is #UD
    bool v86_vmrun_ud{};                     ///< VMRUN family in virtual-8086 mode is #UD (not #GP)
    bool rax_checks{};                       ///< #GP for misaligned / too-wide rAX
    bool hsave_zero_gp{};                    ///< VMRUN with VM_HSAVE_PA = 0 is #GP

    // --- Failure and exit semantics (read by the cpu, nested and oracle layers) ---
    FailureWriteback failure_writeback{};
    bool cr3_late_failure{};                 ///< non-long-mode CR3 fails after partial entry
    bool late_failure_full_vmexit{};         ///< such a late failure writes vmcb12 by a full #VMEXIT
    bool exit_code_32bit{};                  ///< VMEXIT_INVALID stored zero-extended
    bool clear_gif_on_failure{};             ///< VMEXIT_INVALID clears GIF
    bool eventinj_cleared_on_failure{};      ///< EVENTINJ zeroed in the VMCB after a failed VMRUN
    bool vmexit_dr7_from_hsave{};            ///< #VMEXIT restores host DR7 instead of 0x400
    bool hsave_used{};                       ///< host state is saved at VM_HSAVE_PA
    bool canonical_writeback{};              ///< canonicalized bases written back on #VMEXIT
    bool nrip_on_every_exit{};               ///< nRIP written on every exit

    /// Every choice of this profile with its reason, in a stable order.
    [[nodiscard]] std::span<const Choice> choices() const noexcept;
};

/// One row of the settings table, for tools and tests: its key, which check
/// or code path reads it, and the profile with the setting at every other
/// value it can take (how tests/nested/settings_read_test.cpp proves that
/// something reads it).
struct Setting {
    std::string_view key;
    std::string_view read_by;
    std::function<std::vector<Profile>(const Profile&)> others;
};
[[nodiscard]] std::span<const Setting> settings() noexcept;

/// The effective physical-address width for the PA-limit checks.
[[nodiscard]] inline unsigned pa_width(const Profile& p, unsigned maxphyaddr) noexcept {
    return p.pa_check_width != 0 ? p.pa_check_width : maxphyaddr;
}

[[nodiscard]] const Profile& profile(ProfileId id) noexcept;
[[nodiscard]] std::span<const Profile> all_profiles() noexcept;
[[nodiscard]] nsvm::expected<ProfileId, std::string> find_profile(std::string_view name);

}  // namespace nsvm::checks
