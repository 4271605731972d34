/* cmd_template.c: placeholder until the command lands. */
#include "cli.h"
#include <stdio.h>
int cmd_template(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "castor template: not available yet\n"); return 2; }
