// extension/lib/referrer.js: at most the page's origin, nothing on a downgrade, nothing under no-referrer.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

require(path.join(__dirname, "../../extension/lib/referrer.js"));
const R = globalThis.MedLens.referrer;
const SECRET_PAGE = "https://records.example.org:8443/patient?patient=4711&session=SECRET#record-9";

test("the default sends only the page's origin, never path, query or fragment", () => {
  for (const policy of ["", undefined, "strict-origin-when-cross-origin", "strict-origin", "no-referrer-when-downgrade", "bogus"]) {
    assert.equal(R.referrerFor(SECRET_PAGE, policy, "https://cdn.example.net/a.png"), "https://records.example.org:8443", String(policy));
    assert.equal(R.referrerFor(SECRET_PAGE, policy, "https://records.example.org:8443/img.png"), "https://records.example.org:8443");
  }
  assert.equal(R.referrerFor(SECRET_PAGE, "unsafe-url", "https://cdn.example.net/a.png"), "https://records.example.org:8443",
    "even unsafe-url: MedLens is not the page, so at most the origin");
});

test("nothing on a downgrade from https to http, except where the page asks for its origin", () => {
  assert.equal(R.referrerFor(SECRET_PAGE, "", "http://cdn.example.net/a.png"), null);
  assert.equal(R.referrerFor(SECRET_PAGE, "strict-origin", "http://cdn.example.net/a.png"), null);
  assert.equal(R.referrerFor(SECRET_PAGE, "no-referrer-when-downgrade", "http://cdn.example.net/a.png"), null);
  assert.equal(R.referrerFor(SECRET_PAGE, "origin", "http://cdn.example.net/a.png"), "https://records.example.org:8443");
  assert.equal(R.referrerFor("http://a.example/x?q", "", "https://b.example/i.png"), "http://a.example", "an upgrade is fine");
});

test("no-referrer sends nothing; same-origin sends the origin only to the same origin", () => {
  assert.equal(R.referrerFor(SECRET_PAGE, "no-referrer", "https://records.example.org:8443/i.png"), null);
  assert.equal(R.referrerFor(SECRET_PAGE, "same-origin", "https://records.example.org:8443/i.png"), "https://records.example.org:8443");
  assert.equal(R.referrerFor(SECRET_PAGE, "same-origin", "https://records.example.org/i.png"), null, "another port is another origin");
});

test("pages and targets that are not http(s) get nothing", () => {
  assert.equal(R.referrerFor("file:///home/me/report.html", "", "https://a.example/i.png"), null);
  assert.equal(R.referrerFor("about:blank", "", "https://a.example/i.png"), null);
  assert.equal(R.referrerFor("not a url", "", "https://a.example/i.png"), null);
  assert.equal(R.referrerFor(SECRET_PAGE, "", "data:image/png;base64,AAAA"), null);
});

test("policy values: a comma list's last known token wins, case-insensitive", () => {
  assert.equal(R.parsePolicy("no-referrer"), "no-referrer");
  assert.equal(R.parsePolicy("unsafe-url, No-Referrer"), "no-referrer");
  assert.equal(R.parsePolicy("no-referrer, made-up"), "no-referrer");
  assert.equal(R.parsePolicy("made-up"), "");
  assert.equal(R.parsePolicy(null), "");
});

test("a document's policy is its last <meta name=referrer> with a known value", () => {
  const metas = (...contents) => ({ querySelectorAll: () => contents.map((c) => ({ getAttribute: () => c })) });
  assert.equal(R.documentPolicy(metas()), "");
  assert.equal(R.documentPolicy(metas("origin", "no-referrer")), "no-referrer");
  assert.equal(R.documentPolicy(metas("no-referrer", "nonsense")), "no-referrer");
});
