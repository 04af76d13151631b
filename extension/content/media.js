/* MedLens content script, reading pixels: an image's bytes (data:, blob:, behind a login), a
 * canvas's pixels, a video's current frame, and a small fingerprint to notice that a canvas or a
 * video now shows something else. A tainted canvas or a cross-origin/DRM video cannot be read:
 * that is `not_readable`, never a guess. */
(() => {
  "use strict";
  const ns = (globalThis.MedLens = globalThis.MedLens || {});
  if (ns.media) return;

  const MAX_SIDE = 768; // px: frames and canvases are sent scaled down to this (the model looks at 224)
  const PRINT_SIDE = 12; // px of the fingerprint
  const CHANGED = 18; // mean absolute difference (0..255) of two fingerprints that counts as a new picture

  class Unreadable extends Error {
    constructor(code, message) {
      super(message);
      this.code = code; // not_readable (tainted / DRM) | not_ready (nothing drawn or decoded yet)
    }
  }

  function blobToDataUrl(blob) {
    return new Promise((resolve, reject) => {
      const fr = new FileReader();
      fr.onload = () => resolve(fr.result);
      fr.onerror = () => reject(fr.error);
      fr.readAsDataURL(blob);
    });
  }

  function sizeOf(source) {
    if (source.tagName === "VIDEO") return [source.videoWidth, source.videoHeight];
    if (source.tagName === "IMG") return [source.naturalWidth, source.naturalHeight];
    return [source.width, source.height];
  }

  /** `source` (img, canvas or video) drawn onto a new canvas at most `side` px wide/high. */
  function drawScaled(source, side) {
    const [w, h] = sizeOf(source);
    if (!w || !h) throw new Unreadable("not_ready", "nothing to read yet");
    if (source.tagName === "VIDEO" && source.readyState < 2) throw new Unreadable("not_ready", "no frame yet");
    const k = Math.min(1, side / Math.max(w, h));
    const c = document.createElement("canvas");
    c.width = Math.max(1, Math.round(w * k));
    c.height = Math.max(1, Math.round(h * k));
    c.getContext("2d").drawImage(source, 0, 0, c.width, c.height);
    return c;
  }

  /** A JPEG data: URL of what `source` shows now; Unreadable when it cannot be read. */
  function pixelsAsDataUrl(source) {
    const c = drawScaled(source, MAX_SIDE);
    try {
      return c.toDataURL("image/jpeg", 0.9);
    } catch {
      throw new Unreadable("not_readable", "the page does not let its pixels be read");
    }
  }

  /** Gray fingerprint of what `source` shows (null when blank or unreadable). */
  function fingerprint(source) {
    let data;
    try {
      data = drawScaled(source, PRINT_SIDE).getContext("2d").getImageData(0, 0, PRINT_SIDE, PRINT_SIDE).data;
    } catch {
      return null;
    }
    const out = [];
    let lo = 255;
    let hi = 0;
    for (let i = 0; i < data.length; i += 4) {
      const g = data[i + 3] === 0 ? 255 : Math.round((data[i] + data[i + 1] + data[i + 2]) / 3);
      out.push(g);
      lo = Math.min(lo, g);
      hi = Math.max(hi, g);
    }
    return hi - lo < 4 ? null : out; // one flat colour: nothing drawn yet
  }

  /** True when two fingerprints differ enough to be another picture (either null: unknown). */
  function changed(a, b) {
    if (!a || !b || a.length !== b.length) return !!a !== !!b;
    let sum = 0;
    for (let i = 0; i < a.length; i += 1) sum += Math.abs(a[i] - b[i]);
    return sum / a.length > CHANGED;
  }

  /** False when the page does not let its pixels be read (a tainted canvas, a cross-origin video). */
  function readable(source) {
    try {
      drawScaled(source, 1).getContext("2d").getImageData(0, 0, 1, 1);
      return true;
    } catch (e) {
      return !(e && e.name === "SecurityError");
    }
  }

  /** The bytes to classify for an entry's element, as {dataUrl} or {url} (the server fetches it).
   * Throws Unreadable. */
  async function readItem(entry, el) {
    const src = entry.src;
    if (el && (el.tagName === "CANVAS" || el.tagName === "VIDEO")) {
      if (el.tagName === "CANVAS" && !fingerprint(el)) {
        if (!readable(el)) throw new Unreadable("not_readable", "the page does not let its pixels be read");
        throw new Unreadable("not_ready", "the canvas is blank");
      }
      try {
        return { dataUrl: pixelsAsDataUrl(el) };
      } catch (e) {
        if (el.tagName === "VIDEO" && e.code === "not_ready" && el.poster && /^https?:/i.test(el.poster)) return { url: el.poster };
        if (el.tagName === "VIDEO" && e.code === "not_readable" && /^https?:/i.test(src)) return { videoUrl: src };
        throw e;
      }
    }
    return { dataUrl: await imageBytes(src, el) };
  }

  /** Bytes of a data:/blob: image (or one behind a login) as a data: URL. */
  async function imageBytes(src, el) {
    if (/^data:/i.test(src)) return src;
    try {
      const resp = await fetch(src, { credentials: "include" });
      if (resp.ok) return await blobToDataUrl(await resp.blob());
    } catch {
      /* fall back to the decoded image */
    }
    if (el && el.tagName === "IMG" && el.complete && el.naturalWidth) {
      const c = drawScaled(el, Math.max(el.naturalWidth, el.naturalHeight));
      try {
        return c.toDataURL("image/png");
      } catch {
        throw new Unreadable("fetch_failed", "image bytes not readable");
      }
    }
    throw new Unreadable("fetch_failed", "image bytes not readable");
  }

  ns.media = Object.freeze({ MAX_SIDE, Unreadable, readItem, imageBytes, fingerprint, changed, readable });
})();
