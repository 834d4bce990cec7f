// The guest's own paging on the processor (APM 5.3, 5.4.2, 15.25): the
// accessed and dirty bits written back (through the nested tables with
// nested paging), 5-level paging, the CR3 bits each legacy format uses,
// PDPTEs with and without nested paging, EXITINFO1.ID of a nested fetch and
// GMET (15.25.13). Each rule at its boundary.
#include "cpu/svm_cpu_fixture.hpp"

using namespace nsvm;
using namespace nsvm::cpu::test;
using arch::bit;
using arch::FieldId;
using cpu::Event;
using cpu::GuestMemory;
using cpu::EventKind;
using cpu::SvmOutcome;
namespace ic = arch::intercept;
namespace ec = arch::exit_code;
namespace npf = cpu::npf;

namespace {

constexpr std::uint64_t kA = bit(5), kD = bit(6), kPs = bit(7);
/// 4-level tables of the tests: PML4, PDPT, PD, PT, one after the other; the
/// 4 KiB page kLa maps is kData. 5-level puts the PML5 at kPml5.
constexpr std::uint64_t kPml4 = 0x100000, kPdptL = 0x101000, kPd = 0x102000, kPt = 0x103000, kPml5 = 0x104000,
                        kData = 0x200000, kLa = 0x400000;
/// An address 5-level paging reaches and 4-level paging does not: bit 48
/// set, bits 63:57 clear (canonical at 57 bits, not at 48).
constexpr std::uint64_t kLa57 = (std::uint64_t{1} << 48) | kLa;
/// Where the nested tables are, and where the nested tests put the guest's
/// tables and data in host-physical memory (GPA + kHostShift).
constexpr std::uint64_t kNcr3 = 0x300000, kHostShift = 0x1000000;

Event linear(std::uint64_t la, bool write = false, bool fetch = false) {
    Event e;
    e.kind = EventKind::memory;
    e.linear = true;
    e.value = la;
    e.access.write = write;
    e.access.fetch = fetch;
    return e;
}

Event vmmcall() { return Event{.kind = EventKind::vmmcall, .insn_len = 3}; }

Event physical_fetch(std::uint64_t gpa) {
    Event e;
    e.kind = EventKind::memory;
    e.value = gpa;
    e.access.fetch = true;
    return e;
}

std::uint64_t u64(const GuestMemory& mem, std::uint64_t at) {
    std::uint64_t v = 0;
    EXPECT_TRUE(mem.read_u64(at, v)) << std::hex << at;
    return v;
}

/// 4-level tables at `base` (+ kPml4 layout offsets) mapping kLa to `data`
/// with a 4 KiB page of `leaf_flags`; tables P|RW|US.
void four_level(GuestMemory& mem, std::uint64_t base, std::uint64_t data, std::uint64_t leaf_flags = 7) {
    ASSERT_TRUE(mem.map(base + kPml4, 0x5000) && mem.map(base + kData));
    ASSERT_TRUE(mem.write_u64(base + kPml4, kPdptL | 7) && mem.write_u64(base + kPdptL, kPd | 7) &&
                mem.write_u64(base + kPd + 8 * ((kLa >> 21) & 0x1FF), kPt | 7) &&
                mem.write_u64(base + kPt + 8 * ((kLa >> 12) & 0x1FF), data | leaf_flags));
}

/// A nested table builder: 4 KiB mappings GPA -> HPA under kNcr3.
struct Npt {
    GuestMemory& mem;
    std::uint64_t next = kNcr3 + 0x1000;
    void map(std::uint64_t gpa, std::uint64_t hpa, std::uint64_t leaf_flags = 7) {
        ASSERT_TRUE(mem.map(kNcr3));
        std::uint64_t table = kNcr3;
        for (unsigned level = 4; level > 1; --level) {
            const std::uint64_t slot = table + 8 * ((gpa >> (12 + 9 * (level - 1))) & 0x1FF);
            std::uint64_t e = u64(mem, slot);
            if ((e & 1) == 0) {
                ASSERT_TRUE(mem.map(next));
                e = next | 7;
                next += 0x1000;
                ASSERT_TRUE(mem.write_u64(slot, e));
            }
            table = e & arch::bits(51, 12);
        }
        ASSERT_TRUE(mem.write_u64(table + 8 * ((gpa >> 12) & 0x1FF), hpa | leaf_flags));
    }
};

/// The 64-bit guest on kPml4, #PF intercepted (so a fault shows its error
/// code and CR2 as EXITINFO1/2).
arch::Vmcb paged_guest() {
    arch::Vmcb v = guest64();
    v.set(FieldId::cr3, kPml4);
    v.set_intercept(ic::exception(14));
    return v;
}

arch::Vmcb with_npt(arch::Vmcb v, std::uint64_t extra_ctl = 0) {
    v.set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE | extra_ctl);
    v.set(FieldId::nested_cr3, kNcr3);
    return v;
}

void at_cpl3(arch::Vmcb& v) {
    v.set(FieldId::cpl, 3);
    auto cs = v.segment(arch::Seg::cs);
    cs.attrib |= 3 << 5;
    v.set_segment(arch::Seg::cs, cs);
    auto ss = v.segment(arch::Seg::ss);
    ss.attrib |= 3 << 5;
    ss.selector |= 3;
    v.set_segment(arch::Seg::ss, ss);
}

void expect_pf(const cpu::SvmResult& r, std::uint32_t error_code, std::uint64_t la) {
    ASSERT_EQ(r.outcome, SvmOutcome::vmexit) << r.note;
    EXPECT_EQ(r.exit_code, ec::EXCP_BASE + 14);
    EXPECT_EQ(r.exit_info_1, error_code);
    EXPECT_EQ(r.exit_info_2, la);
}

void expect_npf(const cpu::SvmResult& r, std::uint64_t info1, std::uint64_t gpa) {
    ASSERT_EQ(r.outcome, SvmOutcome::vmexit) << r.note;
    EXPECT_EQ(r.exit_code, ec::NPF);
    EXPECT_EQ(r.exit_info_1, info1);
    EXPECT_EQ(r.exit_info_2, gpa);
}

}  // namespace

// --- Accessed and dirty bits (APM 5.4.2) ------------------------------------------

TEST(GuestPaging, AccessedOnEveryEntryUsedDirtyOnlyOnTheLeafOfAWrite) {
    Machine m;
    four_level(m.mem, 0, kData);
    ASSERT_EQ(m.enter(paged_guest()).outcome, SvmOutcome::entered_guest);
    const std::uint64_t pde = kPd + 8 * ((kLa >> 21) & 0x1FF), pte = kPt + 8 * ((kLa >> 12) & 0x1FF);
    ASSERT_EQ(m.cpu.guest_event(linear(kLa + 0x10)).outcome, SvmOutcome::no_exit);
    EXPECT_EQ(u64(m.mem, kPml4), kPdptL | 7 | kA);
    EXPECT_EQ(u64(m.mem, kPdptL), kPd | 7 | kA);
    EXPECT_EQ(u64(m.mem, pde), kPt | 7 | kA) << "D only in the leaf";
    EXPECT_EQ(u64(m.mem, pte), kData | 7 | kA) << "a read: A, no D";
    ASSERT_EQ(m.cpu.guest_event(linear(kLa + 0x10, true)).outcome, SvmOutcome::no_exit);
    EXPECT_EQ(u64(m.mem, pte), kData | 7 | kA | kD);
    EXPECT_EQ(u64(m.mem, pde), kPt | 7 | kA);
}

TEST(GuestPaging, ADeniedWriteLeavesTheLeafAsItWas) {
    Machine m;
    const std::uint64_t pte = kPt + 8 * ((kLa >> 12) & 0x1FF);
    four_level(m.mem, 0, kData, 5);  // P, US, read-only; CR0.WP = 1 in guest64
    ASSERT_EQ(m.enter(paged_guest()).outcome, SvmOutcome::entered_guest);
    expect_pf(m.cpu.guest_event(linear(kLa, true)), 0x3, kLa);  // P | W, supervisor
    EXPECT_EQ(u64(m.mem, pte), kData | 5);
    EXPECT_EQ(u64(m.mem, kPd + 8 * ((kLa >> 21) & 0x1FF)) & kA, kA);  // the entries above were used
    // The same entry writable: the write is permitted, D set.
    ASSERT_TRUE(m.mem.write_u64(pte, kData | 7));
    ASSERT_EQ(m.enter(paged_guest()).outcome, SvmOutcome::entered_guest);
    ASSERT_EQ(m.cpu.guest_event(linear(kLa, true)).outcome, SvmOutcome::no_exit);
    EXPECT_EQ(u64(m.mem, pte), kData | 7 | kA | kD);
}

TEST(GuestPaging, AWalkThatStopsSetsAccessedAboveAndNothingAtOrBelowTheStop) {
    Machine m;
    four_level(m.mem, 0, kData);
    const std::uint64_t pde = kPd + 8 * ((kLa >> 21) & 0x1FF), pte = kPt + 8 * ((kLa >> 12) & 0x1FF);
    ASSERT_TRUE(m.mem.write_u64(pde, kPt | 6));  // not present
    ASSERT_EQ(m.enter(paged_guest()).outcome, SvmOutcome::entered_guest);
    expect_pf(m.cpu.guest_event(linear(kLa)), 0, kLa);
    EXPECT_EQ(u64(m.mem, kPml4) & kA, kA);
    EXPECT_EQ(u64(m.mem, kPdptL) & kA, kA);
    EXPECT_EQ(u64(m.mem, pde), kPt | 6);
    EXPECT_EQ(u64(m.mem, pte), kData | 7);
    // A reserved bit (PS in the PML4E, APM 5.3.3): #PF(P|RSV), no A there.
    ASSERT_TRUE(m.mem.write_u64(kPml4, kPdptL | 7 | kPs));
    ASSERT_EQ(m.enter(paged_guest()).outcome, SvmOutcome::entered_guest);
    expect_pf(m.cpu.guest_event(linear(kLa)), 0x9, kLa);
    EXPECT_EQ(u64(m.mem, kPml4), kPdptL | 7 | kPs);
}

TEST(GuestPaging, UnderNestedPagingTheAccessedAndDirtyBitsGoToTheHostPhysicalEntry) {
    Machine m;
    // The guest's tables and page at GPA, their bytes at GPA + kHostShift.
    four_level(m.mem, kHostShift, kData);
    Npt npt{m.mem};
    for (std::uint64_t g : {kPml4, kPdptL, kPd, kPt, kData}) npt.map(g, g + kHostShift);
    ASSERT_TRUE(m.mem.map(kPml4, 0x4000));  // the GPAs backed too: they must stay untouched
    ASSERT_EQ(m.enter(with_npt(paged_guest())).outcome, SvmOutcome::entered_guest);
    ASSERT_EQ(m.cpu.guest_event(linear(kLa, true)).outcome, SvmOutcome::no_exit);
    const std::uint64_t pte = kPt + 8 * ((kLa >> 12) & 0x1FF);
    EXPECT_EQ(u64(m.mem, kHostShift + kPml4), kPdptL | 7 | kA);
    EXPECT_EQ(u64(m.mem, kHostShift + pte), kData | 7 | kA | kD);
    EXPECT_EQ(u64(m.mem, kPml4), 0U);
    EXPECT_EQ(u64(m.mem, pte), 0U);
}

// --- 5-level paging (APM 5.3.4) ------------------------------------------------------

TEST(GuestPaging, FiveLevelPagingWalksThePml5) {
    Machine m;
    four_level(m.mem, 0, kData);
    // PML5[1] (LA bit 48) -> the PML4; PML4[0] maps kLa's low bits.
    ASSERT_TRUE(m.mem.write_u64(kPml5 + 8, kPml4 | 7));
    arch::Vmcb v = paged_guest();
    v.set(FieldId::cr3, kPml5);
    v.set(FieldId::cr4, v.get(FieldId::cr4) | arch::cr4::LA57);
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    ASSERT_EQ(m.cpu.guest_event(linear(kLa57)).outcome, SvmOutcome::no_exit);
    EXPECT_EQ(u64(m.mem, kPml5 + 8), kPml4 | 7 | kA);
    // PML5[0] is empty: the same address without bit 48 faults not-present.
    expect_pf(m.cpu.guest_event(linear(kLa)), 0, kLa);
    // PS is MBZ in a PML5E as in a PML4E.
    ASSERT_TRUE(m.mem.write_u64(kPml5 + 8, kPml4 | 7 | kPs));
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    expect_pf(m.cpu.guest_event(linear(kLa57)), 0x9, kLa57);
    // 4-level paging: the address is not canonical at 48 bits, #GP(0); its
    // delivery reads the IDT at 0x60000, which the tables do not map: the
    // #PF that makes is intercepted, EXITINTINFO names the #GP.
    Machine n;
    four_level(n.mem, 0, kData);
    ASSERT_EQ(n.enter(paged_guest()).outcome, SvmOutcome::entered_guest);
    const auto r = n.cpu.guest_event(linear(kLa57));
    ASSERT_EQ(r.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(r.exit_code, ec::EXCP_BASE + 14);
    EXPECT_EQ(r.exit_int_info & 0xFF, 13U);
}

TEST(GuestPaging, CR4La57ReachesAGuestOnlyOnACpuWithLa57) {
    arch::Vmcb v = paged_guest();
    v.set(FieldId::cr4, v.get(FieldId::cr4) | arch::cr4::LA57);
    Machine with;
    EXPECT_EQ(with.enter(v).outcome, SvmOutcome::entered_guest);
    auto model = checks::default_model();
    model.set(checks::Feature::la57, false);
    Machine without(checks::ProfileId::apm, model);
    const auto r = without.enter(v);
    EXPECT_EQ(r.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(r.exit_code, ec::INVALID);
    ASSERT_NE(r.failed_check, nullptr);
    EXPECT_EQ(std::string_view(r.failed_check->id), "cr4.mbz");
}

// --- CR3 in the legacy formats (APM 5.3.2, 5.3.3) ------------------------------------

TEST(GuestPaging, LegacyTwoLevelTakesThePageDirectoryFromCr3Bits31To12) {
    constexpr std::uint64_t kPd32 = 0x70000, kPt32 = 0x71000, kData32 = 0x72000;
    Machine m;
    ASSERT_TRUE(m.mem.map(kPd32, 0x3000));
    ASSERT_TRUE(m.mem.write(kPd32 + 4 * (kLa >> 22), std::array<std::uint8_t, 4>{0x07, 0x10, 0x07, 0x00}));
    ASSERT_TRUE(m.mem.write(kPt32 + 4 * ((kLa >> 12) & 0x3FF), std::array<std::uint8_t, 4>{0x07, 0x20, 0x07, 0x00}));
    arch::Vmcb v = checks::test::valid_vmcb_legacy32();
    v.set_intercept(ic::exception(14));
    v.set(FieldId::cr3, kPd32 | 0xFFF);  // every bit of 11:0 set: none is an address bit
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    ASSERT_EQ(m.cpu.guest_event(linear(kLa, true)).outcome, SvmOutcome::no_exit);
    // 4-byte entries: A in the PDE, A and D in the PTE, the next entry untouched.
    EXPECT_EQ(u64(m.mem, kPd32 + 4 * (kLa >> 22)) & 0xFFFFFFFF, (kPt32 | 7 | kA));
    EXPECT_EQ(u64(m.mem, kPt32 + 4 * ((kLa >> 12) & 0x3FF)), kData32 | 7 | kA | kD);
    // Bit 12 is one: CR3 = kPt32 walks the page table as a directory.
    ASSERT_EQ(m.cpu.guest_event(vmmcall()).outcome, SvmOutcome::vmexit);
    v.set(FieldId::cr3, kPd32 + 0x1000);
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    expect_pf(m.cpu.guest_event(linear(kLa)), 0, kLa);
}

TEST(GuestPaging, PaeTakesThePdptFromCr3Bits31To5) {
    constexpr std::uint64_t kPdpt32 = 0x70000, kPd32 = 0x71000, kPt32 = 0x72000, kData32 = 0x73000;
    Machine m;
    ASSERT_TRUE(m.mem.map(kPdpt32, 0x4000));
    ASSERT_TRUE(m.mem.write_u64(kPdpt32, kPd32 | 1) && m.mem.write_u64(kPd32 + 8 * (kLa >> 21), kPt32 | 7) &&
                m.mem.write_u64(kPt32 + 8 * ((kLa >> 12) & 0x1FF), kData32 | 7));
    arch::Vmcb v = checks::test::valid_vmcb_pae32();
    v.set_intercept(ic::exception(14));
    v.set(FieldId::cr3, kPdpt32 | 0x1F);  // bits 4:0 ignored
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    EXPECT_EQ(m.cpu.pdpes()[0], kPd32 | 1);
    ASSERT_EQ(m.cpu.guest_event(linear(kLa)).outcome, SvmOutcome::no_exit);
    EXPECT_EQ(u64(m.mem, kPd32 + 8 * (kLa >> 21)), kPt32 | 7 | kA);
    EXPECT_EQ(u64(m.mem, kPdpt32), kPd32 | 1) << "PDPTEs have no A bit";
    // Bit 5 is one: the PDPT 32 bytes on, whose entry 0 is not present.
    ASSERT_EQ(m.cpu.guest_event(vmmcall()).outcome, SvmOutcome::vmexit);
    v.set(FieldId::cr3, kPdpt32 | 0x20);
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    expect_pf(m.cpu.guest_event(linear(kLa)), 0, kLa);
}

TEST(GuestPaging, AReservedPdpteFailsVmrunWithoutNestedPagingAndFaultsAtFirstUseWithIt) {
    constexpr std::uint64_t kPdpt32 = 0x70000;
    Machine m;
    ASSERT_TRUE(m.mem.map(kPdpt32));
    ASSERT_TRUE(m.mem.write_u64(kPdpt32, 0x71000 | 1 | bit(5)));  // bit 5 reserved in a PDPTE
    arch::Vmcb v = checks::test::valid_vmcb_pae32();
    v.set_intercept(ic::exception(14));
    v.set(FieldId::cr3, kPdpt32);
    auto r = m.enter(v);
    EXPECT_EQ(r.outcome, SvmOutcome::vmexit);
    EXPECT_EQ(r.exit_code, ec::INVALID);
    // With nested paging VMRUN loads no PDPTE: the walk reads it and the
    // first access through it is #PF(P|RSV) (|W for a write).
    Npt npt{m.mem};
    npt.map(kPdpt32, kPdpt32);
    ASSERT_EQ(m.enter(with_npt(v)).outcome, SvmOutcome::entered_guest);
    expect_pf(m.cpu.guest_event(linear(kLa, true)), 0xB, kLa);
}

// --- #PF error code of a fetch (APM 8.4.2, 5.6) -----------------------------------------

TEST(GuestPaging, AFetchFromAnNxPageIsIdAndPresentAndNxIsReservedWithoutNxe) {
    Machine m;
    four_level(m.mem, 0, kData, 7 | bit(63));
    ASSERT_EQ(m.enter(paged_guest()).outcome, SvmOutcome::entered_guest);
    // EFER.NXE = 1 (guest64): bit 63 forbids the fetch, P | I/D.
    expect_pf(m.cpu.guest_event(linear(kLa, false, true)), 0x11, kLa);
    // EFER.NXE = 0: bit 63 is a reserved bit, P | RSV, and without
    // no-execute (or SMEP) enabled the I/D bit is not defined: clear.
    arch::Vmcb v = paged_guest();
    v.set(FieldId::efer, v.get(FieldId::efer) & ~arch::efer::NXE);
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    expect_pf(m.cpu.guest_event(linear(kLa, false, true)), 0x9, kLa);
    // ... and a load is refused the same way (the entry, not the access).
    ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
    expect_pf(m.cpu.guest_event(linear(kLa)), 0x9, kLa);
}

TEST(GuestPaging, SmepRefusesASupervisorFetchFromAUserPageWithIdUnderEitherNxe) {
    for (const bool nxe : {true, false}) {
        Machine m;
        four_level(m.mem, 0, kData);  // U/S = 1 at every level
        arch::Vmcb v = paged_guest();
        v.set(FieldId::cr4, v.get(FieldId::cr4) | arch::cr4::SMEP);
        if (!nxe) v.set(FieldId::efer, v.get(FieldId::efer) & ~arch::efer::NXE);
        ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
        expect_pf(m.cpu.guest_event(linear(kLa, false, true)), 0x11, kLa);
        // A supervisor load from the same page is SMAP's business, not SMEP's.
        ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
        EXPECT_EQ(m.cpu.guest_event(linear(kLa)).outcome, SvmOutcome::no_exit);
    }
}

TEST(GuestPaging, LegacyPagingNeverSetsIdForAFetchUnlessSmep) {
    // APM 8.4.2: I/D is defined with EFER.NXE = 1 && CR4.PAE = 1; legacy
    // 2-level paging has no NX bit, so a fetch through a not-present PDE is
    // error code 0 there whatever EFER.NXE says, and I/D with SMEP.
    constexpr std::uint64_t kPd32 = 0x70000;
    for (const bool smep : {false, true}) {
        Machine m;
        ASSERT_TRUE(m.mem.map(kPd32));
        arch::Vmcb v = checks::test::valid_vmcb_legacy32();
        v.set_intercept(ic::exception(14));
        v.set(FieldId::cr3, kPd32);
        v.set(FieldId::efer, v.get(FieldId::efer) | arch::efer::NXE);
        if (smep) v.set(FieldId::cr4, v.get(FieldId::cr4) | arch::cr4::SMEP);
        ASSERT_EQ(m.enter(v).outcome, SvmOutcome::entered_guest);
        expect_pf(m.cpu.guest_event(linear(kLa, false, true)), smep ? 0x10 : 0, kLa);
    }
}

// --- #NPF EXITINFO1.ID and GMET (APM 15.25.6, 15.25.13) -------------------------------

TEST(NestedPagingFetch, ExitInfo1IdOnlyWithTheHostsNxeOrSmep) {
    struct Case {
        bool nxe, smep;
        std::uint64_t id;
    };
    for (const Case c : {Case{true, false, npf::ID}, Case{false, false, 0}, Case{false, true, npf::ID}}) {
        Machine m;
        ASSERT_TRUE(m.mem.map(kNcr3));  // an empty PML4: nothing is mapped
        if (!c.nxe) m.cpu.regs().efer &= ~arch::efer::NXE;
        if (c.smep) m.cpu.regs().cr4 |= arch::cr4::SMEP;
        ASSERT_EQ(m.enter(with_npt(guest64())).outcome, SvmOutcome::entered_guest);
        expect_npf(m.cpu.guest_event(physical_fetch(kData)), npf::FINAL_GPA | npf::US | c.id, kData);
    }
}

namespace {
/// A guest on identity nested tables whose final page kData has nested
/// `data_flags`; 64-bit paging maps kLa to it.
struct GmetMachine : Machine {
    explicit GmetMachine(bool cpu_has_gmet)
        : Machine(checks::ProfileId::apm, [&] {
              auto model = checks::default_model();
              model.set(checks::Feature::gmet, cpu_has_gmet);
              return model;
          }()) {}
    cpu::SvmResult run(std::uint64_t data_flags, bool cpl3, bool gmet, const Event& e) {
        four_level(mem, 0, kData);
        Npt npt{mem};
        for (std::uint64_t g : {kPml4, kPdptL, kPd, kPt}) npt.map(g, g);
        npt.map(kData, kData, data_flags);
        arch::Vmcb v = with_npt(paged_guest(), gmet ? arch::misc_ctl::GMET : 0);
        if (cpl3) at_cpl3(v);
        EXPECT_EQ(enter(v).outcome, SvmOutcome::entered_guest);
        return cpu.guest_event(e);
    }
};
constexpr std::uint64_t kUserPage = 7, kSupervisorPage = 3;
}  // namespace

TEST(NestedPagingFetch, GmetTrapsAFetchBelowCpl3FromANestedUserPage) {
    // P | ID | final GPA: a supervisor fetch (US clear), ID as the host has NXE.
    expect_npf(GmetMachine(true).run(kUserPage, false, true, linear(kLa, false, true)),
               npf::P | npf::ID | npf::FINAL_GPA, kData);
    // A supervisor page: the fetch below CPL 3 runs.
    EXPECT_EQ(GmetMachine(true).run(kSupervisorPage, false, true, linear(kLa, false, true)).outcome,
              SvmOutcome::no_exit);
    // CPL 3 fetches from a user page as without GMET.
    EXPECT_EQ(GmetMachine(true).run(kUserPage, true, true, linear(kLa, false, true)).outcome, SvmOutcome::no_exit);
    // Data accesses below CPL 3 stay user accesses: a supervisor page faults.
    expect_npf(GmetMachine(true).run(kSupervisorPage, false, true, linear(kLa)),
               npf::P | npf::US | npf::FINAL_GPA, kData);
}

TEST(NestedPagingFetch, WithoutGmetOrOnACpuWithoutItEveryNestedAccessIsAUserAccess) {
    for (const bool cpu_has : {true, false}) {
        const bool vmcb_bit = !cpu_has;  // GMET set in the VMCB only where the CPU ignores it
        EXPECT_EQ(GmetMachine(cpu_has).run(kUserPage, false, vmcb_bit, linear(kLa, false, true)).outcome,
                  SvmOutcome::no_exit);
        expect_npf(GmetMachine(cpu_has).run(kSupervisorPage, false, vmcb_bit, linear(kLa, false, true)),
                   npf::P | npf::US | npf::ID | npf::FINAL_GPA, kData);
    }
}
