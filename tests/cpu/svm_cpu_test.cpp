// The architectural SVM CPU: VMRUN gates at their boundaries, VMRUN/#VMEXIT
// round trips, the VMEXIT_INVALID path, VMLOAD/VMSAVE field sets, TLB/PDPE/
// EVENTINJ handling.
#include <random>

#include "cpu/svm_cpu_fixture.hpp"

using namespace nsvm;
using namespace nsvm::cpu::test;
using arch::FieldId;
using arch::Seg;
using cpu::Event;
using cpu::EventKind;
using cpu::SvmOutcome;
namespace ic = arch::intercept;
namespace ec = arch::exit_code;

namespace {
std::string_view check_id(const cpu::SvmResult& r) { return r.failed_check ? r.failed_check->id : "(none)"; }

Event vmmcall() {
    Event e;
    e.kind = EventKind::vmmcall;
    e.insn_len = 3;  // 0F 01 D9
    return e;
}
}  // namespace

// --- Instruction gates, each at its boundary -------------------------------

TEST(SvmCpuGates, SvmeZeroIsUdAndOneEnters) {
    Machine m;
    m.put(guest64());
    m.cpu.regs().efer &= ~arch::efer::SVME;
    const auto before = m.cpu.regs();
    auto r = m.cpu.vmrun();
    EXPECT_EQ(r.outcome, SvmOutcome::exception);
    EXPECT_EQ(r.vector, 6);
    EXPECT_EQ(check_id(r), "gate.efer_svme");
    EXPECT_EQ(m.cpu.regs(), before);  // a fault changes nothing
    EXPECT_FALSE(m.cpu.in_guest());
    m.cpu.regs().efer |= arch::efer::SVME;
    EXPECT_EQ(m.cpu.vmrun().outcome, SvmOutcome::entered_guest);
}

TEST(SvmCpuGates, CplOneIsGpAndZeroEnters) {
    Machine m;
    m.put(guest64());
    m.cpu.regs().cpl = 1;
    auto r = m.cpu.vmrun();
    EXPECT_EQ(r.outcome, SvmOutcome::exception);
    EXPECT_EQ(r.vector, 13);
    EXPECT_EQ(check_id(r), "gate.cpl");
    m.cpu.regs().cpl = 0;
    EXPECT_EQ(m.cpu.vmrun().outcome, SvmOutcome::entered_guest);
}

TEST(SvmCpuGates, RaxAlignedEntersPlusOneIsGp) {
    Machine m;
    m.put(guest64());
    m.cpu.regs().rax = kVmcb + 1;
    auto r = m.cpu.vmrun();
    EXPECT_EQ(r.outcome, SvmOutcome::exception);
    EXPECT_EQ(r.vector, 13);
    EXPECT_EQ(check_id(r), "gate.rax_alignment");
    m.cpu.regs().rax = kVmcb;
    EXPECT_EQ(m.cpu.vmrun().outcome, SvmOutcome::entered_guest);
}

TEST(SvmCpuGates, RaxAtMaxphyaddrBoundary) {
    Machine m;
    const std::uint64_t limit = std::uint64_t{1} << m.cpu_model.maxphyaddr;
    const std::uint64_t last_page = limit - cpu::kPageSize;
    ASSERT_TRUE(m.mem.map(last_page));
    ASSERT_TRUE(m.mem.write_vmcb(last_page, guest64()));
    m.cpu.regs().rax = last_page;  // the highest legal page
    EXPECT_EQ(m.cpu.vmrun().outcome, SvmOutcome::entered_guest);
    ASSERT_EQ(m.cpu.guest_event(vmmcall()).outcome, SvmOutcome::vmexit);
    m.cpu.regs().rax = limit;  // first page beyond MAXPHYADDR
    auto r = m.cpu.vmrun();
    EXPECT_EQ(r.outcome, SvmOutcome::exception);
    EXPECT_EQ(r.vector, 13);
    EXPECT_EQ(check_id(r), "gate.rax_maxphyaddr");
}

TEST(SvmCpuGates, RealModeIsUdAndV86DependsOnProfile) {
    {
        Machine m;
        m.put(guest64());
        m.cpu.regs().cr0 &= ~(arch::cr0::PE | arch::cr0::PG);
        auto r = m.cpu.vmrun();
        EXPECT_EQ(r.vector, 6);
        EXPECT_EQ(check_id(r), "gate.protected_mode");
    }
    for (auto [p, vec] : {std::pair{checks::ProfileId::apm, 6}, std::pair{checks::ProfileId::bochs, 6},
                          std::pair{checks::ProfileId::qemu, 13}, std::pair{checks::ProfileId::kvm, 13}}) {
        Machine m(p);
        m.put(guest64());
        m.cpu.regs().rflags |= arch::rflags::VM;  // virtual-8086 mode
        m.cpu.regs().cpl = 3;
        auto r = m.cpu.vmrun();
        EXPECT_EQ(r.outcome, SvmOutcome::exception) << checks::profile(p).name;
        EXPECT_EQ(r.vector, vec) << checks::profile(p).name;
    }
}

TEST(SvmCpuGates, VmrunInSmmPerProfile) {
    Machine kvm(checks::ProfileId::kvm);
    kvm.put(guest64());
    kvm.cpu.set_smm(true);
    auto r = kvm.cpu.vmrun();
    EXPECT_EQ(r.vector, 6);
    EXPECT_EQ(check_id(r), "gate.smm");
    Machine apm;  // APM 15.5: undefined; the model lets it run, as Bochs and QEMU do
    apm.put(guest64());
    apm.cpu.set_smm(true);
    EXPECT_EQ(apm.cpu.vmrun().outcome, SvmOutcome::entered_guest);
}

TEST(SvmCpuGates, UnbackedVmcbOrHsaveIsGpAndChangesNothing) {
    Machine m;
    m.cpu.regs().rax = 0x900000;  // not mapped
    const auto before = m.cpu.regs();
    auto r = m.cpu.vmrun();
    EXPECT_EQ(r.vector, 13);
    EXPECT_EQ(m.cpu.regs(), before);
    m.put(guest64());
    m.cpu.regs().rax = kVmcb;
    m.cpu.msrs().vm_hsave_pa = 0x800000;
    EXPECT_EQ(m.cpu.vmrun().vector, 13);
}

// --- VMRUN -> VMMCALL -> #VMEXIT ---------------------------------------------

namespace {
arch::Segment random_segment(std::mt19937_64& g) {
    return arch::Segment{static_cast<std::uint16_t>(g()), static_cast<std::uint16_t>(g() & 0xFFF),
                         static_cast<std::uint32_t>(g()), g() & 0x00007FFFFFFFFFFFULL};
}

/// A random host that can execute VMRUN: long mode, CPL 0, SVME, flat CS.L.
cpu::Registers random_host(std::mt19937_64& g) {
    using namespace arch;
    cpu::Registers r = cpu::SvmCpu::long_mode_host();
    auto pick = [&](std::uint64_t mask) { return g() & mask; };
    r.efer |= pick(efer::NXE | efer::SCE);
    r.cr0 = (r.cr0 & ~(cr0::MP | cr0::TS | cr0::WP | cr0::AM)) | pick(cr0::MP | cr0::TS | cr0::WP | cr0::AM);
    r.cr2 = g();
    r.cr3 = g() & 0x000FFFFFFFFFF000ULL;
    r.cr4 = (cr4::PAE) | pick(cr4::PGE | cr4::OSFXSR | cr4::OSXMMEXCPT | cr4::DE | cr4::TSD);
    r.cr8 = pick(0xF);
    r.dr6 = 0xFFFF0FF0 | pick(0xF);
    r.dr7 = 0x400 | pick(0xFF);
    r.rflags = rflags::FIXED1 | pick(0xCD5 | rflags::IF | rflags::TF | rflags::RF);
    r.rip = g();
    r.rsp = g();
    r.cs.selector = static_cast<std::uint16_t>(g());
    r.cs.base = g() & 0xFFFFFFFF;
    r.es = random_segment(g);
    r.ss = random_segment(g);
    r.ds = random_segment(g);
    r.fs = random_segment(g);
    r.gs = random_segment(g);
    r.ldtr = random_segment(g);
    r.tr = random_segment(g);
    r.gdtr = {0, 0, static_cast<std::uint32_t>(g() & 0xFFFF), g() & 0x00007FFFFFFFFFFFULL};
    r.idtr = {0, 0, static_cast<std::uint32_t>(g() & 0xFFFF), g() & 0x00007FFFFFFFFFFFULL};
    r.kernel_gs_base = g();
    r.star = g();
    r.lstar = g();
    r.cstar = g();
    r.sfmask = g();
    r.sysenter_cs = g();
    r.sysenter_esp = g();
    r.sysenter_eip = g();
    r.pat = 0x0007040600070406ULL ^ (pick(1) << 8);  // WB/WT variants, both valid
    r.rdx = g();  // processor state only: VMRUN and #VMEXIT leave them alone
    r.rcx = g();
    r.rax = kVmcb;
    return r;
}
}  // namespace


TEST(SvmCpuRoundTrip, VmcbAfterExitHoldsExactlyTheExitFields) {
    Machine m;
    const arch::Vmcb v = guest64();
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    EXPECT_TRUE(m.cpu.gif());
    EXPECT_TRUE(m.cpu.in_guest());
    EXPECT_EQ(m.cpu.regs().rip, v.get(FieldId::rip));
    EXPECT_EQ(m.cpu.tlb().asid, 1U);
    auto r = m.cpu.guest_event(vmmcall());
    ASSERT_EQ(r.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(r.exit_code, ec::VMMCALL);
    EXPECT_FALSE(m.cpu.gif());
    EXPECT_FALSE(m.cpu.in_guest());
    EXPECT_EQ(m.cpu.tlb().asid, 0U);
    arch::Vmcb want = v;
    want.set(FieldId::exit_code, ec::VMMCALL);
    want.set(FieldId::next_rip, v.get(FieldId::rip) + 3);
    EXPECT_TRUE(m.vmcb() == want);
    for (const auto& f : arch::kFields) {
        if (f.kind == arch::FieldKind::integer) {
            EXPECT_EQ(m.vmcb().get(f.id), want.get(f.id)) << f.name;
        }
    }
}

TEST(SvmCpuRoundTrip, PropertyVmexitWritesExactlyTheApmFields) {
    // Random guest values and random bytes where VMRUN neither checks nor
    // loads anything: after VMRUN + VMMCALL the page is byte-identical except
    // EXITCODE, EXITINFO1/2, EXITINTINFO and nRIP.
    std::mt19937_64 g(0xF1E1D);
    auto fill = [&](arch::Vmcb& v, std::size_t from, std::size_t to) {
        for (std::size_t b = from; b < to; ++b) v.page()[b] = static_cast<std::uint8_t>(g());
    };
    for (int i = 0; i < 300; ++i) {
        Machine m;
        arch::Vmcb v = guest64();
        fill(v, 0x0D0, 0x0E0);  // instruction bytes
        fill(v, 0x3E0, 0x400);  // reserved for the host
        fill(v, 0x4E0, 0x540);  // PERF_CTL/CTR (PMC virtualization off)
        fill(v, 0x600, 0x648);  // VMLOAD/VMSAVE MSRs and CR2
        fill(v, 0x668, 0x6E8);  // G_PAT (not used without nested paging), LBR, SPEC_CTRL
        fill(v, 0xA70, 0xC00);  // LBR stack, IBS
        for (Seg s : {Seg::es, Seg::ds, Seg::fs, Seg::gs, Seg::ldtr, Seg::tr, Seg::gdtr, Seg::idtr})
            v.set_segment(s, random_segment(g));
        v.set(FieldId::rip, g());
        v.set(FieldId::rsp, g());
        v.set(FieldId::rax, g());
        v.set(FieldId::rflags, 2 | (g() & 0xCD5));
        v.set(FieldId::dr6, 0xFFFF0FF0 | (g() & 0xF));
        v.set(FieldId::dr7, 0x400 | (g() & 0xFF));
        m.put(v);
        ASSERT_EQ(m.cpu.vmrun().outcome, SvmOutcome::entered_guest) << i;
        ASSERT_EQ(m.cpu.guest_event(vmmcall()).outcome, SvmOutcome::vmexit) << i;
        arch::Vmcb want = v;
        want.set(FieldId::exit_code, ec::VMMCALL);
        want.set(FieldId::exit_info_1, 0);
        want.set(FieldId::exit_info_2, 0);
        want.set(FieldId::exit_int_info, 0);
        want.set(FieldId::exit_int_info_err, 0);
        want.set(FieldId::next_rip, v.get(FieldId::rip) + 3);
        const arch::Vmcb got = m.vmcb();
        for (std::size_t b = 0; b < arch::kVmcbSize; ++b) {
            ASSERT_EQ(got.page()[b], want.page()[b]) << "iteration " << i << " byte 0x" << std::hex << b;
        }
    }
}

TEST(SvmCpuRoundTrip, HsaveHoldsTheHostStateInSaveAreaFormat) {
    Machine m;
    const auto host = m.cpu.regs();
    ASSERT_EQ(m.enter(guest64()).outcome, SvmOutcome::entered_guest);
    arch::Vmcb hs;
    ASSERT_TRUE(m.cpu.read_hsave(hs));
    EXPECT_EQ(hs.get(FieldId::rip), host.rip + 3 + 3);  // CLGI, then VMRUN's next RIP
    EXPECT_EQ(hs.get(FieldId::rax), kVmcb);
    EXPECT_EQ(hs.get(FieldId::efer), host.efer);
    EXPECT_EQ(hs.get(FieldId::cr3), host.cr3);
    EXPECT_EQ(hs.segment(Seg::cs), host.cs);
    EXPECT_EQ(hs.segment(Seg::gdtr), host.gdtr);
    EXPECT_EQ(hs.get(FieldId::g_pat), host.pat);
    // The control area and LDTR are never written (LDTR is not saved, 15.5.1).
    for (std::size_t i = 0; i < arch::kControlAreaSize; ++i) ASSERT_EQ(hs.page()[i], 0) << i;
    EXPECT_EQ(hs.segment(Seg::ldtr), arch::Segment{});
}


TEST(SvmCpuRoundTrip, PropertyHostRestoredExactlyOverRandomHosts) {
    // APM 15.6: after #VMEXIT the host is as before VMRUN, except RIP (past
    // VMRUN), DR7 (0x400), CR2 and DR6 (the guest's: not host-saved), GIF = 0.
    std::mt19937_64 g(0x5EED);
    for (int i = 0; i < 200; ++i) {
        for (auto p : checks::test::kAllProfileIds) {
            Machine m(p);
            arch::Vmcb v = guest64();
            v.set(FieldId::cr2, g());
            v.set(FieldId::rip, g() & 0x00007FFFFFFFFFFFULL);
            m.put(v);
            m.cpu.set_gif(false);
            const cpu::Registers before = random_host(g);
            m.cpu.regs() = before;
            ASSERT_EQ(m.cpu.vmrun().outcome, SvmOutcome::entered_guest) << i;
            ASSERT_EQ(m.cpu.guest_event(vmmcall()).outcome, SvmOutcome::vmexit) << i;
            cpu::Registers want = before;
            want.rip = before.rip + 3;
            want.dr7 = 0x400;
            want.cr2 = v.get(FieldId::cr2);
            want.dr6 = v.get(FieldId::dr6);
            if (checks::profile(p).vmexit_dr7_from_hsave) {  // qemu reloads DR6/DR7 from HSAVE
                want.dr7 = before.dr7;
                want.dr6 = before.dr6;
            }
            ASSERT_EQ(m.cpu.regs(), want) << "iteration " << i << " profile " << checks::profile(p).name;
            EXPECT_FALSE(m.cpu.gif());
            EXPECT_EQ(m.cpu.pending_host_db(), (before.rflags & arch::rflags::TF) != 0);
        }
    }
}

TEST(SvmCpuRoundTrip, BochsKeepsHostStateInsideTheCpu) {
    Machine m(checks::ProfileId::bochs);  // hsave_used = false
    const auto host = m.cpu.regs();
    ASSERT_EQ(m.enter(guest64()).outcome, SvmOutcome::entered_guest);
    arch::Vmcb page;
    ASSERT_TRUE(m.mem.peek_vmcb(kHsave, page));
    EXPECT_TRUE(page == arch::Vmcb{});  // memory at VM_HSAVE_PA untouched
    arch::Vmcb hs;
    ASSERT_TRUE(m.cpu.read_hsave(hs));
    EXPECT_EQ(hs.get(FieldId::cr3), host.cr3);
    ASSERT_EQ(m.cpu.guest_event(vmmcall()).outcome, SvmOutcome::vmexit);
    EXPECT_EQ(m.cpu.regs().cr3, host.cr3);
}

TEST(SvmCpuRoundTrip, KvmGuestVmrunIgnoresTheHostOnlyGates) {
    Machine m(checks::ProfileId::kvm);
    ASSERT_EQ(m.enter(guest64()).outcome, SvmOutcome::entered_guest);
    m.cpu.msrs().vm_hsave_pa = 0;  // would be #GP for the host's own VMRUN under kvm
    m.cpu.regs().rax = kVmsave;
    Event e;
    e.kind = EventKind::vmrun;
    EXPECT_EQ(m.cpu.guest_event(e).exit_code, ec::VMRUN);
}

TEST(SvmCpuRegisters, SaveAreaConversionRoundTrips) {
    std::mt19937_64 g(3);
    for (int i = 0; i < 50; ++i) {
        cpu::Registers r = random_host(g);
        r.cr8 = 0;  // not in the save area, nor are RDX and RCX
        r.rdx = 0;
        r.rcx = 0;
        arch::Vmcb v;
        cpu::store_registers(r, v);
        EXPECT_EQ(cpu::registers_from_save_area(v), r);
        for (std::size_t b = 0; b < arch::kControlAreaSize; ++b) ASSERT_EQ(v.page()[b], 0) << b;
    }
}

TEST(SvmCpuRoundTrip, QemuProfileRestoresHostDr6AndDr7) {
    Machine m(checks::ProfileId::qemu);
    m.cpu.regs().dr7 = 0x4FF;
    m.cpu.regs().dr6 = 0xFFFF0FF2;
    ASSERT_EQ(m.enter(guest64()).outcome, SvmOutcome::entered_guest);
    ASSERT_EQ(m.cpu.guest_event(vmmcall()).outcome, SvmOutcome::vmexit);
    EXPECT_EQ(m.cpu.regs().dr7, 0x4FFU);
    EXPECT_EQ(m.cpu.regs().dr6, 0xFFFF0FF2U);
}

TEST(SvmCpuRoundTrip, GuestChangesAreWrittenBack) {
    Machine m;
    arch::Vmcb v = guest64();
    v.set_intercept(ic::CPUID);
    v.set(FieldId::int_ctl, arch::int_ctl::V_INTR_MASKING | 3);
    v.set(FieldId::int_state, arch::int_state::INTERRUPT_SHADOW);
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    Event w;
    w.kind = EventKind::cr_write;
    w.index = 8;
    w.value = 9;
    w.insn_len = 4;
    EXPECT_EQ(m.cpu.guest_event(w).outcome, SvmOutcome::no_exit);  // CR8 -> V_TPR (V_INTR_MASKING)
    Event c;
    c.kind = EventKind::cpuid;
    ASSERT_EQ(m.cpu.guest_event(c).outcome, SvmOutcome::vmexit);
    const auto after = m.vmcb();
    EXPECT_EQ(after.get(FieldId::exit_code), ec::CPUID);
    EXPECT_EQ(after.get(FieldId::rip), v.get(FieldId::rip) + 4);
    EXPECT_EQ(after.get(FieldId::next_rip), v.get(FieldId::rip) + 4 + 2);
    EXPECT_EQ(after.get(FieldId::int_ctl) & arch::int_ctl::V_TPR, 9U);
    EXPECT_EQ(after.get(FieldId::int_state), 0U);  // the shadow ended with the MOV CR8
    EXPECT_EQ(m.cpu.regs().cr8, 0U);               // host TPR untouched
}

// --- VMEXIT_INVALID ------------------------------------------------------------

TEST(SvmCpuInvalid, HostUnchangedExitInfoZeroGifZero) {
    std::mt19937_64 g(77);
    for (int i = 0; i < 100; ++i) {
        Machine m;
        arch::Vmcb v = guest64();
        v.set(FieldId::cr0, 0xA0050033);  // CD = 0, NW = 1 (C2)
        v.set(FieldId::exit_info_1, 0x55);
        v.set(FieldId::exit_info_2, 0x66);
        m.put(v);
        const cpu::Registers before = random_host(g);
        m.cpu.regs() = before;
        m.cpu.set_gif(true);
        auto r = m.cpu.vmrun();
        ASSERT_EQ(r.outcome, SvmOutcome::vmexit);
        EXPECT_EQ(r.exit_code, ec::INVALID);
        EXPECT_EQ(check_id(r), "cr0.cd_nw");
        EXPECT_FALSE(m.cpu.gif());
        EXPECT_FALSE(m.cpu.in_guest());
        cpu::Registers want = before;
        want.rip += 3;
        want.dr7 = 0x400;  // #VMEXIT disables breakpoints (APM 15.6)
        ASSERT_EQ(m.cpu.regs(), want) << i;
        arch::Vmcb expect = v;  // apm: exit fields only
        expect.set(FieldId::exit_code, ec::INVALID);
        expect.set(FieldId::exit_info_1, 0);
        expect.set(FieldId::exit_info_2, 0);
        ASSERT_TRUE(m.vmcb() == expect) << i;
    }
}

TEST(SvmCpuInvalid, QemuWritesHostStateAnd32BitCode) {
    Machine m(checks::ProfileId::qemu);
    arch::Vmcb v = guest64();
    v.set_intercept(ic::VMRUN, false);  // C13
    const auto host = m.cpu.regs();
    auto r = m.enter(v);
    ASSERT_EQ(r.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(r.exit_code, ec::INVALID_32);
    const auto after = m.vmcb();
    EXPECT_EQ(after.get(FieldId::exit_code), ec::INVALID_32);
    EXPECT_EQ(after.get(FieldId::cr3), host.cr3);
    EXPECT_EQ(after.segment(Seg::cs), host.cs);
}

TEST(SvmCpuInvalid, EveryProfileFailsThroughTheOnePath) {
    for (auto p : checks::test::kAllProfileIds) {
        Machine m(p);
        arch::Vmcb v = guest64();
        v.set(FieldId::asid, 0);  // C16 (xen does not check it)
        v.set(FieldId::efer, 0);  // C1
        auto r = m.enter(v);
        ASSERT_EQ(r.outcome, SvmOutcome::vmexit) << checks::profile(p).name;
        EXPECT_TRUE(arch::exit_code::is_vmrun_failure(r.exit_code));
        EXPECT_NE(r.failed_check, nullptr);
        EXPECT_EQ(m.cpu.tlb().asid, 0U);
        EXPECT_FALSE(m.cpu.in_guest());
    }
}

// --- PAE PDPEs, TLB control, EVENTINJ --------------------------------------------

TEST(SvmCpuEntry, PaeGuestWithoutNptLoadsPdpesAndRejectsReservedBits) {
    Machine m;
    arch::Vmcb v = checks::test::valid_vmcb_pae32();
    for (unsigned i = 0; i < 4; ++i) ASSERT_TRUE(m.mem.write_u64(kPdpt + 8 * i, 0x100001 + 0x1000 * i));
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    EXPECT_EQ(m.cpu.pdpes()[2], 0x102001U);
    ASSERT_EQ(m.cpu.guest_event(vmmcall()).outcome, SvmOutcome::vmexit);
    ASSERT_TRUE(m.mem.write_u64(kPdpt + 8, 0x100001 | (1U << 5)));  // reserved bit 5
    auto r = m.enter(v);
    EXPECT_EQ(r.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(check_id(r), "pdpe.reserved");
}

// VMRUN of an SEV-SNP guest reads SEV_FEATURES from the VMSA page (VMCB 108h,
// offset 3B0h; APM Appendix B Table B-4) in memory, not from VMCB 140h.
TEST(SvmCpuEntry, SnpChecksReadSevFeaturesFromTheVmsaPage) {
    constexpr std::uint64_t kVmsa = 0x70000, kRestricted = 1ULL << 3, kAlternate = 1ULL << 4;
    Machine m;  // the default model has SEV-SNP
    m.cpu.msrs().hwcr = 1;  // HWCR.SmmLock, which SEV needs (APM 15.34.3)
    ASSERT_TRUE(m.mem.map(kVmsa));
    arch::Vmcb v = guest64();
    v.set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE | arch::misc_ctl::SEV_ENABLE | arch::misc_ctl::SEV_ES_ENABLE);
    v.set(FieldId::misc_ctl2, arch::misc_ctl2::LBR_VIRT);
    v.set(FieldId::nested_cr3, 0x5000);
    v.set(FieldId::vmsa_pa, kVmsa);
    // Both injection modes in the VMSA: VMEXIT_INVALID, P5.
    ASSERT_TRUE(m.mem.write_u64(kVmsa + 0x3B0, kRestricted | kAlternate));
    auto r = m.enter(v);
    EXPECT_EQ(r.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(check_id(r), "snp.restricted_and_alternate");
    // The same value in VMCB 140h only, the VMSA's with one mode: no P5.
    ASSERT_TRUE(m.mem.write_u64(kVmsa + 0x3B0, kRestricted));
    v.set(FieldId::guest_sev_features, kRestricted | kAlternate);
    r = m.enter(v);
    EXPECT_EQ(r.failed_check, nullptr) << check_id(r);
}

TEST(SvmCpuEntry, TlbControlAndAsidRecorded) {
    Machine m;
    arch::Vmcb v = guest64();
    v.set(FieldId::asid, 7);
    v.set(FieldId::tlb_ctl, arch::tlb_ctl::FLUSH_ASID);
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    EXPECT_EQ(m.cpu.tlb().asid, 7U);
    EXPECT_EQ(m.cpu.tlb().flush_asid, 1U);
    ASSERT_EQ(m.cpu.guest_event(vmmcall()).outcome, SvmOutcome::vmexit);
    EXPECT_EQ(m.vmcb().get(FieldId::tlb_ctl), arch::tlb_ctl::FLUSH_ASID);  // VMRUN leaves it
    v.set(FieldId::tlb_ctl, 2);  // reserved: no flush, no failure
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    EXPECT_EQ(m.cpu.tlb().reserved_ctl, 1U);
}

TEST(SvmCpuEntry, EventInjDeliveredAndVClearedOnExit) {
    Machine m;
    arch::Vmcb v = guest64();
    v.set(FieldId::event_inj, arch::event::V | arch::event::EV | (3U << 8) | 13);
    v.set(FieldId::event_inj_err, 0x18);
    auto r = m.enter(v);
    ASSERT_EQ(r.outcome, SvmOutcome::entered_guest);
    EXPECT_EQ(r.injection, cpu::Injection::delivered);
    EXPECT_EQ(r.vector, 13);
    EXPECT_EQ(r.error_code, 0x18U);
    ASSERT_EQ(m.cpu.guest_event(vmmcall()).outcome, SvmOutcome::vmexit);
    EXPECT_EQ(m.vmcb().get(FieldId::event_inj) & arch::event::V, 0U);
    v.set(FieldId::event_inj, arch::event::V | (1U << 8));  // reserved TYPE 1 (E2)
    r = m.enter(v);
    EXPECT_EQ(r.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(r.exit_code, ec::INVALID);
    EXPECT_EQ(m.vmcb().get(FieldId::event_inj), 0U);
}

TEST(SvmCpuEntry, NestedPagingLoadsGPatAndRestoresHostPat) {
    Machine m;
    arch::Vmcb v = guest64();
    v.set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE);
    v.set(FieldId::nested_cr3, 0x40000);
    v.set(FieldId::g_pat, 0x0606060606060606ULL);
    const auto host_pat = m.cpu.regs().pat;
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    EXPECT_EQ(m.cpu.regs().pat, 0x0606060606060606ULL);
    Event mem_access;
    mem_access.kind = EventKind::memory;
    mem_access.value = 0x1234000;
    auto r = m.cpu.guest_event(mem_access);  // nCR3 page not backed: #NPF
    ASSERT_EQ(r.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(r.exit_code, ec::NPF);
    EXPECT_EQ(m.cpu.regs().pat, host_pat);
}

// --- Guest SVM instructions: gates before intercepts ---------------------------

TEST(SvmCpuGuest, GuestVmrunAtCpl3IsGpBeforeTheIntercept) {
    Machine m;
    arch::Vmcb v = guest64();
    v.set(FieldId::cpl, 3);
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    Event e;
    e.kind = EventKind::vmrun;
    auto r = m.cpu.guest_event(e);
    EXPECT_EQ(r.outcome, SvmOutcome::delivered);  // #GP in the guest (not intercepted)
    EXPECT_EQ(r.vector, 13);
    EXPECT_TRUE(r.in_guest);
    EXPECT_EQ(check_id(r), "gate.cpl");
}

TEST(SvmCpuGuest, GuestVmrunAtCpl0ExitsWithVmrunCode) {
    Machine m;
    ASSERT_EQ(m.enter(guest64()).outcome, SvmOutcome::entered_guest);
    m.cpu.regs().rax = kVmsave;
    Event e;
    e.kind = EventKind::vmrun;
    e.insn_len = 3;
    auto r = m.cpu.guest_event(e);
    EXPECT_EQ(r.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(r.exit_code, ec::VMRUN);
}

TEST(SvmCpuGuest, UninterceptedVmmcallIsUdAndInterceptedUdExits) {
    Machine m;
    arch::Vmcb v = guest64();
    v.set_intercept(ic::VMMCALL, false);
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    auto r = m.cpu.guest_event(vmmcall());
    EXPECT_EQ(r.outcome, SvmOutcome::delivered);
    EXPECT_EQ(r.vector, 6);
    Machine n;
    v.set_intercept(ic::exception(6));
    ASSERT_EQ(n.enter(v).outcome, SvmOutcome::entered_guest);
    r = n.cpu.guest_event(vmmcall());
    EXPECT_EQ(r.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(r.exit_code, ec::EXCP_BASE + 6);
}

TEST(SvmCpuGuest, InterceptedPageFaultCarriesErrorCodeAndAddress) {
    Machine m;
    arch::Vmcb v = guest64();
    v.set_intercept(ic::exception(14));
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    Event e;
    e.kind = EventKind::exception;
    e.index = 14;
    e.error_code = 6;
    e.cr2 = 0xBAD000;
    auto r = m.cpu.guest_event(e);
    ASSERT_EQ(r.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(r.exit_code, ec::EXCP_BASE + 14);
    EXPECT_EQ(r.exit_info_1, 6U);
    EXPECT_EQ(r.exit_info_2, 0xBAD000U);
}

TEST(SvmCpuGuest, SkinitWithoutFeatureIsUd) {
    auto model = checks::default_model();
    model.set(checks::Feature::skinit, false);
    Machine m(checks::ProfileId::apm, model);
    auto r = m.cpu.skinit();
    EXPECT_EQ(r.outcome, SvmOutcome::exception);
    EXPECT_EQ(r.vector, 6);
}

// --- VMLOAD / VMSAVE: exactly their fields --------------------------------------

namespace {
/// Byte offsets VMLOAD/VMSAVE own (APM 15.5.2): FS, GS, LDTR, TR records and
/// KernelGsBase, STAR, LSTAR, CSTAR, SFMASK, SYSENTER_CS/ESP/EIP.
std::array<bool, arch::kVmcbSize> vmload_bytes() {
    std::array<bool, arch::kVmcbSize> own{};
    for (std::size_t base : {0x440, 0x450, 0x470, 0x490})
        for (std::size_t i = 0; i < 16; ++i) own[base + i] = true;
    for (std::size_t i = 0x600; i < 0x640; ++i) own[i] = true;
    return own;
}
}  // namespace

TEST(SvmCpuVmloadVmsave, PropertyVmsaveWritesExactlyItsFields) {
    std::mt19937_64 g(11);
    const auto own = vmload_bytes();
    for (int i = 0; i < 200; ++i) {
        Machine m;
        arch::Vmcb page;
        for (auto& b : page.page()) b = static_cast<std::uint8_t>(g());
        ASSERT_TRUE(m.mem.write_vmcb(kVmsave, page));
        m.cpu.regs() = random_host(g);
        m.cpu.regs().rax = kVmsave;
        const auto regs = m.cpu.regs();
        ASSERT_EQ(m.cpu.vmsave().outcome, SvmOutcome::completed);
        arch::Vmcb after;
        ASSERT_TRUE(m.mem.peek_vmcb(kVmsave, after));
        for (std::size_t b = 0; b < arch::kVmcbSize; ++b)
            if (!own[b]) {
                ASSERT_EQ(after.page()[b], page.page()[b]) << "byte " << b;
            }
        EXPECT_EQ(after.segment(Seg::fs), regs.fs);
        EXPECT_EQ(after.segment(Seg::gs), regs.gs);
        EXPECT_EQ(after.segment(Seg::tr), regs.tr);
        EXPECT_EQ(after.segment(Seg::ldtr), regs.ldtr);
        EXPECT_EQ(after.get(FieldId::kernel_gs_base), regs.kernel_gs_base);
        EXPECT_EQ(after.get(FieldId::star), regs.star);
        EXPECT_EQ(after.get(FieldId::lstar), regs.lstar);
        EXPECT_EQ(after.get(FieldId::cstar), regs.cstar);
        EXPECT_EQ(after.get(FieldId::sfmask), regs.sfmask);
        EXPECT_EQ(after.get(FieldId::sysenter_cs), regs.sysenter_cs);
        EXPECT_EQ(after.get(FieldId::sysenter_esp), regs.sysenter_esp);
        EXPECT_EQ(after.get(FieldId::sysenter_eip), regs.sysenter_eip);
        cpu::Registers want = regs;
        want.rip += 3;
        EXPECT_EQ(m.cpu.regs(), want);  // VMSAVE changes no register but RIP
    }
}

TEST(SvmCpuVmloadVmsave, PropertyVmloadLoadsExactlyItsFields) {
    std::mt19937_64 g(12);
    for (int i = 0; i < 200; ++i) {
        Machine m;
        arch::Vmcb page;
        for (auto& b : page.page()) b = static_cast<std::uint8_t>(g());
        ASSERT_TRUE(m.mem.write_vmcb(kVmsave, page));
        m.cpu.regs() = random_host(g);
        m.cpu.regs().rax = kVmsave;
        const auto regs = m.cpu.regs();
        ASSERT_EQ(m.cpu.vmload().outcome, SvmOutcome::completed);
        cpu::Registers want = regs;
        want.rip += 3;
        want.fs = page.segment(Seg::fs);
        want.gs = page.segment(Seg::gs);
        want.tr = page.segment(Seg::tr);
        want.ldtr = page.segment(Seg::ldtr);
        want.kernel_gs_base = page.get(FieldId::kernel_gs_base);
        want.star = page.get(FieldId::star);
        want.lstar = page.get(FieldId::lstar);
        want.cstar = page.get(FieldId::cstar);
        want.sfmask = page.get(FieldId::sfmask);
        want.sysenter_cs = page.get(FieldId::sysenter_cs);
        want.sysenter_esp = page.get(FieldId::sysenter_esp);
        want.sysenter_eip = page.get(FieldId::sysenter_eip);
        ASSERT_EQ(m.cpu.regs(), want) << i;
        arch::Vmcb after;
        ASSERT_TRUE(m.mem.peek_vmcb(kVmsave, after));
        ASSERT_TRUE(after == page);  // VMLOAD writes no memory
    }
}

TEST(SvmCpuVmloadVmsave, GatesAndRoundTrip) {
    Machine m;
    m.cpu.regs().rax = kVmsave + 8;
    EXPECT_EQ(m.cpu.vmsave().vector, 13);
    m.cpu.regs().rax = kVmsave;
    m.cpu.regs().cpl = 3;
    EXPECT_EQ(m.cpu.vmload().vector, 13);
    m.cpu.regs().cpl = 0;
    m.cpu.regs().efer &= ~arch::efer::SVME;
    EXPECT_EQ(m.cpu.vmload().vector, 6);
    m.cpu.regs().efer |= arch::efer::SVME;
    m.cpu.regs().fs.base = 0xABCDEF;
    ASSERT_EQ(m.cpu.vmsave().outcome, SvmOutcome::completed);
    m.cpu.regs().fs.base = 0;
    ASSERT_EQ(m.cpu.vmload().outcome, SvmOutcome::completed);
    EXPECT_EQ(m.cpu.regs().fs.base, 0xABCDEFU);
}

// --- MSRs ----------------------------------------------------------------------

TEST(SvmCpuMsrs, HsaveVmCrEferRules) {
    Machine m;
    EXPECT_EQ(m.cpu.wrmsr(arch::msr::VM_HSAVE_PA, 0x50001).vector, 13);
    EXPECT_EQ(m.cpu.wrmsr(arch::msr::VM_HSAVE_PA, std::uint64_t{1} << m.cpu_model.maxphyaddr).vector, 13);
    EXPECT_EQ(m.cpu.wrmsr(arch::msr::VM_HSAVE_PA, 0x60000).outcome, SvmOutcome::completed);
    EXPECT_EQ(m.cpu.wrmsr(arch::msr::VM_CR, arch::vm_cr::SVMDIS).vector, 13);  // SVME = 1
    EXPECT_EQ(m.cpu.wrmsr(arch::msr::VM_CR, arch::bit(5)).vector, 13);         // MBZ
    EXPECT_EQ(m.cpu.wrmsr(arch::msr::EFER, m.cpu.regs().efer & ~arch::efer::SVME).outcome, SvmOutcome::completed);
    EXPECT_EQ(m.cpu.wrmsr(arch::msr::VM_CR, arch::vm_cr::SVMDIS | arch::vm_cr::LOCK).outcome,
              SvmOutcome::completed);
    EXPECT_EQ(m.cpu.wrmsr(arch::msr::EFER, m.cpu.regs().efer | arch::efer::SVME).vector, 13);
    EXPECT_EQ(m.cpu.wrmsr(arch::msr::VM_CR, 0).outcome, SvmOutcome::completed);  // LOCK: ignored
    EXPECT_EQ(m.cpu.msrs().vm_cr, arch::vm_cr::SVMDIS | arch::vm_cr::LOCK);
    EXPECT_EQ(m.cpu.wrmsr(arch::msr::TSC_RATIO, arch::bit(40)).vector, 13);
}

TEST(SvmCpuMsrs, GuestTscScaledAndOffset) {
    Machine m;
    m.cpu.msrs().tsc = 1000;
    m.cpu.msrs().tsc_ratio = std::uint64_t{2} << 32;
    arch::Vmcb v = guest64();
    v.set(FieldId::tsc_offset, 5);
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    EXPECT_EQ(m.cpu.guest_tsc(), 2005U);
}
