// libFuzzer target: the xxd / hexdump -C / od reader (see reader_roundtrip.hpp
// for what is asserted).
#include "reader_roundtrip.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return nsvm::fuzz::read_and_round_trip(data, size, nsvm::formats::Format::hexdump);
}
