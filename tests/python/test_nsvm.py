"""The Python module: reading, fields, check, repair, the engine, errors."""
import os
import pathlib

import pytest

import nsvm

SOURCE = pathlib.Path(os.environ.get("NSVM_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
EXAMPLES = SOURCE / "examples"


def test_version_and_names():
    assert nsvm.__version__.count(".") == 2
    assert "zen4" in nsvm.cpu_models()
    assert set(nsvm.profiles()) == {"apm", "kvm", "qemu", "bochs", "xen", "hyperv"}
    assert "save.cr0" in nsvm.Vmcb.field_names()


def test_valid_json_passes_every_profile():
    v = nsvm.Vmcb.from_file(str(EXAMPLES / "valid-vmcb.json"))
    assert v.format == "json"
    assert v["save.cr0"] == 0x80050033
    for profile in nsvm.profiles():
        assert v.check(profile=profile) == []
        assert v.would_succeed(profile=profile)


def test_kvm_dump_failures_carry_id_section_fields_and_hint():
    v = nsvm.Vmcb.from_file(str(EXAMPLES / "kvm-dump-invalid.txt"))
    assert v.format == "kvm-dump"
    failures = v.check(cpu="zen4", profile="kvm")
    assert failures, "the example is invalid"
    for f in failures:
        assert set(f) == {"id", "apm", "fields", "message", "hint", "detail"}
        assert f["fields"] and all("." in x for x in f["fields"])
    assert not v.would_succeed(profile="kvm")


def test_fields_by_name():
    v = nsvm.Vmcb()
    v["control.asid"] = 7
    assert v["control.asid"] == 7
    with pytest.raises(KeyError):
        v["save.nonsense"]
    with pytest.raises(ValueError):
        v["control.asid"] = 1 << 32
    assert len(v.page()) == 4096
    assert nsvm.Vmcb.read(v.to_json()) == v


def test_input_error_names_file_and_field():
    with pytest.raises(nsvm.InputError) as info:
        nsvm.Vmcb.read('{\n "save": {"cr0": "zebra"}\n}\n', source="bad.json")
    e = info.value
    assert isinstance(e, ValueError)
    assert e.file == "bad.json"
    assert e.field == "save.cr0"
    assert "bad.json" in str(e) and "zebra" in e.message


def test_input_error_names_the_line_of_a_dump():
    text = (EXAMPLES / "kvm-dump-invalid.txt").read_text()
    lines = text.splitlines(keepends=True)
    bad = next(i for i, l in enumerate(lines) if "cr_read:" in l)
    lines[bad] = lines[bad].replace("cr_read:", "cr_read: zz")
    with pytest.raises(nsvm.InputError) as info:
        nsvm.Vmcb.read("".join(lines), format="kvm-dump", source="dump.txt")
    assert info.value.file == "dump.txt"
    assert info.value.line == bad + 1


def test_repair_lists_changes_and_reaches_valid():
    v = nsvm.Vmcb.reference()
    v["control.asid"] = 0
    v["save.cr4"] = 0x6F8 | (1 << 15)
    r = v.repair(profile="kvm")
    assert r["valid"] and r["unrepaired"] == []
    assert [(c["field"], c["check"]) for c in r["changes"]] == [
        ("control.asid", "asid.zero"), ("save.cr4", "cr4.mbz")]
    assert r["changes"][1]["old"] == 0x6F8 | (1 << 15) and r["changes"][1]["new"] == 0x6F8
    assert r["vmcb"].would_succeed(profile="kvm")
    assert v["control.asid"] == 0, "repair returns a new Vmcb"


def test_repair_of_zero_page_on_every_model():
    for cpu in nsvm.cpu_models():
        assert nsvm.Vmcb().repair(cpu=cpu)["valid"], cpu


def test_unknown_model_is_a_value_error():
    with pytest.raises(ValueError):
        nsvm.Vmcb().check(cpu="pentium")
    # "host" is a name of the CLI only: the library never executes CPUID.
    with pytest.raises(ValueError):
        nsvm.Vmcb().check(cpu="host")


def make_machine(v12):
    m = nsvm.Machine(cpu="zen4", profile="kvm")
    for gpa, size in ((0x20000, 0x1000), (0x50000, 0x1000), (0x10000, 0x3000), (0x14000, 0x2000)):
        m.map(gpa, size)
    m.write_vmcb(0x20000, v12)
    m.set_hsave(0x50000)
    m.set_vmcb01("save.rax", 0x20000)
    return m


def test_machine_runs_l2_and_reflects_an_exit():
    v12 = nsvm.Vmcb.reference()
    v12["control.intercepts[3]"] |= 1 << (114 - 96)  # CPUID
    m = make_machine(v12)
    assert m.l1("vmrun")["outcome"] == "entered_l2"
    assert m.mode == "l2"
    step = m.event("cpuid")
    assert step["outcome"] == "vmexit_to_l1" and step["exit_code"] == 0x72
    assert m.vmcb("vmcb12")["control.exit_code"] == 0x72
    assert m.check_invariants() is None


def test_machine_failed_vmrun_clears_gif():
    v12 = nsvm.Vmcb.reference()
    v12["control.asid"] = 0
    m = make_machine(v12)
    step = m.l1("vmrun")
    assert step["outcome"] == "vmrun_failed" and step["failed_check"] == "asid.zero"
    assert not m.gif
    assert m.check_invariants() is None


def test_qemu_register_dump_is_partial_input():
    dump = SOURCE / "tests" / "formats" / "fixtures" / "qemu-entry-failed-smm.txt"
    v = nsvm.Vmcb.from_file(str(dump))
    assert v.format == "qemu-dump"
    assert v.partial
    assert v.check(profile="apm") == []
    assert [f["id"] for f in v.check(profile="hyperv")] == ["cr3.mbz"]
