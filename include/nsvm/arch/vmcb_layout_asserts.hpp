// Build-time pins of the VMCB layout, as Xen does with BUILD_BUG_ON and
// SimpleSvm does with its "+0x..." comments. Each value is APM Vol.2
// Appendix B rev 3.44 (Tables B-1, B-2); a typo in vmcb_fields.hpp fails the
// build here instead of corrupting a VMCB at run time.
#pragma once

#include "nsvm/arch/vmcb.hpp"

namespace nsvm::arch::layout_check {

constexpr bool at(FieldId id, std::uint16_t offset, std::uint16_t width) {
    return info(id).offset == offset && info(id).width == width;
}

// Table B-1, control area.
static_assert(at(FieldId::intercepts0, 0x000, 4));
static_assert(at(FieldId::intercepts1, 0x004, 4));
static_assert(at(FieldId::intercepts2, 0x008, 4));
static_assert(at(FieldId::intercepts3, 0x00C, 4));
static_assert(at(FieldId::intercepts4, 0x010, 4));
static_assert(at(FieldId::intercepts5, 0x014, 4));
static_assert(at(FieldId::pause_filter_thresh, 0x03C, 2));
static_assert(at(FieldId::pause_filter_count, 0x03E, 2));
static_assert(at(FieldId::iopm_base_pa, 0x040, 8));
static_assert(at(FieldId::msrpm_base_pa, 0x048, 8));
static_assert(at(FieldId::tsc_offset, 0x050, 8));
static_assert(at(FieldId::asid, 0x058, 4));
static_assert(at(FieldId::tlb_ctl, 0x05C, 1));
static_assert(at(FieldId::erap_ctl, 0x05D, 1));
static_assert(at(FieldId::int_ctl, 0x060, 4));  // Xen: _vintr at 0x060
static_assert(at(FieldId::int_vector, 0x064, 4));
static_assert(at(FieldId::int_state, 0x068, 4));
static_assert(at(FieldId::exit_code, 0x070, 8));
static_assert(at(FieldId::exit_info_1, 0x078, 8));
static_assert(at(FieldId::exit_info_2, 0x080, 8));
static_assert(at(FieldId::exit_int_info, 0x088, 4));
static_assert(at(FieldId::exit_int_info_err, 0x08C, 4));
static_assert(at(FieldId::misc_ctl, 0x090, 8));
static_assert(at(FieldId::avic_vapic_bar, 0x098, 8));
static_assert(at(FieldId::ghcb_gpa, 0x0A0, 8));
static_assert(at(FieldId::event_inj, 0x0A8, 4));  // Xen: eventinj at 0x0A8
static_assert(at(FieldId::event_inj_err, 0x0AC, 4));
static_assert(at(FieldId::nested_cr3, 0x0B0, 8));
static_assert(at(FieldId::misc_ctl2, 0x0B8, 8));
static_assert(at(FieldId::clean, 0x0C0, 4));
static_assert(at(FieldId::next_rip, 0x0C8, 8));
static_assert(at(FieldId::insn_len, 0x0D0, 1));
static_assert(at(FieldId::insn_bytes, 0x0D1, 15));
static_assert(at(FieldId::avic_backing_page, 0x0E0, 8));
static_assert(at(FieldId::avic_logical_id, 0x0F0, 8));
static_assert(at(FieldId::avic_physical_id, 0x0F8, 8));
static_assert(at(FieldId::vmsa_pa, 0x108, 8));
static_assert(at(FieldId::vmgexit_rax, 0x110, 8));
static_assert(at(FieldId::vmgexit_cpl, 0x118, 1));
static_assert(at(FieldId::bus_lock_counter, 0x120, 2));  // Xen: bus-lock count at 0x120
static_assert(at(FieldId::update_irr, 0x134, 4));
static_assert(at(FieldId::allowed_sev_features, 0x138, 8));
static_assert(at(FieldId::guest_sev_features, 0x140, 8));
static_assert(at(FieldId::requested_irr, 0x150, 32));
static_assert(at(FieldId::reserved_sw, 0x3E0, 32));

// Table B-2, state save area (VMCB + 400h).
static_assert(at(FieldId::es_selector, 0x400, 2) && at(FieldId::es_attrib, 0x402, 2) &&
              at(FieldId::es_limit, 0x404, 4) && at(FieldId::es_base, 0x408, 8));
static_assert(at(FieldId::cs_selector, 0x410, 2) && at(FieldId::cs_attrib, 0x412, 2));
static_assert(at(FieldId::ss_selector, 0x420, 2));
static_assert(at(FieldId::ds_selector, 0x430, 2));
static_assert(at(FieldId::fs_selector, 0x440, 2));
static_assert(at(FieldId::gs_selector, 0x450, 2));
static_assert(at(FieldId::gdtr_selector, 0x460, 2) && at(FieldId::gdtr_limit, 0x464, 4));
static_assert(at(FieldId::ldtr_selector, 0x470, 2));
static_assert(at(FieldId::idtr_selector, 0x480, 2) && at(FieldId::idtr_base, 0x488, 8));
static_assert(at(FieldId::tr_selector, 0x490, 2) && at(FieldId::tr_base, 0x498, 8));
static_assert(at(FieldId::vmpl, 0x4CA, 1));
static_assert(at(FieldId::cpl, 0x4CB, 1));  // Xen: _cpl at 0x4CB
static_assert(at(FieldId::efer, 0x4D0, 8));
static_assert(at(FieldId::perf_ctl0, 0x4E0, 8) && at(FieldId::perf_ctr5, 0x538, 8));
static_assert(at(FieldId::cr4, 0x548, 8));  // Xen: _cr4 at 0x548
static_assert(at(FieldId::cr3, 0x550, 8));
static_assert(at(FieldId::cr0, 0x558, 8));
static_assert(at(FieldId::dr7, 0x560, 8));
static_assert(at(FieldId::dr6, 0x568, 8));
static_assert(at(FieldId::rflags, 0x570, 8));
static_assert(at(FieldId::rip, 0x578, 8));
static_assert(at(FieldId::instr_retired_ctr, 0x5C0, 8));
static_assert(at(FieldId::perf_ctr_global_sts, 0x5C8, 8));
static_assert(at(FieldId::perf_ctr_global_ctl, 0x5D0, 8));
static_assert(at(FieldId::rsp, 0x5D8, 8));  // Xen: rsp at 0x5D8
static_assert(at(FieldId::s_cet, 0x5E0, 8));
static_assert(at(FieldId::ssp, 0x5E8, 8));
static_assert(at(FieldId::isst_addr, 0x5F0, 8));
static_assert(at(FieldId::rax, 0x5F8, 8));  // Xen: rax at 0x5F8
static_assert(at(FieldId::star, 0x600, 8));
static_assert(at(FieldId::lstar, 0x608, 8));
static_assert(at(FieldId::cstar, 0x610, 8));
static_assert(at(FieldId::sfmask, 0x618, 8));
static_assert(at(FieldId::kernel_gs_base, 0x620, 8));
static_assert(at(FieldId::sysenter_cs, 0x628, 8));
static_assert(at(FieldId::sysenter_esp, 0x630, 8));
static_assert(at(FieldId::sysenter_eip, 0x638, 8));
static_assert(at(FieldId::cr2, 0x640, 8));
static_assert(at(FieldId::g_pat, 0x668, 8));  // Xen: _g_pat at 0x668
static_assert(at(FieldId::dbgctl, 0x670, 8));
static_assert(at(FieldId::br_from, 0x678, 8));
static_assert(at(FieldId::br_to, 0x680, 8));
static_assert(at(FieldId::last_excp_from, 0x688, 8));
static_assert(at(FieldId::last_excp_to, 0x690, 8));
static_assert(at(FieldId::dbgextnctl, 0x698, 8));
static_assert(at(FieldId::spec_ctrl, 0x6E0, 8));  // Xen: spec_ctrl at 0x6E0
static_assert(at(FieldId::lbr_stack, 0xA70, 256));
static_assert(at(FieldId::lbr_select, 0xB70, 8));
static_assert(at(FieldId::ibs_fetch_ctl, 0xB78, 8));
static_assert(at(FieldId::ic_ibs_extd_ctl, 0xBC0, 8));

// No two fields overlap and every field lies inside the page.
constexpr bool fields_disjoint_and_inside() {
    for (std::size_t i = 0; i < kFields.size(); ++i) {
        const auto& a = kFields[i];
        if (a.offset + a.width > kVmcbSize) return false;
        if ((a.offset < kControlAreaSize) != (a.offset + a.width <= kControlAreaSize)) return false;
        for (std::size_t j = i + 1; j < kFields.size(); ++j) {
            const auto& b = kFields[j];
            if (a.offset < b.offset + b.width && b.offset < a.offset + a.width) return false;
        }
    }
    return true;
}
static_assert(fields_disjoint_and_inside());

}  // namespace nsvm::arch::layout_check
