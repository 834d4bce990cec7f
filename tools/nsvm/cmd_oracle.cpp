// nsvm oracle: run test vectors on an emulator (docs/oracle.md).
//
//   nsvm oracle run --backend qemu|bochs|qemu-kvm|exec:CMD [--cpu-model M] [--json] VECTORS...
//   nsvm oracle image      build the test image (if needed) and print its directory
//   nsvm oracle timing --backend B [--iterations N] [--json]
//                          VMRUN round trip and failing VMRUN inside the emulator
#include <iostream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/oracle/diff.hpp"
#include "nsvm/oracle/gen.hpp"
#include "nsvm/oracle/runner.hpp"
#include "nsvm/oracle/timing.hpp"
#include "nsvm/oracle/vector.hpp"

namespace nsvm::cli {
namespace {

struct OracleOptions {
    std::string backend = "qemu";
    std::string cpu_model;
    bool json = false;
    bool keep = false;
    std::size_t batch = 16384;
    std::size_t jobs = 1;
    int stall_ms = 0;
    std::vector<std::string> files;
    std::string shard = "0/1";
    std::uint64_t iterations = 0;  // timing; 0: the backend's default
};

std::vector<oracle::Vector> load_vectors(const std::vector<std::string>& files) {
    std::vector<oracle::Vector> all;
    for (const auto& f : files) {
        auto v = oracle::parse_vectors(read_input(f), f == "-" ? "<stdin>" : f);
        if (!v) fail_input(v.error());
        for (auto& x : *v) all.push_back(std::move(x));
    }
    if (all.empty()) throw Exit{kBadInput, fmt::format("no vectors in {}", fmt::join(files, ", "))};
    return all;
}

std::string human(const oracle::Result& r) {
    switch (r.status) {
        case oracle::Status::cannot_run: return fmt::format("{}: oracle cannot run: {}", r.id, r.reason);
        case oracle::Status::exception:
            return fmt::format("{}: VMRUN raised exception {} (error code {:#x}); GIF {}", r.id, r.exception_vector,
                               r.error_code, r.gif ? 1 : 0);
        case oracle::Status::vmexit: break;
    }
    const auto d = arch::exit_code::describe(r.exit_code());
    return fmt::format("{}: #VMEXIT {:#018x} ({}) exit_info_1 {:#x} exit_info_2 {:#x} exit_int_info {:#x} GIF {}{}",
                       r.id, r.exit_code(), d.name, r.exit_info_1(), r.exit_info_2(), r.exit_int_info(), r.gif ? 1 : 0,
                       r.probe_ok ? "" : " (probe interrupt lost)");
}

int run_oracle(const OracleOptions& o) {
    auto backend = oracle::find_backend(o.backend);
    if (!backend) throw Exit{kBadInput, backend.error()};
    const auto sh = oracle::parse_shard(o.shard);
    if (!sh) throw Exit{kBadInput, sh.error()};
    // Vector k of the input belongs to shard k mod n, as in gen and diff; a
    // shard may be empty (more shards than vectors) and prints nothing.
    const auto vectors = oracle::shard(load_vectors(o.files), sh->first, sh->second);
    if (vectors.empty()) return kOk;
    oracle::RunnerOptions ro;
    ro.backend = *backend;
    ro.exec_command = std::string(oracle::exec_command_of(o.backend));
    ro.cpu_model = o.cpu_model;
    ro.keep_files = o.keep;
    ro.batch_size = o.batch;
    ro.jobs = o.jobs;
    ro.stall_timeout = std::chrono::milliseconds(o.stall_ms);
    // Setup the user can fix (no emulator, no image, no /dev/kvm, an
    // emulator that never reaches the image): exit 2, not 1 ("no").
    auto runner = oracle::make_runner(ro);
    if (!runner) throw Exit{kBadInput, runner.error()};
    auto results = (*runner)->run(vectors);
    if (!results) throw Exit{kBadInput, results.error()};
    for (const auto& r : *results) std::cout << (o.json ? oracle::to_json_line(r) : human(r)) << '\n';
    const auto& st = (*runner)->stats();
    if (!o.json)
        std::cerr << fmt::format("{} vectors, {} boot{}, {:.2f} s, {} cannot run\n", results->size(), st.boots,
                                 st.boots == 1 ? "" : "s", st.seconds, st.cannot_run);
    return kOk;
}

int run_timing(const OracleOptions& o) {
    auto backend = oracle::find_backend(o.backend);
    if (!backend) throw Exit{kBadInput, backend.error()};
    // The timing loops are code in the test image; an exec backend runs none.
    if (*backend == oracle::Backend::exec)
        throw Exit{kBadInput, "oracle timing needs an emulator backend (qemu, bochs or qemu-kvm), not exec"};
    oracle::RunnerOptions ro;
    ro.backend = *backend;
    ro.cpu_model = o.cpu_model;
    ro.keep_files = o.keep;
    // About a second of emulated VMRUNs per loop (QEMU ~10 us, Bochs ~4 us each).
    const std::uint64_t n = o.iterations != 0 ? o.iterations : *backend == oracle::Backend::bochs ? 200000 : 100000;
    auto t = oracle::measure_peer(ro, n);
    if (!t) throw Exit{kBadInput, t.error()};
    if (o.json) {
        std::cout << fmt::format(R"({{"backend":"{}","roundtrip_ns":{:.1f},"failed_vmrun_ns":{:.1f},"iterations":{}}})",
                                 oracle::backend_name(t->backend), t->roundtrip_ns, t->failed_vmrun_ns, t->iterations)
                  << '\n';
    } else {
        std::cout << fmt::format("{}: VMRUN + VMMCALL + #VMEXIT round trip {:.0f} ns; failing VMRUN (ASID 0) {:.0f} ns "
                                 "({} extra iterations per loop)\n",
                                 oracle::backend_name(t->backend), t->roundtrip_ns, t->failed_vmrun_ns, t->iterations);
    }
    return kOk;
}

/// The known divergences as JSON: one object each, with the names the text
/// and the table use (backend, id, field, reason).
void print_known_json() {
    auto a = nlohmann::json::array();
    for (const auto& k : oracle::known_divergences())
        a.push_back({{"backend", std::string(oracle::backend_name(k.backend))},
                     {"id", std::string(k.id)},
                     {"field", std::string(k.field)},
                     {"reason", std::string(k.reason)}});
    std::cout << a.dump(2) << '\n';
}

/// The known divergences, as docs/oracle.md shows them (a CLI test keeps the
/// doc and this list in step).
void print_known(bool markdown) {
    if (markdown) std::cout << "| backend | id | field | reason |\n|---|---|---|---|\n";
    for (const auto& k : oracle::known_divergences()) {
        if (markdown)
            std::cout << fmt::format("| {} | `{}` | {} | {} |\n", oracle::backend_name(k.backend), k.id, k.field,
                                     k.reason);
        else
            std::cout << fmt::format("{:<6} {:<40} {}\n       {}\n", oracle::backend_name(k.backend), k.id, k.field,
                                     k.reason);
    }
}

constexpr const char* kBackendHelp =
    "qemu, bochs, qemu-kvm, or exec:CMD: CMD (run by /bin/sh -c) answers one vector per line on its stdin with one "
    "result per line on its stdout (docs/oracle.md \"The exec backend\")";
constexpr const char* kStallHelp =
    "kill a boot whose progress stalls this long; 0: the backend's default (qemu 500 ms once the image runs, bochs "
    "5000 ms; exec: 10000 ms per vector, then the backend is restarted and that vector lost)";

const Registrar reg{40, [](CLI::App& app, int& status) {
    static OracleOptions o;
    auto* sub = app.add_subcommand("oracle", "Run VMRUN test vectors on QEMU (TCG), Bochs, QEMU/KVM or any SVM "
                                             "implementation (exec:CMD) and print what it did");
    sub->require_subcommand(1);
    auto* run = sub->add_subcommand("run", "Run vectors (JSON lines or a JSON array, docs/oracle.md) in batches");
    run->add_option("--backend", o.backend, kBackendHelp)->capture_default_str();
    run->add_option("--cpu-model", o.cpu_model, "emulator CPU (qemu: max; bochs: ryzen; qemu-kvm: host)");
    run->add_flag("--json", o.json, "one JSON object per vector (the result format of docs/oracle.md)");
    run->add_option("--batch", o.batch, "vectors per emulator boot")->capture_default_str()->check(CLI::Range(1, 60000));
    run->add_option("-j,--jobs", o.jobs, "emulator processes in parallel")->capture_default_str()->check(CLI::Range(1, 256));
    run->add_option("--stall-ms", o.stall_ms, kStallHelp)
        ->capture_default_str()
        ->check(CLI::Range(0, 3600000));
    run->add_option("--shard", o.shard, "i/n: only vectors k with k % n == i (k counts across the files, from 0)")
        ->capture_default_str();
    run->add_flag("--keep", o.keep, "keep the RAM file, disk image and logs");
    run->add_option("vectors", o.files, "vector files; - for stdin")->required();
    run->callback([&status] { status = run_oracle(o); });
    auto* timing = sub->add_subcommand("timing", "Time a VMRUN + #VMEXIT round trip and a failing VMRUN inside the "
                                                 "emulator (two boots differing only in the repeat count)");
    timing->add_option("--backend", o.backend, "qemu, bochs or qemu-kvm")->capture_default_str();
    timing->add_option("--cpu-model", o.cpu_model, "emulator CPU (qemu: max; bochs: ryzen; qemu-kvm: host)");
    timing->add_option("--iterations", o.iterations, "extra VMRUNs in the long loop (default 100000; bochs 200000)")
        ->check(CLI::Range(std::uint64_t{1000}, std::uint64_t{100000000}));
    timing->add_flag("--json", o.json, "one JSON object: backend, roundtrip_ns, failed_vmrun_ns, iterations");
    timing->callback([&status] { status = run_timing(o); });
    auto* known = sub->add_subcommand("known", "List the known divergences of each emulator that nsvm diff reports as "
                                               "explained, with their reasons");
    static bool markdown = false;
    static bool known_json = false;
    auto* md = known->add_flag("--markdown", markdown, "as the table in docs/oracle.md");
    known->add_flag("--json", known_json, "a JSON array: one object per divergence (backend, id, field, reason)")
        ->excludes(md);
    known->callback([&status] {
        if (known_json)
            print_known_json();
        else
            print_known(markdown);
        status = kOk;
    });
    auto* image = sub->add_subcommand("image", "Build the test image if needed and print its directory");
    image->callback([&status] {
        auto dir = oracle::find_or_build_image();
        if (!dir) throw Exit{kBadInput, dir.error()};
        std::cout << dir->string() << '\n';
        status = kOk;
    });
}};

}  // namespace
}  // namespace nsvm::cli
