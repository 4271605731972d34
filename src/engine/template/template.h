/* template.h: chat templates -> prompt text. A Jinja interpreter covering
 * what GGUF chat templates use (semantics of @huggingface/jinja 0.5.11 with
 * trim_blocks + lstrip_blocks, the renderer transformers.js uses), its own
 * value type (the engine never sees JSON), chat helpers (messages +
 * add_generation_prompt + bos/eos) and a plain fallback format for models
 * without a template. Parsing rejects every construct the renderer does not
 * support, so a template either fails at load time or renders completely.
 */
#ifndef CST_TEMPLATE_H
#define CST_TEMPLATE_H

#include "castor.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Values --------------------------------------------------------------
 * A value tree owned by its root: containers own their children, and
 * cst_tv_free frees the whole tree. Strings are UTF-8 (bytes are kept as
 * given). Dicts keep insertion order; setting an existing key replaces it.
 * The renderer copies what it needs, so a tree can be freed after a call. */
typedef struct cst_tvalue cst_tvalue;

typedef enum cst_tv_kind {
    CST_TV_UNDEFINED = 0, /* only produced inside the renderer */
    CST_TV_NONE,
    CST_TV_BOOL,
    CST_TV_INT,
    CST_TV_FLOAT,
    CST_TV_STRING,
    CST_TV_LIST,
    CST_TV_DICT,
} cst_tv_kind;

/* Constructors return NULL when out of memory. */
cst_tvalue *cst_tv_none(void);
cst_tvalue *cst_tv_bool(bool b);
cst_tvalue *cst_tv_int(int64_t i);
cst_tvalue *cst_tv_float(double f);
cst_tvalue *cst_tv_string(const char *s, size_t len);
cst_tvalue *cst_tv_cstr(const char *s); /* NUL-terminated; NULL -> none */
cst_tvalue *cst_tv_list(void);
cst_tvalue *cst_tv_dict(void);
/* Append / set TAKE OWNERSHIP of item (also on failure, where it is freed).
 * A NULL item (a failed constructor) makes them fail with CST_ERR_NOMEM. */
cst_status cst_tv_list_push(cst_tvalue *list, cst_tvalue *item);
cst_status cst_tv_dict_set(cst_tvalue *dict, const char *key, size_t key_len, cst_tvalue *item);
cst_status cst_tv_dict_setz(cst_tvalue *dict, const char *key, cst_tvalue *item);
void cst_tv_free(cst_tvalue *v); /* NULL ok */

cst_tv_kind cst_tv_kind_of(const cst_tvalue *v);
size_t cst_tv_len(const cst_tvalue *v);                         /* list/dict entries, string bytes */
const cst_tvalue *cst_tv_list_at(const cst_tvalue *v, size_t i); /* NULL if out of range */
const cst_tvalue *cst_tv_dict_get(const cst_tvalue *v, const char *key); /* NULL if absent */
const char *cst_tv_str(const cst_tvalue *v, size_t *len);         /* NULL if not a string */

/* ---- Templates ----------------------------------------------------------- */
typedef struct cst_template cst_template;

/* Bounds that keep a hostile template from hanging or exhausting a server. */
typedef struct cst_template_limits {
    size_t max_output;    /* bytes of rendered text (also each captured block) */
    size_t max_memory;    /* bytes of render-time values */
    uint64_t max_steps;   /* evaluated nodes + loop iterations */
    int max_depth;        /* nested evaluation (expressions, macro calls) */
} cst_template_limits;
cst_template_limits cst_template_default_limits(void); /* 64 MiB, 256 MiB, 20M, 512 */

/* Parse (with trim_blocks and lstrip_blocks, as transformers does). Syntax
 * errors return CST_ERR_BAD_FORMAT and constructs the renderer does not
 * implement (unknown statement, filter, test, function or method) return
 * CST_ERR_UNSUPPORTED; both write "line L, column C: ..." into err. Nesting
 * is bounded (CST_TEMPLATE_MAX_NESTING). */
#define CST_TEMPLATE_MAX_NESTING 200
cst_status cst_template_parse(const char *src, size_t len, cst_template **out, char *err, size_t errlen);
void cst_template_free(cst_template *t); /* NULL ok */

/* Render with vars (a dict, or NULL) as the global variables. On success
 * *out is a malloc'd NUL-terminated string (free it). On failure nothing is
 * returned: raise_exception() and type errors give CST_ERR_INVALID_ARG,
 * exceeded limits CST_ERR_INVALID_ARG too (message says which), allocation
 * failure CST_ERR_NOMEM. limits may be NULL (defaults). A template may be
 * rendered by several threads at once. */
cst_status cst_template_render(const cst_template *t, const cst_tvalue *vars, const cst_template_limits *limits,
                               char **out, size_t *out_len, char *err, size_t errlen);

/* ---- Chat ----------------------------------------------------------------
 * messages: a list of dicts ({"role", "content", ...}; content may be any
 * value). extra: a dict of more variables (enable_thinking, tools, ...) or
 * NULL. bos/eos: token texts, or NULL to leave bos_token/eos_token undefined. */
typedef struct cst_chat_params {
    bool add_generation_prompt; /* true in cst_chat_default_params */
    const char *bos_token;
    const char *eos_token;
    const cst_tvalue *extra;
    const cst_template_limits *limits;
} cst_chat_params;
cst_chat_params cst_chat_default_params(void);

cst_status cst_chat_apply(const cst_template *t, const cst_tvalue *messages, const cst_chat_params *p, char **out,
                          size_t *out_len, char *err, size_t errlen);

/* Fallback for models without tokenizer.chat_template: one line group per
 * message, "<Role>: <content>\n\n" with the role capitalised ("system" ->
 * "System", "user" -> "User", "assistant" -> "Assistant"), content parts
 * that are lists of {"type":"text","text":...} joined, other content as JSON;
 * then "Assistant:" when add_generation_prompt. Generation should stop at
 * CST_CHAT_FALLBACK_STOP. Example: "System: Be brief.\n\nUser: Hi\n\nAssistant:" */
#define CST_CHAT_FALLBACK_STOP "\n\nUser:"
cst_status cst_chat_fallback(const cst_tvalue *messages, bool add_generation_prompt, char **out, size_t *out_len,
                             char *err, size_t errlen);

#endif
