// IRET in the guest, not intercepted (APM Vol.3 "IRET, IRETD, IRETQ"; the
// intercept itself is decide()'s, events.cpp). The inverse of
// SvmCpu::deliver_through_idt for the cases that function delivers: a return
// at the same privilege level,
//
//   64-bit mode       IRETQ: pops RIP, CS, RFLAGS, then RSP, SS (8 bytes each)
//   legacy protected  IRETD with a 32-bit stack: pops EIP, CS, EFLAGS (4 each)
//
// The operand size is the mode's, not the event's: a 64-bit handler returns
// from the 8-byte frame every long-mode delivery pushes with IRETQ (48 CF,
// Event::insn_len 2, which only nRIP reads), and a 32-bit one with IRETD.
// Everything is popped and checked before a register is written: a fault
// leaves the registers as they were and is delivered as the IRET's own
// exception. What the model does not follow (real, virtual-8086 and
// compatibility mode, 16-bit operands or stacks, task returns, returns to
// another privilege level or to virtual-8086 mode, LDT selectors, memory that
// is not backed) ends in not_modelled, as delivery does.
#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/cpu/svm_cpu.hpp"
#include "nsvm/cpu/vnmi.hpp"
#include "guest_fault.hpp"

namespace nsvm::cpu {
namespace ec = arch::exit_code;
using arch::bit;
using arch::FieldId;
using checks::Feature;

namespace {
using Fault = SvmCpu::GuestFault;
using detail::exception_fault;
using detail::not_modelled;
using detail::segment_from_descriptor;

/// The RFLAGS bits IRET loads from the frame whatever the privilege level
/// (32- and 64-bit operand size): CF, PF, AF, ZF, SF, TF, DF, OF, NT, RF,
/// AC, ID. IF, IOPL, VIF and VIP depend on CPL (iret_rflags); VM is never
/// loaded by a return that stays in protected mode; the reserved bits are
/// never loaded and bit 1 reads as 1 (APM 3.1.6).
constexpr std::uint64_t kIretWritable = bit(0) | bit(2) | bit(4) | bit(6) | bit(7) | arch::rflags::TF | bit(10) |
                                        bit(11) | arch::rflags::NT | arch::rflags::RF | bit(18) | bit(21);

[[nodiscard]] bool is_code_descriptor(std::uint64_t d) noexcept { return (d & bit(44)) != 0 && (d & bit(43)) != 0; }
[[nodiscard]] bool is_writable_data_descriptor(std::uint64_t d) noexcept {
    return (d & bit(44)) != 0 && (d & bit(43)) == 0 && (d & bit(41)) != 0;
}
[[nodiscard]] unsigned descriptor_dpl(std::uint64_t d) noexcept { return static_cast<unsigned>((d >> 45) & 3); }
}  // namespace

std::uint64_t SvmCpu::iret_rflags(std::uint64_t popped) const noexcept {
    using namespace arch;
    // APM Vol.3 IRET: IF changes only when CPL <= IOPL (the IOPL before the
    // IRET); IOPL, VIF and VIP only at CPL 0.
    std::uint64_t writable = kIretWritable;
    const auto iopl = static_cast<unsigned>((regs_.rflags & rflags::IOPL) >> rflags::kIoplShift);
    if (regs_.cpl <= iopl) writable |= rflags::IF;
    if (regs_.cpl == 0) writable |= rflags::IOPL | rflags::VIF | rflags::VIP;
    return (regs_.rflags & ~writable) | (popped & writable) | rflags::FIXED1;
}

Fault SvmCpu::iret_stack_segment(std::uint16_t selector, arch::Segment& ss) noexcept {
    // IRETQ pops SS:RSP even at the same privilege level (APM Vol.3 IRET:
    // "in 64-bit mode or if changing privilege"). A null SS is allowed in
    // 64-bit mode below CPL 3 when its RPL is the CPL (APM 4.5.3), else
    // #GP(0); the model keeps the hidden part SS had (what a null SS loads
    // there is not architecturally visible in 64-bit mode).
    const unsigned rpl = selector & 3U;
    if ((selector & 0xFFFC) == 0) {
        if (regs_.cpl == 3 || rpl != regs_.cpl) return exception_fault(13, 0);
        ss = regs_.ss;
        ss.selector = selector;
        return {};
    }
    std::uint64_t d = 0;
    if (const Fault f = gdt_descriptor(selector, 0, d); f.kind != Fault::Kind::none) return f;
    // A writable data segment at the new CPL, else #GP(selector); not
    // present is #SS(selector).
    const std::uint32_t error = selector & 0xFFFCU;
    if (rpl != regs_.cpl || !is_writable_data_descriptor(d) || descriptor_dpl(d) != regs_.cpl)
        return exception_fault(13, error);
    if ((d & bit(47)) == 0) return exception_fault(12, error);
    ss = segment_from_descriptor(selector, d);
    return {};
}

Fault SvmCpu::iret_target(IretTarget& t) noexcept {
    using namespace arch;
    if ((regs_.cr0 & cr0::PE) == 0) return not_modelled("a real-mode IRET is not modelled");
    if ((regs_.rflags & rflags::VM) != 0) return not_modelled("IRET in virtual-8086 mode is not modelled");
    const bool long_mode = (regs_.efer & efer::LMA) != 0;
    const unsigned la_bits = (regs_.cr4 & cr4::LA57) != 0 ? 57 : 48;
    if (long_mode && (regs_.cs.attrib & seg_attr::L) == 0) return not_modelled("IRET in compatibility mode is not modelled");
    // APM Vol.3 IRET: RFLAGS.NT = 1 asks for a return from a nested task,
    // which long mode does not have: #GP(0) there.
    if ((regs_.rflags & rflags::NT) != 0)
        return long_mode ? exception_fault(13, 0) : not_modelled("a task return (IRET with RFLAGS.NT = 1) is not modelled");
    if (!long_mode && (regs_.cs.attrib & seg_attr::DB) == 0) return not_modelled("a 16-bit IRET is not modelled");
    if (!long_mode && (regs_.ss.attrib & seg_attr::DB) == 0) return not_modelled("a 16-bit stack is not modelled");

    // RIP, CS, RFLAGS: 8 bytes each for IRETQ, 4 for IRETD.
    const unsigned width = long_mode ? 8 : 4;
    const std::uint64_t la = long_mode ? regs_.rsp : regs_.ss.base + (regs_.rsp & 0xFFFFFFFFULL);
    // APM 8.9.3 / Vol.3 IRET: a stack address that is not canonical is #SS(0).
    if (long_mode && (!is_canonical(la, la_bits) || !is_canonical(la + 5 * width - 1, la_bits)))
        return exception_fault(12, 0);
    std::array<std::uint8_t, 24> head{};
    if (const Fault f = guest_access(la, std::span<std::uint8_t>(head.data(), 3 * width), false);
        f.kind != Fault::Kind::none)
        return f;
    const std::uint64_t popped_rip = load_le(head, 0, width);
    const auto cs_sel = static_cast<std::uint16_t>(load_le(head, width, width));
    const std::uint64_t popped_flags = load_le(head, 2 * width, width);

    // A popped VM = 1 at CPL 0 outside long mode returns to virtual-8086 mode.
    if (!long_mode && regs_.cpl == 0 && (popped_flags & rflags::VM) != 0)
        return not_modelled("an IRET to virtual-8086 mode is not modelled");

    // CS from the GDT (APM Vol.3 IRET, the return code segment's checks):
    // null is #GP(0); not a code segment, RPL below CPL, a conforming DPL
    // above RPL or a non-conforming DPL other than RPL is #GP(selector); not
    // present is #NP(selector). An IRET is an instruction: EXT = 0.
    if ((cs_sel & 0xFFFC) == 0) return exception_fault(13, 0);
    std::uint64_t d = 0;
    if (const Fault f = gdt_descriptor(cs_sel, 0, d); f.kind != Fault::Kind::none) return f;
    const unsigned rpl = cs_sel & 3U;
    const std::uint32_t cs_error = cs_sel & 0xFFFCU;
    const bool conforming = (d & bit(42)) != 0;
    if (!is_code_descriptor(d) || rpl < regs_.cpl || (conforming ? descriptor_dpl(d) > rpl : descriptor_dpl(d) != rpl))
        return exception_fault(13, cs_error);
    if ((d & bit(47)) == 0) return exception_fault(11, cs_error);
    if (rpl > regs_.cpl) return not_modelled("an IRET to an outer privilege level is not modelled");
    if (long_mode) {
        if ((d & bit(53)) == 0) return not_modelled("an IRET to compatibility mode is not modelled");
        if ((d & bit(54)) != 0) return exception_fault(13, cs_error);  // L and D both set: reserved (APM 4.8.1)
    }
    t.cs = segment_from_descriptor(cs_sel, d);
    t.rflags = iret_rflags(popped_flags);

    if (!long_mode) {
        // IRETD at the same privilege level: SS:ESP stay; EIP must lie
        // within the new CS's limit, else #GP(0).
        const std::uint64_t eip = popped_rip & 0xFFFFFFFFULL;
        if (eip > t.cs.limit) return exception_fault(13, 0);
        t.rip = eip;
        t.ss = regs_.ss;
        t.rsp = ((regs_.rsp + 3 * width) & 0xFFFFFFFFULL) | (regs_.rsp & ~0xFFFFFFFFULL);
        return {};
    }
    // IRETQ then pops RSP and SS (APM Vol.3 IRET: after the CS checks).
    std::array<std::uint8_t, 16> tail{};
    if (const Fault f = guest_access(la + 3 * width, tail, false); f.kind != Fault::Kind::none) return f;
    if (const Fault f = iret_stack_segment(static_cast<std::uint16_t>(load_le(tail, 8, 8)), t.ss);
        f.kind != Fault::Kind::none)
        return f;
    // The return address must be canonical in 64-bit mode: #GP(0).
    if (!is_canonical(popped_rip, la_bits)) return exception_fault(13, 0);
    t.rip = popped_rip;
    t.rsp = load_le(tail, 0, 8);
    return {};
}

SvmResult SvmCpu::guest_iret() noexcept {
    using namespace arch;
    IretTarget t;
    const Fault f = iret_target(t);
    // A fault: RIP still at the IRET, through the exception intercepts and
    // the guest's IDT like any instruction's.
    if (f.kind != Fault::Kind::none) return instruction_fault(f, "IRET faulted: the exception goes to the guest");
    SvmResult r;
    r.in_guest = true;
    regs_.rip = t.rip;
    regs_.rsp = t.rsp;
    regs_.rflags = t.rflags;
    regs_.cs = t.cs;
    regs_.ss = t.ss;
    // The instruction retired: an interrupt shadow it was in has ended, and
    // IRET starts none (unlike STI and MOV SS).
    cur().set(FieldId::int_state, cur().get(FieldId::int_state) & ~int_state::INTERRUPT_SHADOW);
    // APM 15.21.10: "V_NMI_MASK is cleared when the guest successfully
    // completes an IRET instruction" (with NMI virtualization; an IRET that
    // faults or is intercepted has not completed). A pending virtual NMI is
    // then taken at the next instruction boundary (poll), after the IRET.
    const std::uint64_t ic = int_ctl();
    if (vnmi_enabled(*cpu_, ic) && (ic & int_ctl::V_NMI_BLOCKING) != 0) {
        set_int_ctl(ic & ~int_ctl::V_NMI_BLOCKING);
        r.note = "IRET returned from the guest's handler; virtual NMIs unblocked (V_NMI_MASK cleared)";
    } else {
        r.note = "IRET returned from the guest's handler";
    }
    r.outcome = SvmOutcome::no_exit;
    return r;
}

}  // namespace nsvm::cpu
