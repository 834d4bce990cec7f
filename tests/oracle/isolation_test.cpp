// Isolation between the vectors of a batch: a vector that could write another
// vector's slot or the image's pages is refused (exit 2 naming the vector and
// the member from a file; cannot_run in the runner), so it cannot change
// another vector's result (docs/oracle.md "Isolation between vectors").
#include "hardening_support.hpp"

#include <functional>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"

namespace nsvm::oracle::hardening {
namespace {

using arch::FieldId;
namespace ec = arch::exit_code;
using namespace std::chrono_literals;


/// Vector 0 stores into the ASID of the VMCB in slot 1 (layout.h): were it
/// allowed, the vector after it would fail VMRUN with ASID 0.
Vector store_into_next_slot() {
    auto v = named(base_vector(BaseMode::long64, Program::store), "attacker");
    v.regs[3] = NSVM_OR_SLOTS_PA + NSVM_OR_SLOT_SIZE + 0x058;  // slot 1, control.asid
    v.vmcb.set(FieldId::rax, 0);
    return v;
}

TEST(Isolation, EveryGeneratedVectorIsConfined) {
    for (const auto& [cpu, prof] : {std::pair{"qemu-tcg", checks::ProfileId::qemu},
                                    std::pair{"bochs-ryzen", checks::ProfileId::bochs},
                                    std::pair{"zen4", checks::ProfileId::kvm}}) {
        GenOptions g;
        g.cpu = *checks::find_builtin_model(cpu);
        g.profile = &checks::profile(prof);
        g.seed = 7;
        g.count = 3000;
        const auto all = generate(g);
        for (const auto& v : all) {
            const auto p = isolation_problem(v);
            EXPECT_FALSE(p.has_value()) << v.id << ": " << p->field << ": " << p->message;
        }
        EXPECT_GT(all.size(), 3300U) << cpu;
    }
}

/// The IRET program (l2.S 32) returns through the frame it pushes from rbx
/// (RIP), rdi (CS), rsi (RFLAGS), rcx (RSP) and rdx (SS).
Vector iret_vector(BaseMode mode) {
    auto v = named(base_vector(mode, Program::iret), "iret");
    v.regs[2] = NSVM_OR_L2_DS;
    v.regs[1] = NSVM_OR_L2_STACK_TOP - 0x80;
    v.regs[6] = 0x2;
    v.regs[7] = mode == BaseMode::long64 ? NSVM_OR_L2_CS64 : NSVM_OR_L2_CS32;
    v.regs[3] = program_entry(Program::vmmcall);
    return v;
}

TEST(Isolation, IretReturnsOnlyToTheVmmcallProgramOnTheL2Stack) {
    const auto refused = [](const Vector& v) -> std::string {
        const auto p = isolation_problem(v);
        return p ? p->field : "";
    };
    // Admitted: the VMMCALL program on the L2 stack, in 64-bit and 32-bit code,
    // and a non-canonical return address in 64-bit code (#GP(0) before any fetch).
    EXPECT_EQ(refused(iret_vector(BaseMode::long64)), "");
    EXPECT_EQ(refused(iret_vector(BaseMode::prot32)), "");
    auto nc = iret_vector(BaseMode::long64);
    nc.regs[3] = 0x8000000000200000ULL;
    EXPECT_EQ(refused(nc), "");
    // Refused: another program (its operands unchecked), code in the slots,
    // a non-canonical address outside 64-bit code (EIP = its low half).
    auto other = iret_vector(BaseMode::long64);
    other.regs[3] = program_entry(Program::store);
    EXPECT_EQ(refused(other), "l2.regs.rbx");
    other.regs[3] = NSVM_OR_SLOTS_PA;
    EXPECT_EQ(refused(other), "l2.regs.rbx");
    auto nc32 = iret_vector(BaseMode::prot32);
    nc32.regs[3] = 0x8000000000000000ULL;
    EXPECT_EQ(refused(nc32), "l2.regs.rbx");
    // IRETQ's new RSP in the batch header: later exception frames land there.
    auto sp = iret_vector(BaseMode::long64);
    sp.regs[1] = NSVM_OR_BATCH_PA + 0x40;
    EXPECT_EQ(refused(sp), "l2.regs.rcx");
    // A GDT other than the image's: descriptors elsewhere could be written (accessed bit).
    auto gdt = iret_vector(BaseMode::long64);
    auto gdtr = gdt.vmcb.segment(arch::Seg::gdtr);
    gdtr.base = NSVM_OR_SLOTS_PA;
    gdt.vmcb.set_segment(arch::Seg::gdtr, gdtr);
    EXPECT_EQ(refused(gdt), "vmcb.save.gdtr.base");
    // Outside 64-bit code: an outer-level return, virtual-8086 mode, a task return.
    auto outer = iret_vector(BaseMode::prot32);
    outer.regs[7] = NSVM_OR_L2_CS32 | 3;
    EXPECT_EQ(refused(outer), "l2.regs.rdi");
    auto v86 = iret_vector(BaseMode::prot32);
    v86.regs[6] = 0x2 | arch::rflags::VM;
    EXPECT_EQ(refused(v86), "l2.regs.rsi");
    auto task = iret_vector(BaseMode::prot32);
    task.vmcb.set(FieldId::rflags, 0x2 | arch::rflags::NT);
    EXPECT_EQ(refused(task), "vmcb.save.rflags");
}

TEST(Isolation, WritesIntoAnotherSlotOrTheImageAreRefusedNamingTheVectorAndMember) {
    struct Case {
        std::string member;
        std::function<void(Vector&)> aim;
    };
    const std::vector<Case> cases = {
        {"l2.regs.rbx", [](Vector& v) { v = store_into_next_slot(); }},
        {"host.hsave_pa", [](Vector& v) { v.host.hsave_pa = NSVM_OR_SLOTS_PA + 3 * NSVM_OR_SLOT_SIZE; }},
        {"host.vmrun_rax", [](Vector& v) { v.host.vmrun_rax = NSVM_OR_SLOTS_PA + NSVM_OR_SLOT_SIZE; }},
        {"host.hsave_pa", [](Vector& v) { v.host.hsave_pa = NSVM_OR_MSRPM_PA; }},  // the image's MSRPM
        {"vmcb.save.rsp", [](Vector& v) { v.vmcb.set(FieldId::rsp, NSVM_OR_BATCH_PA + 0x40); }},
        {"vmcb.save.cr3", [](Vector& v) { v.vmcb.set(FieldId::cr3, 0x600000); }},
        {"vmcb.save.rip", [](Vector& v) { v.vmcb.set(FieldId::rip, NSVM_OR_SLOTS_PA); }},
        {"l2.regs.rcx", [](Vector& v) {  // WRMSR of the APIC base, not intercepted
             v.program = Program::wrmsr;
             v.vmcb.set(FieldId::rip, program_entry(Program::wrmsr));
             v.regs[1] = 0x1B;
         }},
        {"l2.regs.rcx", [](Vector& v) {  // XSETBV of XCR0 = 3 (x87 | SSE), not intercepted
             v.program = Program::xsetbv;
             v.vmcb.set(FieldId::rip, program_entry(Program::xsetbv));
             v.vmcb.set(FieldId::rax, 3);
         }},
        {"l2.regs.rbx", [](Vector& v) {  // JMP into the slots: code the image did not put there
             v.program = Program::jmp;
             v.vmcb.set(FieldId::rip, program_entry(Program::jmp));
             v.regs[3] = NSVM_OR_SLOTS_PA;
         }},
        {"l2.regs.rbx", [](Vector& v) {  // JMP to a program other than VMMCALL (its operands unchecked)
             v.program = Program::jmp;
             v.vmcb.set(FieldId::rip, program_entry(Program::jmp));
             v.regs[3] = program_entry(Program::store);
         }},
        {"vmcb.save.rax", [](Vector& v) {  // JMP into the window: zero bytes would add to [rAX]
             v.program = Program::jmp;
             v.vmcb.set(FieldId::rip, program_entry(Program::jmp));
             v.regs[3] = NSVM_OR_WINDOW_PA;
             v.vmcb.set(FieldId::rax, NSVM_OR_SLOTS_PA);
         }},
        {"paging[0].value", [](Vector& v) {  // JMP into the window with code in a spare page
             v.program = Program::jmp;
             v.vmcb.set(FieldId::rip, program_entry(Program::jmp));
             v.regs[3] = NSVM_OR_WINDOW_PA;
             v.vmcb.set(FieldId::rax, NSVM_OR_L2_SCRATCH_PA);
             v.paging = {{NSVM_OR_SPARE_PT_PA, 0xD9010F90, 4}};  // nop; vmmcall
         }},
        {"vmcb.save.cpl", [](Vector& v) {  // CPL 3 in 32-bit code: the TSS read as SS0:ESP0
             v = base_vector(BaseMode::pae32);
             v.vmcb.set(FieldId::cpl, 3);
         }},
        {"l2.regs.rcx", [](Vector& v) {  // XSETBV of XCR0 = 7 (x87 | SSE | AVX): legal where AVX is
             v.program = Program::xsetbv;
             v.vmcb.set(FieldId::rip, program_entry(Program::xsetbv));
             v.vmcb.set(FieldId::rax, 7);
         }},
    };
    for (const auto& c : cases) {
        auto v = named(base_vector(BaseMode::long64), "aimed");
        c.aim(v);
        v.id = "aimed";
        const auto r = parse_vectors(to_json_line(v) + "\n", "aimed.jsonl");
        ASSERT_FALSE(r.has_value()) << c.member;
        EXPECT_EQ(r.error().field, c.member) << r.error().message;
        EXPECT_EQ(r.error().line, 1);
        EXPECT_NE(r.error().message.find("\"aimed\" refused"), std::string::npos) << r.error().message;
    }
    // The pages every vector may use stay usable.
    auto ok = named(base_vector(BaseMode::long64, Program::store), "scratch");
    ok.regs[3] = NSVM_OR_L2_SCRATCH_PA + 8;
    ok.host.hsave_pa = NSVM_OR_HSAVE_PA;
    EXPECT_TRUE(parse_vectors(to_json_line(ok) + "\n", "ok.jsonl").has_value());
    // XSETBV of XCR0's reset value, the host's, may run unintercepted.
    auto xcr0 = named(base_vector(BaseMode::long64, Program::xsetbv), "xcr0_reset");
    xcr0.vmcb.set(FieldId::rax, 1);
    EXPECT_TRUE(parse_vectors(to_json_line(xcr0) + "\n", "ok.jsonl").has_value());
    // Values every processor refuses with #GP(0) never reach XCR0: x87
    // clear, AVX without SSE, XCR1.
    for (const auto& [rcx, rax] : {std::pair<std::uint64_t, std::uint64_t>{0, 0}, {0, 5}, {1, 1}}) {
        auto gp = named(base_vector(BaseMode::long64, Program::xsetbv), "xsetbv_gp");
        gp.regs[1] = rcx;
        gp.vmcb.set(FieldId::rax, rax);
        EXPECT_TRUE(parse_vectors(to_json_line(gp) + "\n", "ok.jsonl").has_value()) << rcx << " " << rax;
    }
    // CPL 3 in 64-bit code: an exception switches to the image's RSP0, the L2 stack top.
    auto user = named(base_vector(BaseMode::long64, Program::load), "cpl3");
    user.vmcb.set(FieldId::cpl, 3);
    user.regs[3] = NSVM_OR_L2_SCRATCH_PA;
    EXPECT_TRUE(parse_vectors(to_json_line(user) + "\n", "ok.jsonl").has_value());
    // JMP to the VMMCALL program, and into the window with rAX in the scratch page.
    auto jmp = named(base_vector(BaseMode::long64, Program::jmp), "jmp");
    jmp.regs[3] = program_entry(Program::vmmcall);
    EXPECT_TRUE(parse_vectors(to_json_line(jmp) + "\n", "ok.jsonl").has_value());
    jmp.regs[3] = NSVM_OR_WINDOW_PA + 0x200000;
    jmp.vmcb.set(FieldId::rax, NSVM_OR_L2_SCRATCH_PA);
    EXPECT_TRUE(parse_vectors(to_json_line(jmp) + "\n", "ok.jsonl").has_value());
}

TEST(Isolation, DiffRefusesAVectorAimedAtAnotherWithExit2) {
    const auto f =
        write_temp("aimed.jsonl", lines({named(base_vector(BaseMode::long64), "victim"), store_into_next_slot()}));
    for (const std::string cmd : {"diff --backend qemu ", "oracle run --backend qemu "}) {
        const auto r = nsvm(cmd + f.string());
        EXPECT_EQ(r.status, 2) << cmd << r.err;
        EXPECT_NE(r.err.find(":2: l2.regs.rbx"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("\"attacker\""), std::string::npos) << r.err;
    }
}

TEST(Isolation, AVectorAimedAtTheNextCannotChangeItsResult) {
    NEED("qemu-system-x86_64");
    auto r = runner(Backend::qemu, 3000ms);
    ASSERT_TRUE(r);
    const auto victim = named(base_vector(BaseMode::long64), "victim");
    const std::vector<Vector> alone = {victim};
    const auto a = r->run(alone);
    ASSERT_TRUE(a.has_value()) << a.error();
    // The runner is the last line of defence (generated vectors and library
    // callers do not pass through the reader).
    const std::vector<Vector> both = {store_into_next_slot(), victim};
    const auto b = r->run(both);
    ASSERT_TRUE(b.has_value()) << b.error();
    ASSERT_EQ(b->size(), 2U);
    EXPECT_EQ((*b)[0].status, Status::cannot_run);
    EXPECT_NE((*b)[0].reason.find("refused: l2.regs.rbx"), std::string::npos) << (*b)[0].reason;
    const auto& x = (*a)[0];
    const auto& y = (*b)[1];
    EXPECT_EQ(y.status, Status::vmexit) << y.reason;
    EXPECT_EQ(y.exit_code(), ec::VMMCALL);
    EXPECT_EQ(y.exit_code(), x.exit_code());
    EXPECT_EQ(y.vmcb.get(FieldId::asid), 1U);
    for (const auto& f : arch::kFields) {
        if (f.id == FieldId::tsc_offset) continue;
        EXPECT_EQ(y.vmcb.get(f.id), x.vmcb.get(f.id)) << f.name;
    }
}

}  // namespace
}  // namespace nsvm::oracle::hardening
