/* test_dialects.c: the dialect mappings below HTTP (src/api/dialect*.c):
 * Gemini generateContent and OpenAI chat completion request JSON in ->
 * Interactions create request JSON out (compared whole), unsupported fields
 * refused naming them, the mapped bodies accepted by the Interactions
 * validator (the one request path), and Interactions results out as
 * GenerateContentResponse / chat.completion objects.
 */
#include "test.h"

#include "api/dialect.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static json_t *J(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) cst_test_fail(__FILE__, __LINE__, "bad JSON in the test: %s: %s", e.text, text);
    return j;
}

/* out equals the JSON text want (key order ignored) */
static void expect_json(json_t *out, const char *want, int line) {
    json_t *w = J(want);
    if (!json_equal(out, w)) {
        char *got = out ? json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS) : strdup("NULL");
        char *exp = json_dumps(w, JSON_COMPACT | JSON_SORT_KEYS);
        cst_test_fail(__FILE__, line, "mapping differs\n got: %s\nwant: %s", got, exp);
    }
    json_decref(w);
}
#define EXPECT_JSON(out, want) expect_json(out, want, __LINE__)

static json_t *gemini(const char *req, bool stream, char *err) {
    json_t *r = J(req);
    json_t *o = cst_gemini_request(r, "gemini-3.5-flash", stream, err, 512);
    json_decref(r);
    return o;
}

static json_t *openai(const char *req, char *err) {
    json_t *r = J(req);
    json_t *o = cst_openai_request(r, err, 512);
    json_decref(r);
    return o;
}

/* the mapped body passes the Interactions validator */
static void expect_valid(json_t *body) {
    create_req cr;
    char err[512];
    ASSERT_MSG(cst_api_parse_create(body, &cr, err, sizeof err), "the Interactions validator refused it: %s", err);
    create_req_clear(&cr);
}

TEST(camel_case_names) {
    char b[64];
    cst_dialect_camel("system_instruction", b, sizeof b);
    ASSERT_STREQ(b, "systemInstruction");
    cst_dialect_camel("generationConfig", b, sizeof b);
    ASSERT_STREQ(b, "generationConfig");
    cst_dialect_camel("inline_data", b, sizeof b);
    ASSERT_STREQ(b, "inlineData");
}

TEST(gemini_contents_system_config) {
    char err[512] = "";
    json_t *o = gemini("{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"hi\"}]},"
                       "{\"role\":\"model\",\"parts\":[{\"text\":\"secret\",\"thought\":true},"
                       "{\"text\":\"hello\",\"thoughtSignature\":\"SIG\"}]},"
                       "{\"parts\":[{\"text\":\"and now?\"},{\"inline_data\":{\"mime_type\":\"image/png\",\"data\":\"AAAA\"}},"
                       "{\"fileData\":{\"fileUri\":\"files/abc\",\"mimeType\":\"image/jpeg\"}}]}],"
                       "\"system_instruction\":{\"parts\":[{\"text\":\"be\"},{\"text\":\"brief\"}]},"
                       "\"generationConfig\":{\"temperature\":0.5,\"topP\":0.9,\"topK\":7,\"maxOutputTokens\":12,"
                       "\"stopSequences\":[\"END\"],\"seed\":42,\"candidateCount\":1,"
                       "\"thinkingConfig\":{\"includeThoughts\":true,\"thinkingBudget\":1000}},"
                       "\"safetySettings\":[]}",
                       true, err);
    ASSERT_MSG(o, "%s", err);
    EXPECT_JSON(o, "{\"model\":\"gemini-3.5-flash\",\"stream\":true,\"store\":false,"
                   "\"system_instruction\":\"be\\nbrief\",\"safety_settings\":[],"
                   "\"input\":[{\"type\":\"user_input\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]},"
                   "{\"type\":\"thought\",\"signature\":\"SIG\"},"
                   "{\"type\":\"model_output\",\"content\":[{\"type\":\"text\",\"text\":\"hello\"}]},"
                   "{\"type\":\"user_input\",\"content\":[{\"type\":\"text\",\"text\":\"and now?\"},"
                   "{\"type\":\"image\",\"data\":\"AAAA\",\"mime_type\":\"image/png\"},"
                   "{\"type\":\"image\",\"uri\":\"files/abc\",\"mime_type\":\"image/jpeg\"}]}],"
                   "\"generation_config\":{\"temperature\":0.5,\"top_p\":0.9,\"top_k\":7,\"max_output_tokens\":12,"
                   "\"stop_sequences\":[\"END\"],\"seed\":42,\"thinking_summaries\":\"auto\",\"thinking_level\":\"low\"}}");
    expect_valid(o);
    json_decref(o);
    /* thinkingLevel wins over the budget; budget 0 is minimal */
    o = gemini("{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"generationConfig\":{\"thinkingConfig\":"
               "{\"thinkingLevel\":\"HIGH\",\"thinkingBudget\":0}}}",
               false, err);
    ASSERT_MSG(o, "%s", err);
    ASSERT_STREQ(json_string_value(json_object_get(json_object_get(o, "generation_config"), "thinking_level")), "high");
    json_decref(o);
    o = gemini("{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"generationConfig\":{\"thinkingConfig\":"
               "{\"thinkingBudget\":0}}}",
               false, err);
    ASSERT_STREQ(json_string_value(json_object_get(json_object_get(o, "generation_config"), "thinking_level")),
                  "minimal");
    expect_valid(o);
    json_decref(o);
}

TEST(gemini_structured_output_and_tools) {
    char err[512] = "";
    json_t *o = gemini(
        "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"weather?\"}]},"
        "{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"id\":\"c1\",\"name\":\"get_weather\",\"args\":{\"city\":\"Paris\"}},"
        "\"thoughtSignature\":\"S\"}]},"
        "{\"role\":\"user\",\"parts\":[{\"functionResponse\":{\"id\":\"c1\",\"name\":\"get_weather\",\"response\":{\"t\":20}}}]}],"
        "\"tools\":[{\"functionDeclarations\":[{\"name\":\"get_weather\",\"description\":\"d\","
        "\"parameters\":{\"type\":\"OBJECT\",\"properties\":{\"city\":{\"type\":\"STRING\"}},\"required\":[\"city\"]}}]}],"
        "\"toolConfig\":{\"functionCallingConfig\":{\"mode\":\"ANY\",\"allowedFunctionNames\":[\"get_weather\"]}},"
        "\"generationConfig\":{\"responseMimeType\":\"application/json\",\"responseSchema\":{\"type\":\"OBJECT\","
        "\"properties\":{\"t\":{\"type\":\"INTEGER\"}}}}}",
        false, err);
    ASSERT_MSG(o, "%s", err);
    EXPECT_JSON(o, "{\"model\":\"gemini-3.5-flash\",\"stream\":false,\"store\":false,"
                   "\"input\":[{\"type\":\"user_input\",\"content\":[{\"type\":\"text\",\"text\":\"weather?\"}]},"
                   "{\"type\":\"thought\",\"signature\":\"S\"},"
                   "{\"type\":\"function_call\",\"id\":\"c1\",\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}},"
                   "{\"type\":\"function_result\",\"call_id\":\"c1\",\"name\":\"get_weather\",\"result\":{\"t\":20}}],"
                   "\"tools\":[{\"type\":\"function\",\"name\":\"get_weather\",\"description\":\"d\","
                   "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}],"
                   "\"response_format\":{\"type\":\"text\",\"mime_type\":\"application/json\",\"schema\":{\"type\":\"object\","
                   "\"properties\":{\"t\":{\"type\":\"integer\"}}}},"
                   "\"generation_config\":{\"tool_choice\":{\"allowed_tools\":{\"mode\":\"any\",\"tools\":[\"get_weather\"]}}}}");
    json_decref(o);
    /* responseJsonSchema is passed as it is */
    o = gemini("{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"generationConfig\":{\"responseMimeType\":"
               "\"application/json\",\"responseJsonSchema\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},"
               "\"toolConfig\":{\"functionCallingConfig\":{\"mode\":\"NONE\"}}}",
               false, err);
    ASSERT_MSG(o, "%s", err);
    EXPECT_JSON(json_object_get(o, "response_format"), "{\"type\":\"text\",\"mime_type\":\"application/json\","
                                                       "\"schema\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}");
    ASSERT_STREQ(json_string_value(json_object_get(json_object_get(o, "generation_config"), "tool_choice")), "none");
    json_decref(o);
}

TEST(gemini_refusals_name_the_field) {
    static const struct {
        const char *req, *msg;
    } cases[] = {
        {"{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"bogus\":1}", "bogus: unknown field"},
        {"{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"cachedContent\":\"c\"}", "cachedContent"},
        {"{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"generationConfig\":{\"candidateCount\":2}}",
         "generationConfig.candidateCount"},
        {"{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"generationConfig\":{\"frequencyPenalty\":0.5}}",
         "generationConfig.frequencyPenalty"},
        {"{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"generationConfig\":{\"responseLogprobs\":true}}",
         "generationConfig.responseLogprobs"},
        {"{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"generationConfig\":{\"responseSchema\":{\"type\":\"OBJECT\"}}}",
         "responseMimeType application/json"},
        {"{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"generationConfig\":{\"thinkingConfig\":{\"thinkingLevel\":\"max\"}}}",
         "thinkingLevel"},
        {"{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"tools\":[{\"googleSearch\":{}}]}", "tools[0].googleSearch"},
        {"{\"contents\":[{\"parts\":[{\"text\":\"x\",\"videoMetadata\":{}}]}]}", "contents[0].parts[0].videoMetadata"},
        {"{\"contents\":[{\"parts\":[{\"inlineData\":{\"mimeType\":\"audio/wav\",\"data\":\"AA\"}}]}]}",
         "contents[0].parts[0].inlineData.mimeType"},
        {"{\"contents\":[{\"role\":\"system\",\"parts\":[{\"text\":\"x\"}]}]}", "contents[0].role"},
        {"{\"contents\":[]}", "contents: empty"},
        {"{\"contents\":[{\"parts\":[{\"text\":\"x\"}]},{\"role\":\"model\",\"parts\":[{\"text\":\"y\"}]}]}",
         "contents[1].role: the last content must be the user's turn"},
        {"{\"generationConfig\":{}}", "contents: required"},
        {"{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"systemInstruction\":{\"parts\":[{\"inlineData\":{}}]}}",
         "systemInstruction.parts[0]"},
    };
    for (size_t i = 0; i < CST_ARRAY_LEN(cases); i++) {
        char err[512] = "";
        json_t *o = gemini(cases[i].req, false, err);
        ASSERT_MSG(!o, "accepted: %s", cases[i].req);
        ASSERT_MSG(strstr(err, cases[i].msg), "'%s' does not name '%s'", err, cases[i].msg);
    }
}

TEST(gemini_response_from_interaction) {
    json_t *ix = J("{\"id\":\"v1_x\",\"model\":\"m\",\"status\":\"completed\",\"steps\":["
                   "{\"type\":\"thought\",\"signature\":\"SIG\",\"summary\":[{\"type\":\"text\",\"text\":\"hmm\"}]},"
                   "{\"type\":\"model_output\",\"content\":[{\"type\":\"text\",\"text\":\"Hello\"}]},"
                   "{\"type\":\"function_call\",\"id\":\"c1\",\"name\":\"f\",\"arguments\":{\"a\":1}}],"
                   "\"usage\":{\"total_input_tokens\":10,\"total_cached_tokens\":4,\"total_output_tokens\":3,"
                   "\"total_thought_tokens\":5,\"total_tokens\":18,"
                   "\"input_tokens_by_modality\":[{\"modality\":\"text\",\"tokens\":10}]}}");
    json_t *r = cst_gemini_response(ix);
    EXPECT_JSON(r, "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"hmm\",\"thought\":true},"
                   "{\"text\":\"Hello\",\"thoughtSignature\":\"SIG\"},{\"functionCall\":{\"id\":\"c1\",\"name\":\"f\","
                   "\"args\":{\"a\":1}}}]},\"finishReason\":\"STOP\",\"index\":0}],\"modelVersion\":\"m\","
                   "\"responseId\":\"v1_x\",\"usageMetadata\":{\"promptTokenCount\":10,\"candidatesTokenCount\":3,"
                   "\"thoughtsTokenCount\":5,\"cachedContentTokenCount\":4,\"totalTokenCount\":18,"
                   "\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":10}]}}");
    json_decref(r);
    json_object_set_new(ix, "status", json_string("incomplete"));
    r = cst_gemini_response(ix);
    ASSERT_STREQ(json_string_value(json_object_get(json_array_get(json_object_get(r, "candidates"), 0), "finishReason")),
                  "MAX_TOKENS");
    json_decref(r);
    json_decref(ix);
}

TEST(openai_request_mapping) {
    char err[512] = "";
    json_t *o = openai("{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"a\"},"
                       "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"b\"}]},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\"},"
                       "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,QUJD\"}}]},"
                       "{\"role\":\"assistant\",\"content\":\"ok\",\"reasoning_content\":\"r\"},"
                       "{\"role\":\"user\",\"content\":\"more\"}],"
                       "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"temperature\":0.2,\"top_p\":0.5,"
                       "\"max_completion_tokens\":9,\"stop\":\"X\",\"seed\":3,\"n\":1,\"reasoning_effort\":\"none\","
                       "\"user\":\"u\",\"frequency_penalty\":0}",
                       err);
    ASSERT_MSG(o, "%s", err);
    EXPECT_JSON(o, "{\"model\":\"m\",\"store\":false,\"stream\":true,\"system_instruction\":\"a\\n\\nb\","
                   "\"input\":[{\"type\":\"user_input\",\"content\":[{\"type\":\"text\",\"text\":\"look\"},"
                   "{\"type\":\"image\",\"data\":\"QUJD\",\"mime_type\":\"image/png\"}]},"
                   "{\"type\":\"model_output\",\"content\":[{\"type\":\"text\",\"text\":\"ok\"}]},"
                   "{\"type\":\"user_input\",\"content\":[{\"type\":\"text\",\"text\":\"more\"}]}],"
                   "\"generation_config\":{\"thinking_summaries\":\"auto\",\"temperature\":0.2,\"top_p\":0.5,"
                   "\"max_output_tokens\":9,\"stop_sequences\":[\"X\"],\"seed\":3,\"thinking_level\":\"minimal\"}}");
    expect_valid(o);
    json_decref(o);

    o = openai("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"w?\"},"
               "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
               "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
               "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"20C\"}],"
               "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"d\","
               "\"parameters\":{\"type\":\"object\"}}}],"
               "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}},"
               "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"w\",\"schema\":{\"type\":\"object\"}}},"
               "\"max_tokens\":4}",
               err);
    ASSERT_MSG(o, "%s", err);
    EXPECT_JSON(o, "{\"model\":\"m\",\"store\":false,"
                   "\"input\":[{\"type\":\"user_input\",\"content\":[{\"type\":\"text\",\"text\":\"w?\"}]},"
                   "{\"type\":\"function_call\",\"id\":\"c1\",\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}},"
                   "{\"type\":\"function_result\",\"call_id\":\"c1\",\"name\":\"get_weather\",\"result\":\"20C\"}],"
                   "\"tools\":[{\"type\":\"function\",\"name\":\"get_weather\",\"description\":\"d\","
                   "\"parameters\":{\"type\":\"object\"}}],"
                   "\"response_format\":{\"type\":\"text\",\"mime_type\":\"application/json\",\"schema\":{\"type\":\"object\"}},"
                   "\"generation_config\":{\"thinking_summaries\":\"auto\",\"max_output_tokens\":4,"
                   "\"tool_choice\":{\"allowed_tools\":{\"mode\":\"any\",\"tools\":[\"get_weather\"]}}}}");
    json_decref(o);
    o = openai("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"required\","
               "\"response_format\":{\"type\":\"json_object\"},\"reasoning_effort\":\"high\"}",
               err);
    ASSERT_MSG(o, "%s", err);
    ASSERT_STREQ(json_string_value(json_object_get(json_object_get(o, "generation_config"), "tool_choice")), "any");
    ASSERT_STREQ(json_string_value(json_object_get(json_object_get(o, "generation_config"), "thinking_level")), "high");
    EXPECT_JSON(json_object_get(o, "response_format"), "{\"type\":\"text\",\"mime_type\":\"application/json\"}");
    json_decref(o);
}

TEST(openai_refusals_name_the_field) {
    static const struct {
        const char *req, *msg;
    } cases[] = {
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model"},
        {"{\"model\":\"m\"}", "messages: required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}", "n: only 1"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true}", "logprobs"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"presence_penalty\":1}",
         "presence_penalty"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"wat\":1}", "wat: unknown field"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"reasoning_effort\":\"max\"}",
         "reasoning_effort"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"function\",\"content\":\"x\"}]}", "messages[0].role"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":\"y\"}]}",
         "messages[1]: the last message must be a user or tool message"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\"}]}]}",
         "messages[0].content[0].type"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
         "{\"url\":\"https://x/y.png\"}}]}]}",
         "does not fetch URLs"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"yaml\"}}",
         "response_format.type"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"web_search\"}]}",
         "tools[0]"},
    };
    for (size_t i = 0; i < CST_ARRAY_LEN(cases); i++) {
        char err[512] = "";
        json_t *o = openai(cases[i].req, err);
        ASSERT_MSG(!o, "accepted: %s", cases[i].req);
        ASSERT_MSG(strstr(err, cases[i].msg), "'%s' does not name '%s'", err, cases[i].msg);
    }
}

TEST(openai_response_from_interaction) {
    json_t *ix = J("{\"id\":\"v1_y\",\"model\":\"m\",\"status\":\"incomplete\",\"steps\":["
                   "{\"type\":\"thought\",\"signature\":\"S\",\"summary\":[{\"type\":\"text\",\"text\":\"think\"}]},"
                   "{\"type\":\"model_output\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}],"
                   "\"usage\":{\"total_input_tokens\":7,\"total_cached_tokens\":2,\"total_output_tokens\":3,"
                   "\"total_thought_tokens\":4,\"total_tokens\":14}}");
    json_t *r = cst_openai_response(ix, "mm");
    json_object_del(r, "created");
    EXPECT_JSON(r, "{\"id\":\"chatcmpl-v1_y\",\"object\":\"chat.completion\",\"model\":\"mm\",\"system_fingerprint\":null,"
                   "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi\","
                   "\"reasoning_content\":\"think\"},\"finish_reason\":\"length\",\"logprobs\":null}],"
                   "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":7,\"total_tokens\":14,"
                   "\"prompt_tokens_details\":{\"cached_tokens\":2},\"completion_tokens_details\":{\"reasoning_tokens\":4}}}");
    json_decref(r);
    json_decref(ix);
    ix = J("{\"id\":\"v1_z\",\"status\":\"requires_action\",\"steps\":[{\"type\":\"function_call\",\"id\":\"c\","
           "\"name\":\"f\",\"arguments\":{\"a\":[1]}}]}");
    r = cst_openai_response(ix, "mm");
    json_t *ch = json_array_get(json_object_get(r, "choices"), 0);
    ASSERT_STREQ(json_string_value(json_object_get(ch, "finish_reason")), "tool_calls");
    EXPECT_JSON(json_object_get(json_object_get(ch, "message"), "tool_calls"),
                "[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":[1]}\"}}]");
    ASSERT(json_is_null(json_object_get(json_object_get(ch, "message"), "content")));
    json_decref(r);
    json_decref(ix);
}

TEST(error_styles) {
    json_t *e = cst_api_error_body(ERR_STYLE_RPC, E_INVALID, "bad");
    EXPECT_JSON(e, "{\"error\":{\"code\":400,\"message\":\"bad\",\"status\":\"INVALID_ARGUMENT\"}}");
    json_decref(e);
    e = cst_api_error_body(ERR_STYLE_OPENAI, E_UNAUTH, "no key");
    EXPECT_JSON(e, "{\"error\":{\"message\":\"no key\",\"type\":\"authentication_error\",\"param\":null,"
                   "\"code\":\"unauthenticated\"}}");
    json_decref(e);
    e = cst_api_error_body(ERR_STYLE_INTERACTIONS, E_NOT_FOUND, "gone");
    EXPECT_JSON(e, "{\"error\":{\"code\":\"not_found\",\"message\":\"gone\"}}");
    json_decref(e);
}

TEST(gemini_documents_map_to_document_blocks) {
    char err[512] = "";
    json_t *o = gemini("{\"contents\":[{\"parts\":[{\"inlineData\":{\"mimeType\":\"text/plain\",\"data\":\"aGk=\"}},"
                       "{\"fileData\":{\"fileUri\":\"files/doc1\",\"mimeType\":\"application/pdf\"}},{\"text\":\"sum up\"}]}]}",
                       false, err);
    ASSERT_MSG(o, "%s", err);
    EXPECT_JSON(json_object_get(json_array_get(json_object_get(o, "input"), 0), "content"),
                "[{\"type\":\"document\",\"data\":\"aGk=\",\"mime_type\":\"text/plain\"},"
                "{\"type\":\"document\",\"uri\":\"files/doc1\",\"mime_type\":\"application/pdf\"},"
                "{\"type\":\"text\",\"text\":\"sum up\"}]");
    expect_valid(o);
    json_decref(o);
}
