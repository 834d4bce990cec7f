// The six behaviour profiles (docs/formats.md "Behaviour profiles"). Every knob of Profile is a
// named choice with its value and reason; apm-svm.md §16, oracles.md and
// kvm-nsvm.md §2 are the sources of the divergences.
#include "nsvm/checks/profile.hpp"

#include <array>
#include <vector>

#include <fmt/format.h>

#include "nsvm/arch/bits.hpp"
#include "nsvm/util/text.hpp"

namespace nsvm::checks {
namespace {

using arch::bits;

std::array<Profile, kProfileCount> make_profiles() {
    std::array<Profile, kProfileCount> a{};

    Profile& apm = a[0];  // defaults in profile.hpp are the apm choices
    apm.id = ProfileId::apm;
    apm.name = "apm";
    apm.description = "AMD APM vol. 2 (24593) as written; real AMD hardware where the manual is silent";

    Profile& kvm = a[1];
    kvm.id = ProfileId::kvm;
    kvm.name = "kvm";
    kvm.description = "Linux KVM nested SVM, kvm-x86 after the v7 'Nested SVM fixes' series (nested.c @1a27afa0)";
    kvm.efer_lma_checked = false;
    kvm.cr3_rule = Cr3Rule::kvm_legal_gpa;
    kvm.cr3_late_failure = true;
    kvm.eventinj_impossible_in_mode = false;
    kvm.cet_checks = false;
    kvm.sanitize_np_without_feature = true;
    kvm.np_without_feature = NpWithoutFeature::sanitized;
    kvm.vnmi_needs_feature = false;
    kvm.g_pat_check = false;
    kvm.np_host_paging_check = false;
    kvm.sss_check = false;
    kvm.avic_checks = false;
    kvm.sev_checks = false;
    kvm.sev_es_event_check = false;
    kvm.inferred_rules = false;
    kvm.ud_without_paging = true;
    kvm.hsave_zero_gp = true;
    kvm.cs_l_d_needs_pae = false;

    Profile& qemu = a[2];
    qemu.id = ProfileId::qemu;
    qemu.name = "qemu";
    qemu.description = "QEMU 7.2 TCG (target/i386/tcg/sysemu/svm_helper.c, 7.2.22 stable)";
    qemu.efer_lma_checked = false;
    qemu.cr3_rule = Cr3Rule::host_lma_pa_bits;
    qemu.event_vector_rule = EventVectorRule::reject_2_and_ge31;
    qemu.bitmap_limit_rule = BitmapLimitRule::qemu_base;
    qemu.msrpm_checked_size = 0x2000;
    qemu.iopm_checked_size = 0x2001;
    qemu.eventinj_impossible_in_mode = false;
    qemu.cet_checks = false;
    qemu.pdpe_check = false;
    qemu.failure_writeback = FailureWriteback::host_state;
    qemu.exit_code_32bit = true;
    qemu.lma_source = LmaSource::vmcb;
    qemu.np_without_feature = NpWithoutFeature::honoured;
    qemu.ncr3_rule = Ncr3Rule::none;
    qemu.efer_fixed_valid = arch::efer::SCE | arch::efer::LME | arch::efer::LMA | arch::efer::NXE |
                            arch::efer::SVME | arch::efer::FFXSR;
    qemu.cr4_always_reserved = arch::cr4::CET | bits(63, 32);
    qemu.cr4_ungated = arch::cr4::PSE | arch::cr4::PAE | arch::cr4::PGE | arch::cr4::PCIDE;
    qemu.vnmi_check = false;
    qemu.g_pat_check = false;
    qemu.np_host_paging_check = false;
    qemu.sss_check = false;
    qemu.avic_checks = false;
    qemu.sev_checks = false;
    qemu.sev_es_event_check = false;
    qemu.inferred_rules = false;
    qemu.eventinj_cleared_on_failure = true;
    qemu.event_ev_ignored = true;
    qemu.vmexit_dr7_from_hsave = true;
    qemu.canonical_writeback = true;

    Profile& bochs = a[3];
    bochs.id = ProfileId::bochs;
    bochs.name = "bochs";
    bochs.description = "Bochs 2.7 (REL_2_7_FINAL, cpu/svm.cc with --enable-svm)";
    bochs.efer_lma_checked = false;
    bochs.cr3_rule = Cr3Rule::none;
    bochs.event_vector_rule = EventVectorRule::reject_2_and_gt31;
    bochs.bitmap_limit_rule = BitmapLimitRule::base_only;
    bochs.cs_l_d_any_mode = true;
    bochs.long_mode_pe_check = false;
    bochs.pcide_without_lma_fails = true;
    bochs.eventinj_impossible_in_mode = false;
    bochs.cet_checks = false;
    bochs.failure_writeback = FailureWriteback::host_state;
    bochs.nrip_on_every_exit = true;
    bochs.ncr3_rule = Ncr3Rule::pa_bits_host_long_mode;
    bochs.pa_check_width = 40;
    bochs.vnmi_check = false;
    bochs.sss_check = false;
    bochs.avic_checks = false;
    bochs.sev_checks = false;
    bochs.sev_es_event_check = false;
    bochs.inferred_rules = false;
    bochs.rax_gp_before_intercept = false;
    bochs.hsave_used = false;
    bochs.canonical_writeback = true;

    Profile& xen = a[4];
    xen.id = ProfileId::xen;
    xen.name = "xen";
    xen.description = "Xen svm_vmcb_isvalid() (xen/arch/x86/hvm/svm/vmcb.c) with the 2025 EVENTINJ patch";
    xen.efer_lma_checked = false;
    xen.cr3_rule = Cr3Rule::xen_low_bits;
    xen.event_vector_rule = EventVectorRule::reject_2_and_gt31;
    xen.bitmap_limit_rule = BitmapLimitRule::none;
    xen.eventinj_reserved_bits_fail = true;
    xen.eventinj_impossible_in_mode = false;
    xen.cet_checks = false;
    xen.pdpe_check = false;
    xen.lma_source = LmaSource::vmcb;
    xen.np_without_feature = NpWithoutFeature::honoured;
    xen.ncr3_rule = Ncr3Rule::none;
    xen.asid_check = false;
    xen.vnmi_check = false;
    xen.g_pat_check = false;
    xen.np_host_paging_check = false;
    xen.sss_check = false;
    xen.avic_checks = false;
    xen.sev_checks = false;
    xen.sev_es_event_check = false;
    xen.inferred_rules = false;

    // Hyper-V as L0 (WSL2, Windows hosts, Azure): its nested SVM is not
    // public, so it is modelled as the hardware (apm) with the one behaviour
    // known to differ: its CR3 check with paging off (KVM's 2024 "Workaround
    // overly strict CR3 check by Hyper-V"). Every other choice is apm's.
    Profile& hyperv = a[5];
    hyperv.id = ProfileId::hyperv;
    hyperv.name = "hyperv";
    hyperv.description =
        "Hyper-V as L0 (WSL2, Windows hosts): the hardware's rules plus Hyper-V's stricter CR3 check with paging off";
    hyperv.cr3_rule = Cr3Rule::format_always;
    return a;
}

const std::array<Profile, kProfileCount>& profiles() {
    static const std::array<Profile, kProfileCount> p = make_profiles();
    return p;
}

std::string yes(bool b) { return b ? "yes" : "no"; }
std::string hex(std::uint64_t v) { return fmt::format("{:#x}", v); }

std::string_view name_of(Cr3Rule r) {
    switch (r) {
        case Cr3Rule::by_paging_mode: return "by_paging_mode";
        case Cr3Rule::format_always: return "format_always";
        case Cr3Rule::long_mode_only: return "long_mode_only";
        case Cr3Rule::host_lma_pa_bits: return "host_lma_pa_bits";
        case Cr3Rule::none: return "none";
        case Cr3Rule::xen_low_bits: return "xen_low_bits";
        case Cr3Rule::kvm_legal_gpa: return "kvm_legal_gpa";
    }
    return "?";
}
std::string_view name_of(EventVectorRule r) {
    switch (r) {
        case EventVectorRule::apm_exceptions: return "defined_exceptions_only";
        case EventVectorRule::reject_2_and_ge31: return "reject_2_and_ge31";
        case EventVectorRule::reject_2_and_gt31: return "reject_2_and_gt31";
    }
    return "?";
}
std::string_view name_of(BitmapLimitRule r) {
    switch (r) {
        case BitmapLimitRule::last_byte: return "last_byte";
        case BitmapLimitRule::qemu_base: return "page_base_vs_limit_minus_size";
        case BitmapLimitRule::base_only: return "page_base_only";
        case BitmapLimitRule::none: return "none";
    }
    return "?";
}
std::string_view name_of(FailureWriteback r) {
    return r == FailureWriteback::exit_fields_only ? "exit_fields_only" : "live_state_at_failure";
}
std::string_view name_of(LmaSource r) { return r == LmaSource::vmcb ? "vmcb_efer_lma" : "lme_and_pg"; }
std::string_view name_of(NpWithoutFeature r) {
    switch (r) {
        case NpWithoutFeature::ignored: return "ignored";
        case NpWithoutFeature::sanitized: return "sanitized";
        case NpWithoutFeature::honoured: return "honoured";
    }
    return "?";
}
std::string_view name_of(Ncr3Rule r) {
    switch (r) {
        case Ncr3Rule::none: return "none";
        case Ncr3Rule::pa_bits: return "pa_bits";
        case Ncr3Rule::pa_bits_host_long_mode: return "pa_bits_when_host_long_mode";
    }
    return "?";
}

/// Reason per profile, in ProfileId order.
using Reasons = std::array<std::string_view, kProfileCount>;

std::vector<Choice> build_choices(const Profile& p) {
    std::vector<Choice> out;
    const auto i = static_cast<std::size_t>(p.id);
    // hyperv is the hardware's profile except where it gives its own reason.
    auto add = [&](std::string_view key, std::string value, const Reasons& r) {
        const std::string_view reason = r[i].empty() && p.id == ProfileId::hyperv ? r[0] : r[i];
        out.push_back(Choice{key, std::move(value), reason});
    };
    add("cr3_rule", std::string(name_of(p.cr3_rule)),
        {"APM 15.5.1 'any MBZ bit of CR3', with the format of the paging mode (APM 5.3.2). In long mode: 2:0, "
         "11:5 (none with PCIDE) and 63:MAXPHYADDR. Outside long mode the manual's 'reserved' low bits are "
         "ignored by AMD hardware (kvm-unit-tests 2026, 32-bit PAE and non-PAE guests: PAE ignores 4:0, 2-level "
         "paging 2:0 and 11:5), and bits at or above MAXPHYADDR fail. With paging off AMD hardware runs a CR3 "
         "with PCID bits and bits above 31 (kvm 2024, 'Workaround overly strict CR3 check by Hyper-V'), so it is "
         "not checked. A 2015 report of an Opteron 1216 rejecting CR3 bit 32 with PAE paging suggests older "
         "processors checked 63:32 with PAE; no CPU model here is that old",
         "KVM nested_vmcb_check_save checks kvm_vcpu_is_legal_cr3 only if LME&&PG; otherwise "
         "nested_svm_load_cr3 rejects bits >= MAXPHYADDR later (kvm-nsvm.md §2.3 row 8, §2.4)",
         "QEMU svm_helper.c: CR3 bits >= phys_bits, tested only when the *host* EFER.LMA is 1 (oracles.md step 6)",
         "Bochs 2.7 svm.cc has no CR3 reserved-bit check (oracles.md 'Not checked')",
         "Xen svm_vmcb_isvalid, only when CR0.PG = 1: cr3&7; cr3&0xfe0 without PAE or in long mode; bits >= "
         "maxphysaddr in long mode",
         "Hyper-V rejects with VMEXIT_INVALID the paging-off state KVM's SMM entry leaves (CR0.PG = PE = 0, CR3 "
         "with PCID bits and bits above 31), which AMD hardware runs (kvm 2024, 'Workaround overly strict CR3 "
         "check by Hyper-V'): modelled as the format CR4.PAE selects, checked even with paging off, with 63:32 "
         "must-be-zero outside long mode"});
    add("lma_source", std::string(name_of(p.lma_source)),
        {"APM 15.5.1 states the long-mode rules on EFER.LME and CR0.PG; LMA is derived, so those rules do not "
         "consult the VMCB's LMA (only efer_lma_checked does)",
         "KVM's checks test LME&&PG (nested_vmcb_check_save)",
         "QEMU loads EFER as given, LMA included (oracles.md step 7)",
         "Bochs recomputes LMA = LME & PG and ignores the VMCB's LMA (oracles.md step 3)",
         "Xen's CR3 rule reads EFER.LMA from the VMCB"});
    add("efer_lma_checked", yes(p.efer_lma_checked),
        {"inferred: APM 15.5.1 does not list it, but LMA = 1 without LME && PG is a state no processor can reach "
         "(APM 3.1.7, 14.6.1: only the processor sets LMA, when paging is enabled with LME = 1; 14.7: clearing PG "
         "clears it). Hardware is not known to reject it (KVM: 'EFER.LMA is not checked by SVM') and what it then "
         "runs is undefined; VMEXIT_INVALID is the outcome the APM gives illegal guest state, and the one Xen's "
         "maintainer said VMRUN ought to give (xen-devel 2023-12-05 'Nested Virtualization Bug on x86-64 AMD CPU', "
         "xen gitlab #216)",
         "nested_vmcb_check_save: 'EFER.LMA is not checked by SVM against CR0.PG && EFER.LME'; the L2 is entered "
         "with vmcb12's EFER",
         "QEMU 7.2 does not compare LMA with LME&PG and loads EFER as given: the guest is entered with LMA = 1 "
         "and paging off (oracles.md steps 7-8)",
         "Bochs recomputes LMA = LME & PG (oracles.md step 3): the VMCB's LMA is ignored, the guest runs in legacy "
         "mode",
         "svm_vmcb_isvalid has no LMA rule, so VMRUN goes ahead (xen-devel 2023-12-05: Xen then hit BUG() on "
         "exit 0x402; still open as xen gitlab #216)"});
    add("event_vector_rule", std::string(name_of(p.event_vector_rule)),
        {"APM 15.20: TYPE=3 needs a vector that is an exception: 0,1,3-8,10-14,16-19,28,30, 21 (#CP) with shstk, "
         "29 (#VC) with sev_es; 2, 9, 15, 20, 22-27, 31 are not AMD64 exceptions",
         "KVM v7 patch 17 (nested_svm_check_event_inj): the same defined-exception list, #CP only with guest "
         "SHSTK, #VC only with SEV-ES",
         "QEMU 7.2: VMEXIT_INVALID if vector == 2 or >= 31 (oracles.md step 11)",
         "Bochs 2.7 SvmInjectEvents: invalid if vector == 2 or > 31",
         "Xen 2025 EVENTINJ patch: vector 2 or above 31 'does not belong to an exception'"});
    add("event_type_check", yes(p.event_type_check),
        {"APM 15.20: TYPE 1, 5, 6, 7 are reserved; injecting one is VMEXIT_INVALID",
         "KVM v7 patch 17 checks reserved TYPE", "QEMU: TYPE 1/5/6/7 give VMEXIT_INVALID",
         "Bochs: 'unsupported event injection type'", "Xen 2025 patch: 'Invalid Injected Event Type'"});
    add("event_vector_check", yes(p.event_vector_check),
        {"APM 15.20 (E3)", "KVM v7 patch 17", "QEMU svm_helper.c", "Bochs svm.cc", "Xen 2025 EVENTINJ patch"});
    add("eventinj_reserved_bits_fail", yes(p.eventinj_reserved_bits_fail),
        {"§16.3: APM 15.20 marks EVENTINJ[30:12] SBZ but names no exit; real hardware is not known to fail",
         "KVM v7 patch 24 masks the reserved bits in the cached copy instead of failing",
         "QEMU ignores the reserved bits", "Bochs ignores the reserved bits",
         "Xen rejects them: 'eventinj: MBZ bits are set'"});
    add("eventinj_impossible_in_mode", yes(p.eventinj_impossible_in_mode),
        {"APM 15.20 (E1): an event impossible in the guest mode, e.g. #BR (and #OF) in 64-bit mode, is illegal",
         "KVM does not check the guest mode of an injected exception", "QEMU does not check it",
         "Bochs 2.7 does not check it: nsvm diff saw #BR and #OF injected into a 64-bit guest and taken through "
         "its IDT (the check came after 2.7, Bochs issue #649)",
         "Xen does not check it"});
    add("sev_es_event_check", yes(p.sev_es_event_check),
        {"APM 15.35.8 (E4): SEV-ES guests cannot take injected INTn or exception vectors 3/4",
         "KVM does not model SEV-ES for L2", "no SEV in QEMU TCG", "no SEV in Bochs", "not in svm_vmcb_isvalid"});
    add("bitmap_limit_rule", std::string(name_of(p.bitmap_limit_rule)),
        {"APM 15.5.1/15.10.1/15.11: the map's last byte (page base + size - 1, bits 11:0 ignored) must be below "
         "2^MAXPHYADDR",
         "KVM nested_svm_check_bitmap_pa: page base and base + size - 1 must be legal GPAs",
         "QEMU: (base & ~0xfff) >= (1 << phys_bits) - size fails, size 8 KiB (MSRPM) and 8 KiB + 1 (IOPM)",
         "Bochs 2.7: only the page base is tested against 40 bits, not the map's end",
         "svm_vmcb_isvalid does not check the permission maps"});
    add("msrpm_checked_size", hex(p.msrpm_checked_size),
        {"§16.1/§11.3: APM 15.11 gives the MSRPM as 8 KiB. kvm-unit-tests expects base L-8K to fail, which fits "
         "12 KiB, not 8; unresolved, so the apm profile follows the manual's 8 KiB",
         "KVM uses MSRPM_SIZE = 8 KiB", "QEMU svm_helper.c subtracts 8 KiB (SVM_MSRPM_SIZE)",
         "unused: Bochs tests only the base", "unused: Xen does not check"});
    add("iopm_checked_size", hex(p.iopm_checked_size),
        {"APM 15.10.1: the IOPM is 12 KiB (3 pages)", "KVM: IOPM_SIZE = 12 KiB",
         "QEMU subtracts SVM_IOPM_SIZE = 8 KiB + 1", "unused: Bochs tests only the base",
         "unused: Xen does not check"});
    add("pa_check_width", p.pa_check_width == 0 ? "model MAXPHYADDR" : std::to_string(p.pa_check_width),
        {"APM: MAXPHYADDR from CPUID Fn8000_0008_EAX", "KVM: guest MAXPHYADDR (reserved_gpa_bits)",
         "QEMU: cpu->phys_bits of the model", "Bochs 2.7 uses its compile-time 40-bit width whatever CPUID says",
         "Xen: the domain's maxphysaddr"});
    add("efer_rule", p.efer_fixed_valid == 0 ? "model features" : "fixed valid set " + hex(p.efer_fixed_valid),
        {"APM 3.1.7: EFER bits of absent features are MBZ (LME/LMA lm, NXE nx, SVME svm, FFXSR fxsr_opt, TCE tce, "
         "MCOMMIT mcommit, UAIE uai, AIBRSE autoibrs; LMSLE, INTWB and undefined bits reserved)",
         "KVM kvm_valid_efer: supported_efer_bits gated by guest CPUID",
         "QEMU accepts SCE/LME/LMA/NXE/SVME/FFXSR whatever CPUID says; everything else fails",
         "Bochs: EFER bits unsupported by the CPU model", "Xen hvm_efer_valid: CPUID-policy gated"});
    add("efer_lm_check", yes(p.efer_lm_check),
        {"APM 15.5.1 (C9)", "kvm_valid_efer rejects LME/LMA without LM", "QEMU: LME or LMA without CPUID LM",
         "Bochs rejects them as unsupported EFER bits", "Xen hvm_efer_valid"});
    add("cr4_always_reserved", hex(p.cr4_always_reserved),
        {"APM 3.1.3: only feature-gated and undefined bits (from the CPU model)",
         "__kvm_is_valid_cr4: guest-CPUID gated; 'SVM has no extra CR4 restrictions'",
         "QEMU 7.2 cr4_reserved_bits: CET and bits 63:32 always reserved under TCG",
         "Bochs: bits unsupported by the model", "Xen: CPUID policy"});
    add("cr4_ungated", hex(p.cr4_ungated),
        {"APM 3.1.3: every feature bit of CR4 is reserved without its feature", "KVM gates each on guest CPUID",
         "QEMU 7.2 gates only OSXSAVE, SMEP, SMAP, FSGSBASE, PKE, LA57, UMIP and PKS on CPUID; PSE, PAE, PGE and "
         "PCIDE are accepted whatever the CPU model (confirmed by nsvm diff: CR4.PCIDE under -cpu max without PCID)",
         "Bochs: bits unsupported by the model", "Xen: CPUID policy"});
    add("dr6_reserved", hex(p.dr6_reserved),
        {"APM 15.5.1 (C6): DR6[63:32]", "kvm_dr6_valid: upper 32 bits",
         "QEMU 7.2 DR_RESERVED_MASK = bits 63:32 (oracles.md step 8)", "Bochs: DR6[63:32]",
         "Xen: 'DR6: bits [63:32] are not zero'"});
    add("dr7_reserved", hex(p.dr7_reserved),
        {"APM 15.5.1 (C7): DR7[63:32]", "kvm_dr7_valid: upper 32 bits", "QEMU 7.2 DR_RESERVED_MASK = bits 63:32",
         "Bochs: DR7[63:32]", "Xen: 'DR7: bits [63:32] are not zero'"});
    add("cs_l_d_any_mode", yes(p.cs_l_d_any_mode),
        {"§16.5: APM 15.5.1 makes CS.L&CS.D illegal only with LME, PG and PAE", "KVM v7 patch 16: only if LME&&PG",
         "QEMU: only with LME, PG, PAE", "Bochs 2.7: 'VMCB CS.D_B/L mismatch' in any mode",
         "Xen: only with LME, PG, PAE"});
    add("cs_l_d_needs_pae", yes(p.cs_l_d_needs_pae),
        {"APM 15.5.1 (C12): EFER.LME, CR0.PG, CR4.PAE, CS.L and CS.D all nonzero",
         "KVM v7 patch 16 tests CS.L && CS.D inside 'if (LME && PG)', without CR4.PAE",
         "QEMU: all five bits", "Bochs: CS.L && CS.D in any mode (see cs_l_d_any_mode)", "Xen: all five bits"});
    add("long_mode_pe_check", yes(p.long_mode_pe_check),
        {"APM 15.5.1 (C11)", "KVM nested_vmcb_check_save", "QEMU post-load EFER checks",
         "Bochs 2.7 does not check it; such a VMCB makes the emulator PANIC (oracles.md)",
         "Xen: 'EFER_LME and CR0.PG are both set and CR0.PE is zero'"});
    add("pcide_without_lma_fails", yes(p.pcide_without_lma_fails),
        {"APM lists no such VMRUN check (MOV CR4 would #GP, VMRUN is not MOV CR4)", "not in KVM's checks",
         "not in QEMU's checks", "Bochs runs its generic MOV-CR4 check: PCIDE without LMA is rejected",
         "not in svm_vmcb_isvalid"});
    add("cet_checks", yes(p.cet_checks),
        {"APM 15.5.1 C17/C18: S_CET reserved bits, CR4.CET without CR0.WP (only on CPUs with CET state)",
         "KVM does not implement the CET consistency checks", "QEMU TCG has no CET",
         "Bochs 2.7 does not check CET state at VMRUN", "svm_vmcb_isvalid has no CET rule"});
    add("asid_check", yes(p.asid_check),
        {"APM 15.5.1/15.25.1 (C16)", "KVM nested_vmcb_check_controls", "QEMU control checks",
         "Bochs: 'attempt to run guest with host ASID'", "svm_vmcb_isvalid does not check the ASID"});
    add("vmrun_intercept_check", yes(p.vmrun_intercept_check),
        {"APM 15.5.1, Table 15-7 (C13)", "KVM", "QEMU", "Bochs", "Xen 'GENERAL2_INTERCEPT: VMRUN intercept bit is clear'"});
    add("tlb_ctl_reserved_fails", yes(p.tlb_ctl_reserved_fails),
        {"§16.4: APM 15.16.1 calls other encodings reserved but names no exit",
         "KVM reverted its TLB_CONTROL check (Oct 2023, non-architectural) and masks it with 0x7 (v7 patch 23)",
         "QEMU: 1 flushes, anything else does nothing", "Bochs ignores reserved values", "not checked"});
    add("np_without_feature", std::string(name_of(p.np_without_feature)),
        {"APM 15.25.3: NP_ENABLE needs CPUID NP; on a CPU without it the bit has no effect",
         "KVM v7 patch 14 dropped the NP check and clears NP_ENABLE when L1 lacks NPT",
         "QEMU honours NP_ENABLE even without CPUID NPT (oracles.md divergences)",
         "Bochs: NP_ENABLE on a model without NPT is silently off",
         "svm_vmcb_isvalid does not look at NP_ENABLE"});
    add("ncr3_rule", std::string(name_of(p.ncr3_rule)),
        {"APM 15.25.4 (N2): MBZ bits of nCR3, i.e. bits >= MAXPHYADDR",
         "KVM v7 patch 15: nCR3 must be a legal GPA", "QEMU takes nCR3 as is",
         "Bochs: 'NCR3 reserved bits set', only while the host is in long mode", "not checked"});
    add("g_pat_check", yes(p.g_pat_check),
        {"APM 15.25.4 (N3): G_PAT is used, and checked, only with nested paging",
         "KVM checks gPAT only when L2 has its own PAT (quirk NESTED_SVM_SHARED_PAT disabled; it is enabled by "
         "default, so not checked)",
         "QEMU does not validate G_PAT", "Bochs: 'invalid memory type in guest PAT_MSR' with NP",
         "not checked"});
    add("np_host_paging_check", yes(p.np_host_paging_check),
        {"APM 15.25.3 (N1): NP_ENABLE with host CR0.PG=0 is illegal (needs host state)",
         "KVM: L1 cannot reach VMRUN without paging (#UD), so no separate check", "QEMU does not check it",
         "Bochs: 'enter nested paging mode when host paging is disabled'", "not checked"});
    add("sss_check", yes(p.sss_check),
        {"APM 15.25.14 (N4): SSSCheckEn without nested paging is illegal (ignored with a non-PAE or NXE=0 host); "
         "only on CPUs with the feature",
         "not implemented by KVM", "not implemented by QEMU", "not implemented by Bochs", "not checked"});
    add("vnmi_check", yes(p.vnmi_check),
        {"APM 15.21.10 (V1): V_NMI_ENABLE requires the NMI intercept",
         "KVM nested_vmcb_check_controls: V_NMI_ENABLE without INTERCEPT_NMI fails",
         "QEMU TCG has no vNMI", "Bochs has no vNMI", "not checked"});
    add("vnmi_needs_feature", yes(p.vnmi_needs_feature),
        {"on a CPU without vNMI, int_ctl bit 26 is reserved and ignored",
         "KVM tests vmcb12's bit whatever L1's CPUID says", "n/a", "n/a", "n/a"});
    add("avic_checks", yes(p.avic_checks),
        {"APM 15.29.4 (A1-A3): x2AVIC without AVIC, AVIC_PHYSICAL_MAX_INDEX range, table pointers beyond "
         "MAXPHYADDR (exit taken as VMEXIT_INVALID)",
         "KVM ignores vmcb12's AVIC fields (not cached)", "no AVIC in QEMU TCG", "no AVIC in Bochs",
         "not checked"});
    add("sev_checks", yes(p.sev_checks),
        {"APM 15.34.3, 15.36 (S1-S4, P4-P10): SEV needs NP, SmmLock, ASID <= NumEncryptedGuests, 64-bit host; "
         "SNP feature combinations decidable from the VMCB; with Restricted Injection only #HV may be injected",
         "KVM does not run SEV guests as L2", "no SEV in QEMU TCG", "no SEV in Bochs", "not checked"});
    add("inferred_rules", yes(p.inferred_rules),
        {"§16.8: AVIC without NP (A4) and SEV-ES without SEV/LBR virt (S5) are stated as requirements with no "
         "named exit; treated as VMEXIT_INVALID and marked inferred",
         "not applied", "not applied", "not applied", "not applied"});
    add("pdpe_check", yes(p.pdpe_check),
        {"APM 15.5.1 (C21): a PAE guest without NP has its PDPEs read; reserved bits fail (needs guest memory)",
         "KVM load_pdptrs in nested_svm_load_cr3 (late failure)", "QEMU does not read the PDPEs",
         "Bochs CheckPDPTR", "not checked"});
    add("ud_without_paging", yes(p.ud_without_paging),
        {"APM VMRUN: #UD outside protected mode or with EFER.SVME=0; paging is not required",
         "KVM nested_svm_check_permissions also injects #UD when CR0.PG=0", "QEMU: protected mode only",
         "Bochs: protected mode only", "Xen: protected mode only"});
    add("rax_checks", yes(p.rax_checks),
        {"APM VMRUN: #GP(0) if rAX is not 4 KiB aligned or beyond MAXPHYADDR",
         "post-series KVM page_address_valid (§2.1 step 7)", "QEMU 7.2.x stable backport",
         "Bochs: unaligned or beyond 40 bits", "hardware check (Xen runs on hardware)"});
    add("rax_gp_before_intercept", yes(p.rax_gp_before_intercept),
        {"APM Table 15-7: #GP is checked before the VMRUN intercept",
         "L0 hardware raises the #GP before reflecting the intercept", "QEMU checks rAX before the intercept",
         "Bochs takes the VMRUN intercept before the rAX #GP", "hardware order"});
    add("hsave_zero_gp", yes(p.hsave_zero_gp),
        {"APM 15.36.12: VM_HSAVE_PA = 0 is #GP(0) only under SNP",
         "KVM: hsave_msr == 0 is #GP in every configuration", "QEMU: no such check",
         "Bochs never uses VM_HSAVE_PA", "hardware rule"});
    add("hsave_used", yes(p.hsave_used),
        {"APM 15.5.1: host state is saved at VM_HSAVE_PA (format implementation-specific)",
         "KVM keeps L1 state in vmcb01 (HSAVE+0x400 only for SMM)", "QEMU writes host state to the hsave page",
         "Bochs keeps host state inside the emulator; the page is never written", "hardware"});
    add("failure_writeback", std::string(name_of(p.failure_writeback)),
        {"§16.2: APM silent; real hardware is not known to write guest state on VMEXIT_INVALID",
         "KVM post-series early path writes only exit_code/exit_info/event_inj (kvm-nsvm.md §4a)",
         "QEMU do_vmexit saves whatever is live: host values for early checks", "Bochs writes the current state",
         "Xen reports NSVM_ERROR_VVMCB; the virtual VMCB keeps its contents"});
    add("cr3_late_failure", yes(p.cr3_late_failure),
        {"all checks are decided before any state is loaded",
         "a non-long-mode illegal CR3 or bad PDPTRs fail in nested_svm_load_cr3 after vmcb02 was prepared, via "
         "a full nested #VMEXIT (kvm-nsvm.md §4b)",
         "n/a", "n/a", "n/a"});
    add("exit_code_32bit", yes(p.exit_code_32bit),
        {"APMC: VMEXIT_INVALID is -1 in 64 bits", "KVM writes exit_code_hi = -1 for SVM_EXIT_ERR",
         "QEMU stores 0x00000000ffffffff", "Bochs writes all 64 bits", "hardware"});
    add("clear_gif_on_failure", yes(p.clear_gif_on_failure),
        {"APM 15.6: every #VMEXIT clears GIF, VMEXIT_INVALID included",
         "KVM v7 patch 10 'Clear GIF on nested #VMEXIT(INVALID)'", "QEMU: GIF := 0 (test image)",
         "Bochs: GIF := 0 (test image)", "Xen nested SVM clears GIF on exit"});
    add("eventinj_cleared_on_failure", yes(p.eventinj_cleared_on_failure),
        {"APM 15.20: EVENTINJ is consumed by #VMEXIT", "KVM v7 patch 11 zeroes event_inj/event_inj_err",
         "QEMU: EXITINTINFO := EVENTINJ, EVENTINJ := 0", "Bochs: EVENTINJ written back with V cleared", "hardware"});
    add("event_ev_ignored", yes(p.event_ev_ignored),
        {"APM 15.20: the error code is pushed when EV=1", "KVM honours EV", "QEMU ignores EV: the vector decides",
         "Bochs honours EV", "hardware"});
    add("nrip_on_every_exit", yes(p.nrip_on_every_exit),
        {"APM 15.7.1: nRIP only for instruction, MSR and IOIO intercepts, else 0", "KVM follows the APM",
         "QEMU never writes nRIP", "Bochs writes nRIP on every exit, VMEXIT_INVALID included", "hardware"});
    add("vmexit_dr7_from_hsave", yes(p.vmexit_dr7_from_hsave),
        {"APM 15.6: #VMEXIT disables host breakpoints (DR7 = 0x400)", "KVM: DR7 := fixed value",
         "QEMU restores host DR7 from the hsave page", "Bochs: DR7 := 0x400", "hardware"});
    add("canonical_writeback", yes(p.canonical_writeback),
        {"§16.7: hardware does not write canonicalized bases back (Bonzini, kvm-unit-tests review)",
         "KVM copies vmcb02 values, which hardware did not canonicalize", "QEMU stores sign-extended bases",
         "Bochs stores sign-extended bases", "hardware"});
    add("rsm_pe0_pg1_shutdown", yes(p.rsm_pe0_pg1_shutdown),
        {"§16.6: APM 15.19 allows RSM to paged real mode; APM 10.4 lists it as a shutdown cause; apm follows 15.19",
         "KVM's RSM emulation has no PE=0/PG=1 shutdown rule (kvm-nsvm.md §8)", "not modelled", "not modelled",
         "not modelled"});
    return out;
}

}  // namespace

std::span<const Choice> Profile::choices() const noexcept {
    static const std::array<std::vector<Choice>, kProfileCount> all = [] {
        std::array<std::vector<Choice>, kProfileCount> a;
        for (std::size_t i = 0; i < kProfileCount; ++i) a[i] = build_choices(profiles()[i]);
        return a;
    }();
    return all[static_cast<std::size_t>(id)];
}

const Profile& profile(ProfileId id) noexcept { return profiles()[static_cast<std::size_t>(id)]; }

std::span<const Profile> all_profiles() noexcept { return profiles(); }

nsvm::expected<ProfileId, std::string> find_profile(std::string_view name) {
    std::vector<std::string_view> names;
    for (const auto& p : profiles()) {
        if (p.name == name) return p.id;
        names.push_back(p.name);
    }
    const auto near = util::closest(name, names);
    return nsvm::unexpected(fmt::format("unknown profile '{}'{} (profiles: apm, kvm, qemu, bochs, xen, hyperv)", util::printable(name),
                                        near.empty() ? "" : fmt::format(", did you mean '{}'?", near)));
}

}  // namespace nsvm::checks
