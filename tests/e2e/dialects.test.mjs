// dialects.test.mjs: the other APIs on the one request path, each driven by
// its own official client: Gemini generateContent / streamGenerateContent /
// countTokens / models with @google/genai's ai.models.*, and OpenAI chat
// completions / models with the `openai` package. Answers must equal the
// Interactions API's for the same conversation (same validation, chat
// rendering, scheduler); greedy, so that the float noise of a cached vs a
// fresh prefill cannot flip a sampled token. Images by inlineData and fileData run against a
// vision server spawned here (tiny-gemma3-vision + mmproj).
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import OpenAI from "openai";
import { GoogleGenAI } from "@google/genai";
import { URL_, KEY, client, curl, curlJson, outputText, parseSse, sleep } from "./common.mjs";

const ai = client();
const oa = new OpenAI({ apiKey: KEY, baseURL: URL_ + "/v1", maxRetries: 0 });
const STORIES = "gemini-3.5-flash";
const QWEN = "tiny-qwen";

async function interaction(body) {
  const r = await curlJson("POST", "/v1beta/interactions", { store: false, ...body });
  assert.equal(r.status, 200, r.body);
  return r.json;
}

async function apiError(p) {
  try {
    await p;
  } catch (e) {
    return e;
  }
  assert.fail("expected an error");
}

describe("Gemini generateContent with @google/genai ai.models.*", () => {
  test("unary: text, usage, finish reason; equal to the Interactions answer with the same seed", async () => {
    const cfg = { seed: 11, maxOutputTokens: 12, temperature: 0 };
    const r = await ai.models.generateContent({ model: STORIES, contents: "Once upon a time", config: cfg });
    assert.equal(typeof r.text, "string");
    assert.ok(r.text.length > 0);
    assert.ok(["STOP", "MAX_TOKENS"].includes(r.candidates[0].finishReason));
    assert.ok(r.usageMetadata.promptTokenCount > 0);
    assert.ok(r.usageMetadata.candidatesTokenCount > 0 && r.usageMetadata.candidatesTokenCount <= 12);
    assert.equal(r.usageMetadata.totalTokenCount, r.usageMetadata.promptTokenCount + r.usageMetadata.candidatesTokenCount);
    const ix = await interaction({ model: STORIES, input: "Once upon a time",
      generation_config: { seed: 11, max_output_tokens: 12, temperature: 0 } });
    assert.equal(r.text, outputText(ix));
    assert.equal(r.usageMetadata.promptTokenCount, ix.usage.total_input_tokens);
  });

  test("stream (alt=sse): several chunks, the same text as unary, usage on the last chunk", async () => {
    const args = { model: STORIES, contents: "The little dog", config: { seed: 5, maxOutputTokens: 10, temperature: 0 } };
    const unary = await ai.models.generateContent(args);
    const chunks = [];
    for await (const c of await ai.models.generateContentStream(args)) chunks.push(c);
    assert.ok(chunks.length >= 3, `${chunks.length} chunks`);
    assert.equal(chunks.map((c) => c.text ?? "").join(""), unary.text);
    const last = chunks.at(-1);
    assert.ok(["STOP", "MAX_TOKENS"].includes(last.candidates[0].finishReason));
    assert.equal(last.usageMetadata.candidatesTokenCount, unary.usageMetadata.candidatesTokenCount);
  });

  test("countTokens equals the prompt tokens of generateContent; systemInstruction counts", async () => {
    const contents = [{ role: "user", parts: [{ text: "Tell me a story about a cat" }] }];
    const c = await ai.models.countTokens({ model: STORIES, contents });
    const g = await ai.models.generateContent({ model: STORIES, contents, config: { maxOutputTokens: 2 } });
    assert.equal(c.totalTokens, g.usageMetadata.promptTokenCount);
    const sys = await ai.models.generateContent({ model: QWEN, contents,
      config: { maxOutputTokens: 4, seed: 3, temperature: 0, systemInstruction: "You are terse." } });
    const nosys = await ai.models.countTokens({ model: QWEN, contents });
    assert.ok(sys.usageMetadata.promptTokenCount > nosys.totalTokens);
    const ix = await interaction({ model: QWEN, input: "Tell me a story about a cat", system_instruction: "You are terse.",
      generation_config: { seed: 3, max_output_tokens: 4, temperature: 0 } });
    assert.equal(sys.text, outputText(ix));
  });

  test("multi-turn contents render like an Interactions step history", async () => {
    const contents = [
      { role: "user", parts: [{ text: "Hello" }] },
      { role: "model", parts: [{ text: "Hi there." }] },
      { role: "user", parts: [{ text: "Tell me more" }] },
    ];
    const g = await ai.models.generateContent({ model: QWEN, contents, config: { seed: 9, maxOutputTokens: 6, temperature: 0 } });
    const ix = await interaction({ model: QWEN, generation_config: { seed: 9, max_output_tokens: 6, temperature: 0 }, input: [
      { type: "user_input", content: [{ type: "text", text: "Hello" }] },
      { type: "model_output", content: [{ type: "text", text: "Hi there." }] },
      { type: "user_input", content: [{ type: "text", text: "Tell me more" }] },
    ] });
    assert.equal(g.usageMetadata.promptTokenCount, ix.usage.total_input_tokens);
    assert.equal(g.text, outputText(ix));
  });

  test("thinkingConfig: thought parts, thoughtsTokenCount, a signature that the next turn sends back", async () => {
    const r = await ai.models.generateContent({ model: QWEN, contents: "Why is the sky blue?",
      config: { maxOutputTokens: 6, thinkingConfig: { includeThoughts: true, thinkingLevel: "LOW" } } });
    const parts = r.candidates[0].content.parts;
    assert.ok(parts.some((p) => p.thought === true && p.text.length > 0), JSON.stringify(parts));
    assert.ok(r.usageMetadata.thoughtsTokenCount > 0);
    const sig = parts.find((p) => p.thoughtSignature)?.thoughtSignature;
    assert.ok(sig && sig.length > 20);
    assert.equal(r.text ?? "", parts.filter((p) => !p.thought && p.text).map((p) => p.text).join(""));
    // the answer's content goes back as history, signature included
    const r2 = await ai.models.generateContent({ model: QWEN, contents: [
      { role: "user", parts: [{ text: "Why is the sky blue?" }] }, r.candidates[0].content,
      { role: "user", parts: [{ text: "And at night?" }] }], config: { maxOutputTokens: 4, thinkingConfig: { thinkingBudget: 0 } } });
    assert.equal(r2.usageMetadata.thoughtsTokenCount ?? 0, 0);
    assert.ok(r2.usageMetadata.promptTokenCount > r.usageMetadata.promptTokenCount);
    // streaming carries thought parts too
    const kinds = new Set();
    for await (const c of await ai.models.generateContentStream({ model: QWEN, contents: "Hi",
      config: { maxOutputTokens: 3, thinkingConfig: { includeThoughts: true, thinkingLevel: "LOW" } } }))
      for (const p of c.candidates?.[0]?.content?.parts ?? []) kinds.add(p.thought ? "thought" : "text");
    assert.deepEqual([...kinds].sort(), ["text", "thought"]);
  });

  test("models.list / models.get: the fields the SDK reads", async () => {
    const names = [];
    for await (const m of await ai.models.list()) names.push(m);
    assert.deepEqual(names.map((m) => m.name), ["models/stories260K", "models/qwen3-tiny"]);
    const q = await ai.models.get({ model: QWEN });
    assert.equal(q.name, "models/qwen3-tiny");
    assert.equal(q.inputTokenLimit, 1024);
    assert.ok(q.outputTokenLimit > 0);
    assert.equal(q.thinking, true);
    assert.ok(q.supportedActions.includes("generateContent") && q.supportedActions.includes("countTokens"));
    assert.equal((await ai.models.get({ model: "stories260K" })).thinking, false);
    // @google/genai on /v1 reads the same list (its shape, told apart from OpenAI's by the key header)
    const v1 = [];
    for await (const m of await client(KEY, "v1").models.list()) v1.push(m.name);
    assert.deepEqual(v1, ["models/stories260K", "models/qwen3-tiny"]);
  });

  test("errors: 400 naming the field, 404 model, 403 key (Google RPC shape)", async () => {
    let e = await apiError(ai.models.generateContent({ model: STORIES, contents: "x", config: { candidateCount: 2 } }));
    assert.equal(e.status, 400);
    assert.match(e.message, /generationConfig\.candidateCount/);
    e = await apiError(ai.models.generateContent({ model: STORIES, contents: "x", config: { presencePenalty: 0.5 } }));
    assert.equal(e.status, 400);
    assert.match(e.message, /presencePenalty/);
    e = await apiError(ai.models.generateContent({ model: "no-such-model", contents: "x" }));
    assert.equal(e.status, 404);
    e = await apiError(client("wrong-key").models.generateContent({ model: STORIES, contents: "x" }));
    assert.equal(e.status, 403);
    const r = await curlJson("POST", "/v1beta/models/gemini-3.5-flash:generateContent",
      { contents: [{ parts: [{ text: "x" }] }], generationConfig: { bogus: 1 } });
    assert.equal(r.status, 400);
    assert.deepEqual(Object.keys(r.json.error).sort(), ["code", "message", "status"]);
    assert.equal(r.json.error.code, 400);
    assert.equal(r.json.error.status, "INVALID_ARGUMENT");
    assert.match(r.json.error.message, /generationConfig\.bogus: unknown field/);
    // the Interactions validation runs too (same path): its errors come in this route's shape
    const t = await curlJson("POST", "/v1beta/models/gemini-3.5-flash:generateContent",
      { contents: [{ parts: [{ text: "x" }] }], generationConfig: { temperature: 7 } });
    assert.equal(t.status, 400);
    assert.equal(t.json.error.status, "INVALID_ARGUMENT");
    assert.match(t.json.error.message, /temperature/);
  });

  test("streamGenerateContent without alt=sse is one JSON array; snake_case fields are accepted", async () => {
    const body = { contents: [{ role: "user", parts: [{ text: "A cat" }] }],
      generation_config: { max_output_tokens: 5, seed: 2, temperature: 0 } };
    const r = await curlJson("POST", "/v1beta/models/gemini-3.5-flash:streamGenerateContent", body);
    assert.equal(r.status, 200);
    assert.match(r.headers["content-type"], /application\/json/);
    assert.ok(Array.isArray(r.json) && r.json.length >= 2, r.body);
    const text = r.json.map((c) => c.candidates[0].content.parts.map((p) => p.text).join("")).join("");
    const u = await curlJson("POST", "/v1/models/gemini-3.5-flash:generateContent", body);
    assert.equal(u.status, 200);
    assert.equal(text, u.json.candidates[0].content.parts[0].text);
    const s = await curlJson("POST", "/v1beta/models/gemini-3.5-flash:streamGenerateContent?alt=sse", body);
    assert.match(s.headers["content-type"], /text\/event-stream/);
    const ev = s.body.split("\r\n\r\n").filter((x) => x.startsWith("data: ")).map((x) => JSON.parse(x.slice(6)));
    assert.equal(ev.map((c) => c.candidates[0].content.parts.map((p) => p.text).join("")).join(""), text);
  });
});

describe("OpenAI chat completions with the openai package", () => {
  test("unary: content, usage, finish reason; equal to the Interactions answer with the same seed", async () => {
    const r = await oa.chat.completions.create({ model: STORIES, seed: 4, max_tokens: 10, temperature: 0,
      messages: [{ role: "user", content: "Once upon a time" }] });
    assert.equal(r.object, "chat.completion");
    const m = r.choices[0].message;
    assert.equal(m.role, "assistant");
    assert.ok(m.content.length > 0);
    assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
    assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 10);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    const ix = await interaction({ model: STORIES, input: "Once upon a time",
      generation_config: { seed: 4, max_output_tokens: 10, temperature: 0 } });
    assert.equal(m.content, outputText(ix));
  });

  test("stream with include_usage: deltas add up to the unary answer, usage last", async () => {
    const args = { model: QWEN, seed: 8, max_completion_tokens: 8, temperature: 0, reasoning_effort: "none",
      messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }] };
    const unary = await oa.chat.completions.create(args);
    const stream = await oa.chat.completions.create({ ...args, stream: true, stream_options: { include_usage: true } });
    let text = "", n = 0, usage = null, finish = null;
    for await (const c of stream) {
      n++;
      if (c.usage) usage = c.usage;
      const ch = c.choices[0];
      if (ch?.delta?.content) text += ch.delta.content;
      if (ch?.finish_reason) finish = ch.finish_reason;
    }
    assert.ok(n >= 3);
    assert.equal(text, unary.choices[0].message.content);
    assert.equal(finish, unary.choices[0].finish_reason);
    assert.deepEqual(usage.completion_tokens, unary.usage.completion_tokens);
  });

  test("stop, max_tokens, reasoning_effort -> reasoning_content (unary and deltas)", async () => {
    const base = await oa.chat.completions.create({ model: STORIES, seed: 1, max_tokens: 16, temperature: 0,
      messages: [{ role: "user", content: "The sun" }] });
    const full = base.choices[0].message.content;
    const cut = full.slice(4, 6);
    if (cut.trim().length) {
      const s = await oa.chat.completions.create({ model: STORIES, seed: 1, max_tokens: 16, temperature: 0, stop: cut,
        messages: [{ role: "user", content: "The sun" }] });
      assert.equal(s.choices[0].message.content, full.slice(0, full.indexOf(cut)));
      assert.equal(s.choices[0].finish_reason, "stop");
    }
    const r = await oa.chat.completions.create({ model: QWEN, max_tokens: 4, reasoning_effort: "low",
      messages: [{ role: "user", content: "Think first" }] });
    assert.ok(r.choices[0].message.reasoning_content.length > 0);
    assert.ok(r.usage.completion_tokens_details.reasoning_tokens > 0);
    let reasoning = "";
    for await (const c of await oa.chat.completions.create({ model: QWEN, max_tokens: 3, reasoning_effort: "low",
      stream: true, messages: [{ role: "user", content: "Think" }] }))
      reasoning += c.choices[0]?.delta?.reasoning_content ?? "";
    assert.ok(reasoning.length > 0);
  });

  test("models list in OpenAI's shape; errors in OpenAI's shape", async () => {
    const ids = [];
    for await (const m of oa.models.list()) ids.push(m.id);
    assert.deepEqual(ids, ["stories260K", "qwen3-tiny"]);
    let e = await apiError(oa.chat.completions.create({ model: STORIES, n: 2, messages: [{ role: "user", content: "x" }] }));
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.match(e.message, /n: only 1/);
    assert.equal(e.type, "invalid_request_error");
    e = await apiError(oa.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }));
    assert.ok(e instanceof OpenAI.NotFoundError);
    e = await apiError(new OpenAI({ apiKey: "bad", baseURL: URL_ + "/v1", maxRetries: 0 }).chat.completions.create({
      model: STORIES, messages: [{ role: "user", content: "x" }] }));
    assert.ok(e instanceof OpenAI.PermissionDeniedError);
    const r = await curl(["-X", "POST", URL_ + "/v1/chat/completions", "-H", "Content-Type: application/json",
      "--data-binary", '{"model":"x","messages":[]}']);
    assert.equal(r.status, 401);
    assert.equal(JSON.parse(r.body).error.type, "authentication_error");
  });
});

// ---- images (a vision server of our own) ----
const CRC = new Int32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
function crc32(buf) {
  let c = -1;
  for (const b of buf) c = CRC[(c ^ b) & 255] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
function pngChunk(type, data) {
  const len = Buffer.alloc(4), crc = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type), data]);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
function png(w, h, seed) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w * 3; x++) raw[y * (w * 3 + 1) + 1 + x] = (x * 7 + y * 13 + seed * 31) & 255;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), pngChunk("IHDR", ihdr),
    pngChunk("IDAT", deflateSync(raw)), pngChunk("IEND", Buffer.alloc(0))]);
}

describe("images by inlineData and fileData (tiny-gemma3-vision)", () => {
  let srv, dir, vai;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "castor-dialects-"));
    const sh = process.env.CST_SHARED;
    const portFile = join(dir, "port");
    srv = spawn(process.env.CASTOR, ["serve", "-m", join(sh, "models/tiny-gemma3-vision-F32.gguf"), "--mmproj",
      join(sh, "models/mmproj-tinygemma3.gguf"), "--no-auth", "--host", "127.0.0.1", "--port", "0", "--port-file",
      portFile, "--data-dir", join(dir, "data"), "-c", "1024", "-t", "1", "--max-output", "4"], { stdio: "ignore" });
    for (let i = 0; i < 400 && !existsSync(portFile); i++) await sleep(25);
    const url = `http://127.0.0.1:${readFileSync(portFile, "utf8").trim()}`;
    vai = new GoogleGenAI({ apiKey: "local", httpOptions: { baseUrl: url } });
  });
  after(async () => {
    srv.kill("SIGTERM");
    await new Promise((r) => srv.on("exit", r));
    rmSync(dir, { recursive: true, force: true });
  });

  test("inlineData and an uploaded file's fileData give the same image tokens", async () => {
    const img = png(24, 24, 3);
    const model = "tiny-gemma3-vision-F32";
    const textOnly = await vai.models.countTokens({ model, contents: "What is this?" });
    const inl = await vai.models.generateContent({ model, config: { seed: 1, temperature: 0 }, contents: [{ role: "user", parts: [
      { text: "What is this?" }, { inlineData: { mimeType: "image/png", data: img.toString("base64") } }] }] });
    assert.ok(inl.usageMetadata.promptTokenCount > textOnly.totalTokens + 100, JSON.stringify(inl.usageMetadata));
    assert.ok(inl.usageMetadata.promptTokensDetails.some((d) => d.modality === "IMAGE" && d.tokenCount > 0));
    const f = join(dir, "a.png");
    writeFileSync(f, img);
    const up = await vai.files.upload({ file: f, config: { mimeType: "image/png" } });
    const byFile = await vai.models.generateContent({ model, config: { seed: 1, temperature: 0 }, contents: [{ role: "user", parts: [
      { text: "What is this?" }, { fileData: { fileUri: up.uri, mimeType: "image/png" } }] }] });
    assert.equal(byFile.usageMetadata.promptTokenCount, inl.usageMetadata.promptTokenCount);
    assert.equal(byFile.text, inl.text);
    const e = await apiError(vai.models.generateContent({ model, contents: [{ role: "user", parts: [
      { inlineData: { mimeType: "audio/wav", data: "AAAA" } }] }] }));
    assert.equal(e.status, 400);
    assert.match(e.message, /inlineData\.mimeType/);
  });
});
