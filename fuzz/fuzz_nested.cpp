// libFuzzer target: random vmcb12s and random L1/L2 event sequences derived
// from the input bytes, with the invariants checked after every step; any
// violation aborts. The first 4 KiB (zero-padded) are vmcb12's page; the
// rest drives the events, one byte (plus operands) per step.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/nested/vcpu.hpp"

namespace {
using namespace nsvm;
constexpr std::uint64_t kVmcb12 = 0x20000, kHsave = 0x50000, kMsrpm = 0x14000, kIopm = 0x10000, kSmbase = 0x30000;

struct Cursor {
    std::span<const std::uint8_t> d;
    std::size_t i = 0;
    [[nodiscard]] bool more() const { return i < d.size(); }
    std::uint8_t u8() { return i < d.size() ? d[i++] : 0; }
    std::uint32_t u32() {
        std::uint32_t v = 0;
        for (int k = 0; k < 4; ++k) v |= std::uint32_t{u8()} << (8 * k);
        return v;
    }
};

[[noreturn]] void violation(const char* what) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const checks::CpuModel cpu = checks::default_model();
    cpu::GuestMemory mem(cpu.maxphyaddr);
    if (!mem.map(kVmcb12) || !mem.map(kHsave) || !mem.map(kMsrpm, cpu::kMsrpmSize) || !mem.map(kIopm, cpu::kIopmSize) ||
        !mem.map(kSmbase + 0x8000, 0x8000))
        return 0;
    arch::Vmcb v12;
    const std::size_t page = size < arch::kVmcbSize ? size : arch::kVmcbSize;
    for (std::size_t k = 0; k < page; ++k) v12.page()[k] = data[k];
    if (!mem.write_vmcb(kVmcb12, v12)) return 0;
    Cursor c{std::span<const std::uint8_t>(data, size), page};
    const auto profile_id = static_cast<checks::ProfileId>(c.u8() % checks::kProfileCount);
    nested::Options opts;
    opts.pre_fix_gif_bug = false;
    nested::Vcpu vcpu(cpu, checks::profile(profile_id), mem, nested::L0Config::kvm_default(), opts);
    vcpu.set_vm_hsave_pa(kHsave);
    vcpu.vmcb01().set(arch::FieldId::rax, kVmcb12);

    for (int step = 0; step < 64 && c.more(); ++step) {
        if (vcpu.mode() == nested::Mode::shutdown) break;
        const std::uint8_t op = c.u8();
        nested::StepResult r;
        bool was_vmrun = false;
        if (vcpu.mode() == nested::Mode::l1) {
            switch (op % 8) {
                case 0: case 1: case 2:
                    vcpu.vmcb01().set(arch::FieldId::rax, kVmcb12);
                    mem.watch(kVmcb12);
                    r = vcpu.l1_vmrun();
                    was_vmrun = r.outcome != nested::Outcome::exception;
                    break;
                case 3: r = vcpu.l1_stgi(); break;
                case 4: r = vcpu.l1_clgi(); break;
                case 5: r = vcpu.rsm(); break;
                case 6: {  // L1 scribbles on vmcb12 (32 bits at a random offset)
                    const std::uint32_t off = c.u32() % (arch::kVmcbSize - 4);
                    const std::uint32_t val = c.u32();
                    std::uint8_t b[4] = {std::uint8_t(val), std::uint8_t(val >> 8), std::uint8_t(val >> 16),
                                         std::uint8_t(val >> 24)};
                    (void)mem.write(kVmcb12 + off, b);
                    continue;
                }
                default: r = vcpu.external(static_cast<cpu::EventKind>(static_cast<unsigned>(cpu::EventKind::intr) + c.u8() % 4)); break;
            }
        } else {
            cpu::Event e;
            e.kind = static_cast<cpu::EventKind>(c.u8() % (static_cast<unsigned>(cpu::EventKind::init) + 1));
            e.index = c.u32();
            e.value = c.u32();
            e.size = static_cast<std::uint8_t>(1U << (c.u8() % 3));
            e.in = (op & 1) != 0;
            e.access.write = (op & 2) != 0;
            if (e.kind == cpu::EventKind::io) e.index &= 0xFFFF;
            r = vcpu.l2_event(e);
            if (op == 0xFF) {  // save/restore round trip
                const auto blob = vcpu.save_state();
                if (!vcpu.restore_state(blob)) violation("own blob refused");
                if (vcpu.save_state() != blob) violation("save -> restore -> save differs");
            }
        }
        if (was_vmrun && vcpu.vmcb12_reads_last_vmrun() != 1) violation("vmcb12 read more than once in VMRUN");
        if ((r.outcome == nested::Outcome::vmexit_to_l1 || r.outcome == nested::Outcome::vmrun_failed) && vcpu.gif())
            violation("GIF = 1 after a #VMEXIT to L1");
        if (const char* bad = vcpu.check_invariants()) violation(bad);
    }
    return 0;
}
