// This machine's CPUID, for `--cpu host` and `nsvm cpu show host`. The one
// place nsvm executes CPUID: the checks layer only turns CPUID values into a
// model (checks::model_from_cpuid), so its verdicts never depend on the
// machine that computes them.
#pragma once

#include <optional>
#include <string>

#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/util/expected.hpp"

namespace nsvm::cli {

/// This machine's CPUID leaves; nullopt where there is no CPUID instruction
/// (not x86).
[[nodiscard]] std::optional<checks::HostCpuid> read_host_cpuid();

/// checks::model_from_cpuid(read_host_cpuid()); off x86 an error that says so.
[[nodiscard]] nsvm::expected<checks::CpuModel, std::string> host_model();

}  // namespace nsvm::cli
