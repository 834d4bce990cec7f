// Guest physical memory of the modelled machine: sparse 4 KiB pages bounded
// by MAXPHYADDR. Reading memory that is not backed fails explicitly (the
// caller decides: VMEXIT_INVALID, #GP, an L0 #NPF ...), never a silent zero.
//
// Pages are allocated only by map() (scenario setup); read/write of backed
// pages never allocate, so the VMRUN/#VMEXIT path stays allocation-free.
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

    explicit GuestMemory(unsigned maxphyaddr = 48) noexcept : maxphyaddr_(maxphyaddr) {}
    GuestMemory(const GuestMemory& o);
    GuestMemory& operator=(const GuestMemory& o);

    /// Backs the pages covering [gpa, gpa+size) with zeroes (existing pages kept).
    /// False when the range crosses MAXPHYADDR.
    [[nodiscard]] bool map(std::uint64_t gpa, std::uint64_t size = kPageSize);
    [[nodiscard]] bool backed(std::uint64_t gpa) const noexcept;
    [[nodiscard]] unsigned maxphyaddr() const noexcept { return maxphyaddr_; }

    /// Every byte of the range must be backed; nothing is read otherwise.
    [[nodiscard]] bool read(std::uint64_t gpa, std::span<std::uint8_t> out) const noexcept;
    [[nodiscard]] bool write(std::uint64_t gpa, std::span<const std::uint8_t> in) noexcept;
    [[nodiscard]] bool read_u8(std::uint64_t gpa, std::uint8_t& out) const noexcept;
    [[nodiscard]] bool read_u64(std::uint64_t gpa, std::uint64_t& out) const override;
    [[nodiscard]] bool write_u64(std::uint64_t gpa, std::uint64_t v) noexcept;

    /// The bytes of the backed 4 KiB page at `page` (aligned) for reading, or
    /// an empty span: one lookup for many scattered reads of one page (the
    /// MSRPM merge). Counted as one read when it is the watched page.
    [[nodiscard]] std::span<const std::uint8_t> page_bytes(std::uint64_t page) const noexcept;

    /// A whole VMCB page (gpa must be 4 KiB aligned). Counted when the page
    /// is the watched one, so tests can prove vmcb12 is read once per VMRUN.
    [[nodiscard]] bool read_vmcb(std::uint64_t gpa, arch::Vmcb& out) const noexcept;
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

    [[nodiscard]] const std::map<std::uint64_t, std::unique_ptr<Page>>& pages() const noexcept { return pages_; }

private:
    [[nodiscard]] bool in_range(std::uint64_t gpa, std::uint64_t size) const noexcept;
    [[nodiscard]] const Page* find(std::uint64_t page) const noexcept;
    [[nodiscard]] Page* find(std::uint64_t page) noexcept;
    /// The backed page starting at gpa (4 KiB aligned, below MAXPHYADDR), or nullptr.
    [[nodiscard]] const Page* whole_page(std::uint64_t gpa) const noexcept;
    [[nodiscard]] Page* whole_page(std::uint64_t gpa) noexcept;
    void count(std::uint64_t gpa, std::uint64_t size) const noexcept;

    unsigned maxphyaddr_;
    std::map<std::uint64_t, std::unique_ptr<Page>> pages_;
    /// The last page found: VMRUN and #VMEXIT touch the same vmcb12 page
    /// field after field. Pages are never unmapped and live behind stable
    /// pointers, so the entry stays valid until this object is reassigned.
    mutable std::uint64_t last_page_ = ~std::uint64_t{0};
    mutable Page* last_ = nullptr;
    std::uint64_t watched_ = ~std::uint64_t{0};
    mutable std::uint64_t watched_reads_ = 0;
};

}  // namespace nsvm::cpu
