// nsvm run: run a scenario (docs/scenarios.md) and check its expectations.
// Exit status: 0 every expectation holds, 1 the first that does not (named),
// 2 bad input.
#include <iostream>
#include <memory>

#include "cli.hpp"
#include "nsvm/scenario/scenario.hpp"

namespace nsvm::cli {
namespace {

struct RunCliOptions {
    std::string file;
    bool json = false;
    bool check_invariants = false;
    std::string save_kvm_state;
};

const Registrar reg{30, [](CLI::App& app, int& status) {
    static RunCliOptions opts;
    auto* sub = app.add_subcommand("run", "Run a nested-SVM scenario (YAML/JSON) and check its expectations");
    sub->add_option("file", opts.file,
                    "scenario file (see docs/scenarios.md); - reads it from stdin (its relative VMCB paths then "
                    "start at the current directory)")
        ->required();
    sub->add_flag("--json", opts.json, "print the trace as JSON lines");
    sub->add_flag("--check-invariants", opts.check_invariants,
                  "check the nested-SVM invariants after every step (exit 1 on a violation)");
    sub->add_option("--save-kvm-state", opts.save_kvm_state,
                    "write the nested state after the last step that ran in KVM's layout (struct kvm_nested_state, "
                    "as KVM_GET_NESTED_STATE returns it; a restore_kvm_state step reads it back)");
    sub->callback([&status] {
        // stdin is read within the input limit every reading command has
        // (docs/limits.md); "<stdin>" names it in errors and anchors
        // relative paths at the current directory.
        auto loaded = opts.file == "-" ? scenario::load_text(read_input("-"), "<stdin>") : scenario::load_file(opts.file);
        if (!loaded) {  // the key a scenario line names is the field of its error
            const auto& e = loaded.error();
            throw Exit{kBadInput, e.to_string(), formats::Diagnostic{e.file, e.line, e.key, e.message}};
        }
        scenario::RunOptions ro;
        ro.json = opts.json;
        ro.check_invariants = opts.check_invariants;
        ro.keep_kvm_state = !opts.save_kvm_state.empty();
        const auto r = scenario::run(*loaded, ro, std::cout);
        if (r.status == kBadInput) throw Exit{kBadInput, r.message};
        if (!opts.save_kvm_state.empty()) write_output(opts.save_kvm_state, r.kvm_state);
        if (r.status != 0) {
            std::cerr << "nsvm: " << r.message << "\n";
            status = kFailed;
            return;
        }
        status = kOk;
    });
}};

}  // namespace
}  // namespace nsvm::cli
