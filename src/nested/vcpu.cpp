// Construction, names, small helpers and the invariants.
#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/checks/evaluate.hpp"
#include "nsvm/nested/vcpu.hpp"

namespace nsvm::nested {
namespace ic = arch::intercept;
using arch::FieldId;

L0Config L0Config::kvm_default() {
    // KVM's init_vmcb with NPT on (no CR3/INVLPG/#PF intercepts),
    // intercept_smi on, and STGI/CLGI/VMLOAD/VMSAVE as init_vmcb sets them
    // before looking at vgif and vls (Vcpu::l0_intercept_words drops them).
    arch::Vmcb v;
    for (unsigned cr : {0U, 4U}) {
        v.set_intercept(ic::cr_read(cr));
        v.set_intercept(ic::cr_write(cr));
    }
    v.set_intercept(ic::cr_write(8));
    for (unsigned dr = 0; dr < 8; ++dr) {
        v.set_intercept(ic::dr_read(dr));
        v.set_intercept(ic::dr_write(dr));
    }
    for (unsigned e : {1U, 6U, 17U, 18U}) v.set_intercept(ic::exception(e));
    for (unsigned b : {ic::INTR, ic::NMI, ic::SMI, ic::SELECTIVE_CR0, ic::RDPMC, ic::CPUID, ic::INVD, ic::INVLPGA,
                       ic::IOIO_PROT, ic::MSR_PROT, ic::TASK_SWITCH, ic::SHUTDOWN, ic::VMRUN, ic::VMMCALL,
                       ic::VMLOAD, ic::VMSAVE, ic::STGI, ic::CLGI, ic::SKINIT, ic::WBINVD, ic::XSETBV, ic::RDPRU,
                       ic::RSM, ic::MONITOR, ic::MWAIT, ic::HLT, ic::PAUSE})
        v.set_intercept(b);
    L0Config c;
    for (unsigned w = 0; w < 6; ++w) c.intercept_words[w] = v.intercept_word(w);
    // MSRs KVM passes through to a guest (KVM's direct_access_msrs list, abridged).
    constexpr std::array<std::uint32_t, 11> pt = {arch::msr::STAR,        arch::msr::LSTAR,
                                                  arch::msr::CSTAR,       arch::msr::SFMASK,
                                                  arch::msr::FS_BASE,     arch::msr::GS_BASE,
                                                  arch::msr::KERNEL_GS_BASE, arch::msr::SYSENTER_CS,
                                                  arch::msr::SYSENTER_ESP, arch::msr::SYSENTER_EIP,
                                                  arch::msr::SPEC_CTRL};
    for (auto m : pt) c.passthrough_msrs[c.passthrough_count++] = m;
    c.npt = true;
    return c;
}

std::string_view mode_name(Mode m) noexcept {
    switch (m) {
        case Mode::l1: return "l1";
        case Mode::l2: return "l2";
        case Mode::shutdown: return "shutdown";
    }
    return "?";
}

std::string_view fail_reason_name(FailReason r) noexcept {
    switch (r) {
        case FailReason::none: return "none";
        case FailReason::consistency_check: return "consistency_check";
        case FailReason::illegal_l2_cr3: return "illegal_l2_cr3";
        case FailReason::illegal_pdpe: return "illegal_pdpe";
        case FailReason::unreadable_pdpe: return "unreadable_pdpe";
        case FailReason::msrpm_unreadable: return "msrpm_unreadable";
        case FailReason::vmcb02_refused: return "vmcb02_refused";
    }
    return "?";
}

std::string_view outcome_name(Outcome o) noexcept {
    switch (o) {
        case Outcome::l1_continues: return "l1_continues";
        case Outcome::entered_l2: return "entered_l2";
        case Outcome::vmrun_failed: return "vmrun_failed";
        case Outcome::vmexit_to_l1: return "vmexit_to_l1";
        case Outcome::handled_by_l0: return "handled_by_l0";
        case Outcome::no_exit: return "no_exit";
        case Outcome::exception: return "exception";
        case Outcome::interrupt: return "interrupt";
        case Outcome::held_pending: return "held_pending";
        case Outcome::smm_entered: return "smm_entered";
        case Outcome::smm_left: return "smm_left";
        case Outcome::restored: return "restored";
        case Outcome::shutdown: return "shutdown";
    }
    return "?";
}

Vcpu::Vcpu(const checks::CpuModel& cpu, const checks::Profile& profile, cpu::GuestMemory& memory, L0Config l0,
           Options opts)
    : hw_(cpu, checks::profile(checks::ProfileId::apm), memory),
      cpu_(&cpu), profile_(&profile), mem_(&memory), l0_(l0), opts_(opts) {
    // The physical processor L0 runs on: the APM's, on this CPU model, whatever
    // profile L1's VMRUN is emulated with. Its host is L0 (a 64-bit kernel).
    // VM_HSAVE_PA names L0's own host-save page; the host state of a
    // host-held VMCB stays in the processor (cpu::HeldVmcb).
    hw_.regs() = cpu::SvmCpu::long_mode_host();
    hw_.msrs().vm_hsave_pa = kL0HsavePa;
    const auto words = l0_intercept_words();
    for (unsigned w = 0; w < 6; ++w) vmcb01_.set_intercept_word(w, words[w]);
    vmcb01_.set(FieldId::asid, l0_.asid01);
    if (l0_.npt) vmcb01_.set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE);
    // svm_recalc_instruction_intercepts: virtual VMLOAD/VMSAVE for L1.
    if (l0_uses_vls()) vmcb01_.set(FieldId::misc_ctl2, arch::misc_ctl2::V_VMSAVE_VMLOAD);
    // L0 allocates its maps all-ones (intercept everything) and clears the
    // bits of what it passes through (KVM's nested_svm_merge_msrpm).
    msrpm01_.fill(0xFF);
    for (auto& m : msrpm02s_) m.fill(0xFF);
    iopm01_.fill(0xFF);
    for (std::uint8_t i = 0; i < l0_.passthrough_count; ++i) {
        if (const auto b = cpu::msrpm_bit(l0_.passthrough_msrs[i])) {
            const MsrpmSlot slot{static_cast<std::uint16_t>(*b / 8), static_cast<std::uint8_t>(3U << (*b % 8))};
            passthrough_slots_[passthrough_slot_count_++] = slot;
            msrpm01_[slot.byte] = static_cast<std::uint8_t>(msrpm01_[slot.byte] & ~slot.bits);
        }
    }
    for (std::uint8_t i = 0; i < l0_.passthrough_port_count; ++i) {
        const unsigned p = l0_.passthrough_ports[i];
        iopm01_[p / 8] = static_cast<std::uint8_t>(iopm01_[p / 8] & ~(1U << (p % 8)));
    }
    for (auto& m : iopm02s_) m = iopm01_;  // merge_iopm rewrites only the pass-through ports
    // init_vmcb: V_INTR_MASKING always, V_GIF_ENABLE with vGIF,
    // V_NMI_ENABLE with vNMI; GIF = 1 (in V_GIF with vGIF).
    vmcb01_.set(FieldId::int_ctl, arch::int_ctl::V_INTR_MASKING |
                                      (l0_uses_vgif() ? arch::int_ctl::V_GIF_ENABLE : 0) |
                                      (l0_uses_vnmi() ? arch::int_ctl::V_NMI_ENABLE : 0));
    set_gif(true);
    // A 64-bit L1 at CPL 0 with SVM enabled.
    vmcb01_.set(FieldId::efer, arch::efer::SCE | arch::efer::LME | arch::efer::LMA | arch::efer::NXE |
                                   arch::efer::SVME);
    vmcb01_.set(FieldId::cr0, 0x80050033);
    vmcb01_.set(FieldId::cr4, 0x6F0 | arch::cr4::PAE);
    vmcb01_.set(FieldId::cr3, 0x1000);
    vmcb01_.set(FieldId::dr6, 0xFFFF0FF0);
    vmcb01_.set(FieldId::dr7, 0x400);
    vmcb01_.set(FieldId::rflags, 0x2);
    vmcb01_.set(FieldId::g_pat, 0x0007040600070406ULL);
    vmcb01_.set_segment(arch::Seg::cs, {0x8, 0xA9B, 0xFFFFFFFF, 0});
    vmcb01_.set_segment(arch::Seg::ss, {0x10, 0xC93, 0xFFFFFFFF, 0});
    vmcb01_.set_segment(arch::Seg::ds, {0x10, 0xC93, 0xFFFFFFFF, 0});
    vmcb01_.set_segment(arch::Seg::es, {0x10, 0xC93, 0xFFFFFFFF, 0});
}

std::array<std::uint32_t, 6> Vcpu::l0_intercept_words() const noexcept {
    arch::Vmcb v;
    for (unsigned w = 0; w < 6; ++w) v.set_intercept_word(w, l0_.intercept_words[w]);
    if (!opts_.intercept_smi) v.set_intercept(ic::SMI, false);
    // The IRET intercept is L0's NMI mask (set_nmi_masked), the VINTR
    // intercept its interrupt window (sync_irq_window): never configured.
    v.set_intercept(ic::IRET, false);
    v.set_intercept(ic::VINTR, false);
    // init_vmcb: with vgif, STGI and CLGI are not intercepted (hardware
    // keeps L1's GIF in V_GIF, APM 15.33.2).
    if (l0_uses_vgif()) {
        v.set_intercept(ic::STGI, false);
        v.set_intercept(ic::CLGI, false);
    }
    // svm_recalc_instruction_intercepts: with vls, L1's VMLOAD/VMSAVE run
    // in hardware on guest-physical rAX (APM 15.33.1).
    if (l0_uses_vls()) {
        v.set_intercept(ic::VMLOAD, false);
        v.set_intercept(ic::VMSAVE, false);
    }
    std::array<std::uint32_t, 6> words{};
    for (unsigned w = 0; w < 6; ++w) words[w] = v.intercept_word(w);
    return words;
}

bool Vcpu::gif() const noexcept {
    if (!l0_uses_vgif()) return gif_;
    // get_vgif_vmcb: vmcb02 while L2 runs without nested vGIF, else vmcb01.
    const arch::Vmcb& v = mode_ == Mode::l2 && !nested_vgif() ? vmcb02() : vmcb01_;
    return (v.get(FieldId::int_ctl) & arch::int_ctl::V_GIF) != 0;
}

void Vcpu::set_gif(bool g) noexcept {
    if (!l0_uses_vgif()) {
        gif_ = g;
        sync_event_windows();  // svm_set_gif: without vGIF, GIF = 0 closes the interrupt window
        return;
    }
    arch::Vmcb& v = mode_ == Mode::l2 && !nested_vgif() ? live_vmcb02() : vmcb01_;
    const std::uint64_t i = v.get(FieldId::int_ctl);
    v.set(FieldId::int_ctl, g ? (i | arch::int_ctl::V_GIF) : (i & ~arch::int_ctl::V_GIF));
    sync_event_windows();
}

bool Vcpu::nmi_masked() const noexcept {
    if (vnmi_runs_l1()) return (vmcb01_.get(FieldId::int_ctl) & arch::int_ctl::V_NMI_BLOCKING) != 0;
    return nmi_masked_;
}

void Vcpu::set_nmi_masked(bool masked) noexcept {
    if (vnmi_runs_l1()) {
        const std::uint64_t i = vmcb01_.get(FieldId::int_ctl);
        vmcb01_.set(FieldId::int_ctl, masked ? (i | arch::int_ctl::V_NMI_BLOCKING) : (i & ~arch::int_ctl::V_NMI_BLOCKING));
        return;
    }
    set_software_nmi_mask(masked);
}

void Vcpu::set_software_nmi_mask(bool masked) noexcept {
    nmi_masked_ = masked;
    vmcb01_.set_intercept(ic::IRET, masked);
    // recalc_intercepts while L2 runs: vmcb02's is L0's | L1's.
    if (mode_ == Mode::l2) live_vmcb02().set_intercept(ic::IRET, masked || cache_.intercept(ic::IRET));
}

bool Vcpu::stgi_window_open() const noexcept {
    return l0_uses_vgif() && !gif() &&
           (pending_ & (pending_bit(cpu::Signal::nmi) | pending_bit(cpu::Signal::smi))) != 0;
}

void Vcpu::sync_event_windows() noexcept {
    sync_irq_window();
    if (!l0_uses_vgif()) return;
    const bool open = stgi_window_open();
    vmcb01_.set_intercept(ic::STGI, open);
    // recalc_intercepts while L2 runs: vmcb02's is L0's | L1's.
    if (mode_ == Mode::l2) live_vmcb02().set_intercept(ic::STGI, open || cache_.intercept(ic::STGI));
}

bool Vcpu::irq_window_wanted() const noexcept {
    // svm_enable_irq_window: with GIF = 0 only under vGIF, where hardware
    // setting V_GIF (L1's STGI) opens the window by itself.
    return (pending_ & pending_bit(cpu::Signal::intr)) != 0 && (l0_uses_vgif() || gif());
}

bool Vcpu::l0_vintr_dropped_for_l2() const noexcept {
    return (cache_.get(FieldId::int_ctl) & arch::int_ctl::V_INTR_MASKING) != 0 &&
           (vmcb01_.get(FieldId::rflags) & arch::rflags::IF) == 0;
}

void Vcpu::sync_irq_window() noexcept {
    namespace ib = arch::int_ctl;
    constexpr std::uint64_t kInjection = ib::V_IRQ | ib::V_INTR_PRIO | ib::V_IGN_TPR;  // V_IRQ_INJECTION_BITS_MASK
    const bool want = irq_window_wanted();
    if (!want && !vmcb01_.intercept(ic::VINTR)) return;  // the common case: no window, none wanted
    // A shut-down vCPU runs nothing: its VMCBs stay as they were (KVM
    // reinitializes them), and check_invariants does not look.
    if (mode_ == Mode::shutdown) return;
    const bool in_l2 = mode_ == Mode::l2;
    arch::Vmcb& running = in_l2 ? live_vmcb02() : vmcb01_;
    if (want) {
        // svm_set_vintr: the intercept is vmcb01's, vmcb02's through
        // recalc_intercepts; a dummy V_IRQ makes the processor exit (VINTR)
        // once the running level can take an interrupt. Pointless, and not
        // set, while L2 runs under V_INTR_MASKING with L1's IF = 0.
        vmcb01_.set_intercept(ic::VINTR);
        if (in_l2) {
            const bool dropped = l0_vintr_dropped_for_l2();
            running.set_intercept(ic::VINTR, !dropped || cache_.intercept(ic::VINTR));
            if (dropped) return;
        }
        running.set(FieldId::int_vector, 0);
        running.set(FieldId::int_ctl, (running.get(FieldId::int_ctl) & ~ib::V_INTR_PRIO) | ib::V_IRQ | (std::uint64_t{0xF} << 16));
        return;
    }
    // svm_clear_vintr: the dummy goes; while L2 runs vmcb02 gets vmcb12's
    // virtual interrupt back, and vmcb01 loses whatever dummy it had.
    vmcb01_.set_intercept(ic::VINTR, false);
    running.set(FieldId::int_ctl, running.get(FieldId::int_ctl) & ~kInjection);
    if (in_l2) {
        running.set_intercept(ic::VINTR, cache_.intercept(ic::VINTR));
        vmcb01_.set(FieldId::int_ctl, vmcb01_.get(FieldId::int_ctl) & ~kInjection);
        running.set(FieldId::int_ctl, running.get(FieldId::int_ctl) | (cache_.get(FieldId::int_ctl) & kInjection));
        running.set(FieldId::int_vector, cache_.get(FieldId::int_vector));
    }
}

cpu::ExitFeatures Vcpu::exit_features() const noexcept {
    return cpu::ExitFeatures{cpu_->has(checks::Feature::nrip_save),
                             cpu_->has(checks::Feature::decodeassists)};
}

bool Vcpu::shut_down(StepResult& r) const noexcept {
    // KVM has no shut-down vCPU state to resume from (svm.c's
    // shutdown_interception: "KVM doesn't have KVM_MP_STATE_SHUTDOWN"): it
    // reports KVM_EXIT_SHUTDOWN and the VMM resets the VM. The model has no
    // reset, so shutdown is final: every later step changes nothing and
    // reports shutdown again, the one report a VMM would get.
    if (mode_ != Mode::shutdown) return false;
    r.outcome = Outcome::shutdown;
    r.note = "the vCPU is shut down: nothing runs until it is reset";
    return true;
}

void Vcpu::skip_l1_instruction(std::uint8_t len) noexcept {
    vmcb01_.set(FieldId::rip, vmcb01_.get(FieldId::rip) + len);
}

const char* Vcpu::l1_state_problem(const arch::Vmcb& l1, bool guest_mode) const noexcept {
    using namespace arch;
    const std::uint64_t efer = l1.get(FieldId::efer), cr0 = l1.get(FieldId::cr0);
    if (efer & cpu_->efer_reserved_bits()) return "L1 EFER has reserved bits";
    if ((cr0 >> 32) != 0 || ((cr0 & cr0::NW) && !(cr0 & cr0::CD))) return "L1 CR0 illegal (bits 63:32, or NW without CD)";
    if (l1.get(FieldId::cr4) & cpu_->cr4_reserved_bits()) return "L1 CR4 has reserved bits";
    if (!guest_mode) return nullptr;
    // vmcb01 holds the state L1 had at its VMRUN, which passed VMRUN's
    // gates: SVM on, paged protected mode, not virtual-8086 (KVM's
    // svm_set_nested_state).
    if ((efer & efer::SVME) == 0) return "guest mode but L1 EFER.SVME = 0";
    if (!(cr0 & cr0::PG) || !(cr0 & cr0::PE)) return "guest mode but L1 CR0 has PG or PE clear";
    if (l1.get(FieldId::rflags) & rflags::VM) return "guest mode but L1 RFLAGS.VM = 1";
    return nullptr;
}

bool Vcpu::nested_vnmi() const noexcept {
    // KVM offers vNMI to L1 only when it uses vNMI itself (svm_set_cpu_caps).
    return l0_uses_vnmi() && (cache_.get(FieldId::int_ctl) & arch::int_ctl::V_NMI_ENABLE) != 0;
}

bool Vcpu::nested_vgif() const noexcept {
    // KVM offers VGIF to L1 only when it uses vgif itself (svm_set_cpu_caps).
    return l0_uses_vgif() && (cache_.get(FieldId::int_ctl) & arch::int_ctl::V_GIF_ENABLE) != 0;
}

std::uint64_t Vcpu::l2_efer(const arch::Vmcb& v02) const noexcept {
    return (v02.get(FieldId::efer) & ~arch::efer::SVME) | (cache_.get(FieldId::efer) & arch::efer::SVME);
}

bool Vcpu::l2_has_own_pat() const noexcept { return (cache_.get(FieldId::misc_ctl) & arch::misc_ctl::NP_ENABLE) != 0; }

bool Vcpu::nested_lbrv() const noexcept {
    return cpu_->has(checks::Feature::lbrv) && (cache_.get(FieldId::misc_ctl2) & arch::misc_ctl2::LBR_VIRT) != 0;
}

static_assert(kL0DebugCtlBits == arch::debugctl::LBR);

cpu::MsrWrite Vcpu::l0_debugctl_write(std::uint64_t value, std::uint64_t current) const noexcept {
    // KVM's svm_set_msr(MSR_IA32_DEBUGCTLMSR): a host without LBR
    // virtualization (its `lbrv` off) cannot give a guest a DebugCtl of its
    // own and ignores the write. BTF is dropped silently (KVM does not
    // virtualize it: "KVM: SVM: Suppress DEBUGCTL.BTF on AMD"); any other bit
    // but LBR is #GP(0), where the processor would take bits 5:2.
    if (!cpu_->has(checks::Feature::lbrv)) return cpu::MsrWrite{nullptr, current, true};
    return cpu::debugctl_write(value & ~arch::debugctl::BTF, ~kL0DebugCtlBits);
}

const char* Vcpu::check_invariants() const noexcept {
    if (mode_ == Mode::l2) {
        // L0's intercepts are a subset of vmcb02's (an L1 cannot switch off
        // what L0 needs).
        for (unsigned w = 0; w < 6; ++w) {
            std::uint32_t l0w = vmcb01_.intercept_word(w);
            if (!opts_.intercept_smi && w == 3) l0w &= ~(1U << (ic::SMI % 32));
            if (w == ic::VINTR / 32 && l0_vintr_dropped_for_l2()) l0w &= ~(1U << (ic::VINTR % 32));
            if ((l0w & ~vmcb02().intercept_word(w)) != 0) return "an L0 intercept is missing from vmcb02";
        }
        // Every MSR L0 intercepts is intercepted in the map vmcb02 uses.
        const auto map02 = vmcb02_msrpm();
        for (std::size_t i = 0; i < cpu::kMsrpmSize; ++i) {
            if ((msrpm01_[i] & ~map02[i]) != 0) return "an MSR L0 intercepts is passed through in vmcb02's MSRPM";
        }
        if ((vmcb02().get(FieldId::int_ctl) & arch::int_ctl::V_INTR_MASKING) == 0)
            return "vmcb02 runs L2 without V_INTR_MASKING";
        if ((vmcb02().get(FieldId::int_ctl) & (arch::int_ctl::AVIC_ENABLE | arch::int_ctl::X2AVIC_ENABLE)) != 0)
            return "AVIC enabled in vmcb02";
        // GIF = 0 while L2 runs only after L2's own CLGI without a virtual
        // GIF of its own; with nested vGIF, L2's CLGI changes only V_GIF.
        if (!gif() && nested_vgif()) return "GIF = 0 while L2 runs with nested vGIF";
        if (smm_) return "guest mode while in SMM";
        if (vmcb02_hardware_failure() != nullptr) return "vmcb02 fails a VMRUN consistency check of the processor";
    }
    if (const char* why = vmcb01_problem()) return why;
    // The processor's TSC_RATIO is L2's multiplier while L2 runs and L1's
    // otherwise (KVM's svm_write_tsc_multiplier at nested VMRUN and #VMEXIT);
    // a shut-down vCPU runs nothing.
    if (cpu_->has(checks::Feature::tsc_scale) && mode_ != Mode::shutdown &&
        hw_.msrs().tsc_ratio != (mode_ == Mode::l2 ? tsc_ratio02_ : kL1TscRatio))
        return "the processor's TSC_RATIO is not the multiplier of the level that runs";
    return nullptr;
}

const char* Vcpu::vmcb01_problem() const noexcept {
    // L0's vmcb01 is what init_vmcb made of it on this CPU model: vGIF
    // enabled as L0 uses it, STGI intercepted under vGIF only while the
    // window is open, CLGI never; vNMI as L0 uses it; IRET intercepted
    // exactly while L0's software NMI mask is set; virtual VMLOAD/VMSAVE as
    // L0 uses it.
    const std::uint64_t i01 = vmcb01_.get(FieldId::int_ctl);
    if (((i01 & arch::int_ctl::V_GIF_ENABLE) != 0) != l0_uses_vgif()) return "vmcb01's V_GIF_ENABLE is not L0's vGIF";
    if (l0_uses_vgif()) {
        if (vmcb01_.intercept(ic::CLGI)) return "vmcb01 intercepts CLGI although L0 uses vGIF";
        // A shut-down vCPU runs nothing (KVM reinitializes its VMCB,
        // shutdown_interception): no window to keep.
        if (mode_ != Mode::shutdown && vmcb01_.intercept(ic::STGI) != stgi_window_open())
            return "vmcb01's STGI intercept is not the NMI/SMI window (vGIF)";
    }
    if (((i01 & arch::int_ctl::V_NMI_ENABLE) != 0) != l0_uses_vnmi()) return "vmcb01's V_NMI_ENABLE is not L0's vNMI";
    if (vmcb01_.intercept(ic::IRET) != nmi_masked_) return "vmcb01's IRET intercept is not L0's NMI mask";
    if (mode_ != Mode::shutdown && vmcb01_.intercept(ic::VINTR) != irq_window_wanted())
        return "vmcb01's VINTR intercept is not L0's interrupt window";
    const bool vls = (vmcb01_.get(FieldId::misc_ctl2) & arch::misc_ctl2::V_VMSAVE_VMLOAD) != 0;
    if (vls != l0_uses_vls()) return "vmcb01's V_VMSAVE_VMLOAD is not L0's virtual VMLOAD/VMSAVE";
    if (vls && (vmcb01_.intercept(ic::VMLOAD) || vmcb01_.intercept(ic::VMSAVE)))
        return "vmcb01 intercepts VMLOAD/VMSAVE although L0 gives L1 virtual VMLOAD/VMSAVE";
    return nullptr;
}

const checks::Check* Vcpu::vmcb02_hardware_failure() const noexcept {
    if (mode_ != Mode::l2) return nullptr;
    // vmcb02 is what L0 hands the processor's VMRUN (APM 15.5.1), whatever
    // the profile L1's VMRUN is emulated with: the APM's checks, on the CPU.
    // The memory stage (PAE PDPEs) is left out: load_l2_cr3 decided those
    // when the entry was prepared. A check the cached vmcb12 fails as well
    // came from L1 and was let through by the profile (Bochs has no CR3
    // check, for one): what that L0 does, not a vmcb02 this model's L0 made
    // illegal. Only a check vmcb12 passes counts.
    static const checks::Profile& hardware = checks::profile(checks::ProfileId::apm);
    const checks::Context ctx02{vmcb02(), *cpu_, hardware, nullptr, nullptr};
    // A warning check counts too: VMRUN would run its state, but no processor
    // can reach it, so L0 must not make it. The common case, a vmcb02 that
    // passes, costs one decoded pass.
    if (checks::first_failure(ctx02, checks::Stage::control, checks::Stage::event, nullptr,
                              checks::Warnings::included) == nullptr)
        return nullptr;
    const checks::Context ctx12{cache_, *cpu_, hardware, nullptr, nullptr};
    for (const checks::Check& c : checks::catalogue()) {
        if (c.stage < checks::Stage::control || c.stage > checks::Stage::event) continue;
        if (!c.applies(hardware)) continue;
        if (c.violated(ctx02) && !c.violated(ctx12)) return &c;
    }
    return nullptr;
}

}  // namespace nsvm::nested
