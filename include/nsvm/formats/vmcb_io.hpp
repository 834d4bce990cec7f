// Reading a VMCB from every form a hypervisor developer has at hand, and
// writing it back.
//
//   raw       the 4 KiB little-endian page as hardware reads it (lossless)
//   json      docs/formats.md "VMCB as JSON"; write_json adds "reserved_bytes" for any
//             non-zero byte no field covers, so raw -> json -> raw is lossless
//   kvm-dump  the text KVM's dump_vmcb() prints (arch/x86/kvm/svm/svm.c;
//             docs/formats.md "KVM dump_vmcb()")
//   xen-dump  the text Xen's svm_vmcb_dump() prints (xen/arch/x86/hvm/svm/vmcb.c;
//             docs/formats.md "Xen svm_vmcb_dump()")
//   qemu-dump QEMU's vCPU register dump after "KVM: entry failed, hardware
//             error ..." (x86_cpu_dump_state): guest state, no control area
//   hexdump   the raw page as xxd, hexdump -C or od -A x -t x1 print it (rebuilt,
//             then read as raw)
//
// Readers never throw and never guess silently: bad input is an error that
// names the file, the line and the field; anything a dump cannot tell
// (fields it does not print, 32-bit truncation, L1/L2 mixing) is a warning.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "nsvm/arch/vmcb.hpp"
#include "nsvm/checks/catalogue.hpp"
#include "nsvm/util/expected.hpp"

namespace nsvm::formats {

enum class Format : std::uint8_t { auto_detect, raw, json, kvm_dump, xen_dump, qemu_dump, hexdump };

/// "auto", "raw", "json", "kvm-dump" (also "kvm"), "xen-dump" (also "xen"),
/// "qemu-dump" (also "qemu"), "hexdump" (also "xxd", "od");
/// nullopt for anything else.
[[nodiscard]] std::optional<Format> parse_format(std::string_view name);
/// The canonical name parse_format accepts ("kvm-dump", ...).
[[nodiscard]] std::string_view format_name(Format f);

/// One problem or remark about the input. Empty parts are omitted when printed.
struct Diagnostic {
    std::string file;
    int line = 0;  ///< 1-based; 0 = not applicable
    std::string field;  ///< "save.cr0", "control.asid", a JSON member path, ...
    std::string message;
    /// A warning's stable id for scripts (`nsvm check --json`, docs/formats.md):
    /// "input.missing_fields", "input.vmcb01_fields"; empty: "input".
    std::string id{};
    /// Every field a warning is about, when there are several (the fields a
    /// dump does not give); `field` names a single one.
    std::vector<std::string> fields{};
    friend bool operator==(const Diagnostic&, const Diagnostic&) = default;
};
/// "file:line: field: message", leaving out the parts that are empty.
[[nodiscard]] std::string to_string(const Diagnostic& d);

/// A reason line of Xen's own validator, svm_vmcb_isvalid() (printed when
/// Xen refuses a VMCB, e.g. nested SVM's "virtual vmcb invalid"), found in a
/// Xen paste: "d1v0[nsvm_vmcb_prepare4vmrun]: CR4: invalid value 0x20020
/// (valid 0x750fff, rejected 0x20000)". Mapped to the nsvm checks that decide
/// the same condition, so Xen's verdict can be compared with nsvm's.
struct XenIsvalidLine {
    int line = 0;
    std::string vcpu;    ///< "d1v0" (Xen's %pv); empty when the Xen version prints only the function
    std::string from;    ///< the function that ran the validator ("nsvm_vmcb_prepare4vmrun")
    std::string reason;  ///< the reason as printed, its prefix removed
    /// nsvm check ids deciding the same condition; empty: a rule of Xen's own
    /// (its domain policy), no VMRUN check of the hardware.
    std::vector<std::string> checks;
    std::string note;   ///< what the mapping rests on, when it is not one to one
    std::string field;  ///< the VMCB field whose value Xen printed ("save.cr4"); empty when none
    std::optional<std::uint64_t> value;  ///< that value, to tell whether this dump is the VMCB Xen validated
};

/// Recognises one reason line of Xen's svm_vmcb_isvalid() ("d1v0[func]:
/// CR4: invalid value ...", older "func: CR4: bits [63:19] are not zero
/// (...)", or the reason alone), "(XEN)" and timestamp already removed;
/// nullopt for any other line. `line` is left 0.
[[nodiscard]] std::optional<XenIsvalidLine> xen_isvalid_line(std::string_view text);
/// Every nsvm check id some svm_vmcb_isvalid() reason maps to: the checks
/// Xen's validator also makes (a failure of one Xen did not report is a
/// disagreement).
[[nodiscard]] std::vector<std::string_view> xen_isvalid_checks();

struct ReadResult {
    arch::Vmcb vmcb;
    Format format = Format::raw;  ///< the format actually read (never auto_detect)
    std::vector<Diagnostic> warnings;
    std::optional<checks::HostState> host;  ///< JSON "host" object, when given
    /// An SEV-ES guest's VMSA values the input gives in the clear: newer KVM
    /// prints sev_features, pl0_ssp..pl3_ssp, u_cet, xcr0 and xss from the
    /// decrypted VMSA (checks::Context::vmsa).
    std::optional<checks::VmsaState> vmsa;
    /// Which fields the input gave, by arch::FieldId; empty: every field.
    std::vector<bool> given;
    /// The input is not a whole VMCB (a register dump without a control
    /// area): checks that read fields it does not give are not decided
    /// (checks::evaluate_partial), rather than passed on zeros.
    bool partial = false;
    /// Xen's svm_vmcb_isvalid() lines about this dump (its domain and vCPU),
    /// in input order; empty for every other format.
    std::vector<XenIsvalidLine> xen_isvalid;
};

/// Which dump of a log a VMCB came from: a kernel log can hold one
/// dump_vmcb() per vCPU or per failure, each headed by a line such as
/// "SVM vCPU3 VMCB 00000000c7fcd4f6, last attempted VMRUN on CPU 5".
struct DumpOrigin {
    std::size_t index = 1;  ///< 1-based, in input order
    std::size_t count = 1;  ///< dumps in the whole input
    int line = 0;           ///< the header's line (else the "VMCB Control Area:" line); 0: not a dump log
    std::string header;     ///< the header as printed, log prefixes removed; empty when there is none
    std::string type;       ///< "SVM", "SEV", "SEV-ES", "SEV-SNP"; empty for older headers
    std::optional<std::uint32_t> vcpu;  ///< "vCPU%u" (newest kernels); Xen's "VCPU %d"
    std::optional<std::uint32_t> domain;  ///< Xen's ">>> Domain %d <<<" ('xl debug-keys v')
    std::string vmcb;                   ///< the VMCB address as printed (%p: a hashed pointer)
    std::optional<std::uint32_t> cpu;   ///< "last attempted VMRUN on CPU %d"
};

struct DumpRead {
    DumpOrigin origin;
    ReadResult result;
};

/// Reads one VMCB. `fmt` may be auto_detect. Never throws.
[[nodiscard]] nsvm::expected<ReadResult, Diagnostic> read_vmcb(std::span<const std::uint8_t> data, Format fmt,
                                                               std::string_view source_name);
[[nodiscard]] inline nsvm::expected<ReadResult, Diagnostic> read_vmcb(std::string_view text, Format fmt,
                                                                      std::string_view source_name) {
    return read_vmcb(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()), fmt,
                     source_name);
}

/// Reads every VMCB of the input: each dump of a KVM log holding several
/// (read_vmcb reads the first and warns), or the one VMCB of any other
/// input. `only` (1-based) reads just that dump; asking for a dump the input
/// does not hold is an error. Any dump that cannot be read is an error (its
/// file and line): a log is never reported in part. Never throws.
[[nodiscard]] nsvm::expected<std::vector<DumpRead>, Diagnostic> read_dumps(
    std::span<const std::uint8_t> data, Format fmt, std::string_view source_name,
    std::optional<std::size_t> only = std::nullopt);

/// Reads a VMCB from an already parsed JSON value (an docs/formats.md "VMCB as JSON"
/// object held inside another file, e.g. an oracle vector's "vmcb"), without
/// printing it back to text: the value may be as deep or as large as the
/// file it came from, and the reader never walks it recursively. Errors name
/// `source` and the member path; the caller adds its own line. Never throws.
[[nodiscard]] nsvm::expected<ReadResult, Diagnostic> read_vmcb_json(const nlohmann::json& value,
                                                                    std::string_view source);

/// Best guess at the format; auto_detect when nothing matches.
///  raw:  exactly 4096 bytes that are not recognisable text
///  json: first non-blank character is '{', or the text starts with a
///        "//" or "/*" comment (which the JSON reader accepts)
///  hexdump: one of the first 8 non-blank lines is an xxd, hexdump -C or
///        od -A x -t x1 line at offset 0 (or a multiple of 4096)
///  kvm:  "VMCB Control Area:", "kvm_amd:", dump_vmcb labels such as "cr_read:"
///  xen:  "(XEN)", "cr_intercepts =", "general1_intercepts"
///  qemu: "entry failed, hardware error", or "EFER=" with "CR0=" (QEMU's
///        register dump; its "ES =" lines are not KVM's "es:")
/// When both dump kinds have markers, the earliest marker wins.
[[nodiscard]] Format detect_format(std::span<const std::uint8_t> data);

/// The 4 KiB page, byte for byte (the lossless form).
[[nodiscard]] std::vector<std::uint8_t> write_raw(const arch::Vmcb& vmcb);
/// docs/formats.md "VMCB as JSON" JSON, pretty-printed: only non-zero fields, values as
/// hex strings, intercepts by name ("intercept_words" only for bits without a
/// name), segments as objects, byte runs as hex strings, and a top-level
/// "reserved_bytes" {"0x018": "hex bytes"} for non-zero bytes outside every
/// field. read_vmcb(write_json(v)) gives back exactly v.
[[nodiscard]] std::string write_json(const arch::Vmcb& vmcb);

}  // namespace nsvm::formats
