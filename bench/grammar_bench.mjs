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
import { spawn } from "node:child_process";
import { mkdtempSync, existsSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, basename } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";

const HERE = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const opt = {}, models = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i].startsWith("--")) opt[argv[i].slice(2)] = argv[++i];
  else models.push(argv[i]);
}
const CASTOR = opt.castor ?? join(HERE, "..", "build", "castor");
const LLAMA = opt["llama-server"];
const THREADS = String(opt.threads ?? 2), RUNS = Number(opt.runs ?? 3), TOKENS = Number(opt.tokens ?? 128);
if (!models.length || !LLAMA) {
  console.error("usage: grammar_bench.mjs --llama-server PATH [--castor PATH] [--threads N] [--runs R] [--tokens N] MODEL...");
  process.exit(2);
}
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
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () => new Promise((res) => {
  const s = net.createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); });
});

async function start(kind, model) {
  const port = await freePort(), dir = mkdtempSync(join(tmpdir(), "castor-gbench-"));
  const a = kind === "castor"
    ? [CASTOR, ["serve", "-m", model, "--no-auth", "--port", String(port), "--data-dir", dir, "-c", "1024", "-np", "1",
      "-t", THREADS, "--max-output", "0", "--thinking-level", "minimal"]]
    : [LLAMA, ["-m", model, "--port", String(port), "-c", "1024", "-np", "1", "-t", THREADS, "-tb", THREADS,
      "--no-webui", "--log-disable"]];
  const proc = spawn(a[0], a[1], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr.on("data", (d) => (log += d));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 1200; i++) {
    try { if ((await fetch(`${url}/health`)).ok) return { proc, url, dir }; } catch { /* not yet */ }
    if (proc.exitCode !== null) break;
    await sleep(100);
  }
  proc.kill("SIGKILL");
  throw new Error(`${kind} did not start: ${log.slice(-2000)}`);
}
async function stop(s) {
  s.proc.kill("SIGTERM");
  await new Promise((r) => (s.proc.exitCode !== null ? r() : s.proc.on("exit", r)));
  rmSync(s.dir, { recursive: true, force: true });
}

// one streamed request: [decode tok/s, tokens, valid JSON?]
async function once(kind, url, model, schema, seed) {
  let body, path;
  if (kind === "castor") {
    path = "/v1beta/interactions";
    body = { model: basename(model, ".gguf"), input: PROMPT, stream: true, store: false,
      generation_config: { temperature: 1, max_output_tokens: TOKENS, seed } };
    if (schema) body.response_format = { type: "text", mime_type: "application/json", schema };
  } else {
    path = "/completion";
    body = { prompt: PROMPT, n_predict: TOKENS, temperature: 1, seed, stream: true, cache_prompt: false };
    if (schema) body.json_schema = schema;
  }
  const res = await fetch(url + path, { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${kind} ${res.status}: ${await res.text()}`);
  const dec = new TextDecoder();
  let buf = "", text = "", first = 0, last = 0, n = 0;
  for await (const chunk of res.body) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = ev.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("");
      if (!data || data === "[DONE]") continue;
      const j = JSON.parse(data);
      const now = performance.now();
      if (kind === "castor") {
        if (j.event_type === "step.delta" && j.delta?.type === "text") {
          text += j.delta.text;
          if (!first) first = now;
          last = now;
        }
        if (j.event_type === "interaction.completed") n = j.interaction.usage?.total_output_tokens ?? 0;
      } else if (!j.stop) {
        text += j.content ?? "";
        if (!first) first = now;
        last = now;
        n++;
      }
    }
  }
  let valid = !schema;
  if (schema) try { JSON.parse(text); valid = true; } catch { valid = false; }
  return [n > 1 && last > first ? ((n - 1) * 1000) / (last - first) : 0, n, valid];
}

const rows = [];
for (const model of models) {
  for (const kind of ["castor", "llama.cpp"]) {
    const s = await start(kind, model);
    try {
      await once(kind, s.url, model, null, 1); // warm-up
      for (const [label, schema] of [["none", null], ["schema", SCHEMA]]) {
        const r = [];
        for (let k = 0; k < RUNS; k++) r.push(await once(kind, s.url, model, schema, 100 + k));
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
