// common.mjs: shared helpers of the e2e suites (server URL/keys from the
// environment set by server_sdk.sh, the models under test, curl wrapper).
import { execFile, execFileSync } from "node:child_process";
import { basename, join } from "node:path";
import { GoogleGenAI } from "@google/genai";

export const URL_ = process.env.CASTOR_URL;
export const KEY = process.env.CASTOR_KEY;
export const KEY2 = process.env.CASTOR_KEY2;

// [label, model name sent]: the default model answers the seed's names.
export const MODELS = [
  ["stories260K", "gemini-3.5-flash"],
  ["qwen3 (real vocab + template)", "tiny-qwen"],
];

export function client(apiKey = KEY, apiVersion) {
  const httpOptions = { baseUrl: URL_ };
  if (apiVersion) httpOptions.apiVersion = apiVersion;
  return new GoogleGenAI({ apiKey, httpOptions });
}

// Run curl; resolve {status, headers, body}. args: extra curl args.
export function curl(args, { input } = {}) {
  return new Promise((resolve, reject) => {
    const p = execFile("curl", ["-sS", "-D", "-", ...args], { maxBuffer: 64 << 20 }, (err, stdout) => {
      if (err && !stdout) return reject(err);
      const parts = stdout.split(/\r\n\r\n/);
      let i = 0;
      while (i < parts.length - 1 && /^HTTP\/1\.1 100/.test(parts[i])) i++;
      const head = parts[i];
      const body = parts.slice(i + 1).join("\r\n\r\n");
      const status = Number(head.split(" ")[1]);
      const headers = {};
      for (const line of head.split("\r\n").slice(1)) {
        const k = line.indexOf(":");
        if (k > 0) headers[line.slice(0, k).toLowerCase()] = line.slice(k + 1).trim();
      }
      resolve({ status, headers, body });
    });
    if (input !== undefined) {
      p.stdin.write(input);
      p.stdin.end();
    }
  });
}

export async function curlJson(method, path, body, { key = KEY, headers = [] } = {}) {
  const args = ["-X", method, URL_ + path, "-H", "Content-Type: application/json", "-H", "Api-Revision: 2026-05-20"];
  if (key) args.push("-H", `x-goog-api-key: ${key}`);
  for (const h of headers) args.push("-H", h);
  if (body !== undefined) args.push("--data-binary", "@-");
  const r = await curl(args, { input: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body) });
  let json;
  try {
    json = JSON.parse(r.body);
  } catch {
    json = undefined;
  }
  return { ...r, json };
}

// Parse an SSE body: [{event, data}] (data parsed unless [DONE]).
export function parseSse(text) {
  const out = [];
  for (const block of text.split("\n\n")) {
    let event = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("data: ")) data.push(line.slice(6));
    }
    if (event === null && data.length === 0) continue;
    const d = data.join("\n");
    out.push({ event, data: d === "[DONE]" ? d : JSON.parse(d) });
  }
  return out;
}

export function outputText(interaction) {
  const last = interaction.steps.at(-1);
  return last.content.map((b) => b.text).join("");
}

// PostgreSQL mode (scripts/with-pg.sh sets CST_TEST_PG, CST_PG_DIR, CST_PG_BIN):
// a server a test spawns on data dir `dir` gets a database of its own, named
// after the dir (a restart on the same dir finds its state again).
export const PG = !!process.env.CST_TEST_PG;
export function pgUrl(db) {
  return `postgresql:///${db}?host=${process.env.CST_PG_DIR}&user=castor`;
}
export function storeArgs(dir) {
  if (!PG) return [];
  const db = "t_" + basename(dir).toLowerCase().replace(/[^a-z0-9]/g, "_");
  try {
    execFileSync(join(process.env.CST_PG_BIN, "createdb"), ["-h", process.env.CST_PG_DIR, "-U", "castor", db],
      { stdio: "ignore" });
  } catch { /* exists already: a restart on the same dir */ }
  return ["--store", pgUrl(db)];
}
// rows of a query as arrays of strings (psql -At)
export function pgQuery(url, sql) {
  const out = execFileSync(join(process.env.CST_PG_BIN, "psql"), [url, "-XAtF", "\t", "-c", sql], { encoding: "utf8" });
  return out.split("\n").filter((l) => l.length).map((l) => l.split("\t"));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
