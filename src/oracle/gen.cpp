// Vector generation (gen.hpp): bases, boundary mutations, pairs, random.
#include "nsvm/oracle/gen.hpp"

#include <algorithm>
#include <functional>
#include <set>

#include <fmt/format.h>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/checks/evaluate.hpp"
#include "nsvm/oracle/model.hpp"
#include "nsvm/util/text.hpp"

namespace nsvm::oracle {

using arch::FieldId;
using arch::Seg;
namespace ic = arch::intercept;
namespace cr0 = arch::cr0;
namespace cr4 = arch::cr4;
namespace efer = arch::efer;

Vector base_vector(BaseMode mode, Program p) {
    Vector v;
    auto& m = v.vmcb;
    // Intercepts every vector needs to end predictably: VMRUN (APM 15.5.1
    // requires it), VMMCALL and HLT (the programs' epilogue), SHUTDOWN (an L2
    // triple fault becomes an exit, not a host reset).
    m.set_intercept(ic::VMRUN);
    m.set_intercept(ic::VMMCALL);
    m.set_intercept(ic::HLT);
    m.set_intercept(ic::SHUTDOWN);
    m.set(FieldId::asid, 1);
    // Every vector starts from a flushed TLB: all vectors share ASID 1, and
    // translations a previous vector cached for it may legally be used
    // unless VMRUN flushes them (APM 15.16.1). nsvm diff found QEMU reusing
    // a previous vector's mapping where nested paging should fault.
    m.set(FieldId::tlb_ctl, 1);
    m.set(FieldId::iopm_base_pa, NSVM_OR_IOPM_PA);
    m.set(FieldId::msrpm_base_pa, NSVM_OR_MSRPM_PA);
    const bool is64 = mode == BaseMode::long64;
    const arch::Segment code{static_cast<std::uint16_t>(is64 ? NSVM_OR_L2_CS64 : NSVM_OR_L2_CS32),
                             static_cast<std::uint16_t>(is64 ? 0xA9B : 0xC9B), 0xFFFFFFFF, 0};
    const arch::Segment data{NSVM_OR_L2_DS, 0xC93, 0xFFFFFFFF, 0};
    m.set_segment(Seg::cs, code);
    m.set_segment(Seg::ss, data);
    m.set_segment(Seg::ds, data);
    m.set_segment(Seg::es, data);
    m.set_segment(Seg::gdtr, arch::Segment{0, 0, 0x27, NSVM_OR_L2_GDT_PA});
    m.set_segment(Seg::idtr, is64 ? arch::Segment{0, 0, 0xFFF, NSVM_OR_L2_IDT64_PA}
                                  : arch::Segment{0, 0, 0x7FF, NSVM_OR_L2_IDT32_PA});
    m.set_segment(Seg::tr, arch::Segment{0, 0x8B, 0x67, 0});
    switch (mode) {
        case BaseMode::long64:
            m.set(FieldId::efer, efer::LME | efer::LMA | efer::SVME);
            m.set(FieldId::cr0, cr0::PG | cr0::WP | cr0::NE | cr0::ET | cr0::PE);
            m.set(FieldId::cr4, cr4::PAE);
            m.set(FieldId::cr3, NSVM_OR_PML4_PA);
            break;
        case BaseMode::prot32:
            m.set(FieldId::efer, efer::SVME);
            m.set(FieldId::cr0, cr0::NE | cr0::ET | cr0::PE);
            break;
        case BaseMode::pae32:
            m.set(FieldId::efer, efer::SVME);
            m.set(FieldId::cr0, cr0::PG | cr0::NE | cr0::ET | cr0::PE);
            m.set(FieldId::cr4, cr4::PAE);
            m.set(FieldId::cr3, NSVM_OR_PAE_PDPT_PA);
            break;
        case BaseMode::legacy32:
            m.set(FieldId::efer, efer::SVME);
            m.set(FieldId::cr0, cr0::PG | cr0::NE | cr0::ET | cr0::PE);
            m.set(FieldId::cr4, cr4::PSE);
            m.set(FieldId::cr3, NSVM_OR_PD32_PA);
            break;
    }
    m.set(FieldId::dr6, 0xFFFF0FF0);
    m.set(FieldId::dr7, 0x400);
    m.set(FieldId::rflags, arch::rflags::FIXED1);
    m.set(FieldId::rsp, NSVM_OR_L2_STACK_TOP);
    m.set(FieldId::g_pat, 0x0007040600070406ULL);
    v.program = p;
    m.set(FieldId::rip, program_entry(p));
    return v;
}

namespace {

struct Mutation {
    std::string check;  ///< the check id exercised ("" for program coverage)
    std::string name;   ///< short variant name, part of the vector id
    BaseMode base = BaseMode::long64;
    std::function<void(Vector&)> apply;
};

void set_bits(Vector& v, FieldId f, std::uint64_t on, std::uint64_t off = 0) {
    v.vmcb.set(f, (v.vmcb.get(f) | on) & ~off);
}

void enable_np(Vector& v) {
    set_bits(v, FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE);
    v.vmcb.set(FieldId::nested_cr3, NSVM_OR_NPT_PML4_PA);
}

/// One entry per check a vector can express, with the candidate values
/// around its boundary. The catalogue decides which of them fail.
std::vector<Mutation> boundary_mutations(const checks::CpuModel& cpu, const checks::Profile& prof) {
    std::vector<Mutation> ms;
    auto add = [&](std::string check, std::string name, BaseMode b, std::function<void(Vector&)> f) {
        ms.push_back(Mutation{std::move(check), std::move(name), b, std::move(f)});
    };
    const unsigned w = checks::pa_width(prof, cpu.maxphyaddr);
    const std::uint64_t top = std::uint64_t{1} << w;
    const auto L = BaseMode::long64;

    // Instruction gates the image can set (APM 15.5.1; host state knobs).
    add("gate.efer_svme", "host_svme0", L, [](Vector& v) { v.host.svme = false; });
    add("gate.rax_alignment", "rax_unaligned", L, [](Vector& v) { v.host.vmrun_rax = NSVM_OR_SPARE_VMCB_PA + 0x10; });
    add("gate.rax_maxphyaddr", "rax_2^pa", L, [top](Vector& v) { v.host.vmrun_rax = top; });
    add("gate.rax_maxphyaddr", "rax_bit51", L, [](Vector& v) { v.host.vmrun_rax = std::uint64_t{1} << 51; });

    // Control area.
    add("intercept.vmrun", "clear", L, [](Vector& v) { v.vmcb.set_intercept(ic::VMRUN, false); });
    add("asid.zero", "asid0", L, [](Vector& v) { v.vmcb.set(FieldId::asid, 0); });
    add("asid.zero", "asid1", L, [](Vector& v) { v.vmcb.set(FieldId::asid, 1); });
    add("asid.zero", fmt::format("asid{}", cpu.num_asids - 1), L,
        [n = cpu.num_asids](Vector& v) { v.vmcb.set(FieldId::asid, n - 1); });
    add("asid.zero", fmt::format("asid{}", cpu.num_asids), L,
        [n = cpu.num_asids](Vector& v) { v.vmcb.set(FieldId::asid, n); });
    for (std::uint64_t back : {0x4000ULL, 0x3000ULL, 0x2000ULL, 0x1000ULL, 0ULL}) {
        add("msrpm.limit", fmt::format("2^{}-{:#x}", w, back), L,
            [a = top - back](Vector& v) { v.vmcb.set(FieldId::msrpm_base_pa, a); });
        add("iopm.limit", fmt::format("2^{}-{:#x}", w, back), L,
            [a = top - back](Vector& v) { v.vmcb.set(FieldId::iopm_base_pa, a); });
    }
    add("np.ncr3", "valid", L, [](Vector& v) { enable_np(v); });
    add("np.ncr3", "bit_pa", L, [top](Vector& v) {
        enable_np(v);
        set_bits(v, FieldId::nested_cr3, top);
    });
    add("np.ncr3", "bit63", L, [](Vector& v) {
        enable_np(v);
        set_bits(v, FieldId::nested_cr3, arch::bit(63));
    });
    add("np.g_pat", "type7", L, [](Vector& v) {
        enable_np(v);
        v.vmcb.set(FieldId::g_pat, 0x0007040600070407ULL);
    });
    add("np.g_pat", "type2", L, [](Vector& v) {
        enable_np(v);
        v.vmcb.set(FieldId::g_pat, 0x0007040600070402ULL);
    });
    add("np.g_pat", "type8", L, [](Vector& v) {
        enable_np(v);
        v.vmcb.set(FieldId::g_pat, 0x0007040600070408ULL);
    });

    // Save area (APM 15.5.1 list).
    add("efer.svme", "clear", L, [](Vector& v) { set_bits(v, FieldId::efer, 0, efer::SVME); });
    add("cr0.cd_nw", "nw", L, [](Vector& v) { set_bits(v, FieldId::cr0, cr0::NW); });
    add("cr0.cd_nw", "cd_nw", L, [](Vector& v) { set_bits(v, FieldId::cr0, cr0::NW | cr0::CD); });
    add("cr0.cd_nw", "cd", L, [](Vector& v) { set_bits(v, FieldId::cr0, cr0::CD); });
    // The last passing value: bit 31 (PG, set in every long-mode base) is the
    // highest bit CR0 may hold (APM 15.5.1: CR0[63:32] MBZ).
    add("cr0.upper", "bit31", L, [](Vector& v) { set_bits(v, FieldId::cr0, arch::bit(31)); });
    add("cr0.upper", "bit32", L, [](Vector& v) { set_bits(v, FieldId::cr0, arch::bit(32)); });
    add("cr0.upper", "bit63", L, [](Vector& v) { set_bits(v, FieldId::cr0, arch::bit(63)); });
    add("cr3.mbz", "long_pwt", L, [](Vector& v) { set_bits(v, FieldId::cr3, arch::cr3::PWT); });
    add("cr3.mbz", "long_bit0", L, [](Vector& v) { set_bits(v, FieldId::cr3, arch::bit(0)); });
    add("cr3.mbz", "long_bit5", L, [](Vector& v) { set_bits(v, FieldId::cr3, arch::bit(5)); });
    add("cr3.mbz", fmt::format("long_bit{}", w), L, [top](Vector& v) { set_bits(v, FieldId::cr3, top); });
    add("cr3.mbz", "long_bit63", L, [](Vector& v) { set_bits(v, FieldId::cr3, arch::bit(63)); });
    add("cr3.mbz", "pae_bit32", BaseMode::pae32, [](Vector& v) { set_bits(v, FieldId::cr3, arch::bit(32)); });
    add("cr3.mbz", "pae_bit4", BaseMode::pae32, [](Vector& v) { set_bits(v, FieldId::cr3, arch::bit(4)); });
    add("cr3.mbz", "legacy_bit0", BaseMode::legacy32, [](Vector& v) { set_bits(v, FieldId::cr3, arch::bit(0)); });
    // CR4, one bit at a time, on a guest without paging so that no bit changes
    // how L2 translates addresses (APM 3.1.3).
    for (unsigned b : {0U, 1U, 2U, 3U, 4U, 5U, 6U, 7U, 8U, 9U, 10U, 11U, 12U, 13U, 14U, 15U, 16U, 17U, 18U, 19U, 20U,
                       21U, 22U, 23U, 24U, 25U, 28U, 31U, 32U, 63U}) {
        add("cr4.mbz", fmt::format("bit{}", b), BaseMode::prot32,
            [b](Vector& v) { set_bits(v, FieldId::cr4, arch::bit(b)); });
    }
    add("cr4.pcide_without_long_mode", "prot32_pcide", BaseMode::prot32,
        [](Vector& v) { set_bits(v, FieldId::cr4, cr4::PCIDE); });
    add("dr6.upper", "low_all", L, [](Vector& v) { v.vmcb.set(FieldId::dr6, 0xFFFFFFFF); });
    add("dr6.upper", "bit32", L, [](Vector& v) { set_bits(v, FieldId::dr6, arch::bit(32)); });
    add("dr7.upper", "low_fields", L, [](Vector& v) { v.vmcb.set(FieldId::dr7, 0xFFFF0400); });
    add("dr7.upper", "bit32", L, [](Vector& v) { set_bits(v, FieldId::dr7, arch::bit(32)); });
    for (unsigned b = 0; b < 64; ++b) {
        if (b == 8 || b == 10 || b == 12) continue;  // LME/LMA/SVME are the base's
        add("efer.mbz", fmt::format("bit{}", b), L, [b](Vector& v) { set_bits(v, FieldId::efer, arch::bit(b)); });
    }
    add("long_mode.pae", "pae0", L, [](Vector& v) { set_bits(v, FieldId::cr4, 0, cr4::PAE); });
    add("long_mode.pe", "pe0", L, [](Vector& v) { set_bits(v, FieldId::cr0, 0, cr0::PE); });
    add("long_mode.cs_l_d", "long_l_d", L, [](Vector& v) {
        auto cs = v.vmcb.segment(Seg::cs);
        cs.attrib = static_cast<std::uint16_t>(cs.attrib | arch::seg_attr::DB);
        v.vmcb.set_segment(Seg::cs, cs);
    });
    add("long_mode.cs_l_d", "prot32_l_d", BaseMode::prot32, [](Vector& v) {
        auto cs = v.vmcb.segment(Seg::cs);
        cs.attrib = static_cast<std::uint16_t>(cs.attrib | arch::seg_attr::L);
        v.vmcb.set_segment(Seg::cs, cs);
    });
    // EVENTINJ (APM 15.20): every TYPE, then TYPE 3 with every vector 0..32.
    for (unsigned t = 0; t < 8; ++t) {
        const unsigned vec = t == 2 ? 2 : t == 3 ? 6 : 0x30;
        add("event_inj.type", fmt::format("type{}", t), L, [t, vec](Vector& v) {
            v.vmcb.set(FieldId::event_inj, arch::event::V | (t << arch::event::kTypeShift) | vec);
        });
    }
    for (unsigned vec = 0; vec <= 32; ++vec) {
        add("event_inj.vector", fmt::format("exc{}", vec), L, [vec](Vector& v) {
            // Error code valid for the vectors that push one (APM 8.2); EV is
            // what the APM checks, QEMU ignores it.
            const bool ec = vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 || vec == 30;
            v.vmcb.set(FieldId::event_inj, arch::event::V | (3U << arch::event::kTypeShift) | vec |
                                                (ec ? arch::event::EV : 0U));
        });
    }
    add("event_inj.vector", "exc255", L, [](Vector& v) {
        v.vmcb.set(FieldId::event_inj, arch::event::V | (3U << arch::event::kTypeShift) | 255U);
    });
    add("event_inj.reserved", "bit12", L, [](Vector& v) {
        v.vmcb.set(FieldId::event_inj, arch::event::V | (0U << arch::event::kTypeShift) | 0x30U | (1U << 12));
    });
    // EFER.LMA against LME & PG (APM 3.1.7; the Xen crash reported on
    // xen-devel, BUG() in nsvm_vmcb_guest_intercepts_exitcode, came from a
    // long-mode vmcb12 with CR0.PG = 0).
    add("efer.lma_without_lme_pg", "lma_pg0", L, [](Vector& v) { set_bits(v, FieldId::cr0, 0, cr0::PG); });
    add("efer.lma_without_lme_pg", "lma_lme0", L, [](Vector& v) { set_bits(v, FieldId::efer, 0, efer::LME); });
    add("efer.lma_without_lme_pg", "lme_pg_no_lma", L, [](Vector& v) { set_bits(v, FieldId::efer, 0, efer::LMA); });
    // CET (APM 15.5.1): CR4.CET needs CR0.WP; S_CET bits 9:6 are reserved.
    add("cet.cr0_wp", "cet_wp1", L, [](Vector& v) { set_bits(v, FieldId::cr4, cr4::CET); });
    add("cet.cr0_wp", "cet_wp0", L, [](Vector& v) {
        set_bits(v, FieldId::cr4, cr4::CET);
        set_bits(v, FieldId::cr0, 0, cr0::WP);
    });
    add("cet.s_cet_reserved", "bit5", L, [](Vector& v) { set_bits(v, FieldId::s_cet, arch::bit(5)); });
    add("cet.s_cet_reserved", "bit6", L, [](Vector& v) { set_bits(v, FieldId::s_cet, arch::bit(6)); });
    // Virtual NMI needs the NMI intercept (APM 15.21.10).
    add("vnmi.nmi_intercept", "with_nmi_intercept", L, [](Vector& v) {
        set_bits(v, FieldId::int_ctl, arch::int_ctl::V_NMI_ENABLE);
        v.vmcb.set_intercept(ic::NMI);
    });
    add("vnmi.nmi_intercept", "without", L,
        [](Vector& v) { set_bits(v, FieldId::int_ctl, arch::int_ctl::V_NMI_ENABLE); });
    // The supervisor-shadow-stack check needs nested paging (APM 15.25.14).
    add("np.sss_without_np", "sss_np", L, [](Vector& v) {
        enable_np(v);
        set_bits(v, FieldId::misc_ctl, arch::misc_ctl::SSS_CHECK);
    });
    add("np.sss_without_np", "sss_no_np", L, [](Vector& v) { set_bits(v, FieldId::misc_ctl, arch::misc_ctl::SSS_CHECK); });
    // VM_HSAVE_PA = 0 (KVM: #GP on VMRUN); page 1 is an ordinary address.
    add("gate.hsave_zero", "hsave_page1", L, [](Vector& v) { v.host.hsave_pa = 0x1000; });
    add("gate.hsave_zero", "hsave0", L, [](Vector& v) { v.host.hsave_pa = 0; });
    if (prof.pdpe_check) {
        // A PDPT whose entry 0 has RW/US set (the long-mode PML4 page).
        add("pdpe.reserved", "pml4_as_pdpt", BaseMode::pae32,
            [](Vector& v) { v.vmcb.set(FieldId::cr3, NSVM_OR_PML4_PA); });
    }
    return ms;
}

/// One vector per L2 program, with the intercepts that make its exit
/// architectural (APM 15.7-15.13, Appendix C).
std::vector<Mutation> program_mutations() {
    std::vector<Mutation> ms;
    auto add = [&](std::string name, Program p, std::function<void(Vector&)> f) {
        ms.push_back(Mutation{"", std::move(name), BaseMode::long64, [p, f = std::move(f)](Vector& v) {
                                  v.program = p;
                                  v.vmcb.set(FieldId::rip, program_entry(p));
                                  if (f) f(v);
                              }});
    };
    add("vmmcall", Program::vmmcall, {});
    add("vmmcall_gif0", Program::vmmcall, [](Vector& v) { v.host.gif = false; });
    add("hlt", Program::hlt, {});
    add("cpuid", Program::cpuid, [](Vector& v) { v.vmcb.set_intercept(ic::CPUID); });
    add("cpuid_passthrough", Program::cpuid, {});
    add("rdmsr_star", Program::rdmsr, [](Vector& v) {
        v.vmcb.set_intercept(ic::MSR_PROT);
        v.regs[1] = 0xC0000081;
        v.msrpm.push_back({0xC0000081, true, false});
    });
    add("wrmsr_star", Program::wrmsr, [](Vector& v) {
        v.vmcb.set_intercept(ic::MSR_PROT);
        v.regs[1] = 0xC0000081;
        v.msrpm.push_back({0xC0000081, false, true});
    });
    add("rdmsr_outside_ranges", Program::rdmsr, [](Vector& v) {
        v.vmcb.set_intercept(ic::MSR_PROT);
        v.regs[1] = 0x40000000;
    });
    add("in_0x80", Program::in, [](Vector& v) {
        v.vmcb.set_intercept(ic::IOIO_PROT);
        v.regs[2] = 0x80;
        v.iopm.push_back(0x80);
    });
    add("out_0x3f8", Program::out, [](Vector& v) {
        v.vmcb.set_intercept(ic::IOIO_PROT);
        v.regs[2] = 0x3F8;
        v.iopm.push_back(0x3F8);
    });
    add("ud2_stub", Program::ud2, {});
    add("ud2_intercepted", Program::ud2, [](Vector& v) { v.vmcb.set_intercept(ic::exception(6)); });
    add("int3_intercepted", Program::int3, [](Vector& v) { v.vmcb.set_intercept(ic::exception(3)); });
    add("int3_stub", Program::int3, {});
    add("div0_intercepted", Program::div0, [](Vector& v) { v.vmcb.set_intercept(ic::exception(0)); });
    add("load_scratch", Program::load, [](Vector& v) { v.regs[3] = NSVM_OR_L2_SCRATCH_PA; });
    add("store_scratch", Program::store, [](Vector& v) { v.regs[3] = NSVM_OR_L2_SCRATCH_PA + 8; });
    add("load_npf", Program::load, [](Vector& v) {
        enable_np(v);
        v.regs[3] = (std::uint64_t{1} << 30) + 0x1000;
    });
    add("store_npf", Program::store, [](Vector& v) {
        enable_np(v);
        v.regs[3] = (std::uint64_t{1} << 30) + 0x2000;
    });
    add("load_np_mapped", Program::load, [](Vector& v) {
        enable_np(v);
        v.regs[3] = NSVM_OR_L2_SCRATCH_PA;
    });
    add("stgi", Program::stgi, [](Vector& v) { v.vmcb.set_intercept(ic::STGI); });
    add("clgi", Program::clgi, [](Vector& v) { v.vmcb.set_intercept(ic::CLGI); });
    add("vmload", Program::vmload, [](Vector& v) {
        v.vmcb.set_intercept(ic::VMLOAD);
        v.vmcb.set(FieldId::rax, NSVM_OR_SPARE_VMCB_PA);
    });
    add("vmsave", Program::vmsave, [](Vector& v) {
        v.vmcb.set_intercept(ic::VMSAVE);
        v.vmcb.set(FieldId::rax, NSVM_OR_SPARE_VMCB_PA);
    });
    add("vmrun_in_l2", Program::vmrun, [](Vector& v) { v.vmcb.set(FieldId::rax, NSVM_OR_SPARE_VMCB_PA); });
    add("rdtsc", Program::rdtsc, [](Vector& v) { v.vmcb.set_intercept(ic::RDTSC); });
    add("pause", Program::pause, [](Vector& v) { v.vmcb.set_intercept(ic::PAUSE); });
    add("invd", Program::invd, [](Vector& v) { v.vmcb.set_intercept(ic::INVD); });
    add("wbinvd", Program::wbinvd, [](Vector& v) { v.vmcb.set_intercept(ic::WBINVD); });
    // Instructions a CPU model may lack (#UD before the intercept, APM 15.7)
    // and whose intercepts are one bit each (APM Appendix C).
    add("rdtscp", Program::rdtscp, [](Vector& v) { v.vmcb.set_intercept(ic::RDTSCP); });
    add("rdtscp_passthrough", Program::rdtscp, {});
    const auto osxsave = [](Vector& v) {
        set_bits(v, FieldId::cr4, cr4::OSXSAVE);
        v.regs[1] = 0;                   // XCR0
        v.regs[2] = 0;                   // edx
        v.vmcb.set(FieldId::rax, 1);     // eax: XCR0's reset value (isolation.cpp)
    };
    add("xsetbv", Program::xsetbv, [osxsave](Vector& v) {
        osxsave(v);
        v.vmcb.set_intercept(ic::XSETBV);
    });
    add("xsetbv_passthrough", Program::xsetbv, osxsave);
    // Values XCR0 cannot hold and an XCR other than XCR0, not intercepted:
    // #GP(0) in L2 (APM Vol.4 XSETBV; cpu::xsetbv_fault), XCR0 unchanged,
    // so isolation.cpp admits them. Through L2's IDT, and intercepted
    // (#VMEXIT 0x4D, EXITINFO1 = the error code 0, APM 15.12).
    add("xsetbv_gp_x87_clear", Program::xsetbv, [osxsave](Vector& v) {
        osxsave(v);
        v.vmcb.set(FieldId::rax, 0x2);  // SSE without x87
    });
    add("xsetbv_gp_avx_without_sse", Program::xsetbv, [osxsave](Vector& v) {
        osxsave(v);
        v.vmcb.set(FieldId::rax, 0x5);
    });
    add("xsetbv_gp_xcr1", Program::xsetbv, [osxsave](Vector& v) {
        osxsave(v);
        v.regs[1] = 1;
    });
    add("xsetbv_gp_bit63", Program::xsetbv, [osxsave](Vector& v) {
        osxsave(v);
        v.regs[2] = 0x80000000;  // edx: XCR0[63]
    });
    add("xsetbv_gp_intercepted", Program::xsetbv, [osxsave](Vector& v) {
        osxsave(v);
        v.vmcb.set(FieldId::rax, 0);
        v.vmcb.set_intercept(ic::exception(13));
    });
    // CR4.OSXSAVE = 0: #UD whatever the intercept says.
    add("xsetbv_no_osxsave", Program::xsetbv, [osxsave](Vector& v) {
        osxsave(v);
        set_bits(v, FieldId::cr4, 0, cr4::OSXSAVE);
        v.vmcb.set_intercept(ic::XSETBV);
    });
    add("rdpru", Program::rdpru, [](Vector& v) { v.vmcb.set_intercept(ic::RDPRU); });
    add("rdpru_ud_intercepted", Program::rdpru, [](Vector& v) {
        v.vmcb.set_intercept(ic::RDPRU);
        v.vmcb.set_intercept(ic::exception(6));
    });
    // Type 0 (individual address) with a zero descriptor in the scratch page.
    add("invpcid", Program::invpcid, [](Vector& v) {
        v.vmcb.set_intercept(ic::INVPCID);
        v.regs[1] = 0;
        v.regs[3] = NSVM_OR_L2_SCRATCH_PA;
    });
    // LMSW and CLTS write CR0 (APM 15.9.1); LMSW, not CLTS, is seen by the
    // selective CR0 write intercept, which ignores TS and MP (15.9.2).
    // The long-mode base has CR0 = PG|WP|NE|ET|PE: MP, EM and TS clear.
    constexpr std::uint64_t kMsw = cr0::PE | cr0::MP | cr0::TS;
    add("lmsw_cr0_write", Program::lmsw, [](Vector& v) {
        v.vmcb.set_intercept(ic::cr_write(0));
        v.regs[1] = kMsw;
    });
    add("lmsw_selective_em", Program::lmsw, [](Vector& v) {
        v.vmcb.set_intercept(ic::SELECTIVE_CR0);
        v.regs[1] = cr0::PE | cr0::EM;
    });
    add("lmsw_selective_ts_mp", Program::lmsw, [](Vector& v) {
        v.vmcb.set_intercept(ic::SELECTIVE_CR0);
        v.regs[1] = kMsw;
    });
    // LMSW cannot clear PE (APM Vol.3 "LMSW"): the source's PE = 0 leaves it.
    add("lmsw_pe0", Program::lmsw, [](Vector& v) { v.regs[1] = cr0::EM; });
    add("clts_cr0_write", Program::clts, [](Vector& v) {
        set_bits(v, FieldId::cr0, cr0::TS);
        v.vmcb.set_intercept(ic::cr_write(0));
    });
    add("clts_selective", Program::clts, [](Vector& v) {
        set_bits(v, FieldId::cr0, cr0::TS);
        v.vmcb.set_intercept(ic::SELECTIVE_CR0);
    });
    // STI with IF = 0 holds interrupts for the VMMCALL after it: the
    // #VMEXIT saves the interrupt shadow (APM 15.5.1, int_state); with IF = 1
    // already, no shadow. CLI clears IF.
    add("sti", Program::sti, {});
    add("sti_if1", Program::sti, [](Vector& v) { set_bits(v, FieldId::rflags, arch::rflags::IF); });
    add("cli", Program::cli, [](Vector& v) { set_bits(v, FieldId::rflags, arch::rflags::IF); });
    // x87 with CR0.TS or CR0.EM: #NM (APM 8.2.8), through L2's IDT or its
    // exception intercept; with neither, the instruction retires.
    add("fnop", Program::fnop, {});
    add("fnop_ts", Program::fnop, [](Vector& v) { set_bits(v, FieldId::cr0, cr0::TS | cr0::MP); });
    add("fnop_em", Program::fnop, [](Vector& v) { set_bits(v, FieldId::cr0, cr0::EM); });
    add("fnop_ts_intercepted", Program::fnop, [](Vector& v) {
        set_bits(v, FieldId::cr0, cr0::TS);
        v.vmcb.set_intercept(ic::exception(7));
    });
    // jmp rbx to the VMMCALL program: the fetch at the target (the pg/*
    // vectors jump into the paging window).
    add("jmp_vmmcall", Program::jmp, [](Vector& v) { v.regs[3] = program_entry(Program::vmmcall); });
    // IRET over a frame the program pushes from rdx, rcx, rsi, rdi, rbx (SS,
    // RSP, RFLAGS, CS, RIP; l2.S program 32): intercepted, #VMEXIT 0x74 with
    // RIP at the IRET and nRIP past it (APM 15.7.1, Appendix C); not, a
    // return to the VMMCALL program with RSP, RFLAGS, CS and SS as popped
    // (APM Vol.3 IRET; isolation.cpp admits only that target and a stack in
    // the L2 stack page). RFLAGS: CF, PF, ZF, SF and OF (IF stays clear).
    const auto iret_frame = [](Vector& v) {
        v.regs[2] = NSVM_OR_L2_DS;                   // SS
        v.regs[1] = NSVM_OR_L2_STACK_TOP - 0x80;     // RSP
        v.regs[6] = 0x8C7;                           // RFLAGS
        v.regs[7] = NSVM_OR_L2_CS64;                 // CS
        v.regs[3] = program_entry(Program::vmmcall);  // RIP
    };
    add("iretq_intercepted", Program::iret, [iret_frame](Vector& v) {
        iret_frame(v);
        v.vmcb.set_intercept(ic::IRET);
    });
    add("iretq", Program::iret, iret_frame);
    // NMI virtualization (APM 15.21.10): a completed IRET clears V_NMI_MASK
    // (V_NMI_BLOCKING); with V_NMI_PENDING the virtual NMI is then taken
    // through gate 2 before the VMMCALL. The NMI intercept is required with
    // V_NMI_ENABLE (consistency check vnmi.nmi_intercept). On a CPU without
    // vNMI (the qemu-tcg and bochs-ryzen models) the bits are the VMM's and
    // stay as they are.
    const auto vnmi = [iret_frame](std::uint64_t bits) {
        return [iret_frame, bits](Vector& v) {
            iret_frame(v);
            v.vmcb.set_intercept(ic::NMI);
            set_bits(v, FieldId::int_ctl, arch::int_ctl::V_NMI_ENABLE | arch::int_ctl::V_NMI_BLOCKING | bits);
        };
    };
    add("iretq_vnmi_unblocks", Program::iret, vnmi(0));
    add("iretq_vnmi_pending", Program::iret, vnmi(arch::int_ctl::V_NMI_PENDING));
    // The IRET's faults (APM Vol.3 IRET): a non-canonical return address is
    // #GP(0), through gate 13 or the #GP intercept (exit 0x4D, EXITINFO1 0);
    // a null CS #GP(0), a data segment as CS #GP(selector). The image's GDT
    // has no not-present code descriptor, so #NP is not reachable here. The
    // non-canonical address's low half is the VMMCALL program's entry, so a
    // random mutation that leaves 64-bit code (an IRETD pops EIP = ebx)
    // still returns where isolation.cpp admits.
    constexpr std::uint64_t kNonCanonical = 0x8000000000000000ULL | program_entry(Program::vmmcall);
    add("iretq_gp_noncanonical", Program::iret, [iret_frame](Vector& v) {
        iret_frame(v);
        v.regs[3] = kNonCanonical;
    });
    add("iretq_gp_noncanonical_intercepted", Program::iret, [iret_frame](Vector& v) {
        iret_frame(v);
        v.regs[3] = kNonCanonical;
        v.vmcb.set_intercept(ic::exception(13));
    });
    add("iretq_gp_cs_null", Program::iret, [iret_frame](Vector& v) {
        iret_frame(v);
        v.regs[7] = 0;
        v.vmcb.set_intercept(ic::exception(13));
    });
    add("iretq_gp_cs_data", Program::iret, [iret_frame](Vector& v) {
        iret_frame(v);
        v.regs[7] = NSVM_OR_L2_DS;
        v.vmcb.set_intercept(ic::exception(13));
    });
    // IRETD in 32-bit protected mode (no paging): 48 CF is "dec eax; iretd"
    // there, which pops EIP, CS and EFLAGS and leaves SS:ESP (a return at
    // the same privilege level).
    const auto iretd = [iret_frame](bool intercepted) {
        return [iret_frame, intercepted](Vector& v) {
            v.program = Program::iret;
            v.vmcb.set(FieldId::rip, program_entry(Program::iret));
            iret_frame(v);
            v.regs[7] = NSVM_OR_L2_CS32;
            v.vmcb.set(FieldId::rax, 0x1234);
            if (intercepted) v.vmcb.set_intercept(ic::IRET);
        };
    };
    ms.push_back(Mutation{"", "iretd_intercepted", BaseMode::prot32, iretd(true)});
    ms.push_back(Mutation{"", "iretd", BaseMode::prot32, iretd(false)});
    // Single step (APM 13.1.4): RFLAGS.TF traps #DB after the first
    // instruction retires, DR6.BS set; an intercepted instruction has not
    // retired (no #DB).
    add("nop_tf", Program::nop, [](Vector& v) { set_bits(v, FieldId::rflags, arch::rflags::TF); });
    add("nop_tf_db_intercepted", Program::nop, [](Vector& v) {
        set_bits(v, FieldId::rflags, arch::rflags::TF);
        v.vmcb.set_intercept(ic::exception(1));
    });
    add("cpuid_tf_intercepted", Program::cpuid, [](Vector& v) {
        set_bits(v, FieldId::rflags, arch::rflags::TF);
        v.vmcb.set_intercept(ic::CPUID);
    });
    // STI's shadow holds interrupts, not the single-step trap.
    add("sti_tf", Program::sti, [](Vector& v) { set_bits(v, FieldId::rflags, arch::rflags::TF); });
    // #DF by exception delivery (APM 8.2.9): a non-canonical load is #GP(0)
    // (APM 4.12.3); with L2's IDT limit holding only gates 0-9, #GP's gate is
    // beyond it, a second #GP during delivery, hence #DF through gate 8 or
    // its intercept.
    const auto double_fault = [](Vector& v) {
        v.regs[3] = 0x8000000000000000ULL;
        auto idtr = v.vmcb.segment(Seg::idtr);
        idtr.limit = 10 * 16 - 1;
        v.vmcb.set_segment(Seg::idtr, idtr);
    };
    add("load_df", Program::load, double_fault);
    add("load_df_intercepted", Program::load, [double_fault](Vector& v) {
        double_fault(v);
        v.vmcb.set_intercept(ic::exception(8));
    });
    return ms;
}

/// Fields VMRUN loads and #VMEXIT writes back, beyond the consistency
/// checks: the value the VMCB holds after the exit is what the processor
/// made of it (APM 15.5.1 loads and canonicalizes, 15.6 saves).
std::vector<Mutation> load_mutations() {
    std::vector<Mutation> ms;
    auto add = [&](std::string name, Program p, std::function<void(Vector&)> f) {
        ms.push_back(Mutation{"", std::move(name), BaseMode::long64, [p, f = std::move(f)](Vector& v) {
                                  v.program = p;
                                  v.vmcb.set(FieldId::rip, program_entry(p));
                                  f(v);
                              }});
    };
    // Segment bases at the canonical boundary (APM 15.5.1: VMRUN
    // canonicalizes the bases it loads): the highest and lowest canonical
    // 48-bit addresses, bit 47 alone (canonical only with 57-bit addresses)
    // and bit 56 alone (canonical in neither). FS and GS are VMLOAD's
    // (15.5.2): VMRUN and #VMEXIT must leave them as they are. In 64-bit code
    // none of these bases is used by the L2 program (APM 4.5.3).
    constexpr std::array<std::pair<std::string_view, std::uint64_t>, 4> kBases = {{
        {"canon_max48", 0x00007FFFFFFFFFFFULL},
        {"canon_min48", 0xFFFF800000000000ULL},
        {"bit47", 0x0000800000000000ULL},
        {"bit56", 0x0100000000000000ULL},
    }};
    for (const arch::Seg sg : {arch::Seg::es, arch::Seg::cs, arch::Seg::ss, arch::Seg::ds, arch::Seg::fs,
                               arch::Seg::gs}) {
        for (const auto& entry : kBases) {
            // A named copy: clang 14 cannot capture a structured binding.
            const std::uint64_t base = entry.second;
            add(fmt::format("{}_base_{}", arch::kSegNames[static_cast<std::size_t>(sg)], entry.first),
                Program::vmmcall, [sg, base](Vector& v) {
                    auto seg = v.vmcb.segment(sg);
                    seg.base = base;
                    v.vmcb.set_segment(sg, seg);
                });
        }
    }
    // CR0.ET is read-only 1 on processors since the 486 (APM 3.1.1): VMRUN
    // of a CR0 with ET clear runs the guest with ET = 1, and #VMEXIT saves that.
    add("cr0_et_clear", Program::vmmcall, [](Vector& v) { set_bits(v, FieldId::cr0, 0, arch::cr0::ET); });
    // An exception delivered through L2's IDT reloads CS from the gate's
    // selector (APM 8.9.3): the CS #VMEXIT saves is the GDT's descriptor, not
    // the one VMRUN loaded (here a zero limit and a base L2 never uses).
    add("ud2_cs_reloaded", Program::ud2, [](Vector& v) {
        auto cs = v.vmcb.segment(arch::Seg::cs);
        cs.limit = 0;
        cs.base = 0xFFFF800000000000ULL;
        v.vmcb.set_segment(arch::Seg::cs, cs);
    });
    return ms;
}

/// The virtual interrupt at its boundaries (APM 15.21.4): V_IRQ is taken
/// before L2's first instruction when V_INTR_PRIO > V_TPR (or V_IGN_TPR),
/// RFLAGS.IF = 1 and no interrupt shadow; it goes through L2's IDT at
/// V_INTR_VECTOR, or exits with VINTR when intercepted. The program is an
/// intercepted CPUID, so a V_IRQ not taken shows as #VMEXIT(CPUID) with V_IRQ
/// still set, and one taken as the stub's VMMCALL with the vector in EAX.
std::vector<Mutation> interrupt_mutations() {
    namespace ictl = arch::int_ctl;
    std::vector<Mutation> ms;
    auto add = [&](std::string name, std::uint64_t int_ctl, std::function<void(Vector&)> f) {
        ms.push_back(Mutation{"", std::move(name), BaseMode::long64, [int_ctl, f = std::move(f)](Vector& v) {
                                  v.program = Program::cpuid;
                                  v.vmcb.set(FieldId::rip, program_entry(Program::cpuid));
                                  v.vmcb.set_intercept(ic::CPUID);
                                  v.vmcb.set(FieldId::int_ctl, v.vmcb.get(FieldId::int_ctl) | int_ctl);
                                  v.vmcb.set(FieldId::int_vector, 0x41);
                                  set_bits(v, FieldId::rflags, arch::rflags::IF);
                                  if (f) f(v);
                              }});
    };
    const auto prio = [](std::uint64_t p) { return (p << 16) & ictl::V_INTR_PRIO; };
    add("virq_ign_tpr", ictl::V_IRQ | ictl::V_IGN_TPR | 0xF, {});
    add("virq_if0", ictl::V_IRQ | ictl::V_IGN_TPR, [](Vector& v) { set_bits(v, FieldId::rflags, 0, arch::rflags::IF); });
    add("virq_prio_eq_tpr", ictl::V_IRQ | prio(5) | 5, {});
    add("virq_prio_above_tpr", ictl::V_IRQ | prio(6) | 5, {});
    add("virq_shadow", ictl::V_IRQ | ictl::V_IGN_TPR,
        [](Vector& v) { v.vmcb.set(FieldId::int_state, arch::int_state::INTERRUPT_SHADOW); });
    add("virq_vintr", ictl::V_IRQ | ictl::V_IGN_TPR, [](Vector& v) { v.vmcb.set_intercept(ic::VINTR); });
    return ms;
}

/// L2's own page tables and the nested tables, patched for one vector
/// (docs/oracle.md "Paging patches"): a fault at each level of each L2
/// paging mode the image sets up, in the paging window (layout.h
/// NSVM_OR_WINDOW_PA). Long mode and PAE share PD0, whose entry 511 maps the
/// window's upper 2 MiB; a 4 KiB table for it goes in the first spare page.
/// Legacy mode's PD entry 255 maps the whole window; its 4 KiB table goes in
/// the second spare page. The nested tables map the spare pages through
/// their PD entry 3 and the window through entries 510-511.
std::vector<Mutation> paging_mutations() {
    constexpr std::uint64_t kAddr = NSVM_OR_WINDOW_PA + 0x200000;  // 0x3FE00000
    constexpr std::uint64_t kPde = NSVM_OR_PML4_PA + 0x2000 + 8 * 511;
    constexpr std::uint64_t kPt = NSVM_OR_SPARE_PT_PA;
    constexpr std::uint64_t kPte = kPt + 8 * ((kAddr >> 12) & 0x1FF);
    constexpr std::uint64_t kPde32 = NSVM_OR_PD32_PA + 4 * (kAddr >> 22);
    constexpr std::uint64_t kPt32 = NSVM_OR_SPARE_PT_PA + 0x1000;
    constexpr std::uint64_t kPte32 = kPt32 + 4 * ((kAddr >> 12) & 0x3FF);
    constexpr std::uint64_t kNptSpare = NSVM_OR_NPT_PML4_PA + 0x2000 + 8 * (NSVM_OR_SPARE_PT_PA >> 21);
    constexpr std::uint64_t kNptWindow = NSVM_OR_NPT_PML4_PA + 0x2000 + 8 * (kAddr >> 21);
    constexpr std::uint64_t P = 1, RW = 2, US = 4, PS = 0x80;
    std::vector<Mutation> ms;
    // `pf`: intercept #PF (exit 0x4E with the error code and the address);
    // otherwise L2's IDT delivers it to the image's stub (exit VMMCALL, rax 14).
    auto add = [&](std::string name, BaseMode mode, Program p, bool pf, std::vector<TablePatch> patches,
                   std::function<void(Vector&)> f = {}) {
        ms.push_back(Mutation{"", std::move(name), mode,
                              [p, pf, patches = std::move(patches), f = std::move(f)](Vector& v) {
                                  v.program = p;
                                  v.vmcb.set(FieldId::rip, program_entry(p));
                                  v.regs[3] = kAddr;
                                  v.paging = patches;
                                  if (pf) v.vmcb.set_intercept(ic::exception(14));
                                  if (f) f(v);
                              }});
    };
    const auto wp = [](Vector& v) { set_bits(v, FieldId::cr0, cr0::WP); };
    const auto np = [](Vector& v) { enable_np(v); };
    for (BaseMode m : {BaseMode::long64, BaseMode::pae32}) {
        const std::string n(m == BaseMode::long64 ? "long" : "pae");
        // A not-present PDE (APM 5.4.1: #PF, P = 0).
        add(n + "_pde_np", m, Program::load, true, {{kPde, 0, 8}});
        add(n + "_pde_np_idt", m, Program::load, false, {{kPde, 0, 8}});
        // A 4 KiB table with a not-present PTE.
        add(n + "_pte_np", m, Program::load, true, {{kPde, kPt | P | RW | US, 8}});
        add(n + "_pte_np_idt", m, Program::load, false, {{kPde, kPt | P | RW | US, 8}});
        // A read-only page written at CPL 0 with CR0.WP = 1 (APM 5.6.4: P|W),
        // and the same store with CR0.WP = 0, which supervisor code may make.
        add(n + "_pte_ro_store", m, Program::store, true, {{kPde, kPt | P | RW | US, 8}, {kPte, kAddr | P | US, 8}},
            wp);
        add(n + "_pte_ro_store_wp0", m, Program::store, true,
            {{kPde, kPt | P | RW | US, 8}, {kPte, kAddr | P | US, 8}},
            [](Vector& v) { set_bits(v, FieldId::cr0, 0, cr0::WP); });
        // Reserved bits (APM 5.3.1/5.4.1: #PF with RSV): PTE bit 63 with
        // EFER.NXE = 0, and bit 13 of a 2 MiB PDE (below the page's address).
        add(n + "_pte_rsv_nx", m, Program::load, true,
            {{kPde, kPt | P | RW | US, 8}, {kPte, kAddr | P | RW | US | (std::uint64_t{1} << 63), 8}});
        add(n + "_pde_rsv_bit13", m, Program::load, true, {{kPde, kAddr | P | RW | US | PS | (1U << 13), 8}});
        // Nested paging: the nested entry of L2's page-table page (EXITINFO1
        // bit 33) vs of the final page (bit 32), APM 15.25.6.
        add(n + "_npt_table", m, Program::load, true,
            {{kPde, kPt | P | RW | US, 8}, {kPte, kAddr | P | RW | US, 8}, {kNptSpare, 0, 8}}, np);
        add(n + "_npt_final", m, Program::load, true,
            {{kPde, kPt | P | RW | US, 8}, {kPte, kAddr | P | RW | US, 8}, {kNptWindow, 0, 8}}, np);
    }
    // Instruction fetches (jmp rbx to the window; isolation.cpp wants rAX in
    // the scratch page). APM 8.4.2: the #PF error code of a fetch has I/D
    // (bit 4) where no-execute (EFER.NXE with CR4.PAE) or SMEP is enabled.
    constexpr std::uint64_t NX = std::uint64_t{1} << 63;
    const auto fetch = [](std::function<void(Vector&)> more) {
        return [more = std::move(more)](Vector& v) {
            v.vmcb.set(FieldId::rax, NSVM_OR_L2_SCRATCH_PA);
            if (more) more(v);
        };
    };
    const auto nxe = [](Vector& v) { set_bits(v, FieldId::efer, efer::NXE); };
    const auto smep = [](Vector& v) {
        set_bits(v, FieldId::efer, efer::NXE);
        set_bits(v, FieldId::cr4, cr4::SMEP);
    };
    const std::vector<TablePatch> user_pte = {{kPde, kPt | P | RW | US, 8}, {kPte, kAddr | P | RW | US, 8}};
    const std::vector<TablePatch> nx_pte = {{kPde, kPt | P | RW | US, 8}, {kPte, kAddr | P | RW | US | NX, 8}};
    // The window's 2 MiB nested page, no-execute: the host's EFER.NXE (the
    // image sets it, main.c) makes bit 63 NX in the nested tables (15.25.5).
    const std::vector<TablePatch> nested_nx = {{kNptWindow, kAddr | P | RW | US | PS | NX, 8}};
    for (BaseMode m : {BaseMode::long64, BaseMode::pae32}) {
        const std::string n(m == BaseMode::long64 ? "long" : "pae");
        // NX with EFER.NXE (APM 5.6.3): P | I/D; through L2's IDT as well
        // (CR2 = the target, the frame's RIP the jump's target).
        add(n + "_fetch_nx", m, Program::jmp, true, nx_pte, fetch(nxe));
        add(n + "_fetch_nx_idt", m, Program::jmp, false, nx_pte, fetch(nxe));
        // The same entry with EFER.NXE = 0: bit 63 is reserved (5.3.1),
        // P | RSV, and I/D is undefined without no-execute: clear.
        add(n + "_fetch_nx_nxe0", m, Program::jmp, true, nx_pte, fetch({}));
        // SMEP (5.6.6): a supervisor fetch from a page with U/S = 1 at every
        // level (the image's upper entries all have it): P | I/D.
        add(n + "_fetch_smep", m, Program::jmp, true, user_pte, fetch(smep));
        // #NPF on the fetch (15.25.6): P | US (nested accesses are user
        // accesses) | ID | bit 32, the final guest-physical address.
        add(n + "_npt_fetch_nx", m, Program::jmp, true, nested_nx, fetch(np));
    }
    // SMEP sets I/D without EFER.NXE too (APM 8.4.2 defines I/D for SMEP).
    add("long_fetch_smep_nxe0", BaseMode::long64, Program::jmp, true, user_pte, fetch([](Vector& v) {
            set_bits(v, FieldId::cr4, cr4::SMEP);
        }));
    // PAE PDPTE 3 (L2 addresses 3-4 GiB, which nothing else uses) present
    // with a reserved bit (APM 5.3.3: bits 2:1, 8:5 and 63:MAXPHYADDR), read
    // by a load from 3 GiB. Without nested paging VMRUN loads the four PDPTEs
    // and a reserved bit fails it (15.5.1, the catalogue's pdpe.reserved,
    // under the profiles that read them; KVM's nested_svm_load_cr3); QEMU
    // does not read them at VMRUN (profile pdpe_check = no), its walk then
    // faults at the first use. With nested paging VMRUN loads none: the walk
    // reads the PDPTE through the nested tables and the load is #PF(P|RSV).
    constexpr std::uint64_t kPdpte3 = NSVM_OR_PAE_PDPT_PA + 8 * 3;
    constexpr std::uint64_t kHigh = std::uint64_t{3} << 30;
    const auto high = [](std::function<void(Vector&)> more) {
        return [more = std::move(more)](Vector& v) {
            v.regs[3] = kHigh;
            if (more) more(v);
        };
    };
    for (const auto& [bit_name, bit_value] : {std::pair<const char*, std::uint64_t>{"bit63", NX}, {"bit1", RW}}) {
        const std::vector<TablePatch> pdpte = {{kPdpte3, kPt | P | bit_value, 8}};
        add(std::string("pae_pdpte_rsv_") + bit_name, BaseMode::pae32, Program::load, true, pdpte, high({}));
        add(std::string("pae_pdpte_rsv_") + bit_name + "_np", BaseMode::pae32, Program::load, true, pdpte, high(np));
    }
    // CPL 3 (64-bit L2 only, isolation.cpp): a user access to a supervisor
    // page (APM 5.6.1: P|U, read; |I/D for a fetch with NXE) and a user store
    // to a read-only page (P|W|U, whatever CR0.WP). CS and SS carry DPL 3;
    // the image's identity pages (and so the program and its stack) are user
    // pages.
    const auto cpl3 = [](std::function<void(Vector&)> more) {
        return [more = std::move(more)](Vector& v) {
            v.vmcb.set(FieldId::cpl, 3);
            auto cs = v.vmcb.segment(arch::Seg::cs);
            cs.selector |= 3;
            cs.attrib |= 3 << 5;
            v.vmcb.set_segment(arch::Seg::cs, cs);
            auto ss = v.vmcb.segment(arch::Seg::ss);
            ss.selector |= 3;
            ss.attrib |= 3 << 5;
            v.vmcb.set_segment(arch::Seg::ss, ss);
            if (more) more(v);
        };
    };
    const std::vector<TablePatch> supervisor_pte = {{kPde, kPt | P | RW | US, 8}, {kPte, kAddr | P | RW, 8}};
    add("long_cpl3_pte_supervisor", BaseMode::long64, Program::load, true, supervisor_pte, cpl3({}));
    add("long_cpl3_pte_ro_store", BaseMode::long64, Program::store, true,
        {{kPde, kPt | P | RW | US, 8}, {kPte, kAddr | P | US, 8}}, cpl3({}));
    add("long_cpl3_fetch_supervisor", BaseMode::long64, Program::jmp, true, supervisor_pte, cpl3(fetch(nxe)));
    // SMAP (APM 5.6.5): a supervisor data access to a user page with
    // RFLAGS.AC = 0 faults (P, read).
    add("long_pte_user_smap", BaseMode::long64, Program::load, true,
        {{kPde, kPt | P | RW | US, 8}, {kPte, kAddr | P | RW | US, 8}},
        [](Vector& v) { set_bits(v, FieldId::cr4, cr4::SMAP); });
    // Legacy 2-level paging: PD entry 255 (4 MiB) and a table in spare page 1.
    add("legacy_pde_np", BaseMode::legacy32, Program::load, true, {{kPde32, 0, 4}});
    add("legacy_pde_np_idt", BaseMode::legacy32, Program::load, false, {{kPde32, 0, 4}});
    add("legacy_pte_np", BaseMode::legacy32, Program::load, true, {{kPde32, kPt32 | P | RW | US, 4}});
    add("legacy_pte_ro_store", BaseMode::legacy32, Program::store, true,
        {{kPde32, kPt32 | P | RW | US, 4}, {kPte32, kAddr | P | US, 4}}, wp);
    // A 4 MiB PDE with bit 21 set: reserved beyond PSE-40's address bits.
    add("legacy_pde_rsv_bit21", BaseMode::legacy32, Program::load, true,
        {{kPde32, NSVM_OR_WINDOW_PA | P | RW | US | PS | (1U << 21), 4}});
    add("legacy_npt_table", BaseMode::legacy32, Program::load, true,
        {{kPde32, kPt32 | P | RW | US, 4}, {kPte32, kAddr | P | RW | US, 4}, {kNptSpare, 0, 8}}, np);
    add("legacy_npt_final", BaseMode::legacy32, Program::load, true,
        {{kPde32, kPt32 | P | RW | US, 4}, {kPte32, kAddr | P | RW | US, 4}, {kNptWindow, 0, 8}}, np);
    // Legacy 2-level paging has no NX bit: a fetch through a not-present PDE
    // is error code 0 even with EFER.NXE = 1 (APM 8.4.2: I/D needs
    // EFER.NXE && CR4.PAE), I/D with SMEP; and the nested NX of the fetch.
    add("legacy_fetch_np_nxe", BaseMode::legacy32, Program::jmp, true, {{kPde32, 0, 4}}, fetch(nxe));
    add("legacy_fetch_smep", BaseMode::legacy32, Program::jmp, true,
        {{kPde32, kPt32 | P | RW | US, 4}, {kPte32, kAddr | P | RW | US, 4}}, fetch([](Vector& v) {
            set_bits(v, FieldId::cr4, cr4::SMEP);
        }));
    add("legacy_npt_fetch_nx", BaseMode::legacy32, Program::jmp, true, nested_nx, fetch(np));
    return ms;
}

std::string_view mode_name(BaseMode m) {
    switch (m) {
        case BaseMode::long64: return "long64";
        case BaseMode::prot32: return "prot32";
        case BaseMode::pae32: return "pae32";
        case BaseMode::legacy32: return "legacy32";
    }
    return "?";
}

/// Labels a vector with the catalogue's verdict under the chosen model.
void annotate(Vector& v, const checks::CpuModel& cpu, const checks::Profile& prof, std::string_view what) {
    const auto host = image_host_state(v);
    const checks::Context ctx{v.vmcb, cpu, prof, &host, nullptr};
    const auto r = checks::evaluate(ctx);
    std::string failing;
    for (const auto& f : r.failures) {
        failing += failing.empty() ? "" : ",";
        failing += f.check->id;
    }
    v.note = fmt::format("{}; {}/{}: {}", what, cpu.name, prof.name,
                         r.verdict == checks::Verdict::valid ? std::string("passes")
                                                             : fmt::format("fails ({})", failing));
}

/// splitmix64: a fixed, portable generator (std distributions are not).
struct Rng {
    std::uint64_t s;
    std::uint64_t next() {
        std::uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    std::size_t below(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(next() % n); }
};


/// The boundary set in order, each vector of this shard handed to `sink`
/// as soon as it is made (boundary vector b belongs to shard b mod n).
void each_boundary(const GenOptions& o, const std::function<void(Vector&&)>& emit) {
    const checks::Profile& prof = o.profile ? *o.profile : checks::profile(checks::ProfileId::apm);
    const std::size_t n = std::max<std::size_t>(1, o.shard_count);
    std::size_t made = 0;
    const auto sink = [&](Vector&& v) {
        if (made++ % n == o.shard_index) emit(std::move(v));
    };
    const auto bm = boundary_mutations(o.cpu, prof);
    const auto pm = program_mutations();
    if (o.boundary) {
        for (BaseMode m : {BaseMode::long64, BaseMode::prot32, BaseMode::pae32, BaseMode::legacy32}) {
            Vector v = base_vector(m);
            v.id = fmt::format("base/{}", mode_name(m));
            annotate(v, o.cpu, prof, fmt::format("valid {} base", mode_name(m)));
            sink(std::move(v));
        }
        // The groups that test no consistency check: "<prefix>/<name>" each.
        const auto emit_group = [&](const std::vector<Mutation>& group, std::string_view prefix, auto describe) {
            for (const auto& m : group) {
                Vector v = base_vector(m.base);
                m.apply(v);
                v.id = fmt::format("{}/{}", prefix, m.name);
                annotate(v, o.cpu, prof, describe(v, m));
                sink(std::move(v));
            }
        };
        emit_group(pm, "prog", [](const Vector& v, const Mutation&) {
            return fmt::format("program {}", program_name(v.program));
        });
        emit_group(load_mutations(), "load", [](const Vector&, const Mutation& m) {
            return fmt::format("VMRUN loads, #VMEXIT saves: {}", m.name);
        });
        emit_group(interrupt_mutations(), "irq", [](const Vector&, const Mutation& m) {
            return fmt::format("virtual interrupt: {}", m.name);
        });
        emit_group(paging_mutations(), "pg", [](const Vector&, const Mutation& m) {
            return fmt::format("L2 paging: {}", m.name);
        });
        for (const auto& m : bm) {
            Vector v = base_vector(m.base);
            m.apply(v);
            v.id = fmt::format("b/{}/{}", m.check, m.name);
            v.checks = {m.check};
            annotate(v, o.cpu, prof, fmt::format("{} boundary: {}", m.check, m.name));
            sink(std::move(v));
        }
    }
    if (o.boundary && o.pairs) {
        // Pairs of violations of different checks: the first failing variant of
        // each check on the long-mode base (that fails under this profile).
        std::vector<const Mutation*> firsts;
        std::set<std::string> seen;
        for (const auto& m : bm) {
            if (m.base != BaseMode::long64 || seen.count(m.check) || m.check.rfind("gate.", 0) == 0) continue;
            Vector v = base_vector(m.base);
            m.apply(v);
            const auto host = image_host_state(v);
            const checks::Context ctx{v.vmcb, o.cpu, prof, &host, nullptr};
            if (checks::vmrun_would_succeed(ctx)) continue;
            seen.insert(m.check);
            firsts.push_back(&m);
        }
        for (std::size_t a = 0; a < firsts.size(); ++a) {
            for (std::size_t b = a + 1; b < firsts.size(); ++b) {
                Vector v = base_vector(BaseMode::long64);
                firsts[a]->apply(v);
                firsts[b]->apply(v);
                v.id = fmt::format("pair/{}/{}+{}/{}", firsts[a]->check, firsts[a]->name, firsts[b]->check,
                                   firsts[b]->name);
                v.checks = {firsts[a]->check, firsts[b]->check};
                annotate(v, o.cpu, prof, "two violations");
                sink(std::move(v));
            }
        }
    }
}

}  // namespace

std::vector<Vector> generate_boundary(const GenOptions& o) {
    std::vector<Vector> out;
    each_boundary(o, [&out](Vector&& v) { out.push_back(std::move(v)); });
    return out;
}

std::vector<Vector> generate_random(const GenOptions& o, std::uint64_t first, std::uint64_t count) {
    std::vector<Vector> out;
    if (!o.seed) return out;
    const checks::Profile& prof = o.profile ? *o.profile : checks::profile(checks::ProfileId::apm);
    const auto bm = boundary_mutations(o.cpu, prof);
    const auto pm = program_mutations();
    const std::size_t n = std::max<std::size_t>(1, o.shard_count);
    out.reserve(static_cast<std::size_t>(count / n + 1));  // a Vector holds 4 KiB: no regrowth copies
    for (std::uint64_t k = first; k < first + count; ++k) {
        if (k % n != o.shard_index) continue;
        // Vector k depends only on (seed, k): shards and chunks of a campaign
        // generate exactly their own vectors, and any one can be regenerated.
        Rng rng{*o.seed ^ (k * 0xD1B54A32D192ED03ULL)};
        // A program vector (coverage of exits) with 0-3 boundary mutations on
        // the same base.
        const auto& p = pm[rng.below(pm.size())];
        Vector v = base_vector(p.base);
        p.apply(v);
        const std::size_t nmut = rng.below(4);
        std::vector<std::string> names;
        for (std::size_t i = 0; i < nmut; ++i) {
            const auto& m = bm[rng.below(bm.size())];
            if (m.base != p.base) continue;
            m.apply(v);
            if (std::find(v.checks.begin(), v.checks.end(), m.check) == v.checks.end()) v.checks.push_back(m.check);
            names.push_back(m.check + "/" + m.name);
        }
        v.id = fmt::format("r/{}/{}", *o.seed, k);
        annotate(v, o.cpu, prof,
                 fmt::format("random: {}{}{}", p.name, names.empty() ? "" : " + ", fmt::join(names, " + ")));
        out.push_back(std::move(v));
    }
    return out;
}

void generate_each(const GenOptions& o, const std::function<void(const Vector&)>& sink) {
    if (o.boundary) each_boundary(o, [&sink](Vector&& v) { sink(v); });
    if (!o.seed) return;
    // Random vectors in chunks: vector k depends only on (seed, k).
    constexpr std::uint64_t kChunk = 1024;
    for (std::uint64_t first = 0; first < o.count; first += kChunk)
        for (const auto& v : generate_random(o, first, std::min<std::uint64_t>(kChunk, o.count - first))) sink(v);
}

nsvm::expected<std::uint64_t, std::string> parse_unsigned_option(std::string_view option, std::string_view text,
                                                                 std::uint64_t max) {
    // util::parse_u64 takes no sign and refuses overflow: "-1" must not
    // become 2^64 - 1, nor 2^64 become 0.
    const auto v = util::parse_u64(text);
    if (!v) return nsvm::unexpected(fmt::format("{} \"{}\": expected an unsigned integer (decimal or 0x hex) "
                                                "up to {}", option, text, max));
    if (*v > max) return nsvm::unexpected(fmt::format("{} {}: at most {}", option, text, max));
    return *v;
}

std::vector<Vector> generate(const GenOptions& o) {
    auto out = o.boundary ? generate_boundary(o) : std::vector<Vector>{};
    if (o.seed && o.count > 0) {
        auto r = generate_random(o, 0, o.count);
        out.insert(out.end(), std::make_move_iterator(r.begin()), std::make_move_iterator(r.end()));
    }
    return out;
}

nsvm::expected<std::pair<std::size_t, std::size_t>, std::string> parse_shard(std::string_view s) {
    const auto slash = s.find('/');
    if (slash == std::string_view::npos) return nsvm::unexpected(fmt::format("--shard \"{}\": expected i/n", s));
    const auto i = util::parse_u64(s.substr(0, slash));
    const auto n = util::parse_u64(s.substr(slash + 1));
    if (!i || !n || *n == 0 || *i >= *n)
        return nsvm::unexpected(fmt::format("--shard \"{}\": expected i/n with 0 <= i < n", s));
    return std::pair{static_cast<std::size_t>(*i), static_cast<std::size_t>(*n)};
}

std::vector<Vector> shard(std::vector<Vector> all, std::size_t index, std::size_t count) {
    if (count <= 1) return all;
    std::vector<Vector> out;
    for (std::size_t k = 0; k < all.size(); ++k)
        if (k % count == index) out.push_back(std::move(all[k]));
    return out;
}

}  // namespace nsvm::oracle
