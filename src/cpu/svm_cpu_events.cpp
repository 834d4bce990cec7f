// Guest events and event gating of the SVM processor (APM 15.17, 15.21, 15.22, 15.29, 15.33.2). Every intercept decision is
// events.hpp's decide() on the VMCB the processor read at VMRUN.
#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/cpu/control_regs.hpp"
#include "nsvm/cpu/gif.hpp"
#include "nsvm/cpu/vnmi.hpp"
#include "nsvm/cpu/instruction_faults.hpp"
#include "nsvm/cpu/interrupt_flag.hpp"
#include "nsvm/cpu/msr_rules.hpp"
#include "nsvm/cpu/npt.hpp"
#include "nsvm/cpu/svm_cpu.hpp"

namespace nsvm::cpu {
namespace ec = arch::exit_code;
namespace ic = arch::intercept;
using arch::FieldId;
using checks::Feature;

namespace {
constexpr std::uint32_t bit_of(Signal s) noexcept { return 1U << static_cast<unsigned>(s); }
constexpr std::uint64_t kSmmLock = 1;  // HWCR bit 0
}  // namespace

ExitFeatures SvmCpu::exit_features() const noexcept {
    return ExitFeatures{cpu_->has(Feature::nrip_save), cpu_->has(Feature::decodeassists)};
}
// A host-held VMCB brings its maps with it (HeldVmcb); otherwise they are
// guest-physical memory at the VMCB's base addresses.
Bitmap SvmCpu::msrpm() const noexcept {
    if (held_.vmcb != nullptr) return Bitmap{nullptr, 0, held_.msrpm};
    return Bitmap{mem_, cur().get(FieldId::msrpm_base_pa), {}};
}
Bitmap SvmCpu::iopm() const noexcept {
    if (held_.vmcb != nullptr) return Bitmap{nullptr, 0, held_.iopm};
    return Bitmap{mem_, cur().get(FieldId::iopm_base_pa), {}};
}

SvmResult SvmCpu::guest_exception(std::uint8_t vector, std::uint32_t error_code, std::uint64_t cr2,
                                  const char* note) noexcept {
    // An exception raised in the guest: intercepted (APM 15.12) -> #VMEXIT
    // with the error code in EXITINFO1 (CR2 in EXITINFO2 for #PF); otherwise
    // through the guest's IDT (svm_cpu_delivery.cpp).
    GuestEvent ev;
    ev.vector = vector;
    ev.has_error = arch::exception_has_error_code(vector);
    ev.error_code = error_code;
    ev.cr2 = cr2;
    return deliver_to_guest(ev, true, 0, note);
}

void SvmCpu::apply_guest_effect(const Event& e) noexcept {
    using namespace arch;
    // The architectural effect of a non-intercepted guest event, where SVM
    // cares about it; the instruction then retires (RIP moves on, the
    // interrupt shadow ends).
    switch (e.kind) {
        case EventKind::cr_write:
            switch (e.index & 0xF) {
                case 0:
                    regs_.cr0 = cr0_as_written(e.value);
                    regs_.efer = efer_after_cr0_write(regs_.efer, regs_.cr0);
                    break;
                case 2: regs_.cr2 = e.value; break;
                case 3: regs_.cr3 = cr3_as_written(e.value, regs_.cr4); break;
                case 4: regs_.cr4 = e.value; break;
                case 8:
                    // APM 15.21.1: with V_INTR_MASKING, CR8 writes go to V_TPR.
                    if (int_ctl() & int_ctl::V_INTR_MASKING)
                        set_int_ctl((int_ctl() & ~int_ctl::V_TPR) | (e.value & int_ctl::V_TPR));
                    else
                        regs_.cr8 = e.value & 0xF;
                    break;
                default: break;
            }
            break;
        case EventKind::dr_write:
            if ((e.index & 0xF) == 6) regs_.dr6 = e.value;
            if ((e.index & 0xF) == 7) regs_.dr7 = e.value;
            break;
        case EventKind::lmsw:
        case EventKind::clts: regs_.cr0 = cr0_as_written(*cr0_written(e, regs_.cr0)); break;
        case EventKind::wrmsr:
            // DebugCtl the VMM lets the guest write (its legality was judged
            // in execute()): the guest's own under LBR virtualization, else
            // the one register host and guest share (APM 15.23).
            if (e.index == msr::DEBUGCTL) regs_.lbr.dbgctl = e.value;
            break;
        case EventKind::rdtsc:
        case EventKind::rdtscp: {
            // APM vol. 3 RDTSC / RDTSCP: EDX:EAX = the TSC as this guest reads
            // it (TSC_RATIO and TSC_OFFSET, APM 15.30.4 / 15.30.5), the upper
            // halves of RAX and RDX cleared; RDTSCP also loads ECX with
            // TSC_AUX[31:0] (upper half of RCX cleared).
            const TscRead t = tsc_read(guest_tsc(), msrs_.tsc_aux);
            regs_.rax = t.rax;
            regs_.rdx = t.rdx;
            if (e.kind == EventKind::rdtscp) regs_.rcx = t.rcx;
            break;
        }
        default: break;
    }
    regs_.rip += e.insn_len;
    // The instruction retired: an interrupt shadow it was in has ended.
    cur().set(FieldId::int_state, cur().get(FieldId::int_state) & ~int_state::INTERRUPT_SHADOW);
    if (e.kind == EventKind::sti || e.kind == EventKind::cli) set_interrupt_flag(e.kind == EventKind::sti);
}

void SvmCpu::set_interrupt_flag(bool set) noexcept {
    using namespace arch;
    if (sti_cli_rule(set, regs_.rflags, regs_.cr0, regs_.cr4, regs_.cpl) == IfWrite::virtual_flag) {
        regs_.rflags = set ? (regs_.rflags | rflags::VIF) : (regs_.rflags & ~rflags::VIF);
        return;
    }
    // APM "STI": when STI sets IF that was clear, interrupts stay blocked
    // until the next instruction has retired: the interrupt shadow, which
    // VMRUN loads from and #VMEXIT writes to int_state.
    if (set && (regs_.rflags & rflags::IF) == 0)
        cur().set(FieldId::int_state, cur().get(FieldId::int_state) | int_state::INTERRUPT_SHADOW);
    regs_.rflags = set ? (regs_.rflags | rflags::IF) : (regs_.rflags & ~rflags::IF);
}

SvmResult SvmCpu::guest_svm_instruction(const Event& e) noexcept {
    using namespace arch;
    Insn insn = Insn::vmmcall;
    switch (e.kind) {
        case EventKind::vmrun: insn = Insn::vmrun; break;
        case EventKind::vmload: insn = Insn::vmload; break;
        case EventKind::vmsave: insn = Insn::vmsave; break;
        case EventKind::stgi: insn = Insn::stgi; break;
        case EventKind::clgi: insn = Insn::clgi; break;
        case EventKind::invlpga: insn = Insn::invlpga; break;
        case EventKind::skinit: insn = Insn::skinit; break;
        default: break;
    }
    if (insn == Insn::skinit && !cpu_->has(Feature::skinit))
        return guest_exception(6, 0, 0, "SKINIT without the feature: #UD");
    // Table 15-7: #UD/#GP are checked before the instruction intercept.
    // VMMCALL has no CPL check (APM 15.5.3).
    if (insn != Insn::vmmcall) {
        SvmResult g;
        if (!svm_gates(insn, regs_, g)) {
            SvmResult r = guest_exception(g.vector, 0, 0, g.note);
            r.failed_check = g.failed_check;
            return r;
        }
    }
    if (const auto x = decide(cur(), msrpm(), iopm(), e, regs_.rip, regs_.cr0, exit_features()))
        return vmexit(x->code, x->info1, x->info2, 0, exit_nrip(x->next_rip));
    SvmResult r;
    r.outcome = SvmOutcome::no_exit;
    r.in_guest = true;
    switch (insn) {
        case Insn::vmmcall: return guest_exception(6, 0, 0, "VMMCALL not intercepted: #UD");
        case Insn::stgi:
        case Insn::clgi: {
            const bool set = insn == Insn::stgi;
            if (const GuestGifWrite w = guest_gif_write(*cpu_, int_ctl(), set); w.virtual_gif) {
                // APM 15.33.2 (vGIF): STGI/CLGI set/clear V_GIF, no exit.
                set_int_ctl(w.int_ctl);
                r.note = set ? "vGIF: V_GIF = 1" : "vGIF: V_GIF = 0";
            } else {
                // Without vGIF a non-intercepted STGI/CLGI changes the real GIF.
                gif_ = set;
                r.note = set ? "not intercepted: GIF = 1" : "not intercepted: GIF = 0";
            }
            break;
        }
        case Insn::invlpga:
            tlb_.invlpga_va = regs_.rax;
            tlb_.invlpga_asid = static_cast<std::uint32_t>(e.value);
            ++tlb_.invlpga_count;
            r.note = "INVLPGA in the guest, not intercepted";
            break;
        case Insn::vmload:
        case Insn::vmsave: return guest_vmload_vmsave(e, insn == Insn::vmsave);
        default: break;
    }
    apply_guest_effect(e);
    return r;
}

namespace {
/// Events that are instructions the guest executes (not an exception it
/// raises, an external signal, or the fetch of one).
bool is_instruction(const Event& e) noexcept {
    switch (e.kind) {
        case EventKind::exception:
        case EventKind::intr:
        case EventKind::nmi:
        case EventKind::smi:
        case EventKind::init: return false;
        case EventKind::memory: return !e.access.fetch;
        default: return true;
    }
}
}  // namespace

SvmResult SvmCpu::guest_event(const Event& e) noexcept {
    // APM 13.1.4 (single step): an instruction that starts with RFLAGS.TF
    // set and completes in the guest is followed by a #DB trap with DR6.BS
    // set (B0-B3 cleared), intercepted or delivered like any exception, RIP past the
    // instruction. An intercepted instruction has not completed: no trap.
    const bool single_step = in_guest_ && (regs_.rflags & arch::rflags::TF) != 0 && is_instruction(e);
    // One result object on every path, so that it is built where the
    // caller wants it: a second return value made g++ build `r` aside and
    // copy it with wide loads right after its narrow stores (a
    // store-forwarding stall on every guest event, docs/performance.md).
    SvmResult r = execute(e);
    if (!single_step || r.outcome != SvmOutcome::no_exit) return r;
    regs_.dr6 = dr6_after_single_step(regs_.dr6);
    insn_len_ = 0;  // a trap: the instruction is over, RIP is the next one's
    r = guest_exception(1, 0, 0, "single step (RFLAGS.TF): #DB after the instruction");
    return r;
}

SvmResult SvmCpu::execute(const Event& e) noexcept {
    if (!in_guest_) {
        SvmResult r;
        r.outcome = SvmOutcome::nothing;
        r.note = "no guest is running";
        return r;
    }
    insn_len_ = e.insn_len;
    switch (e.kind) {
        case EventKind::intr: return signal(Signal::intr, static_cast<std::uint8_t>(e.index));
        case EventKind::nmi: return signal(Signal::nmi);
        case EventKind::smi: return signal(Signal::smi);
        case EventKind::init: return signal(Signal::init);
        case EventKind::exception: {
            GuestEvent ev;
            ev.vector = static_cast<std::uint8_t>(e.index & 0x1F);
            ev.has_error = arch::exception_has_error_code(ev.vector);
            ev.error_code = e.error_code;
            ev.cr2 = e.cr2;
            ev.software = e.software;
            return deliver_to_guest(ev, true, 0, "exception delivered to the guest");
        }
        case EventKind::vmrun:
        case EventKind::vmload:
        case EventKind::vmsave:
        case EventKind::stgi:
        case EventKind::clgi:
        case EventKind::invlpga:
        case EventKind::skinit:
        case EventKind::vmmcall: return guest_svm_instruction(e);
        case EventKind::memory: {
            if (e.linear) return guest_linear_access(e);
            SvmResult r;
            r.outcome = SvmOutcome::no_exit;
            r.in_guest = true;
            if (!np_enabled()) {
                r.note = "no nested paging: the access is the guest's own";
                return r;
            }
            // APM 15.25.6: a nested fault is #VMEXIT(NPF). The NX bit's
            // legality follows the host's EFER.NXE. `e.access` is the
            // nested access itself (its `user` the nested US).
            const NptResult w = npt_walk(*mem_, cur().get(FieldId::nested_cr3), e.value, e.access, nested_mode());
            if (!w.ok) return vmexit(ec::NPF, w.info1, w.info2, 0, exit_nrip(0));
            r.note = "translated by the nested page tables";
            return r;
        }
        default: break;
    }
    // APM 15.7: #UD for an instruction the CPU lacks, #GP(0) for CPL or
    // CR4.TSD, #NM for CR0.EM/TS, before the intercept.
    if (const auto f = pre_intercept_fault(*cpu_, e.kind, InstructionState{regs_.cr0, regs_.cr4, regs_.cpl}))
        return guest_exception(f->vector, 0, 0, f->note);
    // APM 15.14.4: with the PAUSE filter, an intercepted PAUSE exits only
    // once the count reaches zero (nested/routing.cpp does the same).
    const bool filtered = e.kind == EventKind::pause && cpu_->has(Feature::pausefilter) &&
                          cur().intercept(ic::PAUSE) && !pause_filter_exits(cur());
    if (const auto x = filtered ? std::nullopt
                                : decide(cur(), msrpm(), iopm(), e, regs_.rip, regs_.cr0, exit_features()))
        return vmexit(x->code, x->info1, x->info2, 0, exit_nrip(x->next_rip));
    // Not intercepted, IRET executes: it returns through the frame on the
    // guest's stack (svm_cpu_iret.cpp) instead of retiring to the next RIP.
    if (e.kind == EventKind::iret) return guest_iret();
    // A MOV to CR/DR with a value the processor refuses faults after the
    // intercept check: an intercepted write exits with the value unjudged
    // (its VMM emulates it), one that is not is #GP(0) in the guest.
    const char* illegal = e.kind == EventKind::dr_write ? mov_to_dr_fault(e.index & 0xF, e.value)
                          : e.kind == EventKind::cr_write
                              ? mov_to_cr_fault(*cpu_, e.index & 0xF, e.value,
                                                ControlState{regs_.efer, regs_.cr0, regs_.cr4,
                                                             (regs_.cs.attrib & arch::seg_attr::L) != 0})
                          : (e.kind == EventKind::wrmsr && e.index == arch::msr::DEBUGCTL)
                              ? debugctl_write(e.value, arch::debugctl::kReserved).gp
                          // XSETBV's value is judged after the intercept too (APM 15.7:
                          // operand-value exceptions come after the intercept check).
                          : e.kind == EventKind::xsetbv ? xsetbv_fault(static_cast<std::uint32_t>(e.index), e.value)
                              : nullptr;
    if (illegal != nullptr) return guest_exception(13, 0, 0, illegal);
    if ((e.kind == EventKind::sti || e.kind == EventKind::cli) &&
        sti_cli_rule(e.kind == EventKind::sti, regs_.rflags, regs_.cr0, regs_.cr4, regs_.cpl) ==
            IfWrite::general_protection)
        return guest_exception(13, 0, 0, "STI/CLI with CPL > IOPL and no virtual interrupt flag: #GP(0)");
    apply_guest_effect(e);
    SvmResult r;
    r.outcome = SvmOutcome::no_exit;
    r.in_guest = true;
    r.note = "not intercepted: the guest handled it";
    return r;
}

// ---------------------------------------------------------------------------
// Signals (APM 15.17, 15.21, 15.22)

SignalState SvmCpu::signal_state(Signal s) const noexcept {
    SignalState st;
    st.gif = gif_;
    st.smm = smm_;
    const bool smi_lock = (s == Signal::smi || s == Signal::smi_internal) && (msrs_.hwcr & kSmmLock) != 0;
    // 15.13.3: HWCR.SMMLOCK makes the processor ignore the SMI intercept.
    st.intercepted = in_guest_ && cur().intercept(intercept_of(s)) && !smi_lock;
    st.shadow = in_guest_ && interrupt_shadow();
    st.intr_unmasked = intr_unmasked(in_guest_, (int_ctl() & arch::int_ctl::V_INTR_MASKING) != 0, host_if_,
                                     (regs_.rflags & arch::rflags::IF) != 0);
    return st;
}

SvmResult SvmCpu::take_signal(Signal s) noexcept {
    using namespace arch;
    SvmResult r;
    r.in_guest = in_guest_;
    switch (s) {
        case Signal::smi:
        case Signal::smi_internal:
            smm_ = true;
            r.outcome = SvmOutcome::smm_entered;
            r.note = in_guest_ ? "SMI not intercepted: SMM runs in the guest's context (15.22.3 a)" : "SMM entered";
            return r;
        case Signal::init:
            // 15.29.1 / 15.30.1: VM_CR.R_INIT = 1 turns INIT into #SX (vector
            // 30, error code 1); else INIT is taken, and clears VM_CR.SVMDIS
            // unless LOCK is set.
            if ((msrs_.vm_cr & vm_cr::R_INIT) != 0) {
                if (in_guest_) return guest_exception(30, 1, 0, "INIT redirected: #SX(1) in the guest");
                r.outcome = SvmOutcome::exception;
                r.vector = 30;
                r.error_code = 1;
                r.note = "INIT redirected (VM_CR.R_INIT): #SX(1) in the host";
                return r;
            }
            if ((msrs_.vm_cr & vm_cr::LOCK) == 0) msrs_.vm_cr &= ~vm_cr::SVMDIS;
            r.outcome = SvmOutcome::init_taken;
            r.note = "INIT taken (the model does not reset the registers)";
            return r;
        case Signal::nmi:
            r.outcome = SvmOutcome::delivered;
            r.vector = 2;
            r.note = "NMI delivered";
            return r;
        case Signal::intr:
            r.outcome = SvmOutcome::delivered;
            r.vector = intr_vector_;
            r.note = "INTR delivered";
            return r;
    }
    return r;
}

SvmResult SvmCpu::signal(Signal s, std::uint8_t vector) noexcept {
    if (s == Signal::smi_internal) {
        // APM 15.17.1: an internal (I/O-trap) SMI while GIF = 0 is lost; an
        // intercepted one exits and is consumed (15.13.3); one in SMM is
        // latched until RSM (APM 10.3.2).
        SvmResult r;
        switch (signal_action(s, signal_state(s))) {
            case SignalAction::hold:
                if (!gif_) {
                    r.outcome = SvmOutcome::discarded;
                    r.note = "internal SMI with GIF = 0: discarded";
                    return r;
                }
                pending_ |= bit_of(Signal::smi);
                r.outcome = SvmOutcome::held_pending;
                r.note = "SMI while in SMM: latched";
                return r;
            case SignalAction::vmexit: return vmexit(ec::SMI, 0, 0, 0);
            case SignalAction::take: return take_signal(s);
        }
    }
    pending_ |= bit_of(s);
    if (s == Signal::intr) intr_vector_ = vector;
    return poll();
}

SvmResult SvmCpu::poll() noexcept {
    using namespace arch;
    SvmResult r;
    if (!gif_) {
        // APM 15.17.1: with GIF = 0, INTR, NMI, SMI and INIT are held.
        r.outcome = pending_ != 0 ? SvmOutcome::held_pending : SvmOutcome::nothing;
        r.note = pending_ != 0 ? "GIF = 0: held pending" : "nothing pending";
        return r;
    }
    // An intercepted signal exits and stays pending (15.13.3, 15.21, 15.29.1);
    // one the running context takes is consumed.
    for (const Signal s : kSignalPriority) {
        if ((pending_ & bit_of(s)) == 0) continue;
        switch (signal_action(s, signal_state(s))) {
            case SignalAction::hold: continue;
            case SignalAction::vmexit: return vmexit(intercept_of(s), 0, 0, 0);
            case SignalAction::take: pending_ &= ~bit_of(s); return take_signal(s);
        }
    }
    const bool shadow = in_guest_ && interrupt_shadow();
    if (in_guest_) {
        const std::uint64_t ic_ = int_ctl();
        // vGIF (15.33.2): V_GIF gates the virtual interrupt and virtual NMI.
        const bool vgif_open = virtual_gif_open(*cpu_, ic_);
        // vNMI (15.21.10): taken when pending, not masked, V_GIF allows, no shadow.
        if (vnmi_deliverable(*cpu_, ic_, shadow)) {
            set_int_ctl(int_ctl_after_vnmi_taken(ic_));
            insn_len_ = 0;
            SvmResult d = deliver_to_guest(GuestEvent{2, 2, false, 0, 0, false}, false, 0,
                                           "virtual NMI delivered through the guest's IDT (V_NMI -> V_NMI_MASK)");
            // 15.21.10: "If a #VMEXIT occurs during the virtual NMI delivery,
            // EXITINTINFO is set appropriately and V_NMI_MASK is saved as 0":
            // the NMI is in EXITINTINFO for the VMM to re-inject, not blocked.
            if (d.outcome == SvmOutcome::vmexit) {
                const std::uint64_t unmasked = int_ctl() & ~int_ctl::V_NMI_BLOCKING;
                set_int_ctl(unmasked);
                vmcb_store(FieldId::int_ctl, unmasked);
            }
            return d;
        }
        // Virtual INTR (15.21.4): V_IRQ with V_INTR_PRIO > V_TPR (or V_IGN_TPR),
        // guest IF = 1, no shadow, V_GIF; ignored under AVIC (15.29.8.3).
        const auto prio = static_cast<unsigned>((ic_ & int_ctl::V_INTR_PRIO) >> 16);
        const auto tpr = static_cast<unsigned>(ic_ & int_ctl::V_TPR);
        if ((ic_ & int_ctl::V_IRQ) && !(ic_ & int_ctl::AVIC_ENABLE) &&
            ((ic_ & int_ctl::V_IGN_TPR) || prio > tpr) && (regs_.rflags & rflags::IF) && !shadow && vgif_open) {
            if (cur().intercept(ic::VINTR)) return vmexit(ec::VINTR, 0, 0, 0);
            // Taken: V_IRQ clears and the interrupt goes through the guest's
            // IDT at V_INTR_VECTOR, as an external interrupt (no error code).
            set_int_ctl(ic_ & ~int_ctl::V_IRQ);
            insn_len_ = 0;
            const auto vector = static_cast<std::uint8_t>(cur().get(FieldId::int_vector) & 0xFF);
            return deliver_to_guest(GuestEvent{vector, 0, false, 0, 0, false}, false, 0,
                                    "virtual interrupt delivered through the guest's IDT (V_IRQ cleared)");
        }
    }
    r.outcome = pending_ != 0 ? SvmOutcome::held_pending : SvmOutcome::nothing;
    r.in_guest = in_guest_;
    r.note = pending_ != 0 ? "masked: held pending" : "nothing deliverable";
    return r;
}

}  // namespace nsvm::cpu
