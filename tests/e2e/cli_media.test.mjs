// cli_media.test.mjs: `castor run` with images (--mmproj, --image) and
// documents (--file), run by cli_media.sh. The vision goldens made with
// llama.cpp's libmtmd (../shared/golden/vision/README.md) are checked through
// the command line exactly as llama-mtmd-cli feeds them: the raw prompt with
// <__media__>, --temp 0, --logits-json (greedy tokens where the golden's
// margin is clear, step-0 top-10 NMSE as test_mm). Documents: the prompt of
// `--file` must equal the documented framing given by hand (same logits, bit
// for bit), and a PDF on the vision model feeds one image per page.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, rmSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makePdf } from "./mkpdf.mjs";

const CASTOR = process.env.CASTOR;
const SHARED = process.env.CST_SHARED;
const G = join(SHARED, "golden/vision");
const LM = join(SHARED, "models/tiny-gemma3-vision-F32.gguf");
const PROJ = join(SHARED, "models/mmproj-tinygemma3.gguf");
const STORIES = join(SHARED, "models/stories260K.gguf");
const goldens = readFileSync(join(G, "tinygemma3.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
const TMP = mkdtempSync(join(tmpdir(), "castor-cli-media-"));
process.on("exit", () => rmSync(TMP, { recursive: true, force: true }));

function run(args) {
  const r = spawnSync(CASTOR, ["run", "-t", "1", ...args], { encoding: "utf8", maxBuffer: 64 << 20 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const steps = (out) => out.trim().split("\n").map((l) => JSON.parse(l));
function nmse(step, golden) {
  let num = 0, den = 0;
  for (const [id, ref] of golden.top) {
    const d = step.logits[id] - ref;
    num += d * d;
    den += ref * ref;
  }
  return num / den;
}

test("vision goldens through castor run --mmproj --image --logits-json --temp 0", () => {
  for (const g of goldens) {
    const r = run(["-m", LM, "--mmproj", PROJ, "--image", join(G, g.image), "-p", g.prompt, "-n", String(g.generated_ids.length),
      "--temp", "0", "--logits-json"]);
    assert.equal(r.code, 0, r.err);
    const s = steps(r.out);
    assert.equal(s.length, g.generated_ids.length);
    assert.ok(Array.isArray(s[0].logits) && s[0].logits.length === 514, "step 0 carries the full logits");
    const e = nmse(s[0], g.steps[0]);
    assert.ok(e <= 1e-5, `${g.image}: step-0 top-10 NMSE ${e}`);
    let checked = 0;
    for (let i = 0; i < s.length; i++) {
      if (g.steps[i].margin < 1e-3) break; // a near tie: later steps may follow another path
      assert.equal(s[i].token, g.generated_ids[i], `${g.image} step ${i}`);
      checked++;
    }
    assert.ok(checked >= 4, `${g.image}: ${checked} steps checked`);
  }
});

test("marker placement: none puts the images first; several images in marker order; --chat", () => {
  const g = goldens[0];
  const tail = g.prompt.split("<__media__>")[1];
  const head = g.prompt.split("<__media__>")[0];
  // the golden prompt with the marker at its start == no marker (images before the text)
  const a = run(["-m", LM, "--mmproj", PROJ, "--image", join(G, g.image), "-p", "<__media__>" + head + tail, "-n", "2", "--temp", "0", "--logits-json"]);
  const b = run(["-m", LM, "--mmproj", PROJ, "--image", join(G, g.image), "-p", head + tail, "-n", "2", "--temp", "0", "--logits-json"]);
  assert.equal(a.code, 0, a.err);
  assert.equal(a.out, b.out);
  // two images: swapping the files changes the output, swapping them back in the markers restores it
  const two = (x, y, p) => run(["-m", LM, "--mmproj", PROJ, "--image", join(G, x), "--image", join(G, y), "-p", p, "-n", "1", "--temp", "0", "--logits-json"]).out;
  const p2 = "A <__media__> then <__media__> end.";
  const ab = two("gradient.png", "checkerboard.png", p2), ba = two("checkerboard.png", "gradient.png", p2);
  assert.notEqual(ab, ba);
  assert.equal(steps(ab).length, 1);
  // --chat renders through the template (a different prompt than raw)
  const c = run(["-m", LM, "--mmproj", PROJ, "--image", join(G, g.image), "--chat", "-p", "Describe this image.", "-n", "1", "--temp", "0", "--logits-json"]);
  assert.equal(c.code, 0, c.err);
  assert.notEqual(c.out, b.out);
  // text generation (not JSON) works and stops
  const t = run(["-m", LM, "--mmproj", PROJ, "--image", join(G, g.image), "-p", g.prompt, "-n", "4", "--temp", "0"]);
  assert.equal(t.code, 0, t.err);
});

test("errors: marker count, --image without --mmproj, unreadable image, a document that is not UTF-8", () => {
  let r = run(["-m", LM, "--mmproj", PROJ, "--image", join(G, "gradient.png"), "-p", "<__media__> and <__media__>", "-n", "1"]);
  assert.equal(r.code, 2);
  assert.match(r.err, /2 <__media__> markers for 1 --image/);
  r = run(["-m", LM, "--image", join(G, "gradient.png"), "-p", "x", "-n", "1"]);
  assert.equal(r.code, 2);
  assert.match(r.err, /--image needs --mmproj/);
  const bad = join(TMP, "bad.png");
  writeFileSync(bad, "not an image");
  r = run(["-m", LM, "--mmproj", PROJ, "--image", bad, "-p", "x", "-n", "1"]);
  assert.equal(r.code, 1);
  assert.match(r.err, /bad\.png/);
  const txt = join(TMP, "bad.txt");
  writeFileSync(txt, Buffer.from([0x61, 0x62, 0xff]));
  r = run(["-m", STORIES, "--file", txt, "-p", "x", "-n", "1"]);
  assert.equal(r.code, 1);
  assert.match(r.err, /not valid UTF-8 at byte offset 2/);
});

test("castor run --file: the document's framed text is the prompt (text and PDF); PDF pages as images with --mmproj", () => {
  const notes = join(TMP, "notes.md");
  writeFileSync(notes, "# Notes\nThe cat sat on the mat.\n");
  const framed = `<document name="notes.md" type="text/markdown">\n# Notes\nThe cat sat on the mat.\n\n</document>\n`;
  const viaFile = run(["-m", STORIES, "--file", notes, "-p", "Once upon a time", "-n", "3", "--temp", "0", "--logits-json"]);
  const byHand = run(["-m", STORIES, "-p", framed + "Once upon a time", "-n", "3", "--temp", "0", "--logits-json"]);
  assert.equal(viaFile.code, 0, viaFile.err);
  assert.equal(viaFile.out, byHand.out);
  const pdf = join(TMP, "doc.pdf");
  writeFileSync(pdf, makePdf(["First page words", "Second page words"]));
  const pframed = `<document name="doc.pdf" type="application/pdf">\n--- page 1 of 2 ---\nFirst page words\n--- page 2 of 2 ---\nSecond page words\n</document>\n`;
  const pFile = run(["-m", STORIES, "--file", pdf, "-p", "Summary:", "-n", "3", "--temp", "0", "--logits-json"]);
  const pHand = run(["-m", STORIES, "-p", pframed + "Summary:", "-n", "3", "--temp", "0", "--logits-json"]);
  assert.equal(pFile.code, 0, pFile.err);
  assert.equal(pFile.out, pHand.out);
  // on the vision model: one image per page
  const v = run(["-m", LM, "--mmproj", PROJ, "--file", pdf, "-p", "Summary:", "-n", "1", "--temp", "0", "-v"]);
  assert.equal(v.code, 0, v.err);
  assert.match(v.err, /\(2 images\)/);
  assert.match(v.err, /image page 1 of .*doc\.pdf: 256 tokens/);
  // no -p: the document alone
  assert.equal(run(["-m", STORIES, "--file", notes, "-n", "1"]).code, 0);
  // a 1 GB sparse file is refused before it is read
  const sparse = join(TMP, "sparse.txt");
  writeFileSync(sparse, "x");
  truncateSync(sparse, 1 << 30);
  const sp = run(["-m", STORIES, "--file", sparse, "-n", "1"]);
  assert.equal(sp.code, 2);
  assert.match(sp.err, /1073741824 bytes, over the limit of 67108864 bytes/);
  // hostile: a damaged PDF is an error, not a crash
  const broken = join(TMP, "broken.pdf");
  writeFileSync(broken, makePdf(["x"]).subarray(0, 60));
  const b = run(["-m", STORIES, "--file", broken, "-n", "1"]);
  assert.ok(b.code === 0 || b.code === 1, b.err);
  assert.ok(!/Sanitizer|Segmentation/.test(b.err));
});
