// L2 on the processor: L0's VMRUN of vmcb02 on cpu::SvmCpu, the #VMEXITs it
// takes back, and its resume after handling one (KVM's svm_vcpu_run and
// __svm_vcpu_run around VMRUN; nested_svm_exit_handled after it).
//
// The processor (hw_) is the APM's (the `apm` profile on the vCPU's CPU
// model): whatever profile L1's VMRUN is emulated with, the VMCB L0 builds
// is run by hardware, which applies its own checks, loads and EVENTINJ
// delivery. L0 keeps the VMLOAD/VMSAVE state of L1 and L2 in vmcb01 (as
// KVM's __svm_vcpu_run VMLOADs and VMSAVEs vmcb01 around every VMRUN).
#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/nested/vcpu.hpp"

namespace nsvm::nested {
namespace ec = arch::exit_code;
namespace ic = arch::intercept;
using arch::FieldId;

cpu::HeldVmcb Vcpu::held_vmcb02() noexcept { return cpu::HeldVmcb{&live_vmcb02(), vmcb02_msrpm(), vmcb02_iopm()}; }

cpu::SvmCpu& Vcpu::hw() noexcept {
    // A copied Vcpu (restore_state's backup) carries a processor that still
    // points at the original's vmcb02: point it at ours before every use.
    hw_.rehold(held_vmcb02());
    return hw_;
}

void Vcpu::walk_l1_tables_in_l1_mode() noexcept {
    // vmcb02 names L1's nested tables itself (the model's stand-in for the
    // shadow tables KVM builds from them), and the processor walks nested
    // tables in its host's paging mode (APM 15.25.5). KVM walks L1's tables
    // in L1's mode (kvm_init_shadow_npt_mmu with vmcb01's CR4 and EFER): the
    // NX bit is reserved without L1's EFER.NXE, and an #NPF reports a fetch
    // only under L1's EFER.NXE or CR4.SMEP. So L0's host EFER.NXE and
    // CR4.SMEP follow L1's for the VMRUN of vmcb02; nothing else of L0's
    // host state reads them.
    cpu::Registers& host = hw_.regs();
    const std::uint64_t nxe = arch::efer::NXE, smep = arch::cr4::SMEP;
    host.efer = (host.efer & ~nxe) | (vmcb01_.get(FieldId::efer) & nxe);
    host.cr4 = (host.cr4 & ~smep) | (vmcb01_.get(FieldId::cr4) & smep);
}

cpu::SvmResult Vcpu::run_vmcb02() noexcept {
    hw_.vmload_state_from(vmcb01_);
    walk_l1_tables_in_l1_mode();
    return hw_.vmrun(live_vmcb02(), vmcb02_msrpm(), vmcb02_iopm());
}

void Vcpu::after_processor_exit() noexcept {
    // KVM's __svm_vcpu_run: VMSAVE into vmcb01 after the #VMEXIT; vmcb01
    // holds the VMLOAD state of L1 and L2 alike.
    hw_.vmsave_state_to(vmcb01_);
}

void Vcpu::l0_takes_exit(const cpu::ExitInfo& x) noexcept {
    // An event L0 sees without the processor deciding it (a physical
    // interrupt vmcb02 intercepts because vmcb01 does, a forced exit): the
    // processor leaves L2 with that exit code, vmcb02 gets L2's state.
    if (!hw_.in_guest()) return;
    (void)hw().vmexit(x);
    after_processor_exit();
}

bool Vcpu::took_entry(const cpu::SvmResult& hr, StepResult& r) noexcept {
    if (hr.outcome == cpu::SvmOutcome::entered_guest) {
        // vmcb02 holds what the processor loaded, unless delivering EVENTINJ
        // moved L2 on (its IDT's CS:RIP, the frame on its stack).
        if (hr.injection == cpu::Injection::delivered) hw_.flush_guest_state();
        if (hr.injection == cpu::Injection::delivered && r.outcome == Outcome::entered_l2)
            r.note = hr.delivery == cpu::Delivery::through_idt
                         ? "vmcb02 run by the processor; GIF = 1; EVENTINJ delivered through L2's IDT"
                         : "vmcb02 run by the processor; GIF = 1; EVENTINJ taken (delivery not modelled)";
        return true;
    }
    if (hr.outcome == cpu::SvmOutcome::vmexit) after_processor_exit();
    if (hr.outcome == cpu::SvmOutcome::vmexit && !ec::is_vmrun_failure(hr.exit_code)) {
        // Delivering EVENTINJ faulted and the fault is intercepted: the
        // processor exited before L2's first instruction (APM 15.20). Routing
        // reads the exit code; the event only says it came from an exception.
        cpu::Event during{};
        during.kind = cpu::EventKind::exception;
        during.index = static_cast<std::uint32_t>(hr.exit_code & 0x1F);
        r = route_l2_exit(during, hr);
        return true;
    }
    return false;
}

void Vcpu::enter_l2_on_processor(StepResult& r) noexcept {
    // Every entry into L2 (L1's VMRUN, after an exit L0 handled): VMRUN of
    // vmcb02. What L0 wrote into it (an emulated register write, an injected
    // event) is checked and loaded like everything else.
    const cpu::SvmResult hr = run_vmcb02();
    if (took_entry(hr, r)) return;
    // SVM_EXIT_ERR on vmcb02: a check the profile let L1's VMRUN through, or
    // an L0 emulation that left an illegal state. KVM's nested_svm_intercept
    // reflects it to L1 as #VMEXIT(VMEXIT_INVALID).
    r = fail_vmrun(FailReason::vmcb02_refused, hr.failed_check, &live_vmcb02());
}

void Vcpu::inject_into_l2(std::uint8_t vector, std::uint32_t error_code) noexcept {
    // KVM's svm_inject_exception: EVENTINJ of vmcb02, delivered by the next VMRUN.
    std::uint64_t ev = arch::event::V | (std::uint64_t{static_cast<unsigned>(arch::event::Type::exception)}
                                         << arch::event::kTypeShift) | vector;
    if (arch::exception_has_error_code(vector)) ev |= arch::event::EV;
    live_vmcb02().set(FieldId::event_inj, ev);
    live_vmcb02().set(FieldId::event_inj_err, error_code);
}

StepResult Vcpu::l0_raises_in_l2(std::uint32_t error_code, StepResult r) noexcept {
    // KVM queues the exception for L2; before the next entry
    // svm_check_nested_events sees that vmcb12 intercepts its vector and
    // makes it #VMEXIT(EXCP_BASE + vector) to L1 instead
    // (nested_svm_inject_exception_vmexit: EXITINFO1 the error code), with
    // vmcb02's nRIP from the exit L0 took. L2's RIP is still at the
    // instruction that faulted.
    const std::uint8_t vector = r.vector;
    if (!cache_.intercept(ic::exception(vector))) {
        inject_into_l2(vector, error_code);
        return r;
    }
    const std::uint64_t info1 = arch::exception_has_error_code(vector) ? error_code : 0;
    StepResult t = nested_vmexit(cpu::ExitInfo{ec::EXCP_BASE + vector, info1, 0, vmcb02().get(FieldId::next_rip)});
    t.l0_exit = true;
    t.failed_check = r.failed_check;
    t.note = "L0's emulation raised an exception L1 intercepts: #VMEXIT to L1 (KVM's "
             "nested_svm_inject_exception_vmexit)";
    return t;
}

}  // namespace nsvm::nested
