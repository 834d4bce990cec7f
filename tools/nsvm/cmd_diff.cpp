// nsvm diff: each vector through the model and through an emulator, every
// divergence field by field (docs/oracle.md).
//
// Vectors come from files, or are generated in process (a campaign):
// `--boundary` the boundary set, `--seed S --count N` random vectors, all
// sharded by `--shard i/n`. A campaign runs in chunks, so memory stays flat
// however large --count is, and `--jobs J` runs J emulator processes at once.
// `--results FILE` replays results produced elsewhere instead of running a
// backend (src/oracle/replay.cpp); everything else is the same.
#include <atomic>
#include <chrono>
#include <future>
#include <iostream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include "cli.hpp"
#include "progress.hpp"
#include "nsvm/oracle/diff.hpp"
#include "nsvm/oracle/gen.hpp"
#include "nsvm/oracle/model.hpp"
#include "nsvm/oracle/replay.hpp"
#include "nsvm/oracle/report.hpp"
#include "nsvm/oracle/runner.hpp"

namespace nsvm::cli {
namespace {

struct DiffOptions {
    std::string backend = "qemu";
    std::string cpu_model;
    ModelOptions model;
    bool json = false;
    bool verbose = false;
    bool progress = false;     ///< --progress: force the progress line
    bool no_progress = false;  ///< --no-progress
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
    std::vector<std::string> vector_files;  ///< --vectors, after the positional ones
    std::string results;                    ///< --results FILE: replay instead of running a backend
    CLI::Option* backend_opt = nullptr;
    CLI::Option* cpu_opt = nullptr;
    CLI::Option* profile_opt = nullptr;
};

/// docs/oracle.md "Exit status": 1 for a divergence nothing explains; 2 when
/// nothing was compared at all (that is not agreement). One shard of a
/// campaign with fewer vectors than shards may get none: that shard's report
/// is a valid part of the campaign (it merges as zeros), so it is not an
/// error here; `diff merge` judges the whole.
int exit_status(const oracle::Summary& s, const oracle::Campaign* shard = nullptr) {
    const std::size_t compared = s.total - s.cannot_run;
    if (s.total == 0 && shard != nullptr && shard->shard_count > 1) {
        std::cerr << fmt::format("nsvm: shard {}/{} has no vector (the campaign has fewer vectors than shards)\n",
                                 shard->shard_index, shard->shard_count);
        return kOk;
    }
    if (compared == 0) {
        std::cerr << fmt::format("nsvm: no vector was compared ({} could not run)\n", s.cannot_run);
        return kBadInput;
    }
    return s.has_unexplained() ? kFailed : kOk;
}

/// Runs one chunk of vectors through the emulator and the model, prints what
/// differs, adds to the summary.
class Differ {
public:
    Differ(const DiffOptions& o, oracle::Backend backend, const ResolvedModel& m, std::unique_ptr<oracle::Runner> runner,
           ProgressLine& progress)
        : o_(o), backend_(backend), m_(m), model_(oracle::make_image_model(m.cpu, *m.profile)),
          runner_(std::move(runner)), progress_(progress),
          clear_before_output_(progress.enabled() && ::isatty(STDOUT_FILENO) != 0) {}

    void run(std::span<const oracle::Vector> vectors) { report(vectors, emulate(vectors)); }

    /// The emulator side of a chunk (the calling thread waits for it).
    [[nodiscard]] std::vector<oracle::Result> emulate(std::span<const oracle::Vector> vectors) {
        if (vectors.empty()) return {};
        // An emulator that cannot start, or never reaches the image (an
        // unknown --cpu-model), is setup as well: no vector has been compared.
        auto results = runner_->run(vectors);
        if (!results) throw Exit{kBadInput, results.error()};
        emulated_ += vectors.size();
        progress_.update(emulated_, unexplained_.load());
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
                // The report and the progress line share the terminal: the
                // line goes, the report is written, the line comes back.
                if (clear_before_output_) progress_.clear();
                std::cout << text;
                if (clear_before_output_) std::cout.flush();
            }
            unexplained_.store(summary_.differ);
            progress_.update(summary_.total, summary_.differ);
        }
    }

    int finish(const oracle::Campaign& campaign, double wall_seconds) const {
        progress_.clear();
        const oracle::Report report{summary_, campaign,
                                    oracle::RunFigures{o_.jobs, runner_->stats().boots, runner_->stats().seconds,
                                                       wall_seconds}};
        if (o_.json) {
            std::cout << oracle::summary_json_line(report) << '\n';
        } else {
            const double rate = wall_seconds > 0 ? static_cast<double>(summary_.total) / wall_seconds : 0;
            std::cout << fmt::format("\nmodel: cpu {}, profile {}; oracle: {}{}\n", m_.cpu.name, m_.profile->name,
                                     campaign.backend,
                                     o_.results.empty() ? "" : fmt::format(" (results from {})", o_.results))
                      << oracle::format_summary(summary_);
            std::cerr << fmt::format("{} vectors in {:.2f} s ({:.0f} vectors/s; {} job{}, {} boot{}, {:.2f} s in "
                                     "the emulator)\n",
                                     summary_.total, wall_seconds, rate, o_.jobs, o_.jobs == 1 ? "" : "s",
                                     runner_->stats().boots, runner_->stats().boots == 1 ? "" : "s", runner_->stats().seconds);
        }
        return exit_status(summary_, &campaign);
    }

private:
    const DiffOptions& o_;
    oracle::Backend backend_;
    const ResolvedModel& m_;
    std::unique_ptr<oracle::Model> model_;
    std::unique_ptr<oracle::Runner> runner_;
    ProgressLine& progress_;
    bool clear_before_output_;
    std::uint64_t emulated_ = 0;                // vectors whose results are in (the emulating thread's)
    std::atomic<std::uint64_t> unexplained_{0};  // summary_.differ, for the emulating thread
    oracle::Summary summary_;
};

/// The backend whose results a results file holds: --backend when given,
/// else the file's own `backend` member (qemu, bochs, qemu-kvm; any other
/// name is an exec backend's, e.g. the reference backend's "nsvm-model").
oracle::Backend results_backend(DiffOptions& o, const oracle::ResultsReplay& replay) {
    if (o.backend_opt->count() == 0) o.backend = replay.backend().empty() ? std::string("exec") : replay.backend();
    if (o.backend == "exec") return oracle::Backend::exec;  // no command: nothing runs
    auto b = oracle::find_backend(o.backend);
    return b ? *b : oracle::Backend::exec;
}

/// The live backend, or the results file standing in for it.
std::unique_ptr<oracle::Runner> make_oracle(const DiffOptions& o, oracle::Backend backend,
                                            std::unique_ptr<oracle::ResultsReplay>& replay) {
    if (replay) return std::move(replay);
    oracle::RunnerOptions ro;
    ro.backend = backend;
    ro.exec_command = std::string(oracle::exec_command_of(o.backend));
    ro.cpu_model = o.cpu_model;
    ro.batch_size = o.batch;
    ro.stall_timeout = std::chrono::milliseconds(o.stall_ms);
    ro.jobs = o.jobs;
    // No emulator, no image, an unusable /dev/kvm: setup the user can fix.
    auto r = oracle::make_runner(ro);
    if (!r) throw Exit{kBadInput, r.error()};
    return std::move(*r);
}

int run_diff(DiffOptions& o) {
    for (auto& f : o.vector_files) o.files.push_back(std::move(f));
    std::unique_ptr<oracle::ResultsReplay> replay;
    oracle::ResultsReplay* replayed = nullptr;
    if (!o.results.empty()) {
        auto r = oracle::ResultsReplay::open(o.results);
        if (!r) throw Exit{kBadInput, r.error()};
        replay = std::move(*r);
        replayed = replay.get();
    }
    auto backend = replay ? nsvm::expected<oracle::Backend, std::string>(results_backend(o, *replay))
                          : oracle::find_backend(o.backend);
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
        if (!v) fail_input(v.error());
        for (auto& x : *v) vectors.push_back(std::move(x));
    }
    if (!o.files.empty() && vectors.empty() && !o.boundary && o.count == 0)
        throw Exit{kBadInput, fmt::format("no vectors in {}", fmt::join(o.files, ", "))};
    // Vector k of the files belongs to shard k mod n, as generated ones do.
    vectors = oracle::shard(std::move(vectors), sh->first, sh->second);
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
    // Random vector k is this shard's when k % n == i.
    const std::uint64_t random_here = o.count > sh->first ? (o.count - sh->first + sh->second - 1) / sh->second : 0;
    const bool show_progress = o.progress || (!o.no_progress && progress_by_default(o.json));
    ProgressLine progress(show_progress, vectors.size() + random_here);
    Differ differ(o, *backend, m, make_oracle(o, *backend, replay), progress);
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
    if (replayed != nullptr) {
        if (auto done = replayed->finish(); !done) throw Exit{kBadInput, done.error()};
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    oracle::Campaign campaign{o.backend, m.cpu.name, std::string(m.profile->name), o.seed, o.count, o.boundary,
                              o.files, sh->first, sh->second};
    return differ.finish(campaign, wall);
}

/// `nsvm diff merge`: the shards' --json reports as one (report.hpp).
int run_merge(const std::vector<std::string>& paths, bool json) {
    auto r = oracle::merge_reports(paths);
    if (!r) fail_input(std::move(r.error()));
    if (json) {
        std::cout << oracle::summary_json_line(*r) << '\n';
    } else {
        std::cout << fmt::format("model: cpu {}, profile {}; oracle: {}; {} shards merged\n", r->campaign.cpu,
                                 r->campaign.profile, r->campaign.backend, paths.size())
                  << oracle::format_summary(r->summary);
    }
    return exit_status(r->summary);
}

const Registrar reg{42, [](CLI::App& app, int& status) {
    static DiffOptions o;
    auto* sub = app.add_subcommand("diff", "Differential test: the model against QEMU, Bochs, QEMU/KVM or any SVM "
                                           "implementation (exec:CMD), field by field; exit 1 on a divergence the "
                                           "profile does not explain");
    o.backend_opt = sub->add_option("--backend", o.backend,
                    "qemu, bochs, qemu-kvm, or exec:CMD: CMD (run by /bin/sh -c) answers one vector per line on its "
                    "stdin with one result per line on its stdout (docs/oracle.md \"The exec backend\"); with "
                    "--results: the backend that produced them (default: the file's own backend member)")
        ->capture_default_str();
    sub->add_option("--cpu-model", o.cpu_model, "emulator CPU (qemu: max; bochs: ryzen)");
    add_model_options(*sub, o.model);
    o.cpu_opt = sub->get_option("--cpu");
    o.profile_opt = sub->get_option("--profile");
    o.cpu_opt->description("model CPU (default: the backend's: qemu-tcg, bochs-ryzen, zen4; exec: zen4)");
    o.profile_opt->description("model profile (default: the backend's: qemu, bochs, kvm; exec: apm)");
    sub->add_flag("--json", o.json, "one JSON object per vector, then a summary object");
    sub->add_flag("-v,--verbose", o.verbose,
                  "also print agreeing vectors, each vector a known divergence explains (else only counted in the "
                  "summary) and the fields written");
    auto* progress = sub->add_flag("--progress", o.progress,
                                   "show a progress line on stderr (vectors done, rate, unexplained so far, time left); "
                                   "the default when stderr is a terminal, unless --json goes to that terminal too");
    sub->add_flag("--no-progress", o.no_progress, "no progress line")->excludes(progress);
    sub->add_flag("--boundary", o.boundary, "add nsvm gen's boundary set for the model's CPU and profile");
    o.seed_opt = sub->add_option("--seed", o.seed_text,
                    "add random vectors from this seed (with --count), as nsvm gen makes them; 0 to 2^64-1");
    o.count_opt = sub->add_option("--count", o.count_text,
                                  "number of random vectors (generated and run in chunks); at most 10^12");
    sub->add_option("--shard", o.shard, "i/n: only vectors k with k % n == i (of the files, of the boundary set and "
                                        "of the random vectors, each counted on its own)")
        ->capture_default_str();
    sub->add_option("--results", o.results,
                    "compare with the results in FILE (JSON lines of `nsvm oracle run --json`, produced elsewhere) "
                    "instead of running a backend; matched to the vectors by id; - for stdin");
    sub->add_option("--vectors", o.vector_files, "vector file (as the positional arguments; may be repeated)");
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
    auto* merge = sub->add_subcommand("merge", "Merge the --json reports of the shards of one campaign (--shard i/n) "
                                               "into the summary a single run gives; exit status as diff's");
    static std::vector<std::string> reports;
    static bool merge_json = false;
    merge->add_option("reports", reports, "the shards' `nsvm diff --json` reports, one per shard, any order")
        ->required();
    merge->add_flag("--json", merge_json, "the merged summary as diff --json's summary object");
    merge->callback([&status] { status = run_merge(reports, merge_json); });
    sub->callback([&status, merge] {
        if (merge->parsed()) return;  // the subcommand ran instead
        status = run_diff(o);
    });
}};

}  // namespace
}  // namespace nsvm::cli
