// fault.test.mjs: what the server acknowledged, it keeps. Spawns its own
// servers on stories260K (plain fetch and node:net, no SDK) and breaks them:
// kill -9 during bursts of stored, background and streamed creates, then a
// restart on the same data dir (background jobs that showed no output run
// again); a full disk; descriptor exhaustion; a damaged
// database. Assertions are about outcomes, never about speed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, existsSync, rmSync, writeFileSync, openSync, writeSync, closeSync,
  unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import net from "node:net";
import http from "node:http";
import { join } from "node:path";
import { startStoriesServer as startServer } from "./stories_server.mjs";

const CASTOR = process.env.CASTOR;
const STORIES = process.env.CASTOR_STORIES;
const ROUNDS = Number(process.env.FAULT_ROUNDS || 4);
const MODEL = "stories260K";
const TERMINAL = new Set(["completed", "incomplete", "failed", "cancelled"]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));


async function stop(s, sig = "SIGTERM") {
  if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill(sig);
  return s.exited;
}

function post(s, body, query = "") {
  return fetch(`${s.url}/v1beta/interactions${query}`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
}

async function getJson(s, id) {
  const r = await fetch(`${s.url}/v1beta/interactions/${id}`);
  return { status: r.status, json: await r.json() };
}

// GET id until its status is terminal (a background job run again after a
// restart is queued or in progress at first); resolves the last GET.
async function getTerminal(s, id) {
  for (;;) {
    const g = await getJson(s, id);
    if (g.status !== 200 || TERMINAL.has(g.json.status)) return g;
    await sleep(20);
  }
}

// The model's answer to body (temperature 0): a unary create of the same body.
const reference = new Map();
async function modelAnswer(s, body) {
  const key = JSON.stringify(body);
  if (!reference.has(key)) {
    const r = await post(s, body);
    assert.equal(r.status, 200);
    reference.set(key, outputText(await r.json()));
  }
  return reference.get(key);
}

// The errors of a background interaction that had shown output when the
// server was killed (docs/sdk.md, durability).
const SHOWN_OUTPUT = /server stopped before this interaction finished \(.*background run had shown output/;

function outputText(j) {
  const st = (j.steps || []).filter((x) => x.type === "model_output");
  return st.length ? st.at(-1).content.map((c) => c.text || "").join("") : "";
}

// A stored interaction as GET shows it after a restart: terminal, with usage;
// failed ones say why.
function assertConsistent(j, what) {
  assert.ok(TERMINAL.has(j.status), `${what}: status ${j.status} is not terminal`);
  assert.ok(j.usage && typeof j.usage.total_tokens === "number", `${what}: terminal without usage`);
  if (j.status === "failed") assert.ok(Array.isArray(j.errors) && j.errors[0].message, `${what}: failed without errors`);
}

// Read an SSE create; onId(id) at interaction.created; resolves the event list.
async function streamCreate(s, body, onId) {
  const r = await post(s, { ...body, stream: true });
  if (r.status !== 200) return { status: r.status, json: await r.json() };
  const events = [];
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of r.body) {
    buf += dec.decode(chunk, { stream: true });
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, k);
      buf = buf.slice(k + 2);
      const ev = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (!ev) continue;
      const d = data === "[DONE]" ? data : JSON.parse(data);
      events.push({ event: ev, data: d });
      if (ev === "interaction.created") onId(d.interaction.id);
    }
  }
  return { status: 200, events };
}

test("kill -9 during bursts of creates: every acknowledged id is retrievable and consistent", async () => {
  const dir = mkdtempSync(join(tmpdir(), "castor-fault-"));
  const data = join(dir, "data");
  const acked = new Map(); // id -> {kind, status?, text?}
  let terminalPolls = 0, logs = "";
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // slowed decode: runs are still queued or in flight when the kill comes
      const s = await startServer(data, ["-np", "2", "--max-queue", "256"], { CST_FAULT: "decode_sleep_ms:4" });
      // what an earlier round acknowledged survived this restart too (a
      // background job with no output runs again: polled to its end)
      for (const [id, a] of acked) {
        const g = await getTerminal(s, id);
        assert.equal(g.status, 200, `round ${round}: ${a.kind} ${id} lost (${JSON.stringify(g.json)})`);
        assertConsistent(g.json, `${a.kind} ${id}`);
      }
      const jobs = [];
      let killed = false;
      for (let i = 0; i < 24; i++) {
        const kind = ["background", "unary", "stream"][i % 3];
        const body = { model: MODEL, input: `Once upon a time ${round}.${i}`, generation_config: { max_output_tokens: 8 + (i % 5) * 12 } };
        if (kind === "background") {
          // temperature 0: a job run again after a restart gives the model's one answer
          const bg = { ...body, generation_config: { ...body.generation_config, temperature: 0 } };
          jobs.push(post(s, { ...bg, background: true }).then(async (r) => {
            if (r.status !== 200) return;
            const j = await r.json();
            const a = { kind, body: bg, shown: false, ended: false };
            acked.set(j.id, a);
            // poll until the kill: a terminal status always comes with usage;
            // output shown while running means it is never run again
            while (!killed) {
              const g = await getJson(s, j.id).catch(() => null);
              if (!g || g.status !== 200 || killed) break;
              if (TERMINAL.has(g.json.status)) {
                terminalPolls++;
                a.ended = true;
                assert.ok(g.json.usage, `GET showed ${g.json.status} without usage`);
                break;
              }
              if (outputText(g.json)) a.shown = true;
              await sleep(5);
            }
          }).catch((e) => { if (!killed) throw e; }));
        } else if (kind === "unary") {
          jobs.push(post(s, body).then(async (r) => {
            if (r.status !== 200) return;
            const j = await r.json();
            acked.set(j.id, { kind, status: j.status, text: outputText(j), usage: j.usage });
          }).catch((e) => { if (!killed) throw e; }));
        } else {
          jobs.push(streamCreate(s, body, (id) => acked.set(id, { kind })).catch((e) => { if (!killed) throw e; }));
        }
      }
      await sleep(150 + ((round * 181) % 500));
      killed = true;
      s.proc.kill("SIGKILL");
      await s.exited;
      await Promise.allSettled(jobs);
      logs += s.log();
    }
    // the last restart: every acknowledged id, consistent with its reply
    const s = await startServer(data);
    let lost = 0, interrupted = 0, rerun = 0;
    for (const [id, a] of acked) {
      const g = await getTerminal(s, id);
      if (g.status !== 200) {
        lost++;
        continue;
      }
      assertConsistent(g.json, `${a.kind} ${id}`);
      if (g.json.status === "failed" && /server stopped/.test(g.json.errors[0].message)) interrupted++;
      if (a.kind === "background") { // it ran to its end (maybe again after a restart), or showed output and failed
        if (g.json.status === "failed") {
          assert.match(g.json.errors[0].message, SHOWN_OUTPUT, `background ${id}`);
        } else {
          assert.equal(outputText(g.json), await modelAnswer(s, a.body), `background ${id}: the model's answer`);
          const again = (logs + s.log()).includes(`interaction ${id}: the server stopped before any output; running it again`);
          assert.ok(!(a.shown && again), `background ${id} showed output before a kill, yet ran again`);
          if (again) rerun++;
        }
      }
      if (a.kind === "unary") { // a unary 200 came after its record was stored: GET shows the same
        assert.equal(g.json.status, a.status, `unary ${id}`);
        assert.equal(outputText(g.json), a.text, `unary ${id}`);
        assert.deepEqual(g.json.usage, a.usage, `unary ${id}`);
      }
    }
    await stop(s);
    console.log(`kill -9 loop: ${ROUNDS} rounds, ${acked.size} acknowledged ids, ${lost} lost, ` +
      `${interrupted} marked failed as interrupted, ${rerun} background ones run again after a restart, ` +
      `${terminalPolls} terminal polls with usage`);
    assert.equal(lost, 0, `${lost} of ${acked.size} acknowledged ids were lost`);
    assert.ok(acked.size > ROUNDS, "the bursts were acknowledged at all");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Synchronised on states only: job A has shown output (so the store says
// it has output) and B, C, D wait behind it in the one slot when the kill
// comes; A's slow decode (100 ms a token, 400 tokens) cannot end first.
// After the restart (one slot again) C, deleted while B runs, is not run.
test("kill -9 with background jobs queued: they run again after the restart; one that showed output fails", async () => {
  const dir = mkdtempSync(join(tmpdir(), "castor-resume-"));
  const data = join(dir, "data");
  let s = null;
  const job = (input, model = MODEL, max = 24) =>
    ({ model, input, generation_config: { max_output_tokens: max, temperature: 0 } });
  try {
    s = await startServer(data, ["-np", "1", "--alias", "other=stories260K"], { CST_FAULT: "decode_sleep_ms:100" });
    const create = async (body) => {
      const r = await post(s, { ...body, background: true });
      assert.equal(r.status, 200);
      return (await r.json()).id;
    };
    const a = await create(job("Once upon a time", MODEL, 400));
    for (;;) { // A holds the slot and has shown output
      const g = await getJson(s, a);
      assert.equal(g.json.status, "in_progress");
      if (outputText(g.json)) break;
      await sleep(20);
    }
    const b = await create(job("The little dog"));
    const c = await create(job("Lily had a red ball"));
    const d = await create(job("Tom went to the park", "other")); // a model the next start does not serve
    const e = await create(job("Ben saw a big cat"));
    for (const id of [b, c, d, e]) assert.equal((await getJson(s, id)).json.status, "queued", id);
    s.proc.kill("SIGKILL");
    await s.exited;
    // no alias: "other" is not served any more; one slot: C waits while B runs again
    s = await startServer(data, ["-np", "1"], { CST_FAULT: "decode_sleep_ms:100" });
    const del = await fetch(`${s.url}/v1beta/interactions/${c}`, { method: "DELETE" });
    assert.equal(del.status, 200, "a job waiting to run again can be deleted");
    const can = await fetch(`${s.url}/v1beta/interactions/${e}/cancel`, { method: "POST" });
    assert.equal(can.status, 200, "a job waiting to run again can be cancelled");
    assert.equal((await can.json()).status, "cancelled");
    await getTerminal(s, d); // the server has read its start-up lines by now
    assert.match(s.log(), /4 background interactions were queued or had shown no output/);
    const ga = await getTerminal(s, a);
    assert.equal(ga.json.status, "failed");
    assert.match(ga.json.errors[0].message, SHOWN_OUTPUT);
    while (!s.log().includes(`interaction ${c}: deleted or ended while it waited`)) {
      assert.equal((await getJson(s, c)).status, 404, "a deleted job ran again");
      await sleep(20);
    }
    assert.equal((await getJson(s, c)).status, 404, "a deleted job is not brought back by running it");
    for (const [id, input] of [[b, "The little dog"]]) {
      const g = await getTerminal(s, id);
      assert.ok(["completed", "incomplete"].includes(g.json.status), `${id}: ${JSON.stringify(g.json)}`);
      assertConsistent(g.json, id);
      const text = outputText(g.json);
      assert.ok(text.length > 0, `${id} has output: ${JSON.stringify(g.json)}`);
      assert.equal(text, await modelAnswer(s, job(input)), `${id}: the model's answer`);
    }
    const ge = await getJson(s, e); // cancelled while it waited: never run
    assert.equal(ge.json.status, "cancelled");
    assert.equal(outputText(ge.json), "");
    const gd = await getTerminal(s, d);
    assert.equal(gd.json.status, "failed");
    assert.equal(gd.json.errors[0].code, "not_found");
    assert.match(gd.json.errors[0].message, /without the model 'other'/);
    assertConsistent(gd.json, d);
    assert.equal(await stop(s), 0);
    s = await startServer(data); // ended jobs are not run a second time
    const gb = await getJson(s, b);
    assert.equal(outputText(gb.json), await modelAnswer(s, job("The little dog")), "b kept its answer");
    assert.equal(await stop(s), 0);
    assert.doesNotMatch(s.log(), /running them again/);
  } finally {
    if (s && s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});

// Fill the data dir's file system, or (where mounting is not permitted) cap
// the database with the test-only CST_STORE_MAX_PAGES; then creates must
// either be stored (200) or fail with a JSON 503 before any 200.
test("disk full: a create is stored or refused with 503, never acknowledged and lost", async () => {
  const dir = mkdtempSync(join(tmpdir(), "castor-full-"));
  const mnt = join(dir, "mnt");
  mkdirSync(mnt);
  let mounted = false;
  try { // FAULT_NO_MOUNT=1 takes the fallback path where mounting works
    if (process.env.FAULT_NO_MOUNT) throw new Error("no mount");
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt], { stdio: "ignore" });
    mounted = true;
  } catch {
    console.log("disk full: cannot mount a tmpfs here; using the injected cap (CST_STORE_MAX_PAGES)");
  }
  const data = join(mnt, "data");
  const acked = new Set();
  const statuses = {};
  try {
    const s = await startServer(data, ["-np", "1"], mounted ? {} : { CST_STORE_MAX_PAGES: "40" });
    for (let i = 0; i < 3; i++) { // stored while there is room
      const r = await post(s, { model: MODEL, input: `Before ${i}`, generation_config: { max_output_tokens: 4 } });
      assert.equal(r.status, 200);
      acked.add((await r.json()).id);
    }
    const filler = join(mnt, "filler");
    if (mounted) { // leave no free block
      const fd = openSync(filler, "w");
      const chunk = Buffer.alloc(64 * 1024, 7);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (e) {
        assert.equal(e.code, "ENOSPC");
      }
      try {
        for (;;) writeSync(fd, chunk, 0, 512);
      } catch { /* full */ }
      closeSync(fd);
    }
    const long = "The little dog ran to the park and played with a red ball. ".repeat(20);
    for (let i = 0; i < 80; i++) {
      const kind = ["background", "unary", "stream"][i % 3];
      const body = { model: MODEL, input: `${long} ${i}`, generation_config: { max_output_tokens: 4 } };
      let status, errJson, events;
      if (kind === "stream") {
        const r = await streamCreate(s, body, (id) => acked.add(id));
        status = r.status;
        errJson = r.json;
        events = r.events;
      } else {
        const r = await post(s, kind === "background" ? { ...body, background: true } : body);
        status = r.status;
        const j = await r.json();
        if (status === 200) acked.add(j.id);
        else errJson = j;
      }
      statuses[status] = (statuses[status] || 0) + 1;
      if (status === 200 && events) { // a stream ends with [DONE], after an error event if it could not be stored
        assert.equal(events.at(-1).data, "[DONE]");
        const err = events.find((e) => e.event === "error");
        if (err) assert.match(err.data.error.message, /could not be stored/);
      } else if (status !== 200) {
        assert.equal(status, 503, `${kind}: ${JSON.stringify(errJson)}`);
        assert.equal(errJson.error.code, "unavailable");
        assert.match(errJson.error.message, /full/);
      }
      if (statuses[503] >= 6) break;
    }
    assert.ok(statuses[503] > 0, `no create was refused on a full disk: ${JSON.stringify(statuses)}`);
    const h = await fetch(`${s.url}/health`);
    assert.equal(h.status, 200, "the server keeps serving while the disk is full");
    if (mounted) unlinkSync(filler);
    else await stop(s);
    // room again (mounted: the same server; injected: a restart without the cap)
    const s2 = mounted ? s : await startServer(data);
    const r = await post(s2, { model: MODEL, input: "Once", generation_config: { max_output_tokens: 4 } });
    assert.equal(r.status, 200);
    acked.add((await r.json()).id);
    await stop(s2);
    const s3 = await startServer(data);
    for (const id of acked) {
      const g = await getTerminal(s3, id);
      assert.equal(g.status, 200, `acknowledged ${id} lost after the disk was full`);
      assertConsistent(g.json, id);
    }
    await stop(s3);
    console.log(`disk full (${mounted ? "tmpfs" : "injected"}): ${JSON.stringify(statuses)}, ${acked.size} acknowledged, all retrievable`);
  } finally {
    if (mounted) execFileSync("umount", ["-l", mnt], { stdio: "ignore" });
    rmSync(dir, { recursive: true, force: true });
  }
});

// GET path from another loopback address (127.0.0.2): a different client.
function getFrom(port, path, localAddress) {
  return new Promise((resolve, reject) => {
    const rq = http.request({ host: "127.0.0.1", port, path, localAddress, timeout: 10000 }, (res) => {
      let b = "";
      res.on("data", (d) => (b += d));
      res.on("end", () => resolve({ status: res.statusCode, body: b }));
    });
    rq.on("timeout", () => rq.destroy(new Error("timeout")));
    rq.on("error", reject);
    rq.end();
  });
}

test("descriptor exhaustion: one address's idle sockets do not starve another; the server survives", async () => {
  const dir = mkdtempSync(join(tmpdir(), "castor-fds-"));
  let s;
  try {
    // 96 descriptors: the server connects at most 32 (the rest of the limit
    // stays for the store and models), 16 per address
    s = await startServer(join(dir, "data"), ["-np", "1", "--max-connections-per-ip", "16"], {}, "ulimit -n 96");
    // (the port file can come before node has read the server's stderr)
    for (let i = 0; i < 250 && !/descriptor limit/.test(s.log()); i++) await sleep(20);
    assert.match(s.log(), /descriptor limit \(96\) holds 32 connections, not 16384/);
    const socks = [];
    for (let i = 0; i < 160; i++) {
      const c = net.connect(s.port, "127.0.0.1");
      c.on("error", () => {});
      c.on("connect", () => c.write("GET /health HTTP/1.1\r\nHost: x\r\n")); // never finishes its headers
      socks.push(c);
    }
    await sleep(500);
    // another client (127.0.0.2) is served while 127.0.0.1 holds its sockets
    const other = await getFrom(s.port, "/health", "127.0.0.2");
    assert.equal(other.status, 200, "another address is served while one holds idle sockets");
    // while exhausted: a create is answered or its connection fails, nothing is acknowledged and lost
    let acked = null;
    const t0 = Date.now();
    try {
      const r = await fetch(`${s.url}/v1beta/interactions`, {
        method: "POST", headers: { "content-type": "application/json" }, signal: AbortSignal.timeout(3000),
        body: JSON.stringify({ model: MODEL, input: "Once", generation_config: { max_output_tokens: 4 } }),
      });
      if (r.status === 200) acked = (await r.json()).id;
      else await r.text();
    } catch { /* refused or still waiting for a descriptor (connection limits: not yet): fine */ }
    assert.equal(s.proc.exitCode, null, "the server died: " + s.log().slice(-2000));
    for (const c of socks) c.destroy();
    let ok = false;
    for (let i = 0; i < 200 && !ok; i++) {
      try {
        ok = (await fetch(`${s.url}/health`, { signal: AbortSignal.timeout(2000) })).status === 200;
      } catch { await sleep(50); }
    }
    assert.ok(ok, "/health answers again once the idle sockets are gone");
    console.log(`descriptor exhaustion: /health again after ${Date.now() - t0} ms`);
    const r = await post(s, { model: MODEL, input: "Once", generation_config: { max_output_tokens: 4 } });
    assert.equal(r.status, 200);
    const id = (await r.json()).id;
    for (const x of [id, acked].filter(Boolean)) assert.equal((await getJson(s, x)).status, 200);
    assert.equal(await stop(s), 0);
  } finally {
    if (s) await stop(s, "SIGKILL"); // a failed assertion must not leave it running (the suite would hang)
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a damaged database: start-up refuses it and says what is wrong", async () => {
  const dir = mkdtempSync(join(tmpdir(), "castor-dmg-"));
  try {
    const data = join(dir, "data");
    mkdirSync(data);
    writeFileSync(join(data, "castor.db"), Buffer.alloc(8192, "garbage!"));
    await assert.rejects(startServer(data), (e) => {
      assert.match(e.message, /castor\.db is damaged or is not a SQLite database/);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// PRAGMA quick_check reads the whole database: it runs only when the last
// stop was not clean (castor.db.running is left behind), and then still
// stops a start-up on a database damaged by the crash, naming the file.
test("the integrity check runs after an unclean stop only, and catches a database damaged after a kill -9", async () => {
  const dir = mkdtempSync(join(tmpdir(), "castor-chk-"));
  const data = join(dir, "data");
  const db = join(data, "castor.db"), marker = join(data, "castor.db.running");
  const once = { model: MODEL, input: "Once", generation_config: { max_output_tokens: 4 } };
  try {
    let s = await startServer(data);
    assert.ok(existsSync(marker), "the marker exists while the server runs");
    assert.equal((await post(s, once)).status, 200);
    assert.equal(await stop(s), 0);
    assert.ok(!existsSync(marker), "a clean stop removes the marker");
    s = await startServer(data); // clean start: no full check
    assert.doesNotMatch(s.log(), /not clean/);
    const r = await post(s, once);
    assert.equal(r.status, 200);
    const id = (await r.json()).id;
    s.proc.kill("SIGKILL");
    await s.exited;
    assert.ok(existsSync(marker), "kill -9 leaves the marker");
    s = await startServer(data); // unclean: checked, intact, the acknowledged id is there
    assert.match(s.log(), /last stop was not clean; checking the database/);
    assert.equal((await getJson(s, id)).status, 200);
    s.proc.kill("SIGKILL");
    await s.exited;
    // the crash damaged the file: every page after the first is garbage, the WAL is gone
    rmSync(`${db}-wal`, { force: true });
    rmSync(`${db}-shm`, { force: true });
    const size = readFileSync(db).length;
    assert.ok(size > 4096, `castor.db has pages beyond the first (${size} bytes)`);
    const fd = openSync(db, "r+");
    writeSync(fd, Buffer.alloc(size - 4096, "garbage!"), 0, size - 4096, 4096);
    closeSync(fd);
    await assert.rejects(startServer(data), (e) => {
      assert.match(e.message, /last stop was not clean/);
      assert.match(e.message, /the store \S*castor\.db is damaged or is not a SQLite database/);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
