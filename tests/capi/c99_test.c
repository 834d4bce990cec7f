/* nsvm.h is C99: this file is compiled by the C compiler as strict C99
 * with warnings as errors, and exercises the API end to end. */
#include <stdio.h>
#include <string.h>

#include "nsvm/nsvm.h"

static int failures = 0;
#define EXPECT(cond)                                                             \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: expected %s (%s)\n", __FILE__, __LINE__, #cond, \
                    nsvm_last_error());                                          \
            ++failures;                                                          \
        }                                                                        \
    } while (0)

int main(void) {
    static const char json[] =
        "{\"control\": {\"intercepts\": [\"VMRUN\"], \"asid\": 0},"
        " \"save\": {\"efer\": \"0x1000\", \"cr0\": \"0x60000011\"}}";
    nsvm_vmcb* vmcb = NULL;
    nsvm_checker* checker = NULL;
    nsvm_report* report = NULL;
    nsvm_repair* repair = NULL;
    nsvm_failure f;
    nsvm_change change;
    uint64_t asid = 99;
    size_t i;

    EXPECT(strcmp(nsvm_version(), NSVM_VERSION_STRING) == 0);
    EXPECT(nsvm_vmcb_read(json, sizeof json - 1, NSVM_FORMAT_AUTO, "inline", &vmcb) == NSVM_OK);
    EXPECT(nsvm_vmcb_format(vmcb) == NSVM_FORMAT_JSON);
    EXPECT(nsvm_checker_new("zen4", "kvm", &checker) == NSVM_OK);
    EXPECT(nsvm_vmrun_would_succeed(checker, vmcb) == 0);

    EXPECT(nsvm_check(checker, vmcb, &report) == NSVM_OK);
    EXPECT(nsvm_report_verdict(report) == NSVM_VERDICT_VMEXIT_INVALID);
    EXPECT(nsvm_report_failure_count(report) >= 1);
    for (i = 0; i < nsvm_report_failure_count(report); ++i) {
        EXPECT(nsvm_report_failure(report, i, &f) == NSVM_OK);
        EXPECT(f.id != NULL && f.field_count > 0 && f.fields[0] != NULL);
    }
    EXPECT(nsvm_report_failure(report, 0, &f) == NSVM_OK && strcmp(f.id, "asid.zero") == 0);

    EXPECT(nsvm_repair_vmcb(checker, vmcb, &repair) == NSVM_OK);
    EXPECT(nsvm_repair_valid(repair) == 1);
    EXPECT(nsvm_repair_change_count(repair) >= 1);
    EXPECT(nsvm_repair_change(repair, 0, &change) == NSVM_OK && strcmp(change.check_id, "asid.zero") == 0);
    EXPECT(nsvm_vmcb_get(vmcb, "control.asid", &asid) == NSVM_OK && asid == 1);
    EXPECT(nsvm_vmrun_would_succeed(checker, vmcb) == 1);

    EXPECT(nsvm_vmcb_get(vmcb, "no.such.field", &asid) == NSVM_E_UNKNOWN_NAME);
    EXPECT(strstr(nsvm_last_error(), "no.such.field") != NULL);

    nsvm_repair_free(repair);
    nsvm_report_free(report);
    nsvm_checker_free(checker);
    nsvm_vmcb_free(vmcb);
    nsvm_vmcb_free(NULL);
    if (failures == 0) puts("c99 C API test: ok");
    return failures == 0 ? 0 : 1;
}
