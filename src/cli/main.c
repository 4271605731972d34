/* main.c: `castor COMMAND ...` dispatch. */
#include "castor.h"
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"serve", cmd_serve, "serve the Interactions API over HTTP"},
    {"run", cmd_run, "generate text from a prompt"},
    {"bench", cmd_bench, "measure prompt and generation speed"},
    {"inspect", cmd_inspect, "print a GGUF file's metadata and tensors"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"detokenize", cmd_detokenize, "print the text of token ids"},
    {"template", cmd_template, "render a chat template"},
    {"quantize", cmd_quantize, "convert a GGUF model to a quantized type"},
    {"mkmodel", cmd_mkmodel, "write a random-weight model (tests, benchmarks)"},
    {"pull", cmd_pull, "download a GGUF model from the Hugging Face hub"},
    {"ls", cmd_ls, "list the models castor pull downloaded"},
    {"rm", cmd_rm, "remove a pulled model"},
};

static void usage(FILE *f) {
    fprintf(f, "castor %s: local Gemini Interactions API server and inference engine\n\n", CST_VERSION);
    fprintf(f, "usage: castor COMMAND [options]   (castor COMMAND --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("castor %s\n", CST_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "castor: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
