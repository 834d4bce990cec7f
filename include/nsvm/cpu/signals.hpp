// How a processor treats INTR, NMI, SMI and INIT (APM 15.17, 15.21, 15.22,
// 15.29.1): held, intercepted (#VMEXIT) or taken. The one statement of the
// rule. SvmCpu applies it to its own signals; the nested engine applies it to
// the virtual processor L1 sees, with L1's GIF and vmcb12's intercepts (what
// KVM's svm_check_nested_events and the svm_*_blocked functions compute in
// software for an L1 that runs L2).
#pragma once

#include <array>
#include <cstdint>

#include "nsvm/arch/intercepts.hpp"

namespace nsvm::cpu {

/// Interrupt-like signals arriving at the processor (APM 15.17, 15.21, 15.22).
/// smi_internal is an I/O-trap SMI: discarded, not held, while GIF = 0
/// (APM 15.17.1), which SvmCpu::signal decides before this rule.
enum class Signal : std::uint8_t { intr, nmi, smi, smi_internal, init };

/// The order in which signals that are all recognizable are taken: INIT and
/// SMI (one class in APM Table 8-8, "external processor initiated"; INIT
/// first as KVM's svm_check_nested_events checks it), then NMI, then INTR.
inline constexpr std::array<Signal, 4> kSignalPriority = {Signal::init, Signal::smi, Signal::nmi, Signal::intr};

enum class SignalAction : std::uint8_t {
    hold,    ///< stays pending: GIF = 0, SMM (SMI, INIT), masked or in an interrupt shadow
    vmexit,  ///< the running VMCB intercepts it: #VMEXIT; an external signal stays pending
    take,    ///< the running context takes it: SMM entry, INIT, NMI or INTR delivery
};

/// What the rule reads, for one signal.
struct SignalState {
    bool gif = true;
    bool smm = false;
    bool intercepted = false;    ///< a guest runs and its VMCB intercepts the signal (SMI: HWCR.SMMLOCK clear)
    bool shadow = false;         ///< the running context's interrupt shadow (APM 8.2)
    bool intr_unmasked = false;  ///< INTR only: see intr_unmasked()
    /// NMI only: NMIs are blocked since the last NMI taken, until its IRET
    /// (APM 8.5; KVM's svm_get_nmi_mask for the context L0 emulates).
    bool nmi_masked = false;
};

/// APM 15.21.1: under V_INTR_MASKING, a guest's physical INTR is masked by
/// the host's RFLAGS.IF as it was at VMRUN; otherwise (and in the host) by
/// the running context's RFLAGS.IF.
[[nodiscard]] constexpr bool intr_unmasked(bool in_guest, bool v_intr_masking, bool host_if_at_vmrun,
                                           bool running_if) noexcept {
    return in_guest && v_intr_masking ? host_if_at_vmrun : running_if;
}

/// APM 15.17.1: GIF = 0 holds all four. SMI and INIT are not recognized in
/// SMM (APM 10.3.2; KVM's kvm_apic_init_sipi_allowed). An intercepted NMI or
/// INTR exits even inside an interrupt shadow, one that is not waits for the
/// shadow to end (KVM's svm_nmi_blocked / svm_interrupt_blocked); a masked
/// INTR is held whether intercepted or not, and so is an NMI that is not
/// intercepted while NMIs are blocked (an intercepted one exits: blocking
/// is the guest's, the intercept the host's).
[[nodiscard]] constexpr SignalAction signal_action(Signal s, const SignalState& st) noexcept {
    if (!st.gif) return SignalAction::hold;
    switch (s) {
        case Signal::smi:
        case Signal::smi_internal:
        case Signal::init:
            if (st.smm) return SignalAction::hold;
            return st.intercepted ? SignalAction::vmexit : SignalAction::take;
        case Signal::nmi:
            if (st.intercepted) return SignalAction::vmexit;
            return st.shadow || st.nmi_masked ? SignalAction::hold : SignalAction::take;
        case Signal::intr:
            if (!st.intr_unmasked) return SignalAction::hold;
            if (st.intercepted) return SignalAction::vmexit;
            return st.shadow ? SignalAction::hold : SignalAction::take;
    }
    return SignalAction::hold;
}

/// The intercept bit of a signal, which is also its #VMEXIT code (0x60-0x63).
[[nodiscard]] constexpr unsigned intercept_of(Signal s) noexcept {
    namespace ic = arch::intercept;
    switch (s) {
        case Signal::intr: return ic::INTR;
        case Signal::nmi: return ic::NMI;
        case Signal::smi:
        case Signal::smi_internal: return ic::SMI;
        case Signal::init: return ic::INIT;
    }
    return ic::INTR;
}

}  // namespace nsvm::cpu
