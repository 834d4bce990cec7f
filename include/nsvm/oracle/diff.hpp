// Comparing the model's prediction with what an emulator did, field by field.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "nsvm/checks/profile.hpp"
#include "nsvm/oracle/model.hpp"
#include "nsvm/oracle/runner.hpp"
#include "nsvm/oracle/vector.hpp"

namespace nsvm::oracle {

struct FieldDiff {
    std::string field;   ///< "status", "exit_code", "exit_info_1", "gif", "control.next_rip", "save.rip", ...
    std::string model;   ///< the model's value, as text
    std::string oracle;  ///< the emulator's value
    bool explained = false;
    std::string reason;  ///< for explained ones: the known divergence and its source
};

enum class Outcome : std::uint8_t { agree, differ, cannot_run };
[[nodiscard]] std::string_view outcome_name(Outcome o) noexcept;

struct VectorDiff {
    std::string id;
    Outcome outcome = Outcome::agree;
    std::vector<FieldDiff> fields;            ///< every divergence (explained ones included)
    std::vector<std::string> checks;          ///< the vector's checks, then the model's failing ones
    std::string reason;                       ///< cannot_run: why
    std::string model_path;                   ///< the model's explanation
    /// VMCB fields the emulator wrote that the model does not predict, for
    /// information (e.g. the save area after a failed VMRUN).
    std::vector<std::string> written;
    /// The whole VMCB after the exit was compared (a valid VMRUN whose exit
    /// and L2 registers the model followed), not only the exit fields.
    bool whole_vmcb = false;
    [[nodiscard]] bool unexplained() const noexcept {
        for (const auto& f : fields)
            if (!f.explained) return true;
        return false;
    }
};

/// A divergence known from the emulator's source or found by this oracle
/// (docs/oracle.md "Known divergences") that the backend's profile
/// does not encode yet. Reported as explained, with the reason; never hidden.
struct KnownDivergence {
    Backend backend;
    std::string_view field;
    std::string_view id;      ///< stable name, e.g. "qemu.exit_int_info_on_failure"
    std::string_view reason;
};
[[nodiscard]] std::span<const KnownDivergence> known_divergences() noexcept;

[[nodiscard]] VectorDiff compare(const Vector& v, const Prediction& p, const Result& r, Backend backend,
                                 const checks::Profile& profile);

struct CheckTally {
    std::size_t agree = 0, differ = 0, explained = 0, cannot_run = 0;
};
struct Summary {
    std::size_t total = 0, agree = 0, differ = 0, explained_only = 0, cannot_run = 0;
    std::size_t whole_vmcb = 0;  ///< vectors compared on every VMCB field
    std::map<std::string, CheckTally> per_check;  ///< "(none)" for vectors without check ids
    std::map<std::string, std::size_t> per_known; ///< known divergence id -> count
    void add(const VectorDiff& d);
    [[nodiscard]] bool has_unexplained() const noexcept { return differ > 0; }
};

/// Human-readable report of one vector (empty when it agrees and !verbose).
[[nodiscard]] std::string format_diff(const VectorDiff& d, bool verbose = false);
[[nodiscard]] std::string format_summary(const Summary& s);
[[nodiscard]] std::string to_json_line(const VectorDiff& d);

}  // namespace nsvm::oracle
