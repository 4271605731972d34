// tools.test.mjs: function calling (§9) through @google/genai 3.1.0 on
// random-weight models with the real Qwen3 vocabulary and template (hermes
// <tool_call> calls, tools rendered by the template) and the Llama 3
// vocabulary (3.0 template: the fallback tool prompt; as llama31-tiny with
// llama31-tools.jinja, a Llama 3.1-style template: {"name", "parameters"}
// calls, results as ipython turns, an is_error result as {"error": ...},
// checked in the prompts the server logs with --log-prompts). Random weights
// never follow a format by themselves, so every valid call below is the
// grammar's doing: tool_choice any always yields calls whose arguments ajv
// validates against the declared parameters; none never a call; a call ->
// result -> answer round trip, streamed and not, stored
// (previous_interaction_id) and stateless (the same prompt: the same answer
// for the same seed); 400s.
// (tools.sh)
import { test, describe } from "node:test";
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import OpenAI from "openai";
import { client, curlJson, URL_ } from "./common.mjs";

const ai = client("unused");
const oa = new OpenAI({ apiKey: "unused", baseURL: URL_ + "/v1", maxRetries: 0 });
const SEEDS = Number(process.env.CST_TOOLS_SEEDS || 6);
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);

const weather = {
  type: "function", name: "get_weather", description: "Current weather of a city",
  parameters: {
    type: "object",
    properties: { city: { type: "string", description: "the city" }, unit: { enum: ["celsius", "fahrenheit"] } },
    required: ["city", "unit"],
  },
};
const book = {
  type: "function", name: "book_table", description: "Book a restaurant table",
  parameters: {
    type: "object",
    properties: {
      when: { type: "string", format: "date" },
      people: { type: "integer", minimum: 1, maximum: 12 },
      notes: { type: "array", items: { type: "string", pattern: "^[a-z]{1,8}$" }, maxItems: 2 },
    },
    required: ["when", "people"],
  },
};
const ping = { type: "function", name: "ping" }; // no parameters: any object
const SETS = [[weather], [weather, book], [book, ping, weather]];

function validators(tools) {
  const v = {};
  for (const t of tools) v[t.name] = ajv.compile(t.parameters ?? { type: "object" });
  return v;
}

function checkCalls(it, tools, where) {
  const v = validators(tools);
  assert.equal(it.status, "requires_action", where);
  const calls = it.steps.filter((s) => s.type === "function_call");
  assert.ok(calls.length >= 1, `${where}: ${JSON.stringify(it.steps)}`);
  assert.ok(it.steps.every((s) => ["function_call", "thought", "user_input"].includes(s.type)), `${where}: only calls with any`);
  const ids = new Set();
  for (const c of calls) {
    assert.match(c.id, /^[a-z0-9]{8,}$/, where);
    assert.ok(!ids.has(c.id), `${where}: duplicate id`);
    ids.add(c.id);
    assert.ok(v[c.name], `${where}: undeclared ${c.name}`);
    assert.ok(v[c.name](c.arguments), `${where}: ${c.name} ${JSON.stringify(c.arguments)}: ${JSON.stringify(v[c.name].errors)}`);
  }
  return calls;
}

// the prompts the server rendered for `model` whose text includes `marker`
// (castor serve --log-prompts: one "castor prompt: {JSON}" line each), in order
const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
function prompts(model, marker) {
  return readFileSync(process.env.CASTOR_SERVER_LOG, "utf8").split("\n")
    .filter((l) => l.startsWith("castor prompt: "))
    .map((l) => JSON.parse(l.slice("castor prompt: ".length)))
    .filter((p) => p.model === model && p.text.includes(marker))
    .map((p) => p.text);
}

async function collect(stream) {
  const evs = [];
  for await (const e of stream) evs.push(e);
  return evs;
}

// a streamed tool_choice any create: function_call steps as step.start
// (empty arguments) / arguments_delta fragments / step.stop, indexes in
// order, the stream ending with requires_action; the stored calls are valid
// and the fragments of each concatenate to its arguments
async function streamedCalls(model, tools, seed, where) {
  const evs = await collect(await ai.interactions.create({
    model, input: "Book for two", tools, stream: true,
    generation_config: { tool_choice: "any", temperature: 1, seed, max_output_tokens: 160 },
  }));
  const id = evs[0].interaction.id;
  const starts = evs.filter((e) => e.event_type === "step.start");
  assert.ok(starts.length >= 1, where);
  const args = {};
  let last = -1;
  for (const e of evs) {
    if (e.event_type === "step.start") {
      assert.equal(e.index, last + 1, where);
      last = e.index;
      assert.equal(e.step.type, "function_call", where);
      assert.match(e.step.id, /^[a-z0-9]{8,}$/, where);
      assert.deepEqual(e.step.arguments, {}, where);
      args[e.index] = "";
    } else if (e.event_type === "step.delta") {
      assert.equal(e.delta.type, "arguments_delta", where);
      args[e.index] += e.delta.arguments;
    }
  }
  const done = evs.find((e) => e.event_type === "interaction.completed");
  assert.equal(done.interaction.status, "requires_action", where);
  assert.equal(evs.at(-1).event_type, "interaction.completed", where);
  const got = await ai.interactions.get(id);
  const calls = checkCalls(got, tools, where);
  assert.equal(calls.length, starts.length, where);
  for (const [i, c] of calls.entries()) {
    assert.deepEqual(JSON.parse(args[i]), c.arguments, where);
    assert.equal(starts[i].step.id, c.id, where);
    assert.equal(starts[i].step.name, c.name, where);
  }
  return { id, calls };
}

describe("function calling", () => {
  test(`tool_choice any on qwen3: ${SETS.length} tool sets x ${SEEDS} seeds at temperature 1, every call valid`, async () => {
    const jobs = [];
    for (const [k, tools] of SETS.entries())
      for (let seed = 1; seed <= SEEDS; seed++)
        jobs.push(async () => {
          const it = await ai.interactions.create({
            model: "qwen3-tiny", input: "What should I do tonight?", tools,
            generation_config: { tool_choice: "any", temperature: 1, seed: seed * 10 + k, max_output_tokens: 160 },
          });
          checkCalls(it, tools, `set ${k} seed ${seed}`);
          assert.ok(it.usage.total_output_tokens <= 160);
        });
    for (let i = 0; i < jobs.length; i += 4) await Promise.all(jobs.slice(i, i + 4).map((f) => f()));
  });

  test("tool_choice any on llama3 (fallback tool prompt) and allowed_tools restrict the calls", async () => {
    for (let seed = 1; seed <= Math.max(2, SEEDS / 2); seed++) {
      const it = await ai.interactions.create({
        model: "llama3-tiny", input: "Plan my evening", tools: SETS[2],
        generation_config: { tool_choice: { allowed_tools: { mode: "any", tools: ["book_table"] } }, temperature: 1, seed, max_output_tokens: 160 },
      });
      for (const c of checkCalls(it, SETS[2], `llama3 seed ${seed}`)) assert.equal(c.name, "book_table");
    }
  });

  test("Llama 3.1-style template (llama31-tiny): its tool list in the prompt, tool_choice any yields {name, parameters} calls", async () => {
    for (const [k, tools] of SETS.entries())
      for (let seed = 1; seed <= Math.max(2, SEEDS / 2); seed++) {
        const input = `Plan my evening (llama31 set ${k} seed ${seed})`;
        const it = await ai.interactions.create({
          model: "llama31-tiny", input, tools,
          generation_config: { tool_choice: "any", temperature: 1, seed, max_output_tokens: 160 },
        });
        assert.equal(checkCalls(it, tools, `llama31 set ${k} seed ${seed}`).length, 1, "one call per Llama 3 turn");
        const ps = prompts("llama31-tiny", input);
        assert.equal(ps.length, 1);
        // the template's form: under "Environment: ipython", one JSON line per declared function, no fallback prompt
        const m = ps[0].match(/<\|start_header_id\|>system<\|end_header_id\|>\n\nEnvironment: ipython\n\n[^\n]*\n\n((?:[^\n]+\n)+)\n<\|eot_id\|>/);
        assert.ok(m, ps[0]);
        assert.ok(!ps[0].includes("<tools>") && !ps[0].includes("<tool_call>"), ps[0]);
        const want = tools.map(({ type, ...fn }) => fn);
        assert.deepEqual(m[1].trimEnd().split("\n").map((l) => JSON.parse(l)), want);
      }
  });

  test("Llama 3.1-style template: call -> result -> answer renders the call as {name, parameters} and the result as an ipython turn", async () => {
    const tools = [weather];
    const input = "Weather in Oslo? (llama31 round trip)";
    const first = await ai.interactions.create({
      model: "llama31-tiny", input, tools, generation_config: { tool_choice: "any", temperature: 1, seed: 3, max_output_tokens: 120 },
    });
    const [call] = checkCalls(first, tools, "llama31 round trip");
    const result = { type: "function_result", call_id: call.id, name: call.name, result: { temperature: 21, sky: "clear" } };
    const cfg = { temperature: 0, max_output_tokens: 12 };
    const chained = await ai.interactions.create({
      model: "llama31-tiny", previous_interaction_id: first.id, input: [result], tools, generation_config: cfg,
    });
    const stateless = await ai.interactions.create({
      model: "llama31-tiny", tools, generation_config: cfg, store: false,
      input: [{ type: "user_input", content: [{ type: "text", text: input }] }, ...first.steps, result],
    });
    for (const it of [chained, stateless]) assert.ok(["completed", "incomplete", "requires_action"].includes(it.status), it.status);
    assert.deepEqual(stateless.steps, chained.steps);
    const ps = prompts("llama31-tiny", input);
    assert.equal(ps.length, 3);
    assert.equal(ps[2], ps[1], "stored chain and stateless history render the same prompt");
    const turns = (res) => new RegExp("<\\|start_header_id\\|>user<\\|end_header_id\\|>\\n\\n" + esc(input) +
      "<\\|eot_id\\|><\\|start_header_id\\|>assistant<\\|end_header_id\\|>\\n\\n\\{\"name\": \"get_weather\", \"parameters\": (.*)\\}" +
      "<\\|eot_id\\|><\\|start_header_id\\|>ipython<\\|end_header_id\\|>\\n\\n" + res +
      "<\\|eot_id\\|><\\|start_header_id\\|>assistant<\\|end_header_id\\|>\\n\\n$", "s");
    const m = ps[1].match(turns("(.*)"));
    assert.ok(m, ps[1]);
    assert.deepEqual(JSON.parse(m[1]), call.arguments);
    assert.deepEqual(JSON.parse(m[2]), result.result);
    // a failed call (is_error): the result reaches the model as {"error": ...}
    await ai.interactions.create({
      model: "llama31-tiny", previous_interaction_id: first.id, tools, generation_config: cfg,
      input: [{ ...result, result: "no weather station in Oslo", is_error: true }],
    });
    const last = prompts("llama31-tiny", input).at(-1);
    assert.match(last, turns(esc(JSON.stringify({ error: "no weather station in Oslo" }))));
  });

  test("Llama 3.1-style template: a streamed call (step.start / arguments_delta / step.stop, requires_action)", async () => {
    for (let seed = 1; seed <= 2; seed++) await streamedCalls("llama31-tiny", SETS[1], seed, `llama31 streamed seed ${seed}`);
  });

  test("tool_choice none never yields a call; auto answers text or calls", async () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      for (const model of ["qwen3-tiny", "llama3-tiny"]) {
        const it = await ai.interactions.create({
          model, input: "Weather?", tools: SETS[1],
          generation_config: { tool_choice: "none", temperature: 1, seed, max_output_tokens: 24 },
        });
        assert.ok(["completed", "incomplete"].includes(it.status), it.status);
        assert.ok(!it.steps.some((s) => s.type === "function_call"));
        assert.ok(!it.output_text.includes("<tool_call>"), it.output_text);
        const a = await ai.interactions.create({
          model, input: "Weather?", tools: SETS[1], generation_config: { temperature: 1, seed, max_output_tokens: 24 },
        });
        if (a.status === "requires_action") checkCalls(a, SETS[1], `auto ${model} seed ${seed}`);
        else assert.ok(["completed", "incomplete"].includes(a.status), a.status);
      }
    }
  });

  test("call -> result -> answer: stored and stateless render the same prompt", async () => {
    const tools = [weather];
    const input = "Weather in Paris?";
    const first = await ai.interactions.create({
      model: "qwen3-tiny", input, tools, generation_config: { tool_choice: "any", temperature: 1, seed: 7, max_output_tokens: 120 },
    });
    const [call] = checkCalls(first, tools, "round trip");
    const got = await ai.interactions.get(first.id);
    assert.deepEqual(got.steps.slice(1), first.steps, "stored steps equal the create's");
    const result = { type: "function_result", call_id: call.id, name: call.name, result: { temperature: 21, sky: "clear" } };
    const cfg = { temperature: 0, max_output_tokens: 12 };
    const chained = await ai.interactions.create({
      model: "qwen3-tiny", previous_interaction_id: first.id, input: [result], tools, generation_config: cfg,
    });
    const stateless = await ai.interactions.create({
      model: "qwen3-tiny", tools, generation_config: cfg, store: false,
      input: [{ type: "user_input", content: [{ type: "text", text: input }] }, ...first.steps, result],
    });
    for (const it of [chained, stateless]) {
      assert.ok(["completed", "incomplete", "requires_action"].includes(it.status), it.status);
    }
    assert.equal(stateless.usage.total_input_tokens, chained.usage.total_input_tokens);
    assert.deepEqual(stateless.steps, chained.steps);
    // a result string and a content list are accepted too
    for (const r of ["sunny", [{ type: "text", text: "sunny" }]]) {
      const it = await ai.interactions.create({
        model: "qwen3-tiny", previous_interaction_id: first.id, tools, generation_config: cfg,
        input: [{ ...result, result: r }],
      });
      assert.ok(it.usage.total_input_tokens > 0);
    }
  });

  test("streamed: function_call step start / arguments_delta / stop, then requires_action; streamed continuation", async () => {
    const tools = [weather, book];
    const { id, calls } = await streamedCalls("qwen3-tiny", tools, 11, "streamed");
    const cont = await collect(await ai.interactions.create({
      model: "qwen3-tiny", previous_interaction_id: id, tools, stream: true, generation_config: { max_output_tokens: 8, seed: 1 },
      input: calls.map((c) => ({ type: "function_result", call_id: c.id, name: c.name, result: "done" })),
    }));
    const end = cont.find((e) => e.event_type === "interaction.completed");
    assert.ok(["completed", "incomplete", "requires_action"].includes(end.interaction.status));
  });

  test("thinking: the thought step closes (signature) before the calls, and goes back as history", async () => {
    const tools = [weather];
    const it = await ai.interactions.create({
      model: "qwen3-tiny", input: "Weather?", tools,
      generation_config: { tool_choice: "any", thinking_level: "low", temperature: 1, seed: 4, max_output_tokens: 120 },
    });
    checkCalls(it, tools, "thinking");
    assert.equal(it.steps[0].type, "thought");
    assert.ok(it.steps[0].signature.length > 0);
    const call = it.steps.find((s) => s.type === "function_call");
    const next = await ai.interactions.create({
      model: "qwen3-tiny", tools, store: false, generation_config: { max_output_tokens: 8 },
      input: [{ type: "user_input", content: "Weather?" }, ...it.steps, { type: "function_result", call_id: call.id, result: "sunny" }],
    });
    assert.ok(next.usage.total_input_tokens > it.usage.total_input_tokens);
  });

  test("400s: unknown call_id, unsupported tool types and keywords, budgets below a call", async () => {
    const first = await ai.interactions.create({
      model: "qwen3-tiny", input: "x", tools: [weather], generation_config: { tool_choice: "any", seed: 1, max_output_tokens: 120 },
    });
    const bad = async (body, re) => {
      const r = await curlJson("POST", "/v1beta/interactions", { model: "qwen3-tiny", input: "x", ...body });
      assert.equal(r.status, 400, r.body);
      assert.match(r.json.error.message, re);
    };
    await bad({ previous_interaction_id: first.id, input: [{ type: "function_result", call_id: "nope", result: "r" }] },
      /call_id 'nope' matches no pending function_call/);
    await bad({ input: [{ type: "user_input", content: "q" }, { type: "function_result", call_id: "c9", result: "r" }] },
      /call_id 'c9' matches no pending function_call/);
    await bad({ tools: [{ type: "google_search" }] }, /tools\[0\]\.type: 'google_search' tools are not supported/);
    await bad({ tools: [{ type: "code_execution" }] }, /'code_execution'/);
    await bad({ tools: [weather, weather] }, /declared twice/);
    await bad({ tools: [{ ...weather, parameters: { type: "object", properties: { a: { not: {} } } } }] },
      /tools\[0\]\.parameters\.properties\.a\.not: unsupported JSON Schema keyword 'not'/);
    await bad({ tools: [weather], generation_config: { tool_choice: { allowed_tools: { tools: ["nope"] } } } }, /'nope' is not one of the declared tools/);
    await bad({ tools: [weather], generation_config: { tool_choice: "any", max_output_tokens: 5 } }, /below the shortest function call/);
  });
});

// the dialects' output mapping of the same calls (step 7 of the plan)
describe("function calling through the dialects", () => {
  const fn = { name: weather.name, description: weather.description, parameters: weather.parameters };
  const valid = ajv.compile(weather.parameters);

  test("OpenAI chat completions: tool_calls, finish_reason tool_calls, streamed delta.tool_calls, tool message round trip", async () => {
    const req = {
      model: "qwen3-tiny", messages: [{ role: "user", content: "Weather in Paris?" }],
      tools: [{ type: "function", function: fn }], tool_choice: "required", temperature: 1, seed: 5, max_tokens: 160,
    };
    const r = await oa.chat.completions.create(req);
    const ch = r.choices[0];
    assert.equal(ch.finish_reason, "tool_calls");
    assert.ok(ch.message.tool_calls.length >= 1);
    for (const tc of ch.message.tool_calls) {
      assert.equal(tc.type, "function");
      assert.equal(tc.function.name, "get_weather");
      assert.ok(valid(JSON.parse(tc.function.arguments)), tc.function.arguments);
    }
    // streamed: the fragments of each call's arguments concatenate to its JSON
    const calls = [];
    let finish = null;
    for await (const c of await oa.chat.completions.create({ ...req, stream: true })) {
      for (const d of c.choices[0]?.delta?.tool_calls ?? []) {
        calls[d.index] ??= { id: "", name: "", args: "" };
        if (d.id) calls[d.index].id = d.id;
        if (d.function?.name) calls[d.index].name = d.function.name;
        calls[d.index].args += d.function?.arguments ?? "";
      }
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(finish, "tool_calls");
    assert.ok(calls.length >= 1);
    for (const c of calls) {
      assert.match(c.id, /^[a-z0-9]{8,}$/);
      assert.ok(valid(JSON.parse(c.args)), c.args);
    }
    const tc = ch.message.tool_calls[0];
    const a = await oa.chat.completions.create({
      model: "qwen3-tiny", tools: [{ type: "function", function: fn }], temperature: 0, max_tokens: 8,
      messages: [...req.messages, { role: "assistant", content: null, tool_calls: [tc] }, { role: "tool", tool_call_id: tc.id, content: "21C" }],
    });
    assert.ok(["stop", "length", "tool_calls"].includes(a.choices[0].finish_reason));
  });

  test("Gemini generateContent: functionCall parts (unary and streamed), functionResponse round trip", async () => {
    const config = {
      tools: [{ functionDeclarations: [fn] }], toolConfig: { functionCallingConfig: { mode: "ANY" } },
      temperature: 1, seed: 9, maxOutputTokens: 160,
    };
    const r = await ai.models.generateContent({ model: "qwen3-tiny", contents: "Weather in Paris?", config });
    const calls = r.functionCalls;
    assert.ok(calls?.length >= 1, JSON.stringify(r.candidates));
    for (const c of calls) {
      assert.equal(c.name, "get_weather");
      assert.ok(valid(c.args), JSON.stringify(c.args));
    }
    const streamed = [];
    for await (const c of await ai.models.generateContentStream({ model: "qwen3-tiny", contents: "Weather in Paris?", config }))
      streamed.push(...(c.functionCalls ?? []));
    assert.deepEqual(streamed.map((c) => [c.name, c.args]), calls.map((c) => [c.name, c.args]), "same seed: same calls");
    const a = await ai.models.generateContent({
      model: "qwen3-tiny", config: { tools: config.tools, maxOutputTokens: 8, temperature: 0 },
      contents: [
        { role: "user", parts: [{ text: "Weather in Paris?" }] },
        { role: "model", parts: [{ functionCall: calls[0] }] },
        { role: "user", parts: [{ functionResponse: { id: calls[0].id, name: calls[0].name, response: { temperature_c: 21 } } }] },
      ],
    });
    assert.ok(a.candidates?.length === 1);
  });
});
