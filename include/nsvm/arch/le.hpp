// Explicit little-endian loads and stores on byte spans.
//
// The VMCB is a little-endian memory image (APM Vol.2 Appendix B). We never
// cast the page to a struct: every access goes through these helpers, which
// are constexpr, free of aliasing questions and compile to single moves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace nsvm::arch {

/// Reads `width` bytes (1..8) at `offset` as an unsigned little-endian integer.
[[nodiscard]] constexpr std::uint64_t load_le(std::span<const std::uint8_t> bytes, std::size_t offset,
                                              std::size_t width) noexcept {
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < width; ++i) {
        value |= std::uint64_t{bytes[offset + i]} << (8 * i);
    }
    return value;
}

/// Writes the low `width` bytes (1..8) of `value` at `offset`, little-endian.
constexpr void store_le(std::span<std::uint8_t> bytes, std::size_t offset, std::size_t width,
                        std::uint64_t value) noexcept {
    for (std::size_t i = 0; i < width; ++i) {
        bytes[offset + i] = static_cast<std::uint8_t>(value >> (8 * i));
    }
}

/// All-ones mask of the low `width` bytes.
[[nodiscard]] constexpr std::uint64_t width_mask(std::size_t width) noexcept {
    return width >= 8 ? ~std::uint64_t{0} : (std::uint64_t{1} << (8 * width)) - 1;
}

}  // namespace nsvm::arch
