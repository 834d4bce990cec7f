// A single-level SVM machine for the cpu tests: a 64-bit host at CPL 0, its
// host-save area, a VMCB page, the permission maps, all in guest memory.
#pragma once

#include <gtest/gtest.h>

#include "checks/fixtures.hpp"
#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/cpu/svm_cpu.hpp"

namespace nsvm::cpu::test {

inline constexpr std::uint64_t kVmcb = 0x20000, kHsave = 0x50000, kIopm = 0x10000, kMsrpm = 0x14000,
                               kPdpt = 0x2000, kVmsave = 0x30000;

/// The checks fixture's valid 64-bit guest, with VMMCALL intercepted.
inline arch::Vmcb guest64() {
    arch::Vmcb v = checks::test::valid_vmcb64();
    v.set(arch::FieldId::rsp, 0x7000);
    v.set(arch::FieldId::rax, 0x1234);
    v.set(arch::FieldId::cr2, 0xDEAD000);
    v.set(arch::FieldId::dr6, 0xFFFF0FF1);
    // An IDT in memory the machine does not back: an exception delivered to
    // the guest is then "delivered, not modelled" (registers unchanged); a
    // zero limit would make every delivery a triple fault (APM 8.2.9).
    v.set_segment(arch::Seg::idtr, arch::Segment{0, 0, 0xFFF, 0x60000});
    return v;
}

struct Machine {
    explicit Machine(checks::ProfileId p = checks::ProfileId::apm, checks::CpuModel model = checks::default_model())
        : cpu_model(std::move(model)), mem(cpu_model.maxphyaddr), cpu(cpu_model, checks::profile(p), mem) {
        EXPECT_TRUE(mem.map(kVmcb));
        EXPECT_TRUE(mem.map(kHsave));
        EXPECT_TRUE(mem.map(kVmsave));
        EXPECT_TRUE(mem.map(kPdpt));
        EXPECT_TRUE(mem.map(kIopm, kIopmSize));
        EXPECT_TRUE(mem.map(kMsrpm, kMsrpmSize));
        cpu.regs() = SvmCpu::long_mode_host();
        cpu.regs().rax = kVmcb;
        cpu.msrs().vm_hsave_pa = kHsave;
    }
    void put(const arch::Vmcb& v) { ASSERT_TRUE(mem.write_vmcb(kVmcb, v)); }
    [[nodiscard]] arch::Vmcb vmcb() const {
        arch::Vmcb v;
        EXPECT_TRUE(mem.peek_vmcb(kVmcb, v));
        return v;
    }
    /// CLGI, VMRUN of `v` (the usual hypervisor sequence).
    SvmResult enter(const arch::Vmcb& v) {
        put(v);
        EXPECT_EQ(cpu.clgi().outcome, SvmOutcome::completed);
        return cpu.vmrun();
    }

    checks::CpuModel cpu_model;
    GuestMemory mem;
    SvmCpu cpu;
};

}  // namespace nsvm::cpu::test
