// Executing CPUID on this machine (host_cpu.hpp).
#include "host_cpu.hpp"

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace nsvm::cli {
namespace {

#if defined(__x86_64__) || defined(__i386__)
/// One leaf, or zeros above the processor's highest one of its range (what
/// checks::HostCpuid promises; CPUID itself returns another leaf's data there).
[[nodiscard]] checks::CpuidRegs leaf(unsigned fn, unsigned max) {
    checks::CpuidRegs r;
    if (fn <= max) __cpuid_count(fn, 0, r.eax, r.ebx, r.ecx, r.edx);
    return r;
}

/// Four bytes of a register as characters, lowest byte first (vendor, brand).
[[nodiscard]] std::string chars(std::uint32_t w) {
    std::string s(4, '\0');
    for (unsigned i = 0; i < 4; ++i) s[i] = static_cast<char>((w >> (8 * i)) & 0xFF);
    return s;
}

/// Fn8000_0002..4: the brand string, NULs and padding spaces trimmed.
[[nodiscard]] std::string brand(unsigned max_ext) {
    if (max_ext < 0x80000004U) return {};
    std::string s;
    for (unsigned fn = 0x80000002U; fn <= 0x80000004U; ++fn) {
        const auto r = leaf(fn, max_ext);
        for (auto w : {r.eax, r.ebx, r.ecx, r.edx}) s += chars(w);
    }
    const auto last = s.find_last_not_of(std::string(" \0", 2));
    if (last == std::string::npos) return {};
    s.erase(last + 1);
    s.erase(0, s.find_first_not_of(' '));
    return s;
}
#endif

}  // namespace

std::optional<checks::HostCpuid> read_host_cpuid() {
#if defined(__x86_64__) || defined(__i386__)
    unsigned max_std = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid(0, &max_std, &b, &c, &d) == 0) return std::nullopt;
    const unsigned max_ext = __get_cpuid_max(0x80000000U, nullptr);
    checks::HostCpuid id;
    id.vendor = chars(b) + chars(d) + chars(c);
    id.brand = brand(max_ext);
    id.std1 = leaf(1, max_std);
    id.std7 = leaf(7, max_std);
    id.ext1 = leaf(0x80000001U, max_ext);
    id.ext8 = leaf(0x80000008U, max_ext);
    id.svm = leaf(0x8000000AU, max_ext);
    id.sev = leaf(0x8000001FU, max_ext);
    id.ext21 = leaf(0x80000021U, max_ext);
    return id;
#else
    return std::nullopt;
#endif
}

nsvm::expected<checks::CpuModel, std::string> host_model() {
    const auto id = read_host_cpuid();
    if (!id) return nsvm::unexpected(std::string("this host is not x86 (no CPUID): name a model (nsvm cpu list)"));
    return checks::model_from_cpuid(*id);
}

}  // namespace nsvm::cli
