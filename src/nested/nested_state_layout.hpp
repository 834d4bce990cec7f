// The layout of nsvm's own nested-state blob (nested_state.cpp has the map),
// shared by its reader and writer and by the KVM-layout adapter
// (kvm_nested_state.cpp), which builds one to restore through the same checks.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "nsvm/arch/vmcb.hpp"

namespace nsvm::nested::state_layout {
inline constexpr std::array<std::uint8_t, 8> kMagic = {'N', 'S', 'V', 'M', 'N', 'E', 'S', 'T'};
inline constexpr std::size_t kHeader = 0x40;
inline constexpr std::size_t kSave = arch::kVmcbSize - arch::kSaveAreaOffset;
inline constexpr std::size_t kVmcb01At = kHeader, kCacheAt = kHeader + arch::kVmcbSize,
                             kL2SaveAt = kHeader + 2 * arch::kVmcbSize, kSmramAt = kL2SaveAt + kSave;
inline constexpr std::size_t kBlobSize = kSmramAt + arch::kVmcbSize;
inline constexpr std::size_t kFlagsAt = 12, kVmcb12GpaAt = 0x18;
inline constexpr std::uint32_t kFlagGuest = 1, kFlagGif = 2, kFlagSmm = 4, kFlagSmmL2 = 8, kFlagDb = 16,
                               kFlagShutdown = 32, kFlagSmmInsideNmi = 64;
inline constexpr std::uint32_t kKnownFlags = 0x7F;
static_assert(kBlobSize == 0x3C40, "the map in nested_state.cpp");
}  // namespace nsvm::nested::state_layout
