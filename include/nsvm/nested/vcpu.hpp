// L0's nested SVM emulation for one L1 vCPU, designed after KVM's nested.c:
//
//   vmcb01  L0's VMCB for running L1: L0's intercepts for L1 and, while L2
//           runs, L1's saved state (the "host" state of L1's VMRUN).
//   vmcb12  L1's VMCB in guest memory. Read ONCE per VMRUN into cache_.
//   vmcb02  L0's VMCB for running L2: prepared from the cache and vmcb01.
//
// VMRUN:   copy_vmcb12_to_cache -> check_cache -> prepare_entry
//          (prepare_vmcb02 into the vmcb02 buffer that is not live,
//          load_l2_cr3 (PDPEs), merge_msrpm) -> commit_guest_mode (switch
//          buffers). Every failure goes through fail_vmrun().
// #VMEXIT: sync_vmcb02_to_vmcb12 -> restore_l1_from_vmcb01.
//
// L0 runs on hw_, THE architectural processor (cpu::SvmCpu): every entry
// into L2 is the processor's VMRUN of vmcb02 (its checks, loads and EVENTINJ
// delivery), every L2 instruction or exception runs on it, and what exits
// comes back as the processor's #VMEXIT, routed to L1 (vmcb12's intercepts)
// or to L0's handler table, after which L0 resumes L2 with VMRUN again.
//
// No exceptions, no allocation and no strings on these paths: results are
// plain structs; the scenario runner turns them into a trace.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <tuple>
#include <vector>

#include "nsvm/arch/vmcb.hpp"
#include "nsvm/checks/catalogue.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/cpu/events.hpp"
#include "nsvm/cpu/gates.hpp"
#include "nsvm/cpu/memory.hpp"
#include "nsvm/cpu/msr_rules.hpp"
#include "nsvm/cpu/svm_cpu.hpp"
#include "nsvm/util/expected.hpp"

namespace nsvm::nested {

/// Engine options (not architectural).
struct Options {
    /// Reproduce KVM before "KVM: nSVM: Clear GIF on nested #VMEXIT(INVALID)"
    /// (the seed thread): a consistency-check failure leaves GIF unchanged.
    bool pre_fix_gif_bug = false;
    /// Offer NRIPS to L1 (CPUID Fn8000_000A_EDX[3] in L1's view).
    bool nrips = true;
    /// L0 sets the SMI intercept in vmcb01 (KVM's intercept_smi).
    bool intercept_smi = true;
};

/// L0's own configuration for L1: its vmcb01 intercepts, the MSRs it passes
/// through to L1, whether it uses nested paging for L1.
struct L0Config {
    std::array<std::uint32_t, 6> intercept_words{};  ///< vmcb01 intercept vectors
    std::array<std::uint32_t, 32> passthrough_msrs{};
    std::uint8_t passthrough_count = 0;
    std::array<std::uint16_t, 16> passthrough_ports{};
    std::uint8_t passthrough_port_count = 0;
    bool npt = true;
    std::uint32_t asid01 = 1;  ///< ASID L0 gives L1
    std::uint32_t asid02 = 2;  ///< ASID L0 gives L2
    /// KVM's module parameter `vgif` (on by default): L0 uses the virtual
    /// GIF for L1 when the CPU has it (Vcpu::l0_uses_vgif).
    bool vgif = true;
    /// KVM's module parameter `vls` (on by default): L0 gives L1 virtual
    /// VMLOAD/VMSAVE when the CPU has it and NPT is on (Vcpu::l0_uses_vls).
    bool vls = true;
    /// KVM's module parameter `vnmi` (on by default): L0 uses the virtual
    /// NMI for L1 when the CPU has it and L0 uses vGIF (Vcpu::l0_uses_vnmi).
    bool vnmi = true;
    /// KVM's init_vmcb intercepts with NPT on, before the CPU's features
    /// are looked at: STGI, CLGI, VMLOAD and VMSAVE intercepted. The Vcpu
    /// drops what vGIF and virtual VMLOAD/VMSAVE make unnecessary on its
    /// CPU model (init_vmcb, svm_recalc_instruction_intercepts), as KVM does
    /// with these module parameters on; vgif/vls false keep them.
    [[nodiscard]] static L0Config kvm_default();
};

enum class Mode : std::uint8_t { l1, l2, shutdown };
[[nodiscard]] std::string_view mode_name(Mode m) noexcept;

/// Why a VMRUN failed (every one ends in fail_vmrun).
enum class FailReason : std::uint8_t {
    none,
    consistency_check,  ///< a catalogue check on the cached vmcb12 (KVM's nested_vmcb_check_controls / nested_vmcb_check_save)
    illegal_l2_cr3,     ///< CR3 load after vmcb02 preparation (nested_svm_load_cr3)
    illegal_pdpe,       ///< a PAE PDPE with reserved bits (APM 15.5.1 step 5)
    unreadable_pdpe,    ///< the PDPT is not backed
    msrpm_unreadable,   ///< L1's MSRPM cannot be read for the merge (nested_svm_merge_msrpm)
    vmcb02_refused,     ///< the processor's VMRUN of vmcb02 failed: SVM_EXIT_ERR, which KVM's
                        ///< nested_svm_intercept reflects to L1 (a check the profile let through)
};
[[nodiscard]] std::string_view fail_reason_name(FailReason r) noexcept;

enum class Outcome : std::uint8_t {
    l1_continues,    ///< an L1 instruction completed in L1
    entered_l2,      ///< VMRUN succeeded
    vmrun_failed,    ///< #VMEXIT(VMEXIT_INVALID) to L1
    vmexit_to_l1,    ///< an L2 event reflected to L1 as a #VMEXIT
    handled_by_l0,   ///< L0 took the exit itself; the guest continues
    no_exit,         ///< no intercept: the guest handled the event itself
    exception,       ///< an exception (#UD, #GP, #DB) delivered to the running guest
    interrupt,       ///< L2 took vmcb02's virtual interrupt (V_IRQ) or virtual NMI through its IDT, or L1 its virtual NMI (L0's vNMI)
    held_pending,    ///< blocked by GIF; held until GIF = 1
    smm_entered,
    smm_left,
    restored,        ///< nested state restored
    shutdown,
};
[[nodiscard]] std::string_view outcome_name(Outcome o) noexcept;

/// Who decided an exit.
enum class Owner : std::uint8_t { none, l0, l1 };

struct StepResult {
    Outcome outcome = Outcome::l1_continues;
    Owner owner = Owner::none;
    std::uint64_t exit_code = 0;
    std::uint64_t exit_info_1 = 0;
    std::uint64_t exit_info_2 = 0;
    FailReason reason = FailReason::none;
    const checks::Check* failed_check = nullptr;
    std::uint8_t vector = 0;   ///< Outcome::exception, Outcome::interrupt
    bool l0_exit = false;      ///< the hardware exit (from L2, or from L1 for an instruction vmcb01 intercepts) went to L0 first
    const char* note = "";     ///< a static string: why (no allocation)
};

/// Saved at SMI from L2 (SMRAM state-save map, APM 10.2.3; KVM smram64).
inline constexpr std::uint64_t kSmramGuestFlag = 0xFED8;
inline constexpr std::uint64_t kSmramVmcb12Gpa = 0xFEE0;
inline constexpr std::uint64_t kSmramEfer = 0xFED0;
inline constexpr std::uint64_t kHsaveL1State = 0x400;  ///< KVM parks vmcb01's save area at HSAVE+0x400
inline constexpr std::uint64_t kDefaultSmbase = 0x30000;
/// VM_HSAVE_PA of the processor L0 runs on: a page of L0's own memory, which
/// the model does not map (the host state of L0's VMRUN of vmcb02 is kept in
/// the processor, cpu::HeldVmcb); any legal page address would do.
inline constexpr std::uint64_t kL0HsavePa = 0x7FFF000;
/// L1's TSC multiplier (KVM's l1_tsc_scaling_ratio): L0 does not scale L1's
/// TSC in this model, so while L1 runs the processor's TSC_RATIO is 1.0.
inline constexpr std::uint64_t kL1TscRatio = cpu::kTscRatioOne;
/// The DebugCtl bits L0 virtualizes for its guests: LBR only (KVM's
/// DEBUGCTL_RESERVED_BITS is every other bit; BTF is dropped on write by
/// svm_set_msr, bits 5:2 are reserved). L2's DebugCtl from vmcb12 is masked
/// to these at VMRUN, and an L1 or L2 WRMSR with another bit is #GP(0).
inline constexpr std::uint64_t kL0DebugCtlBits = 0x1;  // arch::debugctl::LBR

/// KVM's uapi struct kvm_nested_state, SVM format (arch/x86/include/uapi/asm/kvm.h).
namespace kvm_state {
inline constexpr std::size_t kFlagsAt = 0, kFormatAt = 2, kSizeAt = 4, kVmcbPaAt = 8;
inline constexpr std::size_t kHeaderSize = 128;  ///< flags, format, size and the 120-byte hdr union
inline constexpr std::size_t kGuestSize = kHeaderSize + 4096;  ///< + KVM_STATE_NESTED_SVM_VMCB_SIZE
inline constexpr std::uint32_t kFormatSvm = 1;  ///< KVM_STATE_NESTED_FORMAT_SVM
inline constexpr std::uint32_t kGuestMode = 0x1, kRunPending = 0x2, kGifSet = 0x100;  ///< KVM_STATE_NESTED_*
inline constexpr std::uint32_t kKnownFlags = kGuestMode | kRunPending | kGifSet;
}  // namespace kvm_state

class Vcpu {
public:
    Vcpu(const checks::CpuModel& cpu, const checks::Profile& profile, cpu::GuestMemory& memory, L0Config l0,
         Options opts = {});

    // --- L1 instructions (executed while L1 runs) ---
    [[nodiscard]] StepResult l1_vmrun() noexcept;  ///< rAX (vmcb01.save.rax) = vmcb12 GPA
    [[nodiscard]] StepResult l1_vmload() noexcept;
    [[nodiscard]] StepResult l1_vmsave() noexcept;
    [[nodiscard]] StepResult l1_stgi() noexcept;
    [[nodiscard]] StepResult l1_clgi() noexcept;
    [[nodiscard]] StepResult l1_invlpga() noexcept;
    [[nodiscard]] StepResult l1_vmmcall() noexcept;
    [[nodiscard]] StepResult l1_skinit() noexcept;
    /// L1's IRET: ends the NMI blocking L1 is in (vmcb01's V_NMI_BLOCKING
    /// under vNMI, else L0's IRET intercept, KVM's iret_interception).
    /// L1's stack is not modelled: RIP and RFLAGS stay as they are.
    [[nodiscard]] StepResult l1_iret() noexcept;
    [[nodiscard]] StepResult l1_wrmsr(std::uint32_t msr, std::uint64_t value) noexcept;
    [[nodiscard]] StepResult l1_rdmsr(std::uint32_t msr, std::uint64_t& value) noexcept;
    [[nodiscard]] StepResult rsm() noexcept;

    // --- L2 activity and external events ---
    [[nodiscard]] StepResult l2_event(const cpu::Event& e) noexcept;
    /// INTR, NMI, SMI, INIT arriving while L1 or L2 runs.
    [[nodiscard]] StepResult external(cpu::EventKind k) noexcept;
    /// A host-initiated EFER write (KVM_SET_MSRS): clearing SVME while L2
    /// runs forces L2 out with GIF = 1 (svm_leave_nested).
    [[nodiscard]] StepResult host_set_efer(std::uint64_t efer) noexcept;

    // --- Nested state save/restore (the role of KVM_{GET,SET}_NESTED_STATE) ---
    [[nodiscard]] std::vector<std::uint8_t> save_state() const;
    /// Validates everything; on error nothing changes and the reason is returned.
    [[nodiscard]] nsvm::expected<void, std::string> restore_state(std::span<const std::uint8_t> blob);

    /// The same state in KVM's layout, struct kvm_nested_state format 1
    /// (kvm_nested_state.cpp has the map): a 128-byte header, and in guest
    /// mode the vmcb12 page (cached controls, L1's save area). L2's
    /// registers are not in it (KVM takes them from KVM_GET/SET_REGS and
    /// SREGS): current_registers() gives them.
    [[nodiscard]] std::vector<std::uint8_t> save_kvm_nested_state() const;
    /// KVM_SET_NESTED_STATE: KVM's refusals (format, size, flags, EFER.SVME,
    /// SMM, vmcb_pa), each naming the field, then restore_state's checks.
    /// `regs`' save area holds the vCPU's registers: L2's in guest mode, else L1's.
    [[nodiscard]] nsvm::expected<void, std::string> restore_kvm_nested_state(std::span<const std::uint8_t> blob,
                                                                             const arch::Vmcb& regs);
    /// The registers KVM_GET_REGS/SREGS report: L2's (vmcb02) in guest mode, else L1's (vmcb01).
    [[nodiscard]] const arch::Vmcb& current_registers() const noexcept;

    // --- Observation ---
    [[nodiscard]] Mode mode() const noexcept { return mode_; }
    /// L1's GIF, where L0 keeps it (KVM's gif_set / get_vgif_vmcb): with
    /// vGIF, V_GIF of vmcb01, or of vmcb02 while L2 runs without a virtual
    /// GIF of its own (nested vGIF off); without vGIF, L0's software flag.
    [[nodiscard]] bool gif() const noexcept;
    /// L0 uses vGIF for L1 (KVM's `vgif` after svm_hardware_setup: the
    /// module parameter and CPUID Fn8000_000A_EDX[16]): vmcb01 has
    /// V_GIF_ENABLE and does not intercept STGI/CLGI (init_vmcb). Inline:
    /// every GIF read and write on the VMRUN/#VMEXIT path asks it.
    [[nodiscard]] bool l0_uses_vgif() const noexcept { return l0_.vgif && cpu_->has(checks::Feature::vgif); }
    /// L0 uses virtual VMLOAD/VMSAVE (KVM's `vls` after svm_hardware_setup:
    /// the module parameter, NPT and CPUID Fn8000_000A_EDX[15]): vmcb01 has
    /// V_VMSAVE_VMLOAD in misc_ctl2 and does not intercept VMLOAD/VMSAVE
    /// (svm_recalc_instruction_intercepts); L1 is offered the feature.
    [[nodiscard]] bool l0_uses_vls() const noexcept {
        return l0_.vls && l0_.npt && cpu_->has(checks::Feature::v_vmsave_vmload);
    }
    /// L0 uses vNMI for L1 (KVM's `vnmi` after svm_hardware_setup: the
    /// module parameter, vGIF in use and CPUID Fn8000_000A_EDX[25]): vmcb01
    /// has V_NMI_ENABLE (init_vmcb), L1's NMIs are queued in its
    /// V_NMI_PENDING and its NMI mask is its V_NMI_BLOCKING; L1 is offered
    /// vNMI for L2 (svm_set_cpu_caps).
    [[nodiscard]] bool l0_uses_vnmi() const noexcept {
        return l0_.vnmi && l0_uses_vgif() && cpu_->has(checks::Feature::vnmi);
    }
    /// L1 gave L2 a virtual NMI (vNMI offered and V_NMI_ENABLE in vmcb12,
    /// KVM's nested_vnmi_enabled): vmcb12's V_NMI bits go to vmcb02 and back.
    [[nodiscard]] bool nested_vnmi() const noexcept;
    /// NMIs are blocked for the running level, as L0 tracks it (KVM's
    /// svm_get_nmi_mask): vmcb01's V_NMI_BLOCKING while L1 runs under vNMI
    /// (is_vnmi_enabled), else L0's software mask, set when L0 injects an NMI
    /// and cleared by the IRET L0 intercepts meanwhile.
    [[nodiscard]] bool nmi_masked() const noexcept;
    /// KVM's is_vnmi_enabled: L0 uses vNMI and vmcb01, which has
    /// V_NMI_ENABLE, is the VMCB that runs (L1 runs). Then L1's NMIs and NMI
    /// mask are the processor's, in vmcb01.
    [[nodiscard]] bool vnmi_runs_l1() const noexcept { return l0_uses_vnmi() && mode_ == Mode::l1; }
    /// With vGIF, vmcb01 intercepts STGI only to catch the end of GIF = 0
    /// while an NMI or SMI waits for it (KVM's svm_enable_nmi_window /
    /// svm_enable_smi_window set it, svm_set_gif(true) clears it).
    [[nodiscard]] bool stgi_window_open() const noexcept;
    [[nodiscard]] bool smm() const noexcept { return smm_; }
    [[nodiscard]] bool guest_mode() const noexcept { return mode_ == Mode::l2; }
    [[nodiscard]] std::uint64_t vmcb12_gpa() const noexcept { return vmcb12_gpa_; }
    [[nodiscard]] const arch::Vmcb& vmcb01() const noexcept { return vmcb01_; }
    [[nodiscard]] arch::Vmcb& vmcb01() noexcept { return vmcb01_; }
    [[nodiscard]] const arch::Vmcb& vmcb02() const noexcept { return vmcb02s_[live02_]; }
    [[nodiscard]] const arch::Vmcb& cache() const noexcept { return cache_; }
    [[nodiscard]] std::span<const std::uint8_t> msrpm01() const noexcept { return msrpm01_; }
    [[nodiscard]] std::span<const std::uint8_t> iopm01() const noexcept { return iopm01_; }
    /// The MSRPM vmcb02 uses (the merged map, or L0's when L1 sets no MSR_PROT).
    [[nodiscard]] std::span<const std::uint8_t> vmcb02_msrpm() const noexcept {
        return std::span<const std::uint8_t>(use_msrpm02_ ? msrpm02s_[live02_] : msrpm01_);
    }
    [[nodiscard]] const L0Config& l0() const noexcept { return l0_; }
    [[nodiscard]] const checks::Profile& profile() const noexcept { return *profile_; }
    [[nodiscard]] const checks::CpuModel& cpu_model() const noexcept { return *cpu_; }
    [[nodiscard]] cpu::GuestMemory& memory() noexcept { return *mem_; }
    [[nodiscard]] const Options& options() const noexcept { return opts_; }
    [[nodiscard]] std::uint64_t vm_hsave_pa() const noexcept { return hsave_pa_; }
    [[nodiscard]] std::uint64_t tsc_ratio() const noexcept { return tsc_ratio_; }
    /// The ratio L2 runs with (or last ran with): L1's TSC_RATIO with TSC
    /// scaling, else 1.0. While L2 runs it is the processor's TSC_RATIO.
    [[nodiscard]] std::uint64_t l2_tsc_ratio() const noexcept { return tsc_ratio02_; }
    /// The host TSC of the processor L0 runs on (cpu::SvmMsrs::tsc). The
    /// model's TSC does not advance by itself: it moves only when set.
    [[nodiscard]] std::uint64_t host_tsc() const noexcept { return hw_.msrs().tsc; }
    void set_host_tsc(std::uint64_t tsc) noexcept { hw_.msrs().tsc = tsc; }
    [[nodiscard]] std::uint64_t smbase() const noexcept { return smbase_; }
    [[nodiscard]] bool pending_db_for_l1() const noexcept { return pending_db_; }
    [[nodiscard]] std::uint32_t pending_events() const noexcept { return pending_; }
    /// Reads of the vmcb12 page during the last VMRUN (must be 1).
    [[nodiscard]] std::uint64_t vmcb12_reads_last_vmrun() const noexcept { return vmcb12_reads_; }

    void set_vm_hsave_pa(std::uint64_t pa) noexcept { hsave_pa_ = pa; }
    void set_smbase(std::uint64_t b) noexcept { smbase_ = b; }
    /// Writes L1's GIF where gif() reads it (KVM's svm_set_gif): with vGIF
    /// the STGI window follows (sync_event_windows).
    void set_gif(bool g) noexcept;

    /// Checks the model's invariants; returns nullptr or a static message.
    /// Among them: while L2 runs, vmcb02 passes the hardware's VMRUN checks
    /// (vmcb02_hardware_failure names the one that fails).
    [[nodiscard]] const char* check_invariants() const noexcept;
    /// While L2 runs: the first of the catalogue's VMRUN consistency checks
    /// the processor applies (the `apm` profile's, on this CPU model) that
    /// the live vmcb02 fails and the cached vmcb12 passes, or nullptr. Every
    /// vmcb02 L0 commits (VMRUN, RSM into L2, a restore) and every L0 write
    /// into it while emulating for L2 must leave a VMCB the hardware's VMRUN
    /// accepts, unless L1's own vmcb12 already failed that check and the
    /// profile let it through. Allocation-free, but a catalogue walk: for
    /// check_invariants only.
    [[nodiscard]] const checks::Check* vmcb02_hardware_failure() const noexcept;

    /// The physical processor L0 runs on (L2's registers live here while it runs).
    [[nodiscard]] const cpu::SvmCpu& hardware() const noexcept { return hw_; }

    /// Size in bytes of this per-vCPU state (docs/performance.md): 5 VMCBs,
    /// 3 MSRPMs, 3 IOPMs (L0's and two merged ones), and the processor's
    /// VMCB copy and internal host-save page.
    static constexpr std::size_t kStateBytes = 7 * arch::kVmcbSize + 3 * cpu::kMsrpmSize + 3 * cpu::kIopmSize;

private:
    using Msrpm = std::array<std::uint8_t, cpu::kMsrpmSize>;
    using Iopm = std::array<std::uint8_t, cpu::kIopmSize>;

    // VMRUN phases.
    [[nodiscard]] bool copy_vmcb12_to_cache(std::uint64_t gpa) noexcept;
    void sanitize_cache() noexcept;
    [[nodiscard]] const checks::Check* check_cache() const noexcept;
    [[nodiscard]] FailReason prepare_entry(std::span<const std::uint8_t> l2_save = {}) noexcept;
    void switch_to_prepared() noexcept;
    void prepare_vmcb02(arch::Vmcb& out) const noexcept;
    void prepare_vmcb02_control(arch::Vmcb& out) const noexcept;
    void prepare_vmcb02_save(arch::Vmcb& out) const noexcept;
    [[nodiscard]] FailReason load_l2_cr3(const arch::Vmcb& prepared) const noexcept;
    [[nodiscard]] bool merge_msrpm(Msrpm& out) const noexcept;
    void merge_iopm(Iopm& out) const noexcept;
    void commit_guest_mode(std::uint64_t gpa) noexcept;
    [[nodiscard]] StepResult fail_vmrun(FailReason reason, const checks::Check* check,
                                        const arch::Vmcb* prepared) noexcept;
    [[nodiscard]] StepResult enter_nested(std::uint64_t gpa) noexcept;
    /// The signals held by GIF or SMM, taken once that ends (VMRUN, STGI,
    /// RSM), in priority order: `r` goes on unless one ends the step
    /// (an exit to L1, SMM, an INIT that leaves L2), which is returned with
    /// `taken_note` (when given); `consumed_note` replaces r's note when one
    /// was delivered to L1 or injected into L2.
    /// After L2 wrote the GIF itself (STGI/CLGI without nested vGIF, run by
    /// the processor or emulated by L0): a GIF just set takes what it held.
    [[nodiscard]] StepResult after_l2_gif_write(bool gif_was, StepResult r) noexcept;
    [[nodiscard]] StepResult take_held_signals(StepResult r, const char* taken_note,
                                               const char* consumed_note = nullptr) noexcept;
    static constexpr const char* kTakenAtEntry = "VMRUN entered L2 (GIF = 1) and a held event was taken at once";

    // L2 on the processor.
    /// The processor, with vmcb02 (live buffer, its maps) as its held VMCB.
    [[nodiscard]] cpu::SvmCpu& hw() noexcept;
    [[nodiscard]] cpu::HeldVmcb held_vmcb02() noexcept;
    /// L0's host EFER.NXE and CR4.SMEP set to L1's before the VMRUN of
    /// vmcb02, whose nested tables are L1's (l2_processor.cpp).
    void walk_l1_tables_in_l1_mode() noexcept;
    /// L0's entry into L2: VMLOAD of the VMLOAD state (kept in vmcb01), VMRUN of vmcb02.
    [[nodiscard]] cpu::SvmResult run_vmcb02() noexcept;
    /// An entry (VMRUN, RSM into L2, resuming after an L0-handled exit): the
    /// processor's VMRUN of vmcb02, its result folded into the report `r` in
    /// place (see l2_instruction_boundary).
    void enter_l2_on_processor(StepResult& r) noexcept;
    /// The outcomes of an entry (run_vmcb02's `hr`) that leave L2 entered or
    /// routed (an intercepted fault delivering EVENTINJ), folded into `r`;
    /// false when the processor refused vmcb02, the caller's failure path.
    [[nodiscard]] bool took_entry(const cpu::SvmResult& hr, StepResult& r) noexcept;
    /// KVM's nested_sync_control_from_vmcb02 for nested vGIF: vmcb02's V_GIF
    /// into the cached vmcb12 controls (what save_state keeps).
    void sync_v_gif_to_cache() noexcept;
    /// L0 takes the processor's #VMEXIT from L2 (code x) if it still runs L2,
    /// then VMSAVEs the VMLOAD state into vmcb01.
    void l0_takes_exit(const cpu::ExitInfo& x) noexcept;
    void after_processor_exit() noexcept;
    /// An exit from L2 the processor reported: to L1 or to L0's handlers.
    [[nodiscard]] StepResult route_l2_exit(const cpu::Event& e, const cpu::SvmResult& hr) noexcept;
    /// The exit (`x`, as L1 sees it) is L1's: the nested #VMEXIT.
    [[nodiscard]] StepResult reflect_to_l1(const cpu::ExitInfo& x) noexcept;
    /// The exit is L0's: its handler, then L2 runs on when L0 resumes it.
    [[nodiscard]] StepResult l0_handles_exit(const cpu::Event& e, const cpu::ExitInfo& x) noexcept;
    /// L2 executes `e` on the processor: completed in L2 or routed, then
    /// the instruction boundary.
    [[nodiscard]] StepResult l2_executes(const cpu::Event& e) noexcept;
    /// L2 goes on after an event the processor finished inside it.
    [[nodiscard]] StepResult l2_ran(const cpu::Event& e, const cpu::SvmResult& hr, bool gif_was) noexcept;
    /// The boundary after an L2 instruction (or VMRUN's entry): what became
    /// deliverable is taken before L2's next instruction, `r` otherwise. In
    /// place: the step's report passes through every boundary, and a result
    /// copied right after its narrow fields were stored stalls store
    /// forwarding (docs/performance.md).
    static constexpr const char* kTakenAtBoundary =
        "a held event became deliverable to L2 (its IF or interrupt shadow) and was taken";
    void l2_instruction_boundary(StepResult& r, const char* taken_note = kTakenAtBoundary) noexcept;
    /// L1's VMRUN after its checks: enter L2, then its first instruction boundary.
    [[nodiscard]] StepResult enter_l2(std::uint64_t gpa) noexcept;

    // #VMEXIT phases.
    /// `vmcb02`: the live one, or (KVM's late VMRUN failure) the one just prepared.
    void sync_vmcb02_to_vmcb12(const arch::Vmcb& vmcb02, const cpu::ExitInfo& x) noexcept;
    void restore_l1_from_vmcb01() noexcept;
    /// vmcb02's DebugCtl and LBRs back to vmcb01 when L2 ran with L1's (!nested_lbrv()).
    void give_back_l1_lbrs(const arch::Vmcb& vmcb02) noexcept;
    [[nodiscard]] StepResult nested_vmexit(const cpu::ExitInfo& x) noexcept;
    void leave_nested() noexcept;

    // Routing.
    [[nodiscard]] bool l1_wants_exit(const cpu::Event& e, const cpu::ExitInfo& hw) const noexcept;
    [[nodiscard]] StepResult l2_memory_access(const cpu::Event& e) noexcept;
    /// L2 GPA -> L1 GPA through L1's nested page tables when L1 enabled them;
    /// false with `fault` = the #NPF reflected to L1.
    [[nodiscard]] bool l1_physical(std::uint64_t l2_gpa, cpu::Access access, std::uint64_t& l1_gpa,
                                   StepResult& fault) noexcept;
    [[nodiscard]] StepResult l2_vmload_vmsave(const cpu::Event& e) noexcept;
    /// The VMLOAD/VMSAVE state (APM 15.5.2) between a VMCB in memory and
    /// vmcb01 (and the live vmcb02 while L2 runs); false when not backed.
    [[nodiscard]] bool vmload_from(std::uint64_t pa) noexcept;
    [[nodiscard]] bool vmsave_to(std::uint64_t pa) noexcept;
    /// The signal as the processor L1 sees would treat it (cpu/signals.hpp's
    /// rule on l1_view): held, reflected to L1 as #VMEXIT, or taken (SMM,
    /// INIT, delivered to L1, or injected into L2 by L0).
    [[nodiscard]] StepResult take_signal(cpu::Signal s) noexcept;
    /// What cpu::signal_action reads, for the processor L1 sees.
    [[nodiscard]] cpu::SignalState l1_view(cpu::Signal s) const noexcept;
    [[nodiscard]] const char* hold_note(cpu::Signal s, const cpu::SignalState& st) const noexcept;
    /// An exit from L2 that L1 does not want, handled by L0 (routing.cpp's table).
    using L0ExitHandler = StepResult (Vcpu::*)(const cpu::Event&, const cpu::ExitInfo&) noexcept;
    [[nodiscard]] static L0ExitHandler l0_exit_handler(std::uint64_t code) noexcept;
    [[nodiscard]] StepResult l0_vmload_vmsave(const cpu::Event& e, const cpu::ExitInfo& x) noexcept;
    [[nodiscard]] StepResult l0_interrupt_window(const cpu::Event& e, const cpu::ExitInfo& x) noexcept;
    [[nodiscard]] StepResult l0_inject_ud(const cpu::Event& e, const cpu::ExitInfo& x) noexcept;
    [[nodiscard]] StepResult l0_emulate(const cpu::Event& e, const cpu::ExitInfo& x) noexcept;
    [[nodiscard]] StepResult l0_shutdown(const cpu::Event& e, const cpu::ExitInfo& x) noexcept;
    /// An IRET only L0 intercepts (KVM's iret_interception): L2 resumes at
    /// it and the processor executes it, vmcb02's IRET intercept lifted for it.
    [[nodiscard]] StepResult l0_iret(const cpu::Event& e, const cpu::ExitInfo& x) noexcept;
    [[nodiscard]] StepResult l0_reinject_exception(const cpu::Event& e, const cpu::ExitInfo& x) noexcept;
    /// L0 injects an exception into L2 through vmcb02's EVENTINJ (delivered by the next VMRUN).
    void inject_into_l2(std::uint8_t vector, std::uint32_t error_code) noexcept;
    /// An exception L0's emulation raises for L2 (`r` the fault's report, its
    /// `vector`): #VMEXIT to L1 when vmcb12 intercepts the vector, else injected into L2.
    [[nodiscard]] StepResult l0_raises_in_l2(std::uint32_t error_code, StepResult r) noexcept;
    /// After L0 emulated an L2 instruction (`r` its report): the single-step
    /// #DB when L2's RFLAGS.TF is set, else `r`.
    [[nodiscard]] StepResult l0_single_step(StepResult r) noexcept;
    void apply_l2_effect(const cpu::Event& e) noexcept;
    /// The #GP(0) reason of an L2 MOV to CR/DR or WRMSR with an illegal value, or nullptr.
    [[nodiscard]] const char* l2_write_fault(const cpu::Event& e) const noexcept;
    /// KVM's svm_write_tsc_multiplier: the processor's TSC_RATIO MSR, on a
    /// processor with TSC scaling (written while no guest runs).
    void write_tsc_multiplier(std::uint64_t ratio) noexcept;
    /// L2's TSC multiplier over L1's: L1's TSC_RATIO with TSC scaling, else
    /// 1.0 (KVM's nested_svm_update_tsc_ratio_msr). vmcb02's composed offset
    /// and the processor's ratio while L2 runs both use it.
    [[nodiscard]] std::uint64_t l2_multiplier() const noexcept;
    /// L2's RDTSC/RDTSCP as L0 emulates it when only L0 intercepts it: L2's
    /// TSC (the processor's rule, cpu::guest_tsc_of, with vmcb02's offset
    /// and L2's ratio) into vmcb02's RAX and the processor's RDX (RCX).
    void emulate_l2_rdtsc(const cpu::Event& e) noexcept;
    /// L2's WRMSR as L0 emulates it: the processor's MSR rules on L2's state,
    /// DebugCtl with L0's (l0_debugctl_write).
    [[nodiscard]] cpu::MsrWrite l2_msr_write(const cpu::Event& e) const noexcept;
    /// KVM's svm_set_msr(MSR_IA32_DEBUGCTLMSR) for L1 or L2, whose DebugCtl is
    /// `current`: without LBR virtualization on the host the write is ignored
    /// (DebugCtl keeps `current`); else BTF is dropped and any bit outside
    /// kL0DebugCtlBits is #GP(0) (cpu::debugctl_write's rule with L0's bits).
    [[nodiscard]] cpu::MsrWrite l0_debugctl_write(std::uint64_t value, std::uint64_t current) const noexcept;
    /// WRMSR by L1 (`v` = vmcb01) or L2 (`v` = vmcb02, `efer` as L2 sees it)
    /// as L0 judges it: l0_debugctl_write for DebugCtl at CPL 0, the
    /// processor's rules (cpu/msr_rules.hpp) for the rest.
    [[nodiscard]] cpu::MsrWrite l0_msr_write(std::uint32_t msr, std::uint64_t value, const arch::Vmcb& v,
                                             std::uint64_t efer) const noexcept;
    /// L2's EFER as L2 sees it: `vmcb02`'s, with SVME as vmcb12 gave it (the
    /// hardware VMCB always has SVME set). What the #VMEXIT writes to vmcb12.
    [[nodiscard]] std::uint64_t l2_efer(const arch::Vmcb& vmcb02) const noexcept;
    /// L2's WRMSR that clears its EFER.SVME (L0 handles it: L1 did not intercept it).
    [[nodiscard]] bool l2_clears_svme(const cpu::Event& e) const noexcept;
    void apply_l2_wrmsr(const cpu::Event& e) noexcept;

    /// The field svm_set_nested_state refuses the blob for (with `detail`), or nullptr.
    [[nodiscard]] const char* kvm_state_refusal(std::span<const std::uint8_t> blob, const arch::Vmcb& regs,
                                                std::string& detail) const;

    // SMM.
    [[nodiscard]] StepResult enter_smm() noexcept;
    void shutdown() noexcept { mode_ = Mode::shutdown; }

    // Helpers.
    /// The bit of pending_ that holds an external event of kind k.
    [[nodiscard]] static constexpr std::uint32_t pending_bit(cpu::EventKind k) noexcept {
        return 1U << static_cast<unsigned>(k);
    }
    /// The same bit for a signal (the saved state keeps EventKind's numbering).
    [[nodiscard]] static constexpr std::uint32_t pending_bit(cpu::Signal s) noexcept {
        using cpu::EventKind;
        return pending_bit(s == cpu::Signal::intr  ? EventKind::intr
                           : s == cpu::Signal::nmi ? EventKind::nmi
                           : s == cpu::Signal::init ? EventKind::init
                                                    : EventKind::smi);
    }
    /// check_invariants' rules on vmcb01 (L0's vGIF, STGI window, virtual VMLOAD/VMSAVE).
    [[nodiscard]] const char* vmcb01_problem() const noexcept;
    /// L0's windows for the events it holds for L1, after anything that
    /// changes what is held, GIF or the mode: vmcb01's STGI intercept (and
    /// vmcb02's while L2 runs, as KVM's recalc_intercepts) as
    /// stgi_window_open says, when L0 uses vGIF; the interrupt window
    /// (sync_irq_window).
    void sync_event_windows() noexcept;
    /// L0 wants to see the moment a held INTR for L1 becomes deliverable
    /// (KVM's svm_enable_irq_window): an INTR is held and GIF is set, or
    /// hardware will set it (vGIF).
    [[nodiscard]] bool irq_window_wanted() const noexcept;
    /// The interrupt window follows irq_window_wanted: KVM's svm_set_vintr
    /// (the VINTR intercept in vmcb01, and a dummy V_IRQ at priority 15,
    /// vector 0, in the running VMCB) or svm_clear_vintr (which gives
    /// vmcb02 back vmcb12's V_IRQ, V_INTR_PRIO, V_IGN_TPR and vector).
    void sync_irq_window() noexcept;
    /// KVM's recalc_intercepts: under vmcb12's V_INTR_MASKING with L1's
    /// RFLAGS.IF = 0 (vmcb01's), L1's interrupts cannot become deliverable
    /// while L2 runs, and vmcb02 does not take L0's VINTR intercept.
    [[nodiscard]] bool l0_vintr_dropped_for_l2() const noexcept;
    /// vmcb01's intercepts as L0 configures them on this CPU model (KVM's
    /// init_vmcb and svm_recalc_instruction_intercepts), STGI window closed.
    [[nodiscard]] std::array<std::uint32_t, 6> l0_intercept_words() const noexcept;
    /// L1's STGI (`set`) or CLGI: L0's emulation when vmcb01 intercepts it
    /// (KVM's stgi_interception / clgi_interception), else the processor's
    /// rule on vmcb01 (cpu/gif.hpp: V_GIF under vGIF), then what GIF = 1 lets through.
    [[nodiscard]] StepResult l1_gif_instruction(bool set) noexcept;
    /// The report of L1's VMLOAD (`save` false) or VMSAVE that completed:
    /// an exit L0 handled when vmcb01 intercepts it, else none (vls).
    void l1_vmload_vmsave_exit(StepResult& r, bool save) const noexcept;
    /// L1 gave L2 a virtual GIF (vgif offered and V_GIF_ENABLE in vmcb12,
    /// APM 15.33.2): L2's STGI/CLGI then change vmcb02.V_GIF, not the GIF.
    [[nodiscard]] bool nested_vgif() const noexcept;
    /// KVM's svm_set_nmi_mask: vmcb01's V_NMI_BLOCKING while L1 runs under
    /// vNMI; else L0's software mask, with vmcb01's IRET intercept (and
    /// vmcb02's while L2 runs, recalc_intercepts) to see the NMI handler's
    /// IRET (svm_set_iret_intercept / svm_clr_iret_intercept).
    void set_nmi_masked(bool masked) noexcept;
    /// L0's software NMI mask and the IRET intercept that goes with it
    /// (svm->nmi_masked, svm_set_iret_intercept), whichever level runs.
    void set_software_nmi_mask(bool masked) noexcept;
    /// KVM's nested_svm_vmexit under vNMI: vmcb02's V_NMI_BLOCKING becomes
    /// L1's, and an NMI L0 still holds goes into vmcb01's V_NMI_PENDING.
    void vnmi_state_to_vmcb01(const arch::Vmcb& vmcb02) noexcept;
    /// Under vNMI while L1 runs: a held NMI goes into vmcb01's V_NMI_PENDING
    /// when that is free (KVM's process_nmi, svm_set_vnmi_pending), and the
    /// processor takes it there as its rule says (cpu/vnmi.hpp, APM
    /// 15.21.10): V_NMI_PENDING -> V_NMI_BLOCKING, through L1's IDT, no exit.
    /// `r` is returned unless one was taken.
    [[nodiscard]] StepResult l1_vnmi(StepResult r) noexcept;
    /// L2 has a PAT of its own (vmcb02's G_PAT, written back to vmcb12): L1
    /// runs it with nested paging. Without, L1 and L2 share L1's PAT (KVM's
    /// nested_vmcb02_prepare_save and nested_svm_vmexit with the
    /// NESTED_SVM_SHARED_PAT quirk off; selftest svm_nested_pat_test).
    [[nodiscard]] bool l2_has_own_pat() const noexcept;
    /// L1 enabled LBR virtualization for L2 (LBR_VIRT in vmcb12's misc_ctl2,
    /// offered to L1: APM 15.23; KVM's check of LBRV enablement in vmcb12):
    /// L2's DebugCtl and LBRs are vmcb12's, loaded at VMRUN and written back
    /// at #VMEXIT. Without it L2 runs with L1's (vmcb01's), which the #VMEXIT
    /// gives back to vmcb01 (KVM's nested_svm_vmexit, svm_copy_lbrs).
    [[nodiscard]] bool nested_lbrv() const noexcept;
    /// Why `l1`'s save area is not an L1 state (in guest mode: not one L1's
    /// VMRUN could have left), or nullptr. Shared by restore_state (vmcb01)
    /// and RSM into L2, which reloads it from HSAVE+0x400 in guest memory.
    [[nodiscard]] const char* l1_state_problem(const arch::Vmcb& l1, bool guest_mode) const noexcept;
    [[nodiscard]] bool l1_instruction_gates(StepResult& r, cpu::SvmInsn insn) const noexcept;
    /// A guest's processor state as the instruction gates read it (vmcb01:
    /// L1's, vmcb02: L2's); VM_HSAVE_PA and SMM are L1's.
    [[nodiscard]] checks::HostState gate_state(const arch::Vmcb& v) const noexcept;
    /// A shut-down vCPU runs nothing until it is reset, which the model has
    /// not: true, with `r` the step's report (outcome shutdown), when shut down.
    [[nodiscard]] bool shut_down(StepResult& r) const noexcept;
    [[nodiscard]] cpu::ExitFeatures exit_features() const noexcept;
    void skip_l1_instruction(std::uint8_t len = 3) noexcept;

    // vmcb02 and its merged MSRPM are double-buffered: an entry into L2 is
    // prepared in the buffers that are not live and committed by flipping
    // live02_, so a failed entry leaves nothing behind and a successful one
    // copies nothing. Both MSRPM buffers are all-ones except the bits of the
    // MSRs L0 passes through, the only ones a merge rewrites.
    [[nodiscard]] arch::Vmcb& live_vmcb02() noexcept { return vmcb02s_[live02_]; }
    [[nodiscard]] std::span<const std::uint8_t> vmcb02_iopm() const noexcept {
        return std::span<const std::uint8_t>(use_iopm02_ ? iopm02s_[live02_] : iopm01_);
    }
    [[nodiscard]] arch::Vmcb& next_vmcb02() noexcept { return vmcb02s_[live02_ ^ 1U]; }
    [[nodiscard]] Msrpm& next_msrpm02() noexcept { return msrpm02s_[live02_ ^ 1U]; }

    alignas(arch::kVmcbAlign) arch::Vmcb vmcb01_;
    alignas(arch::kVmcbAlign) std::array<arch::Vmcb, 2> vmcb02s_{};
    alignas(arch::kVmcbAlign) arch::Vmcb cache_;    ///< the vmcb12 copy; never re-read during a VMRUN
    alignas(arch::kVmcbAlign) arch::Vmcb smram_l2_; ///< L2's register state saved at an SMI from L2 (SMRAM image)
    Msrpm msrpm01_{};
    std::array<Msrpm, 2> msrpm02s_{};
    Iopm iopm01_{};
    std::array<Iopm, 2> iopm02s_{};  ///< L0's | L1's IOPM for the ports L0 passes through
    cpu::SvmCpu hw_;  ///< the physical processor (apm profile): runs vmcb02
    // The pages above (page-aligned VMCBs, page-sized maps) come first, so
    // that the small members below add no padding between them.
    const checks::CpuModel* cpu_;
    const checks::Profile* profile_;
    cpu::GuestMemory* mem_;
    L0Config l0_;
    Options opts_;

    /// Where L0's pass-through MSRs sit in an MSRPM (byte, and the mask of
    /// the read/write bit pair), computed once as KVM's msrpm_offsets[]:
    /// the only bits an MSRPM merge rewrites.
    struct MsrpmSlot {
        std::uint16_t byte = 0;
        std::uint8_t bits = 0;
    };
    std::array<MsrpmSlot, std::tuple_size_v<decltype(L0Config::passthrough_msrs)>> passthrough_slots_{};
    std::uint8_t passthrough_slot_count_ = 0;
    std::uint8_t live02_ = 0;        ///< index of the live vmcb02 and merged MSRPM
    bool use_msrpm02_ = false;       ///< the live vmcb02 uses the merged MSRPM
    bool next_uses_msrpm02_ = false; ///< the prepared one will
    bool use_iopm02_ = false;        ///< the live vmcb02 uses the merged IOPM
    bool next_uses_iopm02_ = false;

    Mode mode_ = Mode::l1;
    bool gif_ = true;  ///< L1's GIF without vGIF (reset value: init_vmcb sets GIF = 1); read only by gif()
    bool smm_ = false;
    bool smm_from_l2_ = false;
    bool smm_inside_nmi_ = false;  ///< NMIs were blocked already at SMM entry (KVM's HF_SMM_INSIDE_NMI_MASK)
    bool pending_db_ = false;
    bool nmi_masked_ = false;  ///< L0's software NMI mask (KVM's svm->nmi_masked); read only by nmi_masked()
    std::uint32_t pending_ = 0;  ///< bit per EventKind held by GIF
    std::uint64_t vmcb12_gpa_ = 0;
    std::uint64_t hsave_pa_ = 0;
    std::uint64_t vm_cr_ = 0;
    std::uint64_t tsc_ratio_ = cpu::kTscRatioOne;    ///< L1's TSC_RATIO MSR (8.32, 1.0)
    std::uint64_t tsc_ratio02_ = cpu::kTscRatioOne;  ///< the ratio L2 runs (last ran) with
    std::uint64_t smbase_ = kDefaultSmbase;
    std::uint64_t vmcb12_reads_ = 0;
};

/// The state-blob format version (nested_state.cpp).
inline constexpr std::uint32_t kNestedStateVersion = 1;

}  // namespace nsvm::nested
