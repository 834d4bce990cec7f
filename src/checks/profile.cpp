// The six behaviour profiles (docs/formats.md "Behaviour profiles") as one table: a row per
// setting, holding for every profile its value beside its reason, and naming the check or code
// path that reads it. Values are written nowhere else (profile.hpp gives no defaults), so a
// value and its reason cannot drift apart; tests/nested/settings_read_test.cpp flips every
// setting of every profile and fails for one whose change nothing observes.
#include "nsvm/checks/profile.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "nsvm/arch/bits.hpp"
#include "nsvm/util/text.hpp"

namespace nsvm::checks {
namespace {

using arch::bits;

/// Who the profiles are. A profile with a base takes the base's value and
/// reason for every row that gives it none.
struct Meta {
    ProfileId id;
    std::string_view name;
    std::string_view description;
    ProfileId base;  ///< == id: no base, every row must give a value
};
constexpr std::array<Meta, kProfileCount> kMeta{{
    {ProfileId::apm, "apm", "AMD APM vol. 2 (24593) as written; real AMD hardware where the manual is silent",
     ProfileId::apm},
    {ProfileId::kvm, "kvm", "Linux KVM nested SVM, kvm-x86 after the v7 'Nested SVM fixes' series (nested.c @1a27afa0)",
     ProfileId::kvm},
    {ProfileId::qemu, "qemu", "QEMU 7.2 TCG (target/i386/tcg/sysemu/svm_helper.c, 7.2.22 stable)", ProfileId::qemu},
    {ProfileId::bochs, "bochs", "Bochs 2.7 (REL_2_7_FINAL, cpu/svm.cc with --enable-svm)", ProfileId::bochs},
    {ProfileId::xen, "xen", "Xen svm_vmcb_isvalid() (xen/arch/x86/hvm/svm/vmcb.c) with the 2025 EVENTINJ patch",
     ProfileId::xen},
    // Hyper-V as L0 (WSL2, Windows hosts, Azure): its nested SVM is not
    // public, so it is modelled as the hardware (apm) with the one behaviour
    // known to differ: its CR3 check with paging off (KVM's 2024
    // "Workaround overly strict CR3 check by Hyper-V").
    {ProfileId::hyperv, "hyperv",
     "Hyper-V as L0 (WSL2, Windows hosts): the hardware's rules plus Hyper-V's stricter CR3 check with paging off",
     ProfileId::apm},
}};

/// A profile's value for one setting, and why.
template <class T>
struct Is {
    T value;
    std::string_view reason;
};
constexpr Is<bool> yes(std::string_view why) { return {true, why}; }
constexpr Is<bool> no(std::string_view why) { return {false, why}; }
template <class E>
constexpr Is<E> is(E v, std::string_view why) { return {v, why}; }
constexpr Is<std::uint32_t> u32(std::uint32_t v, std::string_view why) { return {v, why}; }
constexpr Is<std::uint64_t> u64(std::uint64_t v, std::string_view why) { return {v, why}; }
constexpr Is<unsigned> width(unsigned v, std::string_view why) { return {v, why}; }
/// The profile's base decides (hyperv: the hardware's choice).
inline constexpr std::nullopt_t as_base = std::nullopt;

/// One setting: its key, the member it fills, its one reader, and per profile
/// (ProfileId order: apm, kvm, qemu, bochs, xen, hyperv) its value and reason.
template <class T>
struct Row {
    std::string_view key;
    T Profile::*member;
    std::string_view read_by;
    std::array<std::optional<Is<T>>, kProfileCount> by;
    std::string (*show)(const T&) = nullptr;  ///< nullptr: yes/no, enum name or hex
};

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

/// Every value a setting of type T can take, for the flip test (integers:
/// the values the rows use, plus 0).
template <class T>
constexpr auto kEvery = std::array<T, 0>{};
template <> constexpr auto kEvery<bool> = std::array{false, true};
template <> constexpr auto kEvery<Cr3Rule> =
    std::array{Cr3Rule::by_paging_mode, Cr3Rule::format_always, Cr3Rule::long_mode_only, Cr3Rule::host_lma_pa_bits,
               Cr3Rule::none,           Cr3Rule::xen_low_bits,  Cr3Rule::kvm_legal_gpa};
template <> constexpr auto kEvery<LmaSource> = std::array{LmaSource::lme_and_pg, LmaSource::vmcb};
template <> constexpr auto kEvery<NpWithoutFeature> =
    std::array{NpWithoutFeature::ignored, NpWithoutFeature::sanitized, NpWithoutFeature::honoured};
template <> constexpr auto kEvery<Ncr3Rule> =
    std::array{Ncr3Rule::none, Ncr3Rule::pa_bits, Ncr3Rule::pa_bits_host_long_mode};
template <> constexpr auto kEvery<EventVectorRule> =
    std::array{EventVectorRule::apm_exceptions, EventVectorRule::reject_2_and_ge31, EventVectorRule::reject_2_and_gt31};
template <> constexpr auto kEvery<BitmapLimitRule> = std::array{BitmapLimitRule::last_byte, BitmapLimitRule::qemu_base,
                                                                BitmapLimitRule::base_only, BitmapLimitRule::none};
template <> constexpr auto kEvery<FailureWriteback> =
    std::array{FailureWriteback::exit_fields_only, FailureWriteback::host_state};

template <class T>
std::string show(const T& v) {
    if constexpr (std::is_same_v<T, bool>) {
        return v ? "yes" : "no";
    } else if constexpr (std::is_enum_v<T>) {
        return std::string(name_of(v));
    } else {
        return fmt::format("{:#x}", v);
    }
}
std::string show_pa_width(const unsigned& w) { return w == 0 ? "model MAXPHYADDR" : std::to_string(w); }
std::string show_efer_rule(const std::uint64_t& valid) {
    return valid == 0 ? "model features" : fmt::format("fixed valid set {:#x}", valid);
}

/// The whole table, row after row, in `nsvm profile show` order.
template <class F>
void each_row(F&& f) {
    f(Row<Cr3Rule>{
        "cr3_rule", &Profile::cr3_rule, "cr3.mbz",
        {is(Cr3Rule::by_paging_mode,
            "APM 15.5.1 'any MBZ bit of CR3', with the format of the paging mode (APM 5.3.2): only the bits at or "
            "above MAXPHYADDR are MBZ, the low ones 'reserved'. AMD hardware runs the low reserved bits in every "
            "mode: in long mode without PCIDE 2:0 and 11:5 (kvm-unit-tests test_cr3, 'CR3 non-MBZ reserved bits': "
            "the guest runs), with PAE 4:0, in 2-level paging 2:0 and 11:5 (kvm-unit-tests 2026, 32-bit PAE and "
            "non-PAE guests); bits at or above MAXPHYADDR fail. With paging off AMD hardware runs a CR3 "
            "with PCID bits and bits above 31 (kvm 2024, 'Workaround overly strict CR3 check by Hyper-V'), so it "
            "is not checked. A 2015 report of an Opteron 1216 rejecting CR3 bit 32 with PAE paging suggests older "
            "processors checked 63:32 with PAE; no CPU model here is that old"),
         is(Cr3Rule::kvm_legal_gpa,
            "KVM nested_vmcb_check_save checks kvm_vcpu_is_legal_cr3 only if LME&&PG; otherwise "
            "nested_svm_load_cr3 rejects bits >= MAXPHYADDR later, after vmcb02 was prepared"),
         is(Cr3Rule::host_lma_pa_bits,
            "QEMU svm_helper.c helper_vmrun: CR3 bits >= phys_bits, tested only when the *host* EFER.LMA is 1"),
         is(Cr3Rule::none, "Bochs 2.7 cpu/svm.cc has no CR3 reserved-bit check"),
         is(Cr3Rule::xen_low_bits,
            "Xen svm_vmcb_isvalid, only when CR0.PG = 1: cr3&7; cr3&0xfe0 without PAE or in long mode; bits >= "
            "maxphysaddr in long mode"),
         is(Cr3Rule::format_always,
            "Hyper-V rejects with VMEXIT_INVALID the paging-off state KVM's SMM entry leaves (CR0.PG = PE = 0, CR3 "
            "with PCID bits and bits above 31), which AMD hardware runs (kvm 2024, 'Workaround overly strict CR3 "
            "check by Hyper-V'): modelled as the format CR4.PAE selects, checked even with paging off, with 63:32 "
            "must-be-zero outside long mode")}});
    f(Row<LmaSource>{
        "lma_source", &Profile::lma_source, "rules::View::long_mode (the xen_low_bits CR3 rule)",
        {is(LmaSource::lme_and_pg,
            "APM 15.5.1 states the long-mode rules on EFER.LME and CR0.PG; LMA is derived, so those rules do not "
            "consult the VMCB's LMA"),
         is(LmaSource::lme_and_pg, "KVM's checks test LME&&PG (nested_vmcb_check_save)"),
         is(LmaSource::vmcb, "QEMU helper_vmrun loads EFER as given, LMA included"),
         is(LmaSource::lme_and_pg, "Bochs recomputes LMA = LME & PG and ignores the VMCB's LMA (SvmEnterLoadCheckGuestState)"),
         is(LmaSource::vmcb, "Xen's CR3 rule reads EFER.LMA from the VMCB"), as_base}});
    f(Row<bool>{
        "efer_lma_without_lme_checked", &Profile::efer_lma_without_lme_checked, "efer.lma_without_lme",
        {no("APM 15.5.1 lists no EFER.LMA check, and KVM records that SVM does not check LMA ('EFER.LMA is not "
            "checked by SVM'); efer.lma_without_lme_pg warns about the state instead"),
         no("nested_vmcb_check_save: 'EFER.LMA is not checked by SVM against CR0.PG && EFER.LME'; the L2 is entered "
            "with vmcb12's EFER"),
         no("QEMU 7.2 helper_vmrun does not compare LMA with LME and loads EFER as given"),
         no("Bochs recomputes LMA = LME & PG (SvmEnterLoadCheckGuestState): the VMCB's LMA is ignored"),
         yes("svm_vmcb_isvalid passes EFER to hvm_efer_valid with CR0.PG unknown (-1), so 'LMA/LME/CR0.PG "
             "inconsistency' is reported for LMA without LME only; LMA = LME = 1 with paging off passes"),
         as_base}});
    f(Row<EventVectorRule>{
        "event_vector_rule", &Profile::event_vector_rule, "event_inj.vector",
        {is(EventVectorRule::apm_exceptions,
            "APM 15.20: TYPE=3 needs a vector that is an exception: 0,1,3-8,10-14,16-19,28,30, 21 (#CP) with shstk, "
            "29 (#VC) with sev_es; 2, 9, 15, 20, 22-27, 31 are not AMD64 exceptions"),
         is(EventVectorRule::apm_exceptions,
            "KVM v7 patch 17 (nested_svm_check_event_inj): the same defined-exception list, #CP only with guest "
            "SHSTK, #VC only with SEV-ES"),
         is(EventVectorRule::reject_2_and_ge31, "QEMU 7.2 helper_vmrun: VMEXIT_INVALID if vector == 2 or >= 31"),
         is(EventVectorRule::reject_2_and_gt31, "Bochs 2.7 SvmInjectEvents: invalid if vector == 2 or > 31"),
         is(EventVectorRule::reject_2_and_gt31,
            "Xen 2025 EVENTINJ patch: vector 2 or above 31 'does not belong to an exception'"),
         as_base}});
    f(Row<bool>{"event_type_check", &Profile::event_type_check, "event_inj.type",
                {yes("APM 15.20: TYPE 1, 5, 6, 7 are reserved; injecting one is VMEXIT_INVALID"),
                 yes("KVM v7 patch 17 checks reserved TYPE"), yes("QEMU: TYPE 1/5/6/7 give VMEXIT_INVALID"),
                 yes("Bochs: 'unsupported event injection type'"), yes("Xen 2025 patch: 'Invalid Injected Event Type'"),
                 as_base}});
    f(Row<bool>{"event_vector_check", &Profile::event_vector_check, "event_inj.vector",
                {yes("APM 15.20 (E3)"), yes("KVM v7 patch 17"), yes("QEMU svm_helper.c"), yes("Bochs svm.cc"),
                 yes("Xen 2025 EVENTINJ patch"), as_base}});
    f(Row<bool>{"eventinj_reserved_bits_fail", &Profile::eventinj_reserved_bits_fail, "event_inj.reserved",
                {no("APM 15.20 marks EVENTINJ[30:12] SBZ but names no exit; real hardware is not known to fail"),
                 no("KVM v7 patch 24 masks the reserved bits in the cached copy instead of failing"),
                 no("QEMU ignores the reserved bits"), no("Bochs ignores the reserved bits"),
                 yes("Xen rejects them: 'eventinj: MBZ bits are set'"), as_base}});
    f(Row<bool>{
        "eventinj_impossible_in_mode", &Profile::eventinj_impossible_in_mode, "event_inj.mode",
        {yes("APM 15.20 (E1): an event impossible in the guest mode, e.g. #BR (and #OF) in 64-bit mode, is illegal"),
         no("KVM does not check the guest mode of an injected exception"), no("QEMU does not check it"),
         no("Bochs 2.7 does not check it: nsvm diff saw #BR and #OF injected into a 64-bit guest and taken through "
            "its IDT (the check came after 2.7, Bochs issue #649)"),
         no("Xen does not check it"), as_base}});
    f(Row<bool>{"sev_es_event_check", &Profile::sev_es_event_check, "event_inj.sev_es",
                {yes("APM 15.35.8 (E4): SEV-ES guests cannot take injected INTn or exception vectors 3/4"),
                 no("KVM does not model SEV-ES for L2"), no("no SEV in QEMU TCG"), no("no SEV in Bochs"),
                 no("not in svm_vmcb_isvalid"), as_base}});
    f(Row<BitmapLimitRule>{
        "bitmap_limit_rule", &Profile::bitmap_limit_rule, "msrpm.limit and iopm.limit (rules::bitmap_out_of_range)",
        {is(BitmapLimitRule::last_byte,
            "APM 15.5.1/15.10.1/15.11: the map's last byte (page base + size - 1, bits 11:0 ignored) must be below "
            "2^MAXPHYADDR"),
         is(BitmapLimitRule::last_byte, "KVM nested_svm_check_bitmap_pa: page base and base + size - 1 must be legal GPAs"),
         is(BitmapLimitRule::qemu_base,
            "QEMU: (base & ~0xfff) >= (1 << phys_bits) - size fails, size 8 KiB (MSRPM) and 8 KiB + 1 (IOPM)"),
         is(BitmapLimitRule::base_only, "Bochs 2.7: only the page base is tested against 40 bits, not the map's end"),
         is(BitmapLimitRule::none, "svm_vmcb_isvalid does not check the permission maps"), as_base}});
    f(Row<std::uint32_t>{
        "msrpm_checked_size", &Profile::msrpm_checked_size, "msrpm.limit",
        {u32(0x2000,
             "APM 15.11 gives the MSRPM as 8 KiB. kvm-unit-tests expects base L-8K to fail, which fits 12 KiB, not 8; "
             "unresolved, so the apm profile follows the manual's 8 KiB"),
         u32(0x2000, "KVM uses MSRPM_SIZE = 8 KiB"), u32(0x2000, "QEMU svm_helper.c subtracts 8 KiB (SVM_MSRPM_SIZE)"),
         u32(0x2000, "unused: Bochs tests only the base"), u32(0x2000, "unused: Xen does not check"), as_base}});
    f(Row<std::uint32_t>{"iopm_checked_size", &Profile::iopm_checked_size, "iopm.limit",
                         {u32(0x3000, "APM 15.10.1: the IOPM is 12 KiB (3 pages)"),
                          u32(0x3000, "KVM: IOPM_SIZE = 12 KiB"), u32(0x2001, "QEMU subtracts SVM_IOPM_SIZE = 8 KiB + 1"),
                          u32(0x3000, "unused: Bochs tests only the base"), u32(0x3000, "unused: Xen does not check"),
                          as_base}});
    f(Row<unsigned>{"pa_check_width", &Profile::pa_check_width, "checks::pa_width (every MAXPHYADDR rule)",
                    {width(0, "APM: MAXPHYADDR from CPUID Fn8000_0008_EAX"),
                     width(0, "KVM: guest MAXPHYADDR (reserved_gpa_bits)"), width(0, "QEMU: cpu->phys_bits of the model"),
                     width(40, "Bochs 2.7 uses its compile-time 40-bit width whatever CPUID says"),
                     width(0, "Xen: the domain's maxphysaddr"), as_base},
                    &show_pa_width});
    f(Row<std::uint64_t>{
        "efer_rule", &Profile::efer_fixed_valid, "efer.mbz (rules::efer_bad_bits)",
        {u64(0, "APM 3.1.7: EFER bits of absent features are MBZ (LME/LMA lm, NXE nx, SVME svm, FFXSR fxsr_opt, TCE "
                "tce, MCOMMIT mcommit, UAIE uai, AIBRSE autoibrs; LMSLE, INTWB and undefined bits reserved)"),
         u64(0, "KVM kvm_valid_efer: supported_efer_bits gated by guest CPUID"),
         u64(arch::efer::SCE | arch::efer::LME | arch::efer::LMA | arch::efer::NXE | arch::efer::SVME |
                 arch::efer::FFXSR,
             "QEMU accepts SCE/LME/LMA/NXE/SVME/FFXSR whatever CPUID says; everything else fails"),
         u64(0, "Bochs: EFER bits unsupported by the CPU model"), u64(0, "Xen hvm_efer_valid: CPUID-policy gated"),
         as_base},
        &show_efer_rule});
    // KVM decides per CPU feature which EFER bits a guest may set
    // (kvm_enable_efer_bits at module load, then __kvm_valid_efer against the
    // guest's CPUID): bits it never enables are reserved for its guests even
    // on a CPU that has them, and kvm-unit-tests expects VMEXIT_INVALID for
    // them in vmcb12.
    f(Row<std::uint64_t>{
        "efer_always_reserved", &Profile::efer_always_reserved, "efer.mbz (rules::efer_bad_bits)",
        {u64(0, "APM 3.1.7: a bit is reserved only without its feature (the CPU model decides)"),
         u64(arch::efer::MCOMMIT | arch::efer::UAIE,
             "KVM enables only SCE, LME/LMA, NX, SVME, FFXSR, AutoIBRS (and, from 2026, TCE) for a guest, each when "
             "the host has the feature (kvm_enable_efer_bits); MCOMMIT and UAIE are never enabled, so "
             "kvm_valid_efer refuses them whatever the CPU"),
         u64(0, "QEMU: its fixed valid set decides (efer_rule)"), u64(0, "Bochs: bits unsupported by the model"),
         u64(0, "Xen: CPUID policy"), as_base}});
    f(Row<bool>{"efer_lm_check", &Profile::efer_lm_check, "efer.lm_unsupported",
                {yes("APM 15.5.1 (C9)"), yes("kvm_valid_efer rejects LME/LMA without LM"),
                 yes("QEMU: LME or LMA without CPUID LM"), yes("Bochs rejects them as unsupported EFER bits"),
                 yes("Xen hvm_efer_valid"), as_base}});
    f(Row<std::uint64_t>{"cr4_always_reserved", &Profile::cr4_always_reserved, "cr4.mbz (rules::cr4_bad_bits)",
                         {u64(0, "APM 3.1.3: only feature-gated and undefined bits (from the CPU model)"),
                          u64(0, "__kvm_is_valid_cr4: guest-CPUID gated; 'SVM has no extra CR4 restrictions'"),
                          u64(arch::cr4::CET | bits(63, 32),
                              "QEMU 7.2 cr4_reserved_bits: CET and bits 63:32 always reserved under TCG"),
                          u64(0, "Bochs: bits unsupported by the model"), u64(0, "Xen: CPUID policy"), as_base}});
    f(Row<std::uint64_t>{
        "cr4_ungated", &Profile::cr4_ungated, "cr4.mbz (rules::cr4_bad_bits)",
        {u64(0, "APM 3.1.3: every feature bit of CR4 is reserved without its feature"),
         u64(0, "KVM gates each on guest CPUID"),
         u64(arch::cr4::PSE | arch::cr4::PAE | arch::cr4::PGE | arch::cr4::PCIDE,
             "QEMU 7.2 gates only OSXSAVE, SMEP, SMAP, FSGSBASE, PKE, LA57, UMIP and PKS on CPUID; PSE, PAE, PGE and "
             "PCIDE are accepted whatever the CPU model (confirmed by nsvm diff: CR4.PCIDE under -cpu max without "
             "PCID)"),
         u64(0, "Bochs: bits unsupported by the model"), u64(0, "Xen: CPUID policy"), as_base}});
    f(Row<std::uint64_t>{"dr6_reserved", &Profile::dr6_reserved, "dr6.upper",
                         {u64(bits(63, 32), "APM 15.5.1 (C6): DR6[63:32]"), u64(bits(63, 32), "kvm_dr6_valid: upper 32 bits"),
                          u64(bits(63, 32), "QEMU 7.2 DR_RESERVED_MASK = bits 63:32 (helper_vmrun)"),
                          u64(bits(63, 32), "Bochs: DR6[63:32]"),
                          u64(bits(63, 32), "Xen: 'DR6: bits [63:32] are not zero'"), as_base}});
    f(Row<std::uint64_t>{"dr7_reserved", &Profile::dr7_reserved, "dr7.upper",
                         {u64(bits(63, 32), "APM 15.5.1 (C7): DR7[63:32]"), u64(bits(63, 32), "kvm_dr7_valid: upper 32 bits"),
                          u64(bits(63, 32), "QEMU 7.2 DR_RESERVED_MASK = bits 63:32"), u64(bits(63, 32), "Bochs: DR7[63:32]"),
                          u64(bits(63, 32), "Xen: 'DR7: bits [63:32] are not zero'"), as_base}});
    f(Row<bool>{"cs_l_d_any_mode", &Profile::cs_l_d_any_mode, "long_mode.cs_l_d",
                {no("APM 15.5.1 makes CS.L&CS.D illegal only with LME, PG and PAE"),
                 no("KVM v7 patch 16: only if LME&&PG"), no("QEMU: only with LME, PG, PAE"),
                 yes("Bochs 2.7: 'VMCB CS.D_B/L mismatch' in any mode"), no("Xen: only with LME, PG, PAE"),
                 as_base}});
    f(Row<bool>{"cs_l_d_needs_pae", &Profile::cs_l_d_needs_pae, "long_mode.cs_l_d",
                {yes("APM 15.5.1 (C12): EFER.LME, CR0.PG, CR4.PAE, CS.L and CS.D all nonzero"),
                 no("KVM v7 patch 16 tests CS.L && CS.D inside 'if (LME && PG)', without CR4.PAE"),
                 yes("QEMU: all five bits"), yes("Bochs: CS.L && CS.D in any mode (see cs_l_d_any_mode)"),
                 yes("Xen: all five bits"), as_base}});
    f(Row<bool>{"long_mode_pe_check", &Profile::long_mode_pe_check, "long_mode.pe",
                {yes("APM 15.5.1 (C11)"), yes("KVM nested_vmcb_check_save"), yes("QEMU post-load EFER checks"),
                 no("Bochs 2.7 does not check it; such a VMCB makes the emulator PANIC"),
                 yes("Xen: 'EFER_LME and CR0.PG are both set and CR0.PE is zero'"), as_base}});
    f(Row<bool>{"pcide_without_lma_fails", &Profile::pcide_without_lma_fails, "cr4.pcide_without_long_mode",
                {no("APM lists no such VMRUN check (MOV CR4 would #GP, VMRUN is not MOV CR4)"),
                 no("not in KVM's checks"), no("not in QEMU's checks"),
                 yes("Bochs runs its generic MOV-CR4 check: PCIDE without LMA is rejected"),
                 no("not in svm_vmcb_isvalid"), as_base}});
    f(Row<bool>{"cet_checks", &Profile::cet_checks, "cet.s_cet_reserved and cet.cr0_wp",
                {yes("APM 15.5.1 C17/C18: S_CET reserved bits, CR4.CET without CR0.WP (only on CPUs with CET state)"),
                 no("KVM does not implement the CET consistency checks"), no("QEMU TCG has no CET"),
                 no("Bochs 2.7 does not check CET state at VMRUN"), no("svm_vmcb_isvalid has no CET rule"), as_base}});
    f(Row<bool>{"asid_check", &Profile::asid_check, "asid.zero",
                {yes("APM 15.5.1/15.25.1 (C16)"), yes("KVM nested_vmcb_check_controls"), yes("QEMU control checks"),
                 yes("Bochs: 'attempt to run guest with host ASID'"),
                 no("svm_vmcb_isvalid does not check the ASID"), as_base}});
    f(Row<bool>{"vmrun_intercept_check", &Profile::vmrun_intercept_check, "intercept.vmrun",
                {yes("APM 15.5.1, Table 15-7 (C13)"), yes("KVM nested_vmcb_check_controls"), yes("QEMU helper_vmrun"),
                 yes("Bochs SvmEnterLoadCheckControls"),
                 yes("Xen 'GENERAL2_INTERCEPT: VMRUN intercept bit is clear'"), as_base}});
    f(Row<NpWithoutFeature>{
        "np_without_feature", &Profile::np_without_feature,
        "rules::View::np (every nested-paging check) and nested's sanitize_cache",
        {is(NpWithoutFeature::ignored, "APM 15.25.3: NP_ENABLE needs CPUID NP; on a CPU without it the bit has no effect"),
         is(NpWithoutFeature::sanitized,
            "KVM v7 patch 14 dropped the NP check and clears NP_ENABLE when L1 lacks NPT"),
         is(NpWithoutFeature::honoured, "QEMU honours NP_ENABLE even without CPUID NPT (nsvm diff)"),
         is(NpWithoutFeature::ignored, "Bochs: NP_ENABLE on a model without NPT is silently off"),
         is(NpWithoutFeature::honoured, "svm_vmcb_isvalid does not look at NP_ENABLE"), as_base}});
    f(Row<Ncr3Rule>{"ncr3_rule", &Profile::ncr3_rule, "np.ncr3",
                    {is(Ncr3Rule::pa_bits, "APM 15.25.4 (N2): MBZ bits of nCR3, i.e. bits >= MAXPHYADDR"),
                     is(Ncr3Rule::pa_bits, "KVM v7 patch 15: nCR3 must be a legal GPA"),
                     is(Ncr3Rule::none, "QEMU takes nCR3 as is"),
                     is(Ncr3Rule::pa_bits_host_long_mode,
                        "Bochs: 'NCR3 reserved bits set', only while the host is in long mode"),
                     is(Ncr3Rule::none, "not checked"), as_base}});
    f(Row<bool>{"g_pat_check", &Profile::g_pat_check, "np.g_pat",
                {yes("APM 15.25.4 (N3): G_PAT is used, and checked, only with nested paging"),
                 no("KVM checks gPAT only when L2 has its own PAT (quirk NESTED_SVM_SHARED_PAT disabled; it is enabled "
                    "by default, so not checked)"),
                 no("QEMU does not validate G_PAT"), yes("Bochs: 'invalid memory type in guest PAT_MSR' with NP"),
                 no("not checked"), as_base}});
    f(Row<bool>{"np_host_paging_check", &Profile::np_host_paging_check, "np.host_paging",
                {yes("APM 15.25.3 (N1): NP_ENABLE with host CR0.PG=0 is illegal (needs host state)"),
                 no("KVM: L1 cannot reach VMRUN without paging (#UD), so no separate check"),
                 no("QEMU does not check it"), yes("Bochs: 'enter nested paging mode when host paging is disabled'"),
                 no("not checked"), as_base}});
    f(Row<bool>{"sss_check", &Profile::sss_check, "np.sss_without_np",
                {yes("APM 15.25.14 (N4): SSSCheckEn without nested paging is illegal (ignored with a non-PAE or NXE=0 "
                     "host); only on CPUs with the feature"),
                 no("not implemented by KVM"), no("not implemented by QEMU"), no("not implemented by Bochs"),
                 no("not checked"), as_base}});
    f(Row<bool>{"vnmi_check", &Profile::vnmi_check, "vnmi.nmi_intercept",
                {yes("APM 15.21.10 (V1): V_NMI_ENABLE requires the NMI intercept"),
                 yes("KVM nested_vmcb_check_controls: V_NMI_ENABLE without INTERCEPT_NMI fails"),
                 no("QEMU TCG has no vNMI"), no("Bochs has no vNMI"), no("not checked"), as_base}});
    f(Row<bool>{"vnmi_needs_feature", &Profile::vnmi_needs_feature, "vnmi.nmi_intercept",
                {yes("APM 15.21.10: on a CPU without vNMI, int_ctl bit 26 is reserved and ignored"),
                 no("KVM tests vmcb12's bit whatever L1's CPUID says"), yes("n/a: QEMU has no vNMI check"),
                 yes("n/a: Bochs has no vNMI check"), yes("n/a: Xen has no vNMI check"), as_base}});
    f(Row<bool>{"avic_checks", &Profile::avic_checks, "avic.* (A1-A4)",
                {yes("APM 15.29.4 (A1-A3): x2AVIC without AVIC, AVIC_PHYSICAL_MAX_INDEX range, table pointers beyond "
                     "MAXPHYADDR (exit taken as VMEXIT_INVALID)"),
                 no("KVM ignores vmcb12's AVIC fields (not cached)"), no("no AVIC in QEMU TCG"), no("no AVIC in Bochs"),
                 no("not checked"), as_base}});
    f(Row<bool>{"sev_checks", &Profile::sev_checks, "sev.*, sev_es.*, snp.*, event_inj.restricted_injection",
                {yes("APM 15.34.3, 15.36 (S1-S4, P4-P10): SEV needs NP, SmmLock, ASID <= NumEncryptedGuests, 64-bit "
                     "host; SNP feature combinations decidable from the VMCB; with Restricted Injection only #HV may "
                     "be injected"),
                 no("KVM does not run SEV guests as L2"), no("no SEV in QEMU TCG"), no("no SEV in Bochs"),
                 no("not checked"), as_base}});
    f(Row<bool>{"inferred_rules", &Profile::inferred_rules, "avic.requires_np, sev_es.requires_sev, sev_es.requires_lbrv",
                {yes("APM 15.29.4.1 (AVIC without NP, A4) and 15.35.2 (SEV-ES without SEV or LBR virtualization, S5) "
                     "state requirements with no named exit; treated as VMEXIT_INVALID and marked inferred"),
                 no("not applied"), no("not applied"), no("not applied"), no("not applied"), as_base}});
    f(Row<bool>{"pdpe_check", &Profile::pdpe_check, "pdpe.reserved (and nested's load_l2_cr3, oracle's generator)",
                {yes("APM 15.5.1 (C21): a PAE guest without NP has its PDPEs read; reserved bits fail (needs guest "
                     "memory)"),
                 yes("KVM load_pdptrs in nested_svm_load_cr3 (late failure)"), no("QEMU does not read the PDPEs"),
                 yes("Bochs CheckPDPTR"), no("not checked"), as_base}});
    f(Row<bool>{"ud_without_paging", &Profile::ud_without_paging, "gate.paging",
                {no("APM VMRUN: #UD outside protected mode or with EFER.SVME=0; paging is not required"),
                 yes("KVM nested_svm_check_permissions also injects #UD when CR0.PG=0"), no("QEMU: protected mode only"),
                 no("Bochs: protected mode only"), no("Xen: protected mode only"), as_base}});
    f(Row<bool>{"smm_vmrun_ud", &Profile::smm_vmrun_ud, "gate.smm",
                {no("APM 15.5: VMRUN in SMM is undefined; no exception is named"),
                 yes("KVM nested_svm_vmrun: is_smm() injects #UD"), no("QEMU helper_vmrun has no SMM rule"),
                 no("Bochs has no SMM rule for VMRUN"), no("hardware rule (undefined)"), as_base}});
    f(Row<bool>{"v86_vmrun_ud", &Profile::v86_vmrun_ud, "cpu: svm_instruction_gate (cpu/gates.cpp)",
                {yes("APM Vol.3 VMRUN/VMLOAD/VMSAVE/STGI/CLGI/SKINIT/INVLPGA: recognized only in protected mode; "
                     "virtual-8086 mode raises #UD"),
                 no("KVM nested_svm_check_permissions tests CR0.PE and then CPL: #GP(0) in virtual-8086 mode (CPL 3)"),
                 no("QEMU helper_vmrun tests CR0.PE and then CPL: #GP(0) in virtual-8086 mode"),
                 yes("Bochs: protected_mode() is false in virtual-8086 mode, so #UD"),
                 yes("hardware rule (Xen runs on hardware)"), as_base}});
    f(Row<bool>{"rax_checks", &Profile::rax_checks, "gate.rax_alignment and gate.rax_maxphyaddr",
                {yes("APM VMRUN: #GP(0) if rAX is not 4 KiB aligned or beyond MAXPHYADDR"),
                 yes("post-series KVM page_address_valid in nested_svm_vmrun"), yes("QEMU 7.2.x stable backport"),
                 yes("Bochs: unaligned or beyond 40 bits"), yes("hardware check (Xen runs on hardware)"), as_base}});
    f(Row<bool>{"hsave_zero_gp", &Profile::hsave_zero_gp, "gate.hsave_zero (and nested's vmrun_gates)",
                {no("APM 15.36.12: VM_HSAVE_PA = 0 is #GP(0) only under SNP"),
                 yes("KVM: hsave_msr == 0 is #GP in every configuration"), no("QEMU: no such check"),
                 no("Bochs never uses VM_HSAVE_PA"), no("hardware rule"), as_base}});
    f(Row<FailureWriteback>{
        "failure_writeback", &Profile::failure_writeback, "cpu and nested: the VMEXIT_INVALID write-back",
        {is(FailureWriteback::exit_fields_only,
            "APM 15.6 is silent on the save area after VMEXIT_INVALID; real hardware is not known to write guest "
            "state"),
         is(FailureWriteback::exit_fields_only,
            "KVM nested_svm_vmrun's early failure path writes only exit_code/exit_info/event_inj"),
         is(FailureWriteback::host_state, "QEMU do_vmexit saves whatever is live: host values for early checks"),
         is(FailureWriteback::host_state, "Bochs writes the current state"),
         is(FailureWriteback::exit_fields_only,
            "Xen reports NSVM_ERROR_VVMCB; the virtual VMCB keeps its contents"),
         as_base}});
    f(Row<bool>{"cr3_late_failure", &Profile::cr3_late_failure, "nested: check_cache and load_l2_cr3",
                {no("APM 15.5.1: all checks are decided before any state is loaded"),
                 yes("KVM: a non-long-mode illegal CR3 or bad PDPTRs fail in nested_svm_load_cr3 after vmcb02 was "
                     "prepared"),
                 no("n/a: QEMU checks before loading"), no("n/a: Bochs checks before loading"),
                 no("n/a: Xen checks before loading"), as_base}});
    f(Row<bool>{"late_failure_full_vmexit", &Profile::late_failure_full_vmexit, "nested: fail_vmrun",
                {no("APM 15.6: no failure after state is loaded, so none is reported by a full #VMEXIT"),
                 yes("KVM enter_svm_guest_mode failure after vmcb02 was prepared goes through nested_svm_vmexit, "
                     "which writes vmcb12's save area from vmcb02"),
                 no("n/a: no late failure"), no("n/a: no late failure"), no("n/a: no late failure"), as_base}});
    f(Row<bool>{"exit_code_32bit", &Profile::exit_code_32bit, "checks::evaluate, cpu and nested (VMEXIT_INVALID)",
                {no("APM Appendix C: VMEXIT_INVALID is -1 in 64 bits"),
                 no("KVM writes exit_code_hi = -1 for SVM_EXIT_ERR"), yes("QEMU stores 0x00000000ffffffff"),
                 no("Bochs writes all 64 bits"), no("hardware"), as_base}});
    f(Row<bool>{"clear_gif_on_failure", &Profile::clear_gif_on_failure, "cpu, nested and oracle model: failed VMRUN",
                {yes("APM 15.6: every #VMEXIT clears GIF, VMEXIT_INVALID included"),
                 yes("KVM v7 patch 10 'Clear GIF on nested #VMEXIT(INVALID)'"), yes("QEMU: GIF := 0 (test image)"),
                 yes("Bochs: GIF := 0 (test image)"), yes("Xen nested SVM clears GIF on exit"), as_base}});
    f(Row<bool>{"eventinj_cleared_on_failure", &Profile::eventinj_cleared_on_failure, "cpu and nested: failed VMRUN",
                {yes("APM 15.20: EVENTINJ is consumed by #VMEXIT"), yes("KVM v7 patch 11 zeroes event_inj/event_inj_err"),
                 yes("QEMU: EXITINTINFO := EVENTINJ, EVENTINJ := 0"),
                 yes("Bochs: EVENTINJ written back with V cleared"), yes("hardware"), as_base}});
    f(Row<bool>{"vmexit_dr7_from_hsave", &Profile::vmexit_dr7_from_hsave, "cpu: #VMEXIT host-state reload",
                {no("APM 15.6: #VMEXIT disables host breakpoints (DR7 = 0x400)"), no("KVM: DR7 := fixed value"),
                 yes("QEMU restores host DR7 from the hsave page"), no("Bochs: DR7 := 0x400"), no("hardware"),
                 as_base}});
    f(Row<bool>{"hsave_used", &Profile::hsave_used, "cpu: host-save area",
                {yes("APM 15.5.1: host state is saved at VM_HSAVE_PA (format implementation-specific)"),
                 yes("KVM keeps L1 state in vmcb01 (HSAVE+0x400 only for SMM)"),
                 yes("QEMU writes host state to the hsave page"),
                 no("Bochs keeps host state inside the emulator; the page is never written"), yes("hardware"),
                 as_base}});
    f(Row<bool>{"canonical_writeback", &Profile::canonical_writeback, "cpu: #VMEXIT segment write-back",
                {no("hardware does not write canonicalized bases back (Bonzini, kvm-unit-tests review)"),
                 no("KVM copies vmcb02 values, which hardware did not canonicalize"),
                 yes("QEMU stores sign-extended bases"), yes("Bochs stores sign-extended bases"), no("hardware"),
                 as_base}});
    f(Row<bool>{"nrip_on_every_exit", &Profile::nrip_on_every_exit, "oracle: model and diff (next_rip)",
                {no("APM 15.7.1: nRIP only for instruction, MSR and IOIO intercepts, else 0"), no("KVM follows the APM"),
                 no("QEMU never writes nRIP"), yes("Bochs writes nRIP on every exit, VMEXIT_INVALID included"),
                 no("hardware"), as_base}});
}

/// The row's entry for profile i: its own, or its base's.
template <class T>
const Is<T>* pick(const Row<T>& r, std::size_t i) {
    if (r.by[i]) return &*r.by[i];
    const auto b = static_cast<std::size_t>(kMeta[i].base);
    return r.by[b] ? &*r.by[b] : nullptr;  // nullptr: a table error, reported by the choices test
}

std::array<Profile, kProfileCount> make_profiles() {
    std::array<Profile, kProfileCount> a{};
    for (std::size_t i = 0; i < kProfileCount; ++i) {
        a[i].id = kMeta[i].id;
        a[i].name = kMeta[i].name;
        a[i].description = kMeta[i].description;
    }
    each_row([&a](const auto& row) {
        for (std::size_t i = 0; i < kProfileCount; ++i)
            if (const auto* e = pick(row, i)) a[i].*(row.member) = e->value;
    });
    return a;
}

const std::array<Profile, kProfileCount>& profiles() {
    static const std::array<Profile, kProfileCount> p = make_profiles();
    return p;
}

std::vector<Choice> build_choices(std::size_t i) {
    std::vector<Choice> out;
    each_row([&](const auto& row) {
        const auto* e = pick(row, i);
        const auto& v = profiles()[i].*(row.member);
        out.push_back(Choice{row.key, row.show != nullptr ? row.show(v) : show(v), e != nullptr ? e->reason : ""});
    });
    return out;
}

/// The values a row's setting can take: every enumerator or both booleans,
/// and for integers the values the profiles use plus 0.
template <class T>
std::vector<T> values_of(const Row<T>& row) {
    std::vector<T> vs(kEvery<T>.begin(), kEvery<T>.end());
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
        vs.push_back(T{0});
        for (const auto& e : row.by)
            if (e) vs.push_back(e->value);
    }
    std::sort(vs.begin(), vs.end());
    vs.erase(std::unique(vs.begin(), vs.end()), vs.end());
    return vs;
}

std::vector<Setting> build_settings() {
    std::vector<Setting> out;
    each_row([&out](const auto& row) {
        out.push_back(Setting{row.key, row.read_by,
                              [member = row.member, vs = values_of(row)](const Profile& p) {
                                  std::vector<Profile> flipped;
                                  for (const auto& v : vs) {
                                      if (v == p.*member) continue;
                                      flipped.push_back(p);
                                      flipped.back().*member = v;
                                  }
                                  return flipped;
                              }});
    });
    return out;
}

}  // namespace

std::span<const Choice> Profile::choices() const noexcept {
    static const std::array<std::vector<Choice>, kProfileCount> all = [] {
        std::array<std::vector<Choice>, kProfileCount> a;
        for (std::size_t i = 0; i < kProfileCount; ++i) a[i] = build_choices(i);
        return a;
    }();
    return all[static_cast<std::size_t>(id)];
}

std::span<const Setting> settings() noexcept {
    static const std::vector<Setting> all = build_settings();
    return all;
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
    return nsvm::unexpected(fmt::format("unknown profile '{}'{} (profiles: apm, kvm, qemu, bochs, xen, hyperv)",
                                        util::printable(name),
                                        near.empty() ? "" : fmt::format(", did you mean '{}'?", near)));
}

}  // namespace nsvm::checks
