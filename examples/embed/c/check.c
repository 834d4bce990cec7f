/* nsvm from C, built with pkg-config (see Makefile):
 *   check FILE [CPU [PROFILE]]
 * reads a VMCB (raw, JSON, KVM or Xen dump), prints every failing check,
 * repairs it and prints the changes. Exit status: 0 valid, 1 invalid
 * (repaired copy printed), 2 bad input. */
#include <stdio.h>
#include <stdlib.h>

#include <nsvm/nsvm.h>

static char* slurp(const char* path, size_t* size) {
    FILE* f = fopen(path, "rb");
    char* data = NULL;
    long n;
    if (f == NULL) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        data = malloc((size_t)n + 1);
        if (data != NULL && fread(data, 1, (size_t)n, f) != (size_t)n) {
            free(data);
            data = NULL;
        }
        *size = (size_t)n;
    }
    fclose(f);
    return data;
}

int main(int argc, char** argv) {
    const char* cpu = argc > 2 ? argv[2] : NULL;
    const char* profile = argc > 3 ? argv[3] : NULL;
    nsvm_vmcb* vmcb = NULL;
    nsvm_checker* checker = NULL;
    nsvm_report* report = NULL;
    nsvm_repair* repair = NULL;
    size_t size = 0, i;
    char* data;
    int valid;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [CPU [PROFILE]]\n", argv[0]);
        return 2;
    }
    data = slurp(argv[1], &size);
    if (data == NULL) {
        perror(argv[1]);
        return 2;
    }
    if (nsvm_vmcb_read(data, size, NSVM_FORMAT_AUTO, argv[1], &vmcb) != NSVM_OK ||
        nsvm_checker_new(cpu, profile, &checker) != NSVM_OK) {
        fprintf(stderr, "error: %s\n", nsvm_last_error());
        free(data);
        return 2;
    }
    free(data);
    printf("nsvm %s: %s\n", nsvm_version(), argv[1]);

    valid = nsvm_vmrun_would_succeed(checker, vmcb);
    if (nsvm_check(checker, vmcb, &report) == NSVM_OK) {
        for (i = 0; i < nsvm_report_failure_count(report); ++i) {
            nsvm_failure f;
            if (nsvm_report_failure(report, i, &f) != NSVM_OK) continue;
            printf("  x %s [APM %s] %s (%s)\n", f.id, f.apm, f.message, f.field_count ? f.fields[0] : "-");
        }
    }
    printf("VMRUN would %s\n", valid ? "succeed" : "fail");

    if (!valid && nsvm_repair_vmcb(checker, vmcb, &repair) == NSVM_OK) {
        for (i = 0; i < nsvm_repair_change_count(repair); ++i) {
            nsvm_change c;
            if (nsvm_repair_change(repair, i, &c) != NSVM_OK) continue;
            printf("  repair: %s %#llx -> %#llx (%s)\n", c.field, (unsigned long long)c.old_value,
                   (unsigned long long)c.new_value, c.check_id);
        }
        for (i = 0; i < nsvm_repair_unrepaired_count(repair); ++i)
            printf("  unrepaired: %s\n", nsvm_repair_unrepaired(repair, i));
        printf("repaired: VMRUN would %s\n", nsvm_vmrun_would_succeed(checker, vmcb) == 1 ? "succeed" : "fail");
    }
    nsvm_repair_free(repair);
    nsvm_report_free(report);
    nsvm_checker_free(checker);
    nsvm_vmcb_free(vmcb);
    return valid ? 0 : 1;
}
