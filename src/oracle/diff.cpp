// Field-by-field comparison of model and oracle (diff.hpp).
#include "nsvm/oracle/diff.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/cpu/control_regs.hpp"

namespace nsvm::oracle {

using arch::FieldId;

namespace {

constexpr std::array kKnown = {
    // Read in QEMU 7.2's target/i386/tcg/sysemu/svm_helper.c, not (yet)
    // encoded in the qemu profile.
    KnownDivergence{Backend::qemu, "exit_int_info", "qemu.exit_int_info_on_failure",
                    "QEMU 7.2 copies EVENTINJ into EXITINTINFO on every #VMEXIT, VMEXIT_INVALID included "
                    "(svm_helper.c do_vmexit); the qemu profile has no knob for it"},
    KnownDivergence{Backend::qemu, "exit_info_2", "qemu.exit_info_2_kept_on_early_failure",
                    "QEMU 7.2 clears EXITINFO2 only after the control and CR checks, so an early VMEXIT_INVALID "
                    "keeps the VMCB's old EXITINFO2 (svm_helper.c helper_vmrun)"},
    // Found by this oracle (nsvm diff, QEMU 7.2.22 TCG -cpu max, 2026-11).
    KnownDivergence{Backend::qemu, "save.rsp", "qemu.event_inj_ev_ignored",
                    "QEMU 7.2 ignores EVENTINJ.EV (APM 15.20: push the error code when EV = 1) and pushes one only "
                    "for vectors 8, 10-14 and 17, so #CP (21), #VC (29) and #SX (30) injected with EV = 1 push none "
                    "(svm_helper.c helper_vmrun, seg_helper.c exception_has_error_code; the stack shows it)"},
    KnownDivergence{Backend::qemu, "exit_info_1", "qemu.ioio_no_address_size",
                    "QEMU 7.2 sets no A16/A32/A64 bit (EXITINFO1[9:7], APM 15.10.2) for IN/OUT that are not string "
                    "instructions"},
    KnownDivergence{Backend::qemu, "exit_code", "qemu.int3_not_bp_intercept",
                    "QEMU 7.2 raises INT3 as a software interrupt: the #BP exception intercept (APM 15.12, exit 0x43) "
                    "does not fire and the guest takes vector 3 through its IDT"},
    KnownDivergence{Backend::qemu, "exit_code", "qemu.invd_tests_wbinvd_intercept",
                    "QEMU 7.2 checks the WBINVD intercept for INVD (0F 08) as well, so the INVD intercept (APM "
                    "Appendix C, exit 0x76) never fires"},
    KnownDivergence{Backend::qemu, "save.rax", "qemu.g_pat_not_loaded",
                    "QEMU 7.2 does not load G_PAT into the guest's PAT with nested paging (APM 15.25.8: the guest "
                    "PAT is G_PAT while NP_ENABLE = 1): helper_vmrun never reads save.g_pat, so an unintercepted "
                    "RDMSR of PAT (0x277) in L2 returns the host's PAT (svm_helper.c helper_vmrun); found by this "
                    "oracle"},
    KnownDivergence{Backend::qemu, "exit_code", "qemu.virq_priority_ge_tpr",
                    "QEMU (TCG) takes a V_IRQ whose V_INTR_PRIO equals V_TPR (ctl_has_irq compares int_prio >= "
                    "tpr); APM 15.21.4 takes it only when V_INTR_PRIO > V_TPR, as Bochs does; found by this oracle"},
    KnownDivergence{Backend::qemu, "exit_code", "qemu.vmrun_interrupt_shadow_dropped",
                    "QEMU (TCG) takes a V_IRQ before L2's first instruction although vmcb12's int_state has "
                    "INTERRUPT_SHADOW, which VMRUN loads (APM 15.5.1 step 2) and which holds interrupts for one "
                    "instruction; its #VMEXIT writes int_state back as 0, as if VMRUN had not loaded the shadow "
                    "(observed; Bochs keeps it); found by this oracle"},
    KnownDivergence{Backend::qemu, "exit_code", "qemu.rdtscp_tests_rdtsc_intercept",
                    "QEMU 7.2 checks the RDTSC intercept for RDTSCP (misc_helper.c helper_rdtscp calls "
                    "helper_rdtsc), so the RDTSCP intercept (APM Appendix C, exit 0x87) never fires and an RDTSC "
                    "intercept (exit 0x6E) catches RDTSCP; found by this oracle"},
    KnownDivergence{Backend::qemu, "exit_code", "qemu.xsetbv_not_intercepted",
                    "QEMU 7.2 never checks the XSETBV intercept (APM Appendix C, exit 0x8D): fpu_helper.c "
                    "helper_xsetbv writes XCR0 in L2; found by this oracle"},
    KnownDivergence{Backend::qemu, "control.int_state", "qemu.sti_shadow_with_if_set",
                    "QEMU 7.2 starts an interrupt shadow with every STI (translate.c: gen_eob_inhibit_irq), also "
                    "when RFLAGS.IF was already 1, so a #VMEXIT at the next instruction saves INTERRUPT_SHADOW; APM "
                    "Vol.3 STI delays interrupts only when STI sets an IF that was clear (Bochs 2.7 agrees); found "
                    "by this oracle"},
    KnownDivergence{Backend::qemu, "exit_code", "qemu.df_intercept_not_checked",
                    "QEMU 7.2 checks the exception intercept before it turns a second contributory fault into #DF "
                    "(excp_helper.c raise_interrupt2, then check_exception), never for the #DF itself: with the #DF "
                    "intercept (APM 15.12, exit 0x48) L2 takes the double fault through its IDT; found by this "
                    "oracle"},
    KnownDivergence{Backend::qemu, "save.rip", "qemu.iret_noncanonical_rip_loaded",
                    "QEMU 7.2 does not check that the return address IRETQ pops is canonical "
                    "(tcg/seg_helper.c helper_ret_protected loads it into RIP): the IRET completes, RSP, RFLAGS, "
                    "CS and SS as popped, and the #GP(0) comes from the fetch at the non-canonical RIP, so an "
                    "intercepted #GP (APM 15.12, exit 0x4D) saves that RIP and one through the IDT pushes its frame "
                    "on the popped stack; the IRET itself faults, RIP at the IRET and nothing popped (APM Vol.3 "
                    "IRET: a non-canonical return RIP in 64-bit mode is #GP(0); Intel SDM IRET agrees, and Bochs "
                    "2.7 agrees with the model); found by this oracle"},
    KnownDivergence{Backend::qemu, "save.rip", "qemu.sti_single_step_dropped",
                    "QEMU 7.2 takes no single-step #DB after an STI that sets IF: with RFLAGS.TF = 1 the next "
                    "instruction runs (here the epilogue's VMMCALL exits with TF still set and DR6.BS clear); STI's "
                    "shadow holds interrupts, not exceptions (APM 13.1.4 traps after every instruction; Intel SDM "
                    "STI; KVM commit b9bed78e2fa9 takes a single-step #DB inside the STI shadow), and Bochs 2.7 "
                    "traps; found by this oracle"},
    KnownDivergence{Backend::qemu, "exit_info_1", "qemu.pf_rsvd_without_p",
                    "QEMU 7.2 reports a #PF for a reserved bit in a page-table entry with error code RSV alone "
                    "(mmu_translate's do_fault_rsvd sets the code to the RSV bit and skips P); the entry was "
                    "present, and APM 8.4.2 defines RSV only with P = 1, so the processor reports P|RSV (EXITINFO1 "
                    "of an intercepted #PF, APM 15.12); found by this oracle"},
    KnownDivergence{Backend::qemu, "exit_info_1", "qemu.pae_pdpte_reserved_bits_unchecked",
                    "QEMU 7.2 checks a legacy-PAE PDPTE only for bits 63:52 and those above its physical-address "
                    "width when its walk reads it (tcg/sysemu/excp_helper.c mmu_translate), not for the reserved "
                    "bits 2:1 and 8:5 (APM 5.3.3 PAE PDPE format: MBZ), so the walk goes on through the entry "
                    "where the processor reports #PF(P|RSV) (APM 8.4.2; Bochs 2.7 agrees with the model); found by "
                    "this oracle"},
    KnownDivergence{Backend::qemu, "paging[k]", "qemu.pae_pdpte_accessed_set",
                    "QEMU 7.2 sets bit 5 (A) in a legacy-PAE PDPTE its walk uses (tcg/sysemu/excp_helper.c "
                    "mmu_translate treats it like a long-mode PDPE); a PAE PDPTE has no accessed bit, bit 5 is "
                    "reserved (APM 5.3.3), and the processor leaves it as it is (Bochs 2.7 agrees with the model); "
                    "found by this oracle"},
    KnownDivergence{Backend::qemu, "control.event_inj_err", "qemu.event_inj_err_written_by_delivery",
                    "QEMU 7.2 records an exception it delivers through L2's IDT in the VMCB's EVENTINJ field for "
                    "its EXITINTINFO bookkeeping, the error code in EVENTINJ's error-code half (VMCB 0x0AC; "
                    "seg_helper.c do_interrupt_all), and its #VMEXIT clears EVENTINJ but not that half "
                    "(svm_helper.c do_vmexit), so the VMCB comes back with the error code of L2's last exception; "
                    "EVENTINJ is the VMM's input, which the processor does not write but for V (APM 15.20; KVM's "
                    "nested_svm_vmexit writes vmcb12's own EVENTINJ values back, Bochs 2.7 agrees with the model); "
                    "found by this oracle"},
    KnownDivergence{Backend::bochs, "save.cr2", "bochs.vmrun_cr2_not_loaded",
                    "Bochs 2.7 reads CR2 from vmcb12 at VMRUN (SvmEnterLoadCheckGuestState) but runs L2 with the "
                    "processor's previous CR2, which #VMEXIT then saves (observed: a VMCB CR2 of 0x1234 comes back "
                    "as the host's 0); VMRUN loads CR2 (APM 15.5.1), so L2 reads, and the VMCB gets back, the "
                    "vector's CR2 unless a #PF in L2 changed it; found by this oracle"},
    KnownDivergence{Backend::bochs, "paging[k]", "bochs.faulting_walk_sets_no_accessed",
                    "Bochs 2.7 sets the accessed bits of the page-table entries above the leaf only once the whole "
                    "translation has passed its checks (translate_linear_long_mode and translate_linear_PAE call "
                    "update_access_dirty_PAE last, translate_linear_legacy update_access_dirty), so a walk that "
                    "ends in a #PF or a nested #NPF leaves the entries it read with A = 0; the processor sets A in "
                    "each entry as it uses it (APM 5.4.2), and QEMU 7.2 agrees with the model; found by this "
                    "oracle"},
    KnownDivergence{Backend::bochs, "exit_code", "bochs.vmload_vmsave_move_vmcb",
                    "Bochs 2.7 points its VMCB pointer at rAX's page for an unintercepted VMLOAD or VMSAVE in L2 "
                    "and never points it back (svm.cc VMLOAD, VMSAVE: set_VMCBPTR(pAddr)), so the next #VMEXIT "
                    "writes the exit and the guest state to the operand page and the VMCB VMRUN used stays as it "
                    "was (APM 15.5.1: #VMEXIT writes the VMCB that VMRUN loaded); found by this oracle"},
    KnownDivergence{Backend::bochs, "status", "bochs.crash_guest_cr3_all_ones",
                    "Bochs 2.7 takes a guest CR3 of all ones without a check (svm.cc SvmEnterLoadCheckGuestState "
                    "copies guest.cr3 as is; APM 15.5.1: CR3 MBZ bits fail VMRUN) and dies with SIGSEGV at L2's "
                    "first page walk; found by this oracle"},
    KnownDivergence{Backend::bochs, "status", "bochs.triple_fault_panics",
                    "Bochs 2.7 panics on a triple fault in L2 ('3rd exception with no resolution') instead of "
                    "#VMEXIT(SHUTDOWN) when the SHUTDOWN intercept is set (APM 15.12, exit 0x7F): exception.cc "
                    "exception() calls only VMexit_TripleFault, which is VMX's; found by this oracle"},
    KnownDivergence{Backend::bochs, "exit_code", "bochs.virq_masked_at_vmrun",
                    "Bochs 2.7 does not take a V_IRQ pending at VMRUN before L2's first instruction (APM 15.21.4: "
                    "at the first instruction boundary with RFLAGS.IF = 1): VMRUN loads RFLAGS before it sets "
                    "in_svm_guest, so handleInterruptMaskChange leaves BX_EVENT_SVM_VIRQ_PENDING masked (svm.cc "
                    "SvmEnterLoadCheckGuestState, event.cc); found by this oracle"},
    KnownDivergence{Backend::bochs, "control.int_ctl", "bochs.int_ctl_byte_0x61",
                    "Bochs 2.7 writes int_ctl's byte 0x61 whole on #VMEXIT with V_IRQ alone (svm.cc "
                    "SvmExitSaveGuestState, vmcb_write8(SVM_CONTROL_VIRQ)), clearing int_ctl[15:9] (V_GIF, V_NMI, "
                    "V_NMI_MASK) where the VMCB had them (APM 15.21: #VMEXIT writes back V_IRQ and V_TPR); found "
                    "by this oracle"},
    KnownDivergence{Backend::bochs, "exit_code", "bochs.np_enable_whole_byte",
                    "Bochs 2.7 reads NP_ENABLE as the whole byte at VMCB 0x090 (svm.cc SvmEnterLoadCheckControls), so "
                    "any other bit there (SEV_ENABLE, SEV_ES_ENABLE, GMET, SSS_CHECK, ...) turns nested paging on "
                    "(APM 15.25.3: bit 0 only); found by this oracle"},
    KnownDivergence{Backend::bochs, "save.dr6", "bochs.db_intercept_dr6_stale",
                    "Bochs 2.7 exits for an intercepted single-step #DB (APM 15.12, exit 0x41) before it updates "
                    "DR6 (BS set, B0-B3 cleared), so the VMCB holds DR6 as VMRUN loaded it; the processor updates "
                    "DR6 first (KVM's svm.c "
                    "db_interception reads the #DB payload from the VMCB's DR6; QEMU 7.2 agrees); found by "
                    "this oracle"},
    KnownDivergence{Backend::bochs, "save.dr6", "bochs.single_step_clears_dr6_bt",
                    "Bochs 2.7 clears DR6 bit 15 (BT) and bit 12 with a single-step #DB; the processor clears at "
                    "most B0-B3 and leaves the rest of DR6 (Intel SDM 17.2.3: the remaining contents are never "
                    "cleared by the processor; QEMU 7.2 agrees with the model); found by this oracle"},
    KnownDivergence{Backend::bochs, "status", "bochs.single_step_leaks_to_host",
                    "Bochs 2.7 keeps the single-step trap of an L2 instruction that exited to its intercept and "
                    "delivers the #DB in the host after #VMEXIT (the host sees an exception at VMRUN); an "
                    "intercepted instruction has not completed, so it takes no single-step trap (APM 13.1.4, "
                    "15.7), and L2's RFLAGS.TF is not the host's; found by this oracle"},
    KnownDivergence{Backend::bochs, "exit_int_info", "bochs.df_intercept_loses_delivery",
                    "Bochs 2.7 exits for an intercepted #DF raised while delivering a #GP with EXITINTINFO = 0 "
                    "(APM 15.7.2: the event being delivered, here the #GP and its error code) and with RFLAGS.RF "
                    "set in the saved RFLAGS, which the #GP's delivery had set (observed); found by this oracle"},
};

std::string hex(std::uint64_t v) { return fmt::format("{:#x}", v); }

/// After a valid VMRUN and a predicted exit, every VMCB field the exit does
/// not define must come back as the vector gave it (APM 15.6: #VMEXIT writes
/// back the guest state VMRUN loaded; 15.20: EVENTINJ.V is cleared), or as
/// the model's processor wrote it back (`expected`, Prediction::vmcb_after).
/// The exit fields and the guest registers the model follows are compared apart.
const KnownDivergence* known(Backend b, std::string_view id);

/// int_ctl after the exit differs only in bits 15:9, which the emulator
/// cleared: Bochs writing byte 0x61 with V_IRQ alone.
bool int_ctl_byte_0x61(std::uint64_t expected, std::uint64_t got) {
    constexpr std::uint64_t kByte61High = 0xFE00;
    return (got & kByte61High) == 0 && (expected & ~kByte61High) == (got & ~kByte61High);
}

/// A V_IRQ pending at VMRUN (the vector's int_ctl) that the model's
/// processor and the emulator treated differently before L2's first
/// instruction, told apart by what each wrote back (V_IRQ clears when the
/// interrupt is taken, APM 15.21.4): the known divergence that explains it.
const KnownDivergence* virq_divergence(const Vector& v, std::uint64_t model_int_ctl, const Result& r, Backend b) {
    namespace ictl = arch::int_ctl;
    const std::uint64_t given = v.vmcb.get(FieldId::int_ctl);
    if ((given & ictl::V_IRQ) == 0) return nullptr;
    const bool model_took = (model_int_ctl & ictl::V_IRQ) == 0;
    const bool oracle_took = (r.vmcb.get(FieldId::int_ctl) & ictl::V_IRQ) == 0;
    if (model_took && !oracle_took) return known(b, "bochs.virq_masked_at_vmrun");
    if (model_took || !oracle_took) return nullptr;
    const auto prio = (given & ictl::V_INTR_PRIO) >> 16;
    if ((given & ictl::V_IGN_TPR) == 0 && prio == (given & ictl::V_TPR)) return known(b, "qemu.virq_priority_ge_tpr");
    if (v.vmcb.get(FieldId::int_state) & arch::int_state::INTERRUPT_SHADOW)
        return known(b, "qemu.vmrun_interrupt_shadow_dropped");
    return nullptr;
}

/// DR6 bit 15 (BT, a task switch's #DB) and reserved bit 12 (APM 13.1.1.3).
constexpr std::uint64_t kDr6BtAndBit12 = 0x9000;

/// An intercepted #DF (exit 0x48) whose delivery state the emulator lost:
/// no EXITINTINFO and RFLAGS.RF set where the model has neither.
bool df_delivery_lost(const Result& r) {
    return r.status == Status::vmexit && r.exit_code() == arch::exit_code::EXCP_BASE + 8 &&
           (r.exit_int_info() & arch::event::V) == 0;
}

/// A known divergence that sends L2 down another path to the same exit
/// code: the fields that path changes follow from it.
const KnownDivergence* path_divergence(const Vector& v, const Result& r, Backend b) {
    if (v.program == Program::sti && (v.vmcb.get(FieldId::rflags) & arch::rflags::TF) != 0 &&
        r.status == Status::vmexit && r.exit_code() == arch::exit_code::VMMCALL &&
        r.vmcb.get(FieldId::rip) == program_entry(Program::sti) + 1)  // the VMMCALL after STI, no #DB
        return known(b, "qemu.sti_single_step_dropped");
    // IRETQ to a non-canonical address (the IRET program, l2.S 32): QEMU
    // completes the IRET, and the #GP(0) comes from the fetch at the popped
    // RIP, on the popped RSP and RFLAGS: intercepted, save.rip is the
    // non-canonical address; through gate 13, the frame lies below the
    // popped RSP (aligned, 6 quadwords with the error code, APM 8.9.3).
    if (v.program == Program::iret && (v.vmcb.get(FieldId::efer) & arch::efer::LMA) != 0 &&
        (v.vmcb.segment(arch::Seg::cs).attrib & arch::seg_attr::L) != 0 && r.status == Status::vmexit) {
        const std::uint64_t target = v.regs[3];
        const bool non_canonical = (target >> 47) != 0 && (target >> 47) != 0x1FFFF;
        const bool intercepted = r.exit_code() == arch::exit_code::EXCP_BASE + 13 && r.vmcb.get(FieldId::rip) == target;
        const bool delivered = r.exit_code() == arch::exit_code::VMMCALL && r.vmcb.get(FieldId::rax) == 13 &&
                               r.vmcb.get(FieldId::rsp) == (v.regs[1] & ~std::uint64_t{0xF}) - 48;
        if (non_canonical && (intercepted || delivered)) return known(b, "qemu.iret_noncanonical_rip_loaded");
    }
    return nullptr;
}

/// The emulator's own words for a crash the table names (the runner keeps
/// its log's last line in Result::reason).
const KnownDivergence* known_crash(const Vector& v, const Result& r, Backend b) {
    const auto has = [&](std::string_view s) { return r.reason.find(s) != std::string::npos; };
    if (has("signal 11") && (v.vmcb.get(FieldId::cr0) & arch::cr0::PG) && v.vmcb.get(FieldId::cr3) == ~0ULL)
        return known(b, "bochs.crash_guest_cr3_all_ones");
    if (has("exception with no resolution") && v.vmcb.intercept(arch::intercept::SHUTDOWN))
        return known(b, "bochs.triple_fault_panics");
    return nullptr;
}

/// QEMU's bookkeeping of an exception delivered through L2's IDT: its
/// #VMEXIT copies EVENTINJ, V clear after the delivery, into EXITINTINFO
/// (qemu.exit_int_info_on_failure's copy) and EVENTINJ's error code into
/// EXITINTINFO_ERR; the exception has an error code (TYPE 3, EV) and is the
/// vector the image's stub reported (rax at its VMMCALL), and the error
/// code left in EVENTINJ is that one.
[[nodiscard]] bool event_inj_err_of_delivery(const Result& r) {
    if (r.exit_code() != arch::exit_code::VMMCALL) return false;
    const std::uint32_t ev = r.exit_int_info();
    return (ev & arch::event::V) == 0 && arch::event::type_of(ev) == 3 && (ev & arch::event::EV) != 0 &&
           (ev & arch::event::VECTOR) == r.vmcb.get(FieldId::rax) &&
           r.vmcb.get(FieldId::event_inj_err) == r.vmcb.get(FieldId::exit_int_info_err);
}

/// A paging patch in the image's PAE PDPT (layout.h, 4 entries).
[[nodiscard]] bool in_pae_pdpt(std::uint64_t pa) {
    return pa >= NSVM_OR_PAE_PDPT_PA && pa < NSVM_OR_PAE_PDPT_PA + 4 * 8;
}

/// A PAE vector that patches a present PDPTE with reserved bits 2:1 or 8:5
/// (APM 5.3.3) and no other reserved bit QEMU checks (63:52).
[[nodiscard]] bool pae_pdpte_low_reserved(const Vector& v) {
    constexpr std::uint64_t kLow = arch::bits(2, 1) | arch::bits(8, 5);
    if ((v.vmcb.get(FieldId::efer) & arch::efer::LMA) != 0) return false;
    return std::any_of(v.paging.begin(), v.paging.end(), [&](const TablePatch& t) {
        return in_pae_pdpt(t.pa) && (t.value & 1) != 0 && (t.value & kLow) != 0 && (t.value & arch::bits(63, 52)) == 0;
    });
}

template <class Add>
void compare_rest(const Vector& v, const arch::Vmcb& expected, const Result& r, Backend backend, Add&& add) {
    static constexpr std::array kApart = {FieldId::exit_code, FieldId::exit_info_1,  FieldId::exit_info_2,
                                          FieldId::exit_int_info, FieldId::exit_int_info_err, FieldId::next_rip,
                                          FieldId::event_inj,     FieldId::rip,          FieldId::rsp,
                                          FieldId::rflags,        FieldId::rax};
    for (const auto& f : arch::kFields) {
        if (std::find(kApart.begin(), kApart.end(), f.id) != kApart.end()) continue;
        const auto a = expected.bytes(f.id);
        const auto b = r.vmcb.bytes(f.id);
        if (std::equal(a.begin(), a.end(), b.begin(), b.end())) continue;
        const KnownDivergence* k = nullptr;
        if (f.id == FieldId::int_ctl && int_ctl_byte_0x61(expected.get(f.id), r.vmcb.get(f.id)))
            k = known(backend, "bochs.int_ctl_byte_0x61");
        else if (f.id == FieldId::int_state && v.program == Program::sti &&
                 (v.vmcb.get(FieldId::rflags) & arch::rflags::IF) != 0 &&
                 r.vmcb.get(f.id) == (expected.get(f.id) | arch::int_state::INTERRUPT_SHADOW))
            k = known(backend, "qemu.sti_shadow_with_if_set");
        else if (f.id == FieldId::dr6 && r.exit_code() == arch::exit_code::EXCP_BASE + 1 &&
                 r.vmcb.get(f.id) == v.vmcb.get(f.id))  // DR6 as VMRUN loaded it
            k = known(backend, "bochs.db_intercept_dr6_stale");
        else if (f.id == FieldId::dr6 && (r.vmcb.get(f.id) & cpu::kDr6SingleStep) != 0 &&
                 (expected.get(f.id) ^ r.vmcb.get(f.id)) == (expected.get(f.id) & kDr6BtAndBit12))
            k = known(backend, "bochs.single_step_clears_dr6_bt");
        else if (f.id == FieldId::event_inj_err && event_inj_err_of_delivery(r))
            k = known(backend, "qemu.event_inj_err_written_by_delivery");
        else if (f.id == FieldId::cr2 && r.vmcb.get(f.id) == 0 && expected.get(f.id) == v.vmcb.get(f.id))
            k = known(backend, "bochs.vmrun_cr2_not_loaded");  // the host's CR2 (the image keeps it 0), not L2's
        else if ((f.id == FieldId::int_ctl && (expected.get(f.id) ^ r.vmcb.get(f.id)) == arch::int_ctl::V_IRQ) ||
                 (f.id == FieldId::int_state &&
                  (expected.get(f.id) ^ r.vmcb.get(f.id)) == arch::int_state::INTERRUPT_SHADOW))
            k = virq_divergence(v, expected.get(FieldId::int_ctl), r, backend);  // the interrupt taken or not
        add(std::string(f.name), std::string("unchanged, ") + hex(expected.get(f.id)), hex(r.vmcb.get(f.id)), k);
    }
    if (r.vmcb.get(FieldId::event_inj) & arch::event::V)
        add("control.event_inj.V", "0", hex(r.vmcb.get(FieldId::event_inj)));
}

const KnownDivergence* known(Backend b, std::string_view id) {
    for (const auto& k : kKnown)
        if (k.backend == b && k.id == id) return &k;
    return nullptr;
}

}  // namespace

std::span<const KnownDivergence> known_divergences() noexcept { return kKnown; }

std::string_view outcome_name(Outcome o) noexcept {
    switch (o) {
        case Outcome::agree: return "agree";
        case Outcome::differ: return "differ";
        case Outcome::cannot_run: return "cannot_run";
    }
    return "?";
}

VectorDiff compare(const Vector& v, const Prediction& p, const Result& r, Backend backend,
                   const checks::Profile& profile) {
    VectorDiff d;
    d.id = v.id;
    d.model_path = p.path;
    d.checks = v.checks;
    for (const auto& c : p.failing_checks)
        if (std::find(d.checks.begin(), d.checks.end(), c) == d.checks.end()) d.checks.push_back(c);

    if (r.status == Status::cannot_run) {
        if (p.status == Status::cannot_run) {
            d.outcome = Outcome::agree;  // the model expects the hang the oracle saw
            d.reason = r.reason;
            return d;
        }
        // An emulator that died where the processor makes an exit: a known
        // crash is a divergence like any other, explained by its name.
        if (const KnownDivergence* k = known_crash(v, r, backend)) {
            std::string ms(status_name(p.status));
            if (p.exit_code) ms += fmt::format(" (exit {:#x})", *p.exit_code);
            d.fields.push_back(FieldDiff{"status", ms, "cannot_run", true, std::string(k->id) + ": " +
                                                                                 std::string(k->reason)});
            d.outcome = Outcome::differ;
            d.reason = r.reason;
            return d;
        }
        d.outcome = Outcome::cannot_run;
        d.reason = r.reason;
        return d;
    }
    auto add = [&](std::string field, std::string model, std::string oracle, const KnownDivergence* k = nullptr) {
        FieldDiff f{std::move(field), std::move(model), std::move(oracle), k != nullptr,
                    k ? std::string(k->id) + ": " + std::string(k->reason) : std::string{}};
        d.fields.push_back(std::move(f));
    };

    if (p.status != r.status) {
        std::string ms(status_name(p.status)), os(status_name(r.status));
        if (p.status == Status::exception && p.exception_vector) ms += fmt::format(" (vector {})", *p.exception_vector);
        if (r.status == Status::exception) os += fmt::format(" (vector {})", r.exception_vector);
        if (p.status == Status::vmexit && p.exit_code) ms += fmt::format(" (exit {:#x})", *p.exit_code);
        if (r.status == Status::vmexit) os += fmt::format(" (exit {:#x})", r.exit_code());
        const KnownDivergence* k = nullptr;
        if (p.status == Status::vmexit && r.status == Status::exception && r.exception_vector == 1 &&
            (v.vmcb.get(FieldId::rflags) & arch::rflags::TF) != 0)
            k = known(backend, "bochs.single_step_leaks_to_host");
        add("status", ms, os, k);
    } else if (r.status == Status::exception) {
        if (p.exception_vector && *p.exception_vector != r.exception_vector)
            add("exception.vector", std::to_string(*p.exception_vector), std::to_string(r.exception_vector));
    } else {
        if (p.exit_code && *p.exit_code != r.exit_code()) {
            const KnownDivergence* k = nullptr;
            if (v.program == Program::int3 && *p.exit_code == arch::exit_code::EXCP_BASE + 3)
                k = known(backend, "qemu.int3_not_bp_intercept");
            else if (v.program == Program::invd && *p.exit_code == arch::exit_code::INVD)
                k = known(backend, "qemu.invd_tests_wbinvd_intercept");
            else if (*p.exit_code == arch::exit_code::VINTR && (v.vmcb.get(FieldId::int_ctl) & arch::int_ctl::V_IRQ))
                k = known(backend, "bochs.virq_masked_at_vmrun");
            else if ((v.program == Program::vmload || v.program == Program::vmsave) &&
                     !v.vmcb.intercept(v.program == Program::vmload ? arch::intercept::VMLOAD
                                                                    : arch::intercept::VMSAVE) &&
                     r.exit_code() == v.vmcb.get(FieldId::exit_code) &&
                     r.vmcb.get(FieldId::rip) == v.vmcb.get(FieldId::rip))
                k = known(backend, "bochs.vmload_vmsave_move_vmcb");  // the slot's VMCB as the vector gave it
            else if (p.vmrun_valid && r.exit_code() == arch::exit_code::NPF &&
                     (v.vmcb.get(FieldId::misc_ctl) & 0xFF & ~arch::misc_ctl::NP_ENABLE) != 0 &&
                     (v.vmcb.get(FieldId::misc_ctl) & arch::misc_ctl::NP_ENABLE) == 0)
                k = known(backend, "bochs.np_enable_whole_byte");
            else if (v.program == Program::rdtscp &&
                     r.exit_code() == (v.vmcb.intercept(arch::intercept::RDTSC) ? arch::exit_code::RDTSC
                                                                                 : arch::exit_code::VMMCALL))
                k = known(backend, "qemu.rdtscp_tests_rdtsc_intercept");
            else if (v.program == Program::xsetbv && *p.exit_code == arch::exit_code::XSETBV &&
                     r.exit_code() == arch::exit_code::VMMCALL)
                k = known(backend, "qemu.xsetbv_not_intercepted");
            else if (*p.exit_code == arch::exit_code::EXCP_BASE + 8 && r.exit_code() == arch::exit_code::VMMCALL &&
                     r.vmcb.get(FieldId::rax) == 8)  // the image's stub for vector 8
                k = known(backend, "qemu.df_intercept_not_checked");
            else if (p.vmcb_after)  // a V_IRQ one of them took at VMRUN and the other did not
                k = virq_divergence(v, p.vmcb_after->get(FieldId::int_ctl), r, backend);
            add("exit_code", hex(*p.exit_code), hex(r.exit_code()), k);
        }
        if (p.exit_info_1 && *p.exit_info_1 != r.exit_info_1()) {
            const KnownDivergence* k = nullptr;
            constexpr std::uint64_t kAsize = 0x380;  // APM 15.10.2: A16/A32/A64
            if (r.exit_code() == arch::exit_code::IOIO && (r.exit_info_1() & kAsize) == 0 &&
                (*p.exit_info_1 & ~kAsize) == r.exit_info_1())
                k = known(backend, "qemu.ioio_no_address_size");
            else if (r.exit_code() == arch::exit_code::EXCP_BASE + 14 && (*p.exit_info_1 & 9) == 9 &&
                     r.exit_info_1() == (*p.exit_info_1 & ~std::uint64_t{1}))  // RSV without P
                k = known(backend, "qemu.pf_rsvd_without_p");
            else if (r.exit_code() == arch::exit_code::EXCP_BASE + 14 && (*p.exit_info_1 & 9) == 9 &&
                     (r.exit_info_1() & 8) == 0 && pae_pdpte_low_reserved(v))  // the walk went on
                k = known(backend, "qemu.pae_pdpte_reserved_bits_unchecked");
            add("exit_info_1", hex(*p.exit_info_1), hex(r.exit_info_1()), k);
        }
        if (p.exit_info_2 && *p.exit_info_2 != r.exit_info_2()) {
            const KnownDivergence* k = nullptr;
            if (!p.vmrun_valid && r.exit_info_2() == v.vmcb.get(FieldId::exit_info_2))
                k = known(backend, "qemu.exit_info_2_kept_on_early_failure");
            add("exit_info_2", hex(*p.exit_info_2), hex(r.exit_info_2()), k);
        }
        // EXITINTINFO: APM 15.7.2, valid (bit 31) only while an event was being
        // delivered; with V = 0 the other bits mean nothing (QEMU leaves the
        // last delivered event there), so only V = 1 values are compared. On a
        // failed VMRUN the APM says nothing; we expect zero (Bochs, hardware).
        const auto norm = [](std::uint32_t e) { return (e & arch::event::V) ? e : 0U; };
        const std::uint32_t want_eii = norm(p.exit_int_info.value_or(0));
        const std::uint32_t got_eii = norm(r.exit_int_info());
        if ((p.exit_int_info || !p.vmrun_valid) && want_eii != got_eii) {
            const KnownDivergence* k = nullptr;
            if (!p.vmrun_valid && r.exit_int_info() == static_cast<std::uint32_t>(v.vmcb.get(FieldId::event_inj)))
                k = known(backend, "qemu.exit_int_info_on_failure");
            else if (df_delivery_lost(r))
                k = known(backend, "bochs.df_intercept_loses_delivery");
            add("exit_int_info", hex(want_eii), hex(r.exit_int_info()), k);
        }
        if (p.guest_rax && *p.guest_rax != r.vmcb.get(FieldId::rax)) {
            const KnownDivergence* k = nullptr;
            constexpr std::uint64_t kPowerOnPatLow = 0x00070406;  // APM 7.8.2, the host's PAT (the image keeps it)
            if (v.program == Program::rdmsr && static_cast<std::uint32_t>(v.regs[1]) == arch::msr::PAT &&
                (v.vmcb.get(FieldId::misc_ctl) & arch::misc_ctl::NP_ENABLE) != 0 &&
                r.vmcb.get(FieldId::rax) == kPowerOnPatLow)
                k = known(backend, "qemu.g_pat_not_loaded");
            add("save.rax", hex(*p.guest_rax), hex(r.vmcb.get(FieldId::rax)), k);
        }
        if (p.guest_rip && *p.guest_rip != r.vmcb.get(FieldId::rip))
            add("save.rip", hex(*p.guest_rip), hex(r.vmcb.get(FieldId::rip)));
        if (p.guest_rsp && *p.guest_rsp != r.vmcb.get(FieldId::rsp)) {
            const KnownDivergence* k = nullptr;
            const auto ev = static_cast<std::uint32_t>(v.vmcb.get(FieldId::event_inj));
            const unsigned vec = ev & arch::event::VECTOR;
            const bool qemu_pushes = vec == 8 || (vec >= 10 && vec <= 14) || vec == 17;
            const auto pushed = r.vmcb.get(FieldId::rsp) - *p.guest_rsp;  // the error code the model pushed
            if ((ev & arch::event::V) && arch::event::type_of(ev) == 3 && (ev & arch::event::EV) && !qemu_pushes &&
                (pushed == 8 || pushed == 4))
                k = known(backend, "qemu.event_inj_ev_ignored");
            add("save.rsp", hex(*p.guest_rsp), hex(r.vmcb.get(FieldId::rsp)), k);
        }
        if (p.guest_rflags && *p.guest_rflags != r.vmcb.get(FieldId::rflags)) {
            const KnownDivergence* k = nullptr;
            if (df_delivery_lost(r) && r.vmcb.get(FieldId::rflags) == (*p.guest_rflags | arch::rflags::RF))
                k = known(backend, "bochs.df_intercept_loses_delivery");
            add("save.rflags", hex(*p.guest_rflags), hex(r.vmcb.get(FieldId::rflags)), k);
        }
        if (p.next_rip && *p.next_rip != r.vmcb.get(FieldId::next_rip))
            add("control.next_rip", hex(*p.next_rip), hex(r.vmcb.get(FieldId::next_rip)));
        // The vector's page-table entries after the exit: the accessed and
        // dirty bits the walk wrote (APM 5.4.2), when the backend reports them.
        if (!p.paging_after.empty() && r.paging_after.size() == p.paging_after.size())
            for (std::size_t k = 0; k < p.paging_after.size(); ++k)
                if (p.paging_after[k].value != r.paging_after[k].value) {
                    constexpr std::uint64_t kAccessed = 0x20;  // APM 5.4.1: bit 5
                    const bool faulted = r.exit_code() == arch::exit_code::EXCP_BASE + 14 ||
                                         r.exit_code() == arch::exit_code::NPF ||
                                         (r.exit_code() == arch::exit_code::VMMCALL && r.vmcb.get(FieldId::rax) == 14);
                    const KnownDivergence* k_known = nullptr;
                    if (faulted && (p.paging_after[k].value ^ r.paging_after[k].value) == kAccessed &&
                        (r.paging_after[k].value & kAccessed) == 0)
                        k_known = known(backend, "bochs.faulting_walk_sets_no_accessed");
                    else if (in_pae_pdpt(v.paging[k].pa) &&
                             r.paging_after[k].value == (p.paging_after[k].value | kAccessed))
                        k_known = known(backend, "qemu.pae_pdpte_accessed_set");
                    add(fmt::format("paging[{}]", k), hex(p.paging_after[k].value), hex(r.paging_after[k].value),
                        k_known);
                }
        if (p.rest_unchanged && r.status == Status::vmexit) {
            compare_rest(v, p.vmcb_after ? *p.vmcb_after : v.vmcb, r, backend, add);
            d.whole_vmcb = true;
        }
    }
    if (p.gif && r.probe_ok && *p.gif != r.gif) add("gif", *p.gif ? "1" : "0", r.gif ? "1" : "0");
    if (v.host.probe_gif && !r.probe_ok) add("gif_probe", "interrupt taken", "probe interrupt never arrived");

    // What the emulator wrote into the VMCB beyond the exit fields.
    if (r.status == Status::vmexit) {
        static constexpr std::array kExitFields = {FieldId::exit_code, FieldId::exit_info_1, FieldId::exit_info_2,
                                                   FieldId::exit_int_info, FieldId::exit_int_info_err};
        bool save_written = false;
        for (const auto& f : arch::kFields) {
            if (std::find(kExitFields.begin(), kExitFields.end(), f.id) != kExitFields.end()) continue;
            const auto a = v.vmcb.bytes(f.id);
            const auto b = r.vmcb.bytes(f.id);
            if (std::equal(a.begin(), a.end(), b.begin(), b.end())) continue;
            d.written.emplace_back(f.name);
            if (f.area() == arch::Area::save) save_written = true;
            if (f.id == FieldId::next_rip && !profile.nrip_on_every_exit && !p.next_rip) {
                // APM 15.7.1: nRIP is written only for instruction intercepts, and
                // only with the NRIPS feature; never on VMEXIT_INVALID.
                add("control.next_rip", hex(v.vmcb.get(FieldId::next_rip)), hex(r.vmcb.get(FieldId::next_rip)));
            }
        }
        if (!p.vmrun_valid && save_written && profile.failure_writeback == checks::FailureWriteback::exit_fields_only)
            add("save area", "untouched by a failed VMRUN", "written (see 'written')");
    }
    // A known divergence that changes the exit itself (another exit code)
    // also explains the fields of that other exit and of the path L2 took to
    // it (CR0 LMSW or CLTS never wrote, an STI shadow, a single step's DR6);
    // they are kept, marked as following from it, never dropped. One that
    // keeps the exit code but changes L2's path explains the same fields.
    static constexpr std::array<std::string_view, 11> kFollow = {
        "exit_info_1", "exit_info_2", "exit_int_info", "save.rax",          "save.rip", "save.rsp",
        "save.rflags", "control.next_rip", "save.cr0", "control.int_state", "save.dr6"};
    const auto follow = [&](const std::string& because, std::string_view how) {
        for (auto& f : d.fields) {
            if (f.explained || std::find(kFollow.begin(), kFollow.end(), f.field) == kFollow.end()) continue;
            f.explained = true;
            f.reason = because + ": " + std::string(how);
        }
    };
    if (const KnownDivergence* k = path_divergence(v, r, backend)) follow(std::string(k->id), k->reason);
    const auto exit = std::find_if(d.fields.begin(), d.fields.end(),
                                   [](const FieldDiff& f) { return f.field == "exit_code" && f.explained; });
    if (exit != d.fields.end()) follow(exit->reason.substr(0, exit->reason.find(':')), "follows from the other exit");
    d.outcome = d.fields.empty() ? Outcome::agree : Outcome::differ;
    return d;
}

void Summary::add(const VectorDiff& d) {
    ++total;
    whole_vmcb += d.whole_vmcb ? 1 : 0;
    const bool unexpl = d.unexplained();
    switch (d.outcome) {
        case Outcome::agree: ++agree; break;
        case Outcome::cannot_run: ++cannot_run; break;
        case Outcome::differ:
            if (unexpl)
                ++differ;
            else
                ++explained_only;
            break;
    }
    for (const auto& f : d.fields)
        if (f.explained) ++per_known[f.reason.substr(0, f.reason.find(':'))];
    const auto tally = [&](CheckTally& t) {
        switch (d.outcome) {
            case Outcome::agree: ++t.agree; break;
            case Outcome::cannot_run: ++t.cannot_run; break;
            case Outcome::differ: unexpl ? ++t.differ : ++t.explained; break;
        }
    };
    if (d.checks.empty()) tally(per_check["(none)"]);
    for (const auto& c : d.checks) tally(per_check[c]);
}

std::string format_diff(const VectorDiff& d, bool verbose) {
    if (d.outcome == Outcome::agree && !verbose) return {};
    std::string s = fmt::format("{}: {}", d.id, outcome_name(d.outcome));
    if (d.outcome == Outcome::differ && !d.unexplained()) {
        // Known divergences are counted in the summary; a campaign has
        // thousands, so each vector is listed only when verbose.
        if (!verbose) return {};
        std::vector<std::string> ids;
        for (const auto& f : d.fields) {
            auto id = f.reason.substr(0, f.reason.find(':'));
            if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(std::move(id));
        }
        s += fmt::format(" (explained: {})", fmt::join(ids, ", "));
    }
    if (!d.checks.empty()) s += fmt::format("  [checks: {}]", fmt::join(d.checks, ", "));
    s += "\n";
    if (!d.reason.empty()) s += fmt::format("    oracle cannot run: {}\n", d.reason);
    for (const auto& f : d.fields) {
        s += fmt::format("    {:<18} model {:<22} oracle {}\n", f.field, f.model, f.oracle);
        if (f.explained) s += fmt::format("      expected: {}\n", f.reason);
    }
    if (!d.model_path.empty() && (verbose || d.outcome == Outcome::differ))
        s += fmt::format("    model: {}\n", d.model_path);
    if (verbose && !d.written.empty()) s += fmt::format("    written: {}\n", fmt::join(d.written, " "));
    return s;
}

std::string format_summary(const Summary& s) {
    std::string out = fmt::format("{} vectors: {} agree, {} differ (unexplained), {} differ (explained only), "
                                  "{} oracle cannot run\n",
                                  s.total, s.agree, s.differ, s.explained_only, s.cannot_run);
    out += fmt::format("{} of them compared on every VMCB field (valid VMRUN, exit and L2 registers followed); "
                       "the others on the exit fields, GIF and the save area's writeback\n",
                       s.whole_vmcb);
    out += fmt::format("{:<34} {:>7} {:>7} {:>9} {:>10}\n", "check", "agree", "differ", "explained", "cannot_run");
    for (const auto& [id, t] : s.per_check)
        out += fmt::format("{:<34} {:>7} {:>7} {:>9} {:>10}\n", id, t.agree, t.differ, t.explained, t.cannot_run);
    if (!s.per_known.empty()) {
        out += "known divergences seen:\n";
        for (const auto& [id, n] : s.per_known) out += fmt::format("  {:<44} {}\n", id, n);
    }
    return out;
}

std::string to_json_line(const VectorDiff& d) {
    nlohmann::ordered_json j;
    j["id"] = d.id;
    j["outcome"] = std::string(outcome_name(d.outcome));
    j["unexplained"] = d.unexplained();
    j["checks"] = d.checks;
    if (!d.reason.empty()) j["reason"] = d.reason;
    auto& fs = j["divergences"] = nlohmann::ordered_json::array();
    for (const auto& f : d.fields) {
        nlohmann::ordered_json e{{"field", f.field}, {"model", f.model}, {"oracle", f.oracle}, {"explained", f.explained}};
        if (f.explained) e["reason"] = f.reason;
        fs.push_back(std::move(e));
    }
    if (!d.model_path.empty()) j["model"] = d.model_path;
    if (!d.written.empty()) j["written"] = d.written;
    return j.dump();
}

}  // namespace nsvm::oracle
