// The one body of the reader fuzz targets: read_vmcb(format) and
// read_dumps(format) on arbitrary bytes must never crash, an error must say
// something, and every VMCB they read must survive write_json ->
// read_vmcb(json) unchanged (the JSON form is lossless, reserved bytes
// included); the decoder must cope with it too.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "nsvm/formats/decode.hpp"
#include "nsvm/formats/vmcb_io.hpp"

namespace nsvm::fuzz {

/// One VMCB read: JSON round trip unchanged, and the decoder copes.
inline void round_trip(const formats::ReadResult& in) {
    using namespace nsvm::formats;
    const auto json = write_json(in.vmcb);
    const auto back = read_vmcb(json, Format::json, "fuzz-roundtrip");
    if (!back) {
        std::fprintf(stderr, "write_json output rejected: %s\n%s\n", to_string(back.error()).c_str(), json.c_str());
        std::abort();
    }
    if (!(back->vmcb == in.vmcb)) {
        std::fprintf(stderr, "JSON round trip changed the VMCB\n%s\n", json.c_str());
        std::abort();
    }
    (void)decode_text(in.vmcb, false);
}

/// read_vmcb reads the first dump of a log; read_dumps reads every one (a
/// KVM log with a dump per vCPU, Xen's 'xl debug-keys v' with one per domain
/// and vCPU), and when it succeeds its first is read_vmcb's VMCB.
inline int read_and_round_trip(const std::uint8_t* data, std::size_t size, formats::Format format) {
    using namespace nsvm::formats;
    const std::span<const std::uint8_t> bytes(data, size);
    const auto in = read_vmcb(bytes, format, "fuzz");
    if (!in) {
        if (to_string(in.error()).empty()) std::abort();
    } else {
        round_trip(*in);
    }
    const auto all = read_dumps(bytes, format, "fuzz");
    if (!all) {
        if (to_string(all.error()).empty()) std::abort();
        return 0;
    }
    if (all->empty() || !in || !(all->front().result.vmcb == in->vmcb)) {
        std::fprintf(stderr, "read_dumps read %zu VMCBs, but its first is not read_vmcb's (%s)\n", all->size(),
                     in ? "a different VMCB" : to_string(in.error()).c_str());
        std::abort();
    }
    for (std::size_t i = 1; i < all->size(); ++i) round_trip((*all)[i].result);
    return 0;
}

}  // namespace nsvm::fuzz
