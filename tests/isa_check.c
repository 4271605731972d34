/* isa_check.c: linked into the suites that ctest runs once per ISA
 * (tests/CMakeLists.txt, cst_isa_test). Before any test runs it checks the
 * ISA forced by CST_ISA: an unknown name fails the suite (a typo must not
 * quietly test the default path instead), and an ISA this CPU lacks skips it
 * with exit code 77 -- the only reason a suite may be skipped. */
#include "engine/kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>

__attribute__((constructor)) static void isa_check(void) {
    const char *want = getenv("CST_ISA");
    if (!want || !*want) return;
    const cst_isa isa = cst_isa_from_name(want);
    if ((int)isa < 0) {
        fprintf(stderr, "CST_ISA=%s: no such ISA\n", want);
        exit(2);
    }
    if (!cst_isa_available(isa)) {
        fprintf(stderr, "SKIP: CST_ISA=%s is not available on this CPU\n", want);
        exit(77);
    }
    if (cst_kernels_isa() != isa) {
        fprintf(stderr, "CST_ISA=%s was not applied (active: %s)\n", want, cst_isa_name(cst_kernels_isa()));
        exit(2);
    }
    fprintf(stderr, "ISA: %s\n", cst_isa_name(isa));
}
