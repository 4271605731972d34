/* reasoning.h: the reasoning parser. Splits a model's generated text into
 * thought text (between the open and close markers, e.g. <think> ...
 * </think>) and answer text, incrementally: text arrives in arbitrary pieces,
 * a marker split across pieces is recognised, markers never reach either
 * output, the newlines the chat templates put around the thought ("<think>\n"
 * ... "\n</think>\n\n") are trimmed. A thought is recognised only at the
 * start of the output (or when the prompt already opened one); markers later
 * in the answer are dropped. Plain text, no JSON; used by the scheduler.
 */
#ifndef CST_REASONING_H
#define CST_REASONING_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cst_reasoning cst_reasoning;

/* open/close: the marker texts (copied). inside: the prompt ended with the
 * open marker, so the output starts inside a thought. NULL on OOM or empty
 * markers. */
cst_reasoning *cst_reasoning_new(const char *open, const char *close, bool inside);
void cst_reasoning_free(cst_reasoning *r); /* NULL ok */

/* Feed generated text. Afterwards *thought / *answer point at the text that
 * became final in this call (valid until the next call; thought text always
 * precedes answer text). Returns false on OOM. */
bool cst_reasoning_feed(cst_reasoning *r, const char *text, size_t len, const char **thought, size_t *thought_len,
                        const char **answer, size_t *answer_len);
/* End of output: everything still held (a partial marker is text). */
bool cst_reasoning_flush(cst_reasoning *r, const char **thought, size_t *thought_len, const char **answer,
                         size_t *answer_len);
/* True while inside a thought. */
bool cst_reasoning_thinking(const cst_reasoning *r);
/* True once a thought was opened (by the prompt or the output). */
bool cst_reasoning_seen(const cst_reasoning *r);

#endif
