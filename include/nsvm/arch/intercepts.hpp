// The six 32-bit intercept vectors (APM B-1, offsets 000h-017h), numbered as
// Linux does: bit b lives in word b/32. For every exit code below 0xC0 the
// intercept bit number equals the exit code (APM Appendix C).
#pragma once

#include "nsvm/util/cxx_standard.hpp"  // a clear #error below C++20

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nsvm::arch::intercept {

inline constexpr unsigned kBits = 192;

// Word 0/1: CR and DR accesses.
[[nodiscard]] constexpr unsigned cr_read(unsigned n) noexcept { return n; }
[[nodiscard]] constexpr unsigned cr_write(unsigned n) noexcept { return 16 + n; }
[[nodiscard]] constexpr unsigned dr_read(unsigned n) noexcept { return 32 + n; }
[[nodiscard]] constexpr unsigned dr_write(unsigned n) noexcept { return 48 + n; }
// Word 2: exceptions.
[[nodiscard]] constexpr unsigned exception(unsigned vector) noexcept { return 64 + vector; }

// Word 3 (00Ch).
inline constexpr unsigned INTR = 96, NMI = 97, SMI = 98, INIT = 99, VINTR = 100, SELECTIVE_CR0 = 101,
                          STORE_IDTR = 102, STORE_GDTR = 103, STORE_LDTR = 104, STORE_TR = 105, LOAD_IDTR = 106,
                          LOAD_GDTR = 107, LOAD_LDTR = 108, LOAD_TR = 109, RDTSC = 110, RDPMC = 111, PUSHF = 112,
                          POPF = 113, CPUID = 114, RSM = 115, IRET = 116, INTN = 117, INVD = 118, PAUSE = 119,
                          HLT = 120, INVLPG = 121, INVLPGA = 122, IOIO_PROT = 123, MSR_PROT = 124,
                          TASK_SWITCH = 125, FERR_FREEZE = 126, SHUTDOWN = 127;
// Word 4 (010h).
inline constexpr unsigned VMRUN = 128, VMMCALL = 129, VMLOAD = 130, VMSAVE = 131, STGI = 132, CLGI = 133,
                          SKINIT = 134, RDTSCP = 135, ICEBP = 136, WBINVD = 137, MONITOR = 138, MWAIT = 139,
                          MWAIT_COND = 140, XSETBV = 141, RDPRU = 142, TRAP_EFER_WRITE = 143;
[[nodiscard]] constexpr unsigned trap_cr_write(unsigned n) noexcept { return 144 + n; }
// Word 5 (014h).
inline constexpr unsigned INVLPGB = 160, INVLPGB_ILLEGAL = 161, INVPCID = 162, MCOMMIT = 163, TLBSYNC = 164,
                          BUSLOCK = 165, IDLE_HLT = 166;

/// Linux INTERCEPT_* name without the prefix ("VMRUN", "CR0_READ",
/// "EXCEPTION_14"); empty for bits that are reserved.
[[nodiscard]] std::string name(unsigned bit);
/// Accepts the Linux names case-insensitively, plus exception short names
/// ("PF", "GP", "EXCP14"). Returns nullopt when unknown.
[[nodiscard]] std::optional<unsigned> find(std::string_view name);

}  // namespace nsvm::arch::intercept
