// Internal: the consistency checks as types. Each rule is one entry holding
// its metadata (id, APM section, row, stage, outcome, fields, message, hint),
// which profiles apply it (read from their settings), a noexcept,
// allocation-free predicate over a View (the VMCB fields, decoded once), and
// its detail renderer, memory need, inferred flag and boundary values.
//
// One list, kAllRules, drives both the public catalogue (catalogue.cpp) and
// the fast verdict (evaluate.cpp), so the two cannot drift apart.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/arch/vmcb.hpp"
#include "nsvm/checks/catalogue.hpp"

namespace nsvm::checks::rules {

using arch::bit;
using arch::bits;
using arch::FieldId;


/// Bits at or above `width` (the illegal part of a physical address).
[[nodiscard]] constexpr std::uint64_t above(unsigned width) noexcept {
    return width >= 64 ? 0 : ~((std::uint64_t{1} << width) - 1);
}

// SEV_FEATURES bits (APM 15.35.x, Table 15-36; the SEV_STATUS MSR shows the
// same bits shifted up by 2).
namespace sevf {
inline constexpr std::uint64_t SNP_ACTIVE = bit(0), RESTRICTED_INJECTION = bit(3), ALTERNATE_INJECTION = bit(4),
                               PREVENT_HOST_IBS = bit(6), VMPL_SSS = bit(8), IBS_VIRT = bit(12),
                               SECURE_AVIC = bit(16);
}
/// allowed_sev_features (control 138h): bit 63 enables the mask (APM 15.36.20).
inline constexpr std::uint64_t kAllowedSevEnable = bit(63);
/// HWCR.SmmLock (C001_0015 bit 0).
inline constexpr std::uint64_t kHwcrSmmLock = bit(0);

/// Everything the predicates read, decoded from the VMCB once.
struct View {
    const Context& ctx;
    const CpuModel& cpu;
    const Profile& p;
    const HostState* host;
    std::uint64_t fw;   ///< the model's feature set as one word
    std::uint64_t efer{}, cr0{}, cr3{}, cr4{}, dr6{}, dr7{}, rflags{}, misc_ctl{}, misc_ctl2{}, int_ctl{}, iopm{},
        msrpm{}, ncr3{}, g_pat{}, s_cet{}, allowed_sev{}, avic_backing{}, avic_logical{}, avic_physical{};
    std::uint32_t event_inj{}, asid{};
    std::uint16_t cs_attrib{};
    unsigned pa;            ///< physical-address width the profile checks against
    bool lme_pg{};          ///< EFER.LME && CR0.PG
    bool long_mode{};       ///< per the profile's LMA source
    bool np{};              ///< nested paging in effect (NP_ENABLE, feature, profile)
    bool sev_es_on_{};      ///< SEV-ES enabled in the VMCB on a CPU with SEV-ES
    bool avic_on_{};        ///< AVIC enabled in the VMCB on a CPU with AVIC

    /// For the instruction gates alone: they read the executing processor's
    /// state (host) and the address width, never the VMCB, which is left
    /// undecoded (every VMCB field reads as 0). SVM instructions run the
    /// gates on every execution; decoding a VMCB there would be wasted.
    struct GatesOnly {};
    View(const Context& c, GatesOnly) noexcept
        : ctx(c), cpu(c.cpu), p(c.profile), host(c.host), fw(c.cpu.features().to_ullong()),
          pa(pa_width(c.profile, c.cpu.maxphyaddr)) {}

    explicit View(const Context& c) noexcept
        : ctx(c),
          cpu(c.cpu),
          p(c.profile),
          host(c.host),
          fw(c.cpu.features().to_ullong()),
          efer(ld<FieldId::efer>(c)),
          cr0(ld<FieldId::cr0>(c)),
          cr3(ld<FieldId::cr3>(c)),
          cr4(ld<FieldId::cr4>(c)),
          dr6(ld<FieldId::dr6>(c)),
          dr7(ld<FieldId::dr7>(c)),
          rflags(ld<FieldId::rflags>(c)),
          misc_ctl(ld<FieldId::misc_ctl>(c)),
          misc_ctl2(ld<FieldId::misc_ctl2>(c)),
          int_ctl(ld<FieldId::int_ctl>(c)),
          iopm(ld<FieldId::iopm_base_pa>(c)),
          msrpm(ld<FieldId::msrpm_base_pa>(c)),
          ncr3(ld<FieldId::nested_cr3>(c)),
          g_pat(ld<FieldId::g_pat>(c)),
          s_cet(ld<FieldId::s_cet>(c)),
          allowed_sev(ld<FieldId::allowed_sev_features>(c)),
          avic_backing(ld<FieldId::avic_backing_page>(c)),
          avic_logical(ld<FieldId::avic_logical_id>(c)),
          avic_physical(ld<FieldId::avic_physical_id>(c)),
          event_inj(static_cast<std::uint32_t>(ld<FieldId::event_inj>(c))),
          asid(static_cast<std::uint32_t>(ld<FieldId::asid>(c))),
          cs_attrib(static_cast<std::uint16_t>(ld<FieldId::cs_attrib>(c))),
          pa(pa_width(c.profile, c.cpu.maxphyaddr)),
          lme_pg((efer & arch::efer::LME) != 0 && (cr0 & arch::cr0::PG) != 0),
          long_mode(c.profile.lma_source == LmaSource::vmcb ? (efer & arch::efer::LMA) != 0 : lme_pg),
          np((misc_ctl & arch::misc_ctl::NP_ENABLE) != 0 &&
             (((fw >> unsigned(Feature::npt)) & 1) != 0 ||
              c.profile.np_without_feature == NpWithoutFeature::honoured)),
          sev_es_on_(has(Feature::sev_es) && (misc_ctl & arch::misc_ctl::SEV_ES_ENABLE) != 0),
          avic_on_(has(Feature::avic) && (int_ctl & arch::int_ctl::AVIC_ENABLE) != 0) {}

    [[nodiscard]] bool has(Feature f) const noexcept { return ((fw >> static_cast<unsigned>(f)) & 1) != 0; }

    /// A field read with its offset and width fixed at compile time: one
    /// memcpy of a little-endian value (no per-byte loop, no type punning).
    template <FieldId F>
    [[nodiscard]] static std::uint64_t ld(const Context& c) noexcept {
        constexpr auto fi = arch::info(F);
        constexpr std::size_t w = fi.width > 8 ? 8 : fi.width;
        static_assert(fi.offset + w <= arch::kVmcbSize);
        if constexpr (std::endian::native == std::endian::little) {
            std::uint64_t v = 0;
            std::memcpy(&v, c.vmcb.page().data() + fi.offset, w);
            return v;
        } else {
            return arch::load_le(c.vmcb.page(), fi.offset, w);
        }
    }

    [[nodiscard]] std::uint64_t pa_reserved() const noexcept { return above(pa); }
    [[nodiscard]] bool event_valid() const noexcept { return (event_inj & arch::event::V) != 0; }
    [[nodiscard]] unsigned event_type() const noexcept { return arch::event::type_of(event_inj); }
    [[nodiscard]] unsigned event_vector() const noexcept { return event_inj & arch::event::VECTOR; }
    [[nodiscard]] bool sev_es_on() const noexcept { return sev_es_on_; }
    [[nodiscard]] bool sev_on() const noexcept {
        return has(Feature::sev) && (misc_ctl & arch::misc_ctl::SEV_ENABLE) != 0;
    }
    [[nodiscard]] bool snp_vmcb() const noexcept { return sev_es_on_ && has(Feature::sev_snp); }
    [[nodiscard]] bool avic_on() const noexcept { return avic_on_; }
    /// rAX as VMRUN uses it: truncated to the effective address size.
    [[nodiscard]] std::uint64_t host_rax() const noexcept {
        if (host == nullptr) return 0;
        switch (host->address_size) {
            case 16: return host->rax & 0xFFFF;
            case 32: return host->rax & 0xFFFFFFFF;
            default: return host->rax;
        }
    }
};

// --- Shared computations (also used by the detail renderers) ---

/// CR3 bits that are set but must be zero under the profile's CR3 rule.
[[nodiscard]] [[gnu::always_inline]] inline std::uint64_t cr3_bad_bits(const View& v) noexcept {
    using namespace arch;
    switch (v.p.cr3_rule) {
        case Cr3Rule::by_paging_mode:
            // APM 15.5.1 fails "any MBZ bit of CR3"; APM 5.3.2 marks only the
            // bits at or above MAXPHYADDR MBZ, the low ones "reserved" (which
            // software should clear). Hardware agrees in every paging mode:
            // in long mode without PCIDE, bits 2:0 and 11:5 run (kvm-unit-tests
            // test_cr3, "CR3 non-MBZ reserved bits": the guest runs and takes
            // #NPF), and outside long mode (kvm-unit-tests 2026, 32-bit PAE
            // and non-PAE guests) PAE ignores 4:0 and 2-level paging 2:0 and
            // 11:5; bits at or above MAXPHYADDR fail. A guest's own MOV CR3
            // takes the same bits (cpu/control_regs), so L2 cannot leave a
            // CR3 its next VMRUN refuses. With paging off, AMD hardware runs
            // a CR3 with PCID bits and bits above 31 (KVM's SMM entry from a
            // long-mode guest with PCID leaves exactly that).
            if (!v.lme_pg && (v.cr0 & cr0::PG) == 0) return 0;
            return v.cr3 & v.pa_reserved();
        case Cr3Rule::format_always:
            // Hyper-V as L0 applies the format CR4.PAE selects whatever CR0.PG
            // says, so it rejects the paging-off state above (KVM's 2024
            // "Workaround overly strict CR3 check by Hyper-V").
            if (v.lme_pg) {
                const std::uint64_t low = (v.cr4 & cr4::PCIDE) != 0 ? 0 : cr3::kLongLowMbz;
                return v.cr3 & (low | v.pa_reserved());
            }
            if ((v.cr4 & cr4::PAE) != 0) return v.cr3 & cr3::kPaeMbz;
            return v.cr3 & (cr3::kLegacyMbz | bits(63, 32));
        case Cr3Rule::long_mode_only:
            return v.lme_pg ? v.cr3 & v.pa_reserved() : 0;
        case Cr3Rule::kvm_legal_gpa: {
            // kvm_vcpu_is_legal_cr3: bits 62:61 are LAM controls when the
            // guest has LAM; everything else above MAXPHYADDR is illegal.
            std::uint64_t m = v.pa_reserved();
            if (v.has(Feature::lam)) m &= ~(bit(61) | bit(62));
            return v.cr3 & m;
        }
        case Cr3Rule::host_lma_pa_bits:
            // QEMU tests the *host's* LMA; an unknown host is taken to be a
            // 64-bit hypervisor, the only kind QEMU's SVM users run.
            if (v.host != nullptr && (v.host->efer & efer::LMA) == 0) return 0;
            return v.cr3 & v.pa_reserved();
        case Cr3Rule::none:
            return 0;
        case Cr3Rule::xen_low_bits: {
            // svm_vmcb_isvalid looks at CR3 only when CR0.PG = 1.
            if ((v.cr0 & cr0::PG) == 0) return 0;
            std::uint64_t r = v.cr3 & 7;
            if ((v.cr4 & cr4::PAE) == 0 || v.long_mode) r |= v.cr3 & 0xFE0;
            if (v.long_mode) r |= v.cr3 & v.pa_reserved();
            return r;
        }
    }
    return 0;
}

[[nodiscard]] inline std::uint64_t cr4_bad_bits(const View& v) noexcept {
    return v.cr4 & ((v.cpu.cr4_reserved_bits() & ~v.p.cr4_ungated) | v.p.cr4_always_reserved);
}

/// EFER MBZ bits other than LME/LMA (those are efer.lm_unsupported's job).
[[nodiscard]] inline std::uint64_t efer_bad_bits(const View& v) noexcept {
    const std::uint64_t reserved =
        (v.p.efer_fixed_valid != 0 ? ~v.p.efer_fixed_valid : v.cpu.efer_reserved_bits()) | v.p.efer_always_reserved;
    return v.efer & reserved & ~(arch::efer::LME | arch::efer::LMA);
}

/// S_CET bits that are reserved (MSR 6A2h, APM 13.x / 15.5.1): 9:6 always;
/// without IBT also the ENDBR/legacy-bitmap controls 5:2 and 63:10.
[[nodiscard]] inline std::uint64_t s_cet_bad_bits(const View& v) noexcept {
    std::uint64_t r = bits(9, 6);
    if (!v.has(Feature::ibt)) r |= bits(5, 2) | bits(63, 10);
    return v.s_cet & r;
}

/// Exclusive upper bound of legal physical addresses, saturating at 2^64.
[[nodiscard]] constexpr std::uint64_t pa_limit(unsigned width) noexcept {
    return width >= 64 ? ~std::uint64_t{0} : std::uint64_t{1} << width;
}

/// Is a permission map at `base` (bits 11:0 ignored) of `size` bytes out of
/// range under the profile's rule (APM 15.10.1, 15.11; row C14)?
[[nodiscard]] inline bool bitmap_out_of_range(const View& v, std::uint64_t base, std::uint32_t size) noexcept {
    const std::uint64_t page = base & ~std::uint64_t{0xFFF};
    const std::uint64_t limit = pa_limit(v.pa);
    switch (v.p.bitmap_limit_rule) {
        case BitmapLimitRule::last_byte:  // last byte page + size - 1 must be < limit
            return page >= limit || limit - page < size;
        case BitmapLimitRule::qemu_base:  // (base & ~0xfff) >= limit - size
            return limit < size || page >= limit - size;
        case BitmapLimitRule::base_only:
            return page >= limit;
        case BitmapLimitRule::none:
            return false;
    }
    return false;
}

/// Is `vector` acceptable for an injected exception (TYPE=3)?
[[nodiscard]] inline bool exception_vector_ok(const View& v, unsigned vector) noexcept {
    switch (v.p.event_vector_rule) {
        case EventVectorRule::apm_exceptions:
            switch (vector) {
                case 0: case 1: case 3: case 4: case 5: case 6: case 7: case 8: case 10: case 11: case 12:
                case 13: case 14: case 16: case 17: case 18: case 19: case 28: case 30:
                    return true;
                case 21: return v.has(Feature::shstk);   // #CP exists only with CET
                case 29: return v.has(Feature::sev_es);  // #VC exists only for SEV-ES
                default: return false;
            }
        case EventVectorRule::reject_2_and_ge31:
            return vector != 2 && vector < 31;
        case EventVectorRule::reject_2_and_gt31:
            return vector != 2 && vector <= 31;
    }
    return false;
}

/// Is a PAE legacy guest without nested paging loaded (C21 applies)?
[[nodiscard]] inline bool pae_legacy_without_np(const View& v) noexcept {
    return (v.cr0 & arch::cr0::PG) != 0 && (v.cr4 & arch::cr4::PAE) != 0 && !v.lme_pg && !v.np;
}
/// The PDPT base of a PAE CR3 (bits 31:5).
using arch::cr3::pdpt_base;
[[nodiscard]] inline std::uint64_t pdpe_bad_bits(const View& v, std::uint64_t pdpe) noexcept {
    if ((pdpe & arch::pdpe::P) == 0) return 0;  // not present: not checked
    return pdpe & (arch::pdpe::kLowReserved | above(v.pa));
}

// --- The rules ---

// Renderers of the offending values in words (catalogue.cpp); an entry names
// the one it uses, or none for the generic "field = value" list.
namespace render {
std::string host(const Context&);
std::string rax(const Context&);
std::string msrpm(const Context&);
std::string iopm(const Context&);
std::string cr0(const Context&);
std::string cr3(const Context&);
std::string cr4(const Context&);
std::string efer(const Context&);
std::string efer_plain(const Context&);
std::string long_mode(const Context&);
std::string lma(const Context&);
std::string s_cet(const Context&);
std::string event(const Context&);
std::string pdpe(const Context&);
std::string sev_features(const Context&);
std::string snp_features(const Context&);
std::string event_restricted(const Context&);
}  // namespace render

using DetailFn = std::string (*)(const Context&);
using NeedsFn = bool (*)(const Context&) noexcept;

// Boundary pokes, short enough for a table.
[[nodiscard]] constexpr Poke put(FieldId f, std::uint64_t v) noexcept { return {f, Op::assign, v}; }
[[nodiscard]] constexpr Poke set(FieldId f, std::uint64_t v) noexcept { return {f, Op::set, v}; }
[[nodiscard]] constexpr Poke clear(FieldId f, std::uint64_t v) noexcept { return {f, Op::clear, v}; }
[[nodiscard]] constexpr HostPoke host_put(HostReg r, std::uint64_t v) noexcept { return {r, Op::assign, v}; }
[[nodiscard]] constexpr HostPoke host_clear(HostReg r, std::uint64_t v) noexcept { return {r, Op::clear, v}; }

/// What an entry has unless it says otherwise: every profile applies it, the
/// generic detail, decided without guest memory, a rule the APM states.
struct RuleDefaults {
    [[nodiscard]] static constexpr bool applies(const Profile&) noexcept { return true; }
    static constexpr DetailFn detail = nullptr;
    static constexpr NeedsFn needs = nullptr;
    static constexpr bool inferred = false;
    static constexpr std::array<std::string_view, 0> settings{};
    static constexpr std::string_view unchecked{};
    static constexpr std::string_view needs_what = "guest memory";
};

// An entry's optional parts, written inside it.
#define NSVM_DETAIL(fn) static constexpr DetailFn detail = &fn;
#define NSVM_NEEDS(fn) static constexpr NeedsFn needs = &fn;
#define NSVM_NEEDS_WHAT(text) static constexpr std::string_view needs_what = text;
#define NSVM_INFERRED static constexpr bool inferred = true;
// What happens when a profile that does not apply the check meets a VMCB that
// violates it (VMRUN goes ahead): reported as a warning with the check's id.
#define NSVM_WHEN_UNCHECKED(text) static constexpr std::string_view unchecked = text;
#define NSVM_SETTINGS(...) static constexpr auto settings = std::to_array<std::string_view>({__VA_ARGS__});
#define NSVM_BOUNDARY(...) static constexpr auto boundary = std::to_array<Boundary>({__VA_ARGS__});
// Every entry counts itself where it is defined: kRulesDefined below is the
// number of rules, which the catalogue must list, every one (rules_defined()).
// (A static_assert, not a member: the count lives in no entity, so the
// entries are the same in every translation unit.)
#define NSVM_COUNTED static_assert(__COUNTER__ > 0);
constexpr int kFirstRule = __COUNTER__;

/// One check, whole: metadata, which profiles apply it (from their settings),
/// its predicate, and the optional parts after the hint (detail, needs,
/// inferred, and its boundary values, which every entry has).
#define NSVM_RULE(Name, ID, APM, REF, STAGE, OUTCOME, APPLIES, FIELDS, MSG, HINT, ...)                             \
    struct Name : RuleDefaults {                                                                                \
        static constexpr std::string_view id = ID, apm = APM, ref = REF, message = MSG, hint = HINT;           \
        static constexpr Stage stage = Stage::STAGE;                                                            \
        static constexpr Outcome outcome = Outcome::OUTCOME;                                                    \
        [[nodiscard]] static constexpr bool applies([[maybe_unused]] const Profile& p) noexcept { return APPLIES; } \
        static constexpr auto fields = std::to_array<std::string_view> FIELDS;                                  \
        __VA_ARGS__                                                                                             \
        NSVM_COUNTED                                                                                            \
        [[nodiscard]] static bool test(const View& v) noexcept;                                                 \
    };                                                                                                          \
    inline bool Name::test([[maybe_unused]] const View& v) noexcept

// Instruction-level gates (APM VMRUN instruction page, 15.5.1, 15.4). They
// need the executing processor's state; without ctx.host they do not apply.
// The architectural gates apply under every profile; a gate that only some
// implementations raise names its setting in its applies().
struct GateBase : RuleDefaults {
    static constexpr Stage stage = Stage::instruction;
    static constexpr std::array<std::string_view, 0> fields{};
};
struct GateSvme : GateBase {
    static constexpr std::string_view id = "gate.efer_svme", apm = "15.4", ref = "gate";
    static constexpr Outcome outcome = Outcome::ud;
    static constexpr std::string_view message = "VMRUN executed with the host's EFER.SVME = 0 raises #UD";
    static constexpr std::string_view hint = "set EFER.SVME (bit 12) in the host before executing VMRUN";
    [[nodiscard]] static bool test(const View& v) noexcept {
        return v.host != nullptr && (v.host->efer & arch::efer::SVME) == 0;
    }
    NSVM_DETAIL(render::host)
    NSVM_BOUNDARY(Boundary{.name = "host_svme1", .with_host = true},
                  Boundary{.name = "host_svme0", .host = {host_clear(HostReg::efer, arch::efer::SVME)}, .with_host = true})
    NSVM_COUNTED
};
struct GateProtectedMode : GateBase {
    static constexpr std::string_view id = "gate.protected_mode", apm = "15.5.1", ref = "gate";
    static constexpr Outcome outcome = Outcome::ud;
    static constexpr std::string_view message = "VMRUN outside protected mode (host CR0.PE = 0) raises #UD";
    static constexpr std::string_view hint = "execute VMRUN in protected or long mode";
    [[nodiscard]] static bool test(const View& v) noexcept {
        return v.host != nullptr && (v.host->cr0 & arch::cr0::PE) == 0;
    }
    NSVM_DETAIL(render::host)
    NSVM_BOUNDARY(Boundary{.name = "host_pe1", .with_host = true},
                  Boundary{.name = "host_pe0", .host = {host_clear(HostReg::cr0, arch::cr0::PE | arch::cr0::PG)}, .with_host = true})
    NSVM_COUNTED
};
struct GatePaging : GateBase {
    static constexpr std::string_view id = "gate.paging", apm = "15.5.1", ref = "gate";
    static constexpr Outcome outcome = Outcome::ud;
    [[nodiscard]] static constexpr bool applies(const Profile& p) noexcept { return p.ud_without_paging; }
    static constexpr std::string_view message =
        "VMRUN with host paging off (CR0.PG = 0) raises #UD under KVM (nested_svm_check_permissions)";
    static constexpr std::string_view hint = "enable paging in L1 before executing VMRUN";
    [[nodiscard]] static bool test(const View& v) noexcept {
        return v.host != nullptr && (v.host->cr0 & arch::cr0::PE) != 0 && (v.host->cr0 & arch::cr0::PG) == 0;
    }
    NSVM_DETAIL(render::host)
    NSVM_SETTINGS("ud_without_paging")
    NSVM_BOUNDARY(Boundary{.name = "host_pg1", .with_host = true},
                  Boundary{.name = "host_pg0", .host = {host_clear(HostReg::cr0, arch::cr0::PG)}, .with_host = true})
    NSVM_COUNTED
};
struct GateCpl : GateBase {
    static constexpr std::string_view id = "gate.cpl", apm = "15.5.1", ref = "gate";
    static constexpr Outcome outcome = Outcome::gp;
    static constexpr std::string_view message = "VMRUN at CPL > 0 (or in virtual-8086 mode) raises #GP(0)";
    static constexpr std::string_view hint = "execute VMRUN at CPL 0";
    [[nodiscard]] static bool test(const View& v) noexcept {
        return v.host != nullptr && (v.host->cr0 & arch::cr0::PE) != 0 &&
               (v.host->cpl != 0 || (v.host->rflags & arch::rflags::VM) != 0);
    }
    NSVM_DETAIL(render::host)
    NSVM_BOUNDARY(Boundary{.name = "cpl0", .with_host = true},
                  Boundary{.name = "cpl3", .host = {host_put(HostReg::cpl, 3)}, .with_host = true},
                  Boundary{.name = "v86", .host = {host_put(HostReg::rflags, arch::rflags::VM | 2)}, .with_host = true})
    NSVM_COUNTED
};
struct GateHsaveZero : GateBase {
    static constexpr std::string_view id = "gate.hsave_zero", apm = "15.36.12", ref = "gate";
    static constexpr Outcome outcome = Outcome::gp;
    [[nodiscard]] static constexpr bool applies(const Profile& p) noexcept { return p.hsave_zero_gp; }
    static constexpr std::string_view message = "VM_HSAVE_PA is 0: KVM raises #GP(0) on VMRUN (the APM only under SNP)";
    static constexpr std::string_view hint = "write the host-save area's physical address to MSR C001_0117 first";
    [[nodiscard]] static bool test(const View& v) noexcept {
        return v.host != nullptr && v.host->vm_hsave_pa.has_value() && *v.host->vm_hsave_pa == 0;
    }
    NSVM_SETTINGS("hsave_zero_gp")
    NSVM_BOUNDARY(Boundary{.name = "hsave_page1", .host = {host_put(HostReg::hsave_pa, 0x1000)}, .with_host = true},
                  Boundary{.name = "hsave0", .host = {host_put(HostReg::hsave_pa, 0)}, .with_host = true})
    NSVM_COUNTED
};
struct GateSmm : GateBase {
    static constexpr std::string_view id = "gate.smm", apm = "15.5", ref = "gate";
    static constexpr Outcome outcome = Outcome::ud;
    [[nodiscard]] static constexpr bool applies(const Profile& p) noexcept { return p.smm_vmrun_ud; }
    static constexpr std::string_view message = "VMRUN in SMM: undefined per the APM; KVM injects #UD";
    static constexpr std::string_view hint = "leave SMM (RSM) before executing VMRUN";
    [[nodiscard]] static bool test(const View& v) noexcept { return v.host != nullptr && v.host->smm; }
    NSVM_DETAIL(render::host)
    NSVM_SETTINGS("smm_vmrun_ud")
    NSVM_BOUNDARY(Boundary{.name = "not_smm", .with_host = true},
                  Boundary{.name = "smm", .host = {host_put(HostReg::smm, 1)}, .with_host = true})
    NSVM_COUNTED
};
struct GateRaxAlign : GateBase {
    static constexpr std::string_view id = "gate.rax_alignment", apm = "15.5.1", ref = "gate";
    static constexpr Outcome outcome = Outcome::gp;
    [[nodiscard]] static constexpr bool applies(const Profile& p) noexcept { return p.rax_checks; }
    static constexpr std::string_view message = "the VMCB address in rAX is not 4 KiB aligned: #GP(0)";
    static constexpr std::string_view hint = "pass the physical address of a page-aligned VMCB in rAX";
    [[nodiscard]] static bool test(const View& v) noexcept {
        return v.host != nullptr && (v.host_rax() & 0xFFF) != 0;
    }
    NSVM_DETAIL(render::rax)
    NSVM_SETTINGS("rax_checks")
    NSVM_BOUNDARY(Boundary{.name = "rax_page", .host = {host_put(HostReg::rax, 0x2000)}, .with_host = true},
                  Boundary{.name = "rax_page_plus_16", .host = {host_put(HostReg::rax, 0x2010)}, .with_host = true})
    NSVM_COUNTED
};
struct GateRaxMaxphyaddr : GateBase {
    static constexpr std::string_view id = "gate.rax_maxphyaddr", apm = "15.5.1", ref = "gate";
    static constexpr Outcome outcome = Outcome::gp;
    [[nodiscard]] static constexpr bool applies(const Profile& p) noexcept { return p.rax_checks; }
    static constexpr std::string_view message = "the VMCB address in rAX is beyond MAXPHYADDR: #GP(0)";
    static constexpr std::string_view hint = "place the VMCB below 2^MAXPHYADDR";
    [[nodiscard]] static bool test(const View& v) noexcept {
        return v.host != nullptr && (v.host_rax() & v.pa_reserved()) != 0;
    }
    NSVM_DETAIL(render::rax)
    NSVM_SETTINGS("pa_check_width", "rax_checks")
    NSVM_BOUNDARY(Boundary{.name = "rax_2^52-4K", .host = {host_put(HostReg::rax, bit(52) - 0x1000)}, .with_host = true},
                  Boundary{.name = "rax_2^52", .host = {host_put(HostReg::rax, bit(52))}, .with_host = true})
    NSVM_COUNTED
};

// --- Control area (APM 15.5.1 and the feature sections) ---

NSVM_RULE(InterceptVmrun, "intercept.vmrun", "15.5.1", "C13", control, vmexit_invalid, p.vmrun_intercept_check,
          ({"control.intercepts[4]"}), "the VMRUN intercept (vector 4 bit 0) is clear",
          "set the VMRUN intercept; current implementations require it",
          NSVM_SETTINGS("vmrun_intercept_check")
          NSVM_BOUNDARY(Boundary{.name = "set"},
                        Boundary{.name = "clear", .vmcb = {clear(FieldId::intercepts4, bit(0))}})) {
    return !v.ctx.vmcb.intercept(arch::intercept::VMRUN);
}
NSVM_RULE(AsidZero, "asid.zero", "15.5.1", "C16", control, vmexit_invalid, p.asid_check, ({"control.asid"}),
          "guest ASID is 0, which belongs to the host", "give the guest a nonzero ASID (1 .. CPUID Fn8000_000A_EBX - 1)",
          NSVM_SETTINGS("asid_check")
          NSVM_BOUNDARY(Boundary{.name = "asid1", .vmcb = {put(FieldId::asid, 1)}},
                        Boundary{.name = "asid0", .vmcb = {put(FieldId::asid, 0)}})) {
    return v.asid == 0;
}
NSVM_RULE(MsrpmLimit, "msrpm.limit", "15.11", "C14", control, vmexit_invalid, p.bitmap_limit_rule != BitmapLimitRule::none,
          ({"control.msrpm_base_pa"}), "the MSR permission map extends to or beyond MAXPHYADDR",
          "place the 8 KiB MSRPM so that its last byte is below 2^MAXPHYADDR",
          NSVM_DETAIL(render::msrpm)
          NSVM_SETTINGS("bitmap_limit_rule", "msrpm_checked_size", "pa_check_width")
          NSVM_BOUNDARY(Boundary{.name = "2^52-8K", .vmcb = {put(FieldId::msrpm_base_pa, bit(52) - 0x2000)}},
                        Boundary{.name = "2^52-4K", .vmcb = {put(FieldId::msrpm_base_pa, bit(52) - 0x1000)}},
                        Boundary{.name = "2^52-12K", .vmcb = {put(FieldId::msrpm_base_pa, bit(52) - 0x3000)}})) {
    return bitmap_out_of_range(v, v.msrpm, v.p.msrpm_checked_size);
}
NSVM_RULE(IopmLimit, "iopm.limit", "15.10.1", "C14", control, vmexit_invalid, p.bitmap_limit_rule != BitmapLimitRule::none,
          ({"control.iopm_base_pa"}), "the I/O permission map extends to or beyond MAXPHYADDR",
          "place the 12 KiB IOPM so that its last byte is below 2^MAXPHYADDR",
          NSVM_DETAIL(render::iopm)
          NSVM_SETTINGS("bitmap_limit_rule", "iopm_checked_size", "pa_check_width")
          NSVM_BOUNDARY(Boundary{.name = "2^52-12K", .vmcb = {put(FieldId::iopm_base_pa, bit(52) - 0x3000)}},
                        Boundary{.name = "2^52-8K", .vmcb = {put(FieldId::iopm_base_pa, bit(52) - 0x2000)}},
                        Boundary{.name = "2^52-4K", .vmcb = {put(FieldId::iopm_base_pa, bit(52) - 0x1000)}})) {
    return bitmap_out_of_range(v, v.iopm, v.p.iopm_checked_size);
}
NSVM_RULE(NpHostPaging, "np.host_paging", "15.25.3", "N1", control, vmexit_invalid, p.np_host_paging_check, ({"control.misc_ctl"}),
          "nested paging is enabled while the host runs with CR0.PG = 0",
          "enable paging in the host, or clear NP_ENABLE",
          NSVM_SETTINGS("np_host_paging_check")
          NSVM_BOUNDARY(Boundary{.name = "host_pg1", .vmcb = {set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE)}, .with_host = true},
                        Boundary{.name = "host_pg0", .vmcb = {set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE)}, .host = {host_clear(HostReg::cr0, arch::cr0::PG)}, .with_host = true})) {
    return v.np && v.host != nullptr && (v.host->cr0 & arch::cr0::PG) == 0;
}
NSVM_RULE(NpNcr3, "np.ncr3", "15.25.4", "N2", control, vmexit_invalid, p.ncr3_rule != Ncr3Rule::none,
          ({"control.nested_cr3", "control.misc_ctl"}), "nested paging is enabled and nCR3 has bits at or above MAXPHYADDR",
          "point nCR3 at a nested page table below 2^MAXPHYADDR",
          NSVM_SETTINGS("ncr3_rule", "np_without_feature", "pa_check_width")
          NSVM_BOUNDARY(Boundary{.name = "ncr3_2^52-4K", .vmcb = {set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE), put(FieldId::nested_cr3, bit(52) - 0x1000)}},
                        Boundary{.name = "ncr3_bit52", .vmcb = {set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE), put(FieldId::nested_cr3, bit(52))}},
                        Boundary{.name = "ncr3_bit52_without_npt", .vmcb = {set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE), put(FieldId::nested_cr3, bit(52))}, .features = "-npt"},
                        Boundary{.name = "ncr3_bit52_host32", .vmcb = {set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE), put(FieldId::nested_cr3, bit(52))}, .host = {host_clear(HostReg::efer, arch::efer::LMA | arch::efer::LME)}, .with_host = true})) {
    if (!v.np) return false;
    switch (v.p.ncr3_rule) {
        case Ncr3Rule::none: return false;
        case Ncr3Rule::pa_bits: return (v.ncr3 & v.pa_reserved()) != 0;
        case Ncr3Rule::pa_bits_host_long_mode:
            if (v.host != nullptr && (v.host->efer & arch::efer::LMA) == 0) return false;
            return (v.ncr3 & v.pa_reserved()) != 0;
    }
    return false;
}
NSVM_RULE(NpGPat, "np.g_pat", "15.25.4", "N3", control, vmexit_invalid, p.g_pat_check, ({"save.g_pat", "control.misc_ctl"}),
          "nested paging is enabled and G_PAT holds an undefined memory type or reserved bits",
          "use only types 0 (UC), 1 (WC), 4 (WT), 5 (WP), 6 (WB), 7 (UC-) in each G_PAT byte, e.g. 0x0007040600070406",
          NSVM_SETTINGS("g_pat_check")
          NSVM_BOUNDARY(Boundary{.name = "type7", .vmcb = {set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE), put(FieldId::g_pat, 0x0007040600070407)}},
                        Boundary{.name = "type2", .vmcb = {set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE), put(FieldId::g_pat, 0x0007040600070402)}},
                        Boundary{.name = "type8", .vmcb = {set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE), put(FieldId::g_pat, 0x0007040600070408)}})) {
    return v.np && !arch::pat_valid(v.g_pat);
}
NSVM_RULE(NpSss, "np.sss_without_np", "15.25.14", "N4", control, vmexit_invalid, p.sss_check,
          ({"control.misc_ctl"}), "the supervisor-shadow-stack check (misc_ctl bit 4) is enabled without nested paging",
          "enable nested paging or clear SSSCheckEn",
          NSVM_SETTINGS("sss_check")
          NSVM_BOUNDARY(Boundary{.name = "sss_np", .vmcb = {set(FieldId::misc_ctl, arch::misc_ctl::SSS_CHECK | arch::misc_ctl::NP_ENABLE)}, .features = "+sss_check"},
                        Boundary{.name = "sss_no_np", .vmcb = {set(FieldId::misc_ctl, arch::misc_ctl::SSS_CHECK)}, .features = "+sss_check"})) {
    if (!v.has(Feature::sss_check) || (v.misc_ctl & arch::misc_ctl::SSS_CHECK) == 0 || v.np) return false;
    // Ignored silently when the host is non-PAE legacy or has EFER.NXE = 0.
    if (v.host != nullptr && ((v.host->cr4 & arch::cr4::PAE) == 0 || (v.host->efer & arch::efer::NXE) == 0))
        return false;
    return true;
}
NSVM_RULE(VnmiIntercept, "vnmi.nmi_intercept", "15.21.10", "V1", control, vmexit_invalid, p.vnmi_check,
          ({"control.int_ctl", "control.intercepts[3]"}), "virtual NMI is enabled (V_NMI_ENABLE) without the NMI intercept",
          "set the NMI intercept (vector 3 bit 1) or clear V_NMI_ENABLE (int_ctl bit 26)",
          NSVM_SETTINGS("vnmi_check", "vnmi_needs_feature")
          NSVM_BOUNDARY(Boundary{.name = "with_nmi_intercept", .vmcb = {set(FieldId::int_ctl, arch::int_ctl::V_NMI_ENABLE), set(FieldId::intercepts3, bit(1))}},
                        Boundary{.name = "without", .vmcb = {set(FieldId::int_ctl, arch::int_ctl::V_NMI_ENABLE)}},
                        Boundary{.name = "without_on_cpu_without_vnmi", .vmcb = {set(FieldId::int_ctl, arch::int_ctl::V_NMI_ENABLE)}, .features = "-vnmi"})) {
    if ((v.int_ctl & arch::int_ctl::V_NMI_ENABLE) == 0) return false;
    if (v.p.vnmi_needs_feature && !v.has(Feature::vnmi)) return false;
    return !v.ctx.vmcb.intercept(arch::intercept::NMI);
}
NSVM_RULE(AvicX2WithoutAvic, "avic.x2avic_without_avic", "15.29.4.1", "A1", control, vmexit_invalid, p.avic_checks,
          ({"control.int_ctl"}), "x2AVIC mode (int_ctl bit 30) is enabled without AVIC (bit 31)",
          "set AVIC_ENABLE together with x2AVIC, or clear both",
          NSVM_SETTINGS("avic_checks")
          NSVM_BOUNDARY(Boundary{.name = "x2avic_with_avic", .vmcb = {set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE), set(FieldId::int_ctl, arch::int_ctl::X2AVIC_ENABLE | arch::int_ctl::AVIC_ENABLE)}},
                        Boundary{.name = "x2avic_alone", .vmcb = {set(FieldId::int_ctl, arch::int_ctl::X2AVIC_ENABLE)}})) {
    return v.has(Feature::avic) && (v.int_ctl & arch::int_ctl::X2AVIC_ENABLE) != 0 &&
           (v.int_ctl & arch::int_ctl::AVIC_ENABLE) == 0;
}
NSVM_RULE(AvicMaxIndex, "avic.physical_max_index", "15.29.4.3", "A2", control, vmexit_invalid, p.avic_checks,
          ({"control.avic_physical_id", "control.int_ctl"}),
          "AVIC_PHYSICAL_MAX_INDEX exceeds 255 (xAVIC) or 511 (x2AVIC)",
          "lower the physical APIC ID table's max index to the mode's limit",
          NSVM_SETTINGS("avic_checks")
          NSVM_BOUNDARY(Boundary{.name = "xavic_255", .vmcb = {set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE), set(FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE), put(FieldId::avic_physical_id, 0xFF)}},
                        Boundary{.name = "xavic_256", .vmcb = {set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE), set(FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE), put(FieldId::avic_physical_id, 0x100)}})) {
    if (!v.avic_on()) return false;
    const bool x2 = v.has(Feature::x2avic) && (v.int_ctl & arch::int_ctl::X2AVIC_ENABLE) != 0;
    return (v.avic_physical & 0xFFF) > (x2 ? 511U : 255U);
}
NSVM_RULE(AvicPointers, "avic.table_address", "15.29.4.3", "A3", control, vmexit_invalid, p.avic_checks,
          ({"control.avic_backing_page", "control.avic_logical_id", "control.avic_physical_id"}),
          "an AVIC pointer (backing page, logical or physical table) is beyond MAXPHYADDR",
          "place the AVIC backing page and tables below 2^MAXPHYADDR",
          NSVM_SETTINGS("avic_checks", "pa_check_width")
          NSVM_BOUNDARY(Boundary{.name = "backing_bit43", .vmcb = {set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE), set(FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE), put(FieldId::avic_backing_page, bit(43))}, .maxphyaddr = 44},
                        Boundary{.name = "backing_bit44", .vmcb = {set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE), set(FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE), put(FieldId::avic_backing_page, bit(44))}, .maxphyaddr = 44})) {
    if (!v.avic_on()) return false;
    const std::uint64_t addrs = (v.avic_backing | v.avic_logical | v.avic_physical) & bits(51, 12);
    return (addrs & v.pa_reserved()) != 0;
}
NSVM_RULE(AvicRequiresNp, "avic.requires_np", "15.29.4.1", "A4", control, vmexit_invalid, p.avic_checks && p.inferred_rules,
          ({"control.int_ctl", "control.misc_ctl"}), "AVIC is enabled without nested paging (inferred: no exit is named)",
          "enable nested paging when using AVIC",
          NSVM_INFERRED
          NSVM_SETTINGS("avic_checks", "inferred_rules")
          NSVM_BOUNDARY(Boundary{.name = "avic_np", .vmcb = {set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE), set(FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE)}},
                        Boundary{.name = "avic_no_np", .vmcb = {set(FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE)}})) {
    return v.avic_on() && !v.np;
}
NSVM_RULE(SevRequiresNp, "sev.requires_np", "15.34.3", "S1", control, vmexit_invalid, p.sev_checks, ({"control.misc_ctl"}),
          "SEV is enabled without nested paging", "enable NP_ENABLE for SEV guests",
          NSVM_SETTINGS("sev_checks")
          NSVM_BOUNDARY(Boundary{.name = "sev_np", .vmcb = {put(FieldId::misc_ctl, 3)}},
                        Boundary{.name = "sev_no_np", .vmcb = {put(FieldId::misc_ctl, arch::misc_ctl::SEV_ENABLE)}})) {
    return v.sev_on() && !v.np;
}
NSVM_RULE(SevSmmLock, "sev.smm_lock", "15.34.3", "S2", control, vmexit_invalid, p.sev_checks, ({"control.misc_ctl"}),
          "SEV is enabled while HWCR.SmmLock = 0", "set HWCR.SmmLock (firmware) before running SEV guests",
          NSVM_SETTINGS("sev_checks")
          NSVM_BOUNDARY(Boundary{.name = "smm_lock1", .vmcb = {put(FieldId::misc_ctl, 3)}, .with_host = true},
                        Boundary{.name = "smm_lock0", .vmcb = {put(FieldId::misc_ctl, 3)}, .host = {host_put(HostReg::hwcr, 0)}, .with_host = true})) {
    return v.sev_on() && v.host != nullptr && (v.host->hwcr & kHwcrSmmLock) == 0;
}
NSVM_RULE(SevAsidRange, "sev.asid_range", "15.34.3", "S3", control, vmexit_invalid, p.sev_checks,
          ({"control.asid", "control.misc_ctl"}), "SEV is enabled with an ASID above NumEncryptedGuests",
          "use an ASID in 1 .. CPUID Fn8000_001F_ECX for SEV guests",
          NSVM_SETTINGS("sev_checks")
          NSVM_BOUNDARY(Boundary{.name = "asid1", .vmcb = {put(FieldId::misc_ctl, 3)}},
                        Boundary{.name = "asid5000", .vmcb = {put(FieldId::misc_ctl, 3), put(FieldId::asid, 5000)}})) {
    return v.sev_on() && v.asid > v.cpu.num_encrypted_guests;
}
NSVM_RULE(SevHost64, "sev.host_64bit", "15.34.3", "S4", control, vmexit_invalid, p.sev_checks, ({"control.misc_ctl"}),
          "SEV guests may only be run from a 64-bit host on this CPU (Fn8000_001F_EAX[64BitHost])",
          "execute VMRUN for SEV guests in 64-bit mode",
          NSVM_SETTINGS("sev_checks")
          NSVM_BOUNDARY(Boundary{.name = "host64", .vmcb = {put(FieldId::misc_ctl, 3)}, .with_host = true},
                        Boundary{.name = "host32", .vmcb = {put(FieldId::misc_ctl, 3)}, .host = {host_clear(HostReg::efer, arch::efer::LMA)}, .with_host = true})) {
    return v.sev_on() && v.has(Feature::sev_64bit_host) && v.host != nullptr &&
           (v.host->efer & arch::efer::LMA) == 0;
}
NSVM_RULE(SevEsRequiresSev, "sev_es.requires_sev", "15.35.2", "S5", control, vmexit_invalid, p.sev_checks && p.inferred_rules,
          ({"control.misc_ctl"}), "SEV-ES is enabled without SEV (inferred: no exit is named)",
          "set SEV_ENABLE (misc_ctl bit 1) together with SEV_ES_ENABLE",
          NSVM_INFERRED
          NSVM_SETTINGS("inferred_rules", "sev_checks")
          NSVM_BOUNDARY(Boundary{.name = "sev_es_sev", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1)}},
                        Boundary{.name = "sev_es_alone", .vmcb = {put(FieldId::misc_ctl, 5), put(FieldId::misc_ctl2, 1)}})) {
    return v.sev_es_on() && (v.misc_ctl & arch::misc_ctl::SEV_ENABLE) == 0;
}
NSVM_RULE(SevEsRequiresLbrv, "sev_es.requires_lbrv", "15.35.2", "S5", control, vmexit_invalid, p.sev_checks && p.inferred_rules,
          ({"control.misc_ctl", "control.misc_ctl2"}),
          "SEV-ES is enabled without LBR virtualization (inferred: no exit is named)",
          "set LBR_VIRT (misc_ctl2 bit 0) for SEV-ES guests",
          NSVM_INFERRED
          NSVM_SETTINGS("inferred_rules", "sev_checks")
          NSVM_BOUNDARY(Boundary{.name = "lbrv1", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1)}},
                        Boundary{.name = "lbrv0", .vmcb = {put(FieldId::misc_ctl, 7)}})) {
    return v.sev_es_on() && (v.misc_ctl2 & arch::misc_ctl2::LBR_VIRT) == 0;
}

// --- Guest state (APM 15.5.1 list, in the manual's order) ---

NSVM_RULE(EferSvme, "efer.svme", "15.5.1", "C1", save, vmexit_invalid, true, ({"save.efer"}),
          "guest EFER.SVME is 0", "set EFER.SVME (bit 12) in the guest's EFER",
          NSVM_DETAIL(render::efer_plain)
          NSVM_BOUNDARY(Boundary{.name = "svme1"},
                        Boundary{.name = "svme0", .vmcb = {clear(FieldId::efer, arch::efer::SVME)}})) {
    return (v.efer & arch::efer::SVME) == 0;
}
NSVM_RULE(Cr0CdNw, "cr0.cd_nw", "15.5.1", "C2", save, vmexit_invalid, true, ({"save.cr0"}),
          "CR0.CD is 0 while CR0.NW is 1", "set CR0.CD or clear CR0.NW",
          NSVM_DETAIL(render::cr0)
          NSVM_BOUNDARY(Boundary{.name = "cd_nw", .vmcb = {set(FieldId::cr0, arch::cr0::CD | arch::cr0::NW)}},
                        Boundary{.name = "nw", .vmcb = {set(FieldId::cr0, arch::cr0::NW)}})) {
    return (v.cr0 & arch::cr0::NW) != 0 && (v.cr0 & arch::cr0::CD) == 0;
}
NSVM_RULE(Cr0Upper, "cr0.upper", "15.5.1", "C3", save, vmexit_invalid, true, ({"save.cr0"}),
          "CR0[63:32] is not zero", "clear CR0 bits 63:32",
          NSVM_DETAIL(render::cr0)
          NSVM_BOUNDARY(Boundary{.name = "bit31", .vmcb = {set(FieldId::cr0, bit(31))}},
                        Boundary{.name = "bit32", .vmcb = {set(FieldId::cr0, bit(32))}},
                        Boundary{.name = "bit63", .vmcb = {set(FieldId::cr0, bit(63))}})) {
    return (v.cr0 & bits(63, 32)) != 0;
}
NSVM_RULE(Cr3Mbz, "cr3.mbz", "15.5.1", "C4", save, vmexit_invalid, p.cr3_rule != Cr3Rule::none,
          ({"save.cr3", "save.cr4", "save.cr0", "save.efer"}),
          "CR3 has must-be-zero bits set for the guest's paging mode",
          "clear CR3's bits at or above MAXPHYADDR; Xen and Hyper-V also reject the low reserved bits (2:0, and "
          "11:5 without PAE or in long mode without PCIDE), Hyper-V 63:32 outside long mode even with paging off",
          NSVM_DETAIL(render::cr3)
          NSVM_SETTINGS("cr3_rule", "lma_source", "pa_check_width")
          NSVM_BOUNDARY(Boundary{.name = "long_bit51", .vmcb = {set(FieldId::cr3, bit(51))}},
                        Boundary{.name = "long_bit52", .vmcb = {set(FieldId::cr3, bit(52))}},
                        Boundary{.name = "long_bit0", .vmcb = {set(FieldId::cr3, bit(0))}},
                        Boundary{.name = "pae_bit4", .base = BaseGuest::pae32, .vmcb = {set(FieldId::cr3, bit(4))}},
                        Boundary{.name = "pae_bit52", .base = BaseGuest::pae32, .vmcb = {set(FieldId::cr3, bit(52))}},
                        Boundary{.name = "legacy_bit0", .base = BaseGuest::legacy32, .vmcb = {set(FieldId::cr3, bit(0))}},
                        Boundary{.name = "paging_off_bit32", .base = BaseGuest::pae32, .vmcb = {clear(FieldId::cr0, arch::cr0::PG), set(FieldId::cr3, bit(32))}},
                        Boundary{.name = "lma_without_lme_bit5", .vmcb = {clear(FieldId::efer, arch::efer::LME), set(FieldId::cr3, bit(5))}},
                        Boundary{.name = "pae_bit52_host32", .base = BaseGuest::pae32, .vmcb = {set(FieldId::cr3, bit(52))}, .host = {host_clear(HostReg::efer, arch::efer::LMA | arch::efer::LME)}, .with_host = true})) {
    return cr3_bad_bits(v) != 0;
}
NSVM_RULE(Cr4Mbz, "cr4.mbz", "15.5.1", "C5", save, vmexit_invalid, true, ({"save.cr4"}),
          "CR4 has reserved bits set, or bits of features this CPU does not have",
          "clear the listed CR4 bits, or choose a CPU model with those features",
          NSVM_DETAIL(render::cr4)
          NSVM_SETTINGS("cr4_always_reserved", "cr4_ungated")
          NSVM_BOUNDARY(Boundary{.name = "valid"},
                        Boundary{.name = "vmxe", .vmcb = {set(FieldId::cr4, arch::cr4::VMXE)}},
                        Boundary{.name = "bit32", .vmcb = {set(FieldId::cr4, bit(32))}},
                        Boundary{.name = "cet", .vmcb = {set(FieldId::cr4, arch::cr4::CET)}},
                        Boundary{.name = "pcide_without_pcid", .vmcb = {set(FieldId::cr4, arch::cr4::PCIDE)}, .features = "-pcid"})) {
    return cr4_bad_bits(v) != 0;
}
NSVM_RULE(Cr4PcideWithoutLma, "cr4.pcide_without_long_mode", "3.1.3", "C5", save, vmexit_invalid, p.pcide_without_lma_fails,
          ({"save.cr4", "save.efer", "save.cr0"}), "CR4.PCIDE is set outside long mode (Bochs' MOV-CR4 rule)",
          "clear CR4.PCIDE unless EFER.LME and CR0.PG are set",
          NSVM_SETTINGS("pcide_without_lma_fails")
          NSVM_BOUNDARY(Boundary{.name = "long_pcide", .vmcb = {set(FieldId::cr4, arch::cr4::PCIDE)}},
                        Boundary{.name = "pae_pcide", .base = BaseGuest::pae32, .vmcb = {set(FieldId::cr4, arch::cr4::PCIDE)}})) {
    return (v.cr4 & arch::cr4::PCIDE) != 0 && !v.lme_pg;
}
NSVM_RULE(Dr6Upper, "dr6.upper", "15.5.1", "C6", save, vmexit_invalid, true, ({"save.dr6"}),
          "DR6[63:32] is not zero", "clear DR6 bits 63:32 (0xFFFF0FF0 is the reset value)",
          NSVM_SETTINGS("dr6_reserved")
          NSVM_BOUNDARY(Boundary{.name = "low_all", .vmcb = {put(FieldId::dr6, 0xFFFFFFFF)}},
                        Boundary{.name = "bit32", .vmcb = {set(FieldId::dr6, bit(32))}})) {
    return (v.dr6 & v.p.dr6_reserved) != 0;
}
NSVM_RULE(Dr7Upper, "dr7.upper", "15.5.1", "C7", save, vmexit_invalid, true, ({"save.dr7"}),
          "DR7[63:32] is not zero", "clear DR7 bits 63:32 (0x400 is the reset value)",
          NSVM_SETTINGS("dr7_reserved")
          NSVM_BOUNDARY(Boundary{.name = "low_all", .vmcb = {put(FieldId::dr7, 0xFFFFFFFF)}},
                        Boundary{.name = "bit32", .vmcb = {set(FieldId::dr7, bit(32))}})) {
    return (v.dr7 & v.p.dr7_reserved) != 0;
}
NSVM_RULE(EferMbz, "efer.mbz", "15.5.1", "C8", save, vmexit_invalid, true, ({"save.efer"}),
          "EFER has reserved bits set, or bits of features this CPU does not have",
          "clear the listed EFER bits, or choose a CPU model with those features",
          NSVM_DETAIL(render::efer)
          NSVM_SETTINGS("efer_rule", "efer_always_reserved")
          NSVM_BOUNDARY(Boundary{.name = "valid"},
                        Boundary{.name = "bit3", .vmcb = {set(FieldId::efer, bit(3))}},
                        Boundary{.name = "ffxsr", .vmcb = {set(FieldId::efer, arch::efer::FFXSR)}, .features = "-fxsr_opt"},
                        // On a CPU with MCOMMIT: the hardware accepts it, KVM never lets a guest set it.
                        Boundary{.name = "mcommit_with_feature", .vmcb = {set(FieldId::efer, arch::efer::MCOMMIT)},
                                 .features = "+mcommit"},
                        Boundary{.name = "bit63", .vmcb = {set(FieldId::efer, bit(63))}})) {
    return efer_bad_bits(v) != 0;
}
NSVM_RULE(EferLm, "efer.lm_unsupported", "15.5.1", "C9", save, vmexit_invalid, p.efer_lm_check, ({"save.efer"}),
          "EFER.LME or EFER.LMA is set on a CPU without long mode", "clear EFER.LME/LMA or use a CPU model with lm",
          NSVM_DETAIL(render::efer_plain)
          NSVM_SETTINGS("efer_lm_check")
          NSVM_BOUNDARY(Boundary{.name = "legacy_without_lm", .base = BaseGuest::pae32, .features = "-lm"},
                        Boundary{.name = "long_without_lm", .features = "-lm"})) {
    return !v.has(Feature::lm) && (v.efer & (arch::efer::LME | arch::efer::LMA)) != 0;
}
// Not a VMRUN check. EFER.LMA is a status bit: the processor sets it only
// when paging is turned on with EFER.LME = 1 and clears it when paging is
// turned off (APM 3.1.7, 14.6.1, 14.7), so LMA = 1 without LME && PG is a
// state no processor can be in. APM 15.5.1 does not list it, and KVM's
// nested_vmcb_check_save records that SVM does not check it: VMRUN goes
// ahead and what then runs is undefined. A warning under every profile
// (Outcome::warning), naming the consequences implementations are known for.
// LMA = 0 with LME && PG is not flagged: every long-mode rule of 15.5.1 is
// stated on LME and PG, and KVM's shadow-paging code (svm_set_efer clears LME
// when LMA = 0) suggests the hardware derives long mode from LME && PG.
NSVM_RULE(EferLmaInconsistent, "efer.lma_without_lme_pg", "3.1.7", "extra", save, warning, true,
          ({"save.efer", "save.cr0"}),
          "EFER.LMA is 1 but EFER.LME and CR0.PG are not both 1 (long mode active with long mode not enabled)",
          "make EFER.LMA equal EFER.LME AND CR0.PG: clear EFER.LMA (bit 10) for a guest with paging off, or keep "
          "EFER.LME and CR0.PG set for a 64-bit guest",
          NSVM_DETAIL(render::lma)
          NSVM_WHEN_UNCHECKED(
              "no processor can reach this state, and VMRUN does not check it (KVM: 'EFER.LMA is not checked by "
              "SVM'), so what runs is undefined: QEMU enters the guest with LMA = 1 and paging off, Bochs recomputes "
              "LMA and runs it in legacy mode, KVM loads CR0 after EFER through svm_set_cr0, which clears LMA when "
              "LME is set and L1's paging goes off (else L2 gets vmcb12's EFER), and Xen, whose check sees only LMA "
              "without LME, hit BUG() at the guest's next #VMEXIT (xen-devel 2023-12-05, 'Nested Virtualization Bug "
              "on x86-64 AMD CPU')")
          NSVM_BOUNDARY(Boundary{.name = "lma_lme_pg"},
                        Boundary{.name = "lma_pg0", .vmcb = {clear(FieldId::cr0, arch::cr0::PG)}},
                        Boundary{.name = "lma_lme0", .vmcb = {clear(FieldId::efer, arch::efer::LME)}})) {
    // Without long mode, efer.lm_unsupported (C9) already reports LMA.
    if (!v.has(Feature::lm)) return false;
    return (v.efer & arch::efer::LMA) != 0 && !v.lme_pg;
}
// Xen's own rule, not the processor's: svm_vmcb_isvalid() asks
// hvm_efer_valid() with CR0.PG unknown, which then rejects LMA = 1 only when
// LME = 0 ("EFER: LMA/LME/CR0.PG inconsistency"); LMA = LME = 1 with paging
// off passes it (efer.lma_without_lme_pg then warns).
NSVM_RULE(EferLmaWithoutLme, "efer.lma_without_lme", "3.1.7", "extra", save, vmexit_invalid,
          p.efer_lma_without_lme_checked, ({"save.efer"}), "EFER.LMA is 1 while EFER.LME is 0",
          "clear EFER.LMA (bit 10), or set EFER.LME (bit 8) for a 64-bit guest",
          NSVM_DETAIL(render::efer_plain)
          NSVM_SETTINGS("efer_lma_without_lme_checked")
          NSVM_BOUNDARY(Boundary{.name = "lma_lme"},
                        Boundary{.name = "lma_lme_pg0", .vmcb = {clear(FieldId::cr0, arch::cr0::PG)}},
                        Boundary{.name = "lma_lme0", .vmcb = {clear(FieldId::efer, arch::efer::LME)}})) {
    if (!v.has(Feature::lm)) return false;  // efer.lm_unsupported (C9) reports it
    return (v.efer & arch::efer::LMA) != 0 && (v.efer & arch::efer::LME) == 0;
}
NSVM_RULE(LongModePae, "long_mode.pae", "15.5.1", "C10", save, vmexit_invalid, true,
          ({"save.efer", "save.cr0", "save.cr4"}), "EFER.LME and CR0.PG are set but CR4.PAE is 0",
          "set CR4.PAE for a long-mode guest (or clear EFER.LME for a legacy guest)",
          NSVM_DETAIL(render::long_mode)
          NSVM_BOUNDARY(Boundary{.name = "pae1"},
                        Boundary{.name = "pae0", .vmcb = {clear(FieldId::cr4, arch::cr4::PAE)}})) {
    return v.lme_pg && (v.cr4 & arch::cr4::PAE) == 0;
}
NSVM_RULE(LongModePe, "long_mode.pe", "15.5.1", "C11", save, vmexit_invalid, p.long_mode_pe_check,
          ({"save.efer", "save.cr0"}), "EFER.LME and CR0.PG are set but CR0.PE is 0",
          "set CR0.PE for a long-mode guest; paged real mode (PE=0, PG=1) needs EFER.LME = 0",
          NSVM_DETAIL(render::long_mode)
          NSVM_SETTINGS("long_mode_pe_check")
          NSVM_BOUNDARY(Boundary{.name = "pe1"},
                        Boundary{.name = "pe0", .vmcb = {clear(FieldId::cr0, arch::cr0::PE)}})) {
    return v.lme_pg && (v.cr0 & arch::cr0::PE) == 0;
}
NSVM_RULE(LongModeCsLD, "long_mode.cs_l_d", "15.5.1", "C12", save, vmexit_invalid, true,
          ({"save.cs.attrib", "save.efer", "save.cr0", "save.cr4"}),
          "CS.L and CS.D are both set for a long-mode guest (EFER.LME, CR0.PG, CR4.PAE all set)",
          "clear CS.D (attrib bit 10) for 64-bit code, or CS.L (bit 9) for compatibility mode",
          NSVM_DETAIL(render::long_mode)
          NSVM_SETTINGS("cs_l_d_any_mode", "cs_l_d_needs_pae")
          NSVM_BOUNDARY(Boundary{.name = "long_l"},
                        Boundary{.name = "long_l_d", .vmcb = {set(FieldId::cs_attrib, arch::seg_attr::DB)}},
                        Boundary{.name = "pae_l_d", .base = BaseGuest::pae32, .vmcb = {set(FieldId::cs_attrib, arch::seg_attr::L)}},
                        Boundary{.name = "long_no_pae_l_d", .vmcb = {set(FieldId::cs_attrib, arch::seg_attr::DB), clear(FieldId::cr4, arch::cr4::PAE)}})) {
    const bool ld = (v.cs_attrib & arch::seg_attr::L) != 0 && (v.cs_attrib & arch::seg_attr::DB) != 0;
    if (!ld) return false;
    return v.p.cs_l_d_any_mode || (v.lme_pg && (!v.p.cs_l_d_needs_pae || (v.cr4 & arch::cr4::PAE) != 0));
}
NSVM_RULE(CetSCet, "cet.s_cet_reserved", "15.5.1", "C17", save, vmexit_invalid, p.cet_checks, ({"save.s_cet"}),
          "S_CET has reserved bits set", "clear S_CET's reserved bits (9:6; 63:10 and 5:2 without IBT)",
          NSVM_DETAIL(render::s_cet)
          NSVM_SETTINGS("cet_checks")
          NSVM_BOUNDARY(Boundary{.name = "sh_stk_en", .vmcb = {put(FieldId::s_cet, bit(0))}},
                        Boundary{.name = "bit6", .vmcb = {put(FieldId::s_cet, bit(6))}})) {
    return v.has(Feature::shstk) && s_cet_bad_bits(v) != 0;
}
NSVM_RULE(CetWp, "cet.cr0_wp", "15.5.1", "C18", save, vmexit_invalid, p.cet_checks, ({"save.cr4", "save.cr0"}),
          "CR4.CET is set while CR0.WP is 0", "set CR0.WP whenever CR4.CET is set",
          NSVM_SETTINGS("cet_checks")
          NSVM_BOUNDARY(Boundary{.name = "cet_wp1", .vmcb = {set(FieldId::cr4, arch::cr4::CET)}},
                        Boundary{.name = "cet_wp0", .vmcb = {set(FieldId::cr4, arch::cr4::CET), clear(FieldId::cr0, arch::cr0::WP)}})) {
    return (v.has(Feature::shstk) || v.has(Feature::ibt)) && (v.cr4 & arch::cr4::CET) != 0 &&
           (v.cr0 & arch::cr0::WP) == 0;
}

// --- Event injection (APM 15.20), decided after GIF = 1 in hardware ---

NSVM_RULE(EventType, "event_inj.type", "15.20", "E2", event, vmexit_invalid, p.event_type_check, ({"control.event_inj"}),
          "EVENTINJ has a reserved TYPE (1, 5, 6 or 7)",
          "use TYPE 0 (INTR), 2 (NMI), 3 (exception) or 4 (software interrupt)",
          NSVM_DETAIL(render::event)
          NSVM_SETTINGS("event_type_check")
          NSVM_BOUNDARY(Boundary{.name = "type4", .vmcb = {put(FieldId::event_inj, arch::event::V | (4U << 8) | 0x30)}},
                        Boundary{.name = "type6", .vmcb = {put(FieldId::event_inj, arch::event::V | (6U << 8) | 0x30)}},
                        Boundary{.name = "type1", .vmcb = {put(FieldId::event_inj, arch::event::V | (1U << 8) | 0x30)}})) {
    if (!v.event_valid()) return false;
    const unsigned t = v.event_type();
    return t == 1 || t >= 5;
}
NSVM_RULE(EventVector, "event_inj.vector", "15.20", "E3", event, vmexit_invalid, p.event_vector_check, ({"control.event_inj"}),
          "EVENTINJ injects an exception (TYPE 3) with a vector that is not an exception",
          "inject NMI with TYPE 2, interrupts with TYPE 0/4; TYPE 3 only for exception vectors",
          NSVM_DETAIL(render::event)
          NSVM_SETTINGS("event_vector_check", "event_vector_rule")
          NSVM_BOUNDARY(Boundary{.name = "exc14", .vmcb = {put(FieldId::event_inj, arch::event::V | (3U << 8) | 14 | arch::event::EV)}},
                        Boundary{.name = "exc15", .vmcb = {put(FieldId::event_inj, arch::event::V | (3U << 8) | 15)}},
                        Boundary{.name = "exc2", .vmcb = {put(FieldId::event_inj, arch::event::V | (3U << 8) | 2)}},
                        Boundary{.name = "exc31", .vmcb = {put(FieldId::event_inj, arch::event::V | (3U << 8) | 31)}},
                        Boundary{.name = "exc32", .vmcb = {put(FieldId::event_inj, arch::event::V | (3U << 8) | 32)}},
                        Boundary{.name = "exc21_without_shstk", .vmcb = {put(FieldId::event_inj, arch::event::V | (3U << 8) | 21 | arch::event::EV)}, .features = "-shstk"})) {
    return v.event_valid() && v.event_type() == 3 && !exception_vector_ok(v, v.event_vector());
}
NSVM_RULE(EventMode, "event_inj.mode", "15.20", "E1", event, vmexit_invalid, p.eventinj_impossible_in_mode,
          ({"control.event_inj", "save.cs.attrib", "save.efer", "save.cr0"}),
          "EVENTINJ injects #BR or #OF into a 64-bit guest, where they cannot occur",
          "do not inject #BR/#OF (BOUND/INTO do not exist in 64-bit mode)",
          NSVM_DETAIL(render::event)
          NSVM_SETTINGS("eventinj_impossible_in_mode")
          NSVM_BOUNDARY(Boundary{.name = "ud_in_long_mode", .vmcb = {put(FieldId::event_inj, arch::event::V | (3U << 8) | 6)}},
                        Boundary{.name = "br_in_long_mode", .vmcb = {put(FieldId::event_inj, arch::event::V | (3U << 8) | 5)}})) {
    if (!v.event_valid() || v.event_type() != 3) return false;
    const unsigned vec = v.event_vector();
    return (vec == 4 || vec == 5) && v.lme_pg && (v.cs_attrib & arch::seg_attr::L) != 0;
}
NSVM_RULE(EventSevEs, "event_inj.sev_es", "15.35.8", "E4", event, vmexit_invalid, p.sev_es_event_check,
          ({"control.event_inj", "control.misc_ctl"}),
          "EVENTINJ injects a software interrupt or #BP/#OF into an SEV-ES guest",
          "SEV-ES guests cannot take INTn or vectors 3/4 by injection; use the #VC/GHCB protocol",
          NSVM_DETAIL(render::event)
          NSVM_SETTINGS("sev_es_event_check")
          NSVM_BOUNDARY(Boundary{.name = "intr", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1), put(FieldId::event_inj, arch::event::V | (0U << 8) | 0x21)}},
                        Boundary{.name = "int_n", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1), put(FieldId::event_inj, arch::event::V | (4U << 8) | 0x21)}})) {
    if (!v.event_valid() || !v.sev_es_on()) return false;
    const unsigned t = v.event_type();
    const unsigned vec = v.event_vector();
    return t == 4 || (t == 3 && (vec == 3 || vec == 4));
}
NSVM_RULE(EventReserved, "event_inj.reserved", "15.20", "extra", event, vmexit_invalid, p.eventinj_reserved_bits_fail, ({"control.event_inj"}),
          "EVENTINJ bits 30:12 (SBZ) are set (Xen rejects them)", "clear EVENTINJ bits 30:12",
          NSVM_DETAIL(render::event)
          NSVM_SETTINGS("eventinj_reserved_bits_fail")
          NSVM_BOUNDARY(Boundary{.name = "intr", .vmcb = {put(FieldId::event_inj, arch::event::V | (0U << 8) | 0x30)}},
                        Boundary{.name = "bit20", .vmcb = {put(FieldId::event_inj, bit(20))}})) {
    return (v.event_inj & arch::event::RESERVED) != 0;
}

// --- Guest memory (APM 15.5.1 last paragraph) ---

/// Memory-stage checks without memory: does the VMCB trigger the check, so
/// that its answer needs guest memory (a warning)?
[[nodiscard]] inline bool pdpe_needs_memory(const Context& c) noexcept {
    return c.memory == nullptr && pae_legacy_without_np(View(c));
}
[[nodiscard]] inline bool vmsa_needs_memory(const Context& c) noexcept {
    // Without memory: the VMSA is not read, nor its RMP entry (P2), its
    // integrity checksum (S5) or VIntrCtrl.BUSY (X1): none of them decided.
    // A VMSA the input gives (KVM decrypted it for its dump) was read.
    return c.memory == nullptr && c.vmsa == nullptr && View(c).sev_es_on();
}

NSVM_RULE(PdpeReserved, "pdpe.reserved", "15.5.1", "C21", memory, vmexit_invalid, p.pdpe_check, ({"save.cr3", "save.cr4"}),
          "a present PAE PDPE of the guest (no nested paging) has reserved bits set, or cannot be read",
          "clear bits 2:1, 8:5 and those at or above MAXPHYADDR in the guest's four PDPEs",
          NSVM_DETAIL(render::pdpe)
          NSVM_NEEDS(pdpe_needs_memory)
          NSVM_SETTINGS("pdpe_check")
          NSVM_BOUNDARY(Boundary{.name = "pdpt_valid", .base = BaseGuest::pae32, .memory = GuestMem::pdpt_valid},
                        Boundary{.name = "pdpt_reserved_bits", .base = BaseGuest::pae32, .memory = GuestMem::pdpt_reserved},
                        Boundary{.name = "pdpt_unbacked", .base = BaseGuest::pae32, .memory = GuestMem::nothing_backed})) {
    if (v.ctx.memory == nullptr || !pae_legacy_without_np(v)) return false;
    for (unsigned i = 0; i < 4; ++i) {
        std::uint64_t e = 0;
        if (!v.ctx.memory->read_u64(pdpt_base(v.cr3) + 8 * i, e)) return true;
        if (pdpe_bad_bits(v, e) != 0) return true;
    }
    return false;
}

/// The VMSA page of an SEV-ES guest (VMCB 108h; APM 15.35.3), decided only
/// with guest memory.
[[nodiscard]] constexpr std::uint64_t vmsa_page(std::uint64_t vmsa_pa) noexcept { return vmsa_pa & ~std::uint64_t{0xFFF}; }

NSVM_RULE(SevEsVmsaUnreadable, "sev_es.vmsa_unreadable", "15.35.8", "S5", memory, vmexit_invalid, p.sev_checks,
          ({"control.vmsa_pa", "control.misc_ctl"}),
          "SEV-ES is enabled and the VMSA page (control.vmsa_pa) cannot be read: the VMRUN flow faults",
          "point vmsa_pa at the guest's encrypted save area (a backed, 4 KiB aligned page)",
          NSVM_NEEDS(vmsa_needs_memory)
          NSVM_SETTINGS("sev_checks")
          NSVM_BOUNDARY(Boundary{.name = "vmsa_not_given", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1)}},
                        Boundary{.name = "vmsa_unbacked", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1)}, .memory = GuestMem::nothing_backed})) {
    if (v.ctx.memory == nullptr || v.ctx.vmsa != nullptr || !v.sev_es_on()) return false;
    // The whole page is one translation: its first and last quadwords.
    std::uint64_t q = 0;
    const std::uint64_t page = vmsa_page(v.ctx.vmcb.get(arch::FieldId::vmsa_pa));
    return !v.ctx.memory->read_u64(page, q) || !v.ctx.memory->read_u64(page + 0xFF8, q);
}

/// VMSA offset of SEV_FEATURES (APM Appendix B, Table B-4).
inline constexpr std::uint64_t kVmsaSevFeatures = 0x3B0;
/// SEV_FEATURES as VMRUN reads it for an SEV-ES guest: the VMSA's, from the
/// input's decrypted VMSA or from memory at the VMSA page; nullopt when
/// neither gives it. The one place that decides where SEV_FEATURES comes
/// from: VMCB 140h GUEST_SEV_FEATURES, which KVM's dump also prints, is not
/// what any check reads.
[[nodiscard]] inline std::optional<std::uint64_t> vmsa_sev_features(const Context& c) noexcept {
    if (c.vmsa != nullptr && c.vmsa->sev_features) return c.vmsa->sev_features;
    std::uint64_t q = 0;
    if (c.memory != nullptr && c.memory->read_u64(vmsa_page(c.vmcb.get(arch::FieldId::vmsa_pa)) + kVmsaSevFeatures, q))
        return q;
    return std::nullopt;
}

// --- SEV-SNP checks on SEV_FEATURES (APM 15.36) ---
//
// VMRUN of an SEV-SNP guest takes SEV_FEATURES from the guest's VMSA (offset
// 3B0h, APM Appendix B Table B-4; the page at VMCB 108h), never from the VMCB:
// every check below reads it through vmsa_sev_features and nowhere else. The
// VMCB's GUEST_SEV_FEATURES (140h, Table B-1) is a different field, not an
// input of these checks. When the input gives neither a decrypted VMSA's
// sev_features nor guest memory backing the VMSA page, a check whose other
// conditions hold is not decided: a "needs" warning, never a pass.

/// SEV_FEATURES of an SEV-SNP guest (an SEV-ES VMCB on a CPU with SNP), as
/// VMRUN reads it; nullopt when this is no such guest or the input does not
/// give the VMSA's value. Always inlined: out of line, g++ returned the
/// optional through memory (a 1-byte store read back by an 8-byte load, a
/// store-forwarding stall in five rules of every VMRUN scan); inlined, the
/// common case (no SNP guest) folds to `false` in the rule.
[[nodiscard, gnu::always_inline]] inline std::optional<std::uint64_t> snp_sev_features(const View& v) noexcept {
    if (!v.snp_vmcb()) return std::nullopt;
    return vmsa_sev_features(v.ctx);
}
/// An SEV-SNP guest whose SEV_FEATURES the input does not give.
[[nodiscard]] inline bool snp_sev_features_unknown(const View& v) noexcept {
    return v.snp_vmcb() && !vmsa_sev_features(v.ctx);
}
[[nodiscard]] inline bool sss_check_enabled(const View& v) noexcept {
    return (v.misc_ctl & arch::misc_ctl::SSS_CHECK) != 0;
}
[[nodiscard]] inline bool avic_enable_set(const View& v) noexcept {
    return (v.int_ctl & arch::int_ctl::AVIC_ENABLE) != 0;
}
/// EVENTINJ holds an event other than #HV (TYPE 3, vector 28).
[[nodiscard]] inline bool injects_other_than_hv(const View& v) noexcept {
    return v.event_valid() && !(v.event_type() == 3 && v.event_vector() == 28);
}
/// SEV_FEATURES has every bit of `mask` set.
[[nodiscard]] constexpr bool has_all_of(std::optional<std::uint64_t> f, std::uint64_t mask) noexcept {
    return f && (*f & mask) == mask;
}
/// SEV_FEATURES has at least one bit of `mask` set.
[[nodiscard]] constexpr bool has_any_of(std::optional<std::uint64_t> f, std::uint64_t mask) noexcept {
    return f && (*f & mask) != 0;
}

// The "not decided" conditions: the check's other conditions hold and only
// SEV_FEATURES is missing.
[[nodiscard]] inline bool snp_features_needed(const Context& c) noexcept { return snp_sev_features_unknown(View(c)); }
[[nodiscard]] inline bool snp_features_needed_with_sss_check(const Context& c) noexcept {
    const View v(c);
    return snp_sev_features_unknown(v) && sss_check_enabled(v);
}
[[nodiscard]] inline bool snp_features_needed_with_avic(const Context& c) noexcept {
    const View v(c);
    return snp_sev_features_unknown(v) && avic_enable_set(v);
}
[[nodiscard]] inline bool snp_features_needed_for_event(const Context& c) noexcept {
    const View v(c);
    return snp_sev_features_unknown(v) && injects_other_than_hv(v);
}

// P4 (APM 15.36.7): VmplSSS in SEV_FEATURES and the VMCB's SSSCheckEn
// exclude each other.
NSVM_RULE(SnpVmplSss, "snp.vmpl_sss", "15.36.7", "P4", memory, vmexit_invalid, p.sev_checks,
          ({"control.vmsa_pa", "control.misc_ctl"}),
          "the VMSA's SEV_FEATURES.VmplSSS (VMSA 3B0h) and the VMCB's SSS check are both set",
          "use either VmplSSS or SSSCheckEn, not both",
          NSVM_DETAIL(render::snp_features)
          NSVM_NEEDS(snp_features_needed_with_sss_check)
          NSVM_NEEDS_WHAT(kNeedsVmsaSevFeatures)
          NSVM_SETTINGS("sev_checks")
          NSVM_BOUNDARY(Boundary{.name = "vmpl_sss", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1)}, .vmsa_sev_features = sevf::VMPL_SSS},
                        Boundary{.name = "vmpl_sss_and_sss_check", .vmcb = {put(FieldId::misc_ctl, 7 | arch::misc_ctl::SSS_CHECK), put(FieldId::misc_ctl2, 1)}, .vmsa_sev_features = sevf::VMPL_SSS})) {
    return sss_check_enabled(v) && has_any_of(snp_sev_features(v), sevf::VMPL_SSS);
}
// P5 (APM 15.36.16): at most one interrupt-injection mode.
NSVM_RULE(SnpInjectionModes, "snp.restricted_and_alternate", "15.36.16", "P5", memory, vmexit_invalid, p.sev_checks,
          ({"control.vmsa_pa", "control.misc_ctl"}),
          "the VMSA's SEV_FEATURES (VMSA 3B0h) enables both Restricted Injection and Alternate Injection",
          "enable at most one interrupt-injection mode in the VMSA's SEV_FEATURES",
          NSVM_DETAIL(render::snp_features)
          NSVM_NEEDS(snp_features_needed)
          NSVM_NEEDS_WHAT(kNeedsVmsaSevFeatures)
          NSVM_SETTINGS("sev_checks")
          NSVM_BOUNDARY(Boundary{.name = "restricted", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1)}, .vmsa_sev_features = sevf::RESTRICTED_INJECTION},
                        Boundary{.name = "restricted_and_alternate", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1)}, .vmsa_sev_features = sevf::RESTRICTED_INJECTION | sevf::ALTERNATE_INJECTION})) {
    return has_all_of(snp_sev_features(v), sevf::RESTRICTED_INJECTION | sevf::ALTERNATE_INJECTION);
}
// P6, AVIC half (APM 15.36.16).
NSVM_RULE(SnpRestrictedAvic, "snp.restricted_with_avic", "15.36.16", "P6", memory, vmexit_invalid, p.sev_checks,
          ({"control.vmsa_pa", "control.misc_ctl", "control.int_ctl"}),
          "the VMSA's SEV_FEATURES (VMSA 3B0h) enables Restricted Injection together with the VMCB's AVIC",
          "disable AVIC for guests with Restricted Injection",
          NSVM_DETAIL(render::snp_features)
          NSVM_NEEDS(snp_features_needed_with_avic)
          NSVM_NEEDS_WHAT(kNeedsVmsaSevFeatures)
          NSVM_SETTINGS("sev_checks")
          NSVM_BOUNDARY(Boundary{.name = "restricted", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1)}, .vmsa_sev_features = sevf::RESTRICTED_INJECTION},
                        Boundary{.name = "restricted_avic", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1), set(FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE)}, .vmsa_sev_features = sevf::RESTRICTED_INJECTION})) {
    return avic_enable_set(v) && has_any_of(snp_sev_features(v), sevf::RESTRICTED_INJECTION);
}
// P6, event half (the AVIC half is snp.restricted_with_avic): with
// Restricted Injection the hypervisor may inject nothing but #HV; every other
// event reaches the guest through the #HV doorbell page it reads itself.
NSVM_RULE(EventRestricted, "event_inj.restricted_injection", "15.36.16", "P6", memory, vmexit_invalid, p.sev_checks,
          ({"control.event_inj", "control.vmsa_pa", "control.misc_ctl"}),
          "EVENTINJ injects an event other than #HV into an SEV-SNP guest whose SEV_FEATURES (VMSA 3B0h) enables "
          "Restricted Injection",
          "with Restricted Injection inject only #HV (TYPE 3, vector 28); signal other events through the "
          "#HV doorbell page",
          NSVM_DETAIL(render::event_restricted)
          NSVM_NEEDS(snp_features_needed_for_event)
          NSVM_NEEDS_WHAT(kNeedsVmsaSevFeatures)
          NSVM_SETTINGS("sev_checks")
          NSVM_BOUNDARY(Boundary{.name = "hv", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1), put(FieldId::event_inj, arch::event::V | (3U << 8) | 28 | arch::event::EV)}, .vmsa_sev_features = sevf::RESTRICTED_INJECTION},
                        Boundary{.name = "intr", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1), put(FieldId::event_inj, arch::event::V | (0U << 8) | 0x20)}, .vmsa_sev_features = sevf::RESTRICTED_INJECTION})) {
    return injects_other_than_hv(v) && has_any_of(snp_sev_features(v), sevf::RESTRICTED_INJECTION);
}
// P7 (APM 15.36.16).
NSVM_RULE(SnpAlternateAvic, "snp.alternate_with_avic", "15.36.16", "P7", memory, vmexit_invalid, p.sev_checks,
          ({"control.vmsa_pa", "control.misc_ctl", "control.int_ctl"}),
          "the VMSA's SEV_FEATURES (VMSA 3B0h) enables Alternate Injection together with the VMCB's AVIC",
          "disable AVIC for guests with Alternate Injection",
          NSVM_DETAIL(render::snp_features)
          NSVM_NEEDS(snp_features_needed_with_avic)
          NSVM_NEEDS_WHAT(kNeedsVmsaSevFeatures)
          NSVM_SETTINGS("sev_checks")
          NSVM_BOUNDARY(Boundary{.name = "alternate", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1)}, .vmsa_sev_features = sevf::ALTERNATE_INJECTION},
                        Boundary{.name = "alternate_avic", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1), set(FieldId::int_ctl, arch::int_ctl::AVIC_ENABLE)}, .vmsa_sev_features = sevf::ALTERNATE_INJECTION})) {
    return avic_enable_set(v) && has_any_of(snp_sev_features(v), sevf::ALTERNATE_INJECTION);
}

/// Does ALLOWED_SEV_FEATURES apply here (a CPU with the feature, an SEV-ES
/// guest, the mask enabled)?
[[nodiscard]] inline bool allowed_sev_mask_on(const View& v) noexcept {
    return v.has(Feature::allowed_sev_features) && v.sev_es_on() && (v.allowed_sev & kAllowedSevEnable) != 0;
}
/// The mask applies but the input gives no SEV_FEATURES: not decided.
[[nodiscard]] inline bool sev_features_unknown(const Context& c) noexcept {
    return allowed_sev_mask_on(View(c)) && !vmsa_sev_features(c);
}
/// SEV_FEATURES bits 61:0 outside the allowed mask; 0 when the check does
/// not apply or SEV_FEATURES is unknown.
[[nodiscard]] inline std::uint64_t sev_features_not_allowed(const View& v) noexcept {
    if (!allowed_sev_mask_on(v)) return 0;
    const auto f = vmsa_sev_features(v.ctx);
    return f ? *f & bits(61, 0) & ~v.allowed_sev : 0;
}

// APM 15.36.20: with ALLOWED_SEV_FEATURES[63] set, VMRUN fails if
// SEV_FEATURES has a bit set that the mask (bits 61:0) does not allow. A Zen
// 5 feature (CPUID Fn8000_001F_EAX[27]): on a CPU without it, VMCB 138h is
// reserved and nothing is checked. SEV_FEATURES is the VMSA's (offset 3B0h),
// so the check sits with the other VMSA reads.
NSVM_RULE(SnpAllowedFeatures, "snp.allowed_sev_features", "15.36.20", "P9", memory, vmexit_invalid, p.sev_checks,
          ({"control.allowed_sev_features", "control.vmsa_pa", "control.misc_ctl"}),
          "the allowed-SEV-features mask is enabled and the VMSA's SEV_FEATURES (VMSA 3B0h) has a bit outside it",
          "add the feature to allowed_sev_features[61:0] or remove it from the guest's SEV_FEATURES",
          NSVM_DETAIL(render::sev_features)
          NSVM_NEEDS(sev_features_unknown)
          NSVM_NEEDS_WHAT(kNeedsVmsaSevFeatures)
          NSVM_SETTINGS("sev_checks")
          NSVM_BOUNDARY(Boundary{.name = "allowed", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1), put(FieldId::allowed_sev_features, bit(63) | bit(9))}, .features = "+allowed_sev_features", .vmsa_sev_features = bit(9)},
                        Boundary{.name = "not_allowed", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1), put(FieldId::allowed_sev_features, bit(63))}, .features = "+allowed_sev_features", .vmsa_sev_features = bit(9)})) {
    return sev_features_not_allowed(v) != 0;
}

// P10 (APM 15.36.21.2): Secure AVIC excludes the VMCB's AVIC and both
// injection modes.
NSVM_RULE(SnpSecureAvic, "snp.secure_avic_conflict", "15.36.21.2", "P10", memory, vmexit_invalid, p.sev_checks,
          ({"control.vmsa_pa", "control.misc_ctl", "control.int_ctl"}),
          "the VMSA's SEV_FEATURES (VMSA 3B0h) enables Secure AVIC together with the VMCB's AVIC, Restricted "
          "Injection or Alternate Injection",
          "with Secure AVIC, clear AVIC_ENABLE and both injection modes",
          NSVM_DETAIL(render::snp_features)
          NSVM_NEEDS(snp_features_needed)
          NSVM_NEEDS_WHAT(kNeedsVmsaSevFeatures)
          NSVM_SETTINGS("sev_checks")
          NSVM_BOUNDARY(Boundary{.name = "secure_avic", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1)}, .vmsa_sev_features = sevf::SECURE_AVIC},
                        Boundary{.name = "secure_avic_alternate", .vmcb = {put(FieldId::misc_ctl, 7), put(FieldId::misc_ctl2, 1)}, .vmsa_sev_features = sevf::SECURE_AVIC | sevf::ALTERNATE_INJECTION})) {
    const auto f = snp_sev_features(v);
    return has_any_of(f, sevf::SECURE_AVIC) &&
           (avic_enable_set(v) || has_any_of(f, sevf::RESTRICTED_INJECTION | sevf::ALTERNATE_INJECTION));
}

#undef NSVM_RULE
#undef NSVM_DETAIL
#undef NSVM_NEEDS
#undef NSVM_NEEDS_WHAT
#undef NSVM_INFERRED
#undef NSVM_SETTINGS
#undef NSVM_BOUNDARY
#undef NSVM_COUNTED

/// How many entries the NSVM_RULE and gate definitions above made.
constexpr std::size_t kRulesDefined = static_cast<std::size_t>(__COUNTER__ - kFirstRule - 1);

template <class... R>
struct List {};

/// Catalogue order: gates, control, save, event, memory (the order in which
/// VMRUN decides them; within a stage, the APM's order). The gates follow
/// the APM's exception order (#UD before #GP) and, for KVM's extra ones, the
/// order of KVM's nested_svm_vmrun: CPL, hsave, SMM, rAX.
using AllRules =
    List<GateSvme, GateProtectedMode, GatePaging, GateCpl, GateHsaveZero, GateSmm, GateRaxAlign, GateRaxMaxphyaddr,
         InterceptVmrun, AsidZero, MsrpmLimit, IopmLimit, NpHostPaging, NpNcr3, NpGPat, NpSss, VnmiIntercept,
         AvicX2WithoutAvic, AvicMaxIndex, AvicPointers, AvicRequiresNp, SevRequiresNp, SevSmmLock, SevAsidRange,
         SevHost64, SevEsRequiresSev, SevEsRequiresLbrv,  //
         EferSvme, Cr0CdNw, Cr0Upper, Cr3Mbz, Cr4Mbz, Cr4PcideWithoutLma, Dr6Upper, Dr7Upper, EferMbz, EferLm,
         EferLmaInconsistent, EferLmaWithoutLme, LongModePae, LongModePe, LongModeCsLD, CetSCet, CetWp,  //
         EventType, EventVector, EventMode, EventSevEs, EventReserved,  //
         PdpeReserved, SevEsVmsaUnreadable, SnpVmplSss, SnpInjectionModes, SnpRestrictedAvic, EventRestricted,
         SnpAlternateAvic, SnpAllowedFeatures, SnpSecureAvic>;

}  // namespace nsvm::checks::rules
