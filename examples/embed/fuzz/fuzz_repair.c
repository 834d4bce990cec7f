/* A libFuzzer harness with nsvm as validator and repairer of fuzzed VMCBs,
 * through the C API (so any compiler links it against the g++-built
 * libnsvm). Built with clang-14 -fsanitize=fuzzer (see the Makefile).
 *
 * Input: a VMCB page (zero-padded to 4 KiB) and one byte choosing the
 * CPU model and profile. Properties, any violation aborts:
 *  - the fast verdict agrees with the full report;
 *  - repair always ends valid (no host state, no guest memory: every
 *    failing check is within a field's reach), the fast verdict agrees,
 *    and repairing the result changes nothing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nsvm/nsvm.h>

static const char* const kCpus[] = {"zen4", "zen3", "qemu-tcg", "bochs-ryzen"};
static const char* const kProfiles[] = {"apm", "kvm", "qemu", "bochs", "xen"};
static nsvm_checker* checkers[4][5];

static void die(const char* what) {
    fprintf(stderr, "property violated: %s (%s)\n", what, nsvm_last_error());
    abort();
}

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    size_t c, p;
    (void)argc;
    (void)argv;
    for (c = 0; c < 4; ++c)
        for (p = 0; p < 5; ++p)
            if (nsvm_checker_new(kCpus[c], kProfiles[p], &checkers[c][p]) != NSVM_OK) die("checker");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    uint8_t page[NSVM_VMCB_SIZE] = {0};
    const uint8_t pick = size > NSVM_VMCB_SIZE ? data[NSVM_VMCB_SIZE] : 0;
    const nsvm_checker* checker = checkers[(pick >> 4) % 4][(pick & 15) % 5];
    nsvm_vmcb* vmcb = NULL;
    nsvm_report* report = NULL;
    nsvm_repair* repair = NULL;
    nsvm_repair* again = NULL;
    int fast;

    memcpy(page, data, size < sizeof page ? size : sizeof page);
    if (nsvm_vmcb_read(page, sizeof page, NSVM_FORMAT_RAW, "fuzz", &vmcb) != NSVM_OK) die("raw read");

    fast = nsvm_vmrun_would_succeed(checker, vmcb);
    if (nsvm_check(checker, vmcb, &report) != NSVM_OK) die("check");
    if ((fast == 1) != (nsvm_report_verdict(report) == NSVM_VERDICT_VALID)) die("fast verdict != report");

    if (nsvm_repair_vmcb(checker, vmcb, &repair) != NSVM_OK) die("repair");
    if (!nsvm_repair_valid(repair)) die("repair did not reach a valid VMCB");
    if (nsvm_vmrun_would_succeed(checker, vmcb) != 1) die("repaired VMCB fails the fast verdict");
    if (fast == 1 && nsvm_repair_change_count(repair) != 0) die("a valid VMCB was changed");
    if (nsvm_repair_vmcb(checker, vmcb, &again) != NSVM_OK || nsvm_repair_change_count(again) != 0)
        die("repair is not idempotent");

    nsvm_repair_free(again);
    nsvm_repair_free(repair);
    nsvm_report_free(report);
    nsvm_vmcb_free(vmcb);
    return 0;
}
