// sdk.test.mjs: the seed guide's examples 1, 3, 4, 6, 7, 8, 9 through the
// official @google/genai SDK (default API version v1, and v1beta), on both
// test models; get/delete/cancel/background, replay with last_event_id,
// SDK-visible errors, a client disconnect mid-stream, 8 concurrent streams.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { client, MODELS, KEY2, URL_, sleep } from "./common.mjs";

const ai = client();

async function collect(stream) {
  const events = [];
  for await (const ev of stream) events.push(ev);
  return events;
}

function checkStreamOrder(events) {
  const types = events.map((e) => e.event_type);
  assert.equal(types[0], "interaction.created");
  assert.equal(types[1], "interaction.status_update");
  assert.equal(types[2], "step.start");
  assert.equal(types.at(-2), "step.stop");
  assert.equal(types.at(-1), "interaction.completed");
  for (const t of types.slice(3, -2)) assert.equal(t, "step.delta");
  const ids = events.map((e) => Number(e.event_id));
  ids.forEach((id, i) => assert.equal(id, i + 1, "event ids are 1..n"));
  const done = events.at(-1).interaction;
  assert.ok(["completed", "incomplete"].includes(done.status));
  assert.ok(done.usage.total_output_tokens >= 1);
  return events.filter((e) => e.event_type === "step.delta").map((e) => e.delta.text).join("");
}

for (const [label, model] of MODELS) {
  describe(`SDK examples on ${label}`, () => {
    test("1: simple text (SDK default /v1)", async () => {
      const interaction = await ai.interactions.create({ model, input: "How does AI work?" });
      assert.equal(interaction.model, model, "the model name is echoed as sent");
      assert.equal(interaction.object, "interaction");
      assert.match(interaction.id, /^v1_[A-Za-z0-9_-]{22,}$/);
      assert.ok(["completed", "incomplete"].includes(interaction.status));
      assert.ok(interaction.output_text && interaction.output_text.length > 0);
      assert.equal(interaction.steps.at(-1).type, "model_output");
      assert.ok(interaction.usage.total_input_tokens > 0);
      assert.equal(interaction.usage.total_tokens, interaction.usage.total_input_tokens + interaction.usage.total_output_tokens);
    });

    test("1: simple text with apiVersion v1beta", async () => {
      const interaction = await client(undefined, "v1beta").interactions.create({ model, input: "How does AI work?" });
      assert.ok(interaction.output_text.length > 0);
    });

    test("3: system_instruction is applied, stored and echoed on get", async () => {
      const interaction = await ai.interactions.create({
        model,
        input: "Hello there",
        system_instruction: "You are a cat. Your name is Neko.",
      });
      assert.ok(interaction.output_text.length > 0);
      const got = await ai.interactions.get(interaction.id);
      assert.equal(got.system_instruction, "You are a cat. Your name is Neko.");
      assert.equal(got.steps[0].type, "user_input");
      assert.deepEqual(got.steps[0].content, [{ type: "text", text: "Hello there" }]);
      assert.equal(got.output_text, interaction.output_text);
      // the system prompt is part of the evaluated prompt
      const plain = await ai.interactions.create({ model, input: "Hello there", store: false });
      assert.ok(interaction.usage.total_input_tokens > plain.usage.total_input_tokens);
    });

    test("4: temperature (and seed determinism, stop sequences, max_output_tokens)", async () => {
      const i1 = await ai.interactions.create({ model, input: "Explain how AI works", generation_config: { temperature: 1.0 } });
      assert.ok(i1.output_text.length > 0);
      const cfg = { temperature: 1.0, seed: 42, max_output_tokens: 12 };
      const a = await ai.interactions.create({ model, input: "Explain how AI works", generation_config: cfg });
      const b = await ai.interactions.create({ model, input: "Explain how AI works", generation_config: cfg });
      assert.equal(a.output_text, b.output_text, "same seed, same output");
      assert.equal(a.status, "incomplete");
      assert.equal(a.usage.total_output_tokens, 12);
      assert.deepEqual(a.generation_config, cfg);
      const g = await ai.interactions.create({ model, input: "Explain how AI works", generation_config: { temperature: 0, max_output_tokens: 20 } });
      const text = g.output_text;
      // stop at a piece of the greedy answer: the output ends before it
      const cut = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 2);
      if (cut.trim().length === 2) {
        const s = await ai.interactions.create({ model, input: "Explain how AI works", generation_config: { temperature: 0, max_output_tokens: 20, stop_sequences: [cut] } });
        assert.equal(s.status, "completed");
        assert.ok(!(s.output_text ?? "").includes(cut));
        assert.ok(text.startsWith(s.output_text ?? ""));
      }
    });

    test("6: streaming: event order, ids, deltas equal the stored text", async () => {
      const stream = await ai.interactions.create({ model, input: "Explain how AI works", stream: true });
      const events = await collect(stream);
      const text = checkStreamOrder(events);
      const id = events[0].interaction.id;
      assert.equal(events[0].interaction.model, model);
      const got = await ai.interactions.get(id);
      assert.equal(got.output_text ?? "", text);
    });

    test("7: multi-turn with previous_interaction_id reuses the cached prefix", async () => {
      const interaction1 = await ai.interactions.create({ model, input: "I have 2 dogs in my house." });
      assert.ok(interaction1.output_text.length > 0);
      const interaction2 = await ai.interactions.create({
        model,
        input: "How many paws are in my house?",
        previous_interaction_id: interaction1.id,
      });
      assert.ok(interaction2.output_text.length > 0);
      assert.equal(interaction2.previous_interaction_id, interaction1.id);
      assert.ok(interaction2.usage.total_input_tokens > interaction1.usage.total_input_tokens);
      assert.ok(interaction2.usage.total_cached_tokens > 0, "the follow-up evaluates only its new tokens");
      const got1 = await ai.interactions.get(interaction1.id);
      assert.deepEqual(got1.steps.map((s) => s.type), ["user_input", "model_output"]);
      const got2 = await ai.interactions.get(interaction2.id);
      assert.deepEqual(got2.steps.map((s) => s.type), ["user_input", "model_output"]);
      assert.equal(got2.steps[0].content[0].text, "How many paws are in my house?");
    });

    test("8: streaming multi-turn", async () => {
      const interaction1 = await ai.interactions.create({ model, input: "I have 2 dogs in my house." });
      const stream = await ai.interactions.create({
        model,
        input: "How many paws are in my house?",
        previous_interaction_id: interaction1.id,
        stream: true,
      });
      const events = await collect(stream);
      const text = checkStreamOrder(events);
      const got = await ai.interactions.get(events[0].interaction.id);
      assert.equal(got.previous_interaction_id, interaction1.id);
      assert.equal(got.output_text ?? "", text);
    });

    test("9: stateless history of steps (store:false), same prompt as the stateful chain", async () => {
      const history = [{ type: "user_input", content: [{ type: "text", text: "I have 2 dogs in my house." }] }];
      const interaction1 = await ai.interactions.create({ model, store: false, input: history });
      assert.ok(interaction1.steps.at(-1).content[0].text.length > 0);
      await assert.rejects(ai.interactions.get(interaction1.id), (e) => e.status === 404);
      history.push(...interaction1.steps);
      // Python's model_dump() adds nulls for unset optional fields
      history.push({ type: "user_input", content: [{ type: "text", text: "How many paws are in my house?", annotations: null }] });
      const interaction2 = await ai.interactions.create({ model, store: false, input: history });
      assert.ok(interaction2.steps.at(-1).content[0].text.length > 0);
      // the same conversation through a stored chain renders the same prompt
      const s1 = await ai.interactions.create({ model, input: history.slice(0, 1), generation_config: { seed: 1 } });
      const hist2 = [history[0], ...s1.steps, history.at(-1)];
      const chain = await ai.interactions.create({ model, input: "How many paws are in my house?", previous_interaction_id: s1.id, generation_config: { seed: 7, max_output_tokens: 8 } });
      const flat = await ai.interactions.create({ model, store: false, input: hist2, generation_config: { seed: 7, max_output_tokens: 8 } });
      assert.equal(chain.usage.total_input_tokens, flat.usage.total_input_tokens);
      assert.equal(chain.output_text, flat.output_text);
    });
  });
}

describe("SDK: get / delete / cancel / background / replay", () => {
  const model = "tiny-qwen";

  test("get with include_input; delete; get after delete is 404", async () => {
    const i = await ai.interactions.create({ model: "gemini-3.5-flash", input: [{ type: "text", text: "hi" }] });
    const got = await ai.interactions.get(i.id, { include_input: true });
    assert.deepEqual(got.input, [{ type: "text", text: "hi" }]);
    const plain = await ai.interactions.get(i.id);
    assert.equal(plain.input, undefined);
    await ai.interactions.delete(i.id);
    await assert.rejects(ai.interactions.get(i.id), (e) => e.status === 404);
    await assert.rejects(ai.interactions.delete(i.id), (e) => e.status === 404);
    await assert.rejects(
      ai.interactions.create({ model: "gemini-3.5-flash", input: "x", previous_interaction_id: i.id }),
      (e) => e.status === 404,
    );
  });

  test("another key's interaction is a 404", async () => {
    const i = await ai.interactions.create({ model: "gemini-3.5-flash", input: "hi" });
    const other = client(KEY2);
    await assert.rejects(other.interactions.get(i.id), (e) => e.status === 404);
    await assert.rejects(other.interactions.delete(i.id), (e) => e.status === 404);
    await assert.rejects(other.interactions.create({ model: "gemini-3.5-flash", input: "x", previous_interaction_id: i.id }), (e) => e.status === 404);
  });

  test("background: immediate in_progress, poll to a terminal status", async () => {
    const i = await ai.interactions.create({ model, input: "Tell me a long story", background: true, generation_config: { max_output_tokens: 40 } });
    assert.ok(["queued", "in_progress"].includes(i.status));
    assert.deepEqual(i.steps, []);
    let got;
    for (let k = 0; k < 600; k++) {
      got = await ai.interactions.get(i.id);
      if (!["queued", "in_progress"].includes(got.status)) break;
      await sleep(50);
    }
    assert.equal(got.status, "incomplete");
    assert.equal(got.usage.total_output_tokens, 40);
    await assert.rejects(ai.interactions.cancel(i.id), (e) => e.status === 400);
  });

  test("cancel a running background interaction", async () => {
    const i = await ai.interactions.create({ model, input: "Tell me a long story", background: true, generation_config: { max_output_tokens: 900 } });
    const c = await ai.interactions.cancel(i.id);
    assert.equal(c.status, "cancelled");
    const got = await ai.interactions.get(i.id);
    assert.equal(got.status, "cancelled");
    assert.ok(got.usage.total_output_tokens < 900);
  });

  test("replay with stream=true and last_event_id reproduces the events", async () => {
    const events = await collect(await ai.interactions.create({ model, input: "Count to ten", stream: true, generation_config: { max_output_tokens: 10 } }));
    const id = events[0].interaction.id;
    const replay = await collect(await ai.interactions.get(id, { stream: true }));
    assert.deepEqual(replay, events);
    const tail = await collect(await ai.interactions.get(id, { stream: true, last_event_id: events[3].event_id }));
    assert.deepEqual(tail, events.slice(4));
    await assert.rejects(ai.interactions.get(id, { stream: true, last_event_id: "9999" }), (e) => e.status === 400);
  });

  test("a client disconnect mid-stream cancels the generation", async () => {
    const controller = new AbortController();
    const stream = await ai.interactions.create(
      { model, input: "Tell me a long story", stream: true, generation_config: { max_output_tokens: 900 } },
      { signal: controller.signal },
    );
    let id;
    let n = 0;
    try {
      for await (const ev of stream) {
        if (ev.event_type === "interaction.created") id = ev.interaction.id;
        if (ev.event_type === "step.delta" && ++n === 3) controller.abort();
      }
    } catch {
      /* aborted */
    }
    assert.ok(id);
    let got;
    for (let k = 0; k < 200; k++) {
      got = await ai.interactions.get(id);
      if (got.status !== "in_progress") break;
      await sleep(50);
    }
    assert.equal(got.status, "cancelled");
    assert.ok(got.usage.total_output_tokens < 900);
  });

  test("8 concurrent streams all complete", async () => {
    const runs = Array.from({ length: 8 }, (_, k) =>
      (async () => {
        const m = k % 2 ? "tiny-qwen" : "gemini-3.5-flash";
        const events = await collect(await ai.interactions.create({ model: m, input: `Story number ${k}`, stream: true, generation_config: { max_output_tokens: 24 } }));
        const text = checkStreamOrder(events);
        const got = await ai.interactions.get(events[0].interaction.id);
        assert.equal(got.output_text ?? "", text);
        return events.at(-1).interaction.status;
      })(),
    );
    const statuses = await Promise.all(runs);
    assert.equal(statuses.length, 8);
  });
});

describe("SDK: errors", () => {
  test("no key -> 401, wrong key -> 403", async () => {
    const res = await fetch(`${URL_}/v1/interactions`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"model":"gemini-3.5-flash","input":"x"}' });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error.code, "unauthenticated");
    await assert.rejects(client("wrong-key").interactions.create({ model: "gemini-3.5-flash", input: "x" }), (e) => e.status === 403);
  });
  test("unknown model -> 404, unknown previous id -> 404", async () => {
    await assert.rejects(ai.interactions.create({ model: "no-such-model", input: "x" }), (e) => e.status === 404 && /no-such-model/.test(e.message));
    await assert.rejects(ai.interactions.create({ model: "gemini-3.5-flash", input: "x", previous_interaction_id: "v1_doesnotexist0000000000" }), (e) => e.status === 404);
  });
  test("unknown field, wrong type, out of range -> 400 naming the path", async () => {
    await assert.rejects(ai.interactions.create({ model: "gemini-3.5-flash", input: "x", generationConfig: {} }), (e) => e.status === 400 && /generationConfig/.test(e.message));
    await assert.rejects(ai.interactions.create({ model: "gemini-3.5-flash", input: "x", generation_config: { temperature: "hot" } }), (e) => e.status === 400 && /generation_config\.temperature/.test(e.message));
    await assert.rejects(ai.interactions.create({ model: "gemini-3.5-flash", input: "x", generation_config: { top_p: 1.5 } }), (e) => e.status === 400 && /top_p/.test(e.message));
    await assert.rejects(ai.interactions.create({ model: "gemini-3.5-flash", input: "x", generation_config: { max_tokens: 5 } }), (e) => e.status === 400 && /max_tokens/.test(e.message));
    await assert.rejects(ai.interactions.create({ model: "gemini-3.5-flash", input: [{ type: "user_input", content: [{ type: "text", text: 5 }] }] }), (e) => e.status === 400 && /input\[0\]\.content\[0\]\.text/.test(e.message));
    await assert.rejects(ai.interactions.create({ model: "gemini-3.5-flash", input: "x", tools: [{ type: "google_search" }] }), (e) => e.status === 400 && /tools\[0\]\.type/.test(e.message));
  });
  test("prompt over the context -> 400 with the token counts", async () => {
    const long = "word ".repeat(3000);
    await assert.rejects(ai.interactions.create({ model: "gemini-3.5-flash", input: long }), (e) => e.status === 400 && /\d+ tokens/.test(e.message) && /1024/.test(e.message));
  });
});
