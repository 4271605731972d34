// servers.mjs: castor serve and llama-server side by side for the benches
// (grammar_bench.mjs, server_floor.mjs): start one on a free port with the
// same model, thread count, slots and context per slot, wait for /health,
// stream one request and time it the same way for both, stop it.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, basename } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";

// The command line of a bench that runs both servers: `--name value`
// options, then model paths. Returns {opt, models, castor, llama}; prints
// usage and exits when no model or no --llama-server is given.
export function benchArgs(usage) {
  const argv = process.argv.slice(2);
  const opt = {}, models = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith("--")) opt[argv[i].slice(2)] = argv[++i];
    else models.push(argv[i]);
  }
  if (!models.length || !opt["llama-server"]) {
    console.error(`usage: ${usage}`);
    process.exit(2);
  }
  const here = dirname(fileURLToPath(import.meta.url));
  return { opt, models, castor: opt.castor ?? join(here, "..", "build", "castor"), llama: opt["llama-server"] };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () => new Promise((res) => {
  const s = net.createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); });
});

// kind: "castor" | "llama.cpp"; bin: its executable; o: {threads, slots, ctx (per slot), extra: [args]}
export async function start(kind, bin, model, o) {
  const port = await freePort(), dir = mkdtempSync(join(tmpdir(), "castor-sbench-"));
  const t = String(o.threads), np = String(o.slots ?? 1), ctx = o.ctx ?? 1024;
  const args = kind === "castor"
    ? ["serve", "-m", model, "--no-auth", "--port", String(port), "--data-dir", dir, "-c", String(ctx), "-np", np,
      "-t", t, "--max-output", "0", "--thinking-level", "minimal", "--max-queue", "256"]
    : ["-m", model, "--port", String(port), "-c", String(ctx * Number(np)), "-np", np, "-t", t, "-tb", t,
      "--no-webui", "--log-disable"];
  const proc = spawn(bin, [...args, ...(o.extra ?? [])], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr.on("data", (d) => (log += d));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 1200; i++) {
    try { if ((await fetch(`${url}/health`)).ok) return { kind, proc, url, dir, model }; } catch { /* not yet */ }
    if (proc.exitCode !== null) break;
    await sleep(100);
  }
  proc.kill("SIGKILL");
  throw new Error(`${kind} did not start: ${log.slice(-2000)}`);
}

export async function stop(s) {
  s.proc.kill("SIGTERM");
  await new Promise((r) => (s.proc.exitCode !== null ? r() : s.proc.on("exit", r)));
  rmSync(s.dir, { recursive: true, force: true });
}

// One streamed request on server s: castor's Interactions API or
// llama-server's /completion, up to `tokens` tokens. Returns {tps, n, text,
// ttft, wall}: decode tok/s measured by the client from the first streamed
// token to the last ((n - 1) / span), tokens generated, the text, the time to
// the first token and to the end (ms).
export async function streamOnce(s, { prompt, tokens, temperature, seed, schema }) {
  let body, path;
  if (s.kind === "castor") {
    path = "/v1beta/interactions";
    body = { model: basename(s.model, ".gguf"), input: prompt, stream: true, store: false,
      generation_config: { temperature, max_output_tokens: tokens, seed } };
    if (schema) body.response_format = { type: "text", mime_type: "application/json", schema };
  } else {
    path = "/completion";
    body = { prompt, n_predict: tokens, temperature, seed, stream: true, cache_prompt: false };
    if (schema) body.json_schema = schema;
  }
  const t0 = performance.now();
  const res = await fetch(s.url + path, { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${s.kind} ${res.status}: ${await res.text()}`);
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
      if (s.kind === "castor") {
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
  return { tps: n > 1 && last > first ? ((n - 1) * 1000) / (last - first) : 0, n, text, ttft: first - t0,
    wall: performance.now() - t0 };
}
