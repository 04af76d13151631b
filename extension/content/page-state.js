/* MedLens content script, the page state: the one owner of what this frame knows. Every other
 * content module reads and changes it only through these functions.
 *   entries: src -> {src, bytes, kind, elements:Set, state: queued|pending|done, result, order}
 *   tracked: element -> {src, kind, host, revealed}
 *   settings: what the user chose (never the token) */
(() => {
  "use strict";
  const ns = (globalThis.MedLens = globalThis.MedLens || {});
  if (ns.pageState) return;

  const entries = new Map();
  const tracked = new Map();
  let settings = { threshold: null, compareWith: null, medicalMode: "badge", mark: "auto", autoScan: false, offSites: [], siteOff: false };
  let discovered = 0;

  function getSettings() {
    return settings;
  }

  /** Replace the settings; returns which of them changed. */
  function setSettings(next) {
    const changed = Object.keys(next).filter((k) => JSON.stringify(next[k]) !== JSON.stringify(settings[k]));
    settings = Object.freeze({ ...settings, ...next });
    return changed;
  }

  /** The entry of a source, created queued when new; `kind` says how its bytes are read. */
  function entryFor(src, kind) {
    let entry = entries.get(src);
    if (!entry) {
      const bytes = kind === "canvas" || kind === "video" || !/^https?:/i.test(src);
      entry = { src, kind, bytes, elements: new Set(), state: "queued", result: null, order: discovered++ };
      entries.set(src, entry);
    }
    return entry;
  }

  function track(el, src, kind) {
    const prev = tracked.get(el);
    if (prev && prev.src === src) return { entry: entries.get(src), isNew: false };
    if (prev) untrack(el);
    const entry = entryFor(src, kind);
    entry.elements.add(el);
    tracked.set(el, { src, kind, host: null, revealed: false });
    return { entry, isNew: true };
  }

  /** Forget an element; returns its record (the caller removes what it drew). */
  function untrack(el) {
    const t = tracked.get(el);
    if (!t) return null;
    const entry = entries.get(t.src);
    if (entry) entry.elements.delete(el);
    tracked.delete(el);
    return t;
  }

  function trackOf(el) {
    return tracked.get(el) || null;
  }

  function entryOf(el) {
    const t = tracked.get(el);
    return t ? entries.get(t.src) || null : null;
  }

  /** The label the user's settings give a result: the threshold is applied here (from the
   * probability the server sent), so a threshold change needs no new request. */
  function labelOf(result, s = settings) {
    if (!result) return "pending";
    if (result.status === "skipped") return "skipped";
    if (result.status !== "ok") return "error";
    if (typeof result.probability !== "number") return result.label === "medical" ? "medical" : "non-medical";
    const threshold = comparedWith(result, s);
    if (threshold === null) return result.label === "medical" ? "medical" : "non-medical";
    return result.probability >= threshold ? "medical" : "non-medical";
  }

  /** The threshold a result is judged against on this page: the user's (or the site's), else the
   * server's own as last seen (null when not known yet: the server's label stands). */
  function comparedWith(result, s = settings) {
    return typeof s.compareWith === "number" ? s.compareWith : null;
  }

  function counts() {
    const c = { medical: 0, "non-medical": 0, skipped: 0, error: 0 };
    let done = 0;
    for (const e of entries.values()) {
      if (e.state !== "done") continue;
      done += 1;
      c[labelOf(e.result)] += 1;
    }
    return { found: entries.size, done, counts: c };
  }

  function allEntries() {
    return entries.values();
  }

  function allTracked() {
    return tracked.entries();
  }

  function entry(src) {
    return entries.get(src) || null;
  }

  ns.pageState = Object.freeze({
    getSettings, setSettings, entryFor, entry, track, untrack, trackOf, entryOf, labelOf, comparedWith, counts,
    allEntries, allTracked,
  });
})();
