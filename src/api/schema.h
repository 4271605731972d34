/* schema.h: JSON Schema -> grammar (grammar.h) for structured output. The
 * API layer owns it: the engine only ever sees the compiled cst_grammar.
 * Supported: type (and type arrays), properties, required,
 * additionalProperties (bool, schema), enum, const, anyOf, oneOf (branches
 * of disjoint JSON types), allOf of objects, $ref into $defs/definitions
 * (recursive too) or "#", items, prefixItems, minItems, maxItems,
 * minimum/maximum/exclusiveMinimum/exclusiveMaximum (integers; numbers
 * generate integers in range), pattern (a regex subset) and the formats
 * date, date-time, time, uuid, email, nullable, propertyOrdering; the
 * advisory keywords are accepted and not enforced; annotations are ignored.
 * Anything else is refused with a message naming the keyword and its path
 * (fail closed). The JSON text is compact, with at most one space after ':'
 * and ','. Declared properties are generated in propertyOrdering (or
 * declaration) order; no undeclared property is generated unless
 * additionalProperties is a schema and there are no declared properties.
 */
#ifndef CST_SCHEMA_H
#define CST_SCHEMA_H

#include "engine/sampler/grammar.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define CST_SCHEMA_MAX_DEPTH 64   /* nesting of schema objects */
#define CST_SCHEMA_MAX_ITEMS 1000 /* minItems / maxItems / prefixItems bounds expanded */
#define CST_SCHEMA_MAX_REF_CHAIN 128 /* $ref targets compiled inside one another */

/* Compile schema (NULL: any JSON value) into a grammar. path names the
 * schema in messages ("response_format.schema"). NULL with a message in
 * err (the caller replies 400). Thread-safe. */
cst_grammar *cst_schema_compile(json_t *schema, const char *path, char *err, size_t errlen);

/* The same through a process-wide cache keyed by the schema's canonical
 * text (sorted keys; compiled grammars are kept, LRU, 64 entries): a
 * repeated schema compiles nothing. Returns a reference the caller unrefs.
 * *hit (may be NULL) tells whether it came from the cache. Thread-safe. */
cst_grammar *cst_schema_get(json_t *schema, const char *path, bool *hit, char *err, size_t errlen);
void cst_schema_cache_clear(void);
/* The cache itself: the grammar build(ud) makes, kept under key (a canonical
 * text the grammar is a function of; the schema cache's keys are JSON
 * texts, so other keys should not be JSON). */
cst_grammar *cst_grammar_cache_get(const char *key, cst_grammar *(*build)(void *ud, char *err, size_t errlen), void *ud,
                                   bool *hit, char *err, size_t errlen);

/* Compile schema (NULL: any JSON value) into the caller's builder b; the
 * rule matching a valid value, or -1 with a message in err (b may then hold
 * unused rules; its sticky error is set when it ran out of room). Several
 * schemas may go into one builder (tools: one per function). */
int32_t cst_schema_rule(cst_gbuild *b, json_t *schema, const char *path, char *err, size_t errlen);

/* A regex (the pattern subset) as a grammar over JSON string contents
 * (without the quotes), for tests and the fuzzer. */
cst_grammar *cst_schema_regex(const char *re, char *err, size_t errlen);

#endif
