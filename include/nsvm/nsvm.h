/* nsvm C API: the stable interface to libnsvm for C (C99) and for any
 * language with a C FFI. docs/library.md is the reference.
 *
 * Rules that hold for every function:
 *  - Nothing is thrown across this interface: every failure is an
 *    nsvm_status, and nsvm_last_error() gives the message of the last
 *    failing call in the calling thread ("file:line: field: message" for
 *    input errors).
 *  - Handles are opaque and owned by the caller; every constructor (_new,
 *    _read, ...) has its _free function, which accepts NULL. A handle may be
 *    used by one thread at a time; different handles are independent.
 *  - Strings handed out (const char*) belong to the handle they come from
 *    and live as long as it, unless documented as static.
 *  - Buffers passed in carry their size; when a buffer is too small the
 *    call fails with NSVM_E_BUFFER_TOO_SMALL and reports the size needed.
 */
#ifndef NSVM_NSVM_H
#define NSVM_NSVM_H

#include <stddef.h>
#include <stdint.h>

#include "nsvm/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define NSVM_API __attribute__((visibility("default")))
#else
#define NSVM_API
#endif

/* ---- Status and errors ------------------------------------------------ */

typedef enum nsvm_status {
    NSVM_OK = 0,
    NSVM_E_INVALID_ARGUMENT = 1, /* NULL handle or pointer, value out of range */
    NSVM_E_PARSE = 2,            /* the input is not a VMCB in the given format */
    NSVM_E_UNKNOWN_NAME = 3,     /* unknown field, CPU model, profile, format or event name */
    NSVM_E_BUFFER_TOO_SMALL = 4, /* the size needed is reported through the call's size out-param */
    NSVM_E_NO_MEMORY = 5,
    NSVM_E_STATE = 6,            /* not possible in the current state (e.g. guest memory not backed) */
    NSVM_E_INTERNAL = 7          /* a bug in nsvm: please report the message */
} nsvm_status;

/* The message of the last failing call in this thread ("" after success). */
NSVM_API const char* nsvm_last_error(void);
/* "NSVM_OK", "NSVM_E_PARSE", ...: static strings. */
NSVM_API const char* nsvm_status_name(nsvm_status status);
/* NSVM_VERSION_STRING of the library actually linked (static string). */
NSVM_API const char* nsvm_version(void);

/* ---- VMCBs ------------------------------------------------------------- */

#define NSVM_VMCB_SIZE 4096

typedef enum nsvm_format {
    NSVM_FORMAT_AUTO = 0,
    NSVM_FORMAT_RAW = 1,      /* the 4 KiB little-endian page */
    NSVM_FORMAT_JSON = 2,     /* docs/formats.md, "VMCB as JSON" */
    NSVM_FORMAT_KVM_DUMP = 3, /* KVM's dump_vmcb() text */
    NSVM_FORMAT_XEN_DUMP = 4, /* Xen's svm_vmcb_dump() text */
    NSVM_FORMAT_QEMU_DUMP = 5 /* QEMU's register dump after "KVM: entry failed" (partial input) */
} nsvm_format;

typedef struct nsvm_vmcb nsvm_vmcb;

/* An all-zero VMCB. */
NSVM_API nsvm_status nsvm_vmcb_new(nsvm_vmcb** out);
/* Reads a VMCB from `size` bytes of `data` (format given or auto-detected).
 * `source_name` (may be NULL) names the input in error messages. */
NSVM_API nsvm_status nsvm_vmcb_read(const void* data, size_t size, nsvm_format format, const char* source_name,
                                    nsvm_vmcb** out);
NSVM_API nsvm_status nsvm_vmcb_clone(const nsvm_vmcb* vmcb, nsvm_vmcb** out);
NSVM_API void nsvm_vmcb_free(nsvm_vmcb* vmcb);
/* The format the VMCB was read from (NSVM_FORMAT_RAW for nsvm_vmcb_new). */
NSVM_API nsvm_format nsvm_vmcb_format(const nsvm_vmcb* vmcb);
/* Fields by name, as `nsvm decode` prints them: "save.cr0",
 * "control.asid", "save.cs.attrib", "control.intercepts[3]", ... */
NSVM_API nsvm_status nsvm_vmcb_get(const nsvm_vmcb* vmcb, const char* field, uint64_t* value);
/* NSVM_E_INVALID_ARGUMENT when `value` does not fit the field. */
NSVM_API nsvm_status nsvm_vmcb_set(nsvm_vmcb* vmcb, const char* field, uint64_t value);
/* Copies the 4 KiB page into `page` (page_size >= NSVM_VMCB_SIZE). */
NSVM_API nsvm_status nsvm_vmcb_page(const nsvm_vmcb* vmcb, uint8_t* page, size_t page_size);
/* The VMCB as JSON, NUL-terminated, into `buf`; *needed (may be NULL)
 * receives the size including the NUL, also on NSVM_E_BUFFER_TOO_SMALL. */
NSVM_API nsvm_status nsvm_vmcb_to_json(const nsvm_vmcb* vmcb, char* buf, size_t buf_size, size_t* needed);

/* ---- Checking ---------------------------------------------------------- */

/* A CPU model and a behaviour profile, resolved once. */
typedef struct nsvm_checker nsvm_checker;

/* cpu_model: a built-in model, "zen4" (NULL = the default model), "zen5",
 * "zen3", "qemu-tcg", "bochs-ryzen"; not "host", a name only the nsvm
 * command line knows (the library never executes CPUID, so its answers do
 * not depend on the machine it runs on). profile: "apm" (NULL), "kvm",
 * "qemu", "bochs", "xen", "hyperv". */
NSVM_API nsvm_status nsvm_checker_new(const char* cpu_model, const char* profile, nsvm_checker** out);
NSVM_API void nsvm_checker_free(nsvm_checker* checker);

/* Would VMRUN succeed? 1 yes, 0 no, -1 for a NULL argument. Allocates
 * nothing and stops at the first failing check: the call for fuzzers.
 * The VMCB's host state (JSON "host") is used when it has one. */
NSVM_API int nsvm_vmrun_would_succeed(const nsvm_checker* checker, const nsvm_vmcb* vmcb);

typedef enum nsvm_verdict {
    NSVM_VERDICT_VALID = 0,
    NSVM_VERDICT_VMEXIT_INVALID = 1,
    NSVM_VERDICT_UD = 2,
    NSVM_VERDICT_GP = 3,
    NSVM_VERDICT_OTHER_VMEXIT = 4
} nsvm_verdict;

typedef struct nsvm_report nsvm_report;

/* One failing check; every string lives as long as the report. */
typedef struct nsvm_failure {
    const char* id;            /* stable check id, "cr0.cd_nw" */
    const char* apm;           /* APM section, "15.5.1" */
    const char* message;       /* what is wrong */
    const char* hint;          /* how to fix it */
    const char* detail;        /* the offending values, may be "" */
    const char* const* fields; /* VMCB fields involved */
    size_t field_count;
} nsvm_failure;

/* Every failing check, with details (allocates). */
NSVM_API nsvm_status nsvm_check(const nsvm_checker* checker, const nsvm_vmcb* vmcb, nsvm_report** out);
NSVM_API void nsvm_report_free(nsvm_report* report);
NSVM_API nsvm_verdict nsvm_report_verdict(const nsvm_report* report);
/* The #VMEXIT code when the verdict is a VMEXIT (VMEXIT_INVALID = -1). */
NSVM_API uint64_t nsvm_report_exit_code(const nsvm_report* report);
NSVM_API size_t nsvm_report_failure_count(const nsvm_report* report);
NSVM_API nsvm_status nsvm_report_failure(const nsvm_report* report, size_t index, nsvm_failure* out);
/* Partial input (a QEMU register dump has no control area): the checks the
 * input cannot decide, never counted as passed. 0 for a whole VMCB. The id
 * stays valid until nsvm_report_free; NULL for an index out of range. */
NSVM_API size_t nsvm_report_undecided_count(const nsvm_report* report);
NSVM_API const char* nsvm_report_undecided_id(const nsvm_report* report, size_t index);

/* ---- Repair ------------------------------------------------------------ */

typedef struct nsvm_repair nsvm_repair;

typedef struct nsvm_change {
    const char* field;    /* "save.cr0" */
    uint64_t old_value;
    uint64_t new_value;
    const char* check_id; /* the failing check the change fixes */
} nsvm_change;

/* Rewrites `vmcb` into the nearest VMCB VMRUN accepts under `checker`
 * (see docs/library.md for the method) and returns the list of changes. A
 * check that cannot be repaired stays failing and is listed as unrepaired. */
NSVM_API nsvm_status nsvm_repair_vmcb(const nsvm_checker* checker, nsvm_vmcb* vmcb, nsvm_repair** out);
NSVM_API void nsvm_repair_free(nsvm_repair* repair);
/* 1 when the repaired VMCB passes every check. */
NSVM_API int nsvm_repair_valid(const nsvm_repair* repair);
NSVM_API size_t nsvm_repair_change_count(const nsvm_repair* repair);
NSVM_API nsvm_status nsvm_repair_change(const nsvm_repair* repair, size_t index, nsvm_change* out);
NSVM_API size_t nsvm_repair_unrepaired_count(const nsvm_repair* repair);
/* The id of an unrepaired check, or NULL for an index out of range. */
NSVM_API const char* nsvm_repair_unrepaired(const nsvm_repair* repair, size_t index);

/* ---- The nested SVM engine (L0 running L1 running L2) ------------------ */

typedef struct nsvm_machine nsvm_machine;

/* The vCPU's VMCBs: L0's for L1, L0's for L2, L1's for L2 (guest memory). */
typedef enum nsvm_which_vmcb { NSVM_VMCB01 = 0, NSVM_VMCB02 = 1, NSVM_VMCB12 = 2 } nsvm_which_vmcb;

typedef enum nsvm_l1_insn {
    NSVM_L1_VMRUN = 0, /* vmcb12 at vmcb01's save.rax */
    NSVM_L1_VMLOAD = 1,
    NSVM_L1_VMSAVE = 2,
    NSVM_L1_STGI = 3,
    NSVM_L1_CLGI = 4,
    NSVM_L1_INVLPGA = 5,
    NSVM_L1_VMMCALL = 6,
    NSVM_L1_SKINIT = 7,
    NSVM_L1_RSM = 8
} nsvm_l1_insn;

typedef enum nsvm_mode { NSVM_MODE_L1 = 0, NSVM_MODE_L2 = 1, NSVM_MODE_SHUTDOWN = 2 } nsvm_mode;

/* What one step did. Strings are static. */
typedef struct nsvm_step {
    const char* outcome;      /* "entered_l2", "vmrun_failed", "vmexit_to_l1", ... */
    const char* failed_check; /* id of the check a failed VMRUN tripped, or "" */
    const char* note;         /* why, in words, may be "" */
    uint64_t exit_code;
    uint64_t exit_info_1;
    uint64_t exit_info_2;
    uint8_t vector;           /* the exception vector for outcome "exception" */
} nsvm_step;

/* A vCPU under L0's default (KVM's) configuration, no guest memory yet. */
NSVM_API nsvm_status nsvm_machine_new(const char* cpu_model, const char* profile, nsvm_machine** out);
NSVM_API void nsvm_machine_free(nsvm_machine* machine);
/* Backs [gpa, gpa + size) with zeroed guest memory (4 KiB pages). */
NSVM_API nsvm_status nsvm_machine_map(nsvm_machine* machine, uint64_t gpa, uint64_t size);
/* NSVM_E_STATE when any byte of the range is not backed. */
NSVM_API nsvm_status nsvm_machine_write(nsvm_machine* machine, uint64_t gpa, const void* data, size_t size);
NSVM_API nsvm_status nsvm_machine_read(const nsvm_machine* machine, uint64_t gpa, void* data, size_t size);
/* L1's VM_HSAVE_PA MSR. */
NSVM_API nsvm_status nsvm_machine_set_hsave(nsvm_machine* machine, uint64_t gpa);
/* One L1 instruction. */
NSVM_API nsvm_status nsvm_machine_l1(nsvm_machine* machine, nsvm_l1_insn insn, nsvm_step* out);
/* An L2 event by name ("cpuid", "rdmsr", "wrmsr", "io", "hlt", "exception",
 * "memory", ... as in scenarios) with its index (MSR, port, vector, CR/DR
 * number) and value; or an external event ("intr", "nmi", "smi", "init"). */
NSVM_API nsvm_status nsvm_machine_event(nsvm_machine* machine, const char* event, uint32_t index, uint64_t value,
                                        nsvm_step* out);
NSVM_API nsvm_status nsvm_machine_vmcb_get(const nsvm_machine* machine, nsvm_which_vmcb which, const char* field,
                                           uint64_t* value);
/* vmcb01 only: L1's state as L0 holds it (e.g. "save.rax" for VMRUN). */
NSVM_API nsvm_status nsvm_machine_vmcb01_set(nsvm_machine* machine, const char* field, uint64_t value);
NSVM_API int nsvm_machine_gif(const nsvm_machine* machine);
NSVM_API nsvm_mode nsvm_machine_mode(const nsvm_machine* machine);
/* NULL when every invariant of the model holds, else a static message. */
NSVM_API const char* nsvm_machine_check_invariants(const nsvm_machine* machine);

#ifdef __cplusplus
}
#endif

#endif /* NSVM_NSVM_H */
