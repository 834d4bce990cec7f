// Isolation between the vectors of a batch (vector.hpp isolation_problem,
// docs/oracle.md "Isolation between vectors").
//
// All vectors of a boot share one guest: the image, its L2 environment and
// every slot are identity-mapped and writable, for L2 as for the host. A
// vector that names an address in another vector's slot (an L2 store, the
// VMCB #VMEXIT writes, VM_HSAVE_PA, ...) would change that vector's result,
// and nsvm diff would blame the innocent one. Confining L2 with nested page
// tables per vector would change what the vectors test (nested paging is
// itself under test), so instead every address through which a vector can
// write is checked here, and a vector that reaches protected memory is
// refused before it runs. The check assumes L2 runs the image's code through
// the image's tables and IDT; it refuses vectors that would not.
#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/cpu/instruction_faults.hpp"
#include "nsvm/oracle/vector.hpp"

namespace nsvm::oracle {
namespace {

using arch::FieldId;
using arch::Seg;
namespace ic = arch::intercept;

struct Range {
    std::uint64_t begin, end;  // [begin, end)
    [[nodiscard]] constexpr bool contains(std::uint64_t b, std::uint64_t e) const noexcept {
        return b >= begin && e <= end;
    }
    [[nodiscard]] constexpr bool overlaps(std::uint64_t b, std::uint64_t e) const noexcept {
        return b < end && e > begin;
    }
};

constexpr std::uint64_t kSlotsEnd = NSVM_OR_SLOTS_PA + NSVM_OR_MAX_SLOTS * NSVM_OR_SLOT_SIZE;

/// What the image and the batch occupy (layout.h): writes there change the
/// image's code, L2's code, descriptor tables, page tables, MSRPM/IOPM for
/// later vectors, or the header and the other slots.
constexpr std::array kProtected = {
    Range{NSVM_OR_IMAGE_PA, NSVM_OR_L2_IDT32_PA + 0x1000},       // image, L2 code, stubs, stack, GDT, IDTs
    Range{NSVM_OR_PML4_PA, NSVM_OR_NPT_PML4_PA + 0x10000},        // host/L2 and nested page tables
    Range{NSVM_OR_HSAVE_PA, NSVM_OR_SPARE_VMCB_PA + 0x1000},      // HSAVE, MSRPM, IOPM, spare VMCB
    Range{NSVM_OR_SPARE_PT_PA, NSVM_OR_SPARE_PT_PA + NSVM_OR_SPARE_PT_SIZE},  // spare table pages
    Range{NSVM_OR_BATCH_PA, kSlotsEnd},                           // batch header and slots
};

/// Inside the protected ranges, the pages every vector may write: nothing
/// reads them across vectors (the model does not predict what a load finds).
constexpr std::array kShared = {
    Range{NSVM_OR_L2_SCRATCH_PA, NSVM_OR_L2_SCRATCH_PA + 0x2000},   // L2 scratch
    Range{NSVM_OR_L2_STUBS_PA + 0x1000, NSVM_OR_L2_STACK_TOP + 0x10},  // L2 stack
    Range{NSVM_OR_HSAVE_PA, NSVM_OR_HSAVE_PA + 0x1000},              // VMRUN rewrites it every time
    Range{NSVM_OR_SPARE_VMCB_PA, NSVM_OR_SPARE_VMCB_PA + 0x1000},    // VMLOAD/VMSAVE/VMRUN in L2
};

/// The image's own page-table roots (host/L2 tables and the nested tables).
constexpr Range kTables{NSVM_OR_PML4_PA, NSVM_OR_NPT_PML4_PA + 0x10000};
/// Beyond every guest's RAM (and the 4 GiB L2 identity map): no vector can
/// place tables there, so a root there cannot redirect a write.
constexpr std::uint64_t kBeyondRam = std::uint64_t{1} << 32;

/// A write of [a, a + len) reaches memory that belongs to the image or to
/// another vector.
[[nodiscard]] bool reaches_protected(std::uint64_t a, std::uint64_t len) noexcept {
    const std::uint64_t e = a + len < a ? ~std::uint64_t{0} : a + len;
    for (const auto& s : kShared)
        if (s.contains(a, e)) return false;
    return std::any_of(kProtected.begin(), kProtected.end(), [&](const Range& r) { return r.overlaps(a, e); });
}

std::string hex(std::uint64_t v) { return fmt::format("{:#x}", v); }

/// L2's linear address of an operand in segment `s`: 64-bit code ignores the
/// segment base (APM 4.12.2); otherwise base + 32-bit offset, wrapping.
[[nodiscard]] std::uint64_t linear(const Vector& v, Seg s, std::uint64_t offset) noexcept {
    const bool lma = (v.vmcb.get(FieldId::efer) & arch::efer::LMA) != 0;
    const bool cs_l = (v.vmcb.segment(Seg::cs).attrib & 0x200) != 0;
    if (lma && cs_l) return offset;
    return (v.vmcb.segment(s).base + (offset & 0xFFFFFFFFU)) & 0xFFFFFFFFU;
}

[[nodiscard]] IsolationProblem write_problem(std::string field, std::uint64_t addr, std::string_view what) {
    return {std::move(field),
            fmt::format("{} at {} reaches the image's pages, the batch header or another vector's slot (protected: "
                        "{:#x}-{:#x}, except the L2 scratch, stack, HSAVE and spare VMCB pages)",
                        what, hex(addr), NSVM_OR_IMAGE_PA, kSlotsEnd)};
}

/// A paging root must be one of the image's tables (or lie beyond RAM), or
/// tables placed in memory by an earlier store could map L2's identity
/// addresses onto protected pages.
[[nodiscard]] std::optional<IsolationProblem> root_problem(std::string field, std::uint64_t root) {
    const std::uint64_t pa = root & 0x000FFFFFFFFFF000ULL;
    if (kTables.contains(pa, pa + 1) || pa >= kBeyondRam) return std::nullopt;
    return IsolationProblem{std::move(field),
                            fmt::format("page-table root {} is not one of the image's tables ({:#x}-{:#x}): the "
                                        "oracle cannot tell where L2's writes would land",
                                        hex(root), kTables.begin, kTables.end)};
}

/// L2 runs only the image's code: the program menu and the exception stubs.
/// Code elsewhere could store anywhere.
[[nodiscard]] std::optional<IsolationProblem> code_problem(const Vector& v) {
    const std::uint64_t rip = linear(v, Seg::cs, v.vmcb.get(FieldId::rip));
    const Range menu{NSVM_OR_L2_CODE_PA, NSVM_OR_L2_CODE_PA + NSVM_OR_L2_PROGRAM_STRIDE * kProgramCount};
    if (menu.contains(rip, rip + 1)) return std::nullopt;
    return IsolationProblem{"vmcb.save.rip", fmt::format("L2 would run code at {}, outside the image's program "
                                                         "menu ({:#x}-{:#x})",
                                                         hex(rip), menu.begin, menu.end)};
}

/// Exceptions and interrupts in L2 go through the IDT to the image's stubs;
/// another IDT could send them to code anywhere.
[[nodiscard]] std::optional<IsolationProblem> idt_problem(const Vector& v) {
    const auto idtr = v.vmcb.segment(Seg::idtr);
    const auto base = idtr.base;
    // A limit below 7 holds no gate at all (an event then shuts L2 down).
    if (idtr.limit < 7 || base == NSVM_OR_L2_IDT64_PA || base == NSVM_OR_L2_IDT32_PA || base >= kBeyondRam)
        return std::nullopt;
    return IsolationProblem{"vmcb.save.idtr.base",
                            fmt::format("L2's IDT at {} is not one of the image's ({:#x}, {:#x})", hex(base),
                                        NSVM_OR_L2_IDT64_PA, NSVM_OR_L2_IDT32_PA)};
}

/// WRMSR in L2 that the MSRPM does not intercept writes the processor's MSR,
/// which the host keeps for later vectors (APIC base, MTRRs, VM_HSAVE_PA, ...).
[[nodiscard]] std::optional<IsolationProblem> wrmsr_problem(const Vector& v) {
    const auto msr = static_cast<std::uint32_t>(v.regs[1]);
    if (v.vmcb.intercept(ic::MSR_PROT)) {
        const auto pos = msrpm_position(msr);
        if (!pos) return std::nullopt;  // APM 15.11: MSRs outside the ranges always exit
        const bool intercepted = std::any_of(v.msrpm.begin(), v.msrpm.end(),
                                             [msr](const MsrIntercept& m) { return m.msr == msr && m.write; });
        if (intercepted) return std::nullopt;
    }
    return IsolationProblem{"l2.regs.rcx", fmt::format("WRMSR of MSR {} is not intercepted: L2 would change the "
                                                       "host's MSR for the vectors after it",
                                                       hex(msr))};
}

/// IN/OUT in L2 that the IOPM does not intercept reach the machine's
/// devices, which the host keeps for later vectors (the 8259 masks, the
/// debug-exit and ATA ports, Bochs' port 0xE9 progress log).
[[nodiscard]] std::optional<IsolationProblem> port_problem(const Vector& v) {
    const auto port = static_cast<std::uint16_t>(v.regs[2]);
    if (v.vmcb.intercept(ic::IOIO_PROT) && std::find(v.iopm.begin(), v.iopm.end(), port) != v.iopm.end())
        return std::nullopt;
    return IsolationProblem{"l2.regs.rdx", fmt::format("port {} is not intercepted: L2's {} would reach the "
                                                       "machine's device for the vectors after it",
                                                       hex(port), program_name(v.program))};
}

/// XSETBV in L2 that is not intercepted writes the processor's XCR, which
/// SVM does not switch (APM 15.5.1 lists no XCR0 in the VMCB): only XCR0's
/// reset value 1 (x87 only, APM 11.5.2), the host's (the image never sets
/// CR4.OSXSAVE), leaves the vectors after it as they were. A value every
/// processor refuses never reaches XCR0: XSETBV raises #GP(0) instead
/// (cpu::xsetbv_fault, APM Vol.4 XSETBV), so those pass as well.
[[nodiscard]] std::optional<IsolationProblem> xsetbv_problem(const Vector& v) {
    if (v.vmcb.intercept(ic::XSETBV)) return std::nullopt;
    const auto index = static_cast<std::uint32_t>(v.regs[1]);
    const std::uint64_t value = (v.regs[2] & 0xFFFFFFFF) << 32 | (v.vmcb.get(FieldId::rax) & 0xFFFFFFFF);
    if (index == 0 && value == 1) return std::nullopt;
    if (cpu::xsetbv_fault(index, value) != nullptr) return std::nullopt;
    return IsolationProblem{"l2.regs.rcx", fmt::format("XSETBV of XCR{} = {} is not intercepted: L2 would change "
                                                       "the host's XCR for the vectors after it (only XCR0 = 1, "
                                                       "its reset value, and values every processor refuses with "
                                                       "#GP may pass)",
                                                       index, hex(value))};
}

/// JMP in L2 runs code at rbx: only the VMMCALL program's entry (the
/// image's code) or the paging window, whose pages lie beyond the guests'
/// RAM or are the spare table pages (paging_problem), are admitted. The
/// vectors expect the fetch there to fault; an emulator that lets it through
/// runs what those pages hold: zero bytes, "add [rax], al", so rAX must lie
/// in the L2 scratch page, and a spare-page dword other than a page-table
/// entry (code a vector could have put there) is refused.
[[nodiscard]] std::optional<IsolationProblem> jmp_problem(const Vector& v) {
    constexpr Range window{NSVM_OR_WINDOW_PA, NSVM_OR_WINDOW_PA + NSVM_OR_WINDOW_SIZE};
    constexpr Range spare{NSVM_OR_SPARE_PT_PA, NSVM_OR_SPARE_PT_PA + NSVM_OR_SPARE_PT_SIZE};
    const std::uint64_t target = linear(v, Seg::cs, v.regs[3]);
    if (target == program_entry(Program::vmmcall)) return std::nullopt;
    if (!window.contains(target, target + 1))
        return IsolationProblem{"l2.regs.rbx", fmt::format("JMP to {}: L2 may jump only to the VMMCALL program "
                                                           "({:#x}) or into the paging window ({:#x}-{:#x})",
                                                           hex(target), program_entry(Program::vmmcall),
                                                           window.begin, window.end)};
    const std::uint64_t rax = linear(v, Seg::ds, v.vmcb.get(FieldId::rax));
    const Range scratch{NSVM_OR_L2_SCRATCH_PA, NSVM_OR_L2_SCRATCH_PA + 0x1000};
    if (!scratch.contains(rax, rax + 1))
        return IsolationProblem{"vmcb.save.rax", fmt::format("JMP into the paging window with rAX = {}: zero bytes "
                                                             "there would add to [rAX], which must lie in the L2 "
                                                             "scratch page ({:#x}-{:#x})",
                                                             hex(rax), scratch.begin, scratch.end)};
    for (std::size_t k = 0; k < v.paging.size(); ++k) {
        const auto& t = v.paging[k];
        if (spare.contains(t.pa, t.pa + 1) && t.value != 0 && (t.value & 1) == 0)
            return IsolationProblem{fmt::format("paging[{}].value", k),
                                    fmt::format("with JMP into the paging window, a spare-page dword must be a "
                                                "present page-table entry or zero, not {}: L2 could run it",
                                                hex(t.value))};
    }
    return std::nullopt;
}

/// The IRET program (l2.S 32) pushes rdx, rcx, rsi, rdi, rbx and returns
/// through them: RIP = rbx, CS = di, RFLAGS = rsi, then (IRETQ) RSP = rcx,
/// SS = dx. Admitted: a return to the VMMCALL program's entry (or, in 64-bit
/// code, a non-canonical address, #GP(0) before any fetch, APM Vol.3 IRET)
/// through the image's L2 GDT, whose descriptors all have their accessed bit
/// set (a CS or SS load writes nothing there) and base 0; a new RSP whose
/// 256 bytes below lie in the L2 stack, like save.rsp (later exception
/// frames). Outside 64-bit code the return stays at CPL 0 (a return to an
/// outer level would take its stack from the host's 64-bit TSS read as a
/// 32-bit one), with EFLAGS.VM clear (no return to virtual-8086 mode) and
/// RFLAGS.NT clear (no task return through the host's TR).
[[nodiscard]] std::optional<IsolationProblem> iret_problem(const Vector& v) {
    const bool code64 = (v.vmcb.get(FieldId::efer) & arch::efer::LMA) != 0 &&
                        (v.vmcb.segment(Seg::cs).attrib & 0x200) != 0;
    const auto gdtr = v.vmcb.segment(Seg::gdtr);
    if (gdtr.base != NSVM_OR_L2_GDT_PA)
        return IsolationProblem{"vmcb.save.gdtr.base",
                                fmt::format("IRET loads CS and SS from the GDT at {}, not the image's L2 GDT ({:#x}): "
                                            "descriptors there could mark themselves accessed or give CS another base",
                                            hex(gdtr.base), NSVM_OR_L2_GDT_PA)};
    const std::uint64_t target = code64 ? v.regs[3] : v.regs[3] & 0xFFFFFFFFULL;
    const bool canonical = ((target >> 47) == 0 || (target >> 47) == 0x1FFFF);
    const bool non_canonical57 = (static_cast<std::int64_t>(target << 7) >> 7) != static_cast<std::int64_t>(target);
    if (target != program_entry(Program::vmmcall) && !(code64 && !canonical && non_canonical57))
        return IsolationProblem{"l2.regs.rbx", fmt::format("IRET to {}: L2 may return only to the VMMCALL program "
                                                           "({:#x}) or, in 64-bit code, to a non-canonical address",
                                                           hex(target), program_entry(Program::vmmcall))};
    if (code64) {
        const std::uint64_t sp = v.regs[1];
        if (reaches_protected(sp < 0x100 ? 0 : sp - 0x100, std::min<std::uint64_t>(sp, 0x100)))
            return write_problem("l2.regs.rcx", sp, "the stack IRETQ returns to (exception frames)");
        return std::nullopt;
    }
    if ((v.regs[7] & 3) != 0)
        return IsolationProblem{"l2.regs.rdi", "IRETD to an outer privilege level outside 64-bit code would take its "
                                               "stack from the host's TSS read in its 32-bit form"};
    if ((v.regs[6] & arch::rflags::VM) != 0)
        return IsolationProblem{"l2.regs.rsi", "IRETD with EFLAGS.VM set would return to virtual-8086 mode"};
    if ((v.vmcb.get(FieldId::rflags) & arch::rflags::NT) != 0)
        return IsolationProblem{"vmcb.save.rflags", "IRETD with RFLAGS.NT set is a task return through the host's TR"};
    return std::nullopt;
}

/// A present entry a paging patch writes points into the paging window or
/// the spare table pages (layout.h NSVM_OR_WINDOW_PA): whatever L2 then
/// reaches through it, a table built there or a page it stores to, is memory
/// no other vector and not the host relies on (the image zeroes the spare
/// pages after the vector). Bits outside the address field (reserved,
/// ignored, NX) are free: they are what the vectors test.
[[nodiscard]] std::optional<IsolationProblem> paging_problem(const Vector& v) {
    constexpr Range window{NSVM_OR_WINDOW_PA, NSVM_OR_WINDOW_PA + NSVM_OR_WINDOW_SIZE};
    constexpr Range spare{NSVM_OR_SPARE_PT_PA, NSVM_OR_SPARE_PT_PA + NSVM_OR_SPARE_PT_SIZE};
    for (std::size_t k = 0; k < v.paging.size(); ++k) {
        const auto& t = v.paging[k];
        if ((t.value & 1) == 0) continue;
        const std::uint64_t a = t.value & (t.size == 4 ? 0xFFFFF000ULL : 0x000FFFFFFFFFF000ULL);
        if (window.contains(a, a + 1) || spare.contains(a, a + 1)) continue;
        return IsolationProblem{fmt::format("paging[{}].value", k),
                                fmt::format("the present entry {} points at {}, outside the paging window "
                                            "({:#x}-{:#x}) and the spare table pages ({:#x}-{:#x}): L2 could reach "
                                            "the image's pages through it",
                                            hex(t.value), hex(a), window.begin, window.end, spare.begin, spare.end)};
    }
    return std::nullopt;
}

}  // namespace

std::optional<IsolationProblem> isolation_problem(const Vector& v) {
    if (auto p = paging_problem(v)) return p;
    // Writes the host side makes for this vector: the #VMEXIT into the VMCB,
    // VMRUN's host state into VM_HSAVE_PA.
    if (v.host.vmrun_rax && reaches_protected(*v.host.vmrun_rax & ~std::uint64_t{0xFFF}, 0x1000))
        return write_problem("host.vmrun_rax", *v.host.vmrun_rax, "the VMCB the #VMEXIT writes");
    if (v.host.hsave_pa && reaches_protected(*v.host.hsave_pa & ~std::uint64_t{0xFFF}, 0x1000))
        return write_problem("host.hsave_pa", *v.host.hsave_pa, "the host save area VMRUN writes");
    // Where L2's addresses go.
    const auto cr0 = v.vmcb.get(FieldId::cr0);
    if ((cr0 & arch::cr0::PG) != 0)
        if (auto p = root_problem("vmcb.save.cr3", v.vmcb.get(FieldId::cr3))) return p;
    if ((v.vmcb.get(FieldId::misc_ctl) & arch::misc_ctl::NP_ENABLE) != 0)
        if (auto p = root_problem("vmcb.control.nested_cr3", v.vmcb.get(FieldId::nested_cr3))) return p;
    if (auto p = code_problem(v)) return p;
    if (auto p = idt_problem(v)) return p;
    // An exception at CPL > 0 switches stacks (APM 8.9.3). L2 runs with the
    // host's TR (SVM does not switch it, 15.5.2), the image's 64-bit TSS,
    // whose RSP0 is the L2 stack top (main.c load_tss, reloaded after every
    // vector). Outside 64-bit code the processor reads it as a 32-bit TSS,
    // whose SS0 and ESP0 the image did not choose: refused.
    if (v.vmcb.get(FieldId::cpl) != 0 &&
        !((v.vmcb.get(FieldId::efer) & arch::efer::LMA) != 0 && (v.vmcb.segment(Seg::cs).attrib & 0x200) != 0))
        return IsolationProblem{"vmcb.save.cpl", "L2 at CPL > 0 outside 64-bit code would switch to a stack the "
                                                 "host's TSS gives in its 32-bit form (SS0:ESP0), an address the "
                                                 "oracle does not confine"};
    // What L2 itself writes: exception frames on its stack (EVENTINJ or a
    // fault can push one with any program), and each program's own store.
    const std::uint64_t sp = linear(v, Seg::ss, v.vmcb.get(FieldId::rsp));
    if (reaches_protected(sp < 0x100 ? 0 : sp - 0x100, std::min<std::uint64_t>(sp, 0x100)))
        return write_problem("vmcb.save.rsp", sp, "L2's stack (exception frames)");
    switch (v.program) {
        case Program::store: {
            const std::uint64_t a = linear(v, Seg::ds, v.regs[3]);
            if (reaches_protected(a, 4)) return write_problem("l2.regs.rbx", a, "L2's store");
            break;
        }
        case Program::vmsave:
            if (!v.vmcb.intercept(ic::VMSAVE) && reaches_protected(v.vmcb.get(FieldId::rax), 0x1000))
                return write_problem("vmcb.save.rax", v.vmcb.get(FieldId::rax), "L2's VMSAVE");
            break;
        case Program::wrmsr:
            if (auto p = wrmsr_problem(v)) return p;
            break;
        case Program::xsetbv:
            if (auto p = xsetbv_problem(v)) return p;
            break;
        case Program::in:
        case Program::out:
            if (auto p = port_problem(v)) return p;
            break;
        case Program::jmp:
            if (auto p = jmp_problem(v)) return p;
            break;
        case Program::iret:
            if (auto p = iret_problem(v)) return p;
            break;
        default: break;
    }
    return std::nullopt;
}

}  // namespace nsvm::oracle
