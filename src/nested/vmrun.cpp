// L1's VMRUN, emulated by L0 (KVM's nested_svm_vmrun and enter_svm_guest_mode, APM 15.5.1):
//   l1_instruction_gates -> copy_vmcb12_to_cache -> check_cache -> prepare_vmcb02
//   -> load_l2_cr3 -> merge_msrpm -> commit_guest_mode
// Nothing architectural changes before every phase has passed: vmcb02 and
// the merged MSRPM are prepared in the buffers that are not live, and
// committed by switching buffers. Every failure goes through fail_vmrun().
#include <algorithm>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/checks/evaluate.hpp"
#include "nsvm/cpu/gates.hpp"
#include "nsvm/nested/vcpu.hpp"

namespace nsvm::nested {
namespace ic = arch::intercept;
namespace ec = arch::exit_code;
using arch::FieldId;
using checks::Feature;

namespace {
constexpr std::uint8_t kVmrunLength = 3;  // 0F 01 D8
__extension__ typedef __int128 i128;  // the 64x32 product below needs 96 bits

/// KVM's nested_svm_update_tsc_ratio_msr / kvm_calc_nested_tsc_offset: L2's offset over L1's, scaled by L2's multiplier.
std::uint64_t compose_tsc_offset(std::uint64_t l1_offset, std::uint64_t l2_offset, std::uint64_t l2_ratio) noexcept {
    if (l2_ratio == cpu::kTscRatioOne) return l1_offset + l2_offset;
    const i128 scaled = (static_cast<i128>(static_cast<std::int64_t>(l1_offset)) * l2_ratio) >> 32;
    return static_cast<std::uint64_t>(static_cast<std::int64_t>(scaled)) + l2_offset;
}
}  // namespace

checks::HostState Vcpu::gate_state(const arch::Vmcb& v) const noexcept {
    checks::HostState h;
    h.efer = v.get(FieldId::efer);
    h.cr0 = v.get(FieldId::cr0);
    h.cr4 = v.get(FieldId::cr4);
    h.rflags = v.get(FieldId::rflags);
    h.cpl = static_cast<std::uint8_t>(v.get(FieldId::cpl));
    h.rax = v.get(FieldId::rax);
    h.vm_hsave_pa = hsave_pa_;
    h.smm = smm_;
    return h;
}

bool Vcpu::l1_instruction_gates(StepResult& r, cpu::SvmInsn insn) const noexcept {
    if (shut_down(r)) return false;
    if (mode_ != Mode::l1) {
        // The model's contract: L1 instructions only while L1 runs.
        r.outcome = Outcome::exception;
        r.vector = 6;
        r.note = "L1 is not running (L2 is)";
        return false;
    }
    // The processor's gates (cpu/gates.hpp: #UD without EFER.SVME or outside
    // protected mode, #GP(0) at CPL > 0 or for an unaligned or too-wide rAX,
    // and the profile's own, e.g. KVM's #UD without paging and in SMM and
    // #GP for VM_HSAVE_PA = 0 on VMRUN), judged on L1's state as KVM's
    // nested_svm_check_permissions and nested_svm_vmrun judge it.
    const checks::Check* c = cpu::svm_instruction_gate(insn, gate_state(vmcb01_), *cpu_, *profile_, cpu::GateContext::host);
    if (c == nullptr) return true;
    const cpu::GateFault f = cpu::gate_fault(*c);
    r.outcome = Outcome::exception;
    r.vector = f.vector;
    r.failed_check = c;
    r.note = f.note;
    return false;
}

bool Vcpu::copy_vmcb12_to_cache(std::uint64_t gpa) noexcept {
    // The only read of vmcb12 for this VMRUN (CVE-2021-29657: a second read
    // after the checks would let L1 change what was checked). Its fields
    // only, as KVM's cache: the cache's reserved bytes stay zero.
    const std::uint64_t before = mem_->watched_reads();
    const bool ok = mem_->read_vmcb_fields(gpa, cache_);
    vmcb12_reads_ = mem_->watched_reads() - before;
    if (ok) sanitize_cache();
    return ok;
}

void Vcpu::sanitize_cache() noexcept {
    // kvm: NP_ENABLE is dropped before the checks when the CPU offers no NPT.
    if (profile_->np_without_feature == checks::NpWithoutFeature::sanitized && !cpu_->has(Feature::npt)) {
        cache_.set(FieldId::misc_ctl, cache_.get(FieldId::misc_ctl) & ~arch::misc_ctl::NP_ENABLE);
    }
}

const checks::Check* Vcpu::check_cache() const noexcept {
    // The catalogue's control, save and event stages on the cache (the
    // memory stage, PDPEs, belongs to load_l2_cr3). With KVM, a CR3 above
    // MAXPHYADDR outside long mode is found late, by nested_svm_load_cr3
    // (KVM's nested_svm_load_cr3), so that check is deferred to load_l2_cr3 too.
    static const checks::Check* const cr3_mbz = checks::find_check("cr3.mbz");
    const checks::Context ctx{cache_, *cpu_, *profile_, nullptr, nullptr};
    const std::uint64_t efer = cache_.get(FieldId::efer), cr0 = cache_.get(FieldId::cr0);
    const bool defer_cr3 = profile_->cr3_late_failure && !((efer & arch::efer::LME) && (cr0 & arch::cr0::PG));
    return checks::first_failure(ctx, checks::Stage::control, checks::Stage::event, defer_cr3 ? cr3_mbz : nullptr);
}

void Vcpu::prepare_vmcb02_control(arch::Vmcb& out) const noexcept {
    using namespace arch;
    // KVM's recalc_intercepts: vmcb02 intercepts = L0's | L1's. KVM also drops
    // L0's CR8-write intercept when L1 uses V_INTR_MASKING; the model keeps
    // it, so "L0's intercepts are a subset of vmcb02's" always holds.
    for (unsigned w = 0; w < 6; ++w) out.set_intercept_word(w, vmcb01_.intercept_word(w) | cache_.intercept_word(w));
    if (!opts_.intercept_smi && !cache_.intercept(ic::SMI)) out.set_intercept(ic::SMI, false);
    if (l0_vintr_dropped_for_l2()) out.set_intercept(ic::VINTR, cache_.intercept(ic::VINTR));
    // VMLOAD/VMSAVE stay intercepted unless virtual VMLOAD/VMSAVE may be
    // used for L2: offered to L1, enabled by L1, nested paging on
    // (nested_vmcb_needs_vls_intercept; CVE-2021-3656).
    const bool nnpt = l0_.npt && (cache_.get(FieldId::misc_ctl) & misc_ctl::NP_ENABLE) != 0;
    const bool vls = l0_uses_vls() && nnpt &&
                     (cache_.get(FieldId::misc_ctl2) & misc_ctl2::V_VMSAVE_VMLOAD) != 0;
    if (!vls) {
        out.set_intercept(ic::VMLOAD);
        out.set_intercept(ic::VMSAVE);
    }
    std::uint64_t ext = vls ? misc_ctl2::V_VMSAVE_VMLOAD : 0;
    // LBR virtualization for L2 when L1 enabled it (APM 15.23); KVM's
    // svm_update_lbrv may also turn it on for L0's own use, which L1 cannot see.
    if (nested_lbrv()) ext |= misc_ctl2::LBR_VIRT;
    out.set(FieldId::misc_ctl2, ext);

    // L0's own maps; the merged MSRPM replaces L0's when L1 sets MSR_PROT.
    out.set(FieldId::iopm_base_pa, 0);
    out.set(FieldId::msrpm_base_pa, 0);
    // TSC offset composed as KVM's nested_svm_update_tsc_ratio_msr does (ratio in tsc_ratio02_).
    out.set(FieldId::tsc_offset,
            compose_tsc_offset(vmcb01_.get(FieldId::tsc_offset), cache_.get(FieldId::tsc_offset), l2_multiplier()));
    // L0's ASID for L2; L1's ASID is only checked. KVM flushes on every
    // nested transition (nested_svm_transition_tlb_flush): FLUSH_ASID here,
    // or FLUSH_ALL on a CPU without FlushByAsid, where 3 is reserved (APM 15.16.1).
    out.set(FieldId::asid, l0_.asid02);
    out.set(FieldId::tlb_ctl, cpu_->has(Feature::flushbyasid) ? tlb_ctl::FLUSH_ASID : tlb_ctl::FLUSH_ALL);

    // int_ctl (KVM's nested_vmcb02_prepare_control): only the bits L1 may control; V_INTR_MASKING from
    // vmcb01 (always on); AVIC never (CVE-2021-3653). V_GIF and
    // V_GIF_ENABLE: vmcb12's with nested vGIF, else vmcb01's (L0's vGIF:
    // L1's GIF then lives in vmcb02's V_GIF, KVM's get_vgif_vmcb).
    std::uint64_t b12 = int_ctl::V_TPR | int_ctl::V_IRQ | int_ctl::V_INTR_PRIO | int_ctl::V_IGN_TPR;
    std::uint64_t b01 = int_ctl::V_INTR_MASKING;
    const std::uint64_t i12 = cache_.get(FieldId::int_ctl);
    if (nested_vgif()) b12 |= int_ctl::V_GIF | int_ctl::V_GIF_ENABLE;
    else b01 |= int_ctl::V_GIF | int_ctl::V_GIF_ENABLE;
    if (nested_vnmi()) b12 |= int_ctl::V_NMI_PENDING | int_ctl::V_NMI_ENABLE | int_ctl::V_NMI_BLOCKING;
    out.set(FieldId::int_ctl, (i12 & b12) | (vmcb01_.get(FieldId::int_ctl) & b01) | int_ctl::V_INTR_MASKING);
    out.set(FieldId::int_vector, cache_.get(FieldId::int_vector));
    out.set(FieldId::int_state, cache_.get(FieldId::int_state));
    out.set(FieldId::event_inj, cache_.get(FieldId::event_inj));
    out.set(FieldId::event_inj_err, cache_.get(FieldId::event_inj_err));
    // next_rip: L1's value when NRIPS is offered to it (KVM's nested_vmcb02_prepare_control).
    out.set(FieldId::next_rip, opts_.nrips ? cache_.get(FieldId::next_rip) : cache_.get(FieldId::rip));
    // Nested paging. KVM runs L2 on a shadow NPT it builds from L1's tables
    // at vmcb12's nCR3 over its own tables for L1. In this model L0's tables
    // for L1 are the identity (L1's memory is the processor's memory at the
    // same addresses), so that shadow IS L1's tables, and without L1's
    // nested paging it is the identity: vmcb02 walks L1's tables at L1's
    // nCR3, or runs without nested paging (the processor then sees L2's GPA
    // as the physical address, as L0's identity map would give it).
    //
    // GMET (APM 15.25.13) for L2 when L1 sets it in vmcb12, runs L2 with
    // nested paging and sees GMET in its CPUID (KVM's
    // nested_vmcb02_prepare_control); otherwise vmcb12's bit is ignored.
    // vmcb01 carries no GMET here: L0 does not use it for L1.
    const bool gmet = nnpt && cpu_->has(Feature::gmet) && (cache_.get(FieldId::misc_ctl) & misc_ctl::GMET) != 0;
    out.set(FieldId::misc_ctl, (nnpt ? misc_ctl::NP_ENABLE : 0) | (gmet ? misc_ctl::GMET : 0));
    out.set(FieldId::nested_cr3, nnpt ? cache_.get(FieldId::nested_cr3) : 0);
    // Pause filter (post-series): L1's values when offered, else 0.
    out.set(FieldId::pause_filter_count,
            cpu_->has(Feature::pausefilter) ? cache_.get(FieldId::pause_filter_count) : 0);
    out.set(FieldId::pause_filter_thresh,
            cpu_->has(Feature::pfthreshold) ? cache_.get(FieldId::pause_filter_thresh) : 0);
}

void Vcpu::prepare_vmcb02_save(arch::Vmcb& out) const noexcept {
    using namespace arch;
    for (Seg s : kVmrunSegments) out.set_segment(s, cache_.segment(s));
    // VMLOAD state is not loaded by VMRUN (APM 15.5.1): L2 sees what L1 VMLOADed.
    copy_vmload_state(vmcb01_, out);
    out.set(FieldId::cpl, cache_.get(FieldId::cpl));
    out.set(FieldId::rflags, cache_.get(FieldId::rflags) | rflags::FIXED1);
    out.set(FieldId::efer, cache_.get(FieldId::efer) | efer::SVME);  // hardware VMCB always has SVME
    out.set(FieldId::cr0, cache_.get(FieldId::cr0));
    out.set(FieldId::cr3, cache_.get(FieldId::cr3));
    out.set(FieldId::cr4, cache_.get(FieldId::cr4));
    out.set(FieldId::cr2, cache_.get(FieldId::cr2));
    out.set(FieldId::rax, cache_.get(FieldId::rax));
    out.set(FieldId::rsp, cache_.get(FieldId::rsp));
    out.set(FieldId::rip, cache_.get(FieldId::rip));
    out.set(FieldId::dr7, cache_.get(FieldId::dr7) | dr7::kFixed1);
    out.set(FieldId::dr6, cache_.get(FieldId::dr6) | dr6::kFixed1);
    // CET supervisor state is VMRUN state with SHSTK (KVM's
    // nested_vmcb02_prepare_save): L2's from vmcb12.
    if (cpu_->has(Feature::shstk)) copy_fields<kCetSupervisorFields>(cache_, out);
    // gPAT: L2's own with nested paging (it is L2's PAT then), else L1's.
    out.set(FieldId::g_pat, l2_has_own_pat() ? cache_.get(FieldId::g_pat) : vmcb01_.get(FieldId::g_pat));
    // DebugCtl and the LBRs (KVM's nested_vmcb02_prepare_save): L2's own
    // from vmcb12 when L1 enabled LBR virtualization, DebugCtl without the
    // bits L0 does not virtualize (DEBUGCTL_RESERVED_BITS: VMRUN does not
    // fail for them); otherwise L1's, from vmcb01.
    if (nested_lbrv()) {
        copy_fields<kLbrVirtFields>(cache_, out);
        out.set(FieldId::dbgctl, cache_.get(FieldId::dbgctl) & kL0DebugCtlBits);
    } else {
        copy_fields<kLbrVirtFields>(vmcb01_, out);
    }
}

void Vcpu::prepare_vmcb02(arch::Vmcb& out) const noexcept {
    // From zero: only the field bytes, as nothing writes a vmcb02 buffer's
    // reserved bytes (they are zero since the Vcpu was built).
    arch::clear_field_bytes(out.page());
    prepare_vmcb02_control(out);
    prepare_vmcb02_save(out);
}

FailReason Vcpu::load_l2_cr3(const arch::Vmcb& prepared) const noexcept {
    using namespace arch;
    // KVM's nested_svm_load_cr3: CR3 must be a legal GPA in
    // every mode (the catalogue checks it early only in long mode).
    const std::uint64_t cr3v = prepared.get(FieldId::cr3);
    if (profile_->cr3_late_failure && (cr3v & cpu_->reserved_pa_bits()) != 0) return FailReason::illegal_l2_cr3;
    // APM 15.5.1 step 5: legacy PAE paging without nested paging loads the
    // four PDPEs; an unreadable PDPT or a reserved bit fails the VMRUN.
    const std::uint64_t cr0v = prepared.get(FieldId::cr0), cr4v = prepared.get(FieldId::cr4);
    const bool long_mode = (prepared.get(FieldId::efer) & efer::LME) && (cr0v & cr0::PG);
    const bool pae_paging = (cr0v & cr0::PG) && (cr4v & cr4::PAE) && !long_mode;
    const bool nnpt = (cache_.get(FieldId::misc_ctl) & misc_ctl::NP_ENABLE) != 0;
    if (!pae_paging || nnpt || !profile_->pdpe_check) return FailReason::none;
    std::array<std::uint64_t, 4> pdpes{};
    switch (cpu::load_pae_pdpes(*mem_, cr3v, cpu_->reserved_pa_bits(), pdpes)) {
        case cpu::PdpeLoad::unreadable: return FailReason::unreadable_pdpe;
        case cpu::PdpeLoad::reserved: return FailReason::illegal_pdpe;
        case cpu::PdpeLoad::ok: break;
    }
    return FailReason::none;
}

bool Vcpu::merge_msrpm(Msrpm& out) const noexcept {
    // KVM's nested_svm_merge_msrpm: everything intercepted, except the MSRs L0 passes
    // through, which L0 intercepts iff L1 does. `out` is all-ones but for
    // those MSRs' bits, rewritten here (as KVM rewrites only the offsets of
    // its pass-through list). Only L1's bytes for them are read, each of its
    // two pages looked up once; an unbacked page holding one fails the VMRUN.
    static_assert(cpu::kMsrpmSize == 2 * cpu::kPageSize);
    const std::uint64_t base = cpu::page_of(cache_.get(FieldId::msrpm_base_pa));
    const std::array<std::span<const std::uint8_t>, 2> l1 = {
        mem_->page_bytes(base),
        base + cpu::kPageSize > base ? mem_->page_bytes(base + cpu::kPageSize) : std::span<const std::uint8_t>{}};
    for (std::uint8_t i = 0; i < passthrough_slot_count_; ++i) {
        const MsrpmSlot s = passthrough_slots_[i];
        const auto page = l1[s.byte / cpu::kPageSize];
        if (page.empty()) return false;
        const std::uint8_t merged = static_cast<std::uint8_t>((msrpm01_[s.byte] | page[s.byte % cpu::kPageSize]) & s.bits);
        out[s.byte] = static_cast<std::uint8_t>((out[s.byte] & ~s.bits) | merged);
    }
    return true;
}

void Vcpu::merge_iopm(Iopm& out) const noexcept {
    // The processor runs vmcb02 on one IOPM (APM 15.10.1), so a port L0
    // passes through must still exit when L1's IOPM intercepts it: for those
    // ports vmcb02's map is L0's | L1's, as merge_msrpm does for MSRs. An
    // unreadable byte of L1's map intercepts (KVM's nested_svm_intercept_ioio
    // treats a failed read as an exit). `out` holds L0's map but for those bits.
    const cpu::Bitmap l1{mem_, cache_.get(FieldId::iopm_base_pa), {}};
    for (std::uint8_t i = 0; i < l0_.passthrough_port_count; ++i) {
        const unsigned port = l0_.passthrough_ports[i];
        std::uint8_t b = 0xFF;
        const bool readable = l1.read_u8(port / 8, b);
        const auto bit = static_cast<std::uint8_t>(1U << (port % 8));
        const bool l1_wants = !readable || (b & bit) != 0;
        out[port / 8] = static_cast<std::uint8_t>(l1_wants ? (out[port / 8] | bit) : (out[port / 8] & ~bit));
    }
}

FailReason Vcpu::prepare_entry(std::span<const std::uint8_t> l2_save) noexcept {
    // The prepare phase of every entry into L2 (VMRUN, RSM into L2, a
    // restored nested state): only the buffers that are not live change.
    arch::Vmcb& next = next_vmcb02();
    prepare_vmcb02(next);
    // A restored nested state carries L2's registers as they were (their
    // fields: the buffer's reserved bytes stay zero).
    if (!l2_save.empty()) {
        arch::copy_save_field_bytes(l2_save.first<arch::kVmcbSize - arch::kSaveAreaOffset>(), next.page());
        // Only a DebugCtl L0 virtualizes (KVM clears the reserved bits of
        // the DebugCtl KVM_SET_NESTED_STATE brings, as at VMRUN).
        next.set(FieldId::dbgctl, next.get(FieldId::dbgctl) & kL0DebugCtlBits);
    }
    if (const FailReason fr = load_l2_cr3(next); fr != FailReason::none) return fr;
    next_uses_msrpm02_ = cache_.intercept(ic::MSR_PROT);
    if (next_uses_msrpm02_ && !merge_msrpm(next_msrpm02())) return FailReason::msrpm_unreadable;
    next_uses_iopm02_ = cache_.intercept(ic::IOIO_PROT) && l0_.passthrough_port_count != 0;
    if (next_uses_iopm02_) merge_iopm(iopm02s_[live02_ ^ 1U]);
    return FailReason::none;
}

std::uint64_t Vcpu::l2_multiplier() const noexcept {
    // L1's TSC_RATIO MSR exists only with TSC scaling (APM 15.30.5).
    return cpu_->has(Feature::tsc_scale) ? tsc_ratio_ : cpu::kTscRatioOne;
}

void Vcpu::write_tsc_multiplier(std::uint64_t ratio) noexcept {
    // KVM's svm_write_tsc_multiplier (__svm_write_tsc_multiplier): only with
    // TSC scaling does the processor have the MSR (APM 15.30.5).
    if (cpu_->has(Feature::tsc_scale)) hw_.msrs().tsc_ratio = ratio;
}

void Vcpu::switch_to_prepared() noexcept {
    live02_ ^= 1U;
    use_msrpm02_ = next_uses_msrpm02_;
    use_iopm02_ = next_uses_iopm02_;
    tsc_ratio02_ = l2_multiplier();
    // KVM's nested_svm_update_tsc_ratio_msr at nested VMRUN: L2's multiplier
    // (L1's, 1.0 here, times L1's TSC_RATIO) into the processor's TSC_RATIO,
    // which scales the host TSC while vmcb02 runs (APM 15.30.5).
    write_tsc_multiplier(tsc_ratio02_);
    mode_ = Mode::l2;
}

void Vcpu::commit_guest_mode(std::uint64_t gpa) noexcept {
    switch_to_prepared();
    vmcb12_gpa_ = gpa;
    // Under vNMI, an NMI the processor holds for L1 in vmcb01's V_NMI_PENDING
    // becomes L0's to deliver while L2 runs (KVM's
    // nested_vmcb02_prepare_control: nmi_pending++; vmcb01's bit is left,
    // and rewritten at the #VMEXIT, vnmi_state_to_vmcb01).
    if (l0_uses_vnmi() && (vmcb01_.get(FieldId::int_ctl) & arch::int_ctl::V_NMI_PENDING) != 0)
        pending_ |= pending_bit(cpu::Signal::nmi);
    // APM 15.5.1 step 7: GIF = 1 once everything is loaded (KVM's
    // svm_set_gif in guest mode: vmcb02's V_GIF without nested vGIF).
    set_gif(true);
    // Step 8: the EVENTINJ event is the processor's to deliver (vmcb02 has
    // it); L1's copy is consumed.
    cache_.set(FieldId::event_inj, 0);
    cache_.set(FieldId::event_inj_err, 0);
}

StepResult Vcpu::enter_nested(std::uint64_t gpa) noexcept {
    // PDPEs are (re)loaded on VMRUN and on RSM alike in this model.
    if (const FailReason fr = prepare_entry(); fr != FailReason::none) return fail_vmrun(fr, nullptr, &next_vmcb02());
    commit_guest_mode(gpa);
    StepResult r;
    r.outcome = Outcome::entered_l2;
    r.note = "vmcb02 committed and run by the processor; GIF = 1";
    enter_l2_on_processor(r);
    return r;
}

StepResult Vcpu::l1_vmrun() noexcept {
    StepResult r;
    if (!l1_instruction_gates(r, cpu::SvmInsn::vmrun)) return r;
    const std::uint64_t gpa = vmcb01_.get(FieldId::rax);
    if (!copy_vmcb12_to_cache(gpa)) {
        // KVM: mapping vmcb12 fails -> #GP(0) to L1 (nested_svm_vmrun).
        r.outcome = Outcome::exception;
        r.vector = 13;
        r.note = "vmcb12 is not backed memory: #GP(0)";
        return r;
    }
    // L1 resumes after VMRUN whatever happens next (#VMEXIT returns there).
    skip_l1_instruction(kVmrunLength);
    vmcb12_gpa_ = gpa;
    if (const checks::Check* c = check_cache()) return fail_vmrun(FailReason::consistency_check, c, nullptr);
    return enter_l2(gpa);
}

StepResult Vcpu::enter_l2(std::uint64_t gpa) noexcept {
    StepResult r = enter_nested(gpa);
    if (r.outcome == Outcome::entered_l2) l2_instruction_boundary(r, kTakenAtEntry);
    return r;
}

StepResult Vcpu::take_held_signals(StepResult r, const char* taken_note, const char* consumed_note) noexcept {
    // APM 15.17: INIT, SMI, NMI and INTR held while GIF was 0 (or, SMI and
    // INIT, while in SMM) are recognized as soon as that ends (VMRUN or STGI
    // setting GIF, RSM), before the next instruction, in priority order
    // (cpu::kSignalPriority; KVM's svm_check_nested_events): each is taken
    // as if it arrived now. One delivered to L1, or injected into L2 by L0,
    // is consumed and the step goes on; one still masked stays held; one
    // that exits to L1, enters SMM or resets L2 away ends the step there
    // (GIF = 0 after an exit: the rest stay held).
    // Under vNMI an NMI for L1 may wait in vmcb01's V_NMI_PENDING instead.
    const bool vnmi_held = vnmi_runs_l1() && (vmcb01_.get(FieldId::int_ctl) & arch::int_ctl::V_NMI_PENDING) != 0;
    if (pending_ == 0 && !vnmi_held) return r;  // the common case: nothing was held
    for (const cpu::Signal s : cpu::kSignalPriority) {
        if ((pending_ & pending_bit(s)) == 0 && !(s == cpu::Signal::nmi && vnmi_held)) continue;
        const Mode before = mode_;
        StepResult t = s == cpu::Signal::nmi && vnmi_held && mode_ == Mode::l1 ? l1_vnmi(StepResult{Outcome::held_pending})
                                                                               : take_signal(s);
        if (t.outcome == Outcome::held_pending) continue;
        // Delivered to L1 (by L0, or by the processor under vNMI) or
        // injected into L2 by L0: consumed, the step goes on.
        if ((t.outcome == Outcome::handled_by_l0 || t.outcome == Outcome::interrupt) && mode_ == before) {
            if (consumed_note != nullptr) r.note = consumed_note;
            continue;
        }
        if (taken_note != nullptr) t.note = taken_note;
        return t;
    }
    return r;
}

StepResult Vcpu::fail_vmrun(FailReason reason, const checks::Check* check, const arch::Vmcb* prepared) noexcept {
    using namespace arch;
    // vmcb12 gets the exit fields (APM 15.6; KVM's nested_svm_vmrun failure path), stored into its
    // page in place: vmcb12 is never read again.
    const auto vmcb12 = mem_->vmcb_in_place(vmcb12_gpa_);
    if (prepared != nullptr && profile_->late_failure_full_vmexit) {
        // KVM fails late through a full nested_svm_vmexit, writing vmcb12's
        // save fields from the just-prepared vmcb02.
        cpu::ExitInfo err{};
        err.code = ec::INVALID;
        // nested_svm_vmexit: with NRIPS, vmcb12.next_rip <- vmcb02.next_rip, here the
        // value prepare_vmcb02_control took from vmcb12.
        err.next_rip = prepared->get(FieldId::next_rip);
        sync_vmcb02_to_vmcb12(*prepared, err);  // the live vmcb02 is untouched
    } else if (vmcb12 && profile_->failure_writeback == checks::FailureWriteback::host_state) {
        // qemu/bochs: the state live at the failure is L1's (checks run
        // before any guest state is loaded in this model).
        for (Seg s : kVmrunSegments) vmcb12->set_segment(s, vmcb01_.segment(s));
        for (FieldId f : {FieldId::efer, FieldId::cr0, FieldId::cr3, FieldId::cr4, FieldId::rflags, FieldId::rip,
                          FieldId::rsp, FieldId::rax, FieldId::dr7, FieldId::dr6, FieldId::cpl})
            vmcb12->set(f, vmcb01_.get(f));
    }
    // The pre-fix KVM early path (before KVM commit "KVM: nSVM: Clear GIF on nested #VMEXIT(INVALID)") wrote the exit
    // fields and returned: GIF unchanged, EVENTINJ untouched, no #VMEXIT
    // bookkeeping on L1's state.
    const bool pre_fix = opts_.pre_fix_gif_bug && reason == FailReason::consistency_check;
    if (vmcb12) {
        vmcb12->set(FieldId::exit_code, profile_->exit_code_32bit ? ec::INVALID_32 : ec::INVALID);
        vmcb12->set(FieldId::exit_info_1, 0);
        vmcb12->set(FieldId::exit_info_2, 0);
        if (profile_->eventinj_cleared_on_failure && !pre_fix) {
            vmcb12->set(FieldId::event_inj, 0);
            vmcb12->set(FieldId::event_inj_err, 0);
        }
    }
    // GIF = 0: every #VMEXIT, VMEXIT_INVALID included, clears it (APM 15.6).
    // Cleared with vmcb01 current again (nested_svm_vmexit's svm_set_gif).
    if (!pre_fix) restore_l1_from_vmcb01();
    if (!pre_fix && profile_->clear_gif_on_failure) set_gif(false);
    const bool keep_gif = pre_fix;
    StepResult r;
    r.outcome = Outcome::vmrun_failed;
    r.owner = Owner::l1;
    r.exit_code = profile_->exit_code_32bit ? ec::INVALID_32 : ec::INVALID;
    r.reason = reason;
    r.failed_check = check;
    r.note = keep_gif ? "pre-fix KVM: GIF left unchanged" : "GIF = 0";
    return r;
}

}  // namespace nsvm::nested
