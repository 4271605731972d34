// connections.test.mjs: connections cost descriptors, never threads. Spawns
// `castor serve` on stories260K and holds, at the same time, thousands of
// sockets that never finish their headers and thousands of SSE streams
// following one live run; while they are held, /health and a create from
// another client are answered, and the server's thread count (from
// /proc/PID/status) stays that of an idle server plus a few. Then the run is
// cancelled and every stream ends with [DONE]. Also slow clients (bodies a
// byte at a time, readers that stop reading) and a unary create whose client
// hangs up while it waits parked. Assertions are about outcomes (answered,
// bounded, complete, cancelled), never about speed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import net from "node:net";
import { join } from "node:path";
import { startStoriesServer as startServer } from "./stories_server.mjs";

const CASTOR = process.env.CASTOR;
const STORIES = process.env.CASTOR_STORIES;
const MODEL = "stories260K";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Descriptors this process may open (fault.sh raises the soft limit).
function fdLimit() {
  try {
    return Number(execFileSync("bash", ["-c", "ulimit -n"]).toString().trim());
  } catch {
    return 1024;
  }
}

// The body of a chunked HTTP/1.1 response (raw bytes, headers included), as text.
function dechunk(raw) {
  let p = raw.indexOf("\r\n\r\n") + 4;
  const parts = [];
  for (;;) {
    const e = raw.indexOf("\r\n", p);
    if (e < 0) break;
    const n = parseInt(raw.subarray(p, e).toString("latin1"), 16);
    if (!(n > 0)) break;
    parts.push(raw.subarray(e + 2, e + 2 + n));
    p = e + 2 + n + 2;
  }
  return Buffer.concat(parts).toString("utf8");
}

function procStatus(pid, key) {
  const m = new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : NaN;
}


// Open n sockets from 127.0.0.x (spread over a few addresses), each sending
// what onConnect writes; resolves once all are connected.
async function openMany(port, n, write, onData) {
  const socks = [];
  for (let i = 0; i < n; i += 500) {
    const batch = [];
    for (let k = i; k < Math.min(n, i + 500); k++) {
      batch.push(new Promise((resolve, reject) => {
        const c = net.connect({ port, host: "127.0.0.1", localAddress: `127.0.0.${2 + (k % 8)}` });
        c.setNoDelay(true);
        c.on("connect", () => {
          c.write(write(k));
          resolve();
        });
        c.on("error", (e) => reject(e));
        if (onData) onData(c, k);
        socks.push(c);
      }));
    }
    await Promise.all(batch);
  }
  return socks;
}

test("thousands of idle sockets and SSE streams held at once: /health and creates answered, threads bounded, every stream complete", async () => {
  const limit = fdLimit();
  const nStreams = 2000;
  const nIdle = Math.min(10000, limit - nStreams - 500);
  assert.ok(nIdle >= 1000, `the descriptor limit (${limit}) leaves room for the test (raise ulimit -n)`);
  const dir = mkdtempSync(join(tmpdir(), "castor-conns-"));
  // a slowed decode (a token every 200 ms): the followed run stays live while
  // the streams attach and the figures are read
  const s = await startServer(join(dir, "data"), ["-np", "2"], { CST_FAULT: "decode_sleep_ms:200" });
  const socks = [];
  try {
    const threads0 = procStatus(s.proc.pid, "Threads");
    const rss0 = procStatus(s.proc.pid, "VmRSS");
    // sockets that never finish their headers
    socks.push(...await openMany(s.port, nIdle, () => "GET /health HTTP/1.1\r\nHost: x\r\n"));
    // one live background run, followed by every stream
    const bg = await fetch(`${s.url}/v1beta/interactions`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, input: "Once upon a time", background: true, generation_config: { max_output_tokens: 500 } }),
    });
    assert.equal(bg.status, 200);
    const id = (await bg.json()).id;
    const got = new Array(nStreams).fill("");
    const streams = await openMany(s.port, nStreams,
      () => `GET /v1beta/interactions/${id}?stream=true HTTP/1.1\r\nHost: x\r\n\r\n`,
      (c, k) => c.on("data", (d) => { if (got[k].length < 4096 || /\[DONE\]/.test(d)) got[k] += d; }));
    socks.push(...streams);
    // every stream has its first event: all are open at once
    for (let i = 0; i < 400 && got.some((g) => !g.includes("interaction.created")); i++) await sleep(50);
    const attached = got.filter((g) => g.includes("interaction.created")).length;
    assert.equal(attached, nStreams, `${attached} of ${nStreams} streams got their first event`);
    // while all are held: another client is served
    const h = await fetch(`${s.url}/health`, { signal: AbortSignal.timeout(20000) });
    assert.equal(h.status, 200);
    const c = await fetch(`${s.url}/v1beta/interactions`, {
      method: "POST", headers: { "content-type": "application/json" }, signal: AbortSignal.timeout(60000),
      body: JSON.stringify({ model: MODEL, input: "Hello", generation_config: { max_output_tokens: 4 } }),
    });
    assert.equal(c.status, 200);
    assert.equal((await c.json()).usage.total_output_tokens > 0, true);
    const threads = procStatus(s.proc.pid, "Threads");
    const rss = procStatus(s.proc.pid, "VmRSS");
    let parked = 0; // between two tokens the streams wait parked: the most seen over a few samples
    for (let i = 0; i < 20 && parked < nStreams / 2; i++) {
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      parked = Math.max(parked, Number(/^castor_parked_connections (\d+)$/m.exec(metrics)?.[1]));
      await sleep(100);
    }
    assert.ok(parked > 0, `streams wait parked (castor_parked_connections ${parked})`);
    // an idle server's threads plus the run's pump and a few: not one per connection
    assert.ok(threads <= threads0 + 8, `threads ${threads0} -> ${threads} with ${nIdle + nStreams} connections`);
    // memory: a few KiB of MHD state per connection, never a thread stack each
    const perConn = ((rss - rss0) * 1024) / (nIdle + nStreams);
    assert.ok(perConn < 64 * 1024, `RSS ${rss0} -> ${rss} kB: ${Math.round(perConn)} bytes per connection`);
    // the run ends (cancelled): every stream ends with [DONE]
    const cr = await fetch(`${s.url}/v1beta/interactions/${id}/cancel`, { method: "POST" });
    const cj = await cr.json();
    if (cr.status !== 200) assert.equal(cj.error.code, "failed_precondition", JSON.stringify(cj)); // it ended first
    for (let i = 0; i < 600 && got.some((g) => !g.includes("[DONE]")); i++) await sleep(50);
    const done = got.filter((g) => g.includes("[DONE]")).length;
    assert.equal(done, nStreams, `${done} of ${nStreams} streams ended with [DONE]`);
    console.log(`connections: ${nIdle} idle + ${nStreams} streams held (${parked} parked); threads ${threads0} -> ${threads}; ` +
      `RSS ${rss0} -> ${rss} kB (${Math.round(perConn)} bytes per connection); /health and a create answered`);
    for (const k of socks) k.destroy();
    s.proc.kill("SIGTERM");
    assert.equal(await s.exited, 0, "a clean stop: " + s.log().slice(-1000));
  } finally {
    for (const k of socks) k.destroy();
    if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill("SIGKILL");
    await s.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});

// Slow clients: SSE readers that stop reading, and bodies sent a byte at a
// time, hold no thread and no growing buffer: others are served meanwhile,
// the trickling bodies are cut at --body-timeout, and a paused reader gets
// its whole stream when it reads again.
test("slow clients: paused SSE readers and byte-at-a-time bodies do not stop others; nothing is lost", async () => {
  const dir = mkdtempSync(join(tmpdir(), "castor-slow-"));
  const s = await startServer(join(dir, "data"), ["-np", "2", "--body-timeout", "1.5"], { CST_FAULT: "decode_sleep_ms:5" });
  const socks = [];
  try {
    const threads0 = procStatus(s.proc.pid, "Threads");
    const nSlow = 200, nPaused = 50;
    // bodies that trickle: 1 byte every 100 ms of a declared 1000
    const closedAt = new Array(nSlow).fill(0);
    const replies = new Array(nSlow).fill("");
    const slow = await openMany(s.port, nSlow,
      () => "POST /v1beta/interactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
      (c, k) => {
        c.on("data", (d) => (replies[k] += d));
        c.on("close", () => (closedAt[k] = Date.now()));
      });
    socks.push(...slow);
    const drip = setInterval(() => { for (const c of slow) if (!c.destroyed) c.write(" "); }, 100);
    // streams whose readers pause right away, following one long run
    const bg = await fetch(`${s.url}/v1beta/interactions`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, input: "Once upon a time", background: true, generation_config: { max_output_tokens: 300 } }),
    });
    const id = (await bg.json()).id;
    const got = [...Array(nPaused)].map(() => []);
    const paused = await openMany(s.port, nPaused,
      () => `GET /v1beta/interactions/${id}?stream=true HTTP/1.1\r\nHost: x\r\n\r\n`,
      (c, k) => c.on("data", (d) => got[k].push(d)));
    const text = (k) => Buffer.concat(got[k]);
    for (const c of paused) c.pause();
    socks.push(...paused);
    // meanwhile: other clients are served
    assert.equal((await fetch(`${s.url}/health`, { signal: AbortSignal.timeout(20000) })).status, 200);
    const c = await fetch(`${s.url}/v1beta/interactions`, {
      method: "POST", headers: { "content-type": "application/json" }, signal: AbortSignal.timeout(60000),
      body: JSON.stringify({ model: MODEL, input: "Hello", generation_config: { max_output_tokens: 4 } }),
    });
    assert.equal(c.status, 200);
    await c.json();
    const threads = procStatus(s.proc.pid, "Threads");
    assert.ok(threads <= threads0 + 8, `threads ${threads0} -> ${threads} with ${nSlow + nPaused} slow clients`);
    // the trickling bodies are cut at --body-timeout, none is answered 200
    for (let i = 0; i < 400 && closedAt.some((t) => !t); i++) await sleep(50);
    clearInterval(drip);
    assert.equal(closedAt.filter((t) => t).length, nSlow, "every trickling body was cut");
    assert.ok(replies.every((r) => !/^HTTP\/1\.1 200/.test(r)), "no trickling body was answered 200");
    // the run ends; the paused readers read again and get every event, then [DONE]
    await fetch(`${s.url}/v1beta/interactions/${id}/cancel`, { method: "POST" });
    for (const p of paused) p.resume();
    for (let i = 0; i < 600 && got.some((g, k) => !text(k).includes("[DONE]")); i++) await sleep(50);
    const g = await (await fetch(`${s.url}/v1beta/interactions/${id}`)).json();
    assert.ok(["cancelled", "incomplete", "completed"].includes(g.status), g.status);
    // the stored log, replayed: what every paused reader must have got
    const replay = await (await fetch(`${s.url}/v1beta/interactions/${id}?stream=true`)).text();
    const events = (t) => t.split("\n\n").filter((b) => b.startsWith("event: ")).join("\n\n");
    const want = events(replay);
    assert.match(want, /event: step\.delta/);
    for (let k = 0; k < nPaused; k++) {
      assert.ok(text(k).includes("[DONE]"), `paused reader ${k} got [DONE]`);
      assert.equal(events(dechunk(text(k))), want, `paused reader ${k}: every event, in order`);
    }
    console.log(`slow clients: ${nSlow} byte-at-a-time bodies cut at --body-timeout, ${nPaused} paused readers ` +
      `complete (${g.usage.total_output_tokens} tokens each); threads ${threads0} -> ${threads}`);
  } finally {
    for (const k of socks) k.destroy();
    s.proc.kill("SIGTERM");
    await s.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});

// A unary create waits parked; when its client hangs up, the ticker finds
// out and the run is cancelled (it does not generate to its end).
test("a unary create whose client hangs up while it waits: its run is cancelled", async () => {
  const dir = mkdtempSync(join(tmpdir(), "castor-hup-"));
  const s = await startServer(join(dir, "data"), [], { CST_FAULT: "decode_sleep_ms:50" });
  const metric = async (name) => {
    const m = await (await fetch(`${s.url}/metrics`)).text();
    return Number(new RegExp(`^${name} (\\d+)$`, "m").exec(m)?.[1]);
  };
  try {
    const body = JSON.stringify({ model: MODEL, input: "Once upon a time", generation_config: { max_output_tokens: 400 } });
    const c = net.connect(s.port, "127.0.0.1");
    c.on("error", () => {});
    c.write(`POST /v1beta/interactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    for (let i = 0; i < 200 && (await metric("castor_inflight_interactions")) < 1; i++) await sleep(25);
    assert.equal(await metric("castor_inflight_interactions"), 1, "the create runs");
    await sleep(500);
    c.destroy(); // hang up while the create waits for its run
    for (let i = 0; i < 600 && (await metric("castor_inflight_interactions")) > 0; i++) await sleep(50);
    assert.equal(await metric("castor_inflight_interactions"), 0, "the run ended");
    const out = await metric("castor_output_tokens_total");
    assert.ok(out < 100, `the run was cut short (${out} of up to 400 tokens generated)`);
    assert.equal(await metric("castor_parked_connections"), 0);
  } finally {
    s.proc.kill("SIGTERM");
    await s.exited;
    rmSync(dir, { recursive: true, force: true });
  }
});
