#!/usr/bin/env node
// grammar_bench.mjs: decode speed with and without a JSON Schema, castor
// against llama-server (its GBNF grammar sampler, fed by `json_schema`), on
// the same GGUF, the same thread count, one sequence, in one run. A report,
// not a test. For each model and server, R streamed requests of up to N
// tokens at temperature 1 without a schema, then R with the "typical" schema
// (bench_grammar.c's: 7 properties, a nested object, a date, an email, an
// enum, an integer range, a pattern); decode tok/s is measured by the client
// from the first streamed token to the last, so both servers are timed the
// same way. The servers run one at a time.
// usage: node bench/grammar_bench.mjs --llama-server PATH [--castor build/castor]
//          [--threads 2] [--runs 3] [--tokens 128] MODEL.gguf [MODEL.gguf...]
import { basename } from "node:path";
import { benchArgs, start, stop, streamOnce } from "./servers.mjs";

const { opt, models, castor: CASTOR, llama: LLAMA } = benchArgs(
  "grammar_bench.mjs --llama-server PATH [--castor PATH] [--threads N] [--runs R] [--tokens N] MODEL...");
const THREADS = String(opt.threads ?? 2), RUNS = Number(opt.runs ?? 3), TOKENS = Number(opt.tokens ?? 128);
const SCHEMA = {
  type: "object",
  properties: {
    name: { type: "string" }, age: { type: "integer", minimum: 0, maximum: 150 },
    email: { type: "string", format: "email" }, tags: { type: "array", items: { type: "string" }, maxItems: 5 },
    role: { enum: ["admin", "user", "guest"] }, born: { type: "string", format: "date" },
    address: { type: "object", properties: { city: { type: "string" }, zip: { type: "string", pattern: "^[0-9]{5}$" } },
      required: ["city"] },
  },
  required: ["name", "age", "role"],
};
const PROMPT = "Describe a person as JSON.";
// one streamed request: [decode tok/s, tokens, valid JSON?]
async function once(s, schema, seed) {
  const r = await streamOnce(s, { prompt: PROMPT, tokens: TOKENS, temperature: 1, seed, schema });
  let valid = !schema;
  if (schema) try { JSON.parse(r.text); valid = true; } catch { valid = false; }
  return [r.tps, r.n, valid];
}

const rows = [];
for (const model of models) {
  for (const kind of ["castor", "llama.cpp"]) {
    const s = await start(kind, kind === "castor" ? CASTOR : LLAMA, model, { threads: THREADS, slots: 1, ctx: 1024 });
    try {
      await once(s, null, 1); // warm-up
      for (const [label, schema] of [["none", null], ["schema", SCHEMA]]) {
        const r = [];
        for (let k = 0; k < RUNS; k++) r.push(await once(s, schema, 100 + k));
        const tps = r.map((x) => x[0]).sort((a, b) => a - b);
        rows.push({ model: basename(model), kind, label, median: tps[Math.floor(tps.length / 2)],
          tokens: r.map((x) => x[1]).join("/"), valid: r.filter((x) => x[2]).length + "/" + r.length });
        console.error(JSON.stringify(rows.at(-1)));
      }
    } finally {
      await stop(s);
    }
  }
}
console.log(`| model | server | decode tok/s, no schema | decode tok/s, schema | slower with schema | valid JSON |`);
console.log(`|---|---|---|---|---|---|`);
for (const model of models)
  for (const kind of ["castor", "llama.cpp"]) {
    const a = rows.find((r) => r.model === basename(model) && r.kind === kind && r.label === "none");
    const b = rows.find((r) => r.model === basename(model) && r.kind === kind && r.label === "schema");
    console.log(`| ${a.model} | ${kind} | ${a.median.toFixed(1)} (${a.tokens} tok) | ${b.median.toFixed(1)} (${b.tokens} tok) | ` +
      `${((1 - b.median / a.median) * 100).toFixed(1)} % | ${b.valid} |`);
  }
