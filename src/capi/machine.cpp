// C API: the nested SVM engine, one vCPU under L0's default configuration.
#include <span>

#include "handles.hpp"
#include "nsvm/cpu/events.hpp"

using nsvm::capi::fail;
using nsvm::capi::guarded;

namespace {

using nsvm::nested::StepResult;

void to_c(const StepResult& r, nsvm_step* out) {
    if (out == nullptr) return;
    *out = nsvm_step{nsvm::capi::static_cstr(nsvm::nested::outcome_name(r.outcome)),
                     r.failed_check ? nsvm::capi::static_cstr(r.failed_check->id) : "",
                     r.note ? r.note : "",
                     r.exit_code,
                     r.exit_info_1,
                     r.exit_info_2,
                     r.vector};
}

StepResult run_l1(nsvm::nested::Vcpu& v, nsvm_l1_insn insn) noexcept {
    switch (insn) {
        case NSVM_L1_VMRUN: return v.l1_vmrun();
        case NSVM_L1_VMLOAD: return v.l1_vmload();
        case NSVM_L1_VMSAVE: return v.l1_vmsave();
        case NSVM_L1_STGI: return v.l1_stgi();
        case NSVM_L1_CLGI: return v.l1_clgi();
        case NSVM_L1_INVLPGA: return v.l1_invlpga();
        case NSVM_L1_VMMCALL: return v.l1_vmmcall();
        case NSVM_L1_SKINIT: return v.l1_skinit();
        case NSVM_L1_RSM: return v.rsm();
    }
    return StepResult{};
}

bool is_external(nsvm::cpu::EventKind k) {
    using K = nsvm::cpu::EventKind;
    return k == K::intr || k == K::nmi || k == K::smi || k == K::init;
}

}  // namespace

extern "C" {

nsvm_status nsvm_machine_new(const char* cpu_model, const char* profile, nsvm_machine** out) {
    return guarded([&] {
        if (out == nullptr) return fail(NSVM_E_INVALID_ARGUMENT, "out is NULL");
        *out = nullptr;
        nsvm::checks::CpuModel cpu;
        const nsvm::checks::Profile* prof = nullptr;
        if (const auto st = nsvm::capi::resolve_model(cpu_model, profile, cpu, prof); st != NSVM_OK) return st;
        *out = new nsvm_machine(std::move(cpu), *prof);
        return NSVM_OK;
    });
}

void nsvm_machine_free(nsvm_machine* machine) { delete machine; }

nsvm_status nsvm_machine_map(nsvm_machine* machine, uint64_t gpa, uint64_t size) {
    return guarded([&] {
        if (machine == nullptr) return fail(NSVM_E_INVALID_ARGUMENT, "machine is NULL");
        if (!machine->memory.map(gpa, size))
            return fail(NSVM_E_INVALID_ARGUMENT, "cannot map this range (beyond MAXPHYADDR, or too large)");
        return NSVM_OK;
    });
}

nsvm_status nsvm_machine_write(nsvm_machine* machine, uint64_t gpa, const void* data, size_t size) {
    return guarded([&] {
        if (machine == nullptr || (data == nullptr && size != 0)) return fail(NSVM_E_INVALID_ARGUMENT, "NULL argument");
        if (!machine->memory.write(gpa, std::span(static_cast<const std::uint8_t*>(data), size)))
            return fail(NSVM_E_STATE, "guest memory not backed (nsvm_machine_map first)");
        return NSVM_OK;
    });
}

nsvm_status nsvm_machine_read(const nsvm_machine* machine, uint64_t gpa, void* data, size_t size) {
    return guarded([&] {
        if (machine == nullptr || (data == nullptr && size != 0)) return fail(NSVM_E_INVALID_ARGUMENT, "NULL argument");
        if (!machine->memory.read(gpa, std::span(static_cast<std::uint8_t*>(data), size)))
            return fail(NSVM_E_STATE, "guest memory not backed");
        return NSVM_OK;
    });
}

nsvm_status nsvm_machine_set_hsave(nsvm_machine* machine, uint64_t gpa) {
    return guarded([&] {
        if (machine == nullptr) return fail(NSVM_E_INVALID_ARGUMENT, "machine is NULL");
        machine->vcpu.set_vm_hsave_pa(gpa);
        return NSVM_OK;
    });
}

nsvm_status nsvm_machine_l1(nsvm_machine* machine, nsvm_l1_insn insn, nsvm_step* out) {
    return guarded([&] {
        if (machine == nullptr) return fail(NSVM_E_INVALID_ARGUMENT, "machine is NULL");
        if (insn < NSVM_L1_VMRUN || insn > NSVM_L1_RSM) return fail(NSVM_E_INVALID_ARGUMENT, "unknown nsvm_l1_insn");
        if (machine->vcpu.mode() != nsvm::nested::Mode::l1)
            return fail(NSVM_E_STATE, "L1 instructions run only while L1 runs");
        to_c(run_l1(machine->vcpu, insn), out);
        return NSVM_OK;
    });
}

nsvm_status nsvm_machine_event(nsvm_machine* machine, const char* event, uint32_t index, uint64_t value,
                               nsvm_step* out) {
    return guarded([&] {
        if (machine == nullptr || event == nullptr) return fail(NSVM_E_INVALID_ARGUMENT, "NULL argument");
        const auto kind = nsvm::cpu::find_event(event);
        if (!kind) return fail(NSVM_E_UNKNOWN_NAME, std::string("unknown event '") + event + "'");
        if (is_external(*kind)) {
            to_c(machine->vcpu.external(*kind), out);
            return NSVM_OK;
        }
        if (machine->vcpu.mode() != nsvm::nested::Mode::l2)
            return fail(NSVM_E_STATE, "L2 events need L2 running (a successful VMRUN first)");
        nsvm::cpu::Event e;
        e.kind = *kind;
        e.index = index;
        e.value = value;
        to_c(machine->vcpu.l2_event(e), out);
        return NSVM_OK;
    });
}

nsvm_status nsvm_machine_vmcb_get(const nsvm_machine* machine, nsvm_which_vmcb which, const char* field,
                                  uint64_t* value) {
    return guarded([&] {
        if (machine == nullptr || value == nullptr) return fail(NSVM_E_INVALID_ARGUMENT, "NULL argument");
        nsvm::arch::FieldId id{};
        if (const auto st = nsvm::capi::lookup_field(field, id); st != NSVM_OK) return st;
        const auto& v = machine->vcpu;
        switch (which) {
            case NSVM_VMCB01: *value = v.vmcb01().get(id); return NSVM_OK;
            case NSVM_VMCB02: *value = v.vmcb02().get(id); return NSVM_OK;
            case NSVM_VMCB12: {
                // The last VMRUN's vmcb12, or the one rAX names before any.
                const std::uint64_t gpa = v.vmcb12_gpa() != 0 ? v.vmcb12_gpa() : v.vmcb01().get(nsvm::arch::FieldId::rax);
                nsvm::arch::Vmcb v12;
                if (!machine->memory.read_vmcb(gpa, v12)) return fail(NSVM_E_STATE, "vmcb12's page is not backed");
                *value = v12.get(id);
                return NSVM_OK;
            }
        }
        return fail(NSVM_E_INVALID_ARGUMENT, "unknown nsvm_which_vmcb");
    });
}

nsvm_status nsvm_machine_vmcb01_set(nsvm_machine* machine, const char* field, uint64_t value) {
    return guarded([&] {
        if (machine == nullptr) return fail(NSVM_E_INVALID_ARGUMENT, "machine is NULL");
        return nsvm::capi::set_field(machine->vcpu.vmcb01(), field, value);
    });
}

int nsvm_machine_gif(const nsvm_machine* machine) { return machine && machine->vcpu.gif() ? 1 : 0; }

nsvm_mode nsvm_machine_mode(const nsvm_machine* machine) {
    if (machine == nullptr) return NSVM_MODE_SHUTDOWN;
    switch (machine->vcpu.mode()) {
        case nsvm::nested::Mode::l1: return NSVM_MODE_L1;
        case nsvm::nested::Mode::l2: return NSVM_MODE_L2;
        case nsvm::nested::Mode::shutdown: break;
    }
    return NSVM_MODE_SHUTDOWN;
}

const char* nsvm_machine_check_invariants(const nsvm_machine* machine) {
    return machine ? machine->vcpu.check_invariants() : "machine is NULL";
}

}  // extern "C"
