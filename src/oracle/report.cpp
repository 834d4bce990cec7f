// The summary of a diff report and the merge of sharded reports (report.hpp).
#include "nsvm/oracle/report.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bounded_lines.hpp"
#include "nsvm/formats/json_strict.hpp"
#include "nsvm/oracle/gen.hpp"
#include "nsvm/util/text.hpp"

namespace nsvm::oracle {
namespace {

using json = nlohmann::ordered_json;  // written: members in a fixed order
using in_json = nlohmann::json;       // read: formats::parse_json_strict's
using formats::Diagnostic;

/// A report line: a vector's is some hundred bytes, a summary with every
/// check id some 10 KiB.
constexpr std::size_t kMaxReportLineBytes = std::size_t{1} << 20;

/// The vector counts of a summary, in the order they are written.
constexpr std::array<std::pair<std::string_view, std::size_t Summary::*>, 6> kCounts = {{
    {"total", &Summary::total},
    {"agree", &Summary::agree},
    {"differ", &Summary::differ},
    {"explained_only", &Summary::explained_only},
    {"cannot_run", &Summary::cannot_run},
    {"whole_vmcb", &Summary::whole_vmcb},
}};
constexpr std::array<std::pair<std::string_view, std::size_t CheckTally::*>, 4> kTallies = {{
    {"agree", &CheckTally::agree},
    {"differ", &CheckTally::differ},
    {"explained", &CheckTally::explained},
    {"cannot_run", &CheckTally::cannot_run},
}};
constexpr std::array<std::string_view, 9> kOtherMembers = {
    "backend", "cpu", "profile", "campaign", "jobs", "boots", "emulator_seconds", "wall_seconds", "vectors_per_second"};
constexpr std::array<std::string_view, 5> kCampaignMembers = {"seed", "count", "boundary", "files", "shard"};
constexpr std::array<std::string_view, 2> kPerCheckSection = {"per_check", "known_divergences"};

[[nodiscard]] double rate(const Report& r) {
    return r.figures.wall_seconds > 0 ? static_cast<double>(r.summary.total) / r.figures.wall_seconds : 0;
}

/// Reading one summary, member by member; the first error wins.
class SummaryReader {
public:
    SummaryReader(std::string_view source, int line) : source_(source), line_(line) {}

    [[nodiscard]] nsvm::expected<Report, Diagnostic> read(const in_json& j) {
        if (!j.is_object() || !j.contains("summary") || !j["summary"].is_object() || j.size() != 1)
            return fail("summary", "not a summary line ({\"summary\": {...}})");
        const in_json& s = j["summary"];
        if (!known_members(s, "summary.")) return nsvm::unexpected(*error_);
        Report r;
        for (const auto& [name, member] : kCounts) r.summary.*member = count(s, name, "summary.");
        r.campaign.backend = text(s, "backend", "summary.");
        r.campaign.cpu = text(s, "cpu", "summary.");
        r.campaign.profile = text(s, "profile", "summary.");
        r.figures.jobs = count(s, "jobs", "summary.");
        r.figures.boots = count(s, "boots", "summary.");
        r.figures.emulator_seconds = seconds(s, "emulator_seconds");
        r.figures.wall_seconds = seconds(s, "wall_seconds");
        read_campaign(s, r.campaign);
        read_per_check(s, r.summary);
        read_known(s, r.summary);
        if (error_) return nsvm::unexpected(*error_);
        return r;
    }

private:
    nsvm::unexpected<Diagnostic> fail(std::string field, std::string why) {
        return nsvm::unexpected(Diagnostic{std::string(source_), line_, std::move(field), std::move(why)});
    }
    void note(std::string field, std::string why) {
        if (!error_) error_ = Diagnostic{std::string(source_), line_, std::move(field), std::move(why)};
    }

    [[nodiscard]] bool known_members(const in_json& s, std::string_view path) {
        for (auto it = s.begin(); it != s.end(); ++it) {
            const auto& k = it.key();
            const bool known = std::any_of(kCounts.begin(), kCounts.end(), [&](const auto& c) { return c.first == k; }) ||
                               std::find(kOtherMembers.begin(), kOtherMembers.end(), k) != kOtherMembers.end() ||
                               std::find(kPerCheckSection.begin(), kPerCheckSection.end(), k) != kPerCheckSection.end();
            if (!known) note(std::string(path) + k, "unknown member");
        }
        return !error_;
    }

    std::size_t count(const in_json& o, std::string_view name, std::string_view path) {
        const auto it = o.find(std::string(name));
        if (it == o.end() || !it->is_number_unsigned()) {
            note(std::string(path) + std::string(name), "missing or not an unsigned integer");
            return 0;
        }
        return it->get<std::size_t>();
    }
    std::string text(const in_json& o, std::string_view name, std::string_view path) {
        const auto it = o.find(std::string(name));
        if (it == o.end() || !it->is_string()) {
            note(std::string(path) + std::string(name), "missing or not a string");
            return {};
        }
        return it->get<std::string>();
    }
    double seconds(const in_json& o, std::string_view name) {
        const auto it = o.find(std::string(name));
        if (it == o.end() || !it->is_number() || it->get<double>() < 0) {
            note("summary." + std::string(name), "missing or not a number of seconds");
            return 0;
        }
        return it->get<double>();
    }

    void read_campaign(const in_json& s, Campaign& c) {
        const auto it = s.find("campaign");
        if (it == s.end() || !it->is_object()) {
            note("summary.campaign", "missing (a report of an nsvm before sharded campaigns: rerun it)");
            return;
        }
        const in_json& o = *it;
        for (auto m = o.begin(); m != o.end(); ++m)
            if (std::find(kCampaignMembers.begin(), kCampaignMembers.end(), m.key()) == kCampaignMembers.end())
                note("summary.campaign." + m.key(), "unknown member");
        if (const auto seed = o.find("seed"); seed != o.end() && !seed->is_null()) {
            const auto n = seed->is_string() ? util::parse_u64(seed->get<std::string>()) : std::nullopt;
            if (!n) note("summary.campaign.seed", "not a seed (a decimal string, or null)");
            c.seed = n;
        }
        c.count = count(o, "count", "summary.campaign.");
        if (const auto b = o.find("boundary"); b != o.end() && b->is_boolean())
            c.boundary = b->get<bool>();
        else
            note("summary.campaign.boundary", "missing or not true/false");
        if (const auto f = o.find("files"); f != o.end() && f->is_array()) {
            for (const auto& e : *f) {
                if (!e.is_string()) note("summary.campaign.files", "file names are strings");
                else c.files.push_back(e.get<std::string>());
            }
        } else {
            note("summary.campaign.files", "missing or not an array");
        }
        const auto sh = parse_shard(text(o, "shard", "summary.campaign."));
        if (!sh) {
            note("summary.campaign.shard", sh.error());
            return;
        }
        c.shard_index = sh->first;
        c.shard_count = sh->second;
    }

    void read_per_check(const in_json& s, Summary& sum) {
        const auto it = s.find("per_check");
        if (it == s.end() || !it->is_object()) return note("summary.per_check", "missing or not an object");
        for (auto c = it->begin(); c != it->end(); ++c) {
            const std::string path = "summary.per_check." + c.key() + ".";
            if (!c->is_object()) return note(path, "not an object");
            CheckTally t;
            for (const auto& [name, member] : kTallies) t.*member = count(*c, name, path);
            if (c->size() != kTallies.size()) note(path, "unknown member (agree, differ, explained, cannot_run)");
            sum.per_check[c.key()] = t;
        }
    }

    void read_known(const in_json& s, Summary& sum) {
        const auto it = s.find("known_divergences");
        if (it == s.end() || !it->is_object()) return note("summary.known_divergences", "missing or not an object");
        for (auto k = it->begin(); k != it->end(); ++k) sum.per_known[k.key()] = count(*it, k.key(), "summary.known_divergences.");
    }

    std::string_view source_;
    int line_;
    std::optional<Diagnostic> error_;
};

/// One shard's report, and the line of its summary (where a merge error about
/// the shard's campaign points).
struct ShardReport {
    Report report;
    int summary_line = 0;
};

/// One line of a report as JSON, read as every untrusted JSON input is
/// (formats::parse_json_strict: no repeated member, bounded depth, no
/// comments); its error names the file, this line and the column.
[[nodiscard]] nsvm::expected<in_json, Diagnostic> parse_report_line(std::string_view text, std::string_view source,
                                                                    int lineno) {
    auto j = formats::parse_json_strict(text, source, formats::JsonLimits{.allow_comments = false});
    if (!j) {
        Diagnostic d = std::move(j.error());
        d.line = lineno;  // the text is that one line: its own line 1
        return nsvm::unexpected(std::move(d));
    }
    return std::move(*j);
}

/// One shard's report: its summary, checked against its vector lines. Every
/// error names the file, and the line and member where there is one.
[[nodiscard]] nsvm::expected<ShardReport, Diagnostic> read_report(const std::string& path) {
    const std::string name = util::printable(path, 200);
    int lineno = 0;
    const auto at = [&](std::string_view field, std::string why) {
        return nsvm::unexpected(Diagnostic{name, lineno, std::string(field), std::move(why)});
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return at("", fmt::format("cannot open: {}", std::strerror(errno)));
    BoundedLines lines(fd, kMaxReportLineBytes);  // closes fd
    // A directory opens; say what it is rather than a read's EISDIR, as
    // every other input of nsvm does (docs/formats.md "The command line").
    if (struct stat st{}; ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) return at("", "is a directory");
    std::optional<ShardReport> report;
    std::size_t vectors = 0;
    for (std::string text;;) {
        switch (lines.next(text)) {
            case LineRead::eof: break;
            case LineRead::io_error: return at("", fmt::format("read error: {}", lines.error()));
            case LineRead::too_long:
                ++lineno;
                return at("", fmt::format("a line longer than {} bytes (not a diff report)", kMaxReportLineBytes));
            case LineRead::ok:
                ++lineno;
                if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
                {
                    auto parsed = parse_report_line(text, name, lineno);
                    if (!parsed) return nsvm::unexpected(std::move(parsed.error()));
                    const in_json& j = *parsed;
                    if (!j.is_object()) return at("", "not a JSON object (nsvm diff --json writes one per line)");
                    if (report) return at("", "a line after the summary (two reports in one file?)");
                    if (j.contains("summary")) {
                        auto r = SummaryReader(name, lineno).read(j);
                        if (!r) return nsvm::unexpected(std::move(r.error()));
                        report = ShardReport{std::move(*r), lineno};
                    } else if (j.contains("id") && j.contains("outcome")) {
                        ++vectors;
                    } else {
                        return at("", "neither a vector's line (id, outcome) nor the summary");
                    }
                }
                continue;
        }
        break;
    }
    if (!report) return at("summary", "missing: the report ends before its summary (a shard that did not finish?)");
    if (report->report.summary.total != vectors)
        return at("summary.total", fmt::format("{}, but the report has {} vector lines (a cut report?)",
                                               report->report.summary.total, vectors));
    return std::move(*report);
}

/// Where two shards' campaigns differ: the summary member, and "a vs b".
struct Mismatch {
    std::string_view field;
    std::string why;
};

/// The identity two shards must share; the first member that differs.
[[nodiscard]] std::optional<Mismatch> campaign_mismatch(const Campaign& a, const Campaign& b) {
    const auto seed = [](const Campaign& c) { return c.seed ? std::to_string(*c.seed) : std::string("none"); };
    if (a.backend != b.backend) return Mismatch{"summary.backend", fmt::format("backend {} vs {}", a.backend, b.backend)};
    if (a.cpu != b.cpu) return Mismatch{"summary.cpu", fmt::format("model {}/{} vs {}/{}", a.cpu, a.profile, b.cpu, b.profile)};
    if (a.profile != b.profile)
        return Mismatch{"summary.profile", fmt::format("model {}/{} vs {}/{}", a.cpu, a.profile, b.cpu, b.profile)};
    if (a.seed != b.seed) return Mismatch{"summary.campaign.seed", fmt::format("seed {} vs {}", seed(a), seed(b))};
    if (a.count != b.count) return Mismatch{"summary.campaign.count", fmt::format("count {} vs {}", a.count, b.count)};
    if (a.boundary != b.boundary)
        return Mismatch{"summary.campaign.boundary", fmt::format("boundary {} vs {}", a.boundary, b.boundary)};
    if (a.files != b.files) return Mismatch{"summary.campaign.files", "vector files differ"};
    if (a.shard_count != b.shard_count)
        return Mismatch{"summary.campaign.shard", fmt::format("shard count {} vs {}", a.shard_count, b.shard_count)};
    return std::nullopt;
}

void add_into(Summary& to, const Summary& from) {
    for (const auto& [name, member] : kCounts) to.*member += from.*member;
    for (const auto& [id, t] : from.per_check)
        for (const auto& [name, member] : kTallies) to.per_check[id].*member += t.*member;
    for (const auto& [id, n] : from.per_known) to.per_known[id] += n;
}

}  // namespace

std::string summary_json_line(const Report& r) {
    const auto& s = r.summary;
    const auto& c = r.campaign;
    json j;
    auto& o = j["summary"];
    for (const auto& [name, member] : kCounts) o[std::string(name)] = s.*member;
    o["backend"] = c.backend;
    o["cpu"] = c.cpu;
    o["profile"] = c.profile;
    o["campaign"] = {{"seed", c.seed ? json(std::to_string(*c.seed)) : json(nullptr)},
                     {"count", c.count},
                     {"boundary", c.boundary},
                     {"files", c.files},
                     {"shard", fmt::format("{}/{}", c.shard_index, c.shard_count)}};
    o["jobs"] = r.figures.jobs;
    o["boots"] = r.figures.boots;
    o["emulator_seconds"] = r.figures.emulator_seconds;
    o["wall_seconds"] = r.figures.wall_seconds;
    o["vectors_per_second"] = rate(r);
    auto& pc = o["per_check"] = json::object();
    for (const auto& [id, t] : s.per_check)
        for (const auto& [name, member] : kTallies) pc[id][std::string(name)] = t.*member;
    o["known_divergences"] = s.per_known;
    return j.dump();
}

nsvm::expected<Report, Diagnostic> parse_summary_line(std::string_view line, std::string_view source, int lineno) {
    const auto j = parse_report_line(line, source, lineno);
    if (!j) return nsvm::unexpected(j.error());
    return SummaryReader(source, lineno).read(*j);
}

nsvm::expected<Report, Diagnostic> merge_reports(std::span<const std::string> paths) {
    if (paths.empty()) return nsvm::unexpected(Diagnostic{"", 0, "", "diff merge: no reports given"});
    std::optional<Report> merged;
    std::string first;               // the file whose campaign the others must share
    int first_line = 0;              // and the line of its summary
    std::vector<std::string> shard_file;  // which file gave shard i
    for (const auto& path : paths) {
        auto r = read_report(path);
        if (!r) return nsvm::unexpected(std::move(r.error()));
        const Campaign& c = r->report.campaign;
        const std::string name = util::printable(path, 200);
        if (!merged) {
            merged = r->report;
            merged->summary = Summary{};
            merged->figures = RunFigures{0, 0, 0, 0};
            first = name;
            first_line = r->summary_line;
            shard_file.assign(c.shard_count, std::string());
        } else if (auto m = campaign_mismatch(merged->campaign, c)) {
            return nsvm::unexpected(Diagnostic{name, r->summary_line, std::string(m->field),
                                               fmt::format("not a shard of the campaign of {}: {}", first, m->why)});
        }
        auto& seen = shard_file[c.shard_index];
        if (!seen.empty())
            return nsvm::unexpected(Diagnostic{name, r->summary_line, "summary.campaign.shard",
                                               fmt::format("shard {}/{} again ({} has it)", c.shard_index,
                                                           c.shard_count, seen)});
        seen = name;
        add_into(merged->summary, r->report.summary);
        merged->figures.jobs += r->report.figures.jobs;
        merged->figures.boots += r->report.figures.boots;
        merged->figures.emulator_seconds += r->report.figures.emulator_seconds;
        merged->figures.wall_seconds = std::max(merged->figures.wall_seconds, r->report.figures.wall_seconds);
    }
    std::vector<std::string> missing;
    for (std::size_t i = 0; i < shard_file.size(); ++i)
        if (shard_file[i].empty()) missing.push_back(fmt::format("{}/{}", i, shard_file.size()));
    // A missing shard is no file's fault; the error names the file whose
    // summary says how many shards there are.
    if (!missing.empty())
        return nsvm::unexpected(Diagnostic{first, first_line, "summary.campaign.shard",
                                           fmt::format("a campaign of {} shards: shard{} {} missing", shard_file.size(),
                                                       missing.size() == 1 ? "" : "s", fmt::join(missing, ", "))});
    merged->campaign.shard_index = 0;
    merged->campaign.shard_count = 1;
    return std::move(*merged);
}

}  // namespace nsvm::oracle
