// playground.test.mjs: the page at / and /playground in headless Chromium
// (Debian's chromium, driven by puppeteer-core) against a server spawned
// here: stories260K slowed down with the test-only CST_FAULT=decode_sleep_ms
// (so that a long answer can be watched and stopped), tiny-gemma3-vision
// with its projector and a random-weight qwen3 (thinking), with API keys. Load, key kept in localStorage, pick
// the model, send, text streams into `answer` before the request ends, stop
// a long answer, follow up (previous_interaction_id), attach an image on the
// vision model, the thinking block (shown, folded, reopened), phone-width
// layout, no console errors; screenshots go to
// $CST_BUILD/test-output/.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, existsSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import puppeteer from "puppeteer-core";
import { sleep } from "./common.mjs";

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
const SHARED = process.env.CST_SHARED;
const OUT = join(process.env.CST_BUILD || tmpdir(), "test-output");
const KEY = "playground-key";

function png(w, h) {
  const crcT = new Int32Array(256).map((_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c;
  });
  const crc = (b) => {
    let c = -1;
    for (const x of b) c = crcT[(c ^ x) & 255] ^ (c >>> 8);
    return (c ^ -1) >>> 0;
  };
  const chunk = (t, d) => {
    const l = Buffer.alloc(4), c = Buffer.alloc(4);
    l.writeUInt32BE(d.length);
    const td = Buffer.concat([Buffer.from(t), d]);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([l, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let i = 0; i < raw.length; i++) raw[i] = i % (w * 3 + 1) ? (i * 37) & 255 : 0;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

describe("playground page in headless Chromium", { skip: CHROMIUM ? false : "chromium is not installed" }, () => {
  let srv, dir, url, browser, page;
  const problems = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "castor-playground-"));
    writeFileSync(join(dir, "keys"), KEY + "\n");
    const qwen = join(dir, "qwen3-think.gguf"); // a thinking template (random weights)
    await new Promise((res, rej) => spawn(process.env.CASTOR, ["mkmodel", "--arch", "qwen3", "--vocab-from",
      join(SHARED, "models/vocab-qwen3.gguf"), "--preset", "tiny", "--type", "Q8_0", "-o", qwen], { stdio: "ignore" })
      .on("exit", (c) => (c === 0 ? res() : rej(new Error("mkmodel failed")))));
    const portFile = join(dir, "port");
    srv = spawn(process.env.CASTOR, ["serve", "-m", join(SHARED, "models/stories260K.gguf"),
      "-m", join(SHARED, "models/tiny-gemma3-vision-F32.gguf"), "--mmproj", join(SHARED, "models/mmproj-tinygemma3.gguf"),
      "-m", qwen, "--thinking-budgets", "6,6,6,6", "--thinking-level", "minimal",
      "--api-keys", join(dir, "keys"), "--host", "127.0.0.1", "--port", "0", "--port-file", portFile,
      "--data-dir", join(dir, "data"), "-c", "1024", "-t", "1"],
    { stdio: "ignore", env: { ...process.env, CST_FAULT: "decode_sleep_ms:40" } });
    for (let i = 0; i < 400 && !existsSync(portFile); i++) await sleep(25);
    url = `http://127.0.0.1:${readFileSync(portFile, "utf8").trim()}`;
    mkdirSync(OUT, { recursive: true });
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
    page = await browser.newPage();
    await page.setViewport({ width: 1100, height: 800 });
    page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
    page.on("pageerror", (e) => problems.push("page: " + e.message));
    page.on("requestfailed", (r) => {
      // the stopped stream's fetch is aborted on purpose
      if (!/interactions$/.test(r.url())) problems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`);
    });
  });

  after(async () => {
    await browser?.close();
    srv?.kill("SIGTERM");
    if (srv) await new Promise((r) => srv.on("exit", r));
    rmSync(dir, { recursive: true, force: true });
  });

  const answers = () => page.$$eval('[data-testid="answer"]', (a) => a.map((x) => x.textContent));
  const busy = () => page.$eval('[data-testid="stop"]', (b) => !b.disabled);
  async function waitIdle(ms = 60000) {
    const t = Date.now();
    while (await busy()) {
      if (Date.now() - t > ms) throw new Error("the answer did not finish");
      await sleep(50);
    }
  }
  async function setField(id, v) {
    await page.$eval(`#${id}`, (el, val) => { el.value = val; }, String(v));
  }

  test("loads at / and /playground; the API key is kept; models listed", async () => {
    const r = await fetch(url + "/playground");
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type"), /text\/html/);
    await page.goto(url + "/", { waitUntil: "load" });
    // without a key the models list is refused: the page says so
    await page.waitForSelector(".error");
    await page.type('[data-testid="api-key"]', KEY);
    await page.$eval('[data-testid="api-key"]', (e) => e.dispatchEvent(new Event("change")));
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="model"] option').length === 3);
    await page.reload({ waitUntil: "load" });
    assert.equal(await page.$eval('[data-testid="api-key"]', (e) => e.value), KEY);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="model"] option').length === 3);
    const models = await page.$$eval('[data-testid="model"] option', (o) => o.map((x) => x.value));
    assert.deepEqual(models, ["stories260K", "tiny-gemma3-vision-F32", "qwen3-think"]);
    problems.length = 0; // the key-less attempt above logged its 401 on purpose
  });

  test("send: text streams into the answer before the request ends; usage and tokens/s shown", async () => {
    await page.select('[data-testid="model"]', "stories260K");
    await setField("maxTokens", 60);
    await page.type('[data-testid="prompt"]', "Once upon a time");
    await page.click('[data-testid="send"]');
    let partial = "";
    for (let i = 0; i < 400 && !partial; i++) {
      const a = await answers();
      if ((a[0] ?? "").length > 0 && (await busy())) partial = a[0];
      else await sleep(25);
    }
    assert.ok(partial.length > 0, "no text while the answer was still running");
    await waitIdle();
    const full = (await answers())[0];
    assert.ok(full.length > partial.length && full.startsWith(partial));
    const usage = await page.$eval('[data-testid="usage"]', (e) => e.textContent);
    assert.match(usage, /^(completed|incomplete) · \d+ in .* tok\/s/);
  });

  test("stop cancels a long answer; a follow-up continues the conversation", async () => {
    await setField("maxTokens", 800);
    await page.type('[data-testid="prompt"]', "Tell me a very long story");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => (document.querySelectorAll('[data-testid="answer"]')[1]?.textContent ?? "").length > 5);
    await page.click('[data-testid="stop"]');
    await waitIdle(10000);
    const stopped = (await answers())[1];
    const meta = await page.$$eval('[data-testid="usage"]', (m) => m[1].textContent);
    assert.match(meta, /^(stopped|cancelled)/);
    await sleep(300);
    assert.equal((await answers())[1], stopped, "text kept coming after stop");
    // follow-up: previous_interaction_id makes the prompt longer than a fresh one
    await setField("maxTokens", 4);
    await page.type('[data-testid="prompt"]', "And then?");
    await page.click('[data-testid="send"]');
    await waitIdle();
    const metas = await page.$$eval('[data-testid="usage"]', (m) => m.map((x) => x.textContent));
    const inTokens = Number(metas[2].match(/ (\d+) in /)[1]);
    assert.ok(inTokens > 40, metas[2]); // the history is in the prompt
    assert.ok((await answers())[2].length > 0);
    await page.screenshot({ path: join(OUT, "playground.png") });
  });

  test("an image attached through the Files API on the vision model", async () => {
    await page.click("#new");
    await page.select('[data-testid="model"]', "tiny-gemma3-vision-F32");
    await setField("maxTokens", 3);
    const f = join(dir, "pic.png");
    writeFileSync(f, png(16, 16));
    const input = await page.$('[data-testid="attach"]');
    await input.uploadFile(f);
    await page.type('[data-testid="prompt"]', "What is in the picture?");
    await page.click('[data-testid="send"]');
    await waitIdle();
    const meta = await page.$eval('[data-testid="usage"]', (e) => e.textContent);
    assert.ok(Number(meta.match(/ (\d+) in /)[1]) > 100, meta); // the image's positions
    assert.equal(await page.$$eval(".error", (e) => e.length), 0);
  });

  test("thinking: shown while it streams, collapsible, kept apart from the answer", async () => {
    await page.click("#new");
    await page.select('[data-testid="model"]', "qwen3-think");
    await page.$eval("details.settings", (d) => { d.open = true; });
    await page.select('[data-testid="thinking-level"]', "low");
    await setField("maxTokens", 4);
    await page.type('[data-testid="prompt"]', "Think, then answer");
    await page.click('[data-testid="send"]');
    await waitIdle();
    const t = await page.$eval('[data-testid="thought"]', (d) => ({ hidden: d.hidden, open: d.open,
      text: d.querySelector("div").textContent }));
    assert.equal(t.hidden, false);
    assert.ok(t.text.length > 0);
    assert.equal(t.open, false); // folded once the answer is there
    await page.click('[data-testid="thought"] summary');
    assert.equal(await page.$eval('[data-testid="thought"]', (d) => d.open), true);
    const meta = await page.$eval('[data-testid="usage"]', (e) => e.textContent);
    assert.match(meta, / [1-9]\d* thought /);
    assert.ok(!(await answers())[0].includes(t.text));
    await page.screenshot({ path: join(OUT, "playground-thinking.png") });
    await page.$eval("details.settings", (d) => { d.open = false; });
  });

  test("phone width: no horizontal scrolling; no console errors", async () => {
    await page.setViewport({ width: 390, height: 800 });
    await sleep(100);
    const w = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(w <= 390, `page is ${w}px wide`);
    await page.screenshot({ path: join(OUT, "playground-phone.png") });
    assert.deepEqual(problems, []);
  });
});
