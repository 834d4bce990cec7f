// nsvm_exec_backend: a reference backend for `--backend exec:CMD`, built
// only with the tests. It speaks the line protocol of docs/oracle.md "The
// exec backend" and answers each vector with nsvm's own model prediction,
// so a diff against it must agree; its fault modes misbehave on one chosen
// vector so that the tests can see the runner lose exactly that vector.
//
//   nsvm_exec_backend [--cpu NAME] [--profile NAME]
//                     [--crash ID] [--hang ID] [--garbage ID] [--flood ID] [--error ID]
//                     [--no-handshake] [--version N]
//
// Fault modes key on the vector id, not on a count: a restarted backend
// starts counting afresh, and an id stays the same vector across restarts.
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/oracle/model.hpp"
#include "nsvm/oracle/vector.hpp"

namespace {

using nsvm::arch::FieldId;
using nsvm::oracle::Prediction;
using nsvm::oracle::Result;
using nsvm::oracle::Status;
using nsvm::oracle::Vector;

struct Options {
    std::string cpu = "zen4";
    std::string profile = "apm";
    std::string crash, hang, garbage, flood, error;
    bool handshake = true;
    std::int64_t version = 1;
};

[[nodiscard]] bool parse_args(int argc, char** argv, Options& o) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--no-handshake") {
            o.handshake = false;
            continue;
        }
        if (i + 1 >= argc) return false;
        const std::string v = argv[++i];
        if (a == "--cpu") o.cpu = v;
        else if (a == "--profile") o.profile = v;
        else if (a == "--crash") o.crash = v;
        else if (a == "--hang") o.hang = v;
        else if (a == "--garbage") o.garbage = v;
        else if (a == "--flood") o.flood = v;
        else if (a == "--error") o.error = v;
        else if (a == "--version") o.version = std::stoll(v);
        else return false;
    }
    return true;
}

/// What the processor the model describes leaves behind, in the result form
/// the emulators produce: the VMCB after the exit, the exit fields, GIF.
[[nodiscard]] Result as_result(const Vector& v, const Prediction& p) {
    Result r;
    r.id = v.id;
    r.status = p.status;
    if (p.status == Status::cannot_run) {
        r.reason = "the model predicts no exit: " + p.path;
        return r;
    }
    r.vmcb = p.vmcb_after.value_or(v.vmcb);
    r.gif = p.gif.value_or(true);
    r.probe_ok = true;
    if (p.status == Status::exception) {
        r.exception_vector = p.exception_vector.value_or(0);
        return r;
    }
    const auto put = [&r](FieldId f, const auto& value) {
        if (value) r.vmcb.set(f, *value);
    };
    put(FieldId::exit_code, p.exit_code);
    put(FieldId::exit_info_1, p.exit_info_1);
    put(FieldId::exit_info_2, p.exit_info_2);
    // A failed VMRUN delivers no event: EXITINTINFO is zero (APM 15.7.2).
    r.vmcb.set(FieldId::exit_int_info, p.exit_int_info.value_or(p.vmrun_valid ? r.exit_int_info() : 0));
    put(FieldId::rax, p.guest_rax);
    put(FieldId::rip, p.guest_rip);
    put(FieldId::rsp, p.guest_rsp);
    put(FieldId::rflags, p.guest_rflags);
    put(FieldId::next_rip, p.next_rip);
    return r;
}

/// The fault modes; returns false when the answer must not be written.
[[nodiscard]] bool misbehave(const Options& o, const std::string& id) {
    if (id == o.crash) std::abort();
    if (id == o.hang)
        for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    if (id == o.garbage) {
        std::cout << "this is not JSON {" << std::endl;
        return false;
    }
    if (id == o.flood) {
        // Well past the runner's 1 MiB line cap, and no newline for a while.
        const std::string chunk(1 << 16, 'x');
        for (int i = 0; i < 64; ++i) std::cout << chunk;
        std::cout << std::endl;
        return false;
    }
    if (id == o.error) {
        std::cout << nlohmann::json{{"id", id}, {"status", "cannot_run"}, {"reason", "refused by request"}}.dump()
                  << std::endl;
        return false;
    }
    return true;
}

[[nodiscard]] int serve(const Options& o, const nsvm::oracle::Model& model) {
    std::string line;
    if (o.handshake) {
        if (!std::getline(std::cin, line)) return 0;
        const auto hello = nlohmann::json::parse(line, nullptr, false);
        if (!hello.is_object() || !hello.contains("nsvm_exec_protocol")) return 3;
        std::cout << nlohmann::json{{"nsvm_exec_protocol", o.version}, {"backend", "nsvm-model"},
                                    {"cpu_model", o.cpu}}.dump()
                  << std::endl;
    }
    while (std::getline(std::cin, line)) {
        auto vectors = nsvm::oracle::parse_vectors(line, "<stdin>");
        if (!vectors || vectors->size() != 1) {
            // The protocol's way to refuse one request: a cannot_run answer.
            std::cout << nlohmann::json{{"id", ""}, {"status", "cannot_run"}, {"reason", "unreadable vector"}}.dump()
                      << std::endl;
            continue;
        }
        const Vector& v = vectors->front();
        if (!misbehave(o, v.id)) continue;
        Result r = as_result(v, model.predict(v));
        r.backend = "nsvm-model";
        std::cout << nsvm::oracle::to_json_line(r) << std::endl;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (!parse_args(argc, argv, o)) {
        std::cerr << "usage: nsvm_exec_backend [--cpu NAME] [--profile NAME] [--crash|--hang|--garbage|--flood|"
                     "--error ID] [--no-handshake] [--version N]\n";
        return 2;
    }
    auto cpu = nsvm::checks::find_builtin_model(o.cpu);
    auto profile = nsvm::checks::find_profile(o.profile);
    if (!cpu || !profile) {
        std::cerr << "nsvm_exec_backend: unknown --cpu or --profile\n";
        return 2;
    }
    const auto model = nsvm::oracle::make_image_model(*cpu, nsvm::checks::profile(*profile));
    return serve(o, *model);
}
