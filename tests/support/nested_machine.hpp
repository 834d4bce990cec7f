// The nested test machine: an L0 (KVM's default configuration unless told
// otherwise) running one L1 on a CPU model under a behaviour profile, with
// L1's guest memory laid out as below and L1 about to execute VMRUN on the
// vmcb12 at kVmcb12. The nested tests (tests/nested), the nested benchmarks
// (bench/bench_nested.cpp) and fuzz_nested (fuzz/fuzz_nested.cpp) all start
// from it, so a test, a figure and a fuzz finding are about the same machine
// and a change to the layout shows up in all three at once.
// No GoogleTest here (nsvm_bench and the fuzz targets include it); the tests
// add their assertions in tests/nested/nested_test_machine.hpp.
#pragma once

#include <cstdint>

#include "nsvm/arch/vmcb.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/cpu/events.hpp"
#include "nsvm/cpu/memory.hpp"
#include "nsvm/nested/vcpu.hpp"
#include "support/valid_vmcb.hpp"

namespace nsvm::test_support {

// L1's guest-physical layout. The permission maps are where the valid
// vmcb12 points (kIopmBase, kMsrpmBase in valid_vmcb.hpp).
inline constexpr std::uint64_t kVmcb12 = 0x20000;  ///< vmcb12: L1's RAX at VMRUN
inline constexpr std::uint64_t kHsave = 0x50000;   ///< VM_HSAVE_PA (L1's state at HSAVE + 0x400 in SMM)
inline constexpr std::uint64_t kSmbase = 0x30000;  ///< the reset SMBASE (APM Vol.2 10.2.2)
/// SMRAM's top half, SMBASE + 0x8000..0xFFFF: the SMM entry point and the
/// state-save area (SMBASE + 0xFE00). Backed only by map_smram().
inline constexpr std::uint64_t kSmramTop = kSmbase + 0x8000, kSmramTopSize = 0x8000;
/// Where L1 runs VMRUN (the instruction is 3 bytes long).
inline constexpr std::uint64_t kL1Rip = 0x1000;

/// Not copyable or movable: the Vcpu keeps references to the CPU model and
/// the guest memory next to it. About 64 KiB; a benchmark puts it on the heap.
struct NestedMachine {
    checks::CpuModel cpu;
    cpu::GuestMemory mem;
    nested::Vcpu vcpu;
    /// vmcb12's page, HSAVE and L1's permission maps are backed.
    bool backed = false;

    explicit NestedMachine(checks::ProfileId profile = checks::ProfileId::kvm, nested::Options options = {},
                           const nested::L0Config& l0 = nested::L0Config::kvm_default(),
                           const checks::CpuModel& model = checks::default_model())
        : cpu(model), mem(cpu.maxphyaddr), vcpu(cpu, checks::profile(profile), mem, l0, options) {
        backed = mem.map(kVmcb12) && mem.map(kHsave) && mem.map(kMsrpmBase, cpu::kMsrpmSize) &&
                 mem.map(kIopmBase, cpu::kIopmSize);
        vcpu.set_vm_hsave_pa(kHsave);
        vcpu.vmcb01().set(arch::FieldId::rax, kVmcb12);
        vcpu.vmcb01().set(arch::FieldId::rip, kL1Rip);
    }
    NestedMachine(const NestedMachine&) = delete;
    NestedMachine& operator=(const NestedMachine&) = delete;

    /// Backs SMRAM, for an SMI the L0 takes into SMM.
    [[nodiscard]] bool map_smram() { return mem.map(kSmramTop, kSmramTopSize); }
    /// L1 writes vmcb12.
    [[nodiscard]] bool put_vmcb12(const arch::Vmcb& v) { return mem.write_vmcb(kVmcb12, v); }
    /// vmcb12 as L1 would read it now (without counting as a read of VMRUN's).
    [[nodiscard]] bool peek_vmcb12(arch::Vmcb& v) { return mem.peek_vmcb(kVmcb12, v); }
    /// L1 executes VMRUN; vmcb12's reads are counted (vcpu.vmcb12_reads_last_vmrun).
    nested::StepResult vmrun() {
        mem.watch(kVmcb12);
        return vcpu.l1_vmrun();
    }
};

}  // namespace nsvm::test_support
