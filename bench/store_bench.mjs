#!/usr/bin/env node
// store_bench.mjs: what the store costs. On stories260K (inference is almost
// free, so the store and HTTP dominate) it measures, for
//   sqlite x1       one replica, SQLite store
//   postgres x1     one replica, PostgreSQL store
//   postgres x3     three replicas on one PostgreSQL behind HAProxy (deploy/haproxy.cfg)
// - creates per second: C concurrent clients posting stored, unary creates
//   with max_output_tokens 1 for D seconds;
// - time to first token (first step.delta of a stream), p50 and p99 over
//   N sequential streamed creates.
// A report, not a test. Run it through scripts/with-pg.sh (bench/store_bench.sh
// does, with fsync on); without CST_TEST_PG only the SQLite row is measured.
// usage: node bench/store_bench.mjs [--castor build/castor] [--clients 8]
//          [--seconds 5] [--ttft 60] [--threads 1]
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";

const HERE = dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const CASTOR = args.castor ?? join(HERE, "..", "build", "castor");
const SHARED = process.env.CST_SHARED ?? join(HERE, "..", "..", "shared");
const MODEL = join(SHARED, "models", "stories260K.gguf");
const CLIENTS = Number(args.clients ?? 8);
const SECONDS = Number(args.seconds ?? 5);
const N_TTFT = Number(args.ttft ?? 60);
const THREADS = String(args.threads ?? 1);
const PG = process.env.CST_TEST_PG;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startReplica(dir, n, store) {
  const portFile = join(dir, `r${n}.port`);
  const a = ["serve", "-m", MODEL, "--no-auth", "--host", "127.0.0.1", "--port", "0", "--port-file", portFile,
    "--data-dir", join(dir, `d${n}`), "-c", "256", "-np", "4", "-t", THREADS, "--max-queue", "256"];
  if (store) a.push("--store", store);
  const proc = spawn(CASTOR, a, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr.on("data", (d) => (log += d));
  for (let i = 0; i < 400 && !existsSync(portFile); i++) await sleep(25);
  if (!existsSync(portFile)) throw new Error("replica did not start: " + log);
  return { proc, addr: `127.0.0.1:${readFileSync(portFile, "utf8").trim()}` };
}
function freePort() {
  return new Promise((res) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
}
async function startSetup(name, store, replicas) {
  const dir = mkdtempSync(join(tmpdir(), "castor-sbench-"));
  const reps = [];
  for (let n = 1; n <= replicas; n++) reps.push(await startReplica(dir, n, store));
  let url = `http://${reps[0].addr}`, lb = null;
  if (replicas > 1) {
    const port = await freePort();
    const env = { ...process.env, CASTOR_LB_BIND: `127.0.0.1:${port}` };
    reps.forEach((r, i) => (env[`CASTOR_R${i + 1}`] = r.addr));
    lb = spawn("haproxy", ["-f", join(HERE, "..", "deploy", "haproxy.cfg"), "-db"], { env, stdio: "ignore" });
    url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 100; i++) {
      try { if ((await fetch(url + "/health")).status === 200) break; } catch { /* starting */ }
      await sleep(100);
    }
    await sleep(2500); // every replica up in the balancer (rise 2, inter 1s)
  }
  return { name, url, stop: () => { reps.forEach((r) => r.proc.kill("SIGKILL")); lb?.kill("SIGKILL"); rmSync(dir, { recursive: true, force: true }); } };
}

async function createsPerSecond(url) {
  let n = 0, errors = 0, stop = false;
  const body = JSON.stringify({ model: "gemini-3.5-flash", input: "Once upon a time", generation_config: { max_output_tokens: 1 } });
  const worker = async () => {
    while (!stop) {
      const r = await fetch(url + "/v1beta/interactions", { method: "POST", headers: { "content-type": "application/json" }, body });
      await r.arrayBuffer();
      if (r.status === 200) n++;
      else errors++;
    }
  };
  const t0 = performance.now();
  const ws = Array.from({ length: CLIENTS }, worker);
  await sleep(SECONDS * 1000);
  stop = true;
  await Promise.all(ws);
  return { rate: n / ((performance.now() - t0) / 1000), errors };
}

async function ttft(url) {
  const v = [];
  for (let k = 0; k < N_TTFT; k++) {
    const t0 = performance.now();
    const r = await fetch(url + "/v1beta/interactions", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gemini-3.5-flash", input: `Story ${k}: Lily`, stream: true, generation_config: { max_output_tokens: 8 } }),
    });
    const rd = r.body.getReader();
    const dec = new TextDecoder();
    let buf = "", got = false;
    for (;;) {
      const { value, done } = await rd.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      if (!got && buf.includes("\"step.delta\"")) {
        v.push(performance.now() - t0);
        got = true;
      }
    }
  }
  v.sort((a, b) => a - b);
  const q = (p) => v[Math.min(v.length - 1, Math.floor(p * v.length))];
  return { p50: q(0.5), p99: q(0.99) };
}

const setups = [["sqlite x1", null, 1]];
if (PG) setups.push(["postgres x1", PG, 1], ["postgres x3 (HAProxy)", PG, 3]);
const rows = [];
for (const [name, store, n] of setups) {
  const s = await startSetup(name, store, n);
  try {
    await createsPerSecond(s.url); // warm-up (and the first connections)
    const c = await createsPerSecond(s.url);
    const t = await ttft(s.url);
    rows.push(`| ${name} | ${c.rate.toFixed(0)} | ${c.errors} | ${t.p50.toFixed(1)} | ${t.p99.toFixed(1)} |`);
  } finally {
    s.stop();
  }
}
console.log(`\n${CLIENTS} clients x ${SECONDS} s of stored creates (max_output_tokens 1); ${N_TTFT} sequential streams for TTFT; -t ${THREADS}, -np 4 per replica\n`);
console.log("| setup | creates/s | errors | TTFT p50 ms | TTFT p99 ms |\n|---|---|---|---|---|");
for (const r of rows) console.log(r);
