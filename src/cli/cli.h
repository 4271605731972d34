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

#endif
