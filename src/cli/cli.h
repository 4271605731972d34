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

/* ---- castor run with images and documents (run_media.c) ---- */
#include <stdbool.h>
#include <stddef.h>
#include "engine/engine.h"

typedef struct cst_run_media_opts {
    const char *mmproj;      /* vision projector GGUF (NULL: none) */
    const char *images[16];  /* --image files, in order */
    int n_images;
    const char *file;        /* --file document (NULL: none) */
    const char *file_type;   /* --file-type MIME (NULL: from the extension) */
    const char *text;        /* -p */
    bool chat;
    const char *chat_tpl;
    int n_gen, n_threads, n_ctx;
    bool json, verbose;
    cst_sampler_params sp;
} cst_run_media_opts;
int cst_run_media(cst_model *m, const cst_run_media_opts *o);
/* ---- the decode loops shared by castor run's paths (run_feed.c) ---- */
/* an image block: n_rows embedding rows decoded whole at prompt position pos */
typedef struct cst_cli_embd {
    int32_t pos, n_rows;
    float *rows;
    cst_token marker;
} cst_cli_embd;
/* decodes the prompt (text in batches of n_batch, the nib image blocks
 * whole); returns the last position's logits, or NULL (error printed) */
const float *cst_cli_prefill(cst_ctx *ctx, const cst_token *toks, size_t np, const cst_cli_embd *ib, size_t nib,
                             int32_t n_batch);
/* n_gen tokens after a prompt of np positions, from its logits lg: printed
 * as text (stops at end of generation) or, with json, as one
 * cst_cli_print_step line per step. 0 ok, 1 error (printed). */
int cst_cli_generate(cst_ctx *ctx, const float *lg, size_t np, int n_gen, bool json, const cst_sampler_params *sp);
/* one --logits-json line: the step, the chosen token, the top 10 [id, logit]
 * pairs and, at step 0, every logit. */
void cst_cli_print_step(int step, cst_token tok, const float *lg, int32_t nv);
/* cmd_run.c: text as one user message through the chat template (see there). */
int cst_run_chat_render(cst_model *m, const char *tpl_file, const char *text, char **out, size_t *out_len,
                        size_t **out_ranges, size_t *out_nr, bool *out_add_special);

#endif
