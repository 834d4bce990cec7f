// L2's own paging under L0: an access at a linear address runs on the
// processor (L2's walk, vmcb02's nested tables, the A/D bits), a #PF L1
// intercepts is L1's with the error code and the address (APM 15.12), and
// GMET reaches vmcb02 only as KVM's nested_vmcb02_prepare_control lets it
// (APM 15.25.13).
#include <gtest/gtest.h>

#include "nested/nested_test_machine.hpp"

using namespace nsvm;
using namespace nsvm::nested_test;

namespace {
cpu::Event linear(std::uint64_t la, bool write = false) {
    cpu::Event e{.kind = cpu::EventKind::memory, .value = la};
    e.linear = true;
    e.access.write = write;
    return e;
}
/// The PDE give_l2_an_idt writes: a 2 MiB page at 0, P RW US PS.
constexpr std::uint64_t kPde = kPml4 + 0x2000;
}  // namespace

TEST(L2Paging, ALinearAccessWalksL2sTablesAndSetsTheirAccessedAndDirtyBits) {
    Machine m;
    auto v = valid_vmcb12();
    give_l2_an_idt(m, v);
    m.put(v);
    ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
    auto r = m.vcpu.l2_event(linear(0x102100));
    EXPECT_EQ(r.outcome, Outcome::no_exit) << r.note;
    std::uint64_t pde = 0;
    ASSERT_TRUE(m.mem.read_u64(kPde, pde));
    EXPECT_EQ(pde, 0x87U | 0x20U) << "a read: A, no D";
    r = m.vcpu.l2_event(linear(0x102100, true));
    EXPECT_EQ(r.outcome, Outcome::no_exit) << r.note;
    ASSERT_TRUE(m.mem.read_u64(kPde, pde));
    EXPECT_EQ(pde, 0x87U | 0x60U);
    EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
}

TEST(L2Paging, APageFaultL1InterceptsIsL1sWithTheErrorCodeAndTheLinearAddress) {
    for (const bool l1_wants : {true, false}) {
        Machine m;
        auto v = valid_vmcb12();
        give_l2_an_idt(m, v);
        if (l1_wants) v.set_intercept(ic::exception(14));
        m.put(v);
        ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
        // 0x200000 is past the one 2 MiB page: PD[1] not present.
        const auto r = m.vcpu.l2_event(linear(0x200010, true));
        if (l1_wants) {
            ASSERT_EQ(r.outcome, Outcome::vmexit_to_l1) << r.note;
            EXPECT_EQ(r.exit_code, ec::EXCP_BASE + 14);
            EXPECT_EQ(r.exit_info_1, 0x2U) << "W, not present, supervisor";
            EXPECT_EQ(r.exit_info_2, 0x200010U);
            continue;
        }
        // Nobody intercepts it: L2's IDT takes it, CR2 = the address.
        ASSERT_EQ(r.outcome, Outcome::exception) << r.note;
        EXPECT_EQ(r.vector, 14);
        EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::rip), l2_handler(14));
        EXPECT_EQ(m.vcpu.vmcb02().get(FieldId::cr2), 0x200010U);
    }
}

// vmcb02 names L1's nested tables, and KVM walks them in L1's paging mode
// (kvm_init_shadow_npt_mmu with vmcb01's EFER and CR4): an #NPF on a fetch
// reports the fetch (EXITINFO1 bit 4) only under L1's EFER.NXE (or SMEP),
// whatever L0's own EFER says.
TEST(L2Paging, L1sNestedTablesAreWalkedInL1sPagingMode) {
    for (const bool l1_nxe : {true, false}) {
        Machine m;
        auto v = valid_vmcb12();
        give_l2_an_idt(m, v);
        // L1's nested tables at 0x70000: L2's three table pages mapped 1:1
        // with 4 KiB pages, the page at 0x150000 not.
        constexpr std::uint64_t ncr3 = 0x70000, pt = ncr3 + 0x3000;
        ASSERT_TRUE(m.mem.map(ncr3, 0x4000));
        ASSERT_TRUE(m.mem.write_u64(ncr3, (ncr3 + 0x1000) | 7) && m.mem.write_u64(ncr3 + 0x1000, (ncr3 + 0x2000) | 7) &&
                    m.mem.write_u64(ncr3 + 0x2000, pt | 7));
        for (const std::uint64_t page : {kPml4, kPml4 + 0x1000, kPml4 + 0x2000})
            ASSERT_TRUE(m.mem.write_u64(pt + 8 * (page >> 12), page | 7));
        v.set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE);
        v.set(FieldId::nested_cr3, ncr3);
        const std::uint64_t e01 = m.vcpu.vmcb01().get(FieldId::efer);
        m.vcpu.vmcb01().set(FieldId::efer, l1_nxe ? (e01 | arch::efer::NXE) : (e01 & ~arch::efer::NXE));
        m.put(v);
        ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
        cpu::Event fetch = linear(0x150000);
        fetch.access.fetch = true;
        const auto r = m.vcpu.l2_event(fetch);
        ASSERT_EQ(r.outcome, Outcome::vmexit_to_l1) << r.note;
        EXPECT_EQ(r.exit_code, ec::NPF);
        EXPECT_EQ(r.exit_info_1, cpu::npf::FINAL_GPA | cpu::npf::US | (l1_nxe ? cpu::npf::ID : 0)) << l1_nxe;
        EXPECT_EQ(r.exit_info_2, 0x150000U);
        EXPECT_EQ(m.vcpu.check_invariants(), nullptr);
    }
}

TEST(Vmcb02Prepare, GmetReachesVmcb02OnlyWithL1sNestedPagingAndGmetInL1sCpuid) {
    struct Case {
        bool cpu_gmet, l1_np, l1_gmet, want;
    };
    for (const Case c : {Case{true, true, true, true}, Case{true, true, false, false}, Case{true, false, true, false},
                         Case{false, true, true, false}}) {
        Machine m;
        m.cpu.set(checks::Feature::gmet, c.cpu_gmet);
        auto v = valid_vmcb12();
        v.set(FieldId::misc_ctl, (c.l1_np ? arch::misc_ctl::NP_ENABLE : 0) | (c.l1_gmet ? arch::misc_ctl::GMET : 0));
        v.set(FieldId::nested_cr3, c.l1_np ? 0x60000 : 0);
        m.put(v);
        ASSERT_EQ(m.vmrun().outcome, Outcome::entered_l2);
        EXPECT_EQ((m.vcpu.vmcb02().get(FieldId::misc_ctl) & arch::misc_ctl::GMET) != 0, c.want)
            << c.cpu_gmet << c.l1_np << c.l1_gmet;
        EXPECT_EQ((m.vcpu.vmcb02().get(FieldId::misc_ctl) & arch::misc_ctl::NP_ENABLE) != 0, c.l1_np);
    }
}
