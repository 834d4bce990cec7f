// The checks-based model of a vector (see model.hpp).
#include "nsvm/oracle/model.hpp"

#include <fmt/format.h>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/checks/evaluate.hpp"

namespace nsvm::oracle {

namespace ic = arch::intercept;
namespace ec = arch::exit_code;
using arch::FieldId;

checks::HostState image_host_state(const Vector& v) {
    // boot.S: CR0 = PG|ET|PE, CR4 = PAE, EFER = LME|LMA (+SVME in image_main).
    checks::HostState h;
    h.efer = arch::efer::LME | arch::efer::LMA | (v.host.svme ? arch::efer::SVME : 0);
    h.cr0 = arch::cr0::PG | arch::cr0::ET | arch::cr0::PE;
    h.cr4 = arch::cr4::PAE;
    h.rflags = arch::rflags::FIXED1;
    h.cpl = 0;
    // The slot address is known only at run time; every slot is 8 KiB aligned
    // and below 4 GiB, so any such address stands for it.
    h.rax = v.host.vmrun_rax.value_or(NSVM_OR_SLOTS_PA);
    h.address_size = 64;
    h.vm_hsave_pa = v.host.hsave_pa.value_or(NSVM_OR_HSAVE_PA);
    return h;
}

BackendModel model_for_backend(Backend b) {
    switch (b) {
        case Backend::qemu: return {"qemu-tcg", "qemu"};
        case Backend::bochs: return {"bochs-ryzen", "bochs"};
        case Backend::qemu_kvm: return {"zen4", "kvm"};
    }
    return {"zen4", "apm"};
}

namespace {

/// Guest memory as the image lays it out, for the memory-stage checks (PAE
/// PDPEs, APM 15.5.1 / apm-svm.md C21): only the paging structures the image
/// builds are known; anything else is "not backed" (the check becomes a warning).
class ImageMemory final : public checks::GuestMemory {
public:
    bool read_u64(std::uint64_t gpa, std::uint64_t& out) const override {
        if (gpa >= NSVM_OR_PAE_PDPT_PA && gpa < NSVM_OR_PAE_PDPT_PA + 0x1000 && gpa % 8 == 0) {
            const auto i = (gpa - NSVM_OR_PAE_PDPT_PA) / 8;
            out = i < 4 ? (NSVM_OR_PML4_PA + 0x2000 + 0x1000 * i) | 1 : 0;
            return true;
        }
        if (gpa >= NSVM_OR_PML4_PA + 0x1000 && gpa < NSVM_OR_PML4_PA + 0x2000 && gpa % 8 == 0) {
            const auto i = (gpa - NSVM_OR_PML4_PA - 0x1000) / 8;
            out = i < 4 ? (NSVM_OR_PML4_PA + 0x2000 + 0x1000 * i) | 7 : 0;
            return true;
        }
        return false;
    }
};

class ChecksModel final : public Model {
public:
    ChecksModel(checks::CpuModel cpu, const checks::Profile& p) : cpu_(std::move(cpu)), profile_(p) {}
    const checks::Profile& profile() const noexcept override { return profile_; }
    const checks::CpuModel& cpu() const noexcept override { return cpu_; }

    Prediction predict(const Vector& v) const override {
        Prediction p;
        const auto host = image_host_state(v);
        const ImageMemory mem;
        const checks::Context ctx{v.vmcb, cpu_, profile_, &host, &mem};
        const auto report = checks::evaluate(ctx);
        for (const auto& f : report.failures) p.failing_checks.emplace_back(f.check->id);
        switch (report.verdict) {
            case checks::Verdict::ud:
            case checks::Verdict::gp:
                // An instruction gate: VMRUN never reads the VMCB, GIF is untouched.
                p.status = Status::exception;
                p.vmrun_valid = false;
                p.exception_vector = report.verdict == checks::Verdict::ud ? 6 : 13;
                p.gif = v.host.gif;
                p.path = fmt::format("{} before the VMCB is read ({})",
                                     report.verdict == checks::Verdict::ud ? "#UD" : "#GP(0)",
                                     report.failures.front().check->id);
                return p;
            case checks::Verdict::vmexit_invalid:
            case checks::Verdict::other_vmexit:
                // APM 15.5.1: the failed checks end in #VMEXIT(VMEXIT_INVALID),
                // EXITINFO1/2 zero; every #VMEXIT clears GIF (APM 15.17).
                p.status = Status::vmexit;
                p.vmrun_valid = false;
                p.exit_code = report.exit_code;
                p.exit_info_1 = 0;
                p.exit_info_2 = 0;
                p.gif = profile_.clear_gif_on_failure ? std::optional<bool>(false) : std::nullopt;
                p.path = fmt::format("VMRUN fails its consistency checks: {}", fmt::join(p.failing_checks, ", "));
                return p;
            case checks::Verdict::valid: break;
        }
        p.vmrun_valid = true;
        p.gif = false;  // APM 15.17: #VMEXIT clears GIF
        predict_l2(v, p);
        return p;
    }

private:
    /// L2's registers as the image's programs change them (layout.h, l2.S):
    /// the model follows them to the exit, so that save.rip, rsp, rflags and
    /// rax in the VMCB after the #VMEXIT can be compared too (APM 15.6: the
    /// exit writes back the guest state at the intercepted instruction).
    struct L2 {
        std::uint64_t rip = 0, rsp = 0, rflags = 0;
        std::optional<std::uint64_t> rax;
        unsigned insn_len = 0;  ///< length of the instruction at rip (0: not known)
        bool code64 = false;
        bool known = true;  ///< false once a step the model does not follow ran (rsp/rip unknown)
    };

    /// Byte length of each program's first instruction (oracle/image/l2.S).
    static unsigned insn_length(Program prog) noexcept {
        switch (prog) {
            case Program::hlt:
            case Program::in:
            case Program::out:
            case Program::int3: return 1;
            case Program::vmmcall:
            case Program::stgi:
            case Program::clgi:
            case Program::vmload:
            case Program::vmsave:
            case Program::vmrun: return 3;
            case Program::div0: return 4;  // xor ecx, ecx; div ecx
            default: return 2;
        }
    }

    bool intercepted(const Vector& v, unsigned bit) const { return v.vmcb.intercept(bit); }

    /// The #VMEXIT at L2's current instruction; `insn_intercept` for an
    /// instruction intercept (nRIP is then the next instruction's address).
    void exit_with(Prediction& p, const L2& s, std::uint64_t code, std::optional<std::uint64_t> i1 = 0,
                   std::optional<std::uint64_t> i2 = 0, bool insn_intercept = false) const {
        p.status = Status::vmexit;
        p.exit_code = code;
        p.exit_info_1 = i1;
        p.exit_info_2 = i2;
        p.exit_int_info = 0;
        if (!s.known) return;
        p.rest_unchanged = true;
        p.guest_rip = s.rip;
        p.guest_rsp = s.rsp;
        p.guest_rflags = s.rflags;
        p.guest_rax = s.rax;
        // APM 15.7.1: with NRIPS, nRIP is the next instruction's address for
        // instruction intercepts. Bochs 2.7 writes it on every exit: the end
        // of the instruction it was executing (exceptions and #NPF included;
        // observed by nsvm diff). QEMU's TCG offers no NRIPS.
        if (profile_.nrip_on_every_exit && s.insn_len > 0)
            p.next_rip = s.rip + s.insn_len;
        else if (cpu_.has(checks::Feature::nrip_save) && insn_intercept && s.insn_len > 0)
            p.next_rip = s.rip + s.insn_len;
    }
    void unknown(Prediction& p, std::string why) const {
        p.status = Status::vmexit;
        p.path += (p.path.empty() ? "" : "; ") + std::move(why) + " (exit not predicted)";
    }

    /// An event delivered through L2's IDT to the image's stub (APM 8.9,
    /// 15.20): the frame is pushed on L2's stack (64-bit: aligned to 16, five
    /// qwords; 32-bit at CPL 0: three dwords; plus the error code), the gate
    /// clears TF, NT, RF and IF, and the stub runs "mov eax, vec; vmmcall".
    void deliver(L2& s, unsigned vec, bool error_code) const {
        const std::uint64_t flags_clear = arch::rflags::TF | arch::rflags::NT | arch::rflags::RF | arch::rflags::IF;
        if (s.code64)
            s.rsp = (s.rsp & ~std::uint64_t{0xF}) - 40 - (error_code ? 8 : 0);
        else
            s.rsp = s.rsp - 12 - (error_code ? 4 : 0);
        s.rflags &= ~flags_clear;
        s.rip = NSVM_OR_L2_STUBS_PA + 16ULL * vec + 5;  // the stub's VMMCALL
        s.insn_len = 3;
        s.rax = vec;
    }

    /// The VMMCALL at s.rip: intercepted -> #VMEXIT(VMMCALL); otherwise #UD.
    void vmmcall(const Vector& v, Prediction& p, L2& s, int depth) const {
        if (intercepted(v, ic::VMMCALL)) {
            exit_with(p, s, ec::VMMCALL, 0, 0, true);
            return;
        }
        // VMMCALL without its intercept is #UD (APM 15.23 / instruction reference).
        exception(v, p, s, 6, depth + 1);
    }

    /// An exception raised by L2 at s.rip (APM 15.12): intercepted ->
    /// #VMEXIT(0x40+vec) with RIP at the faulting instruction; otherwise
    /// delivered to the image's stub.
    void exception(const Vector& v, Prediction& p, L2& s, unsigned vec, int depth) const {
        if (intercepted(v, ic::exception(vec))) {
            p.path += fmt::format("; exception {} intercepted", vec);
            // #BP is a trap: where the intercept leaves RIP is not followed.
            if (vec == 3) s.known = false;
            exit_with(p, s, ec::EXCP_BASE + vec, 0, 0);
            return;
        }
        const auto idt = v.vmcb.get(FieldId::idtr_base);
        if (idt != NSVM_OR_L2_IDT64_PA && idt != NSVM_OR_L2_IDT32_PA) {
            unknown(p, fmt::format("exception {} goes to an L2 IDT the image did not build", vec));
            return;
        }
        p.path += fmt::format("; exception {} through the L2 IDT to the stub", vec);
        if (depth > 2) {
            unknown(p, "nested exceptions");
            return;
        }
        if (vec == 3) s.rip += 1;  // INT3 is a trap: the frame holds the next instruction
        deliver(s, vec, false);
        p.path += intercepted(v, ic::VMMCALL) ? "; stub VMMCALL intercepted" : "";
        vmmcall(v, p, s, depth);
    }

    void predict_l2(const Vector& v, Prediction& p) const {
        const auto ev = static_cast<std::uint32_t>(v.vmcb.get(FieldId::event_inj));
        // L2 must run on the image's own tables (layout.h) for its walks to be known.
        const auto cr0v = v.vmcb.get(FieldId::cr0);
        const auto cr3v = v.vmcb.get(FieldId::cr3) & ~std::uint64_t{0xFFF};
        if ((cr0v & arch::cr0::PG) && (cr0v & arch::cr0::PE) && cr3v != NSVM_OR_PML4_PA &&
            cr3v != (NSVM_OR_PAE_PDPT_PA & ~std::uint64_t{0xFFF}) && cr3v != NSVM_OR_PD32_PA) {
            unknown(p, "L2 paging uses tables the image did not build");
            return;
        }
        if ((v.vmcb.get(FieldId::misc_ctl) & arch::misc_ctl::NP_ENABLE) &&
            (cpu_.has(checks::Feature::npt) || profile_.np_without_feature == checks::NpWithoutFeature::honoured) &&
            v.vmcb.get(FieldId::nested_cr3) != NSVM_OR_NPT_PML4_PA) {
            unknown(p, "nested paging uses tables the image did not build");
            return;
        }
        // A VMCB whose EFER.LMA disagrees with LME && PG (APM 3.1.7) that the
        // profile lets through: QEMU runs L2 in that mixed state, Bochs
        // recomputes LMA (so 64-bit code runs in another mode). Neither is
        // architectural; the model does not guess L2's execution.
        const auto efer_v = v.vmcb.get(FieldId::efer);
        if (((efer_v & arch::efer::LMA) != 0) !=
            ((efer_v & arch::efer::LME) != 0 && (cr0v & arch::cr0::PG) != 0)) {
            unknown(p, "L2 runs with EFER.LMA inconsistent with EFER.LME and CR0.PG");
            return;
        }
        const auto cs = v.vmcb.segment(arch::Seg::cs);
        L2 s;
        s.code64 = (efer_v & arch::efer::LMA) && (cs.attrib & arch::seg_attr::L);
        const bool code32 = !s.code64 && (cs.attrib & arch::seg_attr::DB);
        s.rip = v.vmcb.get(FieldId::rip);
        s.rsp = v.vmcb.get(FieldId::rsp);
        s.rflags = v.vmcb.get(FieldId::rflags);
        s.rax = v.vmcb.get(FieldId::rax);
        if (!s.code64 && !code32) {
            // oracle/image/l2.S is 32/64-bit code; as 16-bit code (for example
            // CS.L = 1 with long mode inactive, CS.D = 0) it means other things.
            unknown(p, "L2's code segment is 16-bit; the image's programs are 32/64-bit code");
            return;
        }
        if (ev & arch::event::V) {
            // APM 15.20: the injected event is delivered through the L2 IDT
            // before the first instruction, bypassing the exception intercepts.
            const unsigned type = arch::event::type_of(ev);
            const unsigned vec = type == 2 ? 2U : (ev & arch::event::VECTOR);
            p.path = fmt::format("VMRUN succeeds; injected {} vector {}", arch::event::type_name(type), vec);
            const auto idt = v.vmcb.get(FieldId::idtr_base);
            if (idt != NSVM_OR_L2_IDT64_PA && idt != NSVM_OR_L2_IDT32_PA) {
                unknown(p, "the event goes to an L2 IDT the image did not build");
                return;
            }
            if (!intercepted(v, ic::VMMCALL)) {
                unknown(p, "the stub's VMMCALL is not intercepted");
                return;
            }
            // Software interrupts (TYPE 4) push the address after an INTn the
            // guest never executed: where RIP points is not followed.
            if (type == 4) s.known = false;
            deliver(s, vec, type == 3 && (ev & arch::event::EV) != 0);
            p.path += "; stub VMMCALL intercepted";
            exit_with(p, s, ec::VMMCALL, 0, 0, true);
            return;
        }
        if (v.vmcb.get(FieldId::int_ctl) & (arch::int_ctl::V_IRQ | arch::int_ctl::V_NMI_PENDING)) {
            unknown(p, "a virtual interrupt is pending");
            return;
        }
        if (v.vmcb.get(FieldId::rip) != program_entry(v.program)) {
            unknown(p, "save.rip is not the program's entry");
            return;
        }
        p.path = fmt::format("VMRUN succeeds; L2 runs {}", program_name(v.program));
        const std::uint64_t entry = program_entry(v.program);
        const unsigned len = insn_length(v.program);
        s.insn_len = len;
        const auto next = [&] {
            p.path += "; then VMMCALL";
            s.rip = entry + len;
            s.insn_len = 3;
            vmmcall(v, p, s, 0);
        };
        // An instruction intercept at the program's instruction (RIP = entry).
        const auto simple = [&](unsigned bit, std::uint64_t code) {
            if (intercepted(v, bit)) {
                exit_with(p, s, code, 0, 0, true);
            } else {
                next();
            }
        };
        const auto rcx = v.regs[1];
        const auto rdx = v.regs[2];
        switch (v.program) {
            case Program::vmmcall: vmmcall(v, p, s, 0); return;
            case Program::hlt:
                if (intercepted(v, ic::HLT)) {
                    exit_with(p, s, ec::HLT, 0, 0, true);
                } else {
                    p.status = Status::cannot_run;
                    p.path += "; HLT without its intercept halts L2 for good";
                }
                return;
            case Program::cpuid:
                if (!intercepted(v, ic::CPUID)) s.rax.reset();  // CPUID's results are the emulator's
                simple(ic::CPUID, ec::CPUID);
                return;
            case Program::rdmsr:
            case Program::wrmsr: {
                const bool write = v.program == Program::wrmsr;
                const auto msr = static_cast<std::uint32_t>(rcx);
                if (intercepted(v, ic::MSR_PROT)) {
                    // APM 15.11: MSRs outside the three ranges are always intercepted.
                    const auto pos = msrpm_position(msr);
                    bool hit = !pos.has_value();
                    if (pos && (v.vmcb.get(FieldId::msrpm_base_pa) & ~std::uint64_t{0xFFF}) != NSVM_OR_MSRPM_PA) {
                        unknown(p, "the MSRPM is not the image's map");
                        return;
                    }
                    for (const auto& m : v.msrpm)
                        if (m.msr == msr && (write ? m.write : m.read)) hit = true;
                    if (hit) {
                        exit_with(p, s, ec::MSR, write ? 1 : 0, 0, true);
                        return;
                    }
                }
                unknown(p, fmt::format("{} of MSR {:#x} reaches the emulator's MSR", write ? "WRMSR" : "RDMSR", msr));
                return;
            }
            case Program::in:
            case Program::out: {
                const auto port = static_cast<std::uint16_t>(rdx);
                if (intercepted(v, ic::IOIO_PROT)) {
                    if ((v.vmcb.get(FieldId::iopm_base_pa) & ~std::uint64_t{0xFFF}) != NSVM_OR_IOPM_PA) {
                        unknown(p, "the IOPM is not the image's map");
                        return;
                    }
                    bool hit = false;
                    for (auto q : v.iopm) hit |= q == port;
                    if (hit) {
                        // APM 15.10.2 Figure 15-2: port, size, address size, type.
                        std::uint64_t info = std::uint64_t{port} << 16 | (1U << 4);
                        info |= s.code64 ? (1U << 9) : code32 ? (1U << 8) : (1U << 7);
                        if (v.program == Program::in) info |= 1;
                        exit_with(p, s, ec::IOIO, info, entry + len, true);
                        return;
                    }
                }
                unknown(p, fmt::format("port {:#x} is not intercepted", port));
                return;
            }
            case Program::ud2: exception(v, p, s, 6, 0); return;
            case Program::int3: exception(v, p, s, 3, 0); return;
            case Program::div0:
                // xor ecx, ecx (ZF and PF set, the rest of the arithmetic flags
                // clear), then div ecx faults at entry + 2 (APM vol. 3).
                s.rflags = (s.rflags & ~std::uint64_t{0x8D5}) | 0x44;
                s.rip = entry + 2;
                s.insn_len = 2;
                exception(v, p, s, 0, 0);
                return;
            case Program::load:
            case Program::store: {
                const auto gpa = v.regs[3];
                const bool np = (v.vmcb.get(FieldId::misc_ctl) & arch::misc_ctl::NP_ENABLE) &&
                                (cpu_.has(checks::Feature::npt) ||
                                 profile_.np_without_feature == checks::NpWithoutFeature::honoured);
                if (np && gpa >= (std::uint64_t{1} << 30)) {
                    // layout.h: the nested tables map only the first 1 GiB.
                    exit_with(p, s, ec::NPF, std::nullopt, gpa);
                    p.path += "; the access misses the nested page table";
                    return;
                }
                if (v.program == Program::load) s.rax.reset();  // whatever memory held
                next();
                return;
            }
            case Program::stgi: simple(ic::STGI, ec::STGI); return;
            case Program::clgi: simple(ic::CLGI, ec::CLGI); return;
            case Program::vmload: simple(ic::VMLOAD, ec::VMLOAD); return;
            case Program::vmsave: simple(ic::VMSAVE, ec::VMSAVE); return;
            case Program::vmrun: simple(ic::VMRUN, ec::VMRUN); return;
            case Program::rdtsc:
                if (!intercepted(v, ic::RDTSC)) s.rax.reset();
                simple(ic::RDTSC, ec::RDTSC);
                return;
            case Program::pause:
                if (intercepted(v, ic::PAUSE) && cpu_.has(checks::Feature::pausefilter) &&
                    v.vmcb.get(FieldId::pause_filter_count) != 0) {
                    unknown(p, "PAUSE filter count is not zero");
                    return;
                }
                simple(ic::PAUSE, ec::PAUSE);
                return;
            case Program::invd: simple(ic::INVD, ec::INVD); return;
            case Program::wbinvd: simple(ic::WBINVD, ec::WBINVD); return;
        }
    }

    checks::CpuModel cpu_;
    const checks::Profile& profile_;
};

}  // namespace

std::unique_ptr<Model> make_checks_model(checks::CpuModel cpu, const checks::Profile& profile) {
    return std::make_unique<ChecksModel>(std::move(cpu), profile);
}

}  // namespace nsvm::oracle
