// libFuzzer target: random vmcb12s and random L1/L2 event sequences derived
// from the input bytes, with the invariants checked after every step; any
// violation aborts. The first 4 KiB (zero-padded) are vmcb12's page; then a
// profile byte, a CPU-model byte and L0's configuration (l0_config below);
// the rest drives the events, one byte (plus operands) per step.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/nested/vcpu.hpp"
#include "support/nested_machine.hpp"

namespace {
using namespace nsvm;
// The nested test machine's layout (tests/support/nested_machine.hpp).
using test_support::kHsave;
using test_support::kVmcb12;
constexpr std::uint64_t kMsrpm = test_support::kMsrpmBase, kIopm = test_support::kIopmBase;

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

/// An MSR for L0's pass-through list: mostly inside the three MSRPM ranges
/// (APM 15.11), neighbours sharing a byte included, sometimes outside them.
std::uint32_t pick_msr(Cursor& c) {
    const std::uint8_t sel = c.u8();
    const std::uint32_t off = c.u8() | (std::uint32_t{c.u8()} << 8);
    switch (sel % 5) {
        case 0: return off & 0x1FFF;
        case 1: return 0xC0000000U | (off & 0x1FFF);
        case 2: return 0xC0010000U | (off & 0x1FFF);
        case 3: return 0xC0000080U + (off & 7);  // EFER's byte and its neighbours
        default: return c.u32();                 // anywhere, often outside the ranges
    }
}

/// L0's configuration: KVM's, or one derived from the input (its own
/// intercepts on top of KVM's, its own pass-through MSRs and ports, NPT on
/// or off, KVM's vgif and vls module parameters on or off), so the
/// invariants are checked against many L0s.
nested::L0Config l0_config(Cursor& c) {
    nested::L0Config l0 = nested::L0Config::kvm_default();
    const std::uint8_t how = c.u8();
    if ((how & 1) == 0) return l0;
    l0.npt = (how & 2) == 0;
    l0.vgif = (how & 32) == 0;
    l0.vls = (how & 64) == 0;
    if (how & 4) {
        for (auto& w : l0.intercept_words) w |= c.u32();
    }
    if (how & 8) {
        l0.passthrough_count = static_cast<std::uint8_t>(c.u8() % (l0.passthrough_msrs.size() + 1));
        for (std::uint8_t i = 0; i < l0.passthrough_count; ++i) l0.passthrough_msrs[i] = pick_msr(c);
    }
    if (how & 16) {
        l0.passthrough_port_count = static_cast<std::uint8_t>(c.u8() % (l0.passthrough_ports.size() + 1));
        for (std::uint8_t i = 0; i < l0.passthrough_port_count; ++i)
            l0.passthrough_ports[i] = static_cast<std::uint16_t>(c.u8() | (c.u8() << 8));
    }
    return l0;
}

[[noreturn]] void violation(const char* what) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const auto models = checks::builtin_models();
    // The CPU model's byte follows the vmcb12 page and the profile byte.
    const std::size_t model_at = arch::kVmcbSize + 1;
    const checks::CpuModel& model = models[(size > model_at ? data[model_at] : 0) % models.size()];
    arch::Vmcb v12;
    const std::size_t page = size < arch::kVmcbSize ? size : arch::kVmcbSize;
    for (std::size_t k = 0; k < page; ++k) v12.page()[k] = data[k];
    Cursor c{std::span<const std::uint8_t>(data, size), page};
    const auto profile_id = static_cast<checks::ProfileId>(c.u8() % checks::kProfileCount);
    (void)c.u8();  // the CPU model's byte, read above
    const nested::L0Config l0 = l0_config(c);
    nested::Options opts;
    opts.pre_fix_gif_bug = false;
    opts.intercept_smi = (c.u8() & 1) == 0;
    // The machine the nested tests run, here with the input's profile, CPU
    // model, L0 and options, and SMRAM for the SMIs the input sends.
    test_support::NestedMachine m(profile_id, opts, l0, model);
    if (!m.backed || !m.map_smram() || !m.put_vmcb12(v12)) return 0;
    nested::Vcpu& vcpu = m.vcpu;
    cpu::GuestMemory& mem = m.mem;

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
                case 6: {  // L1 scribbles on vmcb12, its MSRPM, its IOPM or HSAVE (32 bits)
                    const std::uint8_t which = c.u8() % 4;
                    const std::uint64_t base = which == 0 ? kVmcb12 : which == 1 ? kMsrpm : which == 2 ? kIopm : kHsave;
                    const std::uint64_t extent = which == 1 ? cpu::kMsrpmSize : which == 2 ? cpu::kIopmSize : arch::kVmcbSize;
                    const std::uint32_t off = static_cast<std::uint32_t>(c.u32() % (extent - 4));
                    const std::uint32_t val = c.u32();
                    std::uint8_t b[4] = {std::uint8_t(val), std::uint8_t(val >> 8), std::uint8_t(val >> 16),
                                         std::uint8_t(val >> 24)};
                    (void)mem.write(base + off, b);
                    continue;
                }
                default: r = vcpu.external(static_cast<cpu::EventKind>(static_cast<unsigned>(cpu::EventKind::intr) + c.u8() % 4)); break;
            }
        } else {
            cpu::Event e;
            e.kind = static_cast<cpu::EventKind>(c.u8() % cpu::kEventKindCount);
            e.index = c.u32();
            e.value = c.u32();
            const std::uint8_t size_byte = c.u8();
            e.size = static_cast<std::uint8_t>(1U << (size_byte % 3));
            // The size byte's top bit repeats a CR/DR write's value in bits
            // 63:32, so writes with illegal upper halves (DR6/DR7, CR0, CR4)
            // are reached without changing the input's layout.
            if ((size_byte & 0x80) && (e.kind == cpu::EventKind::cr_write || e.kind == cpu::EventKind::dr_write))
                e.value |= e.value << 32;
            e.in = (op & 1) != 0;
            e.access.write = (op & 2) != 0;
            if (e.kind == cpu::EventKind::io) e.index &= 0xFFFF;
            r = vcpu.l2_event(e);
            if (op == 0xFF) {  // save/restore round trip
                const auto blob = vcpu.save_state();
                if (const auto restored = vcpu.restore_state(blob); !restored) {
                    std::fprintf(stderr, "restore_state: %s\n", restored.error().c_str());
                    violation("own blob refused");
                }
                if (vcpu.save_state() != blob) violation("save -> restore -> save differs");
            }
            if (op == 0xFE) {  // the same through KVM's layout, L2's registers beside it
                const arch::Vmcb regs = vcpu.current_registers();
                const auto blob = vcpu.save_kvm_nested_state();
                if (const auto restored = vcpu.restore_kvm_nested_state(blob, regs); !restored) {
                    std::fprintf(stderr, "restore_kvm_nested_state: %s\n", restored.error().c_str());
                    violation("own KVM-layout state refused");
                }
                if (vcpu.save_kvm_nested_state() != blob) violation("KVM layout: save -> restore -> save differs");
            }
            if (op == 0xFD) {  // a hostile KVM_SET_NESTED_STATE: the vCPU's header, the input's bytes
                auto blob = vcpu.save_kvm_nested_state();
                blob.resize(nested::kvm_state::kGuestSize, 0);
                const std::size_t n = c.u8() % 16;
                for (std::size_t k = 0; k < n; ++k) blob[c.u32() % blob.size()] = c.u8();
                blob.resize(nested::kvm_state::kHeaderSize + (c.u32() % (blob.size() - nested::kvm_state::kHeaderSize + 1)));
                (void)vcpu.restore_kvm_nested_state(blob, vcpu.current_registers());
            }
        }
        if (was_vmrun && vcpu.vmcb12_reads_last_vmrun() != 1) violation("vmcb12 read more than once in VMRUN");
        if ((r.outcome == nested::Outcome::vmexit_to_l1 || r.outcome == nested::Outcome::vmrun_failed) && vcpu.gif())
            violation("GIF = 1 after a #VMEXIT to L1");
        if (const char* bad = vcpu.check_invariants()) violation(bad);
    }
    return 0;
}
