// The public catalogue: one Check per entry of rules.hpp, in AllRules order,
// the renderers the entries name to put the offending values into words, and
// the application of an entry's boundary values.
#include "nsvm/checks/catalogue.hpp"

#include <array>
#include <string>

#include <fmt/format.h>

#include "rules.hpp"

namespace nsvm::checks {
namespace rules::render {
namespace {

/// "PAE|PCIDE" style list of the named bits in `mask`, plus any unnamed rest.
template <class Names>
std::string bit_names(std::uint64_t mask, const Names& names) {
    std::string out;
    std::uint64_t rest = mask;
    for (const auto& n : names) {
        if ((mask & n.mask) == n.mask && n.mask != 0) {
            out += (out.empty() ? "" : "|") + std::string(n.name);
            rest &= ~n.mask;
        }
    }
    if (rest != 0) out += (out.empty() ? "" : "|") + fmt::format("bits {:#x}", rest);
    return out;
}

}  // namespace

std::string cr0(const Context& c) {
    const auto cr0 = c.vmcb.get(arch::FieldId::cr0);
    return fmt::format("CR0 = {:#x} ({})", cr0, bit_names(cr0, arch::cr0::kNames));
}
std::string cr3(const Context& c) {
    const View v(c);
    const bool paging = (v.cr0 & arch::cr0::PG) != 0;
    const char* mode = v.lme_pg                                ? "long mode"
                       : (v.cr4 & arch::cr4::PAE) != 0 && paging ? "PAE"
                       : paging                                  ? "32-bit legacy"
                       : (v.cr4 & arch::cr4::PAE) != 0           ? "PAE (paging off)"
                                                                 : "32-bit legacy (paging off)";
    // Say what the rule rests on where the evidence is hardware's or one
    // implementation's rather than the manual's (profile `cr3_rule`).
    const char* basis = "";
    if (c.profile.cr3_rule == Cr3Rule::by_paging_mode && !v.lme_pg)
        basis = "; outside long mode only bits at or above MAXPHYADDR fail (AMD hardware, kvm-unit-tests 2026)";
    if (c.profile.cr3_rule == Cr3Rule::format_always && !v.lme_pg && !paging)
        basis = "; Hyper-V checks this format with paging off too (AMD hardware runs it)";
    return fmt::format("CR3 = {:#x}, paging format {}, MAXPHYADDR {}, offending bits {:#x}{}", v.cr3, mode, v.pa,
                       cr3_bad_bits(v), basis);
}
std::string cr4(const Context& c) {
    const View v(c);
    return fmt::format("CR4 = {:#x}; not allowed on CPU '{}': {}", v.cr4, c.cpu.name,
                       bit_names(cr4_bad_bits(v), arch::cr4::kNames));
}
std::string efer(const Context& c) {
    const View v(c);
    return fmt::format("EFER = {:#x} ({}); not allowed on CPU '{}': {}", v.efer, bit_names(v.efer, arch::efer::kNames),
                       c.cpu.name, bit_names(efer_bad_bits(v), arch::efer::kNames));
}
std::string efer_plain(const Context& c) {
    const auto e = c.vmcb.get(arch::FieldId::efer);
    return fmt::format("EFER = {:#x} ({})", e, bit_names(e, arch::efer::kNames));
}
std::string long_mode(const Context& c) {
    const View v(c);
    return fmt::format("EFER = {:#x}, CR0 = {:#x}, CR4 = {:#x}, CS.attrib = {:#x} (L={}, D={})", v.efer, v.cr0, v.cr4,
                       v.cs_attrib, (v.cs_attrib & arch::seg_attr::L) != 0 ? 1 : 0,
                       (v.cs_attrib & arch::seg_attr::DB) != 0 ? 1 : 0);
}
std::string lma(const Context& c) {
    const View v(c);
    return fmt::format("EFER = {:#x} (LMA={}, LME={}), CR0 = {:#x} (PG={}, PE={})", v.efer,
                       (v.efer & arch::efer::LMA) != 0 ? 1 : 0, (v.efer & arch::efer::LME) != 0 ? 1 : 0, v.cr0,
                       (v.cr0 & arch::cr0::PG) != 0 ? 1 : 0, (v.cr0 & arch::cr0::PE) != 0 ? 1 : 0);
}
namespace {
std::string bitmap_detail(const Context& c, std::uint64_t base, std::uint32_t size, const char* what) {
    const View v(c);
    const std::uint64_t page = base & ~std::uint64_t{0xFFF};
    const std::uint64_t limit = pa_limit(v.pa);
    switch (v.p.bitmap_limit_rule) {
        case BitmapLimitRule::qemu_base:
            return fmt::format("{} base = {:#x}; QEMU rejects a page base >= 2^{} - {:#x} = {:#x}", what, base, v.pa,
                               size, limit >= size ? limit - size : 0);
        case BitmapLimitRule::base_only:
            return fmt::format("{} base = {:#x}; page base must be below 2^{} = {:#x}", what, base, v.pa, limit);
        default:
            return fmt::format("{} base = {:#x}: last byte {:#x} (size {:#x}) must be below 2^{} = {:#x}", what, base,
                               page + (size - 1), size, v.pa, limit);
    }
}
}  // namespace
std::string msrpm(const Context& c) {
    return bitmap_detail(c, c.vmcb.get(arch::FieldId::msrpm_base_pa), c.profile.msrpm_checked_size, "MSRPM");
}
std::string iopm(const Context& c) {
    return bitmap_detail(c, c.vmcb.get(arch::FieldId::iopm_base_pa), c.profile.iopm_checked_size, "IOPM");
}
std::string event(const Context& c) {
    const auto e = static_cast<std::uint32_t>(c.vmcb.get(arch::FieldId::event_inj));
    const unsigned t = arch::event::type_of(e);
    const unsigned vec = e & arch::event::VECTOR;
    return fmt::format("EVENTINJ = {:#010x}: V={} TYPE={} ({}) VECTOR={} ({}) EV={} reserved[30:12]={:#x}", e,
                       (e & arch::event::V) != 0 ? 1 : 0, t, arch::event::type_name(t), vec,
                       vec < 32 ? std::string(arch::kExceptionNames[vec]) : std::string("interrupt"),
                       (e & arch::event::EV) != 0 ? 1 : 0, (e & arch::event::RESERVED) >> 12);
}
std::string host(const Context& c) {
    if (c.host == nullptr) return {};
    return fmt::format("host EFER = {:#x}, CR0 = {:#x}, CPL = {}, RFLAGS = {:#x}", c.host->efer, c.host->cr0,
                       c.host->cpl, c.host->rflags);
}
std::string rax(const Context& c) {
    if (c.host == nullptr) return {};
    const View v(c);
    return fmt::format("rAX = {:#x} ({}-bit address size: {:#x}), MAXPHYADDR {}", c.host->rax, c.host->address_size,
                       v.host_rax(), v.pa);
}
std::string s_cet(const Context& c) {
    const View v(c);
    return fmt::format("S_CET = {:#x}, reserved bits set {:#x}", v.s_cet, s_cet_bad_bits(v));
}
std::string sev_features(const Context& c) {
    const View v(c);
    const auto f = vmsa_sev_features(c);
    const char* from = c.vmsa != nullptr && c.vmsa->sev_features ? "the dump's decrypted VMSA" : "the VMSA page";
    if (!f) return fmt::format("ALLOWED_SEV_FEATURES = {:#x}; SEV_FEATURES not given", v.allowed_sev);
    return fmt::format("SEV_FEATURES = {:#x} (VMSA 3B0h, from {}), ALLOWED_SEV_FEATURES = {:#x}, not allowed: {:#x}",
                       *f, from, v.allowed_sev, sev_features_not_allowed(v));
}
namespace {
/// SEV_FEATURES as the SNP checks read it, with where it came from.
std::string vmsa_sev_features_text(const Context& c) {
    const auto f = vmsa_sev_features(c);
    if (!f) return "SEV_FEATURES not given";
    const char* from = c.vmsa != nullptr && c.vmsa->sev_features ? "the dump's decrypted VMSA" : "the VMSA page";
    return fmt::format("SEV_FEATURES = {:#x} (VMSA 3B0h, from {})", *f, from);
}
}  // namespace
std::string snp_features(const Context& c) {
    const View v(c);
    return fmt::format("{}, misc_ctl SSSCheckEn = {}, int_ctl AVIC_ENABLE = {}", vmsa_sev_features_text(c),
                       sss_check_enabled(v) ? 1 : 0, avic_enable_set(v) ? 1 : 0);
}
std::string event_restricted(const Context& c) { return event(c) + "; " + vmsa_sev_features_text(c); }
std::string pdpe(const Context& c) {
    const View v(c);
    std::string out = fmt::format("CR3 = {:#x}, PDPT at {:#x}:", v.cr3, pdpt_base(v.cr3));
    if (c.memory == nullptr) return out + " guest memory not given";
    for (unsigned i = 0; i < 4; ++i) {
        std::uint64_t e = 0;
        if (!c.memory->read_u64(pdpt_base(v.cr3) + 8 * i, e)) {
            out += fmt::format(" PDPE{} unreadable;", i);
        } else {
            out += fmt::format(" PDPE{} = {:#x} (bad {:#x});", i, e, pdpe_bad_bits(v, e));
        }
    }
    return out;
}

}  // namespace rules::render

namespace {

using namespace rules;

template <class R>
bool violated(const Context& c) noexcept {
    return R::test(View(c));
}

/// Which built-in profiles apply R, from R's own applies().
template <class R>
ProfileMask mask_from_settings() noexcept {
    ProfileMask m = 0;
    for (const auto& p : all_profiles())
        if (R::applies(p)) m = static_cast<ProfileMask>(m | mask_of(p.id));
    return m;
}

template <class R>
Check make() {
    return Check{R::id,
                 R::apm,
                 R::ref,
                 R::stage,
                 R::outcome,
                 std::span<const std::string_view>(R::fields),
                 R::message,
                 R::hint,
                 &R::applies,
                 mask_from_settings<R>(),
                 &violated<R>,
                 R::detail,
                 R::needs,
                 R::inferred,
                 std::span<const Boundary>(R::boundary),
                 std::span<const std::string_view>(R::settings),
                 R::unchecked,
                 R::needs_what};
}

template <class... R>
auto make_all(List<R...>) {
    return std::array<Check, sizeof...(R)>{make<R>()...};
}

const auto kCatalogue = make_all(AllRules{});

}  // namespace

std::span<const Check> catalogue() noexcept { return kCatalogue; }

std::size_t rules_defined() noexcept { return rules::kRulesDefined; }

namespace {
[[nodiscard]] std::uint64_t poked(std::uint64_t v, Op op, std::uint64_t x) noexcept {
    switch (op) {
        case Op::none: return v;
        case Op::assign: return x;
        case Op::set: return v | x;
        case Op::clear: return v & ~x;
    }
    return v;
}
}  // namespace

void apply_boundary(const Boundary& b, arch::Vmcb& vmcb) noexcept {
    for (const auto& p : b.vmcb)
        if (p.op != Op::none) vmcb.set(p.field, poked(vmcb.get(p.field), p.op, p.value));
}

HostState apply_boundary(const Boundary& b, HostState h) noexcept {
    for (const auto& p : b.host) {
        if (p.op == Op::none) continue;
        switch (p.reg) {
            case HostReg::efer: h.efer = poked(h.efer, p.op, p.value); break;
            case HostReg::cr0: h.cr0 = poked(h.cr0, p.op, p.value); break;
            case HostReg::cr4: h.cr4 = poked(h.cr4, p.op, p.value); break;
            case HostReg::rflags: h.rflags = poked(h.rflags, p.op, p.value); break;
            case HostReg::cpl: h.cpl = static_cast<std::uint8_t>(poked(h.cpl, p.op, p.value)); break;
            case HostReg::rax: h.rax = poked(h.rax, p.op, p.value); break;
            case HostReg::hsave_pa: h.vm_hsave_pa = poked(h.vm_hsave_pa.value_or(0), p.op, p.value); break;
            case HostReg::smm: h.smm = poked(h.smm ? 1 : 0, p.op, p.value) != 0; break;
            case HostReg::hwcr: h.hwcr = poked(h.hwcr, p.op, p.value); break;
        }
    }
    return h;
}

std::span<const Undecided> undecided() noexcept {
    static constexpr std::array<Undecided, 11> kUndecided{{
        {"C19", "15.5.1", "CR4.CET and U_CET.SS set together with EFLAGS.VM",
         "U_CET is not VMCB state (the guest's XSAVE-managed CET_U component)"},
        {"C20", "15.5.1", "a reserved bit set in U_CET (SEV-ES guests)",
         "U_CET is in the VMSA, whose layout is not modelled"},
        {"P1", "15.36.12", "an SNP-active VMSA while SNP is not enabled on the host",
         "the host's SYSCFG (SNP enable) is not part of the modelled host state"},
        {"P2", "15.36.12", "the VMSA page fails its RMP checks",
         "the RMP is not modelled; sev_es.vmsa_unreadable decides only that the page is readable"},
        {"P3", "15.36.12", "the AVIC backing page is not hypervisor-owned", "the RMP is not modelled"},
        {"P8", "15.36.17", "PreventHostIBS with IbsFetchEn or IbsOpEn set", "the host's IBS MSRs are not modelled"},
        {"P11", "15.36.21.2", "Secure AVIC with an invalid guest APIC backing page pointer",
         "the pointer is in the VMSA, whose layout is not modelled"},
        {"P12", "15.38", "SEV-ES/SNP with IBS virtualization and IbsFetchEn or IbsOpEn set",
         "the host's IBS MSRs are not modelled"},
        {"X1", "15.36.16, 15.36.21", "VMSA VIntrCtrl.BUSY set (VMEXIT_BUSY)",
         "the VMSA's contents are not modelled"},
        {"X2", "15.36.17", "SMT protection with the sibling thread not idle (VMEXIT_IDLE_REQUIRED)",
         "the sibling thread is not modelled"},
        {"X3", "15.39", "guest PMC virtualization without the host's, with PMC enables set (VMEXIT_INVALID_PMC)",
         "the host's PMC virtualization state is not modelled"},
    }};
    return kUndecided;
}

const Check* find_check(std::string_view id) noexcept {
    for (const auto& c : kCatalogue) {
        if (c.id == id) return &c;
    }
    return nullptr;
}

}  // namespace nsvm::checks
