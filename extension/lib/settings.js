/* MedLens settings: defaults, normalisation, and what applies on a page (off sites, per-site
 * strictness; site matching keeps ports). All settings live in
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
    offSites: [], // sites where MedLens stays off: "example.org" (and its subdomains, any port) or "127.0.0.1:8601"
    siteStrictness: {}, // site -> threshold used on that site instead of `threshold` (most specific site wins)
    autoScan: false, // scan pages on load
    mark: "auto", // which images get a mark: all | medical | auto (medical only in blur/hide modes)
    serverThreshold: null, // the server's own threshold, last seen in /v1/health (shown, never sent)
  });
  const KEYS = Object.freeze(Object.keys(DEFAULTS));
  const MODES = Object.freeze(["badge", "blur", "hide"]);
  const MARKS = Object.freeze(["auto", "all", "medical"]);
  const MIN_THRESHOLD = 0.01;
  const MAX_THRESHOLD = 0.99;
  // The popup's one-click strictness on a site: this much below the threshold used elsewhere.
  const STRICTER_STEPS = Object.freeze({ stricter: 0.1, strictest: 0.2 });
  const SITE_EXAMPLE = "a host name such as example.org, optionally with a port: 127.0.0.1:8601";

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

  function isHostName(host) {
    if (/^\[[0-9a-f:.]+\]$/.test(host)) return true; // IPv6 literal, as URL spells it
    if (host.length > 253) return false;
    return host.split(".").every((label) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(label));
  }

  /** What a person typed for a site -> {ok: true, site: "host" | "host:port"} or {ok: false,
   * message}. A URL is reduced to its host and (non-default) port; the port is kept as typed. */
  function parseSite(value) {
    const text = String(value ?? "").trim().toLowerCase();
    if (!text) return { ok: false, message: "Type a site, e.g. example.org." };
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//.exec(text);
    if (scheme && scheme[1] !== "http" && scheme[1] !== "https") {
      return { ok: false, message: `"${value}" is not a web site: only http and https sites can be listed.` };
    }
    const bare = scheme ? text : text.replace(/^\*\./, "").replace(/^\./, "");
    let url = null;
    if (!/[\s@\\]/.test(bare)) {
      try {
        url = new URL(scheme ? bare : `http://${bare}`);
      } catch {
        url = null;
      }
    }
    // The port as typed: URL drops a scheme's default one (":80"), which would widen the entry.
    const hostPart = (scheme ? bare.slice(scheme[0].length) : bare).split(/[/?#]/)[0];
    const typed = /^(\[[^\]]*\]|[^:[\]]*)(?::(\d{1,5}))?$/.exec(hostPart);
    const port = typed && typed[2] ? Number(typed[2]) : null;
    if (!url || !typed || !isHostName(url.hostname) || (port !== null && (port < 1 || port > 65535))) {
      return { ok: false, message: `"${value}" is not a site MedLens understands: type ${SITE_EXAMPLE}.` };
    }
    return { ok: true, site: port !== null ? `${url.hostname}:${port}` : url.hostname };
  }

  /** The site entry the popup stores for a page: its host, and its port when the address names one. */
  function siteOf(pageUrl) {
    let url;
    try {
      url = new URL(pageUrl);
    } catch {
      return null;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    return url.port ? `${url.hostname}:${url.port}` : url.hostname;
  }

  /** Does a site entry cover this page? A host covers its subdomains; a port, when given, must be
   * the page's (an address without one uses its scheme's default). */
  function siteMatches(site, pageUrl) {
    let url;
    try {
      url = new URL(pageUrl);
    } catch {
      return false;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return false;
    const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(String(site));
    if (!m) return false;
    const [, host, port] = m;
    const pagePort = url.port || (url.protocol === "https:" ? "443" : "80");
    if (port && port !== pagePort) return false;
    const isIp = host.startsWith("[") || /^\d+(\.\d+){3}$/.test(host);
    return url.hostname === host || (!isIp && url.hostname.endsWith(`.${host}`));
  }

  /** Of the entries that cover the page, the most specific one (longest host, then one with a port). */
  function mostSpecific(sites, pageUrl) {
    let best = null;
    let bestScore = -1;
    for (const site of sites) {
      if (!siteMatches(site, pageUrl)) continue;
      const score = site.replace(/:\d+$/, "").length * 2 + (/:\d+$/.test(site) ? 1 : 0);
      if (score > bestScore) {
        best = site;
        bestScore = score;
      }
    }
    return best;
  }

  /** A list of sites (array, or text one a line / comma-separated) -> the valid ones, deduplicated. */
  function parseOffSites(text) {
    const list = Array.isArray(text)
      ? text
      : String(text ?? "").split("\n").flatMap((line) => line.replace(/#.*$/, "").split(/[\s,]+/));
    const out = [];
    for (const item of list) {
      const got = parseSite(item);
      if (got.ok && !out.includes(got.site)) out.push(got.site);
    }
    return out;
  }

  function clampThreshold(value) {
    const t = value === null || value === "" || value === undefined ? null : Number(value);
    return t === null || !Number.isFinite(t) ? null : Math.min(MAX_THRESHOLD, Math.max(MIN_THRESHOLD, t));
  }

  function normalizeStrictness(raw) {
    const out = {};
    if (!raw || typeof raw !== "object" || Array.isArray(raw)) return out;
    for (const [key, value] of Object.entries(raw)) {
      const site = parseSite(key);
      const t = clampThreshold(value);
      if (site.ok && t !== null) out[site.site] = t;
    }
    return out;
  }

  function normalize(raw) {
    const s = { ...DEFAULTS, ...(raw || {}) };
    s.serverUrl = normalizeServerUrl(s.serverUrl) || DEFAULT_SERVER;
    s.token = String(s.token ?? "").trim();
    s.threshold = clampThreshold(s.threshold);
    if (!MODES.includes(s.medicalMode)) s.medicalMode = "badge";
    s.offSites = parseOffSites(s.offSites);
    s.siteStrictness = normalizeStrictness(s.siteStrictness);
    s.autoScan = s.autoScan === true;
    if (!MARKS.includes(s.mark)) s.mark = "auto";
    const st = Number(s.serverThreshold);
    s.serverThreshold = s.serverThreshold !== null && Number.isFinite(st) && st > 0 && st < 1 ? st : null;
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

  /** Notes the server's threshold from a /v1/health answer, writing only when it changed (every
   * open page listens to these settings and draws its labels again on a change). */
  async function rememberServerThreshold(health) {
    const t = health && health.model && health.model.threshold;
    if (typeof t !== "number" || !(t > 0 && t < 1)) return null;
    if ((await load()).serverThreshold !== t) await save({ serverThreshold: t });
    return t;
  }

  /** True when MedLens must stay off on this page (any off entry covers it). */
  function isSiteOff(pageUrl, offSites) {
    return (offSites || []).some((site) => siteMatches(site, pageUrl));
  }

  /** What applies on one page: off or not, and the threshold (null: the server's own), with the
   * site entry it came from; `compareWith` is the figure a label is judged against. */
  function forPage(s, pageUrl) {
    const site = mostSpecific(Object.keys(s.siteStrictness || {}), pageUrl);
    const threshold = site ? s.siteStrictness[site] : s.threshold;
    return {
      off: isSiteOff(pageUrl, s.offSites), threshold, site, compareWith: threshold ?? s.serverThreshold,
    };
  }

  /** The one-click strictness levels for a site, from the threshold used elsewhere. */
  function strictnessLevels(base) {
    const t = typeof base === "number" ? base : 0.5;
    const out = { usual: null };
    for (const [name, step] of Object.entries(STRICTER_STEPS)) out[name] = Math.round(clampThreshold(Math.max(0.05, t - step)) * 1000) / 1000;
    return out;
  }

  /** What the content script needs for its page (never the token). */
  function forContent(s, pageUrl) {
    const page = pageUrl ? forPage(s, pageUrl) : { threshold: s.threshold, compareWith: s.threshold ?? s.serverThreshold };
    return { threshold: page.threshold, compareWith: page.compareWith, medicalMode: s.medicalMode };
  }

  ns.settings = Object.freeze({
    DEFAULTS, DEFAULT_SERVER, KEYS, MODES, MARKS, MIN_THRESHOLD, MAX_THRESHOLD, normalize, normalizeServerUrl, parseSite, siteOf,
    siteMatches, parseOffSites, load, save, rememberServerThreshold, isSiteOff, forPage, strictnessLevels, forContent,
  });
})();
