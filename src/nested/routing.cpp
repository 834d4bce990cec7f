// Exit routing while L2 runs (KVM's nested_svm_exit_handled / nested_svm_intercept), and L1's SVM instructions.
//
// An L2 event first meets the hardware (vmcb02 and the maps it uses). If it
// exits, L0 keeps what is its own (physical INTR/NMI, its own #NPF, exits
// only L0 asked for) and reflects to L1 what vmcb12's intercepts, MSRPM and
// IOPM ask for.
#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/cpu/control_regs.hpp"
#include "nsvm/cpu/gif.hpp"
#include "nsvm/cpu/msr_rules.hpp"
#include "nsvm/cpu/npt.hpp"
#include "nsvm/cpu/vnmi.hpp"
#include "nsvm/nested/vcpu.hpp"

namespace nsvm::nested {
namespace ic = arch::intercept;
namespace ec = arch::exit_code;
using arch::FieldId;
using cpu::EventKind;

namespace {
/// The model's contract (as l1_instruction_gates): L1 instructions only
/// while L1 runs.
bool l1_not_running(Mode m, StepResult& r) noexcept {
    if (m == Mode::l1) return false;
    r.outcome = Outcome::exception;
    r.vector = 6;
    r.note = "L1 is not running (L2 is)";
    return true;
}
}  // namespace

bool Vcpu::l1_wants_exit(const cpu::Event& e, const cpu::ExitInfo& hw) const noexcept {
    // nested_svm_intercept: decide with L1's own controls and maps.
    const cpu::Bitmap l1_msrpm{mem_, cache_.get(FieldId::msrpm_base_pa), {}};
    const cpu::Bitmap l1_iopm{mem_, cache_.get(FieldId::iopm_base_pa), {}};
    if (e.kind == EventKind::rdmsr || e.kind == EventKind::wrmsr) {
        if (!cache_.intercept(ic::MSR_PROT)) return false;
        // Outside the ranges or unreadable: L1 (it asked for MSR_PROT).
        return cpu::msrpm_lookup(l1_msrpm, e.index, e.kind == EventKind::wrmsr) != cpu::MapResult::clear;
    }
    if (e.kind == EventKind::io) {
        if (!cache_.intercept(ic::IOIO_PROT)) return false;
        return cpu::iopm_lookup(l1_iopm, static_cast<std::uint16_t>(e.index), e.size) != cpu::MapResult::clear;
    }
    if (hw.code == ec::NPF) {
        // vmcb02 walks L1's own nested page tables (vmrun.cpp): a fault in
        // them is L1's (KVM's nested_svm_inject_npf_exit).
        return (cache_.get(FieldId::misc_ctl) & arch::misc_ctl::NP_ENABLE) != 0;
    }
    if (hw.code == ec::CR0_SEL_WRITE) {
        // L1 wants it if it intercepts CR0 writes at all or selectively.
        return cache_.intercept(ic::cr_write(0)) || cache_.intercept(ic::SELECTIVE_CR0);
    }
    if (hw.code < 0xC0) return cache_.intercept(static_cast<unsigned>(hw.code));
    return false;
}

const char* Vcpu::l2_write_fault(const cpu::Event& e) const noexcept {
    // MOV to CR0/CR3/CR4/DR6/DR7 with a value the processor refuses is
    // #GP(0) in L2 (cpu/control_regs.hpp). When only L0 intercepts the write,
    // L0 emulates it and must raise that #GP itself (KVM's kvm_set_cr0/cr4/cr3,
    // kvm_set_dr): writing the value into vmcb02 would leave a VMCB the next
    // VMRUN refuses.
    if (e.kind == EventKind::dr_write) return cpu::mov_to_dr_fault(e.index, e.value);
    if (e.kind == EventKind::wrmsr) return l2_msr_write(e).gp;
    if (e.kind != EventKind::cr_write) return nullptr;
    const cpu::ControlState s{vmcb02().get(FieldId::efer), vmcb02().get(FieldId::cr0), vmcb02().get(FieldId::cr4),
                              (vmcb02().segment(arch::Seg::cs).attrib & arch::seg_attr::L) != 0};
    return cpu::mov_to_cr_fault(*cpu_, e.index, e.value, s);
}

cpu::MsrWrite Vcpu::l2_msr_write(const cpu::Event& e) const noexcept {
    // KVM's svm_set_msr / set_efer on L2's state: the same #GP rules as the
    // processor's WRMSR (cpu/msr_rules.hpp), judged on L2's EFER and CPL;
    // VM_CR is the vCPU's one register, shared by L1 and L2.
    return l0_msr_write(e.index, e.value, vmcb02(), l2_efer(vmcb02()));
}

cpu::MsrWrite Vcpu::l0_msr_write(std::uint32_t msr, std::uint64_t value, const arch::Vmcb& v,
                                 std::uint64_t efer) const noexcept {
    // KVM's svm_set_msr for the level whose state is `v` (vmcb01: L1,
    // vmcb02: L2): DebugCtl with L0's bits, the rest the processor's rules.
    const auto cpl = static_cast<std::uint8_t>(v.get(FieldId::cpl));
    if (msr == arch::msr::DEBUGCTL && cpl == 0) return l0_debugctl_write(value, v.get(FieldId::dbgctl));
    return cpu::svm_msr_write(*cpu_, msr, value, cpu::SvmMsrState{efer, vm_cr_, cpl});
}

void Vcpu::emulate_l2_rdtsc(const cpu::Event& e) noexcept {
    // KVM's emulator (em_rdtsc / em_rdtscp reading MSR_IA32_TSC in guest
    // mode: the host TSC scaled by the current multiplier plus the current
    // offset): what the processor would have returned to L2 (APM vol. 3
    // RDTSC / RDTSCP), with vmcb02's composed offset and L2's ratio. RAX
    // goes to vmcb02; RDX and RCX are the processor's (no VMCB holds them).
    const cpu::TscRead t = cpu::tsc_read(
        cpu::guest_tsc_of(hw_.msrs().tsc, tsc_ratio02_, vmcb02().get(FieldId::tsc_offset)), hw_.msrs().tsc_aux);
    live_vmcb02().set(FieldId::rax, t.rax);
    hw_.regs().rdx = t.rdx;
    if (e.kind == EventKind::rdtscp) hw_.regs().rcx = t.rcx;
}

bool Vcpu::l2_clears_svme(const cpu::Event& e) const noexcept {
    return e.kind == EventKind::wrmsr && e.index == arch::msr::EFER && (l2_efer(vmcb02()) & arch::efer::SVME) != 0 &&
           (e.value & arch::efer::SVME) == 0;
}

void Vcpu::apply_l2_wrmsr(const cpu::Event& e) noexcept {
    // The MSR writes L0 emulates for L2 that change what L2 runs with (the
    // rest are L0's business and leave vmcb02 as it is).
    const cpu::MsrWrite w = l2_msr_write(e);
    switch (e.index) {
        case arch::msr::EFER:
            // vmcb02 keeps SVME (the processor runs no VMCB without it); L2's
            // own SVME (set again, never cleared here: l2_clears_svme) is
            // vmcb12's, which the #VMEXIT writes back.
            live_vmcb02().set(FieldId::efer, w.stored | arch::efer::SVME);
            cache_.set(FieldId::efer, (cache_.get(FieldId::efer) & ~arch::efer::SVME) | (w.stored & arch::efer::SVME));
            break;
        case arch::msr::PAT:
            // L2's own PAT under nested paging (written back to vmcb12 at
            // #VMEXIT, L1's restored), else the PAT L1 and L2 share.
            live_vmcb02().set(FieldId::g_pat, w.stored);
            if (!l2_has_own_pat()) vmcb01_.set(FieldId::g_pat, w.stored);
            break;
        case arch::msr::DEBUGCTL:
            // KVM's svm_set_msr writes the current VMCB's DebugCtl: vmcb02's,
            // which the #VMEXIT writes to vmcb12 (nested_lbrv) or vmcb01.
            live_vmcb02().set(FieldId::dbgctl, w.stored);
            break;
        case arch::msr::TSC_AUX: hw_.msrs().tsc_aux = w.stored; break;  // the vCPU's one TSC_AUX
        default: break;
    }
}

void Vcpu::apply_l2_effect(const cpu::Event& e) noexcept {
    // The guest (or L0 on its behalf) completes the instruction.
    switch (e.kind) {
        case EventKind::cr_write:
            if (e.index == 0) {
                // CR0.ET reads as 1; EFER.LMA follows CR0.PG under EFER.LME
                // (KVM's kvm_set_cr0 and svm_set_cr0).
                const std::uint64_t cr0 = cpu::cr0_as_written(e.value);
                live_vmcb02().set(FieldId::efer, cpu::efer_after_cr0_write(vmcb02().get(FieldId::efer), cr0));
                live_vmcb02().set(FieldId::cr0, cr0);
            }
            if (e.index == 3) live_vmcb02().set(FieldId::cr3, cpu::cr3_as_written(e.value, vmcb02().get(FieldId::cr4)));
            if (e.index == 4) live_vmcb02().set(FieldId::cr4, e.value);
            if (e.index == 8) {
                // L2's TPR: vmcb02's V_TPR, which KVM writes from the APIC's
                // TPR before the next entry (sync_lapic_to_cr8), or which the
                // processor writes itself when KVM drops the intercept for an
                // L1 with V_INTR_MASKING; the processor's priority rule reads it.
                const std::uint64_t ic = vmcb02().get(FieldId::int_ctl);
                live_vmcb02().set(FieldId::int_ctl, (ic & ~arch::int_ctl::V_TPR) | (e.value & arch::int_ctl::V_TPR));
            }
            break;
        case EventKind::lmsw:
        case EventKind::clts:
            // Only CR0[3:0] change: EFER.LMA stays (PG is untouched).
            live_vmcb02().set(FieldId::cr0, cpu::cr0_as_written(*cpu::cr0_written(e, vmcb02().get(FieldId::cr0))));
            break;
        case EventKind::wrmsr: apply_l2_wrmsr(e); break;
        case EventKind::rdtsc:
        case EventKind::rdtscp: emulate_l2_rdtsc(e); break;
        case EventKind::dr_write:
            if (e.index == 7) live_vmcb02().set(FieldId::dr7, e.value);
            if (e.index == 6) live_vmcb02().set(FieldId::dr6, e.value);
            break;
        case EventKind::stgi:
        case EventKind::clgi: {
            if (!nested_vgif()) {
                // No virtual GIF for L2: its STGI/CLGI set L1's GIF itself
                // (KVM's stgi_interception: svm_set_gif, on vmcb02 with vGIF).
                set_gif(e.kind == EventKind::stgi);
                break;
            }
            // Nested vGIF: L2's virtual GIF in vmcb02 (APM 15.33.2).
            std::uint64_t i = vmcb02().get(FieldId::int_ctl);
            i = e.kind == EventKind::stgi ? (i | arch::int_ctl::V_GIF) : (i & ~arch::int_ctl::V_GIF);
            live_vmcb02().set(FieldId::int_ctl, i);
            sync_v_gif_to_cache();
            break;
        }
        default: break;
    }
    if (e.kind != EventKind::exception && e.kind != EventKind::memory)
        live_vmcb02().set(FieldId::rip, vmcb02().get(FieldId::rip) + e.insn_len);
}

bool Vcpu::l1_physical(std::uint64_t l2_gpa, cpu::Access access, std::uint64_t& l1_gpa, StepResult& fault) noexcept {
    l1_gpa = l2_gpa;
    if ((cache_.get(FieldId::misc_ctl) & arch::misc_ctl::NP_ENABLE) == 0) return true;
    // L1's nested paging: L2 GPA -> L1 GPA through L1's tables at nCR3, in
    // L1's paging mode (its EFER.NXE and CR4.SMEP, GMET as vmcb02 has it;
    // KVM's nested NPT MMU takes them from L1's state).
    const auto mode = cpu::nested_paging_mode(*cpu_, vmcb02().get(FieldId::misc_ctl), vmcb01_.get(FieldId::efer),
                                              vmcb01_.get(FieldId::cr4));
    const auto w = cpu::npt_walk(*mem_, cache_.get(FieldId::nested_cr3), l2_gpa, access, mode);
    if (w.ok) {
        l1_gpa = w.hpa;
        return true;
    }
    cpu::ExitInfo x{ec::NPF, w.info1, w.info2, 0};
    fault = nested_vmexit(x);
    fault.l0_exit = true;
    fault.note = "L1's nested page tables fault: #NPF reflected to L1";
    return false;
}

StepResult Vcpu::l2_memory_access(const cpu::Event& e) noexcept {
    StepResult r;
    std::uint64_t l1_gpa = 0;
    if (!l1_physical(e.value, e.access, l1_gpa, r)) return r;
    if (!mem_->backed(l1_gpa)) {
        // L0's own #NPF (L1 GPA not backed by L0: MMIO or not yet faulted in).
        r.outcome = Outcome::handled_by_l0;
        r.owner = Owner::l0;
        r.exit_code = ec::NPF;
        r.exit_info_1 = arch::npf::FINAL_GPA |
                        cpu::npf_access_bits(cpu::Access{e.access.write, true, e.access.fetch}, hw_.nested_mode());
        r.exit_info_2 = l1_gpa;
        r.l0_exit = true;
        r.note = "L0's own #NPF (L1 GPA not backed); L0 handles it";
        return r;
    }
    r.outcome = Outcome::no_exit;
    r.exit_info_2 = l1_gpa;
    r.note = "translated; no exit";
    return r;
}

StepResult Vcpu::l2_event(const cpu::Event& e) noexcept {
    StepResult r;
    if (shut_down(r)) return r;
    if (mode_ != Mode::l2) {
        r.outcome = Outcome::exception;
        r.vector = 6;
        r.note = "no L2 is running";
        return r;
    }
    switch (e.kind) {
        case EventKind::intr:
        case EventKind::nmi:
        case EventKind::smi:
        case EventKind::init: return external(e.kind);
        case EventKind::memory: {
            // An access at a linear address walks L2's own tables on the
            // processor (cpu::SvmCpu::guest_linear_access): #PF, #NPF and
            // the A/D bits are the processor's.
            if (e.linear) return l2_executes(e);
            StepResult m = l2_memory_access(e);
            l2_instruction_boundary(m);
            return m;
        }
        default: return l2_executes(e);
    }
}

StepResult Vcpu::l2_executes(const cpu::Event& e) noexcept {
    // L2 executes the event on the processor, with vmcb02's intercepts and maps.
    const bool gif_was = gif();
    const cpu::SvmResult hr = hw().guest_event(e);
    if (hr.outcome == cpu::SvmOutcome::vmexit) after_processor_exit();
    StepResult r = hr.outcome != cpu::SvmOutcome::vmexit ? l2_ran(e, hr, gif_was) : route_l2_exit(e, hr);
    l2_instruction_boundary(r);
    return r;
}

void Vcpu::l2_instruction_boundary(StepResult& r, const char* taken_note) noexcept {
    // Before L2's next instruction: first the physical events L0 held for L2
    // (its RFLAGS.IF without V_INTR_MASKING, its interrupt shadow, which the
    // instruction may have ended; KVM's svm_check_nested_events at the next
    // entry), then what vmcb02 itself holds, which the processor takes:
    // the virtual NMI and V_IRQ (APM 15.21.4, 15.21.10), or their #VMEXIT
    // (VINTR) when intercepted, routed like any exit from L2.
    if (mode_ != Mode::l2 || !hw_.in_guest()) return;
    if (pending_ != 0) r = take_held_signals(r, taken_note);
    if (mode_ != Mode::l2 || !hw_.in_guest()) return;
    if ((vmcb02().get(FieldId::int_ctl) & (arch::int_ctl::V_IRQ | arch::int_ctl::V_NMI_PENDING)) == 0) return;
    const cpu::SvmResult hr = hw().poll();
    if (hr.outcome == cpu::SvmOutcome::vmexit) {
        after_processor_exit();
        cpu::Event window{};  // no instruction: L0 resuming after it moves no RIP
        window.kind = EventKind::intr;
        window.insn_len = 0;
        r = route_l2_exit(window, hr);
        return;
    }
    if (hr.outcome != cpu::SvmOutcome::delivered) return;
    hw_.flush_guest_state();
    r = StepResult{};
    r.outcome = Outcome::interrupt;
    r.vector = hr.vector;
    r.note = hr.note;
}

StepResult Vcpu::l2_ran(const cpu::Event& e, const cpu::SvmResult& hr, bool gif_was) noexcept {
    // No intercept in vmcb02: the processor completed the event in L2.
    hw_.flush_guest_state();
    StepResult r;
    r.note = hr.note;
    if (hr.outcome == cpu::SvmOutcome::delivered && e.kind != EventKind::exception) {
        // The instruction faulted in L2 and L2's IDT took the exception
        // (#UD for VMMCALL, #GP(0) for an illegal CR/DR value ...).
        r.outcome = Outcome::exception;
        r.vector = hr.vector;
        return r;
    }
    r.outcome = Outcome::no_exit;
    // An exception L2 raised went through its IDT: the vector that reached a
    // handler (#DF when delivering the first one faulted, APM 8.2.9).
    if (hr.outcome == cpu::SvmOutcome::delivered) r.vector = hr.vector;
    if (e.kind != EventKind::stgi && e.kind != EventKind::clgi) return r;
    if (nested_vgif()) {
        // L2's virtual GIF changed in vmcb02 (APM 15.33.2).
        sync_v_gif_to_cache();
        return r;
    }
    // Without a virtual GIF for L2 its STGI/CLGI set L1's GIF: under L0's
    // vGIF the processor wrote vmcb02's V_GIF, where gif() reads it;
    // without, the processor's GIF, which L0 takes over.
    if (!cpu::vgif_enabled(*cpu_, vmcb02().get(FieldId::int_ctl))) set_gif(hw_.gif());
    else sync_event_windows();
    return after_l2_gif_write(gif_was, r);
}

StepResult Vcpu::after_l2_gif_write(bool gif_was, StepResult r) noexcept {
    // L2's STGI set the GIF (no nested vGIF): what GIF held is taken now.
    if (!gif_was && gif()) return take_held_signals(r, "L2's STGI set GIF = 1 and a held event was taken at once");
    return r;
}

void Vcpu::sync_v_gif_to_cache() noexcept {
    const std::uint64_t c = cache_.get(FieldId::int_ctl);
    cache_.set(FieldId::int_ctl, (c & ~arch::int_ctl::V_GIF) | (vmcb02().get(FieldId::int_ctl) & arch::int_ctl::V_GIF));
}

StepResult Vcpu::route_l2_exit(const cpu::Event& e, const cpu::SvmResult& hr) noexcept {
    // nested_svm_exit_handled: the processor's #VMEXIT from L2, decided on
    // vmcb02 (L0's | L1's intercepts, the merged maps), is L1's when vmcb12
    // asks for it, else L0's.
    cpu::ExitInfo hw{hr.exit_code, hr.exit_info_1, hr.exit_info_2, vmcb02().get(FieldId::next_rip)};
    if (hw.code == ic::cr_write(0) && !cache_.intercept(ic::cr_write(0)) &&
        cache_.intercept(ic::SELECTIVE_CR0) && cpu::selective_cr0_write(e, vmcb02().get(FieldId::cr0))) {
        // L0's own CR0-write intercept took precedence in hardware, but L1
        // asked for the selective one and this MOV to CR0 or LMSW changes a
        // bit other than TS/MP: L1 gets CR0_SEL_WRITE (APM 15.9.2; KVM
        // check_selective_cr0_intercepted, KVM commit "KVM: nSVM: Fixes for
        // SVM_EXIT_CR0_SEL_WRITE injection").
        hw.code = ec::CR0_SEL_WRITE;
    }
    if (!l1_wants_exit(e, hw)) return l0_handles_exit(e, hw);
    if (!opts_.nrips) hw.next_rip = 0;
    return reflect_to_l1(hw);
}

StepResult Vcpu::reflect_to_l1(const cpu::ExitInfo& x) noexcept {
    StepResult r = nested_vmexit(x);
    r.l0_exit = true;
    r.note = "intercepted by L1 (vmcb12)";
    return r;
}

StepResult Vcpu::l0_handles_exit(const cpu::Event& e, const cpu::ExitInfo& x) noexcept {
    StepResult r = (this->*l0_exit_handler(x.code))(e, x);
    if (mode_ == Mode::l2 && !hw_.in_guest()) enter_l2_on_processor(r);  // else L1 took over, or L2 runs on
    return r;
}

Vcpu::L0ExitHandler Vcpu::l0_exit_handler(std::uint64_t code) noexcept {
    // L0's handlers of the exits from L2 that L1 did not ask for, by exit
    // code range (the shape of KVM's svm_exit_handlers[], reached when
    // nested_svm_exit_handled leaves the exit to L0); L0 emulates the rest.
    struct Entry {
        std::uint64_t first, last;
        L0ExitHandler handle;
    };
    static constexpr std::array<Entry, 10> kHandlers = {{
        {ec::SHUTDOWN, ec::SHUTDOWN, &Vcpu::l0_shutdown},
        {ec::VINTR, ec::VINTR, &Vcpu::l0_interrupt_window},
        {ec::IRET, ec::IRET, &Vcpu::l0_iret},
        // KVM offers no RDPRU to guests and intercepts it to make it #UD
        // (svm_exit_handlers[SVM_EXIT_RDPRU] = kvm_handle_invalid_op).
        {ec::RDPRU, ec::RDPRU, &Vcpu::l0_inject_ud},
        {ec::VMLOAD, ec::VMLOAD, &Vcpu::l0_vmload_vmsave},
        {ec::VMSAVE, ec::VMSAVE, &Vcpu::l0_vmload_vmsave},
        {ec::VMMCALL, ec::VMMCALL, &Vcpu::l0_inject_ud},
        {ec::SKINIT, ec::SKINIT, &Vcpu::l0_inject_ud},
        {ec::RSM, ec::RSM, &Vcpu::l0_inject_ud},
        // Exceptions only L0 intercepts (KVM's vmcb01 has #DB, #UD, #AC,
        // #MC): L0 handles them and L2 gets them back (nested_svm_exit_special
        // leaves them to L0; its handlers requeue them for the guest).
        {ec::EXCP_BASE, ec::EXCP_BASE + 31, &Vcpu::l0_reinject_exception},
    }};
    for (const Entry& h : kHandlers)
        if (code >= h.first && code <= h.last) return h.handle;
    return &Vcpu::l0_emulate;
}

StepResult Vcpu::l0_interrupt_window(const cpu::Event&, const cpu::ExitInfo& x) noexcept {
    // KVM's interrupt_window_interception: the dummy V_IRQ of L0's window
    // was taken, so L2 can take an interrupt now; the window closes and the
    // held INTR is evaluated again (KVM_REQ_EVENT), which closes it for good
    // once the INTR is taken (sync_irq_window).
    StepResult r;
    r.outcome = Outcome::handled_by_l0;
    r.owner = Owner::l0;
    r.l0_exit = true;
    r.exit_code = x.code;
    r.note = "L0's interrupt window: L2 can take the INTR held for L1 now";
    return take_held_signals(r, nullptr, "L0's interrupt window: the held INTR was taken");
}

StepResult Vcpu::l0_vmload_vmsave(const cpu::Event& e, const cpu::ExitInfo&) noexcept {
    return l2_vmload_vmsave(e);
}

StepResult Vcpu::l0_inject_ud(const cpu::Event&, const cpu::ExitInfo& x) noexcept {
    // Only L0's own intercept made these exit. L0 never serves L2's VMMCALL
    // (KVM's recalc_intercepts; KVM commit "KVM: nSVM: Fix #UD on VMMCALL
    // issues"), SKINIT is not offered (#UD, like L1's), and RSM outside SMM
    // is #UD: L0 injects #UD into L2, RIP unchanged (or exits to L1, which
    // intercepts #UD).
    StepResult r;
    r.outcome = Outcome::exception;
    r.vector = 6;
    r.l0_exit = true;
    r.exit_code = x.code;
    r.note = "intercepted only by L0: #UD injected into L2";
    return l0_raises_in_l2(0, r);
}

StepResult Vcpu::l0_shutdown(const cpu::Event&, const cpu::ExitInfo& x) noexcept {
    // L2 triple-faulted and L1 does not intercept SHUTDOWN: KVM's
    // shutdown_interception reports KVM_EXIT_SHUTDOWN and the whole vCPU
    // is gone, L1 with it.
    shutdown();
    StepResult r;
    r.outcome = Outcome::shutdown;
    r.l0_exit = true;
    r.exit_code = x.code;
    r.note = "L2 triple-faulted and L1 does not intercept SHUTDOWN: the vCPU shuts down";
    return r;
}

StepResult Vcpu::l0_iret(const cpu::Event& e, const cpu::ExitInfo& x) noexcept {
    // L0 intercepts IRET only while its software NMI mask is set, to see the
    // NMI handler leave (iret_interception): it drops the intercept
    // (svm_clr_iret_intercept) and re-enters the guest at the IRET, which
    // then executes in hardware; once it has completed, NMIs are unmasked
    // (svm_complete_interrupts) and a held one is taken at the boundary.
    // L0 cannot emulate it as an instruction that retires (it jumps through
    // the frame on L2's stack), so the processor runs it here, right after
    // the re-entry. An IRET that faults did not complete: the mask stays.
    StepResult r;
    r.l0_exit = true;
    r.exit_code = x.code;
    enter_l2_on_processor(r);
    if (mode_ != Mode::l2 || !hw_.in_guest()) return r;  // the re-entry itself exited or failed
    const bool gif_was = gif();
    const bool masked = nmi_masked_;
    set_software_nmi_mask(false);
    const cpu::SvmResult hr = hw().guest_event(e);
    if (hr.outcome == cpu::SvmOutcome::vmexit) {
        // The IRET faulted into an exit (#NPF, an intercepted #PF or #GP):
        // routed like any exit from L2.
        set_software_nmi_mask(masked);
        after_processor_exit();
        return route_l2_exit(e, hr);
    }
    if (hr.outcome != cpu::SvmOutcome::no_exit) set_software_nmi_mask(masked);  // it faulted into L2's IDT
    StepResult ran = l2_ran(e, hr, gif_was);
    ran.l0_exit = true;
    ran.exit_code = x.code;
    if (ran.outcome == Outcome::no_exit) {
        ran.outcome = Outcome::handled_by_l0;
        ran.owner = Owner::l0;
        ran.note = "IRET intercepted only by L0; L2 resumed at it and the processor executed it";
    }
    return ran;
}

StepResult Vcpu::l0_emulate(const cpu::Event& e, const cpu::ExitInfo& x) noexcept {
    // L0 asked for this exit alone: it emulates (a #GP for an illegal
    // control-register value) and L2 resumes.
    StepResult r;
    r.l0_exit = true;
    r.exit_code = x.code;
    if (const char* why = l2_write_fault(e)) {
        r.outcome = Outcome::exception;
        r.vector = 13;
        r.note = why;  // L0 injects the #GP(0) into L2
        return l0_raises_in_l2(0, r);
    }
    if (l2_clears_svme(e)) {
        // Clearing EFER.SVME while a guest runs is undefined (APM 15.4: the
        // VMM should keep guests from writing EFER). KVM leaves guest mode
        // and, since 2026 (commit cdc69269b18a; selftest
        // svm_nested_clear_efer_svme), triple-faults L1 rather than run it on
        // L2's state: KVM_EXIT_SHUTDOWN, no #VMEXIT to L1. A value with a
        // reserved bit was #GP above: KVM's set_efer refuses it before
        // svm_set_efer looks at SVME.
        leave_nested();
        shutdown();
        r.outcome = Outcome::shutdown;
        r.note = "L2 cleared EFER.SVME and L1 does not intercept the write: L0 leaves guest mode and L1 triple-faults";
        return r;
    }
    const bool gif_was = gif();
    apply_l2_effect(e);
    r.outcome = Outcome::handled_by_l0;
    r.owner = Owner::l0;
    r.exit_info_1 = x.info1;
    r.exit_info_2 = x.info2;
    r.note = "intercepted only by L0; L0 emulates, L2 continues";
    return l0_single_step(after_l2_gif_write(gif_was, r));
}

StepResult Vcpu::l0_single_step(StepResult r) noexcept {
    // An instruction L0 emulated for L2 completed: with L2's RFLAGS.TF set
    // it is followed by the single-step #DB the processor would have raised
    // (KVM's kvm_skip_emulated_instruction -> kvm_vcpu_do_singlestep: DR6.BS).
    if (mode_ != Mode::l2 || (vmcb02().get(FieldId::rflags) & arch::rflags::TF) == 0) return r;
    live_vmcb02().set(FieldId::dr6, cpu::dr6_after_single_step(vmcb02().get(FieldId::dr6)));
    r.outcome = Outcome::exception;
    r.vector = 1;
    r.note = "L0 emulated the instruction with L2's RFLAGS.TF set: single-step #DB";
    return l0_raises_in_l2(0, r);
}

StepResult Vcpu::l0_reinject_exception(const cpu::Event& e, const cpu::ExitInfo& x) noexcept {
    const auto vector = static_cast<std::uint8_t>(x.code - ec::EXCP_BASE);
    // #PF: CR2 is the faulting address, EXITINFO2 (APM 15.12.15).
    if (vector == 14) live_vmcb02().set(FieldId::cr2, x.info2);
    inject_into_l2(vector, static_cast<std::uint32_t>(x.info1));  // EXITINFO1: the error code
    StepResult r;
    r.l0_exit = true;
    r.exit_code = x.code;
    r.vector = vector;
    // An exception L2 raised is L0's business and goes back to L2's IDT;
    // one an L2 instruction raised is that instruction's fault.
    r.outcome = e.kind == EventKind::exception ? Outcome::handled_by_l0 : Outcome::exception;
    r.owner = e.kind == EventKind::exception ? Owner::l0 : Owner::none;
    r.note = "intercepted only by L0: the exception is re-injected into L2";
    return r;
}

cpu::SignalState Vcpu::l1_view(cpu::Signal s) const noexcept {
    // The processor L1 sees, as KVM emulates it (svm_check_nested_events,
    // svm_nmi_blocked, svm_interrupt_blocked): L1's GIF and SMM; while L2
    // runs, vmcb12's intercepts, L2's interrupt shadow and vmcb12's
    // V_INTR_MASKING with L1's RFLAGS.IF as it was at VMRUN (kept in vmcb01);
    // while L1 runs, L1's own IF and shadow.
    cpu::SignalState st;
    st.gif = gif();
    st.smm = smm_;
    const bool in_l2 = mode_ == Mode::l2;
    const arch::Vmcb& running = in_l2 ? vmcb02() : vmcb01_;
    st.intercepted = in_l2 && cache_.intercept(cpu::intercept_of(s));
    st.shadow = (running.get(FieldId::int_state) & arch::int_state::INTERRUPT_SHADOW) != 0;
    st.intr_unmasked = cpu::intr_unmasked(in_l2, (cache_.get(FieldId::int_ctl) & arch::int_ctl::V_INTR_MASKING) != 0,
                                          (vmcb01_.get(FieldId::rflags) & arch::rflags::IF) != 0,
                                          (running.get(FieldId::rflags) & arch::rflags::IF) != 0);
    st.nmi_masked = nmi_masked();
    return st;
}

namespace {
constexpr cpu::Signal signal_of(EventKind k) noexcept {
    return k == EventKind::intr  ? cpu::Signal::intr
           : k == EventKind::nmi ? cpu::Signal::nmi
           : k == EventKind::smi ? cpu::Signal::smi
                                 : cpu::Signal::init;
}
}  // namespace

const char* Vcpu::hold_note(cpu::Signal s, const cpu::SignalState& st) const noexcept {
    if (!st.gif) return "GIF = 0: held pending";
    if (st.smm) return s == cpu::Signal::smi ? "SMI blocked in SMM" : "INIT blocked in SMM";
    if (s == cpu::Signal::nmi && st.nmi_masked && !st.shadow)
        return "NMIs blocked until the NMI handler's IRET: held pending";
    if (mode_ == Mode::l1) return "RFLAGS.IF = 0 or interrupt shadow: held pending";
    if (s == cpu::Signal::intr && !st.intr_unmasked &&
        (cache_.get(FieldId::int_ctl) & arch::int_ctl::V_INTR_MASKING) != 0)
        return "L1's RFLAGS.IF = 0 (V_INTR_MASKING): held pending";
    return s == cpu::Signal::nmi ? "L2's interrupt shadow: held pending"
                                 : "L2's RFLAGS.IF = 0 or interrupt shadow: held pending";
}

StepResult Vcpu::l1_vnmi(StepResult r) noexcept {
    namespace ib = arch::int_ctl;
    const std::uint32_t nmi = pending_bit(cpu::Signal::nmi);
    // process_nmi / svm_set_vnmi_pending: an NMI L0 holds goes to the
    // processor when vmcb01's V_NMI_PENDING is free.
    const auto hand_over = [&] {
        const std::uint64_t i = vmcb01_.get(FieldId::int_ctl);
        if ((pending_ & nmi) == 0 || (i & ib::V_NMI_PENDING) != 0) return;
        pending_ &= ~nmi;
        vmcb01_.set(FieldId::int_ctl, i | ib::V_NMI_PENDING);
    };
    hand_over();
    // One still held found V_NMI_PENDING taken: while NMIs are blocked,
    // KVM's limit of pending NMIs is reached and it is dropped, as hardware
    // latches one NMI while NMIs are blocked (APM 8.5).
    const std::uint64_t i01 = vmcb01_.get(FieldId::int_ctl);
    if ((pending_ & nmi) != 0 && (i01 & ib::V_NMI_BLOCKING) != 0) {
        pending_ &= ~nmi;
        r.note = "vNMI: an NMI is already pending in vmcb01 while NMIs are blocked: this one is dropped";
    }
    const bool shadow = (vmcb01_.get(FieldId::int_state) & arch::int_state::INTERRUPT_SHADOW) != 0;
    if (!cpu::vnmi_deliverable(*cpu_, i01, shadow)) {
        sync_event_windows();  // only an NMI left in pending_ (KVM's fallback) opens it
        return r;
    }
    vmcb01_.set(FieldId::int_ctl, cpu::int_ctl_after_vnmi_taken(i01));
    hand_over();  // into the freed V_NMI_PENDING, blocked now
    sync_event_windows();
    StepResult t;
    t.outcome = Outcome::interrupt;
    t.vector = 2;
    t.note = "vNMI: the processor delivers vmcb01's V_NMI_PENDING to L1 through its IDT (V_NMI_BLOCKING set), "
             "no exit to L0";
    return t;
}

StepResult Vcpu::l1_iret() noexcept {
    StepResult r;
    if (shut_down(r) || l1_not_running(mode_, r)) return r;
    if (vmcb01_.intercept(ic::IRET)) {
        // L0's software NMI mask (iret_interception): L0 lets the IRET run
        // (awaiting_iret_completion) and, once it has completed, NMIs are
        // unblocked (svm_complete_interrupts).
        set_software_nmi_mask(false);
        r.outcome = Outcome::handled_by_l0;
        r.owner = Owner::l0;
        r.exit_code = ec::IRET;
        r.l0_exit = true;
        r.note = "intercepted by L0 (the NMI handler's IRET): NMIs unblocked once it completes";
    } else {
        r.note = l0_uses_vnmi() ? "vNMI: the IRET ends vmcb01's V_NMI_BLOCKING, no exit" : "not intercepted: no exit";
    }
    // The IRET completed: NMIs are unblocked, under vNMI by the processor
    // itself (APM 15.21.10: vmcb01's V_NMI_BLOCKING).
    set_nmi_masked(false);
    // What the blocking held is taken now.
    return take_held_signals(r, nullptr, "NMIs unblocked: the held NMI was delivered to L1");
}

StepResult Vcpu::external(EventKind k) noexcept {
    StepResult r;
    if (shut_down(r)) return r;
    return take_signal(signal_of(k));
}

StepResult Vcpu::take_signal(cpu::Signal s) noexcept {
    StepResult r;
    // Under vNMI, L1's NMIs are the processor's to take, from vmcb01 (KVM's
    // process_nmi hands them over through svm_set_vnmi_pending).
    if (s == cpu::Signal::nmi && vnmi_runs_l1()) {
        pending_ |= pending_bit(s);
        r.outcome = Outcome::held_pending;
        r.note = gif() ? "vNMI: held in vmcb01's V_NMI_PENDING while NMIs are blocked (V_NMI_BLOCKING) or in a shadow"
                       : "vNMI: held in vmcb01's V_NMI_PENDING until L1 sets GIF (no STGI window)";
        return l1_vnmi(r);
    }
    const cpu::SignalState st = l1_view(s);
    switch (cpu::signal_action(s, st)) {
        case cpu::SignalAction::hold:
            pending_ |= pending_bit(s);
            sync_event_windows();  // an NMI or SMI held by GIF = 0 opens the STGI window
            r.outcome = Outcome::held_pending;
            r.note = hold_note(s, st);
            return r;
        case cpu::SignalAction::vmexit: {
            // The physical event exits to L0 (vmcb01 intercepts INTR, NMI,
            // SMI); it becomes #VMEXIT to L1 as L1 intercepts it
            // (svm_check_nested_events). It is not consumed: it stays
            // pending and, with GIF = 0 after the exit, is held until L1 sets
            // GIF (APM 15.17; KVM keeps nmi_pending/smi_pending/IRR/INIT
            // across the #VMEXIT).
            const unsigned bit = cpu::intercept_of(s);
            pending_ |= pending_bit(s);  // before the exit, which may hand an NMI to vmcb01 (vNMI)
            r = nested_vmexit(cpu::ExitInfo{bit, 0, 0, 0});
            sync_event_windows();
            r.l0_exit = true;
            r.note = "L1 intercepts it: #VMEXIT to L1";
            return r;
        }
        case cpu::SignalAction::take: break;
    }
    pending_ &= ~pending_bit(s);
    sync_event_windows();
    if (s == cpu::Signal::smi) return enter_smm();
    const bool in_l2 = mode_ == Mode::l2;
    r.outcome = Outcome::handled_by_l0;
    r.owner = Owner::l0;
    if (s == cpu::Signal::init) {
        // An INIT L1 does not intercept resets the vCPU: L2 is gone.
        leave_nested();
        r.note = in_l2 ? "INIT not intercepted by L1: vCPU reset, guest mode left (GIF = 1)" : "INIT delivered to L1";
        return r;
    }
    // L0 injects the NMI (into L1, or into L2 for L1) and blocks NMIs until
    // its handler's IRET (KVM's svm_inject_nmi: nmi_masked and the IRET
    // intercept, as no vNMI tracks it for the level that runs).
    if (s == cpu::Signal::nmi) set_software_nmi_mask(true);
    if (!in_l2) {
        r.note = "delivered to L1";
        return r;
    }
    r.exit_code = cpu::intercept_of(s);
    r.l0_exit = true;
    r.note = "L1 does not intercept it: L0 injects it into L2";
    return r;
}


StepResult Vcpu::host_set_efer(std::uint64_t efer) noexcept {
    StepResult r;
    // Clearing EFER.SVME is not architected to set GIF: KVM stopped setting
    // it (commit 8312f1b9dd71 "KVM: SVM: Don't set GIF when clearing
    // EFER.SVME"). Out of guest mode GIF stays as it is.
    const bool clears_svme = (efer & arch::efer::SVME) == 0;
    if (clears_svme && mode_ == Mode::l2) {
        leave_nested();
        r.note = "EFER.SVME cleared while L2 runs: forced exit to L1, GIF = 1";
    }
    vmcb01_.set(FieldId::efer, efer);
    r.outcome = Outcome::l1_continues;
    return r;
}

// --- L1's SVM instructions (as vmcb01 intercepts them) ---

bool Vcpu::vmload_from(std::uint64_t pa) noexcept {
    // APM 15.5.2: FS, GS, TR, LDTR with hidden state, KernelGsBase, STAR,
    // LSTAR, CSTAR, SFMASK, SYSENTER_CS/ESP/EIP. KVM keeps this state in
    // vmcb01 for L1 and L2 alike (KVM's svm_copy_vmloadsave_state): while L2 runs, its
    // vmcb02 copy follows.
    arch::Vmcb src;
    if (!mem_->read_vmcb(pa, src)) return false;
    for (arch::Vmcb* dst : {&vmcb01_, mode_ == Mode::l2 ? &live_vmcb02() : nullptr}) {
        if (dst == nullptr) continue;
        arch::copy_vmload_state(src, *dst);
    }
    return true;
}

bool Vcpu::vmsave_to(std::uint64_t pa) noexcept {
    const auto dst = mem_->vmcb_in_place(pa);
    if (!dst) return false;
    arch::copy_vmload_state(vmcb01_, *dst);
    return true;
}

void Vcpu::l1_vmload_vmsave_exit(StepResult& r, bool save) const noexcept {
    // KVM's vmload_vmsave_interception when vmcb01 intercepts the
    // instruction; with virtual VMLOAD/VMSAVE (vls) L1's runs in hardware
    // on its guest-physical rAX (APM 15.33.1), which L0's nested page
    // tables map 1:1 here: the same state moves, without an exit to L0.
    if (!vmcb01_.intercept(save ? ic::VMSAVE : ic::VMLOAD)) {
        r.note = "virtual VMLOAD/VMSAVE: no exit to L0";
        return;
    }
    r.outcome = Outcome::handled_by_l0;
    r.owner = Owner::l0;
    r.exit_code = save ? ec::VMSAVE : ec::VMLOAD;
    r.l0_exit = true;
    r.note = "intercepted by L0: emulated into vmcb01";
}

StepResult Vcpu::l1_vmload() noexcept {
    StepResult r;
    if (!l1_instruction_gates(r, cpu::SvmInsn::vmload)) return r;
    if (!vmload_from(vmcb01_.get(FieldId::rax))) {
        r.outcome = Outcome::exception;
        r.vector = 13;
        r.note = "VMLOAD from unbacked memory: #GP(0)";
        return r;
    }
    l1_vmload_vmsave_exit(r, false);
    skip_l1_instruction();
    return r;
}

StepResult Vcpu::l1_vmsave() noexcept {
    StepResult r;
    if (!l1_instruction_gates(r, cpu::SvmInsn::vmsave)) return r;
    if (!vmsave_to(vmcb01_.get(FieldId::rax))) {
        r.outcome = Outcome::exception;
        r.vector = 13;
        r.note = "VMSAVE to unbacked memory: #GP(0)";
        return r;
    }
    l1_vmload_vmsave_exit(r, true);
    skip_l1_instruction();
    return r;
}

StepResult Vcpu::l2_vmload_vmsave(const cpu::Event& e) noexcept {
    // L1 does not intercept L2's VMLOAD/VMSAVE and vmcb02 has no virtual
    // VMLOAD/VMSAVE: L0's intercept caught it and L0 emulates it as KVM's
    // vmload_vmsave_interception does: L2's own gates, then rAX taken as an
    // L1 physical address (what the instruction uses outside virtual
    // VMLOAD/VMSAVE, APM 15.33.1). (With virtual VMLOAD/VMSAVE the
    // processor runs it in L2 itself.)
    StepResult r;
    r.l0_exit = true;
    r.exit_code = e.kind == EventKind::vmload ? ec::VMLOAD : ec::VMSAVE;
    const auto fault = [&](std::uint8_t vector, const char* note) {
        r.outcome = Outcome::exception;
        r.vector = vector;
        r.note = note;
        return l0_raises_in_l2(0, r);
    };
    // The processor's gates ran before the intercept (APM Table 15-7); L0
    // judges L2's state by its own as well (KVM's nested_svm_check_permissions
    // adds #UD without paging): the catalogue's gates under L0's profile.
    const auto insn = e.kind == EventKind::vmload ? cpu::SvmInsn::vmload : cpu::SvmInsn::vmsave;
    if (const checks::Check* c =
            cpu::svm_instruction_gate(insn, gate_state(vmcb02()), *cpu_, *profile_, cpu::GateContext::guest)) {
        const cpu::GateFault f = cpu::gate_fault(*c);
        r.failed_check = c;
        return fault(f.vector, f.note);
    }
    const std::uint64_t rax = vmcb02().get(FieldId::rax);
    const bool ok = e.kind == EventKind::vmload ? vmload_from(rax) : vmsave_to(rax);
    if (!ok) return fault(13, "VMLOAD/VMSAVE on memory L0 does not back: #GP(0) in L2");
    apply_l2_effect(e);  // RIP past the instruction
    r.outcome = Outcome::handled_by_l0;
    r.owner = Owner::l0;
    r.note = "not intercepted by L1: L0 emulates it on L1 physical rAX (state shared with L1)";
    return l0_single_step(r);
}

StepResult Vcpu::l1_stgi() noexcept { return l1_gif_instruction(true); }

StepResult Vcpu::l1_clgi() noexcept { return l1_gif_instruction(false); }

StepResult Vcpu::l1_gif_instruction(bool set) noexcept {
    StepResult r;
    if (!l1_instruction_gates(r, set ? cpu::SvmInsn::stgi : cpu::SvmInsn::clgi)) return r;
    const bool gif_was = gif();
    if (vmcb01_.intercept(set ? ic::STGI : ic::CLGI)) {
        // L0's intercept (no vGIF, or the NMI/SMI window under vGIF): KVM's
        // stgi_interception / clgi_interception skip the instruction and
        // svm_set_gif, which under vGIF also closes the window.
        r.outcome = Outcome::handled_by_l0;
        r.owner = Owner::l0;
        r.exit_code = set ? ec::STGI : ec::CLGI;
        r.l0_exit = true;
        r.note = set ? "intercepted by L0: GIF = 1" : "intercepted by L0: GIF = 0";
        set_gif(set);
    } else if (const cpu::GuestGifWrite w = cpu::guest_gif_write(*cpu_, vmcb01_.get(FieldId::int_ctl), set);
               w.virtual_gif) {
        // Not intercepted: the processor's rule on vmcb01 (APM 15.33.2), no exit.
        vmcb01_.set(FieldId::int_ctl, w.int_ctl);
        sync_event_windows();
        r.note = set ? "vGIF: V_GIF = 1 in vmcb01, no exit to L0" : "vGIF: V_GIF = 0 in vmcb01, no exit to L0";
    } else {
        // Not intercepted and no vGIF (an L0 configured without the
        // intercepts): the processor's GIF, which is L1's.
        set_gif(set);
        r.note = set ? "not intercepted: GIF = 1" : "not intercepted: GIF = 0";
    }
    skip_l1_instruction();
    // What GIF = 0 held is taken now (APM 15.17): through L0's STGI
    // intercept, or, under vGIF, the virtual interrupt window (KVM's
    // svm_enable_irq_window relies on hardware setting V_GIF).
    if (set && !gif_was) return take_held_signals(r, nullptr, "GIF = 1: held events delivered to L1");
    return r;
}

StepResult Vcpu::l1_invlpga() noexcept {
    StepResult r;
    if (!l1_instruction_gates(r, cpu::SvmInsn::invlpga)) return r;
    // The TLB is not modelled: INVLPGA of (rAX, ECX = ASID) has no visible effect.
    skip_l1_instruction();
    r.note = "TLB not modelled";
    return r;
}

StepResult Vcpu::l1_vmmcall() noexcept {
    StepResult r;
    if (shut_down(r) || l1_not_running(mode_, r)) return r;
    r.outcome = Outcome::handled_by_l0;
    r.owner = Owner::l0;
    r.exit_code = ec::VMMCALL;
    r.note = "hypercall to L0";
    skip_l1_instruction();
    return r;
}

StepResult Vcpu::l1_skinit() noexcept {
    StepResult r;
    if (shut_down(r) || l1_not_running(mode_, r)) return r;
    r.outcome = Outcome::exception;
    r.vector = 6;
    r.note = "SKINIT is not offered to L1: #UD";
    return r;
}

StepResult Vcpu::l1_wrmsr(std::uint32_t msr, std::uint64_t value) noexcept {
    StepResult r;
    if (shut_down(r) || l1_not_running(mode_, r)) return r;
    auto gp = [&](const char* why) {
        r.outcome = Outcome::exception;
        r.vector = 13;
        r.note = why;
        return r;
    };
    // The SVM MSRs' #GP rules and stored values are the processor's
    // (cpu/msr_rules.hpp), as KVM's svm_set_msr applies them to L1.
    const cpu::MsrWrite w = l0_msr_write(msr, value, vmcb01_, vmcb01_.get(FieldId::efer));
    if (w.gp != nullptr) return gp(w.gp);
    switch (msr) {
        case arch::msr::VM_HSAVE_PA: hsave_pa_ = w.stored; break;
        case arch::msr::VM_CR: vm_cr_ = w.stored; break;
        case arch::msr::TSC_RATIO: tsc_ratio_ = w.stored; break;
        // The vCPU's one TSC_AUX, L1's and L2's alike: KVM loads the guest's
        // value into the processor's MSR before entering it (a user-return
        // MSR), so L2's RDTSCP reads it from the processor.
        case arch::msr::TSC_AUX: hw_.msrs().tsc_aux = w.stored; break;
        case arch::msr::EFER: (void)host_set_efer(w.stored); break;
        case arch::msr::PAT: vmcb01_.set(FieldId::g_pat, w.stored); break;
        case arch::msr::DEBUGCTL: vmcb01_.set(FieldId::dbgctl, w.stored); break;
        case arch::msr::STAR: vmcb01_.set(FieldId::star, value); break;
        case arch::msr::LSTAR: vmcb01_.set(FieldId::lstar, value); break;
        case arch::msr::CSTAR: vmcb01_.set(FieldId::cstar, value); break;
        case arch::msr::SFMASK: vmcb01_.set(FieldId::sfmask, value); break;
        case arch::msr::KERNEL_GS_BASE: vmcb01_.set(FieldId::kernel_gs_base, value); break;
        case arch::msr::SYSENTER_CS: vmcb01_.set(FieldId::sysenter_cs, value); break;
        case arch::msr::SYSENTER_ESP: vmcb01_.set(FieldId::sysenter_esp, value); break;
        case arch::msr::SYSENTER_EIP: vmcb01_.set(FieldId::sysenter_eip, value); break;
        default: break;
    }
    vmcb01_.set(FieldId::rip, vmcb01_.get(FieldId::rip) + 2);
    return r;
}

StepResult Vcpu::l1_rdmsr(std::uint32_t msr, std::uint64_t& value) noexcept {
    StepResult r;
    value = 0;
    if (shut_down(r) || l1_not_running(mode_, r)) return r;
    switch (msr) {
        case arch::msr::VM_HSAVE_PA: value = hsave_pa_; break;
        case arch::msr::VM_CR: value = vm_cr_; break;
        case arch::msr::TSC_RATIO: value = tsc_ratio_; break;
        case arch::msr::TSC_AUX: value = hw_.msrs().tsc_aux; break;
        case arch::msr::EFER: value = vmcb01_.get(FieldId::efer); break;
        case arch::msr::PAT: value = vmcb01_.get(FieldId::g_pat); break;
        case arch::msr::DEBUGCTL: value = vmcb01_.get(FieldId::dbgctl); break;
        default: value = 0; break;
    }
    vmcb01_.set(FieldId::rip, vmcb01_.get(FieldId::rip) + 2);
    return r;
}

}  // namespace nsvm::nested
