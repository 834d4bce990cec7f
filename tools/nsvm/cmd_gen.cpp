// nsvm gen: test vectors at the validity boundary (docs/oracle.md).
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "cli.hpp"
#include "nsvm/oracle/gen.hpp"
#include "nsvm/oracle/model.hpp"

namespace nsvm::cli {
namespace {

struct GenCliOptions {
    ModelOptions model;
    std::string seed;    // text: parsed with range checks (a negative must not wrap)
    std::string count;
    CLI::Option* seed_opt = nullptr;
    CLI::Option* count_opt = nullptr;
    std::string shard = "0/1";
    std::string out = "-";
    bool no_boundary = false;
    bool no_pairs = false;
};

int run_gen(const GenCliOptions& o) {
    const auto m = resolve_model(o.model);
    auto sh = oracle::parse_shard(o.shard);
    if (!sh) throw Exit{kBadInput, sh.error()};
    const auto seed = unsigned_option(o.seed_opt, "--seed", o.seed, ~std::uint64_t{0});
    const auto count = unsigned_option(o.count_opt, "--count", o.count, oracle::kMaxCount).value_or(0);
    if (count > 0 && !seed) throw Exit{kBadInput, "--count needs --seed"};
    oracle::GenOptions g;
    g.cpu = m.cpu;
    g.profile = m.profile;
    g.boundary = !o.no_boundary;
    g.pairs = !o.no_pairs;
    g.seed = seed;
    g.count = static_cast<std::size_t>(count);
    g.shard_index = sh->first;
    g.shard_count = sh->second;
    std::ofstream file;
    if (o.out != "-") {
        file.open(o.out, std::ios::trunc);
        if (!file) throw Exit{kBadInput, fmt::format("-o {}: cannot create", o.out)};
    }
    std::ostream& os = o.out == "-" ? std::cout : file;
    // Each vector is written as it is made (a million held at once took 9 GB),
    // with the outcome the model expects of it under the chosen CPU and
    // profile: the prediction nsvm diff compares, as data.
    const auto model = oracle::make_image_model(m.cpu, *m.profile);
    std::uint64_t written = 0;
    oracle::generate_each(g, [&](const oracle::Vector& v) {
        oracle::Vector out = v;
        out.expected = oracle::expectation_of(model->predict(v), m.cpu, *m.profile);
        os << oracle::to_json_line(out) << '\n';
        if (!os) throw Exit{kBadInput, fmt::format("{}: write error", o.out == "-" ? "stdout" : o.out)};
        ++written;
    });
    os.flush();
    if (!os) throw Exit{kBadInput, fmt::format("{}: write error", o.out == "-" ? "stdout" : o.out)};
    if (o.out != "-") std::cerr << fmt::format("{} vectors written to {}\n", written, o.out);
    return kOk;
}

const Registrar reg{41, [](CLI::App& app, int& status) {
    static GenCliOptions o;
    auto* sub = app.add_subcommand("gen", "Generate oracle test vectors: the last passing and first failing value of "
                                          "every check a vector can express, pairs, and random mutations");
    add_model_options(*sub, o.model);
    o.seed_opt = sub->add_option("--seed", o.seed, "random vectors from this seed (with --count); 0 to 2^64-1");
    o.count_opt = sub->add_option("--count", o.count, "number of random vectors; at most 10^12");
    sub->add_option("--shard", o.shard, "i/n: keep vectors k with k % n == i")->capture_default_str();
    sub->add_option("-o,--output", o.out, "output file (JSON lines); - for stdout")->capture_default_str();
    sub->add_flag("--no-boundary", o.no_boundary, "only random vectors");
    sub->add_flag("--no-pairs", o.no_pairs, "no pairs of violations");
    sub->callback([&status] { status = run_gen(o); });
}};

}  // namespace
}  // namespace nsvm::cli
