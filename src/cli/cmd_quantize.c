/* cmd_quantize.c: placeholder until the command lands. */
#include "cli.h"
#include <stdio.h>
int cmd_quantize(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "castor quantize: not available yet\n"); return 2; }
