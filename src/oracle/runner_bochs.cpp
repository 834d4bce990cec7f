// The Bochs 2.7 backend (docs/oracle.md "How it works").
//
// Bochs has no multiboot loader and its optramimage loader misplaces files
// larger than 128 KiB, so: the 12 KiB image is an optramimage at 1 MiB, a
// boot sector on a floppy jumps to it, the batch is a flat ATA disk the image
// reads with PIO, and the debugger (-rc script: c; writemem; q) dumps guest
// memory when the image hits its magic breakpoint (xchg bx,bx). The image
// prints "@<index>" on port 0xE9 before each vector, so a PANIC, which
// loses guest memory, still names the vector that caused it.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "batch.hpp"
#include "cleanup.hpp"
#include "nsvm/oracle/runner.hpp"
#include "process.hpp"
#include "nsvm/util/text.hpp"

namespace nsvm::oracle {

namespace fs = std::filesystem;

namespace {

std::optional<std::uint32_t> last_progress(const fs::path& log) {
    std::ifstream in(log, std::ios::binary);
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string s = ss.str();
    const auto at = s.rfind('@');
    if (at == std::string::npos || at + 9 > s.size()) return std::nullopt;
    std::uint32_t v = 0;
    for (std::size_t i = at + 1; i < at + 9; ++i) {
        const char c = s[i];
        const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return std::nullopt;
        v = (v << 4) | static_cast<std::uint32_t>(d);
    }
    return v;
}

/// Bochs 2.7's lock beside a disk image: the image's name + ".lock" (as Bochs
/// 2.7 leaves it here; its log then says "image locked").
fs::path lock_file(const fs::path& disk) { return fs::path(disk.string() + ".lock"); }

/// The PANIC / error lines of a Bochs log, for the cannot_run reason.
std::string panic_lines(const fs::path& log) {
    std::ifstream in(log);
    std::string line, out;
    while (std::getline(in, line)) {
        if (line.find("PANIC") != std::string::npos) out += line + "\n";
    }
    return out;
}

class BochsRunner final : public detail::BatchedRunner {
public:
    BochsRunner(RunnerOptions o, fs::path image) : BatchedRunner(std::move(o)), image_(std::move(image)) {
        if (o_.cpu_model.empty()) o_.cpu_model = "ryzen";
        if (o_.work_dir.empty()) o_.work_dir = access("/dev/shm", W_OK) == 0 ? fs::path("/dev/shm") : fs::temp_directory_path();
        o_.batch_size = std::min<std::size_t>(o_.batch_size, 2048);
        if (o_.stall_timeout.count() == 0) o_.stall_timeout = std::chrono::milliseconds(5000);
    }

private:
    nsvm::expected<void, std::string> run_chunk(std::span<const Vector> vectors, std::vector<Result>& out) override {
        // Runners may work in parallel threads (run_parallel): an atomic counter.
        static std::atomic<unsigned> seq{0};
        const fs::path dir = o_.work_dir / fmt::format("nsvm-bochs-{}-{}", getpid(), seq++);
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (ec) return nsvm::unexpected(fmt::format("cannot create {}", dir.string()));
        const std::size_t rsize = detail::region_size(vectors.size());
        std::vector<std::uint8_t> region(rsize);
        const std::size_t megs = std::max<std::size_t>(64, ((NSVM_OR_BATCH_PA + rsize) >> 20) + 17);
        const fs::path disk = dir / "batch.img", dump = dir / "dump.bin", rc = dir / "bochsrc",
                       dbg = dir / "dbg.rc", log = dir / "bochs.log", out_log = dir / "stdout.log";
        // Everything Bochs and we create here goes if a signal ends us
        // (cleanup.hpp); the directory last, once empty.
        std::vector<detail::TempPath> on_signal;
        if (!o_.keep_files) {
            on_signal.emplace_back(dir, true);
            for (const auto& p : {disk, lock_file(disk), dump, rc, dbg, log, out_log}) on_signal.emplace_back(p);
        }
        {
            std::ofstream f(rc);
            f << "megs: " << megs << "\n"
              << "romimage: file=/usr/share/bochs/BIOS-bochs-latest\n"
              << "vgaromimage: file=/usr/share/bochs/VGABIOS-lgpl-latest\n"
              << "cpu: model=" << o_.cpu_model << ", reset_on_triple_fault=0\n"
              << "floppya: 1_44=" << (image_ / "floppy.img").string() << ", status=inserted\n"
              << "boot: floppy\n"
              << "display_library: term\n"
              << "log: " << log.string() << "\n"
              << "magic_break: enabled=1\n"
              << "clock: sync=none\n"
              << "port_e9_hack: enabled=1\n"
              << "optramimage1: file=" << (image_ / "nsvm-oracle.bin").string() << ", address=0x100000\n"
              << "ata0: enabled=1, ioaddr1=0x1f0, ioaddr2=0x3f0, irq=14\n"
              << "ata0-master: type=disk, path=" << disk.string() << ", mode=flat\n";
            std::ofstream d(dbg);
            d << "c\nwritemem \"" << dump.string() << "\" " << NSVM_OR_BATCH_PA << " " << rsize << "\nq\n";
        }
        auto boot = [&](std::span<std::uint8_t> reg, std::size_t) {
            detail::BootOutcome o;
            {
                // Flat disk: the region, padded to whole MiB (Bochs derives a CHS geometry).
                std::ofstream f(disk, std::ios::binary | std::ios::trunc);
                f.write(reinterpret_cast<const char*>(reg.data()), static_cast<std::streamsize>(reg.size()));
                const std::size_t padded = (reg.size() + 0xFFFFF) & ~std::size_t{0xFFFFF};
                const std::vector<char> zeros(padded - reg.size(), 0);
                f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
            }
            fs::remove(dump);
            // Bochs locks a disk image with <image>.lock and leaves the lock
            // when it is killed (a hang, a stall) or panics: the next boot
            // would refuse the image and the whole rest of the batch would be
            // lost. The lock is ours to remove: this directory is this run's.
            fs::remove(lock_file(disk));
            detail::SpawnOptions so;
            so.argv = {"bochs", "-q", "-f", rc.string(), "-rc", dbg.string()};
            so.log = out_log;
            so.env = {"TERM=xterm"};
            so.new_session = true;
            const auto t0 = std::chrono::steady_clock::now();
            auto last_move = t0;
            std::uintmax_t last_size = 0;
            o.exit = detail::run_process(so, [&]() -> std::string {
                const auto now = std::chrono::steady_clock::now();
                std::error_code e2;
                const auto sz = fs::file_size(out_log, e2);
                if (!e2 && sz != last_size) {
                    last_size = sz;
                    last_move = now;
                }
                if (now - last_move > o_.stall_timeout)
                    return fmt::format("timeout: no progress for {} ms (the vector hangs L2 or the emulator)",
                                       o_.stall_timeout.count());
                if (now - t0 > o_.boot_timeout) return fmt::format("timeout: boot exceeded {} ms", o_.boot_timeout.count());
                return {};
            });
            std::error_code e3;
            if (fs::exists(dump, e3) && fs::file_size(dump, e3) == reg.size()) {
                std::ifstream f(dump, std::ios::binary);
                f.read(reinterpret_cast<char*>(reg.data()), static_cast<std::streamsize>(reg.size()));
                o.memory_valid = static_cast<bool>(f);
            } else {
                o.memory_valid = false;
                o.progress_hint = last_progress(out_log);
            }
            std::string panic = panic_lines(log);
            o.log_tail = panic.empty() ? detail::tail_of(log, 400) : panic;
            return o;
        };
        auto r = detail::run_batch(vectors, region, boot, backend_name(Backend::bochs), o_.cpu_model, out, stats_);
        if (!o_.keep_files) fs::remove_all(dir, ec);
        return r;
    }

    fs::path image_;
};

}  // namespace

namespace {

/// The CPU models this Bochs knows (`bochs -help cpu`). An unknown model makes
/// Bochs stop before its log says why, so it is refused here, as set-up the
/// user can fix (exit 2), instead of as a batch that never started.
std::vector<std::string> bochs_cpu_models() {
    std::vector<std::string> models;
    FILE* p = popen("bochs -help cpu 2>&1", "r");  // Bochs prints the list on stderr
    if (p == nullptr) return models;
    char buf[256];
    bool listing = false;
    while (std::fgets(buf, sizeof buf, p) != nullptr) {
        std::string line(buf);
        while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
        if (line.starts_with("Supported CPU models")) {
            listing = true;
        } else if (listing && !line.empty() && line.find(' ') == std::string::npos) {
            models.push_back(line);
        }
    }
    pclose(p);
    return models;
}

}  // namespace

nsvm::expected<std::unique_ptr<Runner>, std::string> make_bochs_runner(RunnerOptions opts, fs::path image) {
    if (!opts.cpu_model.empty()) {
        const auto models = bochs_cpu_models();
        if (!models.empty() && std::find(models.begin(), models.end(), opts.cpu_model) == models.end())
            return nsvm::unexpected(fmt::format("--cpu-model {}: not a CPU model this Bochs knows (bochs -help cpu: {})",
                                                util::printable(opts.cpu_model), fmt::join(models, ", ")));
    }
    if (!fs::exists("/usr/share/bochs/BIOS-bochs-latest"))
        return nsvm::unexpected(std::string("the bochs backend needs bochsbios (/usr/share/bochs/BIOS-bochs-latest)"));
    if (!fs::exists(image / "floppy.img"))
        return nsvm::unexpected(fmt::format("{}: no floppy.img (build the image with make -C oracle/image)", image.string()));
    return std::unique_ptr<Runner>(new BochsRunner(std::move(opts), std::move(image)));
}

}  // namespace nsvm::oracle
