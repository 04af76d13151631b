// extension/lib/api.js: which dropped files the popup takes (fileKind), the file input's accept
// list and the "not supported" sentence from the same table, and the size cap of each kind.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

require(path.join(__dirname, "../../extension/lib/api.js"));
const A = globalThis.MedLens.api;
const kind = (name, type = "") => A.fileKind({ name, type });

test("PDFs and images, by type or by name", () => {
  assert.equal(kind("a.pdf"), "pdf");
  assert.equal(kind("b", "application/pdf"), "pdf");
  for (const name of ["c.JPG", "d.png", "e.avif", "f.jp2", "g.heic", "h.tif", "anim.gif", "i.webp"]) assert.equal(kind(name), "image", name);
  assert.equal(kind("scan", "image/avif"), "image");
});

test("files that hold images are containers", () => {
  for (const name of ["r.docx", "s.PPTX", "t.xlsx", "u.odt", "v.odp", "w.ods", "x.epub", "y.xps", "z.cbz", "a.fb2", "b.mobi",
    "c.zip", "d.tar", "e.tar.gz", "f.tgz", "g.tar.xz", "h.dcm", "i.mp4", "j.webm", "k.mov", "l.avi", "m.mkv"]) {
    assert.equal(kind(name), "container", name);
  }
  assert.equal(kind("clip", "video/quicktime"), "container");
  assert.equal(kind("study", "application/dicom"), "container");
  assert.equal(kind("bundle", "application/zip"), "container");
  assert.equal(kind("deck.pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"), "container");
});

test("what the server cannot read is refused", () => {
  for (const [name, type] of [["notes.txt", "text/plain"], ["f.svg", "image/svg+xml"], ["old.doc", "application/msword"],
    ["icon.ico", ""], ["noext", ""], ["pdf", ""], ["x.zipx", ""]]) {
    assert.equal(kind(name, type), null, name);
  }
});

test("accept list and sentence cover every kind fileKind takes", () => {
  const accept = A.acceptList().split(",");
  for (const x of [".pdf", ".png", ".avif", ".heic", ".docx", ".pptx", ".epub", ".cbz", ".zip", ".tar", ".dcm", ".mp4", ".mkv", "video/webm"]) {
    assert.ok(accept.includes(x), x);
  }
  for (const x of accept) assert.notEqual(x.startsWith(".") ? kind(`f${x}`) : kind("f", x), null, x);
  const text = A.acceptedText();
  for (const word of ["a PDF", "an image", "AVIF", "DOCX", "ODS", "EPUB", "MOBI", "ZIP", "a DICOM file", "or a video (MP4"]) {
    assert.ok(text.includes(word), `${word} in ${text}`);
  }
});

test("containers are capped by max_file_bytes, every kind by the request body", () => {
  const limits = A.limitsOf({ limits: { max_image_bytes: 10, max_pdf_bytes: 20, max_body_bytes: 50, max_items: 2, max_file_bytes: 40 } });
  assert.equal(limits.fromServer, true);
  assert.deepEqual([A.sizeCap("image", limits), A.sizeCap("pdf", limits), A.sizeCap("container", limits)], [10, 20, 40]);
  assert.equal(A.sizeCap("container", { ...limits, max_body_bytes: 30 }), 30);
  const old = A.limitsOf({ limits: { max_image_bytes: 10, max_pdf_bytes: 20, max_body_bytes: 50, max_items: 2 } });
  assert.equal(old.max_file_bytes, A.FALLBACK_LIMITS.max_file_bytes, "a server without max_file_bytes: the shipped default");
});
