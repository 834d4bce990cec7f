// IRET in the guest (APM Vol.3 IRET; docs/cpu.md "IRET"): intercepted, it
// exits before it executes (exit code 74h, RIP at the IRET, nRIP past it);
// not intercepted, it pops exactly the frame delivery through the guest's IDT
// pushed (long mode and legacy mode), faults as the instruction (#NP, #GP),
// and, with NMI virtualization, clears V_NMI_MASK when it completes
// (APM 15.21.10), after which a pending virtual NMI is taken.
#include <array>

#include "checks/fixtures.hpp"
#include "cpu/svm_cpu_fixture.hpp"

namespace nsvm::cpu::test {
namespace {

using arch::FieldId;
namespace ec = arch::exit_code;
namespace ic = arch::intercept;
namespace ictl = arch::int_ctl;

// The guest's memory: its own page tables (identity over the low 2 or 4
// MiB), an IDT, a GDT, a stack page and the handlers' addresses.
constexpr std::uint64_t kPml4 = 0x80000, kPd32 = 0x83000, kIdt = 0x100000, kGdt = 0x101000, kStackTop = 0x103000,
                        kHandlers = 0x109000, kReturnRip = 0x400000;
constexpr std::uint16_t kCode = 0x8, kData = 0x10, kAbsentCode = 0x18;
constexpr std::uint64_t handler(unsigned vector) { return kHandlers + vector * 0x10ULL; }

// GDT descriptors (APM 4.7/4.8): their hidden parts are the attributes the
// fixture's guests load at VMRUN, so a reload leaves CS and SS as they were.
constexpr std::uint64_t kCode64 = 0x00AF9B000000FFFFULL;  // attrib 0xA9B: L, P, DPL 0, execute/read
constexpr std::uint64_t kCode32 = 0x00CF9B000000FFFFULL;  // attrib 0xC9B: D, G
constexpr std::uint64_t kData32 = 0x00CF93000000FFFFULL;  // attrib 0xC93: writable data
constexpr std::uint64_t kAbsent64 = kCode64 & ~arch::bit(47);

Event iret(std::uint8_t len) {
    Event e;
    e.kind = EventKind::iret;
    e.insn_len = len;
    return e;
}

/// `v` gets the tables, IDT (interrupt gates to handler(n), CS 8) and GDT in
/// `m`'s memory; long mode gets 16-byte gates and 4-level paging, legacy
/// mode 8-byte gates and a 4 MiB PSE page.
void give_guest_an_idt(Machine& m, arch::Vmcb& v, bool long_mode) {
    ASSERT_TRUE(m.mem.map(kPml4, 0x4000) && m.mem.map(kIdt, 0x3000) && m.mem.map(kHandlers));
    const unsigned gate = long_mode ? 16 : 8;
    for (unsigned n = 0; n < 32; ++n) {
        const std::uint64_t h = handler(n);
        const std::uint64_t lo =
            (h & 0xFFFF) | (std::uint64_t{kCode} << 16) | (std::uint64_t{0x8E} << 40) | (((h >> 16) & 0xFFFF) << 48);
        ASSERT_TRUE(m.mem.write_u64(kIdt + n * gate, lo));
        if (long_mode) {
            ASSERT_TRUE(m.mem.write_u64(kIdt + n * gate + 8, h >> 32));
        }
    }
    ASSERT_TRUE(m.mem.write_u64(kGdt + kCode, long_mode ? kCode64 : kCode32) && m.mem.write_u64(kGdt + kData, kData32) &&
                m.mem.write_u64(kGdt + kAbsentCode, kAbsent64));
    if (long_mode) {
        ASSERT_TRUE(m.mem.write_u64(kPml4, (kPml4 + 0x1000) | 7) && m.mem.write_u64(kPml4 + 0x1000, (kPml4 + 0x2000) | 7) &&
                    m.mem.write_u64(kPml4 + 0x2000, 0x87));  // a 2 MiB page at 0: P, RW, US, PS
        v.set(FieldId::cr3, kPml4);
    } else {
        ASSERT_TRUE(m.mem.write_u64(kPd32, 0x87));  // a 4 MiB page at 0 (CR4.PSE)
        v.set(FieldId::cr3, kPd32);
    }
    v.set_segment(arch::Seg::idtr, {0, 0, 32 * gate - 1, kIdt});
    v.set_segment(arch::Seg::gdtr, {0, 0, 0x1F, kGdt});
    v.set_segment(arch::Seg::ss, {kData, 0xC93, 0xFFFFFFFF, 0});
    v.set(FieldId::rip, kReturnRip);
}

/// A 64-bit guest with an IDT, no VMMCALL intercept, and `intercepts`.
arch::Vmcb guest_with_idt(Machine& m, std::initializer_list<unsigned> intercepts = {}) {
    arch::Vmcb v = guest64();
    give_guest_an_idt(m, v, true);
    v.set(FieldId::rsp, kStackTop - 0x88);  // not 16-byte aligned: delivery aligns, IRET restores
    v.set(FieldId::rflags, 0x203);          // IF, CF
    for (unsigned b : intercepts) v.set_intercept(b);
    return v;
}

/// Writes an IRETQ frame (RIP, CS, RFLAGS, RSP, SS) at `at` and points the
/// guest's RSP there: a handler about to return.
void put_iretq_frame(Machine& m, std::uint64_t at, std::array<std::uint64_t, 5> frame) {
    for (std::size_t i = 0; i < frame.size(); ++i) ASSERT_TRUE(m.mem.write_u64(at + 8 * i, frame[i]));
    m.cpu.regs().rsp = at;
}

Event general_protection(std::uint32_t error_code) {
    Event e;
    e.kind = EventKind::exception;
    e.index = 13;
    e.error_code = error_code;
    return e;
}

TEST(SvmCpuIret, LongModeIretqPopsExactlyTheFrameDeliveryPushed) {
    Machine m;
    arch::Vmcb v = guest_with_idt(m);
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    const Registers before = m.cpu.regs();

    const auto d = m.cpu.guest_event(general_protection(0x10));
    ASSERT_EQ(d.outcome, SvmOutcome::delivered) << d.note;
    ASSERT_EQ(d.delivery, Delivery::through_idt);
    ASSERT_EQ(m.cpu.regs().rip, handler(13));
    // RSP aligned down to 16, then SS, RSP, RFLAGS, CS, RIP, error code.
    const std::uint64_t frame = ((kStackTop - 0x88) & ~std::uint64_t{0xF}) - 48;
    ASSERT_EQ(m.cpu.regs().rsp, frame);
    ASSERT_EQ(m.cpu.regs().rflags, 0x3U);  // the interrupt gate cleared IF

    m.cpu.regs().rsp += 8;  // the handler pops the error code (ADD RSP, 8)
    const auto r = m.cpu.guest_event(iret(2));
    ASSERT_EQ(r.outcome, SvmOutcome::no_exit) << r.note;
    EXPECT_EQ(m.cpu.regs(), before);  // RIP, CS, RFLAGS, RSP and SS back, nothing else touched
    EXPECT_TRUE(m.cpu.in_guest());
}

TEST(SvmCpuIret, LegacyIretdPopsEipCsEflagsAndLeavesSsEsp) {
    Machine m;
    arch::Vmcb v = checks::test::valid_vmcb_legacy32();
    give_guest_an_idt(m, v, false);
    v.set(FieldId::rsp, kStackTop - 0x86);  // legacy delivery does not align
    v.set(FieldId::rflags, 0x246);          // IF, ZF, PF
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    const Registers before = m.cpu.regs();

    ASSERT_EQ(m.cpu.guest_event(general_protection(0x18)).delivery, Delivery::through_idt);
    ASSERT_EQ(m.cpu.regs().rip, handler(13));
    ASSERT_EQ(m.cpu.regs().rsp, kStackTop - 0x86 - 16);  // EFLAGS, CS, EIP, error code: 4 bytes each

    m.cpu.regs().rsp += 4;
    const auto r = m.cpu.guest_event(iret(1));
    ASSERT_EQ(r.outcome, SvmOutcome::no_exit) << r.note;
    EXPECT_EQ(m.cpu.regs(), before);
}

TEST(SvmCpuIret, InterceptedIretExitsBeforeItExecutesAndLeavesVnmiBlocked) {
    Machine m;
    arch::Vmcb v = guest_with_idt(m, {ic::IRET, ic::NMI});
    v.set(FieldId::int_ctl, ictl::V_NMI_ENABLE | ictl::V_NMI_BLOCKING);
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    put_iretq_frame(m, kStackTop - 0x100, {0x400100, kCode, 0x202, kStackTop - 0x40, kData});
    const std::uint64_t rsp = m.cpu.regs().rsp;

    const auto r = m.cpu.guest_event(iret(2));
    ASSERT_EQ(r.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(r.exit_code, ec::IRET);
    const arch::Vmcb out = m.vmcb();
    EXPECT_EQ(out.get(FieldId::exit_code), 0x74U);
    EXPECT_EQ(out.get(FieldId::rip), kReturnRip);  // at the IRET: it did not execute
    EXPECT_EQ(out.get(FieldId::rsp), rsp);
    EXPECT_EQ(out.get(FieldId::next_rip), kReturnRip + 2);  // APM 15.7.1: nRIP past IRETQ
    // The IRET did not complete, so virtual NMIs stay blocked (15.21.10).
    EXPECT_EQ(out.get(FieldId::int_ctl) & ictl::V_NMI_BLOCKING, ictl::V_NMI_BLOCKING);
}

TEST(SvmCpuIret, IretClearsVnmiBlockingAndThePendingVnmiIsTakenAfterIt) {
    Machine m;
    arch::Vmcb v = guest_with_idt(m, {ic::NMI, ic::HLT});  // V_NMI_ENABLE needs the NMI intercept
    v.set(FieldId::int_ctl, ictl::V_NMI_ENABLE | ictl::V_NMI_PENDING);
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    const std::uint64_t rsp0 = m.cpu.regs().rsp;

    // The first virtual NMI is taken: V_NMI -> V_NMI_MASK.
    auto r = m.cpu.poll();
    ASSERT_EQ(r.outcome, SvmOutcome::delivered);
    ASSERT_EQ(m.cpu.regs().rip, handler(2));

    // The handler halts, the VMM posts a second virtual NMI and resumes it:
    // held while the first one's handler runs.
    ASSERT_EQ(m.cpu.guest_event(Event{.kind = EventKind::hlt}).exit_code, ec::HLT);
    arch::Vmcb again = m.vmcb();
    EXPECT_EQ(again.get(FieldId::int_ctl) & (ictl::V_NMI_PENDING | ictl::V_NMI_BLOCKING), ictl::V_NMI_BLOCKING);
    again.set(FieldId::int_ctl, again.get(FieldId::int_ctl) | ictl::V_NMI_PENDING);
    ASSERT_EQ(m.enter(again).outcome, SvmOutcome::entered_guest);
    EXPECT_EQ(m.cpu.poll().outcome, SvmOutcome::nothing);
    EXPECT_EQ(m.cpu.regs().rip, handler(2));

    // IRETQ returns to the interrupted code and unblocks virtual NMIs; the
    // pending one is not taken inside the IRET, but at the next boundary.
    r = m.cpu.guest_event(iret(2));
    ASSERT_EQ(r.outcome, SvmOutcome::no_exit) << r.note;
    EXPECT_EQ(m.cpu.regs().rip, kReturnRip);
    EXPECT_EQ(m.cpu.regs().rsp, rsp0);
    EXPECT_EQ(m.cpu.vmcb().get(FieldId::int_ctl) & (ictl::V_NMI_PENDING | ictl::V_NMI_BLOCKING), ictl::V_NMI_PENDING);

    r = m.cpu.poll();
    ASSERT_EQ(r.outcome, SvmOutcome::delivered);
    EXPECT_EQ(r.vector, 2);
    EXPECT_EQ(m.cpu.regs().rip, handler(2));
    EXPECT_EQ(m.cpu.vmcb().get(FieldId::int_ctl) & (ictl::V_NMI_PENDING | ictl::V_NMI_BLOCKING), ictl::V_NMI_BLOCKING);
    // The frame's return address is the IRET's target: the NMI came after it.
    std::uint64_t pushed_rip = 0;
    ASSERT_TRUE(m.mem.read_u64(m.cpu.regs().rsp, pushed_rip));
    EXPECT_EQ(pushed_rip, kReturnRip);
}

TEST(SvmCpuIret, IretWithoutNmiVirtualizationLeavesIntCtlAlone) {
    Machine m;
    arch::Vmcb v = guest_with_idt(m);
    v.set(FieldId::int_ctl, ictl::V_NMI_BLOCKING | ictl::V_INTR_MASKING);  // no V_NMI_ENABLE: the bit is not the CPU's
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    put_iretq_frame(m, kStackTop - 0x100, {0x400100, kCode, 0x202, kStackTop - 0x40, kData});
    ASSERT_EQ(m.cpu.guest_event(iret(2)).outcome, SvmOutcome::no_exit);
    EXPECT_EQ(m.cpu.vmcb().get(FieldId::int_ctl), ictl::V_NMI_BLOCKING | ictl::V_INTR_MASKING);
}

TEST(SvmCpuIret, EventInjOfAnNmiSetsVnmiBlockingUnderNmiVirtualization) {
    for (const bool vnmi : {false, true}) {
        SCOPED_TRACE(vnmi ? "V_NMI_ENABLE" : "no V_NMI_ENABLE");
        Machine m;
        arch::Vmcb v = guest_with_idt(m, {ic::NMI});
        v.set(FieldId::int_ctl, vnmi ? ictl::V_NMI_ENABLE : 0);
        v.set(FieldId::event_inj, arch::event::V | (2U << arch::event::kTypeShift) | 2U);
        const auto r = m.enter(v);
        ASSERT_EQ(r.outcome, SvmOutcome::entered_guest);
        ASSERT_EQ(r.delivery, Delivery::through_idt);
        EXPECT_EQ(m.cpu.regs().rip, handler(2));
        EXPECT_EQ(m.cpu.vmcb().get(FieldId::int_ctl) & ictl::V_NMI_BLOCKING, vnmi ? ictl::V_NMI_BLOCKING : 0U);
        // The handler's IRET unblocks them again.
        ASSERT_EQ(m.cpu.guest_event(iret(2)).outcome, SvmOutcome::no_exit);
        EXPECT_EQ(m.cpu.vmcb().get(FieldId::int_ctl) & ictl::V_NMI_BLOCKING, 0U);
        EXPECT_EQ(m.cpu.regs().rip, kReturnRip);
    }
}

TEST(SvmCpuIret, ExitWhileDeliveringTheVirtualNmiSavesVnmiMaskAsZero) {
    Machine m;
    arch::Vmcb v = guest_with_idt(m, {ic::NMI, ic::exception(13)});
    v.set_segment(arch::Seg::idtr, {0, 0, 2 * 16 - 1, kIdt});  // gates 0 and 1: vector 2's is beyond the limit
    v.set(FieldId::int_ctl, ictl::V_NMI_ENABLE | ictl::V_NMI_PENDING);
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    const auto r = m.cpu.poll();
    ASSERT_EQ(r.outcome, SvmOutcome::vmexit);
    const arch::Vmcb out = m.vmcb();
    EXPECT_EQ(out.get(FieldId::exit_code), ec::EXCP_BASE + 13);
    EXPECT_EQ(out.get(FieldId::exit_info_1), 2U * 8 + 2 + 1);  // IDT, EXT: the gate of vector 2
    EXPECT_EQ(out.get(FieldId::exit_int_info), arch::event::V | (2U << arch::event::kTypeShift) | 2U);
    EXPECT_EQ(out.get(FieldId::int_ctl) & (ictl::V_NMI_PENDING | ictl::V_NMI_BLOCKING), 0U);
}

TEST(SvmCpuIret, NotPresentCodeSegmentIsNpWithTheSelectorAndChangesNothing) {
    for (const std::uint16_t cs : {kCode, kAbsentCode}) {
        SCOPED_TRACE(cs);
        Machine m;
        ASSERT_EQ(m.enter(guest_with_idt(m, {ic::exception(11)})).outcome, SvmOutcome::entered_guest);
        put_iretq_frame(m, kStackTop - 0x100, {0x400100, cs, 0x202, kStackTop - 0x40, kData});
        const auto r = m.cpu.guest_event(iret(2));
        if (cs == kCode) {
            EXPECT_EQ(r.outcome, SvmOutcome::no_exit);
            EXPECT_EQ(m.cpu.regs().rip, 0x400100U);
            continue;
        }
        ASSERT_EQ(r.outcome, SvmOutcome::vmexit);
        const arch::Vmcb out = m.vmcb();
        EXPECT_EQ(out.get(FieldId::exit_code), ec::EXCP_BASE + 11);
        EXPECT_EQ(out.get(FieldId::exit_info_1), kAbsentCode);  // #NP(selector), EXT = 0
        EXPECT_EQ(out.get(FieldId::rip), kReturnRip);         // a fault: at the IRET
        EXPECT_EQ(out.get(FieldId::rsp), kStackTop - 0x100);
        EXPECT_EQ(out.segment(arch::Seg::cs).selector, kCode);
    }
}

TEST(SvmCpuIret, NonCanonicalReturnRipIsGpZeroInLongMode) {
    for (const std::uint64_t rip : {0x00007FFFFFFFF000ULL, 0x0000800000000000ULL}) {
        SCOPED_TRACE(rip);
        Machine m;
        ASSERT_EQ(m.enter(guest_with_idt(m, {ic::exception(13)})).outcome, SvmOutcome::entered_guest);
        put_iretq_frame(m, kStackTop - 0x100, {rip, kCode, 0x202, kStackTop - 0x40, kData});
        const auto r = m.cpu.guest_event(iret(2));
        if (rip == 0x00007FFFFFFFF000ULL) {  // the highest canonical page: IRET completes
            EXPECT_EQ(r.outcome, SvmOutcome::no_exit);
            EXPECT_EQ(m.cpu.regs().rip, rip);
            continue;
        }
        ASSERT_EQ(r.outcome, SvmOutcome::vmexit);
        const arch::Vmcb out = m.vmcb();
        EXPECT_EQ(out.get(FieldId::exit_code), ec::EXCP_BASE + 13);
        EXPECT_EQ(out.get(FieldId::exit_info_1), 0U);
        EXPECT_EQ(out.get(FieldId::rip), kReturnRip);
        EXPECT_EQ(out.get(FieldId::rsp), kStackTop - 0x100);
    }
}

TEST(SvmCpuIret, RflagsTakesTheWritableBitsAtCplZeroAndForcesBitOne) {
    Machine m;
    ASSERT_EQ(m.enter(guest_with_idt(m)).outcome, SvmOutcome::entered_guest);
    // Every bit set in the popped image: VM and the reserved bits are not
    // loaded, bit 1 reads as 1; at CPL 0 IF, IOPL, VIF and VIP are.
    put_iretq_frame(m, kStackTop - 0x100, {0x400100, kCode, ~std::uint64_t{0}, kStackTop - 0x40, kData});
    ASSERT_EQ(m.cpu.guest_event(iret(2)).outcome, SvmOutcome::no_exit);
    EXPECT_EQ(m.cpu.regs().rflags, 0x3D7FD7U);
    EXPECT_EQ(m.cpu.regs().rsp, kStackTop - 0x40);
}

TEST(SvmCpuIret, NestedTaskFlagIsGpZeroInLongMode) {
    Machine m;
    arch::Vmcb v = guest_with_idt(m, {ic::exception(13)});
    v.set(FieldId::rflags, 0x2 | arch::rflags::NT);
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    put_iretq_frame(m, kStackTop - 0x100, {0x400100, kCode, 0x202, kStackTop - 0x40, kData});
    const auto r = m.cpu.guest_event(iret(2));
    ASSERT_EQ(r.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(r.exit_code, ec::EXCP_BASE + 13);
    EXPECT_EQ(m.vmcb().get(FieldId::exit_info_1), 0U);
}

}  // namespace
}  // namespace nsvm::cpu::test
