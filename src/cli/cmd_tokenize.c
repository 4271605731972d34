/* cmd_tokenize.c: placeholder until the command lands. */
#include "cli.h"
#include <stdio.h>
int cmd_tokenize(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "castor tokenize: not available yet\n"); return 2; }
int cmd_detokenize(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "castor detokenize: not available yet\n"); return 2; }
