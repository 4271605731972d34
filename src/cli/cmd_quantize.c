/* cmd_quantize.c: `castor quantize IN OUT TYPE`: rewrite a GGUF model with
 * every 2-D weight matrix (token embedding and output included, like
 * llama-quantize --pure) converted to TYPE; 1-D tensors are written as F32.
 * The work is cst_quantize_file (engine/kernels).
 */
#include "cli.h"

#include "core/core.h"
#include "engine/kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *f, int rc) {
    fprintf(f, "usage: castor quantize IN.gguf OUT.gguf TYPE [--threads N]\n"
               "  TYPE: Q8_0 Q4_0 Q4_K Q5_K Q6_K F16 BF16 F32\n"
               "  every 2-D weight matrix becomes TYPE (like llama-quantize --pure); 1-D tensors stay F32\n");
    return rc;
}

int cmd_quantize(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *tname = NULL;
    int n_threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout, 0);
        if (!strcmp(argv[i], "--threads") || !strcmp(argv[i], "-t")) {
            if (++i >= argc) return usage(stderr, 2);
            n_threads = atoi(argv[i]);
        } else if (!in) {
            in = argv[i];
        } else if (!out) {
            out = argv[i];
        } else if (!tname) {
            tname = argv[i];
        } else {
            return usage(stderr, 2);
        }
    }
    if (!in || !out || !tname) return usage(stderr, 2);
    cst_type want;
    if (!cst_type_from_name(tname, &want)) {
        fprintf(stderr, "castor quantize: unknown type '%s'\n", tname);
        return usage(stderr, 2);
    }
    char err[CST_ERRMSG_LEN] = "";
    cst_status st = cst_quantize_file(in, out, want, n_threads, err, sizeof err);
    if (st != CST_OK) {
        fprintf(stderr, "castor quantize: %s\n", err[0] ? err : cst_status_str(st));
        return st == CST_ERR_UNSUPPORTED ? 2 : 1;
    }
    fprintf(stderr, "castor quantize: wrote %s (%s)\n", out, cst_type_name(want));
    return 0;
}
