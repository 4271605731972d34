// robust.test.mjs: hostile HTTP input against the shared server: huge
// headers and URLs, invalid UTF-8 (body, URL, key), JSON nested past the
// depth cap, numbers out of range, NaN/Infinity, NUL and lone surrogates,
// empty and non-object bodies, wrong Content-Type, pipelined garbage. Every
// answer must be a well-formed reply (JSON error body where the server
// answers) and the server must stay up.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { URL_, KEY } from "./common.mjs";

const port = Number(new URL(URL_).port);
const H = { "x-goog-api-key": KEY, "content-type": "application/json" };

// Send raw bytes; resolve the whole reply text once the server closes (or after waitMs).
function raw(bytes, waitMs = 3000) {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    const chunks = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      sock.destroy();
      resolve(Buffer.concat(chunks).toString("latin1"));
    };
    sock.on("data", (d) => chunks.push(d));
    sock.on("close", finish);
    sock.on("error", finish);
    setTimeout(finish, waitMs);
    sock.write(bytes);
  });
}

async function create(body, headers = H) {
  const r = await fetch(`${URL_}/v1beta/interactions`, { method: "POST", headers, body });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, text };
}

async function alive() {
  const r = await fetch(`${URL_}/health`).catch((e) => assert.fail(`the server is not reachable: ${e.cause ?? e}`));
  assert.equal(r.status, 200);
}

describe("hostile input", () => {
  test("huge header, many headers, huge URL: refused, server alive", async () => {
    const big = "x".repeat(200 * 1024);
    let rep = await raw(`GET /health HTTP/1.1\r\nHost: a\r\nX-Big: ${big}\r\n\r\n`);
    assert.ok(rep === "" || /^HTTP\/1\.[01] (4\d\d)/.test(rep), rep.slice(0, 80));
    const many = Array.from({ length: 5000 }, (_, i) => `X-H${i}: v`).join("\r\n");
    rep = await raw(`GET /health HTTP/1.1\r\nHost: a\r\n${many}\r\n\r\n`);
    assert.ok(rep === "" || /^HTTP\/1\.[01] 4\d\d/.test(rep), rep.slice(0, 80));
    rep = await raw(`GET /v1beta/interactions/${"a".repeat(100 * 1024)} HTTP/1.1\r\nHost: a\r\n\r\n`);
    assert.ok(rep === "" || /^HTTP\/1\.[01] 4\d\d/.test(rep), rep.slice(0, 80));
    await alive();
  });

  test("garbage request lines and pipelined junk", async () => {
    for (const g of ["\x00\x01\x02\r\n\r\n", "GET\r\n\r\n", "POST /v1beta/interactions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
      "POST /v1beta/interactions HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n", "GET / HTTP/9.9\r\n\r\n"]) {
      const rep = await raw(g, 1500);
      assert.ok(rep === "" || /^HTTP\/1\.[01] [45]\d\d/.test(rep), JSON.stringify(g) + " -> " + rep.slice(0, 60));
    }
    await alive();
  });

  test("invalid UTF-8 in a JSON string, in the URL, in the key: JSON errors", async () => {
    const body = Buffer.concat([Buffer.from('{"model":"gemini-3.5-flash","input":"ab'), Buffer.from([0xff, 0xc3, 0x28]), Buffer.from('"}')]);
    let r = await create(body);
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, "invalid_request");
    let rep = await raw(Buffer.concat([Buffer.from("GET /v1beta/\xff\xfe/x HTTP/1.1\r\nHost: a\r\n\r\n", "latin1")]));
    assert.match(rep, /^HTTP\/1\.1 404/);
    assert.ok(JSON.parse(rep.slice(rep.indexOf("\r\n\r\n") + 4)).error.code === "not_found");
    rep = await raw(Buffer.from("GET /v1beta/models HTTP/1.1\r\nHost: a\r\nx-goog-api-key: \xff\xfe\r\nConnection: close\r\n\r\n", "latin1"));
    assert.match(rep, /^HTTP\/1\.1 403/);
    // escaped NUL and lone surrogates are refused by the parser
    for (const s of ['"a\\u0000b"', '"\\ud800"', '"\\udc00x"']) {
      r = await create(`{"model":"gemini-3.5-flash","input":${s}}`);
      assert.equal(r.status, 400, s);
    }
  });

  test("JSON nested past the cap is refused before parsing", async () => {
    for (const n of [65, 5000, 200000]) {
      const r = await create(`{"model":"gemini-3.5-flash","input":${"[".repeat(n)}${"]".repeat(n)}}`);
      assert.equal(r.status, 400);
      assert.match(r.json.error.message, /deeper than 64/);
    }
    // an unclosed flood too
    const r = await create(`{"model":"gemini-3.5-flash","labels":${'{"a":'.repeat(100000)}`);
    assert.equal(r.status, 400);
    // brackets inside strings do not count
    const ok = await create(JSON.stringify({ model: "gemini-3.5-flash", input: "[".repeat(1000), generation_config: { max_output_tokens: 1 } }));
    assert.equal(ok.status, 200);
  });

  test("numbers out of range, NaN, Infinity, fractions", async () => {
    const cases = [
      '"generation_config":{"max_output_tokens":1e999}',
      '"generation_config":{"max_output_tokens":99999999999999999999999}',
      '"generation_config":{"max_output_tokens":1e300}',
      '"generation_config":{"max_output_tokens":-9223372036854775808}',
      '"generation_config":{"max_output_tokens":2.5}',
      '"generation_config":{"temperature":NaN}',
      '"generation_config":{"temperature":Infinity}',
      '"generation_config":{"temperature":-1e-400}',
      '"generation_config":{"top_p":1e-400}',
      '"generation_config":{"seed":1.5}',
      '"generation_config":{"seed":1e30}',
    ];
    for (const c of cases) {
      const r = await create(`{"model":"gemini-3.5-flash","input":"x",${c}}`);
      // -1e-400 underflows to -0 (a valid temperature of 0): accepted
      if (r.status === 200) {
        assert.match(c, /-1e-400/);
        continue;
      }
      assert.equal(r.status, 400, c);
      assert.equal(r.json.error.code, "invalid_request", c);
    }
  });

  test("empty, whitespace, null, scalar bodies; wrong Content-Type", async () => {
    for (const b of ["", "   ", "null", "42", '"str"', "{}", "{", "}"]) {
      const r = await create(b);
      assert.equal(r.status, 400, JSON.stringify(b));
      assert.equal(r.json.error.code, "invalid_request");
    }
    const body = JSON.stringify({ model: "gemini-3.5-flash", input: "hi", generation_config: { max_output_tokens: 1 } });
    for (const ct of ["multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "image/png"]) {
      const r = await create(body, { ...H, "content-type": ct });
      assert.equal(r.status, 400, ct);
      assert.match(r.json.error.message, /Content-Type/);
    }
    for (const ct of ["application/json; charset=utf-8", "text/plain;charset=UTF-8", "application/merge-patch+json"]) {
      const r = await create(body, { ...H, "content-type": ct });
      assert.equal(r.status, 200, ct);
    }
    await alive();
  });
});
