// The exec backend: any SVM implementation as a child process speaking the
// line protocol of docs/oracle.md "The exec backend". One vector goes out,
// one result comes back, in lock step, so a timeout or a crash names the
// vector in flight exactly; that vector is lost (cannot_run), the child is
// restarted, and the run goes on.
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "exec_process.hpp"
#include "nsvm/oracle/runner.hpp"

namespace nsvm::oracle {
namespace {

using namespace std::chrono_literals;

/// The protocol version this nsvm speaks (the handshake's value).
constexpr std::int64_t kProtocolVersion = 1;
/// A result line with the whole VMCB is some 10 KiB; 1 MiB leaves room for
/// verbose backends and still bounds what a runaway one costs us.
constexpr std::size_t kMaxLineBytes = std::size_t{1} << 20;
constexpr auto kDefaultTimeout = 10000ms;
/// How long a backend may take to exit after its stdin closes.
constexpr auto kExitGrace = 500ms;

/// A line, shortened for a message.
[[nodiscard]] std::string excerpt(const std::string& s) {
    constexpr std::size_t kMax = 120;
    std::string e = s.size() > kMax ? s.substr(0, kMax) + "..." : s;
    for (auto& c : e)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '.';
    return e;
}

class ExecRunner final : public Runner {
public:
    explicit ExecRunner(RunnerOptions o) : o_(std::move(o)) {
        timeout_ = o_.stall_timeout.count() > 0 ? o_.stall_timeout : std::chrono::milliseconds(kDefaultTimeout);
    }
    ~ExecRunner() override { (void)child_.stop(kExitGrace); }
    ExecRunner(const ExecRunner&) = delete;
    ExecRunner& operator=(const ExecRunner&) = delete;

    /// Starts the command and checks its handshake; the error says why not.
    [[nodiscard]] nsvm::expected<void, std::string> start() {
        std::string error;
        if (!child_.start(o_.exec_command, error))
            return nsvm::unexpected(fmt::format("exec backend `{}`: {}", o_.exec_command, error));
        ++stats_.boots;
        const auto hello = nlohmann::json{{"nsvm_exec_protocol", kProtocolVersion}}.dump();
        std::string line;
        auto st = child_.write_line(hello, timeout_) ? child_.read_line(line, kMaxLineBytes, timeout_)
                                                      : detail::LineStatus::eof;
        if (st != detail::LineStatus::ok) return nsvm::unexpected(handshake_failure(st));
        return check_handshake(line);
    }

    nsvm::expected<std::vector<Result>, std::string> run(std::span<const Vector> vectors) override {
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<Result> out;
        out.reserve(vectors.size());
        for (const auto& v : vectors) {
            // Started lazily after a loss: a crash on the last vector costs no restart.
            if (!child_.running()) {
                if (auto s = start(); !s) return nsvm::unexpected(s.error());
            }
            out.push_back(run_one(v));
            if (out.back().status == Status::cannot_run) ++stats_.cannot_run;
        }
        stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        return out;
    }

    const RunStats& stats() const noexcept override { return stats_; }

private:
    [[nodiscard]] std::string handshake_failure(detail::LineStatus st) {
        const std::string how = child_.kill_and_reap();
        std::string why;
        switch (st) {
            case detail::LineStatus::timeout: why = fmt::format("no handshake within {} ms", timeout_.count()); break;
            case detail::LineStatus::too_long: why = "the handshake line is too long"; break;
            default: why = "it ended before the handshake"; break;
        }
        // sh reports a command it cannot find or run with 127 or 126.
        if (how == "exited with status 127" || how == "exited with status 126")
            why += " (" + how + ": the command was not found or is not executable)";
        else if (!how.empty())
            why += " (" + how + ")";
        return fmt::format("exec backend `{}` cannot be started: {}", o_.exec_command, why);
    }

    [[nodiscard]] nsvm::expected<void, std::string> check_handshake(const std::string& line) {
        const auto j = nlohmann::json::parse(line, nullptr, false);
        const auto bad = [&](std::string_view what) {
            (void)child_.kill_and_reap();
            return nsvm::unexpected(fmt::format("exec backend `{}`: {} (its first line: {})", o_.exec_command, what,
                                                excerpt(line)));
        };
        if (!j.is_object() || !j.contains("nsvm_exec_protocol")) return bad("no handshake {\"nsvm_exec_protocol\":1}");
        const auto& ver = j["nsvm_exec_protocol"];
        if (!ver.is_number_integer() || ver.get<std::int64_t>() != kProtocolVersion)
            return bad(fmt::format("speaks protocol version {}, nsvm speaks {}", ver.dump(), kProtocolVersion));
        name_ = j.contains("backend") && j["backend"].is_string() ? j["backend"].get<std::string>() : "exec";
        if (j.contains("cpu_model") && j["cpu_model"].is_string()) cpu_model_ = j["cpu_model"].get<std::string>();
        return {};
    }

    /// The vector in flight is lost: the backend is killed (restarted with the
    /// next vector) and the result says why.
    [[nodiscard]] Result lose(const Vector& v, std::string why) {
        (void)child_.kill_and_reap();
        Result r;
        r.id = v.id;
        r.backend = name_;
        r.cpu_model = cpu_model_;
        r.status = Status::cannot_run;
        r.reason = "exec backend: " + std::move(why);
        return r;
    }

    [[nodiscard]] Result run_one(const Vector& v) {
        if (!child_.write_line(to_json_line(v), timeout_)) return lose(v, "it stopped reading its input");
        std::string line;
        switch (child_.read_line(line, kMaxLineBytes, timeout_)) {
            case detail::LineStatus::ok: break;
            case detail::LineStatus::timeout:
                return lose(v, fmt::format("timeout: no answer within {} ms", timeout_.count()));
            case detail::LineStatus::too_long:
                return lose(v, fmt::format("an answer line longer than {} bytes", kMaxLineBytes));
            case detail::LineStatus::eof: {
                const std::string how = child_.kill_and_reap();
                return lose(v, "it ended without an answer" + (how.empty() ? std::string() : " (" + how + ")"));
            }
            case detail::LineStatus::io_error: return lose(v, "cannot read its output");
        }
        return parse_answer(v, line);
    }

    /// One result line for `v`; anything else is garbage and loses the vector
    /// (the backend is out of step with us, its next answers cannot be trusted).
    [[nodiscard]] Result parse_answer(const Vector& v, const std::string& line) {
        auto parsed = parse_results(line, "exec backend");
        if (!parsed) return lose(v, "garbage answer: " + formats::to_string(parsed.error()) + ": " + excerpt(line));
        if (parsed->size() != 1) return lose(v, "garbage answer (not one result object): " + excerpt(line));
        Result r = std::move(parsed->front());
        if (r.id != v.id) return lose(v, fmt::format("answer for id \"{}\", expected \"{}\"", excerpt(r.id), v.id));
        if (r.backend.empty()) r.backend = name_;
        if (r.cpu_model.empty()) r.cpu_model = cpu_model_;
        return r;
    }

    RunnerOptions o_;
    std::chrono::milliseconds timeout_{kDefaultTimeout};
    detail::LineChild child_;
    RunStats stats_;
    std::string name_ = "exec";
    std::string cpu_model_;
};

}  // namespace

nsvm::expected<std::unique_ptr<Runner>, std::string> make_exec_runner(RunnerOptions opts) {
    if (opts.exec_command.find_first_not_of(" \t") == std::string::npos)
        return nsvm::unexpected(std::string("the exec backend needs a command: --backend exec:CMD"));
    auto r = std::make_unique<ExecRunner>(std::move(opts));
    // Started here, so a command that cannot run fails before any vector.
    if (auto s = r->start(); !s) return nsvm::unexpected(s.error());
    return std::unique_ptr<Runner>(std::move(r));
}

}  // namespace nsvm::oracle
