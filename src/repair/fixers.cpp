// The specific fixers: for a check, the smallest edit of its own fields that
// satisfies it (clear the reserved bits, set the one missing bit). Checks
// without an entry here, and checks an entry did not satisfy, fall back to
// generic_fix (the reference VMCB's values).
#include <algorithm>
#include <array>
#include <string_view>

#include "editor.hpp"
#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/intercepts.hpp"

namespace nsvm::repair::detail {
namespace {

using arch::FieldId;
constexpr std::uint64_t kLow32 = 0xFFFFFFFFULL;
constexpr std::uint64_t kPageOffset = 0xFFF;

/// PA bits the profile checks (bochs checks a fixed 40-bit width).
std::uint64_t reserved_pa(const checks::Context& c) noexcept {
    const unsigned w = checks::pa_width(c.profile, c.cpu.maxphyaddr);
    return w >= 64 ? 0 : ~((std::uint64_t{1} << w) - 1);
}

bool fix_vmrun_intercept(Editor& ed, const checks::Context&) { return ed.set_intercept(arch::intercept::VMRUN); }
bool fix_nmi_intercept(Editor& ed, const checks::Context&) { return ed.set_intercept(arch::intercept::NMI); }
bool fix_asid(Editor& ed, const checks::Context&) { return ed.set(FieldId::asid, 1); }
bool fix_ncr3(Editor& ed, const checks::Context& c) {
    return ed.clear_bits(FieldId::nested_cr3, reserved_pa(c) | kPageOffset);
}
bool fix_sss(Editor& ed, const checks::Context&) { return ed.clear_bits(FieldId::misc_ctl, arch::misc_ctl::SSS_CHECK); }
bool fix_svme(Editor& ed, const checks::Context&) { return ed.set_bits(FieldId::efer, arch::efer::SVME); }
bool fix_cd_nw(Editor& ed, const checks::Context&) { return ed.clear_bits(FieldId::cr0, arch::cr0::NW); }
bool fix_cr0_upper(Editor& ed, const checks::Context&) { return ed.set(FieldId::cr0, ed.get(FieldId::cr0) & kLow32); }
/// Keeps the page-table base, drops everything the paging modes may reserve.
bool fix_cr3(Editor& ed, const checks::Context& c) {
    return ed.clear_bits(FieldId::cr3, reserved_pa(c) | kPageOffset);
}
bool fix_cr4(Editor& ed, const checks::Context& c) {
    return ed.clear_bits(FieldId::cr4, (c.cpu.cr4_reserved_bits() & ~c.profile.cr4_ungated) | c.profile.cr4_always_reserved);
}
bool fix_pcide(Editor& ed, const checks::Context&) { return ed.clear_bits(FieldId::cr4, arch::cr4::PCIDE); }
bool fix_dr6(Editor& ed, const checks::Context&) { return ed.set(FieldId::dr6, ed.get(FieldId::dr6) & kLow32); }
bool fix_dr7(Editor& ed, const checks::Context&) { return ed.set(FieldId::dr7, ed.get(FieldId::dr7) & kLow32); }
bool fix_efer_mbz(Editor& ed, const checks::Context& c) {
    return ed.clear_bits(FieldId::efer, c.cpu.efer_reserved_bits() & ~arch::efer::SVME);
}
bool fix_efer_lm(Editor& ed, const checks::Context&) {
    return ed.clear_bits(FieldId::efer, arch::efer::LME | arch::efer::LMA);
}
bool fix_lma(Editor& ed, const checks::Context&) { return ed.clear_bits(FieldId::efer, arch::efer::LMA); }
bool fix_long_mode_pae(Editor& ed, const checks::Context&) { return ed.set_bits(FieldId::cr4, arch::cr4::PAE); }
bool fix_long_mode_pe(Editor& ed, const checks::Context&) { return ed.set_bits(FieldId::cr0, arch::cr0::PE); }
/// A 64-bit code segment has L = 1 and D = 0.
bool fix_cs_l_d(Editor& ed, const checks::Context&) { return ed.clear_bits(FieldId::cs_attrib, arch::seg_attr::DB); }
bool fix_cet_wp(Editor& ed, const checks::Context&) { return ed.set_bits(FieldId::cr0, arch::cr0::WP); }
/// The nearest legal injection is none: clear the valid bit, keep the rest
/// (EVENTINJ without V is ignored), unless reserved bits are the problem.
bool fix_event_inj(Editor& ed, const checks::Context&) { return ed.clear_bits(FieldId::event_inj, arch::event::V); }
bool fix_event_reserved(Editor& ed, const checks::Context&) {
    return ed.clear_bits(FieldId::event_inj, arch::event::RESERVED);
}

// The SEV-SNP checks on SEV_FEATURES (APM 15.36.7, 15.36.16, 15.36.21.2):
// SEV_FEATURES is in the guest's VMSA (offset 3B0h, APM Appendix B Table
// B-4), encrypted guest state that no VMCB edit reaches. Where the conflict
// has a VMCB half, that half is the fix; the VMSA half is never edited.
/// P4: VmplSSS (VMSA) against SSSCheckEn (VMCB): clear SSSCheckEn.
bool fix_vmpl_sss(Editor& ed, const checks::Context&) {
    return ed.clear_bits(FieldId::misc_ctl, arch::misc_ctl::SSS_CHECK);
}
/// P6, P7 and P10's AVIC half: an injection mode or Secure AVIC (VMSA)
/// against the VMCB's AVIC: clear AVIC_ENABLE.
bool fix_avic_conflict(Editor& ed, const checks::Context&) {
    return ed.clear_bits(FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE);
}

/// P9 (APM 15.36.20): the VMSA's SEV_FEATURES has bits outside
/// ALLOWED_SEV_FEATURES[61:0] (VMCB 138h): allow exactly those bits, the
/// VMCB half of the check; without the VMSA's value there is nothing to add.
bool fix_allowed_sev_features(Editor& ed, const checks::Context& c) {
    if (c.vmsa == nullptr || !c.vmsa->sev_features) return false;
    return ed.set_bits(FieldId::allowed_sev_features, *c.vmsa->sev_features & arch::bits(61, 0));
}

struct Entry {
    std::string_view id;
    Fixer fix;
};
constexpr std::array kFixers = {
    Entry{"intercept.vmrun", fix_vmrun_intercept},
    Entry{"vnmi.nmi_intercept", fix_nmi_intercept},
    Entry{"asid.zero", fix_asid},
    Entry{"np.ncr3", fix_ncr3},
    Entry{"np.sss_without_np", fix_sss},
    Entry{"efer.svme", fix_svme},
    Entry{"cr0.cd_nw", fix_cd_nw},
    Entry{"cr0.upper", fix_cr0_upper},
    Entry{"cr3.mbz", fix_cr3},
    Entry{"cr4.mbz", fix_cr4},
    Entry{"cr4.pcide_without_long_mode", fix_pcide},
    Entry{"dr6.upper", fix_dr6},
    Entry{"dr7.upper", fix_dr7},
    Entry{"efer.mbz", fix_efer_mbz},
    Entry{"efer.lm_unsupported", fix_efer_lm},
    Entry{"efer.lma_without_lme_pg", fix_lma},
    Entry{"efer.lma_without_lme", fix_lma},
    Entry{"long_mode.pae", fix_long_mode_pae},
    Entry{"long_mode.pe", fix_long_mode_pe},
    Entry{"long_mode.cs_l_d", fix_cs_l_d},
    Entry{"cet.cr0_wp", fix_cet_wp},
    Entry{"event_inj.type", fix_event_inj},
    Entry{"event_inj.vector", fix_event_inj},
    Entry{"event_inj.mode", fix_event_inj},
    Entry{"event_inj.sev_es", fix_event_inj},
    Entry{"event_inj.restricted_injection", fix_event_inj},
    Entry{"snp.vmpl_sss", fix_vmpl_sss},
    Entry{"snp.restricted_with_avic", fix_avic_conflict},
    Entry{"snp.alternate_with_avic", fix_avic_conflict},
    Entry{"snp.secure_avic_conflict", fix_avic_conflict},
    Entry{"snp.allowed_sev_features", fix_allowed_sev_features},
    Entry{"event_inj.reserved", fix_event_reserved},
};

}  // namespace

Fixer find_fixer(std::string_view check_id) noexcept {
    const auto* e = std::find_if(kFixers.begin(), kFixers.end(), [&](const Entry& x) { return x.id == check_id; });
    return e == kFixers.end() ? nullptr : e->fix;
}

bool vmcb_cannot_fix_rest(const checks::Check& check) noexcept {
    // A conflict inside SEV_FEATURES itself (both injection modes, Secure
    // AVIC with one): no VMCB field fixes it, so the repair reports it
    // unrepaired rather than copying reference values (which would "fix" it
    // by turning SEV-ES off).
    return check.decided_by_vmsa_sev_features();
}

bool generic_fix(Editor& ed, const checks::Check& check, const arch::Vmcb& reference) {
    bool changed = false;
    for (const auto name : check.fields) {
        const auto id = arch::find_field(name);
        if (!id || arch::info(*id).kind != arch::FieldKind::integer) continue;
        changed |= ed.set(*id, reference.get(*id));
    }
    return changed;
}

}  // namespace nsvm::repair::detail
