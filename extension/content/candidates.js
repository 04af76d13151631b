/* MedLens content script, finding candidates: which elements of a document show an image worth
 * classifying, and the URL to classify for each (img, picture, srcset, lazy data-src, CSS
 * backgrounds, video, canvas, svg <image>). Classic script; pure functions first so Node's test
 * runner can load it without a DOM. */
(() => {
  "use strict";
  const ns = (globalThis.MedLens = globalThis.MedLens || {});
  if (ns.candidates) return;

  const MIN_RENDERED = 24; // px on screen: smaller elements are icons, spacers or tracking pixels
  const MIN_NATURAL = 16; // px of the decoded image (the server's min_side)
  const BADGE_TAG = "medlens-badge";
  // The elements the shield covers before anything is known about them (shield-*.css says the same).
  const MEDIA_SELECTOR = "img, video, canvas, svg image, [style*='url(']";
  const IMAGE_TYPES = /^image\/(jpeg|png|gif|webp|avif|bmp)$/i;

  /** Split a srcset the way the HTML spec (and the server's page scanner) does: URLs may hold commas. */
  function parseSrcset(srcset) {
    const out = [];
    const s = String(srcset ?? "");
    let pos = 0;
    while (pos < s.length) {
      while (pos < s.length && (/\s/.test(s[pos]) || s[pos] === ",")) pos += 1;
      let start = pos;
      while (pos < s.length && !/\s/.test(s[pos])) pos += 1;
      let url = s.slice(start, pos);
      let descriptor = "";
      if (url.endsWith(",")) {
        url = url.replace(/,+$/, "");
      } else {
        start = pos;
        while (pos < s.length && s[pos] !== ",") pos += 1;
        descriptor = s.slice(start, pos).trim();
      }
      if (url) out.push([url, descriptor ? descriptor.split(/\s+/)[0] : ""]);
    }
    return out;
  }

  /** The biggest candidate of a srcset (highest w, else highest x; a bare URL is 1x): the server's rule. */
  function largestSrcsetCandidate(srcset) {
    let best = null;
    let bestKey = [-1, -1];
    for (const [url, descriptor] of parseSrcset(srcset)) {
      const d = descriptor.toLowerCase();
      let key;
      if (d.endsWith("w")) key = [Math.trunc(Number(d.slice(0, -1))), 1];
      else if (d.endsWith("x")) key = [-1, Number(d.slice(0, -1))];
      else if (d === "") key = [-1, 1];
      else continue;
      if (!key.every(Number.isFinite)) continue;
      if (key[0] > bestKey[0] || (key[0] === bestKey[0] && key[1] > bestKey[1])) {
        bestKey = key;
        best = url;
      }
    }
    return best;
  }

  /** Every url(...) of a CSS value, in order. */
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

  function abs(url, base) {
    try {
      return new URL(url, base).href;
    } catch {
      return null;
    }
  }

  function isClassifiable(src) {
    return typeof src === "string" && /^(https?|data|blob):/i.test(src);
  }

  /* ---------------------------------------------------------------- DOM */

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
      if (type && !IMAGE_TYPES.test(type)) continue;
      const set = source.getAttribute("srcset") || source.getAttribute("data-srcset");
      const best = set && largestSrcsetCandidate(set);
      if (best) return abs(best, doc.baseURI);
    }
    return null;
  }

  /** {src, lazy} of an <img>: what it shows, else lazy data-src/data-srcset, picture or srcset.
   * Known from the attributes alone, so classification can start before the image loads. */
  function imgSource(img, doc) {
    const current = img.currentSrc || img.src || "";
    if (!isPlaceholder(img, current)) return { src: current, lazy: false };
    const lazySet = img.getAttribute("data-srcset");
    const fromLazySet = lazySet && largestSrcsetCandidate(lazySet);
    if (fromLazySet) return { src: abs(fromLazySet, doc.baseURI), lazy: true };
    const lazy = img.getAttribute("data-src") || img.getAttribute("data-lazy-src") || img.getAttribute("data-original");
    if (lazy) return { src: abs(lazy, doc.baseURI), lazy: true };
    const pic = fromPicture(img, doc);
    if (pic) return { src: pic, lazy: true };
    const set = img.getAttribute("srcset");
    const fromSet = set && largestSrcsetCandidate(set);
    if (fromSet) return { src: abs(fromSet, doc.baseURI), lazy: true };
    return { src: null, lazy: false };
  }

  function isOurs(el) {
    return el.localName === BADGE_TAG;
  }

  /** Too small to matter, judged from what is known now (rendered box once laid out, decoded size). */
  function tooSmall(el) {
    if (el.tagName === "IMG" && el.complete && el.naturalWidth > 2 && (el.naturalWidth < MIN_NATURAL || el.naturalHeight < MIN_NATURAL)) return true;
    if (el.tagName === "CANVAS" && (el.width < MIN_NATURAL || el.height < MIN_NATURAL)) return true;
    const r = el.getBoundingClientRect();
    const laidOut = el.tagName !== "IMG" || el.complete || el.hasAttribute("width") || el.hasAttribute("height");
    return laidOut && (r.width > 0 || r.height > 0) && (r.width < MIN_RENDERED || r.height < MIN_RENDERED);
  }

  /** Not rendered at all (display:none and the like); our own hide mode does not count. */
  function notRendered(el, ours) {
    if (!el.isConnected) return true;
    if (ours || typeof el.checkVisibility !== "function") return false;
    return !el.checkVisibility({ opacityProperty: false, visibilityProperty: false });
  }

  /** The candidate an element is, or null: {el, kind, src}. kind: img | bg | video | canvas | svg. */
  function candidateOf(el, doc, ours) {
    if (isOurs(el) || notRendered(el, ours)) return null;
    let src = null;
    let kind;
    switch (el.tagName) {
      case "IMG":
        kind = "img";
        src = imgSource(el, doc).src;
        break;
      case "VIDEO":
        kind = "video";
        src = el.currentSrc || el.src || el.querySelector("source[src]")?.src || el.poster || `video:${uid(el)}`;
        break;
      case "CANVAS":
        kind = "canvas";
        src = `canvas:${uid(el)}`;
        break;
      default:
        if (el.localName === "image" && el.namespaceURI === "http://www.w3.org/2000/svg") {
          kind = "svg";
          const href = el.getAttribute("href") || el.getAttributeNS("http://www.w3.org/1999/xlink", "href");
          src = href && abs(href, doc.baseURI);
        } else {
          kind = "bg";
          const win = doc.defaultView;
          const bg = win && win.getComputedStyle(el).backgroundImage;
          const first = bg && bg !== "none" ? cssUrls(bg)[0] : null; // its top layer
          src = first && abs(first, doc.baseURI);
        }
    }
    if (!src || !(isClassifiable(src) || kind === "video" || kind === "canvas")) return null;
    return { el, kind, src };
  }

  let nextUid = 1;
  const uids = new WeakMap();
  function uid(el) {
    if (!uids.has(el)) uids.set(el, nextUid++);
    return uids.get(el);
  }

  /** Candidates in `root` (a document or an element subtree); `withBackgrounds` also walks every
   * element for stylesheet backgrounds (costly: only at scans and debounced re-scans). */
  function* inTree(root, doc, withBackgrounds, isTracked) {
    const els = root.nodeType === 1 && root.matches(MEDIA_SELECTOR) ? [root] : [];
    els.push(...root.querySelectorAll(MEDIA_SELECTOR));
    const seen = new Set();
    for (const el of els) {
      seen.add(el);
      const c = candidateOf(el, doc, isTracked(el));
      if (c) yield c;
    }
    if (!withBackgrounds) return;
    const body = root.nodeType === 9 ? root.body : root;
    if (!body) return;
    for (const el of [body, ...body.querySelectorAll("*")]) {
      if (seen.has(el) || el.tagName === "IMG" || isOurs(el)) continue;
      const c = candidateOf(el, doc, isTracked(el));
      if (c && c.kind === "bg") yield c;
    }
  }

  /** Same-origin child documents with no copy of the content script of their own. */
  function childDocs(doc, frameMark) {
    const out = [];
    for (const frame of doc.querySelectorAll("iframe, frame")) {
      let inner = null;
      try {
        inner = frame.contentDocument; // same-origin only; cross-origin frames throw or give null
      } catch {
        inner = null;
      }
      if (inner && inner.documentElement && !inner.documentElement.hasAttribute(frameMark)) out.push(inner);
    }
    return out;
  }

  ns.candidates = Object.freeze({
    MIN_RENDERED, MIN_NATURAL, BADGE_TAG, MEDIA_SELECTOR, parseSrcset, largestSrcsetCandidate, cssUrls, abs,
    isClassifiable, imgSource, isOurs, tooSmall, candidateOf, inTree, childDocs,
  });
})();
