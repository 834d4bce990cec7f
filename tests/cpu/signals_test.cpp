// cpu/signals.hpp: the one rule for INTR, NMI, SMI and INIT (APM 15.17,
// 15.21, 15.22), each input at the point where it changes the answer.
#include <gtest/gtest.h>

#include "nsvm/cpu/signals.hpp"

using namespace nsvm::cpu;

namespace {
constexpr SignalState open_host() { return SignalState{true, false, false, false, true}; }
}  // namespace

TEST(SignalRule, Gif0HoldsEverySignalWhateverElseHolds) {
    for (const Signal s : kSignalPriority) {
        SignalState st = open_host();
        EXPECT_EQ(signal_action(s, st), SignalAction::take);
        st.gif = false;
        EXPECT_EQ(signal_action(s, st), SignalAction::hold);
        st.intercepted = true;
        EXPECT_EQ(signal_action(s, st), SignalAction::hold);
    }
}

TEST(SignalRule, SmmHoldsSmiAndInitButNotNmiOrIntr) {
    SignalState st = open_host();
    st.smm = true;
    EXPECT_EQ(signal_action(Signal::smi, st), SignalAction::hold);
    EXPECT_EQ(signal_action(Signal::init, st), SignalAction::hold);
    EXPECT_EQ(signal_action(Signal::nmi, st), SignalAction::take);
    EXPECT_EQ(signal_action(Signal::intr, st), SignalAction::take);
}

TEST(SignalRule, AnInterceptedNmiOrIntrExitsEvenInAShadowAnUninterceptedOneWaits) {
    for (const Signal s : {Signal::nmi, Signal::intr}) {
        SignalState st = open_host();
        st.shadow = true;
        EXPECT_EQ(signal_action(s, st), SignalAction::hold);
        st.intercepted = true;
        EXPECT_EQ(signal_action(s, st), SignalAction::vmexit);
    }
    // SMI and INIT ignore the interrupt shadow.
    SignalState st = open_host();
    st.shadow = true;
    EXPECT_EQ(signal_action(Signal::smi, st), SignalAction::take);
    EXPECT_EQ(signal_action(Signal::init, st), SignalAction::take);
}

TEST(SignalRule, AMaskedIntrIsHeldEvenWhenIntercepted) {
    SignalState st = open_host();
    st.intr_unmasked = false;
    st.intercepted = true;
    EXPECT_EQ(signal_action(Signal::intr, st), SignalAction::hold);
    EXPECT_EQ(signal_action(Signal::nmi, st), SignalAction::vmexit);  // IF does not mask NMI
}

TEST(SignalRule, VIntrMaskingPicksTheHostsIfAtVmrun) {
    // in_guest, V_INTR_MASKING, host IF at VMRUN, running IF
    EXPECT_TRUE(intr_unmasked(true, true, true, false));
    EXPECT_FALSE(intr_unmasked(true, true, false, true));
    EXPECT_TRUE(intr_unmasked(true, false, false, true));
    EXPECT_FALSE(intr_unmasked(true, false, true, false));
    EXPECT_TRUE(intr_unmasked(false, true, false, true));  // the host: its own IF
}

TEST(SignalRule, TheInterceptBitIsTheExitCode) {
    EXPECT_EQ(intercept_of(Signal::intr), 0x60U);
    EXPECT_EQ(intercept_of(Signal::nmi), 0x61U);
    EXPECT_EQ(intercept_of(Signal::smi), 0x62U);
    EXPECT_EQ(intercept_of(Signal::init), 0x63U);
}

TEST(SignalRule, BlockedNmisAreHeldUnlessInterceptedAndBlockOnlyNmis) {
    SignalState st = open_host();
    st.nmi_masked = true;
    EXPECT_EQ(signal_action(Signal::nmi, st), SignalAction::hold);
    // The intercept is the host's: an intercepted NMI exits whatever the
    // guest's blocking (KVM's svm_nmi_blocked returns false first).
    st.intercepted = true;
    EXPECT_EQ(signal_action(Signal::nmi, st), SignalAction::vmexit);
    st.intercepted = false;
    for (const Signal s : {Signal::intr, Signal::smi, Signal::init})
        EXPECT_EQ(signal_action(s, st), SignalAction::take) << static_cast<int>(s);
    st.nmi_masked = false;
    EXPECT_EQ(signal_action(Signal::nmi, st), SignalAction::take);
}
