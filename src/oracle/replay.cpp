// Replaying a results file as the oracle of `nsvm diff --results` (replay.hpp).
//
// Results are matched to vectors by id. A file in the vectors' order is read
// in lock step; results that come early (the outputs of sharded runs
// concatenated) wait in a bounded table until their vector comes.
#include "nsvm/oracle/replay.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string_view>
#include <unordered_map>

#include <fmt/format.h>

#include "bounded_lines.hpp"
#include "nsvm/oracle/vector.hpp"
#include "nsvm/util/text.hpp"

namespace nsvm::oracle {
namespace {

/// A result read, with the line it came from (for messages).
struct ReadResult {
    Result result;
    int line = 0;
};

class FileReplay final : public ResultsReplay {
public:
    FileReplay(int fd, std::string name) : lines_(fd, kMaxResultLineBytes), name_(std::move(name)) {}

    /// Reads the first result (it names the backend).
    [[nodiscard]] nsvm::expected<void, std::string> start() {
        auto first = read_next();
        if (!first) return nsvm::unexpected(first.error());
        if (*first) {
            backend_ = (*first)->result.backend;
            first_ = std::move(**first);
        }
        return {};
    }

    nsvm::expected<std::vector<Result>, std::string> run(std::span<const Vector> vectors) override {
        std::vector<Result> out;
        out.reserve(vectors.size());
        for (const auto& v : vectors) {
            auto r = result_for(v);
            if (!r) return nsvm::unexpected(r.error());
            if (r->status == Status::cannot_run) ++stats_.cannot_run;
            out.push_back(std::move(*r));
        }
        return out;
    }

    nsvm::expected<void, std::string> finish() override {
        // The earliest result no vector claimed is the one to name.
        const ReadResult* left = first_ ? &*first_ : nullptr;
        for (const auto& [id, w] : waiting_)
            if (left == nullptr || w.line < left->line) left = &w;
        if (left != nullptr) return nsvm::unexpected(no_vector(*left));
        auto more = read_next();
        if (!more) return nsvm::unexpected(more.error());
        if (*more) return nsvm::unexpected(no_vector(**more));
        return {};
    }

    const RunStats& stats() const noexcept override { return stats_; }
    const std::string& backend() const noexcept override { return backend_; }

private:
    [[nodiscard]] std::string at(int line, std::string_view member, std::string_view why) const {
        return formats::to_string(formats::Diagnostic{name_, line, std::string(member), std::string(why)});
    }

    [[nodiscard]] std::string no_vector(const ReadResult& r) const {
        if (const auto first = matched_.find(id_hash(r.result.id)); first != matched_.end())
            return late_duplicate(r, first->second);
        return at(r.line, "id", fmt::format("result for \"{}\", which is no vector's (an unknown id, a duplicate, or "
                                            "results of other vectors: other --seed/--count/--shard or files)",
                                            util::printable(r.result.id, 120)));
    }

    /// The ids already matched, by hash, with the line of their result, so
    /// that a result no vector claims is named a duplicate however late it
    /// comes. Only the message depends on it (the result is an error either
    /// way), so a 64-bit hash is enough; some 16 bytes a vector, for at most
    /// kMaxMatchedIdsRemembered vectors (past that, the message stays "no
    /// vector's").
    void remember(const std::string& id, int line) {
        if (matched_.size() < kMaxMatchedIdsRemembered) matched_.emplace(id_hash(id), line);
    }
    [[nodiscard]] static std::uint64_t id_hash(std::string_view id) noexcept { return std::hash<std::string_view>{}(id); }
    [[nodiscard]] std::string late_duplicate(const ReadResult& r, int first_line) const {
        return at(r.line, "id", fmt::format("duplicate result for \"{}\" (line {} has one)",
                                            util::printable(r.result.id, 120), first_line));
    }

    /// No result for `v` in the whole file. (Results read ahead may still be
    /// later vectors', so none of them is blamed here.)
    [[nodiscard]] std::string missing(const Vector& v) const {
        return at(line_, "id", fmt::format("no result for vector \"{}\" (the file ends at line {})",
                                           util::printable(v.id, 120), line_));
    }

    /// The next result line of the file; nullopt at its end.
    [[nodiscard]] nsvm::expected<std::optional<ReadResult>, std::string> read_next() {
        std::string text;
        for (;;) {
            switch (lines_.next(text)) {
                case LineRead::eof: return std::optional<ReadResult>{};
                case LineRead::io_error: return nsvm::unexpected(fmt::format("{}: read error: {}", name_, lines_.error()));
                case LineRead::too_long:
                    return nsvm::unexpected(
                        at(line_ + 1, "", fmt::format("a line longer than {} bytes (no result is that long)",
                                                      kMaxResultLineBytes)));
                case LineRead::ok: break;
            }
            ++line_;
            auto r = parse_result_line(text, name_, line_);
            if (!r) return nsvm::unexpected(formats::to_string(r.error()));
            if (!*r) continue;  // blank or comment
            if (!backend_.empty() && !(*r)->backend.empty() && (*r)->backend != backend_)
                return nsvm::unexpected(at(line_, "backend",
                                           fmt::format("\"{}\", but the results before it are \"{}\"'s: one "
                                                       "backend per results file",
                                                       util::printable((*r)->backend, 60), backend_)));
            return std::optional<ReadResult>(ReadResult{std::move(**r), line_});
        }
    }

    /// `v`'s result: waiting already, or read up to it (keeping the others).
    [[nodiscard]] nsvm::expected<Result, std::string> result_for(const Vector& v) {
        if (first_) {
            waiting_.emplace(first_->result.id, std::move(*first_));
            first_.reset();
        }
        if (auto w = waiting_.find(v.id); w != waiting_.end()) {
            remember(v.id, w->second.line);
            Result r = std::move(w->second.result);
            waiting_.erase(w);
            return r;
        }
        for (;;) {
            auto next = read_next();
            if (!next) return nsvm::unexpected(next.error());
            if (!*next) return nsvm::unexpected(missing(v));
            if ((*next)->result.id == v.id) {
                remember(v.id, (*next)->line);
                return std::move((*next)->result);
            }
            const auto line = (*next)->line;
            auto id = (*next)->result.id;
            if (auto dup = waiting_.find(id); dup != waiting_.end())
                return nsvm::unexpected(at(line, "id", fmt::format("duplicate result for \"{}\" (line {} has one)",
                                                                   util::printable(id, 120), dup->second.line)));
            if (waiting_.size() >= kMaxResultsAhead)
                return nsvm::unexpected(at(line, "id", fmt::format("no result for vector \"{}\" within {} lines: "
                                                                   "results must come in the vectors' order, give or "
                                                                   "take {}",
                                                                   util::printable(v.id, 120), kMaxResultsAhead,
                                                                   kMaxResultsAhead)));
            waiting_.emplace(std::move(id), std::move(**next));
        }
    }

    BoundedLines lines_;
    std::string name_;
    int line_ = 0;
    std::string backend_;
    std::optional<ReadResult> first_;  ///< read by start(), not yet matched
    std::unordered_map<std::string, ReadResult> waiting_;
    std::unordered_map<std::uint64_t, int> matched_;  ///< id hash -> line of its result
    RunStats stats_;
};

}  // namespace

nsvm::expected<std::unique_ptr<ResultsReplay>, std::string> ResultsReplay::open(const std::string& path) {
    const std::string name = path == "-" ? std::string("<stdin>") : util::printable(path, 200);
    const int fd = path == "-" ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nsvm::unexpected(fmt::format("{}: cannot open: {}", name, std::strerror(errno)));
    auto r = std::make_unique<FileReplay>(fd, name);
    if (auto s = r->start(); !s) return nsvm::unexpected(s.error());
    return std::unique_ptr<ResultsReplay>(std::move(r));
}

}  // namespace nsvm::oracle
