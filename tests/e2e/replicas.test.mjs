// replicas.test.mjs: three replicas on one PostgreSQL, behind HAProxy
// (replicas.sh starts them). Env: CASTOR_R1..R3 (host:port of each replica),
// CASTOR_LB (the balancer's URL), CASTOR_KEY, REPLICA_PIDS, CST_PG_DIR/BIN.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { pgQuery, sleep } from "./common.mjs";

const R = [process.env.CASTOR_R1, process.env.CASTOR_R2, process.env.CASTOR_R3].map((a) => `http://${a}`);
const LB = process.env.CASTOR_LB;
const KEY = process.env.CASTOR_KEY;
const PIDS = process.env.REPLICA_PIDS.split(" ").map(Number);
const MODEL = "gemini-3.5-flash";

async function call(base, method, path, body, key = KEY) {
  const h = { "content-type": "application/json" };
  if (key) h["x-goog-api-key"] = key;
  const r = await fetch(base + path, { method, headers: h, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, headers: r.headers, json, text };
}
const create = (base, body) => call(base, "POST", "/v1beta/interactions", { model: MODEL, ...body });
const get = (base, id, q = "") => call(base, "GET", `/v1beta/interactions/${id}${q}`);

// the data lines of an SSE text, parsed ("[DONE]" kept as a string)
const sseData = (text) => text.split("\n").filter((l) => l.startsWith("data: ")).map((l) => {
  const d = l.slice(6);
  return d === "[DONE]" ? d : JSON.parse(d);
});
// poll until pred(value) (state-synchronised; gives up after limit ms)
async function until(what, fn, pred, limit = 30000) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn().catch(() => undefined); // the balancer may refuse while it marks a replica down
    if (pred(v)) return v;
    if (Date.now() - t0 > limit) assert.fail(`${what}: still ${JSON.stringify(v)?.slice(0, 300)}`);
    await sleep(50);
  }
}
const row = (id, cols) => pgQuery(process.env.CST_TEST_PG, `SELECT ${cols} FROM interactions WHERE id = '${id}'`)[0] ?? [];
async function metric(base, name) {
  const t = await (await fetch(base + "/metrics", { headers: { "x-goog-api-key": KEY } })).text();
  const m = t.match(new RegExp(`^${name.replace(/[{}"]/g, (c) => "\\" + c)} (\\d+)`, "m"));
  return m ? Number(m[1]) : 0;
}

// creates answered 200 by each replica (from its /metrics)
async function creates(base) {
  const t = await (await fetch(base + "/metrics", { headers: { "x-goog-api-key": KEY } })).text();
  const m = t.match(/^castor_requests_total\{route="create",code="200"\} (\d+)/m);
  return m ? Number(m[1]) : 0;
}
function pgCtl(...args) {
  const bin = join(process.env.CST_PG_BIN, "pg_ctl");
  const a = ["-D", join(process.env.CST_PG_DIR, "data"), "-w", "-t", "60", ...args];
  if (process.getuid && process.getuid() === 0) execFileSync("runuser", ["-u", "postgres", "--", bin, ...a], { stdio: "ignore" });
  else execFileSync(bin, a, { stdio: "ignore" });
}

describe("replicas on one PostgreSQL", () => {
  test("create on A; get, include_input, continue and delete on B and C", async () => {
    const a = await create(R[0], { input: "Once upon a time", generation_config: { max_output_tokens: 6 } });
    assert.equal(a.status, 200, a.text);
    const id = a.json.id;
    const b = await get(R[1], id);
    assert.equal(b.status, 200, b.text);
    assert.equal(b.json.status, a.json.status);
    const outs = (steps) => steps.filter((x) => x.type !== "user_input");
    assert.deepEqual(outs(b.json.steps), outs(a.json.steps));
    const c = await get(R[2], id, "?include_input=true");
    assert.equal(c.status, 200);
    assert.equal(c.json.input, "Once upon a time");
    // another key sees nothing, on any replica
    assert.equal((await call(R[1], "GET", `/v1beta/interactions/${id}`, undefined, "replica-key-2")).status, 404);
    // B continues A's conversation: the prompt is rebuilt from the store
    const t2 = await create(R[1], { input: "And then", previous_interaction_id: id, generation_config: { max_output_tokens: 4 } });
    assert.equal(t2.status, 200, t2.text);
    assert.ok(t2.json.usage.total_input_tokens > a.json.usage.total_input_tokens + 2,
      `turn 2 sees turn 1: ${t2.json.usage.total_input_tokens} vs ${a.json.usage.total_input_tokens}`);
    // delete on C; gone everywhere
    assert.equal((await call(R[2], "DELETE", `/v1beta/interactions/${id}`)).status, 200);
    for (const base of R) assert.equal((await get(base, id)).status, 404);
    assert.equal((await call(R[0], "DELETE", `/v1beta/interactions/${id}`)).status, 404);
  });

  test("store: false writes nothing to PostgreSQL", async () => {
    const count = () => pgQuery(process.env.CST_TEST_PG,
      "SELECT (SELECT COUNT(*) FROM interactions) + (SELECT COUNT(*) FROM events)")[0][0];
    const before = count();
    const r = await create(R[0], { input: "Not kept", store: false, generation_config: { max_output_tokens: 3 } });
    assert.equal(r.status, 200, r.text);
    const s = await create(R[1], { input: "Not kept", store: false, stream: true, generation_config: { max_output_tokens: 3 } });
    assert.equal(s.status, 200);
    assert.equal(count(), before);
    assert.equal((await get(R[2], r.json.id)).status, 404);
  });

  test("cancel on B of an interaction A finished: 400, as on A", async () => {
    const a = await create(R[0], { input: "A cat", generation_config: { max_output_tokens: 3 } });
    const c = await call(R[1], "POST", `/v1beta/interactions/${a.json.id}:cancel`);
    assert.equal(c.status, 400, c.text);
    assert.match(c.json.error.message, /cannot be cancelled/);
  });

  test("stream replay on B of a run A finished", async () => {
    const a = await create(R[0], { input: "The dog", stream: true, generation_config: { max_output_tokens: 5 } });
    assert.equal(a.status, 200);
    const id = a.headers.get("x-castor-interaction-id");
    assert.match(id, /^v1_/);
    const events = a.text.split("\n").filter((l) => l.startsWith("data: {")).length;
    const r = await call(R[1], "GET", `/v1beta/interactions/${id}?stream=true&last_event_id=0`);
    assert.equal(r.status, 200);
    assert.equal(r.text.split("\n").filter((l) => l.startsWith("data: {")).length, events);
  });
});

describe("live runs across replicas (directly, not through the balancer)", () => {
  test("a stream replay on B follows a run still live on A to its end, with A's event ids and order", async () => {
    const a = await fetch(`${R[0]}/v1beta/interactions?alt=sse`, {
      method: "POST", headers: { "content-type": "application/json", "x-goog-api-key": KEY },
      body: JSON.stringify({ model: MODEL, input: "Once upon a time", generation_config: { max_output_tokens: 100 } }),
    });
    assert.equal(a.status, 200);
    const id = a.headers.get("x-castor-interaction-id");
    const reader = a.body.getReader();
    const dec = new TextDecoder();
    let textA = "";
    while (!textA.includes("step.delta")) textA += dec.decode((await reader.read()).value);
    // B has no run of it in memory: it follows the event log A stores while it runs
    const b = await call(R[1], "GET", `/v1beta/interactions/${id}?stream=true&last_event_id=0`);
    assert.equal(b.status, 200, b.text);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      textA += dec.decode(value);
    }
    const evA = sseData(textA), evB = sseData(b.text);
    assert.equal(evA.at(-2).event_type, "interaction.completed");
    assert.equal(evA.at(-2).interaction.status, "incomplete");
    assert.deepEqual(evB, evA, "B's events are A's");
    assert.ok(evA.filter((e) => e.event_type === "step.delta").length > 10);
    // and the same as a replay after the end, from the middle too
    const c = await call(R[2], "GET", `/v1beta/interactions/${id}?stream=true&last_event_id=0`);
    assert.deepEqual(sseData(c.text), evA);
    const tail = await call(R[2], "GET", `/v1beta/interactions/${id}?stream=true&last_event_id=5`);
    assert.deepEqual(sseData(tail.text), evA.slice(5));
  });

  test("cancel on B stops the background run on A: cancelled, fewer tokens than asked", async () => {
    const a = await create(R[0], { input: "Tell me a long story", background: true, generation_config: { max_output_tokens: 250 } });
    assert.equal(a.status, 200, a.text);
    const id = a.json.id;
    // A runs it (its lease), and B sees it in progress through the store
    assert.match(row(id, "lease_owner")[0], new RegExp(`:${PIDS[0]}:`));
    await until("in_progress on B", async () => (await get(R[1], id)).json.status, (s) => s === "in_progress");
    await until("output stored", async () => row(id, "has_output")[0], (v) => v === "t");
    const c = await call(R[1], "POST", `/v1beta/interactions/${id}/cancel`);
    assert.equal(c.status, 200, c.text);
    assert.equal(c.json.status, "cancelled");
    for (const base of R) {
      const g = await get(base, id);
      assert.equal(g.json.status, "cancelled");
      assert.ok(g.json.usage.total_output_tokens > 0 && g.json.usage.total_output_tokens < 250,
        `stopped early: ${g.json.usage.total_output_tokens}`);
    }
    // the stored log ends as a cancelled run's does, on every replica
    const ev = sseData((await call(R[2], "GET", `/v1beta/interactions/${id}?stream=true`)).text);
    assert.equal(ev.at(-2).interaction.status, "cancelled");
    // a second cancel, anywhere: already cancelled
    assert.equal((await call(R[1], "POST", `/v1beta/interactions/${id}/cancel`)).status, 400);
  });
});

describe("the shared queue of background jobs", () => {
  test("a background job C's scheduler cannot take waits in the queue and runs on A or B", async () => {
    const C = R[2]; // --max-queue 1, -np 2
    const claims = async () => (await Promise.all(R.slice(0, 2).map((b) => metric(b, "castor_queue_claims_total")))).reduce((x, y) => x + y);
    const before = await claims();
    const busy = [];
    for (let k = 0; k < 3; k++) { // two slots and the one queue place
      const r = await create(C, { input: `Busy ${k}`, background: true, generation_config: { max_output_tokens: 150 } });
      assert.equal(r.status, 200, r.text);
      busy.push(r.json.id);
    }
    const q = await create(C, { input: "Waiting for anyone", background: true, generation_config: { max_output_tokens: 10 } });
    assert.equal(q.status, 200, q.text);
    assert.equal(q.json.status, "queued");
    assert.deepEqual(q.json.steps, []);
    // C answered it, A or B claims and runs it while C is still busy
    const g = await until("run by another replica", async () => (await get(C, q.json.id)).json, (j) => j && !["queued", "in_progress"].includes(j.status));
    assert.equal(g.status, "incomplete");
    assert.equal(g.usage.total_output_tokens, 10);
    assert.equal(await claims(), before + 1);
    for (const id of busy) assert.equal((await call(C, "POST", `/v1beta/interactions/${id}/cancel`)).status, 200);
  });
});

describe("behind HAProxy (deploy/haproxy.cfg)", () => {
  test("health through the balancer; every replica reports its store", async () => {
    const h = await call(LB, "GET", "/health");
    assert.equal(h.status, 200);
    assert.equal(h.json.store, "postgres");
    for (const base of R) {
      const t = await (await fetch(base + "/metrics", { headers: { "x-goog-api-key": KEY } })).text();
      assert.match(t, /^castor_store_op_seconds_count\{backend="postgres"\} \d+/m);
      assert.match(t, /^castor_store_pool_connections\{state="size"\} 8/m);
    }
  });

  test("a conversation sticks to the replica that holds its KV cache", async () => {
    const before = await Promise.all(R.map(creates));
    let r = await create(LB, { input: "Lily went to the park", generation_config: { max_output_tokens: 8 } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get("x-castor-interaction-id"), r.json.id);
    const ids = [r.json.id];
    let cached = 0;
    for (let turn = 2; turn <= 4; turn++) {
      r = await create(LB, { input: `Turn ${turn}`, previous_interaction_id: r.json.id, generation_config: { max_output_tokens: 8 } });
      assert.equal(r.status, 200, r.text);
      cached += r.json.usage.total_cached_tokens;
      ids.push(r.json.id);
    }
    const after = await Promise.all(R.map(creates));
    const delta = after.map((x, i) => x - before[i]);
    assert.deepEqual(delta.slice().sort(), [0, 0, 4], `all four turns on one replica: ${delta}`);
    assert.ok(cached > 0, "later turns reuse the KV cache of the earlier ones");
    // round robin for new conversations: three fresh ones do not all land on one replica
    const b2 = await Promise.all(R.map(creates));
    for (let k = 0; k < 3; k++) assert.equal((await create(LB, { input: `fresh ${k}`, generation_config: { max_output_tokens: 2 } })).status, 200);
    const a2 = await Promise.all(R.map(creates));
    assert.ok(a2.filter((x, i) => x > b2[i]).length >= 2, "new conversations spread over the replicas");
  });

  test("kill -9 of a replica: every acknowledged id stays retrievable, the conversation continues elsewhere", async () => {
    const before = await Promise.all(R.map(creates));
    let r = await create(LB, { input: "Tim had a red ball", generation_config: { max_output_tokens: 6 } });
    assert.equal(r.status, 200);
    const ids = [r.json.id], statuses = [r.json.status];
    for (let k = 0; k < 2; k++) {
      r = await create(LB, { input: "more", previous_interaction_id: r.json.id, generation_config: { max_output_tokens: 6 } });
      assert.equal(r.status, 200);
      ids.push(r.json.id);
      statuses.push(r.json.status);
    }
    const after = await Promise.all(R.map(creates));
    const victim = after.findIndex((x, i) => x - before[i] === 3);
    assert.ok(victim >= 0, "the conversation was on one replica");
    process.kill(PIDS[victim], "SIGKILL");
    await sleep(200);
    for (const [k, id] of ids.entries()) {
      const g = await get(LB, id);
      assert.equal(g.status, 200, `${id} after the kill: ${g.text}`);
      assert.equal(g.json.status, statuses[k]);
    }
    const t = await create(LB, { input: "after the crash", previous_interaction_id: ids[2], generation_config: { max_output_tokens: 4 } });
    assert.equal(t.status, 200, t.text);
    assert.ok(t.json.usage.total_input_tokens > r.json.usage.total_input_tokens, "the whole conversation, from the store");
    // keep the survivors for the next test
    R.splice(victim, 1);
    PIDS.splice(victim, 1);
  });

  test("the database stopped under load: 503 JSON errors, then recovery without a restart", async () => {
    const kept = await create(LB, { input: "Before the outage", generation_config: { max_output_tokens: 4 } });
    assert.equal(kept.status, 200);
    // load: creates in flight while the database goes away
    let stop = false;
    const statuses = [];
    const load = (async () => {
      while (!stop) {
        const r = await create(LB, { input: "load", generation_config: { max_output_tokens: 2 } }).catch(() => ({ status: 0 }));
        statuses.push(r.status === 503 && !r.json ? "503 (balancer: no replica up)" : r.status);
        if (r.status !== 200 && r.json) statuses.push(r.json.error?.code);
        await sleep(20);
      }
    })();
    try {
      await sleep(300);
      pgCtl("-m", "fast", "stop");
      try {
        for (const base of R) {
          const h = await call(base, "GET", "/health");
          assert.equal(h.status, 503);
          assert.equal(h.json.error.code, "unavailable");
          assert.match(h.json.error.message, /store/);
          assert.equal(h.headers.get("retry-after"), "1");
          const g = await get(base, kept.json.id);
          assert.equal(g.status, 503, g.text);
          assert.equal(g.json.error.code, "unavailable");
          const c = await create(base, { input: "during the outage", generation_config: { max_output_tokens: 2 } });
          assert.equal(c.status, 503, c.text);
          assert.equal(c.json.error.code, "unavailable");
        }
        const t = await (await fetch(R[0] + "/metrics", { headers: { "x-goog-api-key": KEY } })).text();
        assert.ok(Number(t.match(/^castor_store_errors_total (\d+)/m)[1]) > 0);
      } finally {
        pgCtl("-l", join(process.env.CST_PG_DIR, "server.log"), "start");
      }
      // recovery: the pools reconnect on their own
      let ok = false;
      for (let k = 0; k < 100 && !ok; k++) {
        ok = (await call(LB, "GET", "/health")).status === 200;
        if (!ok) await sleep(100);
      }
      assert.ok(ok, "healthy again");
      for (const base of R) assert.equal((await call(base, "GET", "/health")).status, 200);
      await sleep(300);
    } finally {
      stop = true;
      await load;
    }
    // under load, every answer was a success or a 503 (JSON UNAVAILABLE from a
    // replica, or the balancer's own while it had taken every replica out)
    const bad = statuses.filter((x) => x !== 200 && x !== 503 && x !== "unavailable" && x !== "503 (balancer: no replica up)");
    assert.deepEqual(bad, [], `statuses under load: ${statuses}`);
    assert.ok(statuses.includes(200));
    const g = await get(LB, kept.json.id);
    assert.equal(g.status, 200, g.text);
    const n = await create(LB, { input: "After the outage", generation_config: { max_output_tokens: 2 } });
    assert.equal(n.status, 200, n.text);
    assert.equal((await get(R[0], n.json.id)).status, 200);
    const t = await (await fetch(R[0] + "/metrics", { headers: { "x-goog-api-key": KEY } })).text();
    assert.ok(Number(t.match(/^castor_store_reconnects_total (\d+)/m)[1]) > 0);
  });
});

describe("background jobs when their replica dies (lease expiry)", () => {
  test("kill -9 of the replica running background jobs: the one without output runs again elsewhere, the others fail saying why; every id stays retrievable", async () => {
    // the survivors of the earlier kill: A runs the jobs, B takes them over
    const [A, B] = R;
    const before = await metric(B, 'castor_queue_takeovers_total{outcome="rerun"}');
    // two jobs fill A's two slots (-np 2); a third waits in A's scheduler
    const long = [];
    for (let k = 0; k < 2; k++) {
      const r = await create(A, { input: `Story ${k}`, background: true, generation_config: { max_output_tokens: 250 } });
      assert.equal(r.status, 200, r.text);
      long.push(r.json.id);
    }
    for (const id of long) await until("output stored", async () => row(id, "has_output")[0], (v) => v === "t");
    const q = await create(A, { input: "A queued one", background: true, generation_config: { max_output_tokens: 12 } });
    assert.equal(q.status, 200, q.text);
    assert.equal(q.json.status, "queued");
    assert.deepEqual(row(q.json.id, "status, has_output"), ["queued", "f"]);
    process.kill(PIDS[0], "SIGKILL");
    // B takes each over when its lease expires: through the balancer too
    for (const id of long) {
      const g = await until("failed after the kill", async () => (await get(LB, id)).json, (j) => j?.status === "failed");
      assert.match(g.errors[0].message, /stopped after it had stored output/);
      const ev = sseData((await call(B, "GET", `/v1beta/interactions/${id}?stream=true`)).text);
      assert.deepEqual(ev.slice(-3).map((e) => e.event_type ?? e), ["error", "interaction.completed", "[DONE]"]);
    }
    const g = await until("ran again on B", async () => (await get(LB, q.json.id)).json, (j) => j && !["queued", "in_progress"].includes(j.status));
    assert.equal(g.status, "incomplete", JSON.stringify(g));
    assert.equal(g.usage.total_output_tokens, 12);
    assert.ok(g.steps.some((s) => s.type === "model_output"));
    assert.equal(await metric(B, 'castor_queue_takeovers_total{outcome="rerun"}'), before + 1);
    assert.deepEqual(row(q.json.id, "lease_owner IS NULL"), ["t"], "its lease ended with the run");
  });
});
