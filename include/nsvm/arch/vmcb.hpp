// The VMCB as the processor sees it: one 4 KiB little-endian page.
//
// Vmcb owns the raw bytes and exposes fields by FieldId through explicit
// little-endian accessors, so a raw page round-trips bit for bit (reserved
// bytes included) and no struct layout or type punning is ever involved.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <utility>

#include "nsvm/arch/le.hpp"
#include "nsvm/arch/vmcb_fields.hpp"

namespace nsvm::arch {

inline constexpr std::size_t kVmcbSize = 4096;
inline constexpr std::size_t kControlAreaSize = 0x400;  // APM B-1: 000h-3FFh
inline constexpr std::size_t kSaveAreaOffset = 0x400;   // APM B-2: save area at +400h
/// The alignment of a VMCB page in memory (APM 15.5.1: 4 KiB-aligned), which
/// the nested engine gives its own VMCBs and guest memory its pages: a copy
/// between two of them (vmcb12, the cache, vmcb02, vmcb01) moves bytes at
/// equal page offsets, which never 4K-alias (a load matching an earlier
/// store's address bits 11:0 waits for it). At arbitrary offsets the round
/// trip moved by 15 % with the heap's layout (docs/performance.md,
/// 2026-12-07 evening). Not the type's alignment: VMCBs read from dumps live
/// in containers of any alignment.
inline constexpr std::size_t kVmcbAlign = 4096;

/// The segment fields of the save area, in VMCB order.
enum class Seg : std::uint8_t { es, cs, ss, ds, fs, gs, gdtr, ldtr, idtr, tr };
inline constexpr std::array<std::string_view, 10> kSegNames = {"es", "cs", "ss", "ds", "fs",
                                                                "gs", "gdtr", "ldtr", "idtr", "tr"};

struct Segment {
    std::uint16_t selector = 0;
    std::uint16_t attrib = 0;  ///< 12-bit packed: descriptor bits 55:52 || 47:40 (APM 15.5.1)
    std::uint32_t limit = 0;
    std::uint64_t base = 0;
    friend constexpr bool operator==(const Segment&, const Segment&) = default;
};

/// A VMCB page's bytes, wherever they live (a Vmcb, a page of guest memory).
using VmcbBytes = std::span<std::uint8_t, kVmcbSize>;
using ConstVmcbBytes = std::span<const std::uint8_t, kVmcbSize>;

// Field accessors over any VMCB page: the one implementation Vmcb and
// VmcbView share.
[[nodiscard, gnu::always_inline]] constexpr std::uint64_t load_field(ConstVmcbBytes page, FieldId id) noexcept {
    const auto i = static_cast<std::size_t>(id);
    return load_le(page, kFieldOffsets[i], kFieldAccessWidths[i]);
}
/// Stores the low bits of `value` that fit the field.
[[gnu::always_inline]] constexpr void store_field(VmcbBytes page, FieldId id, std::uint64_t value) noexcept {
    const auto i = static_cast<std::size_t>(id);
    store_le(page, kFieldOffsets[i], kFieldAccessWidths[i], value);
}
[[nodiscard]] constexpr std::size_t segment_offset(Seg s) noexcept {
    return kSaveAreaOffset + 16 * static_cast<std::size_t>(s);
}
/// On a little-endian host a Segment's bytes are the VMCB's segment bytes
/// (selector, attrib, limit, base at +0/+2/+4/+8): one 16-byte move each
/// way. A segment stored field by field and copied whole soon after (the
/// processor's register file at VMRUN) would stall store forwarding.
inline constexpr bool kSegmentIsVmcbImage =
    std::endian::native == std::endian::little && sizeof(Segment) == 16 && offsetof(Segment, selector) == 0 &&
    offsetof(Segment, attrib) == 2 && offsetof(Segment, limit) == 4 && offsetof(Segment, base) == 8;

[[nodiscard]] constexpr Segment load_segment(ConstVmcbBytes page, Seg s) noexcept {
    const std::size_t base = segment_offset(s);
    if constexpr (kSegmentIsVmcbImage) {
        if (!std::is_constant_evaluated()) {
            Segment v;
            std::memcpy(&v, page.data() + base, sizeof v);
            return v;
        }
    }
    return Segment{static_cast<std::uint16_t>(load_le(page, base, 2)), static_cast<std::uint16_t>(load_le(page, base + 2, 2)),
                   static_cast<std::uint32_t>(load_le(page, base + 4, 4)), load_le(page, base + 8, 8)};
}
constexpr void store_segment(VmcbBytes page, Seg s, const Segment& v) noexcept {
    const std::size_t base = segment_offset(s);
    if constexpr (kSegmentIsVmcbImage) {
        if (!std::is_constant_evaluated()) {
            std::memcpy(page.data() + base, &v, sizeof v);
            return;
        }
    }
    store_le(page, base, 2, v.selector);
    store_le(page, base + 2, 2, v.attrib);
    store_le(page, base + 4, 4, v.limit);
    store_le(page, base + 8, 8, v.base);
}

/// A run of bytes [begin, end) of the VMCB page.
struct ByteRun {
    std::uint16_t begin = 0, end = 0;
    friend constexpr bool operator==(const ByteRun&, const ByteRun&) = default;
};

namespace detail {
/// Fields separated by fewer reserved bytes than this share one run: moving a
/// few reserved bytes costs less than another copy.
inline constexpr std::size_t kRunMergeGap = 64;

/// The fields' byte runs, in page order, merged across small gaps; `Count`
/// runs are written (count_field_runs() says how many there are).
template <std::size_t Count>
consteval std::array<ByteRun, Count> field_runs() noexcept {
    std::array<ByteRun, kFieldCount> spans{};
    for (std::size_t i = 0; i < kFieldCount; ++i)
        spans[i] = ByteRun{kFields[i].offset, static_cast<std::uint16_t>(kFields[i].offset + kFields[i].width)};
    std::sort(spans.begin(), spans.end(), [](ByteRun a, ByteRun b) { return a.begin < b.begin; });
    std::array<ByteRun, Count> runs{};
    std::size_t n = 0;
    for (const ByteRun s : spans) {
        if (n > 0 && s.begin <= runs[n - 1].end + kRunMergeGap) {
            runs[n - 1].end = std::max(runs[n - 1].end, s.end);
        } else {
            if (n < Count) runs[n] = s;
            ++n;
        }
    }
    return runs;
}
consteval std::size_t count_field_runs() noexcept {
    constexpr auto all = field_runs<kFieldCount>();
    std::size_t n = 0;
    for (const ByteRun r : all) n += r.end != 0 ? 1 : 0;
    return n;
}
}  // namespace detail

/// The parts of the VMCB page that hold fields (the field table, merged into
/// runs): what a copy of a VMCB's state has to move. The rest is reserved
/// (APM Appendix B: "reserved, SBZ"), so the nested engine's vmcb12 cache and
/// its vmcb02 buffers move and clear only these bytes, as KVM's vmcb12 cache
/// holds only the fields it knows (nested_copy_vmcb_control_to_cache,
/// nested_copy_vmcb_save_to_cache).
inline constexpr auto kFieldRuns = detail::field_runs<detail::count_field_runs()>();
static_assert(kFieldRuns.size() <= 4, "a new field far from the others: check the VMRUN copy cost (docs/performance.md)");
static_assert(kFieldRuns.back().end <= kVmcbSize);

/// Copies the field runs of one VMCB page to another; reserved bytes of `to`
/// stay as they are (src/arch/vmcb_bytes.cpp, where the build chooses how
/// these copies are compiled).
void copy_field_bytes(ConstVmcbBytes from, VmcbBytes to) noexcept;
/// Copies the field runs of a save area (`save`: the page's bytes from +400h
/// on) into `to`'s save area; reserved bytes of `to` stay as they are.
void copy_save_field_bytes(std::span<const std::uint8_t, kVmcbSize - kSaveAreaOffset> save, VmcbBytes to) noexcept;
/// Zeroes the field runs of a VMCB page; reserved bytes stay as they are.
void clear_field_bytes(VmcbBytes to) noexcept;

/// Cache-line aligned: every field is then naturally aligned (the APM lays them
/// out so), so no load or store of a field straddles two cache lines. The
/// nested engine's own VMCBs are page-aligned as well (kVmcbAlign).
class alignas(64) Vmcb {
public:
    using Page = std::array<std::uint8_t, kVmcbSize>;

    constexpr Vmcb() noexcept : page_{} {}
    constexpr explicit Vmcb(const Page& page) noexcept : page_(page) {}

    [[nodiscard, gnu::always_inline]] constexpr std::uint64_t get(FieldId id) const noexcept {
        return load_field(page_, id);
    }
    /// Stores the low bits of `value` that fit the field (callers that must
    /// reject too-wide values check `fits()` first).
    [[gnu::always_inline]] constexpr void set(FieldId id, std::uint64_t value) noexcept {
        store_field(page_, id, value);
    }
    [[nodiscard]] static constexpr bool fits(FieldId id, std::uint64_t value) noexcept {
        const auto& f = info(id);
        return f.width >= 8 || (value & ~width_mask(f.width)) == 0;
    }

    /// Raw bytes of a field (any width, including the opaque byte runs).
    [[nodiscard]] std::span<const std::uint8_t> bytes(FieldId id) const noexcept {
        const auto& f = info(id);
        return std::span<const std::uint8_t>(page_).subspan(f.offset, f.width);
    }
    [[nodiscard]] std::span<std::uint8_t> bytes(FieldId id) noexcept {
        const auto& f = info(id);
        return std::span<std::uint8_t>(page_).subspan(f.offset, f.width);
    }

    [[nodiscard]] constexpr Segment segment(Seg s) const noexcept { return load_segment(page_, s); }
    constexpr void set_segment(Seg s, const Segment& v) noexcept { store_segment(page_, s, v); }

    /// Intercept bit `bit` (0..191) as numbered by Linux (word = bit / 32).
    [[nodiscard]] constexpr bool intercept(unsigned bit) const noexcept {
        if (bit >= 192) return false;
        return (load_le(page_, 4 * (bit / 32), 4) >> (bit % 32)) & 1U;
    }
    constexpr void set_intercept(unsigned bit, bool on = true) noexcept {
        if (bit >= 192) return;
        std::uint64_t w = load_le(page_, 4 * (bit / 32), 4);
        const std::uint64_t m = std::uint64_t{1} << (bit % 32);
        store_le(page_, 4 * (bit / 32), 4, on ? (w | m) : (w & ~m));
    }
    [[nodiscard]] constexpr std::uint32_t intercept_word(unsigned word) const noexcept {
        return static_cast<std::uint32_t>(load_le(page_, 4 * word, 4));
    }
    constexpr void set_intercept_word(unsigned word, std::uint32_t v) noexcept { store_le(page_, 4 * word, 4, v); }

    [[nodiscard]] constexpr const Page& page() const noexcept { return page_; }
    [[nodiscard]] constexpr Page& page() noexcept { return page_; }

    /// Copies the whole control area / save area from another VMCB.
    void copy_control_from(const Vmcb& o) noexcept {
        std::copy_n(o.page_.begin(), kControlAreaSize, page_.begin());
    }
    void copy_save_from(const Vmcb& o) noexcept {
        std::copy(o.page_.begin() + kSaveAreaOffset, o.page_.end(), page_.begin() + kSaveAreaOffset);
    }

    friend constexpr bool operator==(const Vmcb&, const Vmcb&) = default;

private:
    Page page_;
};

/// APM 15.5.1: the segments VMRUN loads from the VMCB and #VMEXIT saves
/// (the others are VMLOAD/VMSAVE state, below).
inline constexpr std::array<Seg, 6> kVmrunSegments = {Seg::es, Seg::cs, Seg::ss, Seg::ds, Seg::gdtr, Seg::idtr};

/// APM 15.5.2: the state VMLOAD and VMSAVE move (VMRUN and #VMEXIT leave
/// it alone): four segments with their hidden state, and these MSRs.
inline constexpr std::array<Seg, 4> kVmloadSegments = {Seg::fs, Seg::gs, Seg::tr, Seg::ldtr};
inline constexpr std::array<FieldId, 8> kVmloadFields = {FieldId::kernel_gs_base, FieldId::star, FieldId::lstar,
                                                         FieldId::cstar, FieldId::sfmask, FieldId::sysenter_cs,
                                                         FieldId::sysenter_esp, FieldId::sysenter_eip};

/// CET supervisor state: VMRUN and #VMEXIT state on a CPU with shadow stacks
/// (APM 15.5.1 and Table B-2; KVM's nested_vmcb02_prepare_save copies it).
inline constexpr std::array<FieldId, 3> kCetSupervisorFields = {FieldId::s_cet, FieldId::ssp, FieldId::isst_addr};
/// The LBR state LBR virtualization loads at VMRUN and saves at #VMEXIT
/// (APM 15.23).
inline constexpr std::array<FieldId, 5> kLbrVirtFields = {FieldId::dbgctl, FieldId::br_from, FieldId::br_to,
                                                          FieldId::last_excp_from, FieldId::last_excp_to};

/// Copies the fields named by `Fields` (a constexpr array of FieldId) from one
/// VMCB image to another (`To` is a Vmcb or a VmcbView). Unrolled, so that
/// each field's offset and width are constants and each copy is one load and
/// one store: the VMRUN and #VMEXIT paths copy these lists on every entry.
/// Always inlined, the lambda too: out of line, g++ reloaded both VMCB
/// addresses from the lambda's captures before every field (a store might
/// have changed them).
template <const auto& Fields, class From, class To>
[[gnu::always_inline]] constexpr void copy_fields(const From& from, To&& to) noexcept {
    [&]<std::size_t... I>(std::index_sequence<I...>) __attribute__((always_inline)) {
        (to.set(Fields[I], from.get(Fields[I])), ...);
    }(std::make_index_sequence<Fields.size()>{});
}

/// Copies the VMLOAD/VMSAVE state from one VMCB image to another (`To` is a
/// Vmcb or a VmcbView): what VMLOAD and VMSAVE move, and what KVM's
/// svm_copy_vmloadsave_state copies between vmcb01, vmcb02 and a guest page.
template <class From, class To>
constexpr void copy_vmload_state(const From& from, To&& to) noexcept {
    for (Seg s : kVmloadSegments) to.set_segment(s, from.segment(s));
    copy_fields<kVmloadFields>(from, to);
}

/// A VMCB that lives elsewhere (a page of guest memory), written in place:
/// the #VMEXIT write-back to vmcb12 stores field after field into the page
/// found once, as KVM does through its kvm_vcpu_map() of vmcb12.
class VmcbView {
public:
    constexpr explicit VmcbView(VmcbBytes page) noexcept : page_(page) {}
    [[nodiscard, gnu::always_inline]] constexpr std::uint64_t get(FieldId id) const noexcept {
        return load_field(page_, id);
    }
    [[gnu::always_inline]] constexpr void set(FieldId id, std::uint64_t value) const noexcept {
        store_field(page_, id, value);
    }
    [[nodiscard]] constexpr Segment segment(Seg s) const noexcept { return load_segment(page_, s); }
    constexpr void set_segment(Seg s, const Segment& v) const noexcept { store_segment(page_, s, v); }

private:
    VmcbBytes page_;
};

}  // namespace nsvm::arch
