/* MedLens settings: defaults, normalisation and the off-sites check. All settings live in
 * storage.local (the service worker may stop at any time; nothing is kept in globals). */
(() => {
  "use strict";
  const ns = (globalThis.MedLens = globalThis.MedLens || {});
  if (ns.settings) return;
  const api = globalThis.browser ?? globalThis.chrome;

  const DEFAULT_SERVER = "http://127.0.0.1:8377";
  const DEFAULTS = Object.freeze({
    serverUrl: DEFAULT_SERVER,
    token: "",
    threshold: null, // null: the server's own threshold; else 0..1 probability of "medical"
    medicalMode: "badge", // badge | blur | hide (hide: click to reveal)
    offSites: [], // host names where MedLens stays off (a name also covers its subdomains)
    autoScan: false, // scan pages on load
    mark: "auto", // which images get a mark: all | medical | auto (medical only in blur/hide modes)
  });
  const MODES = Object.freeze(["badge", "blur", "hide"]);
  const MARKS = Object.freeze(["auto", "all", "medical"]);

  /** "127.0.0.1:8377" or "http://localhost:8377/" -> "http://127.0.0.1:8377"-like origin, or null. */
  function normalizeServerUrl(value) {
    let text = String(value ?? "").trim();
    if (!text) return null;
    if (!/^[a-z]+:\/\//i.test(text)) text = "http://" + text;
    let url;
    try {
      url = new URL(text);
    } catch {
      return null;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    return url.origin;
  }

  function normalizeHost(value) {
    let text = String(value ?? "").trim().toLowerCase();
    if (!text || text.startsWith("#")) return null;
    if (text.includes("://")) {
      try {
        text = new URL(text).hostname;
      } catch {
        return null;
      }
    }
    text = text.replace(/^\*\./, "").replace(/^\./, "").replace(/\/.*$/, "").replace(/:\d+$/, "");
    return /^[a-z0-9.-]+$|^\[[0-9a-f:]+\]$/.test(text) ? text : null;
  }

  function parseOffSites(text) {
    const list = Array.isArray(text)
      ? text
      : String(text ?? "").split("\n").flatMap((line) => line.replace(/#.*$/, "").split(/[\s,]+/));
    return [...new Set(list.map(normalizeHost).filter(Boolean))];
  }

  function normalize(raw) {
    const s = { ...DEFAULTS, ...(raw || {}) };
    s.serverUrl = normalizeServerUrl(s.serverUrl) || DEFAULT_SERVER;
    s.token = String(s.token ?? "").trim();
    const t = s.threshold === null || s.threshold === "" ? null : Number(s.threshold);
    s.threshold = t === null || !Number.isFinite(t) ? null : Math.min(0.99, Math.max(0.01, t));
    if (!MODES.includes(s.medicalMode)) s.medicalMode = "badge";
    s.offSites = parseOffSites(s.offSites);
    s.autoScan = s.autoScan === true;
    if (!MARKS.includes(s.mark)) s.mark = "auto";
    return s;
  }

  async function load() {
    const raw = await api.storage.local.get(Object.keys(DEFAULTS));
    return normalize(raw);
  }

  async function save(partial) {
    const merged = normalize({ ...(await load()), ...partial });
    const out = {};
    for (const key of Object.keys(partial)) out[key] = merged[key];
    await api.storage.local.set(out);
    return merged;
  }

  /** True when MedLens must stay off on this page's host. */
  function isSiteOff(pageUrl, offSites) {
    let host;
    try {
      host = new URL(pageUrl).hostname.toLowerCase();
    } catch {
      return false;
    }
    return (offSites || []).some((site) => host === site || host.endsWith("." + site));
  }

  /** What the content script needs (never the token). */
  function forContent(s) {
    return { threshold: s.threshold, medicalMode: s.medicalMode };
  }

  ns.settings = Object.freeze({
    DEFAULTS, DEFAULT_SERVER, MODES, MARKS, normalize, normalizeServerUrl, normalizeHost, parseOffSites, load, save,
    isSiteOff, forContent,
  });
})();
