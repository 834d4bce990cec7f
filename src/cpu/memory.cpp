#include "nsvm/cpu/memory.hpp"

#include "nsvm/arch/bits.hpp"

#include <algorithm>
#include <iterator>
#include <utility>

namespace nsvm::cpu {

namespace {
/// What a backed page never written reads as.
constexpr GuestMemory::Page kZeroPage{};
}  // namespace

GuestMemory::GuestMemory(const GuestMemory& o)
    : maxphyaddr_(o.maxphyaddr_), ranges_(o.ranges_), budget_pages_(o.budget_pages_),
      budget_exhausted_(o.budget_exhausted_), budget_refused_gpa_(o.budget_refused_gpa_), watched_(o.watched_) {
    for (const auto& [k, p] : o.pages_) pages_.emplace(k, std::make_unique<StoredPage>(*p));
}

GuestMemory& GuestMemory::operator=(const GuestMemory& o) {
    if (this == &o) return *this;
    GuestMemory tmp(o);
    maxphyaddr_ = tmp.maxphyaddr_;
    ranges_ = std::move(tmp.ranges_);
    pages_ = std::move(tmp.pages_);
    budget_pages_ = tmp.budget_pages_;
    budget_exhausted_ = tmp.budget_exhausted_;
    budget_refused_gpa_ = tmp.budget_refused_gpa_;
    last_page_ = ~std::uint64_t{0};
    last_ = nullptr;
    watched_ = tmp.watched_;
    watched_reads_ = 0;
    return *this;
}

bool GuestMemory::in_range(std::uint64_t gpa, std::uint64_t size) const noexcept {
    if (size == 0) return true;
    const std::uint64_t last = gpa + size - 1;
    if (last < gpa) return false;  // wraps
    return maxphyaddr_ >= 64 || (last >> maxphyaddr_) == 0;
}

bool GuestMemory::map(std::uint64_t gpa, std::uint64_t size) {
    if (!in_range(gpa, size)) return false;
    if (size == 0) return true;
    // The exclusive end; the top page of a 64-bit space (MAXPHYADDR is at
    // most 52 in every CPU model) ends at the last address instead.
    std::uint64_t first = page_of(gpa), end = page_of(gpa + size - 1) + kPageSize;
    if (end == 0) end = ~std::uint64_t{0};
    // Merge with every range that overlaps or touches [first, end).
    auto it = ranges_.upper_bound(first);
    if (it != ranges_.begin() && std::prev(it)->second >= first) --it;
    while (it != ranges_.end() && it->first <= end) {
        first = std::min(first, it->first);
        end = std::max(end, it->second);
        it = ranges_.erase(it);
    }
    ranges_.emplace(first, end);
    return true;
}

bool GuestMemory::in_backed_range(std::uint64_t page) const noexcept {
    auto it = ranges_.upper_bound(page);
    if (it == ranges_.begin()) return false;
    --it;
    return page < it->second;
}

GuestMemory::Page* GuestMemory::stored(std::uint64_t page) const noexcept {
    if (page == last_page_) return last_;
    const auto it = pages_.find(page);
    if (it == pages_.end()) return nullptr;
    last_page_ = page;
    last_ = &it->second->bytes;
    return last_;
}

const GuestMemory::Page* GuestMemory::find(std::uint64_t page) const noexcept {
    if (const Page* p = stored(page)) return p;
    return in_backed_range(page) ? &kZeroPage : nullptr;
}

GuestMemory::Page* GuestMemory::find_for_write(std::uint64_t page) noexcept {
    if (Page* p = stored(page)) return p;
    if (!in_backed_range(page)) return nullptr;
    if (pages_.size() >= budget_pages_) {
        if (!budget_exhausted_) budget_refused_gpa_ = page;
        budget_exhausted_ = true;
        return nullptr;
    }
    // The only allocation: a backed page's first write.
    auto [it, inserted] = pages_.emplace(page, std::make_unique<StoredPage>());
    last_page_ = page;
    last_ = &it->second->bytes;
    return last_;
}

bool GuestMemory::writable(std::uint64_t gpa, std::uint64_t size) noexcept {
    if (!in_range(gpa, size)) return false;
    std::uint64_t to_store = 0;
    for (std::uint64_t off = 0; off < size;) {
        const std::uint64_t a = gpa + off;
        if (!stored(page_of(a))) {
            if (!in_backed_range(page_of(a))) return false;
            ++to_store;
        }
        off += kPageSize - (a & (kPageSize - 1));
    }
    if (pages_.size() + to_store > budget_pages_) {
        if (!budget_exhausted_) budget_refused_gpa_ = gpa;
        budget_exhausted_ = true;
        return false;
    }
    return true;
}

bool GuestMemory::populate(std::uint64_t gpa, std::uint64_t size) {
    if (size == 0) return true;
    if (!writable(gpa, size)) return false;
    for (std::uint64_t p = page_of(gpa); p <= gpa + size - 1; p += kPageSize) {
        (void)find_for_write(p);
        if (p + kPageSize < p) break;
    }
    return true;
}

const GuestMemory::Page* GuestMemory::whole_page(std::uint64_t gpa) const noexcept {
    if ((gpa & (kPageSize - 1)) != 0 || !in_range(gpa, kPageSize)) return nullptr;
    return find(gpa);
}
GuestMemory::Page* GuestMemory::whole_page_for_write(std::uint64_t gpa) noexcept {
    if ((gpa & (kPageSize - 1)) != 0 || !in_range(gpa, kPageSize)) return nullptr;
    return find_for_write(gpa);
}

bool GuestMemory::backed(std::uint64_t gpa) const noexcept { return in_range(gpa, 1) && find(page_of(gpa)); }

void GuestMemory::count(std::uint64_t gpa, std::uint64_t size) const noexcept {
    if (size == 0) return;
    if (page_of(gpa) <= watched_ && watched_ <= page_of(gpa + size - 1)) ++watched_reads_;
}

bool GuestMemory::read(std::uint64_t gpa, std::span<std::uint8_t> out) const noexcept {
    if (!in_range(gpa, out.size())) return false;
    // First prove every page is backed, so a failed read copies nothing.
    for (std::uint64_t off = 0; off < out.size();) {
        const std::uint64_t a = gpa + off;
        if (!find(page_of(a))) return false;
        off += kPageSize - (a & (kPageSize - 1));
    }
    count(gpa, out.size());
    for (std::uint64_t off = 0; off < out.size();) {
        const std::uint64_t a = gpa + off;
        const Page* p = find(page_of(a));
        const std::uint64_t in_page = a & (kPageSize - 1);
        const std::uint64_t n = std::min<std::uint64_t>(kPageSize - in_page, out.size() - off);
        std::copy_n(p->begin() + static_cast<std::ptrdiff_t>(in_page), n, out.begin() + static_cast<std::ptrdiff_t>(off));
        off += n;
    }
    return true;
}

bool GuestMemory::write(std::uint64_t gpa, std::span<const std::uint8_t> in) noexcept {
    // First prove every page is backed and the budget holds the new ones,
    // so a failed write changes nothing.
    if (!writable(gpa, in.size())) return false;
    for (std::uint64_t off = 0; off < in.size();) {
        const std::uint64_t a = gpa + off;
        Page* p = find_for_write(page_of(a));
        const std::uint64_t in_page = a & (kPageSize - 1);
        const std::uint64_t n = std::min<std::uint64_t>(kPageSize - in_page, in.size() - off);
        std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(off), n, p->begin() + static_cast<std::ptrdiff_t>(in_page));
        off += n;
    }
    return true;
}

std::span<const std::uint8_t> GuestMemory::page_bytes(std::uint64_t page) const noexcept {
    const Page* p = whole_page(page);
    if (!p) return {};
    count(page, kPageSize);
    return *p;
}

bool GuestMemory::read_u8(std::uint64_t gpa, std::uint8_t& out) const noexcept {
    return read(gpa, std::span<std::uint8_t>(&out, 1));
}

bool GuestMemory::read_u64(std::uint64_t gpa, std::uint64_t& out) const { return read_le(gpa, 8, out); }

bool GuestMemory::write_u64(std::uint64_t gpa, std::uint64_t v) noexcept { return write_le(gpa, 8, v); }

bool GuestMemory::read_le(std::uint64_t gpa, unsigned width, std::uint64_t& out) const noexcept {
    std::array<std::uint8_t, 8> b{};
    if (width == 0 || width > b.size() || !read(gpa, std::span<std::uint8_t>(b.data(), width))) return false;
    out = arch::load_le(b, 0, width);
    return true;
}

bool GuestMemory::write_le(std::uint64_t gpa, unsigned width, std::uint64_t v) noexcept {
    std::array<std::uint8_t, 8> b{};
    if (width == 0 || width > b.size()) return false;
    arch::store_le(b, 0, width, v);
    return write(gpa, std::span<const std::uint8_t>(b.data(), width));
}

bool GuestMemory::read_vmcb(std::uint64_t gpa, arch::Vmcb& out) const noexcept {
    if ((gpa & (kPageSize - 1)) != 0) return false;
    return read(gpa, out.page());
}

bool GuestMemory::read_vmcb_fields(std::uint64_t gpa, arch::Vmcb& out) const noexcept {
    const Page* p = whole_page(gpa);
    if (!p) return false;
    count(gpa, kPageSize);
    arch::copy_field_bytes(*p, out.page());
    return true;
}

bool GuestMemory::peek_vmcb(std::uint64_t gpa, arch::Vmcb& out) const noexcept {
    const Page* p = whole_page(gpa);
    if (!p) return false;
    out.page() = *p;
    return true;
}

std::optional<arch::VmcbView> GuestMemory::vmcb_in_place(std::uint64_t gpa) noexcept {
    Page* p = whole_page_for_write(gpa);
    if (!p) return std::nullopt;
    return arch::VmcbView(*p);
}

bool GuestMemory::write_vmcb(std::uint64_t gpa, const arch::Vmcb& in) noexcept {
    if ((gpa & (kPageSize - 1)) != 0) return false;
    return write(gpa, in.page());
}

PdpeLoad load_pae_pdpes(const GuestMemory& mem, std::uint64_t cr3, std::uint64_t reserved_pa,
                        std::array<std::uint64_t, 4>& out) noexcept {
    // In entry order, as KVM's load_pdptrs: the first entry that cannot be
    // read or is illegal decides.
    for (unsigned i = 0; i < 4; ++i) {
        if (!mem.read_u64(arch::cr3::pdpt_base(cr3) + 8 * i, out[i])) return PdpeLoad::unreadable;
        if ((out[i] & arch::pdpe::P) != 0 && (out[i] & (arch::pdpe::kLowReserved | reserved_pa)) != 0)
            return PdpeLoad::reserved;
    }
    return PdpeLoad::ok;
}

}  // namespace nsvm::cpu
