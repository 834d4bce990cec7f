// The model side of `nsvm diff`: what nsvm predicts a vector does.
//
// The prediction comes from the architectural processor, cpu::SvmCpu, run
// over the oracle image's memory (src/oracle/model.cpp); the interface keeps
// the diff logic apart from it.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <optional>
#include <string>
#include <vector>

#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/oracle/runner.hpp"
#include "nsvm/oracle/vector.hpp"

namespace nsvm::oracle {

/// A prediction. Unset optionals mean "the model does not say" (not compared).
struct Prediction {
    Status status = Status::vmexit;           ///< cannot_run: the model expects a hang
    bool vmrun_valid = true;                  ///< the consistency checks pass
    /// VMRUN's own outcome is known (false: memory the image does not lay
    /// out decides it, or the image could not be laid out).
    bool vmrun_predicted = true;
    std::optional<std::uint64_t> exit_code;
    std::optional<std::uint64_t> exit_info_1;
    std::optional<std::uint64_t> exit_info_2;
    std::optional<std::uint32_t> exit_int_info;
    std::optional<std::uint8_t> exception_vector;  ///< status exception
    std::optional<bool> gif;
    std::optional<std::uint64_t> guest_rax;   ///< save.rax after the exit
    std::optional<std::uint64_t> guest_rip;   ///< save.rip after the exit
    std::optional<std::uint64_t> guest_rsp;   ///< save.rsp after the exit
    std::optional<std::uint64_t> guest_rflags;
    std::optional<std::uint64_t> next_rip;    ///< control.next_rip, when the CPU/profile writes it
    /// Every other VMCB field is what the vector gave (APM 15.6: #VMEXIT
    /// writes back the guest state VMRUN loaded); EVENTINJ.V is cleared.
    /// With vmcb_after, "what the vector gave" is what the model's
    /// processor wrote back (CS reloaded by an IDT delivery, CR2 by a #PF,
    /// CR0.ET forced to 1 ...).
    bool rest_unchanged = false;
    /// The VMCB page after the model's #VMEXIT, when rest_unchanged.
    std::optional<arch::Vmcb> vmcb_after;
    /// The vector's paging patches as the model's exit left them (the A/D
    /// bits its walk wrote), when it followed L2 to a predicted exit.
    std::vector<TablePatch> paging_after;
    std::vector<std::string> failing_checks;  ///< check ids the model finds violated
    std::string path;                         ///< how the model got there, in words
};

class Model {
public:
    virtual ~Model() = default;
    [[nodiscard]] virtual Prediction predict(const Vector& v) const = 0;
    [[nodiscard]] virtual const checks::Profile& profile() const noexcept = 0;
    [[nodiscard]] virtual const checks::CpuModel& cpu() const noexcept = 0;
};

/// The image's machine on cpu::SvmCpu: VMRUN on the vector's VMCB at its
/// slot (gates, VMEXIT_INVALID, the failing checks, every one listed by
/// checks::evaluate), then L2's program as cpu::Events up to its #VMEXIT,
/// whose fields and written-back VMCB are read from the model's memory.
[[nodiscard]] std::unique_ptr<Model> make_image_model(checks::CpuModel cpu, const checks::Profile& profile);
/// The former name, from when the model evaluated the checks catalogue itself.
[[nodiscard]] inline std::unique_ptr<Model> make_checks_model(checks::CpuModel cpu, const checks::Profile& profile) {
    return make_image_model(std::move(cpu), profile);
}

/// The prediction as the verdict nsvm gen writes into each vector (its
/// `expected` member): the same prediction the diff compares.
[[nodiscard]] Expectation expectation_of(const Prediction& p, const checks::CpuModel& cpu,
                                         const checks::Profile& profile);

/// The CPU model and profile that describe a backend: qemu -> qemu-tcg/qemu,
/// bochs -> bochs-ryzen/bochs, qemu-kvm -> zen4/kvm, exec -> zen4/apm.
struct BackendModel {
    std::string cpu;
    std::string profile;
};
[[nodiscard]] BackendModel model_for_backend(Backend b);

/// The host state the image runs VMRUN with (long mode, paging, CPL 0,
/// EFER.SVME unless the vector clears it), as the checks see it.
[[nodiscard]] checks::HostState image_host_state(const Vector& v);

}  // namespace nsvm::oracle
