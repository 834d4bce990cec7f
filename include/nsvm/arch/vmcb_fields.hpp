// The VMCB field table: every field of APM Vol.2 Appendix B (rev 3.44),
// Tables B-1 (control area, 000h-3FFh) and B-2 (state save area, 400h+),
// named after Linux's struct vmcb_control_area / vmcb_save_area.
//
// One X-macro list generates both the FieldId enum and the constexpr table,
// so they cannot drift apart; vmcb_layout_asserts.hpp pins each offset.
#pragma once

#include "nsvm/util/cxx_standard.hpp"  // a clear #error below C++20

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace nsvm::arch {

enum class Area : std::uint8_t { control, save };
/// integer: 1..8 bytes, read as one little-endian number.
/// bytes: a wider opaque run (instruction bytes, LBR stack, IRR bitmap).
enum class FieldKind : std::uint8_t { integer, bytes };

// X(ident, "json name", absolute offset, width in bytes, kind)
// Save-area names carry the "save." prefix, control-area names "control.".
#define NSVM_VMCB_SEGMENT_FIELDS(X, seg, base)                                     \
    X(seg##_selector, "save." #seg ".selector", (base) + 0x0, 2, integer)          \
    X(seg##_attrib, "save." #seg ".attrib", (base) + 0x2, 2, integer)              \
    X(seg##_limit, "save." #seg ".limit", (base) + 0x4, 4, integer)                \
    X(seg##_base, "save." #seg ".base", (base) + 0x8, 8, integer)

#define NSVM_VMCB_FIELDS(X)                                                        \
    /* --- Control area, Table B-1 --- */                                          \
    X(intercepts0, "control.intercepts[0]", 0x000, 4, integer) /* CR rd/wr */      \
    X(intercepts1, "control.intercepts[1]", 0x004, 4, integer) /* DR rd/wr */      \
    X(intercepts2, "control.intercepts[2]", 0x008, 4, integer) /* exceptions */    \
    X(intercepts3, "control.intercepts[3]", 0x00C, 4, integer)                     \
    X(intercepts4, "control.intercepts[4]", 0x010, 4, integer)                     \
    X(intercepts5, "control.intercepts[5]", 0x014, 4, integer)                     \
    X(pause_filter_thresh, "control.pause_filter_thresh", 0x03C, 2, integer)       \
    X(pause_filter_count, "control.pause_filter_count", 0x03E, 2, integer)         \
    X(iopm_base_pa, "control.iopm_base_pa", 0x040, 8, integer)                     \
    X(msrpm_base_pa, "control.msrpm_base_pa", 0x048, 8, integer)                   \
    X(tsc_offset, "control.tsc_offset", 0x050, 8, integer)                         \
    X(asid, "control.asid", 0x058, 4, integer)                                     \
    X(tlb_ctl, "control.tlb_ctl", 0x05C, 1, integer)                               \
    X(erap_ctl, "control.erap_ctl", 0x05D, 1, integer)                             \
    X(int_ctl, "control.int_ctl", 0x060, 4, integer)                               \
    X(int_vector, "control.int_vector", 0x064, 4, integer)                         \
    X(int_state, "control.int_state", 0x068, 4, integer)                           \
    X(exit_code, "control.exit_code", 0x070, 8, integer)                           \
    X(exit_info_1, "control.exit_info_1", 0x078, 8, integer)                       \
    X(exit_info_2, "control.exit_info_2", 0x080, 8, integer)                       \
    X(exit_int_info, "control.exit_int_info", 0x088, 4, integer)                   \
    X(exit_int_info_err, "control.exit_int_info_err", 0x08C, 4, integer)           \
    X(misc_ctl, "control.misc_ctl", 0x090, 8, integer) /* old: nested_ctl */       \
    X(avic_vapic_bar, "control.avic_vapic_bar", 0x098, 8, integer)                 \
    X(ghcb_gpa, "control.ghcb_gpa", 0x0A0, 8, integer)                             \
    X(event_inj, "control.event_inj", 0x0A8, 4, integer)                           \
    X(event_inj_err, "control.event_inj_err", 0x0AC, 4, integer)                   \
    X(nested_cr3, "control.nested_cr3", 0x0B0, 8, integer)                         \
    X(misc_ctl2, "control.misc_ctl2", 0x0B8, 8, integer) /* old: virt_ext */       \
    X(clean, "control.clean", 0x0C0, 4, integer)                                   \
    X(next_rip, "control.next_rip", 0x0C8, 8, integer)                             \
    X(insn_len, "control.insn_len", 0x0D0, 1, integer)                             \
    X(insn_bytes, "control.insn_bytes", 0x0D1, 15, bytes)                          \
    X(avic_backing_page, "control.avic_backing_page", 0x0E0, 8, integer)           \
    X(avic_logical_id, "control.avic_logical_id", 0x0F0, 8, integer)               \
    X(avic_physical_id, "control.avic_physical_id", 0x0F8, 8, integer)             \
    X(vmsa_pa, "control.vmsa_pa", 0x108, 8, integer)                               \
    X(vmgexit_rax, "control.vmgexit_rax", 0x110, 8, integer)                       \
    X(vmgexit_cpl, "control.vmgexit_cpl", 0x118, 1, integer)                       \
    X(bus_lock_counter, "control.bus_lock_counter", 0x120, 2, integer)             \
    X(update_irr, "control.update_irr", 0x134, 4, integer)                         \
    X(allowed_sev_features, "control.allowed_sev_features", 0x138, 8, integer)     \
    X(guest_sev_features, "control.guest_sev_features", 0x140, 8, integer)         \
    X(requested_irr, "control.requested_irr", 0x150, 32, bytes)                    \
    X(reserved_sw, "control.reserved_sw", 0x3E0, 32, bytes)                        \
    /* --- State save area, Table B-2 (VMCB + 400h) --- */                         \
    NSVM_VMCB_SEGMENT_FIELDS(X, es, 0x400)                                         \
    NSVM_VMCB_SEGMENT_FIELDS(X, cs, 0x410)                                         \
    NSVM_VMCB_SEGMENT_FIELDS(X, ss, 0x420)                                         \
    NSVM_VMCB_SEGMENT_FIELDS(X, ds, 0x430)                                         \
    NSVM_VMCB_SEGMENT_FIELDS(X, fs, 0x440)                                         \
    NSVM_VMCB_SEGMENT_FIELDS(X, gs, 0x450)                                         \
    NSVM_VMCB_SEGMENT_FIELDS(X, gdtr, 0x460)                                       \
    NSVM_VMCB_SEGMENT_FIELDS(X, ldtr, 0x470)                                       \
    NSVM_VMCB_SEGMENT_FIELDS(X, idtr, 0x480)                                       \
    NSVM_VMCB_SEGMENT_FIELDS(X, tr, 0x490)                                         \
    X(vmpl, "save.vmpl", 0x4CA, 1, integer)                                        \
    X(cpl, "save.cpl", 0x4CB, 1, integer)                                          \
    X(efer, "save.efer", 0x4D0, 8, integer)                                        \
    X(perf_ctl0, "save.perf_ctl0", 0x4E0, 8, integer)                              \
    X(perf_ctr0, "save.perf_ctr0", 0x4E8, 8, integer)                              \
    X(perf_ctl1, "save.perf_ctl1", 0x4F0, 8, integer)                              \
    X(perf_ctr1, "save.perf_ctr1", 0x4F8, 8, integer)                              \
    X(perf_ctl2, "save.perf_ctl2", 0x500, 8, integer)                              \
    X(perf_ctr2, "save.perf_ctr2", 0x508, 8, integer)                              \
    X(perf_ctl3, "save.perf_ctl3", 0x510, 8, integer)                              \
    X(perf_ctr3, "save.perf_ctr3", 0x518, 8, integer)                              \
    X(perf_ctl4, "save.perf_ctl4", 0x520, 8, integer)                              \
    X(perf_ctr4, "save.perf_ctr4", 0x528, 8, integer)                              \
    X(perf_ctl5, "save.perf_ctl5", 0x530, 8, integer)                              \
    X(perf_ctr5, "save.perf_ctr5", 0x538, 8, integer)                              \
    X(cr4, "save.cr4", 0x548, 8, integer)                                          \
    X(cr3, "save.cr3", 0x550, 8, integer)                                          \
    X(cr0, "save.cr0", 0x558, 8, integer)                                          \
    X(dr7, "save.dr7", 0x560, 8, integer)                                          \
    X(dr6, "save.dr6", 0x568, 8, integer)                                          \
    X(rflags, "save.rflags", 0x570, 8, integer)                                    \
    X(rip, "save.rip", 0x578, 8, integer)                                          \
    X(instr_retired_ctr, "save.instr_retired_ctr", 0x5C0, 8, integer)              \
    X(perf_ctr_global_sts, "save.perf_ctr_global_sts", 0x5C8, 8, integer)          \
    X(perf_ctr_global_ctl, "save.perf_ctr_global_ctl", 0x5D0, 8, integer)          \
    X(rsp, "save.rsp", 0x5D8, 8, integer)                                          \
    X(s_cet, "save.s_cet", 0x5E0, 8, integer)                                      \
    X(ssp, "save.ssp", 0x5E8, 8, integer)                                          \
    X(isst_addr, "save.isst_addr", 0x5F0, 8, integer)                              \
    X(rax, "save.rax", 0x5F8, 8, integer)                                          \
    X(star, "save.star", 0x600, 8, integer)                                        \
    X(lstar, "save.lstar", 0x608, 8, integer)                                      \
    X(cstar, "save.cstar", 0x610, 8, integer)                                      \
    X(sfmask, "save.sfmask", 0x618, 8, integer)                                    \
    X(kernel_gs_base, "save.kernel_gs_base", 0x620, 8, integer)                    \
    X(sysenter_cs, "save.sysenter_cs", 0x628, 8, integer)                          \
    X(sysenter_esp, "save.sysenter_esp", 0x630, 8, integer)                        \
    X(sysenter_eip, "save.sysenter_eip", 0x638, 8, integer)                        \
    X(cr2, "save.cr2", 0x640, 8, integer)                                          \
    X(g_pat, "save.g_pat", 0x668, 8, integer)                                      \
    X(dbgctl, "save.dbgctl", 0x670, 8, integer)                                    \
    X(br_from, "save.br_from", 0x678, 8, integer)                                  \
    X(br_to, "save.br_to", 0x680, 8, integer)                                      \
    X(last_excp_from, "save.last_excp_from", 0x688, 8, integer)                    \
    X(last_excp_to, "save.last_excp_to", 0x690, 8, integer)                        \
    X(dbgextnctl, "save.dbgextnctl", 0x698, 8, integer)                            \
    X(spec_ctrl, "save.spec_ctrl", 0x6E0, 8, integer)                              \
    X(lbr_stack, "save.lbr_stack", 0xA70, 256, bytes)                              \
    X(lbr_select, "save.lbr_select", 0xB70, 8, integer)                            \
    X(ibs_fetch_ctl, "save.ibs_fetch_ctl", 0xB78, 8, integer)                      \
    X(ibs_fetch_linaddr, "save.ibs_fetch_linaddr", 0xB80, 8, integer)              \
    X(ibs_op_ctl, "save.ibs_op_ctl", 0xB88, 8, integer)                            \
    X(ibs_op_rip, "save.ibs_op_rip", 0xB90, 8, integer)                            \
    X(ibs_op_data, "save.ibs_op_data", 0xB98, 8, integer)                          \
    X(ibs_op_data2, "save.ibs_op_data2", 0xBA0, 8, integer)                        \
    X(ibs_op_data3, "save.ibs_op_data3", 0xBA8, 8, integer)                        \
    X(ibs_dc_linaddr, "save.ibs_dc_linaddr", 0xBB0, 8, integer)                    \
    X(bp_ibstgt_rip, "save.bp_ibstgt_rip", 0xBB8, 8, integer)                      \
    X(ic_ibs_extd_ctl, "save.ic_ibs_extd_ctl", 0xBC0, 8, integer)

enum class FieldId : std::uint16_t {
#define NSVM_X(ident, name, offset, width, kind) ident,
    NSVM_VMCB_FIELDS(NSVM_X)
#undef NSVM_X
};

struct FieldInfo {
    FieldId id;
    std::string_view name;  ///< "control.asid", "save.cs.attrib", ...
    std::uint16_t offset;   ///< absolute byte offset in the 4 KiB page
    std::uint16_t width;    ///< bytes
    FieldKind kind;

    [[nodiscard]] constexpr Area area() const noexcept {
        return offset < 0x400 ? Area::control : Area::save;
    }
    /// The name without the "control." / "save." prefix.
    [[nodiscard]] constexpr std::string_view member() const noexcept {
        return name.substr(name.find('.') + 1);
    }
};

inline constexpr std::array kFields = {
#define NSVM_X(ident, name, offset, width, kind) \
    FieldInfo{FieldId::ident, name, offset, width, FieldKind::kind},
    NSVM_VMCB_FIELDS(NSVM_X)
#undef NSVM_X
};

inline constexpr std::size_t kFieldCount = kFields.size();

[[nodiscard]] constexpr const FieldInfo& info(FieldId id) noexcept {
    return kFields[static_cast<std::size_t>(id)];
}

// Each field's offset and access width (at most 8: the opaque byte runs are
// read through `bytes()`) as plain integer tables, for the accessors on the
// hot path: g++ folds a constant index into these to an immediate, which it
// does not do for `kFields` (an array of structs holding string_views), so
// `vmcb.get(FieldId::cr0)` compiles to one move instead of a table load and a
// switch on the width. Generated from the same X-macro, so they cannot drift.
inline constexpr std::array<std::uint16_t, kFieldCount> kFieldOffsets = {
#define NSVM_X(ident, name, offset, width, kind) static_cast<std::uint16_t>(offset),
    NSVM_VMCB_FIELDS(NSVM_X)
#undef NSVM_X
};
inline constexpr std::array<std::uint8_t, kFieldCount> kFieldAccessWidths = {
#define NSVM_X(ident, name, offset, width, kind) static_cast<std::uint8_t>((width) > 8 ? 8 : (width)),
    NSVM_VMCB_FIELDS(NSVM_X)
#undef NSVM_X
};

/// Old KVM names still accepted everywhere a field is named (docs/formats.md "VMCB as JSON").
struct FieldAlias {
    std::string_view alias;
    FieldId id;
};
inline constexpr std::array kFieldAliases = {
    FieldAlias{"control.nested_ctl", FieldId::misc_ctl},
    FieldAlias{"control.virt_ext", FieldId::misc_ctl2},
    FieldAlias{"control.exitcode", FieldId::exit_code},
    FieldAlias{"control.exit_info1", FieldId::exit_info_1},
    FieldAlias{"control.exit_info2", FieldId::exit_info_2},
    FieldAlias{"control.tlb_control", FieldId::tlb_ctl},
    FieldAlias{"control.vmcb_clean", FieldId::clean},
    FieldAlias{"control.nrip", FieldId::next_rip},
    FieldAlias{"save.gpat", FieldId::g_pat},
    FieldAlias{"save.excp_from", FieldId::last_excp_from},
    FieldAlias{"save.excp_to", FieldId::last_excp_to},
};

/// Looks a field up by its full name ("save.cr0") or an accepted alias.
[[nodiscard]] constexpr std::optional<FieldId> find_field(std::string_view full_name) noexcept {
    for (const auto& f : kFields) {
        if (f.name == full_name) return f.id;
    }
    for (const auto& a : kFieldAliases) {
        if (a.alias == full_name) return a.id;
    }
    return std::nullopt;
}

}  // namespace nsvm::arch
