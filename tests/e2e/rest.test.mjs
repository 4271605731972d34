// rest.test.mjs: the seed guide's REST (curl) examples 1, 3, 4, 6, 7, 8, 9
// on both test models, and the error bodies of §11 through curl: missing and
// wrong keys, malformed JSON, unknown fields, wrong types, oversize bodies,
// prompts over the context; /health, /metrics, /models, CORS, path versions.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { curl, curlJson, parseSse, MODELS, URL_, KEY, outputText } from "./common.mjs";

function checkSse(r) {
  assert.equal(r.status, 200);
  assert.match(r.headers["content-type"], /^text\/event-stream/);
  const evs = parseSse(r.body);
  assert.equal(evs.at(-1).event, "done");
  assert.equal(evs.at(-1).data, "[DONE]");
  const real = evs.slice(0, -1);
  for (const e of real) assert.equal(e.event, e.data.event_type, "event: line equals event_type");
  assert.deepEqual(real.slice(0, 3).map((e) => e.event), ["interaction.created", "interaction.status_update", "step.start"]);
  assert.deepEqual(real.slice(-2).map((e) => e.event), ["step.stop", "interaction.completed"]);
  real.forEach((e, i) => assert.equal(e.data.event_id, String(i + 1)));
  return { events: real, text: real.filter((e) => e.event === "step.delta").map((e) => e.data.delta.text).join("") };
}

for (const [label, model] of MODELS) {
  describe(`REST examples on ${label}`, () => {
    test("1: simple text", async () => {
      const r = await curlJson("POST", "/v1beta/interactions", { model, input: "How does AI work?" });
      assert.equal(r.status, 200);
      assert.match(r.headers["content-type"], /^application\/json/);
      assert.equal(r.json.model, model);
      assert.ok(outputText(r.json).length > 0);
    });
    test("3: system_instruction", async () => {
      const r = await curlJson("POST", "/v1beta/interactions", { model, system_instruction: "You are a cat. Your name is Neko.", input: "Hello there" });
      assert.equal(r.status, 200);
      assert.equal(r.json.system_instruction, "You are a cat. Your name is Neko.");
      const g = await curlJson("GET", `/v1beta/interactions/${r.json.id}`);
      assert.equal(g.json.system_instruction, "You are a cat. Your name is Neko.");
    });
    test("4: temperature", async () => {
      const r = await curlJson("POST", "/v1beta/interactions", { model, input: "Explain how AI works", generation_config: { temperature: 1.0 } });
      assert.equal(r.status, 200);
      assert.ok(outputText(r.json).length > 0);
    });
    test("6: streaming with ?alt=sse", async () => {
      const r = await curlJson("POST", "/v1beta/interactions?alt=sse", { model, input: "Explain how AI works", stream: true }, { headers: [] });
      const { events, text } = checkSse(r);
      const g = await curlJson("GET", `/v1beta/interactions/${events[0].data.interaction.id}`);
      assert.equal(outputText(g.json), text);
    });
    test("7 + 8: multi-turn, unary and streaming", async () => {
      const r1 = await curlJson("POST", "/v1beta/interactions", { model, input: "I have 2 dogs in my house." });
      const id = r1.json.id;
      const r2 = await curlJson("POST", "/v1beta/interactions", { model, input: "I have two dogs in my house. How many paws are in my house?", previous_interaction_id: id });
      assert.equal(r2.status, 200);
      assert.equal(r2.json.previous_interaction_id, id);
      const r3 = await curlJson("POST", "/v1beta/interactions?alt=sse", { model, input: "How many paws are in my house?", previous_interaction_id: id, stream: true });
      const { events } = checkSse(r3);
      assert.ok(events.at(-1).data.interaction.usage.total_cached_tokens > 0);
    });
    test("9: stateless with string content (jq-built history)", async () => {
      const first = [{ type: "user_input", content: "I have 2 dogs in my house." }];
      const r1 = await curlJson("POST", "/v1beta/interactions", { model, store: false, input: first });
      assert.equal(r1.status, 200);
      const history = [...first, ...r1.json.steps, { type: "user_input", content: "How many paws are in my house?" }];
      const r2 = await curlJson("POST", "/v1beta/interactions", { model, store: false, input: history });
      assert.equal(r2.status, 200);
      assert.ok(outputText(r2.json).length > 0);
      const g = await curlJson("GET", `/v1beta/interactions/${r1.json.id}`);
      assert.equal(g.status, 404);
    });
  });
}

describe("REST: transport, auth and errors", () => {
  const body = { model: "gemini-3.5-flash", input: "hi", generation_config: { max_output_tokens: 4 } };
  test("the same routes under /v1, /v1beta and /v1alpha; key in ?key=", async () => {
    for (const v of ["v1", "v1beta", "v1alpha"]) {
      const r = await curlJson("POST", `/${v}/interactions`, body);
      assert.equal(r.status, 200, v);
    }
    const r = await curlJson("POST", `/v1beta/interactions?key=${KEY}`, body, { key: null });
    assert.equal(r.status, 200);
  });
  test("missing key 401, wrong key 403, conflicting keys 400", async () => {
    let r = await curlJson("POST", "/v1beta/interactions", body, { key: null });
    assert.equal(r.status, 401);
    assert.equal(r.json.error.code, "unauthenticated");
    r = await curlJson("POST", "/v1beta/interactions", body, { key: "nope" });
    assert.equal(r.status, 403);
    assert.equal(r.json.error.code, "permission_denied");
    r = await curlJson("POST", "/v1beta/interactions?key=other", body);
    assert.equal(r.status, 400);
  });
  test("malformed JSON, non-object, unknown field, wrong type, bad input", async () => {
    const cases = [
      ['{"model": "gemini-3.5-flash", "input": ', /malformed JSON/],
      ["[1,2]", /JSON object/],
      [{ ...body, max_tokens: 3 }, /max_tokens: unknown field/],
      [{ ...body, stream: "yes" }, /stream: expected a boolean/],
      [{ ...body, generation_config: { stop_sequences: ["a", ""] } }, /stop_sequences\[1\]/],
      [{ ...body, generation_config: { temperature: 3 } }, /temperature.*range/],
      [{ model: "gemini-3.5-flash" }, /input: required/],
      [{ model: "gemini-3.5-flash", input: [] }, /input: empty array/],
      [{ model: "gemini-3.5-flash", input: [{ type: "model_output", content: "x" }] }, /user_input/],
      [{ model: "gemini-3.5-flash", input: "x", background: true, store: false }, /background/],
      [{ model: "gemini-3.5-flash", input: "x", response_format: { type: "image" } }, /response_format.type: .image. output is not supported/],
    ];
    for (const [b, re] of cases) {
      const r = await curlJson("POST", "/v1beta/interactions", b);
      assert.equal(r.status, 400, JSON.stringify(b));
      assert.equal(r.json.error.code, "invalid_request");
      assert.match(r.json.error.message, re);
    }
  });
  test("unknown model and unknown previous id are 404", async () => {
    let r = await curlJson("POST", "/v1beta/interactions", { ...body, model: "gemini-nope-x".replace("gemini-", "other-") });
    assert.equal(r.status, 404);
    assert.equal(r.json.error.code, "not_found");
    r = await curlJson("POST", "/v1beta/interactions", { ...body, previous_interaction_id: "v1_unknown" });
    assert.equal(r.status, 404);
    r = await curlJson("GET", "/v1beta/interactions/v1_unknown");
    assert.equal(r.status, 404);
  });
  test("oversize body is 413", async () => {
    const big = JSON.stringify({ model: "gemini-3.5-flash", input: "x".repeat(5 << 20) });
    const r = await curlJson("POST", "/v1beta/interactions", big);
    assert.equal(r.status, 413);
    assert.equal(r.json.error.code, "invalid_request");
  });
  test("prompt over the context is 400 with the counts", async () => {
    const r = await curlJson("POST", "/v1beta/interactions", { model: "tiny-qwen", input: "hello ".repeat(2000) });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /the prompt is \d+ tokens.*1024/);
  });
  test("health without a key, metrics, models, CORS preflight", async () => {
    let r = await curl([URL_ + "/health"]);
    assert.equal(r.status, 200);
    r = await curl([URL_ + "/metrics"]);
    assert.equal(r.status, 401); // behind the key when --api-keys is on
    r = await curl([URL_ + "/metrics", "-H", `x-goog-api-key: ${KEY}`]);
    assert.equal(r.status, 200);
    assert.match(r.body, /castor_requests_total\{route="create",code="200"\} \d+/);
    assert.match(r.body, /castor_time_to_first_token_seconds_bucket/);
    assert.match(r.body, /castor_queue_depth/);
    // the engine thread's time: earlier tests generated on stories260K, so its
    // forward passes took time, and the loop around them some too
    const eng = (fam) => Number((r.body.match(new RegExp(`${fam}\\{model="stories260K"\\} ([0-9.]+)`)) ?? [])[1]);
    assert.ok(eng("castor_engine_decode_seconds_total") > 0, r.body);
    assert.ok(eng("castor_engine_host_seconds_total") > 0);
    assert.ok(eng("castor_engine_sample_seconds_total") <= eng("castor_engine_host_seconds_total"));
    const m = await curlJson("GET", "/v1beta/models");
    assert.equal(m.status, 200);
    assert.deepEqual(m.json.models.map((x) => x.name), ["models/stories260K", "models/qwen3-tiny"]);
    r = await curl(["-X", "OPTIONS", URL_ + "/v1/interactions", "-H", "Origin: http://x", "-H", "Access-Control-Request-Method: POST"]);
    assert.equal(r.status, 204);
    assert.match(r.headers["access-control-allow-headers"], /x-goog-api-key/);
  });
});
