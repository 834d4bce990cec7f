// The one body of the reader fuzz targets: read_vmcb(format) on arbitrary
// bytes must never crash, an error must say something, and whatever it reads
// must survive write_json -> read_vmcb(json) unchanged (the JSON form is
// lossless, reserved bytes included); the decoder must cope with it too.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "nsvm/formats/decode.hpp"
#include "nsvm/formats/vmcb_io.hpp"

namespace nsvm::fuzz {

inline int read_and_round_trip(const std::uint8_t* data, std::size_t size, formats::Format format) {
    using namespace nsvm::formats;
    const auto in = read_vmcb(std::span<const std::uint8_t>(data, size), format, "fuzz");
    if (!in) {
        if (to_string(in.error()).empty()) std::abort();
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
    (void)decode_text(in->vmcb, false);
    return 0;
}

}  // namespace nsvm::fuzz
