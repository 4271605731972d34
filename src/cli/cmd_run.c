/* cmd_run.c: placeholder until the command lands. */
#include "cli.h"
#include <stdio.h>
int cmd_run(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "castor run: not available yet\n"); return 2; }
