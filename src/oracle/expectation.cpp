// The model's prediction as the expected outcome nsvm gen writes into each
// vector (model.hpp expectation_of): one predictor, the diff's.
#include "nsvm/oracle/model.hpp"

namespace nsvm::oracle {

namespace {

[[nodiscard]] Verdict verdict_of(const Prediction& p) {
    if (!p.vmrun_predicted) return Verdict::not_predicted;
    switch (p.status) {
        case Status::exception: return Verdict::exception;
        case Status::cannot_run: return Verdict::hangs;
        case Status::vmexit: break;
    }
    return p.vmrun_valid ? Verdict::enters : Verdict::vmrun_fails;
}

}  // namespace

Expectation expectation_of(const Prediction& p, const checks::CpuModel& cpu, const checks::Profile& profile) {
    Expectation x;
    x.cpu = cpu.name;
    x.profile = std::string(profile.name);
    x.verdict = verdict_of(p);
    x.failing_checks = p.failing_checks;
    switch (x.verdict) {
        case Verdict::enters:
        case Verdict::vmrun_fails: x.exit_code = p.exit_code; break;  // unset: L2's exit is not predicted
        case Verdict::exception: x.exception_vector = p.exception_vector; break;
        case Verdict::hangs:
        case Verdict::not_predicted: break;
    }
    return x;
}

}  // namespace nsvm::oracle
