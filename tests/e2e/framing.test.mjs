// framing.test.mjs: every request libmicrohttpd would refuse while parsing
// (before any handler runs, with its compiled-in HTML pages) is answered in
// the JSON error shape by the framing guard (src/api/http_guard.c), with the
// right status and the connection closed: malformed / negative / overflowing
// Content-Length, bad chunked encoding, HTTP/1.1 without Host, unsupported
// HTTP versions, malformed request and header lines, heads too big for the
// connection memory. Each case on a fresh connection, as the second request
// of a kept-alive connection and pipelined behind a good one. Then a bounded,
// deterministic fuzz of valid requests (byte flips, insertions, deletions,
// truncations in heads and chunked bodies): no HTML ever, every reply head
// well-formed, the server stays up. Raw sockets, no npm packages (fault.sh).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import net from "node:net";
import { join } from "node:path";
import { startStoriesServer as startServer } from "./stories_server.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let dir, s;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "castor-framing-"));
  s = await startServer(join(dir, "data"));
});
after(async () => {
  if (s) { s.proc.kill("SIGTERM"); await s.exited; }
  rmSync(dir, { recursive: true, force: true });
});

// Write each part ({wait: n}: first wait for n complete replies; {sleep: ms}:
// pause), end the writing side when `fin`; resolve everything the server sent
// until it closed, or waitMs passed, or (quietMs) it went quiet that long
// after the last write or byte. (MHD does not always notice a client's FIN
// that came with the last bytes: a half-closed client may wait for the idle
// timeout, on main too.)
function exchange(port, parts, { fin = false, waitMs = 5000, quietMs = 0 } = {}) {
  return new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1");
    c.setNoDelay(true);
    const chunks = [];
    let closed = false, done = false, quiet = null;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(t);
      clearTimeout(quiet);
      c.destroy();
      resolve({ out: Buffer.concat(chunks).toString("latin1"), closed });
    };
    const t = setTimeout(finish, waitMs);
    const hush = () => {
      if (!quietMs) return;
      clearTimeout(quiet);
      quiet = setTimeout(finish, quietMs);
    };
    c.on("data", (d) => {
      chunks.push(d);
      hush();
    });
    c.on("error", () => {});
    c.on("close", () => { closed = true; finish(); });
    c.on("connect", async () => {
      for (const p of parts) {
        if (typeof p === "object" && p.wait) {
          for (let i = 0; i < 200 && replies(Buffer.concat(chunks).toString("latin1")).list.length < p.wait; i++) await sleep(10);
          continue;
        }
        if (typeof p === "object" && p.sleep) {
          await sleep(p.sleep);
          continue;
        }
        if (!c.destroyed) c.write(p);
      }
      if (fin && !c.destroyed) c.end();
      hush();
    });
  });
}

// Split a byte stream of HTTP/1.1 replies: [{status, head, body}], the bytes
// left over, and what is wrong with the stream's shape (null when nothing).
function replies(out) {
  const list = [];
  let p = 0, bad = null;
  while (p < out.length) {
    const e = out.indexOf("\r\n\r\n", p);
    if (e < 0) break;
    const head = out.slice(p, e);
    const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*/.exec(head);
    if (!m) { bad = "no status line: " + JSON.stringify(head.slice(0, 80)); break; }
    if (head.indexOf("HTTP/1.", 1) >= 0) { bad = "a second status line in one head: " + JSON.stringify(head.slice(0, 200)); break; }
    const cl = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (!cl) { bad = "no Content-Length: " + JSON.stringify(head.slice(0, 200)); break; }
    const n = Number(cl[1]);
    if (e + 4 + n > out.length) break;
    list.push({ status: Number(m[1]), head, body: out.slice(e + 4, e + 4 + n) });
    p = e + 4 + n;
  }
  return { list, rest: out.slice(p), bad };
}

// The reply is a JSON error of that status and message, the connection closed.
function assertJsonError(r, status, message, what) {
  const { list, rest, bad } = replies(r.out);
  assert.equal(bad, null, what);
  assert.equal(rest, "", what + ": bytes after the replies: " + JSON.stringify(rest.slice(0, 80)));
  const last = list.at(-1);
  assert.ok(last, what + ": no reply: " + JSON.stringify(r.out.slice(0, 200)));
  assert.equal(last.status, status, what + ": " + last.head.split("\r\n")[0]);
  assert.match(last.head, /\r\nContent-Type: application\/json/i, what);
  assert.match(last.head, /\r\nConnection: close/i, what);
  const j = JSON.parse(last.body);
  assert.equal(typeof j.error.code, "string", what);
  assert.match(j.error.message, message, what);
  assert.ok(r.closed, what + ": the connection stays open");
  return { list, j };
}

const OK = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
const POST = (h) => `POST /v1beta/interactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${h}\r\n`;
const CHUNKED = POST("Transfer-Encoding: chunked\r\n");

// [name, request bytes, status, error code, message]
const CASES = [
  ["Content-Length: -1", POST("Content-Length: -1\r\n"), 400, "invalid_request", /Content-Length: expected a number of bytes/],
  ["Content-Length: 12abc", POST("Content-Length: 12abc\r\n") + "{}", 400, "invalid_request", /Content-Length: expected a number/],
  ["Content-Length with a trailing blank", POST("Content-Length: 2 \r\n") + "{}", 400, "invalid_request", /Content-Length: expected/],
  ["Content-Length overflowing 64 bits", POST("Content-Length: 99999999999999999999999\r\n"), 413, "invalid_request", /Content-Length: the number is too large/],
  ["Content-Length headers that disagree", POST("Content-Length: 2\r\nContent-Length: 3\r\n") + "{}", 400, "invalid_request", /Content-Length headers that disagree/],
  ["Content-Length beside Transfer-Encoding", POST("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n") + "0\r\n\r\n", 400, "invalid_request", /both Content-Length and Transfer-Encoding/],
  ["Transfer-Encoding: gzip", POST("Transfer-Encoding: gzip\r\n") + "abc", 501, "unimplemented", /only chunked is supported/],
  ["a chunk size that is not hexadecimal", CHUNKED + "zz\r\nab\r\n0\r\n\r\n", 400, "invalid_request", /chunk size line is malformed/],
  ["a chunk size with a leading blank", CHUNKED + " 2\r\nab\r\n0\r\n\r\n", 400, "invalid_request", /chunk size line is malformed/],
  ["a chunk without CRLF after its data", CHUNKED + "2\r\n{}XY0\r\n\r\n", 400, "invalid_request", /not followed by CRLF/],
  ["a chunk size overflowing 64 bits", CHUNKED + "fffffffffffffffffff\r\n", 413, "invalid_request", /chunk size is too large/],
  ["HTTP/1.1 without Host", "GET /health HTTP/1.1\r\n\r\n", 400, "invalid_request", /needs a Host header/],
  ["HTTP/2.0", "GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505, "invalid_request", /HTTP\/1\.1 only/],
  ["HTTP/0.9", "GET /health HTTP/0.9\r\nHost: x\r\n\r\n", 505, "invalid_request", /before 1\.0/],
  ["a malformed version", "GET /health HTXP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request", /HTTP version is malformed/],
  ["a request line without a target", "GARBAGE\r\nHost: x\r\n\r\n", 400, "invalid_request", /request line is malformed/],
  ["a header line without a colon", "GET /health HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400, "invalid_request", /header line is malformed/],
  ["a blank before a header's colon", "GET /health HTTP/1.1\r\nHost : x\r\n\r\n", 400, "invalid_request", /header line is malformed/],
  ["a folded header", "GET /health HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", 400, "invalid_request", /folded/],
  ["a head over the connection memory", "GET /health HTTP/1.1\r\nHost: x\r\n" +
    Array.from({ length: 10 }, (_, i) => `X-P${i}: ${"a".repeat(8000)}\r\n`).join("") + "\r\n", 431, "invalid_request",
    /request headers are \d+ bytes, over the server's limit of 32768/],
  ["a target over the connection memory", `GET /health?p=${"a".repeat(70000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 414, "invalid_request",
    /request target is \d+ bytes, over the server's limit of 8192/],
  ["Cookie headers over 8 KiB (MHD copies them into the connection memory)", "GET /health HTTP/1.1\r\nHost: x\r\nCookie: " +
    Array.from({ length: 100 }, (_, i) => `c${i}=${"z".repeat(300)}`).join("; ") + "\r\n\r\n", 431, "invalid_request",
    /Cookie headers are over 8192 bytes/],
  ["trailers that, with the head, do not fit the connection memory", POST("Transfer-Encoding: chunked\r\n" +
    Array.from({ length: 4 }, (_, i) => `X-P${i}: ${"a".repeat(7500)}\r\n`).join("")) + "2\r\n{}\r\n0\r\n" +
    Array.from({ length: 4 }, (_, i) => `X-T${i}: ${"b".repeat(7500)}\r\n`).join("") + "\r\n", 431, "invalid_request",
    /request headers are \d+ bytes, over the server's limit of 32768/],
  ["200 header fields", "GET /health HTTP/1.1\r\nHost: x\r\n" + Array.from({ length: 200 }, (_, i) => `X-H${i}: v\r\n`).join("") + "\r\n",
    431, "invalid_request", /more than 128 header fields/],
];

for (const [name, bytes, status, code, message] of CASES) {
  test(`${name}: ${status} in the JSON shape, fresh, second on a kept-alive connection, pipelined`, async () => {
    let r = await exchange(s.port, [bytes]);
    let { j } = assertJsonError(r, status, message, name + " (fresh)");
    assert.equal(j.error.code, code);
    let list;
    r = await exchange(s.port, [OK, { wait: 1 }, bytes]);
    ({ list } = assertJsonError(r, status, message, name + " (second)"));
    assert.deepEqual(list.map((x) => x.status), [200, status], name + " (second)");
    r = await exchange(s.port, [OK + OK + bytes]);
    ({ list } = assertJsonError(r, status, message, name + " (pipelined)"));
    assert.deepEqual(list.map((x) => x.status), [200, 200, status], name + " (pipelined)");
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
  });
}

test("a bad chunk after the handler has part of the body: one reply, the JSON error", async () => {
  const r = await exchange(s.port, [CHUNKED + '5\r\n{"a":\r\n', { sleep: 200 }, "3\r\n123YY"]);
  const { list } = assertJsonError(r, 400, /not followed by CRLF/, "late bad chunk");
  assert.equal(list.length, 1);
});

test("a bad request pipelined behind a create that waits for its run: the create is answered, then the error", async () => {
  // the create parks while the model runs; the guard shut the read side to
  // be asked again later, which must not read as the client hanging up
  const body = JSON.stringify({ model: "stories260K", input: "Once upon a time", generation_config: { max_output_tokens: 24 } });
  const r = await exchange(s.port, [POST(`Content-Length: ${body.length}\r\n`) + body + "GET /health HTTP/1.1\r\n\r\n"], { waitMs: 30000 });
  const { list } = assertJsonError(r, 400, /needs a Host header/, "behind a create");
  assert.deepEqual(list.map((x) => x.status), [200, 400]);
  const j = JSON.parse(list[0].body);
  assert.ok(["completed", "incomplete"].includes(j.status), list[0].body.slice(0, 200)); // not cancelled
});

test("one byte per write: the same replies (the parser's state carries across reads)", async () => {
  const body = '{"model":"no-such-model","input":"hi"}';
  const stream = CHUNKED + "7;e=1\r\n" + body.slice(0, 7) + "\r\n" + (body.length - 7).toString(16) + "\r\n" + body.slice(7) +
    "\r\n0\r\nX-T: 1\r\n\r\n" + POST(`Content-Length: ${body.length}\r\n`) + body + OK + POST("Content-Length: 1a\r\n");
  const parts = [];
  for (const ch of stream) parts.push(ch, { sleep: 1 });
  const r = await exchange(s.port, parts, { waitMs: 20000 });
  const { list } = assertJsonError(r, 400, /Content-Length: expected a number/, "byte by byte");
  assert.deepEqual(list.map((x) => x.status), [404, 404, 200, 400]);
});

test("a target over the limit still arriving: a 414 saying how much came", async () => {
  // the target arrives in two writes 200 ms apart: the reply counts what came
  const r = await exchange(s.port, [`GET /x?p=${"a".repeat(9000)}`, { sleep: 200 }, "a".repeat(100) + " HTTP/1.1\r\nHost: x\r\n\r\n"]);
  assertJsonError(r, 414, /request target is (at least )?\d+ bytes, over the server's limit of 8192/, "split target");
});

// mulberry32: a small deterministic PRNG
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("fuzz: 400 mutations of valid requests never get HTML nor a malformed reply; the server survives", async () => {
  const body = '{"model":"no-such-model","input":"hi"}';
  const bases = [
    OK,
    POST(`Content-Length: ${body.length}\r\n`) + body,
    CHUNKED + "7\r\n" + body.slice(0, 7) + "\r\n" + (body.length - 7).toString(16) + ";ext=1\r\n" + body.slice(7) + "\r\n0\r\nX-T: 1\r\n\r\n",
    "GET /v1beta/interactions/abc?x=1&y=2 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
  ];
  const interesting = ["\r", "\n", "\r\n", ":", " ", "\t", ";", "0", "f", "-", "\x00", "\xff", "9999999999999999999999", "HTTP/1.1"];
  const rand = rng(20260113);
  const pick = (n) => Math.floor(rand() * n);
  const cases = [];
  for (let i = 0; i < 400; i++) {
    let b = bases[i % bases.length];
    for (let k = 1 + pick(3); k > 0; k--) {
      const at = pick(b.length + 1);
      switch (pick(4)) {
        case 0: b = b.slice(0, at) + String.fromCharCode(pick(256)) + b.slice(at + 1); break;
        case 1: b = b.slice(0, at) + interesting[pick(interesting.length)] + b.slice(at); break;
        case 2: b = b.slice(0, at) + b.slice(at + 1 + pick(4)); break;
        default: b = b.slice(0, Math.max(1, at)); break;
      }
    }
    // a good request first on half of them: the mutated one is the second
    cases.push((i & 1 ? OK : "") + b);
  }
  let answered = 0;
  for (let i = 0; i < cases.length; i += 8) {
    const rs = await Promise.all(cases.slice(i, i + 8).map((c) =>
      exchange(s.port, [Buffer.from(c, "latin1")], { fin: true, waitMs: 4000, quietMs: 400 })));
    rs.forEach((r, k) => {
      const what = `case ${i + k}: ${JSON.stringify(cases[i + k].slice(0, 160))}`;
      assert.doesNotMatch(r.out, /<html|<title/i, what + " -> " + r.out.slice(0, 300));
      const { list, rest, bad } = replies(r.out);
      assert.equal(bad, null, what);
      // (a reply still arriving when the client stopped listening is cut)
      if (r.closed) assert.equal(rest, "", what + ": bytes after the replies: " + JSON.stringify(rest.slice(0, 120)));
      for (const x of list)
        if (x.status >= 400) {
          const j = JSON.parse(x.body);
          assert.equal(typeof j.error.code, "string", what);
          assert.equal(typeof j.error.message, "string", what);
        }
      answered += list.length;
    });
    if (i % 80 === 0) assert.equal((await fetch(`${s.url}/health`)).status, 200, "the server is up");
  }
  assert.ok(answered > 100, `${answered} replies`);
  assert.equal((await fetch(`${s.url}/health`)).status, 200);
  assert.equal(s.proc.exitCode, null);
});
