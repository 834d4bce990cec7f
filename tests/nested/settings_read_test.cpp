// Honest profiles: every setting of checks::Profile is read by something. For every setting
// and every built-in profile, the profile with that setting at each other value it can take
// is run through the checks (the catalogue's boundary values and the oracle generator's
// vectors), the oracle's predictions, the cpu layer and the nested layer (the example
// scenarios); a setting whose change no verdict, prediction, register or VMCB byte shows
// is read by nothing, and fails the test. It lives with the nested tests because nested is
// the top layer: everything below is observable from here.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "checks/fixtures.hpp"
#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/checks/catalogue.hpp"
#include "nsvm/checks/evaluate.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/cpu/svm_cpu.hpp"
#include "nsvm/oracle/gen.hpp"
#include "nsvm/oracle/model.hpp"
#include "nsvm/scenario/scenario.hpp"

namespace nsvm::checks::test {
namespace {

namespace fs = std::filesystem;

// --- A Profile member without a table row: counted at compile time ---

/// Converts to any member type: counts an aggregate's members.
struct AnyMember {
    template <class T>
    operator T() const noexcept;  // unevaluated only
};
template <class T, class... A>
constexpr std::size_t member_count() {
    if constexpr (requires { T{A{}..., AnyMember{}}; }) {
        return member_count<T, A..., AnyMember>();
    } else {
        return sizeof...(A);
    }
}
/// id, name and description are who the profile is, not settings.
inline constexpr std::size_t kIdentityMembers = 3;

TEST(ProfileSettings, EveryMemberIsOneRowOfTheTable) {
    EXPECT_EQ(member_count<Profile>(), kIdentityMembers + settings().size())
        << "a Profile member has no row in src/checks/profile.cpp's table (or a row has no member)";
    std::set<std::string_view> keys;
    for (const auto& s : settings()) {
        EXPECT_TRUE(keys.insert(s.key).second) << s.key;
        EXPECT_FALSE(s.read_by.empty()) << s.key;
        EXPECT_FALSE(s.others(profile(ProfileId::apm)).empty()) << s.key << " can take no other value";
    }
    for (const auto& p : all_profiles()) EXPECT_EQ(p.choices().size(), settings().size()) << p.name;
}

// --- What can be observed of a profile ---

/// The vectors and models the checks and oracle observations use, made once
/// per base profile (the generator's values depend on its PA width).
struct Corpus {
    std::vector<CpuModel> models;
    std::vector<std::vector<oracle::Vector>> vectors;  ///< per model
};

Corpus corpus_for(const Profile& p) {
    Corpus c;
    auto narrow = default_model();
    narrow.maxphyaddr = 44;
    c.models = {default_model(), model("zen4", "+sss_check,+ibt,+lam,-vnmi"), model("zen4", "-npt"),
                model("zen4", "-lm"), narrow};
    for (const auto& m : c.models) {
        oracle::GenOptions o;
        o.cpu = m;
        o.profile = &p;
        o.pairs = false;
        c.vectors.push_back(oracle::generate_boundary(o));
    }
    return c;
}

/// A PAE guest without nested paging whose first PDPE has reserved bits (or
/// none, or cannot be read): the memory stage.
struct PdpeMemory {
    MapMemory bad, good, none;
    PdpeMemory() {
        bad.words = {{0x2000, 0x1003}, {0x2008, 0}, {0x2010, 0}, {0x2018, 0}};
        good.words = {{0x2000, 0x1001}, {0x2008, 0}, {0x2010, 0}, {0x2018, 0}};
    }
};

std::string verdicts(const Context& ctx) {
    const auto r = evaluate(ctx);
    std::string out = fmt::format("{}:{:#x}:", static_cast<int>(r.verdict), r.exit_code);
    for (const auto& f : r.failures) out += std::string(f.check->id) + ",";
    for (const auto& w : r.warnings) out += "w:" + w.id + ",";
    return out + ";";
}

std::string observe_checks(const Profile& p, const Corpus& c) {
    std::string out;
    // Every catalogue entry's own boundary values.
    static const std::vector<BoundaryCase> bounds = [] {
        std::vector<BoundaryCase> v;
        for (const auto& chk : catalogue())
            for (const auto& b : chk.boundary) v.push_back(realize(b));
        return v;
    }();
    for (const auto& b : bounds) out += verdicts(b.ctx(p));
    for (std::size_t m = 0; m < c.models.size(); ++m) {
        for (const auto& v : c.vectors[m]) {
            const auto host = oracle::image_host_state(v);
            out += verdicts(Context{v.vmcb, c.models[m], p, &host, nullptr});
            out += verdicts(Context{v.vmcb, c.models[m], p, nullptr, nullptr});
        }
    }
    static const PdpeMemory mem;
    auto pae = valid_vmcb_pae32();
    for (const MapMemory* m : {&mem.bad, &mem.good, &mem.none})
        out += verdicts(Context{pae, default_model(), p, nullptr, m});
    // Hosts the image never has: SMM, paging off with nested paging, 32-bit with SEV.
    auto host = valid_host();
    host.smm = true;
    out += verdicts(Context{valid_vmcb64(), default_model(), p, &host, nullptr});
    host = valid_host();
    host.cr0 = arch::cr0::PE;
    auto np = valid_vmcb64();
    np.set(FieldId::misc_ctl, arch::misc_ctl::NP_ENABLE);
    out += verdicts(Context{np, default_model(), p, &host, nullptr});
    return out;
}

template <class T>
std::string opt(const std::optional<T>& v) {
    return v ? fmt::format("{:#x}", static_cast<std::uint64_t>(*v)) : std::string("-");
}

std::string observe_oracle(const Profile& p, const Corpus& c) {
    std::string out;
    for (std::size_t m = 0; m < c.models.size(); ++m) {
        const auto model = oracle::make_checks_model(c.models[m], p);
        for (const auto& v : c.vectors[m]) {
            const auto r = model->predict(v);
            out += fmt::format("{}:{}:{}:{}:{}:{}:{}:{}:{};", static_cast<int>(r.status), r.vmrun_valid,
                               opt(r.exit_code), opt(r.exit_info_1), opt(r.exit_int_info),
                               r.gif ? (*r.gif ? "1" : "0") : "-", opt(r.next_rip), opt(r.guest_rip),
                               r.rest_unchanged);
        }
    }
    return out;
}

// The cpu layer: one machine, a few VMRUNs.
constexpr std::uint64_t kVmcb = 0x20000, kHsave = 0x50000, kIopm = 0x10000, kMsrpm = 0x14000, kPdpt = 0x2000;

std::string page_of(const cpu::GuestMemory& mem, std::uint64_t gpa) {
    arch::Vmcb v;
    if (!mem.peek_vmcb(gpa, v)) return "unbacked";
    std::uint64_t h = 1469598103934665603ULL;  // FNV-1a over the page
    for (auto b : v.page()) h = (h ^ b) * 1099511628211ULL;
    return fmt::format("{:#x}", h);
}

std::string registers(const cpu::Registers& r) {
    std::string out = fmt::format("{:#x},{:#x},{:#x},{:#x},{:#x},{:#x},{:#x},{:#x},{:#x},{:#x},{}", r.efer, r.cr0,
                                  r.cr3, r.cr4, r.dr6, r.dr7, r.rflags, r.rip, r.rsp, r.rax, r.cpl);
    for (const auto* s : {&r.es, &r.cs, &r.ss, &r.ds, &r.fs, &r.gs})
        out += fmt::format(",{:#x}/{:#x}/{:#x}/{:#x}", s->selector, s->attrib, s->limit, s->base);
    return out;
}

struct CpuRun {
    const Profile& profile;
    CpuModel model = default_model();
    cpu::GuestMemory mem{default_model().maxphyaddr};
    cpu::SvmCpu cpu{model, profile, mem};
    explicit CpuRun(const Profile& p) : profile(p) {
        for (auto [gpa, size] : {std::pair{kVmcb, arch::kVmcbSize}, {kHsave, arch::kVmcbSize},
                                 {kPdpt, arch::kVmcbSize}, {kIopm, cpu::kIopmSize}, {kMsrpm, cpu::kMsrpmSize}})
            EXPECT_TRUE(mem.map(gpa, size));
        cpu.regs() = cpu::SvmCpu::long_mode_host();
        cpu.regs().rax = kVmcb;
        cpu.regs().dr7 = 0x4FF;  // host breakpoints: #VMEXIT either restores them or disables them
        cpu.msrs().vm_hsave_pa = kHsave;
    }
    std::string run(const arch::Vmcb& v, bool vmmcall) {
        EXPECT_TRUE(mem.write_vmcb(kVmcb, v));
        std::string out = fmt::format("{};", static_cast<int>(cpu.clgi().outcome));
        const auto r = cpu.vmrun();
        out += fmt::format("{}:{:#x}:{};", static_cast<int>(r.outcome), r.exit_code, r.vector);
        if (vmmcall && cpu.in_guest()) {
            cpu::Event e;
            e.kind = cpu::EventKind::vmmcall;
            const auto x = cpu.guest_event(e);
            out += fmt::format("{}:{:#x};", static_cast<int>(x.outcome), x.exit_code);
        }
        return out + registers(cpu.regs()) + fmt::format(";gif {};", cpu.gif()) + page_of(mem, kVmcb) + ";" +
               page_of(mem, kHsave);
    }
};

std::string observe_cpu(const Profile& p) {
    std::string out;
    auto guest = valid_vmcb64();
    guest.set(FieldId::iopm_base_pa, kIopm);
    guest.set(FieldId::msrpm_base_pa, kMsrpm);
    guest.set_intercept(arch::intercept::VMMCALL);
    // A DS base non-canonical even for 57-bit addresses: does #VMEXIT write
    // it back canonicalized?
    auto ds = guest.segment(arch::Seg::ds);
    ds.base = 0x0100000000000000ULL;
    guest.set_segment(arch::Seg::ds, ds);
    out += CpuRun(p).run(guest, true);
    // A failed VMRUN with an event pending: the write-back, EVENTINJ, GIF, exit code.
    auto bad = guest;
    bad.set(FieldId::asid, 0);
    bad.set(FieldId::event_inj, arch::event::V | (3U << 8) | 13U | arch::event::EV);
    out += CpuRun(p).run(bad, false);
    // VMRUN in virtual-8086 mode (#UD or #GP), and with host paging off.
    {
        CpuRun v86(p);
        v86.cpu.regs().rflags |= arch::rflags::VM;
        v86.cpu.regs().cpl = 3;
        out += v86.run(guest, false);
    }
    return out;
}

// The nested layer: every example scenario, under the profile.
std::vector<fs::path> scenario_files() {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(fs::path(NSVM_SOURCE_DIR) / "examples/scenarios"))
        if (e.path().extension() == ".yaml") out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

std::string observe_nested(const Profile& p) {
    std::string out;
    for (const auto& f : scenario_files()) {
        auto s = scenario::load_file(f.string());
        if (!s) {
            ADD_FAILURE() << f;
            continue;
        }
        s->profile = &p;
        std::ostringstream trace;
        const auto r = scenario::run(*s, scenario::RunOptions{}, trace);
        out += fmt::format("{}:{}:{}:{}\n", f.filename().string(), r.status, r.steps_run, trace.str());
        for (std::uint64_t gpa : {0x20000ULL, 0x50000ULL}) out += page_of(s->memory, gpa) + ";";
    }
    return out;
}

struct Observer {
    std::map<ProfileId, Corpus> corpora;
    const Corpus& corpus(const Profile& p) {
        auto it = corpora.find(p.id);
        if (it == corpora.end()) it = corpora.emplace(p.id, corpus_for(profile(p.id))).first;
        return it->second;
    }
    std::string operator()(const Profile& p) {
        const auto& c = corpus(p);
        return observe_checks(p, c) + "|" + observe_oracle(p, c) + "|" + observe_cpu(p) + "|" + observe_nested(p);
    }
};

TEST(ProfileSettings, EverySettingIsReadBySomething) {
    Observer observe;
    std::map<ProfileId, std::string> base;
    for (const auto& p : all_profiles()) base[p.id] = observe(p);
    for (const auto& s : settings()) {
        bool read = false;
        for (const auto& p : all_profiles()) {
            for (const auto& q : s.others(p)) {
                if (observe(q) != base[p.id]) {
                    read = true;
                    break;
                }
            }
            if (read) break;
        }
        EXPECT_TRUE(read) << "profile setting '" << s.key << "' (declared reader: " << s.read_by
                          << ") changes nothing any layer shows under any profile: nothing reads it";
    }
}

}  // namespace
}  // namespace nsvm::checks::test
