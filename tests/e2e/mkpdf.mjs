// mkpdf.mjs: a small PDF with one Helvetica text line per page and a correct
// xref table, for the document tests. As a module: makePdf(["page 1", ...])
// -> Buffer. As a command: node mkpdf.mjs OUT.pdf "page one" "page two" ...
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export function makePdf(pages) {
  const esc = (s) => s.replace(/[\\()]/g, (c) => "\\" + c);
  const parts = ["%PDF-1.4\n"];
  const offs = [];
  let len = parts[0].length;
  const add = (s) => { parts.push(s); len += Buffer.byteLength(s, "latin1"); };
  const obj = (n, body) => { offs[n] = len; add(`${n} 0 obj ${body} endobj\n`); };
  obj(1, "<< /Type /Catalog /Pages 2 0 R >>");
  obj(2, `<< /Type /Pages /Count ${pages.length} /Kids [${pages.map((_, i) => `${4 + 2 * i} 0 R`).join(" ")}] >>`);
  obj(3, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>");
  pages.forEach((text, i) => {
    const n = 4 + 2 * i;
    const content = `BT /F1 24 Tf 72 700 Td (${esc(text)}) Tj ET`;
    obj(n, `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents ${n + 1} 0 R >>`);
    obj(n + 1, `<< /Length ${content.length} >> stream\n${content}\nendstream`);
  });
  const count = 4 + 2 * pages.length;
  const xref = len;
  add(`xref\n0 ${count}\n0000000000 65535 f \n`);
  for (let i = 1; i < count; i++) add(`${String(offs[i]).padStart(10, "0")} 00000 n \n`);
  add(`trailer << /Size ${count} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`);
  return Buffer.from(parts.join(""), "latin1");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [out, ...pages] = process.argv.slice(2);
  if (!out || pages.length === 0) {
    console.error("usage: node mkpdf.mjs OUT.pdf PAGE_TEXT...");
    process.exit(2);
  }
  writeFileSync(out, makePdf(pages));
}
