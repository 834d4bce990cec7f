// Scenarios: a YAML (or JSON) file describing a machine, L0's configuration,
// guest memory, L1's state and a list of steps with expectations. `nsvm run`
// loads one, runs it on nested::Vcpu and prints a trace. See docs/scenarios.md.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/cpu/events.hpp"
#include "nsvm/cpu/memory.hpp"
#include "nsvm/nested/vcpu.hpp"
#include "nsvm/util/expected.hpp"

namespace nsvm::scenario {

/// Bad input: names the file, the line and the key.
struct Error {
    std::string file;
    int line = 0;
    std::string key;
    std::string message;
    [[nodiscard]] std::string to_string() const;
};

/// One expectation: `key` as written ("gif", "control.exit_code",
/// "vmcb02.save.rip", "rdx", ...) and the expected value as text and number.
struct Expectation {
    std::string key;
    std::string text;        ///< as written
    std::uint64_t value = 0; ///< numeric form where one exists
    std::uint64_t mask = ~std::uint64_t{0};  ///< numeric keys: only these bits are compared
    std::uint64_t gpa = 0;   ///< `mem`: the address read
    std::uint8_t width = 8;  ///< `mem`: bytes read (8, 4, 2, 1)
    int line = 0;
};

/// An L1 instruction a step names without operands (`l1: NAME`), and the
/// engine's entry point for it: the loader looks names up here, the runner
/// calls through it (l1_instructions.cpp has the table).
struct L1Instruction {
    std::string_view name;
    nested::StepResult (nested::Vcpu::*run)() noexcept;
};
[[nodiscard]] std::span<const L1Instruction> l1_instructions() noexcept;

enum class StepKind : std::uint8_t { l1, l2, external, save_restore, write, host_efer, restore_blob_edit, restore_kvm_state };

struct Step {
    StepKind kind = StepKind::l1;
    std::string what;            ///< L1 instruction name, event name, external event name
    const L1Instruction* l1 = nullptr;  ///< `l1: NAME` steps: the instruction (else wrmsr/rdmsr)
    cpu::Event event{};          ///< l2 events
    std::uint32_t msr = 0;       ///< l1 rdmsr/wrmsr
    std::uint64_t value = 0;     ///< l1 wrmsr value, host_efer, write value
    std::uint64_t gpa = 0;       ///< write target
    std::uint8_t width = 8;      ///< write width in bytes
    bool kvm_layout = false;     ///< save_restore through KVM's struct kvm_nested_state (`save_restore: kvm`)
    std::vector<std::uint8_t> blob;  ///< restore_kvm_state: the file's bytes (struct kvm_nested_state)
    std::string label;           ///< optional "name:"
    std::vector<Expectation> expect;
    int line = 0;
};

struct Scenario {
    std::string file;
    std::string name;
    std::string description;
    checks::CpuModel cpu;
    const checks::Profile* profile = nullptr;
    nested::L0Config l0;
    nested::Options options;
    cpu::GuestMemory memory{48};
    // L1's initial state (applied over the defaults of nested::Vcpu).
    std::vector<std::pair<arch::FieldId, std::uint64_t>> l1_fields;
    std::optional<bool> l1_gif;
    std::uint64_t hsave_pa = 0;
    std::optional<std::uint64_t> smbase;
    /// `tsc:` the host TSC of the processor L0 runs on (nested::Vcpu::set_host_tsc);
    /// it does not advance while the scenario runs.
    std::optional<std::uint64_t> host_tsc;
    std::vector<Step> steps;
};

/// Parses scenario text; `file` names it in errors and anchors relative paths.
[[nodiscard]] nsvm::expected<Scenario, Error> load_text(std::string_view text, const std::string& file);
[[nodiscard]] nsvm::expected<Scenario, Error> load_file(const std::string& path);

struct RunOptions {
    bool json = false;              ///< JSON lines instead of text
    bool check_invariants = false;
    bool color = false;
    bool keep_kvm_state = false;    ///< fill RunResult::kvm_state (`nsvm run --save-kvm-state`)
};

struct RunResult {
    int status = 0;                 ///< 0 all expectations hold, 1 one does not
    std::string message;            ///< the first failed expectation / invariant
    std::size_t steps_run = 0;
    /// With RunOptions::keep_kvm_state: the vCPU's nested state in KVM's
    /// layout after the last step that ran (struct kvm_nested_state).
    std::vector<std::uint8_t> kvm_state;
};

/// Runs the scenario, writing the trace to `out`.
[[nodiscard]] RunResult run(Scenario& s, const RunOptions& opts, std::ostream& out);

}  // namespace nsvm::scenario
