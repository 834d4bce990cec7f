// The model side of `nsvm diff` (model.hpp): the oracle image's machine, run
// on the architectural processor, cpu::SvmCpu.
//
// The model lays out guest memory as the image does (layout.h; boot.S and
// main.c build it), gives an SvmCpu the host registers the image's boot code
// sets, writes the vector's VMCB at its slot and executes VMRUN. A valid
// VMRUN is followed by L2's program, fed to SvmCpu::guest_event as the
// cpu::Events its instructions are. Gates, consistency checks, intercept
// decisions, exit fields, event delivery through L2's IDT and the VMCB the
// #VMEXIT writes back are all the processor's; what stays here is what only
// the image knows: the program menu (which events each program makes), the
// stubs behind L2's IDTs ("mov eax, vec; vmmcall"), and where the image does
// not let the model know (memory it did not lay out, the emulator's CPUID,
// MSRs and devices).
#include "nsvm/oracle/model.hpp"

#include <fmt/format.h>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/checks/evaluate.hpp"
#include "nsvm/cpu/svm_cpu.hpp"

namespace nsvm::oracle {

using arch::FieldId;
using cpu::EventKind;
using cpu::SvmOutcome;

checks::HostState image_host_state(const Vector& v) {
    // boot.S: CR0 = PG|ET|PE, CR4 = PAE, EFER = LME|LMA (+SVME and NXE in image_main).
    checks::HostState h;
    h.efer = arch::efer::LME | arch::efer::LMA | arch::efer::NXE | (v.host.svme ? arch::efer::SVME : 0);
    h.cr0 = arch::cr0::PG | arch::cr0::ET | arch::cr0::PE;
    h.cr4 = arch::cr4::PAE;
    h.rflags = arch::rflags::FIXED1;
    h.cpl = 0;
    // The slot address is known only at run time; every slot is 8 KiB aligned
    // and below 4 GiB, so any such address stands for it.
    h.rax = v.host.vmrun_rax.value_or(NSVM_OR_SLOTS_PA);
    h.address_size = 64;
    h.vm_hsave_pa = v.host.hsave_pa.value_or(NSVM_OR_HSAVE_PA);
    return h;
}

BackendModel model_for_backend(Backend b) {
    switch (b) {
        case Backend::qemu: return {"qemu-tcg", "qemu"};
        case Backend::bochs: return {"bochs-ryzen", "bochs"};
        case Backend::qemu_kvm: return {"zen4", "kvm"};
        // An implementation nsvm knows nothing about: the manual as written.
        case Backend::exec: return {"zen4", "apm"};
    }
    return {"zen4", "apm"};
}

namespace {

/// Where the model puts the vector's VMCB: slot 0 (any slot is 8 KiB
/// aligned, below 4 GiB, and holds only this vector's VMCB).
constexpr std::uint64_t kSlotVmcb = NSVM_OR_SLOTS_PA;

// ---------------------------------------------------------------------------
// The image's memory (layout.h): only what the image writes is backed, so
// that anything else L2 or the VMCB makes the processor read is "not known"
// rather than a guessed zero.

[[nodiscard]] bool put_u64(cpu::GuestMemory& m, std::uint64_t pa, std::uint64_t v) { return m.write_u64(pa, v); }
[[nodiscard]] bool put_u32(cpu::GuestMemory& m, std::uint64_t pa, std::uint32_t v) { return m.write_le(pa, 4, v); }

/// boot.S's tables: the identity-mapped 4 GiB for the host and long-mode L2
/// (PML4 -> PDPT -> four PDs of 2 MiB pages, U = 1), the PAE PDPT over the
/// same PDs, the legacy 4 MiB page directory, and the nested tables that
/// map the first GiB.
[[nodiscard]] bool build_page_tables(cpu::GuestMemory& m) {
    bool ok = m.map(NSVM_OR_PML4_PA, 0x20000);
    ok &= put_u64(m, NSVM_OR_PML4_PA, (NSVM_OR_PML4_PA + 0x1000) | 7);
    for (std::uint64_t i = 0; i < 4; ++i) {
        const std::uint64_t pd = NSVM_OR_PML4_PA + 0x2000 + 0x1000 * i;
        ok &= put_u64(m, NSVM_OR_PML4_PA + 0x1000 + 8 * i, pd | 7);
        ok &= put_u64(m, NSVM_OR_PAE_PDPT_PA + 8 * i, pd | 1);  // PDPTEs: P only (APM 5.3.2)
    }
    for (std::uint64_t i = 0; i < 2048; ++i) ok &= put_u64(m, NSVM_OR_PML4_PA + 0x2000 + 8 * i, (i << 21) | 0x87);
    for (std::uint64_t i = 0; i < 1024; ++i)
        ok &= put_u32(m, NSVM_OR_PD32_PA + 4 * i, static_cast<std::uint32_t>((i << 22) | 0x87));
    ok &= m.map(NSVM_OR_SPARE_PT_PA, NSVM_OR_SPARE_PT_SIZE);  // zero until a vector's paging patches
    ok &= put_u64(m, NSVM_OR_NPT_PML4_PA, (NSVM_OR_NPT_PML4_PA + 0x1000) | 7);
    ok &= put_u64(m, NSVM_OR_NPT_PML4_PA + 0x1000, (NSVM_OR_NPT_PML4_PA + 0x2000) | 7);
    for (std::uint64_t i = 0; i < 512; ++i) ok &= put_u64(m, NSVM_OR_NPT_PML4_PA + 0x2000 + 8 * i, (i << 21) | 0x87);
    return ok;
}

/// main.c setup_l2: the L2 GDT and both IDTs (every gate an interrupt gate
/// to the stub of its vector), program menu, stubs, scratch page, stack.
[[nodiscard]] bool build_l2_environment(cpu::GuestMemory& m) {
    bool ok = m.map(NSVM_OR_L2_CODE_PA, NSVM_OR_L2_STACK_TOP + 0x10 - NSVM_OR_L2_CODE_PA);
    ok &= m.map(NSVM_OR_L2_GDT_PA, 0x3000);
    ok &= put_u64(m, NSVM_OR_L2_GDT_PA + NSVM_OR_L2_CS64, 0x00AF9B000000FFFFULL);
    ok &= put_u64(m, NSVM_OR_L2_GDT_PA + NSVM_OR_L2_DS, 0x00CF93000000FFFFULL);
    ok &= put_u64(m, NSVM_OR_L2_GDT_PA + NSVM_OR_L2_CS32, 0x00CF9B000000FFFFULL);
    ok &= put_u64(m, NSVM_OR_L2_GDT_PA + NSVM_OR_L2_CS16, 0x00009B000000FFFFULL);
    for (std::uint64_t v = 0; v < 256; ++v) {
        const std::uint64_t h = NSVM_OR_L2_STUBS_PA + 16 * v;
        const std::uint64_t gate = (h & 0xFFFF) | (0x8EULL << 40) | (((h >> 16) & 0xFFFF) << 48);
        ok &= put_u64(m, NSVM_OR_L2_IDT64_PA + 16 * v, gate | (std::uint64_t{NSVM_OR_L2_CS64} << 16));
        ok &= put_u64(m, NSVM_OR_L2_IDT64_PA + 16 * v + 8, h >> 32);
        ok &= put_u64(m, NSVM_OR_L2_IDT32_PA + 8 * v, gate | (std::uint64_t{NSVM_OR_L2_CS32} << 16));
    }
    // HSAVE, MSRPM, IOPM and the spare VMCB page (zeroed by setup_l2), the slot.
    ok &= m.map(NSVM_OR_HSAVE_PA, NSVM_OR_SPARE_VMCB_PA + 0x1000 - NSVM_OR_HSAVE_PA);
    ok &= m.map(kSlotVmcb);
    ok &= m.populate(kSlotVmcb);
    return ok;
}

/// The host registers at the image's VMRUN (boot.S, main.c run_slot):
/// 64-bit code at CPL 0, interrupts off, the image's PML4.
[[nodiscard]] cpu::Registers image_host_registers(const Vector& v) {
    cpu::Registers r;
    // main.c sets EFER.NXE: the nested walk follows the host's NXE (APM 15.25.5).
    r.efer = arch::efer::LME | arch::efer::LMA | arch::efer::NXE | (v.host.svme ? arch::efer::SVME : 0);
    r.cr0 = arch::cr0::PG | arch::cr0::ET | arch::cr0::PE;
    r.cr4 = arch::cr4::PAE;
    r.cr3 = NSVM_OR_PML4_PA;
    r.rflags = arch::rflags::FIXED1;
    r.cpl = 0;
    r.cs = {0x08, 0xA9B, 0xFFFFFFFF, 0};  // boot.S gdt64: 64-bit code
    r.ss = r.ds = r.es = {0x10, 0xC93, 0xFFFFFFFF, 0};
    r.rax = v.host.vmrun_rax.value_or(kSlotVmcb);
    return r;
}

/// Byte length of each program's instruction (oracle/image/l2.S).
[[nodiscard]] std::uint8_t insn_length(Program prog) noexcept {
    switch (prog) {
        case Program::hlt:
        case Program::in:
        case Program::out:
        case Program::int3:
        case Program::sti:
        case Program::cli:
        case Program::nop: return 1;
        case Program::vmmcall:
        case Program::stgi:
        case Program::clgi:
        case Program::vmload:
        case Program::vmsave:
        case Program::vmrun:
        case Program::rdtscp:
        case Program::xsetbv:
        case Program::rdpru:
        case Program::lmsw: return 3;
        case Program::invpcid: return 5;  // 66 0F 38 82 /r
        case Program::iret: return 2;     // IRETQ (48 CF); the pushes before it are one byte each
        default: return 2;  // div0: "xor ecx, ecx" and "div ecx" are two bytes each; clts, fnop
    }
}

constexpr std::uint8_t kVmmcallLength = 3;
constexpr std::uint8_t kStubMovLength = 5;  // "mov eax, imm32" (l2.S STUB)

/// One vector's L2, run on the processor until its #VMEXIT.
class L2Run {
public:
    L2Run(cpu::SvmCpu& c, cpu::GuestMemory& mem, const Vector& v, Prediction& p) : cpu_(c), mem_(mem), v_(v), p_(p) {}

    /// After VMRUN: `entry` is its result (entered_guest, or the #VMEXIT
    /// an intercepted fault delivering EVENTINJ caused).
    void run(const cpu::SvmResult& entry) {
        if (!guest_is_followable()) return;
        // VMRUN only exits after entering the guest while delivering EVENTINJ.
        if (entry.injection == cpu::Injection::delivered || entry.outcome == SvmOutcome::vmexit) {
            const auto ev = static_cast<std::uint32_t>(v_.vmcb.get(FieldId::event_inj));
            const unsigned type = arch::event::type_of(ev);
            p_.path = fmt::format("VMRUN succeeds; injected {} vector {}", arch::event::type_name(type),
                                  type == 2 ? 2U : (ev & arch::event::VECTOR));
            // A software interrupt (TYPE 4) pushes the address after an INTn
            // the guest never executed; emulators differ: not followed.
            if (type == 4) follow_ = false;
            if (entry.outcome == SvmOutcome::vmexit) return exit(entry);
            delivered(entry);
            return;
        }
        if (cpu_.regs().rip != program_entry(v_.program)) return unknown("save.rip is not the program's entry");
        p_.path = fmt::format("VMRUN succeeds; L2 runs {}", program_name(v_.program));
        if (!boundary()) return;
        program();
    }

private:
    // --- the program menu (l2.S): which events each program makes ---

    void program() {
        const std::uint8_t len = insn_length(v_.program);
        switch (v_.program) {
            case Program::vmmcall: return vmmcall();
            case Program::hlt: {
                if (!fetch()) return;
                const auto r = cpu_.guest_event(simple(EventKind::hlt, len));
                if (r.outcome != SvmOutcome::no_exit) return after(r);
                p_.status = Status::cannot_run;
                p_.path += "; HLT without its intercept halts L2 for good";
                return;
            }
            case Program::cpuid: return instruction(simple(EventKind::cpuid, len), "CPUID's results are the emulator's");
            case Program::rdtsc: return instruction(simple(EventKind::rdtsc, len), "RDTSC's result is the emulator's");
            case Program::rdmsr:
            case Program::wrmsr: return msr(len);
            case Program::in:
            case Program::out: return io(len);
            case Program::ud2: return exception(6, len);
            case Program::int3: return exception(3, len);
            case Program::div0: {
                // xor ecx, ecx: ZF and PF set, CF, AF, SF and OF clear
                // (APM Vol.3 XOR); then div ecx faults with #DE.
                if (!fetch()) return;
                auto& regs = cpu_.regs();
                regs.rflags = (regs.rflags & ~std::uint64_t{0x8D5}) | 0x44;
                regs.rip += 2;
                return exception(0, 2);
            }
            case Program::load:
            case Program::store: return memory(len);
            case Program::stgi: return instruction(simple(EventKind::stgi, len));
            case Program::clgi: return instruction(simple(EventKind::clgi, len));
            case Program::vmload: return instruction(simple(EventKind::vmload, len));
            case Program::vmsave: return instruction(simple(EventKind::vmsave, len));
            case Program::vmrun: return instruction(simple(EventKind::vmrun, len));
            case Program::pause: return instruction(simple(EventKind::pause, len));
            case Program::invd: return instruction(simple(EventKind::invd, len));
            case Program::wbinvd: return instruction(simple(EventKind::wbinvd, len));
            case Program::rdtscp:
                return instruction(simple(EventKind::rdtscp, len), "RDTSCP's result is the emulator's");
            case Program::xsetbv: {
                // XCR[ecx] = edx:eax (isolation.cpp admits an XSETBV that is
                // not intercepted only with XCR0's reset value).
                cpu::Event e = simple(EventKind::xsetbv, len);
                e.index = static_cast<std::uint32_t>(v_.regs[1]);
                e.value = v_.regs[2] << 32 | (cpu_.regs().rax & 0xFFFFFFFF);
                return instruction(e);
            }
            case Program::rdpru: {
                cpu::Event e = simple(EventKind::rdpru, len);
                e.index = static_cast<std::uint32_t>(v_.regs[1]);  // ecx: which register
                return instruction(e, "RDPRU's result is the emulator's");
            }
            case Program::invpcid: {
                // invpcid rCX, [rBX]: the type from the register (ecx outside
                // 64-bit code), the descriptor's linear address in `value`.
                cpu::Event e = simple(EventKind::invpcid, len);
                e.index = static_cast<std::uint32_t>(code64() ? v_.regs[1] : v_.regs[1] & 0xFFFFFFFF);
                e.value = ds_linear(v_.regs[3]);
                return instruction(e);
            }
            case Program::lmsw: {
                cpu::Event e = simple(EventKind::lmsw, len);
                e.value = v_.regs[1] & 0xFFFF;  // lmsw cx
                return instruction(e);
            }
            case Program::clts: return instruction(simple(EventKind::clts, len));
            case Program::sti: return instruction(simple(EventKind::sti, len));
            case Program::cli: return instruction(simple(EventKind::cli, len));
            case Program::fnop: return instruction(simple(EventKind::fpu, len));
            case Program::nop: return instruction(simple(EventKind::nop, len));
            case Program::jmp: return jump(len);
            case Program::iret: return iret_program();
        }
    }

    /// push rdx, rcx, rsi, rdi, rbx (SS, RSP, RFLAGS, CS, RIP), then IRETQ
    /// (48 CF) in 64-bit code; in 32-bit code the pushes are 4 bytes each
    /// and 48 CF is "dec eax; iretd" (APM Vol.3 PUSH, DEC, IRET). Each push
    /// is a stack write the processor translates (APM 5.3, 15.25: #PF,
    /// #NPF); the IRET itself is the processor's (intercept 0x74, or
    /// SvmCpu::guest_iret: the pops, the CS/SS descriptor checks, #GP(0) for
    /// a non-canonical return address, V_NMI_MASK cleared with vNMI).
    void iret_program() {
        using arch::rflags::TF;
        // A trap between the pushes, or after the IRET that loads TF (which
        // traps only after the next instruction), is not followed.
        if ((cpu_.regs().rflags & TF) != 0 || (v_.regs[6] & TF) != 0)
            return unknown("single-step traps around the IRET program are not followed");
        const bool is64 = code64();
        auto& regs = cpu_.regs();
        // The bytes are written at their linear address: the image's tables
        // (and its nested ones) map the L2 stack, where isolation.cpp
        // confines RSP, one to one.
        const std::uint64_t cr3 = regs.cr3 & ~std::uint64_t{0xFFF};
        const bool paged = (regs.cr0 & arch::cr0::PG) != 0;
        if (paged && cr3 != NSVM_OR_PML4_PA && cr3 != NSVM_OR_PAE_PDPT_PA && cr3 != NSVM_OR_PD32_PA)
            return unknown("the IRET program's stack is translated by tables the image did not build as L2's");
        if (!is64 && (regs.ss.base != 0 || regs.ss.limit != 0xFFFFFFFF || (regs.ss.attrib & arch::seg_attr::DB) == 0))
            return unknown("the IRET program's pushes on a stack segment that is not flat 32-bit");
        const unsigned width = is64 ? 8 : 4;
        for (const unsigned gpr : {2U, 1U, 6U, 7U, 3U}) {  // rdx, rcx, rsi, rdi, rbx
            if (!fetch()) return;
            const std::uint64_t sp = is64 ? regs.rsp - 8 : (regs.rsp - 4) & 0xFFFFFFFFULL;
            if (sp < NSVM_OR_L2_STUBS_PA + 0x1000 || sp + width > NSVM_OR_L2_STACK_TOP + 0x10)
                return unknown("the IRET program pushes outside the L2 stack");
            cpu::Event push = simple(EventKind::memory, 1);
            push.linear = true;
            push.value = sp;
            push.access.write = true;
            const auto r = cpu_.guest_event(push);
            if (r.outcome != SvmOutcome::no_exit) return after(r);
            if (!mem_.write_le(sp, width, is64 ? v_.regs[gpr] : v_.regs[gpr] & 0xFFFFFFFFULL))
                return unknown("the L2 stack is not backed (model bug)");
            regs.rsp = is64 ? sp : (regs.rsp & ~0xFFFFFFFFULL) | sp;
            if (!boundary()) return;
        }
        if (!is64) {
            // dec eax (APM Vol.3 DEC): OF, SF, ZF, AF, PF from the result, CF kept.
            if (!fetch()) return;
            const auto eax = static_cast<std::uint32_t>(regs.rax);
            const std::uint32_t res = eax - 1;
            std::uint64_t f = regs.rflags & ~std::uint64_t{0x8D4};  // OF SF ZF AF PF
            if (eax == 0x80000000U) f |= 0x800;
            if ((res & 0x80000000U) != 0) f |= 0x80;
            if (res == 0) f |= 0x40;
            if ((eax & 0xF) == 0) f |= 0x10;
            if (__builtin_parity(res & 0xFF) == 0) f |= 0x4;
            // A 32-bit result outside 64-bit mode: what the upper half of
            // RAX holds afterwards is not architectural (APM 3.1.2).
            if ((regs.rax >> 32) != 0) rax_known_ = false;
            regs.rax = res;
            regs.rflags = f;
            const auto r = cpu_.guest_event(simple(EventKind::nop, 1));
            if (r.outcome != SvmOutcome::no_exit) return after(r);
            if (!boundary()) return;
        }
        if (!fetch()) return;
        const auto r = cpu_.guest_event(simple(EventKind::iret, is64 ? 2 : 1));
        if (r.outcome != SvmOutcome::no_exit) return after(r);
        if (!boundary()) return;
        if (!fetch()) return;
        const std::uint64_t target =
            code64() ? cpu_.regs().rip : (cpu_.regs().cs.base + cpu_.regs().rip) & 0xFFFFFFFFULL;
        // The one return address isolation.cpp admits that the IRET can
        // reach: the VMMCALL program.
        if (target == program_entry(Program::vmmcall) && (code64() || code32())) return vmmcall();
        unknown("the IRET returned to code the image did not lay out for it");
    }

    /// jmp rbx: a near jump through a register retires with RIP = rbx (ebx
    /// outside 64-bit code, APM Vol.3 JMP); the next fetch, at the target,
    /// walks L2's tables and the nested ones for an instruction fetch (APM
    /// 5.6: NX, SMEP; 15.25.6: #NPF with EXITINFO1's ID bit).
    void jump(std::uint8_t len) {
        if (!fetch()) return;
        // A single-step trap after the jump would report the target; the
        // processor's trap follows RIP += insn_len, not a branch.
        if ((cpu_.regs().rflags & arch::rflags::TF) != 0) return unknown("a single-step trap after JMP is not followed");
        // The jump retires as an instruction without intercept (its interrupt
        // shadow ends), then RIP is the target.
        const auto r = cpu_.guest_event(simple(EventKind::nop, len));
        if (r.outcome != SvmOutcome::no_exit) return after(r);
        cpu_.regs().rip = code64() ? v_.regs[3] : v_.regs[3] & 0xFFFFFFFFULL;
        if (!boundary()) return;
        if (!fetch()) return;
        const std::uint64_t target =
            code64() ? cpu_.regs().rip : (cpu_.regs().cs.base + cpu_.regs().rip) & 0xFFFFFFFFULL;
        // The image's code at the one target isolation.cpp admits outside
        // the paging window: the VMMCALL program.
        if (target == program_entry(Program::vmmcall)) return vmmcall();
        unknown("the fetch at the jump's target succeeded: code the image did not lay out");
    }

    [[nodiscard]] static cpu::Event simple(EventKind k, std::uint8_t len) {
        cpu::Event e;
        e.kind = k;
        e.insn_len = len;
        return e;
    }

    /// The program's instruction, then (when it did not exit) its VMMCALL.
    void instruction(const cpu::Event& e, const char* rax_unknown_because = nullptr) {
        if (!fetch()) return;
        const auto r = cpu_.guest_event(e);
        if (r.outcome == SvmOutcome::no_exit && rax_unknown_because != nullptr) rax_known_ = false;
        after(r);
    }

    void msr(std::uint8_t len) {
        const bool write = v_.program == Program::wrmsr;
        const auto index = static_cast<std::uint32_t>(v_.regs[1]);  // ecx
        const auto base = v_.vmcb.get(FieldId::msrpm_base_pa);
        if (cpu::msrpm_lookup(cpu::Bitmap{&mem_, base, {}}, index, write) == cpu::MapResult::unreadable)
            return unknown("the MSRPM is not the image's map");
        if (!fetch()) return;
        cpu::Event e = simple(write ? EventKind::wrmsr : EventKind::rdmsr, len);
        e.index = index;
        e.value = write ? (v_.regs[2] << 32 | (cpu_.regs().rax & 0xFFFFFFFF)) : 0;  // edx:eax
        const auto r = cpu_.guest_event(e);
        if (r.outcome == SvmOutcome::no_exit && !write && index == arch::msr::PAT) {
            // The one MSR whose value the processor defines here: with nested
            // paging L2 reads G_PAT, otherwise the host's PAT (APM 15.25.8);
            // the image never writes PAT, so the host's is the power-on value.
            // QEMU 7.2 does not load G_PAT (qemu.g_pat_not_loaded).
            const std::uint64_t pat = cpu_.regs().pat;
            cpu_.regs().rax = pat & 0xFFFFFFFF;
            rax_known_ = true;
            p_.path += fmt::format("; RDMSR of PAT reads {:#x}", pat);
            return after(r);
        }
        if (r.outcome == SvmOutcome::no_exit)
            return unknown(fmt::format("{} of MSR {:#x} reaches the emulator's MSR", write ? "WRMSR" : "RDMSR", index));
        after(r);
    }

    void io(std::uint8_t len) {
        const auto port = static_cast<std::uint16_t>(v_.regs[2]);  // dx
        const auto base = v_.vmcb.get(FieldId::iopm_base_pa);
        if (cpu::iopm_lookup(cpu::Bitmap{&mem_, base, {}}, port, 1) == cpu::MapResult::unreadable)
            return unknown("the IOPM is not the image's map");
        if (!fetch()) return;
        cpu::Event e = simple(EventKind::io, len);
        e.index = port;
        e.size = 1;
        e.in = v_.program == Program::in;
        // The instruction's address size is the code segment's default.
        e.address_size = code64() ? 64 : code32() ? 32 : 16;
        const auto r = cpu_.guest_event(e);
        if (r.outcome == SvmOutcome::no_exit) return unknown(fmt::format("port {:#x} is not intercepted", port));
        after(r);
    }

    void exception(unsigned vector, std::uint8_t len) {
        if (!fetch()) return;
        cpu::Event e = simple(EventKind::exception, len);
        e.index = vector;
        e.software = vector == 3;  // INT3
        const auto r = cpu_.guest_event(e);
        // #BP intercepted: where a trap's intercept leaves RIP is not followed.
        if (r.outcome == SvmOutcome::vmexit && vector == 3 && r.exit_code == arch::exit_code::EXCP_BASE + 3)
            follow_ = false;
        after(r);
    }

    void memory(std::uint8_t len) {
        if (!fetch()) return;
        // mov eax, [rbx] / mov [rbx], eax: DS-relative, rbx in 64-bit code, ebx otherwise.
        cpu::Event e = simple(EventKind::memory, len);
        e.linear = true;
        e.value = ds_linear(v_.regs[3]);
        e.access.write = v_.program == Program::store;
        const auto r = cpu_.guest_event(e);
        if (r.outcome == SvmOutcome::no_exit && v_.program == Program::load) rax_known_ = false;  // what memory held
        after(r);
    }

    /// The epilogue and the stubs' VMMCALL at RIP.
    void vmmcall() {
        if (!fetch()) return;
        after(cpu_.guest_event(simple(EventKind::vmmcall, kVmmcallLength)));
    }

    // --- following the processor ---

    /// The instruction fetch at RIP (APM 5.3, 15.25): L2's paging and the
    /// nested tables; the code must be memory the image laid out.
    [[nodiscard]] bool fetch() {
        const auto& regs = cpu_.regs();
        cpu::Event f;
        f.kind = EventKind::memory;
        f.linear = true;
        f.access.fetch = true;
        f.insn_len = 0;
        f.value = code64() ? regs.rip : (regs.cs.base + (regs.rip & 0xFFFFFFFFULL)) & 0xFFFFFFFFULL;
        const auto r = cpu_.guest_event(f);
        if (r.outcome == SvmOutcome::no_exit) return true;
        after(r);
        return false;
    }

    /// What the processor did with an event that did not retire quietly.
    void after(const cpu::SvmResult& r) {
        switch (r.outcome) {
            case SvmOutcome::vmexit: return exit(r);
            case SvmOutcome::delivered: return delivered(r);
            case SvmOutcome::no_exit:
                if (!boundary()) return;
                return vmmcall();  // the program's epilogue
            default: return unknown(r.note);
        }
    }

    /// An instruction boundary: the processor takes what is pending and
    /// unmasked (APM 15.21: V_IRQ and the virtual NMI, their intercepts); one
    /// it delivers goes through L2's IDT to the image's stub like an exception.
    [[nodiscard]] bool boundary() {
        const auto r = cpu_.poll();
        switch (r.outcome) {
            case SvmOutcome::nothing:
            case SvmOutcome::held_pending: return true;
            case SvmOutcome::vmexit: exit(r); return false;
            case SvmOutcome::delivered: delivered(r); return false;
            default: unknown(r.note); return false;
        }
    }

    /// An event went through L2's IDT: the image's stub for its vector
    /// runs "mov eax, vec; vmmcall".
    void delivered(const cpu::SvmResult& r) {
        if (r.delivery != cpu::Delivery::through_idt) return unknown(fmt::format("vector {}: {}", r.vector, r.note));
        const std::uint64_t rip = cpu_.regs().rip;
        const std::uint64_t stub = rip - NSVM_OR_L2_STUBS_PA;
        if (rip < NSVM_OR_L2_STUBS_PA || stub >= 256 * 16 || stub % 16 != 0)
            return unknown("the IDT gate leads to code the image did not put there");
        if (++stubs_ > 3) return unknown("nested exceptions");
        p_.path += fmt::format("; vector {} through the L2 IDT to the stub", r.vector);
        if (!fetch()) return;
        cpu_.regs().rax = stub / 16;
        cpu_.regs().rip += kStubMovLength;
        rax_known_ = true;
        vmmcall();
    }

    void exit(const cpu::SvmResult& r) {
        arch::Vmcb after;
        if (!mem_.peek_vmcb(kSlotVmcb, after)) return unknown("the VMCB slot is not backed (model bug)");
        p_.status = Status::vmexit;
        p_.exit_code = after.get(FieldId::exit_code);
        p_.exit_info_1 = after.get(FieldId::exit_info_1);
        p_.exit_info_2 = after.get(FieldId::exit_info_2);
        p_.exit_int_info = static_cast<std::uint32_t>(after.get(FieldId::exit_int_info));
        p_.gif = cpu_.gif();
        p_.path += fmt::format("; #VMEXIT({:#x}): {}", r.exit_code, r.note);
        if (!follow_) return;
        p_.rest_unchanged = true;
        p_.vmcb_after = after;
        p_.guest_rip = after.get(FieldId::rip);
        p_.guest_rsp = after.get(FieldId::rsp);
        p_.guest_rflags = after.get(FieldId::rflags);
        if (rax_known_) p_.guest_rax = after.get(FieldId::rax);
        // nRIP is the processor's when it has NRIPS (APM 15.7.1; Bochs on
        // every exit, profile nrip_on_every_exit).
        if (cpu_.cpu_model().has(checks::Feature::nrip_save)) p_.next_rip = after.get(FieldId::next_rip);
    }

    void unknown(std::string_view why) {
        p_.status = Status::vmexit;
        p_.path += fmt::format("{}{} (exit not predicted)", p_.path.empty() ? "" : "; ", why);
    }

    /// Image knowledge about L2 states the emulators run unarchitecturally.
    [[nodiscard]] bool guest_is_followable() {
        // A VMCB whose EFER.LMA disagrees with LME && PG (APM 3.1.7) that the
        // profile lets through: QEMU runs L2 in that mixed state, Bochs
        // recomputes LMA. Neither is architectural; not followed.
        const auto efer = v_.vmcb.get(FieldId::efer);
        const auto cr0 = v_.vmcb.get(FieldId::cr0);
        if (((efer & arch::efer::LMA) != 0) != ((efer & arch::efer::LME) != 0 && (cr0 & arch::cr0::PG) != 0)) {
            unknown("L2 runs with EFER.LMA inconsistent with EFER.LME and CR0.PG");
            return false;
        }
        // oracle/image/l2.S is 32/64-bit code; as 16-bit code it means other
        // things. Judged on the VMCB: after an exit during VMRUN's delivery
        // of EVENTINJ the processor's registers are the host's.
        const auto cs = v_.vmcb.segment(arch::Seg::cs).attrib;
        const bool vmcb_code64 = (efer & arch::efer::LMA) != 0 && (cs & arch::seg_attr::L) != 0;
        if (!vmcb_code64 && (cs & arch::seg_attr::DB) == 0) {
            unknown("L2's code segment is 16-bit; the image's programs are 32/64-bit code");
            return false;
        }
        // The image built one set of nested tables; others are not known.
        if ((v_.vmcb.get(FieldId::misc_ctl) & arch::misc_ctl::NP_ENABLE) != 0 &&
            v_.vmcb.get(FieldId::nested_cr3) != NSVM_OR_NPT_PML4_PA) {
            unknown("nested paging uses tables the image did not build");
            return false;
        }
        return true;
    }

    [[nodiscard]] bool code64() const {
        const auto& r = cpu_.regs();
        return (r.efer & arch::efer::LMA) != 0 && (r.cs.attrib & arch::seg_attr::L) != 0;
    }
    /// The linear address of a DS-relative operand at `offset` (rbx in
    /// 64-bit code, DS.base + ebx otherwise, APM 4.12.2).
    [[nodiscard]] std::uint64_t ds_linear(std::uint64_t offset) const {
        return code64() ? offset : (cpu_.regs().ds.base + (offset & 0xFFFFFFFFULL)) & 0xFFFFFFFFULL;
    }
    [[nodiscard]] bool code32() const { return !code64() && (cpu_.regs().cs.attrib & arch::seg_attr::DB) != 0; }

    cpu::SvmCpu& cpu_;
    cpu::GuestMemory& mem_;
    const Vector& v_;
    Prediction& p_;
    bool follow_ = true;     ///< false: L2's registers at the exit are not followed
    bool rax_known_ = true;  ///< false: rax holds what the emulator produced
    int stubs_ = 0;
};

class CpuModel final : public Model {
public:
    CpuModel(checks::CpuModel cpu, const checks::Profile& p) : cpu_(std::move(cpu)), profile_(p), image_(cpu_.maxphyaddr) {
        image_ok_ = build_page_tables(image_) && build_l2_environment(image_);
    }
    const checks::Profile& profile() const noexcept override { return profile_; }
    const checks::CpuModel& cpu() const noexcept override { return cpu_; }

    Prediction predict(const Vector& v) const override {
        Prediction p;
        if (!image_ok_) {
            p.path = "the image's memory could not be laid out (model bug; exit not predicted)";
            p.vmrun_predicted = false;
            return p;
        }
        cpu::GuestMemory mem = image_;
        if (!load_vector(v, mem)) {
            p.path = "the vector's maps could not be written (exit not predicted)";
            p.vmrun_predicted = false;
            return p;
        }
        cpu::SvmCpu c(cpu_, profile_, mem);
        c.regs() = image_host_registers(v);
        c.msrs().vm_hsave_pa = v.host.hsave_pa.value_or(NSVM_OR_HSAVE_PA);
        c.set_gif(v.host.gif);
        const cpu::SvmResult r = c.vmrun();
        if (r.failed_check != nullptr) failing_checks(v, *r.failed_check, p);
        switch (r.outcome) {
            case SvmOutcome::exception: return gate(r, c, p);
            case SvmOutcome::vmexit:
                if (r.failed_check != nullptr) return invalid(c, mem, p);
                break;
            case SvmOutcome::entered_guest: break;
            default:
                p.path = fmt::format("VMRUN: {} (exit not predicted)", r.note);
                p.vmrun_predicted = false;
                return p;
        }
        p.vmrun_valid = true;
        p.gif = false;  // APM 15.17: #VMEXIT clears GIF
        L2Run(c, mem, v, p).run(r);
        if (p.exit_code && p.status == Status::vmexit) {
            for (const auto& t : v.paging) {
                TablePatch after = t;
                if (!mem.read_le(t.pa, t.size, after.value)) {
                    p.paging_after.clear();
                    break;
                }
                p.paging_after.push_back(after);
            }
        }
        return p;
    }

private:
    /// The vector's VMCB at its slot, its MSRPM/IOPM bytes and page-table
    /// dwords (as run_slot patches them) and, when it moves VM_HSAVE_PA, the page VMRUN writes.
    [[nodiscard]] static bool load_vector(const Vector& v, cpu::GuestMemory& mem) {
        bool ok = mem.write_vmcb(kSlotVmcb, v.vmcb);
        if (const auto patches = map_patches(v)) {
            for (const auto& pt : *patches) {
                if (pt.map == NSVM_OR_MAP_TABLE) {  // a page-table dword at its physical address
                    ok &= put_u32(mem, pt.offset, pt.value);
                    continue;
                }
                const std::uint64_t base = pt.map == NSVM_OR_MAP_IOPM ? NSVM_OR_IOPM_PA : NSVM_OR_MSRPM_PA;
                const auto byte = static_cast<std::uint8_t>(pt.value);
                ok &= mem.write(base + pt.offset, std::span<const std::uint8_t>(&byte, 1));
            }
        }
        const std::uint64_t hsave = v.host.hsave_pa.value_or(NSVM_OR_HSAVE_PA);
        if (hsave < (std::uint64_t{1} << 32)) ok &= mem.map(cpu::page_of(hsave));
        return ok;
    }

    /// Every failing check (checks::evaluate), the processor's first one first.
    void failing_checks(const Vector& v, const checks::Check& first, Prediction& p) const {
        const auto host = image_host_state(v);
        const checks::Context ctx{v.vmcb, cpu_, profile_, &host, &image_};
        p.failing_checks.emplace_back(first.id);
        for (const auto& f : checks::evaluate(ctx).failures)
            if (f.check != &first) p.failing_checks.emplace_back(f.check->id);
    }

    /// An instruction gate: VMRUN never reads the VMCB, GIF is untouched.
    static Prediction& gate(const cpu::SvmResult& r, const cpu::SvmCpu& c, Prediction& p) {
        if (r.failed_check == nullptr) {
            // A model-only fault (the operand or VM_HSAVE_PA is memory the
            // image does not lay out): what the emulator does is not known.
            p.path = fmt::format("VMRUN: {} (exit not predicted)", r.note);
            p.vmrun_predicted = false;
            return p;
        }
        p.status = Status::exception;
        p.vmrun_valid = false;
        p.exception_vector = r.vector;
        p.gif = c.gif();
        p.path = fmt::format("{} before the VMCB is read ({})", r.vector == 6 ? "#UD" : "#GP(0)", r.failed_check->id);
        return p;
    }

    /// VMEXIT_INVALID (APM 15.5.1), read back from the VMCB the processor wrote.
    static Prediction& invalid(const cpu::SvmCpu& c, const cpu::GuestMemory& mem, Prediction& p) {
        arch::Vmcb after;
        p.status = Status::vmexit;
        p.vmrun_valid = false;
        if (mem.peek_vmcb(kSlotVmcb, after)) {
            p.exit_code = after.get(FieldId::exit_code);
            p.exit_info_1 = after.get(FieldId::exit_info_1);
            p.exit_info_2 = after.get(FieldId::exit_info_2);
        }
        p.gif = c.gif();
        p.path = fmt::format("VMRUN fails its consistency checks: {}", fmt::join(p.failing_checks, ", "));
        return p;
    }

    checks::CpuModel cpu_;
    const checks::Profile& profile_;
    cpu::GuestMemory image_;  ///< the image's memory before any vector (copied per vector)
    bool image_ok_ = false;
};

}  // namespace

std::unique_ptr<Model> make_image_model(checks::CpuModel cpu, const checks::Profile& profile) {
    return std::make_unique<CpuModel>(std::move(cpu), profile);
}

}  // namespace nsvm::oracle
