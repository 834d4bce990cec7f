// Field-by-field decoding of a VMCB (`nsvm decode`) and of an exit code's
// EXITINFO1/EXITINFO2 (`nsvm exit-code`). Text for people, JSON for scripts;
// both are rendered from the same decoded entries so they cannot disagree.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "nsvm/arch/vmcb.hpp"

namespace nsvm::formats {

/// One decoded field (or segment, or intercept word).
struct DecodedField {
    std::string name;          ///< "save.efer", "save.cs", "control.intercepts[3]"
    std::uint16_t offset = 0;  ///< absolute offset in the page
    std::uint16_t width = 0;   ///< bytes
    std::string value;         ///< "0x1d00" (byte runs: hex bytes in memory order)
    std::vector<std::string> flags;                            ///< set bits by name
    std::vector<std::pair<std::string, std::string>> parts;    ///< named sub-fields: {"type", "EXCEPTION"}
    std::vector<std::string> notes;                            ///< reserved bits, meaning, warnings
};

/// Every non-zero field, in page order, with its bits decoded: intercepts by
/// name, EFER/CR0/CR4/RFLAGS flags, int_ctl, misc_ctl/misc_ctl2, EVENTINJ and
/// EXITINTINFO, exit_code (name and EXITINFO decoding), tlb_ctl, clean bits,
/// segment attributes, G_PAT entries; reserved bytes that are non-zero too.
[[nodiscard]] std::vector<DecodedField> decode_fields(const arch::Vmcb& vmcb);

/// The entries as aligned text; `color` adds ANSI colours.
[[nodiscard]] std::string decode_text(const arch::Vmcb& vmcb, bool color);
/// {"fields": [{"name", "offset", "width", "value", "flags", "parts", "notes"}]}
[[nodiscard]] nlohmann::json decode_json(const arch::Vmcb& vmcb);

/// EXITINFO1/EXITINFO2 for an exit code, decoded (APM 15.8-15.13; IOIO's
/// layout is APM 15.10.2, MSR's APM 15.11): IOIO, MSR, NPF, exceptions (#PF
/// with CR2), CR/DR accesses with decode assists, SMI, VMEXIT_INVALID. Codes
/// with nothing to decode say so.
struct ExitInfoDecoding {
    std::vector<std::pair<std::string, std::string>> info1;  ///< named parts of EXITINFO1
    std::vector<std::pair<std::string, std::string>> info2;
    std::vector<std::string> notes;
};
[[nodiscard]] ExitInfoDecoding decode_exit_info_parts(std::uint64_t exit_code, std::uint64_t info1,
                                                      std::uint64_t info2);
[[nodiscard]] std::string decode_exit_info(std::uint64_t exit_code, std::uint64_t info1, std::uint64_t info2);
[[nodiscard]] nlohmann::json decode_exit_info_json(std::uint64_t exit_code, std::uint64_t info1, std::uint64_t info2);

}  // namespace nsvm::formats
