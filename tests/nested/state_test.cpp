// Nested state save and restore (KVM_GET_NESTED_STATE / KVM_SET_NESTED_STATE;
// KVM's svm_set_nested_state): the blob round-trips byte for byte, and a
// restore refuses what a VMRUN could not have left.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

TEST(NestedState, SaveRestoreSaveIsIdenticalAndBadBlobsAreRefused) {
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto blob = m.vcpu.save_state();
    ASSERT_TRUE(m.vcpu.restore_state(blob));
    EXPECT_EQ(m.vcpu.save_state(), blob);
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l2);
    auto bad = blob;
    bad[12] |= 4;  // guest mode + SMM
    auto r = m.vcpu.restore_state(bad);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("SMM"), std::string::npos);
    bad = blob;
    // vmcb12 cache: ASID 0 fails the catalogue.
    const std::size_t asid_off = 0x40 + 4096 + arch::info(FieldId::asid).offset;
    bad[asid_off] = 0;
    r = m.vcpu.restore_state(bad);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("asid"), std::string::npos);
    bad = blob;
    bad[0x40 + arch::info(FieldId::cr0).offset + 3] |= 0x20;  // L1 CR0.NW without CD
    bad[0x40 + arch::info(FieldId::cr0).offset + 3] &= static_cast<std::uint8_t>(~0x40);
    EXPECT_FALSE(m.vcpu.restore_state(bad));
    EXPECT_EQ(m.vcpu.save_state(), blob);  // refusals change nothing
}

// KVM's svm_set_nested_state: in guest mode, L1's saved state must be one a
// VMRUN could have left (CR0.PG = PE = 1, RFLAGS.VM = 0), and L2's current
// CR0 must not have NW without CD. Each refused with its reason; the last
// passing value of each is accepted.
TEST(NestedState, RestoreValidatesL1SavedStateAndL2Cr0AsKvmDoes) {
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto blob = m.vcpu.save_state();
    const std::size_t l1 = 0x40, l2 = 0x40 + 2 * 4096 - arch::kSaveAreaOffset;
    auto with = [&](std::size_t base, FieldId f, std::uint64_t v) {
        auto b = blob;
        arch::store_le(b, base + arch::info(f).offset, arch::info(f).width, v);
        return b;
    };
    const std::uint64_t cr0 = m.vcpu.vmcb01().get(FieldId::cr0);
    ASSERT_EQ(cr0 & (arch::cr0::PG | arch::cr0::PE), arch::cr0::PG | arch::cr0::PE);
    auto r = m.vcpu.restore_state(with(l1, FieldId::cr0, cr0 & ~arch::cr0::PG));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("PG or PE"), std::string::npos) << r.error();
    EXPECT_FALSE(m.vcpu.restore_state(with(l1, FieldId::cr0, cr0 & ~arch::cr0::PE)));
    r = m.vcpu.restore_state(with(l1, FieldId::rflags, 0x20002));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("RFLAGS.VM"), std::string::npos) << r.error();
    EXPECT_TRUE(m.vcpu.restore_state(with(l1, FieldId::rflags, 0x2)));
    r = m.vcpu.restore_state(with(l2, FieldId::cr0, 0x20000011));  // NW, no CD
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("L2 CR0"), std::string::npos) << r.error();
    // CD and NW is legal (paging kept on: L2 is in long mode, and a long-mode
    // L2 without paging, EFER.LMA still set, is a state KVM_SET_SREGS refuses).
    r = m.vcpu.restore_state(with(l2, FieldId::cr0, 0xE0000011));
    EXPECT_TRUE(r) << r.error();
    r = m.vcpu.restore_state(with(l2, FieldId::cr0, 0x60000011));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("efer.lma_without_lme_pg"), std::string::npos) << r.error();
    // The same with EFER.LMA cleared: long mode enabled, not active; consistent.
    auto lme_paging_off = with(l2, FieldId::cr0, 0x60000011);
    const std::size_t efer_at = l2 + arch::info(FieldId::efer).offset;
    arch::store_le(lme_paging_off, efer_at, 8, arch::load_le(blob, efer_at, 8) & ~arch::efer::LMA);
    r = m.vcpu.restore_state(lme_paging_off);
    EXPECT_TRUE(r) << r.error();
    // Outside guest mode L1 may be anywhere (real mode included).
    Machine idle;
    auto l1_only = idle.vcpu.save_state();
    arch::store_le(l1_only, l1 + arch::info(FieldId::cr0).offset, 8, 0x10);
    EXPECT_TRUE(idle.vcpu.restore_state(l1_only));
}

// The invariants hold every committed vmcb02 to the processor's own VMRUN
// checks. A restored nested state commits vmcb02 from L2's registers in the
// blob, past every VMRUN check: one with DR7 bits 63:32 set is refused,
// naming the check, and leaves the vCPU as it was.
TEST(NestedState, RestoreRefusesAnL2StateTheProcessorWouldRefuse) {
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    EXPECT_EQ(m.vcpu.vmcb02_hardware_failure(), nullptr);
    const auto blob = m.vcpu.save_state();
    auto bad = blob;
    // The L2 save area starts at 0x2040; DR7's high dword.
    const std::size_t dr7_hi = 0x2040 + arch::info(FieldId::dr7).offset - arch::kSaveAreaOffset + 4;
    bad[dr7_hi] = 1;
    const auto r = m.vcpu.restore_state(bad);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("dr7.upper"), std::string::npos) << r.error();
    EXPECT_EQ(m.vcpu.save_state(), blob);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

// Nested vGIF: L2's CLGI clears V_GIF in vmcb02. KVM syncs it into the
// cached vmcb12 controls after every exit from L2 (KVM's
// nested_sync_control_from_vmcb02), which is what KVM_GET_NESTED_STATE saves; so a
// save/restore keeps L2's virtual GIF, and the later #VMEXIT reports it in
// vmcb12.int_ctl.
TEST(NestedState, SaveRestoreKeepsL2VirtualGif) {
    Machine m;
    ASSERT_TRUE(m.cpu.has(checks::Feature::vgif));
    auto v = valid_vmcb12();
    v.set(FieldId::int_ctl, arch::int_ctl::V_GIF_ENABLE | arch::int_ctl::V_GIF);
    v.set_intercept(ic::CPUID);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    ASSERT_NE(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::clgi, .insn_len = 3}).outcome,
              Outcome::vmexit_to_l1);
    ASSERT_EQ(m.vcpu.vmcb02().get(FieldId::int_ctl) & arch::int_ctl::V_GIF, 0U);
    const auto before = m.vcpu.vmcb02();
    const auto blob = m.vcpu.save_state();
    ASSERT_TRUE(m.vcpu.restore_state(blob));
    EXPECT_EQ(m.vcpu.save_state(), blob);
    EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::int_ctl), before.get(FieldId::int_ctl));
    ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cpuid}).outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(m.vmcb12().get(FieldId::int_ctl) & arch::int_ctl::V_GIF, 0U);
}

// Shutdown is final (no reset is modelled, and KVM keeps no shut-down state
// to resume: the VMM is told KVM_EXIT_SHUTDOWN and resets). Every step on a
// shut-down vCPU changes nothing and reports shutdown; the state, shutdown
// included, survives save -> restore -> save byte for byte.
TEST(Shutdown, EveryStepOnAShutDownVcpuIsANoOpReportingShutdown) {
    Machine m;
    m.enter_smm_from_l2();
    ASSERT_TRUE(m.mem.write_u64(kVmcb12 + arch::info(FieldId::asid).offset, 0));  // RSM fails: shutdown
    ASSERT_EQ(m.vcpu.rsm().outcome, Outcome::shutdown);
    ASSERT_EQ(m.vcpu.mode(), nested::Mode::shutdown);
    const auto blob = m.vcpu.save_state();
    std::uint64_t msr = 0;
    const nested::StepResult results[] = {
        m.vmrun(), m.vcpu.l1_vmload(), m.vcpu.l1_vmsave(), m.vcpu.l1_stgi(), m.vcpu.l1_clgi(),
        m.vcpu.l1_invlpga(), m.vcpu.l1_vmmcall(), m.vcpu.l1_skinit(), m.vcpu.l1_wrmsr(arch::msr::STAR, 1),
        m.vcpu.l1_rdmsr(arch::msr::STAR, msr), m.vcpu.rsm(),
        m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cpuid}),
        m.vcpu.external(cpu::EventKind::smi), m.vcpu.external(cpu::EventKind::init)};
    for (const auto& r : results) {
        EXPECT_EQ(r.outcome, Outcome::shutdown) << r.note;
        EXPECT_NE(std::string_view(r.note).find("shut down"), std::string_view::npos) << r.note;
    }
    EXPECT_EQ(m.vcpu.save_state(), blob);  // nothing changed
    const auto restored = m.vcpu.restore_state(blob);
    ASSERT_TRUE(restored) << restored.error();
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::shutdown);
    EXPECT_EQ(m.vcpu.save_state(), blob);
    auto bad = blob;
    bad[12] |= 1;  // shut down and in guest mode
    EXPECT_FALSE(m.vcpu.restore_state(bad));
}

namespace {
namespace ks = nested::kvm_state;

/// KVM_SET_NESTED_STATE's answer for `blob` with the vCPU's registers `regs`:
/// "" when taken, else the reason.
std::string kvm_restore(Machine& m, const std::vector<std::uint8_t>& blob, const arch::Vmcb& regs) {
    const auto r = m.vcpu.restore_kvm_nested_state(blob, regs);
    return r ? std::string{} : r.error();
}
}  // namespace

// KVM's layout (struct kvm_nested_state, format 1): in guest mode a 128-byte
// header with GUEST_MODE and GIF_SET and vmcb12's GPA, then the vmcb12 page
// (cached controls, L1's save area); L2's registers travel as KVM_GET_SREGS
// would report them. save -> restore -> save is the identity, in L2 and in L1,
// and L2 goes on where it was.
TEST(KvmNestedState, SaveRestoreSaveIsIdenticalInL2AndInL1) {
    Machine m;
    auto v = valid_vmcb12();
    v.set_intercept(ic::HLT);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    ASSERT_EQ(m.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::cr_write, .index = 3, .value = 0x5000}).outcome,
              Outcome::no_exit);
    const auto blob = m.vcpu.save_kvm_nested_state();
    ASSERT_EQ(blob.size(), ks::kGuestSize);
    EXPECT_EQ(arch::load_le(blob, ks::kFlagsAt, 2), ks::kGuestMode | ks::kGifSet);
    EXPECT_EQ(arch::load_le(blob, ks::kFormatAt, 2), 1U);
    EXPECT_EQ(arch::load_le(blob, ks::kSizeAt, 4), ks::kGuestSize);
    EXPECT_EQ(arch::load_le(blob, ks::kVmcbPaAt, 8), kVmcb12);
    // The save area is L1's (vmcb01's), not L2's.
    EXPECT_EQ(arch::load_le(blob, ks::kHeaderSize + arch::info(FieldId::rip).offset, 8),
              m.vcpu.vmcb01().get(FieldId::rip));
    const arch::Vmcb regs = m.vcpu.current_registers();
    ASSERT_EQ(regs.get(FieldId::cr3), 0x5000U);

    Machine n;  // a fresh vCPU of the same configuration, as on the destination of a migration
    ASSERT_EQ(kvm_restore(n, blob, regs), "");
    EXPECT_EQ(n.vcpu.mode(), nested::Mode::l2);
    EXPECT_TRUE(n.vcpu.gif());
    EXPECT_EQ(n.vcpu.save_kvm_nested_state(), blob);
    EXPECT_EQ(n.vcpu.vmcb02().get(FieldId::cr3), 0x5000U);
    EXPECT_EQ(n.vcpu.check_invariants(), nullptr);
    const auto r = n.vcpu.l2_event(cpu::Event{.kind = cpu::EventKind::hlt});
    EXPECT_EQ(r.outcome, Outcome::vmexit_to_l1);
    EXPECT_EQ(n.vmcb12().get(FieldId::cr3), 0x5000U);

    // In L1: only the header; GIF = 0 after the #VMEXIT.
    const auto l1_blob = n.vcpu.save_kvm_nested_state();
    ASSERT_EQ(l1_blob.size(), ks::kHeaderSize);
    EXPECT_EQ(arch::load_le(l1_blob, ks::kFlagsAt, 2), 0U);
    const arch::Vmcb l1_regs = n.vcpu.current_registers();
    ASSERT_EQ(kvm_restore(m, l1_blob, l1_regs), "");
    EXPECT_EQ(m.vcpu.mode(), nested::Mode::l1);
    EXPECT_FALSE(m.vcpu.gif());
    EXPECT_EQ(m.vcpu.save_kvm_nested_state(), l1_blob);
}

// What KVM_SET_NESTED_STATE refuses (selftest nested_set_state_test, SVM
// part; KVM's kvm_arch_vcpu_ioctl and svm_set_nested_state), each at its
// boundary and naming the field; a refusal changes nothing.
TEST(KvmNestedState, KvmsRefusalsNameTheField) {
    Machine m;
    m.put(valid_vmcb12());
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    const auto good = m.vcpu.save_kvm_nested_state();
    const arch::Vmcb regs = m.vcpu.current_registers();
    const auto native = m.vcpu.save_state();
    auto with = [&](auto edit) {
        auto b = good;
        edit(b);
        return b;
    };
    auto put16 = [](std::vector<std::uint8_t>& b, std::size_t at, std::uint64_t v) { arch::store_le(b, at, 2, v); };
    auto put32 = [](std::vector<std::uint8_t>& b, std::size_t at, std::uint64_t v) { arch::store_le(b, at, 4, v); };
    auto put64 = [](std::vector<std::uint8_t>& b, std::size_t at, std::uint64_t v) { arch::store_le(b, at, 8, v); };

    const struct {
        const char* what;
        std::vector<std::uint8_t> blob;
        const char* field;
    } cases[] = {
        {"format 0", with([&](auto& b) { put16(b, ks::kFormatAt, 0); }), "format"},
        {"format 2", with([&](auto& b) { put16(b, ks::kFormatAt, 2); }), "format"},
        {"an unknown flag (EVMCS)", with([&](auto& b) { put16(b, ks::kFlagsAt, ks::kGuestMode | ks::kGifSet | 0x4); }), "flags"},
        {"RUN_PENDING without GUEST_MODE", with([&](auto& b) { put16(b, ks::kFlagsAt, ks::kRunPending); }), "flags"},
        {"vmcb_pa -1 in guest mode", with([&](auto& b) { put64(b, ks::kVmcbPaAt, ~std::uint64_t{0}); }), "hdr.svm.vmcb_pa"},
        {"vmcb_pa not page aligned", with([&](auto& b) { put64(b, ks::kVmcbPaAt, kVmcb12 + 8); }), "hdr.svm.vmcb_pa"},
        {"a short size in guest mode", with([&](auto& b) { put32(b, ks::kSizeAt, ks::kGuestSize - 1); }), "size"},
        {"a size below the header", with([&](auto& b) { put32(b, ks::kSizeAt, ks::kHeaderSize - 1); }), "size"},
        {"a size beyond the blob", with([&](auto& b) { put32(b, ks::kSizeAt, ks::kGuestSize + 1); }), "size"},
        {"a blob shorter than the header", std::vector<std::uint8_t>(good.begin(), good.begin() + 64), "size"},
    };
    for (const auto& c : cases) {
        const std::string why = kvm_restore(m, c.blob, regs);
        EXPECT_EQ(why.rfind(std::string("kvm_nested_state: ") + c.field + ":", 0), 0U) << c.what << ": " << why;
        EXPECT_EQ(m.vcpu.save_state(), native) << c.what;
    }
    // Outside guest mode a short size and vmcb_pa -1 are fine (nothing reads them).
    auto header_only = std::vector<std::uint8_t>(good.begin(), good.begin() + ks::kHeaderSize);
    put16(header_only, ks::kFlagsAt, ks::kGifSet);
    put32(header_only, ks::kSizeAt, ks::kHeaderSize);
    put64(header_only, ks::kVmcbPaAt, ~std::uint64_t{0});
    Machine l1;
    EXPECT_EQ(kvm_restore(l1, header_only, l1.vcpu.current_registers()), "");
    // With EFER.SVME = 0 in the vCPU's registers only GIF_SET alone is taken:
    // not GUEST_MODE, not even flags 0.
    arch::Vmcb no_svme = l1.vcpu.current_registers();
    no_svme.set(FieldId::efer, no_svme.get(FieldId::efer) & ~arch::efer::SVME);
    EXPECT_EQ(kvm_restore(l1, header_only, no_svme), "");
    put16(header_only, ks::kFlagsAt, 0);
    EXPECT_EQ(kvm_restore(l1, header_only, no_svme).rfind("kvm_nested_state: flags:", 0), 0U);
    EXPECT_EQ(kvm_restore(m, good, no_svme).rfind("kvm_nested_state: flags:", 0), 0U);
    // The controls still meet the native restore's checks (ASID 0 in vmcb12's cache).
    const auto asid0 = with([&](auto& b) { put32(b, ks::kHeaderSize + arch::info(FieldId::asid).offset, 0); });
    EXPECT_NE(kvm_restore(m, asid0, regs).find("asid"), std::string::npos);
    EXPECT_EQ(m.vcpu.save_state(), native);
}
