// Behaviour profiles (interfaces.md §3): where the APM is silent or
// ambiguous, or implementations differ, each profile makes a named choice,
// with its reason, listed by `nsvm profile show NAME`.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "nsvm/util/expected.hpp"

namespace nsvm::checks {

enum class ProfileId : std::uint8_t { apm, kvm, qemu, bochs, xen };
inline constexpr std::size_t kProfileCount = 5;

/// Bit set over ProfileId, for "which profiles apply this check".
using ProfileMask = std::uint8_t;
[[nodiscard]] constexpr ProfileMask mask_of(ProfileId p) noexcept { return ProfileMask(1U << unsigned(p)); }
inline constexpr ProfileMask kAllProfiles = 0x1F;

/// Which paging modes the CR3 MBZ check looks at (apm-svm.md §3 C4).
enum class Cr3Rule : std::uint8_t {
    by_guest_mode,         ///< apm: legacy, PAE and long-mode MBZ sets by the guest's own mode
    long_mode_only,        ///< kvm: only when EFER.LME && CR0.PG (bits >= MAXPHYADDR)
    host_lma_pa_bits,      ///< qemu: bits >= PA width, only when the *host* EFER.LMA = 1
    none,                  ///< bochs: no CR3 check
    xen_low_bits,          ///< xen: cr3 & 7, cr3 & 0xFE0 outside PAE, bits >= MAXPHYADDR in long mode
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
    Cr3Rule cr3_rule = Cr3Rule::by_guest_mode;
    EventVectorRule event_vector_rule = EventVectorRule::apm_exceptions;
    BitmapLimitRule bitmap_limit_rule = BitmapLimitRule::last_byte;
    std::uint32_t msrpm_checked_size = 0x2000;  ///< bytes covered by the MSRPM extent rule (8 KiB)
    std::uint32_t iopm_checked_size = 0x3000;   ///< 12 KiB
    bool eventinj_reserved_bits_fail = false;   ///< xen rejects EVENTINJ[30:12] != 0; kvm masks
    bool eventinj_impossible_in_mode = true;    ///< E1: #BR/#OF injected into a 64-bit guest
    bool cs_l_d_any_mode = false;               ///< bochs: CS.L && CS.D illegal in any mode
    bool long_mode_pe_check = true;             ///< bochs does not check LME&PG&!PE (it panics)
    bool pcide_without_lma_fails = false;       ///< bochs: CR4.PCIDE while not in long mode
    bool cet_checks = true;                     ///< C17-C20 (not in kvm/qemu/bochs)
    bool tlb_ctl_reserved_fails = false;        ///< no one: reserved TLB_CONTROL is not a failure
    bool sanitize_np_without_feature = false;   ///< kvm: NP_ENABLE silently cleared without npt
    bool pdpe_check = true;                     ///< C21 PAE PDPEs (needs guest memory); qemu: no

    // --- Failure and exit semantics (used by the cpu and nested layers) ---
    FailureWriteback failure_writeback = FailureWriteback::exit_fields_only;
    bool exit_code_32bit = false;               ///< qemu stores VMEXIT_INVALID zero-extended
    bool nrip_on_every_exit = false;            ///< bochs writes nRIP on every exit

    /// Every choice of this profile with its reason, in a stable order.
    [[nodiscard]] std::span<const Choice> choices() const noexcept;
};

[[nodiscard]] const Profile& profile(ProfileId id) noexcept;
[[nodiscard]] std::span<const Profile> all_profiles() noexcept;
[[nodiscard]] nsvm::expected<ProfileId, std::string> find_profile(std::string_view name);

}  // namespace nsvm::checks
