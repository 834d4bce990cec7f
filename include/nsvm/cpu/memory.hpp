// Guest physical memory of the modelled machine: 4 KiB pages bounded by
// MAXPHYADDR. Reading memory that is not backed fails explicitly (the caller
// decides: VMEXIT_INVALID, #GP, an L0 #NPF ...), never a silent zero.
//
// Backing is lazy: map() only records which ranges are backed; a page is
// stored when it is first written, and a backed page never written reads as
// zeroes. Stored pages count against a budget (kDefaultBudget unless set):
// a write that would store a page beyond it fails and is remembered
// (budget_exhausted), so a caller can tell it from unbacked memory and no
// input makes the model allocate without bound.
//
// Only the first write to a page allocates. The VMRUN/#VMEXIT path writes
// nothing but vmcb12: a VMRUN that enters L2 read a written page (an
// all-zero VMCB fails VMRUN's checks), so the #VMEXITs after it store
// nothing new; only the VMEXIT_INVALID write-back into a vmcb12 page never
// written stores that page. A caller that needs pages stored ahead of time
// stores them at set-up (populate).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>

#include "nsvm/arch/vmcb.hpp"
#include "nsvm/checks/catalogue.hpp"

namespace nsvm::cpu {

inline constexpr std::uint64_t kPageSize = 4096;
[[nodiscard]] constexpr std::uint64_t page_of(std::uint64_t gpa) noexcept { return gpa & ~(kPageSize - 1); }

class GuestMemory final : public checks::GuestMemory {
public:
    using Page = std::array<std::uint8_t, kPageSize>;
    /// Bytes of stored (written) pages allowed unless set_budget says otherwise.
    static constexpr std::uint64_t kDefaultBudget = std::uint64_t{256} << 20;

    explicit GuestMemory(unsigned maxphyaddr = 48) noexcept : maxphyaddr_(maxphyaddr) {}
    GuestMemory(const GuestMemory& o);
    GuestMemory& operator=(const GuestMemory& o);

    /// Backs the pages covering [gpa, gpa+size), reading as zeroes until
    /// written (existing contents kept). Stores nothing, so it costs nothing
    /// against the budget. False when the range crosses MAXPHYADDR.
    [[nodiscard]] bool map(std::uint64_t gpa, std::uint64_t size = kPageSize);
    /// Stores the backed pages covering [gpa, gpa+size) now (as zeroes where
    /// unwritten), so later writes to them allocate nothing. False when a
    /// page is not backed or the budget would be exceeded.
    [[nodiscard]] bool populate(std::uint64_t gpa, std::uint64_t size = kPageSize);
    [[nodiscard]] bool backed(std::uint64_t gpa) const noexcept;
    [[nodiscard]] unsigned maxphyaddr() const noexcept { return maxphyaddr_; }

    /// The budget of stored pages, in bytes (rounded down to whole pages).
    void set_budget(std::uint64_t bytes) noexcept { budget_pages_ = bytes / kPageSize; }
    [[nodiscard]] std::uint64_t budget() const noexcept { return budget_pages_ * kPageSize; }
    /// Bytes of pages stored so far (written at least once).
    [[nodiscard]] std::uint64_t stored_bytes() const noexcept { return pages_.size() * kPageSize; }
    /// A write failed because storing its pages would exceed the budget
    /// (sticky until clear_budget_exhausted); the first such write's GPA.
    [[nodiscard]] bool budget_exhausted() const noexcept { return budget_exhausted_; }
    [[nodiscard]] std::uint64_t budget_refused_gpa() const noexcept { return budget_refused_gpa_; }
    void clear_budget_exhausted() noexcept { budget_exhausted_ = false; }

    /// Every byte of the range must be backed; nothing is read otherwise.
    [[nodiscard]] bool read(std::uint64_t gpa, std::span<std::uint8_t> out) const noexcept;
    [[nodiscard]] bool write(std::uint64_t gpa, std::span<const std::uint8_t> in) noexcept;
    [[nodiscard]] bool read_u8(std::uint64_t gpa, std::uint8_t& out) const noexcept;
    [[nodiscard]] bool read_u64(std::uint64_t gpa, std::uint64_t& out) const override;
    [[nodiscard]] bool write_u64(std::uint64_t gpa, std::uint64_t v) noexcept;
    /// `width` bytes (1..8) at `gpa` as a little-endian value (a page-table
    /// entry of 4 or 8 bytes, a sized guest write or check); false, nothing
    /// read or written, as read() and write() say.
    [[nodiscard]] bool read_le(std::uint64_t gpa, unsigned width, std::uint64_t& out) const noexcept;
    [[nodiscard]] bool write_le(std::uint64_t gpa, unsigned width, std::uint64_t v) noexcept;

    /// The bytes of the backed 4 KiB page at `page` (aligned) for reading, or
    /// an empty span: one lookup for many scattered reads of one page (the
    /// MSRPM merge). Counted as one read when it is the watched page.
    [[nodiscard]] std::span<const std::uint8_t> page_bytes(std::uint64_t page) const noexcept;

    /// A whole VMCB page (gpa must be 4 KiB aligned). Counted when the page
    /// is the watched one, so tests can prove vmcb12 is read once per VMRUN.
    [[nodiscard]] bool read_vmcb(std::uint64_t gpa, arch::Vmcb& out) const noexcept;
    /// The fields of the VMCB page at gpa (arch::kFieldRuns), as one read:
    /// the reserved bytes of `out` stay as they are. The vmcb12 cache's read.
    [[nodiscard]] bool read_vmcb_fields(std::uint64_t gpa, arch::Vmcb& out) const noexcept;
    [[nodiscard]] bool write_vmcb(std::uint64_t gpa, const arch::Vmcb& in) noexcept;
    /// Reads a VMCB without counting (tracing, expectations).
    [[nodiscard]] bool peek_vmcb(std::uint64_t gpa, arch::Vmcb& out) const noexcept;
    /// The VMCB page at gpa (4 KiB aligned, backed) for writing in place, or
    /// nullopt: one page lookup for a whole #VMEXIT write-back.
    [[nodiscard]] std::optional<arch::VmcbView> vmcb_in_place(std::uint64_t gpa) noexcept;

    /// Counts every read (of any size) that touches this page.
    void watch(std::uint64_t page) noexcept {
        watched_ = page_of(page);
        watched_reads_ = 0;
    }
    [[nodiscard]] std::uint64_t watched_reads() const noexcept { return watched_reads_; }
    void reset_watch_count() noexcept { watched_reads_ = 0; }

private:
    [[nodiscard]] bool in_range(std::uint64_t gpa, std::uint64_t size) const noexcept;
    /// The page's bytes for reading: the stored page, the zero page for a
    /// backed page never written, or nullptr when not backed.
    [[nodiscard]] const Page* find(std::uint64_t page) const noexcept;
    /// The stored page for writing, storing a backed one on its first write;
    /// nullptr when not backed or over budget (then budget_exhausted).
    [[nodiscard]] Page* find_for_write(std::uint64_t page) noexcept;
    [[nodiscard]] Page* stored(std::uint64_t page) const noexcept;
    [[nodiscard]] bool in_backed_range(std::uint64_t page) const noexcept;
    /// Every page of [gpa, gpa+size) backed, and the budget holds the ones
    /// still to store: what a write must know before it changes anything.
    [[nodiscard]] bool writable(std::uint64_t gpa, std::uint64_t size) noexcept;
    /// The backed page starting at gpa (4 KiB aligned, below MAXPHYADDR), or nullptr.
    [[nodiscard]] const Page* whole_page(std::uint64_t gpa) const noexcept;
    [[nodiscard]] Page* whole_page_for_write(std::uint64_t gpa) noexcept;
    void count(std::uint64_t gpa, std::uint64_t size) const noexcept;

    unsigned maxphyaddr_;
    /// Backed ranges, page-aligned: first page -> end (exclusive), disjoint
    /// and not adjacent (map merges them).
    std::map<std::uint64_t, std::uint64_t> ranges_;
    /// A stored page, 4 KiB-aligned like the page it models: the nested
    /// engine's copies between a guest page (vmcb12) and its own VMCBs (page
    /// aligned too) then never 4K-alias, whatever the heap's layout
    /// (docs/performance.md, 2026-12-07 evening).
    struct alignas(arch::kVmcbAlign) StoredPage {
        Page bytes{};
    };
    /// Pages written at least once.
    std::map<std::uint64_t, std::unique_ptr<StoredPage>> pages_;
    std::uint64_t budget_pages_ = kDefaultBudget / kPageSize;
    bool budget_exhausted_ = false;
    std::uint64_t budget_refused_gpa_ = 0;
    /// The last stored page found: VMRUN and #VMEXIT touch the same vmcb12
    /// page field after field. Pages are never dropped and live behind
    /// stable pointers, so the entry stays valid until this object is reassigned.
    mutable std::uint64_t last_page_ = ~std::uint64_t{0};
    mutable Page* last_ = nullptr;
    std::uint64_t watched_ = ~std::uint64_t{0};
    mutable std::uint64_t watched_reads_ = 0;
};

/// How loading the four PAE PDPEs at CR3 went (APM 15.5.1 step 5; KVM's
/// load_pdptrs, which nested_svm_load_cr3 calls for L2).
enum class PdpeLoad : std::uint8_t { ok, unreadable, reserved };
/// Reads the PDPT CR3 points at into `out`: unreadable when memory does not
/// back it, reserved when a present entry has a reserved bit (bits 2:1, 8:5,
/// and those at or above MAXPHYADDR, `reserved_pa`), ok otherwise.
[[nodiscard]] PdpeLoad load_pae_pdpes(const GuestMemory& mem, std::uint64_t cr3, std::uint64_t reserved_pa,
                                      std::array<std::uint64_t, 4>& out) noexcept;

}  // namespace nsvm::cpu
