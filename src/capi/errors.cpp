// The C API's error state, status names, version, and name resolution.
#include <mutex>
#include <set>
#include <string>

#include "handles.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/version.h"

namespace nsvm::capi {
namespace {
thread_local std::string t_last_error;
}

nsvm_status fail(nsvm_status status, std::string_view message) {
    try {
        t_last_error.assign(message);
    } catch (...) {
        t_last_error.clear();  // no memory for the message: the status still says what happened
    }
    return status;
}

void clear_error() noexcept { t_last_error.clear(); }

nsvm_status resolve_model(const char* cpu_model, const char* profile, checks::CpuModel& cpu,
                          const checks::Profile*& prof) {
    if (cpu_model == nullptr) {
        cpu = checks::default_model();
    } else {
        auto m = checks::find_builtin_model(cpu_model);
        if (!m) return fail(NSVM_E_UNKNOWN_NAME, m.error());
        cpu = std::move(*m);
    }
    auto p = checks::find_profile(profile == nullptr ? "apm" : profile);
    if (!p) return fail(NSVM_E_UNKNOWN_NAME, p.error());
    prof = &checks::profile(*p);
    return NSVM_OK;
}

const char* static_cstr(std::string_view s) {
    // std::set nodes never move, so c_str() stays valid; a handful of
    // distinct strings (check ids, outcome names) ever land here.
    static std::mutex mu;
    static std::set<std::string, std::less<>> interned;
    const std::lock_guard lock(mu);
    auto it = interned.find(s);
    if (it == interned.end()) it = interned.emplace(s).first;
    return it->c_str();
}

}  // namespace nsvm::capi

extern "C" {

const char* nsvm_last_error(void) { return nsvm::capi::t_last_error.c_str(); }

const char* nsvm_status_name(nsvm_status status) {
    switch (status) {
        case NSVM_OK: return "NSVM_OK";
        case NSVM_E_INVALID_ARGUMENT: return "NSVM_E_INVALID_ARGUMENT";
        case NSVM_E_PARSE: return "NSVM_E_PARSE";
        case NSVM_E_UNKNOWN_NAME: return "NSVM_E_UNKNOWN_NAME";
        case NSVM_E_BUFFER_TOO_SMALL: return "NSVM_E_BUFFER_TOO_SMALL";
        case NSVM_E_NO_MEMORY: return "NSVM_E_NO_MEMORY";
        case NSVM_E_STATE: return "NSVM_E_STATE";
        case NSVM_E_INTERNAL: return "NSVM_E_INTERNAL";
    }
    return "NSVM_E_UNKNOWN_STATUS";
}

const char* nsvm_version(void) { return NSVM_VERSION_STRING; }

}  // extern "C"
