/* tools.h: function calling (§9). The request side (tools and tool_choice
 * validated, parameters compiled by the schema compiler), the call syntax of
 * a chat-template family, the grammar that constrains a turn with tools
 * (free text until the family's trigger, then only well-formed calls whose
 * arguments validate: grammar.h's trigger mode), and the parser that turns
 * the generated text back into function calls. Design:
 * docs/internals/api.md ("Function calling").
 *
 * Families (chosen from the template source at load):
 *   hermes  Qwen / Hermes / the generic fallback:
 *           <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>
 *           several per turn, one per line
 *   llama3  Llama 3.x: {"name": "f", "parameters": {...}} (one per turn; a
 *           leading <|python_tag|> is accepted by the parser)
 */
#ifndef CST_TOOLS_H
#define CST_TOOLS_H

#include "engine/sampler/grammar.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum { CST_TOOLS_HERMES = 0, CST_TOOLS_LLAMA3 } cst_tool_family;
typedef enum { CST_TC_AUTO = 0, CST_TC_ANY, CST_TC_NONE, CST_TC_VALIDATED } cst_tool_mode;

/* The tools of a request, validated (borrowed from the body). */
typedef struct cst_tools {
    json_t *tools;       /* array of {type:"function", name, description?, parameters?}; NULL: none */
    cst_tool_mode mode;  /* tool_choice (auto when absent) */
    json_t *allowed;     /* allowed_tools.tools: names the calls may use (NULL: every tool) */
    json_t *choice;      /* generation_config.tool_choice as sent, or NULL */
} cst_tools;

/* Validate `tools` (NULL/null: none): every entry {type:"function", name
 * ([A-Za-z_][A-Za-z0-9_.:-]*, at most 128), description?, parameters?}, no
 * duplicate names, parameters compiled (an unsupported keyword is an error
 * naming it and its path, e.g. tools[0].parameters.properties.a.not); other
 * tool types are refused by name. */
bool cst_tools_parse(json_t *tools, cst_tools *out, char *err, size_t errlen);
/* Validate generation_config.tool_choice (string or {allowed_tools: {mode?,
 * tools?}}); names are checked against the tools by cst_tools_check. */
bool cst_tools_parse_choice(json_t *choice, cst_tools *out, char *err, size_t errlen);
/* Cross-checks once both are known: allowed names exist, a choice other
 * than auto/none needs tools. */
bool cst_tools_check(const cst_tools *t, char *err, size_t errlen);
bool cst_tools_valid_name(const char *s);
/* Calls may be made: tools given and the mode is not none. */
bool cst_tools_active(const cst_tools *t);

/* The family a template's source writes calls in (NULL: no template). *renders
 * gets whether the template renders tools itself (reads `tools` and knows
 * the family's syntax); otherwise chat.c adds the fallback system prompt. */
cst_tool_family cst_tools_family(const char *tpl_src, bool *renders);
const char *cst_tools_trigger(cst_tool_family f);

/* The grammar of a turn with these tools (cached by family, mode, allowed
 * names and declarations): auto/validated free text or calls, any only
 * calls, none free text that never starts a call. NULL with a message. */
cst_grammar *cst_tools_grammar(cst_tool_family f, const cst_tools *t, char *err, size_t errlen);

/* The generated text of a turn: *text_len gets the length of the free text
 * before the first call (the whole text when there is none), *calls a new
 * array of {name, arguments} (NULL when there is no call). False when a call
 * was started but is not complete or not valid JSON of the right shape (the
 * caller keeps the text as text). */
bool cst_tools_parse_calls(cst_tool_family f, const char *s, size_t n, size_t *text_len, json_t **calls);

/* The fallback instructions (hermes syntax) listing the tools, for
 * templates that do not render tools. malloc'd. */
char *cst_tools_fallback_prompt(json_t *tools);

#endif
