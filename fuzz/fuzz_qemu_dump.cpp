// libFuzzer target: the qemu-dump reader (see reader_roundtrip.hpp for what is
// asserted), then the partial evaluation of what it read: a check is never
// both failing and not decided, and with partial input no check that names a
// field the dump did not give is decided.
#include <algorithm>

#include "nsvm/checks/evaluate.hpp"
#include "reader_roundtrip.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace nsvm;
    const int rc = fuzz::read_and_round_trip(data, size, formats::Format::qemu_dump);
    const auto in = formats::read_vmcb(std::span<const std::uint8_t>(data, size), formats::Format::qemu_dump, "fuzz");
    if (!in) return rc;
    const auto model = checks::default_model();
    const checks::Context ctx{in->vmcb, model, checks::profile(checks::ProfileId::apm), nullptr, nullptr};
    const auto report = checks::evaluate_partial(ctx, in->given);
    for (const auto& f : report.failures) {
        if (std::find(report.undecided.begin(), report.undecided.end(), f.check) != report.undecided.end()) std::abort();
        for (const auto name : f.check->fields) {
            const auto id = arch::find_field(name);
            if (id && !in->given[static_cast<std::size_t>(*id)]) std::abort();
        }
    }
    return rc;
}
