// The content script's logic that needs no page: srcset choice (the server's rule), queue
// ordering and batching, badge sizing and placement, and what an element looks like for a result
// and the settings. Run with `node --test tests/node/`.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const EXT = path.join(__dirname, "..", "..", "extension");
for (const f of ["lib/wording.js", "content/candidates.js", "content/page-state.js", "content/queue.js", "content/badge.js", "content/view.js"]) {
  require(path.join(EXT, f));
}
const { candidates: C, pageState: S, queue: Q, badge: B, view: V } = globalThis.MedLens;

test("srcset: the biggest candidate, as the server's page scanner picks it", () => {
  // the same cases as tests/test_page.py::test_largest_srcset_candidate
  const cases = [
    ["a.jpg 320w, b.jpg 640w, c.jpg 480w", "b.jpg"],
    ["a.jpg 1x, b.jpg 3x, c.jpg 2x", "b.jpg"],
    ["a.jpg, b.jpg 1.5x", "b.jpg"],
    ["only.jpg", "only.jpg"],
    ["a,b.jpg 100w,c.jpg 50w", "a,b.jpg"],
    ["data:image/png;base64,AAA,BBB 2x, small.png 1x", "data:image/png;base64,AAA,BBB"],
    ["", null],
  ];
  for (const [srcset, best] of cases) assert.equal(C.largestSrcsetCandidate(srcset), best, srcset);
  assert.equal(C.largestSrcsetCandidate("a.jpg 2x, b.jpg 100w"), "b.jpg"); // any width beats any density
  assert.equal(C.largestSrcsetCandidate("a.jpg junk, b.jpg 1x"), "b.jpg"); // a bad descriptor is skipped
  assert.deepEqual(C.cssUrls(`url("a.png"), linear-gradient(red, blue), url('b c.png'), url(d.png)`), ["a.png", "b c.png", "d.png"]);
});

function entry(src, state, order, bytes = false) {
  return { src, state, order, bytes };
}

test("queue: on-screen images first, then nearest; found order breaks ties", () => {
  const es = [entry("far", "queued", 0), entry("on1", "queued", 1), entry("near", "queued", 2), entry("on2", "queued", 3),
    entry("done", "done", 4), entry("pending", "pending", 5)];
  const dist = { far: 5000, on1: 0, near: 300, on2: 0, done: 0, pending: 0 };
  assert.deepEqual(Q.ordered(es, (e) => dist[e.src]).map((e) => e.src), ["on1", "on2", "near", "far"]);
});

test("queue: batches are all URLs or all bytes, led by the best entry, capped", () => {
  const urls = Array.from({ length: 20 }, (_, i) => entry(`u${i}`, "queued", i));
  const mixed = [entry("b0", "queued", 0, true), ...urls, entry("b1", "queued", 30, true), entry("b2", "queued", 31, true), entry("b3", "queued", 32, true)];
  assert.deepEqual(Q.nextBatch(mixed).map((e) => e.src), ["b0", "b1", "b2"]);
  assert.equal(Q.nextBatch(urls).length, Q.URL_CHUNK);
  assert.deepEqual(Q.nextBatch([]), []);
});

test("queue: workers drain everything with at most PARALLEL requests in flight", async () => {
  const es = Array.from({ length: 30 }, (_, i) => entry(`u${i}`, "queued", i));
  let inFlight = 0;
  let most = 0;
  const sent = [];
  const q = Q.create({
    allEntries: () => es, distanceOf: () => 0, send: async (batch) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      sent.push(...batch.map((e) => e.src));
      await new Promise((r) => setTimeout(r, 5));
      batch.forEach((e) => (e.state = "done"));
      inFlight -= 1;
    },
  });
  await q.idle();
  assert.equal(sent.length, 30);
  assert.deepEqual(sent.slice(0, 8), es.slice(0, 8).map((e) => e.src)); // found order when all are on screen
  assert.ok(most <= Q.PARALLEL && most > 1, `most in flight: ${most}`);
  assert.ok(es.every((e) => e.state === "done"));
});

test("badge sizing: none under the minimum, a small mark on small boxes, a pill that fits the box", () => {
  assert.equal(B.formFor({ width: 20, height: 200 }).form, "none");
  assert.equal(B.formFor({ width: 23.9, height: 23.9 }).form, "none");
  const dot = B.formFor({ width: 28, height: 28 });
  assert.equal(dot.form, "dot");
  assert.ok(dot.size >= 12 && dot.size <= 28 - 2 * B.INSET, JSON.stringify(dot));
  const thumb = B.formFor({ width: 148, height: 148 });
  assert.equal(thumb.form, "pill");
  assert.equal(thumb.font, 11);
  assert.equal(thumb.maxWidth, 148 - 2 * B.INSET);
  assert.equal(B.formFor({ width: 600, height: 400 }).font, 12);
  assert.equal(B.formFor({ width: 300, height: 40 }).form, "dot"); // a banner strip
});

test("badge placement: the first corner free of the page's controls, inside the box", () => {
  const box = { left: 100, top: 100, width: 148, height: 148 };
  const size = { width: 70, height: 18 };
  const free = B.place(box, size, () => 0);
  assert.deepEqual(free, { corner: "top-left", left: B.INSET, top: B.INSET });
  // a "Show" button over the top-left and a menu over the top-right of the image
  const controls = [{ left: 100, top: 100, width: 60, height: 24 }, { left: 200, top: 100, width: 48, height: 30 }];
  const cost = (r) => controls.reduce((n, c) => n + B.overlap(r, c), 0);
  const at = B.place(box, size, cost);
  assert.equal(at.corner, "bottom-left");
  assert.equal(at.top, 148 - B.INSET - 18);
  const rect = { left: box.left + at.left, top: box.top + at.top, width: 70, height: 18 };
  assert.equal(cost(rect), 0);
  // everywhere blocked: the least covered corner
  const blockedMost = (r) => (r.left > 150 && r.top > 150 ? 1 : 5);
  assert.equal(B.place(box, size, blockedMost).corner, "bottom-right");
  // a mark wider than the box is cut to the box
  const narrow = B.place({ left: 0, top: 0, width: 40, height: 40 }, { width: 90, height: 18 }, () => 0);
  assert.ok(narrow.left >= 0 && narrow.left + Math.min(90, 40 - 2 * B.INSET) <= 40);
});

const ok = (p, extra = {}) => ({ status: "ok", label: p >= 0.386 ? "medical" : "non-medical", probability: p, modality: "xray", ...extra });
const settings = (o = {}) => ({ threshold: null, compareWith: o.threshold ?? 0.386, medicalMode: "blur", mark: "auto", autoScan: true, offSites: [], siteOff: false, ...o });
function viewFor(result, s, extra = {}) {
  return V.viewOf(result, s, {
    label: S.labelOf(result, s), threshold: result ? S.comparedWith(result, s) : null, shield: s.autoScan && s.medicalMode !== "badge" && !s.siteOff,
    revealed: false, clearCodes: new Set(["unsupported_format"]), ...extra,
  });
}

test("labels: the user's threshold applies to the probability, without asking the server again", () => {
  assert.equal(S.labelOf(ok(0.5), settings()), "medical");
  assert.equal(S.labelOf(ok(0.5), settings({ threshold: 0.7 })), "non-medical");
  assert.equal(S.labelOf(ok(0.2), settings({ threshold: 0.1 })), "medical");
  assert.equal(S.comparedWith(ok(0.2), settings()), 0.386);
  assert.equal(S.labelOf(ok(0.5), { ...settings(), compareWith: null }), "medical"); // not known yet: the server's label
  assert.equal(S.labelOf(null, settings()), "pending");
  assert.equal(S.labelOf({ status: "skipped", error: { code: "too_small" } }, settings()), "skipped");
});

test("view: what the shield covers, and what it lets through", () => {
  assert.equal(viewFor(null, settings()).covering, "blur"); // not known yet
  assert.equal(viewFor(null, settings({ medicalMode: "hide" })).covering, "hide");
  assert.equal(viewFor(null, settings({ autoScan: false })).covering, "clear"); // no shield without auto-scan
  assert.equal(viewFor(ok(0.9), settings()).covering, "blur");
  assert.equal(viewFor(ok(0.1), settings()).covering, "clear");
  assert.equal(viewFor(ok(0.9), settings({ medicalMode: "badge" })).covering, "clear");
  const down = { status: "error", label: null, probability: null, error: { code: "server_down", message: "No MedLens server answers at http://127.0.0.1:8377 (Failed to fetch)." } };
  const v = viewFor(down, settings());
  assert.equal(v.covering, "blur"); // covered stays covered
  assert.equal(v.button, "Show");
  assert.equal(v.showLabel, "Show this image anyway");
  assert.ok(v.mark && v.text === "Not checked" && /server not running/.test(v.more + v.detail), JSON.stringify(v));
  assert.ok(!JSON.stringify(v).includes("Failed to fetch"), "no server or browser error text on the page");
  const failed = { status: "error", probability: null, error: { code: "decode_failed", message: "cannot identify image file <_io.BytesIO object at 0x7f>" } };
  const f = viewFor(failed, settings());
  assert.equal(f.text, "Not classified");
  assert.ok(!JSON.stringify(f).includes("BytesIO"));
  assert.equal(viewFor({ status: "error", error: { code: "unsupported_format" } }, settings()).covering, "clear"); // an SVG
  assert.equal(viewFor(ok(0.9), settings(), { revealed: true }).covering, "shown");
  assert.equal(viewFor(ok(0.9), settings(), { revealed: true }).action, "revealed");
});

test("view: marks on all images or only medical ones; words near the threshold; modality only when sure", () => {
  assert.equal(viewFor(ok(0.1), settings()).mark, false); // auto in blur: only medical
  assert.equal(viewFor(ok(0.1), settings({ medicalMode: "badge" })).mark, true); // auto in badge: all
  assert.equal(viewFor(ok(0.1), settings({ mark: "all" })).mark, true);
  assert.equal(viewFor(ok(0.1), settings({ medicalMode: "badge", mark: "medical" })).mark, false);
  assert.equal(viewFor(ok(0.9), settings({ mark: "medical" })).mark, true);
  const sure = viewFor(ok(0.95), settings());
  assert.equal(sure.text, "Medical");
  assert.match(sure.more, /X-ray/);
  const near = viewFor(ok(0.42), settings());
  assert.equal(near.text, "Likely medical");
  assert.doesNotMatch(near.more, /X-ray/); // no modality name beside an unsure label
  assert.match(near.more, /threshold/);
  assert.equal(viewFor(ok(0.42), settings({ threshold: 0.5 })).text, "Likely not medical");
});
