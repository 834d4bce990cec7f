// nsvm diff: each vector through the model and through an emulator, every
// divergence field by field (docs/oracle.md).
//
// Vectors come from files, or are generated in process (a campaign):
// `--boundary` the boundary set, `--seed S --count N` random vectors, both
// sharded by `--shard i/n`. A campaign runs in chunks, so memory stays flat
// however large --count is, and `--jobs J` runs J emulator processes at once.
#include <chrono>
#include <future>
#include <iostream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "nsvm/oracle/diff.hpp"
#include "nsvm/oracle/gen.hpp"
#include "nsvm/oracle/model.hpp"
#include "nsvm/oracle/runner.hpp"

namespace nsvm::cli {
namespace {

struct DiffOptions {
    std::string backend = "qemu";
    std::string cpu_model;
    ModelOptions model;
    bool json = false;
    bool verbose = false;
    std::size_t batch = 16384;
    std::size_t jobs = 1;
    int stall_ms = 0;
    bool boundary = false;
    std::string seed_text;   // parsed with range checks (a negative must not wrap)
    std::string count_text;
    CLI::Option* seed_opt = nullptr;
    CLI::Option* count_opt = nullptr;
    std::optional<std::uint64_t> seed;
    std::uint64_t count = 0;
    std::string shard = "0/1";
    std::vector<std::string> files;
    CLI::Option* cpu_opt = nullptr;
    CLI::Option* profile_opt = nullptr;
};

/// Runs one chunk of vectors through the emulator and the model, prints what
/// differs, adds to the summary.
class Differ {
public:
    Differ(const DiffOptions& o, oracle::Backend backend, const ResolvedModel& m)
        : o_(o), backend_(backend), m_(m), model_(oracle::make_image_model(m.cpu, *m.profile)) {
        ro_.backend = backend;
        ro_.exec_command = std::string(oracle::exec_command_of(o.backend));
        ro_.cpu_model = o.cpu_model;
        ro_.batch_size = o.batch;
        ro_.stall_timeout = std::chrono::milliseconds(o.stall_ms);
        ro_.jobs = o.jobs;
        // No emulator, no image, an unusable /dev/kvm: setup the user can fix.
        auto r = oracle::make_runner(ro_);
        if (!r) throw Exit{kBadInput, r.error()};
        runner_ = std::move(*r);
    }

    void run(std::span<const oracle::Vector> vectors) { report(vectors, emulate(vectors)); }

    /// The emulator side of a chunk (the calling thread waits for it).
    [[nodiscard]] std::vector<oracle::Result> emulate(std::span<const oracle::Vector> vectors) {
        if (vectors.empty()) return {};
        // An emulator that cannot start, or never reaches the image (an
        // unknown --cpu-model), is setup as well: no vector has been compared.
        auto results = runner_->run(vectors);
        if (!results) throw Exit{kBadInput, results.error()};
        return std::move(*results);
    }

    /// The model side and the comparison; prints and counts. Chunks are
    /// reported one after the other, in order (one reporting thread at a time).
    void report(std::span<const oracle::Vector> vectors, const std::vector<oracle::Result>& results) {
        for (std::size_t i = 0; i < vectors.size(); ++i) {
            const auto p = model_->predict(vectors[i]);
            const auto d = oracle::compare(vectors[i], p, results[i], backend_, *m_.profile);
            summary_.add(d);
            if (o_.json) {
                std::cout << oracle::to_json_line(d) << '\n';
            } else if (auto text = oracle::format_diff(d, o_.verbose); !text.empty()) {
                std::cout << text;
            }
        }
    }

    int finish(double wall_seconds) const {
        const double rate = wall_seconds > 0 ? static_cast<double>(summary_.total) / wall_seconds : 0;
        if (o_.json) {
            nlohmann::ordered_json s;
            s["summary"] = {{"total", summary_.total},
                            {"agree", summary_.agree},
                            {"differ", summary_.differ},
                            {"explained_only", summary_.explained_only},
                            {"cannot_run", summary_.cannot_run},
                            {"whole_vmcb", summary_.whole_vmcb},
                            {"backend", o_.backend},
                            {"cpu", m_.cpu.name},
                            {"profile", std::string(m_.profile->name)},
                            {"jobs", o_.jobs},
                            {"boots", runner_->stats().boots},
                            {"emulator_seconds", runner_->stats().seconds},
                            {"wall_seconds", wall_seconds},
                            {"vectors_per_second", rate}};
            auto& pc = s["summary"]["per_check"] = nlohmann::ordered_json::object();
            for (const auto& [id, t] : summary_.per_check)
                pc[id] = {{"agree", t.agree}, {"differ", t.differ}, {"explained", t.explained},
                          {"cannot_run", t.cannot_run}};
            s["summary"]["known_divergences"] = summary_.per_known;
            std::cout << s.dump() << '\n';
        } else {
            std::cout << fmt::format("\nmodel: cpu {}, profile {}; oracle: {}\n", m_.cpu.name, m_.profile->name,
                                     o_.backend)
                      << oracle::format_summary(summary_);
            std::cerr << fmt::format("{} vectors in {:.2f} s ({:.0f} vectors/s; {} job{}, {} boot{}, {:.2f} s in "
                                     "the emulator)\n",
                                     summary_.total, wall_seconds, rate, o_.jobs, o_.jobs == 1 ? "" : "s",
                                     runner_->stats().boots, runner_->stats().boots == 1 ? "" : "s", runner_->stats().seconds);
        }
        // Nothing compared is not agreement (docs/oracle.md "Exit status").
        const std::size_t compared = summary_.total - summary_.cannot_run;
        if (compared == 0) {
            std::cerr << fmt::format("nsvm: no vector was compared ({} could not run)\n", summary_.cannot_run);
            return kBadInput;
        }
        return summary_.has_unexplained() ? kFailed : kOk;
    }

private:
    const DiffOptions& o_;
    oracle::Backend backend_;
    const ResolvedModel& m_;
    std::unique_ptr<oracle::Model> model_;
    oracle::RunnerOptions ro_;
    std::unique_ptr<oracle::Runner> runner_;
    oracle::Summary summary_;
};

int run_diff(DiffOptions& o) {
    auto backend = oracle::find_backend(o.backend);
    if (!backend) throw Exit{kBadInput, backend.error()};
    o.seed = unsigned_option(o.seed_opt, "--seed", o.seed_text, ~std::uint64_t{0});
    o.count = unsigned_option(o.count_opt, "--count", o.count_text, oracle::kMaxCount).value_or(0);
    if (o.files.empty() && !o.boundary && o.count == 0)
        throw Exit{kBadInput, "no vectors: give vector files, --boundary, or --seed S --count N"};
    if (o.count > 0 && !o.seed) throw Exit{kBadInput, "--count needs --seed"};
    auto sh = oracle::parse_shard(o.shard);
    if (!sh) throw Exit{kBadInput, sh.error()};
    // The model side follows the backend unless --cpu/--profile say otherwise.
    const auto bm = oracle::model_for_backend(*backend);
    if (o.cpu_opt->count() == 0) o.model.cpu = bm.cpu;
    if (o.profile_opt->count() == 0) o.model.profile = bm.profile;
    const auto m = resolve_model(o.model);

    std::vector<oracle::Vector> vectors;
    for (const auto& f : o.files) {
        auto v = oracle::parse_vectors(read_input(f), f == "-" ? "<stdin>" : f);
        if (!v) throw Exit{kBadInput, formats::to_string(v.error())};
        for (auto& x : *v) vectors.push_back(std::move(x));
    }
    if (!o.files.empty() && vectors.empty() && !o.boundary && o.count == 0)
        throw Exit{kBadInput, fmt::format("no vectors in {}", fmt::join(o.files, ", "))};
    oracle::GenOptions g;
    g.cpu = m.cpu;
    g.profile = m.profile;
    g.seed = o.seed;
    g.shard_index = sh->first;
    g.shard_count = sh->second;
    if (o.boundary) {
        auto b = oracle::generate_boundary(g);
        vectors.insert(vectors.end(), std::make_move_iterator(b.begin()), std::make_move_iterator(b.end()));
    }

    const auto t0 = std::chrono::steady_clock::now();
    Differ differ(o, *backend, m);
    differ.run(vectors);
    vectors.clear();
    // Random vectors in chunks of one batch per job, pipelined: while the
    // emulators run chunk k, one thread generates chunk k+1 and another
    // predicts, compares and prints chunk k-1, so the emulators never wait.
    const std::uint64_t chunk = static_cast<std::uint64_t>(o.batch) * o.jobs * g.shard_count;
    const auto generate = [&g, &o, chunk](std::uint64_t first) {
        return first < o.count ? oracle::generate_random(g, first, std::min(chunk, o.count - first))
                               : std::vector<oracle::Vector>{};
    };
    std::vector<oracle::Vector> cur = generate(0), prev;
    std::vector<oracle::Result> prev_results;
    std::future<void> reporting;
    for (std::uint64_t first = 0; first < o.count; first += chunk) {
        auto next = std::async(std::launch::async, generate, first + chunk);
        auto results = differ.emulate(cur);
        if (reporting.valid()) reporting.get();
        prev = std::move(cur);
        prev_results = std::move(results);
        reporting = std::async(std::launch::async, [&differ, &prev, &prev_results] { differ.report(prev, prev_results); });
        cur = next.get();
    }
    if (reporting.valid()) reporting.get();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return differ.finish(wall);
}

const Registrar reg{42, [](CLI::App& app, int& status) {
    static DiffOptions o;
    auto* sub = app.add_subcommand("diff", "Differential test: the model against QEMU, Bochs, QEMU/KVM or any SVM "
                                           "implementation (exec:CMD), field by field; exit 1 on a divergence the "
                                           "profile does not explain");
    sub->add_option("--backend", o.backend,
                    "qemu, bochs, qemu-kvm, or exec:CMD: CMD (run by /bin/sh -c) answers one vector per line on its "
                    "stdin with one result per line on its stdout (docs/oracle.md \"The exec backend\")")
        ->capture_default_str();
    sub->add_option("--cpu-model", o.cpu_model, "emulator CPU (qemu: max; bochs: ryzen)");
    add_model_options(*sub, o.model);
    o.cpu_opt = sub->get_option("--cpu");
    o.profile_opt = sub->get_option("--profile");
    o.cpu_opt->description("model CPU (default: the backend's: qemu-tcg, bochs-ryzen, zen4; exec: zen4)");
    o.profile_opt->description("model profile (default: the backend's: qemu, bochs, kvm; exec: apm)");
    sub->add_flag("--json", o.json, "one JSON object per vector, then a summary object");
    sub->add_flag("-v,--verbose", o.verbose, "also print agreeing vectors and the fields written");
    sub->add_flag("--boundary", o.boundary, "add nsvm gen's boundary set for the model's CPU and profile");
    o.seed_opt = sub->add_option("--seed", o.seed_text,
                    "add random vectors from this seed (with --count), as nsvm gen makes them; 0 to 2^64-1");
    o.count_opt = sub->add_option("--count", o.count_text,
                                  "number of random vectors (generated and run in chunks); at most 10^12");
    sub->add_option("--shard", o.shard, "i/n: only this shard of the generated vectors")->capture_default_str();
    sub->add_option("--batch", o.batch, "vectors per emulator boot")->capture_default_str()->check(CLI::Range(1, 60000));
    sub->add_option("-j,--jobs", o.jobs, "emulator processes in parallel")
        ->capture_default_str()
        ->check(CLI::Range(1, 256));
    sub->add_option("--stall-ms", o.stall_ms,
                    "kill a boot whose progress stalls this long; 0: the backend's default (qemu 500 ms once "
                    "the image runs, bochs 5000 ms; exec: 10000 ms per vector, then the backend is restarted and "
                    "that vector lost)")
        ->capture_default_str()
        ->check(CLI::Range(0, 3600000));
    sub->add_option("vectors", o.files, "vector files; - for stdin");
    sub->callback([&status] { status = run_diff(o); });
}};

}  // namespace
}  // namespace nsvm::cli
