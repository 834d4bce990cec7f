// libFuzzer target: read_vmcb(--format raw) on arbitrary bytes must never
// crash, and whatever it reads must survive write_json -> read_vmcb(json)
// unchanged (the JSON form is lossless, reserved bytes included).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "nsvm/formats/decode.hpp"
#include "nsvm/formats/vmcb_io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace nsvm::formats;
    const auto in = read_vmcb(std::span<const std::uint8_t>(data, size), Format::raw, "fuzz");
    if (!in) {
        if (to_string(in.error()).empty()) std::abort();  // an error must say something
        return 0;
    }
    const auto json = write_json(in->vmcb);
    const auto back = read_vmcb(json, Format::json, "fuzz-roundtrip");
    if (!back) {
        std::fprintf(stderr, "write_json output rejected: %s\n%s\n", to_string(back.error()).c_str(), json.c_str());
        std::abort();
    }
    if (!(back->vmcb == in->vmcb)) {
        std::fprintf(stderr, "JSON round trip changed the VMCB\n%s\n", json.c_str());
        std::abort();
    }
    // The decoder must cope with whatever the reader accepted.
    (void)decode_text(in->vmcb, false);
    return 0;
}
