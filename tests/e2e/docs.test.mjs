// docs.test.mjs: documents (§2.4 document blocks) through @google/genai 3.1.0
// against servers spawned here: tiny-gemma3-vision + its projector beside
// stories260K (no projector), with --log-prompts so that the rendered prompt
// (what the model reads) is visible on stderr as "castor prompt: {JSON}".
// Uploads a text file, a CSV, a JSON file and a PDF built here (several
// pages, known text), uses each by URI and inline; the prompt grows by the
// document's tokens and holds its framed text; a PDF on the vision model feeds
// one image per page; list/get/delete/download on mixed types; the per-key
// quota over all types; every error (invalid UTF-8, NUL, unreadable types,
// damaged / encrypted PDFs, page and pixel limits, audio and video).
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GoogleGenAI } from "@google/genai";
import { sleep } from "./common.mjs";
import { makePdf } from "./mkpdf.mjs";

const CASTOR = process.env.CASTOR;
const SHARED = process.env.CST_SHARED;
const VISION = join(SHARED, "models/tiny-gemma3-vision-F32.gguf");
const MMPROJ = join(SHARED, "models/mmproj-tinygemma3.gguf");
const STORIES = join(SHARED, "models/stories260K.gguf");
const K1 = "docs-key-one", K2 = "docs-key-two";
const QUOTA = 3000; // bytes per key

const TXT = Buffer.from("The quick brown fox jumps over the lazy dog.\nSecond line of the notes.\n");
const CSV = Buffer.from("city,population\nParis,2100000\nLyon,520000\n");
const JSN = Buffer.from(JSON.stringify({ name: "castor", kind: "server", pages: [1, 2, 3] }));
const PAGES = ["Alpha page one text", "Bravo page two text", "Charlie page three text"];
const PDF = makePdf(PAGES);

async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), "castor-docs-"));
  writeFileSync(join(dir, "keys"), `${K1}\n${K2}\n`);
  const portFile = join(dir, "port");
  // 3 pages of 25x32 pixels fit in 3000, 4 pages do not
  const proc = spawn(CASTOR, ["serve", "-m", VISION, "--mmproj", MMPROJ, "-m", STORIES, "--api-keys", join(dir, "keys"),
    "--host", "127.0.0.1", "--port", "0", "--port-file", portFile, "--data-dir", join(dir, "data"), "-c", "2048",
    "-t", "1", "--max-output", "4", "--file-quota", String(QUOTA), "--pdf-max-pages", "5", "--pdf-max-pixels", "3000",
    "--log-prompts"], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr.on("data", (d) => (log += d));
  const exited = new Promise((res) => proc.on("exit", (code, sig) => res(sig ? sig : code)));
  for (let i = 0; i < 200 && !existsSync(portFile); i++) await sleep(25);
  if (!existsSync(portFile)) throw new Error("server did not start: " + log);
  const port = Number(readFileSync(portFile, "utf8").trim());
  return { url: `http://127.0.0.1:${port}`, port, proc, dir, exited, log: () => log };
}

// the prompts the server logged, in order
const prompts = (s) => s.log().split("\n").filter((l) => l.startsWith("castor prompt: ")).map((l) => JSON.parse(l.slice(15)));
const lastPrompt = (s) => prompts(s).at(-1);
// token count of a text through the model's tokenizer (castor tokenize)
const ntok = (text) => JSON.parse(execFileSync(CASTOR, ["tokenize", "-m", STORIES, "--text", text], { encoding: "utf8" })).length;

describe("documents (stories260K and tiny-gemma3-vision + mmproj)", () => {
  let s, ai, ai2;
  const up = {};
  before(async () => {
    s = await startServer();
    ai = new GoogleGenAI({ apiKey: K1, httpOptions: { baseUrl: s.url } });
    ai2 = new GoogleGenAI({ apiKey: K2, httpOptions: { baseUrl: s.url } });
  });
  after(async () => {
    s.proc.kill("SIGTERM");
    await s.exited;
    rmSync(s.dir, { recursive: true, force: true });
  });
  const create = (model, input, client = ai) => client.interactions.create({ model, input });
  const post = async (body, key = K1) => {
    const r = await fetch(s.url + "/v1beta/interactions", { method: "POST", headers: { "content-type": "application/json", "x-goog-api-key": key }, body: JSON.stringify(body) });
    return { status: r.status, json: await r.json() };
  };

  test("text, CSV, JSON and PDF uploads are stored with their types; list/get/download on mixed types", async () => {
    for (const [k, bytes, mimeType] of [["txt", TXT, "text/plain"], ["csv", CSV, "text/csv"], ["json", JSN, "application/json"], ["pdf", PDF, "application/pdf"]]) {
      const f = await ai.files.upload({ file: new Blob([bytes], { type: mimeType }), config: { mimeType, displayName: k } });
      assert.equal(f.mimeType, mimeType);
      assert.equal(f.sizeBytes, String(bytes.length));
      assert.equal(f.state, "ACTIVE");
      up[k] = f;
    }
    const names = [];
    for await (const f of await ai.files.list({ config: { pageSize: 2 } })) names.push(f.name);
    for (const k of ["txt", "csv", "json", "pdf"]) assert.ok(names.includes(up[k].name), k);
    const g = await ai.files.get({ name: up.csv.name });
    assert.equal(g.mimeType, "text/csv");
    const r = await fetch(`${s.url}/v1beta/${up.pdf.name}:download?alt=media`, { headers: { "x-goog-api-key": K1 } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-type"), "application/pdf");
    assert.deepEqual(Buffer.from(await r.arrayBuffer()), PDF);
  });

  test("a document by URI reaches the model framed, and the prompt grows by its tokens", async () => {
    const base = await create("stories260K", [{ type: "text", text: "Summarize." }]);
    const basePrompt = lastPrompt(s);
    assert.equal(base.usage.total_input_tokens, basePrompt.tokens);
    for (const [k, bytes, mime] of [["txt", TXT, "text/plain"], ["csv", CSV, "text/csv"], ["json", JSN, "application/json"]]) {
      const it = await create("stories260K", [{ type: "document", uri: up[k].uri, mime_type: mime }, { type: "text", text: "Summarize." }]);
      assert.ok(["completed", "incomplete"].includes(it.status));
      const p = lastPrompt(s);
      const framed = `<document name="${up[k].name}" type="${mime}">\n${bytes.toString()}\n</document>\n`;
      assert.ok(p.text.includes(framed), `${k}: ${JSON.stringify(p.text)}`);
      assert.equal(p.text, basePrompt.text.replace("Summarize.", framed + "Summarize."));
      assert.equal(it.usage.total_input_tokens, p.tokens);
      // the growth is the document's tokens (the framed text through the tokenizer, give or take a merge at its edges)
      const grow = it.usage.total_input_tokens - base.usage.total_input_tokens;
      const doc = ntok(framed) - 1; // without BOS
      assert.ok(Math.abs(grow - doc) <= 2, `${k}: grew ${grow}, document ${doc} tokens`);
      assert.equal(it.usage.input_tokens_by_modality.find((m) => m.modality === "text").tokens, p.tokens);
    }
  });

  test("inline documents read the same as their files", async () => {
    for (const [bytes, mime] of [[TXT, "text/plain"], [CSV, "text/csv"], [JSN, "application/json"], [PDF, "application/pdf"]]) {
      const it = await create("stories260K", [{ type: "document", data: bytes.toString("base64"), mime_type: mime }, { type: "text", text: "Go." }]);
      assert.ok(["completed", "incomplete"].includes(it.status));
      const p = lastPrompt(s);
      assert.ok(p.text.includes(`<document name="document 1" type="${mime}">\n`), p.text);
      if (mime !== "application/pdf") assert.ok(p.text.includes(bytes.toString()));
    }
  });

  test("a PDF's pages come in reading order with page lines; on the vision model one image per page", async () => {
    const it = await create("stories260K", [{ type: "document", uri: up.pdf.uri }, { type: "text", text: "What is on page two?" }]);
    const p = lastPrompt(s);
    const body = PAGES.map((t, i) => `--- page ${i + 1} of 3 ---\n${t}`).join("\n");
    assert.ok(p.text.includes(`<document name="${up.pdf.name}" type="application/pdf">\n${body}\n</document>\n`), p.text);
    assert.equal(it.usage.input_tokens_by_modality.length, 1);
    const v = await create("tiny-gemma3-vision-F32", [{ type: "document", uri: up.pdf.uri }, { type: "text", text: "Describe." }]);
    assert.ok(["completed", "incomplete"].includes(v.status));
    const vp = lastPrompt(s);
    const markers = vp.text.match(/\uE002cstimg[0-9a-f]+\uE003/g) || [];
    assert.equal(markers.length, 3);
    for (let i = 0; i < 3; i++) assert.ok(vp.text.includes(`--- page ${i + 1} of 3 ---\n${markers[i]}\n${PAGES[i]}`), vp.text);
    const img = v.usage.input_tokens_by_modality.find((m) => m.modality === "image").tokens;
    assert.ok(img > 0 && img % 3 === 0, String(img));
    // the second use of the same bytes: extraction from the cache
    const before = (s.log().match(/document cache hit/g) || []).length;
    await create("tiny-gemma3-vision-F32", [{ type: "document", uri: up.pdf.uri }, { type: "text", text: "Again." }]);
    assert.ok((s.log().match(/document cache hit/g) || []).length > before);
    const metrics = await (await fetch(s.url + "/metrics")).text();
    assert.ok(Number(metrics.match(/^castor_document_cache_hits_total (\d+)/m)[1]) >= 1);
    assert.ok(Number(metrics.match(/^castor_document_cache_entries (\d+)/m)[1]) >= 1);
  });

  test("errors: invalid UTF-8 and NUL name the byte offset; unreadable types, images of text, audio and video name what is read", async () => {
    let r = await post({ model: "stories260K", input: [{ type: "document", data: Buffer.from("ok then \xff", "latin1").toString("base64"), mime_type: "text/plain" }] });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /not valid UTF-8 at byte offset 8/);
    r = await post({ model: "stories260K", input: [{ type: "document", data: Buffer.from("a\0b").toString("base64"), mime_type: "text/csv" }] });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /NUL byte at byte offset 1/);
    const zip = await ai.files.upload({ file: new Blob([Buffer.from("PK\x03\x04zip")]), config: { mimeType: "application/zip" } });
    r = await post({ model: "stories260K", input: [{ type: "document", uri: zip.uri }] });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /'application\/zip' cannot be read.*text\/plain.*application\/pdf/);
    r = await post({ model: "tiny-gemma3-vision-F32", input: [{ type: "image", uri: up.txt.uri }] });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /type 'text\/plain', which is not an image/);
    r = await post({ model: "stories260K", input: [{ type: "document", uri: up.txt.uri, mime_type: "text/csv" }] });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /does not match the file's type 'text\/plain'/);
    for (const t of ["audio", "video"]) {
      r = await post({ model: "stories260K", input: [{ type: t, data: "AAAA", mime_type: `${t}/mp4` }] });
      assert.equal(r.status, 400);
      assert.match(r.json.error.message, new RegExp(`${t} content is not supported.*document \\(text/plain`));
    }
    await assert.rejects(create("stories260K", [{ type: "audio", data: "AAAA", mime_type: "audio/mp3" }]), (e) => e.status === 400);
  });

  test("hostile PDFs: damaged, not a PDF, page limit, pixel budget -> 400 with a clear message", async () => {
    const pdf = (b) => post({ model: "tiny-gemma3-vision-F32", input: [{ type: "document", data: b.toString("base64"), mime_type: "application/pdf" }] });
    let r = await pdf(Buffer.from("not a pdf at all"));
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /not a PDF/);
    r = await pdf(Buffer.from("%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF"));
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /PDF/);
    r = await pdf(makePdf(["1", "2", "3", "4", "5", "6"]));
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /6 pages, over this server's limit of 5 pages \(--pdf-max-pages\)/);
    r = await pdf(makePdf(["1", "2", "3", "4"]));
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /budget of 3000 pixels \(--pdf-max-pixels/);
    // the same 4 pages as text on the model without a projector: no rendering, no budget
    r = await post({ model: "stories260K", input: [{ type: "document", data: makePdf(["1", "2", "3", "4"]).toString("base64"), mime_type: "application/pdf" }] });
    assert.equal(r.status, 200);
    // the server is still well
    assert.ok(["completed", "incomplete"].includes((await create("stories260K", "Once")).status));
  });

  test("delete: a deleted document is 404 when used", async () => {
    const f = await ai.files.upload({ file: new Blob([TXT]), config: { mimeType: "text/markdown" } });
    assert.ok(["completed", "incomplete"].includes((await create("stories260K", [{ type: "document", uri: f.uri }])).status));
    await ai.files.delete({ name: f.name });
    const r = await post({ model: "stories260K", input: [{ type: "document", uri: f.uri }] });
    assert.equal(r.status, 404);
  });

  test("the per-key quota counts every type", async () => {
    const a = await ai2.files.upload({ file: new Blob([PDF]), config: { mimeType: "application/pdf" } });
    const b = await ai2.files.upload({ file: new Blob([Buffer.alloc(3000 - PDF.length - 10, 65)]), config: { mimeType: "text/plain" } });
    // 10 bytes left: an 11-byte file of any type is refused
    await assert.rejects(ai2.files.upload({ file: new Blob([Buffer.alloc(11, 66)]), config: { mimeType: "application/json" } }), (e) => e.status === 429);
    const c = await ai2.files.upload({ file: new Blob([Buffer.alloc(10, 66)]), config: { mimeType: "text/csv" } });
    await ai2.files.delete({ name: b.name });
    const d = await ai2.files.upload({ file: new Blob([Buffer.alloc(500, 67)]), config: { mimeType: "application/octet-stream" } });
    for (const f of [a, c, d]) await ai2.files.delete({ name: f.name });
  });
});
