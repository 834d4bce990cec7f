// Event gating, one test per case of APM 15.17 (the GIF table) and the
// sections it leads to (APM 15.21, 15.22, 15.29-15.30, 15.33.2; docs/cpu.md
// "Event gating"): GIF, RFLAGS.IF, the interrupt shadow,
// V_INTR_MASKING and the intercepts decide #VMEXIT, delivery or pending.
#include "cpu/svm_cpu_fixture.hpp"

using namespace nsvm;
using namespace nsvm::cpu::test;
using arch::FieldId;
using cpu::Event;
using cpu::EventKind;
using cpu::Signal;
using cpu::SvmOutcome;
namespace ic = arch::intercept;
namespace ec = arch::exit_code;
namespace ictl = arch::int_ctl;

namespace {
constexpr std::uint32_t pend(Signal s) { return 1U << static_cast<unsigned>(s); }

/// A machine with a guest running on `v` (GIF = 1 after VMRUN).
struct InGuest : Machine {
    explicit InGuest(const arch::Vmcb& v, checks::CpuModel model = checks::default_model())
        : Machine(checks::ProfileId::apm, std::move(model)) {
        const auto r = enter(v);
        EXPECT_EQ(r.outcome, SvmOutcome::entered_guest) << (r.failed_check ? r.failed_check->id : "");
    }
};

arch::Vmcb with_intercepts(std::initializer_list<unsigned> bits) {
    arch::Vmcb v = guest64();
    for (unsigned b : bits) v.set_intercept(b);
    return v;
}
}  // namespace

// --- GIF = 0 column --------------------------------------------------------------

TEST(Gating, Gif0HoldsIntrNmiSmiInitAndDiscardsInternalSmi) {
    Machine m;
    m.cpu.regs().rflags |= arch::rflags::IF;
    ASSERT_EQ(m.cpu.clgi().outcome, SvmOutcome::completed);
    for (Signal s : {Signal::intr, Signal::nmi, Signal::smi, Signal::init})
        EXPECT_EQ(m.cpu.signal(s).outcome, SvmOutcome::held_pending);
    EXPECT_EQ(m.cpu.pending(), pend(Signal::intr) | pend(Signal::nmi) | pend(Signal::smi) | pend(Signal::init));
    EXPECT_EQ(m.cpu.signal(Signal::smi_internal).outcome, SvmOutcome::discarded);
    EXPECT_FALSE(m.cpu.smm());
}

TEST(Gating, HeldEventsAreTakenAtStgiInPriorityOrder) {
    Machine m;
    m.cpu.regs().rflags |= arch::rflags::IF;
    ASSERT_EQ(m.cpu.clgi().outcome, SvmOutcome::completed);
    (void)m.cpu.signal(Signal::intr, 0x31);
    (void)m.cpu.signal(Signal::nmi);
    auto r = m.cpu.stgi();
    EXPECT_EQ(r.outcome, SvmOutcome::delivered);  // NMI before INTR
    EXPECT_EQ(r.vector, 2);
    r = m.cpu.poll();
    EXPECT_EQ(r.outcome, SvmOutcome::delivered);
    EXPECT_EQ(r.vector, 0x31);
    EXPECT_EQ(m.cpu.pending(), 0U);
}

TEST(Gating, AfterVmexitGifIs0SoAnIntrWaitsForStgi) {
    InGuest m(with_intercepts({ic::INTR}));
    m.cpu.regs().rflags |= arch::rflags::IF;
    auto r = m.cpu.signal(Signal::intr, 0x40);
    ASSERT_EQ(r.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(r.exit_code, ec::INTR);
    EXPECT_EQ(m.cpu.pending(), pend(Signal::intr));  // stays pending
    EXPECT_EQ(m.cpu.poll().outcome, SvmOutcome::held_pending);  // host, GIF = 0
    m.cpu.regs().rflags |= arch::rflags::IF;
    r = m.cpu.stgi();
    EXPECT_EQ(r.outcome, SvmOutcome::delivered);
    EXPECT_FALSE(r.in_guest);
    EXPECT_EQ(r.vector, 0x40);
}

// --- INTR (GIF = 1) ------------------------------------------------------------------

TEST(Gating, HostIntrFollowsIf) {
    Machine m;
    m.cpu.regs().rflags &= ~arch::rflags::IF;
    EXPECT_EQ(m.cpu.signal(Signal::intr).outcome, SvmOutcome::held_pending);
    m.cpu.regs().rflags |= arch::rflags::IF;
    EXPECT_EQ(m.cpu.poll().outcome, SvmOutcome::delivered);
}

TEST(Gating, InterceptedIntrWithVIntrMaskingFollowsHostIfNotGuestIfOrShadow) {
    arch::Vmcb v = with_intercepts({ic::INTR});
    v.set(FieldId::int_ctl, ictl::V_INTR_MASKING);
    v.set(FieldId::int_state, arch::int_state::INTERRUPT_SHADOW);  // guest IF = 0 (rflags 2)
    {
        Machine m;
        m.cpu.regs().rflags |= arch::rflags::IF;  // host IF = 1 at VMRUN
        ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
        auto r = m.cpu.signal(Signal::intr);
        EXPECT_EQ(r.outcome, SvmOutcome::vmexit);
        EXPECT_EQ(r.exit_code, ec::INTR);
    }
    {
        Machine m;
        m.cpu.regs().rflags &= ~arch::rflags::IF;  // host IF = 0 at VMRUN
        arch::Vmcb w = v;
        w.set(FieldId::rflags, 2 | arch::rflags::IF);
        ASSERT_EQ(m.enter(w).outcome, SvmOutcome::entered_guest);
        EXPECT_EQ(m.cpu.signal(Signal::intr).outcome, SvmOutcome::held_pending);
    }
}

TEST(Gating, InterceptedIntrWithoutVIntrMaskingFollowsGuestIf) {
    InGuest m(with_intercepts({ic::INTR}));  // guest RFLAGS.IF = 0
    EXPECT_EQ(m.cpu.signal(Signal::intr).outcome, SvmOutcome::held_pending);
    m.cpu.regs().rflags |= arch::rflags::IF;
    EXPECT_EQ(m.cpu.poll().exit_code, ec::INTR);
}

TEST(Gating, UninterceptedIntrDeliveredToGuestWhenIfAndNoShadow) {
    arch::Vmcb v = guest64();
    v.set(FieldId::rflags, 2 | arch::rflags::IF);
    v.set(FieldId::int_state, arch::int_state::INTERRUPT_SHADOW);
    InGuest m(v);
    EXPECT_EQ(m.cpu.signal(Signal::intr, 0x55).outcome, SvmOutcome::held_pending);  // shadow
    Event nop;
    nop.kind = EventKind::pause;
    ASSERT_EQ(m.cpu.guest_event(nop).outcome, SvmOutcome::no_exit);  // the shadow ends
    auto r = m.cpu.poll();
    EXPECT_EQ(r.outcome, SvmOutcome::delivered);
    EXPECT_TRUE(r.in_guest);
    EXPECT_EQ(r.vector, 0x55);
}

// --- NMI -------------------------------------------------------------------------------

TEST(Gating, NmiInterceptedExitsAndStaysPendingElseDelivered) {
    {
        InGuest m(with_intercepts({ic::NMI}));
        auto r = m.cpu.signal(Signal::nmi);
        EXPECT_EQ(r.exit_code, ec::NMI);
        EXPECT_EQ(m.cpu.pending(), pend(Signal::nmi));
    }
    {
        InGuest m(guest64());
        auto r = m.cpu.signal(Signal::nmi);
        EXPECT_EQ(r.outcome, SvmOutcome::delivered);
        EXPECT_TRUE(r.in_guest);
        EXPECT_EQ(r.vector, 2);
        EXPECT_EQ(m.cpu.pending(), 0U);
    }
}

TEST(Gating, NmiWaitsForTheShadowUnlessIntercepted) {
    arch::Vmcb v = guest64();
    v.set(FieldId::int_state, arch::int_state::INTERRUPT_SHADOW);
    {
        InGuest m(v);
        EXPECT_EQ(m.cpu.signal(Signal::nmi).outcome, SvmOutcome::held_pending);
        Event nop;
        nop.kind = EventKind::pause;
        ASSERT_EQ(m.cpu.guest_event(nop).outcome, SvmOutcome::no_exit);
        EXPECT_EQ(m.cpu.poll().vector, 2);
    }
    v.set_intercept(ic::NMI);
    InGuest m(v);
    EXPECT_EQ(m.cpu.signal(Signal::nmi).exit_code, ec::NMI);
}

TEST(Gating, GuestExitReportsVmexitWithExitInfoOverload) {
    InGuest m(guest64());
    cpu::ExitInfo x;
    x.code = ec::HLT;
    x.next_rip = 0x400001;
    auto r = m.cpu.vmexit(x);
    EXPECT_EQ(r.exit_code, ec::HLT);
    EXPECT_EQ(m.vmcb().get(FieldId::next_rip), 0x400001U);
    EXPECT_EQ(m.cpu.vmexit(x).outcome, SvmOutcome::nothing);  // no guest any more
}

// --- SMI ------------------------------------------------------------------------------

TEST(Gating, SmiInterceptedExternalStaysPendingInternalConsumed) {
    {
        InGuest m(with_intercepts({ic::SMI}));
        EXPECT_EQ(m.cpu.signal(Signal::smi).exit_code, ec::SMI);
        EXPECT_EQ(m.cpu.pending(), pend(Signal::smi));
    }
    {
        InGuest m(with_intercepts({ic::SMI}));
        EXPECT_EQ(m.cpu.signal(Signal::smi_internal).exit_code, ec::SMI);
        EXPECT_EQ(m.cpu.pending(), 0U);
    }
}

TEST(Gating, SmiNotInterceptedOrSmmLockEntersSmmInGuestContext) {
    {
        InGuest m(guest64());
        auto r = m.cpu.signal(Signal::smi);
        EXPECT_EQ(r.outcome, SvmOutcome::smm_entered);
        EXPECT_TRUE(r.in_guest);
        EXPECT_TRUE(m.cpu.smm());
    }
    {
        InGuest m(with_intercepts({ic::SMI}));
        m.cpu.msrs().hwcr |= 1;  // SMMLOCK: the SMI intercept is ignored (15.13.3)
        EXPECT_EQ(m.cpu.signal(Signal::smi).outcome, SvmOutcome::smm_entered);
    }
}

// --- INIT -----------------------------------------------------------------------------

TEST(Gating, InitInterceptedExitsAndStaysPending) {
    InGuest m(with_intercepts({ic::INIT}));
    auto r = m.cpu.signal(Signal::init);
    EXPECT_EQ(r.exit_code, ec::INIT);
    EXPECT_EQ(m.cpu.pending(), pend(Signal::init));
}

TEST(Gating, InitNotInterceptedWithoutRInitIsTaken) {
    InGuest m(guest64());
    EXPECT_EQ(m.cpu.signal(Signal::init).outcome, SvmOutcome::init_taken);
    EXPECT_EQ(m.cpu.pending(), 0U);
}

TEST(Gating, InitNotInterceptedWithRInitBecomesSx) {
    {
        InGuest m(guest64());
        m.cpu.msrs().vm_cr |= arch::vm_cr::R_INIT;
        auto r = m.cpu.signal(Signal::init);
        EXPECT_EQ(r.outcome, SvmOutcome::delivered);
        EXPECT_EQ(r.vector, 30);
        EXPECT_EQ(r.error_code, 1U);
        EXPECT_EQ(m.cpu.pending(), 0U);  // consumed
    }
    {
        InGuest m(with_intercepts({ic::exception(30)}));
        m.cpu.msrs().vm_cr |= arch::vm_cr::R_INIT;
        auto r = m.cpu.signal(Signal::init);
        EXPECT_EQ(r.exit_code, ec::EXCP_BASE + 30);
        EXPECT_EQ(r.exit_info_1, 1U);
    }
    {
        Machine host;  // the VMM itself: #SX(1) in the host
        host.cpu.msrs().vm_cr |= arch::vm_cr::R_INIT;
        auto r = host.cpu.signal(Signal::init);
        EXPECT_EQ(r.outcome, SvmOutcome::exception);
        EXPECT_EQ(r.vector, 30);
    }
}

TEST(Gating, InitClearsSvmdisUnlessLocked) {
    Machine m;
    m.cpu.msrs().vm_cr = arch::vm_cr::SVMDIS;
    EXPECT_EQ(m.cpu.signal(Signal::init).outcome, SvmOutcome::init_taken);
    EXPECT_EQ(m.cpu.msrs().vm_cr, 0U);
    m.cpu.msrs().vm_cr = arch::vm_cr::SVMDIS | arch::vm_cr::LOCK;
    (void)m.cpu.signal(Signal::init);
    EXPECT_EQ(m.cpu.msrs().vm_cr, arch::vm_cr::SVMDIS | arch::vm_cr::LOCK);
}

// --- Virtual interrupts (V_IRQ, V_INTR_PRIO, V_TPR, V_IGN_TPR) -----------------------------

namespace {
arch::Vmcb virq(std::uint64_t prio, std::uint64_t tpr, bool ign_tpr, bool guest_if) {
    arch::Vmcb v = guest64();
    v.set(FieldId::int_ctl, ictl::V_INTR_MASKING | ictl::V_IRQ | (prio << 16) | tpr | (ign_tpr ? ictl::V_IGN_TPR : 0));
    v.set(FieldId::int_vector, 0x77);
    v.set(FieldId::rflags, 2 | (guest_if ? arch::rflags::IF : 0));
    return v;
}
}  // namespace

TEST(Gating, VirtualInterruptPriorityAgainstVTpr) {
    {
        InGuest m(virq(5, 4, false, true));
        auto r = m.cpu.poll();
        EXPECT_EQ(r.outcome, SvmOutcome::delivered);
        EXPECT_EQ(r.vector, 0x77);
        EXPECT_EQ(m.cpu.vmcb().get(FieldId::int_ctl) & ictl::V_IRQ, 0U);  // taken: V_IRQ cleared
    }
    {
        InGuest m(virq(4, 4, false, true));  // equal priority: not taken
        EXPECT_EQ(m.cpu.poll().outcome, SvmOutcome::nothing);
    }
    {
        InGuest m(virq(1, 9, true, true));  // V_IGN_TPR
        EXPECT_EQ(m.cpu.poll().outcome, SvmOutcome::delivered);
    }
}

TEST(Gating, VirtualInterruptNeedsGuestIfNoShadowAndExitsOnVintr) {
    {
        InGuest m(virq(5, 0, false, false));
        EXPECT_EQ(m.cpu.poll().outcome, SvmOutcome::nothing);
    }
    {
        arch::Vmcb v = virq(5, 0, false, true);
        v.set(FieldId::int_state, arch::int_state::INTERRUPT_SHADOW);
        InGuest m(v);
        EXPECT_EQ(m.cpu.poll().outcome, SvmOutcome::nothing);
    }
    {
        arch::Vmcb v = virq(5, 0, false, true);
        v.set_intercept(ic::VINTR);
        InGuest m(v);
        auto r = m.cpu.poll();
        EXPECT_EQ(r.exit_code, ec::VINTR);
        EXPECT_NE(m.vmcb().get(FieldId::int_ctl) & ictl::V_IRQ, 0U);  // not taken: V_IRQ written back set
    }
}

TEST(Gating, PhysicalInterruptBeforeVirtual) {
    arch::Vmcb v = virq(5, 0, false, true);
    v.set(FieldId::int_ctl, v.get(FieldId::int_ctl) & ~ictl::V_INTR_MASKING);
    InGuest m(v);
    (void)m.cpu.signal(Signal::intr, 0x21);  // delivered at once, ahead of V_IRQ
    EXPECT_NE(m.cpu.vmcb().get(FieldId::int_ctl) & ictl::V_IRQ, 0U);
    EXPECT_EQ(m.cpu.poll().vector, 0x77);
}

// --- vGIF and vNMI --------------------------------------------------------------------

TEST(Gating, VgifGatesVirtualInterruptAndGuestStgiClgiToggleIt) {
    arch::Vmcb v = virq(5, 0, false, true);
    v.set(FieldId::int_ctl, v.get(FieldId::int_ctl) | ictl::V_GIF_ENABLE);  // V_GIF = 0
    InGuest m(v);
    EXPECT_EQ(m.cpu.poll().outcome, SvmOutcome::nothing);
    Event stgi;
    stgi.kind = EventKind::stgi;
    stgi.insn_len = 3;
    ASSERT_EQ(m.cpu.guest_event(stgi).outcome, SvmOutcome::no_exit);
    EXPECT_TRUE(m.cpu.gif());  // the real GIF is untouched
    EXPECT_NE(m.cpu.vmcb().get(FieldId::int_ctl) & ictl::V_GIF, 0U);
    EXPECT_EQ(m.cpu.poll().outcome, SvmOutcome::delivered);
    Event clgi = stgi;
    clgi.kind = EventKind::clgi;
    ASSERT_EQ(m.cpu.guest_event(clgi).outcome, SvmOutcome::no_exit);
    EXPECT_EQ(m.cpu.vmcb().get(FieldId::int_ctl) & ictl::V_GIF, 0U);
    EXPECT_TRUE(m.cpu.gif());
}

TEST(Gating, GuestClgiWithoutVgifClearsTheRealGif) {
    InGuest m(guest64());
    Event clgi;
    clgi.kind = EventKind::clgi;
    ASSERT_EQ(m.cpu.guest_event(clgi).outcome, SvmOutcome::no_exit);
    EXPECT_FALSE(m.cpu.gif());
    EXPECT_EQ(m.cpu.signal(Signal::nmi).outcome, SvmOutcome::held_pending);
}

TEST(Gating, InterceptedGuestClgiExits) {
    InGuest m(with_intercepts({ic::CLGI}));
    Event clgi;
    clgi.kind = EventKind::clgi;
    clgi.insn_len = 3;
    auto r = m.cpu.guest_event(clgi);
    EXPECT_EQ(r.exit_code, ec::CLGI);
    EXPECT_EQ(m.vmcb().get(FieldId::next_rip), guest64().get(FieldId::rip) + 3);
}

TEST(Gating, VirtualNmiTakenWhenUnmaskedThenMasked) {
    arch::Vmcb v = with_intercepts({ic::NMI});  // V1: vNMI needs the NMI intercept
    v.set(FieldId::int_ctl, ictl::V_NMI_ENABLE | ictl::V_NMI_PENDING);
    InGuest m(v);
    auto r = m.cpu.poll();
    EXPECT_EQ(r.outcome, SvmOutcome::delivered);
    EXPECT_EQ(r.vector, 2);
    const auto ctl = m.cpu.vmcb().get(FieldId::int_ctl);
    EXPECT_EQ(ctl & ictl::V_NMI_PENDING, 0U);
    EXPECT_NE(ctl & ictl::V_NMI_BLOCKING, 0U);
    EXPECT_EQ(m.cpu.poll().outcome, SvmOutcome::nothing);
}

TEST(Gating, VirtualNmiBlockedByMaskAndByVgif) {
    {
        arch::Vmcb v = with_intercepts({ic::NMI});
        v.set(FieldId::int_ctl, ictl::V_NMI_ENABLE | ictl::V_NMI_PENDING | ictl::V_NMI_BLOCKING);
        InGuest m(v);
        EXPECT_EQ(m.cpu.poll().outcome, SvmOutcome::nothing);
    }
    {
        arch::Vmcb v = with_intercepts({ic::NMI});
        v.set(FieldId::int_ctl, ictl::V_NMI_ENABLE | ictl::V_NMI_PENDING | ictl::V_GIF_ENABLE);
        InGuest m(v);
        EXPECT_EQ(m.cpu.poll().outcome, SvmOutcome::nothing);
    }
}
