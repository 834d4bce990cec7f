#include "nsvm/cpu/npt.hpp"

#include "nsvm/arch/bits.hpp"

namespace nsvm::cpu {

NptResult npt_walk(GuestMemory& mem, std::uint64_t ncr3, std::uint64_t gpa, Access a, bool nxe,
                   bool guest_pt_access) noexcept {
    using arch::bit;
    using arch::bits;
    NptResult r;
    const unsigned maxpa = mem.maxphyaddr();
    // Bits MAXPHYADDR..51 of an entry are reserved; NX (63) without EFER.NXE.
    const std::uint64_t pa_rsv = maxpa >= 52 ? 0 : bits(51, maxpa);
    const std::uint64_t nx_rsv = nxe ? 0 : bit(63);
    const std::uint64_t kind = guest_pt_access ? npf::GUEST_PT : npf::FINAL_GPA;
    std::uint64_t access_bits = (a.write ? npf::RW : 0) | (a.user ? npf::US : 0) | (a.fetch ? npf::ID : 0);
    r.info2 = gpa;

    std::uint64_t table = ncr3 & bits(51, 12);
    bool writable = true, user = true, exec = true;
    for (unsigned level = 4; level >= 1; --level) {
        r.level = level;
        const unsigned shift = 12 + 9 * (level - 1);
        const std::uint64_t entry_pa = table + ((gpa >> shift) & 0x1FF) * 8;
        std::uint64_t e = 0;
        if (!mem.read_u64(entry_pa, e)) {
            // The table itself is not backed: treat as not present.
            r.info1 = access_bits | kind;
            return r;
        }
        if (!(e & 1)) {
            r.info1 = access_bits | kind;
            return r;
        }
        const bool large = level <= 3 && level >= 2 && (e & bit(7));
        std::uint64_t rsv = pa_rsv | nx_rsv;
        if (level == 4) rsv |= bit(7) | bit(8);  // PS and G are MBZ in a PML4E
        if (large) rsv |= (level == 3 ? bits(29, 13) : bits(20, 13));
        if (e & rsv) {
            r.info1 = access_bits | npf::P | npf::RSV | kind;
            return r;
        }
        writable &= (e & 2) != 0;
        user &= (e & 4) != 0;
        exec &= !(nxe && (e & bit(63)));
        // A bit on every level; D on the leaf for writes.
        const bool leaf = level == 1 || large;
        std::uint64_t ne = e | bit(5);
        if (leaf && a.write) ne |= bit(6);
        if (ne != e) (void)mem.write_u64(entry_pa, ne);
        if (leaf) {
            // Nested accesses are user accesses (APM 15.25.5): US must be set.
            const bool denied = (a.write && !writable) || (!user) || (a.fetch && !exec);
            if (denied) {
                r.info1 = access_bits | npf::P | kind;
                return r;
            }
            const std::uint64_t page_mask = (std::uint64_t{1} << shift) - 1;
            r.ok = true;
            r.hpa = (e & bits(51, 12) & ~page_mask) | (gpa & page_mask);
            return r;
        }
        table = e & bits(51, 12);
    }
    return r;
}

}  // namespace nsvm::cpu
