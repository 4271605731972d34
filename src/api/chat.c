/* chat.c: conversation -> prompt text, the one place that knows chat
 * formats until the Jinja renderer (src/engine/template) takes over: ChatML
 * for models whose tokenizer.chat_template uses <|im_start|> (qwen family),
 * and a plain "User:/Model:" transcript otherwise (with "\nUser:" as an extra
 * stop sequence). Steps other than user_input/model_output (thought) are
 * skipped, so a chain and the same client-held history render identically.
 */
#include "api_int.h"

#include <string.h>

int cst_chat_format_of(const cst_model *m) {
    const char *t = cst_model_chat_template(m);
    if (t && strstr(t, "<|im_start|>")) return CHAT_CHATML;
    return CHAT_PLAIN;
}

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 1024) + n;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}
static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

/* The text of a step's content blocks, joined. */
static void put_content(buf *b, json_t *step) {
    json_t *c = json_object_get(step, "content");
    size_t i;
    json_t *e;
    json_array_foreach(c, i, e) {
        json_t *t = json_object_get(e, "text");
        if (json_is_string(t)) put(b, json_string_value(t), json_string_length(t));
    }
}

char *cst_chat_render(const smodel *sm, const char *system, json_t *const *lists, size_t n_lists,
                      const char **stop) {
    buf b = {0};
    *stop = NULL;
    const bool chatml = sm->chat_format == CHAT_CHATML;
    if (system && *system) {
        if (chatml) {
            puts_(&b, "<|im_start|>system\n");
            puts_(&b, system);
            puts_(&b, "<|im_end|>\n");
        } else {
            puts_(&b, "System: ");
            puts_(&b, system);
            puts_(&b, "\n\n");
        }
    }
    for (size_t l = 0; l < n_lists; l++) {
        size_t i;
        json_t *st;
        json_array_foreach(lists[l], i, st) {
            json_t *t = json_object_get(st, "type");
            const char *type = json_is_string(t) ? json_string_value(t) : "";
            bool user = !strcmp(type, "user_input");
            if (!user && strcmp(type, "model_output")) continue;
            if (chatml) {
                puts_(&b, user ? "<|im_start|>user\n" : "<|im_start|>assistant\n");
                put_content(&b, st);
                puts_(&b, "<|im_end|>\n");
            } else {
                puts_(&b, user ? "User: " : "Model:");
                put_content(&b, st);
                puts_(&b, "\n");
            }
        }
    }
    if (chatml) {
        puts_(&b, "<|im_start|>assistant\n");
    } else {
        puts_(&b, "Model:");
        *stop = "\nUser:";
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
