// docs_seeds.mjs: writes the docs_fuzz seeds (tests/fuzz/seeds/docs_fuzz,
// committed) into the current directory: byte 0 = MIME index (docs_fuzz.c),
// byte 1 bit 0 = render pages, then the document. Valid, damaged, encrypted
// and adversarial PDFs (a 1000x flate bomb, a 150-level page tree, a page tree
// cycle, /Count 2e9, a 100000x100000 image, giant and negative page boxes),
// invalid UTF-8 (bad bytes, overlong, surrogate, truncated), NULs, a BOM, HTML.
// The folder also keeps the fuzzer's reproducers (crash-*), not written here.
//   cd tests/fuzz/seeds/docs_fuzz && node ../../docs_seeds.mjs
import { writeFileSync } from "node:fs";
import { deflateSync } from "node:zlib";
import { makePdf } from "../e2e/mkpdf.mjs";
const seed = (name, mime, flags, body) => writeFileSync(name, Buffer.concat([Buffer.from([mime, flags]), Buffer.from(body)]));
// a PDF from raw objects with a correct xref
function pdf(objs, trailerExtra = "") {
  let out = "%PDF-1.7\n";
  const offs = [];
  objs.forEach((o, i) => { offs.push(Buffer.byteLength(out, "latin1")); out += `${i + 1} 0 obj ${o} endobj\n`; });
  const x = Buffer.byteLength(out, "latin1");
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n` + offs.map((o) => `${String(o).padStart(10, "0")} 00000 n \n`).join("");
  out += `trailer << /Size ${objs.length + 1} /Root 1 0 R ${trailerExtra}>>\nstartxref\n${x}\n%%EOF\n`;
  return Buffer.from(out, "latin1");
}
const page = (parent, contents, res = "") => `<< /Type /Page /Parent ${parent} 0 R /MediaBox [0 0 200 200] ${res} /Contents ${contents} 0 R >>`;
const valid = makePdf(["Alpha page one", "Bravo page two", "Charlie page three"]);
seed("pdf-3-pages-render", 0, 1, valid);
seed("pdf-3-pages-text", 7, 0, valid);
seed("pdf-truncated", 0, 1, valid.subarray(0, Math.floor(valid.length / 2)));
seed("pdf-no-xref", 0, 0, Buffer.from(valid.toString("latin1").replace(/xref[\s\S]*$/, "%%EOF\n"), "latin1"));
seed("pdf-encrypted", 0, 0, "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Count 1 /Kids [4 0 R] >> endobj\n3 0 obj << /Filter /Standard /V 1 /R 2 /O (0123456789abcdef0123456789abcdef) /U (0123456789abcdef0123456789abcdef) /P -4 >> endobj\n4 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >> endobj\ntrailer << /Size 5 /Root 1 0 R /Encrypt 3 0 R /ID [(abcdefghijklmnop) (abcdefghijklmnop)] >>\n%%EOF\n");
// a content stream that inflates 1000x (12 MB of zeros from ~12 KB)
const bomb = deflateSync(Buffer.alloc(12 << 20));
seed("pdf-flate-bomb", 0, 1, Buffer.concat([Buffer.from("%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Count 1 /Kids [3 0 R] >> endobj\n3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 100 100] /Contents 4 0 R >> endobj\n4 0 obj << /Length " + bomb.length + " /Filter /FlateDecode >> stream\n", "latin1"), bomb, Buffer.from("\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")]));
// a page tree 150 levels deep
{
  const objs = ["<< /Type /Catalog /Pages 2 0 R >>"];
  const depth = 150;
  for (let i = 0; i < depth; i++) objs.push(`<< /Type /Pages /Count 1 /Kids [${i + 3} 0 R] ${i ? `/Parent ${i + 1} 0 R` : ""} >>`);
  objs.push(page(depth + 1, depth + 3));
  objs.push("<< /Length 0 >> stream\n\nendstream");
  seed("pdf-deep-tree", 0, 1, pdf(objs));
}
// a page tree that loops, and a /Count of two billion
seed("pdf-tree-cycle", 0, 1, pdf(["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Count 3 /Kids [3 0 R 2 0 R] >>", page(2, 4), "<< /Length 0 >> stream\n\nendstream"]));
seed("pdf-huge-count", 0, 0, pdf(["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Count 2000000000 /Kids [3 0 R] >>", page(2, 4), "<< /Length 0 >> stream\n\nendstream"]));
// an image XObject declaring 100000 x 100000 pixels, drawn on the page
{
  const content = "q 100 0 0 100 0 0 cm /Im0 Do Q";
  seed("pdf-huge-image", 0, 1, pdf(["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Count 1 /Kids [3 0 R] >>",
    page(2, 4, "/Resources << /XObject << /Im0 5 0 R >> >>"), `<< /Length ${content.length} >> stream\n${content}\nendstream`,
    "<< /Type /XObject /Subtype /Image /Width 100000 /Height 100000 /ColorSpace /DeviceRGB /BitsPerComponent 8 /Length 3 >> stream\nabc\nendstream"]));
}
// a page box of 1e9 points, a negative one
seed("pdf-giant-page", 0, 1, pdf(["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Count 1 /Kids [3 0 R] >>", "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 1e9 1e9] /Contents 4 0 R >>", "<< /Length 0 >> stream\n\nendstream"]));
seed("pdf-negative-page", 0, 1, pdf(["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Count 1 /Kids [3 0 R] >>", "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 -5 -5] /Contents 4 0 R >>", "<< /Length 0 >> stream\n\nendstream"]));
seed("pdf-not-a-pdf", 0, 0, "hello, world");
seed("pdf-header-only", 0, 0, "%PDF-1.4\n");
// text documents
seed("text-valid", 1, 0, "The quick brown fox.\nSecond line \u00e9\u4e2d\ud83d\ude00\n");
seed("text-bom", 3, 0, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("a,b\n1,2\n")]));
seed("text-invalid-utf8", 1, 0, Buffer.from([0x61, 0x62, 0xff, 0x63]));
seed("text-overlong", 1, 0, Buffer.from([0x61, 0xc0, 0x80, 0xe0, 0x80, 0xaf]));
seed("text-surrogate", 5, 0, Buffer.from([0x61, 0xed, 0xa0, 0x80]));
seed("text-truncated-seq", 4, 0, Buffer.from('{"a": "\xe2\x82', "latin1"));
seed("text-nul", 3, 0, Buffer.from("a,b\0c\n"));
seed("html-page", 2, 0, "<!DOCTYPE html><html><head><title>T</title><style>p{}</style><script>if (a<b) x='</p>';</script></head><body><h1>Big &amp; small</h1><p>&#233;&#x1F600;&#0;&#xD800;&#99999999;&nbsp;<b>bold</b></p><!-- note --></body></html>");
seed("html-unclosed", 2, 0, "<p>open <script>never closed <!-- and <a href=\"x>y");
seed("html-lone", 2, 0, "1 < 2 & 3 > 2 &amp &#; &#x; <");
