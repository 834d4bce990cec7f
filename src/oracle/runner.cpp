// Oracle runners: slot encoding, the batch engine, image building, and the
// QEMU backends (TCG and KVM). Bochs is in runner_bochs.cpp.
#include "nsvm/oracle/runner.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "batch.hpp"
#include "cleanup.hpp"
#include "nsvm/arch/le.hpp"
#include "process.hpp"

namespace nsvm::oracle {

namespace fs = std::filesystem;
using arch::load_le;
using arch::store_le;

std::string_view backend_name(Backend b) noexcept {
    switch (b) {
        case Backend::qemu: return "qemu";
        case Backend::bochs: return "bochs";
        case Backend::qemu_kvm: return "qemu-kvm";
        case Backend::exec: return "exec";
    }
    return "?";
}

nsvm::expected<Backend, std::string> find_backend(std::string_view name) {
    if (name == "qemu" || name == "qemu-tcg") return Backend::qemu;
    if (name == "bochs") return Backend::bochs;
    if (name == "qemu-kvm" || name == "kvm") return Backend::qemu_kvm;
    if (name.starts_with("exec:")) {
        if (exec_command_of(name).find_first_not_of(" \t") == std::string_view::npos)
            return nsvm::unexpected(std::string("the exec backend needs a command: --backend exec:CMD"));
        return Backend::exec;
    }
    if (name == "exec") return nsvm::unexpected(std::string("the exec backend needs a command: --backend exec:CMD"));
    return nsvm::unexpected(fmt::format("unknown backend \"{}\" (known: qemu, bochs, qemu-kvm, exec:CMD)", name));
}

std::string_view exec_command_of(std::string_view name) noexcept {
    constexpr std::string_view kPrefix = "exec:";
    return name.starts_with(kPrefix) ? name.substr(kPrefix.size()) : std::string_view{};
}

// ------------------------------------------------------------------ slots

nsvm::expected<void, std::string> encode_slot(const Vector& v, std::span<std::uint8_t> slot) {
    if (slot.size() < NSVM_OR_SLOT_SIZE) return nsvm::unexpected(std::string("slot too small"));
    auto patches = map_patches(v);
    if (!patches) return nsvm::unexpected(patches.error());
    const auto& page = v.vmcb.page();
    std::copy(page.begin(), page.end(), slot.begin());
    auto d = slot.subspan(NSVM_OR_DESC_OFFSET, 0x1000);
    std::fill(d.begin(), d.end(), std::uint8_t{0});
    std::uint32_t flags = 0;
    if (!v.host.gif) flags |= NSVM_OR_F_GIF0;
    if (!v.host.svme) flags |= NSVM_OR_F_NO_SVME;
    if (v.host.vmrun_rax) flags |= NSVM_OR_F_RAX;
    if (v.host.hsave_pa) flags |= NSVM_OR_F_HSAVE;
    if (!v.host.probe_gif) flags |= NSVM_OR_F_NO_PROBE;
    if (v.host.repeat != 1) flags |= NSVM_OR_F_REPEAT;
    store_le(d, NSVM_OR_D_MAGIC, 4, NSVM_OR_VEC_MAGIC);
    store_le(d, NSVM_OR_D_PROGRAM, 4, static_cast<std::uint32_t>(v.program));
    store_le(d, NSVM_OR_D_FLAGS, 4, flags);
    store_le(d, NSVM_OR_D_NPATCH, 4, patches->size());
    store_le(d, NSVM_OR_D_RAX, 8, v.host.vmrun_rax.value_or(0));
    store_le(d, NSVM_OR_D_HSAVE, 8, v.host.hsave_pa.value_or(0));
    store_le(d, NSVM_OR_D_REPEAT, 4, v.host.repeat);
    for (std::size_t r = 0; r < 16; ++r) store_le(d, NSVM_OR_D_REGS + 8 * r, 8, v.regs[r]);
    for (std::size_t k = 0; k < patches->size(); ++k) {
        const auto& p = (*patches)[k];
        store_le(d, NSVM_OR_D_PATCHES + 8 * k, 4, (std::uint64_t{p.map} << 24) | p.offset);
        store_le(d, NSVM_OR_D_PATCHES + 8 * k + 4, 4, p.value);
    }
    return {};
}

Result decode_slot(const Vector& v, std::span<const std::uint8_t> slot) {
    Result r;
    decode_slot_into(v, slot, r);
    return r;
}

void decode_slot_into(const Vector& v, std::span<const std::uint8_t> slot, Result& r) {
    r = Result{};
    r.id = v.id;
    const auto d = slot.subspan(NSVM_OR_DESC_OFFSET, 0x1000);
    if (load_le(d, NSVM_OR_R_MAGIC, 4) != NSVM_OR_RES_MAGIC) {
        r.status = Status::cannot_run;
        r.reason = "the image left no result for this vector";
        return;
    }
    arch::Vmcb::Page page{};
    std::copy_n(slot.begin(), arch::kVmcbSize, page.begin());
    r.vmcb = arch::Vmcb(page);
    const auto st = load_le(d, NSVM_OR_R_STATUS, 4);
    if (st == NSVM_OR_ST_VMEXIT) {
        r.status = Status::vmexit;
    } else if (st == NSVM_OR_ST_EXCEPTION) {
        r.status = Status::exception;
        r.exception_vector = static_cast<std::uint8_t>(load_le(d, NSVM_OR_R_EXC_VEC, 4));
        r.error_code = static_cast<std::uint32_t>(load_le(d, NSVM_OR_R_EXC_ERR, 4));
    } else {
        r.status = Status::cannot_run;
        r.reason = "the image rejected the slot (bad descriptor)";
        return;
    }
    r.gif = load_le(d, NSVM_OR_R_GIF, 4) != 0;
    r.probe_ok = load_le(d, NSVM_OR_R_PROBE_OK, 4) != 0 || !v.host.probe_gif;
    r.tsc = load_le(d, NSVM_OR_R_TSC, 8);
    r.vmcb_pa = load_le(d, NSVM_OR_R_VMCB_PA, 8);
    for (std::size_t i = 0; i < 16; ++i) r.regs[i] = load_le(d, NSVM_OR_R_REGS + 8 * i, 8);
    // map_patches puts the paging dwords after the map bytes, in Vector::paging order.
    if (const auto patches = map_patches(v); patches && !v.paging.empty()) {
        std::size_t k = patches->size();
        for (const auto& t : v.paging) k -= t.size / 4;
        for (const auto& t : v.paging) {
            TablePatch after = t;
            after.value = load_le(d, NSVM_OR_R_PAGING + 4 * k, 4);
            if (t.size == 8) after.value |= load_le(d, NSVM_OR_R_PAGING + 4 * (k + 1), 4) << 32;
            k += t.size / 4;
            r.paging_after.push_back(after);
        }
    }
}

namespace detail {

std::uint32_t hdr32(std::span<const std::uint8_t> region, std::size_t off) noexcept {
    return static_cast<std::uint32_t>(load_le(region, off, 4));
}
std::uint64_t hdr64(std::span<const std::uint8_t> region, std::size_t off) noexcept {
    return load_le(region, off, 8);
}

nsvm::expected<void, std::string> run_batch(std::span<const Vector> vectors, std::span<std::uint8_t> region,
                                            const BootFn& boot, std::string_view backend,
                                            std::string_view cpu_model, std::vector<Result>& out,
                                            RunStats& stats) {
    const std::size_t n = vectors.size();
    const std::size_t base = out.size();
    out.resize(base + n);
    const std::span<Result> res(out.data() + base, n);
    std::vector<bool> bad(n, false);
    const std::size_t slots_off = NSVM_OR_SLOTS_PA - NSVM_OR_BATCH_PA;
    std::fill(region.begin(), region.begin() + static_cast<std::ptrdiff_t>(slots_off), std::uint8_t{0});
    for (std::size_t i = 0; i < n; ++i) {
        auto slot = region.subspan(slots_off + i * NSVM_OR_SLOT_SIZE, NSVM_OR_SLOT_SIZE);
        // Vectors from files were refused by the reader already; this covers
        // generated vectors and library callers (the slot stays empty).
        if (auto p = isolation_problem(vectors[i])) {
            std::fill(slot.begin(), slot.end(), std::uint8_t{0});
            bad[i] = true;
            res[i].status = Status::cannot_run;
            res[i].reason = fmt::format("refused: {}: {}", p->field, p->message);
            ++stats.cannot_run;
            continue;
        }
        if (auto e = encode_slot(vectors[i], slot); !e) {
            // Leave a slot the image skips (bad magic) and report it.
            std::fill(slot.begin(), slot.end(), std::uint8_t{0});
            bad[i] = true;
            res[i].status = Status::cannot_run;
            res[i].reason = "cannot encode: " + e.error();
        }
    }
    store_le(region, NSVM_OR_B_MAGIC, 4, NSVM_OR_BATCH_MAGIC);
    store_le(region, NSVM_OR_B_VERSION, 4, NSVM_OR_VERSION);
    store_le(region, NSVM_OR_B_COUNT, 4, n);

    const auto fail_slot = [&](std::size_t i, std::string why) {
        res[i] = Result{};
        res[i].status = Status::cannot_run;
        res[i].reason = std::move(why);
        bad[i] = true;
        ++stats.cannot_run;
        // The image skips a slot without the descriptor magic (status bad input).
        store_le(region, slots_off + i * NSVM_OR_SLOT_SIZE + NSVM_OR_DESC_OFFSET + NSVM_OR_D_MAGIC, 4, 0);
    };
    const auto describe = [](const BootOutcome& o) {
        std::string why;
        if (o.exit.killed)
            why = o.exit.kill_reason;
        else if (o.exit.signal)
            why = fmt::format("emulator killed by signal {}", o.exit.signal);
        else
            why = fmt::format("emulator exited (status {}) while running this vector", o.exit.status);
        if (!o.log_tail.empty()) why += "; log: " + o.log_tail;
        return why;
    };

    std::size_t first = 0;
    std::size_t guard = 0;
    while (first < n && guard++ <= n + 1) {
        store_le(region, NSVM_OR_B_FIRST, 4, first);
        store_le(region, NSVM_OR_B_PROGRESS, 4, first);
        store_le(region, NSVM_OR_B_DONE, 4, first);
        store_le(region, NSVM_OR_B_STATE, 4, 0);
        auto o = boot(region, n);
        ++stats.boots;
        stats.seconds += o.exit.seconds;
        if (!o.exit.started) return nsvm::unexpected(fmt::format("{}: the emulator did not start", backend));
        if (!o.memory_valid) {
            // Guest memory is lost (Bochs stopped before its dump): fail the
            // vector that was running and rerun the batch without it.
            if (!o.progress_hint || *o.progress_hint < first || *o.progress_hint >= n) {
                if (first == 0)
                    return nsvm::unexpected(fmt::format("{}: the image never started; log:\n{}", backend, o.log_tail));
                for (std::size_t i = first; i < n; ++i)
                    if (!bad[i]) fail_slot(i, describe(o));
                break;
            }
            fail_slot(*o.progress_hint, describe(o));
            continue;
        }
        const std::uint32_t state = hdr32(region, NSVM_OR_B_STATE);
        const std::uint32_t done = hdr32(region, NSVM_OR_B_DONE);
        if (state == 0) {
            if (first == 0)
                return nsvm::unexpected(fmt::format("{}: the image never started ({}); log:\n{}", backend,
                                                    describe(o), o.log_tail));
            fail_slot(first, describe(o));
            first = first + 1;
            continue;
        }
        const std::size_t finished_to =
            state == NSVM_OR_STATE_FINISHED ? n : std::clamp<std::size_t>(done, first, n);
        for (std::size_t i = first; i < finished_to; ++i) {
            if (bad[i]) continue;
            decode_slot_into(vectors[i], region.subspan(slots_off + i * NSVM_OR_SLOT_SIZE, NSVM_OR_SLOT_SIZE), res[i]);
        }
        if (finished_to >= n) break;
        std::string why = state == NSVM_OR_STATE_FATAL
                              ? fmt::format("host fault (vector {}) at rip {:#x} after this vector's VMRUN",
                                            hdr32(region, NSVM_OR_B_FATAL_VEC), hdr64(region, NSVM_OR_B_FATAL_RIP))
                              : describe(o);
        fail_slot(finished_to, std::move(why));
        first = finished_to + 1;
    }
    for (std::size_t i = 0; i < n; ++i) {
        res[i].id = vectors[i].id;
        res[i].backend = std::string(backend);
        res[i].cpu_model = std::string(cpu_model);
    }
    return {};
}

bool taints_later_vectors(const Vector& v) noexcept {
    const auto efer = v.vmcb.get(arch::FieldId::efer);
    const auto cr0 = v.vmcb.get(arch::FieldId::cr0);
    constexpr std::uint64_t kLma = std::uint64_t{1} << 10, kLme = std::uint64_t{1} << 8, kPg = std::uint64_t{1} << 31;
    return ((efer & kLma) != 0) != ((efer & kLme) != 0 && (cr0 & kPg) != 0);
}

nsvm::expected<std::vector<Result>, std::string> BatchedRunner::run(std::span<const Vector> vectors) {
    std::vector<Result> all;
    all.reserve(vectors.size());
    // No more slots than the image's layout (and the isolation check) allow.
    const std::size_t bs = std::clamp<std::size_t>(o_.batch_size, 1, NSVM_OR_MAX_SLOTS);
    std::vector<Vector> reordered;
    std::vector<std::size_t> order;
    std::vector<Result> part;
    for (std::size_t at = 0; at < vectors.size(); at += bs) {
        const auto chunk = vectors.subspan(at, std::min(bs, vectors.size() - at));
        // Vectors that leave an emulator in a state later VMRUNs feel run
        // last in their boot (taints_later_vectors); results keep the order.
        order.clear();
        for (std::size_t i = 0; i < chunk.size(); ++i)
            if (!taints_later_vectors(chunk[i])) order.push_back(i);
        const std::size_t clean = order.size();
        for (std::size_t i = 0; i < chunk.size(); ++i)
            if (taints_later_vectors(chunk[i])) order.push_back(i);
        bool identity = true;
        for (std::size_t i = 0; i < order.size(); ++i) identity = identity && order[i] == i;
        if (identity || clean == 0) {
            if (auto e = run_chunk(chunk, all); !e) return nsvm::unexpected(e.error());
        } else {
            reordered.clear();
            for (auto i : order) reordered.push_back(chunk[i]);
            part.clear();
            if (auto e = run_chunk(reordered, part); !e) return nsvm::unexpected(e.error());
            const std::size_t base = all.size();
            all.resize(base + chunk.size());
            for (std::size_t k = 0; k < order.size(); ++k) all[base + order[k]] = std::move(part[k]);
        }
        if (o_.progress) o_.progress(all.size(), vectors.size());
    }
    return all;
}

}  // namespace detail

// ------------------------------------------------------------------ image

namespace {

fs::path source_root() {
    if (const char* s = std::getenv("NSVM_SOURCE_DIR"); s && *s) return fs::path(s);
    // This file is <root>/src/oracle/runner.cpp.
    const fs::path root = fs::path(__FILE__).parent_path().parent_path().parent_path();
    if (root.is_absolute()) return root;
    // Built through ccache with base_dir, __FILE__ is relative to the build
    // directory, which holds nsvm and the test executables: resolve it from
    // there rather than from wherever the user runs nsvm.
    std::error_code ec;
    const auto exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        const auto from_exe = (exe.parent_path() / root).lexically_normal();
        if (fs::exists(from_exe / "oracle" / "image" / "Makefile", ec)) return from_exe;
    }
    return root;
}

std::mutex g_image_mutex;

}  // namespace

nsvm::expected<fs::path, std::string> find_or_build_image() {
    std::lock_guard lock(g_image_mutex);
    if (const char* s = std::getenv("NSVM_ORACLE_IMAGE"); s && *s) {
        fs::path p(s);
        if (!fs::exists(p / "nsvm-oracle.bin"))
            return nsvm::unexpected(fmt::format("NSVM_ORACLE_IMAGE={}: no nsvm-oracle.bin there", s));
        return p;
    }
    const fs::path root = source_root();
    const fs::path src = root / "oracle" / "image";
    fs::path out;
    if (const char* s = std::getenv("NSVM_ORACLE_OUT"); s && *s)
        out = fs::path(s);
    else
        out = root / "oracle" / "out" / "image";
    if (!fs::exists(src / "Makefile"))
        return nsvm::unexpected(fmt::format("cannot find the image sources ({}); set NSVM_SOURCE_DIR or "
                                            "NSVM_ORACLE_IMAGE",
                                            src.string()));
    std::error_code ec;
    fs::create_directories(out, ec);
    // Several processes (ctest -j, parallel campaigns) may ask at once: make
    // must not run twice in the same directory. flock is released on close.
    struct Lock {
        int fd;
        ~Lock() {
            if (fd >= 0) close(fd);
        }
    } lock_file{::open((out / ".build.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)};
    if (lock_file.fd < 0 || flock(lock_file.fd, LOCK_EX) != 0)
        return nsvm::unexpected(fmt::format("cannot lock {}", (out / ".build.lock").string()));
    detail::SpawnOptions so;
    so.argv = {"make", "-s", "-C", src.string(), "OUT=" + out.string()};
    so.log = out / "build.log";
    const auto e = detail::run_process(so, {});
    if (!e.started || e.status != 0 || !fs::exists(out / "nsvm-oracle.bin"))
        return nsvm::unexpected(fmt::format("building the oracle image failed (make -C {}):\n{}", src.string(),
                                            detail::tail_of(so.log, 2000)));
    return out;
}

// ------------------------------------------------------------------ QEMU

namespace {

fs::path default_work_dir() {
    if (access("/dev/shm", W_OK) == 0) return "/dev/shm";
    return fs::temp_directory_path();
}

std::atomic<unsigned> g_seq{0};

/// A file mapped shared: QEMU's guest RAM (memory-backend-file,share=on).
class RamFile {
public:
    RamFile(fs::path path, std::size_t size) : path_(std::move(path)), size_(size) {}
    ~RamFile() {
        if (map_ != nullptr) munmap(map_, size_);
        if (fd_ >= 0) close(fd_);
        if (!keep_) unlink(path_.c_str());
    }
    RamFile(const RamFile&) = delete;
    RamFile& operator=(const RamFile&) = delete;
    nsvm::expected<void, std::string> open_map() {
        if (!keep_) on_signal_ = detail::TempPath(path_);
        fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd_ < 0) return nsvm::unexpected(fmt::format("cannot create {}", path_.string()));
        if (ftruncate(fd_, static_cast<off_t>(size_)) != 0)
            return nsvm::unexpected(fmt::format("cannot size {}", path_.string()));
        void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
        if (p == MAP_FAILED) return nsvm::unexpected(fmt::format("cannot map {}", path_.string()));
        map_ = static_cast<std::uint8_t*>(p);
        return {};
    }
    std::span<std::uint8_t> bytes() { return {map_, size_}; }
    const fs::path& path() const { return path_; }
    void keep(bool k) { keep_ = k; }

private:
    fs::path path_;
    std::size_t size_;
    int fd_ = -1;
    std::uint8_t* map_ = nullptr;
    bool keep_ = false;
    // Unregistered after the destructor's unlink: a signal in between finds no file, which is harmless.
    detail::TempPath on_signal_;
};

bool kvm_usable(std::string& why) {
    if (access("/dev/kvm", R_OK | W_OK) != 0) {
        why = "the qemu-kvm backend needs /dev/kvm on an AMD host (no usable /dev/kvm here)";
        return false;
    }
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    bool amd = false, svm = false;
    while (std::getline(in, line)) {
        if (line.find("AuthenticAMD") != std::string::npos) amd = true;
        if (line.rfind("flags", 0) == 0 && line.find(" svm") != std::string::npos) svm = true;
    }
    if (!amd || !svm) {
        why = "the qemu-kvm backend needs /dev/kvm on an AMD host (this CPU is not an AMD with SVM)";
        return false;
    }
    return true;
}

class QemuRunner final : public detail::BatchedRunner {
public:
    explicit QemuRunner(RunnerOptions o, fs::path image) : BatchedRunner(std::move(o)), image_(std::move(image)) {
        if (o_.cpu_model.empty()) o_.cpu_model = o_.backend == Backend::qemu_kvm ? "host" : "max";
        if (o_.work_dir.empty()) o_.work_dir = default_work_dir();
        if (o_.stall_timeout.count() == 0) o_.stall_timeout = std::chrono::milliseconds(500);
    }

private:
    nsvm::expected<void, std::string> run_chunk(std::span<const Vector> vectors, std::vector<Result>& out) override {
        const std::size_t need = NSVM_OR_BATCH_PA + detail::region_size(vectors.size());
        // 16 MiB above the slots: the firmware keeps its tables at the top of RAM.
        const std::size_t mib = std::max<std::size_t>(64, (need >> 20) + 17);
        const auto base = o_.work_dir / fmt::format("nsvm-oracle-{}-{}", getpid(), g_seq++);
        // One RAM file per runner, reused by every boot: a fresh tmpfs file
        // costs a zeroed page per 4 KiB touched, which was half the host-side
        // time of a campaign. The image initialises all the memory it reads
        // (boot.S, setup_l2) and run_batch rewrites the header and every slot.
        if (!ram_ || ram_mib_ < mib) {
            ram_.reset();
            ram_ = std::make_unique<RamFile>(fs::path(base.string() + ".ram"), mib << 20);
            ram_->keep(o_.keep_files);
            if (auto e = ram_->open_map(); !e) {
                ram_.reset();
                return e;
            }
            ram_mib_ = mib;
        }
        RamFile& ram = *ram_;
        const fs::path log = base.string() + ".log";
        const detail::TempPath log_on_signal = o_.keep_files ? detail::TempPath() : detail::TempPath(log);
        auto region = ram.bytes().subspan(NSVM_OR_BATCH_PA, detail::region_size(vectors.size()));

        std::vector<std::string> argv = {"qemu-system-x86_64",
                                         "-accel",
                                         o_.backend == Backend::qemu_kvm ? "kvm" : "tcg",
                                         "-cpu",
                                         o_.cpu_model,
                                         "-m",
                                         fmt::format("{}M", ram_mib_),
                                         "-object",
                                         fmt::format("memory-backend-file,id=ram0,size={}M,mem-path={},share=on",
                                                     ram_mib_, ram.path().string()),
                                         "-machine",
                                         "pc,memory-backend=ram0",
                                         "-nodefaults",
                                         "-display",
                                         "none",
                                         "-no-reboot",
                                         "-serial",
                                         "none",
                                         "-device",
                                         "isa-debug-exit,iobase=0xf4,iosize=0x04",
                                         "-kernel",
                                         (image_ / "nsvm-oracle.bin").string()};
        auto boot = [&](std::span<std::uint8_t> reg, std::size_t) {
            detail::BootOutcome o;
            detail::SpawnOptions so;
            so.argv = argv;
            so.log = log;
            const auto t0 = std::chrono::steady_clock::now();
            auto last_move = t0;
            std::uint32_t last_progress = detail::hdr32(reg, NSVM_OR_B_PROGRESS);
            std::uint32_t last_state = 0;
            o.exit = detail::run_process(so, [&]() -> std::string {
                const auto now = std::chrono::steady_clock::now();
                const auto p = detail::hdr32(reg, NSVM_OR_B_PROGRESS);
                const auto s = detail::hdr32(reg, NSVM_OR_B_STATE);
                if (p != last_progress || s != last_state) {
                    last_progress = p;
                    last_state = s;
                    last_move = now;
                }
                if (s != 0 && now - last_move > o_.stall_timeout)
                    return fmt::format("timeout: no progress for {} ms (the vector hangs L2 or the emulator)",
                                       o_.stall_timeout.count());
                if (now - t0 > o_.boot_timeout)
                    return fmt::format("timeout: boot exceeded {} ms", o_.boot_timeout.count());
                return {};
            });
            // isa-debug-exit: status (v << 1) | 1; a clean finish writes 0 -> 1.
            o.log_tail = detail::tail_of(log);
            return o;
        };
        auto r = detail::run_batch(vectors, region, boot, backend_name(o_.backend), o_.cpu_model, out, stats_);
        if (!o_.keep_files) std::filesystem::remove(log);
        return r;
    }

    fs::path image_;
    std::unique_ptr<RamFile> ram_;
    std::size_t ram_mib_ = 0;
};

}  // namespace

nsvm::expected<std::unique_ptr<Runner>, std::string> make_bochs_runner(RunnerOptions opts, fs::path image);
nsvm::expected<std::unique_ptr<Runner>, std::string> make_exec_runner(RunnerOptions opts);

namespace {

/// jobs > 1: one backend runner per job, each on a contiguous part of the
/// vectors, in its own thread with its own emulator process and files.
class ParallelRunner final : public Runner {
public:
    explicit ParallelRunner(std::vector<std::unique_ptr<Runner>> runners) : runners_(std::move(runners)) {}

    nsvm::expected<std::vector<Result>, std::string> run(std::span<const Vector> vectors) override {
        const std::size_t jobs = std::min(runners_.size(), std::max<std::size_t>(1, vectors.size()));
        const std::size_t per = (vectors.size() + jobs - 1) / jobs;
        std::vector<nsvm::expected<std::vector<Result>, std::string>> parts(jobs, std::vector<Result>{});
        std::vector<std::thread> threads;
        for (std::size_t j = 0; j < jobs; ++j) {
            const std::size_t at = std::min(vectors.size(), j * per);
            const auto part = vectors.subspan(at, std::min(per, vectors.size() - at));
            threads.emplace_back([this, &parts, part, j] { parts[j] = runners_[j]->run(part); });
        }
        for (auto& t : threads) t.join();
        std::vector<Result> all;
        all.reserve(vectors.size());
        stats_ = {};
        for (std::size_t j = 0; j < runners_.size(); ++j) {
            const auto& st = runners_[j]->stats();
            stats_.boots += st.boots;
            stats_.cannot_run += st.cannot_run;
            stats_.seconds += st.seconds;
        }
        for (std::size_t j = 0; j < jobs; ++j) {
            if (!parts[j]) return nsvm::unexpected(parts[j].error());
            for (auto& r : *parts[j]) all.push_back(std::move(r));
        }
        return all;
    }
    const RunStats& stats() const noexcept override { return stats_; }

private:
    std::vector<std::unique_ptr<Runner>> runners_;
    RunStats stats_;
};

nsvm::expected<std::unique_ptr<Runner>, std::string> make_one_runner(RunnerOptions opts, const fs::path& image) {
    if (opts.backend == Backend::bochs) return make_bochs_runner(std::move(opts), image);
    if (opts.backend == Backend::exec) return make_exec_runner(std::move(opts));
    return std::unique_ptr<Runner>(new QemuRunner(std::move(opts), image));
}

}  // namespace

nsvm::expected<std::unique_ptr<Runner>, std::string> make_runner(RunnerOptions opts) {
    // Runners leave files in /dev/shm and emulators in their own process
    // groups: an interrupted run must take both with it.
    detail::install_signal_cleanup();
    if (opts.backend == Backend::qemu_kvm) {
        std::string why;
        if (!kvm_usable(why)) return nsvm::unexpected(why);
    }
    const char* exe = opts.backend == Backend::bochs ? "bochs" : "qemu-system-x86_64";
    if (opts.backend != Backend::exec && !detail::on_path(exe))
        return nsvm::unexpected(fmt::format("the {} backend needs {} on PATH", backend_name(opts.backend), exe));
    fs::path image = opts.image_dir;
    // The exec backend runs no image: its implementation is the machine.
    if (image.empty() && opts.backend != Backend::exec) {
        auto built = find_or_build_image();
        if (!built) return nsvm::unexpected(built.error());
        image = *built;
    }
    if (opts.jobs <= 1) return make_one_runner(std::move(opts), image);
    std::vector<std::unique_ptr<Runner>> runners;
    for (std::size_t j = 0; j < opts.jobs; ++j) {
        auto r = make_one_runner(opts, image);
        if (!r) return nsvm::unexpected(r.error());
        runners.push_back(std::move(*r));
    }
    return std::unique_ptr<Runner>(new ParallelRunner(std::move(runners)));
}

}  // namespace nsvm::oracle
