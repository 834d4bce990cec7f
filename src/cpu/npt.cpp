#include "nsvm/cpu/npt.hpp"

namespace nsvm::cpu {

NestedPagingMode nested_paging_mode(const checks::CpuModel& cpu, std::uint64_t nested_ctl, std::uint64_t host_efer,
                                    std::uint64_t host_cr4) noexcept {
    return NestedPagingMode{(host_efer & arch::efer::NXE) != 0, (host_cr4 & arch::cr4::SMEP) != 0,
                            cpu.has(checks::Feature::gmet) && (nested_ctl & arch::misc_ctl::GMET) != 0};
}

NptResult npt_walk(GuestMemory& mem, std::uint64_t ncr3, std::uint64_t gpa, Access a, NestedPagingMode mode,
                   bool guest_pt_access) noexcept {
    using arch::bits;
    namespace pte = arch::pte;
    NptResult r;
    const unsigned maxpa = mem.maxphyaddr();
    // Bits MAXPHYADDR..51 of an entry are reserved; NX (63) without EFER.NXE.
    const std::uint64_t pa_rsv = maxpa >= 52 ? 0 : bits(51, maxpa);
    const std::uint64_t nx_rsv = mode.nxe ? 0 : pte::NX;
    const std::uint64_t kind = guest_pt_access ? npf::GUEST_PT : npf::FINAL_GPA;
    const std::uint64_t access_bits = npf_access_bits(a, mode);
    // APM 15.25.13: with GMET, an instruction fetch at CPL < 3 (the one
    // nested access that is a supervisor access, nested_access) may not
    // execute a user page.
    const bool supervisor_fetch = mode.gmet && a.fetch && !a.user;
    r.info2 = gpa;

    std::uint64_t table = ncr3 & arch::cr3::kLongBase;
    bool writable = true, user = true, exec = true;
    for (unsigned level = 4; level >= 1; --level) {
        r.level = level;
        const unsigned shift = pte::level_shift(level);
        const std::uint64_t entry_pa = table + pte::table_index(gpa, level) * 8;
        std::uint64_t e = 0;
        if (!mem.read_u64(entry_pa, e)) {
            // The table itself is not backed: treat as not present.
            r.info1 = access_bits | kind;
            return r;
        }
        if (!(e & pte::P)) {
            r.info1 = access_bits | kind;
            return r;
        }
        const bool large = level <= 3 && level >= 2 && (e & pte::PS);
        std::uint64_t rsv = pa_rsv | nx_rsv;
        if (level == 4) rsv |= pte::PS | pte::G;  // PS and G are MBZ in a PML4E
        if (large) rsv |= (level == 3 ? pte::k1gReserved : pte::k2mReserved);
        if (e & rsv) {
            r.info1 = access_bits | npf::P | npf::RSV | kind;
            return r;
        }
        writable &= (e & pte::RW) != 0;
        user &= (e & pte::US) != 0;
        exec &= !(mode.nxe && (e & pte::NX));
        const bool leaf = level == 1 || large;
        bool denied = false;
        if (leaf) {
            // Nested accesses are user accesses (APM 15.25.5): US must be
            // set, but for GMET's supervisor fetch, which a user page denies.
            denied = (a.write && !writable) || (supervisor_fetch ? user : !user) || (a.fetch && !exec);
        }
        if (denied) {
            // A refused access leaves the leaf as it was (the guest walk's
            // rule, SvmCpu::guest_translate).
            r.info1 = access_bits | npf::P | kind;
            return r;
        }
        // A on every entry the walk uses, D on the leaf of a (permitted) write.
        if (const std::uint64_t ne = accessed_dirty(e, leaf && a.write); ne != e) (void)mem.write_u64(entry_pa, ne);
        if (leaf) {
            const std::uint64_t page_mask = (std::uint64_t{1} << shift) - 1;
            r.ok = true;
            r.hpa = (e & pte::kAddr & ~page_mask) | (gpa & page_mask);
            return r;
        }
        table = e & pte::kAddr;
    }
    return r;
}

}  // namespace nsvm::cpu
