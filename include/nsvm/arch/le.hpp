// Explicit little-endian loads and stores on byte spans.
//
// The VMCB is a little-endian memory image (APM Vol.2 Appendix B). We never
// cast the page to a struct: every access goes through these helpers, which
// are constexpr, free of aliasing questions and compile to single moves.
#pragma once

#include "nsvm/util/cxx_standard.hpp"  // a clear #error below C++20

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

namespace nsvm::arch {

/// Reads `width` bytes (1..8) at `offset` as an unsigned little-endian integer.
/// Always inlined: with a constant width (every named VMCB field) the
/// switch folds to one move; g++ otherwise keeps an out-of-line copy with
/// the switch, and the #VMEXIT write-back to vmcb12 paid a call and a
/// dispatch per field (docs/performance.md, 2026-12-07 night).
[[nodiscard, gnu::always_inline]] constexpr inline std::uint64_t load_le(std::span<const std::uint8_t> bytes, std::size_t offset,
                                              std::size_t width) noexcept {
    if (!std::is_constant_evaluated() && std::endian::native == std::endian::little) {
        // On a little-endian host the bytes are the value: one move for the
        // field widths the VMCB has, the same result as the loop below.
        switch (width) {
            case 8: { std::uint64_t v; std::memcpy(&v, bytes.data() + offset, 8); return v; }
            case 4: { std::uint32_t v; std::memcpy(&v, bytes.data() + offset, 4); return v; }
            case 2: { std::uint16_t v; std::memcpy(&v, bytes.data() + offset, 2); return v; }
            case 1: return bytes[offset];
            default: break;
        }
    }
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < width; ++i) {
        value |= std::uint64_t{bytes[offset + i]} << (8 * i);
    }
    return value;
}

/// Writes the low `width` bytes (1..8) of `value` at `offset`, little-endian
/// (always inlined, as load_le).
[[gnu::always_inline]] constexpr inline void store_le(std::span<std::uint8_t> bytes, std::size_t offset, std::size_t width,
                        std::uint64_t value) noexcept {
    if (!std::is_constant_evaluated() && std::endian::native == std::endian::little) {
        switch (width) {
            case 8: std::memcpy(bytes.data() + offset, &value, 8); return;
            case 4: { const auto v = static_cast<std::uint32_t>(value); std::memcpy(bytes.data() + offset, &v, 4); return; }
            case 2: { const auto v = static_cast<std::uint16_t>(value); std::memcpy(bytes.data() + offset, &v, 2); return; }
            case 1: bytes[offset] = static_cast<std::uint8_t>(value); return;
            default: break;
        }
    }
    for (std::size_t i = 0; i < width; ++i) {
        bytes[offset + i] = static_cast<std::uint8_t>(value >> (8 * i));
    }
}

/// All-ones mask of the low `width` bytes.
[[nodiscard]] constexpr std::uint64_t width_mask(std::size_t width) noexcept {
    return width >= 8 ? ~std::uint64_t{0} : (std::uint64_t{1} << (8 * width)) - 1;
}

}  // namespace nsvm::arch
