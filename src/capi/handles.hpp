// Internal to the C API: what the opaque handles of nsvm.h hold, and the
// boundary guard that turns every C++ exception into an nsvm_status.
#pragma once

#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nsvm/arch/vmcb.hpp"
#include "nsvm/checks/catalogue.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/evaluate.hpp"
#include "nsvm/cpu/memory.hpp"
#include "nsvm/nested/vcpu.hpp"
#include "nsvm/nsvm.h"
#include "nsvm/repair/repair.hpp"

struct nsvm_vmcb {
    nsvm::arch::Vmcb vmcb;
    nsvm_format format = NSVM_FORMAT_RAW;
    std::optional<nsvm::checks::HostState> host;  ///< a JSON input's "host" object
    std::vector<bool> given;                      ///< fields the input gave; empty: all
    bool partial = false;                         ///< evaluate_partial (a QEMU register dump)
};

struct nsvm_checker {
    nsvm::checks::CpuModel cpu;
    const nsvm::checks::Profile* profile = nullptr;
};

/// A failure with its strings owned here, so the C view can point into them.
struct nsvm_report {
    struct Entry {
        std::string id, apm, message, hint, detail;
        std::vector<std::string> fields;
        std::vector<const char*> field_ptrs;
    };
    nsvm::checks::Verdict verdict = nsvm::checks::Verdict::valid;
    std::uint64_t exit_code = 0;
    std::vector<Entry> failures;
    std::vector<std::string> undecided;  ///< check ids partial input cannot decide
};

struct nsvm_repair {
    nsvm::repair::Result result;
};

struct nsvm_machine {
    nsvm_machine(nsvm::checks::CpuModel model, const nsvm::checks::Profile& profile)
        : cpu(std::move(model)), memory(cpu.maxphyaddr),
          vcpu(cpu, profile, memory, nsvm::nested::L0Config::kvm_default()) {}
    nsvm::checks::CpuModel cpu;  ///< the Vcpu keeps a pointer: declared (and built) first
    nsvm::cpu::GuestMemory memory;
    nsvm::nested::Vcpu vcpu;
};

namespace nsvm::capi {

/// Records `message` for nsvm_last_error() and returns `status`.
nsvm_status fail(nsvm_status status, std::string_view message);
void clear_error() noexcept;

/// Runs `body` (returning nsvm_status) with nothing escaping: exceptions
/// become NSVM_E_NO_MEMORY / NSVM_E_INTERNAL with their message.
template <class Body>
nsvm_status guarded(Body&& body) noexcept {
    try {
        clear_error();
        return body();
    } catch (const std::bad_alloc&) {
        return fail(NSVM_E_NO_MEMORY, "out of memory");
    } catch (const std::exception& e) {
        return fail(NSVM_E_INTERNAL, e.what());
    } catch (...) {
        return fail(NSVM_E_INTERNAL, "unknown exception");
    }
}

/// Resolves CPU model and profile names (NULL = the defaults).
nsvm_status resolve_model(const char* cpu_model, const char* profile, checks::CpuModel& cpu,
                          const checks::Profile*& prof);

/// The integer field named `name` (vmcb.cpp), or a failure.
nsvm_status lookup_field(const char* name, arch::FieldId& id);
/// Sets the field, refusing values wider than it.
nsvm_status set_field(arch::Vmcb& v, const char* name, std::uint64_t value);

/// A NUL-terminated copy of a catalogue string that lives for the whole
/// program (string_views of the catalogue need not be NUL-terminated).
const char* static_cstr(std::string_view s);

}  // namespace nsvm::capi
