// structured.test.mjs: structured output through @google/genai 3.1.0 on
// random-weight models with the real Qwen3 and Llama 3 vocabularies. For a
// corpus of schemas (nested objects, arrays, enums, anyOf, recursive $ref,
// formats, patterns, integer ranges) x seeds at temperature 1, every answer
// is JSON that ajv validates against its schema, and the interaction is
// completed within max_output_tokens; the shortest answer is a 400 below it;
// unsupported keywords are 400s naming keyword and path. (structured.sh)
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { client, curlJson, parseSse, curl, URL_ } from "./common.mjs";

const ai = client("unused");
const SEEDS = Number(process.env.CST_STRUCTURED_SEEDS || 3);
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);

const str = { type: "string" };
const int = { type: "integer" };
const obj = (properties, required = Object.keys(properties), extra = {}) => ({ type: "object", properties, required, ...extra });

const HAND = [
  obj({ name: str, age: { type: "integer", minimum: 0, maximum: 150 } }),
  obj({ title: str, tags: { type: "array", items: str, maxItems: 3 } }),
  obj({ ok: { type: "boolean" }, note: { type: ["string", "null"] } }, ["ok"]),
  { type: "array", items: { type: "integer", minimum: -5, maximum: 5 }, minItems: 2, maxItems: 4 },
  { enum: ["red", "green", "blue"] },
  { const: { version: 2, kind: "fixed" } },
  { anyOf: [obj({ cat: str }), obj({ dog: int }), { type: "null" }] },
  { oneOf: [str, { type: "array", items: { type: "number" } }] },
  { $defs: { node: obj({ value: int, children: { type: "array", items: { $ref: "#/$defs/node" }, maxItems: 2 } }, ["value"]) }, $ref: "#/$defs/node" },
  { definitions: { list: { anyOf: [{ type: "null" }, obj({ head: str, tail: { $ref: "#/definitions/list" } })] } }, $ref: "#/definitions/list" },
  obj({ day: { type: "string", format: "date" }, at: { type: "string", format: "date-time" } }),
  obj({ id: { type: "string", format: "uuid" }, mail: { type: "string", format: "email" } }),
  obj({ t: { type: "string", format: "time" } }),
  obj({ code: { type: "string", pattern: "^[A-Z]{3}-[0-9]{2,4}$" } }),
  obj({ phone: { type: "string", pattern: "^\\+?[0-9]{7,12}$" }, hex: { type: "string", pattern: "^#[0-9a-fA-F]{6}$" } }),
  obj({ word: { type: "string", pattern: "cat|dog" } }),
  { allOf: [obj({ a: int }), obj({ b: { type: "boolean" } })] },
  obj({ x: int, y: int, z: int }, ["x", "y", "z"], { propertyOrdering: ["z", "y", "x"] }),
  { type: "object", additionalProperties: { type: "number" }, maxProperties: 3 },
  { type: "array", prefixItems: [str, int, { type: "boolean" }], items: false, minItems: 3 },
  obj({ price: { type: "number", minimum: 0.5, maximum: 99.5 }, qty: { type: "integer", exclusiveMinimum: 0, exclusiveMaximum: 10 } }),
  obj({ big: { type: "integer", minimum: 1000000 }, neg: { type: "integer", maximum: -100 } }),
  obj({ nested: obj({ deeper: obj({ deepest: { enum: [1, 2, 3] } }) }) }),
  obj({ s: { type: "string", minLength: 2, maxLength: 9, description: "advisory" } }, []),
  obj({ maybe: { type: "string", nullable: true }, list: { type: "array", items: { type: "string", nullable: true }, uniqueItems: true } }),
  true,
  {},
  { type: "string" },
  { type: "number" },
  { type: ["integer", "boolean"] },
];

// generated: objects of random property types (seeded, the same every run)
function gen(seed) {
  let s = seed;
  const rnd = (n) => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8) % n;
  const leaf = () =>
    [
      () => str,
      () => int,
      () => ({ type: "number" }),
      () => ({ type: "boolean" }),
      () => ({ enum: ["a", "b", "c", 7, null].slice(0, 2 + rnd(3)) }),
      () => ({ type: "integer", minimum: rnd(50), maximum: 50 + rnd(500) }),
      () => ({ type: "string", format: ["date", "uuid", "email", "time", "date-time"][rnd(5)] }),
      () => ({ type: "string", pattern: ["^[a-z]+$", "^[0-9]{3}$", "x+y", "^(ab|cd)*$"][rnd(4)] }),
      () => ({ type: "array", items: str, maxItems: 1 + rnd(3) }),
    ][rnd(9)]();
  const node = (depth) => {
    const n = 1 + rnd(4);
    const props = {};
    for (let i = 0; i < n; i++) props[`p${i}`] = depth > 0 && rnd(3) === 0 ? node(depth - 1) : leaf();
    const req = Object.keys(props).filter(() => rnd(2) === 0);
    return obj(props, req);
  };
  return rnd(4) === 0 ? { type: "array", items: node(1), maxItems: 2 } : node(2);
}
const CORPUS = [...HAND, ...Array.from({ length: 24 }, (_, i) => gen(1000 + i))];

// §8: advisory keywords are accepted and not enforced: validate without them
const ADVISORY = ["minLength", "maxLength", "minProperties", "maxProperties", "uniqueItems", "contains", "minContains", "maxContains"];
function enforced(s) {
  if (Array.isArray(s)) return s.map(enforced);
  if (s === null || typeof s !== "object") return s;
  const o = {};
  for (const [k, v] of Object.entries(s)) if (!ADVISORY.includes(k)) o[k] = k === "enum" || k === "const" ? v : enforced(v);
  return o;
}

// the shortest answer in tokens, from the 400 a max_output_tokens of 1 gets
async function minTokens(model, schema) {
  const r = await curlJson("POST", "/v1beta/interactions", {
    model, input: "x",
    generation_config: { max_output_tokens: 1 },
    response_format: { type: "text", mime_type: "application/json", schema },
  });
  if (r.status === 200) return 1;
  assert.equal(r.status, 400, r.body);
  const m = /at least (\d+)/.exec(r.json.error.message);
  assert.ok(m, r.json.error.message);
  return Number(m[1]);
}

async function runCorpus(model, seeds) {
  let n = 0;
  const jobs = [];
  for (const [k, schema] of CORPUS.entries()) {
    const validate = ajv.compile(schema === true ? {} : enforced(schema));
    const need = await minTokens(model, schema);
    for (let seed = 1; seed <= seeds; seed++) {
      const max = need + 8 + ((seed * 13 + k) % 24); // tight and loose budgets
      jobs.push(async () => {
        const it = await ai.interactions.create({
          model, input: `Answer with JSON (case ${k}).`,
          generation_config: { temperature: 1, seed: seed * 100 + k, max_output_tokens: max },
          response_format: { type: "text", mime_type: "application/json", schema },
        });
        const where = `${model} schema ${k} ${JSON.stringify(schema)} seed ${seed} max ${max}`;
        assert.equal(it.status, "completed", where);
        const text = it.output_text;
        let v;
        assert.doesNotThrow(() => (v = JSON.parse(text)), `${where}: not JSON: ${text}`);
        assert.ok(validate(v), `${where}: ${JSON.stringify(validate.errors)}: ${text}`);
        assert.ok(it.usage.total_output_tokens <= max, where);
        n++;
      });
    }
  }
  // four at a time (the server's slots)
  for (let i = 0; i < jobs.length; i += 4) await Promise.all(jobs.slice(i, i + 4).map((f) => f()));
  return n;
}

describe("structured output", () => {
  test(`corpus of ${CORPUS.length} schemas x ${SEEDS} seeds on qwen3 (151,936-token vocabulary)`, async () => {
    assert.ok(CORPUS.length >= 50);
    assert.equal(await runCorpus("qwen3-tiny", SEEDS), CORPUS.length * SEEDS);
  });

  test(`corpus of ${CORPUS.length} schemas x 1 seed on llama3 (128,256-token vocabulary)`, async () => {
    assert.equal(await runCorpus("llama3-tiny", 1), CORPUS.length);
  });

  test("response_mime_type application/json: any JSON value; streamed too", async () => {
    const it = await ai.interactions.create({
      model: "qwen3-tiny", input: "JSON please", response_mime_type: "application/json",
      generation_config: { temperature: 1, max_output_tokens: 40 },
    });
    assert.equal(it.status, "completed");
    JSON.parse(it.output_text);
    const r = await curl(["-N", "-X", "POST", URL_ + "/v1beta/interactions", "-H", "Content-Type: application/json", "--data-binary", "@-"], {
      input: JSON.stringify({
        model: "llama3-tiny", input: "JSON please", stream: true,
        generation_config: { temperature: 1, max_output_tokens: 50 },
        response_format: [{ type: "text", mime_type: "application/json", schema: HAND[0] }],
      }),
    });
    const evs = parseSse(r.body);
    let text = "";
    for (const e of evs) if (e.event === "step.delta" && e.data.delta?.type === "text") text += e.data.delta.text;
    const done = evs.find((e) => e.event === "interaction.completed");
    assert.equal(done.data.interaction.status, "completed");
    assert.ok(ajv.validate(HAND[0], JSON.parse(text)), text);
  });

  test("a repeated schema is served from the compiled-grammar cache, same answers for the same seed", async () => {
    const req = {
      model: "qwen3-tiny", input: "x",
      generation_config: { temperature: 1, seed: 42, max_output_tokens: 60 },
      response_format: { type: "text", mime_type: "application/json", schema: HAND[8] },
    };
    const a = await ai.interactions.create(req);
    const b = await ai.interactions.create(req);
    assert.equal(a.output_text, b.output_text);
  });

  test("unsupported keywords and bad formats are 400s naming keyword and path", async () => {
    const cases = [
      [{ type: "object", properties: { a: { type: "string", not: { const: "x" } } } }, /response_format\.schema\.properties\.a\.not: unsupported JSON Schema keyword 'not'/],
      [{ type: "integer", multipleOf: 3 }, /response_format\.schema\.multipleOf: unsupported JSON Schema keyword 'multipleOf'/],
      [{ type: "object", patternProperties: { "^x": int } }, /patternProperties/],
      [{ if: { type: "string" }, then: str }, /'if'/],
      [{ type: "object", dependentRequired: { a: ["b"] } }, /dependentRequired/],
      [{ type: "object", unevaluatedProperties: false }, /unevaluatedProperties/],
      [{ type: "object", propertyNames: { pattern: "^a" } }, /propertyNames/],
      [{ type: "array", items: { $dynamicRef: "#x" } }, /response_format\.schema\.items\.\$dynamicRef/],
      [{ type: "string", format: "ipv4" }, /format 'ipv4' is not supported/],
      [{ type: "string", pattern: "(?<=a)b" }, /lookaround/],
      [{ oneOf: [str, { type: "string", format: "date" }] }, /oneOf\[1\]/],
      [{ type: "array", maxItems: 5000 }, /above the limit of 1000/],
      [{ $ref: "https://example.com/x.json" }, /only local references/],
    ];
    for (const [schema, re] of cases) {
      const r = await curlJson("POST", "/v1beta/interactions", {
        model: "qwen3-tiny", input: "x", response_format: { type: "text", mime_type: "application/json", schema },
      });
      assert.equal(r.status, 400, JSON.stringify(schema));
      assert.match(r.json.error.message, re);
    }
    const shapes = [
      [{ type: "text", mime_type: "text/plain", schema: str }, /needs mime_type application\/json/],
      [[{ type: "text" }, { type: "text" }], /at most one text entry/],
      [{ type: "audio" }, /'audio' output is not supported/],
      [{ type: "text", mime_type: "application/xml" }, /mime_type: 'application\/xml' is not supported/],
    ];
    for (const [rf, re] of shapes) {
      const r = await curlJson("POST", "/v1beta/interactions", { model: "qwen3-tiny", input: "x", response_format: rf });
      assert.equal(r.status, 400, JSON.stringify(rf));
      assert.match(r.json.error.message, re);
    }
    const small = await curlJson("POST", "/v1beta/interactions", {
      model: "qwen3-tiny", input: "x", generation_config: { max_output_tokens: 3 },
      response_format: { type: "text", mime_type: "application/json", schema: HAND[0] },
    });
    assert.equal(small.status, 400);
    assert.match(small.json.error.message, /max_output_tokens: 3 is below the shortest answer the schema allows \(\d+ tokens\)/);
  });
});
