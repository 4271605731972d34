/* dialect.h: the other APIs Castor speaks (Gemini generateContent, OpenAI
 * chat completions) as thin mappings onto the Interactions request path: a
 * dialect's request JSON becomes an Interactions create body, which goes
 * through the same validation, chat rendering, scheduler and run as
 * POST /interactions (cst_route_create); the run's result and its event log
 * are translated back. Internal to src/api; the mapping functions are
 * separate from HTTP so that tests/unit/test_dialects.c checks them.
 */
#ifndef CST_API_DIALECT_H
#define CST_API_DIALECT_H

#include "api_int.h"

/* ---- shared helpers (dialect.c) ---------------------------------------- */
/* A field name in camelCase ("system_instruction" -> "systemInstruction"). */
void cst_dialect_camel(const char *key, char *out, size_t n);
/* A mapping error: the message into err, and NULL (for `return BAD(...)`). */
json_t *cst_dialect_bad(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* "an object", "a string", "a number" (integers too), ... for messages. */
const char *cst_dialect_jtype(const json_t *v);
/* A JSON Schema with OpenAPI-style upper-case type names ("OBJECT") in lower
 * case (new reference). */
json_t *cst_dialect_schema(json_t *schema);
/* Run an Interactions body through cst_route_create and answer with out. */
enum MHD_Result cst_dialect_run(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner, json_t *ibody,
                                cst_dialect_out *out);
/* The interaction's thought step summary text, model_output text, and the
 * thought signature (borrowed from j), any of them NULL when absent. */
void cst_dialect_outputs(json_t *interaction, const char **thought, const char **text, const char **signature);

/* ---- Gemini generateContent (dialect_gemini.c) ------------------------- */
/* A generateContent / countTokens body -> the Interactions create body (new
 * reference), or NULL with err naming the field. */
json_t *cst_gemini_request(json_t *req, const char *model, bool stream, char *err, size_t errlen);
/* An Interactions resource (create response) -> a GenerateContentResponse. */
json_t *cst_gemini_response(json_t *interaction);
/* Routes models/{m}:generateContent, :streamGenerateContent, :countTokens. */
enum MHD_Result cst_gemini_route(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner,
                                 const char *model, const char *method);
/* The Gemini Model resource of a served model. */
json_t *cst_gemini_model_json(cst_server *s, size_t i);

/* ---- OpenAI chat completions (dialect_openai.c) ------------------------ */
json_t *cst_openai_request(json_t *req, char *err, size_t errlen);
/* An Interactions resource -> a chat.completion object. */
json_t *cst_openai_response(json_t *interaction, const char *model);
enum MHD_Result cst_openai_chat(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner);

#endif
