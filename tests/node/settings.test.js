// extension/lib/settings.js: site entries (ports kept, malformed refused with a message), site
// matching, what applies on a page (off, per-site strictness), normalisation of stored values.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

require(path.join(__dirname, "../../extension/lib/settings.js"));
const S = globalThis.MedLens.settings;
const site = (text) => S.parseSite(text).site ?? null;

test("site entries keep the port as typed", () => {
  assert.equal(site("127.0.0.1:8601"), "127.0.0.1:8601");
  assert.equal(site("example.org:80"), "example.org:80", "a scheme's default port is still what was typed");
  assert.equal(site("http://127.0.0.1:8601/some/page?x=1#y"), "127.0.0.1:8601");
  assert.equal(site("[::1]:8601"), "[::1]:8601");
  assert.equal(site("localhost:3000"), "localhost:3000");
  assert.equal(site("a.b:08080"), "a.b:8080");
});

test("site entries are reduced to host names", () => {
  assert.equal(site("Example.ORG"), "example.org");
  assert.equal(site("*.foo.com"), "foo.com");
  assert.equal(site(".foo.com"), "foo.com");
  assert.equal(site("https://www.bar.net/path"), "www.bar.net");
  assert.equal(site("intranet"), "intranet");
});

test("malformed entries are refused with a message that shows the form", () => {
  for (const bad of ["host!", "exa mple.org", "a..b", ":8080", "example.org:", "example.org:99999", "example.org:0",
    "example.org:80x", "user@host.com", "http://", "-bad-.org", "back\\slash.org"]) {
    const got = S.parseSite(bad);
    assert.equal(got.ok, false, bad);
    assert.match(got.message, /example\.org.*127\.0\.0\.1:8601/, bad);
  }
  assert.match(S.parseSite("ftp://files.example.org").message, /only http and https/);
  assert.match(S.parseSite("  ").message, /Type a site/);
});

test("a host covers its subdomains on any port; a port narrows it to that port", () => {
  assert.ok(S.siteMatches("example.org", "https://example.org/"));
  assert.ok(S.siteMatches("example.org", "http://a.b.example.org:8080/x"));
  assert.ok(!S.siteMatches("example.org", "https://notexample.org/"));
  assert.ok(!S.siteMatches("example.org", "https://example.org.evil.net/"));
  assert.ok(S.siteMatches("127.0.0.1:8601", "http://127.0.0.1:8601/page"));
  assert.ok(!S.siteMatches("127.0.0.1:8601", "http://127.0.0.1:8602/page"));
  assert.ok(!S.siteMatches("127.0.0.1", "http://1.127.0.0.1/"), "an IP address has no subdomains");
  assert.ok(S.siteMatches("example.org:443", "https://example.org/"), "no port in the address: the scheme's default");
  assert.ok(!S.siteMatches("example.org:80", "https://example.org/"));
  assert.ok(S.siteMatches("[::1]:8601", "http://[::1]:8601/"));
  assert.ok(!S.siteMatches("example.org", "about:blank"));
  assert.ok(!S.siteMatches("example.org", "file:///example.org/x"));
  assert.ok(!S.siteMatches("example.org", "not a url"));
});

test("the site entry the popup stores for a page keeps its port", () => {
  assert.equal(S.siteOf("http://127.0.0.1:8601/a/b?c"), "127.0.0.1:8601");
  assert.equal(S.siteOf("https://www.example.org/"), "www.example.org");
  assert.equal(S.siteOf("chrome://extensions/"), null);
  assert.equal(S.siteOf("garbage"), null);
});

test("what applies on a page: off anywhere it is listed, the most specific strictness", () => {
  const s = S.normalize({
    threshold: 0.5, serverThreshold: 0.386, offSites: ["off.example.org", "127.0.0.1:8601"],
    siteStrictness: { "example.org": 0.3, "docs.example.org": 0.2, "127.0.0.1:8602": 0.1 },
  });
  assert.deepEqual(S.forPage(s, "https://docs.example.org/x"), { off: false, threshold: 0.2, site: "docs.example.org", compareWith: 0.2 });
  assert.deepEqual(S.forPage(s, "https://www.example.org/"), { off: false, threshold: 0.3, site: "example.org", compareWith: 0.3 });
  assert.equal(S.forPage(s, "https://a.off.example.org/").off, true);
  assert.equal(S.forPage(s, "http://127.0.0.1:8601/").off, true);
  assert.equal(S.forPage(s, "http://127.0.0.1:8603/").off, false);
  assert.equal(S.forPage(s, "http://127.0.0.1:8602/").threshold, 0.1);
  assert.deepEqual(S.forPage(s, "https://other.net/"), { off: false, threshold: 0.5, site: null, compareWith: 0.5 });
  const serverDefault = S.normalize({ serverThreshold: 0.386 });
  assert.deepEqual(S.forPage(serverDefault, "https://other.net/"), { off: false, threshold: null, site: null, compareWith: 0.386 });
  assert.deepEqual(S.forContent(s, "https://docs.example.org/"), { threshold: 0.2, compareWith: 0.2, medicalMode: "badge" });
});

test("stored values are normalised: bad sites dropped, thresholds clamped, no token for content", () => {
  const s = S.normalize({
    offSites: ["Example.org", "host!", "example.org", "127.0.0.1:8601"], siteStrictness: { "bad site": 0.2, "a.org": 5, "b.org": "x" },
    threshold: "0.7", medicalMode: "weird", autoScan: "yes", serverThreshold: 7, token: " secret ",
  });
  assert.deepEqual(s.offSites, ["example.org", "127.0.0.1:8601"]);
  assert.deepEqual(s.siteStrictness, { "a.org": 0.99 });
  assert.deepEqual([s.threshold, s.medicalMode, s.autoScan, s.serverThreshold, s.token], [0.7, "badge", false, null, "secret"]);
  assert.ok(!("token" in S.forContent(s, "https://a.org/")));
  assert.deepEqual(S.parseOffSites("example.org\n*.Foo.com, https://www.bar.net/path  # at work\n# a comment\nhost!\n127.0.0.1:8601"),
    ["example.org", "foo.com", "www.bar.net", "127.0.0.1:8601"]);
  assert.deepEqual(S.KEYS, Object.keys(S.DEFAULTS));
});

test("one-click strictness levels sit below the threshold used elsewhere", () => {
  assert.deepEqual(S.strictnessLevels(0.386), { usual: null, stricter: 0.286, strictest: 0.186 });
  assert.deepEqual(S.strictnessLevels(0.1), { usual: null, stricter: 0.05, strictest: 0.05 });
  assert.deepEqual(S.strictnessLevels(null), { usual: null, stricter: 0.4, strictest: 0.3 });
});
