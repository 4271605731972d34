// ops.test.mjs: operational paths of `castor serve` that need their own
// servers (spawned here on stories260K, each with its own data dir), driven
// with raw HTTP (fetch, node:net) and the SDK: the late-error path through
// the test-only fault injection (CST_FAULT), the bounded queue (429 with
// Retry-After, `queued` background interactions, cancel while queued),
// keep-alive comments while a slow prefill runs, deadlines (504 /
// gateway_timeout), slow request bodies and idle connections, and SIGTERM
// with streams running (finished or cancelled cleanly, consistent stored
// statuses, exit 0).
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import net from "node:net";
import { join } from "node:path";
import { GoogleGenAI } from "@google/genai";
import { parseSse, sleep, storeArgs } from "./common.mjs";

const CASTOR = process.env.CASTOR;
const STORIES = process.env.CASTOR_STORIES;
const MODEL = "gemini-3.5-flash";

// Start `castor serve` on stories260K with extra args / env; resolves
// {url, port, proc, dir, exited (promise of the exit code), log()}.
async function startServer(args = [], env = {}, dir = mkdtempSync(join(tmpdir(), "castor-ops-"))) {
  const portFile = join(dir, `port-${Date.now()}`);
  const proc = spawn(
    CASTOR,
    ["serve", "-m", STORIES, "--no-auth", "--host", "127.0.0.1", "--port", "0", "--port-file", portFile,
      "--data-dir", join(dir, "data"), "-c", "256", "-t", "1", ...storeArgs(dir), ...args],
    { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  proc.stderr.on("data", (d) => (log += d));
  const exited = new Promise((res) => proc.on("exit", (code, sig) => res(sig ? sig : code)));
  for (let i = 0; i < 200 && !existsSync(portFile); i++) await sleep(25);
  if (!existsSync(portFile)) throw new Error("server did not start: " + log);
  const port = Number(readFileSync(portFile, "utf8").trim());
  return { url: `http://127.0.0.1:${port}`, port, proc, dir, exited, log: () => log };
}

async function stopServer(s, { keep = false } = {}) {
  if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill("SIGTERM");
  const code = await s.exited;
  if (!keep) rmSync(s.dir, { recursive: true, force: true });
  return code;
}

function post(s, path, body, headers = {}) {
  return fetch(s.url + path, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });
}

async function postJson(s, body) {
  const r = await post(s, "/v1beta/interactions", body);
  return { status: r.status, headers: r.headers, json: await r.json() };
}

async function getJson(s, id) {
  const r = await fetch(`${s.url}/v1beta/interactions/${id}`);
  return { status: r.status, json: await r.json() };
}

// Read a whole SSE response as text (comments included).
async function sseText(s, body) {
  const r = await post(s, "/v1beta/interactions?alt=sse", { ...body, stream: true });
  assert.equal(r.status, 200);
  return r.text();
}

async function pollStatus(s, id, accept, tries = 400) {
  let g;
  for (let k = 0; k < tries; k++) {
    g = await getJson(s, id);
    if (accept(g.json.status)) return g.json;
    await sleep(25);
  }
  return g.json;
}

// Raw TCP: send `chunks` ([text, delayMs]...) and resolve {data, closedAfterMs}.
function rawExchange(port, chunks, { waitMs = 4000 } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect(port, "127.0.0.1");
    let data = "";
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve({ data, closedAfterMs: Date.now() - t0 });
      sock.destroy();
    };
    sock.on("data", (d) => (data += d));
    sock.on("close", finish);
    sock.on("error", finish);
    const timer = setTimeout(() => {
      data += "\n<still open>";
      finish();
    }, waitMs);
    sock.on("close", () => clearTimeout(timer));
    (async () => {
      for (const [text, delay] of chunks) {
        if (done) return;
        await sleep(delay);
        if (!done) sock.write(text);
      }
    })();
  });
}

describe("late error: CST_FAULT=decode_fail_after:5", () => {
  let s;
  before(async () => (s = await startServer(["--body-timeout", "1", "--idle-timeout", "2"], { CST_FAULT: "decode_fail_after:5" })));
  after(async () => assert.equal(await stopServer(s), 0));

  test("stream: deltas, step.stop, error, interaction.completed failed, [DONE]; stored failed", async () => {
    const evs = parseSse(await sseText(s, { model: MODEL, input: "Once upon a time", generation_config: { max_output_tokens: 40, temperature: 0 } }));
    const types = evs.map((e) => e.event);
    assert.deepEqual(types.slice(0, 3), ["interaction.created", "interaction.status_update", "step.start"]);
    assert.deepEqual(types.slice(-4), ["step.stop", "error", "interaction.completed", "done"]);
    assert.equal(evs.at(-1).data, "[DONE]");
    const err = evs.at(-3).data.error;
    assert.equal(err.code, "internal");
    assert.match(err.message, /injected/);
    const fin = evs.at(-2).data.interaction;
    assert.equal(fin.status, "failed");
    assert.equal(fin.usage.total_output_tokens, 5);
    const text = evs.filter((e) => e.event === "step.delta").map((e) => e.data.delta.text).join("");
    const g = await getJson(s, fin.id);
    assert.equal(g.json.status, "failed");
    assert.equal(g.json.errors[0].code, "internal");
    assert.equal(g.json.steps.at(-1).content[0].text, text);
    // the replay of the stored log is identical
    const rp = await fetch(`${s.url}/v1beta/interactions/${fin.id}?stream=true`);
    assert.deepEqual(parseSse(await rp.text()), evs);
  });

  test("unary: 200 with status failed and errors (no 5xx after side effects)", async () => {
    const r = await postJson(s, { model: MODEL, input: "Once upon a time", generation_config: { max_output_tokens: 40 } });
    assert.equal(r.status, 200);
    assert.equal(r.json.status, "failed");
    assert.equal(r.json.errors[0].code, "internal");
    // below the fault threshold everything is normal
    const ok = await postJson(s, { model: MODEL, input: "Once upon a time", generation_config: { max_output_tokens: 4 } });
    assert.equal(ok.json.status, "incomplete");
  });

  test("SDK: the error event is yielded, the stream ends with interaction.completed", async () => {
    const ai = new GoogleGenAI({ apiKey: "unused", httpOptions: { baseUrl: s.url } });
    const events = [];
    for await (const ev of await ai.interactions.create({ model: MODEL, input: "Hi", stream: true, generation_config: { max_output_tokens: 40 } })) events.push(ev);
    assert.equal(events.at(-2).event_type, "error");
    assert.equal(events.at(-1).event_type, "interaction.completed");
    assert.equal(events.at(-1).interaction.status, "failed");
  });

  test("slow body is cut by --body-timeout, a silent connection by --idle-timeout", async () => {
    const head = `POST /v1beta/interactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n`;
    const drip = Array.from({ length: 40 }, () => ["{", 150]);
    const slow = await rawExchange(s.port, [[head, 0], ...drip], { waitMs: 8000 });
    assert.ok(!slow.data.includes("<still open>"), "the trickling body was cut");
    assert.ok(slow.closedAfterMs < 5000);
    const idle = await rawExchange(s.port, [["GET /health HTTP/1.1\r\nHo", 0]], { waitMs: 8000 });
    assert.ok(!idle.data.includes("<still open>"), "the silent connection was closed");
    const h = await fetch(s.url + "/health");
    assert.equal(h.status, 200);
  });
});

describe("bounded queue, queued status, keep-alive: -np 1 --max-queue 1, CST_FAULT=decode_sleep_ms:120", () => {
  let s;
  before(async () => (s = await startServer(["-np", "1", "--max-queue", "1", "--keepalive-ms", "40"], { CST_FAULT: "decode_sleep_ms:120" })));
  after(async () => assert.equal(await stopServer(s), 0));

  test("keep-alive comments while the prefill runs; the SDK ignores them", async () => {
    const text = await sseText(s, { model: MODEL, input: "Hello", generation_config: { max_output_tokens: 2 } });
    const firstDelta = text.indexOf("event: step.delta");
    const ka = text.indexOf(": keep-alive\n\n");
    assert.ok(ka >= 0 && ka < firstDelta, "a keep-alive comment precedes the first token");
    const evs = parseSse(text);
    assert.equal(evs.at(-1).data, "[DONE]");
    assert.equal(evs.at(-2).data.interaction.status, "incomplete");
  });

  test("full queue: 429 resource_exhausted with Retry-After; a waiting background interaction is queued and cancels at once", async () => {
    const a = await postJson(s, { model: MODEL, input: "Once upon a time", background: true, generation_config: { max_output_tokens: 60 } });
    assert.equal(a.status, 200);
    await pollStatus(s, a.json.id, (st) => st === "in_progress");
    const b = await postJson(s, { model: MODEL, input: "Tell me a story", background: true, generation_config: { max_output_tokens: 8 } });
    assert.equal(b.status, 200);
    assert.equal(b.json.status, "queued");
    assert.deepEqual(b.json.steps, []);
    assert.equal((await getJson(s, b.json.id)).json.status, "queued");
    // a re-attached stream of the queued interaction starts with created(queued)
    const att = await fetch(`${s.url}/v1beta/interactions/${b.json.id}?stream=true`);
    const reader = att.body.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    assert.match(first, /"status":"queued"/);
    reader.cancel();
    for (const body of [{ model: MODEL, input: "x" }, { model: MODEL, input: "x", stream: true }]) {
      const c = await post(s, "/v1beta/interactions", body);
      assert.equal(c.status, 429);
      assert.match(c.headers.get("content-type"), /application\/json/);
      assert.equal(c.headers.get("retry-after"), "1");
      const j = await c.json();
      assert.equal(j.error.code, "resource_exhausted");
    }
    const t0 = Date.now();
    const cb = await post(s, `/v1beta/interactions/${b.json.id}/cancel`, "");
    assert.equal(cb.status, 200);
    assert.equal((await cb.json()).status, "cancelled");
    assert.ok(Date.now() - t0 < 3000, "cancel of a queued interaction does not wait for a slot");
    const gb = await getJson(s, b.json.id);
    assert.equal(gb.json.status, "cancelled");
    assert.equal(gb.json.usage.total_output_tokens, 0);
    const ca = await post(s, `/v1beta/interactions/${a.json.id}/cancel`, "");
    assert.equal((await ca.json()).status, "cancelled");
    // the queue has room again
    const d = await postJson(s, { model: MODEL, input: "x", generation_config: { max_output_tokens: 1 } });
    assert.equal(d.status, 200);
  });

  test("a queued stream: created(queued), keep-alives, then status_update(in_progress) when admitted", async () => {
    const a = await postJson(s, { model: MODEL, input: "Once upon a time", background: true, generation_config: { max_output_tokens: 6 } });
    await pollStatus(s, a.json.id, (st) => st === "in_progress");
    const text = await sseText(s, { model: MODEL, input: "Hi", generation_config: { max_output_tokens: 2 } });
    const evs = parseSse(text);
    assert.equal(evs[0].data.interaction.status, "queued");
    assert.equal(evs[1].event, "interaction.status_update");
    assert.equal(evs[1].data.status, "in_progress");
    assert.ok(text.indexOf(": keep-alive") < text.indexOf("interaction.status_update"));
  });
});

describe("deadlines: --request-timeout / --stream-timeout 0.6 s, CST_FAULT=decode_sleep_ms:60", () => {
  let s;
  before(async () => (s = await startServer(["--request-timeout", "0.6", "--stream-timeout", "0.6"], { CST_FAULT: "decode_sleep_ms:60" })));
  after(async () => assert.equal(await stopServer(s), 0));

  test("unary: 504 gateway_timeout, stored failed", async () => {
    const r = await postJson(s, { model: MODEL, input: "Once upon a time", generation_config: { max_output_tokens: 200 } });
    assert.equal(r.status, 504);
    assert.equal(r.json.error.code, "gateway_timeout");
    const id = r.json.error.message.match(/'(v1_[^']+)'/)[1];
    const g = await getJson(s, id);
    assert.equal(g.json.status, "failed");
    assert.equal(g.json.errors[0].code, "gateway_timeout");
  });

  test("stream: error gateway_timeout, then interaction.completed failed, [DONE]", async () => {
    const evs = parseSse(await sseText(s, { model: MODEL, input: "Once upon a time", generation_config: { max_output_tokens: 200 } }));
    assert.deepEqual(evs.slice(-3).map((e) => e.event), ["error", "interaction.completed", "done"]);
    assert.equal(evs.at(-3).data.error.code, "gateway_timeout");
    assert.equal(evs.at(-2).data.interaction.status, "failed");
  });
});

describe("SIGTERM with streams running (--drain-timeout 3, CST_FAULT=decode_sleep_ms:80)", () => {
  test("short streams finish, long ones end cancelled with [DONE]; statuses stored; exit 0", async () => {
    const s = await startServer(["-np", "2", "--drain-timeout", "3"], { CST_FAULT: "decode_sleep_ms:80" });
    const open = async (max) => {
      const r = await post(s, "/v1beta/interactions?alt=sse", { model: MODEL, input: "Once upon a time", stream: true, generation_config: { max_output_tokens: max } });
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let text = "";
      while (!text.includes("step.delta")) {
        const { value, done } = await reader.read();
        if (done) break;
        text += dec.decode(value);
      }
      // wrapped: an async function returning a bare promise would adopt it
      return {
        rest: (async () => {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return text;
            text += dec.decode(value);
          }
        })(),
      };
    };
    const short = await open(12);
    const long = await open(200);
    const bg = await postJson(s, { model: MODEL, input: "Tell me a story", background: true, generation_config: { max_output_tokens: 200 } });
    if (bg.status !== 200) s.proc.kill("SIGKILL");
    assert.equal(bg.status, 200);
    s.proc.kill("SIGTERM");
    const [ts, tl] = await Promise.all([short.rest, long.rest]);
    const es = parseSse(ts), el = parseSse(tl);
    for (const e of [es, el]) {
      assert.equal(e.at(-1).data, "[DONE]");
      assert.equal(e.at(-2).event, "interaction.completed");
    }
    assert.equal(es.at(-2).data.interaction.status, "incomplete");
    assert.equal(el.at(-2).data.interaction.status, "cancelled");
    assert.equal(await s.exited, 0);
    assert.match(s.log(), /stopped/);
    // restart on the same data dir: what was streamed is what was stored
    const s2 = await startServer([], {}, s.dir);
    try {
      for (const [e, st] of [[es, "incomplete"], [el, "cancelled"]]) {
        const g = await getJson(s2, e[0].data.interaction.id);
        assert.equal(g.json.status, st);
        const text = e.filter((x) => x.event === "step.delta").map((x) => x.data.delta.text).join("");
        assert.equal(g.json.steps.at(-1).content[0].text, text);
      }
      const gb = await getJson(s2, bg.json.id);
      assert.equal(gb.json.status, "cancelled");
    } finally {
      assert.equal(await stopServer(s2), 0);
      rmSync(s.dir, { recursive: true, force: true });
    }
  });
});
