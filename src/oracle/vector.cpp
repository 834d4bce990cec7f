// Vector and result formats (docs/oracle.md).
#include "nsvm/oracle/vector.hpp"

#include <algorithm>
#include <functional>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nsvm/arch/exit_codes.hpp"
#include "nsvm/util/text.hpp"

namespace nsvm::oracle {
namespace {

using json = nlohmann::ordered_json;
using formats::Diagnostic;

constexpr std::array<std::string_view, kProgramCount> kProgramNames = {
    "vmmcall", "hlt",   "cpuid", "rdmsr",  "wrmsr",  "in",    "out",   "ud2",   "int3",   "load", "store",
    "stgi",    "clgi",  "vmload", "vmsave", "vmrun", "div0", "rdtsc", "pause", "invd",   "wbinvd",
    "rdtscp",  "xsetbv", "rdpru", "invpcid", "lmsw", "clts", "sti",   "cli",   "fnop",   "nop",  "jmp",
    "iret"};

constexpr std::array<std::string_view, 10> kVectorMembers = {"id",   "vmcb",   "l2",   "msrpm",  "iopm",
                                                             "paging", "host", "checks", "note", "expected"};
constexpr std::array<std::string_view, 3> kPagingMembers = {"pa", "value", "size"};
constexpr std::array<std::string_view, 2> kL2Members = {"program", "regs"};
constexpr std::array<std::string_view, 6> kHostMembers = {"gif",      "svme",      "vmrun_rax",
                                                          "hsave_pa", "probe_gif", "repeat"};
constexpr std::array<std::string_view, 2> kMsrMembers = {"msr", "access"};
constexpr std::array<std::string_view, 3> kStatusNames = {"vmexit", "exception", "cannot_run"};
constexpr std::array<std::string_view, 5> kVerdictNames = {"enters", "vmrun_fails", "exception", "hangs",
                                                           "not_predicted"};
constexpr std::array<std::string_view, 7> kExpectedMembers = {"cpu",       "profile",  "verdict",       "exit_code",
                                                              "exit_name", "exception", "failing_checks"};

std::string hex(std::uint64_t v) { return fmt::format("{:#x}", v); }

struct Ctx {
    std::string file;
    int line = 0;
    std::string prefix;  // "[3]." for array elements
    Diagnostic fail(std::string_view field, std::string msg) const {
        return Diagnostic{file, line, prefix + std::string(field), std::move(msg)};
    }
    /// A diagnostic of a nested reader (the VMCB's), placed under `member` of this line.
    Diagnostic nested(Diagnostic d, std::string_view member) const {
        d.file = file;
        d.line = line;
        d.field = prefix + std::string(member) + (d.field.empty() ? "" : "." + d.field);
        return d;
    }
    template <class Range>
    Diagnostic unknown(std::string_view path, std::string_view key, const Range& known) const {
        const auto best = util::closest(key, known);
        return fail(path, best.empty() ? fmt::format("unknown member \"{}\"", key)
                                       : fmt::format("unknown member \"{}\" (did you mean \"{}\"?)", key, best));
    }
};

nsvm::expected<std::uint64_t, Diagnostic> number(const Ctx& c, const json& v, std::string_view field) {
    if (v.is_number_unsigned()) return v.get<std::uint64_t>();
    if (v.is_number_integer()) {
        const auto i = v.get<std::int64_t>();
        if (i < 0) return nsvm::unexpected(c.fail(field, "must not be negative"));
        return static_cast<std::uint64_t>(i);
    }
    if (v.is_boolean()) return v.get<bool>() ? 1U : 0U;
    if (v.is_string()) {
        if (auto n = util::parse_u64(v.get<std::string>())) return *n;
        return nsvm::unexpected(c.fail(field, fmt::format("not a number: \"{}\"", v.get<std::string>())));
    }
    return nsvm::unexpected(c.fail(field, "must be a number or a numeric string"));
}

/// An array of page-table entries {pa, value, size} (a vector's `paging`, a
/// result's `paging_after`): members known, size 4 or 8, value within it.
nsvm::expected<std::vector<TablePatch>, Diagnostic> table_entries(const Ctx& c, const json& a, std::string_view member) {
    if (!a.is_array()) return nsvm::unexpected(c.fail(member, "must be an array of {pa, value, size}"));
    std::vector<TablePatch> out;
    for (const auto& e : a) {
        const std::string path = fmt::format("{}[{}]", member, out.size());
        if (!e.is_object()) return nsvm::unexpected(c.fail(path, "must be an object {pa, value, size}"));
        for (auto it = e.begin(); it != e.end(); ++it)
            if (std::find(kPagingMembers.begin(), kPagingMembers.end(), it.key()) == kPagingMembers.end())
                return nsvm::unexpected(c.unknown(path + "." + it.key(), it.key(), kPagingMembers));
        if (!e.contains("pa")) return nsvm::unexpected(c.fail(path + ".pa", "missing"));
        if (!e.contains("value")) return nsvm::unexpected(c.fail(path + ".value", "missing"));
        TablePatch t;
        auto pa = number(c, e["pa"], path + ".pa");
        if (!pa) return nsvm::unexpected(pa.error());
        auto val = number(c, e["value"], path + ".value");
        if (!val) return nsvm::unexpected(val.error());
        if (e.contains("size")) {
            auto sz = number(c, e["size"], path + ".size");
            if (!sz) return nsvm::unexpected(sz.error());
            if (*sz != 4 && *sz != 8) return nsvm::unexpected(c.fail(path + ".size", "must be 4 or 8"));
            t.size = static_cast<unsigned>(*sz);
        }
        t.pa = *pa;
        t.value = *val;
        if (t.size == 4 && t.value > 0xFFFFFFFFULL)
            return nsvm::unexpected(c.fail(path + ".value", "wider than the 4-byte entry"));
        out.push_back(t);
    }
    return out;
}

json table_entries_json(const std::vector<TablePatch>& entries) {
    json a = json::array();
    for (const auto& t : entries) {
        json e{{"pa", fmt::format("{:#x}", t.pa)}, {"value", fmt::format("{:#x}", t.value)}};
        if (t.size != 8) e["size"] = t.size;
        a.push_back(e);
    }
    return a;
}

nsvm::expected<std::string, Diagnostic> text_member(const Ctx& c, const json& o, std::string_view name,
                                                    std::string_view path) {
    const auto it = o.find(std::string(name));
    if (it == o.end()) return std::string();
    if (!it->is_string()) return nsvm::unexpected(c.fail(path, "must be a string"));
    return it->get<std::string>();
}

/// The `expected` member nsvm gen writes: checked as strictly as the rest,
/// kept with the vector. `exit_name` is derived from `exit_code` (only its
/// type is checked).
nsvm::expected<Expectation, Diagnostic> parse_expected(const Ctx& c, const json& e) {
    if (!e.is_object()) return nsvm::unexpected(c.fail("expected", "must be an object {verdict, exit_code, ...}"));
    for (auto it = e.begin(); it != e.end(); ++it)
        if (std::find(kExpectedMembers.begin(), kExpectedMembers.end(), it.key()) == kExpectedMembers.end())
            return nsvm::unexpected(c.unknown("expected." + it.key(), it.key(), kExpectedMembers));
    Expectation x;
    for (const auto& [name, into] : {std::pair{"cpu", &x.cpu}, std::pair{"profile", &x.profile}}) {
        auto t = text_member(c, e, name, std::string("expected.") + name);
        if (!t) return nsvm::unexpected(t.error());
        *into = std::move(*t);
    }
    auto verdict = text_member(c, e, "verdict", "expected.verdict");
    if (!verdict) return nsvm::unexpected(verdict.error());
    const auto pos = std::find(kVerdictNames.begin(), kVerdictNames.end(), *verdict);
    if (pos == kVerdictNames.end()) return nsvm::unexpected(c.unknown("expected.verdict", *verdict, kVerdictNames));
    x.verdict = static_cast<Verdict>(pos - kVerdictNames.begin());
    if (e.contains("exit_code")) {
        auto n = number(c, e["exit_code"], "expected.exit_code");
        if (!n) return nsvm::unexpected(n.error());
        x.exit_code = *n;
    }
    if (auto name = text_member(c, e, "exit_name", "expected.exit_name"); !name) return nsvm::unexpected(name.error());
    if (e.contains("exception")) {
        const auto& ex = e["exception"];
        if (!ex.is_object() || !ex.contains("vector") || ex.size() != 1)
            return nsvm::unexpected(c.fail("expected.exception", "must be {\"vector\": N}"));
        auto n = number(c, ex["vector"], "expected.exception.vector");
        if (!n) return nsvm::unexpected(n.error());
        if (*n > 31) return nsvm::unexpected(c.fail("expected.exception.vector", "must be 0..31"));
        x.exception_vector = static_cast<std::uint8_t>(*n);
    }
    if (e.contains("failing_checks")) {
        if (!e["failing_checks"].is_array())
            return nsvm::unexpected(c.fail("expected.failing_checks", "must be an array of check ids"));
        for (const auto& id : e["failing_checks"]) {
            if (!id.is_string()) return nsvm::unexpected(c.fail("expected.failing_checks", "check ids are strings"));
            x.failing_checks.push_back(id.get<std::string>());
        }
    }
    return x;
}

nsvm::expected<Vector, Diagnostic> parse_one(const Ctx& c, const json& j) {
    if (!j.is_object()) return nsvm::unexpected(c.fail("", "a vector must be a JSON object"));
    Vector v;
    v.source = c.file;
    v.line = c.line;
    for (auto it = j.begin(); it != j.end(); ++it) {
        if (std::find(kVectorMembers.begin(), kVectorMembers.end(), it.key()) == kVectorMembers.end())
            return nsvm::unexpected(c.unknown(it.key(), it.key(), kVectorMembers));
    }
    if (!j.contains("id") || !j["id"].is_string() || j["id"].get<std::string>().empty())
        return nsvm::unexpected(c.fail("id", "missing or not a non-empty string"));
    v.id = j["id"].get<std::string>();
    if (!j.contains("vmcb")) return nsvm::unexpected(c.fail("vmcb", "missing (the VMCB as a JSON object, docs/formats.md)"));
    {
        auto r = formats::read_vmcb_json(j["vmcb"], c.file);
        if (!r) return nsvm::unexpected(c.nested(r.error(), "vmcb"));
        v.vmcb = r->vmcb;
    }
    bool rip_given = false;
    if (j["vmcb"].is_object() && j["vmcb"].contains("save") && j["vmcb"]["save"].is_object())
        rip_given = j["vmcb"]["save"].contains("rip");
    if (j.contains("l2")) {
        const auto& l2 = j["l2"];
        if (!l2.is_object()) return nsvm::unexpected(c.fail("l2", "must be an object {program, regs}"));
        for (auto it = l2.begin(); it != l2.end(); ++it)
            if (std::find(kL2Members.begin(), kL2Members.end(), it.key()) == kL2Members.end())
                return nsvm::unexpected(c.unknown("l2." + it.key(), it.key(), kL2Members));
        if (l2.contains("program")) {
            if (!l2["program"].is_string()) return nsvm::unexpected(c.fail("l2.program", "must be a string"));
            const auto name = l2["program"].get<std::string>();
            auto p = find_program(name);
            if (!p) return nsvm::unexpected(c.unknown("l2.program", name, kProgramNames));
            v.program = *p;
        }
        if (l2.contains("regs")) {
            if (!l2["regs"].is_object()) return nsvm::unexpected(c.fail("l2.regs", "must be an object {\"rcx\": ...}"));
            for (auto it = l2["regs"].begin(); it != l2["regs"].end(); ++it) {
                const auto pos = std::find(kGprNames.begin(), kGprNames.end(), it.key());
                const std::string path = "l2.regs." + it.key();
                if (pos == kGprNames.end()) return nsvm::unexpected(c.unknown(path, it.key(), kGprNames));
                if (it.key() == "rax" || it.key() == "rsp")
                    return nsvm::unexpected(c.fail(path, "rax and rsp come from the VMCB (save.rax, save.rsp)"));
                auto n = number(c, it.value(), path);
                if (!n) return nsvm::unexpected(n.error());
                v.regs[static_cast<std::size_t>(pos - kGprNames.begin())] = *n;
            }
        }
    }
    // APM 15.5: L2 starts at save.rip; a vector that names a program and
    // leaves rip out starts at that program.
    if (!rip_given) v.vmcb.set(arch::FieldId::rip, program_entry(v.program));
    if (j.contains("msrpm")) {
        if (!j["msrpm"].is_array()) return nsvm::unexpected(c.fail("msrpm", "must be an array"));
        std::size_t k = 0;
        for (const auto& e : j["msrpm"]) {
            const std::string path = fmt::format("msrpm[{}]", k++);
            MsrIntercept m;
            if (e.is_object()) {
                for (auto it = e.begin(); it != e.end(); ++it)
                    if (std::find(kMsrMembers.begin(), kMsrMembers.end(), it.key()) == kMsrMembers.end())
                        return nsvm::unexpected(c.unknown(path + "." + it.key(), it.key(), kMsrMembers));
                if (!e.contains("msr")) return nsvm::unexpected(c.fail(path + ".msr", "missing"));
                auto n = number(c, e["msr"], path + ".msr");
                if (!n) return nsvm::unexpected(n.error());
                if (*n > 0xFFFFFFFFULL) return nsvm::unexpected(c.fail(path + ".msr", "wider than 32 bits"));
                m.msr = static_cast<std::uint32_t>(*n);
                if (e.contains("access")) {
                    const auto a = e["access"].is_string() ? e["access"].get<std::string>() : std::string("?");
                    if (a != "r" && a != "w" && a != "rw")
                        return nsvm::unexpected(c.fail(path + ".access", "must be \"r\", \"w\" or \"rw\""));
                    m.read = a.find('r') != std::string::npos;
                    m.write = a.find('w') != std::string::npos;
                }
            } else {
                auto n = number(c, e, path);
                if (!n) return nsvm::unexpected(n.error());
                if (*n > 0xFFFFFFFFULL) return nsvm::unexpected(c.fail(path, "wider than 32 bits"));
                m.msr = static_cast<std::uint32_t>(*n);
            }
            if (!msrpm_position(m.msr))
                return nsvm::unexpected(c.fail(path, fmt::format("MSR {} is outside the three MSRPM ranges "
                                                                 "(APM 15.11)", hex(m.msr))));
            v.msrpm.push_back(m);
        }
    }
    if (j.contains("iopm")) {
        if (!j["iopm"].is_array()) return nsvm::unexpected(c.fail("iopm", "must be an array of ports"));
        std::size_t k = 0;
        for (const auto& e : j["iopm"]) {
            const std::string path = fmt::format("iopm[{}]", k++);
            auto n = number(c, e, path);
            if (!n) return nsvm::unexpected(n.error());
            if (*n > 0xFFFF) return nsvm::unexpected(c.fail(path, "port wider than 16 bits"));
            v.iopm.push_back(static_cast<std::uint16_t>(*n));
        }
    }
    if (j.contains("paging")) {
        auto entries = table_entries(c, j["paging"], "paging");
        if (!entries) return nsvm::unexpected(entries.error());
        for (std::size_t k = 0; k < entries->size(); ++k)
            if (auto why = paging_entry_problem((*entries)[k].pa, (*entries)[k].size))
                return nsvm::unexpected(c.fail(fmt::format("paging[{}].pa", k), *why));
        v.paging = std::move(*entries);
    }
    if (j.contains("host")) {
        const auto& h = j["host"];
        if (!h.is_object()) return nsvm::unexpected(c.fail("host", "must be an object"));
        for (auto it = h.begin(); it != h.end(); ++it) {
            const std::string path = "host." + it.key();
            if (std::find(kHostMembers.begin(), kHostMembers.end(), it.key()) == kHostMembers.end())
                return nsvm::unexpected(c.unknown(path, it.key(), kHostMembers));
            auto n = number(c, it.value(), path);
            if (!n) return nsvm::unexpected(n.error());
            if (it.key() == "gif" || it.key() == "svme" || it.key() == "probe_gif") {
                if (*n > 1) return nsvm::unexpected(c.fail(path, "must be 0 or 1"));
                (it.key() == "gif" ? v.host.gif : it.key() == "svme" ? v.host.svme : v.host.probe_gif) = *n != 0;
            } else if (it.key() == "vmrun_rax") {
                v.host.vmrun_rax = *n;
            } else if (it.key() == "repeat") {
                if (*n < 1 || *n > 0xFFFFFFFFU) return nsvm::unexpected(c.fail(path, "must be 1 to 4294967295"));
                v.host.repeat = static_cast<std::uint32_t>(*n);
            } else {
                v.host.hsave_pa = *n;
            }
        }
    }
    if (j.contains("checks")) {
        if (!j["checks"].is_array()) return nsvm::unexpected(c.fail("checks", "must be an array of check ids"));
        for (const auto& e : j["checks"]) {
            if (!e.is_string()) return nsvm::unexpected(c.fail("checks", "check ids are strings"));
            v.checks.push_back(e.get<std::string>());
        }
    }
    if (j.contains("note")) {
        if (!j["note"].is_string()) return nsvm::unexpected(c.fail("note", "must be a string"));
        v.note = j["note"].get<std::string>();
    }
    if (j.contains("expected")) {
        auto x = parse_expected(c, j["expected"]);
        if (!x) return nsvm::unexpected(x.error());
        v.expected = std::move(*x);
    }
    if (const auto mp = map_patches(v); !mp)
        return nsvm::unexpected(c.fail(v.paging.empty() ? "msrpm" : "paging", mp.error()));
    if (auto p = isolation_problem(v))
        return nsvm::unexpected(c.fail(p->field, fmt::format("vector \"{}\" refused: {}", v.id, p->message)));
    return v;
}

/// nlohmann keeps the last of duplicate members silently; a vector file is
/// hand-written often enough that a repeated member is a mistake to report
/// (the formats layer has its own, file-local, check for VMCB files).
class DuplicateMembers {
public:
    bool operator()(int /*depth*/, json::parse_event_t ev, json& parsed) {
        switch (ev) {
            case json::parse_event_t::object_start: open_.push_back({}); break;
            case json::parse_event_t::key:
                if (!open_.empty() && parsed.is_string()) {
                    const auto& k = parsed.get_ref<const std::string&>();
                    if (!open_.back().keys.insert(k).second && !first_) first_ = path() + k;
                    open_.back().last = k;
                }
                break;
            case json::parse_event_t::object_end:
                if (!open_.empty()) open_.pop_back();
                break;
            default: break;
        }
        return true;
    }
    /// The first repeated member, as a path ("host.gif").
    [[nodiscard]] const std::optional<std::string>& first() const noexcept { return first_; }

private:
    struct Object {
        std::set<std::string> keys;  // a VMCB's save area has ~100 members
        std::string last;            // the member being parsed, for the path
    };
    [[nodiscard]] std::string path() const {
        std::string p;
        for (std::size_t i = 0; i + 1 < open_.size(); ++i)
            if (!open_[i].last.empty()) p += open_[i].last + ".";
        return p;
    }
    std::vector<Object> open_;
    std::optional<std::string> first_;
};

/// json::parse that refuses a repeated member; nlohmann's parse_error
/// propagates for malformed text.
nsvm::expected<json, std::string> parse_strict(std::string_view text) {
    DuplicateMembers dups;
    json j = json::parse(text, std::ref(dups));
    if (dups.first()) return nsvm::unexpected(*dups.first());
    return j;
}

/// One JSON-lines line as an object, or the diagnostic naming its line: a
/// repeated member, or text that is not JSON.
nsvm::expected<json, Diagnostic> parse_line_object(const Ctx& c, std::string_view line) {
    try {
        auto o = parse_strict(line);
        if (!o) return nsvm::unexpected(c.fail(o.error(), "duplicate member"));
        return std::move(*o);
    } catch (const json::parse_error& e) {
        return nsvm::unexpected(c.fail("", fmt::format("not a JSON object: {}", e.what())));
    }
}

bool comment_or_blank(std::string_view line) {
    const auto p = line.find_first_not_of(" \t\r");
    if (p == std::string_view::npos) return true;
    return line[p] == '#' || line.substr(p, 2) == "//";
}

/// Splits JSON lines; calls f(line_number, text) for each non-comment line.
template <class F>
nsvm::expected<void, Diagnostic> for_each_line(std::string_view text, F&& f) {
    int lineno = 0;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        const auto line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        ++lineno;
        if (comment_or_blank(line)) continue;
        auto r = f(lineno, line);
        if (!r) return r;
    }
    return {};
}

template <class T, class One>
nsvm::expected<std::vector<T>, Diagnostic> parse_many(std::string_view text, std::string_view source, One one) {
    std::vector<T> out;
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos && text[first] == '[') {
        json arr;
        try {
            auto a = parse_strict(text);
            if (!a) return nsvm::unexpected(Diagnostic{std::string(source), 0, a.error(), "duplicate member"});
            arr = std::move(*a);
        } catch (const json::parse_error& e) {
            return nsvm::unexpected(Diagnostic{std::string(source), 0, "", e.what()});
        }
        std::size_t k = 0;
        for (const auto& e : arr) {
            Ctx c{std::string(source), 0, fmt::format("[{}].", k++)};
            auto r = one(c, e);
            if (!r) return nsvm::unexpected(r.error());
            out.push_back(std::move(*r));
        }
        return out;
    }
    auto st = for_each_line(text, [&](int lineno, std::string_view line) -> nsvm::expected<void, Diagnostic> {
        Ctx c{std::string(source), lineno, ""};
        auto j = parse_line_object(c, line);
        if (!j) return nsvm::unexpected(j.error());
        auto r = one(c, *j);
        if (!r) return nsvm::unexpected(r.error());
        out.push_back(std::move(*r));
        return {};
    });
    if (!st) return nsvm::unexpected(st.error());
    return out;
}

}  // namespace

std::string_view program_name(Program p) noexcept {
    const auto i = static_cast<std::size_t>(p);
    return i < kProgramNames.size() ? kProgramNames[i] : std::string_view("?");
}

std::optional<Program> find_program(std::string_view name) noexcept {
    for (std::size_t i = 0; i < kProgramNames.size(); ++i)
        if (kProgramNames[i] == name) return static_cast<Program>(i);
    return std::nullopt;
}

std::optional<std::pair<std::uint32_t, unsigned>> msrpm_position(std::uint32_t msr) noexcept {
    // APM 15.11 Table 15-5: 0000_0000-0000_1FFF at 000h, C000_0000-C000_1FFF at
    // 800h, C001_0000-C001_1FFF at 1000h; 2 bits per MSR (read, write).
    std::uint32_t base = 0;
    std::uint32_t index = 0;
    if (msr <= 0x1FFF) {
        base = 0x000;
        index = msr;
    } else if (msr >= 0xC0000000U && msr <= 0xC0001FFFU) {
        base = 0x800;
        index = msr - 0xC0000000U;
    } else if (msr >= 0xC0010000U && msr <= 0xC0011FFFU) {
        base = 0x1000;
        index = msr - 0xC0010000U;
    } else {
        return std::nullopt;
    }
    return std::pair{base + index / 4, static_cast<unsigned>((index % 4) * 2)};
}

nsvm::expected<std::vector<MapPatch>, std::string> map_patches(const Vector& v) {
    std::vector<MapPatch> out;
    auto byte = [&](std::uint32_t map, std::uint32_t off) -> std::uint32_t& {
        for (auto& p : out)
            if (p.map == map && p.offset == off) return p.value;
        out.push_back({map, off, 0});
        return out.back().value;
    };
    for (const auto& m : v.msrpm) {
        const auto pos = msrpm_position(m.msr);
        if (!pos) return nsvm::unexpected(fmt::format("MSR {} outside the MSRPM ranges (APM 15.11)", hex(m.msr)));
        auto& b = byte(NSVM_OR_MAP_MSRPM, pos->first);
        if (m.read) b |= 1U << pos->second;
        if (m.write) b |= 2U << pos->second;
    }
    for (auto port : v.iopm) {
        // APM 15.10.1: bit `port` of the IOPM; multi-byte accesses also test the
        // following bits, which the vector lists itself if it wants them.
        auto& b = byte(NSVM_OR_MAP_IOPM, port / 8U);
        b |= 1U << (port % 8U);
    }
    for (const auto& t : v.paging) {
        if (auto why = paging_entry_problem(t.pa, t.size)) return nsvm::unexpected(*why);
        for (unsigned k = 0; k < t.size; k += 4)
            out.push_back({NSVM_OR_MAP_TABLE, static_cast<std::uint32_t>(t.pa + k),
                           static_cast<std::uint32_t>(t.value >> (8 * k))});
    }
    if (out.size() > NSVM_OR_MAX_PATCHES)
        return nsvm::unexpected(fmt::format("too many MSRPM/IOPM bytes and paging dwords to patch ({} > {})",
                                            out.size(), NSVM_OR_MAX_PATCHES));
    return out;
}

std::optional<std::string> paging_entry_problem(std::uint64_t pa, unsigned size) {
    // layout.h NSVM_OR_WINDOW_PA: what the host never translates through.
    struct Area {
        std::uint64_t begin, end;
        unsigned size;  // 0: 4 or 8
        const char* what;
    };
    static constexpr std::array<Area, 5> kAreas = {{
        {NSVM_OR_PML4_PA + 0x2000 + 8 * 510, NSVM_OR_PML4_PA + 0x3000, 8, "PD entries 510-511 (the window)"},
        {NSVM_OR_PAE_PDPT_PA, NSVM_OR_PAE_PDPT_PA + 32, 8, "PAE PDPT"},
        {NSVM_OR_PD32_PA, NSVM_OR_PD32_PA + 0x1000, 4, "legacy page directory"},
        {NSVM_OR_NPT_PML4_PA, NSVM_OR_NPT_PML4_PA + 0x3000, 8, "nested tables"},
        {NSVM_OR_SPARE_PT_PA, NSVM_OR_SPARE_PT_PA + NSVM_OR_SPARE_PT_SIZE, 0, "spare table pages"},
    }};
    if (size != 4 && size != 8) return fmt::format("entry size {} is not 4 or 8", size);
    if (pa % size != 0) return fmt::format("{} is not aligned to the {}-byte entry", hex(pa), size);
    for (const auto& a : kAreas) {
        if (pa < a.begin || pa + size > a.end) continue;
        if (a.size != 0 && a.size != size)
            return fmt::format("{} lies in the {}, whose entries are {} bytes", hex(pa), a.what, a.size);
        return std::nullopt;
    }
    return fmt::format("{} is not a patchable page-table entry: only PD entries 510-511 ({:#x}-{:#x}, mapping the "
                       "paging window), the PAE PDPT, the legacy page directory, the nested tables and the spare "
                       "table pages ({:#x}-{:#x}) may be patched, so the host's own translations stay intact",
                       hex(pa), NSVM_OR_PML4_PA + 0x2000 + 8 * 510, NSVM_OR_PML4_PA + 0x3000, NSVM_OR_SPARE_PT_PA,
                       NSVM_OR_SPARE_PT_PA + NSVM_OR_SPARE_PT_SIZE);
}

nsvm::expected<std::vector<Vector>, Diagnostic> parse_vectors(std::string_view text, std::string_view source) {
    auto r = parse_many<Vector>(text, source, [](const Ctx& c, const json& j) { return parse_one(c, j); });
    if (!r) return r;
    std::set<std::string> seen;
    for (const auto& v : *r)
        if (!seen.insert(v.id).second)
            return nsvm::unexpected(Diagnostic{v.source, v.line, "id", fmt::format("duplicate id \"{}\"", v.id)});
    return r;
}

std::string to_json_line(const Vector& v) {
    json j;
    j["id"] = v.id;
    j["vmcb"] = json::parse(formats::write_json(v.vmcb));
    json l2;
    l2["program"] = std::string(program_name(v.program));
    json regs = json::object();
    for (std::size_t i = 0; i < 16; ++i)
        if (v.regs[i] != 0) regs[std::string(kGprNames[i])] = hex(v.regs[i]);
    if (!regs.empty()) l2["regs"] = regs;
    j["l2"] = l2;
    if (!v.msrpm.empty()) {
        json a = json::array();
        for (const auto& m : v.msrpm)
            a.push_back({{"msr", hex(m.msr)}, {"access", m.read && m.write ? "rw" : m.read ? "r" : "w"}});
        j["msrpm"] = a;
    }
    if (!v.iopm.empty()) {
        json a = json::array();
        for (auto p : v.iopm) a.push_back(hex(p));
        j["iopm"] = a;
    }
    if (!v.paging.empty()) j["paging"] = table_entries_json(v.paging);
    json h = json::object();
    if (!v.host.gif) h["gif"] = 0;
    if (!v.host.svme) h["svme"] = 0;
    if (v.host.vmrun_rax) h["vmrun_rax"] = hex(*v.host.vmrun_rax);
    if (v.host.hsave_pa) h["hsave_pa"] = hex(*v.host.hsave_pa);
    if (!v.host.probe_gif) h["probe_gif"] = 0;
    if (v.host.repeat != 1) h["repeat"] = v.host.repeat;
    if (!h.empty()) j["host"] = h;
    if (!v.checks.empty()) j["checks"] = v.checks;
    if (!v.note.empty()) j["note"] = v.note;
    if (v.expected) {
        const Expectation& x = *v.expected;
        json e;
        e["cpu"] = x.cpu;
        e["profile"] = x.profile;
        e["verdict"] = std::string(verdict_name(x.verdict));
        if (x.exit_code) {
            // 64-bit hex as in the result format; the name as exit_codes.hpp gives it.
            e["exit_code"] = fmt::format("{:#018x}", *x.exit_code);
            e["exit_name"] = arch::exit_code::describe(*x.exit_code).name;
        }
        if (x.exception_vector) e["exception"] = {{"vector", *x.exception_vector}};
        e["failing_checks"] = x.failing_checks;
        j["expected"] = std::move(e);
    }
    return j.dump();
}

// ---------------------------------------------------------------------------

std::string_view verdict_name(Verdict v) noexcept { return kVerdictNames[static_cast<std::size_t>(v)]; }

std::string_view status_name(Status s) noexcept { return kStatusNames[static_cast<std::size_t>(s)]; }

std::string to_json_line(const Result& r, bool with_vmcb) {
    json j;
    j["id"] = r.id;
    j["backend"] = r.backend;
    if (!r.cpu_model.empty()) j["cpu_model"] = r.cpu_model;
    j["status"] = std::string(status_name(r.status));
    if (r.status == Status::cannot_run) {
        j["reason"] = r.reason;
        return j.dump();
    }
    if (r.status == Status::exception) {
        j["exception"] = {{"vector", r.exception_vector}, {"error_code", hex(r.error_code)}};
    } else {
        j["exit_code"] = fmt::format("{:#018x}", r.exit_code());
        j["exit_info_1"] = hex(r.exit_info_1());
        j["exit_info_2"] = hex(r.exit_info_2());
        j["exit_int_info"] = hex(r.exit_int_info());
        j["exit_int_info_err"] = hex(r.vmcb.get(arch::FieldId::exit_int_info_err));
    }
    j["gif"] = r.gif ? 1 : 0;
    if (!r.probe_ok) j["probe_ok"] = 0;
    j["vmcb_pa"] = hex(r.vmcb_pa);
    if (with_vmcb) {
        j["vmcb"] = json::parse(formats::write_json(r.vmcb));
        json regs = json::object();
        for (std::size_t i = 0; i < 16; ++i)
            if (i != 0 && i != 4) regs[std::string(kGprNames[i])] = hex(r.regs[i]);
        j["regs"] = regs;
    }
    if (!r.paging_after.empty()) j["paging_after"] = table_entries_json(r.paging_after);
    return j.dump();
}

namespace {

constexpr std::array<std::string_view, 17> kResultMembers = {
    "id",          "backend",       "cpu_model",         "status", "reason",   "exception",
    "exit_code",   "exit_info_1",   "exit_info_2",       "exit_int_info", "exit_int_info_err",
    "gif",         "probe_ok",      "vmcb_pa",           "vmcb",   "regs",     "paging_after"};

/// One result object (docs/oracle.md "Result format").
nsvm::expected<Result, Diagnostic> parse_result(const Ctx& c, const json& j) {
    if (!j.is_object()) return nsvm::unexpected(c.fail("", "a result must be a JSON object"));
    for (auto it = j.begin(); it != j.end(); ++it)
        if (std::find(kResultMembers.begin(), kResultMembers.end(), it.key()) == kResultMembers.end())
            return nsvm::unexpected(c.unknown(it.key(), it.key(), kResultMembers));
    Result r;
    if (!j.contains("id") || !j["id"].is_string()) return nsvm::unexpected(c.fail("id", "missing or not a string"));
    r.id = j["id"].get<std::string>();
    if (j.contains("backend") && j["backend"].is_string()) r.backend = j["backend"].get<std::string>();
    if (j.contains("cpu_model") && j["cpu_model"].is_string()) r.cpu_model = j["cpu_model"].get<std::string>();
    if (!j.contains("status") || !j["status"].is_string())
        return nsvm::unexpected(c.fail("status", "missing or not a string"));
    const auto st = j["status"].get<std::string>();
    const auto pos = std::find(kStatusNames.begin(), kStatusNames.end(), st);
    if (pos == kStatusNames.end()) return nsvm::unexpected(c.unknown("status", st, kStatusNames));
    r.status = static_cast<Status>(pos - kStatusNames.begin());
    if (r.status == Status::cannot_run) {
        r.reason = j.contains("reason") && j["reason"].is_string() ? j["reason"].get<std::string>() : "";
        return r;
    }
    if (j.contains("vmcb")) {
        auto v = formats::read_vmcb_json(j["vmcb"], c.file);
        if (!v) return nsvm::unexpected(c.nested(v.error(), "vmcb"));
        r.vmcb = v->vmcb;
    }
    // The scalar members win over the VMCB copy (a result may carry only them).
    static constexpr std::array<std::pair<std::string_view, arch::FieldId>, 5> kScalars = {{
        {"exit_code", arch::FieldId::exit_code},
        {"exit_info_1", arch::FieldId::exit_info_1},
        {"exit_info_2", arch::FieldId::exit_info_2},
        {"exit_int_info", arch::FieldId::exit_int_info},
        {"exit_int_info_err", arch::FieldId::exit_int_info_err},
    }};
    for (const auto& [name, id] : kScalars) {
        if (!j.contains(std::string(name))) continue;
        auto n = number(c, j[std::string(name)], name);
        if (!n) return nsvm::unexpected(n.error());
        if (!arch::Vmcb::fits(id, *n)) return nsvm::unexpected(c.fail(name, "too wide for the field"));
        r.vmcb.set(id, *n);
    }
    if (r.status == Status::vmexit && !j.contains("exit_code") && !j.contains("vmcb"))
        return nsvm::unexpected(c.fail("exit_code", "missing (status vmexit needs exit_code or vmcb)"));
    if (r.status == Status::exception) {
        if (!j.contains("exception") || !j["exception"].is_object() || !j["exception"].contains("vector"))
            return nsvm::unexpected(c.fail("exception.vector", "missing (status exception)"));
        auto n = number(c, j["exception"]["vector"], "exception.vector");
        if (!n) return nsvm::unexpected(n.error());
        if (*n > 255) return nsvm::unexpected(c.fail("exception.vector", "must be 0..255"));
        r.exception_vector = static_cast<std::uint8_t>(*n);
        if (j["exception"].contains("error_code")) {
            auto e = number(c, j["exception"]["error_code"], "exception.error_code");
            if (!e) return nsvm::unexpected(e.error());
            r.error_code = static_cast<std::uint32_t>(*e);
        }
    }
    if (j.contains("gif")) {
        auto n = number(c, j["gif"], "gif");
        if (!n) return nsvm::unexpected(n.error());
        if (*n > 1) return nsvm::unexpected(c.fail("gif", "must be 0 or 1"));
        r.gif = *n != 0;
    }
    r.probe_ok = true;
    if (j.contains("probe_ok")) {
        auto n = number(c, j["probe_ok"], "probe_ok");
        if (!n) return nsvm::unexpected(n.error());
        r.probe_ok = *n != 0;
    }
    if (j.contains("vmcb_pa")) {
        auto n = number(c, j["vmcb_pa"], "vmcb_pa");
        if (!n) return nsvm::unexpected(n.error());
        r.vmcb_pa = *n;
    }
    if (j.contains("regs")) {
        if (!j["regs"].is_object()) return nsvm::unexpected(c.fail("regs", "must be an object"));
        for (auto it = j["regs"].begin(); it != j["regs"].end(); ++it) {
            const auto p = std::find(kGprNames.begin(), kGprNames.end(), it.key());
            if (p == kGprNames.end()) return nsvm::unexpected(c.unknown("regs." + it.key(), it.key(), kGprNames));
            auto n = number(c, it.value(), "regs." + it.key());
            if (!n) return nsvm::unexpected(n.error());
            r.regs[static_cast<std::size_t>(p - kGprNames.begin())] = *n;
        }
    }
    if (j.contains("paging_after")) {
        auto entries = table_entries(c, j["paging_after"], "paging_after");
        if (!entries) return nsvm::unexpected(entries.error());
        r.paging_after = std::move(*entries);
    }
    return r;
}

}  // namespace

nsvm::expected<std::vector<Result>, Diagnostic> parse_results(std::string_view text, std::string_view source) {
    return parse_many<Result>(text, source, [](const Ctx& c, const json& j) { return parse_result(c, j); });
}

nsvm::expected<std::optional<Result>, Diagnostic> parse_result_line(std::string_view line, std::string_view source,
                                                                 int lineno) {
    if (comment_or_blank(line)) return std::optional<Result>{};
    const Ctx c{std::string(source), lineno, ""};
    auto j = parse_line_object(c, line);
    if (!j) return nsvm::unexpected(j.error());
    auto r = parse_result(c, *j);
    if (!r) return nsvm::unexpected(r.error());
    return std::optional<Result>(std::move(*r));
}

}  // namespace nsvm::oracle
