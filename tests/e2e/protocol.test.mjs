// protocol.test.mjs: protocol laxness a client or a proxy could abuse, and
// the serving defaults, against servers spawned here on stories260K: request
// framing (Content-Length that disagrees, beside Transfer-Encoding; 414 and
// 431 in the JSON shape; Content-Length: -1), ?alt= /
// ?stream= on create, duplicate JSON keys, /metrics behind the API key, the
// input-bytes bound checked before tokenizing, the default output cap, and
// `castor serve` without a model, the image decode memory budget.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import net from "node:net";
import { join } from "node:path";
import { deflateSync, crc32 } from "node:zlib";

const CASTOR = process.env.CASTOR;
const STORIES = process.env.CASTOR_STORIES;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startServer(dir, args) {
  const portFile = join(dir, `port-${Date.now()}`);
  const proc = spawn(CASTOR, ["serve", "-m", STORIES, "--host", "127.0.0.1", "--port", "0", "--port-file", portFile,
    "--data-dir", join(dir, "data"), "-t", "1", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr.on("data", (d) => (log += d));
  const exited = new Promise((res) => proc.on("exit", (code, sig) => res(sig ? sig : code)));
  for (let i = 0; i < 600 && !existsSync(portFile); i++) await sleep(25);
  if (!existsSync(portFile)) throw new Error("server did not start: " + log);
  const port = Number(readFileSync(portFile, "utf8").trim());
  return { url: `http://127.0.0.1:${port}`, port, proc, exited };
}

// Send raw bytes; resolve everything the server sent until it closed (or 5 s).
function raw(port, bytes) {
  return new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1");
    let out = "";
    let closed = false;
    const t = setTimeout(() => { c.destroy(); resolve({ out, closed }); }, 5000);
    c.on("data", (d) => (out += d));
    c.on("error", () => {});
    c.on("close", () => { closed = true; clearTimeout(t); resolve({ out, closed }); });
    c.write(bytes);
  });
}

let dir, open, keyed;
const KEY = "protocol-key-1";
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "castor-proto-"));
  writeFileSync(join(dir, "keys"), KEY + "\n");
  open = await startServer(dir, ["--no-auth"]);
  keyed = await startServer(dir, ["--api-keys", join(dir, "keys"), "--data-dir", join(dir, "data2")]);
});
after(async () => {
  for (const s of [open, keyed]) if (s) { s.proc.kill("SIGTERM"); await s.exited; }
  rmSync(dir, { recursive: true, force: true });
});

function create(s, body, query = "", headers = {}) {
  return fetch(`${s.url}/v1beta/interactions${query}`, {
    method: "POST", headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

const BODY = { model: "stories260K", input: "Once upon a time", generation_config: { max_output_tokens: 4 } };

test("Content-Length headers that disagree: 400 in the JSON shape, connection closed", async () => {
  const b = JSON.stringify(BODY);
  const r = await raw(open.port, `POST /v1beta/interactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${b.length}\r\nContent-Length: 5\r\n\r\n${b}GET /health HTTP/1.1\r\nHost: x\r\n\r\n`);
  assert.match(r.out, /^HTTP\/1\.1 400 /);
  assert.match(r.out, /"message":"the request has Content-Length headers that disagree"/);
  assert.equal((r.out.match(/HTTP\/1\.1 /g) || []).length, 1, "nothing smuggled after the body: " + r.out);
  assert.ok(r.closed);
});

test("Content-Length beside Transfer-Encoding: 400", async () => {
  const r = await raw(open.port, `POST /v1beta/interactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
    `Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`);
  assert.match(r.out, /^HTTP\/1\.1 400 /);
  assert.match(r.out, /both Content-Length and Transfer-Encoding/);
});

test("a request target over 8 KiB: 414, headers over 32 KiB: 431, both in the JSON shape", async () => {
  const long = await raw(open.port, `GET /v1beta/interactions/x?pad=${"a".repeat(10000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  assert.match(long.out, /^HTTP\/1\.1 414 /);
  const lj = JSON.parse(long.out.slice(long.out.indexOf("\r\n\r\n") + 4));
  assert.equal(lj.error.code, "invalid_request");
  assert.match(lj.error.message, /request target is \d+ bytes, over the server's limit of 8192/);
  const big = await raw(open.port, `GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n` +
    `X-Pad-A: ${"b".repeat(20000)}\r\nX-Pad-B: ${"c".repeat(20000)}\r\n\r\n`);
  assert.match(big.out, /^HTTP\/1\.1 431 /);
  const bj = JSON.parse(big.out.slice(big.out.indexOf("\r\n\r\n") + 4));
  assert.equal(bj.error.code, "invalid_request");
  assert.match(bj.error.message, /request headers are \d+ bytes, over the server's limit of 32768/);
  // Content-Length: -1 is refused before libmicrohttpd parses it (the
  // framing guard, docs/internals/api.md): a 400 in the JSON shape, one
  // status line, the connection closed (framing.test.mjs has the others)
  const neg = await raw(open.port, `POST /v1beta/interactions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n`);
  assert.match(neg.out, /^HTTP\/1\.1 400 /);
  assert.equal((neg.out.match(/HTTP\/1\.1 /g) || []).length, 1, neg.out);
  assert.match(JSON.parse(neg.out.slice(neg.out.indexOf("\r\n\r\n") + 4)).error.message, /Content-Length/);
  assert.ok(neg.closed);
  assert.equal((await fetch(`${open.url}/health`)).status, 200);
});

test("?alt= and ?stream= on create: validated, not ignored", async () => {
  for (const q of ["?alt=xyz", "?stream=maybe", "?alt="]) {
    const r = await create(open, BODY, q);
    assert.equal(r.status, 400, q);
    const j = await r.json();
    assert.equal(j.error.code, "invalid_request");
    assert.match(j.error.message, /^(alt|stream): /);
  }
  let r = await create(open, BODY, "?stream=true");
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /text\/event-stream/);
  assert.match(await r.text(), /event: interaction\.completed/);
  r = await create(open, BODY, "?alt=json&stream=false");
  assert.equal(r.status, 200);
  assert.equal((await r.json()).object, "interaction");
});

test("duplicate JSON keys are refused", async () => {
  const r = await create(open, '{"model":"stories260K","input":"a","input":"b"}');
  assert.equal(r.status, 400);
  assert.match((await r.json()).error.message, /duplicate object key/);
});

test("/metrics needs a key when --api-keys is on; open without auth", async () => {
  let r = await fetch(`${keyed.url}/metrics`);
  assert.equal(r.status, 401);
  assert.equal((await r.json()).error.code, "unauthenticated");
  r = await fetch(`${keyed.url}/metrics`, { headers: { "x-goog-api-key": "wrong" } });
  assert.equal(r.status, 403);
  await r.text();
  r = await fetch(`${keyed.url}/metrics`, { headers: { "x-goog-api-key": KEY } });
  assert.equal(r.status, 200);
  assert.match(await r.text(), /castor_/);
  r = await fetch(`${open.url}/metrics`);
  assert.equal(r.status, 200);
  await r.text();
});

test("text that can never fit the context is refused before tokenizing", async () => {
  const r = await create(open, { model: "stories260K", input: "a".repeat(3 << 20) });
  assert.equal(r.status, 400);
  assert.match((await r.json()).error.message, /more than the model's context of \d+ tokens can ever hold/);
  // under the bound, the prompt is tokenized and measured as before
  const r2 = await create(open, { model: "stories260K", input: "Once upon a time ".repeat(600) });
  assert.equal(r2.status, 400);
  assert.match((await r2.json()).error.message, /the prompt is \d+ tokens/);
});

test("a request without max_output_tokens stops at the default cap (256)", async () => {
  const r = await create(open, { model: "stories260K", input: "Once upon a time", generation_config: { temperature: 0 } });
  assert.equal(r.status, 200);
  const j = await r.json();
  assert.ok(j.usage.total_output_tokens <= 256, `${j.usage.total_output_tokens} output tokens`);
});

test("castor serve without -m says what is missing", () => {
  const r = spawnSync(CASTOR, ["serve", "--no-auth"], { encoding: "utf8" });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /no model: give -m PATH\.gguf/);
});

// A grey RGB PNG of w x h pixels (compresses to a few hundred bytes).
function greyPng(w, h) {
  const chunk = (type, data) => {
    const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const b = Buffer.alloc(8 + data.length + 4);
    b.writeUInt32BE(data.length, 0);
    td.copy(b, 4);
    b.writeUInt32BE(crc32(td), 8 + data.length);
    return b;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  const raw = Buffer.alloc((w * 3 + 1) * h, 0x80);
  for (let y = 0; y < h; y++) raw[y * (w * 3 + 1)] = 0;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

test("image decode memory across requests: an image over the budget is a 400, the others decode in turn", async () => {
  const SHARED = process.env.CST_SHARED;
  const vision = join(SHARED, "models/tiny-gemma3-vision-F32.gguf"), mmproj = join(SHARED, "models/mmproj-tinygemma3.gguf");
  const d = mkdtempSync(join(tmpdir(), "castor-img-"));
  const s = await startServer(d, ["-m", vision, "--mmproj", mmproj, "--no-auth", "--image-decode-mem", "1000000"]);
  try {
    const img = (w, h) => ({ model: "tiny-gemma3-vision-F32", generation_config: { max_output_tokens: 2 },
      input: [{ type: "text", text: "Describe" }, { type: "image", data: greyPng(w, h).toString("base64"), mime_type: "image/png" }] });
    const big = await create(s, img(400, 400)); // 400*400*7 bytes > 1 MB
    assert.equal(big.status, 400);
    assert.match((await big.json()).error.message, /400x400 pixels need \d+ MiB to decode, over the server's image decode memory/);
    // 8 concurrent requests, each within the budget, not all at once: every one is answered
    const rs = await Promise.all([...Array(8).keys()].map((i) => create(s, img(200 + i, 200))));
    for (const r of rs) assert.equal(r.status, 200, JSON.stringify(r.status === 200 ? {} : r.statusText));
    await Promise.all(rs.map((r) => r.text()));
  } finally {
    s.proc.kill("SIGTERM");
    await s.exited;
    rmSync(d, { recursive: true, force: true });
  }
});
