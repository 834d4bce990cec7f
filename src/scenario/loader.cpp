// The scenario loader: YAML (a JSON file is valid YAML, so one loader serves
// both). Every key is checked: unknown keys are errors with the closest
// known name, values are range-checked, errors carry file:line.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "nsvm/arch/bits.hpp"
#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/arch/intercepts.hpp"
#include "nsvm/checks/profile.hpp"
#include "nsvm/formats/vmcb_io.hpp"
#include "nsvm/scenario/scenario.hpp"
#include "nsvm/util/text.hpp"

namespace nsvm::scenario {

std::string Error::to_string() const {
    std::string s = file;
    if (line > 0) s += fmt::format(":{}", line);
    if (!key.empty()) s += fmt::format(": {}", key);
    return s + ": " + message;
}

namespace {

namespace pte = arch::pte;

struct Fail {
    Error e;
};

/// Largest scenario file and largest VMCB file read (a VMCB file is a few
/// KiB of JSON; a scenario, a few hundred lines).
constexpr std::uintmax_t kMaxScenarioBytes = 16U << 20;
constexpr std::uintmax_t kMaxVmcbFileBytes = 1U << 20;
/// Largest kvm_nested_state file: KVM's SVM state is 4224 bytes; a VMM's
/// buffer may be larger (QEMU sizes it by KVM_CAP_NESTED_STATE), never by much.
constexpr std::uintmax_t kMaxKvmStateBytes = 64U << 10;

/// The contents of a regular file of at most `limit` bytes, or why not: a
/// device, FIFO or huge file named as input must not exhaust memory.
nsvm::expected<std::string, std::string> read_bounded(const std::filesystem::path& path, std::uintmax_t limit) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) return nsvm::unexpected(std::string("not a regular file"));
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) return nsvm::unexpected(ec.message());
    if (size > limit) return nsvm::unexpected(fmt::format("{} bytes, more than the {} allowed", size, limit));
    std::ifstream f(path, std::ios::binary);
    if (!f) return nsvm::unexpected(std::string("cannot read the file"));
    std::string text(static_cast<std::size_t>(size), '\0');
    f.read(text.data(), static_cast<std::streamsize>(size));
    text.resize(static_cast<std::size_t>(f.gcount()));
    return text;
}

/// Bounds what a YAML document may expand to and refuses duplicate keys, on
/// the parser's events, before any node graph is walked. yaml-cpp keeps an
/// alias as a second reference to its anchor's node, so a walk (the inline
/// VMCB's conversion, every loop over a mapping) visits the anchored tree
/// once per reference: a few lines of nested aliases would expand to
/// billions of nodes. Here an alias costs the size of what it names, and the
/// document's expanded size must stay under kMaxExpandedNodes. yaml-cpp also
/// keeps both entries of a duplicated key, where the loader would silently
/// use one: refused with both lines. An alias inside the collection it names
/// makes the node graph a cycle (any walk recurses forever): refused too, and
/// so is nesting deeper than kMaxDepth counting what aliases bring in.
class InputGuard final : public YAML::EventHandler {
public:
    static constexpr std::uint64_t kMaxExpandedNodes = 200'000;
    static constexpr std::size_t kMaxDepth = 64;  ///< as the JSON readers' limit (docs/limits.md)

    explicit InputGuard(const std::string& file) : file_(file) {}

    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& m, YAML::anchor_t a) override { leaf(m, a, "~"); }
    void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t a, const std::string& v) override {
        leaf(m, a, v);
    }
    void OnAlias(const YAML::Mark& m, YAML::anchor_t a) override {
        node(m, nullptr);
        for (const auto& f : stack_)
            if (a != 0 && f.anchor == a)
                refuse(m, "", "an alias inside the collection its anchor names: the document refers to itself");
        add(m, a < anchor_size_.size() && anchor_size_[a] != 0 ? anchor_size_[a] : 1);
        child(m, a < anchor_height_.size() ? anchor_height_[a] : 0);
    }
    void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t a, YAML::EmitterStyle::value) override {
        open(m, a, false);
    }
    void OnSequenceEnd() override { close(); }
    void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t a, YAML::EmitterStyle::value) override {
        open(m, a, true);
    }
    void OnMapEnd() override { close(); }

private:
    struct Frame {
        bool map = false;
        bool expect_key = true;
        YAML::anchor_t anchor = 0;
        std::uint64_t start = 0;  ///< expanded_ when the collection opened
        std::size_t height = 0;   ///< levels of nesting below it so far
        std::unordered_map<std::string, int> keys;  ///< a mapping's scalar keys -> line
    };

    [[noreturn]] void refuse(const YAML::Mark& m, const std::string& key, const std::string& msg) const {
        throw Fail{Error{file_, m.line >= 0 ? m.line + 1 : 0, key, msg}};
    }
    void add(const YAML::Mark& m, std::uint64_t n) {
        expanded_ += n;
        if (expanded_ > kMaxExpandedNodes)
            refuse(m, "", fmt::format("the document expands to more than {} YAML nodes (an alias counts as "
                                      "what it names); write aliased values out, or split the scenario",
                                      kMaxExpandedNodes));
    }
    /// A node starts: in a mapping it is a key or a value in turn; a
    /// scalar key must not repeat.
    void node(const YAML::Mark& m, const std::string* scalar) {
        if (stack_.empty() || !stack_.back().map) return;
        Frame& f = stack_.back();
        const bool is_key = f.expect_key;
        f.expect_key = !f.expect_key;
        if (!is_key || scalar == nullptr) return;
        const int line = m.line >= 0 ? m.line + 1 : 0;
        if (const auto [it, fresh] = f.keys.emplace(*scalar, line); !fresh)
            refuse(m, *scalar, fmt::format("duplicate key (first at line {})", it->second));
    }
    void leaf(const YAML::Mark& m, YAML::anchor_t a, const std::string& v) {
        node(m, &v);
        add(m, 1);
        remember(a, 1, 0);
    }
    void open(const YAML::Mark& m, YAML::anchor_t a, bool map) {
        node(m, nullptr);
        add(m, 1);
        if (stack_.size() >= kMaxDepth)
            refuse(m, "", fmt::format("nested deeper than {} levels", kMaxDepth));
        stack_.push_back(Frame{map, true, a, expanded_ - 1, 0, {}});
    }
    /// A child `height` levels tall joins the innermost collection; with
    /// what an alias brings in, the depth must stay within kMaxDepth.
    void child(const YAML::Mark& m, std::size_t height) {
        if (stack_.empty()) return;
        if (stack_.size() + height > kMaxDepth)
            refuse(m, "", fmt::format("nested deeper than {} levels (counting what aliases bring in)", kMaxDepth));
        stack_.back().height = std::max(stack_.back().height, height);
    }
    void close() {
        if (stack_.empty()) return;
        const YAML::anchor_t anchor = stack_.back().anchor;
        const std::uint64_t start = stack_.back().start;
        const std::size_t height = stack_.back().height + 1;
        stack_.pop_back();
        remember(anchor, expanded_ - start, height);
        if (!stack_.empty()) stack_.back().height = std::max(stack_.back().height, height);
    }
    void remember(YAML::anchor_t a, std::uint64_t size, std::size_t height) {
        if (a == 0) return;
        if (a >= anchor_size_.size()) {
            anchor_size_.resize(a + 1, 0);
            anchor_height_.resize(a + 1, 0);
        }
        anchor_size_[a] = size;
        anchor_height_[a] = height;
    }

    const std::string& file_;
    std::vector<Frame> stack_;
    std::vector<std::uint64_t> anchor_size_;  ///< by anchor id: expanded nodes of what it names
    std::vector<std::size_t> anchor_height_;  ///< by anchor id: levels of nesting of what it names
    std::uint64_t expanded_ = 0;
};

class Loader {
public:
    explicit Loader(std::string file) : file_(std::move(file)) {}

    [[noreturn]] void fail(const YAML::Node& n, const std::string& key, const std::string& msg) const {
        throw Fail{Error{file_, n.Mark().line >= 0 ? n.Mark().line + 1 : 0, key, msg}};
    }

    void only_keys(const YAML::Node& map, const std::string& where, std::initializer_list<std::string_view> known) const {
        if (!map.IsMap()) fail(map, where, "expected a mapping");
        for (const auto& kv : map) {
            const auto k = kv.first.as<std::string>();
            if (std::find(known.begin(), known.end(), k) != known.end()) continue;
            const auto near = util::closest(k, known);
            fail(kv.first, where.empty() ? k : where + "." + k,
                 near.empty() ? "unknown key" : fmt::format("unknown key (did you mean '{}'?)", near));
        }
    }

    std::uint64_t number(const YAML::Node& n, const std::string& key, std::uint64_t max = ~std::uint64_t{0}) const {
        if (!n.IsScalar()) fail(n, key, "expected a number");
        const auto s = n.Scalar();
        std::optional<std::uint64_t> v = util::parse_u64(s);
        if (!v && !s.empty() && s[0] == '-') {
            const auto m = util::parse_u64(s.substr(1));
            if (m) v = 0 - *m;
        }
        if (!v) fail(n, key, fmt::format("'{}' is not a number (use 0x.., decimal or 0b..)", s));
        if (*v > max) fail(n, key, fmt::format("{} is out of range (max {:#x})", s, max));
        return *v;
    }

    bool boolean(const YAML::Node& n, const std::string& key) const {
        if (!n.IsScalar()) fail(n, key, "expected true or false");
        const auto s = n.Scalar();
        if (s == "true" || s == "1" || s == "yes") return true;
        if (s == "false" || s == "0" || s == "no") return false;
        fail(n, key, fmt::format("'{}' is not a boolean", s));
    }

    std::string text(const YAML::Node& n, const std::string& key) const {
        if (!n.IsScalar()) fail(n, key, "expected a string");
        return n.Scalar();
    }

    std::uint32_t msr_number(const YAML::Node& n, const std::string& key) const {
        if (n.IsScalar()) {
            static constexpr std::pair<std::string_view, std::uint32_t> names[] = {
                {"EFER", arch::msr::EFER},       {"STAR", arch::msr::STAR},         {"LSTAR", arch::msr::LSTAR},
                {"CSTAR", arch::msr::CSTAR},     {"SFMASK", arch::msr::SFMASK},     {"FS_BASE", arch::msr::FS_BASE},
                {"GS_BASE", arch::msr::GS_BASE}, {"KERNEL_GS_BASE", arch::msr::KERNEL_GS_BASE},
                {"TSC", arch::msr::TSC},         {"PAT", arch::msr::PAT},           {"VM_CR", arch::msr::VM_CR},
                {"VM_HSAVE_PA", arch::msr::VM_HSAVE_PA}, {"TSC_RATIO", arch::msr::TSC_RATIO},
                {"SPEC_CTRL", arch::msr::SPEC_CTRL}, {"SYSENTER_CS", arch::msr::SYSENTER_CS},
                {"SYSENTER_ESP", arch::msr::SYSENTER_ESP}, {"SYSENTER_EIP", arch::msr::SYSENTER_EIP},
                {"DEBUGCTL", arch::msr::DEBUGCTL}, {"TSC_AUX", arch::msr::TSC_AUX}};
            for (const auto& [nm, v] : names)
                if (n.Scalar() == nm) return v;
        }
        return static_cast<std::uint32_t>(number(n, key, 0xFFFFFFFF));
    }

    std::vector<std::uint64_t> number_list(const YAML::Node& n, const std::string& key) const {
        std::vector<std::uint64_t> v;
        if (n.IsScalar()) return {number(n, key)};
        if (!n.IsSequence()) fail(n, key, "expected a list of numbers");
        for (const auto& e : n) v.push_back(number(e, key));
        return v;
    }

    // --- sections ---
    void load_model(const YAML::Node& root, Scenario& s) const {
        std::string cpu = "zen4", profile = "apm";
        if (root["cpu"]) cpu = text(root["cpu"], "cpu");
        auto m = checks::find_builtin_model(cpu);
        if (!m) fail(root["cpu"], "cpu", m.error());
        s.cpu = *m;
        if (root["features"]) {
            auto r = checks::apply_feature_edits(s.cpu, text(root["features"], "features"));
            if (!r) fail(root["features"], "features", r.error());
        }
        if (root["maxphyaddr"]) s.cpu.maxphyaddr = static_cast<unsigned>(number(root["maxphyaddr"], "maxphyaddr", 52));
        if (s.cpu.maxphyaddr < 32) fail(root["maxphyaddr"], "maxphyaddr", "must be 32..52");
        if (root["profile"]) profile = text(root["profile"], "profile");
        auto p = checks::find_profile(profile);
        if (!p) fail(root["profile"], "profile", p.error());
        s.profile = &checks::profile(*p);
        s.memory = cpu::GuestMemory(s.cpu.maxphyaddr);
    }

    void load_options(const YAML::Node& n, Scenario& s) const {
        only_keys(n, "options", {"pre_fix_gif_bug", "nrips", "intercept_smi"});
        if (n["pre_fix_gif_bug"]) s.options.pre_fix_gif_bug = boolean(n["pre_fix_gif_bug"], "options.pre_fix_gif_bug");
        if (n["nrips"]) s.options.nrips = boolean(n["nrips"], "options.nrips");
        if (n["intercept_smi"]) s.options.intercept_smi = boolean(n["intercept_smi"], "options.intercept_smi");
    }

    unsigned intercept_bit(const YAML::Node& n, const std::string& key) const {
        const auto name = text(n, key);
        const auto b = arch::intercept::find(name);
        if (!b) fail(n, key, fmt::format("unknown intercept '{}'", name));
        return *b;
    }

    void load_l0(const YAML::Node& n, Scenario& s) const {
        only_keys(n, "l0", {"intercepts", "add_intercepts", "remove_intercepts", "passthrough_msrs",
                            "passthrough_ports", "npt", "vgif", "vls", "vnmi"});
        if (n["intercepts"]) {
            const auto& list = n["intercepts"];
            if (!(list.IsScalar() && list.Scalar() == "kvm")) {
                if (!list.IsSequence()) fail(list, "l0.intercepts", "expected 'kvm' or a list of intercept names");
                arch::Vmcb v;
                for (const auto& e : list) v.set_intercept(intercept_bit(e, "l0.intercepts"));
                for (unsigned w = 0; w < 6; ++w) s.l0.intercept_words[w] = v.intercept_word(w);
            }
        }
        auto edit = [&](const char* key, bool on) {
            if (!n[key]) return;
            if (!n[key].IsSequence()) fail(n[key], std::string("l0.") + key, "expected a list of intercept names");
            for (const auto& e : n[key]) {
                const unsigned b = intercept_bit(e, std::string("l0.") + key);
                auto& w = s.l0.intercept_words[b / 32];
                w = on ? (w | (1U << (b % 32))) : (w & ~(1U << (b % 32)));
            }
        };
        edit("add_intercepts", true);
        edit("remove_intercepts", false);
        if (n["passthrough_msrs"]) {
            const auto& l = n["passthrough_msrs"];
            if (!l.IsSequence()) fail(l, "l0.passthrough_msrs", "expected a list of MSRs");
            if (l.size() > s.l0.passthrough_msrs.size()) fail(l, "l0.passthrough_msrs", "at most 32 MSRs");
            s.l0.passthrough_count = 0;
            for (const auto& e : l) s.l0.passthrough_msrs[s.l0.passthrough_count++] = msr_number(e, "l0.passthrough_msrs");
        }
        if (n["passthrough_ports"]) {
            const auto& l = n["passthrough_ports"];
            if (!l.IsSequence()) fail(l, "l0.passthrough_ports", "expected a list of ports");
            if (l.size() > s.l0.passthrough_ports.size()) fail(l, "l0.passthrough_ports", "at most 16 ports");
            for (const auto& e : l)
                s.l0.passthrough_ports[s.l0.passthrough_port_count++] =
                    static_cast<std::uint16_t>(number(e, "l0.passthrough_ports", 0xFFFF));
        }
        if (n["npt"]) s.l0.npt = boolean(n["npt"], "l0.npt");
        // KVM's module parameters of the same names (docs/nested.md, "L0's vmcb01").
        if (n["vgif"]) s.l0.vgif = boolean(n["vgif"], "l0.vgif");
        if (n["vls"]) s.l0.vls = boolean(n["vls"], "l0.vls");
        if (n["vnmi"]) s.l0.vnmi = boolean(n["vnmi"], "l0.vnmi");
    }

    static nlohmann::json to_json(const YAML::Node& n) {
        if (n.IsMap()) {
            nlohmann::json j = nlohmann::json::object();
            for (const auto& kv : n) j[kv.first.as<std::string>()] = to_json(kv.second);
            return j;
        }
        if (n.IsSequence()) {
            nlohmann::json j = nlohmann::json::array();
            for (const auto& e : n) j.push_back(to_json(e));
            return j;
        }
        if (n.IsNull()) return nullptr;
        return n.Scalar();  // the VMCB reader accepts numbers as strings
    }

    void map_or_fail(Scenario& s, const YAML::Node& n, const std::string& key, std::uint64_t gpa, std::uint64_t size) const {
        if (!s.memory.map(gpa, size))
            fail(n, key, fmt::format("[{:#x}, {:#x}) is beyond MAXPHYADDR ({})", gpa, gpa + size, s.cpu.maxphyaddr));
    }

    void load_vmcb(const YAML::Node& item, Scenario& s, std::uint64_t gpa) const {
        const auto& v = item["vmcb"];
        if (gpa & 0xFFF) fail(item["gpa"], "memory.gpa", "a VMCB must be 4 KiB aligned");
        std::string textv, name;
        if (v.IsScalar()) {
            const auto path = std::filesystem::path(file_).parent_path() / v.Scalar();
            auto contents = read_bounded(path, kMaxVmcbFileBytes);
            if (!contents) fail(v, "memory.vmcb", fmt::format("cannot read '{}': {}", path.string(), contents.error()));
            textv = std::move(*contents);
            name = path.string();
        } else if (v.IsMap()) {
            textv = to_json(v).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            name = fmt::format("{}:{} (inline vmcb)", file_, v.Mark().line + 1);
        } else {
            fail(v, "memory.vmcb", "expected a JSON VMCB file name or an inline {control, save} mapping");
        }
        auto r = formats::read_vmcb(textv, formats::Format::json, name);
        if (!r) fail(v, "memory.vmcb", formats::to_string(r.error()));
        map_or_fail(s, item, "memory.vmcb", gpa, 4096);
        (void)s.memory.write_vmcb(gpa, r->vmcb);
    }

    void set_bit(Scenario& s, std::uint64_t addr, unsigned bit) const {
        std::uint8_t b = 0;
        (void)s.memory.read_u8(addr + bit / 8, b);
        b = static_cast<std::uint8_t>(b | (1U << (bit % 8)));
        (void)s.memory.write(addr + bit / 8, std::span<const std::uint8_t>(&b, 1));
    }

    void load_msrpm(const YAML::Node& item, Scenario& s, std::uint64_t gpa) const {
        const auto& m = item["msrpm"];
        only_keys(m, "memory.msrpm", {"read", "write", "all"});
        map_or_fail(s, item, "memory.msrpm", gpa, cpu::kMsrpmSize);
        if (m["all"] && boolean(m["all"], "memory.msrpm.all")) {
            std::vector<std::uint8_t> ones(cpu::kMsrpmSize, 0xFF);
            (void)s.memory.write(gpa, ones);
        }
        for (const char* k : {"read", "write"}) {
            if (!m[k]) continue;
            if (!m[k].IsSequence()) fail(m[k], std::string("memory.msrpm.") + k, "expected a list of MSRs");
            for (const auto& e : m[k]) {
                const auto msr = msr_number(e, std::string("memory.msrpm.") + k);
                const auto b = cpu::msrpm_bit(msr);
                if (!b) fail(e, std::string("memory.msrpm.") + k, fmt::format("MSR {:#x} is outside the MSRPM ranges (always intercepted)", msr));
                set_bit(s, gpa, *b + (k[0] == 'w' ? 1U : 0U));
            }
        }
    }

    void load_iopm(const YAML::Node& item, Scenario& s, std::uint64_t gpa) const {
        const auto& m = item["iopm"];
        only_keys(m, "memory.iopm", {"ports", "all"});
        map_or_fail(s, item, "memory.iopm", gpa, cpu::kIopmSize);
        if (m["all"] && boolean(m["all"], "memory.iopm.all")) {
            std::vector<std::uint8_t> ones(cpu::kIopmSize, 0xFF);
            (void)s.memory.write(gpa, ones);
        }
        if (m["ports"])
            for (auto p : number_list(m["ports"], "memory.iopm.ports")) {
                if (p > 0xFFFF) fail(m["ports"], "memory.iopm.ports", "port out of range");
                set_bit(s, gpa, static_cast<unsigned>(p));
            }
    }

    /// A guest paging format (APM 5.3): entry width, levels and where
    /// each level's index sits in the linear address.
    struct PagingFormat {
        const char* name;
        unsigned levels;       ///< table levels below CR3 (PAE: the PDPT counts)
        unsigned entry_bytes;  ///< 4 (legacy) or 8
        unsigned index_bits;   ///< 10 (legacy) or 9
        unsigned la_bits;      ///< linear address width (canonical above it in long mode)
    };
    static constexpr PagingFormat kLegacy{"legacy", 2, 4, 10, 32}, kPae{"pae", 3, 8, 9, 32},
        kFourLevel{"4-level", 4, 8, 9, 48}, kFiveLevel{"5-level", 5, 8, 9, 57};

    [[nodiscard]] static unsigned level_shift(const PagingFormat& f, unsigned level) noexcept {
        return pte::level_shift(level, f.index_bits);
    }
    /// The level a page of `size` is mapped at, 0 when the format cannot
    /// map it (APM 5.3: 4 MiB only legacy, 2 MiB PAE and long mode, 1 GiB
    /// long mode only).
    [[nodiscard]] static unsigned leaf_level(const PagingFormat& f, const std::string& size) noexcept {
        const bool legacy = f.entry_bytes == 4;
        if (size == "4k") return 1;
        if (size == "4m") return legacy ? 2 : 0;
        if (size == "2m") return legacy ? 0 : 2;
        if (size == "1g") return f.levels >= 4 ? 3 : 0;
        return 0;
    }

    /// An entry a page_tables walk slot holds, read and written at the
    /// format's width.
    [[nodiscard]] std::uint64_t table_entry(const Scenario& s, std::uint64_t at, unsigned bytes) const {
        std::uint64_t e = 0;
        (void)s.memory.read_le(at, bytes, e);
        return e;
    }
    void put_table_entry(Scenario& s, std::uint64_t at, unsigned bytes, std::uint64_t v) const {
        (void)s.memory.write_le(at, bytes, v);
    }

    /// The leaf entry of one `page_tables.map` item (APM 5.4.1, 5.3 figures):
    /// P, R/W, U/S, A, D, PS for a large page, NX (bit 63), the frame, and
    /// any `reserved` bits as given.
    [[nodiscard]] std::uint64_t leaf_entry(const YAML::Node& m, const PagingFormat& f, unsigned leaf, std::uint64_t g,
                                           const Scenario& s) const {
        const auto flag = [&](const char* k, bool dflt) {
            return m[k] ? boolean(m[k], std::string("memory.page_tables.map[].") + k) : dflt;
        };
        const bool legacy = f.entry_bytes == 4;
        if (flag("nx", false) && legacy)
            fail(m["nx"], "memory.page_tables.map[].nx", "legacy 2-level entries have no NX bit (APM 5.3.2); use pae or a long-mode format");
        const std::uint64_t page = std::uint64_t{1} << level_shift(f, leaf);
        if ((g & (page - 1)) != 0) fail(m["gpa"], "memory.page_tables.map[].gpa", fmt::format("{:#x} is not aligned to the page size", g));
        // Legacy 4 KiB frames are 32-bit; a 4 MiB page reaches 40 bits through
        // PDE bits 20:13 (APM 5.3.2); the others MAXPHYADDR.
        const unsigned pa_bits = legacy ? (leaf == 1 ? 32U : std::min(40U, s.cpu.maxphyaddr)) : s.cpu.maxphyaddr;
        if (pa_bits < 64 && (g >> pa_bits) != 0)
            fail(m["gpa"], "memory.page_tables.map[].gpa",
                 fmt::format("{:#x} does not fit the {} bits this {} entry holds", g, pa_bits, f.name));
        std::uint64_t e = (flag("present", true) ? pte::P : 0) | (flag("write", true) ? pte::RW : 0) |
                          (flag("user", true) ? pte::US : 0) | (flag("accessed", false) ? pte::A : 0) |
                          (flag("dirty", false) ? pte::D : 0);
        if (leaf > 1) e |= pte::PS;
        if (legacy && leaf == 2) e |= pte::pse_4m_pde_frame(g);
        else e |= g;
        if (flag("nx", false)) e |= pte::NX;
        if (m["reserved"]) {
            const std::uint64_t rsv = number(m["reserved"], "memory.page_tables.map[].reserved", arch::width_mask(f.entry_bytes));
            e |= rsv;
        }
        return e;
    }

    /// The tables one `npt` or `page_tables` item builds: their format, the
    /// root, the page the next new table takes (tables follow the root's
    /// page in the order the mappings need them), and the names its
    /// messages give: the mapping's key and its address's key in it.
    struct TableTree {
        const PagingFormat& format;
        std::uint64_t root;
        std::uint64_t next;
        std::string item_key;  ///< "memory.npt[]", "memory.page_tables.map[]"
        std::string address;   ///< the mapped address's key in the item: "gpa" (npt), "la" (page_tables)
    };

    /// Index bits a level's table takes: 2 in the PAE PDPT (4 entries, APM
    /// 5.3.3), the format's own (9, legacy 10) elsewhere.
    [[nodiscard]] static unsigned index_bits(const PagingFormat& f, unsigned level) noexcept {
        return &f == &kPae && level == 3 ? arch::pdpe::kIndexBits : f.index_bits;
    }
    /// The address of `addr`'s entry in the level's table at `table`.
    [[nodiscard]] static std::uint64_t entry_address(const PagingFormat& f, std::uint64_t table, std::uint64_t addr,
                                                     unsigned level) noexcept {
        return table + ((addr >> level_shift(f, level)) & (arch::bit(index_bits(f, level)) - 1)) * f.entry_bytes;
    }
    /// Does an entry above the leaf point to a table? Present with PS clear
    /// (APM 5.4.1); a PAE PDPTE always does, its bit 7 being reserved. Any
    /// other entry there is a large page (present or not) an earlier mapping wrote.
    [[nodiscard]] static bool points_to_table(const PagingFormat& f, unsigned level, std::uint64_t e) noexcept {
        return (e & pte::P) != 0 && ((e & pte::PS) == 0 || (&f == &kPae && level == 3));
    }
    /// The size of a page a level's entry maps, in words ("2 MiB").
    [[nodiscard]] static std::string page_size_name(const PagingFormat& f, unsigned level) {
        const unsigned shift = level_shift(f, level);
        return shift >= 30 ? fmt::format("{} GiB", 1U << (shift - 30)) : fmt::format("{} MiB", 1U << (shift - 20));
    }

    /// A new table for an entry of `level` that was not there: the next
    /// page, and the entry pointing to it. APM 5.3.3: a PAE PDPTE has P and
    /// no R/W or U/S (its bits 2:1 are reserved); the other levels grant
    /// all, so the leaf decides and the first walk's A bits show.
    [[nodiscard]] std::uint64_t new_table(TableTree& t, Scenario& s, const YAML::Node& m, unsigned level) const {
        if (t.format.entry_bytes == 4 && (t.next >> 32) != 0)
            fail(m, t.item_key, "legacy tables must lie below 4 GiB: move the root lower");
        map_or_fail(s, m, t.item_key, t.next, 4096);
        const std::uint64_t e =
            t.next | (&t.format == &kPae && level == 3 ? arch::pdpe::P : pte::P | pte::RW | pte::US);
        t.next += 4096;
        return e;
    }

    /// Where the leaf entry of the mapping `m` goes: the entry for `addr` at
    /// level `leaf`, reached from the root as the processor's walk reaches
    /// it (APM 5.3), a table made for each entry not yet written. An entry
    /// an earlier mapping wrote is never overwritten; refused instead
    /// (exit 2, the mapping's address key): `addr` inside a large page (the
    /// walk ends at that page; going on would write the entry into the
    /// page's data), a large page where a table is (the pages mapped through
    /// the table would be cut off), and a page mapped twice.
    [[nodiscard]] std::uint64_t leaf_slot(TableTree& t, Scenario& s, const YAML::Node& m, std::uint64_t addr,
                                          unsigned leaf) const {
        const PagingFormat& f = t.format;
        const YAML::Node at = m[t.address];
        const std::string key = t.item_key + "." + t.address;
        std::uint64_t table = t.root;
        for (unsigned level = f.levels; level > leaf; --level) {
            const std::uint64_t slot = entry_address(f, table, addr, level);
            std::uint64_t e = table_entry(s, slot, f.entry_bytes);
            if (e == 0) {
                e = new_table(t, s, m, level);
                put_table_entry(s, slot, f.entry_bytes, e);
            } else if (!points_to_table(f, level, e)) {
                const std::uint64_t page = std::uint64_t{1} << level_shift(f, level);
                fail(at, key,
                     fmt::format("{:#x} lies in the {} page an earlier item maps at {:#x}: a walk ends at that "
                                 "page's entry and never reaches this one",
                                 addr, page_size_name(f, level), addr & ~(page - 1)));
            }
            table = e & (f.entry_bytes == 4 ? pte::kLegacyAddr : pte::kAddr);
        }
        const std::uint64_t slot = entry_address(f, table, addr, leaf);
        if (const std::uint64_t e = table_entry(s, slot, f.entry_bytes); e != 0) {
            if (leaf > 1 && points_to_table(f, leaf, e))
                fail(at, key,
                     fmt::format("a {} page at {:#x} would replace the table through which earlier items map "
                                 "smaller pages",
                                 page_size_name(f, leaf), addr));
            fail(at, key, fmt::format("{:#x} is already mapped by an earlier item", addr));
        }
        return slot;
    }

    // Nested page tables (APM 15.25.5): the 4-level long-mode format, rooted
    // at gpa (an nCR3), mapping guest-physical addresses; the other table
    // pages are allocated right after the root, one page each.
    void load_npt(const YAML::Node& item, Scenario& s, std::uint64_t root) const {
        const auto& list = item["npt"];
        if (!list.IsSequence()) fail(list, "memory.npt", "expected a list of mappings");
        if (root & 0xFFF) fail(item["gpa"], "memory.gpa", "a page-table root must be 4 KiB aligned");
        map_or_fail(s, item, "memory.npt", root, 4096);
        TableTree tree{kFourLevel, root, root + 4096, "memory.npt[]", "gpa"};
        for (const auto& m : list) {
            only_keys(m, "memory.npt[]", {"gpa", "hpa", "size", "write", "user", "nx", "present", "reserved"});
            if (!m["gpa"] || !m["hpa"]) fail(m, "memory.npt[]", "needs gpa and hpa");
            const std::uint64_t g = number(m["gpa"], "memory.npt[].gpa"), h = number(m["hpa"], "memory.npt[].hpa");
            std::string size = m["size"] ? text(m["size"], "memory.npt[].size") : "4k";
            unsigned leaf = size == "4k" ? 1 : size == "2m" ? 2 : size == "1g" ? 3 : 0;
            if (leaf == 0) fail(m["size"], "memory.npt[].size", "expected 4k, 2m or 1g");
            const bool w = !m["write"] || boolean(m["write"], "memory.npt[].write");
            const bool u = !m["user"] || boolean(m["user"], "memory.npt[].user");
            const bool nx = m["nx"] && boolean(m["nx"], "memory.npt[].nx");
            const bool p = !m["present"] || boolean(m["present"], "memory.npt[].present");
            const std::uint64_t rsv = m["reserved"] ? number(m["reserved"], "memory.npt[].reserved") : 0;
            std::uint64_t e = (h & pte::kAddr) | (p ? pte::P : 0) | (w ? pte::RW : 0) | (u ? pte::US : 0) | rsv;
            if (leaf > 1) e |= pte::PS;
            if (nx) e |= pte::NX;
            (void)s.memory.write_u64(leaf_slot(tree, s, m, g, leaf), e);
        }
    }

    // L2's (a guest's) own page tables in one of the formats of APM 5.3,
    // rooted at gpa (CR3's table; for pae the 32-byte aligned PDPT); the
    // other table pages are allocated right after the root's page. The
    // addresses are where the tables are written and what the entries hold.
    void load_page_tables(const YAML::Node& item, Scenario& s, std::uint64_t root) const {
        const auto& pt = item["page_tables"];
        only_keys(pt, "memory.page_tables", {"format", "map"});
        if (!pt["format"]) fail(pt, "memory.page_tables.format", "missing");
        const auto name = text(pt["format"], "memory.page_tables.format");
        const PagingFormat* f = nullptr;
        for (const PagingFormat* c : {&kLegacy, &kPae, &kFourLevel, &kFiveLevel})
            if (name == c->name) f = c;
        if (f == nullptr) {
            static constexpr std::array<std::string_view, 4> kFormats = {"legacy", "pae", "4-level", "5-level"};
            const auto near = util::closest(name, kFormats);
            fail(pt["format"], "memory.page_tables.format",
                 fmt::format("'{}' is not legacy, pae, 4-level or 5-level{}", name,
                             near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near)));
        }
        const bool pae = f == &kPae;
        if ((root & (pae ? 0x1F : 0xFFF)) != 0)
            fail(item["gpa"], "memory.gpa", pae ? "a PAE PDPT must be 32-byte aligned" : "a page-table root must be 4 KiB aligned");
        if ((root >> (f->levels >= 4 ? s.cpu.maxphyaddr : 32)) != 0)
            fail(item["gpa"], "memory.gpa", fmt::format("the {} root must be below {:#x}", f->name,
                                                        std::uint64_t{1} << (f->levels >= 4 ? s.cpu.maxphyaddr : 32)));
        map_or_fail(s, item, "memory.page_tables", cpu::page_of(root), 4096);
        TableTree tree{*f, root, cpu::page_of(root) + 4096, "memory.page_tables.map[]", "la"};
        if (!pt["map"]) fail(pt, "memory.page_tables.map", "missing");
        if (!pt["map"].IsSequence()) fail(pt["map"], "memory.page_tables.map", "expected a list of mappings");
        for (const auto& m : pt["map"]) {
            only_keys(m, "memory.page_tables.map[]",
                      {"la", "gpa", "size", "write", "user", "nx", "present", "accessed", "dirty", "reserved"});
            if (!m["la"] || !m["gpa"]) fail(m, "memory.page_tables.map[]", "needs la and gpa");
            const std::uint64_t la = number(m["la"], "memory.page_tables.map[].la");
            const std::uint64_t g = number(m["gpa"], "memory.page_tables.map[].gpa");
            const std::string size = m["size"] ? text(m["size"], "memory.page_tables.map[].size") : "4k";
            const unsigned leaf = leaf_level(*f, size);
            if (leaf == 0)
                fail(m["size"] ? m["size"] : m, "memory.page_tables.map[].size",
                     fmt::format("{} paging maps {}", f->name,
                                 f->entry_bytes == 4 ? "4k and 4m pages" : f->levels >= 4 ? "4k, 2m and 1g pages" : "4k and 2m pages"));
            const bool long_mode = f->levels >= 4;
            if (long_mode ? !arch::is_canonical(la, f->la_bits) : (la >> 32) != 0)
                fail(m["la"], "memory.page_tables.map[].la",
                     long_mode ? fmt::format("{:#x} is not canonical for {} paging (bits 63:{} must equal bit {})", la,
                                             f->name, f->la_bits - 1, f->la_bits - 1)
                               : fmt::format("{:#x} is beyond the 32-bit linear addresses of {} paging", la, f->name));
            if ((la & ((std::uint64_t{1} << level_shift(*f, leaf)) - 1)) != 0)
                fail(m["la"], "memory.page_tables.map[].la", fmt::format("{:#x} is not aligned to the page size", la));
            const std::uint64_t leaf_value = leaf_entry(m, *f, leaf, g, s);
            put_table_entry(s, leaf_slot(tree, s, m, la, leaf), f->entry_bytes, leaf_value);
        }
    }

    void load_memory(const YAML::Node& n, Scenario& s) const {
        if (!n.IsSequence()) fail(n, "memory", "expected a list");
        for (const auto& item : n) {
            only_keys(item, "memory[]", {"gpa", "size", "vmcb", "u64", "msrpm", "iopm", "npt", "page_tables", "comment"});
            if (!item["gpa"]) fail(item, "memory[].gpa", "missing");
            const std::uint64_t gpa = number(item["gpa"], "memory[].gpa");
            if (item["size"]) map_or_fail(s, item, "memory[].size", gpa, number(item["size"], "memory[].size", 1ULL << 32));
            if (item["vmcb"]) load_vmcb(item, s, gpa);
            if (item["msrpm"]) load_msrpm(item, s, gpa);
            if (item["iopm"]) load_iopm(item, s, gpa);
            if (item["npt"]) load_npt(item, s, gpa);
            if (item["page_tables"]) load_page_tables(item, s, gpa);
            if (item["u64"]) {
                const auto vals = number_list(item["u64"], "memory[].u64");
                map_or_fail(s, item, "memory[].u64", gpa, 8 * vals.size());
                for (std::size_t i = 0; i < vals.size(); ++i) (void)s.memory.write_u64(gpa + 8 * i, vals[i]);
            }
            // Mapped memory is free; pages written (a VMCB, a map, tables,
            // values) are stored and count against the budget.
            if (s.memory.budget_exhausted())
                fail(item, "memory[]",
                     fmt::format("guest memory budget exceeded: writing this item at {:#x} would store more than {} KiB "
                                 "of written pages (docs/scenarios.md, \"Memory budget\")",
                                 s.memory.budget_refused_gpa(), s.memory.budget() >> 10));
        }
    }

    // --- L1 state KVM refuses even when the host sets it ---
    // The scenario's `l1:` is set by the host (KVM_SET_MSRS, KVM_SET_SREGS),
    // and a state KVM refuses there is one nsvm's nested-state restore
    // refuses too: a scenario never starts from it.

    /// VM_HSAVE_PA: a 4 KiB aligned address below MAXPHYADDR (APM 15.30.4).
    void check_hsave(const YAML::Node& n, const std::string& key, std::uint64_t pa, const Scenario& s) const {
        // KVM's svm_set_msr checks a guest's write with page_address_valid
        // and lets a host write through (stored as pa & PAGE_MASK) only so
        // that guests of old kernels migrate; nsvm holds the host to the
        // guest's rule, so that every state a scenario starts from restores.
        if ((pa & 0xFFF) != 0)
            fail(n, key, fmt::format("VM_HSAVE_PA {:#x} is not 4 KiB aligned (svm_set_msr: page_address_valid)", pa));
        if ((pa & s.cpu.reserved_pa_bits()) != 0)
            fail(n, key, fmt::format("VM_HSAVE_PA {:#x} is at or above MAXPHYADDR ({}) (svm_set_msr: page_address_valid)",
                                     pa, s.cpu.maxphyaddr));
    }

    /// EFER, CR0, CR4 as KVM_SET_SREGS / a host KVM_SET_MSRS checks them.
    void check_l1_register(const YAML::Node& n, const std::string& key, arch::FieldId f, std::uint64_t v,
                           const Scenario& s) const {
        using namespace arch;
        switch (f) {
            case FieldId::efer:
                if (const std::uint64_t rsv = v & s.cpu.efer_reserved_bits(); rsv != 0)
                    fail(n, key, fmt::format("EFER {:#x} sets reserved bits {:#x} on this CPU model (kvm_valid_efer, "
                                             "set_efer: refused even from the host)", v, rsv));
                break;
            case FieldId::cr0:
                if ((v >> 32) != 0) fail(n, key, fmt::format("CR0 {:#x} sets bits 63:32 (kvm_is_valid_cr0)", v));
                if ((v & cr0::NW) && !(v & cr0::CD)) fail(n, key, fmt::format("CR0 {:#x} sets NW without CD (kvm_is_valid_cr0)", v));
                if ((v & cr0::PG) && !(v & cr0::PE)) fail(n, key, fmt::format("CR0 {:#x} sets PG without PE (kvm_is_valid_cr0)", v));
                break;
            case FieldId::cr4:
                if (const std::uint64_t rsv = v & s.cpu.cr4_reserved_bits(); rsv != 0)
                    fail(n, key, fmt::format("CR4 {:#x} sets reserved bits {:#x} on this CPU model (kvm_is_valid_cr4)", v, rsv));
                break;
            default: break;
        }
    }

    void load_l1(const YAML::Node& n, Scenario& s) const {
        if (!n.IsMap()) fail(n, "l1", "expected a mapping");
        for (const auto& kv : n) {
            const auto k = kv.first.as<std::string>();
            if (k == "gif") s.l1_gif = boolean(kv.second, "l1.gif");
            else if (k == "hsave" || k == "vm_hsave_pa") {
                s.hsave_pa = number(kv.second, "l1." + k);
                check_hsave(kv.second, "l1." + k, s.hsave_pa, s);
            } else if (k == "smbase") s.smbase = number(kv.second, "l1.smbase", 0xFFFFFFFF);
            else if (const auto f = arch::find_field("save." + k); f && arch::info(*f).kind == arch::FieldKind::integer) {
                const std::uint64_t v = number(kv.second, "l1." + k);
                check_l1_register(kv.second, "l1." + k, *f, v, s);
                s.l1_fields.emplace_back(*f, v);
            } else {
                std::vector<std::string> known = {"gif", "hsave", "vm_hsave_pa", "smbase"};
                for (const auto& fi : arch::kFields)
                    if (fi.area() == arch::Area::save) known.emplace_back(fi.member());
                const auto near = util::closest(k, known);
                fail(kv.first, "l1." + k, near.empty() ? "unknown key" : fmt::format("unknown key (did you mean '{}'?)", near));
            }
        }
    }

    void load_expect(const YAML::Node& n, Step& st) const {
        if (!n.IsMap()) fail(n, "expect", "expected a mapping");
        static const std::vector<std::string> plain = {"outcome", "exit_code", "exit_info_1", "exit_info_2", "gif",
                                                       "mode", "smm", "reason", "check", "vmcb12_reads", "owner",
                                                       "vector", "pending_db", "restore_error", "pending",
                                                       "rdx", "rcx"};
        for (const auto& kv : n) {
            Expectation e;
            e.key = kv.first.as<std::string>();
            e.line = kv.first.Mark().line + 1;
            if (e.key == "mem") {
                load_memory_expectation(kv.second, e);
                st.expect.push_back(std::move(e));
                continue;
            }
            const bool is_plain = std::find(plain.begin(), plain.end(), e.key) != plain.end();
            std::string field = e.key;
            for (const char* pre : {"vmcb12.", "vmcb02.", "vmcb01."})
                if (field.rfind(pre, 0) == 0) field = field.substr(7);
            const bool is_field = !is_plain && arch::find_field(field).has_value();
            if (kv.second.IsMap() && (is_field || e.key == "exit_info_1" || e.key == "exit_info_2" || e.key == "rdx" || e.key == "rcx")) {
                // A masked comparison: only the bits of `mask` must match.
                only_keys(kv.second, "expect." + e.key, {"value", "mask"});
                for (const char* k : {"value", "mask"})
                    if (!kv.second[k]) fail(kv.second, "expect." + e.key + "." + k, "missing");
                e.value = number(kv.second["value"], "expect." + e.key + ".value");
                e.mask = number(kv.second["mask"], "expect." + e.key + ".mask");
                e.text = fmt::format("{:#x} under mask {:#x}", e.value, e.mask);
                st.expect.push_back(std::move(e));
                continue;
            }
            if (!kv.second.IsScalar())
                fail(kv.second, "expect." + e.key,
                     is_field || e.key == "exit_info_1" || e.key == "exit_info_2" || e.key == "rdx" || e.key == "rcx"
                         ? "expected a scalar value or {value, mask}"
                         : "expected a scalar value");
            e.text = kv.second.Scalar();
            if (!is_plain && !is_field) {
                std::vector<std::string> known = plain;
                for (const auto& fi : arch::kFields) known.emplace_back(fi.name);
                const auto near = util::closest(e.key, known);
                fail(kv.first, "expect." + e.key,
                     near.empty() ? "unknown expectation key" : fmt::format("unknown expectation key (did you mean '{}'?)", near));
            }
            if (e.key == "exit_code") {
                const auto c = arch::exit_code::parse(e.text);
                if (!c) fail(kv.second, "expect.exit_code", fmt::format("'{}' is not an exit code", e.text));
                e.value = *c;
            } else if (e.key == "pending") {
                e.value = pending_events(kv.second);
            } else if (e.key == "gif" || e.key == "smm" || e.key == "pending_db") {
                e.value = boolean(kv.second, "expect." + e.key) ? 1 : 0;
            } else if (is_field || e.key == "exit_info_1" || e.key == "exit_info_2" || e.key == "vmcb12_reads" ||
                       e.key == "vector" || e.key == "rdx" || e.key == "rcx") {
                if (field == "control.exit_code") {
                    const auto c = arch::exit_code::parse(e.text);
                    if (!c) fail(kv.second, "expect." + e.key, fmt::format("'{}' is not an exit code", e.text));
                    e.value = *c;
                } else {
                    e.value = number(kv.second, "expect." + e.key);
                }
            }
            st.expect.push_back(std::move(e));
        }
    }

    /// `{gpa: A, u64|u32|u16|u8: V}` (a `write:` step, `expect.mem`): the
    /// address, the width in bytes and a value that fits it.
    void sized_value(const YAML::Node& n, const std::string& where, std::uint64_t& gpa, std::uint8_t& width,
                     std::uint64_t& value) const {
        if (!n["gpa"]) fail(n, where + ".gpa", "missing");
        gpa = number(n["gpa"], where + ".gpa");
        int widths = 0;
        for (auto [k, bytes] : {std::pair{"u64", 8}, {"u32", 4}, {"u16", 2}, {"u8", 1}}) {
            if (!n[k]) continue;
            ++widths;
            width = static_cast<std::uint8_t>(bytes);
            value = number(n[k], where + "." + k, arch::width_mask(static_cast<std::size_t>(bytes)));
        }
        if (widths != 1) fail(n, where, "give exactly one of u64, u32, u16, u8");
    }

    /// `expect: {mem: {gpa: X, u64: V, mask: M}}` (or u32, u16, u8): the
    /// machine's memory at X (L1's physical memory), compared under the
    /// optional mask as the other masked expectations.
    void load_memory_expectation(const YAML::Node& n, Expectation& e) const {
        only_keys(n, "expect.mem", {"gpa", "u64", "u32", "u16", "u8", "mask"});
        sized_value(n, "expect.mem", e.gpa, e.width, e.value);
        e.text = fmt::format("u{} at {:#x} = {:#x}", 8 * e.width, e.gpa, e.value);
        if (n["mask"]) {
            e.mask = number(n["mask"], "expect.mem.mask", arch::width_mask(e.width));
            e.text += fmt::format(" under mask {:#x}", e.mask);
        }
    }

    /// `expect: {pending: "intr, nmi"}` or `none`: the events held for later
    /// (by GIF, RFLAGS.IF, or intercepted and not yet taken), as a bit per EventKind.
    std::uint64_t pending_events(const YAML::Node& n) const {
        std::uint64_t mask = 0;
        std::string t = n.Scalar();
        std::replace(t.begin(), t.end(), ',', ' ');
        std::istringstream words(t);
        static const std::vector<std::string> kinds = {"intr", "nmi", "smi", "init"};
        for (std::string w; words >> w;) {
            if (w == "none") continue;
            if (std::find(kinds.begin(), kinds.end(), w) == kinds.end()) {
                const auto near = util::closest(w, kinds);
                fail(n, "expect.pending",
                     fmt::format("'{}' is not a held event (intr, nmi, smi, init or none){}", w,
                                 near.empty() ? "" : fmt::format("; did you mean '{}'?", near)));
            }
            mask |= std::uint64_t{1} << static_cast<unsigned>(*cpu::find_event(w));
        }
        return mask;
    }

    void load_l2_event(const YAML::Node& n, Step& st) const {
        if (n.IsScalar()) {
            const auto k = cpu::find_event(n.Scalar());
            if (!k) fail(n, "l2", fmt::format("unknown event '{}'", n.Scalar()));
            st.event.kind = *k;
            st.event.insn_len = cpu::default_insn_len(*k);
            st.what = n.Scalar();
            return;
        }
        only_keys(n, "l2", {"event", "msr", "value", "port", "size", "in", "string", "rep", "cr", "dr", "vector",
                            "error_code", "cr2", "gpa", "write", "user", "fetch", "insn_len", "gpr", "address",
                            "type", "linear"});
        if (!n["event"]) fail(n, "l2.event", "missing");
        const auto name = text(n["event"], "l2.event");
        const auto k = cpu::find_event(name);
        if (!k) fail(n["event"], "l2.event", fmt::format("unknown event '{}'", name));
        auto& e = st.event;
        e.kind = *k;
        e.insn_len = cpu::default_insn_len(*k);
        st.what = name;
        if (n["msr"]) e.index = msr_number(n["msr"], "l2.msr");
        if (n["port"]) e.index = static_cast<std::uint32_t>(number(n["port"], "l2.port", 0xFFFF));
        if (n["cr"]) e.index = static_cast<std::uint32_t>(number(n["cr"], "l2.cr", 15));
        if (n["dr"]) e.index = static_cast<std::uint32_t>(number(n["dr"], "l2.dr", 15));
        if (n["vector"]) e.index = static_cast<std::uint32_t>(number(n["vector"], "l2.vector", 31));
        if (n["type"]) e.index = static_cast<std::uint32_t>(number(n["type"], "l2.type", 3));  // INVPCID's type
        if (n["size"]) {
            const auto sz = number(n["size"], "l2.size", 4);
            if (sz != 1 && sz != 2 && sz != 4) fail(n["size"], "l2.size", "I/O size must be 1, 2 or 4");
            e.size = static_cast<std::uint8_t>(sz);
        }
        if (n["value"]) e.value = number(n["value"], "l2.value");
        if (n["address"]) e.value = number(n["address"], "l2.address");
        if (n["gpa"]) e.value = number(n["gpa"], "l2.gpa");
        if (n["linear"]) load_linear_access(n, st);
        if (n["in"]) e.in = boolean(n["in"], "l2.in");
        if (n["string"]) e.string = boolean(n["string"], "l2.string");
        if (n["rep"]) e.rep = boolean(n["rep"], "l2.rep");
        if (n["error_code"]) e.error_code = static_cast<std::uint32_t>(number(n["error_code"], "l2.error_code", 0xFFFFFFFF));
        if (n["cr2"]) e.cr2 = number(n["cr2"], "l2.cr2");
        if (n["write"]) e.access.write = boolean(n["write"], "l2.write");
        if (n["user"]) e.access.user = boolean(n["user"], "l2.user");
        if (n["fetch"]) e.access.fetch = boolean(n["fetch"], "l2.fetch");
        if (n["insn_len"]) e.insn_len = static_cast<std::uint8_t>(number(n["insn_len"], "l2.insn_len", 15));
        if (n["gpr"]) e.gpr = static_cast<std::uint8_t>(number(n["gpr"], "l2.gpr", 15));
    }

    /// `l2: {event: memory, linear: LA}`: an access at a linear address,
    /// through L2's own paging (Event::linear). `gpa`/`address` name a
    /// guest-physical address instead; `user` is not the scenario's to say:
    /// the processor takes it from L2's CPL (APM 5.6: CPL 3 is a user access).
    void load_linear_access(const YAML::Node& n, Step& st) const {
        if (st.event.kind != cpu::EventKind::memory) fail(n["linear"], "l2.linear", "only a memory event has a linear address");
        for (const char* k : {"gpa", "address"})
            if (n[k])
                fail(n[k], std::string("l2.") + k,
                     "give either linear (an address L2's page tables translate) or a guest-physical address, not both");
        if (n["user"]) fail(n["user"], "l2.user", "a linear access is a user access exactly when L2 runs at CPL 3; set L2's CPL instead");
        st.event.linear = true;
        st.event.value = number(n["linear"], "l2.linear");
    }

    void load_steps(const YAML::Node& n, Scenario& s) const {
        if (!n.IsSequence()) fail(n, "steps", "expected a list");
        for (const auto& item : n) {
            only_keys(item, "steps[]", {"name", "l1", "l2", "external", "save_restore", "restore_kvm_state", "write",
                                        "host_efer", "expect", "comment"});
            Step st;
            st.line = item.Mark().line + 1;
            if (item["name"]) st.label = text(item["name"], "steps[].name");
            int actions = 0;
            if (item["l1"]) {
                ++actions;
                st.kind = StepKind::l1;
                const auto& a = item["l1"];
                if (a.IsScalar()) {
                    st.what = a.Scalar();
                    for (const L1Instruction& insn : l1_instructions())
                        if (insn.name == st.what) st.l1 = &insn;
                    if (st.l1 == nullptr) {
                        std::vector<std::string> insns;
                        for (const L1Instruction& insn : l1_instructions()) insns.emplace_back(insn.name);
                        const auto near = util::closest(st.what, insns);
                        fail(a, "l1", near.empty() ? fmt::format("unknown L1 instruction '{}'", st.what)
                                                   : fmt::format("unknown L1 instruction '{}' (did you mean '{}'?)", st.what, near));
                    }
                } else {
                    only_keys(a, "l1", {"wrmsr", "rdmsr", "value"});
                    if (a["wrmsr"]) {
                        st.what = "wrmsr";
                        st.msr = msr_number(a["wrmsr"], "l1.wrmsr");
                        if (!a["value"]) fail(a, "l1.value", "wrmsr needs a value");
                        st.value = number(a["value"], "l1.value");
                    } else if (a["rdmsr"]) {
                        st.what = "rdmsr";
                        st.msr = msr_number(a["rdmsr"], "l1.rdmsr");
                    } else {
                        fail(a, "l1", "expected an instruction name, {wrmsr: MSR, value: V} or {rdmsr: MSR}");
                    }
                }
            }
            if (item["l2"]) {
                ++actions;
                st.kind = StepKind::l2;
                load_l2_event(item["l2"], st);
            }
            if (item["external"]) {
                ++actions;
                st.kind = StepKind::external;
                st.what = text(item["external"], "external");
                const auto k = cpu::find_event(st.what);
                if (!k || (*k != cpu::EventKind::intr && *k != cpu::EventKind::nmi && *k != cpu::EventKind::smi &&
                           *k != cpu::EventKind::init))
                    fail(item["external"], "external", "expected intr, nmi, smi or init");
                st.event.kind = *k;
            }
            if (item["save_restore"]) {
                ++actions;
                st.kind = StepKind::save_restore;
                const auto& sr = item["save_restore"];
                st.kvm_layout = sr.IsScalar() && sr.Scalar() == "kvm";
                st.what = st.kvm_layout ? "save_restore: kvm" : "save_restore";
                if (!st.kvm_layout) (void)boolean(sr, "save_restore");
            }
            if (item["restore_kvm_state"]) {
                // A struct kvm_nested_state file (KVM_GET_NESTED_STATE's
                // bytes, or nsvm run --save-kvm-state), relative to the scenario.
                ++actions;
                st.kind = StepKind::restore_kvm_state;
                const auto& f = item["restore_kvm_state"];
                const auto path = std::filesystem::path(file_).parent_path() / text(f, "restore_kvm_state");
                auto contents = read_bounded(path, kMaxKvmStateBytes);
                if (!contents)
                    fail(f, "restore_kvm_state", fmt::format("cannot read '{}': {}", path.string(), contents.error()));
                st.blob.assign(contents->begin(), contents->end());
                st.what = path.string();
            }
            if (item["write"]) {
                ++actions;
                st.kind = StepKind::write;
                const auto& w = item["write"];
                only_keys(w, "write", {"gpa", "u64", "u32", "u16", "u8"});
                sized_value(w, "write", st.gpa, st.width, st.value);
                st.what = "write";
            }
            if (item["host_efer"]) {
                ++actions;
                st.kind = StepKind::host_efer;
                st.what = "host_efer";
                st.value = number(item["host_efer"], "host_efer");
                check_l1_register(item["host_efer"], "host_efer", arch::FieldId::efer, st.value, s);
            }
            if (actions != 1 && !(actions == 0 && item["expect"]))
                fail(item, "steps[]",
                     "each step needs exactly one of l1, l2, external, save_restore, restore_kvm_state, write, host_efer");
            if (actions == 0) {
                st.kind = StepKind::restore_blob_edit;  // expectation-only step
                st.what = "check";
            }
            if (item["expect"]) load_expect(item["expect"], st);
            s.steps.push_back(std::move(st));
        }
    }

    Scenario load(std::string_view text_in) const {
        YAML::Node root;
        try {
            std::istringstream events{std::string(text_in)};
            YAML::Parser parser(events);
            InputGuard guard(file_);
            (void)parser.HandleNextDocument(guard);  // YAML::Load reads the first document too
            root = YAML::Load(std::string(text_in));
        } catch (const YAML::Exception& e) {
            throw Fail{Error{file_, e.mark.line >= 0 ? e.mark.line + 1 : 0, "", e.msg}};
        }
        if (!root.IsMap()) throw Fail{Error{file_, 1, "", "a scenario is a mapping with at least 'steps'"}};
        only_keys(root, "", {"name", "description", "cpu", "features", "maxphyaddr", "profile", "options", "l0",
                             "memory_budget", "tsc", "memory", "l1", "steps"});
        Scenario s;
        s.file = file_;
        s.l0 = nested::L0Config::kvm_default();
        s.name = root["name"] ? text(root["name"], "name") : std::filesystem::path(file_).stem().string();
        if (root["description"]) s.description = text(root["description"], "description");
        load_model(root, s);
        // The budget of written guest memory may be lowered, never raised:
        // no scenario makes nsvm keep more than the default.
        if (root["memory_budget"]) {
            const auto b = number(root["memory_budget"], "memory_budget", cpu::GuestMemory::kDefaultBudget);
            if (b < cpu::kPageSize) fail(root["memory_budget"], "memory_budget", "at least one 4 KiB page");
            s.memory.set_budget(b);
        }
        // The host TSC the processor starts with (APM 15.30.4/15.30.5 apply
        // to it while a guest runs); the model's TSC does not advance.
        if (root["tsc"]) s.host_tsc = number(root["tsc"], "tsc");
        if (root["options"]) load_options(root["options"], s);
        if (root["l0"]) load_l0(root["l0"], s);
        if (root["memory"]) load_memory(root["memory"], s);
        if (root["l1"]) load_l1(root["l1"], s);
        if (!root["steps"]) throw Fail{Error{file_, 1, "steps", "missing"}};
        load_steps(root["steps"], s);
        return s;
    }

private:
    std::string file_;
};

}  // namespace

nsvm::expected<Scenario, Error> load_text(std::string_view text, const std::string& file) {
    try {
        return Loader(file).load(text);
    } catch (const Fail& f) {
        return nsvm::unexpected(f.e);
    } catch (const YAML::Exception& e) {
        return nsvm::unexpected(Error{file, e.mark.line >= 0 ? e.mark.line + 1 : 0, "", e.msg});
    } catch (const std::exception& e) {
        return nsvm::unexpected(Error{file, 0, "", e.what()});
    }
}

nsvm::expected<Scenario, Error> load_file(const std::string& path) {
    auto text = read_bounded(path, kMaxScenarioBytes);
    if (!text) return nsvm::unexpected(Error{path, 0, "", text.error()});
    return load_text(*text, path);
}

}  // namespace nsvm::scenario
