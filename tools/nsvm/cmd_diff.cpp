// nsvm diff: each vector through the model and through an emulator, every
// divergence field by field (docs/oracle.md).
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "nsvm/oracle/diff.hpp"
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
    int stall_ms = 5000;
    std::vector<std::string> files;
    CLI::Option* cpu_opt = nullptr;
    CLI::Option* profile_opt = nullptr;
};

int run_diff(DiffOptions& o) {
    auto backend = oracle::find_backend(o.backend);
    if (!backend) throw Exit{kBadInput, backend.error()};
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
    oracle::RunnerOptions ro;
    ro.backend = *backend;
    ro.cpu_model = o.cpu_model;
    ro.batch_size = o.batch;
    ro.stall_timeout = std::chrono::milliseconds(o.stall_ms);
    auto runner = oracle::make_runner(ro);
    if (!runner) throw Exit{kFailed, runner.error()};
    auto results = (*runner)->run(vectors);
    if (!results) throw Exit{kFailed, results.error()};

    const auto model = oracle::make_checks_model(m.cpu, *m.profile);
    oracle::Summary summary;
    for (std::size_t i = 0; i < vectors.size(); ++i) {
        const auto p = model->predict(vectors[i]);
        const auto d = oracle::compare(vectors[i], p, (*results)[i], *backend, *m.profile);
        summary.add(d);
        if (o.json) {
            std::cout << oracle::to_json_line(d) << '\n';
        } else {
            const auto text = oracle::format_diff(d, o.verbose);
            if (!text.empty()) std::cout << text;
        }
    }
    if (o.json) {
        nlohmann::ordered_json s;
        s["summary"] = {{"total", summary.total},           {"agree", summary.agree},
                        {"differ", summary.differ},         {"explained_only", summary.explained_only},
                        {"cannot_run", summary.cannot_run}, {"backend", o.backend},
                        {"cpu", m.cpu.name},                {"profile", std::string(m.profile->name)}};
        auto& pc = s["summary"]["per_check"] = nlohmann::ordered_json::object();
        for (const auto& [id, t] : summary.per_check)
            pc[id] = {{"agree", t.agree}, {"differ", t.differ}, {"explained", t.explained}, {"cannot_run", t.cannot_run}};
        s["summary"]["known_divergences"] = summary.per_known;
        std::cout << s.dump() << '\n';
    } else {
        std::cout << fmt::format("\nmodel: cpu {}, profile {}; oracle: {}\n", m.cpu.name, m.profile->name, o.backend)
                  << oracle::format_summary(summary);
    }
    return summary.has_unexplained() ? kFailed : kOk;
}

const Registrar reg{42, [](CLI::App& app, int& status) {
    static DiffOptions o;
    auto* sub = app.add_subcommand("diff", "Differential test: the model against QEMU, Bochs or QEMU/KVM, field by "
                                           "field; exit 1 on a divergence the profile does not explain");
    sub->add_option("--backend", o.backend, "qemu, bochs or qemu-kvm")->capture_default_str();
    sub->add_option("--cpu-model", o.cpu_model, "emulator CPU (qemu: max; bochs: ryzen)");
    add_model_options(*sub, o.model);
    o.cpu_opt = sub->get_option("--cpu");
    o.profile_opt = sub->get_option("--profile");
    o.cpu_opt->description("model CPU (default: the backend's: qemu-tcg, bochs-ryzen, zen4)");
    o.profile_opt->description("model profile (default: the backend's: qemu, bochs, kvm)");
    sub->add_flag("--json", o.json, "one JSON object per vector, then a summary object");
    sub->add_flag("-v,--verbose", o.verbose, "also print agreeing vectors and the fields written");
    sub->add_option("--batch", o.batch, "vectors per emulator boot")->capture_default_str()->check(CLI::Range(1, 60000));
    sub->add_option("--stall-ms", o.stall_ms, "kill a boot whose progress stalls this long")->capture_default_str();
    sub->add_option("vectors", o.files, "vector files; - for stdin")->required();
    sub->callback([&status] { status = run_diff(o); });
}};

}  // namespace
}  // namespace nsvm::cli
