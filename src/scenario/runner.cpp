// Running a scenario: applies each step to nested::Vcpu, prints what ran,
// what exited and why, and what changed (field diffs), and checks the
// expectations and (optionally) the invariants after every step.
#include <algorithm>
#include <array>
#include <ostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/scenario/scenario.hpp"

namespace nsvm::scenario {
namespace {
using arch::FieldId;
using nested::Outcome;

std::string hex(std::uint64_t v) { return fmt::format("{:#x}", v); }

std::string byte_size(std::uint64_t bytes) {
    return bytes % (1U << 20) == 0 ? fmt::format("{} MiB", bytes >> 20) : fmt::format("{} KiB", bytes >> 10);
}

std::string exit_name(std::uint64_t code) {
    const auto d = arch::exit_code::describe(code);
    return fmt::format("{} ({:#x})", d.name, code);
}

struct Diff {
    std::string field;
    std::uint64_t before, after;
};

std::vector<Diff> diff(const arch::Vmcb& a, const arch::Vmcb& b, std::string_view prefix) {
    std::vector<Diff> out;
    for (const auto& f : arch::kFields) {
        if (f.kind != arch::FieldKind::integer) continue;
        const auto x = a.get(f.id), y = b.get(f.id);
        if (x != y) out.push_back(Diff{fmt::format("{}{}", prefix, f.name), x, y});
    }
    return out;
}

struct Snapshot {
    arch::Vmcb vmcb12, vmcb01;
    bool vmcb12_ok = false;
    bool gif = false;
    nested::Mode mode = nested::Mode::l1;
    bool smm = false;
    std::uint32_t pending = 0;  ///< events held for L1 (GIF / IF)
    std::uint64_t rdx = 0, rcx = 0;  ///< the processor's (in no VMCB)
};

Snapshot snap(nested::Vcpu& v, std::uint64_t vmcb12_gpa) {
    Snapshot s;
    s.vmcb12_ok = v.memory().peek_vmcb(vmcb12_gpa, s.vmcb12);
    s.vmcb01 = v.vmcb01();
    s.gif = v.gif();
    s.mode = v.mode();
    s.smm = v.smm();
    s.pending = v.pending_events();
    s.rdx = v.hardware().regs().rdx;
    s.rcx = v.hardware().regs().rcx;
    return s;
}

std::string describe_step(const Step& st) {
    switch (st.kind) {
        case StepKind::l1:
            if (st.what == "wrmsr") return fmt::format("L1 WRMSR {:#x} <- {:#x}", st.msr, st.value);
            if (st.what == "rdmsr") return fmt::format("L1 RDMSR {:#x}", st.msr);
            return fmt::format("L1 executes {}", st.what);
        case StepKind::l2: {
            const auto& e = st.event;
            switch (e.kind) {
                case cpu::EventKind::rdmsr:
                case cpu::EventKind::wrmsr: return fmt::format("L2 {} {:#x}", st.what, e.index);
                case cpu::EventKind::io:
                    return fmt::format("L2 {}{} port {:#x} size {}", e.in ? "IN" : "OUT", e.string ? "S" : "", e.index, e.size);
                case cpu::EventKind::memory:
                    return fmt::format("L2 {} at {} {:#x}", e.access.fetch ? "fetch" : e.access.write ? "write" : "read",
                                       e.linear ? "LA" : "GPA", e.value);
                case cpu::EventKind::exception: return fmt::format("L2 raises exception {}", e.index);
                case cpu::EventKind::cr_write:
                case cpu::EventKind::dr_write: return fmt::format("L2 {} {} <- {:#x}", st.what, e.index, e.value);
                case cpu::EventKind::cr_read:
                case cpu::EventKind::dr_read: return fmt::format("L2 {} {}", st.what, e.index);
                default: return fmt::format("L2 executes {}", st.what);
            }
        }
        case StepKind::external: return fmt::format("external {} arrives", st.what);
        case StepKind::save_restore:
            return st.kvm_layout ? "nested state in KVM's layout (kvm_nested_state + registers): save -> restore"
                                 : "nested state: save -> restore";
        case StepKind::write: return fmt::format("guest memory write: [{:#x}] <- {:#x} ({} bytes)", st.gpa, st.value, st.width);
        case StepKind::host_efer: return fmt::format("host-initiated EFER write {:#x}", st.value);
        case StepKind::restore_blob_edit: return "check";
        case StepKind::restore_kvm_state:
            return fmt::format("KVM_SET_NESTED_STATE from {} ({} bytes), with the vCPU's registers", st.what, st.blob.size());
    }
    return "?";
}

std::string outcome_line(const nested::StepResult& r, const nested::Vcpu& v) {
    std::string s;
    switch (r.outcome) {
        case Outcome::vmrun_failed:
            s = fmt::format("VMRUN failed: {}", nested::fail_reason_name(r.reason));
            if (r.failed_check) s += fmt::format(" [{}: {} (APM {})]", r.failed_check->id, r.failed_check->message, r.failed_check->apm);
            s += fmt::format(" -> #VMEXIT({}) to L1", exit_name(r.exit_code));
            break;
        case Outcome::entered_l2: s = fmt::format("VMRUN: vmcb12 {:#x} checked, vmcb02 committed, L2 runs", v.vmcb12_gpa()); break;
        case Outcome::vmexit_to_l1:
            s = fmt::format("#VMEXIT({}) to L1, exit_info_1 {:#x}, exit_info_2 {:#x}", exit_name(r.exit_code), r.exit_info_1, r.exit_info_2);
            break;
        case Outcome::handled_by_l0:
            s = r.exit_code != 0 ? fmt::format("exit {} handled by L0", exit_name(r.exit_code)) : "handled by L0";
            break;
        case Outcome::exception: s = fmt::format("exception vector {} delivered", r.vector); break;
        case Outcome::interrupt: s = fmt::format("interrupt vector {:#x} taken by L2", r.vector); break;
        default: s = std::string(nested::outcome_name(r.outcome)); break;
    }
    if (r.note && *r.note) s += fmt::format(" ({})", r.note);
    return s;
}

struct Checker {
    const Scenario& s;
    nested::Vcpu& v;
    const nested::StepResult& r;
    std::string restore_error;

    /// What the run gave for `e` when it differs from what `e` wants;
    /// nullopt when the expectation holds.
    [[nodiscard]] std::optional<std::string> check(const Expectation& e) const {
        auto mismatch = [](const std::string& got) -> std::optional<std::string> { return got; };
        auto num = [&](std::uint64_t got) -> std::optional<std::string> {
            if ((got & e.mask) == (e.value & e.mask)) return std::nullopt;
            return mismatch(e.mask == ~std::uint64_t{0} ? hex(got)
                                                       : fmt::format("{} ({} under the mask)", hex(got), hex(got & e.mask)));
        };
        if (e.key == "outcome") {
            if (nested::outcome_name(r.outcome) == e.text) return std::nullopt;
            return mismatch(std::string(nested::outcome_name(r.outcome)));
        }
        if (e.key == "exit_code") {
            if (r.exit_code == e.value) return std::nullopt;
            return mismatch(exit_name(r.exit_code));
        }
        if (e.key == "exit_info_1") return num(r.exit_info_1);
        if (e.key == "exit_info_2") return num(r.exit_info_2);
        if (e.key == "vector") return num(r.vector);
        if (e.key == "gif") return num(v.gif() ? 1 : 0);
        if (e.key == "smm") return num(v.smm() ? 1 : 0);
        if (e.key == "pending_db") return num(v.pending_db_for_l1() ? 1 : 0);
        // RDX and RCX are the processor's (what RDTSC/RDTSCP write; no VMCB
        // holds them, and the #VMEXIT to L1 leaves what L2 put there).
        if (e.key == "rdx") return num(v.hardware().regs().rdx);
        if (e.key == "rcx") return num(v.hardware().regs().rcx);
        if (e.key == "pending") {
            if (v.pending_events() == e.value) return std::nullopt;
            std::string names;
            for (auto k : {cpu::EventKind::intr, cpu::EventKind::nmi, cpu::EventKind::smi, cpu::EventKind::init})
                if ((v.pending_events() >> static_cast<unsigned>(k)) & 1)
                    names += (names.empty() ? "" : ", ") + std::string(cpu::event_name(k));
            return mismatch(names.empty() ? "none" : names);
        }
        if (e.key == "vmcb12_reads") return num(v.vmcb12_reads_last_vmrun());
        if (e.key == "mem") {
            std::uint64_t value = 0;
            if (!v.memory().read_le(e.gpa, e.width, value))
                return mismatch(fmt::format("memory at {} not backed", hex(e.gpa)));
            return num(value);
        }
        if (e.key == "mode") {
            if (nested::mode_name(v.mode()) == e.text) return std::nullopt;
            return mismatch(std::string(nested::mode_name(v.mode())));
        }
        if (e.key == "owner") {
            const char* o = r.owner == nested::Owner::l0 ? "l0" : r.owner == nested::Owner::l1 ? "l1" : "none";
            if (e.text == o) return std::nullopt;
            return mismatch(o);
        }
        if (e.key == "reason") {
            if (nested::fail_reason_name(r.reason) == e.text) return std::nullopt;
            return mismatch(std::string(nested::fail_reason_name(r.reason)));
        }
        if (e.key == "check") {
            const std::string got = r.failed_check ? std::string(r.failed_check->id) : "none";
            if (got == e.text) return std::nullopt;
            return mismatch(got);
        }
        if (e.key == "restore_error") {
            if (restore_error.find(e.text) != std::string::npos && !(restore_error.empty() && !e.text.empty()))
                return std::nullopt;
            return mismatch(restore_error.empty() ? "no error" : restore_error);
        }
        // A field: vmcb12 unless prefixed.
        std::string field = e.key;
        const arch::Vmcb* src = nullptr;
        arch::Vmcb vmcb12;
        if (field.rfind("vmcb02.", 0) == 0) {
            src = &v.vmcb02();
            field = field.substr(7);
        } else if (field.rfind("vmcb01.", 0) == 0) {
            src = &v.vmcb01();
            field = field.substr(7);
        } else {
            if (field.rfind("vmcb12.", 0) == 0) field = field.substr(7);
            if (!v.memory().peek_vmcb(v.vmcb12_gpa(), vmcb12)) return mismatch("vmcb12 not readable");
            src = &vmcb12;
        }
        const auto id = arch::find_field(field);
        return num(src->get(*id));
    }
};

}  // namespace

namespace {

/// One JSON line of the trace; invalid UTF-8 in strings (a scenario's own
/// names) is replaced rather than thrown on.
void print_json_line(std::ostream& out, const nlohmann::json& j) {
    out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

RunResult run_steps(Scenario& s, const RunOptions& opts, std::ostream& out) {
    RunResult rr;
    nested::Vcpu v(s.cpu, *s.profile, s.memory, s.l0, s.options);
    for (const auto& [f, val] : s.l1_fields) v.vmcb01().set(f, val);
    if (s.l1_gif) v.set_gif(*s.l1_gif);
    v.set_vm_hsave_pa(s.hsave_pa);
    if (s.smbase) v.set_smbase(*s.smbase);
    if (s.host_tsc) v.set_host_tsc(*s.host_tsc);
    if (opts.keep_kvm_state) rr.kvm_state = v.save_kvm_nested_state();

    if (!opts.json) {
        out << fmt::format("scenario {} ({}): cpu {}, profile {}{}\n", s.name, s.file, s.cpu.name, s.profile->name,
                           s.options.pre_fix_gif_bug ? ", option pre_fix_gif_bug" : "");
        if (!s.description.empty()) out << "  " << s.description << "\n";
        out << fmt::format("  start: L1 runs, GIF {}, rip {:#x}, rax {:#x}{}\n", v.gif() ? 1 : 0,
                           v.vmcb01().get(FieldId::rip), v.vmcb01().get(FieldId::rax),
                           s.host_tsc ? fmt::format(", host TSC {:#x}", *s.host_tsc) : "");
    }

    for (std::size_t i = 0; i < s.steps.size(); ++i) {
        const Step& st = s.steps[i];
        if (st.kind == StepKind::l1 && v.mode() == nested::Mode::l2) {
            // An `l1:` step means "L1 executes this", and while L2 runs L1
            // executes nothing: the scenario is wrong, not the model (the
            // engine would report a #UD that no processor delivers).
            rr.status = 2;
            rr.message = fmt::format("{}:{}: step {}: an L1 instruction ({}) while L2 runs; add a step that exits to L1 first",
                                     s.file, st.line, i + 1, st.what);
            return rr;
        }
        const std::uint64_t gpa12 = st.kind == StepKind::l1 && st.what == "vmrun" ? v.vmcb01().get(FieldId::rax) : v.vmcb12_gpa();
        const Snapshot before = snap(v, gpa12);
        nested::StepResult r;
        std::string restore_error;
        v.memory().watch(gpa12);
        switch (st.kind) {
            case StepKind::l1:
                if (st.l1 != nullptr) r = (v.*st.l1->run)();
                else if (st.what == "wrmsr") r = v.l1_wrmsr(st.msr, st.value);
                else if (st.what == "rdmsr") {
                    std::uint64_t val = 0;
                    r = v.l1_rdmsr(st.msr, val);
                    r.exit_info_1 = val;
                }
                break;
            case StepKind::l2: r = v.l2_event(st.event); break;
            case StepKind::external: r = v.external(st.event.kind); break;
            case StepKind::save_restore: {
                // KVM's layout carries L2's registers beside the blob, as
                // KVM_GET_SREGS/REGS do; the native blob holds them.
                const arch::Vmcb regs = v.current_registers();
                auto save = [&] { return st.kvm_layout ? v.save_kvm_nested_state() : v.save_state(); };
                const auto blob = save();
                auto ok = st.kvm_layout ? v.restore_kvm_nested_state(blob, regs) : v.restore_state(blob);
                if (!ok) restore_error = ok.error();
                r.outcome = Outcome::restored;
                if (ok && save() != blob) restore_error = "save -> restore -> save changed the blob";
                r.note = "";
                break;
            }
            case StepKind::write: {
                if (!v.memory().write_le(st.gpa, st.width, st.value) &&
                    !v.memory().budget_exhausted()) {
                    rr.status = 2;
                    rr.message = fmt::format("{}:{}: write to unbacked guest memory {:#x}", s.file, st.line, st.gpa);
                    return rr;
                }
                r.outcome = v.mode() == nested::Mode::l2 ? Outcome::no_exit : Outcome::l1_continues;
                break;
            }
            case StepKind::restore_kvm_state: {
                const arch::Vmcb regs = v.current_registers();
                if (auto ok = v.restore_kvm_nested_state(st.blob, regs); !ok) restore_error = ok.error();
                r.outcome = Outcome::restored;
                break;
            }
            case StepKind::host_efer: r = v.host_set_efer(st.value); break;
            case StepKind::restore_blob_edit: r.outcome = v.mode() == nested::Mode::l2 ? Outcome::no_exit : Outcome::l1_continues; break;
        }
        ++rr.steps_run;
        if (opts.keep_kvm_state) rr.kvm_state = v.save_kvm_nested_state();
        if (v.memory().budget_exhausted()) {
            // A store (the step's own, or one the model made for it: a
            // #VMEXIT write-back, SMRAM, HSAVE) would have stored a page
            // beyond the budget. What the model did with the failed store is
            // not a result: the run ends here.
            rr.status = 2;
            rr.message = fmt::format("{}:{}: step {}: guest memory budget exhausted: a store to {:#x} would keep more "
                                     "than {} of written pages (docs/scenarios.md, \"Memory budget\")",
                                     s.file, st.line, i + 1, v.memory().budget_refused_gpa(), byte_size(v.memory().budget()));
            if (!opts.json) out << "  !! " << rr.message << "\n";
            return rr;
        }
        const Snapshot after = snap(v, st.kind == StepKind::l1 && st.what == "vmrun" ? gpa12 : v.vmcb12_gpa());
        std::vector<Diff> diffs;
        if (before.vmcb12_ok && after.vmcb12_ok && gpa12 == v.vmcb12_gpa()) diffs = diff(before.vmcb12, after.vmcb12, "vmcb12.");
        // The processor's RDX and RCX, which no VMCB shows (RDTSC, RDTSCP).
        if (before.rdx != after.rdx) diffs.push_back(Diff{"rdx", before.rdx, after.rdx});
        if (before.rcx != after.rcx) diffs.push_back(Diff{"rcx", before.rcx, after.rcx});

        nlohmann::json j;
        if (opts.json) {
            j["step"] = i + 1;
            j["line"] = st.line;
            if (!st.label.empty()) j["name"] = st.label;
            j["action"] = describe_step(st);
            j["outcome"] = nested::outcome_name(r.outcome);
            j["owner"] = r.owner == nested::Owner::l0 ? "l0" : r.owner == nested::Owner::l1 ? "l1" : "none";
            if (r.exit_code != 0 || r.outcome == Outcome::vmexit_to_l1 || r.outcome == Outcome::vmrun_failed) {
                j["exit_code"] = fmt::format("{:#x}", r.exit_code);
                j["exit_name"] = arch::exit_code::describe(r.exit_code).name;
                j["exit_info_1"] = hex(r.exit_info_1);
                j["exit_info_2"] = hex(r.exit_info_2);
            }
            if (r.outcome == Outcome::exception || r.outcome == Outcome::interrupt) j["vector"] = r.vector;
            if (r.outcome == Outcome::vmrun_failed) j["reason"] = nested::fail_reason_name(r.reason);
            if (r.failed_check) j["check"] = r.failed_check->id;
            if (r.note && *r.note) j["note"] = r.note;
            if (!restore_error.empty()) j["restore_error"] = restore_error;
            j["gif"] = v.gif() ? 1 : 0;
            j["mode"] = nested::mode_name(v.mode());
            j["smm"] = v.smm() ? 1 : 0;
            nlohmann::json d = nlohmann::json::array();
            for (const auto& x : diffs) d.push_back({{"field", x.field}, {"before", hex(x.before)}, {"after", hex(x.after)}});
            j["changes"] = d;
        } else {
            out << fmt::format("step {}{} (line {}): {}\n", i + 1, st.label.empty() ? "" : " [" + st.label + "]", st.line,
                               describe_step(st));
            // A refused restore changed nothing: its reason is the outcome.
            if (restore_error.empty()) out << "  -> " << outcome_line(r, v) << "\n";
            else out << "  -> restore refused: " << restore_error << "\n";
            if (before.gif != v.gif()) out << fmt::format("     GIF {} -> {}\n", before.gif ? 1 : 0, v.gif() ? 1 : 0);
            if (before.mode != v.mode()) out << fmt::format("     mode {} -> {}\n", nested::mode_name(before.mode), nested::mode_name(v.mode()));
            if (before.smm != v.smm()) out << fmt::format("     SMM {} -> {}\n", before.smm ? 1 : 0, v.smm() ? 1 : 0);
            for (const auto& x : diffs) out << fmt::format("     {}: {:#x} -> {:#x}\n", x.field, x.before, x.after);
        }

        if (opts.check_invariants) {
            const char* bad = v.check_invariants();
            std::string why = bad ? bad : "";
            // The hardware-check invariant names the check vmcb02 fails.
            if (const checks::Check* c = v.vmcb02_hardware_failure(); c != nullptr && why.starts_with("vmcb02 fails"))
                why += fmt::format(": {} ({}, APM {})", c->id, c->message, c->apm);
            // A VMRUN that got past its gates read vmcb12 once; one refused
            // at the gates (an exception, or a shut-down vCPU) read nothing.
            const bool vmrun_ran = st.kind == StepKind::l1 && st.what == "vmrun" && r.outcome != Outcome::exception &&
                                   before.mode != nested::Mode::shutdown;
            if (why.empty() && vmrun_ran && v.vmcb12_reads_last_vmrun() != 1)
                why = fmt::format("vmcb12 read {} times during VMRUN (must be once)", v.vmcb12_reads_last_vmrun());
            const bool gif_exempt = s.options.pre_fix_gif_bug && r.reason == nested::FailReason::consistency_check;
            if (why.empty() && (r.outcome == Outcome::vmexit_to_l1 || r.outcome == Outcome::vmrun_failed) && v.gif() &&
                !gif_exempt)
                why = "GIF = 1 after a #VMEXIT to L1";
            if (why.empty() && r.outcome == Outcome::vmrun_failed) {
                // A failed VMRUN changes nothing in L1 but RIP (past VMRUN) and what the profile allows.
                arch::Vmcb a = before.vmcb01, b = v.vmcb01();
                for (FieldId f : {FieldId::rip, FieldId::dr7, FieldId::exit_int_info}) {
                    a.set(f, 0);
                    b.set(f, 0);
                }
                // GIF (checked above) is vmcb01's V_GIF under vGIF, and the
                // STGI intercept its NMI/SMI window.
                for (arch::Vmcb* x : {&a, &b}) {
                    x->set(FieldId::int_ctl, x->get(FieldId::int_ctl) & ~arch::int_ctl::V_GIF);
                    x->set_intercept(arch::intercept::STGI, false);
                }
                if (!(a == b)) why = "a failed VMRUN changed L1's state";
                // Events held for L1 are L1's too: a failed VMRUN keeps them (GIF stays 0).
                else if ((before.pending & ~v.pending_events()) != 0)
                    why = "a failed VMRUN dropped L1's pending events";
            }
            if (opts.json) j["invariants"] = why.empty() ? "hold" : why;
            if (!why.empty()) {
                rr.status = 1;
                rr.message = fmt::format("{}:{}: invariant violated after step {}: {}", s.file, st.line, i + 1, why);
                if (opts.json) print_json_line(out, j);
                else out << "  !! " << rr.message << "\n";
                return rr;
            }
        }

        Checker c{s, v, r, restore_error};
        const bool restores = st.kind == StepKind::save_restore || st.kind == StepKind::restore_kvm_state;
        if (restores && restore_error.empty() && st.expect.empty()) {
            // nothing to compare; the round trip itself was checked above
        } else if (restores && !restore_error.empty()) {
            bool expected_error = false;
            for (const auto& e : st.expect) expected_error |= e.key == "restore_error";
            if (!expected_error) {
                rr.status = 1;
                rr.message = fmt::format("{}:{}: nested state restore failed: {}", s.file, st.line, restore_error);
                if (opts.json) print_json_line(out, j);
                return rr;
            }
        }
        nlohmann::json expectations = nlohmann::json::array();
        for (const auto& e : st.expect) {
            const auto got = c.check(e);
            if (opts.json) {
                expectations.push_back({{"key", e.key}, {"line", e.line}, {"wanted", e.text},
                                        {"holds", !got.has_value()}});
                if (got) expectations.back()["got"] = *got;
            }
            if (got) {
                rr.status = 1;
                rr.message = fmt::format("{}:{}: expect {}: wanted {}, got {}", s.file, e.line, e.key, e.text, *got);
                if (!opts.json) out << "  FAIL " << rr.message << "\n";
                break;
            }
            if (!opts.json) out << fmt::format("     ok: {} = {}\n", e.key, e.text);
        }
        if (opts.json) {
            j["expect"] = std::move(expectations);
            print_json_line(out, j);
        }
        if (rr.status != 0) return rr;
    }
    if (!opts.json) out << fmt::format("all {} steps ran; every expectation holds\n", rr.steps_run);
    return rr;
}

}  // namespace

RunResult run(Scenario& s, const RunOptions& opts, std::ostream& out) {
    RunResult rr = run_steps(s, opts, out);
    if (opts.json) {
        // The last line says how the run ended, so a consumer of the JSON
        // lines needs neither the exit status nor stderr.
        static constexpr std::array<const char*, 3> kStatus = {"pass", "fail", "bad_input"};
        nlohmann::json summary = {{"scenario", s.name}, {"file", s.file}, {"steps", s.steps.size()},
                                  {"steps_run", rr.steps_run},
                                  {"status", kStatus[static_cast<std::size_t>(std::clamp(rr.status, 0, 2))]}};
        if (!rr.message.empty()) summary["message"] = rr.message;
        print_json_line(out, nlohmann::json{{"summary", std::move(summary)}});
    }
    return rr;
}

}  // namespace nsvm::scenario
