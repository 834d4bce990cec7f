#include "nsvm/cpu/events.hpp"

#include <array>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"

namespace nsvm::cpu {
namespace ic = arch::intercept;
namespace ec = arch::exit_code;
using arch::FieldId;

namespace {
struct EventNameEntry {
    std::string_view name;
    EventKind kind;
};
constexpr std::array kEventNames = {
    EventNameEntry{"cpuid", EventKind::cpuid},     EventNameEntry{"rdmsr", EventKind::rdmsr},
    EventNameEntry{"wrmsr", EventKind::wrmsr},     EventNameEntry{"io", EventKind::io},
    EventNameEntry{"hlt", EventKind::hlt},         EventNameEntry{"pause", EventKind::pause},
    EventNameEntry{"invlpg", EventKind::invlpg},   EventNameEntry{"cr_read", EventKind::cr_read},
    EventNameEntry{"cr_write", EventKind::cr_write}, EventNameEntry{"dr_read", EventKind::dr_read},
    EventNameEntry{"dr_write", EventKind::dr_write}, EventNameEntry{"exception", EventKind::exception},
    EventNameEntry{"vmmcall", EventKind::vmmcall}, EventNameEntry{"vmrun", EventKind::vmrun},
    EventNameEntry{"vmload", EventKind::vmload},   EventNameEntry{"vmsave", EventKind::vmsave},
    EventNameEntry{"stgi", EventKind::stgi},       EventNameEntry{"clgi", EventKind::clgi},
    EventNameEntry{"invlpga", EventKind::invlpga}, EventNameEntry{"skinit", EventKind::skinit},
    EventNameEntry{"rsm", EventKind::rsm},         EventNameEntry{"memory", EventKind::memory},
    EventNameEntry{"intr", EventKind::intr},       EventNameEntry{"nmi", EventKind::nmi},
    EventNameEntry{"smi", EventKind::smi},         EventNameEntry{"init", EventKind::init},
    EventNameEntry{"rdtsc", EventKind::rdtsc},     EventNameEntry{"invd", EventKind::invd},
    EventNameEntry{"wbinvd", EventKind::wbinvd},   EventNameEntry{"sti", EventKind::sti},
    EventNameEntry{"cli", EventKind::cli},         EventNameEntry{"nop", EventKind::nop},
    EventNameEntry{"rdtscp", EventKind::rdtscp},   EventNameEntry{"xsetbv", EventKind::xsetbv},
    EventNameEntry{"rdpru", EventKind::rdpru},     EventNameEntry{"invpcid", EventKind::invpcid},
    EventNameEntry{"lmsw", EventKind::lmsw},       EventNameEntry{"clts", EventKind::clts},
    EventNameEntry{"fpu", EventKind::fpu},         EventNameEntry{"iret", EventKind::iret},
};

// Exit codes of instructions whose intercept is one bit equal to the code.
std::optional<std::uint64_t> simple_instruction_code(EventKind k) noexcept {
    switch (k) {
        case EventKind::cpuid: return ec::CPUID;
        case EventKind::hlt: return ec::HLT;
        case EventKind::vmmcall: return ec::VMMCALL;
        case EventKind::vmrun: return ec::VMRUN;
        case EventKind::vmload: return ec::VMLOAD;
        case EventKind::vmsave: return ec::VMSAVE;
        case EventKind::stgi: return ec::STGI;
        case EventKind::clgi: return ec::CLGI;
        case EventKind::invlpga: return ec::INVLPGA;
        case EventKind::skinit: return ec::SKINIT;
        case EventKind::rsm: return ec::RSM;
        case EventKind::rdtsc: return ec::RDTSC;
        case EventKind::invd: return ec::INVD;
        case EventKind::wbinvd: return ec::WBINVD;
        case EventKind::rdtscp: return ec::RDTSCP;
        case EventKind::xsetbv: return ec::XSETBV;
        case EventKind::rdpru: return ec::RDPRU;
        case EventKind::iret: return ec::IRET;  // APM B-1: vector 3 bit 20 (bit 116); C-1: exit code 74h
        default: return std::nullopt;
    }
}
}  // namespace

std::string_view event_name(EventKind k) noexcept {
    for (const auto& e : kEventNames)
        if (e.kind == k) return e.name;
    return "?";
}
std::optional<EventKind> find_event(std::string_view name) noexcept {
    for (const auto& e : kEventNames)
        if (e.name == name) return e.kind;
    return std::nullopt;
}

std::optional<std::uint64_t> cr0_written(const Event& e, std::uint64_t cr0) noexcept {
    using namespace arch;
    constexpr std::uint64_t kMsw = cr0::PE | cr0::MP | cr0::EM | cr0::TS;
    switch (e.kind) {
        case EventKind::cr_write:
            if ((e.index & 0xF) != 0) return std::nullopt;
            return e.value;
        case EventKind::lmsw: return (cr0 & ~kMsw) | (e.value & kMsw) | (cr0 & cr0::PE);
        case EventKind::clts: return cr0 & ~cr0::TS;
        default: return std::nullopt;
    }
}

bool selective_cr0_write(const Event& e, std::uint64_t cr0) noexcept {
    if (e.kind == EventKind::clts) return false;
    const auto written = cr0_written(e, cr0);
    return written && ((cr0 ^ *written) & ~(arch::cr0::TS | arch::cr0::MP)) != 0;
}

std::uint8_t default_insn_len(EventKind k) noexcept {
    switch (k) {
        case EventKind::sti:
        case EventKind::cli:
        case EventKind::nop:
        case EventKind::iret: return 1;
        default: return Event{}.insn_len;
    }
}

MapResult msrpm_lookup(const Bitmap& map, std::uint32_t msr, bool write) noexcept {
    const auto b = msrpm_bit(msr);
    if (!b) return MapResult::intercept;  // APM 15.11: outside the ranges, always intercepted
    const std::uint32_t bitnr = *b + (write ? 1U : 0U);
    std::uint8_t byte = 0;
    if (!map.read_u8(bitnr / 8, byte)) return MapResult::unreadable;
    return ((byte >> (bitnr % 8)) & 1U) ? MapResult::intercept : MapResult::clear;
}

MapResult iopm_lookup(const Bitmap& map, std::uint16_t port, std::uint8_t size) noexcept {
    // APM 15.10.1: one bit per port; a multi-byte access checks every port it
    // touches, which may spill into the byte after port 0xFFFF's (the IOPM is
    // 12 KiB for that reason).
    for (unsigned i = 0; i < size; ++i) {
        const std::uint32_t p = std::uint32_t{port} + i;
        std::uint8_t byte = 0;
        if (!map.read_u8(p / 8, byte)) return MapResult::unreadable;
        if ((byte >> (p % 8)) & 1U) return MapResult::intercept;
    }
    return MapResult::clear;
}

std::uint64_t ioio_exit_info_1(const Event& e) noexcept {
    // APM 15.10.2: bit 0 TYPE (1 = IN), 2 STR, 3 REP, 4-6 SZ8/16/32,
    // 7-9 A16/32/64, 12:10 segment (DS assumed), 31:16 port.
    std::uint64_t v = e.in ? 1U : 0U;
    if (e.string) v |= arch::bit(2);
    if (e.rep) v |= arch::bit(3);
    v |= e.size == 4 ? arch::bit(6) : e.size == 2 ? arch::bit(5) : arch::bit(4);
    v |= e.address_size == 16 ? arch::bit(7) : e.address_size == 32 ? arch::bit(8) : arch::bit(9);
    if (e.string && !e.in) v |= std::uint64_t{3} << 10;  // OUTS reads through DS
    v |= std::uint64_t{static_cast<std::uint16_t>(e.index)} << 16;
    return v;
}

bool pause_filter_exits(arch::Vmcb& vmcb) noexcept {
    const std::uint64_t count = vmcb.get(FieldId::pause_filter_count);
    if (count == 0) return true;  // filter disabled: every intercepted PAUSE exits
    vmcb.set(FieldId::pause_filter_count, count - 1);
    return count - 1 == 0;
}

std::optional<ExitInfo> decide(const arch::Vmcb& vmcb, const Bitmap& msrpm, const Bitmap& iopm, const Event& e,
                               std::uint64_t rip,
                               std::uint64_t guest_cr0, ExitFeatures f) noexcept {
    ExitInfo x;
    // APM 15.7.1: nRIP is written for instruction intercepts (and MSR/IOIO).
    const std::uint64_t nrip = f.nrips ? rip + e.insn_len : 0;
    if (const auto code = simple_instruction_code(e.kind)) {
        if (!vmcb.intercept(static_cast<unsigned>(*code))) return std::nullopt;
        x.code = *code;
        x.next_rip = nrip;
        if (e.kind == EventKind::invlpga) x.next_rip = nrip;
        return x;
    }
    switch (e.kind) {
        case EventKind::rdmsr:
        case EventKind::wrmsr: {
            if (!vmcb.intercept(ic::MSR_PROT)) return std::nullopt;
            const bool w = e.kind == EventKind::wrmsr;
            if (msrpm_lookup(msrpm, e.index, w) == MapResult::clear)
                return std::nullopt;
            x.code = ec::MSR;
            x.info1 = w ? 1 : 0;  // APM 15.11: EXITINFO1 = 0 RDMSR, 1 WRMSR
            x.next_rip = nrip;
            return x;
        }
        case EventKind::io: {
            if (!vmcb.intercept(ic::IOIO_PROT)) return std::nullopt;
            if (iopm_lookup(iopm, static_cast<std::uint16_t>(e.index), e.size) == MapResult::clear)
                return std::nullopt;
            x.code = ec::IOIO;
            x.info1 = ioio_exit_info_1(e);
            x.info2 = rip + e.insn_len;  // APM 15.10.2: EXITINFO2 = rIP of the next instruction
            x.next_rip = nrip;
            return x;
        }
        case EventKind::pause: {
            if (!vmcb.intercept(ic::PAUSE)) return std::nullopt;
            x.code = ec::PAUSE;
            x.next_rip = nrip;
            return x;
        }
        case EventKind::invpcid: {
            if (!vmcb.intercept(ic::INVPCID)) return std::nullopt;
            x.code = ec::INVPCID;
            // APM 15.33.1 (decode assists): EXITINFO1 the descriptor's linear
            // address, EXITINFO2 the type from the register operand.
            if (f.decode_assists) {
                x.info1 = e.value;
                x.info2 = e.index;
            }
            x.next_rip = nrip;
            return x;
        }
        case EventKind::invlpg: {
            if (!vmcb.intercept(ic::INVLPG)) return std::nullopt;
            x.code = ec::INVLPG;
            if (f.decode_assists) x.info1 = e.value;  // APM 15.33: linear address
            x.next_rip = nrip;
            return x;
        }
        case EventKind::lmsw:
        case EventKind::clts: {
            // APM 15.9.1: LMSW and CLTS are CR0 writes for the CR0 write
            // intercept; 15.9.2: LMSW, not CLTS, also for the selective one.
            // With decode assists EXITINFO1 bit 63 is clear: not a MOV CRn (15.33.1).
            const bool selective = vmcb.intercept(ic::SELECTIVE_CR0) && selective_cr0_write(e, guest_cr0);
            if (!vmcb.intercept(ic::cr_write(0)) && !selective) return std::nullopt;
            x.code = vmcb.intercept(ic::cr_write(0)) ? ic::cr_write(0) : ec::CR0_SEL_WRITE;
            x.next_rip = nrip;
            return x;
        }
        case EventKind::cr_read:
        case EventKind::dr_read:
        case EventKind::dr_write:
        case EventKind::cr_write: {
            const unsigned n = e.index & 0xF;
            const bool cr = e.kind == EventKind::cr_read || e.kind == EventKind::cr_write;
            const bool wr = e.kind == EventKind::cr_write || e.kind == EventKind::dr_write;
            const unsigned bit = cr ? (wr ? ic::cr_write(n) : ic::cr_read(n)) : (wr ? ic::dr_write(n) : ic::dr_read(n));
            if (vmcb.intercept(bit)) {
                x.code = bit;  // bit number = exit code for CR/DR (APM C-1)
                // APM 15.33.1 decode assists: bit 63 = MOV, 3:0 = GPR.
                if (f.decode_assists) x.info1 = arch::bit(63) | (e.gpr & 0xFU);
                x.next_rip = nrip;
                return x;
            }
            // APM 15.9.2: the selective CR0 write intercept.
            if (cr && wr && n == 0 && vmcb.intercept(ic::SELECTIVE_CR0) && selective_cr0_write(e, guest_cr0)) {
                x.code = ec::CR0_SEL_WRITE;
                if (f.decode_assists) x.info1 = arch::bit(63) | (e.gpr & 0xFU);
                x.next_rip = nrip;
                return x;
            }
            return std::nullopt;
        }
        case EventKind::exception: {
            const unsigned v = e.index & 0x1F;
            if (!vmcb.intercept(ic::exception(v))) return std::nullopt;
            x.code = ec::EXCP_BASE + v;
            if (arch::exception_has_error_code(v)) x.info1 = e.error_code;  // APM 15.12
            if (v == 14) x.info2 = e.cr2;                                     // #PF: faulting address
            return x;
        }
        case EventKind::intr:
        case EventKind::nmi:
        case EventKind::smi:
        case EventKind::init: {
            const unsigned bit = e.kind == EventKind::intr  ? ic::INTR
                                 : e.kind == EventKind::nmi ? ic::NMI
                                 : e.kind == EventKind::smi ? ic::SMI
                                                            : ic::INIT;
            if (!vmcb.intercept(bit)) return std::nullopt;
            x.code = bit;  // 0x60..0x63
            return x;
        }
        default: return std::nullopt;  // memory: see npt.hpp
    }
}

}  // namespace nsvm::cpu
