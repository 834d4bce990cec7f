// The architectural, single-level SVM processor: the CPU an L0 hypervisor
// runs on (APM Vol.2 ch.15). Named step for step after the manual, as Bochs
// names SvmEnterSaveHostState / SvmEnterLoadCheckGuestState / Svm_Vmexit,
// without Bochs' single CPU class or its longjmp out of a failed check:
//
// VMRUN (APM 15.5.1):
//   vmrun_instruction_gates   #UD / #GP(0), from the checks catalogue's instruction stage
//   read_vmcb                 one read of the VMCB page into the internal copy
//   save_host_state           host registers -> the host-save area (docs/cpu.md)
//   check_guest_state         the catalogue's control..memory stages, BEFORE anything is loaded
//   load_guest_state          commit: registers, PAE PDPEs, TLB_CONTROL/ASID, TSC
//   GIF = 1, inject_event     EVENTINJ delivered before the first guest instruction
// Any failing check goes through the one failure path: #VMEXIT(VMEXIT_INVALID).
//
// #VMEXIT (APM 15.6):
//   GIF = 0 -> save_guest_state (VMCB in guest memory, field by field)
//   -> write_exit_fields -> clear_guest_controls -> load_host_state
//
// Guest activity reuses events.hpp's decide() for every intercept decision;
// there is no second intercept table here. Everything is noexcept and
// allocation-free; results are plain structs with static note strings.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "nsvm/arch/vmcb.hpp"
#include "nsvm/checks/catalogue.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/cpu/events.hpp"
#include "nsvm/cpu/gates.hpp"
#include "nsvm/cpu/memory.hpp"
#include "nsvm/cpu/npt.hpp"
#include "nsvm/cpu/signals.hpp"

namespace nsvm::cpu {

/// DebugCtl and the last-branch records: what LBR virtualization loads at
/// VMRUN and saves at #VMEXIT (APM 15.23; VMCB save area 670h-690h).
struct LbrState {
    std::uint64_t dbgctl = 0;          ///< DebugCtl (MSR 01D9h)
    std::uint64_t br_from = 0;         ///< LastBranchFromIP
    std::uint64_t br_to = 0;           ///< LastBranchToIP
    std::uint64_t last_excp_from = 0;  ///< LastExceptionFromIP
    std::uint64_t last_excp_to = 0;    ///< LastExceptionToIP
    friend bool operator==(const LbrState&, const LbrState&) = default;
};
/// The LBR fields of a VMCB's save area, and the inverse.
[[nodiscard]] LbrState lbr_from_vmcb(const arch::Vmcb& v) noexcept;
void store_lbr(const LbrState& l, arch::Vmcb& v) noexcept;

/// The processor registers SVM touches: what VMRUN saves and loads, what
/// VMLOAD/VMSAVE move, and what #VMEXIT reloads (APM 15.5.1, 15.5.2, 15.6).
/// While a guest runs these are the guest's live registers. RDX and RCX are
/// processor state only: no VMCB holds them, and neither VMRUN nor #VMEXIT
/// changes them (the host's VMM saves and restores them in software), so after
/// a #VMEXIT they still hold what the guest left; RDTSC/RDTSCP write them.
struct Registers {
    std::uint64_t efer = 0;
    std::uint64_t cr0 = 0;
    std::uint64_t cr2 = 0;
    std::uint64_t cr3 = 0;
    std::uint64_t cr4 = 0;
    std::uint64_t cr8 = 0;  ///< TPR (4 bits)
    std::uint64_t dr6 = 0xFFFF0FF0;
    std::uint64_t dr7 = 0x400;
    std::uint64_t rflags = 2;
    std::uint64_t rip = 0;
    std::uint64_t rsp = 0;
    std::uint64_t rax = 0;
    std::uint64_t rdx = 0;  ///< processor state only (not in any VMCB)
    std::uint64_t rcx = 0;  ///< processor state only (not in any VMCB)
    std::uint8_t cpl = 0;
    arch::Segment es, cs, ss, ds, fs, gs;  ///< selector + hidden attrib/limit/base
    arch::Segment ldtr, tr, gdtr, idtr;    ///< GDTR/IDTR: limit and base only
    // The MSRs VMLOAD/VMSAVE move (FS/GS base are fs.base / gs.base).
    std::uint64_t kernel_gs_base = 0;
    std::uint64_t star = 0, lstar = 0, cstar = 0, sfmask = 0;
    std::uint64_t sysenter_cs = 0, sysenter_esp = 0, sysenter_eip = 0;
    std::uint64_t pat = 0x0007040600070406ULL;  ///< power-on PAT (APM 7.8.2)
    LbrState lbr{};  ///< DebugCtl and the LBRs (0 at reset)

    friend bool operator==(const Registers&, const Registers&) = default;
};

/// The registers a VMCB state-save area holds (all ten segments, EFER, CR0/2/3/4,
/// DR6/7, RFLAGS, RIP, RSP, RAX, CPL, the VMLOAD/VMSAVE MSRs, G_PAT as PAT);
/// CR8, RDX and RCX are not in the save area and stay 0. For describing a host or a
/// guest as a VMCB image (oracle vectors, traces).
[[nodiscard]] Registers registers_from_save_area(const arch::Vmcb& v) noexcept;
/// The inverse: writes those fields of `r` into `v`'s save area.
void store_registers(const Registers& r, arch::Vmcb& v) noexcept;

/// TSC_RATIO 1.0 (8.32 fixed point): the MSR's reset value (APM 15.30.5).
inline constexpr std::uint64_t kTscRatioOne = std::uint64_t{1} << 32;
/// A TSC as a guest reads it: `host_tsc` times `ratio` (8.32 fixed point,
/// APM 15.30.5) plus `offset` (TSC_OFFSET, APM 15.30.4), modulo 2^64.
[[nodiscard]] std::uint64_t guest_tsc_of(std::uint64_t host_tsc, std::uint64_t ratio, std::uint64_t offset) noexcept;
/// What RDTSC / RDTSCP leave in RAX, RDX and RCX (APM vol. 3): EDX:EAX = `tsc`,
/// ECX = TSC_AUX[31:0] (RDTSCP only), upper halves cleared.
struct TscRead {
    std::uint64_t rax, rdx, rcx;
};
[[nodiscard]] constexpr TscRead tsc_read(std::uint64_t tsc, std::uint64_t tsc_aux) noexcept {
    return TscRead{tsc & 0xFFFFFFFFULL, tsc >> 32, tsc_aux & 0xFFFFFFFFULL};
}

/// SVM-related MSRs and counters of the processor (APM 15.30).
struct SvmMsrs {
    std::uint64_t vm_hsave_pa = 0;               ///< C001_0117
    std::uint64_t vm_cr = 0;                     ///< C001_0114: DPD, R_INIT, DIS_A20M, LOCK, SVMDIS
    std::uint64_t tsc = 0;                       ///< the host TSC
    std::uint64_t tsc_ratio = kTscRatioOne;        ///< C000_0104, 8.32 fixed point, reset 1.0
    std::uint64_t tsc_aux = 0;                   ///< C000_0103: RDTSCP's ECX (bits 31:0), reset 0
    std::uint64_t hwcr = 0;                      ///< C001_0015 (bit 0 SMMLOCK)
    friend bool operator==(const SvmMsrs&, const SvmMsrs&) = default;
};

enum class SvmOutcome : std::uint8_t {
    completed,      ///< a host instruction completed (RIP advanced)
    entered_guest,  ///< VMRUN succeeded; the guest runs
    vmexit,         ///< #VMEXIT to the host (VMEXIT_INVALID included)
    exception,      ///< the instruction raised #UD / #GP / #SX in the host (not delivered: no host IDT)
    delivered,      ///< an event went through the IDT of the context that runs (guest or host)
    no_exit,        ///< a guest event not intercepted: the guest handled it
    held_pending,   ///< blocked (GIF = 0, masked, shadow, SMM); kept for later
    discarded,      ///< dropped (internal SMI with GIF = 0, APM 15.17.1)
    smm_entered,    ///< SMI taken (in the guest's context when not intercepted, APM 15.22.3 (a))
    init_taken,     ///< INIT taken (the model does not reset the registers)
    nothing,        ///< poll() found nothing deliverable; vmexit() outside a guest
};
[[nodiscard]] const char* svm_outcome_name(SvmOutcome o) noexcept;

/// What happened to an EVENTINJ event at VMRUN (APM 15.20).
enum class Injection : std::uint8_t { none, delivered };

/// How an event delivered to the guest reached its handler (APM 8.9).
enum class Delivery : std::uint8_t {
    none,          ///< nothing went through the guest's IDT
    through_idt,   ///< frame pushed on the guest's stack, CS:RIP from the IDT gate, RFLAGS updated
    not_modelled,  ///< the IDT, GDT, stack or guest page tables are not backed memory, or the
                   ///< delivery needs what the model does not follow (task gate, stack switch,
                   ///< IST, real or virtual-8086 mode): the registers are left as they were
};

struct SvmResult {
    SvmOutcome outcome = SvmOutcome::completed;
    std::uint64_t exit_code = 0;  ///< SvmOutcome::vmexit
    std::uint64_t exit_info_1 = 0;
    std::uint64_t exit_info_2 = 0;
    std::uint64_t exit_int_info = 0;  ///< low 32 bits EXITINTINFO, high 32 the error code
    std::uint8_t vector = 0;          ///< exception / delivered event vector
    std::uint32_t error_code = 0;     ///< with exception #GP/#SX
    bool in_guest = false;            ///< for delivered: the guest's IDT (true) or the host's
    Injection injection = Injection::none;  ///< entered_guest: EVENTINJ outcome
    Delivery delivery = Delivery::none;     ///< delivered / entered_guest: how the event reached the guest
    const checks::Check* failed_check = nullptr;  ///< catalogue entry of a gate or VMEXIT_INVALID
    const char* note = "";                        ///< static string
};


/// TLB effects of VMRUN and INVLPGA, recorded (APM 15.16).
struct TlbRecord {
    std::uint32_t asid = 0;           ///< ASID in use: 0 = host
    std::uint8_t last_tlb_ctl = 0;    ///< TLB_CONTROL of the last successful VMRUN
    std::uint32_t flush_all = 0;      ///< counts of TLB_CONTROL 1 / 3 / 7 / reserved encodings
    std::uint32_t flush_asid = 0;
    std::uint32_t flush_asid_nonglobal = 0;
    std::uint32_t reserved_ctl = 0;   ///< reserved values: no flush, no failure (APM names no exit)
    std::uint32_t invlpga_count = 0;
    std::uint64_t invlpga_va = 0;
    std::uint32_t invlpga_asid = 0;
};

/// Where VMRUN keeps the host state: HSAVE + kHsaveStateOffset, in the VMCB
/// state-save-area format (docs/cpu.md).
inline constexpr std::uint64_t kHsaveStateOffset = 0x400;
/// Length of VMRUN, VMLOAD, VMSAVE, STGI, CLGI, INVLPGA, SKINIT (0F 01 D8..DF).
inline constexpr std::uint8_t kSvmInsnLength = 3;

/// A VMCB the host software keeps in its own memory rather than in the
/// guest-physical memory the processor models, with the MSR and I/O
/// permission maps it uses: how a hypervisor modelled on this processor (the
/// nested engine's L0) runs its own VMCBs. The processor uses `vmcb` as its
/// copy of the VMCB while the guest runs (the host must not touch a running
/// guest's VMCB, APM 15.5.1) and writes the #VMEXIT into it; the host state is
/// kept in the processor's internal save area.
struct HeldVmcb {
    arch::Vmcb* vmcb = nullptr;
    std::span<const std::uint8_t> msrpm;  ///< kMsrpmSize bytes
    std::span<const std::uint8_t> iopm;   ///< kIopmSize bytes
};

class SvmCpu {
public:
    SvmCpu(const checks::CpuModel& cpu, const checks::Profile& profile, GuestMemory& memory) noexcept;

    /// A 64-bit long-mode host at CPL 0 with EFER.SVME set (flat segments,
    /// 4-level paging at CR3 = 0x1000): a starting point for tests and the oracle.
    [[nodiscard]] static Registers long_mode_host() noexcept;

    // --- Instructions the host executes (in_guest() == false) ---
    [[nodiscard]] SvmResult vmrun() noexcept;   ///< rAX = VMCB physical address
    /// VMRUN of a host-held VMCB: the same gates, checks, loads and
    /// injection as vmrun(); rAX is not used.
    [[nodiscard]] SvmResult vmrun(const HeldVmcb& held) noexcept { return vmrun(*held.vmcb, held.msrpm, held.iopm); }
    /// The same, the held VMCB's parts given one by one: they arrive in
    /// registers and are stored once (a HeldVmcb built on the caller's stack
    /// and copied here with wide loads stalled on store forwarding).
    [[nodiscard]] SvmResult vmrun(arch::Vmcb& vmcb, std::span<const std::uint8_t> msrpm,
                                  std::span<const std::uint8_t> iopm) noexcept;
    /// The VMLOAD/VMSAVE state (APM 15.5.2) moved between the registers and a
    /// host-held VMCB, as a hypervisor's VMLOAD/VMSAVE of its own page around
    /// VMRUN (KVM's __svm_vcpu_run) does; host only.
    void vmload_state_from(const arch::Vmcb& v) noexcept;
    void vmsave_state_to(arch::Vmcb& v) const noexcept;
    [[nodiscard]] SvmResult vmload() noexcept;  ///< rAX = VMCB physical address
    [[nodiscard]] SvmResult vmsave() noexcept;
    [[nodiscard]] SvmResult stgi() noexcept;
    [[nodiscard]] SvmResult clgi() noexcept;
    [[nodiscard]] SvmResult invlpga(std::uint32_t ecx) noexcept;  ///< rAX = VA, ECX = ASID
    [[nodiscard]] SvmResult skinit() noexcept;
    /// WRMSR of the SVM MSRs (EFER, VM_CR, VM_HSAVE_PA, TSC_RATIO, PAT),
    /// DebugCtl and TSC_AUX with their #GP rules (APM 15.30, 13.1.1.6, cpu/msr_rules.hpp);
    /// other MSRs are accepted and ignored.
    [[nodiscard]] SvmResult wrmsr(std::uint32_t msr, std::uint64_t value) noexcept;

    // --- While the guest runs ---
    /// A guest instruction or exception: SVM-instruction gates, then
    /// events.hpp's decide() on the VMCB; an exit goes through vmexit().
    [[nodiscard]] SvmResult guest_event(const Event& e) noexcept;
    /// #VMEXIT (APM 15.6). exit_int_info: low 32 bits EXITINTINFO, high 32 its
    /// error code. next_rip is written to nRIP when the CPU has NRIPS.
    [[nodiscard]] SvmResult vmexit(std::uint64_t code, std::uint64_t info1, std::uint64_t info2,
                                   std::uint64_t exit_int_info, std::uint64_t next_rip = 0) noexcept;
    /// #VMEXIT with a decide() result (code, EXITINFO1/2, nRIP).
    [[nodiscard]] SvmResult vmexit(const ExitInfo& x, std::uint64_t exit_int_info = 0) noexcept {
        return vmexit(x.code, x.info1, x.info2, exit_int_info, x.next_rip);
    }

    /// Writes the running guest's registers into its VMCB's state-save area
    /// as the next #VMEXIT would, without exiting. What a VMCB holds while its
    /// guest runs is undefined (the processor may cache it, APM 15.5.1), so
    /// the model may do this at any time: a host-held VMCB's observers (the
    /// nested engine's traces and invariants) then read the guest's current state.
    void flush_guest_state() noexcept;

    // --- Signals and event gating (APM 15.17, 15.21, 15.22) ---
    /// Raises a signal; it is evaluated at once (poll()). `vector` for INTR.
    [[nodiscard]] SvmResult signal(Signal s, std::uint8_t vector = 0x20) noexcept;
    /// Evaluates pending signals and the virtual interrupt/NMI in priority
    /// order (SMI, INIT, NMI, INTR, vNMI, V_IRQ); returns the first action,
    /// or held_pending / nothing.
    [[nodiscard]] SvmResult poll() noexcept;

    // --- State ---
    [[nodiscard]] const Registers& regs() const noexcept { return regs_; }
    [[nodiscard]] Registers& regs() noexcept { return regs_; }
    [[nodiscard]] const SvmMsrs& msrs() const noexcept { return msrs_; }
    [[nodiscard]] SvmMsrs& msrs() noexcept { return msrs_; }
    [[nodiscard]] bool gif() const noexcept { return gif_; }
    void set_gif(bool g) noexcept { gif_ = g; }
    [[nodiscard]] bool in_guest() const noexcept { return in_guest_; }
    [[nodiscard]] bool smm() const noexcept { return smm_; }
    void set_smm(bool s) noexcept { smm_ = s; }
    [[nodiscard]] std::uint64_t vmcb_pa() const noexcept { return vmcb_pa_; }
    /// The processor's internal copy of the current VMCB (controls and the
    /// int_ctl / int_state / EVENTINJ it updates while the guest runs).
    [[nodiscard]] const arch::Vmcb& vmcb() const noexcept { return cur(); }
    /// Points a host-held VMCB run at `held` (same contents, new place: the
    /// host copied itself); no effect when the VMCB was read from memory.
    void rehold(const HeldVmcb& held) noexcept {
        if (held_.vmcb != nullptr) held_ = held;
    }
    /// True while the running (or last) VMCB is host-held.
    [[nodiscard]] bool held() const noexcept { return held_.vmcb != nullptr; }
    [[nodiscard]] const TlbRecord& tlb() const noexcept { return tlb_; }
    [[nodiscard]] const std::array<std::uint64_t, 4>& pdpes() const noexcept { return pdpes_; }
    [[nodiscard]] std::uint32_t pending() const noexcept { return pending_; }  ///< bit per Signal
    [[nodiscard]] bool pending_host_db() const noexcept { return pending_db_; }
    /// The TSC as the running context reads it (RDTSC/RDTSCP): the host TSC;
    /// in a guest, scaled by the TSC_RATIO MSR (with Feature::tsc_scale,
    /// APM 15.30.5) plus the VMCB's TSC_OFFSET (APM 15.30.4).
    [[nodiscard]] std::uint64_t guest_tsc() const noexcept;
    [[nodiscard]] GuestMemory& memory() noexcept { return *mem_; }
    [[nodiscard]] const checks::CpuModel& cpu_model() const noexcept { return *cpu_; }
    [[nodiscard]] const checks::Profile& profile() const noexcept { return *profile_; }
    /// The mode the running guest's nested walks follow: the host's EFER.NXE
    /// and CR4.SMEP kept at VMRUN, GMET from the VMCB (cpu/npt.hpp).
    [[nodiscard]] NestedPagingMode nested_mode() const noexcept;
    /// The host-save area as this CPU keeps it (memory at VM_HSAVE_PA, or the
    /// internal page when the profile does not use HSAVE).
    [[nodiscard]] bool read_hsave(arch::Vmcb& out) const noexcept;

    // --- Events on their way to the guest (svm_cpu_delivery.cpp) ---
    /// An event on its way to the guest: EVENTINJ's TYPE encoding (0 INTR,
    /// 2 NMI, 3 exception, 4 software interrupt).
    struct GuestEvent {
        std::uint8_t vector = 0;
        std::uint8_t type = 3;
        bool has_error = false;
        std::uint32_t error_code = 0;
        std::uint64_t cr2 = 0;  ///< #PF
        bool software = false;  ///< INT3/INTn: trap, gate DPL checked
    };
    /// What a guest memory access or a delivery step ran into.
    struct GuestFault {
        enum class Kind : std::uint8_t { none, exception, npf, not_modelled } kind = Kind::none;
        GuestEvent exception{};               ///< Kind::exception
        std::uint64_t info1 = 0, info2 = 0;   ///< Kind::npf
        const char* note = "";
    };

private:
    // VMRUN steps.
    [[nodiscard]] bool vmrun_instruction_gates(SvmResult& r) const noexcept;
    [[nodiscard]] bool read_vmcb(SvmResult& r) noexcept;
    void save_host_state() noexcept;
    [[nodiscard]] const checks::Check* check_guest_state() const noexcept;
    void load_guest_state() noexcept;
    void load_pdpes() noexcept;
    void apply_tlb_control() noexcept;
    [[nodiscard]] Injection inject_event() noexcept;
    [[nodiscard]] SvmResult vmexit_invalid(const checks::Check* failed) noexcept;

    // #VMEXIT steps.
    void save_guest_state() noexcept;
    /// The registers VMRUN loads, into the VMCB's save area (segments, EFER,
    /// CRs, RFLAGS, RIP, RSP, RAX, DR6/7, CPL); CR2 only for a real #VMEXIT.
    void store_loaded_registers(bool with_cr2) noexcept;
    /// The VMCB in memory at vmcb_pa_, written field by field: what the
    /// write-back templates store into when the VMCB is not host-held.
    struct MemoryVmcb {
        SvmCpu& cpu;
        void set(arch::FieldId f, std::uint64_t v) const noexcept { cpu.vmcb_store(f, v); }
        void set_segment(arch::Seg s, const arch::Segment& v) const noexcept { cpu.vmcb_store_segment(s, v); }
    };
    template <class V>
    void store_loaded_registers_to(V& v, bool with_cr2) const noexcept;
    template <class V>
    void write_exit_fields_to(V& v, std::uint64_t code, std::uint64_t info1, std::uint64_t info2,
                              std::uint64_t exit_int_info, std::uint64_t next_rip) const noexcept;
    void write_exit_fields(std::uint64_t code, std::uint64_t info1, std::uint64_t info2, std::uint64_t exit_int_info,
                           std::uint64_t next_rip) noexcept;
    void clear_guest_controls() noexcept;
    void load_host_state() noexcept;
    [[nodiscard]] Registers saved_host() const noexcept;
    /// Steps 5-6 from the saved host `h`, with the bits #VMEXIT forces.
    void restore_host(const Registers& h) noexcept;
    /// The host's EFER and CR4 kept at VMRUN (NXE decides the nested tables'
    /// NX bit; NXE and SMEP their EXITINFO1.ID).
    [[nodiscard]] std::uint64_t host_efer() const noexcept;
    [[nodiscard]] std::uint64_t host_cr4() const noexcept;

    // Gates of the other SVM instructions.
    using Insn = SvmInsn;
    [[nodiscard]] bool svm_gates(Insn insn, const Registers& r, SvmResult& out) const noexcept;
    [[nodiscard]] checks::HostState host_state_for_gates(const Registers& r) const noexcept;

    // Guest events.
    [[nodiscard]] SvmResult guest_exception(std::uint8_t vector, std::uint32_t error_code, std::uint64_t cr2,
                                            const char* note) noexcept;
    [[nodiscard]] SvmResult guest_svm_instruction(const Event& e) noexcept;
    /// guest_event without the single-step trap that follows a completed instruction.
    [[nodiscard]] SvmResult execute(const Event& e) noexcept;
    /// What signals.hpp's rule reads for `s`, from this processor's state.
    [[nodiscard]] SignalState signal_state(Signal s) const noexcept;
    /// `s` taken by the running context (consumed by the caller).
    [[nodiscard]] SvmResult take_signal(Signal s) noexcept;
    [[nodiscard]] SvmResult guest_vmload_vmsave(const Event& e, bool save) noexcept;
    void apply_guest_effect(const Event& e) noexcept;
    /// STI (`set`) or CLI that interrupt_flag.hpp's rule lets through: IF or VIF,
    /// and STI's interrupt shadow.
    void set_interrupt_flag(bool set) noexcept;
    [[nodiscard]] ExitFeatures exit_features() const noexcept;
    [[nodiscard]] Bitmap msrpm() const noexcept;
    [[nodiscard]] Bitmap iopm() const noexcept;

    // Delivery through the guest's IDT and the guest's own paging
    // (svm_cpu_delivery.cpp, APM 5.3, 8.2.9, 8.9, 15.20, 15.25).
    [[nodiscard]] GuestFault guest_translate(std::uint64_t la, Access a, std::uint64_t& gpa) noexcept;
    /// An entry of the guest's own page tables: its value, where it is (the
    /// host-physical address, through the nested tables with nested paging)
    /// and its width (4 bytes in legacy 2-level paging, else 8).
    struct TableEntry {
        std::uint64_t value = 0;
        std::uint64_t hpa = 0;
        unsigned width = 8;
    };
    [[nodiscard]] GuestFault guest_table_read(std::uint64_t gpa, unsigned width, TableEntry& out) noexcept;
    /// Writes back the A bit (and D with `dirty`) of an entry the walk used (APM 5.4.2).
    void mark_used(const TableEntry& e, bool dirty) noexcept;
    [[nodiscard]] GuestFault nested_final(std::uint64_t gpa, Access a, std::uint64_t& hpa) noexcept;
    [[nodiscard]] GuestFault guest_access(std::uint64_t la, std::span<std::uint8_t> bytes, bool write) noexcept;
    /// The GDT descriptor of a non-null selector (#GP(selector) beyond the
    /// limit, `ext` the error code's EXT bit; an LDT selector is not modelled).
    [[nodiscard]] GuestFault gdt_descriptor(std::uint16_t selector, std::uint32_t ext, std::uint64_t& desc) noexcept;
    [[nodiscard]] GuestFault deliver_through_idt(const GuestEvent& ev) noexcept;
    /// A guest instruction's fault `f` (not none), its RIP still at the
    /// instruction: the exception through the intercepts and the guest's IDT
    /// (with `note`), the #NPF exit, or what the model does not follow.
    [[nodiscard]] SvmResult instruction_fault(const GuestFault& f, const char* note) noexcept;
    [[nodiscard]] SvmResult deliver_to_guest(GuestEvent ev, bool check_intercept, std::uint64_t during,
                                             const char* note) noexcept;
    [[nodiscard]] SvmResult deliver_injected() noexcept;
    [[nodiscard]] SvmResult guest_linear_access(const Event& e) noexcept;

    // IRET in the guest, not intercepted (svm_cpu_iret.cpp, APM Vol.3 IRET):
    // the inverse of deliver_through_idt at the same privilege level.
    /// The registers IRET loads, computed before any is written.
    struct IretTarget {
        std::uint64_t rip = 0, rsp = 0, rflags = 0;
        arch::Segment cs{}, ss{};
    };
    [[nodiscard]] SvmResult guest_iret() noexcept;
    /// Pops the frame and checks it; the registers are not touched.
    [[nodiscard]] GuestFault iret_target(IretTarget& out) noexcept;
    /// 64-bit mode: the SS selector IRETQ pops, as the same-privilege return loads it.
    [[nodiscard]] GuestFault iret_stack_segment(std::uint16_t selector, arch::Segment& ss) noexcept;
    /// RFLAGS after IRET pops `popped` (APM Vol.3 IRET: what the CPL and IOPL let it write).
    [[nodiscard]] std::uint64_t iret_rflags(std::uint64_t popped) const noexcept;
    [[nodiscard]] std::uint64_t exit_nrip(std::uint64_t decided) const noexcept;

    // Helpers.
    /// The VMCB the processor runs: its copy of a VMCB read from memory, or
    /// the host-held one.
    [[nodiscard]] arch::Vmcb& cur() noexcept { return held_.vmcb != nullptr ? *held_.vmcb : vmcb_; }
    [[nodiscard]] const arch::Vmcb& cur() const noexcept { return held_.vmcb != nullptr ? *held_.vmcb : vmcb_; }
    /// The host state goes to memory at VM_HSAVE_PA (the profile's
    /// hsave_used), except for a host-held VMCB: then the internal page.
    [[nodiscard]] bool hsave_in_memory() const noexcept { return profile_->hsave_used && held_.vmcb == nullptr; }
    /// The VMRUN from its checks on, writing its result into `r` in place
    /// (the caller returns it: a result copied right after its narrow
    /// fields were stored stalls store forwarding on every entry).
    void enter_guest(SvmResult& r) noexcept;
    [[nodiscard]] bool np_enabled() const noexcept;
    [[nodiscard]] bool interrupt_shadow() const noexcept;
    [[nodiscard]] std::uint64_t int_ctl() const noexcept;
    void set_int_ctl(std::uint64_t v) noexcept;
    void hsave_store(arch::FieldId f, std::uint64_t v) noexcept;
    void hsave_store_segment(arch::Seg s, const arch::Segment& v) noexcept;
    [[nodiscard]] std::uint64_t hsave_load(arch::FieldId f) const noexcept;
    void vmcb_store(arch::FieldId f, std::uint64_t v) noexcept;
    void vmcb_store_segment(arch::Seg s, const arch::Segment& v) noexcept;
    [[nodiscard]] std::uint64_t exit_code_form(std::uint64_t code) const noexcept;
    /// LBR virtualization in the VMCB being run (misc_ctl2 bit 0) on a CPU
    /// that has it (CPUID Fn8000_000A_EDX[1]); without the feature the bit is ignored.
    [[nodiscard]] bool lbr_virtualization() const noexcept;

    // The page-aligned pages first: no padding between them and the rest.
    alignas(arch::kVmcbAlign) arch::Vmcb vmcb_{};        ///< internal copy of the VMCB (read once per VMRUN)
    alignas(arch::kVmcbAlign) arch::Vmcb hsave_page_{};  ///< host state kept internally (profile without HSAVE use)

    const checks::CpuModel* cpu_;
    const checks::Profile* profile_;
    GuestMemory* mem_;

    Registers regs_{};
    SvmMsrs msrs_{};
    HeldVmcb held_{};          ///< the host-held VMCB being run, if any
    Registers held_host_{};    ///< the host state of a host-held VMCB's VMRUN (RIP past VMRUN)
    TlbRecord tlb_{};
    std::array<std::uint64_t, 4> pdpes_{};
    std::uint64_t vmcb_pa_ = 0;
    std::uint64_t hsave_pa_ = 0;   ///< VM_HSAVE_PA latched at VMRUN
    std::uint64_t injected_ = 0;   ///< the EVENTINJ delivered by the last VMRUN (error code in 63:32)
    std::uint32_t pending_ = 0;
    std::uint8_t intr_vector_ = 0;
    bool gif_ = true;              ///< reset value
    bool in_guest_ = false;
    bool smm_ = false;
    bool host_if_ = false;         ///< host RFLAGS.IF at VMRUN (V_INTR_MASKING, APM 15.21.1)
    bool pending_db_ = false;      ///< host RFLAGS.TF at VMRUN: #DB after the #VMEXIT (APM 15.5.1)
    std::uint8_t insn_len_ = 0;    ///< length of the guest instruction being executed (0: none)
};

}  // namespace nsvm::cpu
