// extension/lib/wording.js: verdict words that fit the probability, modality names, error wording.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

require(path.join(__dirname, "../../extension/lib/wording.js"));
const W = globalThis.MedLens.wording;

const ok = (probability, extra = {}) => ({
  status: "ok", label: probability >= 0.386 ? "medical" : "non-medical", probability, modality: "mri", ...extra,
});

test("a probability just over the threshold is a lean, said with both figures", () => {
  const v = W.verdict(ok(0.39), 0.386);
  assert.equal(v.category, "medical");
  assert.equal(v.near, true);
  assert.equal(v.word, "Likely medical");
  assert.equal(v.figures, "39.0% medical (threshold 38.6%)");
  assert.equal(v.probability, "39.0% medical");
  assert.equal(v.modality, null, "no modality name beside an unsure label");
  assert.match(v.sentence, /likely medical; probability of medical 39\.0%, images from 38\.6% count as medical/);
});

test("clear cases get the plain word and the modality", () => {
  const v = W.verdict(ok(0.97), 0.386);
  assert.deepEqual([v.word, v.near, v.modality, v.figures], ["Medical", false, "MRI", "97% medical (threshold 38.6%)"]);
  const n = W.verdict(ok(0.05, { modality: null }), 0.386);
  assert.deepEqual([n.word, n.near, n.modality, n.category], ["Non-medical", false, null, "non-medical"]);
  assert.equal(W.verdict(ok(0.3), 0.386).word, "Likely not medical");
});

test("the threshold the extension recorded on the result wins over the argument", () => {
  const v = W.verdict({ ...ok(0.45), label: "non-medical", threshold: 0.5 }, 0.386);
  assert.equal(v.word, "Likely not medical");
  assert.equal(v.figures, "45% medical (threshold 50%)");
});

test("without a known threshold the figure still says what it is a probability of", () => {
  const v = W.verdict(ok(0.8), null);
  assert.deepEqual([v.word, v.near, v.figures], ["Medical", false, "80% medical"]);
});

test("percent adds decimals only until the two figures read differently", () => {
  assert.equal(W.percent(0.97), "97%");
  assert.equal(W.percent(0.3855, [0.386]), "38.55%", "38.6% would read as reaching the threshold");
  assert.equal(W.percent(0.386, [0.3855]), "38.60%");
  assert.equal(W.percent(0.38, [0.386]), "38%");
  assert.equal(W.percent(0.38601, [0.386]), "38.601%");
  assert.equal(W.percent(0.5, [0.5]), "50%", "equal values need no decimals");
  assert.equal(W.percent(0.9991, [0.386]), ">99%", "never a certainty the model does not have");
  assert.equal(W.percent(0.0004), "<1%");
  assert.equal(W.thresholdPercent(0.386), "38.6%", "a threshold is shown exactly");
  assert.equal(W.thresholdPercent(0.3), "30%");
  assert.equal(W.thresholdPercent(0.386, [0.3855]), "38.60%");
});

test("modality names follow the server's modality classes", () => {
  const card = require(path.join(__dirname, "../../server/medlens/models/model_card.json"));
  const classes = card.modality_head.classes.filter((c) => c !== "other");
  assert.deepEqual(Object.keys(W.MODALITY_NAMES).sort(), [...classes].sort());
  assert.equal(W.modalityName("xray"), "X-ray");
  assert.equal(W.modalityName("other"), null);
  assert.equal(W.modalityName(null), null);
  assert.equal(W.modalityName("capsule_endoscopy"), "Capsule endoscopy", "a class added later is shown, not dropped");
});

test("not-classified results get one generic page label whatever the code or message", () => {
  const secret = { status: "error", error: { code: "not_an_image", message: "content is HTML <title>Intranet</title>" } };
  const other = { status: "error", error: { code: "fetch_failed", message: "HTTP 404" } };
  assert.deepEqual(W.pageLabel(secret), W.pageLabel(other));
  assert.doesNotMatch(JSON.stringify(W.verdict(secret)), /Intranet|HTML|not_an_image/);
  assert.equal(W.verdict({ status: "skipped", error: { code: "too_small" } }).word, "Skipped");
  assert.equal(W.categoryOf(null), "error");
  assert.equal(W.categoryOf(undefined), "error");
});

test("every error code has a reason and a text that says what to do", () => {
  for (const [code, [reason, text]] of Object.entries(W.ERRORS)) {
    assert.ok(reason && reason.length <= 24, `${code}: short reason`);
    assert.match(text, /\.$/, `${code}: a sentence`);
  }
  assert.match(W.errorText("server_down"), /medlens serve/);
  assert.match(W.errorText("unauthorized"), /medlens pair/);
  assert.match(W.errorText("unauthorized", "page"), /Reload the page/);
  assert.match(W.errorText("no_such_code"), /Try again/);
  assert.equal(W.errorReason("no_such_code"), "no such code");
});

test("counts read as one line, zero skips and errors left out", () => {
  assert.equal(W.countsText({ medical: 2, "non-medical": 5, skipped: 0, error: 0 }), "2 medical · 5 non-medical");
  assert.equal(W.countsText({ medical: 0, "non-medical": 1, skipped: 3, error: 1 }), "0 medical · 1 non-medical · 3 skipped · 1 not classified");
});

test("an image's place in its file is said the same way in the popup and the page", () => {
  assert.deepEqual(W.placeParts({ source: "upload:a.png" }), [], "a file of its own has no place");
  assert.deepEqual(W.placeParts({ member: "scans/a.png" }), ["member scans/a.png"]);
  assert.deepEqual(W.placeParts({ page: 2, index: 1 }), ["page 2, image 1"]);
  assert.deepEqual(W.placeParts({ page: 3 }), ["page 3"]);
  assert.deepEqual(W.placeParts({ frame: 7, time_s: 4 }), ["frame 7 at 4.0 s"]);
  assert.deepEqual(W.placeParts({ frame: 2 }), ["frame 2"], "an animation's frame has no time");
  assert.deepEqual(W.placeParts({ role: "summary", frame: 7, time_s: 4.25 }), ["whole video, most medical at 4.3 s"]);
  assert.deepEqual(W.placeParts({ member: "study/1.dcm", dicom_modality: "MR" }), ["member study/1.dcm", "DICOM MR"]);
  assert.deepEqual(W.placeParts(null), []);
});
