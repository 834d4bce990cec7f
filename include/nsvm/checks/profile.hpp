// Behaviour profiles (docs/formats.md "Behaviour profiles"): where the APM is silent or
// ambiguous, or implementations differ, each profile makes a named choice,
// with its reason, listed by `nsvm profile show NAME`.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "nsvm/util/expected.hpp"

namespace nsvm::checks {

enum class ProfileId : std::uint8_t { apm, kvm, qemu, bochs, xen, hyperv };
inline constexpr std::size_t kProfileCount = 6;

/// Bit set over ProfileId, for "which profiles apply this check".
using ProfileMask = std::uint8_t;
[[nodiscard]] constexpr ProfileMask mask_of(ProfileId p) noexcept { return ProfileMask(1U << unsigned(p)); }
inline constexpr ProfileMask kAllProfiles = 0x3F;

/// Which paging modes the CR3 MBZ check looks at (apm-svm.md §3 C4).
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
    lme_and_pg,            ///< apm/kvm/bochs: long mode = EFER.LME && CR0.PG (VMCB LMA only for efer_lma_checked)
    vmcb,                  ///< qemu/xen: EFER.LMA exactly as the VMCB holds it
};
/// NP_ENABLE set on a CPU model without the npt feature.
enum class NpWithoutFeature : std::uint8_t {
    ignored,               ///< apm/bochs: the bit has no effect; no nested paging, no NP checks
    sanitized,             ///< kvm: cleared in the cached copy before the checks (v7 patch 14)
    honoured,              ///< qemu/xen: nested paging (and its checks) as if the CPU had it
};
/// Which nCR3 bits are checked with NP_ENABLE (apm-svm.md §3 N2).
enum class Ncr3Rule : std::uint8_t {
    none,                  ///< qemu/xen: nCR3 taken as is
    pa_bits,               ///< apm/kvm: bits >= MAXPHYADDR
    pa_bits_host_long_mode,///< bochs: bits >= 40, only while the host is in long mode
};
/// How an EVENTINJ exception vector is judged (apm-svm.md §3 E3).
enum class EventVectorRule : std::uint8_t {
    apm_exceptions,        ///< apm/kvm: only defined exception vectors (CP with shstk, VC with sev_es)
    reject_2_and_ge31,     ///< qemu: reject 2 and >= 31
    reject_2_and_gt31,     ///< bochs/xen: reject 2 and > 31
};
/// How far a permission map must stay below 2^MAXPHYADDR (apm-svm.md §11.3).
enum class BitmapLimitRule : std::uint8_t {
    last_byte,             ///< apm/kvm: base (page) + size - 1 must be a legal PA
    qemu_base,             ///< qemu: page base >= 2^pa - 8K (MSRPM) / - (8K+1) (IOPM) fails
    base_only,             ///< bochs: only the page base beyond the PA width fails
    none,                  ///< xen: not checked
};
/// What a failed VMRUN leaves in the VMCB's save area (apm-svm.md §16.2).
enum class FailureWriteback : std::uint8_t {
    exit_fields_only,      ///< apm/kvm: exit_code, exit_info_1/2, event_inj cleared; save area untouched
    host_state,            ///< qemu/bochs: the state live at the failure (host values for early checks)
};

struct Choice {
    std::string_view key;     ///< stable name, e.g. "cr3_rule"
    std::string value;        ///< the profile's value, as text
    std::string_view reason;  ///< why, with the source (APM section, KVM commit, emulator behaviour)
};

struct Profile {
    ProfileId id = ProfileId::apm;
    std::string_view name;
    std::string_view description;

    // --- Consistency checks ---
    Cr3Rule cr3_rule = Cr3Rule::by_paging_mode;
    EventVectorRule event_vector_rule = EventVectorRule::apm_exceptions;
    BitmapLimitRule bitmap_limit_rule = BitmapLimitRule::last_byte;
    std::uint32_t msrpm_checked_size = 0x2000;  ///< bytes covered by the MSRPM extent rule (8 KiB)
    std::uint32_t iopm_checked_size = 0x3000;   ///< 12 KiB
    bool eventinj_reserved_bits_fail = false;   ///< xen rejects EVENTINJ[30:12] != 0; kvm masks
    bool eventinj_impossible_in_mode = true;    ///< E1: #BR/#OF injected into a 64-bit guest
    bool cs_l_d_any_mode = false;               ///< bochs: CS.L && CS.D illegal in any mode
    bool cs_l_d_needs_pae = true;               ///< kvm: CS.L && CS.D checked under LME && PG alone
    bool long_mode_pe_check = true;             ///< bochs does not check LME&PG&!PE (it panics)
    bool pcide_without_lma_fails = false;       ///< bochs: CR4.PCIDE while not in long mode
    bool cet_checks = true;                     ///< C17-C20 (not in kvm/qemu/bochs)
    bool tlb_ctl_reserved_fails = false;        ///< no one: reserved TLB_CONTROL is not a failure
    bool sanitize_np_without_feature = false;   ///< kvm: NP_ENABLE silently cleared without npt
    bool pdpe_check = true;                     ///< C21 PAE PDPEs (needs guest memory); qemu: no

    // Added knobs (see profile.cpp for every value and its reason).
    LmaSource lma_source = LmaSource::lme_and_pg;
    NpWithoutFeature np_without_feature = NpWithoutFeature::ignored;
    Ncr3Rule ncr3_rule = Ncr3Rule::pa_bits;
    unsigned pa_check_width = 0;                ///< 0: the model's MAXPHYADDR; bochs: 40 (compile time)
    std::uint64_t efer_fixed_valid = 0;         ///< 0: model-derived EFER MBZ set; qemu: fixed valid list
    std::uint64_t cr4_always_reserved = 0;      ///< extra CR4 bits rejected whatever the model says
    std::uint64_t cr4_ungated = 0;              ///< feature CR4 bits accepted even when the model lacks the feature
    std::uint64_t dr6_reserved = 0xFFFFFFFF00000000ULL;  ///< DR6 bits whose being set fails (C6)
    std::uint64_t dr7_reserved = 0xFFFFFFFF00000000ULL;  ///< DR7 bits whose being set fails (C7)
    bool efer_lma_checked = true;               ///< EFER.LMA = 1 without LME && PG fails (apm only, inferred)
    bool efer_lm_check = true;                  ///< C9 LME/LMA without long mode
    bool asid_check = true;                     ///< C16 (xen: no)
    bool vmrun_intercept_check = true;          ///< C13
    bool event_type_check = true;               ///< E2
    bool event_vector_check = true;             ///< E3
    bool sev_es_event_check = true;             ///< E4
    bool vnmi_check = true;                     ///< V1
    bool vnmi_needs_feature = true;             ///< V1 only when the model has vnmi (kvm: always)
    bool g_pat_check = true;                    ///< N3, only with nested paging
    bool np_host_paging_check = true;           ///< N1 (needs host state)
    bool sss_check = true;                      ///< N4
    bool avic_checks = true;                    ///< A1-A3
    bool sev_checks = true;                     ///< S1-S4, P-rows decidable from the VMCB
    bool inferred_rules = true;                 ///< A4, S5: requirements with no named exit (§16.8)
    bool ud_without_paging = false;             ///< kvm: VMRUN with guest CR0.PG=0 is #UD
    bool rax_checks = true;                     ///< #GP for misaligned / too-wide rAX
    bool rax_gp_before_intercept = true;        ///< bochs: the VMRUN intercept comes first
    bool cr3_late_failure = false;              ///< kvm: non-long-mode CR3 fails after partial entry
    bool clear_gif_on_failure = true;           ///< every #VMEXIT, VMEXIT_INVALID included, clears GIF
    bool eventinj_cleared_on_failure = true;    ///< EVENTINJ zeroed in the VMCB after a failed VMRUN
    bool event_ev_ignored = false;              ///< qemu: EV bit ignored, error code follows the vector
    bool vmexit_dr7_from_hsave = false;         ///< qemu: #VMEXIT restores host DR7 instead of 0x400
    bool hsave_used = true;                     ///< bochs keeps host state internally
    bool hsave_zero_gp = false;                 ///< kvm: VMRUN with VM_HSAVE_PA = 0 is #GP
    bool canonical_writeback = false;           ///< emulators write canonicalized bases back on #VMEXIT
    bool rsm_pe0_pg1_shutdown = false;          ///< §16.6: RSM to CR0.PE=0,PG=1 shuts down

    // --- Failure and exit semantics (used by the cpu and nested layers) ---
    FailureWriteback failure_writeback = FailureWriteback::exit_fields_only;
    bool exit_code_32bit = false;               ///< qemu stores VMEXIT_INVALID zero-extended
    bool nrip_on_every_exit = false;            ///< bochs writes nRIP on every exit

    /// Every choice of this profile with its reason, in a stable order.
    [[nodiscard]] std::span<const Choice> choices() const noexcept;
};

/// The effective physical-address width for the PA-limit checks.
[[nodiscard]] inline unsigned pa_width(const Profile& p, unsigned maxphyaddr) noexcept {
    return p.pa_check_width != 0 ? p.pa_check_width : maxphyaddr;
}

[[nodiscard]] const Profile& profile(ProfileId id) noexcept;
[[nodiscard]] std::span<const Profile> all_profiles() noexcept;
[[nodiscard]] nsvm::expected<ProfileId, std::string> find_profile(std::string_view name);

}  // namespace nsvm::checks
