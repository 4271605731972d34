/* cmd_serve.c: placeholder until the command lands. */
#include "cli.h"
#include <stdio.h>
int cmd_serve(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "castor serve: not available yet\n"); return 2; }
