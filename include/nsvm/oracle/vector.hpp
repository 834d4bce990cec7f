// Test vectors for the differential oracle and the results the emulators
// give for them (docs/oracle.md "Vector format", "Result format").
//
// A vector is one VMRUN: the VMCB (docs/formats.md "VMCB as JSON" JSON), the MSRPM/IOPM bits
// to set, an L2 program from the image's fixed menu with its register
// operands, and the host-state knobs the image supports.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nsvm/arch/vmcb.hpp"
#include "nsvm/formats/vmcb_io.hpp"
#include "nsvm/oracle/layout.h"
#include "nsvm/util/expected.hpp"

namespace nsvm::oracle {

/// The L2 program menu of the image (layout.h NSVM_OR_PROG_*).
enum class Program : std::uint32_t {
    vmmcall = NSVM_OR_PROG_VMMCALL,
    hlt = NSVM_OR_PROG_HLT,
    cpuid = NSVM_OR_PROG_CPUID,
    rdmsr = NSVM_OR_PROG_RDMSR,
    wrmsr = NSVM_OR_PROG_WRMSR,
    in = NSVM_OR_PROG_IN,
    out = NSVM_OR_PROG_OUT,
    ud2 = NSVM_OR_PROG_UD2,
    int3 = NSVM_OR_PROG_INT3,
    load = NSVM_OR_PROG_LOAD,
    store = NSVM_OR_PROG_STORE,
    stgi = NSVM_OR_PROG_STGI,
    clgi = NSVM_OR_PROG_CLGI,
    vmload = NSVM_OR_PROG_VMLOAD,
    vmsave = NSVM_OR_PROG_VMSAVE,
    vmrun = NSVM_OR_PROG_VMRUN,
    div0 = NSVM_OR_PROG_DIV0,
    rdtsc = NSVM_OR_PROG_RDTSC,
    pause = NSVM_OR_PROG_PAUSE,
    invd = NSVM_OR_PROG_INVD,
    wbinvd = NSVM_OR_PROG_WBINVD,
    rdtscp = NSVM_OR_PROG_RDTSCP,
    xsetbv = NSVM_OR_PROG_XSETBV,
    rdpru = NSVM_OR_PROG_RDPRU,
    invpcid = NSVM_OR_PROG_INVPCID,
    lmsw = NSVM_OR_PROG_LMSW,
    clts = NSVM_OR_PROG_CLTS,
    sti = NSVM_OR_PROG_STI,
    cli = NSVM_OR_PROG_CLI,
    fnop = NSVM_OR_PROG_FNOP,
    nop = NSVM_OR_PROG_NOP,
    jmp = NSVM_OR_PROG_JMP,
    iret = NSVM_OR_PROG_IRET,
};
inline constexpr std::size_t kProgramCount = NSVM_OR_PROG_COUNT;

[[nodiscard]] std::string_view program_name(Program p) noexcept;
[[nodiscard]] std::optional<Program> find_program(std::string_view name) noexcept;
/// Guest-physical entry point of a program (NSVM_OR_L2_CODE_PA + 64 * id).
[[nodiscard]] constexpr std::uint64_t program_entry(Program p) noexcept {
    return NSVM_OR_L2_CODE_PA + NSVM_OR_L2_PROGRAM_STRIDE * static_cast<std::uint64_t>(p);
}

/// GPR indices in ModRM order, as layout.h stores them.
inline constexpr std::array<std::string_view, 16> kGprNames = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                                               "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};

struct MsrIntercept {
    std::uint32_t msr = 0;
    bool read = true;
    bool write = true;
    friend bool operator==(const MsrIntercept&, const MsrIntercept&) = default;
};

/// Host state the image can set before VMRUN.
struct HostKnobs {
    bool gif = true;                          ///< GIF before VMRUN (false: CLGI)
    bool svme = true;                         ///< host EFER.SVME (false: VMRUN must #UD)
    std::optional<std::uint64_t> vmrun_rax;   ///< VMRUN operand; default: the slot's VMCB
    std::optional<std::uint64_t> hsave_pa;    ///< VM_HSAVE_PA; default NSVM_OR_HSAVE_PA
    bool probe_gif = true;                    ///< run the GIF probe after the exit
    std::uint32_t repeat = 1;                 ///< VMRUNs back to back (timing loops); results are the last
    friend bool operator==(const HostKnobs&, const HostKnobs&) = default;
};

/// What the model expects a vector to do (`nsvm gen` writes it as the
/// vector's `expected` member, docs/oracle.md "Vector format").
enum class Verdict : std::uint8_t {
    enters,         ///< VMRUN passes its checks and L2 runs (exit_code: the #VMEXIT, when predicted)
    vmrun_fails,    ///< VMEXIT_INVALID: a consistency check fails
    exception,      ///< an instruction gate: #UD or #GP(0) in the host, the VMCB unread
    hangs,          ///< L2 runs and never exits (e.g. HLT without its intercept)
    not_predicted,  ///< the model cannot say (memory the image does not lay out, ...)
};
[[nodiscard]] std::string_view verdict_name(Verdict v) noexcept;

struct Expectation {
    std::string cpu;      ///< the model it was computed with
    std::string profile;
    Verdict verdict = Verdict::not_predicted;
    std::optional<std::uint64_t> exit_code;        ///< enters / vmrun_fails
    std::optional<std::uint8_t> exception_vector;  ///< exception
    std::vector<std::string> failing_checks;       ///< check ids, the processor's first one first
    friend bool operator==(const Expectation&, const Expectation&) = default;
};

/// One page-table entry a vector stores before VMRUN (docs/oracle.md
/// "Paging patches"): `size` bytes (8, or 4 for the legacy tables) at
/// physical address `pa`, which must be one of the entries paging_entry_problem
/// accepts. The image restores the original entry after the exit.
struct TablePatch {
    std::uint64_t pa = 0;
    std::uint64_t value = 0;
    unsigned size = 8;
    friend bool operator==(const TablePatch&, const TablePatch&) = default;
};
/// Why `pa`/`size` is not a patchable entry (layout.h NSVM_OR_WINDOW_PA: the
/// entries mapping the paging window, the L2-only tables, the spare pages),
/// or nullopt.
[[nodiscard]] std::optional<std::string> paging_entry_problem(std::uint64_t pa, unsigned size);

struct Vector {
    std::string id;
    arch::Vmcb vmcb;
    Program program = Program::vmmcall;
    std::array<std::uint64_t, 16> regs{};      ///< host GPRs at VMRUN (rax, rsp ignored)
    std::vector<MsrIntercept> msrpm;           ///< MSRPM bits to set (all others 0)
    std::vector<std::uint16_t> iopm;           ///< IOPM bits (ports) to set
    std::vector<TablePatch> paging;            ///< page-table entries to store, in order
    HostKnobs host;
    std::vector<std::string> checks;           ///< check ids this vector exercises
    std::string note;                          ///< free text (what the generator meant)
    /// The model's expected outcome, as nsvm gen wrote it. Read and written
    /// back, never used for the comparison (the diff asks the model afresh,
    /// with the backend's CPU and profile).
    std::optional<Expectation> expected;
    // Provenance, for messages.
    std::string source;
    int line = 0;
};

/// One descriptor patch (layout.h): an MSRPM/IOPM byte, or (map
/// NSVM_OR_MAP_TABLE) a page-table dword at physical address `offset`.
struct MapPatch {
    std::uint32_t map = NSVM_OR_MAP_MSRPM;
    std::uint32_t offset = 0;
    std::uint32_t value = 0;
    friend bool operator==(const MapPatch&, const MapPatch&) = default;
};
/// APM 15.11 (MSRPM: 2 bits per MSR in three 2 KiB ranges) and 15.10.1
/// (IOPM: 1 bit per port), then the paging patches as dwords in their order.
/// Fails for an MSR outside the three ranges or too many patches.
[[nodiscard]] nsvm::expected<std::vector<MapPatch>, std::string> map_patches(const Vector& v);
/// MSRPM byte offset and bit of the read intercept for `msr`, or nullopt.
[[nodiscard]] std::optional<std::pair<std::uint32_t, unsigned>> msrpm_position(std::uint32_t msr) noexcept;

/// Isolation between the vectors of a batch (docs/oracle.md "Isolation
/// between vectors"): a vector must not be able to write the image's pages
/// (code, L2 environment, tables, maps), the batch header or another vector's
/// slot, or the emulator would report the damage against an innocent vector.
/// Returns the member at fault and why, or nullopt when the vector is confined.
struct IsolationProblem {
    std::string field;    ///< vector member path, e.g. "host.hsave_pa", "l2.regs.rbx"
    std::string message;
};
[[nodiscard]] std::optional<IsolationProblem> isolation_problem(const Vector& v);

/// Parses vectors: a JSON array of objects or JSON lines (one object per
/// non-blank line; lines starting with '#' or "//" are comments). Errors
/// name the file, the line and the member ("file:3: vmcb.save.cr0: ...").
[[nodiscard]] nsvm::expected<std::vector<Vector>, formats::Diagnostic> parse_vectors(std::string_view text,
                                                                                     std::string_view source);
/// One vector as a single-line JSON object (parse_vectors reads it back).
[[nodiscard]] std::string to_json_line(const Vector& v);

// ---------------------------------------------------------------------------

enum class Status : std::uint8_t {
    vmexit,      ///< VMRUN executed and a #VMEXIT came back (VMEXIT_INVALID included)
    exception,   ///< VMRUN raised #UD/#GP in the host
    cannot_run,  ///< the oracle could not run this vector (panic, crash, timeout, bad input)
};
[[nodiscard]] std::string_view status_name(Status s) noexcept;

struct Result {
    std::string id;
    std::string backend;
    std::string cpu_model;
    Status status = Status::cannot_run;
    std::string reason;                  ///< why cannot_run
    std::uint8_t exception_vector = 0;   ///< status exception
    std::uint32_t error_code = 0;
    bool gif = false;                    ///< GIF after the exit (probe)
    bool probe_ok = false;               ///< the probe interrupt arrived at all
    std::uint64_t vmcb_pa = 0;
    std::uint64_t tsc = 0;
    arch::Vmcb vmcb;                     ///< the VMCB page after the exit
    std::array<std::uint64_t, 16> regs{};
    /// The vector's paging patches as the exit left them (the accessed and
    /// dirty bits the walk wrote), in Vector::paging order; empty when the
    /// vector has none or the backend does not report them.
    std::vector<TablePatch> paging_after;

    [[nodiscard]] std::uint64_t exit_code() const noexcept { return vmcb.get(arch::FieldId::exit_code); }
    [[nodiscard]] std::uint64_t exit_info_1() const noexcept { return vmcb.get(arch::FieldId::exit_info_1); }
    [[nodiscard]] std::uint64_t exit_info_2() const noexcept { return vmcb.get(arch::FieldId::exit_info_2); }
    [[nodiscard]] std::uint32_t exit_int_info() const noexcept {
        return static_cast<std::uint32_t>(vmcb.get(arch::FieldId::exit_int_info));
    }
};

/// One result as a single-line JSON object; `with_vmcb` adds the whole VMCB
/// after the exit (docs/formats.md "VMCB as JSON" form) and the GPRs.
[[nodiscard]] std::string to_json_line(const Result& r, bool with_vmcb = true);
[[nodiscard]] nsvm::expected<std::vector<Result>, formats::Diagnostic> parse_results(std::string_view text,
                                                                                     std::string_view source);
/// One line of a results file: nullopt for a blank or comment line; errors
/// name `source`, `lineno` and the member (for reading a file as a stream).
[[nodiscard]] nsvm::expected<std::optional<Result>, formats::Diagnostic> parse_result_line(std::string_view line,
                                                                                        std::string_view source,
                                                                                        int lineno);

}  // namespace nsvm::oracle
