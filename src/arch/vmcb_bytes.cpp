// Moving and clearing a VMCB's field runs (arch::kFieldRuns): the vmcb12
// cache's read and vmcb02's preparation on every nested VMRUN. One copy of
// constant size per run.
#include <cstring>

#include "nsvm/arch/vmcb.hpp"

namespace nsvm::arch {

void copy_field_bytes(ConstVmcbBytes from, VmcbBytes to) noexcept {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((void)std::memcpy(to.data() + kFieldRuns[I].begin, from.data() + kFieldRuns[I].begin,
                           kFieldRuns[I].end - kFieldRuns[I].begin),
         ...);
    }(std::make_index_sequence<kFieldRuns.size()>{});
}

void copy_save_field_bytes(std::span<const std::uint8_t, kVmcbSize - kSaveAreaOffset> save, VmcbBytes to) noexcept {
    for (const ByteRun r : kFieldRuns) {
        if (r.end <= kSaveAreaOffset) continue;
        const std::size_t begin = std::max<std::size_t>(r.begin, kSaveAreaOffset);
        std::memcpy(to.data() + begin, save.data() + (begin - kSaveAreaOffset), r.end - begin);
    }
}

void clear_field_bytes(VmcbBytes to) noexcept {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((void)std::memset(to.data() + kFieldRuns[I].begin, 0, kFieldRuns[I].end - kFieldRuns[I].begin), ...);
    }(std::make_index_sequence<kFieldRuns.size()>{});
}

}  // namespace nsvm::arch
