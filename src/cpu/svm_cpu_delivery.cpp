// Event delivery to the guest through its IDT (APM Vol.2 8.9, 4.8.3) with
// the double-fault rules (8.2.9), EVENTINJ delivery at VMRUN (15.20), and
// the guest's own linear-to-physical walk (5.3: legacy 2-level, PAE,
// 4-level and 5-level; A/D written back, 5.4.2; under nested paging 15.25.5)
// for the accesses delivery and guest memory events make.
//
// Not an x86 interpreter: only the architectural steps SVM's exits depend
// on. What the model does not follow (task gates, stack switches to an
// inner privilege level, IST, real and virtual-8086 mode, 16-bit gates)
// or memory that is not backed ends in not_modelled, with
// the registers left as they were, never in a guess.
#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/cpu/npt.hpp"
#include "nsvm/cpu/svm_cpu.hpp"
#include "guest_fault.hpp"

namespace nsvm::cpu {
namespace ec = arch::exit_code;
namespace ic = arch::intercept;
using arch::bit;
using arch::bits;
using arch::FieldId;

namespace {

using Fault = SvmCpu::GuestFault;
using detail::exception_fault;
using detail::not_modelled;
using detail::segment_from_descriptor;

/// APM 8.2.9 Table 8-7: the contributory exceptions.
[[nodiscard]] constexpr bool contributory(unsigned v) noexcept { return v == 0 || (v >= 10 && v <= 13); }

/// The EXITINTINFO encoding of an event (APM 15.7.2: the EVENTINJ format),
/// error code in bits 63:32 as SvmCpu::vmexit takes it.
[[nodiscard]] std::uint64_t event_info(std::uint8_t vector, std::uint8_t type, bool has_error,
                                       std::uint32_t error_code) noexcept {
    std::uint64_t v = arch::event::V | (std::uint64_t{type} << arch::event::kTypeShift) | vector;
    if (has_error) v |= arch::event::EV | (std::uint64_t{error_code} << 32);
    return v;
}

/// The #NPF a failed nested walk makes (APM 15.25.6).
[[nodiscard]] Fault npf_fault(const NptResult& w) noexcept {
    Fault f;
    f.kind = Fault::Kind::npf;
    f.info1 = w.info1;
    f.info2 = w.info2;
    return f;
}

}  // namespace

std::uint64_t SvmCpu::exit_nrip(std::uint64_t decided) const noexcept {
    // Bochs 2.7 writes nRIP on every #VMEXIT from the guest (profile
    // nrip_on_every_exit): its RIP at the exit, which is the end of the
    // instruction it was executing, or RIP itself where no instruction is
    // (insn_len_ = 0: a trap after the instruction retired, an exception
    // raised while delivering another, an interrupt at a boundary; found by
    // nsvm diff, prog/nop_tf_db_intercepted and prog/load_df_intercepted).
    // The APM (15.7.1) writes it only for instruction intercepts.
    if (decided == 0 && profile_->nrip_on_every_exit) return regs_.rip + insn_len_;
    return decided;
}

// ---------------------------------------------------------------------------
// The guest's page walk (APM 5.3), each table read and the final address
// translated by the nested tables when nested paging is on (15.25.5).

Fault SvmCpu::nested_final(std::uint64_t gpa, Access a, std::uint64_t& hpa) noexcept {
    hpa = gpa;
    if (!np_enabled()) return {};
    // APM 15.25.5: nested walks are user accesses, whatever the guest's CPL,
    // but for GMET's supervisor fetch (15.25.13; cpu/npt.hpp nested_access).
    const NestedPagingMode mode = nested_mode();
    const NptResult w = npt_walk(*mem_, cur().get(FieldId::nested_cr3), gpa, nested_access(a, mode), mode);
    if (!w.ok) return npf_fault(w);
    hpa = w.hpa;
    return {};
}

Fault SvmCpu::guest_table_read(std::uint64_t gpa, unsigned width, TableEntry& out) noexcept {
    out.hpa = gpa;
    out.width = width;
    if (np_enabled()) {
        // The guest's table reads are nested user writes: the walk may set
        // their A/D bits (KVM paging_tmpl.h walk_addr_generic's
        // nested_access; QEMU 7.2 ptw_translate uses MMU_DATA_STORE).
        const NptResult w = npt_walk(*mem_, cur().get(FieldId::nested_cr3), gpa, Access{true, true, false},
                                     nested_mode(), true);
        if (!w.ok) return npf_fault(w);
        out.hpa = w.hpa;
    }
    if (!mem_->read_le(out.hpa, width, out.value)) return not_modelled("a guest page table is not backed memory");
    return {};
}

void SvmCpu::mark_used(const TableEntry& e, bool dirty) noexcept {
    // APM 5.4.2: the processor sets A in an entry the walk uses, D in the
    // leaf of a write; with nested paging at the host-physical address the
    // table read's nested walk gave (15.25.5).
    const std::uint64_t v = accessed_dirty(e.value, dirty);
    if (v != e.value) (void)mem_->write_le(e.hpa, e.width, v);
}

Fault SvmCpu::guest_translate(std::uint64_t la, Access a, std::uint64_t& gpa) noexcept {
    using namespace arch;
    const bool long_mode = (regs_.efer & efer::LMA) != 0;
    if (!long_mode) la &= 0xFFFFFFFFULL;
    if ((regs_.cr0 & cr0::PG) == 0) return nested_final(la, a, gpa);

    const bool pae = (regs_.cr4 & cr4::PAE) != 0;
    const bool nxe = (regs_.efer & efer::NXE) != 0;
    const unsigned maxpa = cpu_->maxphyaddr;
    const std::uint64_t pa_rsv = maxpa >= 52 ? 0 : bits(51, maxpa);
    const std::uint64_t nx_rsv = nxe ? 0 : pte::NX;
    // APM 8.4.2: #PF error code. I/D for a fetch only where no-execute is
    // enabled, "EFER.NXE = 1 && CR4.PAE = 1" (so never under legacy 2-level
    // paging, where EFER.NXE has no effect), or SMEP is (5.6.6: SMEP guards
    // fetches in every paging mode). QEMU's mmu_translate and Bochs'
    // page_fault apply the same condition.
    const bool id = a.fetch && ((nxe && pae) || (regs_.cr4 & cr4::SMEP) != 0);
    const std::uint32_t access_bits = (a.write ? pf_err::RW : 0U) | (a.user ? pf_err::US : 0U) | (id ? pf_err::ID : 0U);
    const auto pf = [&](bool present, bool rsv) {
        return exception_fault(14, access_bits | (present ? pf_err::P : 0U) | (rsv ? pf_err::RSV : 0U), la);
    };

    bool writable = true, user = true, no_exec = false;
    std::uint64_t frame = 0, page_mask = 0;
    std::uint64_t table = 0;
    unsigned level = 0;
    if (long_mode) {
        // APM 5.3.3: CR3[51:12] is the PML4 (PML5 with CR4.LA57, 5.3.4).
        table = regs_.cr3 & cr3::kLongBase;
        level = (regs_.cr4 & cr4::LA57) != 0 ? 5 : 4;
    } else if (pae) {
        // The PDPTE: loaded at VMRUN without nested paging (15.5.1 step 5),
        // read through the nested tables otherwise (15.25.5), at CR3[31:5]
        // (5.3.3: bits 4:0 ignored). PDPTEs have no A bit.
        const std::uint64_t index = (la >> pte::level_shift(3)) & (bit(pdpe::kIndexBits) - 1);  // LA 31:30
        std::uint64_t pdpe = pdpes_[index];
        if (np_enabled()) {
            TableEntry t;
            const Fault f = guest_table_read(cr3::pdpt_base(regs_.cr3) + 8 * index, 8, t);
            if (f.kind != Fault::Kind::none) return f;
            pdpe = t.value;
        }
        if ((pdpe & pdpe::P) == 0) return pf(false, false);
        if ((pdpe & (pa_rsv | pdpe::kLowReserved | pdpe::kHighReserved)) != 0) return pf(true, true);
        table = pdpe & pte::kAddr;
        level = 2;
    } else {
        // APM 5.3.2: legacy 2-level paging takes the page directory from
        // CR3[31:12]; bits 11:0 (PWT, PCD and ignored bits) are no address.
        table = regs_.cr3 & cr3::kLegacyBase;
        level = 2;
    }
    TableEntry used;
    for (;; --level) {
        bool leaf = level == 1;
        if (!long_mode && !pae) {
            // Legacy 32-bit paging: 4-byte entries, 4 MiB pages with CR4.PSE.
            const unsigned shift = pte::level_shift(level, pte::kLegacyIndexBits);
            const Fault f = guest_table_read(table + 4 * pte::table_index(la, level, pte::kLegacyIndexBits), 4, used);
            if (f.kind != Fault::Kind::none) return f;
            const std::uint64_t e = used.value;
            if ((e & pte::P) == 0) return pf(false, false);
            if (level == 2 && (e & pte::PS) != 0 && (regs_.cr4 & cr4::PSE) != 0) {
                if ((e & pte::kPse4mReserved) != 0) return pf(true, true);
                leaf = true;
                frame = pte::pse_4m_frame(e);
                page_mask = (std::uint64_t{1} << shift) - 1;
            } else if (leaf) {
                frame = e & pte::kLegacyAddr;
                page_mask = (std::uint64_t{1} << shift) - 1;
            }
            writable &= (e & pte::RW) != 0;
            user &= (e & pte::US) != 0;
            if (leaf) break;
            mark_used(used, false);
            table = e & pte::kLegacyAddr;
            continue;
        }
        const unsigned shift = pte::level_shift(level);
        const Fault f = guest_table_read(table + 8 * pte::table_index(la, level), 8, used);
        if (f.kind != Fault::Kind::none) return f;
        const std::uint64_t e = used.value;
        if ((e & pte::P) == 0) return pf(false, false);
        const bool large = (level == 2 || level == 3) && (e & pte::PS) != 0;
        std::uint64_t rsv = pa_rsv | nx_rsv;
        if (level >= 4) rsv |= pte::PS;                      // PS is MBZ in a PML4E and a PML5E
        if (level == 3 && !long_mode) rsv |= pte::PS;        // no 1 GiB pages outside long mode
        if (large) rsv |= level == 3 ? pte::k1gReserved : pte::k2mReserved;
        if ((e & rsv) != 0) return pf(true, true);
        writable &= (e & pte::RW) != 0;
        user &= (e & pte::US) != 0;
        no_exec |= nxe && (e & pte::NX) != 0;
        if (large || leaf) {
            page_mask = (std::uint64_t{1} << shift) - 1;
            frame = e & pte::kAddr & ~page_mask;
            break;
        }
        mark_used(used, false);
        table = e & pte::kAddr;
    }
    // APM 5.6: permission checks on the combined rights. Supervisor writes
    // ignore R/W unless CR0.WP; SMEP/SMAP guard user pages (5.6.5, 5.6.6).
    const bool supervisor = !a.user;
    bool denied = (a.user && !user) || (a.write && !writable && (a.user || (regs_.cr0 & cr0::WP) != 0)) ||
                  (a.fetch && no_exec);
    if (supervisor && user && a.fetch && (regs_.cr4 & cr4::SMEP) != 0) denied = true;
    if (supervisor && user && !a.fetch && (regs_.cr4 & cr4::SMAP) != 0 && (regs_.rflags & bit(18)) == 0)  // RFLAGS.AC
        denied = true;
    // The entries above the leaf were used to reach it: A is set in them
    // as the walk goes. The leaf is marked only when the access is
    // permitted, the page then being read or written (APM 5.4.2): A, and
    // D for a write. A refused access leaves the leaf as it was, as QEMU's
    // page walk and KVM's walk_addr_generic do.
    if (denied) return pf(true, false);
    mark_used(used, a.write);
    return nested_final(frame | (la & page_mask), a, gpa);
}

Fault SvmCpu::guest_access(std::uint64_t la, std::span<std::uint8_t> bytes, bool write) noexcept {
    // Page by page: an access may straddle two pages (a frame on the stack).
    const Access a{write, regs_.cpl == 3, false};
    std::size_t done = 0;
    while (done < bytes.size()) {
        const std::uint64_t at = la + done;
        const std::size_t n = std::min<std::size_t>(bytes.size() - done, kPageSize - (at & (kPageSize - 1)));
        std::uint64_t gpa = 0;
        const Fault f = guest_translate(at, a, gpa);
        if (f.kind != Fault::Kind::none) return f;
        const auto part = bytes.subspan(done, n);
        const bool ok = write ? mem_->write(gpa, part) : mem_->read(gpa, part);
        if (!ok) return not_modelled(write ? "a guest write reaches memory that is not backed"
                                           : "a guest read reaches memory that is not backed");
        done += n;
    }
    return {};
}

Fault SvmCpu::gdt_descriptor(std::uint16_t selector, std::uint32_t ext, std::uint64_t& desc) noexcept {
    // A non-null selector's descriptor (APM 4.7): beyond GDTR.limit is
    // #GP(selector), with EXT for an event from outside the program (8.4.1).
    if ((selector & 4) != 0) return not_modelled("an LDT selector is not modelled");
    if (std::uint64_t{selector & 0xFFF8U} + 7 > regs_.gdtr.limit)
        return exception_fault(13, (selector & 0xFFFCU) + ext);
    std::array<std::uint8_t, 8> bytes{};
    if (const Fault f = guest_access(regs_.gdtr.base + (selector & 0xFFF8U), bytes, false); f.kind != Fault::Kind::none)
        return f;
    desc = arch::load_le(bytes, 0, 8);
    return {};
}

// ---------------------------------------------------------------------------
// Delivery through the guest's IDT (APM 8.9), at the current privilege level.

Fault SvmCpu::deliver_through_idt(const GuestEvent& ev) noexcept {
    using namespace arch;
    if ((regs_.cr0 & cr0::PE) == 0) return not_modelled("real-mode interrupt delivery is not modelled");
    if ((regs_.rflags & rflags::VM) != 0) return not_modelled("virtual-8086 interrupt delivery is not modelled");
    const bool long_mode = (regs_.efer & efer::LMA) != 0;
    // EXT (bit 0 of the error codes below): the event came from outside the
    // program, an external interrupt, NMI or exception (APM 8.4.1).
    const std::uint32_t ext = ev.software ? 0U : 1U;
    const std::uint32_t idt_error = std::uint32_t{ev.vector} * 8 + 2 + ext;

    // The gate (4.8.3): 16 bytes in long mode, 8 in legacy mode.
    const unsigned gate_size = long_mode ? 16 : 8;
    if (std::uint64_t{ev.vector} * gate_size + gate_size - 1 > regs_.idtr.limit) return exception_fault(13, idt_error);
    std::array<std::uint8_t, 16> g{};
    if (const Fault f = guest_access(regs_.idtr.base + std::uint64_t{ev.vector} * gate_size,
                                     std::span<std::uint8_t>(g.data(), gate_size), false);
        f.kind != Fault::Kind::none)
        return f;
    const std::uint64_t lo = load_le(g, 0, 8);
    const unsigned type = (lo >> 40) & 0xF;
    const unsigned gate_dpl = (lo >> 45) & 3;
    const bool interrupt_gate = type == 0xE;
    if (type == 0x5) return not_modelled("task gates are not modelled");
    if (!long_mode && (type == 0x6 || type == 0x7)) return not_modelled("16-bit gates are not modelled");
    if (type != 0xE && type != 0xF) return exception_fault(13, idt_error);
    // 8.9.2: INTn, INT3 and INTO check the gate's DPL against CPL.
    if (ev.software && gate_dpl < regs_.cpl) return exception_fault(13, idt_error);
    if ((lo & bit(47)) == 0) return exception_fault(11, idt_error);
    if (long_mode && ((lo >> 32) & 7) != 0) return not_modelled("IST stack switches are not modelled");
    const auto selector = static_cast<std::uint16_t>((lo >> 16) & 0xFFFF);
    std::uint64_t offset = (lo & 0xFFFF) | (((lo >> 48) & 0xFFFF) << 16);
    if (long_mode) offset |= load_le(g, 8, 4) << 32;

    // The gate's code segment, from the GDT: delivery reloads CS with it.
    const std::uint32_t sel_error = (selector & 0xFFFCU) + ext;
    if ((selector & 0xFFFC) == 0) return exception_fault(13, ext);
    std::uint64_t desc = 0;
    if (const Fault f = gdt_descriptor(selector, ext, desc); f.kind != Fault::Kind::none) return f;
    const bool code = (desc & bit(44)) != 0 && (desc & bit(43)) != 0;
    const unsigned cs_dpl = (desc >> 45) & 3;
    const bool conforming = (desc & bit(42)) != 0;
    if (!code || (!conforming && cs_dpl > regs_.cpl)) return exception_fault(13, sel_error);
    if ((desc & bit(47)) == 0) return exception_fault(11, sel_error);
    if (!conforming && cs_dpl < regs_.cpl) return not_modelled("a stack switch to an inner privilege level is not modelled");
    if (long_mode && ((desc & bit(53)) == 0 || (desc & bit(54)) != 0)) return exception_fault(13, sel_error);
    Segment cs = segment_from_descriptor(static_cast<std::uint16_t>((selector & 0xFFFC) | regs_.cpl), desc);

    // The frame (8.9.3 long mode: RSP aligned to 16, SS, RSP, RFLAGS, CS,
    // RIP, error code, 8 bytes each; legacy same-privilege: EFLAGS, CS, EIP,
    // error code, 4 bytes each with a 32-bit gate).
    const std::uint64_t return_rip = ev.software ? regs_.rip + insn_len_ : regs_.rip;
    std::array<std::uint64_t, 6> frame{};
    std::size_t n = 0;
    const unsigned width = long_mode ? 8 : 4;
    std::uint64_t sp = regs_.rsp;
    if (long_mode) {
        sp &= ~std::uint64_t{0xF};
        frame[n++] = regs_.ss.selector;
        frame[n++] = regs_.rsp;
    } else if ((regs_.ss.attrib & seg_attr::DB) == 0) {
        return not_modelled("a 16-bit stack is not modelled");
    }
    frame[n++] = regs_.rflags;
    frame[n++] = regs_.cs.selector;
    frame[n++] = return_rip;
    if (ev.has_error) frame[n++] = ev.error_code;
    const std::uint64_t size = width * n;
    std::uint64_t new_sp = long_mode ? sp - size : ((sp - size) & 0xFFFFFFFFULL) | (sp & ~0xFFFFFFFFULL);
    std::array<std::uint8_t, 48> bytes{};
    for (std::size_t i = 0; i < n; ++i) store_le(bytes, width * (n - 1 - i), width, frame[i]);
    const std::uint64_t stack_la = long_mode ? new_sp : regs_.ss.base + (new_sp & 0xFFFFFFFFULL);
    // APM 8.9.3: a non-canonical stack address is #SS(0).
    if (long_mode && !is_canonical(stack_la, (regs_.cr4 & cr4::LA57) != 0 ? 57 : 48)) return exception_fault(12, 0);
    if (const Fault f = guest_access(stack_la, std::span<std::uint8_t>(bytes.data(), size), true);
        f.kind != Fault::Kind::none)
        return f;

    regs_.rsp = new_sp;
    regs_.cs = cs;
    regs_.rip = offset;
    // 8.9.3: the gate clears TF, NT, RF and VM; an interrupt gate also IF.
    regs_.rflags &= ~(rflags::TF | rflags::NT | rflags::RF | rflags::VM | (interrupt_gate ? rflags::IF : 0));
    cur().set(FieldId::int_state, cur().get(FieldId::int_state) & ~int_state::INTERRUPT_SHADOW);
    return {};
}

SvmResult SvmCpu::deliver_to_guest(GuestEvent ev, bool check_intercept, std::uint64_t during,
                                   const char* note) noexcept {
    // A fault while delivering becomes the next event, under the double-fault
    // rules (8.2.9); an intercepted one exits with EXITINTINFO naming the
    // event that was being delivered (15.7.2). Injected events skip the
    // intercept check for themselves (15.20), not for what they cause.
    for (int round = 0; round < 4; ++round) {
        if (check_intercept && ev.type == 3) {
            Event e;
            e.kind = EventKind::exception;
            e.index = ev.vector;
            e.error_code = ev.error_code;
            e.cr2 = ev.cr2;
            if (const auto x = decide(cur(), msrpm(), iopm(), e, regs_.rip, regs_.cr0, exit_features())) {
                SvmResult r = vmexit(x->code, x->info1, x->info2, during, exit_nrip(x->next_rip));
                r.vector = ev.vector;
                r.error_code = ev.error_code;
                return r;
            }
        }
        check_intercept = true;
        if (ev.type == 3 && ev.vector == 14) regs_.cr2 = ev.cr2;
        const Fault f = deliver_through_idt(ev);
        SvmResult r;
        switch (f.kind) {
            case Fault::Kind::none:
            case Fault::Kind::not_modelled:
                r.outcome = SvmOutcome::delivered;
                r.in_guest = true;
                r.vector = ev.vector;
                r.error_code = ev.error_code;
                r.delivery = f.kind == Fault::Kind::none ? Delivery::through_idt : Delivery::not_modelled;
                r.note = f.kind == Fault::Kind::none ? note : f.note;
                return r;
            case Fault::Kind::npf:
                return vmexit(ec::NPF, f.info1, f.info2, event_info(ev.vector, ev.type, ev.has_error, ev.error_code),
                              exit_nrip(0));
            case Fault::Kind::exception: break;
        }
        const GuestEvent next = f.exception;
        const bool first_exception = ev.type == 3 && !ev.software;
        if (first_exception && ev.vector == 8 && (contributory(next.vector) || next.vector == 14)) {
            // APM 8.2.9: a fault while delivering #DF shuts the processor
            // down; SVM turns that into #VMEXIT(SHUTDOWN) when intercepted.
            if (cur().intercept(ic::SHUTDOWN))
                return vmexit(ec::SHUTDOWN, 0, 0, event_info(ev.vector, ev.type, ev.has_error, ev.error_code),
                              exit_nrip(0));
            r.outcome = SvmOutcome::nothing;
            r.in_guest = true;
            r.note = "triple fault: shutdown without its intercept (not modelled)";
            return r;
        }
        during = event_info(ev.vector, ev.type, ev.has_error, ev.error_code);
        insn_len_ = 0;  // the next event is the delivery's, at the instruction's start
        const bool double_fault = first_exception && ((contributory(ev.vector) && contributory(next.vector)) ||
                                                      (ev.vector == 14 && (contributory(next.vector) || next.vector == 14)));
        ev = double_fault ? exception_fault(8, 0).exception : next;
    }
    SvmResult r;
    r.outcome = SvmOutcome::nothing;
    r.in_guest = true;
    r.note = "faults while delivering faults: not modelled";
    return r;
}

SvmResult SvmCpu::deliver_injected() noexcept {
    // APM 15.20: the EVENTINJ event goes through the guest's IDT before its
    // first instruction; EV says whether an error code is pushed; TYPE 2 is
    // always vector 2 (NMI); TYPE 4 is a software interrupt (gate DPL checked).
    const auto ev = static_cast<std::uint32_t>(injected_);
    GuestEvent g;
    g.type = static_cast<std::uint8_t>(arch::event::type_of(ev));
    g.vector = g.type == 2 ? 2 : static_cast<std::uint8_t>(ev & arch::event::VECTOR);
    g.has_error = g.type == 3 && (ev & arch::event::EV) != 0;
    g.error_code = static_cast<std::uint32_t>(injected_ >> 32);
    g.software = g.type == 4;
    insn_len_ = 0;
    return deliver_to_guest(g, false, 0, "EVENTINJ delivered through the guest's IDT");
}

SvmResult SvmCpu::instruction_fault(const Fault& f, const char* note) noexcept {
    switch (f.kind) {
        case Fault::Kind::exception:
            return guest_exception(f.exception.vector, f.exception.error_code, f.exception.cr2, note);
        case Fault::Kind::npf: return vmexit(arch::exit_code::NPF, f.info1, f.info2, 0, exit_nrip(0));
        case Fault::Kind::none:
        case Fault::Kind::not_modelled: break;
    }
    // Not followed: the registers stay as they were.
    SvmResult r;
    r.outcome = SvmOutcome::nothing;
    r.in_guest = true;
    r.note = f.note;
    return r;
}

SvmResult SvmCpu::guest_linear_access(const Event& e) noexcept {
    using namespace arch;
    // A data access or fetch at a linear address (APM 5.3). 64-bit mode
    // first requires the canonical form: a data access that is not is
    // #GP(0) (APM 5.3.1 / 2.2.1.1), before any walk, so never #NPF.
    std::uint64_t la = e.value;
    const bool code64 = (regs_.efer & efer::LMA) != 0 && (regs_.cs.attrib & seg_attr::L) != 0;
    if (code64 && !is_canonical(la, (regs_.cr4 & cr4::LA57) != 0 ? 57 : 48))
        return guest_exception(13, 0, 0, "non-canonical address: #GP(0) in the guest");
    const Access a{e.access.write, regs_.cpl == 3, e.access.fetch};
    std::uint64_t gpa = 0;
    const Fault f = guest_translate(la, a, gpa);
    if (f.kind != Fault::Kind::none) return instruction_fault(f, "#PF delivered to the guest");
    SvmResult r;
    // A data access completes its instruction; a fetch does not.
    if (!e.access.fetch) apply_guest_effect(e);
    r.outcome = SvmOutcome::no_exit;
    r.in_guest = true;
    r.note = "translated by the guest's page tables (and the nested ones)";
    return r;
}

}  // namespace nsvm::cpu
