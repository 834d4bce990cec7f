// C API: checkers, the fast verdict, full reports.
#include "handles.hpp"

using nsvm::capi::fail;
using nsvm::capi::guarded;

namespace {

nsvm_report::Entry entry_of(const nsvm::checks::Failure& f) {
    nsvm_report::Entry e{std::string(f.check->id), std::string(f.check->apm), std::string(f.check->message),
                         std::string(f.check->hint), f.detail, {}, {}};
    for (const auto field : f.check->fields) e.fields.emplace_back(field);
    return e;
}

}  // namespace

extern "C" {

nsvm_status nsvm_checker_new(const char* cpu_model, const char* profile, nsvm_checker** out) {
    return guarded([&] {
        if (out == nullptr) return fail(NSVM_E_INVALID_ARGUMENT, "out is NULL");
        *out = nullptr;
        auto c = std::make_unique<nsvm_checker>();
        if (const auto st = nsvm::capi::resolve_model(cpu_model, profile, c->cpu, c->profile); st != NSVM_OK)
            return st;
        *out = c.release();
        return NSVM_OK;
    });
}

void nsvm_checker_free(nsvm_checker* checker) { delete checker; }

int nsvm_vmrun_would_succeed(const nsvm_checker* checker, const nsvm_vmcb* vmcb) {
    // The hot path: no guard, no error string; the check itself is noexcept.
    if (checker == nullptr || vmcb == nullptr) return -1;
    const nsvm::checks::Context ctx{vmcb->vmcb, checker->cpu, *checker->profile,
                                    vmcb->host ? &*vmcb->host : nullptr, nullptr};
    return nsvm::checks::vmrun_would_succeed(ctx) ? 1 : 0;
}

nsvm_status nsvm_check(const nsvm_checker* checker, const nsvm_vmcb* vmcb, nsvm_report** out) {
    return guarded([&] {
        if (checker == nullptr || vmcb == nullptr || out == nullptr)
            return fail(NSVM_E_INVALID_ARGUMENT, "NULL argument");
        *out = nullptr;
        const nsvm::checks::Context ctx{vmcb->vmcb, checker->cpu, *checker->profile,
                                        vmcb->host ? &*vmcb->host : nullptr, nullptr};
        // Partial input: checks on fields it does not give are not decided.
        const auto report = vmcb->partial ? nsvm::checks::evaluate_partial(ctx, vmcb->given) : nsvm::checks::evaluate(ctx);
        auto r = std::make_unique<nsvm_report>();
        for (const auto* c : report.undecided) r->undecided.emplace_back(c->id);
        r->verdict = report.verdict;
        r->exit_code = report.exit_code;
        r->failures.reserve(report.failures.size());
        for (const auto& f : report.failures) {
            r->failures.push_back(entry_of(f));
            auto& e = r->failures.back();
            for (const auto& s : e.fields) e.field_ptrs.push_back(s.c_str());
        }
        *out = r.release();
        return NSVM_OK;
    });
}

void nsvm_report_free(nsvm_report* report) { delete report; }

nsvm_verdict nsvm_report_verdict(const nsvm_report* report) {
    return report ? static_cast<nsvm_verdict>(report->verdict) : NSVM_VERDICT_VALID;
}

uint64_t nsvm_report_exit_code(const nsvm_report* report) { return report ? report->exit_code : 0; }

size_t nsvm_report_failure_count(const nsvm_report* report) { return report ? report->failures.size() : 0; }

size_t nsvm_report_undecided_count(const nsvm_report* report) { return report ? report->undecided.size() : 0; }

const char* nsvm_report_undecided_id(const nsvm_report* report, size_t index) {
    if (report == nullptr || index >= report->undecided.size()) return nullptr;
    return report->undecided[index].c_str();
}

nsvm_status nsvm_report_failure(const nsvm_report* report, size_t index, nsvm_failure* out) {
    return guarded([&] {
        if (report == nullptr || out == nullptr) return fail(NSVM_E_INVALID_ARGUMENT, "NULL argument");
        if (index >= report->failures.size()) return fail(NSVM_E_INVALID_ARGUMENT, "failure index out of range");
        const auto& e = report->failures[index];
        *out = nsvm_failure{e.id.c_str(),   e.apm.c_str(),         e.message.c_str(), e.hint.c_str(),
                            e.detail.c_str(), e.field_ptrs.data(), e.field_ptrs.size()};
        return NSVM_OK;
    });
}

}  // extern "C"
