// Peer timing loops (see timing.hpp).
#include "nsvm/oracle/timing.hpp"

#include <fmt/format.h>

#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/oracle/gen.hpp"

namespace nsvm::oracle {

Vector timing_roundtrip_vector() {
    auto v = base_vector(BaseMode::long64, Program::vmmcall);
    v.id = "timing/roundtrip";
    v.host.probe_gif = false;
    return v;
}

Vector timing_failed_vector() {
    auto v = timing_roundtrip_vector();
    v.id = "timing/failed_vmrun";
    v.vmcb.set(arch::FieldId::asid, 0);
    return v;
}

namespace {

/// Wall seconds of one boot running `v` with `repeat` VMRUNs, checked to end
/// in `want` (the exit code of the last VMRUN).
nsvm::expected<double, std::string> one_boot(const RunnerOptions& opts, Vector v, std::uint64_t repeat,
                                             std::uint64_t want) {
    v.host.repeat = static_cast<std::uint32_t>(repeat);
    // One vector that runs for seconds by design: the image bumps its progress
    // counter per vector, not per VMRUN of the loop, so the stall detector
    // (made to skip a hanging vector in a batch) must not cut it short; the
    // boot timeout still bounds the loop.
    RunnerOptions o = opts;
    if (o.stall_timeout.count() == 0) o.stall_timeout = o.boot_timeout;
    auto runner = make_runner(o);
    if (!runner) return nsvm::unexpected(runner.error());
    const Vector one[] = {v};
    auto results = (*runner)->run(one);
    if (!results) return nsvm::unexpected(results.error());
    const auto& r = results->front();
    if (r.status != Status::vmexit)
        return nsvm::unexpected(fmt::format("{}: {} did not end in a #VMEXIT ({}{})", backend_name(opts.backend), v.id,
                                            status_name(r.status), r.reason.empty() ? "" : ": " + r.reason));
    if (r.exit_code() != want && static_cast<std::uint32_t>(r.exit_code()) != static_cast<std::uint32_t>(want))
        return nsvm::unexpected(fmt::format("{}: {} ended in exit code {:#x}, expected {:#x}",
                                            backend_name(opts.backend), v.id, r.exit_code(), want));
    if ((*runner)->stats().boots != 1)
        return nsvm::unexpected(fmt::format("{}: {} needed {} boots", backend_name(opts.backend), v.id,
                                            (*runner)->stats().boots));
    return (*runner)->stats().seconds;
}

nsvm::expected<double, std::string> per_vmrun_ns(const RunnerOptions& opts, const Vector& v, std::uint64_t iterations,
                                                 std::uint64_t want) {
    constexpr std::uint64_t kShort = 1000;
    auto t_short = one_boot(opts, v, kShort, want);
    if (!t_short) return nsvm::unexpected(t_short.error());
    auto t_long = one_boot(opts, v, kShort + iterations, want);
    if (!t_long) return nsvm::unexpected(t_long.error());
    if (*t_long <= *t_short)
        return nsvm::unexpected(fmt::format("{}: {} extra VMRUNs took no measurable time ({:.3f} s vs {:.3f} s); "
                                            "use more iterations",
                                            backend_name(opts.backend), iterations, *t_long, *t_short));
    return (*t_long - *t_short) * 1e9 / static_cast<double>(iterations);
}

}  // namespace

nsvm::expected<PeerTiming, std::string> measure_peer(const RunnerOptions& opts, std::uint64_t iterations) {
    if (iterations == 0 || iterations > 0xFFFFFFFFULL - 1000)
        return nsvm::unexpected(std::string("iterations must be between 1 and 4294966295"));
    PeerTiming t;
    t.backend = opts.backend;
    t.iterations = iterations;
    auto rt = per_vmrun_ns(opts, timing_roundtrip_vector(), iterations, arch::exit_code::VMMCALL);
    if (!rt) return nsvm::unexpected(rt.error());
    auto fail = per_vmrun_ns(opts, timing_failed_vector(), iterations, arch::exit_code::INVALID);
    if (!fail) return nsvm::unexpected(fail.error());
    t.roundtrip_ns = *rt;
    t.failed_vmrun_ns = *fail;
    return t;
}

}  // namespace nsvm::oracle
