/* MedLens referrer rule: what the server may send as Referer when it fetches an image for a page.
 * At most the page's origin (what browsers send cross-origin by default, strict-origin-when-
 * cross-origin), nothing on a downgrade from https to http, and nothing when the page's own policy
 * says no-referrer (or same-origin, for another origin). Pure functions: the service worker applies
 * the rule; the content script reads the page's policy (its <meta name="referrer"> and each image's
 * referrerpolicy attribute) and passes it in CLASSIFY_URLS. */
(() => {
  "use strict";
  const ns = (globalThis.MedLens = globalThis.MedLens || {});
  if (ns.referrer) return;

  const POLICIES = Object.freeze([
    "no-referrer", "no-referrer-when-downgrade", "same-origin", "origin", "strict-origin",
    "origin-when-cross-origin", "strict-origin-when-cross-origin", "unsafe-url",
  ]);
  const DEFAULT_POLICY = "strict-origin-when-cross-origin";

  /** A Referrer-Policy value (header or meta: a comma list whose last known token wins) -> a
   * policy name, or "" when it names none (the document's policy then applies). */
  function parsePolicy(value) {
    let out = "";
    for (const token of String(value ?? "").split(",")) {
      const t = token.trim().toLowerCase();
      if (POLICIES.includes(t)) out = t;
    }
    return out;
  }

  /** The policy a document states in markup: its last <meta name="referrer"> with a known value. */
  function documentPolicy(doc) {
    let out = "";
    for (const meta of doc.querySelectorAll('meta[name="referrer" i]')) out = parsePolicy(meta.getAttribute("content")) || out;
    return out;
  }

  /** What to send as Referer for `targetUrl` fetched on behalf of `pageUrl` under `policy`:
   * the page's origin, or null for none. Never a path, query or fragment. */
  function referrerFor(pageUrl, policy, targetUrl) {
    let page;
    let target;
    try {
      page = new URL(pageUrl);
      target = new URL(targetUrl);
    } catch {
      return null;
    }
    if (!/^https?:$/.test(page.protocol) || !/^https?:$/.test(target.protocol)) return null;
    const downgrade = page.protocol === "https:" && target.protocol === "http:";
    const sameOrigin = page.origin === target.origin;
    switch (parsePolicy(policy) || DEFAULT_POLICY) {
      case "no-referrer":
        return null;
      case "same-origin":
        return sameOrigin ? page.origin : null;
      case "origin":
      case "origin-when-cross-origin":
      case "unsafe-url":
        return page.origin;
      default: // strict-origin, strict-origin-when-cross-origin, no-referrer-when-downgrade
        return downgrade ? null : page.origin;
    }
  }

  ns.referrer = Object.freeze({ POLICIES, DEFAULT_POLICY, parsePolicy, documentPolicy, referrerFor });
})();
