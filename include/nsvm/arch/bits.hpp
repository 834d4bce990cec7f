// Architectural bit definitions used by SVM (APM Vol.2 ch.3, ch.13, ch.15).
// Pure constexpr data; the names follow the APM and Linux.
#pragma once

#include "nsvm/util/cxx_standard.hpp"  // a clear #error below C++20

#include <array>
#include <cstdint>
#include <string_view>

namespace nsvm::arch {

[[nodiscard]] constexpr std::uint64_t bit(unsigned n) noexcept { return std::uint64_t{1} << n; }
/// Bits hi..lo inclusive.
[[nodiscard]] constexpr std::uint64_t bits(unsigned hi, unsigned lo) noexcept {
    return (hi >= 63 ? ~std::uint64_t{0} : (bit(hi + 1) - 1)) & ~(bit(lo) - 1);
}

/// A named bit (or field) of a register, for decoding and for messages.
struct NamedBit {
    std::string_view name;
    std::uint64_t mask;
};

namespace cr0 {  // APM 3.1.1
inline constexpr std::uint64_t PE = bit(0), MP = bit(1), EM = bit(2), TS = bit(3), ET = bit(4), NE = bit(5),
                               WP = bit(16), AM = bit(18), NW = bit(29), CD = bit(30), PG = bit(31);
inline constexpr std::array kNames = {NamedBit{"PE", PE}, NamedBit{"MP", MP}, NamedBit{"EM", EM},
                                      NamedBit{"TS", TS}, NamedBit{"ET", ET}, NamedBit{"NE", NE},
                                      NamedBit{"WP", WP}, NamedBit{"AM", AM}, NamedBit{"NW", NW},
                                      NamedBit{"CD", CD}, NamedBit{"PG", PG}};
}  // namespace cr0

namespace cr3 {  // APM 5.3.2
inline constexpr std::uint64_t PWT = bit(3), PCD = bit(4);
/// Legacy (non-PAE) 32-bit paging: bits 2:0 and 11:5 are reserved (MBZ).
inline constexpr std::uint64_t kLegacyMbz = bits(2, 0) | bits(11, 5);
/// PAE legacy mode: CR3[31:5] is the PDPT base; bits 2:0 MBZ; 63:32 MBZ.
inline constexpr std::uint64_t kPaeMbz = bits(2, 0) | bits(63, 32);
/// Long mode without PCIDE: bits 2:0 and 11:5 are reserved (APM 5.3.2; only
/// 63:MAXPHYADDR are MBZ, which hardware's VMRUN checks): Xen and Hyper-V refuse them.
inline constexpr std::uint64_t kLongLowMbz = bits(2, 0) | bits(11, 5);
/// PAE legacy mode: the PDPT's physical address (32-byte aligned, below 4 GiB).
[[nodiscard]] constexpr std::uint64_t pdpt_base(std::uint64_t cr3) noexcept { return cr3 & bits(31, 5); }
/// Legacy 32-bit paging: the page directory at CR3[31:12] (APM 5.3.2).
inline constexpr std::uint64_t kLegacyBase = bits(31, 12);
/// Long mode: the PML4 (PML5 with CR4.LA57) at CR3[51:12] (APM 5.3.3, 5.3.4);
/// nCR3 names the nested PML4 the same way (15.25.5).
inline constexpr std::uint64_t kLongBase = bits(51, 12);
}  // namespace cr3

/// Page-translation-table entries (APM Vol 2 5.3 for the formats, 5.4 for
/// the fields): the low bits are the same in legacy 4-byte entries, PAE and
/// long-mode 8-byte entries and the nested tables (15.25.5), at every level;
/// PS makes a PDE or PDPE a leaf, and PAT then moves to bit 12 because bit 7
/// is taken.
namespace pte {
inline constexpr std::uint64_t P = bit(0), RW = bit(1), US = bit(2), PWT = bit(3), PCD = bit(4), A = bit(5),
                               D = bit(6), PS = bit(7), G = bit(8), PAT_LARGE = bit(12), NX = bit(63);
/// 8-byte entries: the next table's or the 4 KiB frame's address, bits
/// 51:12 (APM 5.3.3; bits MAXPHYADDR..51 are then reserved).
inline constexpr std::uint64_t kAddr = bits(51, 12);
/// Legacy 4-byte entries: the next table's or the 4 KiB frame's address, bits 31:12 (APM 5.3.2).
inline constexpr std::uint64_t kLegacyAddr = bits(31, 12);
/// The bits between PAT (12) and the frame of a large page, reserved
/// (APM 5.3.3, 5.4.1: a 2 MiB frame starts at bit 21, a 1 GiB one at bit 30).
inline constexpr std::uint64_t k2mReserved = bits(20, 13), k1gReserved = bits(29, 13);
/// Legacy 4 MiB PDE (CR4.PSE, APM 5.3.2): PA 31:22 in bits 31:22,
/// PA 39:32 in bits 20:13 (PSE-40), bit 21 reserved.
inline constexpr std::uint64_t kPse4mLow = bits(31, 22), kPse4mHigh = bits(20, 13), kPse4mReserved = bit(21);
inline constexpr unsigned kPse4mHighShift = 13;  ///< where PA bit 32 sits in a 4 MiB PDE
/// 4 KiB pages; a table index of 9 bits a level in 8-byte tables (512
/// entries), 10 in legacy 4-byte ones (1024).
inline constexpr unsigned kPageShift = 12, kIndexBits = 9, kLegacyIndexBits = 10;

/// The lowest linear (or guest-physical) address bit a level's table index takes (level 1: the PT).
[[nodiscard]] constexpr unsigned level_shift(unsigned level, unsigned index_bits = kIndexBits) noexcept {
    return kPageShift + index_bits * (level - 1);
}
/// The index of `addr`'s entry in a level's table.
[[nodiscard]] constexpr std::uint64_t table_index(std::uint64_t addr, unsigned level,
                                                  unsigned index_bits = kIndexBits) noexcept {
    return (addr >> level_shift(level, index_bits)) & (bit(index_bits) - 1);
}
/// The frame of a legacy 4 MiB page from its PDE (PSE-40: PA 39:32 from bits 20:13).
[[nodiscard]] constexpr std::uint64_t pse_4m_frame(std::uint64_t pde) noexcept {
    return (pde & kPse4mLow) | (((pde & kPse4mHigh) >> kPse4mHighShift) << 32);
}
/// The PDE bits that hold a 4 MiB page's frame `pa` (the inverse of pse_4m_frame).
[[nodiscard]] constexpr std::uint64_t pse_4m_pde_frame(std::uint64_t pa) noexcept {
    return (pa & kPse4mLow) | (((pa >> 32) << kPse4mHighShift) & kPse4mHigh);
}
}  // namespace pte

namespace pdpe {  // APM 5.3.3: a present PAE PDPE has bits 2:1 and 8:5 reserved (and those >= MAXPHYADDR)
inline constexpr std::uint64_t P = pte::P;
inline constexpr std::uint64_t kLowReserved = bits(2, 1) | bits(8, 5);
/// Legacy-mode PAE has no NX in a PDPE: bit 63 is reserved there (APM 5.3.3).
inline constexpr std::uint64_t kHighReserved = bit(63);
/// The PDPT's 2 index bits (4 entries, linear address bits 31:30).
inline constexpr unsigned kIndexBits = 2;
}  // namespace pdpe

/// The #PF error code (APM 8.4.2): the access and why it faulted. EXITINFO1
/// of an #NPF holds the same low bits (npf below).
namespace pf_err {
inline constexpr std::uint32_t P = 1U << 0,  ///< a protection violation (clear: a not-present entry)
    RW = 1U << 1,                             ///< a write (clear: a read)
    US = 1U << 2,                             ///< a user access (CPL 3)
    RSV = 1U << 3,                            ///< a reserved bit set in an entry
    ID = 1U << 4,                             ///< an instruction fetch (with EFER.NXE or CR4.SMEP)
    PK = 1U << 5,                             ///< a protection-key violation
    SS = 1U << 6;                             ///< a shadow-stack access
}  // namespace pf_err

/// #VMEXIT(NPF) EXITINFO1 (APM 15.25.6): the #PF error code's bits for the
/// nested access, and whether the fault was on the final guest-physical
/// address's translation (bit 32) or on a read of the guest's own page tables (bit 33).
namespace npf {
inline constexpr std::uint64_t P = pf_err::P, RW = pf_err::RW, US = pf_err::US, RSV = pf_err::RSV, ID = pf_err::ID,
                               FINAL_GPA = bit(32), GUEST_PT = bit(33);
}  // namespace npf

namespace cr4 {  // APM 3.1.3
inline constexpr std::uint64_t VME = bit(0), PVI = bit(1), TSD = bit(2), DE = bit(3), PSE = bit(4), PAE = bit(5),
                               MCE = bit(6), PGE = bit(7), PCE = bit(8), OSFXSR = bit(9), OSXMMEXCPT = bit(10),
                               UMIP = bit(11), LA57 = bit(12), VMXE = bit(13), SMXE = bit(14),
                               FSGSBASE = bit(16), PCIDE = bit(17), OSXSAVE = bit(18), KL = bit(19),
                               SMEP = bit(20), SMAP = bit(21), PKE = bit(22), CET = bit(23), PKS = bit(24),
                               UINTR = bit(25), LAM_SUP = bit(28), FRED = bit(32);
inline constexpr std::array kNames = {
    NamedBit{"VME", VME},       NamedBit{"PVI", PVI},         NamedBit{"TSD", TSD},
    NamedBit{"DE", DE},         NamedBit{"PSE", PSE},         NamedBit{"PAE", PAE},
    NamedBit{"MCE", MCE},       NamedBit{"PGE", PGE},         NamedBit{"PCE", PCE},
    NamedBit{"OSFXSR", OSFXSR}, NamedBit{"OSXMMEXCPT", OSXMMEXCPT}, NamedBit{"UMIP", UMIP},
    NamedBit{"LA57", LA57},     NamedBit{"VMXE", VMXE},       NamedBit{"SMXE", SMXE},
    NamedBit{"FSGSBASE", FSGSBASE}, NamedBit{"PCIDE", PCIDE}, NamedBit{"OSXSAVE", OSXSAVE},
    NamedBit{"KL", KL},         NamedBit{"SMEP", SMEP},       NamedBit{"SMAP", SMAP},
    NamedBit{"PKE", PKE},       NamedBit{"CET", CET},         NamedBit{"PKS", PKS},
    NamedBit{"UINTR", UINTR},   NamedBit{"LAM_SUP", LAM_SUP}, NamedBit{"FRED", FRED}};
}  // namespace cr4

namespace efer {  // APM 3.1.7
inline constexpr std::uint64_t SCE = bit(0), LME = bit(8), LMA = bit(10), NXE = bit(11), SVME = bit(12),
                               LMSLE = bit(13), FFXSR = bit(14), TCE = bit(15), MCOMMIT = bit(17),
                               INTWB = bit(18), UAIE = bit(20), AIBRSE = bit(21);
inline constexpr std::array kNames = {
    NamedBit{"SCE", SCE},     NamedBit{"LME", LME},         NamedBit{"LMA", LMA},     NamedBit{"NXE", NXE},
    NamedBit{"SVME", SVME},   NamedBit{"LMSLE", LMSLE},     NamedBit{"FFXSR", FFXSR}, NamedBit{"TCE", TCE},
    NamedBit{"MCOMMIT", MCOMMIT}, NamedBit{"INTWB", INTWB}, NamedBit{"UAIE", UAIE},   NamedBit{"AIBRSE", AIBRSE}};
}  // namespace efer

namespace rflags {
inline constexpr std::uint64_t CF = bit(0), FIXED1 = bit(1), TF = bit(8), IF = bit(9), NT = bit(14), RF = bit(16),
                               VM = bit(17), VIF = bit(19), VIP = bit(20);
inline constexpr unsigned kIoplShift = 12;  ///< IOPL, bits 13:12
inline constexpr std::uint64_t IOPL = std::uint64_t{3} << kIoplShift;
}

namespace dr6 {  // APM 13.1.1.3: bits 63:32 MBZ; the rest read as fixed or status.
inline constexpr std::uint64_t kFixed1 = 0xFFFF0FF0;
inline constexpr std::uint64_t kMbz = bits(63, 32);
}  // namespace dr6
namespace dr7 {  // APM 13.1.1.4
inline constexpr std::uint64_t kFixed1 = 0x400;
inline constexpr std::uint64_t kMbz = bits(63, 32);
inline constexpr std::uint64_t kBreakpointEnables = 0xFF;  // L0-3/G0-3
}  // namespace dr7

/// Segment attribute bits in the VMCB's packed 12-bit form (APM 15.5.1):
/// attrib[7:0] = descriptor bits 47:40, attrib[11:8] = descriptor bits 55:52.
namespace seg_attr {
inline constexpr std::uint16_t TYPE = 0xF, S = 1U << 4, DPL = 3U << 5, P = 1U << 7, AVL = 1U << 8, L = 1U << 9,
                               DB = 1U << 10, G = 1U << 11;
}

/// int_ctl at control 060h (APM B-1; Linux svm.h).
namespace int_ctl {
inline constexpr std::uint64_t V_TPR = 0xF, V_IRQ = bit(8), V_GIF = bit(9), V_NMI_PENDING = bit(11),
                               V_NMI_BLOCKING = bit(12), V_INTR_PRIO = bits(19, 16), V_IGN_TPR = bit(20),
                               V_INTR_MASKING = bit(24), V_GIF_ENABLE = bit(25), V_NMI_ENABLE = bit(26),
                               X2AVIC_ENABLE = bit(30), AVIC_ENABLE = bit(31);
inline constexpr std::array kNames = {
    NamedBit{"V_TPR", V_TPR},           NamedBit{"V_IRQ", V_IRQ},
    NamedBit{"V_GIF", V_GIF},           NamedBit{"V_NMI_PENDING", V_NMI_PENDING},
    NamedBit{"V_NMI_BLOCKING", V_NMI_BLOCKING}, NamedBit{"V_INTR_PRIO", V_INTR_PRIO},
    NamedBit{"V_IGN_TPR", V_IGN_TPR},   NamedBit{"V_INTR_MASKING", V_INTR_MASKING},
    NamedBit{"V_GIF_ENABLE", V_GIF_ENABLE}, NamedBit{"V_NMI_ENABLE", V_NMI_ENABLE},
    NamedBit{"X2AVIC_ENABLE", X2AVIC_ENABLE}, NamedBit{"AVIC_ENABLE", AVIC_ENABLE}};
}  // namespace int_ctl

/// int_state at control 068h.
namespace int_state {
inline constexpr std::uint64_t INTERRUPT_SHADOW = bit(0), GUEST_INTERRUPT_MASK = bit(1);
}

/// EVENTINJ / EXITINTINFO low dword (APM 15.20, 15.7.2); error code in the
/// next dword (event_inj_err / exit_int_info_err).
namespace event {
inline constexpr std::uint32_t VECTOR = 0xFF, TYPE = 0x700, EV = 1U << 11, RESERVED = 0x7FFFF000U, V = 1U << 31;
inline constexpr unsigned kTypeShift = 8;
enum class Type : std::uint8_t { intr = 0, nmi = 2, exception = 3, soft_int = 4 };
[[nodiscard]] constexpr unsigned type_of(std::uint32_t e) noexcept { return (e & TYPE) >> kTypeShift; }
[[nodiscard]] constexpr std::string_view type_name(unsigned t) noexcept {
    switch (t) {
        case 0: return "INTR";
        case 2: return "NMI";
        case 3: return "EXCEPTION";
        case 4: return "SOFT_INT";
        default: return "RESERVED";
    }
}
}  // namespace event

/// misc_ctl (old nested_ctl) at control 090h.
namespace misc_ctl {
inline constexpr std::uint64_t NP_ENABLE = bit(0), SEV_ENABLE = bit(1), SEV_ES_ENABLE = bit(2), GMET = bit(3),
                               SSS_CHECK = bit(4), VTE = bit(5), RO_GUEST_PT = bit(6), INVLPGB_TLBSYNC = bit(7);
inline constexpr std::array kNames = {
    NamedBit{"NP_ENABLE", NP_ENABLE}, NamedBit{"SEV_ENABLE", SEV_ENABLE}, NamedBit{"SEV_ES_ENABLE", SEV_ES_ENABLE},
    NamedBit{"GMET", GMET},           NamedBit{"SSS_CHECK", SSS_CHECK},   NamedBit{"VTE", VTE},
    NamedBit{"RO_GUEST_PT", RO_GUEST_PT}, NamedBit{"INVLPGB_TLBSYNC", INVLPGB_TLBSYNC}};
}  // namespace misc_ctl

/// misc_ctl2 (old virt_ext) at control 0B8h.
namespace misc_ctl2 {
inline constexpr std::uint64_t LBR_VIRT = bit(0), V_VMSAVE_VMLOAD = bit(1), IBS_VIRT = bit(2), PMC_VIRT = bit(3);
inline constexpr std::array kNames = {NamedBit{"LBR_VIRT", LBR_VIRT}, NamedBit{"V_VMSAVE_VMLOAD", V_VMSAVE_VMLOAD},
                                      NamedBit{"IBS_VIRT", IBS_VIRT}, NamedBit{"PMC_VIRT", PMC_VIRT}};
}  // namespace misc_ctl2

/// TLB_CONTROL at control 05Ch (APM 15.16.1). Other encodings are reserved.
namespace tlb_ctl {
inline constexpr std::uint8_t DO_NOTHING = 0, FLUSH_ALL = 1, FLUSH_ASID = 3, FLUSH_ASID_LOCAL = 7;
[[nodiscard]] constexpr std::string_view name(std::uint64_t v) noexcept {
    switch (v) {
        case 0: return "DO_NOTHING";
        case 1: return "FLUSH_ALL_ASIDS";
        case 3: return "FLUSH_GUEST_ASID";
        case 7: return "FLUSH_GUEST_NONGLOBAL";
        default: return "RESERVED";
    }
}
}  // namespace tlb_ctl

/// VMCB clean bits at control 0C0h (APM 15.15.3).
namespace clean {
inline constexpr std::array kNames = {
    NamedBit{"I", bit(0)},     NamedBit{"IOPM", bit(1)}, NamedBit{"ASID", bit(2)}, NamedBit{"TPR", bit(3)},
    NamedBit{"NP", bit(4)},    NamedBit{"CRx", bit(5)},  NamedBit{"DRx", bit(6)},  NamedBit{"DT", bit(7)},
    NamedBit{"SEG", bit(8)},   NamedBit{"CR2", bit(9)},  NamedBit{"LBR", bit(10)}, NamedBit{"AVIC", bit(11)},
    NamedBit{"CET", bit(12)},  NamedBit{"SW", bit(31)}};
}

/// MSRs SVM touches (APM 15.30, Linux msr-index.h).
namespace msr {
inline constexpr std::uint32_t EFER = 0xC0000080, STAR = 0xC0000081, LSTAR = 0xC0000082, CSTAR = 0xC0000083,
                               SFMASK = 0xC0000084, FS_BASE = 0xC0000100, GS_BASE = 0xC0000101,
                               KERNEL_GS_BASE = 0xC0000102, TSC_AUX = 0xC0000103, TSC_RATIO = 0xC0000104,
                               SYSENTER_CS = 0x174, SYSENTER_ESP = 0x175, SYSENTER_EIP = 0x176, PAT = 0x277,
                               TSC = 0x10, SPEC_CTRL = 0x48, PRED_CMD = 0x49, DEBUGCTL = 0x1D9,
                               HWCR = 0xC0010015, VM_CR = 0xC0010114, SMM_CTL = 0xC0010116,
                               VM_HSAVE_PA = 0xC0010117, SVM_KEY = 0xC0010118;
}
/// DebugCtl (MSR 01D9h, APM vol. 2 13.1.1.6): LBR and BTF, PB0-PB3 in bits
/// 5:2 (on CPUs with BusLockTrap, bit 2 enables it), bits 63:6 reserved (MBZ).
namespace debugctl {
inline constexpr std::uint64_t LBR = bit(0), BTF = bit(1), kPins = bits(5, 2), kReserved = bits(63, 6);
}
namespace vm_cr {  // APM 15.30.1
inline constexpr std::uint64_t DPD = bit(0), R_INIT = bit(1), DIS_A20M = bit(2), LOCK = bit(3), SVMDIS = bit(4),
                               kMbz = bits(63, 5);
}

/// Exception vectors with names (for EVENTINJ and exception intercepts).
inline constexpr std::array<std::string_view, 32> kExceptionNames = {
    "DE", "DB", "NMI", "BP", "OF", "BR", "UD", "NM", "DF", "CSO", "TS", "NP", "SS", "GP", "PF", "15",
    "MF", "AC", "MC", "XM", "VE", "CP", "22", "23", "24", "25", "26", "27", "HV", "VC", "SX", "31"};

/// Exceptions that push an error code (for EVENTINJ.EV consistency).
[[nodiscard]] constexpr bool exception_has_error_code(unsigned v) noexcept {
    return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
}

/// PAT memory types valid in each byte (APM 7.8.1): 0 UC, 1 WC, 4 WT, 5 WP, 6 WB, 7 UC-.
[[nodiscard]] constexpr bool pat_valid(std::uint64_t pat) noexcept {
    for (unsigned i = 0; i < 8; ++i) {
        const auto t = (pat >> (8 * i)) & 0xFF;
        if (t == 2 || t == 3 || t > 7) return false;
    }
    return true;
}

/// Sign-extends `v` from bit `width - 1` (canonical form for a VA width).
[[nodiscard]] constexpr std::uint64_t canonicalize(std::uint64_t v, unsigned width) noexcept {
    const unsigned shift = 64 - width;
    return static_cast<std::uint64_t>(static_cast<std::int64_t>(v << shift) >> shift);
}
[[nodiscard]] constexpr bool is_canonical(std::uint64_t v, unsigned width) noexcept {
    return canonicalize(v, width) == v;
}

}  // namespace nsvm::arch
