// Reading a CPU model from a JSON file (docs/formats.md "CPU model"):
//
//   { "name": "my-epyc", "base": "zen4", "maxphyaddr": 46,
//     "features": ["-la57", "+pcid"] }
//
// Keys: name, description, base (a built-in model; default: the default
// model), maxphyaddr (32..52), va_width (48 or 57), num_asids,
// num_encrypted_guests, features (all "+x"/"-x" edits on the base, or a full
// list of plain names that replaces the base's features; a "+a,-b" string is
// accepted too). Numbers may be JSON integers or strings ("0x10", "16").
// Never throws: bad input is an error naming the file and the key, with the
// closest known name where one fits.
#pragma once

#include <string>
#include <string_view>

#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/util/expected.hpp"

namespace nsvm::formats {

[[nodiscard]] nsvm::expected<checks::CpuModel, std::string> read_cpu_model_json(std::string_view text,
                                                                                std::string_view path);

}  // namespace nsvm::formats
