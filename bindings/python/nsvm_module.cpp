// The Python module `nsvm`: the C API's operations with Python types.
// Vmcb (fields by name, check, repair), Machine (the nested engine), and
// nsvm.InputError carrying the file, line and field of bad input.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <fstream>
#include <sstream>
#include <string>

#include "nsvm/checks/evaluate.hpp"
#include "nsvm/cpu/events.hpp"
#include "nsvm/cpu/memory.hpp"
#include "nsvm/formats/vmcb_io.hpp"
#include "nsvm/nested/vcpu.hpp"
#include "nsvm/repair/repair.hpp"
#include "nsvm/version.h"

namespace py = pybind11;
using namespace nsvm;

namespace {

/// nsvm.InputError (a ValueError); a leaked reference, alive as long as the
/// interpreter, so nothing is released after it is gone.
py::handle g_input_error;

[[noreturn]] void raise_input_error(const formats::Diagnostic& d) {
    py::object e = py::reinterpret_borrow<py::object>(g_input_error)(formats::to_string(d));
    e.attr("file") = d.file;
    e.attr("line") = d.line;
    e.attr("field") = d.field;
    e.attr("message") = d.message;
    PyErr_SetObject(g_input_error.ptr(), e.ptr());
    throw py::error_already_set();
}

struct Model {
    checks::CpuModel cpu;
    const checks::Profile* profile;
};

Model resolve(const std::string& cpu, const std::string& profile) {
    auto m = checks::find_builtin_model(cpu);
    if (!m) throw py::value_error(m.error());
    auto p = checks::find_profile(profile);
    if (!p) throw py::value_error(p.error());
    return Model{std::move(*m), &checks::profile(*p)};
}

arch::FieldId field_id(const std::string& name) {
    const auto id = arch::find_field(name);
    if (!id) throw py::key_error("unknown VMCB field '" + name + "'");
    if (arch::info(*id).kind != arch::FieldKind::integer)
        throw py::key_error("field '" + name + "' is a byte run, not a number");
    return *id;
}

/// A VMCB as Python sees it: the page plus what reading it told.
struct PyVmcb {
    PyVmcb() = default;
    explicit PyVmcb(const arch::Vmcb& v) : vmcb(v) {}

    arch::Vmcb vmcb;
    std::string format = "raw";
    std::optional<checks::HostState> host;
    std::vector<std::string> warnings;
    std::vector<bool> given;  ///< fields the input gave; empty: all
    bool partial = false;     ///< a QEMU register dump: checks on fields not given are not decided

    [[nodiscard]] checks::Context context(const Model& m) const {
        return checks::Context{vmcb, m.cpu, *m.profile, host ? &*host : nullptr, nullptr};
    }
};

PyVmcb read_bytes(std::span<const std::uint8_t> data, const std::string& format, const std::string& source) {
    const auto f = formats::parse_format(format);
    if (!f) throw py::value_error("unknown format '" + format + "' (auto, raw, json, kvm-dump, xen-dump, qemu-dump)");
    auto in = formats::read_vmcb(data, *f, source);
    if (!in) raise_input_error(in.error());
    PyVmcb v(in->vmcb);
    v.format = std::string(formats::format_name(in->format));
    v.host = in->host;
    v.given = in->given;
    v.partial = in->partial;
    for (const auto& w : in->warnings) v.warnings.push_back(formats::to_string(w));
    return v;
}

PyVmcb read_any(const py::object& data, const std::string& format, const std::string& source) {
    std::string bytes;
    if (py::isinstance<py::str>(data)) {
        bytes = data.cast<std::string>();
    } else if (py::isinstance<py::bytes>(data) || py::isinstance<py::bytearray>(data)) {
        bytes = py::bytes(data).cast<std::string>();
    } else {
        throw py::type_error("Vmcb.read takes str, bytes or bytearray");
    }
    return read_bytes(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()), format, source);
}

PyVmcb read_file(const std::string& path, const std::string& format) {
    std::ifstream in(path, std::ios::binary);
    if (!in) raise_input_error(formats::Diagnostic{path, 0, "", "cannot open the file"});
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string data = ss.str();
    return read_bytes(std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()), format, path);
}

py::list check(const PyVmcb& v, const std::string& cpu, const std::string& profile) {
    const Model m = resolve(cpu, profile);
    // Partial input: a check on fields the input does not give is not
    // decided, so it is not among the failures (Vmcb.partial says so).
    const auto report = v.partial ? checks::evaluate_partial(v.context(m), v.given) : checks::evaluate(v.context(m));
    py::list out;
    for (const auto& f : report.failures) {
        py::list fields;
        for (const auto field : f.check->fields) fields.append(std::string(field));
        py::dict d;
        d["id"] = std::string(f.check->id);
        d["apm"] = std::string(f.check->apm);
        d["fields"] = fields;
        d["message"] = std::string(f.check->message);
        d["hint"] = std::string(f.check->hint);
        d["detail"] = f.detail;
        out.append(d);
    }
    return out;
}

py::dict repair(const PyVmcb& v, const std::string& cpu, const std::string& profile) {
    const Model m = resolve(cpu, profile);
    const auto r = repair::repair(v.vmcb, m.cpu, *m.profile, v.host ? &*v.host : nullptr);
    py::list changes;
    for (const auto& c : r.changes) {
        py::dict d;
        d["field"] = c.field;
        d["old"] = c.old_value;
        d["new"] = c.new_value;
        d["check"] = c.check_id;
        changes.append(d);
    }
    PyVmcb fixed = v;
    fixed.vmcb = r.vmcb;
    py::dict out;
    out["vmcb"] = fixed;
    out["valid"] = r.valid();
    out["changes"] = changes;
    out["unrepaired"] = r.unrepaired;
    return out;
}

/// One vCPU of the nested engine with its guest memory (L0's default
/// configuration, KVM's).
struct Machine {
    Machine(const std::string& cpu_name, const std::string& profile_name)
        : model(resolve(cpu_name, profile_name)), memory(model.cpu.maxphyaddr),
          vcpu(model.cpu, *model.profile, memory, nested::L0Config::kvm_default()) {}
    Model model;  ///< the Vcpu keeps pointers into it: declared first
    cpu::GuestMemory memory;
    nested::Vcpu vcpu;
};

py::dict step_dict(const nested::StepResult& r) {
    py::dict d;
    d["outcome"] = std::string(nested::outcome_name(r.outcome));
    d["exit_code"] = r.exit_code;
    d["exit_info_1"] = r.exit_info_1;
    d["exit_info_2"] = r.exit_info_2;
    d["failed_check"] = r.failed_check ? py::cast(std::string(r.failed_check->id)) : py::none();
    d["note"] = std::string(r.note ? r.note : "");
    d["vector"] = r.vector;
    return d;
}

py::dict l1(Machine& m, const std::string& insn) {
    if (m.vcpu.mode() != nested::Mode::l1) throw py::value_error("L1 instructions run only while L1 runs");
    auto& v = m.vcpu;
    if (insn == "vmrun") return step_dict(v.l1_vmrun());
    if (insn == "vmload") return step_dict(v.l1_vmload());
    if (insn == "vmsave") return step_dict(v.l1_vmsave());
    if (insn == "stgi") return step_dict(v.l1_stgi());
    if (insn == "clgi") return step_dict(v.l1_clgi());
    if (insn == "invlpga") return step_dict(v.l1_invlpga());
    if (insn == "vmmcall") return step_dict(v.l1_vmmcall());
    if (insn == "skinit") return step_dict(v.l1_skinit());
    if (insn == "rsm") return step_dict(v.rsm());
    throw py::value_error("unknown L1 instruction '" + insn + "'");
}

py::dict event(Machine& m, const std::string& name, std::uint32_t index, std::uint64_t value) {
    const auto kind = cpu::find_event(name);
    if (!kind) throw py::value_error("unknown event '" + name + "'");
    using K = cpu::EventKind;
    if (*kind == K::intr || *kind == K::nmi || *kind == K::smi || *kind == K::init)
        return step_dict(m.vcpu.external(*kind));
    if (m.vcpu.mode() != nested::Mode::l2) throw py::value_error("L2 events need L2 running");
    cpu::Event e;
    e.kind = *kind;
    e.index = index;
    e.value = value;
    return step_dict(m.vcpu.l2_event(e));
}

PyVmcb machine_vmcb(Machine& m, const std::string& which) {
    if (which == "vmcb01") return PyVmcb{m.vcpu.vmcb01()};
    if (which == "vmcb02") return PyVmcb{m.vcpu.vmcb02()};
    if (which == "vmcb12") {
        const auto gpa = m.vcpu.vmcb12_gpa() != 0 ? m.vcpu.vmcb12_gpa() : m.vcpu.vmcb01().get(arch::FieldId::rax);
        PyVmcb v;
        if (!m.memory.read_vmcb(gpa, v.vmcb)) throw py::value_error("vmcb12's page is not backed");
        return v;
    }
    throw py::value_error("which: vmcb01, vmcb02 or vmcb12");
}

void bind_vmcb(py::module_& m) {
    py::class_<PyVmcb>(m, "Vmcb", "A 4 KiB VMCB page with fields by name ('save.cr0', 'control.asid', ...).")
        .def(py::init<>(), "An all-zero VMCB.")
        .def_static("read", &read_any, py::arg("data"), py::arg("format") = "auto", py::arg("source") = "<data>",
                    "Reads a VMCB from str/bytes: raw page, JSON, KVM or Xen dump. Raises nsvm.InputError.")
        .def_static("from_file", &read_file, py::arg("path"), py::arg("format") = "auto")
        .def_static("reference", [] { return PyVmcb{repair::reference_vmcb()}; },
                    "A VMCB every check of every profile accepts.")
        .def_static("field_names", [] {
            std::vector<std::string> names;
            for (const auto& f : arch::kFields)
                if (f.kind == arch::FieldKind::integer) names.emplace_back(f.name);
            return names;
        })
        .def("__getitem__", [](const PyVmcb& v, const std::string& f) { return v.vmcb.get(field_id(f)); })
        .def("__setitem__", [](PyVmcb& v, const std::string& f, std::uint64_t value) {
            const auto id = field_id(f);
            if (!arch::Vmcb::fits(id, value)) throw py::value_error("value does not fit field '" + f + "'");
            v.vmcb.set(id, value);
        })
        .def("__eq__", [](const PyVmcb& a, const PyVmcb& b) { return a.vmcb == b.vmcb; })
        .def_readonly("format", &PyVmcb::format, "The format it was read from.")
        .def_readonly("warnings", &PyVmcb::warnings, "What the input could not tell (formats' warnings).")
        .def_readonly("partial", &PyVmcb::partial, "True for partial input (a QEMU register dump): check() decides only the checks whose fields it gives.")
        .def("page", [](const PyVmcb& v) {
            return py::bytes(reinterpret_cast<const char*>(v.vmcb.page().data()), v.vmcb.page().size());
        })
        .def("to_json", [](const PyVmcb& v) { return formats::write_json(v.vmcb); })
        .def("check", &check, py::arg("cpu") = "zen4", py::arg("profile") = "apm",
             "Every failing check as a dict: id, apm, fields, message, hint, detail.")
        .def("would_succeed", [](const PyVmcb& v, const std::string& cpu, const std::string& profile) {
            const Model md = resolve(cpu, profile);
            return checks::vmrun_would_succeed(v.context(md));
        }, py::arg("cpu") = "zen4", py::arg("profile") = "apm")
        .def("repair", &repair, py::arg("cpu") = "zen4", py::arg("profile") = "apm",
             "The nearest valid VMCB: {'vmcb', 'valid', 'changes': [{field, old, new, check}], 'unrepaired'}.");
}

void bind_machine(py::module_& m) {
    py::class_<Machine>(m, "Machine", "One vCPU of L0's nested SVM engine (KVM's L0 configuration).")
        .def(py::init<const std::string&, const std::string&>(), py::arg("cpu") = "zen4", py::arg("profile") = "kvm")
        .def("map", [](Machine& mc, std::uint64_t gpa, std::uint64_t size) {
            if (!mc.memory.map(gpa, size)) throw py::value_error("cannot map this range");
        }, py::arg("gpa"), py::arg("size") = 0x1000)
        .def("write", [](Machine& mc, std::uint64_t gpa, const py::bytes& data) {
            const std::string s = data;
            if (!mc.memory.write(gpa, std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size())))
                throw py::value_error("guest memory not backed");
        })
        .def("read", [](const Machine& mc, std::uint64_t gpa, std::size_t size) {
            std::string s(size, '\0');
            if (!mc.memory.read(gpa, std::span(reinterpret_cast<std::uint8_t*>(s.data()), s.size())))
                throw py::value_error("guest memory not backed");
            return py::bytes(s);
        })
        .def("write_vmcb", [](Machine& mc, std::uint64_t gpa, const PyVmcb& v) {
            if (!mc.memory.write_vmcb(gpa, v.vmcb)) throw py::value_error("guest memory not backed");
        })
        .def("set_hsave", [](Machine& mc, std::uint64_t gpa) { mc.vcpu.set_vm_hsave_pa(gpa); })
        .def("set_vmcb01", [](Machine& mc, const std::string& f, std::uint64_t value) {
            mc.vcpu.vmcb01().set(field_id(f), value);
        })
        .def("l1", &l1, py::arg("insn"), "vmrun, vmload, vmsave, stgi, clgi, invlpga, vmmcall, skinit, rsm")
        .def("event", &event, py::arg("name"), py::arg("index") = 0, py::arg("value") = 0,
             "An L2 event (cpuid, rdmsr, io, exception, ...) or an external one (intr, nmi, smi, init).")
        .def("vmcb", &machine_vmcb, py::arg("which"), "A copy of vmcb01, vmcb02 or vmcb12.")
        .def_property_readonly("gif", [](const Machine& mc) { return mc.vcpu.gif(); })
        .def_property_readonly("mode", [](const Machine& mc) { return std::string(nested::mode_name(mc.vcpu.mode())); })
        .def("check_invariants", [](const Machine& mc) -> std::optional<std::string> {
            const char* why = mc.vcpu.check_invariants();
            return why ? std::optional<std::string>(why) : std::nullopt;
        });
}

}  // namespace

PYBIND11_MODULE(nsvm, m) {
    m.doc() = "nsvm: an executable model of AMD SVM and nested SVM (docs/library.md)";
    m.attr("__version__") = NSVM_VERSION_STRING;
    g_input_error = PyErr_NewException("nsvm.InputError", PyExc_ValueError, nullptr);
    m.attr("InputError") = g_input_error;
    m.def("cpu_models", [] {
        std::vector<std::string> names;
        for (const auto& c : checks::builtin_models()) names.push_back(c.name);
        return names;
    });
    m.def("profiles", [] {
        std::vector<std::string> names;
        for (const auto& p : checks::all_profiles()) names.emplace_back(p.name);
        return names;
    });
    bind_vmcb(m);
    bind_machine(m);
}
