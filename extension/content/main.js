/* MedLens content script, the controller: wires finding candidates, the request queue, covering,
 * badges and observers together, answers the service worker's messages and applies settings
 * changes at once. Loaded last of content/*.js: at document_start by the registered shield
 * script (then content/autostart.js starts it), or on demand by scripting.executeScript. Each
 * copy covers its own document, plus same-origin child documents with no copy of their own. It
 * never talks to the server itself. */
(() => {
  "use strict";
  const ns = (globalThis.MedLens = globalThis.MedLens || {});
  if (ns.content) return;

  const ext = globalThis.browser ?? globalThis.chrome;
  const { TYPES, TO_CONTENT, isMessage } = ns.messages;
  const S = ns.pageState;
  const C = ns.candidates;
  const V = ns.cover;
  const B = ns.badge;
  const M = ns.media;
  const VIEW = ns.view;

  // Set on this frame's <html> so a same-origin parent leaves this document to this copy.
  const FRAME_MARK = "data-medlens-frame";
  const SETTING_KEYS = ["threshold", "medicalMode", "mark", "offSites", "autoScan", "siteStrictness", "serverThreshold"];
  // Errors that say nothing about the picture being medical: the shield lets these through.
  const CLEAR_CODES = new Set(["unsupported_format"]);
  const NO_CODES = new Set(); // a video or canvas that could not be checked stays covered
  const SERVER_CODES = new Set(["server_down", "unauthorized", "old_server", "queue_full", "extension_error"]);
  const RESAMPLE_MS = { canvas: 2000, video: 3000 }; // the least time between two looks at one element
  let started = false;
  let progressTimer = 0;
  if (document.documentElement) document.documentElement.setAttribute(FRAME_MARK, "");

  const observers = ns.observers.create({
    added: (nodes) => lookAt(nodes, shieldOn()),
    changed: (el) => lookAt([el], false),
    loaded: onLoaded,
    layout: layoutAll,
    rescan: rescan,
    settings: onSettingsChanged,
    repaint: checkRepaints,
    isOurStyle: V.isOurStyle,
  });
  const queue = ns.queue.create({ allEntries: S.allEntries, distanceOf, send: classifyBatch });

  /* ---------------------------------------------------------------- settings */

  /** The settings that apply on this page (per-site strictness and off sites included). */
  async function loadSettings() {
    const s = ns.settings.normalize(await ext.storage.local.get(SETTING_KEYS));
    const page = ns.settings.forPage(s, location.href);
    return {
      threshold: page.threshold, compareWith: page.compareWith, medicalMode: s.medicalMode, mark: s.mark,
      autoScan: s.autoScan, offSites: s.offSites, siteOff: page.off,
    };
  }

  function shieldOn(s = S.getSettings()) {
    return s.autoScan && s.medicalMode !== "badge" && !s.siteOff;
  }

  /** A settings change reaches this page at once: results are drawn again with the new settings
   * (no new request); only what was never looked at is classified now. */
  async function onSettingsChanged(changes) {
    if (!SETTING_KEYS.some((k) => k in changes) && !("token" in changes) && !("serverUrl" in changes)) return;
    const changed = S.setSettings(await loadSettings());
    const s = S.getSettings();
    if ("token" in changes || "serverUrl" in changes) requeue((r) => r && r.error && SERVER_CODES.has(r.error.code));
    if (s.siteOff) {
      stopAll();
      return;
    }
    V.setShield(document, shieldOn());
    if (!started && (s.autoScan || changed.length === 0)) {
      if (s.autoScan) start();
      return;
    }
    if (started) {
      renderAll();
      if (changed.includes("autoScan") || changed.includes("offSites")) rescan();
    }
  }

  /* ---------------------------------------------------------------- finding and tracking */

  function isTracked(el) {
    return !!S.trackOf(el);
  }

  /** Look at elements (and their subtrees): track new candidates, let go of what is not one. */
  function lookAt(nodes, withBackgrounds) {
    if (!started) return;
    const seen = new Set();
    for (const node of nodes) {
      if (!node.isConnected) continue;
      const doc = node.ownerDocument || document;
      for (const c of C.inTree(node, doc, withBackgrounds, isTracked)) {
        seen.add(c.el);
        consider(c);
      }
      const media = [...(node.nodeType === 1 && node.matches(C.MEDIA_SELECTOR) ? [node] : []), ...node.querySelectorAll(C.MEDIA_SELECTOR)];
      for (const el of media) if (!seen.has(el) && !isTracked(el) && !el.hasAttribute(V.STATE)) V.apply(el, "clear");
      for (const inner of C.childDocs(node.nodeType === 9 ? node : doc, FRAME_MARK)) {
        observers.watch(inner);
        lookAt([inner], withBackgrounds);
      }
    }
    queue.kick();
  }

  function consider({ el, kind, src }) {
    if (C.tooSmall(el)) {
      forget(el);
      V.apply(el, "clear");
      return;
    }
    const { entry, isNew } = S.track(el, src, kind);
    if (isNew) {
      observers.observeSize(el);
      if (kind === "canvas" || kind === "video") observers.pollRepaints(true);
    }
    render(el);
    if (entry.state === "done") reportProgress(false);
  }

  function forget(el) {
    const t = S.untrack(el);
    if (!t) return;
    if (t.host) t.host.remove();
    V.release(el);
    observers.unobserveSize(el);
  }

  /** The full look: every candidate of the document (stylesheet backgrounds included). */
  function rescan() {
    if (!started) return;
    for (const [el] of [...S.allTracked()]) if (!el.isConnected) forget(el);
    lookAt([document], true);
  }

  function onLoaded(el) {
    if (el.tagName === "IFRAME" || el.tagName === "FRAME") {
      scheduleFramesChanged();
      return;
    }
    const entry = S.entryOf(el);
    if (entry && entry.state === "waiting") entry.state = "queued";
    lookAt([el], false);
  }

  /* ---------------------------------------------------------------- classification */

  function distanceOf(entry) {
    let best = Infinity;
    const vh = globalThis.innerHeight || 800;
    for (const el of entry.elements) {
      const r = el.getBoundingClientRect();
      best = Math.min(best, r.bottom < 0 ? -r.bottom : r.top > vh ? r.top - vh : 0);
    }
    return best;
  }

  async function classifyBatch(batch) {
    let results;
    try {
      results = batch[0].bytes ? await classifyBytes(batch) : await askWorker(urlMessage(batch.map((e) => e.src)));
    } catch (err) {
      results = batch.map(() => localError("extension_error", err));
    }
    batch.forEach((e, i) => settle(e, results[i]));
    reportProgress(false);
  }

  async function askWorker(msg) {
    const reply = await ext.runtime.sendMessage(msg);
    if (!reply || !Array.isArray(reply.results)) throw Object.assign(new Error("no answer"), { code: (reply && reply.error && reply.error.code) || "extension_error" });
    return reply.results;
  }

  /** Pixels of canvases and video frames, inline images: read here, classified as bytes; a video
   * poster, or a cross-origin video the page cannot read, goes as a URL (the server fetches it).
   * Elements with nothing to read yet wait. */
  async function classifyBytes(batch) {
    const out = new Array(batch.length);
    const bytes = [];
    const urls = [];
    const videos = [];
    await Promise.all(batch.map(async (e, i) => {
      try {
        const el = [...e.elements][0];
        const item = await M.readItem(e, el);
        const t = el && S.trackOf(el);
        if (t && (t.kind === "canvas" || t.kind === "video")) {
          t.print = M.fingerprint(el);
          t.lastLook = Date.now();
        }
        if (item.dataUrl) bytes.push([i, { src: e.src, dataUrl: item.dataUrl }]);
        else if (item.url) urls.push([i, item.url]);
        else videos.push([i, item.videoUrl]); // a cross-origin video the page cannot read: the server may
      } catch (err) {
        out[i] = err && err.code === "not_ready" ? "wait" : localError(err && err.code === "not_readable" ? "not_readable" : "fetch_failed", err);
      }
    }));
    const ask = async (pairs, msg) => {
      if (!pairs.length) return;
      let res;
      try {
        res = await askWorker(msg);
      } catch (err) {
        res = pairs.map(() => localError((err && err.code) || "extension_error", err));
      }
      pairs.forEach(([i], j) => (out[i] = res[j] || localError("extension_error")));
    };
    await Promise.all([
      ask(bytes, { type: TYPES.CLASSIFY_BYTES, items: bytes.map(([, it]) => it) }),
      ask(urls, urlMessage(urls.map(([, u]) => u))),
      ask(videos, urlMessage(videos.map(([, u]) => u))),
    ]);
    // A video neither the page nor the server could look at stays "not readable" here (the
    // server's own reason is in the popup).
    for (const [i] of videos) if (out[i] && out[i].status !== "ok") out[i] = localError("not_readable");
    return out;
  }

  /** The server fetches these; it may tell their hosts at most what this page's referrer policy allows. */
  function urlMessage(urls) {
    return { type: TYPES.CLASSIFY_URLS, urls, referrerPolicy: ns.referrer.documentPolicy(document) };
  }

  function localError(code, err) {
    return { status: "error", label: null, probability: null, modality: null, error: { code, message: String((err && err.message) || code) } };
  }

  function settle(entry, result) {
    if (result === "wait") {
      entry.state = "waiting"; // re-queued when the element loads or paints something
      return;
    }
    const prev = entry.result;
    // A video is as medical as its most medical frame so far.
    const keepPrev = entry.kind === "video" && prev && prev.status === "ok" && !(result && result.status === "ok" && result.probability >= prev.probability);
    entry.result = keepPrev ? prev : result || localError("extension_error");
    entry.state = "done";
    for (const el of entry.elements) render(el);
    const code = entry.result.error && entry.result.error.code;
    if (entry.result.status === "error" && SERVER_CODES.has(code)) showNotice(code);
    else if (entry.result.status === "ok") ns.notice.hide();
  }

  function requeue(which) {
    for (const e of S.allEntries()) if (e.state === "done" && which(e.result)) {
      e.state = "queued";
      e.result = null;
      for (const el of e.elements) render(el);
    }
    queue.kick();
  }

  function showNotice(code) {
    if (!shieldOn()) return;
    ns.notice.show(code, VIEW.serverProblem(code), {
      retry: () => {
        ns.notice.hide();
        requeue((r) => r && r.error && SERVER_CODES.has(r.error.code));
      },
      showAll: () => {
        for (const [el, t] of [...S.allTracked()]) {
          t.revealed = true;
          render(el);
        }
        ns.notice.hide();
      },
    });
  }

  /* ---------------------------------------------------------------- drawing */

  /** Cover and mark one element as its entry and the settings say. */
  function render(el) {
    const t = S.trackOf(el);
    const entry = S.entryOf(el);
    if (!t || !entry) return;
    const s = S.getSettings();
    const view = VIEW.viewOf(entry.result, s, {
      label: S.labelOf(entry.result, s),
      threshold: entry.result ? S.comparedWith(entry.result, s) : null,
      shield: shieldOn(s),
      revealed: t.revealed,
      clearCodes: t.kind === "video" || t.kind === "canvas" ? NO_CODES : CLEAR_CODES,
    });
    V.apply(el, view.covering);
    if (!view.host) {
      if (t.host) t.host.remove();
      t.host = null;
      t.drawn = null;
      return;
    }
    const key = JSON.stringify([entry.src, view]);
    if (t.host && t.host.isConnected && t.drawn === key) return; // nothing new to draw
    t.host = B.hostFor(el, t.host);
    t.drawn = key;
    B.draw(t.host, el, {
      ...view, src: entry.src, onShow: () => {
        t.revealed = true;
        render(el);
      },
    });
    B.position(t.host, el);
  }

  function renderAll() {
    for (const [el] of [...S.allTracked()]) render(el);
  }

  function layoutAll() {
    for (const [el, t] of [...S.allTracked()]) {
      if (!el.isConnected) {
        if (t.host) t.host.remove();
        continue;
      }
      if (t.host) B.position(t.host, el);
    }
  }

  /** Canvases and videos on screen that now show another picture are looked at again, each at
   * most once per RESAMPLE_MS; one that had nothing to show yet is looked at once it has. */
  function checkRepaints() {
    const now = Date.now();
    let any = false;
    for (const [el, t] of S.allTracked()) {
      if (t.kind !== "canvas" && t.kind !== "video") continue;
      any = true;
      const entry = S.entryOf(el);
      if (!entry || entry.state === "pending" || entry.state === "queued" || distanceOf(entry) > 0) continue;
      if (entry.state === "done" && now - (t.lastLook || 0) < RESAMPLE_MS[t.kind]) continue;
      const print = M.fingerprint(el);
      const ready = entry.state === "waiting" && (print || (t.kind === "video" && el.readyState >= 2) || !M.readable(el));
      if (!ready && !(entry.state === "done" && M.changed(t.print, print))) continue;
      t.print = print;
      t.lastLook = now;
      entry.state = "queued";
      if (t.kind === "canvas" && entry.result) {
        entry.result = null; // a new picture: covered again (shield) until it is classified
        render(el);
      }
    }
    if (!any) observers.pollRepaints(false);
    queue.kick();
  }

  /* ---------------------------------------------------------------- lifecycle */

  function start() {
    if (document.documentElement) document.documentElement.setAttribute(FRAME_MARK, "");
    V.setShield(document, shieldOn());
    if (started) return;
    started = true;
    observers.watch(document);
    lookAt([document], true); // what was parsed while the settings loaded, backgrounds included
  }

  /** MedLens turned off here: everything uncovered, every mark removed, nothing more classified. */
  function stopAll() {
    started = false;
    V.setShield(document, false);
    ns.notice.hide();
    for (const [el] of [...S.allTracked()]) {
      forget(el);
      V.apply(el, "clear");
    }
  }

  /** Tell the service worker this frame's counts (debounced); `final` once nothing is in flight. */
  function reportProgress(now) {
    clearTimeout(progressTimer);
    const send = () => {
      const final = ![...S.allEntries()].some((e) => e.state === "queued" || e.state === "pending");
      ext.runtime.sendMessage({ type: TYPES.SCAN_PROGRESS, ...S.counts(), watching: started, final }).catch(() => {});
    };
    if (now) send();
    else progressTimer = setTimeout(send, 150);
  }

  /** A frame (re)loaded in a watched page: the service worker covers it too (debounced). */
  let framesTimer = 0;
  function scheduleFramesChanged() {
    clearTimeout(framesTimer);
    framesTimer = setTimeout(() => ext.runtime.sendMessage({ type: TYPES.FRAMES_CHANGED }).catch(() => {}), 250);
  }

  /* ---------------------------------------------------------------- messages from the service worker */

  async function scanPage() {
    S.setSettings(await loadSettings());
    if (S.getSettings().siteOff) return { status: "off", ...S.counts(), watching: false };
    start();
    lookAt([document], true);
    await queue.idle();
    reportProgress(true);
    return { status: "done", ...S.counts(), watching: started };
  }

  /** The context menu's answer for one image: badge every element showing `src`. */
  async function badgeImage(src, result) {
    S.setSettings(await loadSettings());
    const found = [];
    const walk = (doc) => {
      for (const c of C.inTree(doc, doc, true, isTracked)) if (c.src === src || c.el.currentSrc === src || c.el.src === src) found.push(c);
      for (const inner of C.childDocs(doc, FRAME_MARK)) walk(inner);
    };
    walk(document);
    for (const c of found) {
      const { entry } = S.track(c.el, src, c.kind);
      entry.result = result;
      entry.state = "done";
      observers.observeSize(c.el);
    }
    observers.watch(document);
    for (const c of found) render(c.el);
    return { badged: found.length };
  }

  ext.runtime.onMessage.addListener((msg, sender, sendResponse) => {
    if (!isMessage(msg) || !TO_CONTENT.includes(msg.type) || !sender || sender.id !== ext.runtime.id) return false;
    let reply;
    switch (msg.type) {
      case TYPES.PING:
        sendResponse({ ok: true });
        return false;
      case TYPES.SCAN_PAGE:
        reply = scanPage();
        break;
      case TYPES.BADGE_IMAGE:
        reply = badgeImage(String(msg.src), msg.result);
        break;
      case TYPES.GET_IMAGE_BYTES:
        reply = M.imageBytes(String(msg.src), null).then((dataUrl) => ({ dataUrl }), (e) => ({ error: String(e.message || e) }));
        break;
      default:
        return false;
    }
    reply.then(sendResponse, () => sendResponse({ error: { code: "content_error", message: "the page script failed" } }));
    return true;
  });

  /** At document_start (registered shield script): start at once when auto-scan is on here. */
  async function autoStart() {
    if (document.documentElement) document.documentElement.setAttribute(FRAME_MARK, "");
    S.setSettings(await loadSettings());
    const s = S.getSettings();
    if (s.siteOff || !s.autoScan) {
      V.setShield(document, false);
      return;
    }
    start();
  }

  ns.content = Object.freeze({ autoStart, scanPage });
})();
