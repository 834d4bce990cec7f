// nsvm from C++: read a VMCB, list the failing checks, repair it.
//   check_repair FILE [CPU [PROFILE]]
// Uses nsvm::expected (formats::read_vmcb) on purpose: it is the same type
// in the library and here, whatever -std and compiler this file is built with.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include <nsvm/checks/evaluate.hpp>
#include <nsvm/formats/vmcb_io.hpp>
#include <nsvm/repair/repair.hpp>
#include <nsvm/version.h>

int main(int argc, char** argv) {
    using namespace nsvm;
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s FILE [CPU [PROFILE]]\n", argv[0]);
        return 2;
    }
    std::ifstream in(argv[1], std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto vmcb = formats::read_vmcb(std::string_view(data), formats::Format::auto_detect, argv[1]);
    if (!vmcb) {
        std::fprintf(stderr, "error: %s\n", formats::to_string(vmcb.error()).c_str());
        return 2;
    }
    auto cpu = checks::find_builtin_model(argc > 2 ? argv[2] : "zen4");
    auto profile_id = checks::find_profile(argc > 3 ? argv[3] : "apm");
    if (!cpu || !profile_id) {
        std::fprintf(stderr, "error: %s\n", !cpu ? cpu.error().c_str() : profile_id.error().c_str());
        return 2;
    }
    const checks::Profile& profile = checks::profile(*profile_id);
    std::printf("nsvm %s (C++%ld): %s, %s\n", NSVM_VERSION_STRING, __cplusplus / 100 % 100, argv[1],
                std::string(formats::format_name(vmcb->format)).c_str());

    const checks::Context ctx{vmcb->vmcb, *cpu, profile, vmcb->host ? &*vmcb->host : nullptr, nullptr};
    const auto report = checks::evaluate(ctx);
    for (const auto& f : report.failures)
        std::printf("  x %s [APM %s] %s\n", std::string(f.check->id).c_str(), std::string(f.check->apm).c_str(),
                    std::string(f.check->message).c_str());
    const bool valid = checks::vmrun_would_succeed(ctx);
    std::printf("VMRUN would %s\n", valid ? "succeed" : "fail");
    if (valid) return 0;

    const auto fixed = repair::repair(vmcb->vmcb, *cpu, profile, ctx.host);
    for (const auto& c : fixed.changes)
        std::printf("  repair: %s %#llx -> %#llx (%s)\n", c.field.c_str(),
                    static_cast<unsigned long long>(c.old_value), static_cast<unsigned long long>(c.new_value),
                    c.check_id.c_str());
    for (const auto& id : fixed.unrepaired) std::printf("  unrepaired: %s\n", id.c_str());
    std::printf("repaired: VMRUN would %s\n", fixed.valid() ? "succeed" : "fail");
    return 1;
}
