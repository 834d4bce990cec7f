// libFuzzer target: the scenario loader on arbitrary bytes must never crash;
// a rejected input must say why and where; an accepted one must run.
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string_view>

#include "nsvm/scenario/scenario.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto s = nsvm::scenario::load_text(text, "fuzz.yaml");
    if (!s) {
        if (s.error().message.empty()) std::abort();  // an error must say something
        return 0;
    }
    if (s->steps.size() > 256) return 0;  // keep each input fast
    std::ostringstream out;
    nsvm::scenario::RunOptions ro;
    ro.check_invariants = true;
    const auto r = nsvm::scenario::run(*s, ro, out);
    if (r.status != 0 && r.message.empty()) std::abort();
    return 0;
}
