// C API: repair a VMCB in place, and read the list of changes.
#include "handles.hpp"

using nsvm::capi::fail;
using nsvm::capi::guarded;

extern "C" {

nsvm_status nsvm_repair_vmcb(const nsvm_checker* checker, nsvm_vmcb* vmcb, nsvm_repair** out) {
    return guarded([&] {
        if (checker == nullptr || vmcb == nullptr || out == nullptr)
            return fail(NSVM_E_INVALID_ARGUMENT, "NULL argument");
        *out = nullptr;
        auto r = std::make_unique<nsvm_repair>(nsvm_repair{
            nsvm::repair::repair(vmcb->vmcb, checker->cpu, *checker->profile, vmcb->host ? &*vmcb->host : nullptr)});
        vmcb->vmcb = r->result.vmcb;
        *out = r.release();
        return NSVM_OK;
    });
}

void nsvm_repair_free(nsvm_repair* repair) { delete repair; }

int nsvm_repair_valid(const nsvm_repair* repair) { return repair != nullptr && repair->result.valid() ? 1 : 0; }

size_t nsvm_repair_change_count(const nsvm_repair* repair) { return repair ? repair->result.changes.size() : 0; }

nsvm_status nsvm_repair_change(const nsvm_repair* repair, size_t index, nsvm_change* out) {
    return guarded([&] {
        if (repair == nullptr || out == nullptr) return fail(NSVM_E_INVALID_ARGUMENT, "NULL argument");
        if (index >= repair->result.changes.size()) return fail(NSVM_E_INVALID_ARGUMENT, "change index out of range");
        const auto& c = repair->result.changes[index];
        *out = nsvm_change{c.field.c_str(), c.old_value, c.new_value, c.check_id.c_str()};
        return NSVM_OK;
    });
}

size_t nsvm_repair_unrepaired_count(const nsvm_repair* repair) {
    return repair ? repair->result.unrepaired.size() : 0;
}

const char* nsvm_repair_unrepaired(const nsvm_repair* repair, size_t index) {
    if (repair == nullptr || index >= repair->result.unrepaired.size()) return nullptr;
    return repair->result.unrepaired[index].c_str();
}

}  // extern "C"
