#!/usr/bin/env node
// server_floor.mjs: issue 10's server floor, `castor serve` against
// `llama-server -np 4` on the same GGUF, the same threads and 4 slots of the
// same context, one server at a time. A report, not a test. For each model
// and server: 1 client (R sequential streamed requests of N tokens at
// temperature 0: decode tok/s from the first streamed token to the last, the
// median) and 4 concurrent clients (R rounds of 4 at once: all their tokens
// over the round's wall time, the median; prompts included, as a user sees
// it). castor takes the prompt through the model's chat template (the
// Interactions API), llama-server's /completion takes it raw.
// usage: node bench/server_floor.mjs --llama-server PATH [--castor build/castor]
//          [--threads 2] [--reps 3] [--tokens 128] [--ctx 1024] MODEL.gguf [MODEL.gguf...]
import { basename } from "node:path";
import { benchArgs, start, stop, streamOnce } from "./servers.mjs";

const { opt, models, castor: CASTOR, llama: LLAMA } = benchArgs(
  "server_floor.mjs --llama-server PATH [--castor PATH] [--threads N] [--reps R] [--tokens N] [--ctx N] MODEL...");
const THREADS = Number(opt.threads ?? 2), REPS = Number(opt.reps ?? 3), TOKENS = Number(opt.tokens ?? 128);
const CTX = Number(opt.ctx ?? 1024);
const PROMPT = "Write a long story about a small robot who learns to paint, with many details about colours and light.";
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

const rows = [];
for (const model of models) {
  const res = {};
  for (const kind of ["castor", "llama.cpp"]) {
    const s = await start(kind, kind === "castor" ? CASTOR : LLAMA, model, { threads: THREADS, slots: 4, ctx: CTX });
    try {
      const req = (k) => ({ prompt: `${PROMPT} (${k})`, tokens: TOKENS, temperature: 0, seed: 1 });
      await streamOnce(s, { ...req(0), tokens: 8 }); // warm-up
      const one = [];
      for (let k = 0; k < REPS; k++) one.push(await streamOnce(s, req(k + 1)));
      const four = [];
      for (let k = 0; k < REPS; k++) {
        const t0 = performance.now();
        const rs = await Promise.all([0, 1, 2, 3].map((c) => streamOnce(s, req(10 + 4 * k + c))));
        four.push({ agg: (rs.reduce((a, r) => a + r.n, 0) * 1000) / (performance.now() - t0), n: rs.map((r) => r.n) });
      }
      res[kind] = { one: median(one.map((r) => r.tps)), oneN: one.map((r) => r.n).join("/"),
        four: median(four.map((r) => r.agg)), fourN: four.map((r) => r.n.join("+")).join(", ") };
      console.error(kind, basename(model), JSON.stringify(res[kind]));
    } finally {
      await stop(s);
    }
  }
  rows.push({ model: basename(model), ...res });
}
console.log(`| model (${THREADS} threads, ${TOKENS} tokens, temperature 0) | castor 1 client tok/s | llama-server 1 client tok/s | ratio | castor 4 clients tok/s | llama-server -np 4, 4 clients tok/s | ratio |`);
console.log("|---|---|---|---|---|---|---|");
for (const r of rows) {
  const c = r.castor, l = r["llama.cpp"];
  console.log(`| ${r.model} | ${c.one.toFixed(1)} | ${l.one.toFixed(1)} | ${(c.one / l.one).toFixed(2)} | ` +
    `${c.four.toFixed(1)} | ${l.four.toFixed(1)} | ${(c.four / l.four).toFixed(2)} |`);
}
console.log(`\ntokens per request: ${rows.map((r) => `${r.model}: castor ${r.castor.oneN}; ${r.castor.fourN} / llama-server ${r["llama.cpp"].oneN}; ${r["llama.cpp"].fourN}`).join(" · ")}`);
