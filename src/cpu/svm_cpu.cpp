// VMRUN and #VMEXIT of the architectural SVM processor (APM 15.5.1, 15.6).
// Step names follow the manual; see svm_cpu.hpp for the sequence and
// docs/cpu.md for the host-save layout.
#include "nsvm/cpu/svm_cpu.hpp"
#include "nsvm/cpu/vnmi.hpp"

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/checks/evaluate.hpp"

namespace nsvm::cpu {
namespace ec = arch::exit_code;
using arch::FieldId;
using arch::Seg;
using checks::Feature;

namespace {
__extension__ typedef unsigned __int128 u128;  // the 64x40-bit TSC product

/// VMRUN's operand: rAX truncated to the effective address size (APM VMRUN).
std::uint64_t operand_address(const Registers& r) noexcept {
    const bool long_mode = (r.efer & arch::efer::LMA) != 0 && (r.cs.attrib & arch::seg_attr::L) != 0;
    if (long_mode) return r.rax;
    return (r.cs.attrib & arch::seg_attr::DB) != 0 ? (r.rax & 0xFFFFFFFFULL) : (r.rax & 0xFFFFULL);
}
}  // namespace

Registers registers_from_save_area(const arch::Vmcb& v) noexcept {
    Registers r;
    r.es = v.segment(Seg::es);
    r.cs = v.segment(Seg::cs);
    r.ss = v.segment(Seg::ss);
    r.ds = v.segment(Seg::ds);
    r.fs = v.segment(Seg::fs);
    r.gs = v.segment(Seg::gs);
    r.gdtr = v.segment(Seg::gdtr);
    r.ldtr = v.segment(Seg::ldtr);
    r.idtr = v.segment(Seg::idtr);
    r.tr = v.segment(Seg::tr);
    r.efer = v.get(FieldId::efer);
    r.cr0 = v.get(FieldId::cr0);
    r.cr2 = v.get(FieldId::cr2);
    r.cr3 = v.get(FieldId::cr3);
    r.cr4 = v.get(FieldId::cr4);
    r.cr8 = 0;
    r.dr6 = v.get(FieldId::dr6);
    r.dr7 = v.get(FieldId::dr7);
    r.rflags = v.get(FieldId::rflags);
    r.rip = v.get(FieldId::rip);
    r.rsp = v.get(FieldId::rsp);
    r.rax = v.get(FieldId::rax);
    r.cpl = static_cast<std::uint8_t>(v.get(FieldId::cpl));
    r.kernel_gs_base = v.get(FieldId::kernel_gs_base);
    r.star = v.get(FieldId::star);
    r.lstar = v.get(FieldId::lstar);
    r.cstar = v.get(FieldId::cstar);
    r.sfmask = v.get(FieldId::sfmask);
    r.sysenter_cs = v.get(FieldId::sysenter_cs);
    r.sysenter_esp = v.get(FieldId::sysenter_esp);
    r.sysenter_eip = v.get(FieldId::sysenter_eip);
    r.pat = v.get(FieldId::g_pat);
    return r;
}

void store_registers(const Registers& r, arch::Vmcb& v) noexcept {
    v.set_segment(Seg::es, r.es);
    v.set_segment(Seg::cs, r.cs);
    v.set_segment(Seg::ss, r.ss);
    v.set_segment(Seg::ds, r.ds);
    v.set_segment(Seg::fs, r.fs);
    v.set_segment(Seg::gs, r.gs);
    v.set_segment(Seg::gdtr, r.gdtr);
    v.set_segment(Seg::ldtr, r.ldtr);
    v.set_segment(Seg::idtr, r.idtr);
    v.set_segment(Seg::tr, r.tr);
    v.set(FieldId::efer, r.efer);
    v.set(FieldId::cr0, r.cr0);
    v.set(FieldId::cr2, r.cr2);
    v.set(FieldId::cr3, r.cr3);
    v.set(FieldId::cr4, r.cr4);
    v.set(FieldId::dr6, r.dr6);
    v.set(FieldId::dr7, r.dr7);
    v.set(FieldId::rflags, r.rflags);
    v.set(FieldId::rip, r.rip);
    v.set(FieldId::rsp, r.rsp);
    v.set(FieldId::rax, r.rax);
    v.set(FieldId::cpl, r.cpl);
    v.set(FieldId::kernel_gs_base, r.kernel_gs_base);
    v.set(FieldId::star, r.star);
    v.set(FieldId::lstar, r.lstar);
    v.set(FieldId::cstar, r.cstar);
    v.set(FieldId::sfmask, r.sfmask);
    v.set(FieldId::sysenter_cs, r.sysenter_cs);
    v.set(FieldId::sysenter_esp, r.sysenter_esp);
    v.set(FieldId::sysenter_eip, r.sysenter_eip);
    v.set(FieldId::g_pat, r.pat);
}

namespace {
/// LbrState's members in arch::kLbrVirtFields' order: the one list of the
/// LBR state every load and store below walks (VMCB, host-save area).
constexpr std::array<std::uint64_t LbrState::*, 5> kLbrRegs = {&LbrState::dbgctl, &LbrState::br_from, &LbrState::br_to,
                                                               &LbrState::last_excp_from, &LbrState::last_excp_to};
static_assert(kLbrRegs.size() == arch::kLbrVirtFields.size() && arch::kLbrVirtFields[0] == FieldId::dbgctl &&
                  arch::kLbrVirtFields[1] == FieldId::br_from && arch::kLbrVirtFields[2] == FieldId::br_to &&
                  arch::kLbrVirtFields[3] == FieldId::last_excp_from && arch::kLbrVirtFields[4] == FieldId::last_excp_to,
              "kLbrRegs follows arch::kLbrVirtFields");

/// The LBR state read field by field with `load(FieldId)`.
template <class Load>
LbrState load_lbr(Load&& load) {
    LbrState l;
    for (std::size_t i = 0; i < kLbrRegs.size(); ++i) l.*kLbrRegs[i] = load(arch::kLbrVirtFields[i]);
    return l;
}
/// The LBR state written field by field with `store(FieldId, value)`.
template <class Store>
void store_lbr_with(const LbrState& l, Store&& store) {
    for (std::size_t i = 0; i < kLbrRegs.size(); ++i) store(arch::kLbrVirtFields[i], l.*kLbrRegs[i]);
}
}  // namespace

LbrState lbr_from_vmcb(const arch::Vmcb& v) noexcept {
    return load_lbr([&](FieldId f) { return v.get(f); });
}

void store_lbr(const LbrState& l, arch::Vmcb& v) noexcept {
    store_lbr_with(l, [&](FieldId f, std::uint64_t x) { v.set(f, x); });
}

const char* svm_outcome_name(SvmOutcome o) noexcept {
    switch (o) {
        case SvmOutcome::completed: return "completed";
        case SvmOutcome::entered_guest: return "entered_guest";
        case SvmOutcome::vmexit: return "vmexit";
        case SvmOutcome::exception: return "exception";
        case SvmOutcome::delivered: return "delivered";
        case SvmOutcome::no_exit: return "no_exit";
        case SvmOutcome::held_pending: return "held_pending";
        case SvmOutcome::discarded: return "discarded";
        case SvmOutcome::smm_entered: return "smm_entered";
        case SvmOutcome::init_taken: return "init_taken";
        case SvmOutcome::nothing: return "nothing";
    }
    return "?";
}

SvmCpu::SvmCpu(const checks::CpuModel& cpu, const checks::Profile& profile, GuestMemory& memory) noexcept
    : cpu_(&cpu), profile_(&profile), mem_(&memory) {}

Registers SvmCpu::long_mode_host() noexcept {
    using namespace arch;
    Registers r;
    r.efer = efer::SCE | efer::LME | efer::LMA | efer::NXE | efer::SVME;
    r.cr0 = cr0::PE | cr0::MP | cr0::ET | cr0::NE | cr0::WP | cr0::AM | cr0::PG;  // 0x80050033
    r.cr3 = 0x1000;
    r.cr4 = cr4::PAE | cr4::PGE | cr4::OSFXSR | cr4::OSXMMEXCPT;
    r.rflags = rflags::FIXED1;
    r.rip = 0x100000;
    r.rsp = 0x8000;
    r.cs = {0x10, 0xA9B, 0xFFFFFFFF, 0};  // 64-bit code: L, P, S, type B
    r.ss = {0x18, 0xC93, 0xFFFFFFFF, 0};
    r.ds = r.es = r.ss;
    r.fs = r.gs = {0, 0, 0, 0};
    r.gdtr = {0, 0, 0x37, 0x5000};
    r.idtr = {0, 0, 0xFFF, 0x6000};
    r.tr = {0x28, 0x08B, 0x67, 0x7000};   // busy 64-bit TSS
    r.ldtr = {0, 0, 0, 0};
    return r;
}

std::uint64_t guest_tsc_of(std::uint64_t host_tsc, std::uint64_t ratio, std::uint64_t offset) noexcept {
    const auto scaled = static_cast<std::uint64_t>((static_cast<u128>(host_tsc) * ratio) >> 32);
    return scaled + offset;
}

std::uint64_t SvmCpu::guest_tsc() const noexcept {
    if (!in_guest_) return msrs_.tsc;
    // APM 15.30.5: the ratio applies only while the guest runs, and only on
    // a processor with TSC scaling (without it the MSR does not exist).
    const std::uint64_t ratio = cpu_->has(Feature::tsc_scale) ? msrs_.tsc_ratio : kTscRatioOne;
    return guest_tsc_of(msrs_.tsc, ratio, cur().get(FieldId::tsc_offset));
}

// ---------------------------------------------------------------------------
// Helpers: field-by-field little-endian accesses of the VMCB and HSAVE pages.

void SvmCpu::vmcb_store(FieldId f, std::uint64_t v) noexcept {
    if (held_.vmcb != nullptr) {
        held_.vmcb->set(f, v);
        return;
    }
    const auto& fi = arch::info(f);
    std::array<std::uint8_t, 8> b{};
    arch::store_le(b, 0, fi.width, v);
    (void)mem_->write(vmcb_pa_ + fi.offset, std::span<const std::uint8_t>(b.data(), fi.width));
}
void SvmCpu::vmcb_store_segment(Seg s, const arch::Segment& v) noexcept {
    if (held_.vmcb != nullptr) {
        held_.vmcb->set_segment(s, v);
        return;
    }
    std::array<std::uint8_t, 16> b{};
    arch::store_le(b, 0, 2, v.selector);
    arch::store_le(b, 2, 2, v.attrib);
    arch::store_le(b, 4, 4, v.limit);
    arch::store_le(b, 8, 8, v.base);
    (void)mem_->write(vmcb_pa_ + arch::kSaveAreaOffset + 16 * static_cast<std::uint64_t>(s), b);
}

void SvmCpu::hsave_store(FieldId f, std::uint64_t v) noexcept {
    if (!hsave_in_memory()) {
        hsave_page_.set(f, v);
        return;
    }
    const auto& fi = arch::info(f);
    std::array<std::uint8_t, 8> b{};
    arch::store_le(b, 0, fi.width, v);
    // Field offsets are absolute VMCB offsets, so the save-area format lands
    // at HSAVE + 0x400 (kHsaveStateOffset).
    (void)mem_->write(hsave_pa_ + fi.offset, std::span<const std::uint8_t>(b.data(), fi.width));
}
void SvmCpu::hsave_store_segment(Seg s, const arch::Segment& v) noexcept {
    if (!hsave_in_memory()) {
        hsave_page_.set_segment(s, v);
        return;
    }
    std::array<std::uint8_t, 16> b{};
    arch::store_le(b, 0, 2, v.selector);
    arch::store_le(b, 2, 2, v.attrib);
    arch::store_le(b, 4, 4, v.limit);
    arch::store_le(b, 8, 8, v.base);
    (void)mem_->write(hsave_pa_ + kHsaveStateOffset + 16 * static_cast<std::uint64_t>(s), b);
}
std::uint64_t SvmCpu::hsave_load(FieldId f) const noexcept {
    if (!hsave_in_memory()) return hsave_page_.get(f);
    const auto& fi = arch::info(f);
    std::array<std::uint8_t, 8> b{};
    (void)mem_->read(hsave_pa_ + fi.offset, std::span<std::uint8_t>(b.data(), fi.width));
    return arch::load_le(b, 0, fi.width);
}
std::uint64_t SvmCpu::host_efer() const noexcept {
    return held_.vmcb != nullptr ? held_host_.efer : hsave_load(FieldId::efer);
}
std::uint64_t SvmCpu::host_cr4() const noexcept {
    return held_.vmcb != nullptr ? held_host_.cr4 : hsave_load(FieldId::cr4);
}
NestedPagingMode SvmCpu::nested_mode() const noexcept {
    return nested_paging_mode(*cpu_, cur().get(FieldId::misc_ctl), host_efer(), host_cr4());
}

bool SvmCpu::read_hsave(arch::Vmcb& out) const noexcept {
    if (held_.vmcb != nullptr) {
        out = arch::Vmcb{};
        store_registers(held_host_, out);
        return true;
    }
    if (!hsave_in_memory()) {
        out = hsave_page_;
        return true;
    }
    return mem_->peek_vmcb(page_of(msrs_.vm_hsave_pa), out);
}

std::uint64_t SvmCpu::int_ctl() const noexcept { return cur().get(FieldId::int_ctl); }
void SvmCpu::set_int_ctl(std::uint64_t v) noexcept { cur().set(FieldId::int_ctl, v); }
bool SvmCpu::interrupt_shadow() const noexcept {
    return (cur().get(FieldId::int_state) & arch::int_state::INTERRUPT_SHADOW) != 0;
}
bool SvmCpu::np_enabled() const noexcept {
    // APM 15.25.3: NP_ENABLE on a CPU without nested paging has no effect,
    // unless the profile models an emulator that honours it anyway.
    if ((cur().get(FieldId::misc_ctl) & arch::misc_ctl::NP_ENABLE) == 0) return false;
    return cpu_->has(Feature::npt) || profile_->np_without_feature == checks::NpWithoutFeature::honoured;
}
bool SvmCpu::lbr_virtualization() const noexcept {
    return cpu_->has(Feature::lbrv) && (cur().get(FieldId::misc_ctl2) & arch::misc_ctl2::LBR_VIRT) != 0;
}
std::uint64_t SvmCpu::exit_code_form(std::uint64_t code) const noexcept {
    return (profile_->exit_code_32bit && code == ec::INVALID) ? ec::INVALID_32 : code;
}

// ---------------------------------------------------------------------------
// Instruction gates, from the checks catalogue (one table, no copy here).

checks::HostState SvmCpu::host_state_for_gates(const Registers& r) const noexcept {
    checks::HostState h;
    h.efer = r.efer;
    h.cr0 = r.cr0;
    h.cr4 = r.cr4;
    h.rflags = r.rflags;
    h.cpl = r.cpl;
    h.rax = operand_address(r);
    h.address_size = 64;  // rAX already truncated to the effective address size
    h.hwcr = msrs_.hwcr;
    h.vm_hsave_pa = msrs_.vm_hsave_pa;
    h.smm = smm_;
    return h;
}

bool SvmCpu::svm_gates(Insn insn, const Registers& r, SvmResult& out) const noexcept {
    const checks::Check* c = svm_instruction_gate(insn, host_state_for_gates(r), *cpu_, *profile_,
                                                  in_guest_ ? GateContext::guest : GateContext::host);
    if (c == nullptr) return true;
    const GateFault f = gate_fault(*c);
    out.outcome = SvmOutcome::exception;
    out.failed_check = c;
    out.vector = f.vector;
    out.note = f.note;
    return false;
}

bool SvmCpu::vmrun_instruction_gates(SvmResult& r) const noexcept {
    if (in_guest_) {
        r.outcome = SvmOutcome::nothing;
        r.note = "a guest runs: its VMRUN is a guest_event (intercepted by C13)";
        return false;
    }
    if (!svm_gates(Insn::vmrun, regs_, r)) return false;
    // Model choice: the host-save area must be backed memory; the APM only
    // requires software to set VM_HSAVE_PA (15.30.4). An unbacked one is #GP(0).
    if (hsave_in_memory() && !mem_->backed(page_of(msrs_.vm_hsave_pa))) {
        r.outcome = SvmOutcome::exception;
        r.vector = 13;
        r.note = "#GP(0): the host-save area at VM_HSAVE_PA is not backed memory (model)";
        return false;
    }
    return true;
}

// ---------------------------------------------------------------------------
// VMRUN (APM 15.5.1)

bool SvmCpu::read_vmcb(SvmResult& r) noexcept {
    const std::uint64_t pa = operand_address(regs_);
    // One read of the whole page: nothing the host changes later can alter
    // what was checked. An unbacked VMCB faults (model; KVM: #GP on map failure).
    if (!mem_->read_vmcb(pa, vmcb_)) {
        r.outcome = SvmOutcome::exception;
        r.vector = 13;
        r.note = "#GP(0): the VMCB page is not backed memory (model)";
        return false;
    }
    vmcb_pa_ = pa;
    return true;
}

void SvmCpu::save_host_state() noexcept {
    // APM 15.5.1 step 1, at least: CS.SEL, NEXT_RIP, RFLAGS, RAX, SS.SEL, RSP,
    // CR0, CR3, CR4, EFER, IDTR, GDTR, ES.SEL, DS.SEL. The model saves the
    // whole segment (hidden parts too), DR6/DR7 (qemu restores them) and PAT
    // (the guest's is G_PAT under nested paging). Layout: docs/cpu.md.
    hsave_pa_ = page_of(msrs_.vm_hsave_pa);
    // APM 15.21.1: with V_INTR_MASKING the host's IF, kept here, masks
    // physical interrupts while the guest runs.
    host_if_ = (regs_.rflags & arch::rflags::IF) != 0;
    if (held_.vmcb != nullptr) {
        held_host_ = regs_;
        held_host_.rip += kSvmInsnLength;  // NEXT_RIP
        return;
    }
    hsave_store_segment(Seg::es, regs_.es);
    hsave_store_segment(Seg::cs, regs_.cs);
    hsave_store_segment(Seg::ss, regs_.ss);
    hsave_store_segment(Seg::ds, regs_.ds);
    hsave_store_segment(Seg::gdtr, regs_.gdtr);
    hsave_store_segment(Seg::idtr, regs_.idtr);
    hsave_store(FieldId::efer, regs_.efer);
    hsave_store(FieldId::cr0, regs_.cr0);
    hsave_store(FieldId::cr3, regs_.cr3);
    hsave_store(FieldId::cr4, regs_.cr4);
    hsave_store(FieldId::rflags, regs_.rflags);
    hsave_store(FieldId::rip, regs_.rip + kSvmInsnLength);  // NEXT_RIP: #VMEXIT returns past VMRUN
    hsave_store(FieldId::rsp, regs_.rsp);
    hsave_store(FieldId::rax, regs_.rax);
    hsave_store(FieldId::dr7, regs_.dr7);
    hsave_store(FieldId::dr6, regs_.dr6);
    hsave_store(FieldId::cpl, regs_.cpl);
    hsave_store(FieldId::g_pat, regs_.pat);
    // APM 15.23: with LBR virtualization the host's DebugCtl and LBRs are
    // switched with the guest's; the host's wait in the host-save area.
    if (lbr_virtualization()) store_lbr_with(regs_.lbr, [&](FieldId f, std::uint64_t x) { hsave_store(f, x); });
}

const checks::Check* SvmCpu::check_guest_state() const noexcept {
    // The catalogue's control, save, event and memory (PDPE) stages, on the
    // VMCB as read and BEFORE any guest state is loaded: a failure leaves
    // nothing half-loaded (the opposite of QEMU's interleaving).
    const checks::HostState h = host_state_for_gates(regs_);
    const checks::Context ctx{cur(), *cpu_, *profile_, &h, mem_};
    return checks::first_failure(ctx, checks::Stage::control, checks::Stage::memory);
}

void SvmCpu::load_guest_state() noexcept {
    using namespace arch;
    // APM 15.5.1 step 2. Segment bases are canonicalized when loaded; the
    // value in the VMCB stays as it was unless the profile models an
    // emulator that writes the canonical form back (APM 15.5.1, canonicalization).
    auto seg = [&](Seg s) {
        Segment v = cur().segment(s);
        if (profile_->canonical_writeback) v.base = canonicalize(v.base, cpu_->va_width);
        return v;
    };
    regs_.es = seg(Seg::es);
    regs_.cs = seg(Seg::cs);
    regs_.ss = seg(Seg::ss);
    regs_.ds = seg(Seg::ds);
    // GDTR and IDTR too: QEMU's svm_load_seg and Bochs'
    // SvmEnterLoadCheckGuestState canonicalize their bases as well
    // (docs/peer-bugs.md, segment bases).
    regs_.gdtr = seg(Seg::gdtr);
    regs_.idtr = seg(Seg::idtr);
    regs_.efer = cur().get(FieldId::efer);
    // APM 3.1.1: CR0.ET is read-only 1 (QEMU and Bochs force it too).
    regs_.cr0 = cur().get(FieldId::cr0) | cr0::ET;
    regs_.cr2 = cur().get(FieldId::cr2);
    regs_.cr3 = cur().get(FieldId::cr3);
    regs_.cr4 = cur().get(FieldId::cr4);
    regs_.rflags = cur().get(FieldId::rflags) | rflags::FIXED1;
    regs_.rip = cur().get(FieldId::rip);
    regs_.rsp = cur().get(FieldId::rsp);
    regs_.rax = cur().get(FieldId::rax);
    regs_.dr6 = cur().get(FieldId::dr6);
    regs_.dr7 = cur().get(FieldId::dr7);
    // CPL: 0 in real mode, 3 in virtual-8086 mode, else the VMCB's (15.5.1).
    if ((regs_.cr0 & cr0::PE) == 0) regs_.cpl = 0;
    else if ((regs_.rflags & rflags::VM) != 0) regs_.cpl = 3;
    else regs_.cpl = static_cast<std::uint8_t>(cur().get(FieldId::cpl));
    // G_PAT is the guest's PAT only with nested paging (15.25.8).
    if (np_enabled()) regs_.pat = cur().get(FieldId::g_pat);
    // APM 15.23: LBR virtualization loads the guest's DebugCtl and LBRs
    // (save area 670h-690h); without it they are not loaded and the guest
    // runs with the host's.
    if (lbr_virtualization()) regs_.lbr = lbr_from_vmcb(cur());
    // FS, GS, TR, LDTR and the syscall MSRs are VMLOAD's, not VMRUN's: they
    // keep whatever the host loaded (15.5.2).
}

void SvmCpu::load_pdpes() noexcept {
    using namespace arch;
    // 15.5.1 step 5: legacy PAE paging without nested paging loads the four
    // PDPEs. Their legality is the catalogue's pdpe.reserved (C21).
    pdpes_ = {};
    const bool long_mode = (regs_.efer & efer::LME) && (regs_.cr0 & cr0::PG);
    const bool pae_paging = (regs_.cr0 & cr0::PG) && (regs_.cr4 & cr4::PAE) && !long_mode;
    if (!pae_paging || np_enabled()) return;
    // Legality was decided before anything was loaded (check_guest_state).
    (void)load_pae_pdpes(*mem_, regs_.cr3, cpu_->reserved_pa_bits(), pdpes_);
}

void SvmCpu::apply_tlb_control() noexcept {
    // APM 15.16.1: VMRUN reads TLB_CONTROL and leaves it unchanged; the
    // model records the flush. Reserved encodings flush nothing.
    tlb_.asid = static_cast<std::uint32_t>(cur().get(FieldId::asid));
    const auto ctl = static_cast<std::uint8_t>(cur().get(FieldId::tlb_ctl));
    tlb_.last_tlb_ctl = ctl;
    switch (ctl) {
        case arch::tlb_ctl::DO_NOTHING: break;
        case arch::tlb_ctl::FLUSH_ALL: ++tlb_.flush_all; break;
        case arch::tlb_ctl::FLUSH_ASID: ++tlb_.flush_asid; break;
        case arch::tlb_ctl::FLUSH_ASID_LOCAL: ++tlb_.flush_asid_nonglobal; break;
        default: ++tlb_.reserved_ctl; break;
    }
}

Injection SvmCpu::inject_event() noexcept {
    // APM 15.20: a valid EVENTINJ is delivered through the guest's IDT before
    // its first instruction, whatever RFLAGS.IF, the interrupt shadow or the
    // intercepts say (its legality was the catalogue's event stage). V is
    // cleared once delivered; #VMEXIT writes EVENTINJ back with V = 0.
    const std::uint64_t ev = cur().get(FieldId::event_inj);
    if ((ev & arch::event::V) == 0) return Injection::none;
    injected_ = ev | (cur().get(FieldId::event_inj_err) << 32);
    cur().set(FieldId::event_inj, ev & ~std::uint64_t{arch::event::V});
    // 15.21.10: "If Event Injection is used to inject an NMI when NMI
    // Virtualization is enabled, VMRUN sets V_NMI_MASK in the guest state";
    // the guest's IRET clears it (KVM's svm_inject_nmi relies on this and
    // leaves the blocking to hardware under vNMI).
    if (arch::event::type_of(static_cast<std::uint32_t>(ev)) == static_cast<unsigned>(arch::event::Type::nmi) &&
        vnmi_enabled(*cpu_, int_ctl()))
        set_int_ctl(int_ctl() | arch::int_ctl::V_NMI_BLOCKING);
    return Injection::delivered;
}

SvmResult SvmCpu::vmrun() noexcept {
    SvmResult r;
    held_ = {};
    if (!vmrun_instruction_gates(r)) return r;
    if (!read_vmcb(r)) return r;
    enter_guest(r);
    return r;
}

SvmResult SvmCpu::vmrun(arch::Vmcb& vmcb, std::span<const std::uint8_t> msrpm,
                         std::span<const std::uint8_t> iopm) noexcept {
    SvmResult r;
    if (in_guest_) {
        (void)vmrun_instruction_gates(r);  // a guest runs: nothing
        return r;
    }
    held_.vmcb = &vmcb;
    held_.msrpm = msrpm;
    held_.iopm = iopm;
    if (!vmrun_instruction_gates(r)) return r;
    vmcb_pa_ = 0;
    enter_guest(r);
    return r;
}

void SvmCpu::enter_guest(SvmResult& r) noexcept {
    // APM 15.5.1 from step 1, on the VMCB vmrun() read or the host holds.
    save_host_state();
    if (const checks::Check* failed = check_guest_state()) {
        r = vmexit_invalid(failed);
        return;
    }
    load_guest_state();
    load_pdpes();
    apply_tlb_control();
    in_guest_ = true;
    pending_db_ = false;
    injected_ = 0;
    // 15.5.1 step 7: GIF = 1 once all guest state and controls are loaded.
    gif_ = true;
    r.outcome = SvmOutcome::entered_guest;
    r.injection = inject_event();
    r.vector = static_cast<std::uint8_t>(injected_ & arch::event::VECTOR);
    r.error_code = static_cast<std::uint32_t>(injected_ >> 32);
    r.in_guest = true;
    r.note = r.injection == Injection::delivered ? "guest entered; GIF = 1; EVENTINJ delivered"
                                                 : "guest entered; GIF = 1";
    if (r.injection == Injection::delivered) {
        // Through the guest's IDT (svm_cpu_delivery.cpp); an intercepted
        // fault on the way exits before the guest runs an instruction.
        const SvmResult d = deliver_injected();
        if (d.outcome == SvmOutcome::vmexit) {
            r = d;
            return;
        }
        r.delivery = d.delivery;
    }
}

SvmResult SvmCpu::vmexit_invalid(const checks::Check* failed) noexcept {
    using namespace arch;
    // The one failure path: #VMEXIT(VMEXIT_INVALID). No guest state was
    // loaded, so the "guest state" a profile writes back is the host's.
    if (profile_->failure_writeback == checks::FailureWriteback::host_state) store_loaded_registers(false);
    // APM 15.5.1 / Appendix C: EXITCODE = -1; EXITINFO1/2 = 0.
    vmcb_store(FieldId::exit_code, exit_code_form(ec::INVALID));
    vmcb_store(FieldId::exit_info_1, 0);
    vmcb_store(FieldId::exit_info_2, 0);
    if (profile_->eventinj_cleared_on_failure) {
        vmcb_store(FieldId::event_inj, 0);
        vmcb_store(FieldId::event_inj_err, 0);
    }
    // APM 15.6 step 1: every #VMEXIT clears GIF.
    if (profile_->clear_gif_on_failure) gif_ = false;
    load_host_state();
    SvmResult r;
    r.outcome = SvmOutcome::vmexit;
    r.exit_code = exit_code_form(ec::INVALID);
    r.failed_check = failed;
    r.note = "#VMEXIT(VMEXIT_INVALID): a consistency check failed; host reloaded; GIF = 0";
    return r;
}

// ---------------------------------------------------------------------------
// #VMEXIT (APM 15.6)

template <class V>
void SvmCpu::store_loaded_registers_to(V& v, bool with_cr2) const noexcept {
    v.set_segment(Seg::es, regs_.es);
    v.set_segment(Seg::cs, regs_.cs);
    v.set_segment(Seg::ss, regs_.ss);
    v.set_segment(Seg::ds, regs_.ds);
    v.set_segment(Seg::gdtr, regs_.gdtr);
    v.set_segment(Seg::idtr, regs_.idtr);
    v.set(FieldId::efer, regs_.efer);
    v.set(FieldId::cr0, regs_.cr0);
    if (with_cr2) v.set(FieldId::cr2, regs_.cr2);
    v.set(FieldId::cr3, regs_.cr3);
    v.set(FieldId::cr4, regs_.cr4);
    v.set(FieldId::rflags, regs_.rflags);
    v.set(FieldId::rip, regs_.rip);
    v.set(FieldId::rsp, regs_.rsp);
    v.set(FieldId::rax, regs_.rax);
    v.set(FieldId::dr6, regs_.dr6);
    v.set(FieldId::dr7, regs_.dr7);
    v.set(FieldId::cpl, regs_.cpl);
}

void SvmCpu::store_loaded_registers(bool with_cr2) noexcept {
    // A host-held VMCB takes the stores directly (the nested engine's path).
    if (held_.vmcb != nullptr) {
        store_loaded_registers_to(*held_.vmcb, with_cr2);
        return;
    }
    MemoryVmcb m{*this};
    store_loaded_registers_to(m, with_cr2);
}

void SvmCpu::flush_guest_state() noexcept {
    if (!in_guest_) return;
    save_guest_state();
}

void SvmCpu::save_guest_state() noexcept {
    // Step 2: the state VMRUN loaded, V_TPR/V_IRQ and the interrupt shadow.
    store_loaded_registers(true);
    if (np_enabled()) vmcb_store(FieldId::g_pat, regs_.pat);
    // APM 15.23: with LBR virtualization the guest's DebugCtl and LBRs go
    // back to the VMCB; without it the VMCB's LBR fields are left alone.
    if (lbr_virtualization()) store_lbr_with(regs_.lbr, [&](FieldId f, std::uint64_t x) { vmcb_store(f, x); });
    // int_ctl as read, with the bits the processor updates while the guest
    // runs (V_TPR, V_IRQ, V_GIF, V_NMI, V_NMI_MASK) at their current values.
    vmcb_store(FieldId::int_ctl, int_ctl());
    vmcb_store(FieldId::int_state, cur().get(FieldId::int_state));
}

template <class V>
void SvmCpu::write_exit_fields_to(V& v, std::uint64_t code, std::uint64_t info1, std::uint64_t info2,
                                  std::uint64_t exit_int_info, std::uint64_t next_rip) const noexcept {
    // Step 3. nRIP only with NRIPS (15.7.1); 0 for exits that do not use it.
    v.set(FieldId::exit_code, exit_code_form(code));
    v.set(FieldId::exit_info_1, info1);
    v.set(FieldId::exit_info_2, info2);
    v.set(FieldId::exit_int_info, exit_int_info & 0xFFFFFFFFULL);
    v.set(FieldId::exit_int_info_err, exit_int_info >> 32);
    if (cpu_->has(Feature::nrip_save)) v.set(FieldId::next_rip, next_rip);
    // EVENTINJ.V is clear after a delivered injection (15.20).
    v.set(FieldId::event_inj, cur().get(FieldId::event_inj) & ~std::uint64_t{arch::event::V});
}

void SvmCpu::write_exit_fields(std::uint64_t code, std::uint64_t info1, std::uint64_t info2,
                               std::uint64_t exit_int_info, std::uint64_t next_rip) noexcept {
    if (held_.vmcb != nullptr) {
        write_exit_fields_to(*held_.vmcb, code, info1, info2, exit_int_info, next_rip);
        return;
    }
    MemoryVmcb m{*this};
    write_exit_fields_to(m, code, info1, info2, exit_int_info, next_rip);
}

void SvmCpu::clear_guest_controls() noexcept {
    // Step 4: intercepts cleared, ASID := 0, internal V_IRQ/V_INTR_MASKING,
    // TSC_OFFSET and nested paging off: in_guest_ = false makes the internal
    // VMCB copy inert; the record shows ASID 0.
    tlb_.asid = 0;
    injected_ = 0;
    pdpes_ = {};
}

Registers SvmCpu::saved_host() const noexcept {
    // What save_host_state kept: a host-held VMCB's host is the registers as
    // they were (the internal save area needs no VMCB layout); otherwise the
    // host-save area, in the save-area format (HSAVE latched at VMRUN, or
    // the internal page).
    if (held_.vmcb != nullptr) return held_host_;
    if (!hsave_in_memory()) return registers_from_save_area(hsave_page_);
    arch::Vmcb page;
    (void)mem_->peek_vmcb(hsave_pa_, page);  // backed: VMRUN's gate checked it
    return registers_from_save_area(page);
}

void SvmCpu::load_host_state() noexcept {
    using namespace arch;
    // Steps 5-6: reload from the host-save area; CR0.PE = 1, RFLAGS.VM = 0,
    // CPL 0, DR7 breakpoints off (0x400; qemu restores the saved DR7).
    if (held_.vmcb != nullptr) {
        restore_host(held_host_);
    } else {
        restore_host(saved_host());
    }
    // APM 15.23: the host's DebugCtl and LBRs come back when VMRUN switched them.
    if (lbr_virtualization())
        regs_.lbr = held_.vmcb != nullptr ? held_host_.lbr : load_lbr([&](FieldId f) { return hsave_load(f); });
    in_guest_ = false;
    // 15.5.1 step 9: a host that single-stepped VMRUN takes #DB once the
    // #VMEXIT completes.
    pending_db_ = (regs_.rflags & arch::rflags::TF) != 0;
}

void SvmCpu::restore_host(const Registers& h) noexcept {
    using namespace arch;
    regs_.es = h.es;
    regs_.cs = h.cs;
    regs_.ss = h.ss;
    regs_.ds = h.ds;
    regs_.gdtr = h.gdtr;
    regs_.idtr = h.idtr;
    regs_.efer = h.efer;
    regs_.cr0 = h.cr0 | cr0::PE;
    regs_.cr3 = h.cr3;
    regs_.cr4 = h.cr4;
    regs_.rflags = (h.rflags & ~rflags::VM) | rflags::FIXED1;
    regs_.rip = h.rip;
    regs_.rsp = h.rsp;
    regs_.rax = h.rax;
    // qemu (svm_helper.c do_vmexit) reloads DR6 and DR7 from HSAVE; the APM
    // only disables the DR7 breakpoints and leaves DR6 as the guest left it.
    if (profile_->vmexit_dr7_from_hsave) {
        regs_.dr7 = h.dr7;
        regs_.dr6 = h.dr6;
    } else {
        regs_.dr7 = dr7::kFixed1;
    }
    regs_.cpl = 0;
    regs_.pat = h.pat;
}

SvmResult SvmCpu::vmexit(std::uint64_t code, std::uint64_t info1, std::uint64_t info2, std::uint64_t exit_int_info,
                         std::uint64_t next_rip) noexcept {
    SvmResult r;
    if (!in_guest_) {
        r.outcome = SvmOutcome::nothing;
        r.note = "#VMEXIT requested while no guest runs";
        return r;
    }
    gif_ = false;  // APM 15.6 step 1
    save_guest_state();
    write_exit_fields(code, info1, info2, exit_int_info, next_rip);
    clear_guest_controls();
    load_host_state();
    r.outcome = SvmOutcome::vmexit;
    r.exit_code = exit_code_form(code);
    r.exit_info_1 = info1;
    r.exit_info_2 = info2;
    r.exit_int_info = exit_int_info;
    r.note = "#VMEXIT: guest state saved, host reloaded, GIF = 0";
    return r;
}

}  // namespace nsvm::cpu
