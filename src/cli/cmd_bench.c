/* cmd_bench.c: placeholder until the command lands. */
#include "cli.h"
#include <stdio.h>
int cmd_bench(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "castor bench: not available yet\n"); return 2; }
