/* cli.h: the castor command-line subcommands. Each lives in its own
 * cmd_NAME.c and returns the process exit code (0 ok, 1 runtime error,
 * 2 usage error). */
#ifndef CST_CLI_H
#define CST_CLI_H

int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_mkmodel(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_rm(int argc, char **argv);

#include <stdbool.h>
#include <stddef.h>
/* A model argument: an existing file as it is, else a model castor pull
 * keeps (hf://OWNER/REPO/FILE.gguf, OWNER/REPO:QUANT, or a file stem). */
bool cst_cli_resolve_model(const char *name, char *out, size_t n, char *err, size_t errlen);

#endif
