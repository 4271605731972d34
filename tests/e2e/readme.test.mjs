// readme.test.mjs: the README's and docs/sdk.md's commands and code blocks,
// run as written. castor comes from `make install` (readme.sh installs the
// build into a temporary PREFIX and puts its bin on the PATH); servers are
// started with the commands the docs give (`make run`'s serve line, the
// `castor serve` lines) on port 8080 (another free port, substituted in the
// blocks, only when 8080 is taken on this machine). A fenced block runs when
// its language is sh, js or python; a block preceded by
// `<!-- docs-test: skip REASON -->` is listed with its reason instead, and
// `<!-- docs-test: serve -->` marks the block whose `castor serve` lines start
// the server the following blocks of that file talk to.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync, rmSync, existsSync } from "node:fs";
import net from "node:net";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const SRC = process.env.CST_SOURCE;
const STORIES = process.env.CASTOR_STORIES;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Fenced blocks of a markdown file: {lang, code, mark, line}.
function blocks(file) {
  const lines = readFileSync(file, "utf8").split("\n");
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^```(\w*)\s*$/.exec(lines[i]);
    if (!m) continue;
    let j = i + 1;
    while (j < lines.length && !/^```\s*$/.test(lines[j])) j++;
    let k = i - 1;
    while (k >= 0 && lines[k].trim() === "") k--;
    const mark = k >= 0 ? /<!-- docs-test: (\w+)\s*(.*?)\s*-->/.exec(lines[k]) : null;
    out.push({ lang: m[1], code: lines.slice(i + 1, j).join("\n") + "\n", mark: mark ? { kind: mark[1], why: mark[2] } : null, line: i + 1 });
    i = j;
  }
  return out;
}

function portFree(port) {
  return new Promise((res) => {
    const s = net.createServer();
    s.once("error", () => res(false));
    s.listen(port, "127.0.0.1", () => s.close(() => res(true)));
  });
}

async function freePort() {
  return new Promise((res) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
}

let PORT = 8080;
const DATA_MADE = !existsSync(join(SRC, "data")); // the servers' default --data-dir, in the repo root
const sub = (code) => (PORT === 8080 ? code : code.replaceAll("8080", String(PORT)));

// Start a server with a shell command line (as written, port substituted); wait for /health.
async function serve(cmdline, env = {}) {
  const proc = spawn("bash", ["-c", `exec ${sub(cmdline)}`], { cwd: SRC, env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr.on("data", (d) => (log += d));
  const exited = new Promise((res) => proc.on("exit", (c, s) => res(s ?? c)));
  for (let i = 0; i < 400; i++) {
    if (proc.exitCode !== null) throw new Error(`${cmdline}: exited ${proc.exitCode}: ${log}`);
    try {
      if ((await fetch(`http://127.0.0.1:${PORT}/health`)).status === 200) return { proc, exited };
    } catch { /* not yet */ }
    await sleep(50);
  }
  proc.kill("SIGKILL");
  throw new Error(`${cmdline}: no /health: ${log}`);
}

async function stop(s) {
  s.proc.kill("SIGTERM");
  assert.equal(await s.exited, 0);
}

// Run one block; returns its stdout (asserting exit 0 and some output).
function runBlock(b, where, env) {
  let r;
  if (b.lang === "js") {
    const f = join(HERE, `.docs-block-${process.pid}-${b.line}.mjs`); // resolves @google/genai from tests/e2e
    writeFileSync(f, sub(b.code));
    try {
      r = spawnSync("node", [f], { encoding: "utf8", env: { ...process.env, ...env }, timeout: 120000 });
    } finally {
      rmSync(f, { force: true });
    }
  } else if (b.lang === "sh") {
    r = spawnSync("bash", ["-euo", "pipefail", "-c", sub(b.code)], { cwd: SRC, encoding: "utf8", env: { ...process.env, ...env }, timeout: 120000 });
  } else if (b.lang === "python") {
    r = spawnSync("python3", ["-c", sub(b.code)], { encoding: "utf8", env: { ...process.env, ...env }, timeout: 120000 });
  }
  assert.equal(r.status, 0, `${where}:${b.line} (${b.lang}) failed: ${r.stderr}${r.stdout}`);
  assert.ok(r.stdout.trim().length > 0, `${where}:${b.line} printed nothing`);
  return r.stdout;
}

function report(where, b) {
  console.log(`${where}:${b.line} ${b.lang}: not run (${b.mark.why})`);
}

test("castor is on the PATH (make install PREFIX=...)", () => {
  const r = spawnSync("castor", ["--help"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout + r.stderr, /^usage: castor /m);
});

test("README.md: the blocks run as written against `make run`'s server", async () => {
  if (!(await portFree(8080))) PORT = await freePort();
  if (PORT !== 8080) console.log(`port 8080 is taken here: the blocks run with ${PORT} instead`);
  // make run = castor serve -m MODEL --host 127.0.0.1 --port 8080 --no-auth (Makefile)
  const mk = readFileSync(join(SRC, "Makefile"), "utf8");
  const line = /\.\/\$\(BUILD\)\/castor (serve .*)$/m.exec(mk)[1].replace("$(MODEL)", STORIES);
  const s = await serve(`castor ${line}`);
  let ran = 0;
  try {
    for (const b of blocks(join(SRC, "README.md"))) {
      if (!["sh", "js", "python"].includes(b.lang)) continue;
      if (b.mark?.kind === "skip") { report("README.md", b); continue; }
      const out = runBlock(b, "README.md", {});
      if (b.code.includes('"stream": true')) assert.match(out, /interaction\.completed/);
      ran++;
    }
  } finally {
    await stop(s);
    if (DATA_MADE) rmSync(join(SRC, "data"), { recursive: true, force: true });
  }
  assert.ok(ran >= 2, `only ${ran} README blocks ran`);
});

test("docs/sdk.md: the server block, then every client block against it", async () => {
  const KEYS = join(SRC, "keys.txt");
  const made = !existsSync(KEYS);
  const key = "docs-test-key";
  if (made) writeFileSync(KEYS, key + "\n");
  const env = { GEMINI_API_KEY: made ? key : "unused" };
  let s = null, ran = 0;
  try {
    for (const b of blocks(join(SRC, "docs/sdk.md"))) {
      if (!["sh", "js", "python"].includes(b.lang)) continue;
      if (b.mark?.kind === "skip") { report("docs/sdk.md", b); continue; }
      if (b.mark?.kind === "serve") {
        const lines = b.code.split("\n").filter((l) => /^castor serve /.test(l));
        assert.equal(lines.length, 1, "one castor serve line in the serve block");
        s = await serve(lines[0]);
        console.log(`docs/sdk.md:${b.line}: ${lines[0]} (the other lines: ${b.mark.why || "not run"})`);
        continue;
      }
      assert.ok(s, `docs/sdk.md:${b.line}: no server block before it`);
      const out = runBlock(b, "docs/sdk.md", env);
      if (b.code.includes('"stream": true')) assert.match(out, /interaction\.completed/);
      ran++;
    }
  } finally {
    if (s) await stop(s);
    if (made) rmSync(KEYS, { force: true });
    if (DATA_MADE) rmSync(join(SRC, "data"), { recursive: true, force: true });
  }
  assert.ok(ran >= 2, `only ${ran} docs/sdk.md blocks ran`);
});
