// The oracle model's cost per vector (src/oracle/model.cpp): the image's
// memory copied, VMRUN and L2's program on cpu::SvmCpu, the VMCB read back.
// nsvm diff predicts in a thread beside the emulators, so this must stay
// well below an emulator's own time per vector (QEMU TCG: 30-60 us).
#include <benchmark/benchmark.h>

#include "nsvm/checks/cpu_model.hpp"
#include "nsvm/oracle/gen.hpp"
#include "nsvm/oracle/model.hpp"

using namespace nsvm;

namespace {

void predict_loop(benchmark::State& state, oracle::Vector v) {
    const auto model = oracle::make_image_model(*checks::find_builtin_model("qemu-tcg"),
                                                 checks::profile(checks::ProfileId::qemu));
    for (auto _ : state) benchmark::DoNotOptimize(model->predict(v));
    state.SetItemsProcessed(state.iterations());
}

void BM_ModelVmmcall(benchmark::State& state) {
    predict_loop(state, oracle::base_vector(oracle::BaseMode::long64, oracle::Program::vmmcall));
}
BENCHMARK(BM_ModelVmmcall);

void BM_ModelUd2ThroughTheIdt(benchmark::State& state) {
    predict_loop(state, oracle::base_vector(oracle::BaseMode::long64, oracle::Program::ud2));
}
BENCHMARK(BM_ModelUd2ThroughTheIdt);

void BM_ModelRandomCampaign(benchmark::State& state) {
    oracle::GenOptions o;
    o.cpu = *checks::find_builtin_model("qemu-tcg");
    o.profile = &checks::profile(checks::ProfileId::qemu);
    o.seed = 1;
    const auto vs = oracle::generate_random(o, 0, 1024);
    const auto model = oracle::make_image_model(o.cpu, *o.profile);
    std::size_t i = 0;
    for (auto _ : state) benchmark::DoNotOptimize(model->predict(vs[i++ % vs.size()]));
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ModelRandomCampaign);

}  // namespace
