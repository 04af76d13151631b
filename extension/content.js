/* MedLens content script: finds a page's images, asks the service worker to classify them and
 * draws badges in open shadow roots over them. It never talks to the server itself. Injected on
 * demand (toolbar, context menu, auto-scan) together with lib/messages.js, into every frame of the
 * tab (cross-origin iframes included); idempotent. Each copy covers its own document, plus any
 * same-origin child frame that has no copy of its own (e.g. one added after the scan started). */
/* global MedLens */
(() => {
  "use strict";
  if (globalThis.__medlensContent) return;
  globalThis.__medlensContent = true;

  const ext = globalThis.browser ?? globalThis.chrome;
  const { TYPES, TO_CONTENT, isMessage } = MedLens.messages;

  const MIN_RENDERED = 24; // px on screen: smaller elements are icons, spacers or tracking pixels
  const MIN_NATURAL = 16; // px of the decoded image (the server's min_side)
  const URL_CHUNK = 24; // URLs per request to the service worker
  const BYTES_CHUNK = 4; // inline images per request
  const PARALLEL = 4; // requests in flight
  const RESCAN_MS = 250; // debounce of the MutationObserver
  const BADGE_TAG = "medlens-badge";
  // Set on this frame's <html> so a same-origin parent leaves this document to this copy (the
  // parent cannot see another frame's isolated world, only the shared DOM).
  const FRAME_MARK = "data-medlens-frame";
  if (document.documentElement) document.documentElement.setAttribute(FRAME_MARK, "");

  /** src -> {src, bytes, elements:Set, state: queued|pending|done, result} */
  const entries = new Map();
  /** element -> {src, host, doc} */
  const tracked = new Map();
  const watchedDocs = new Set();
  let settings = { threshold: null, medicalMode: "badge" };
  let watching = false;
  let draining = null;
  let rescanTimer = 0;
  let layoutFrame = 0;
  let progressTimer = 0;
  const resizeObs = typeof ResizeObserver === "function" ? new ResizeObserver(() => scheduleLayout()) : null;
  const mutationObs = new MutationObserver(onMutations);
  /** element -> its own inline filter/visibility before blur/hide (restored on reveal) */
  const savedStyles = new WeakMap();

  /* ---------------------------------------------------------------- finding images */

  function abs(url, doc) {
    try {
      return new URL(url, doc.baseURI).href;
    } catch {
      return null;
    }
  }

  /** Best candidate of a srcset: the widest "w" or highest "x" descriptor. */
  function bestFromSrcset(srcset, doc) {
    let best = null;
    let bestScore = -1;
    for (const part of String(srcset).split(/,\s+(?=\S)/)) {
      const [url, desc = "1x"] = part.trim().split(/\s+/);
      if (!url) continue;
      const n = parseFloat(desc);
      const score = /w$/i.test(desc) ? n : (Number.isFinite(n) ? n : 1) * 1000;
      if (score > bestScore) {
        bestScore = score;
        best = url.replace(/,$/, "");
      }
    }
    return best ? abs(best, doc) : null;
  }

  function isPlaceholder(img, src) {
    if (!src) return true;
    if (/^data:image\/(gif|svg)/i.test(src) && src.length < 400) return true;
    return img.complete && img.naturalWidth > 0 && img.naturalWidth <= 2 && img.naturalHeight <= 2;
  }

  /** The picture's <source> the browser would pick (when the <img> has not loaded yet). */
  function fromPicture(img, doc) {
    const pic = img.parentElement;
    if (!pic || pic.tagName !== "PICTURE") return null;
    const win = doc.defaultView;
    for (const source of pic.querySelectorAll("source")) {
      const media = source.getAttribute("media");
      if (media && win && !win.matchMedia(media).matches) continue;
      const type = source.getAttribute("type");
      if (type && !/^image\/(jpeg|png|gif|webp|avif|bmp)$/i.test(type)) continue;
      const set = source.getAttribute("srcset") || source.getAttribute("data-srcset");
      if (set) return bestFromSrcset(set, doc);
    }
    return null;
  }

  /** {src, lazy} of an <img>: currentSrc/src, else lazy data-src/data-srcset, picture or srcset. */
  function imgSource(img, doc) {
    const current = img.currentSrc || img.src || "";
    const lazySet = img.getAttribute("data-srcset");
    const lazy = img.getAttribute("data-src") || img.getAttribute("data-lazy-src") || img.getAttribute("data-original");
    if (!isPlaceholder(img, current)) return { src: current, lazy: false };
    if (lazySet) {
      const c = bestFromSrcset(lazySet, doc);
      if (c) return { src: c, lazy: true };
    }
    if (lazy) return { src: abs(lazy, doc), lazy: true };
    const pic = fromPicture(img, doc);
    if (pic) return { src: pic, lazy: true };
    if (img.getAttribute("srcset")) return { src: bestFromSrcset(img.getAttribute("srcset"), doc), lazy: true };
    return { src: null, lazy: false };
  }

  function cssUrls(value) {
    const out = [];
    const re = /url\(\s*(?:"([^"]*)"|'([^']*)'|([^)]*?))\s*\)/g;
    let m;
    while ((m = re.exec(value || ""))) {
      const u = (m[1] ?? m[2] ?? m[3] ?? "").trim();
      if (u) out.push(u);
    }
    return out;
  }

  function isOurs(el) {
    return el.localName === BADGE_TAG;
  }

  /** Shown and big enough to matter; `lazy` images are judged by their box only when it has one. */
  function visible(el, lazy) {
    if (!el.isConnected) return false;
    if (typeof el.checkVisibility === "function" && !el.checkVisibility({ opacityProperty: true, visibilityProperty: true })) {
      return tracked.has(el); // our own "hide" mode makes it invisible: keep it
    }
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0 && !lazy) return false;
    if (!lazy && (r.width < MIN_RENDERED || r.height < MIN_RENDERED)) return false;
    if (el.tagName === "IMG" && el.complete && el.naturalWidth > 2 && (el.naturalWidth < MIN_NATURAL || el.naturalHeight < MIN_NATURAL)) return false;
    return true;
  }

  function* candidates(doc) {
    for (const img of doc.images) {
      const { src, lazy } = imgSource(img, doc);
      if (src && visible(img, lazy)) yield { el: img, src };
    }
    const win = doc.defaultView;
    if (doc.body && win) {
      for (const el of doc.body.querySelectorAll("*")) {
        if (el.tagName === "IMG" || isOurs(el)) continue;
        const bg = win.getComputedStyle(el).backgroundImage;
        if (!bg || bg === "none" || !bg.includes("url(")) continue;
        for (const u of cssUrls(bg)) {
          const src = abs(u, doc);
          if (src && visible(el, false)) {
            yield { el, src };
            break; // one badge per element: its first (top) layer
          }
        }
      }
    }
    for (const frame of doc.querySelectorAll("iframe, frame")) {
      let inner = null;
      try {
        inner = frame.contentDocument; // same-origin only; cross-origin frames throw or give null
      } catch {
        inner = null;
      }
      if (inner && inner.documentElement && !inner.documentElement.hasAttribute(FRAME_MARK) && visible(frame, true)) {
        watchDoc(inner);
        yield* candidates(inner);
      }
    }
  }

  /** Adds what is new to `entries` (queued) and `tracked`; returns how many new sources. */
  function discover() {
    let added = 0;
    for (const { el, src } of candidates(document)) {
      if (!/^(https?|data|blob):/i.test(src)) continue;
      const prev = tracked.get(el);
      if (prev && prev.src === src) continue;
      if (prev) untrack(el);
      let entry = entries.get(src);
      if (!entry) {
        entry = { src, bytes: !/^https?:/i.test(src), elements: new Set(), state: "queued", result: null };
        entries.set(src, entry);
        added += 1;
      }
      entry.elements.add(el);
      tracked.set(el, { src, host: null, doc: el.ownerDocument });
      resizeObs && resizeObs.observe(el);
      if (entry.state === "done") drawBadge(el, entry);
    }
    return added;
  }

  function untrack(el) {
    const t = tracked.get(el);
    if (!t) return;
    const entry = entries.get(t.src);
    if (entry) entry.elements.delete(el);
    restoreElement(el);
    if (t.host) t.host.remove();
    tracked.delete(el);
    resizeObs && resizeObs.unobserve(el);
  }

  /* ---------------------------------------------------------------- classification (via the service worker) */

  function nextBatch() {
    const urls = [];
    const bytes = [];
    for (const e of entries.values()) {
      if (e.state !== "queued") continue;
      if (e.bytes && bytes.length < BYTES_CHUNK && !urls.length) bytes.push(e);
      else if (!e.bytes && urls.length < URL_CHUNK && !bytes.length) urls.push(e);
      if (urls.length >= URL_CHUNK || bytes.length >= BYTES_CHUNK) break;
    }
    const batch = urls.length ? urls : bytes;
    batch.forEach((e) => (e.state = "pending"));
    return batch.length ? batch : null;
  }

  async function classifyBatch(batch) {
    let reply;
    try {
      if (batch[0].bytes) {
        const items = [];
        for (const e of batch) items.push({ src: e.src, dataUrl: await readAsDataUrl(e.src, [...e.elements][0]) });
        reply = await ext.runtime.sendMessage({ type: TYPES.CLASSIFY_BYTES, items });
      } else {
        reply = await ext.runtime.sendMessage({
          type: TYPES.CLASSIFY_URLS, urls: batch.map((e) => e.src), referrerPolicy: MedLens.referrer.documentPolicy(document),
        });
      }
    } catch (err) {
      reply = { error: { code: "extension_error", message: String(err && err.message ? err.message : err) } };
    }
    batch.forEach((e, i) => {
      const r = reply && reply.results && reply.results[i];
      e.result = r || {
        source: e.src, status: "error", label: null, probability: null, modality: null,
        error: (reply && reply.error) || { code: "internal", message: "no answer" },
      };
      e.state = "done";
      for (const el of e.elements) drawBadge(el, e);
    });
    reportProgress(false);
  }

  function drain() {
    if (!draining) {
      draining = (async () => {
        const worker = async () => {
          for (let b = nextBatch(); b; b = nextBatch()) await classifyBatch(b);
        };
        await Promise.all(Array.from({ length: PARALLEL }, worker));
      })().finally(() => {
        draining = null;
      });
    }
    return draining;
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

  function reportProgress(final) {
    clearTimeout(progressTimer);
    const send = () => {
      const msg = { type: TYPES.SCAN_PROGRESS, ...counts(), watching, final };
      ext.runtime.sendMessage(msg).catch(() => {});
    };
    if (final) send();
    else progressTimer = setTimeout(send, 150);
  }

  /** Bytes of a data:/blob: image (or one behind a login), as a data: URL. */
  async function readAsDataUrl(src, el) {
    if (/^data:/i.test(src)) return src;
    try {
      const resp = await fetch(src, { credentials: "include" });
      if (resp.ok) return await blobToDataUrl(await resp.blob());
    } catch {
      /* fall back to the canvas */
    }
    const img = el && el.tagName === "IMG" ? el : findElements(src)[0];
    if (img && img.tagName === "IMG" && img.complete && img.naturalWidth) {
      const canvas = document.createElement("canvas");
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      canvas.getContext("2d").drawImage(img, 0, 0);
      return canvas.toDataURL("image/png"); // throws if the image is cross-origin (tainted)
    }
    throw new Error("image bytes not readable");
  }

  function blobToDataUrl(blob) {
    return new Promise((resolve, reject) => {
      const fr = new FileReader();
      fr.onload = () => resolve(fr.result);
      fr.onerror = () => reject(fr.error);
      fr.readAsDataURL(blob);
    });
  }

  /** Elements showing `src` (img or CSS background), in this document and same-origin frames. */
  function findElements(src, doc = document) {
    const out = [];
    for (const img of doc.images) {
      if (img.currentSrc === src || img.src === src || imgSource(img, doc).src === src) out.push(img);
    }
    if (!out.length && doc.body && doc.defaultView) {
      for (const el of doc.body.querySelectorAll("*")) {
        if (el.tagName === "IMG" || isOurs(el)) continue;
        const bg = doc.defaultView.getComputedStyle(el).backgroundImage;
        if (bg && bg.includes("url(") && cssUrls(bg).some((u) => abs(u, doc) === src)) out.push(el);
      }
    }
    for (const frame of doc.querySelectorAll("iframe, frame")) {
      try {
        const inner = frame.contentDocument;
        if (inner && inner.documentElement && !inner.documentElement.hasAttribute(FRAME_MARK)) out.push(...findElements(src, inner));
      } catch {
        /* cross-origin */
      }
    }
    return out;
  }

  /* ---------------------------------------------------------------- badges */

  const MODALITIES = {
    xray: "X-ray", ct: "CT", mri: "MRI", fundus: "fundus photo", histology: "histology", ultrasound: "ultrasound",
    nuclear: "nuclear medicine", cryosection: "cryosection", dermatology: "dermatology", endoscopy: "endoscopy",
  };

  function labelOf(r) {
    if (!r) return "error";
    if (r.status === "ok") return r.label === "medical" ? "medical" : "non-medical";
    return r.status === "skipped" ? "skipped" : "error";
  }

  const STYLE = `
    :host { all: initial; }
    .pill { pointer-events: auto; display: inline-flex; align-items: center; gap: 4px; max-width: 320px;
      font: 600 12px/1.25 system-ui, -apple-system, "Segoe UI", sans-serif; padding: 2px 7px; border-radius: 10px;
      box-shadow: 0 1px 3px rgba(0,0,0,.45); white-space: nowrap; cursor: default; letter-spacing: .01em; }
    .medical { background: #8f1d1d; color: #fff; border: 1px solid #fff; }
    .non-medical { background: #1d4d7a; color: #fff; border: 1px solid #fff; }
    .quiet { background: rgba(255,255,255,.92); color: #3a3a3a; border: 1px dashed #6b6b6b; font-weight: 500; opacity: .9; }
    .icon { font-size: 11px; }
    .more { display: none; font-weight: 500; }
    .pill:hover .more, .pill:focus-within .more { display: inline; }
    button { all: unset; cursor: pointer; font: 600 11px/1.2 system-ui, sans-serif; padding: 1px 6px; border-radius: 8px;
      background: #fff; color: #8f1d1d; margin-left: 2px; }
    button:focus-visible { outline: 2px solid #ffbf00; outline-offset: 1px; }
    .cover { pointer-events: auto; position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
      background: repeating-linear-gradient(45deg, #eee, #eee 8px, #ddd 8px, #ddd 16px); border: 2px solid #8f1d1d;
      box-sizing: border-box; color: #222; font: 600 13px/1.3 system-ui, sans-serif; text-align: center; padding: 6px; }
    .cover button { background: #8f1d1d; color: #fff; font-size: 12px; padding: 4px 10px; margin: 6px 0 0; }
  `;

  function ensureHost(el, doc) {
    const t = tracked.get(el);
    if (t.host && t.host.isConnected) return t.host;
    const host = doc.createElement(BADGE_TAG);
    host.attachShadow({ mode: "open" });
    for (const [k, v] of Object.entries({
      all: "initial", position: "absolute", left: "0px", top: "0px", width: "0px", height: "0px", margin: "0",
      padding: "0", border: "0", "z-index": "2147483646", "pointer-events": "none", display: "block", overflow: "visible",
    })) host.style.setProperty(k, v, "important");
    (doc.documentElement || doc.body).appendChild(host);
    t.host = host;
    watchDoc(doc);
    return host;
  }

  function drawBadge(el, entry) {
    if (!tracked.has(el)) tracked.set(el, { src: entry.src, host: null, doc: el.ownerDocument });
    const doc = el.ownerDocument;
    const host = ensureHost(el, doc);
    const r = entry.result;
    const label = labelOf(r);
    host.setAttribute("data-medlens-label", label);
    host.setAttribute("data-medlens-src", entry.src);
    if (r && typeof r.probability === "number") host.setAttribute("data-medlens-probability", String(r.probability));
    else host.removeAttribute("data-medlens-probability");
    const root = host.shadowRoot;
    root.textContent = "";
    const style = doc.createElement("style");
    style.textContent = STYLE;
    root.append(style);
    const pill = doc.createElement("div");
    pill.setAttribute("role", "note");
    pill.setAttribute("part", "badge");
    if (label === "medical" || label === "non-medical") {
      const p = r.probability;
      // 0 % and 100 % would claim a certainty the model does not have
      const conf = Math.min(99, Math.max(1, Math.round((label === "medical" ? p : 1 - p) * 100)));
      const modality = r.modality ? MODALITIES[r.modality] || r.modality : "";
      pill.className = `pill ${label}`;
      pill.append(span("icon", label === "medical" ? "✚" : "○"), span("text", `${label === "medical" ? "Medical" : "Non-medical"} ${conf}%`));
      if (modality) pill.append(span("more", `· ${modality}`));
      const text = `MedLens: ${label} image, probability of medical ${Math.min(99, Math.max(1, Math.round(p * 100)))}%${modality ? `, modality: ${modality}` : ""}`;
      pill.title = text;
      pill.setAttribute("aria-label", text);
    } else {
      // one generic label whatever the code: the page learns nothing MedLens knows (details: popup)
      const generic = MedLens.wording.pageLabel(r);
      pill.className = "pill quiet";
      pill.append(span("icon", "⊘"), span("text", generic.text));
      pill.title = generic.title;
      pill.setAttribute("aria-label", generic.title);
    }
    root.append(pill);
    applyMode(el, host, label, pill, doc);
    position(el);
  }

  function span(cls, text) {
    const s = document.createElement("span");
    s.className = cls;
    s.textContent = text;
    return s;
  }

  /* What to do with medical images: badge only, blur, or hide with click-to-reveal. */
  function applyMode(el, host, label, pill, doc) {
    const mode = settings.medicalMode;
    if (label !== "medical" || mode === "badge" || host.getAttribute("data-medlens-action") === "revealed") {
      if (host.getAttribute("data-medlens-action") !== "revealed") {
        restoreElement(el);
        host.removeAttribute("data-medlens-action");
      }
      return;
    }
    if (!savedStyles.has(el)) {
      savedStyles.set(el, {
        filter: [el.style.getPropertyValue("filter"), el.style.getPropertyPriority("filter")],
        "clip-path": [el.style.getPropertyValue("clip-path"), el.style.getPropertyPriority("clip-path")],
        visibility: [el.style.getPropertyValue("visibility"), el.style.getPropertyPriority("visibility")],
      });
    }
    const reveal = doc.createElement("button");
    reveal.type = "button";
    reveal.textContent = "Show";
    reveal.setAttribute("aria-label", "Show this medical image");
    reveal.addEventListener("click", (ev) => {
      ev.preventDefault();
      ev.stopPropagation();
      restoreElement(el);
      host.setAttribute("data-medlens-action", "revealed");
      host.shadowRoot.querySelector(".cover")?.remove();
      reveal.remove();
      position(el);
    });
    if (mode === "blur") {
      el.style.setProperty("filter", "blur(18px)", "important");
      el.style.setProperty("clip-path", "inset(0)", "important"); // keep the blur inside the image's box
      host.setAttribute("data-medlens-action", "blurred");
      pill.append(reveal);
    } else {
      el.style.setProperty("visibility", "hidden", "important");
      host.setAttribute("data-medlens-action", "hidden");
      const cover = doc.createElement("div");
      cover.className = "cover";
      const msg = doc.createElement("div");
      msg.append(doc.createTextNode("Medical image hidden by MedLens"), doc.createElement("br"));
      reveal.textContent = "Show image";
      msg.append(reveal);
      cover.append(msg);
      host.shadowRoot.insertBefore(cover, pill);
    }
  }

  function restoreElement(el) {
    const saved = savedStyles.get(el);
    if (!saved) return;
    savedStyles.delete(el);
    for (const prop of ["filter", "clip-path", "visibility"]) {
      const [value, prio] = saved[prop];
      if (value) el.style.setProperty(prop, value, prio);
      else el.style.removeProperty(prop);
    }
  }

  /* ---------------------------------------------------------------- layout: follow scroll and resize */

  function position(el) {
    const t = tracked.get(el);
    if (!t || !t.host) return;
    const host = t.host;
    const win = el.ownerDocument.defaultView;
    if (!el.isConnected || !win) {
      host.style.setProperty("display", "none", "important");
      return;
    }
    const r = el.getBoundingClientRect();
    if ((r.width === 0 && r.height === 0) || clippedAway(el, r, win)) {
      host.style.setProperty("display", "none", "important");
      return;
    }
    // Coordinates relative to the document (the host is absolutely positioned on <html>).
    const rootRect = el.ownerDocument.documentElement.getBoundingClientRect();
    const cs = win.getComputedStyle(el.ownerDocument.documentElement);
    const offX = cs.position === "static" ? win.scrollX : -rootRect.left;
    const offY = cs.position === "static" ? win.scrollY : -rootRect.top;
    const covering = host.getAttribute("data-medlens-action") === "hidden";
    host.style.setProperty("display", "block", "important");
    host.style.setProperty("left", `${Math.round(r.left + offX)}px`, "important");
    host.style.setProperty("top", `${Math.round(r.top + offY)}px`, "important");
    host.style.setProperty("width", covering ? `${Math.round(r.width)}px` : "0px", "important");
    host.style.setProperty("height", covering ? `${Math.round(r.height)}px` : "0px", "important");
    const pill = host.shadowRoot.querySelector(".pill");
    if (pill) {
      pill.style.position = "absolute";
      pill.style.left = "4px";
      pill.style.top = "4px";
    }
  }

  /** True when the element is scrolled out of sight inside a scrolling/clipping ancestor. */
  function clippedAway(el, r, win) {
    for (let a = el.parentElement; a && a !== el.ownerDocument.body && a !== el.ownerDocument.documentElement; a = a.parentElement) {
      const cs = win.getComputedStyle(a);
      if (cs.overflowX === "visible" && cs.overflowY === "visible") continue;
      const c = a.getBoundingClientRect();
      if (r.bottom <= c.top || r.top >= c.bottom || r.right <= c.left || r.left >= c.right) return true;
    }
    return false;
  }

  function layoutAll() {
    layoutFrame = 0;
    for (const [el, t] of tracked) {
      if (!el.isConnected) {
        if (t.host) t.host.remove();
        continue;
      }
      position(el);
    }
  }

  function scheduleLayout() {
    if (!layoutFrame) layoutFrame = requestAnimationFrame(layoutAll);
  }

  /* ---------------------------------------------------------------- watching the page */

  function watchDoc(doc) {
    if (!watching || watchedDocs.has(doc)) return;
    watchedDocs.add(doc);
    const win = doc.defaultView;
    mutationObs.observe(doc, {
      childList: true, subtree: true, attributes: true,
      attributeFilter: ["src", "srcset", "data-src", "data-srcset", "style", "class", "hidden"],
    });
    if (win) {
      win.addEventListener("scroll", scheduleLayout, { capture: true, passive: true });
      win.addEventListener("resize", scheduleLayout, { passive: true });
    }
    doc.addEventListener("load", onLoadEvent, true); // images finishing (lazy ones, srcset picks)
  }

  function startWatching() {
    if (watching) return;
    watching = true;
    watchDoc(document);
  }

  function onLoadEvent(ev) {
    if (ev.target && (ev.target.tagName === "IMG" || ev.target.tagName === "IFRAME")) scheduleRescan();
    if (ev.target && (ev.target.tagName === "IFRAME" || ev.target.tagName === "FRAME")) scheduleFramesChanged();
    scheduleLayout();
  }

  /** A frame (re)loaded in a watched page: the service worker puts a copy of this script in it
   * (a cross-origin one cannot be reached from here) and has it scanned. Debounced. */
  let framesTimer = 0;
  function scheduleFramesChanged() {
    clearTimeout(framesTimer);
    framesTimer = setTimeout(() => {
      ext.runtime.sendMessage({ type: TYPES.FRAMES_CHANGED }).catch(() => {});
    }, RESCAN_MS);
  }

  function onMutations(list) {
    let relevant = false;
    for (const m of list) {
      if (m.type === "childList") {
        const ours = [...m.addedNodes, ...m.removedNodes].every((n) => n.nodeType === 1 && isOurs(n));
        if (!ours) relevant = true;
      } else if (!isOurs(m.target) && !(m.attributeName === "style" && savedStyles.has(m.target))) {
        relevant = true;
      }
      if (relevant) break;
    }
    if (!relevant) return;
    scheduleLayout();
    scheduleRescan();
  }

  function scheduleRescan() {
    clearTimeout(rescanTimer);
    rescanTimer = setTimeout(() => {
      for (const el of [...tracked.keys()]) if (!el.isConnected) untrack(el);
      if (discover()) drain().then(() => reportProgress(true));
    }, RESCAN_MS);
  }

  /* ---------------------------------------------------------------- messages from the service worker */

  async function scanPage(newSettings) {
    if (newSettings) settings = { ...settings, ...newSettings };
    startWatching();
    discover();
    await drain();
    reportProgress(true);
    return { status: "done", ...counts(), watching };
  }

  function badgeImage(src, result, newSettings) {
    if (newSettings) settings = { ...settings, ...newSettings };
    let entry = entries.get(src);
    if (!entry) {
      entry = { src, bytes: !/^https?:/i.test(src), elements: new Set(), state: "done", result };
      entries.set(src, entry);
    }
    entry.result = result;
    entry.state = "done";
    for (const el of findElements(src)) {
      const prev = tracked.get(el);
      if (prev && prev.src !== src) untrack(el);
      entry.elements.add(el);
      if (!tracked.has(el)) tracked.set(el, { src, host: null, doc: el.ownerDocument });
    }
    for (const el of entry.elements) drawBadge(el, entry);
    startWatching();
    return { badged: entry.elements.size };
  }

  ext.runtime.onMessage.addListener((msg, sender, sendResponse) => {
    if (!isMessage(msg) || !TO_CONTENT.includes(msg.type) || !sender || sender.id !== ext.runtime.id) return false;
    let reply;
    switch (msg.type) {
      case TYPES.PING:
        sendResponse({ ok: true });
        return false;
      case TYPES.SCAN_PAGE:
        reply = scanPage(msg.settings);
        break;
      case TYPES.BADGE_IMAGE:
        reply = Promise.resolve(badgeImage(String(msg.src), msg.result, msg.settings));
        break;
      case TYPES.GET_IMAGE_BYTES:
        reply = readAsDataUrl(String(msg.src)).then((dataUrl) => ({ dataUrl }), (e) => ({ error: String(e.message || e) }));
        break;
      default:
        return false;
    }
    reply.then(sendResponse, (e) => sendResponse({ error: { code: "content_error", message: String(e && e.message) } }));
    return true;
  });
})();
