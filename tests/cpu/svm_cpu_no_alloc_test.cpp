// VMRUN, #VMEXIT (normal and VMEXIT_INVALID), guest events, signals and
// VMLOAD/VMSAVE of the SVM CPU allocate nothing: a counting global operator
// new (the pattern of tests/nested/test_no_alloc.cpp), armed only around
// the calls under test.
#include <atomic>
#include <cstdlib>
#include <new>

#include "cpu/svm_cpu_fixture.hpp"

namespace {
std::atomic<bool> g_armed{false};
std::atomic<std::size_t> g_allocs{0};
}  // namespace

void* operator new(std::size_t n) {
    if (g_armed.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

using namespace nsvm;
using namespace nsvm::cpu::test;
using arch::FieldId;

TEST(SvmCpuNoAllocation, VmrunVmexitEventsAndFailurePath) {
    Machine m;
    arch::Vmcb v = guest64();
    v.set_intercept(arch::intercept::MSR_PROT);
    v.set_intercept(arch::intercept::IOIO_PROT);
    v.set_intercept(arch::intercept::INTR);
    v.set(FieldId::int_ctl, arch::int_ctl::V_INTR_MASKING);  // the host's IF = 1 unmasks INTR
    arch::Vmcb bad = v;
    bad.set(FieldId::cr0, 0xA0050033);
    cpu::Event rdmsr;
    rdmsr.kind = cpu::EventKind::rdmsr;
    rdmsr.index = 0xC0000080;
    cpu::Event io;
    io.kind = cpu::EventKind::io;
    io.index = 0x80;
    cpu::Event vmmcall;
    vmmcall.kind = cpu::EventKind::vmmcall;
    m.cpu.regs().rflags |= arch::rflags::IF;

    auto run = [&] {
        std::size_t exits = 0;
        m.put(v);
        exits += m.cpu.vmrun().outcome == cpu::SvmOutcome::entered_guest;
        exits += m.cpu.guest_event(io).outcome == cpu::SvmOutcome::no_exit;  // IOPM all zero
        exits += m.cpu.guest_event(rdmsr).outcome == cpu::SvmOutcome::no_exit;
        exits += m.cpu.signal(cpu::Signal::intr).outcome == cpu::SvmOutcome::vmexit;
        exits += m.cpu.stgi().outcome != cpu::SvmOutcome::exception;
        exits += m.cpu.vmrun().outcome == cpu::SvmOutcome::entered_guest;
        exits += m.cpu.guest_event(vmmcall).outcome == cpu::SvmOutcome::vmexit;
        m.cpu.regs().rax = kVmsave;
        exits += m.cpu.vmsave().outcome == cpu::SvmOutcome::completed;
        exits += m.cpu.vmload().outcome == cpu::SvmOutcome::completed;
        m.cpu.regs().rax = kVmcb;
        m.put(bad);
        exits += m.cpu.vmrun().outcome == cpu::SvmOutcome::vmexit;
        return exits;
    };
    EXPECT_EQ(run(), 10U);  // warm-up: statics, first touches
    g_allocs = 0;
    g_armed = true;
    const std::size_t n = run();
    g_armed = false;
    EXPECT_EQ(n, 10U);
    EXPECT_EQ(g_allocs.load(), 0U);
}
