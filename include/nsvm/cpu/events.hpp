// Guest activity as events (not an x86 interpreter), and the architectural
// intercept decision for one event against one VMCB (APM 15.7-15.13, 15.25).
//
// decide() is what the processor does when a guest runs on a VMCB: given the
// event, the VMCB's intercept vectors and its IOPM/MSRPM in memory, it says
// whether a #VMEXIT happens and with which EXITCODE/EXITINFO1/EXITINFO2 and
// nRIP. Pure, noexcept, no allocation.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "nsvm/arch/vmcb.hpp"
#include "nsvm/cpu/memory.hpp"

namespace nsvm::cpu {

enum class EventKind : std::uint8_t {
    cpuid, rdmsr, wrmsr, io, hlt, pause, invlpg, cr_read, cr_write, dr_read, dr_write, exception, vmmcall,
    vmrun, vmload, vmsave, stgi, clgi, invlpga, skinit, rsm, memory,  // guest-executed
    intr, nmi, smi, init,                                             // external
    rdtsc, invd, wbinvd,                                              // guest-executed (added later)
    sti, cli, nop,  // never intercepted: STI/CLI change RFLAGS.IF, NOP only retires (ends a shadow)
    rdtscp, xsetbv, rdpru, invpcid,  // #UD where the CPU model lacks them (instruction_faults.hpp)
    lmsw, clts,                      // CR0 writes for the intercepts (APM 15.9): LMSW's source in `value`
    fpu,                             // an x87 instruction: #NM with CR0.EM or CR0.TS (instruction_faults.hpp)
    iret,  // IRET (CF; IRETQ 48 CF): intercept bit 116, else executed on the processor (SvmCpu::guest_iret)
};
/// Every kind is below this (for code that enumerates or draws kinds).
inline constexpr unsigned kEventKindCount = static_cast<unsigned>(EventKind::iret) + 1;
[[nodiscard]] std::string_view event_name(EventKind k) noexcept;
[[nodiscard]] std::optional<EventKind> find_event(std::string_view name) noexcept;
/// The length an event's instruction has when its user does not say: one
/// byte for STI (FB), CLI (FA), NOP (90) and IRET (CF; a 64-bit IRETQ is
/// 48 CF, two: say so with insn_len), else Event's default of two.
[[nodiscard]] std::uint8_t default_insn_len(EventKind k) noexcept;

/// Access type of a memory event (for #NPF EXITINFO1 bits 0-4).
struct Access {
    bool write = false;
    bool user = true;
    bool fetch = false;
};

struct Event {
    EventKind kind = EventKind::cpuid;
    std::uint32_t index = 0;   ///< MSR number, I/O port, CR/DR number, exception vector, INVPCID type
    std::uint64_t value = 0;   ///< value written (CR/DR/MSR), linear address (INVLPG, INVPCID's descriptor), GPA (memory)
    std::uint8_t size = 1;     ///< I/O access size in bytes: 1, 2, 4
    bool in = false;           ///< I/O: IN (true) or OUT
    bool string = false;       ///< I/O: INS/OUTS
    bool rep = false;          ///< I/O: REP prefix
    std::uint8_t address_size = 64;  ///< I/O string address size 16/32/64
    std::uint8_t gpr = 0;      ///< MOV CR/DR general register (decode assists)
    std::uint32_t error_code = 0;   ///< exception error code (when the vector has one)
    std::uint64_t cr2 = 0;     ///< #PF: faulting address
    Access access{};           ///< memory events
    std::uint8_t insn_len = 2; ///< length of the instruction, for nRIP
    /// Memory events: `value` is a linear address, translated through the
    /// guest's own paging (and the nested tables) as the access would be;
    /// false: `value` is a guest-physical address (nested tables only).
    bool linear = false;
    /// Exceptions: raised by INT3/INTO/INTn, a trap (APM 8.2.3): the frame
    /// holds the next instruction's address and the gate's DPL is checked.
    bool software = false;
};

/// The CR0 a MOV to CR0, LMSW or CLTS writes when the guest's CR0 is
/// `cr0` (before CR0.ET is forced, cpu/control_regs.hpp), or nullopt for
/// other events. LMSW loads CR0[3:0] from its source but cannot clear PE;
/// CLTS clears TS (APM Vol.3 "LMSW", "CLTS").
[[nodiscard]] std::optional<std::uint64_t> cr0_written(const Event& e, std::uint64_t cr0) noexcept;
/// APM 15.9.2: `e` is a write of CR0 the selective CR0 write intercept
/// sees, one that changes a bit other than TS and MP. MOV to CR0 and LMSW
/// are; CLTS never is (15.9.1 names it for the CR0 write intercept only).
[[nodiscard]] bool selective_cr0_write(const Event& e, std::uint64_t cr0) noexcept;

struct ExitInfo {
    std::uint64_t code = 0;
    std::uint64_t info1 = 0;
    std::uint64_t info2 = 0;
    std::uint64_t next_rip = 0;  ///< 0 when the exit does not write nRIP
};

/// Hardware features that change exit information.
struct ExitFeatures {
    bool nrips = true;           ///< CPUID Fn8000_000A_EDX[3]
    bool decode_assists = true;  ///< CPUID Fn8000_000A_EDX[7]
};

/// APM 15.11: the MSRPM bit of an MSR's RDMSR intercept (write = +1), or
/// nullopt for MSRs outside the three ranges (always intercepted).
[[nodiscard]] constexpr std::optional<std::uint32_t> msrpm_bit(std::uint32_t msr) noexcept {
    std::uint32_t range = 0;
    if (msr <= 0x1FFF) range = 0;
    else if (msr >= 0xC0000000U && msr <= 0xC0001FFFU) range = 1;
    else if (msr >= 0xC0010000U && msr <= 0xC0011FFFU) range = 2;
    else return std::nullopt;
    return range * 2048U * 8U + (msr & 0x1FFFU) * 2U;
}

enum class MapResult : std::uint8_t { clear, intercept, unreadable };

/// Where a permission map lives: in guest memory at `base` (an L1 map), or
/// in host-owned bytes (L0's maps, the merged vmcb02 MSRPM), which guest
/// memory does not hold.
struct Bitmap {
    const GuestMemory* mem = nullptr;
    std::uint64_t base = 0;
    std::span<const std::uint8_t> bytes{};
    [[nodiscard]] bool read_u8(std::uint64_t offset, std::uint8_t& out) const noexcept {
        if (!bytes.empty()) {
            if (offset >= bytes.size()) return false;
            out = bytes[offset];
            return true;
        }
        return mem != nullptr && mem->read_u8(page_of(base) + offset, out);
    }
};
inline constexpr std::size_t kMsrpmSize = 0x2000;  // APM 15.11: 8 KiB
inline constexpr std::size_t kIopmSize = 0x3000;   // APM 15.10.1: 12 KiB

/// MSRPM lookup (APM 15.11).
[[nodiscard]] MapResult msrpm_lookup(const Bitmap& map, std::uint32_t msr, bool write) noexcept;
/// IOPM lookup: every byte of a multi-byte access (APM 15.10.1).
[[nodiscard]] MapResult iopm_lookup(const Bitmap& map, std::uint16_t port, std::uint8_t size) noexcept;

/// APM 15.10.2: EXITINFO1 of an IOIO intercept.
[[nodiscard]] std::uint64_t ioio_exit_info_1(const Event& e) noexcept;

/// The architectural intercept decision. `rip` is the guest RIP of the
/// instruction; an unreadable permission map counts as intercepted (real
/// hardware would fault on the read; the model stays conservative).
/// nullopt: no #VMEXIT, the guest handles the event itself.
[[nodiscard]] std::optional<ExitInfo> decide(const arch::Vmcb& vmcb, const Bitmap& msrpm, const Bitmap& iopm,
                                             const Event& e,
                                             std::uint64_t rip, std::uint64_t guest_cr0,
                                             ExitFeatures f) noexcept;

/// PAUSE filter (APM 15.14.4): returns true when this PAUSE exits. The count
/// in the VMCB is decremented; reaching zero exits and reloads nothing (the
/// VMM decides). Threshold: a PAUSE more than `threshold` cycles after the
/// previous one resets the count — events carry no time, so the model treats
/// every PAUSE as back-to-back.
[[nodiscard]] bool pause_filter_exits(arch::Vmcb& vmcb) noexcept;

}  // namespace nsvm::cpu
