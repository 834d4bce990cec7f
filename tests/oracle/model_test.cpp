// The oracle's model runs each vector on cpu::SvmCpu over the image's memory:
// the exit, its fields and the written-back VMCB are the processor's. These
// tests change what the processor reads (intercept bits, the maps, L2's
// registers and tables) and expect the prediction to follow.
#include <gtest/gtest.h>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/oracle/gen.hpp"
#include "nsvm/oracle/model.hpp"

namespace nsvm::oracle {
namespace {

using arch::FieldId;
namespace ec = arch::exit_code;
namespace ic = arch::intercept;

Prediction predict(const Vector& v, const char* cpu = "zen4", checks::ProfileId prof = checks::ProfileId::apm) {
    const auto model = make_image_model(*checks::find_builtin_model(cpu), checks::profile(prof));
    return model->predict(v);
}

Vector program(Program p, std::initializer_list<unsigned> intercepts = {}) {
    Vector v = base_vector(BaseMode::long64, p);
    for (unsigned b : intercepts) v.vmcb.set_intercept(b);
    return v;
}

constexpr std::uint64_t kStub = NSVM_OR_L2_STUBS_PA;

TEST(ModelOnSvmCpu, AnInterceptBitDecidesTheExitOfEachProgram) {
    struct Case {
        Program prog;
        unsigned bit;
        std::uint64_t code;
        std::uint8_t len;
    };
    for (const Case c : {Case{Program::cpuid, ic::CPUID, ec::CPUID, 2}, Case{Program::rdtsc, ic::RDTSC, ec::RDTSC, 2},
                         Case{Program::stgi, ic::STGI, ec::STGI, 3}, Case{Program::clgi, ic::CLGI, ec::CLGI, 3},
                         Case{Program::pause, ic::PAUSE, ec::PAUSE, 2}, Case{Program::invd, ic::INVD, ec::INVD, 2},
                         Case{Program::wbinvd, ic::WBINVD, ec::WBINVD, 2}}) {
        SCOPED_TRACE(std::string(program_name(c.prog)));
        const auto entry = program_entry(c.prog);
        const auto with = predict(program(c.prog, {c.bit}));
        EXPECT_EQ(with.exit_code, std::optional<std::uint64_t>(c.code)) << with.path;
        EXPECT_EQ(with.guest_rip, std::optional<std::uint64_t>(entry));
        EXPECT_EQ(with.next_rip, std::optional<std::uint64_t>(entry + c.len));  // zen4 has NRIPS
        // Without the bit the instruction retires and the epilogue's VMMCALL exits.
        const auto without = predict(program(c.prog));
        EXPECT_EQ(without.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << without.path;
        EXPECT_EQ(without.guest_rip, std::optional<std::uint64_t>(entry + c.len));
    }
}

// L2's own paging through the vector's paging patches (docs/oracle.md
// "Paging patches"): the processor's walk decides the exit.
namespace pg {
constexpr std::uint64_t kAddr = NSVM_OR_WINDOW_PA + 0x200000;
constexpr std::uint64_t kPde = NSVM_OR_PML4_PA + 0x2000 + 8 * 511;
constexpr std::uint64_t kPt = NSVM_OR_SPARE_PT_PA;
constexpr std::uint64_t kPte = kPt + 8 * ((kAddr >> 12) & 0x1FF);
constexpr std::uint64_t kNptSpare = NSVM_OR_NPT_PML4_PA + 0x2000 + 8 * 3;
constexpr std::uint64_t kNptWindow = NSVM_OR_NPT_PML4_PA + 0x2000 + 8 * 511;

Vector access(Program p, std::vector<TablePatch> patches, bool pf_intercept = true) {
    Vector v = program(p, pf_intercept ? std::initializer_list<unsigned>{ic::exception(14)}
                                       : std::initializer_list<unsigned>{});
    v.regs[3] = kAddr;
    v.paging = std::move(patches);
    return v;
}
}  // namespace pg

TEST(ModelOnSvmCpu, PagingPatchesDecideL2PageFaults) {
    using namespace pg;
    // A not-present PDE: #PF, error code 0 (APM 8.4.2), the address in EXITINFO2.
    auto r = predict(access(Program::load, {{kPde, 0, 8}}));
    EXPECT_EQ(r.exit_code, std::optional<std::uint64_t>(ec::EXCP_BASE + 14)) << r.path;
    EXPECT_EQ(r.exit_info_1, std::optional<std::uint64_t>(0));
    EXPECT_EQ(r.exit_info_2, std::optional<std::uint64_t>(kAddr));
    // The patched entries as the exit left them: a not-present entry gets no A bit.
    EXPECT_EQ(r.paging_after, (std::vector<TablePatch>{{kPde, 0, 8}}));
    // Without the patch the same load walks the image's 2 MiB page and does not fault.
    r = predict(access(Program::load, {}));
    EXPECT_NE(r.exit_code, std::optional<std::uint64_t>(ec::EXCP_BASE + 14)) << r.path;
    // A read-only PTE written with CR0.WP = 1: P|W; with WP = 0 the store retires.
    auto ro = access(Program::store, {{kPde, kPt | 7, 8}, {kPte, kAddr | 5, 8}});
    r = predict(ro);
    EXPECT_EQ(r.exit_info_1, std::optional<std::uint64_t>(3)) << r.path;
    ro.vmcb.set(FieldId::cr0, ro.vmcb.get(FieldId::cr0) & ~arch::cr0::WP);
    r = predict(ro);
    EXPECT_EQ(r.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << r.path;
    // The store retired: A on the PDE, A and D on the PTE.
    EXPECT_EQ(r.paging_after, (std::vector<TablePatch>{{kPde, kPt | 7 | 0x20, 8}, {kPte, kAddr | 5 | 0x60, 8}}));
    // PTE bit 63 with EFER.NXE = 0: P|RSV.
    r = predict(access(Program::load, {{kPde, kPt | 7, 8}, {kPte, kAddr | 3 | (std::uint64_t{1} << 63), 8}}));
    EXPECT_EQ(r.exit_info_1, std::optional<std::uint64_t>(9)) << r.path;
    // APM 5.4.2: the PDE the walk used gets A; the faulting leaf does not.
    EXPECT_EQ(r.paging_after, (std::vector<TablePatch>{{kPde, kPt | 7 | 0x20, 8},
                                                       {kPte, kAddr | 3 | (std::uint64_t{1} << 63), 8}}));
    // Not intercepted: through L2's IDT to the stub for vector 14, CR2 written.
    r = predict(access(Program::load, {{kPde, kPt | 7, 8}}, false));
    EXPECT_EQ(r.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << r.path;
    EXPECT_EQ(r.guest_rax, std::optional<std::uint64_t>(14));
    ASSERT_TRUE(r.vmcb_after.has_value());
    EXPECT_EQ(r.vmcb_after->get(FieldId::cr2), kAddr);
}

TEST(ModelOnSvmCpu, NestedPatchesTellATablePageFromTheFinalPage) {
    using namespace pg;
    // APM 15.25.6: EXITINFO1 bit 33 for L2's page-table read, bit 32 for the final access.
    auto table = access(Program::load, {{kPde, kPt | 7, 8}, {kPte, kAddr | 7, 8}, {kNptSpare, 0, 8}});
    auto final_page = access(Program::load, {{kPde, kPt | 7, 8}, {kPte, kAddr | 7, 8}, {kNptWindow, 0, 8}});
    for (auto* v : {&table, &final_page}) {
        v->vmcb.set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE);
        v->vmcb.set(FieldId::nested_cr3, NSVM_OR_NPT_PML4_PA);
    }
    auto r = predict(table);
    EXPECT_EQ(r.exit_code, std::optional<std::uint64_t>(ec::NPF)) << r.path;
    ASSERT_TRUE(r.exit_info_1.has_value());
    EXPECT_EQ(*r.exit_info_1 >> 32, 2U);
    EXPECT_EQ(r.exit_info_2, std::optional<std::uint64_t>(kPte));
    r = predict(final_page);
    EXPECT_EQ(r.exit_code, std::optional<std::uint64_t>(ec::NPF)) << r.path;
    ASSERT_TRUE(r.exit_info_1.has_value());
    EXPECT_EQ(*r.exit_info_1 >> 32, 1U);
    EXPECT_EQ(r.exit_info_2, std::optional<std::uint64_t>(kAddr));
}

TEST(ModelOnSvmCpu, JmpFetchesAtItsTargetThroughL2sAndTheNestedTables) {
    using namespace pg;
    constexpr std::uint64_t kNx = std::uint64_t{1} << 63;
    // To the VMMCALL program: its exit, RIP there.
    auto to_vmmcall = program(Program::jmp);
    to_vmmcall.regs[3] = program_entry(Program::vmmcall);
    auto r = predict(to_vmmcall);
    EXPECT_EQ(r.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << r.path;
    EXPECT_EQ(r.guest_rip, std::optional<std::uint64_t>(program_entry(Program::vmmcall)));
    // An NX page with EFER.NXE: #PF(P | I/D) at the target (APM 8.4.2, 5.6.3).
    auto nx = access(Program::jmp, {{kPde, kPt | 7, 8}, {kPte, kAddr | 7 | kNx, 8}});
    nx.vmcb.set(FieldId::efer, nx.vmcb.get(FieldId::efer) | arch::efer::NXE);
    r = predict(nx);
    EXPECT_EQ(r.exit_code, std::optional<std::uint64_t>(ec::EXCP_BASE + 14)) << r.path;
    EXPECT_EQ(r.exit_info_1, std::optional<std::uint64_t>(0x11));
    EXPECT_EQ(r.exit_info_2, std::optional<std::uint64_t>(kAddr));
    EXPECT_EQ(r.guest_rip, std::optional<std::uint64_t>(kAddr)) << "the fault is the target's";
    // Without NXE bit 63 is reserved: P | RSV, no I/D.
    nx.vmcb.set(FieldId::efer, nx.vmcb.get(FieldId::efer) & ~arch::efer::NXE);
    EXPECT_EQ(predict(nx).exit_info_1, std::optional<std::uint64_t>(0x9));
    // A fetch that succeeds runs what the image did not lay out: not predicted.
    auto through = access(Program::jmp, {});
    r = predict(through);
    EXPECT_FALSE(r.exit_code.has_value() && *r.exit_code == ec::EXCP_BASE + 14) << r.path;
    EXPECT_NE(r.path.find("not predicted"), std::string::npos) << r.path;
    // The nested NX bit under the image's host EFER.NXE: #NPF with P, US, ID
    // and bit 32 (APM 15.25.6).
    auto nested = access(Program::jmp, {{kNptWindow, kAddr | 0x87 | kNx, 8}});
    nested.vmcb.set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE);
    nested.vmcb.set(FieldId::nested_cr3, NSVM_OR_NPT_PML4_PA);
    r = predict(nested);
    EXPECT_EQ(r.exit_code, std::optional<std::uint64_t>(ec::NPF)) << r.path;
    EXPECT_EQ(r.exit_info_1, std::optional<std::uint64_t>((std::uint64_t{1} << 32) | 0x15));
    EXPECT_EQ(r.exit_info_2, std::optional<std::uint64_t>(kAddr));
}

/// The IRET program (l2.S 32): push rdx, rcx, rsi, rdi, rbx (SS, RSP,
/// RFLAGS, CS, RIP), then IRETQ (48 CF), or "dec eax; iretd" in 32-bit code.
Vector iret_program(BaseMode mode = BaseMode::long64) {
    Vector v = base_vector(mode, Program::iret);
    v.regs[2] = NSVM_OR_L2_DS;
    v.regs[1] = NSVM_OR_L2_STACK_TOP - 0x80;
    v.regs[6] = 0x8C7;  // CF PF ZF SF OF
    v.regs[7] = mode == BaseMode::long64 ? NSVM_OR_L2_CS64 : NSVM_OR_L2_CS32;
    v.regs[3] = program_entry(Program::vmmcall);
    return v;
}

TEST(ModelOnSvmCpu, IretProgramReturnsThroughTheFrameItPushed) {
    const std::uint64_t entry = program_entry(Program::iret);
    // Intercepted (APM 15.7.1, exit 74h): RIP at the IRETQ after five pushes,
    // nRIP past its two bytes, RSP below the 40-byte frame.
    auto r = predict([&] {
        auto v = iret_program();
        v.vmcb.set_intercept(ic::IRET);
        return v;
    }());
    EXPECT_EQ(r.exit_code, std::optional<std::uint64_t>(ec::IRET)) << r.path;
    EXPECT_EQ(r.guest_rip, std::optional<std::uint64_t>(entry + 5));
    EXPECT_EQ(r.next_rip, std::optional<std::uint64_t>(entry + 7));
    EXPECT_EQ(r.guest_rsp, std::optional<std::uint64_t>(NSVM_OR_L2_STACK_TOP - 40));
    // Completed: the VMMCALL program runs on the popped RSP with the popped RFLAGS.
    r = predict(iret_program());
    EXPECT_EQ(r.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << r.path;
    EXPECT_EQ(r.guest_rip, std::optional<std::uint64_t>(program_entry(Program::vmmcall)));
    EXPECT_EQ(r.guest_rsp, std::optional<std::uint64_t>(NSVM_OR_L2_STACK_TOP - 0x80));
    EXPECT_EQ(r.guest_rflags, std::optional<std::uint64_t>(0x8C7));
    ASSERT_TRUE(r.vmcb_after.has_value());
    EXPECT_EQ(r.vmcb_after->segment(arch::Seg::cs).selector, NSVM_OR_L2_CS64);
    // A non-canonical return address: the IRET's own #GP(0), nothing popped.
    auto nc = iret_program();
    nc.regs[3] = 0x8000000000200000ULL;
    nc.vmcb.set_intercept(ic::exception(13));
    r = predict(nc);
    EXPECT_EQ(r.exit_code, std::optional<std::uint64_t>(ec::EXCP_BASE + 13)) << r.path;
    EXPECT_EQ(r.exit_info_1, std::optional<std::uint64_t>(0));
    EXPECT_EQ(r.guest_rip, std::optional<std::uint64_t>(entry + 5));
    // A data segment as CS: #GP(selector).
    auto data_cs = iret_program();
    data_cs.regs[7] = NSVM_OR_L2_DS;
    data_cs.vmcb.set_intercept(ic::exception(13));
    EXPECT_EQ(predict(data_cs).exit_info_1, std::optional<std::uint64_t>(NSVM_OR_L2_DS));
    // IRETD in 32-bit protected mode: dec eax first; EIP, CS, EFLAGS popped,
    // edx and ecx stay on the stack (20 bytes pushed, 12 popped).
    auto legacy = iret_program(BaseMode::prot32);
    legacy.vmcb.set(FieldId::rax, 0x1234);
    r = predict(legacy);
    EXPECT_EQ(r.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << r.path;
    EXPECT_EQ(r.guest_rax, std::optional<std::uint64_t>(0x1233));
    EXPECT_EQ(r.guest_rsp, std::optional<std::uint64_t>(NSVM_OR_L2_STACK_TOP - 8));
    EXPECT_EQ(r.guest_rflags, std::optional<std::uint64_t>(0x8C7));
}

TEST(ModelOnSvmCpu, IretProgramUnblocksVirtualNmisOnlyWhereTheCpuHasThem) {
    namespace ictl = arch::int_ctl;
    auto v = iret_program();
    v.vmcb.set_intercept(ic::NMI);
    v.vmcb.set(FieldId::int_ctl, ictl::V_NMI_ENABLE | ictl::V_NMI_BLOCKING);
    // zen4 has vNMI: the completed IRET clears V_NMI_BLOCKING (APM 15.21.10).
    auto r = predict(v);
    EXPECT_EQ(r.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << r.path;
    ASSERT_TRUE(r.vmcb_after.has_value());
    EXPECT_EQ(r.vmcb_after->get(FieldId::int_ctl) & ictl::V_NMI_BLOCKING, 0U);
    // QEMU's TCG model has no vNMI: the bits are the VMM's and stay.
    r = predict(v, "qemu-tcg", checks::ProfileId::qemu);
    ASSERT_TRUE(r.vmcb_after.has_value()) << r.path;
    EXPECT_NE(r.vmcb_after->get(FieldId::int_ctl) & ictl::V_NMI_BLOCKING, 0U);
    // With V_NMI_PENDING the virtual NMI is taken after the IRET through gate 2.
    v.vmcb.set(FieldId::int_ctl, ictl::V_NMI_ENABLE | ictl::V_NMI_BLOCKING | ictl::V_NMI_PENDING);
    r = predict(v);
    EXPECT_EQ(r.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << r.path;
    EXPECT_EQ(r.guest_rax, std::optional<std::uint64_t>(2));
    EXPECT_EQ(r.guest_rip, std::optional<std::uint64_t>(kStub + 2 * 16 + 5));
}

TEST(ModelOnSvmCpu, CplThreeAccessesAreUserAccesses) {
    using namespace pg;
    const auto at_cpl3 = [](Vector v) {
        v.vmcb.set(FieldId::cpl, 3);
        return v;
    };
    // APM 8.4.2, 5.6.1: a user read of a supervisor page is P|U, a user
    // store to a read-only page P|W|U (CR0.WP or not), a user fetch of a
    // supervisor page P|U|I/D under EFER.NXE.
    auto r = predict(at_cpl3(access(Program::load, {{kPde, kPt | 7, 8}, {kPte, kAddr | 3, 8}})));
    EXPECT_EQ(r.exit_code, std::optional<std::uint64_t>(ec::EXCP_BASE + 14)) << r.path;
    EXPECT_EQ(r.exit_info_1, std::optional<std::uint64_t>(0x5));
    auto ro = at_cpl3(access(Program::store, {{kPde, kPt | 7, 8}, {kPte, kAddr | 5, 8}}));
    ro.vmcb.set(FieldId::cr0, ro.vmcb.get(FieldId::cr0) & ~arch::cr0::WP);
    EXPECT_EQ(predict(ro).exit_info_1, std::optional<std::uint64_t>(0x7));
    auto fetch = at_cpl3(access(Program::jmp, {{kPde, kPt | 7, 8}, {kPte, kAddr | 3, 8}}));
    fetch.vmcb.set(FieldId::efer, fetch.vmcb.get(FieldId::efer) | arch::efer::NXE);
    EXPECT_EQ(predict(fetch).exit_info_1, std::optional<std::uint64_t>(0x15));
    // The same read at CPL 0 retires (the window's page is beyond RAM: its
    // value is not predicted, the access is not refused).
    r = predict(access(Program::load, {{kPde, kPt | 7, 8}, {kPte, kAddr | 3, 8}}));
    EXPECT_NE(r.exit_code, std::optional<std::uint64_t>(ec::EXCP_BASE + 14)) << r.path;
}

TEST(ModelOnSvmCpu, XsetbvOfAValueXcr0CannotHoldIsGpAfterTheIntercept) {
    auto x = program(Program::xsetbv);
    x.vmcb.set(FieldId::cr4, x.vmcb.get(FieldId::cr4) | arch::cr4::OSXSAVE);
    x.vmcb.set(FieldId::rax, 5);  // AVX without SSE
    auto r = predict(x);
    EXPECT_EQ(r.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << r.path;
    EXPECT_EQ(r.guest_rax, std::optional<std::uint64_t>(13)) << "#GP through the stub";
    x.vmcb.set_intercept(ic::exception(13));
    r = predict(x);
    EXPECT_EQ(r.exit_code, std::optional<std::uint64_t>(ec::EXCP_BASE + 13)) << r.path;
    EXPECT_EQ(r.exit_info_1, std::optional<std::uint64_t>(0));
    // The XSETBV intercept comes first: the value is its VMM's to judge.
    x.vmcb.set_intercept(ic::XSETBV);
    EXPECT_EQ(predict(x).exit_code, std::optional<std::uint64_t>(ec::XSETBV));
    // XCR0 = 1 retires.
    auto ok = program(Program::xsetbv);
    ok.vmcb.set(FieldId::cr4, ok.vmcb.get(FieldId::cr4) | arch::cr4::OSXSAVE);
    ok.vmcb.set(FieldId::rax, 1);
    EXPECT_EQ(predict(ok).guest_rip, std::optional<std::uint64_t>(program_entry(Program::xsetbv) + 3));
}

TEST(ModelOnSvmCpu, UnderQemuTcgNoNripIsPredicted) {
    const auto p = predict(program(Program::cpuid, {ic::CPUID}), "qemu-tcg", checks::ProfileId::qemu);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::CPUID));
    EXPECT_FALSE(p.next_rip.has_value());  // qemu-tcg has no NRIPS
}

TEST(ModelOnSvmCpu, IoExitInfoComesFromTheIopmAndTheInterceptBit) {
    Vector v = program(Program::in, {ic::IOIO_PROT});
    v.regs[2] = 0x80;
    v.iopm.push_back(0x80);
    auto p = predict(v);
    ASSERT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::IOIO)) << p.path;
    // APM 15.10.2: port 0x80, A64, SZ8, IN.
    EXPECT_EQ(p.exit_info_1, std::optional<std::uint64_t>((0x80ULL << 16) | (1U << 9) | (1U << 4) | 1U));
    EXPECT_EQ(p.exit_info_2, std::optional<std::uint64_t>(program_entry(Program::in) + 1));
    // Another port: not in the IOPM, the device answers; the model does not know it.
    v.regs[2] = 0x81;
    p = predict(v);
    EXPECT_FALSE(p.exit_code.has_value()) << p.path;
    // The same port in a 32-bit guest: A32.
    Vector w = base_vector(BaseMode::prot32, Program::out);
    w.vmcb.set_intercept(ic::IOIO_PROT);
    w.regs[2] = 0x3F8;
    w.iopm.push_back(0x3F8);
    p = predict(w);
    EXPECT_EQ(p.exit_info_1, std::optional<std::uint64_t>((0x3F8ULL << 16) | (1U << 8) | (1U << 4)));
}

TEST(ModelOnSvmCpu, MsrExitFollowsTheMsrpmBitOfTheAccess) {
    Vector v = program(Program::wrmsr, {ic::MSR_PROT});
    v.regs[1] = 0xC0000081;
    v.msrpm.push_back({0xC0000081, false, true});
    auto p = predict(v);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::MSR)) << p.path;
    EXPECT_EQ(p.exit_info_1, std::optional<std::uint64_t>(1));  // WRMSR
    v.program = Program::rdmsr;
    v.vmcb.set(FieldId::rip, program_entry(Program::rdmsr));
    p = predict(v);  // only the write bit is set: the read reaches the emulator's MSR
    EXPECT_FALSE(p.exit_code.has_value()) << p.path;
    v.regs[1] = 0x40000000;  // outside the MSRPM's ranges: always intercepted (APM 15.11)
    p = predict(v);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::MSR)) << p.path;
    EXPECT_EQ(p.exit_info_1, std::optional<std::uint64_t>(0));
}

TEST(ModelOnSvmCpu, AnExceptionInterceptOrTheStubThroughTheIdt) {
    for (const auto& [prog, vec] : {std::pair{Program::ud2, 6U}, std::pair{Program::div0, 0U}}) {
        SCOPED_TRACE(std::string(program_name(prog)));
        const auto intercepted = predict(program(prog, {ic::exception(vec)}));
        EXPECT_EQ(intercepted.exit_code, std::optional<std::uint64_t>(ec::EXCP_BASE + vec)) << intercepted.path;
        const auto stub = predict(program(prog));
        EXPECT_EQ(stub.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << stub.path;
        EXPECT_EQ(stub.guest_rax, std::optional<std::uint64_t>(vec));
        EXPECT_EQ(stub.guest_rip, std::optional<std::uint64_t>(kStub + 16 * vec + 5));
        // The interrupt gate cleared IF; the frame is five qwords below the aligned RSP.
        EXPECT_EQ(stub.guest_rsp, std::optional<std::uint64_t>((NSVM_OR_L2_STACK_TOP & ~0xFULL) - 40));
    }
}

TEST(ModelOnSvmCpu, DeliveryReloadsCsFromTheGate) {
    // L2 runs with a CS selector the gate does not name: delivering #UD
    // loads CS from the gate's selector and the GDT (APM 8.9.3).
    Vector v = program(Program::ud2);
    auto cs = v.vmcb.segment(arch::Seg::cs);
    cs.selector = 0x30;
    v.vmcb.set_segment(arch::Seg::cs, cs);
    const auto p = predict(v);
    ASSERT_TRUE(p.vmcb_after.has_value()) << p.path;
    EXPECT_EQ(p.vmcb_after->segment(arch::Seg::cs).selector, NSVM_OR_L2_CS64);
    EXPECT_EQ(p.vmcb_after->segment(arch::Seg::cs).attrib, 0xA9B);
}

TEST(ModelOnSvmCpu, PageFaultsComeFromTheGuestsOwnTables) {
    // A load beyond the image's 4 GiB identity map: #PF in L2 (not present).
    Vector v = program(Program::load);
    v.regs[3] = std::uint64_t{5} << 30;
    auto p = predict(v);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << p.path;
    EXPECT_EQ(p.guest_rax, std::optional<std::uint64_t>(14));
    ASSERT_TRUE(p.vmcb_after.has_value());
    EXPECT_EQ(p.vmcb_after->get(FieldId::cr2), std::uint64_t{5} << 30);
    // Intercepted: EXITINFO1 the error code (read, supervisor, not present), EXITINFO2 the address.
    v.vmcb.set_intercept(ic::exception(14));
    p = predict(v);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::EXCP_BASE + 14)) << p.path;
    EXPECT_EQ(p.exit_info_1, std::optional<std::uint64_t>(0));
    EXPECT_EQ(p.exit_info_2, std::optional<std::uint64_t>(std::uint64_t{5} << 30));
}

TEST(ModelOnSvmCpu, ANonCanonicalStoreIsGpNotNpf) {
    Vector v = program(Program::store, {ic::exception(13)});
    v.vmcb.set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE);
    v.vmcb.set(FieldId::nested_cr3, NSVM_OR_NPT_PML4_PA);
    v.regs[3] = 0x0000800000000000ULL;
    auto p = predict(v);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::EXCP_BASE + 13)) << p.path;
    v.regs[3] = (std::uint64_t{1} << 30) + 0x2000;  // canonical, beyond the nested tables' GiB
    p = predict(v);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::NPF)) << p.path;
    EXPECT_EQ(p.exit_info_2, std::optional<std::uint64_t>((std::uint64_t{1} << 30) + 0x2000));
    // APM 15.25.6: a write, user (nested walks are user accesses), final translation.
    EXPECT_EQ(p.exit_info_1, std::optional<std::uint64_t>((std::uint64_t{1} << 32) | 4 | 2));
}

TEST(ModelOnSvmCpu, EventInjGoesThroughTheIdtWithItsErrorCode) {
    Vector v = program(Program::vmmcall);
    v.vmcb.set(FieldId::event_inj, arch::event::V | arch::event::EV | (3U << 8) | 13U);
    v.vmcb.set(FieldId::event_inj_err, 0x10);
    auto p = predict(v);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << p.path;
    EXPECT_EQ(p.guest_rax, std::optional<std::uint64_t>(13));
    EXPECT_EQ(p.guest_rsp, std::optional<std::uint64_t>((NSVM_OR_L2_STACK_TOP & ~0xFULL) - 48));
    // The injected event bypasses the #GP intercept (APM 15.20) ...
    v.vmcb.set_intercept(ic::exception(13));
    p = predict(v);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << p.path;
    // ... but a #GP its delivery raises does not: an injected interrupt
    // whose gate lies beyond the IDT's limit (APM 8.9, 15.7.2: EXITINTINFO
    // holds the event being delivered).
    v.vmcb.set(FieldId::event_inj, arch::event::V | 0x30U);
    auto idtr = v.vmcb.segment(arch::Seg::idtr);
    idtr.limit = 0x30 * 16 - 1;
    v.vmcb.set_segment(arch::Seg::idtr, idtr);
    p = predict(v);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::EXCP_BASE + 13)) << p.path;
    EXPECT_EQ(p.exit_info_1, std::optional<std::uint64_t>(0x30 * 8 + 2 + 1));  // IDT, EXT
    EXPECT_EQ(p.exit_int_info, std::optional<std::uint32_t>(arch::event::V | 0x30U));
    // An injected #GP faulting the same way is a double fault (APM 8.2.9).
    v.vmcb.set(FieldId::event_inj, arch::event::V | arch::event::EV | (3U << 8) | 13U);
    idtr.limit = 13 * 16 - 1;
    v.vmcb.set_segment(arch::Seg::idtr, idtr);
    p = predict(v);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << p.path;
    EXPECT_EQ(p.guest_rax, std::optional<std::uint64_t>(8));
}

TEST(ModelOnSvmCpu, BochsProfileWritesNripOnEveryExit) {
    const auto p = predict(program(Program::ud2, {ic::exception(6)}), "bochs-ryzen", checks::ProfileId::bochs);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::EXCP_BASE + 6)) << p.path;
    EXPECT_EQ(p.next_rip, std::optional<std::uint64_t>(program_entry(Program::ud2) + 2));
    const auto apm = predict(program(Program::ud2, {ic::exception(6)}));
    EXPECT_EQ(apm.next_rip, std::optional<std::uint64_t>(0));  // not an instruction intercept
}

TEST(ModelOnSvmCpu, VmrunFailuresAndGatesComeFromTheProcessor) {
    Vector v = program(Program::vmmcall);
    v.vmcb.set(FieldId::asid, 0);
    v.vmcb.set(FieldId::cr0, v.vmcb.get(FieldId::cr0) | arch::cr0::NW);
    auto p = predict(v);
    EXPECT_FALSE(p.vmrun_valid);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::INVALID));
    ASSERT_EQ(p.failing_checks.size(), 2U);
    EXPECT_EQ(p.gif, std::optional<bool>(false));
    Vector g = program(Program::vmmcall);
    g.host.svme = false;
    p = predict(g);
    EXPECT_EQ(p.status, Status::exception);
    EXPECT_EQ(p.exception_vector, std::optional<std::uint8_t>(6));
    EXPECT_EQ(p.failing_checks.front(), "gate.efer_svme");
}

TEST(ModelOnSvmCpu, Cr0EtIsForcedToOneOnTheWayBack) {
    Vector v = program(Program::vmmcall);
    v.vmcb.set(FieldId::cr0, v.vmcb.get(FieldId::cr0) & ~arch::cr0::ET);
    const auto p = predict(v);
    ASSERT_TRUE(p.vmcb_after.has_value()) << p.path;
    EXPECT_NE(p.vmcb_after->get(FieldId::cr0) & arch::cr0::ET, 0U);  // APM 3.1.1: read-only 1
}

}  // namespace
}  // namespace nsvm::oracle

namespace nsvm::oracle {
namespace {

TEST(ModelOnSvmCpu, SixteenBitL2IsNotFollowedEvenWhenVmrunsDeliveryExits) {
    // CS.L without long mode and CS.D = 0: 16-bit code, which the image's
    // programs are not. An intercepted #GP raised while VMRUN delivers
    // EVENTINJ (a gate beyond the IDT's limit) exits inside VMRUN; the model
    // must judge L2 on the VMCB, not on the host registers the exit reloaded.
    Vector v = base_vector(BaseMode::long64, Program::vmmcall);
    v.vmcb.set(FieldId::efer, arch::efer::SVME);
    v.vmcb.set_intercept(ic::exception(13));
    v.vmcb.set(FieldId::event_inj, arch::event::V | 0x30U);
    auto idtr = v.vmcb.segment(arch::Seg::idtr);
    idtr.limit = 0;
    v.vmcb.set_segment(arch::Seg::idtr, idtr);
    const auto p = predict(v, "qemu-tcg", checks::ProfileId::qemu);
    EXPECT_TRUE(p.vmrun_valid) << p.path;
    EXPECT_FALSE(p.exit_code.has_value()) << p.path;
    EXPECT_NE(p.path.find("16-bit"), std::string::npos) << p.path;
}

}  // namespace
}  // namespace nsvm::oracle

namespace nsvm::oracle {
namespace {

TEST(ModelOnSvmCpu, APendingVirtualInterruptIsTheProcessorsToTake) {
    // V_IRQ with L2's IF = 0: masked (APM 15.21.4), the program runs.
    Vector v = program(Program::cpuid, {ic::CPUID});
    v.vmcb.set(FieldId::int_ctl, arch::int_ctl::V_IRQ | arch::int_ctl::V_IGN_TPR);
    auto p = predict(v, "qemu-tcg", checks::ProfileId::qemu);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::CPUID)) << p.path;
    // With IF = 1 and the VINTR intercept: #VMEXIT(VINTR) before the first instruction.
    v.vmcb.set(FieldId::rflags, arch::rflags::FIXED1 | arch::rflags::IF);
    v.vmcb.set_intercept(ic::VINTR);
    p = predict(v, "qemu-tcg", checks::ProfileId::qemu);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::VINTR)) << p.path;
    EXPECT_EQ(p.guest_rip, std::optional<std::uint64_t>(program_entry(Program::cpuid)));
    // Without the intercept it goes through L2's IDT at V_INTR_VECTOR before
    // CPUID: the image's stub for that vector reports it with VMMCALL.
    v.vmcb.set_intercept(ic::VINTR, false);
    v.vmcb.set(FieldId::int_vector, 0x40);
    p = predict(v, "qemu-tcg", checks::ProfileId::qemu);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << p.path;
    EXPECT_EQ(p.guest_rax, std::optional<std::uint64_t>(0x40)) << p.path;
    EXPECT_NE(p.path.find("vector 64 through the L2 IDT"), std::string::npos) << p.path;
    ASSERT_TRUE(p.vmcb_after.has_value()) << p.path;
    EXPECT_EQ(p.vmcb_after->get(FieldId::int_ctl) & arch::int_ctl::V_IRQ, 0U) << "V_IRQ clears when taken";
}

TEST(ModelOnSvmCpu, NewProgramsExitOnTheirIntercepts) {
    // zen4 has RDTSCP, RDPRU and INVPCID (and NRIPS, decode assists).
    struct Case {
        Program prog;
        unsigned bit;
        std::uint64_t code;
        std::uint8_t len;
    };
    for (const Case c : {Case{Program::rdtscp, ic::RDTSCP, ec::RDTSCP, 3}, Case{Program::rdpru, ic::RDPRU, ec::RDPRU, 3},
                         Case{Program::invpcid, ic::INVPCID, ec::INVPCID, 5}}) {
        SCOPED_TRACE(std::string(program_name(c.prog)));
        auto v = program(c.prog, {c.bit});
        v.regs[3] = NSVM_OR_L2_SCRATCH_PA;  // INVPCID's descriptor
        const auto p = predict(v);
        EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(c.code)) << p.path;
        EXPECT_EQ(p.next_rip, std::optional<std::uint64_t>(program_entry(c.prog) + c.len));
        if (c.prog == Program::invpcid) {
            EXPECT_EQ(p.exit_info_1, std::optional<std::uint64_t>(NSVM_OR_L2_SCRATCH_PA));  // decode assists
        }
    }
    // XSETBV needs CR4.OSXSAVE, else #UD before the intercept (APM 15.7).
    auto x = program(Program::xsetbv, {ic::XSETBV});
    EXPECT_EQ(predict(x).exit_code, std::optional<std::uint64_t>(ec::VMMCALL))
        << "no OSXSAVE: #UD through the stub, then its VMMCALL";
    EXPECT_EQ(predict(x).guest_rax, std::optional<std::uint64_t>(6));
    x.vmcb.set(FieldId::cr4, x.vmcb.get(FieldId::cr4) | arch::cr4::OSXSAVE);
    EXPECT_EQ(predict(x).exit_code, std::optional<std::uint64_t>(ec::XSETBV));
}

TEST(ModelOnSvmCpu, MissingFeaturesAreUdWhateverTheIntercept) {
    // QEMU 7.2 TCG and Bochs 2.7 ryzen offer neither RDPRU nor INVPCID.
    for (const char* cpu : {"qemu-tcg", "bochs-ryzen"}) {
        for (const auto& [prog, bit] : {std::pair{Program::rdpru, ic::RDPRU}, std::pair{Program::invpcid, ic::INVPCID}}) {
            SCOPED_TRACE(std::string(cpu) + " " + std::string(program_name(prog)));
            auto v = program(prog, {bit});
            v.regs[3] = NSVM_OR_L2_SCRATCH_PA;
            const auto p = predict(v, cpu, std::string_view(cpu) == "qemu-tcg" ? checks::ProfileId::qemu
                                                                                : checks::ProfileId::bochs);
            EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << p.path;
            EXPECT_EQ(p.guest_rax, std::optional<std::uint64_t>(6));  // the #UD stub
            v.vmcb.set_intercept(ic::exception(6));
            EXPECT_EQ(predict(v, cpu, std::string_view(cpu) == "qemu-tcg" ? checks::ProfileId::qemu
                                                                          : checks::ProfileId::bochs)
                          .exit_code,
                      std::optional<std::uint64_t>(ec::EXCP_BASE + 6));
        }
    }
}

TEST(ModelOnSvmCpu, LmswAndCltsWriteCr0ForTheIntercepts) {
    const auto base_cr0 = base_vector(BaseMode::long64).vmcb.get(FieldId::cr0);
    auto lmsw = program(Program::lmsw, {ic::cr_write(0)});
    lmsw.regs[1] = arch::cr0::PE | arch::cr0::EM;
    EXPECT_EQ(predict(lmsw).exit_code, std::optional<std::uint64_t>(ic::cr_write(0)));
    // Selective: EM changes -> exit 0x65; TS and MP alone do not (APM 15.9.2).
    lmsw = program(Program::lmsw, {ic::SELECTIVE_CR0});
    lmsw.regs[1] = arch::cr0::PE | arch::cr0::EM;
    EXPECT_EQ(predict(lmsw).exit_code, std::optional<std::uint64_t>(ec::CR0_SEL_WRITE));
    lmsw.regs[1] = arch::cr0::PE | arch::cr0::MP | arch::cr0::TS;
    auto p = predict(lmsw);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << p.path;
    ASSERT_TRUE(p.vmcb_after);
    EXPECT_EQ(p.vmcb_after->get(FieldId::cr0), base_cr0 | arch::cr0::MP | arch::cr0::TS);
    // LMSW cannot clear PE.
    lmsw = program(Program::lmsw);
    lmsw.regs[1] = arch::cr0::EM;
    p = predict(lmsw);
    ASSERT_TRUE(p.vmcb_after);
    EXPECT_EQ(p.vmcb_after->get(FieldId::cr0), base_cr0 | arch::cr0::EM);
    // CLTS: the CR0 write intercept, never the selective one.
    auto clts = program(Program::clts, {ic::SELECTIVE_CR0});
    clts.vmcb.set(FieldId::cr0, base_cr0 | arch::cr0::TS);
    p = predict(clts);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::VMMCALL)) << p.path;
    ASSERT_TRUE(p.vmcb_after);
    EXPECT_EQ(p.vmcb_after->get(FieldId::cr0), base_cr0);
    clts.vmcb.set_intercept(ic::cr_write(0));
    EXPECT_EQ(predict(clts).exit_code, std::optional<std::uint64_t>(ic::cr_write(0)));
}

TEST(ModelOnSvmCpu, StiShadowFnopNmAndSingleStep) {
    // STI with IF = 0: the VMMCALL after it exits inside the shadow.
    auto p = predict(program(Program::sti));
    ASSERT_TRUE(p.vmcb_after) << p.path;
    EXPECT_EQ(p.vmcb_after->get(FieldId::int_state), arch::int_state::INTERRUPT_SHADOW);
    auto sti = program(Program::sti);
    sti.vmcb.set(FieldId::rflags, sti.vmcb.get(FieldId::rflags) | arch::rflags::IF);
    p = predict(sti);
    ASSERT_TRUE(p.vmcb_after);
    EXPECT_EQ(p.vmcb_after->get(FieldId::int_state), 0U);
    // FNOP with CR0.TS: #NM (7) through the stub, or its intercept.
    auto fnop = program(Program::fnop);
    fnop.vmcb.set(FieldId::cr0, fnop.vmcb.get(FieldId::cr0) | arch::cr0::TS);
    EXPECT_EQ(predict(fnop).guest_rax, std::optional<std::uint64_t>(7));
    fnop.vmcb.set_intercept(ic::exception(7));
    EXPECT_EQ(predict(fnop).exit_code, std::optional<std::uint64_t>(ec::EXCP_BASE + 7));
    EXPECT_EQ(predict(program(Program::fnop)).guest_rip,
              std::optional<std::uint64_t>(program_entry(Program::fnop) + 2));
    // NOP with TF: #DB after it, DR6.BS set.
    auto nop = program(Program::nop, {ic::exception(1)});
    nop.vmcb.set(FieldId::rflags, nop.vmcb.get(FieldId::rflags) | arch::rflags::TF);
    p = predict(nop);
    EXPECT_EQ(p.exit_code, std::optional<std::uint64_t>(ec::EXCP_BASE + 1)) << p.path;
    EXPECT_EQ(p.guest_rip, std::optional<std::uint64_t>(program_entry(Program::nop) + 1));
    ASSERT_TRUE(p.vmcb_after);
    EXPECT_NE(p.vmcb_after->get(FieldId::dr6) & (std::uint64_t{1} << 14), 0U);
}

}  // namespace
}  // namespace nsvm::oracle
