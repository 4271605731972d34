// pull.test.mjs: `castor pull` / `castor ls` / `castor rm` / `castor serve -m
// NAME` against a local HTTP server that plays the Hugging Face hub (the real
// one is unreachable here): the repo listing with LFS SHA-256s, resolve URLs
// that redirect to a CDN on another host name, a private repo (401 without
// HF_TOKEN; the token never goes to the CDN), a download cut halfway then
// resumed with Range, corrupted bytes refused, 404s.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import http from "node:http";
import { mkdtempSync, readFileSync, existsSync, rmSync, statSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sleep } from "./common.mjs";

const CASTOR = process.env.CASTOR;
const MODEL = readFileSync(join(process.env.CST_SHARED, "models/stories260K.gguf"));
const sha = (b) => createHash("sha256").update(b).digest("hex");
const CORRUPT = Buffer.from(MODEL);
CORRUPT[1000] ^= 0xff; // the bytes the CDN serves for bad-Q4_0.gguf; the listing has the good hash

// repo -> files: name -> {bytes, listedSha}
const REPOS = {
  "test/tiny": {
    "stories260K-Q8_0.gguf": { bytes: MODEL, sha: sha(MODEL) },
    "mmproj-Q8_0.gguf": { bytes: MODEL, sha: sha(MODEL) },
    "bad-Q4_0.gguf": { bytes: CORRUPT, sha: sha(MODEL) },
    "README.md": { bytes: Buffer.from("# tiny\n"), sha: null },
  },
  "test/private": { "secret-Q8_0.gguf": { bytes: MODEL, sha: sha(MODEL) } },
};
const TOKEN = "hf_test_token";

describe("castor pull against a local hub", () => {
  let hub, cdn, hubUrl, cdnPort, home;
  const seen = { cdnAuth: [], ranges: [], hubAuth: [] };
  let cutNext = false;

  before(async () => {
    home = mkdtempSync(join(tmpdir(), "castor-pull-"));
    cdn = http.createServer((req, res) => {
      seen.cdnAuth.push(req.headers.authorization ?? null);
      const m = req.url.match(/^\/blob\/([^/]+\/[^/]+)\/(.+)$/);
      const f = m && REPOS[m[1]]?.[m[2]];
      if (!f) return res.writeHead(404).end("no such blob");
      let body = f.bytes, status = 200;
      const headers = { "content-type": "application/octet-stream", "accept-ranges": "bytes" };
      const r = req.headers.range?.match(/^bytes=(\d+)-$/);
      if (r) {
        seen.ranges.push(req.headers.range);
        const from = Number(r[1]);
        body = f.bytes.subarray(from);
        status = 206;
        headers["content-range"] = `bytes ${from}-${f.bytes.length - 1}/${f.bytes.length}`;
      }
      headers["content-length"] = body.length;
      res.writeHead(status, headers);
      if (cutNext) { // half the bytes, then the connection drops
        cutNext = false;
        res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.socket.destroy(), 50));
        return;
      }
      res.end(body);
    });
    await new Promise((r) => cdn.listen(0, "127.0.0.1", r));
    cdnPort = cdn.address().port;
    hub = http.createServer((req, res) => {
      seen.hubAuth.push(req.headers.authorization ?? null);
      const u = new URL(req.url, "http://x");
      let m = u.pathname.match(/^\/api\/models\/([^/]+\/[^/]+)\/tree\/main$/);
      const repo = m?.[1] ?? u.pathname.match(/^\/([^/]+\/[^/]+)\/resolve\/main\//)?.[1];
      if (repo === "test/private" && req.headers.authorization !== `Bearer ${TOKEN}`)
        return res.writeHead(401, { "content-type": "application/json" }).end('{"error":"Invalid credentials"}');
      if (m) {
        if (!REPOS[repo]) return res.writeHead(404).end('{"error":"Repository not found"}');
        const list = Object.entries(REPOS[repo]).map(([path, f]) => ({ type: "file", path, size: f.bytes.length,
          oid: "0".repeat(40), ...(f.sha ? { lfs: { oid: f.sha, size: f.bytes.length, pointerSize: 134 } } : {}) }));
        return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(list));
      }
      m = u.pathname.match(/^\/([^/]+\/[^/]+)\/resolve\/main\/(.+)$/);
      if (m && REPOS[m[1]]?.[m[2]])
        return res.writeHead(302, { location: `http://localhost:${cdnPort}/blob/${m[1]}/${m[2]}` }).end();
      res.writeHead(404).end("Entry not found");
    });
    await new Promise((r) => hub.listen(0, "127.0.0.1", r));
    hubUrl = `http://127.0.0.1:${hub.address().port}`;
  });

  after(async () => {
    hub.close();
    cdn.close();
    rmSync(home, { recursive: true, force: true });
  });

  function castor(args, env = {}) {
    return new Promise((resolve) => {
      execFile(CASTOR, args, { env: { ...process.env, CASTOR_HOME: home, HF_ENDPOINT: hubUrl, HF_TOKEN: "", ...env } },
        (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
    });
  }
  const cached = (rel) => join(home, "models", rel);

  test("a download cut halfway resumes with Range and is SHA-256 checked; plain progress lines off a terminal", async () => {
    cutNext = true;
    let r = await castor(["pull", "hf://test/tiny/stories260K-Q8_0.gguf"]);
    assert.notEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, /interrupted at \d+ of \d+ bytes.*resume/);
    const part = cached("test/tiny/stories260K-Q8_0.gguf.part");
    const partial = statSync(part).size;
    assert.ok(partial > 0 && partial < MODEL.length, `${partial}`);
    r = await castor(["pull", "hf://test/tiny/stories260K-Q8_0.gguf"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(seen.ranges, [`bytes=${partial}-`]);
    assert.match(r.stderr, /resuming/);
    assert.match(r.stderr, /castor pull: 100% \(/);
    assert.match(r.stderr, /verified \(sha256/);
    const dest = cached("test/tiny/stories260K-Q8_0.gguf");
    assert.equal(r.stdout.trim(), dest);
    assert.equal(sha(readFileSync(dest)), sha(MODEL));
    assert.ok(!existsSync(part));
    // OWNER/REPO:QUANT picks the same file (the projector file aside); already there
    r = await castor(["pull", "test/tiny:q8_0"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /already pulled/);
  });

  test("corrupted bytes are refused and deleted", async () => {
    const r = await castor(["pull", "test/tiny/bad-Q4_0.gguf"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /SHA-256 mismatch.*refused/);
    assert.ok(!existsSync(cached("test/tiny/bad-Q4_0.gguf")));
    assert.ok(!existsSync(cached("test/tiny/bad-Q4_0.gguf.part")));
  });

  test("404s: unknown repo, unknown file, ambiguous or missing quant", async () => {
    let r = await castor(["pull", "test/nothing/x.gguf"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /HTTP 404 \(not found/);
    r = await castor(["pull", "test/tiny/missing.gguf"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /has no file 'missing.gguf'/);
    r = await castor(["pull", "test/tiny:Q5_K"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no \.gguf file matching 'Q5_K'/);
    r = await castor(["pull", "not-a-spec"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /expected hf:\/\/OWNER\/REPO\/FILE\.gguf or OWNER\/REPO:QUANT/);
  });

  test("401 without HF_TOKEN; with it the hub gets the token and the CDN does not", async () => {
    let r = await castor(["pull", "test/private:Q8_0"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /HTTP 401.*HF_TOKEN/);
    seen.cdnAuth.length = 0;
    seen.hubAuth.length = 0;
    r = await castor(["pull", "test/private:Q8_0"], { HF_TOKEN: TOKEN });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(seen.hubAuth.length >= 2 && seen.hubAuth.every((a) => a === `Bearer ${TOKEN}`));
    assert.ok(seen.cdnAuth.length >= 1);
    assert.deepEqual(seen.cdnAuth.filter((a) => a !== null), []);
  });

  test("castor ls, castor serve -m NAME (cached names), castor rm", async () => {
    let r = await castor(["ls"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /test\/tiny\/stories260K-Q8_0\.gguf/);
    assert.match(r.stdout, /test\/private\/secret-Q8_0\.gguf/);
    for (const name of ["test/tiny:Q8_0", "stories260K-Q8_0", "hf://test/tiny/stories260K-Q8_0.gguf"]) {
      const portFile = join(home, "port");
      rmSync(portFile, { force: true });
      const p = spawn(CASTOR, ["serve", "-m", name, "--no-auth", "--port", "0", "--port-file", portFile,
        "--data-dir", join(home, "data"), "-c", "256", "-t", "1"], { env: { ...process.env, CASTOR_HOME: home },
        stdio: "ignore" });
      for (let i = 0; i < 200 && !existsSync(portFile); i++) await sleep(25);
      const port = readFileSync(portFile, "utf8").trim();
      const models = await (await fetch(`http://127.0.0.1:${port}/v1beta/models`)).json();
      p.kill("SIGTERM");
      await new Promise((res) => p.on("exit", res));
      assert.deepEqual(models.models.map((m) => m.name), ["models/stories260K-Q8_0"], name);
    }
    r = await castor(["serve", "-m", "no-such-model"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /neither a file nor a pulled model/);
    r = await castor(["rm", "test/tiny/stories260K-Q8_0.gguf"]);
    assert.equal(r.code, 0, r.stderr);
    r = await castor(["rm", "test/private:Q8_0"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readdirSync(join(home, "models")), []);
    r = await castor(["ls"]);
    assert.doesNotMatch(r.stdout, /stories260K/);
  });
});
