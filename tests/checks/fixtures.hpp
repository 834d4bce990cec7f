// Shared by the checks tests: the docs/formats.md "VMCB as JSON" example guest, a scenario
// (VMCB + CPU model + optional host state and guest memory) and helpers that
// run the evaluator and list failing ids.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/arch/vmcb.hpp"
#include "nsvm/checks/evaluate.hpp"
#include "support/valid_vmcb.hpp"

namespace nsvm::checks::test {

using arch::bit;
using arch::FieldId;

/// The minimal valid 64-bit guest of docs/formats.md "VMCB as JSON"; kept under this name
/// because the checks tests call it, defined once in tests/support.
inline arch::Vmcb valid_vmcb64() { return test_support::valid_vmcb64(); }

/// A 32-bit protected-mode guest with PAE paging (no long mode).
inline arch::Vmcb valid_vmcb_pae32() {
    auto v = valid_vmcb64();
    v.set(FieldId::efer, arch::efer::SVME);
    v.set_segment(arch::Seg::cs, {0x8, 0xC9B, 0xFFFFFFFF, 0});
    v.set(FieldId::cr3, 0x2000);
    return v;
}

/// A 32-bit protected-mode guest with 2-level (non-PAE) paging.
inline arch::Vmcb valid_vmcb_legacy32() {
    auto v = valid_vmcb_pae32();
    v.set(FieldId::cr4, 0x6F8 & ~arch::cr4::PAE);
    return v;
}

/// A host that may execute VMRUN: 64-bit, CPL 0, SVME, VMCB at 0x1000.
inline HostState valid_host() {
    HostState h;
    h.efer = arch::efer::SVME | arch::efer::LME | arch::efer::LMA | arch::efer::NXE | arch::efer::SCE;
    h.cr0 = arch::cr0::PE | arch::cr0::PG | arch::cr0::WP;
    h.cr4 = arch::cr4::PAE;
    h.rflags = 2;
    h.cpl = 0;
    h.rax = 0x1000;
    h.address_size = 64;
    h.hwcr = 1;  // SmmLock
    return h;
}

/// Guest memory as a sparse map of 8-byte words.
struct MapMemory : GuestMemory {
    std::map<std::uint64_t, std::uint64_t> words;
    bool read_u64(std::uint64_t gpa, std::uint64_t& out) const override {
        auto it = words.find(gpa);
        if (it == words.end()) return false;
        out = it->second;
        return true;
    }
};

inline CpuModel model(std::string_view name, std::string_view edits = {}) {
    auto m = find_builtin_model(name);
    EXPECT_TRUE(m.has_value()) << name;
    CpuModel out = m ? *m : default_model();
    if (!edits.empty()) {
        auto r = apply_feature_edits(out, edits);
        EXPECT_TRUE(r.has_value()) << edits;
    }
    return out;
}

/// Everything one evaluation needs.
struct Scenario {
    arch::Vmcb vmcb = valid_vmcb64();
    CpuModel cpu = default_model();
    ProfileId profile = ProfileId::apm;
    std::optional<HostState> host;
    const GuestMemory* memory = nullptr;
    std::optional<VmsaState> vmsa;  ///< the VMSA's values, as a KVM dump gives them

    [[nodiscard]] Context ctx() const {
        return Context{vmcb, cpu, checks::profile(profile), host ? &*host : nullptr, memory, vmsa ? &*vmsa : nullptr};
    }
    [[nodiscard]] Report report() const { return evaluate(ctx()); }
    [[nodiscard]] std::vector<std::string> failing() const {
        std::vector<std::string> ids;
        for (const auto& f : report().failures) ids.emplace_back(f.check->id);
        return ids;
    }
    [[nodiscard]] bool ok() const { return vmrun_would_succeed(ctx()); }
    /// Whether the report warns with `id` (a warning check, or a check this
    /// profile does not apply).
    [[nodiscard]] bool warns(std::string_view id) const {
        for (const auto& w : report().warnings)
            if (w.id == id) return true;
        return false;
    }
};

inline std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out.empty() ? "(none)" : out;
}

/// Asserts that exactly `id` fails (and the fast path agrees), or that
/// nothing fails when `id` is empty.
inline ::testing::AssertionResult fails_only(const Scenario& s, std::string_view id) {
    const auto ids = s.failing();
    const bool fast = s.ok();
    if (id.empty()) {
        if (ids.empty() && fast) return ::testing::AssertionSuccess();
        return ::testing::AssertionFailure() << "expected valid under " << profile(s.profile).name << ", got "
                                             << join(ids) << " (fast path " << fast << ")";
    }
    if (ids.size() == 1 && ids[0] == id && !fast) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "expected only " << id << " under " << profile(s.profile).name
                                         << ", got " << join(ids) << " (fast path " << fast << ")";
}

/// A catalogue entry's boundary value made concrete: its guest on the valid
/// base it names, its CPU model, its host (a valid one with its pokes) and
/// its guest memory. The evaluation under `p`.
struct BoundaryCase {
    arch::Vmcb vmcb;
    CpuModel cpu = default_model();
    std::optional<HostState> host;
    const GuestMemory* memory = nullptr;
    std::optional<VmsaState> vmsa;

    [[nodiscard]] Context ctx(const Profile& p) const {
        return Context{vmcb, cpu, p, host ? &*host : nullptr, memory, vmsa ? &*vmsa : nullptr};
    }
};

/// A VMSA as a KVM dump gives it, with only SEV_FEATURES.
inline VmsaState vmsa_with(std::uint64_t sev_features) {
    VmsaState v;
    v.sev_features = sev_features;
    return v;
}

inline BoundaryCase realize(const Boundary& b) {
    // The PDPT of valid_vmcb_pae32 (CR3 = 0x2000): entry 0 present, with or
    // without the reserved RW bit.
    static const MapMemory valid = [] {
        MapMemory m;
        m.words = {{0x2000, 0x1001}, {0x2008, 0}, {0x2010, 0}, {0x2018, 0}};
        return m;
    }();
    static const MapMemory reserved = [] {
        MapMemory m;
        m.words = {{0x2000, 0x1003}, {0x2008, 0}, {0x2010, 0}, {0x2018, 0}};
        return m;
    }();
    static const MapMemory nothing;
    BoundaryCase c;
    switch (b.base) {
        case BaseGuest::long64: c.vmcb = valid_vmcb64(); break;
        case BaseGuest::pae32: c.vmcb = valid_vmcb_pae32(); break;
        case BaseGuest::legacy32: c.vmcb = valid_vmcb_legacy32(); break;
    }
    apply_boundary(b, c.vmcb);
    if (!b.features.empty()) {
        const auto r = apply_feature_edits(c.cpu, b.features);
        EXPECT_TRUE(r.has_value()) << b.features;
    }
    if (b.maxphyaddr != 0) c.cpu.maxphyaddr = b.maxphyaddr;
    if (b.with_host) c.host = apply_boundary(b, valid_host());
    if (b.vmsa_sev_features) c.vmsa = vmsa_with(*b.vmsa_sev_features);
    switch (b.memory) {
        case GuestMem::not_given: break;
        case GuestMem::pdpt_valid: c.memory = &valid; break;
        case GuestMem::pdpt_reserved: c.memory = &reserved; break;
        case GuestMem::nothing_backed: c.memory = &nothing; break;
    }
    return c;
}

inline constexpr std::array kAllProfileIds = {ProfileId::apm, ProfileId::kvm,    ProfileId::qemu,
                                              ProfileId::bochs, ProfileId::xen, ProfileId::hyperv};

inline std::string profile_param_name(const ::testing::TestParamInfo<ProfileId>& info) {
    return std::string(profile(info.param).name);
}

}  // namespace nsvm::checks::test
