/* MedLens content script, badges: what mark an element gets (from its rendered box), where it sits
 * (a corner of the box that covers none of the page's own controls), and drawing it in a closed
 * shadow root. The host element `medlens-badge` spans the element's box and carries the
 * data-medlens-* attributes of the extension contract (architecture.md). Layout functions are pure
 * so Node's test runner checks them. */
(() => {
  "use strict";
  const ns = (globalThis.MedLens = globalThis.MedLens || {});
  if (ns.badge) return;

  const MIN_BADGE = 24; // px: no mark on a box with a side below this
  const PILL_MIN_WIDTH = 120; // px: narrower (or lower than PILL_MIN_HEIGHT) boxes get a small mark
  const PILL_MIN_HEIGHT = 60;
  const INSET = 4; // px between the mark and the box's edge
  const CORNERS = ["top-left", "top-right", "bottom-left", "bottom-right"];

  /** The mark a box of this size gets: none, a small round mark, or a pill with words. */
  function formFor(box) {
    const side = Math.min(box.width, box.height);
    if (!(side >= MIN_BADGE)) return { form: "none" };
    if (box.width < PILL_MIN_WIDTH || box.height < PILL_MIN_HEIGHT) {
      return { form: "dot", size: Math.max(12, Math.min(20, Math.round(side * 0.3))) };
    }
    return { form: "pill", font: box.width < 220 ? 11 : 12, maxWidth: Math.floor(box.width - 2 * INSET) };
  }

  /** Where a mark of `size` ({width, height}) sits inside `box` (both in page px): the first corner
   * whose rectangle `isBlocked` says covers none of the page's controls, else the least covered.
   * Returns {corner, left, top} relative to the box. */
  function place(box, size, isBlocked) {
    const w = Math.min(size.width, Math.max(0, box.width - 2 * INSET));
    const h = Math.min(size.height, Math.max(0, box.height - 2 * INSET));
    let best = null;
    for (const corner of CORNERS) {
      const left = corner.endsWith("left") ? INSET : box.width - INSET - w;
      const top = corner.startsWith("top") ? INSET : box.height - INSET - h;
      const blocked = isBlocked({ left: box.left + left, top: box.top + top, width: w, height: h });
      const cost = typeof blocked === "number" ? blocked : blocked ? 1 : 0;
      if (!best || cost < best.cost) best = { corner, left, top, cost };
      if (cost === 0) break;
    }
    return { corner: best.corner, left: best.left, top: best.top };
  }

  /** Area of the overlap of two rectangles ({left, top, width, height}). */
  function overlap(a, b) {
    const w = Math.min(a.left + a.width, b.left + b.width) - Math.max(a.left, b.left);
    const h = Math.min(a.top + a.height, b.top + b.height) - Math.max(a.top, b.top);
    return w > 0 && h > 0 ? w * h : 0;
  }

  /* ---------------------------------------------------------------- DOM */

  const CONTROL = "button, a[href], input, select, textarea, summary, label, [role=button], [role=link], [onclick], [tabindex]";
  const roots = new WeakMap(); // host -> its closed shadow root

  /** How much of `rect` (viewport px) the page's own controls cover, probed at five points with
   * elementsFromPoint; `el`'s own ancestors (a link around the image) do not count. */
  function controlsCost(el, rect) {
    const doc = el.ownerDocument;
    let cost = 0;
    const points = [[0.5, 0.5], [0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.9]];
    for (const [fx, fy] of points) {
      const x = rect.left + rect.width * fx;
      const y = rect.top + rect.height * fy;
      for (const hit of doc.elementsFromPoint(x, y)) {
        if (hit === el || hit.contains(el)) break; // reached the image (or something under it)
        if (hit.localName === "medlens-badge") continue;
        if (hit.matches(CONTROL) || hit.closest(CONTROL)) {
          cost += 1;
          break;
        }
      }
    }
    return cost;
  }

  const STYLE = `
    :host { all: initial; }
    .box { position: absolute; inset: 0; overflow: hidden; pointer-events: none; }
    .mark { position: absolute; pointer-events: auto; box-sizing: border-box; display: inline-flex; align-items: center;
      gap: 4px; font: 600 12px/1.25 system-ui, -apple-system, "Segoe UI", sans-serif; white-space: nowrap;
      box-shadow: 0 1px 3px rgba(0,0,0,.45); cursor: default; }
    .pill { padding: 2px 7px; border-radius: 10px; overflow: hidden; text-overflow: ellipsis; }
    .dot { justify-content: center; border-radius: 50%; padding: 0; font-size: 10px; }
    .medical { background: #8f1d1d; color: #fff; border: 1px solid #fff; }
    .non-medical { background: #1d4d7a; color: #fff; border: 1px solid #fff; }
    .quiet { background: rgba(255,255,255,.94); color: #333; border: 1px dashed #666; font-weight: 500; }
    .text { min-width: 0; overflow: hidden; text-overflow: ellipsis; flex: 0 1 auto; }
    .icon, button { flex: none; }
    .more { display: none; position: absolute; left: 0; top: calc(100% + 3px); padding: 2px 7px; border-radius: 6px;
      background: rgba(20,20,20,.92); color: #fff; font-weight: 500; white-space: nowrap; }
    .pill { overflow: visible; }
    .pill:hover .more, .pill:focus-within .more { display: block; } /* below the mark: nothing in it moves */
    button { all: unset; cursor: pointer; font: 600 11px/1.2 system-ui, sans-serif; padding: 1px 6px; border-radius: 8px;
      background: #fff; color: #8f1d1d; }
    button:focus-visible { outline: 2px solid #ffbf00; outline-offset: 1px; }
    .dot button { position: absolute; inset: 0; background: transparent; border-radius: 50%; padding: 0; font-size: 0; }
    .cover { position: absolute; inset: 0; pointer-events: auto; display: flex; flex-direction: column; gap: 6px;
      align-items: center; justify-content: center; box-sizing: border-box; padding: 6px; text-align: center;
      background: repeating-linear-gradient(45deg, #eee, #eee 8px, #ddd 8px, #ddd 16px); border: 2px solid #8f1d1d;
      color: #222; font: 600 13px/1.3 system-ui, sans-serif; }
    .cover button { background: #8f1d1d; color: #fff; font-size: 12px; padding: 4px 10px; }
    .short { display: none; }
    .cover.small { font-size: 0; gap: 0; }
    .cover.small button { font-size: 10px; padding: 2px 5px; }
    .cover.small .long { display: none; }
    .cover.small .short { display: inline; }
    .cover.tiny button { position: absolute; inset: 0; padding: 0; border-radius: 0; background: transparent; }
    .cover.tiny .short { display: none; }
  `;

  function el(doc, tag, cls, text) {
    const e = doc.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /** The host for `target`, created on first use (attached to <html>, positioned over the box). */
  function hostFor(target, existing) {
    if (existing && existing.isConnected) return existing;
    const doc = target.ownerDocument;
    const host = doc.createElement("medlens-badge");
    roots.set(host, host.attachShadow({ mode: "closed" }));
    for (const [k, v] of Object.entries({
      all: "initial", position: "absolute", left: "0px", top: "0px", width: "0px", height: "0px", margin: "0",
      padding: "0", border: "0", "z-index": "2147483646", "pointer-events": "none", display: "none", overflow: "visible",
    })) host.style.setProperty(k, v, "important");
    (doc.documentElement || doc.body).appendChild(host);
    return host;
  }

  /**
   * Draw what `view` says for `target` into `host`:
   *   view = {label, src, probability, action: blurred|hidden|revealed|checking|"", mark: bool,
   *           text, detail, more, cover: {text, button} | null, button: text | null, onShow}
   */
  function draw(host, target, view) {
    const doc = target.ownerDocument;
    const root = roots.get(host);
    host.setAttribute("data-medlens-label", view.label);
    host.setAttribute("data-medlens-src", view.src);
    if (typeof view.probability === "number") host.setAttribute("data-medlens-probability", String(view.probability));
    else host.removeAttribute("data-medlens-probability");
    if (view.action) host.setAttribute("data-medlens-action", view.action);
    else host.removeAttribute("data-medlens-action");
    host.setAttribute("data-medlens-text", view.mark || view.cover ? view.text : "");
    root.textContent = "";
    root.append(el(doc, "style", "", STYLE));
    const box = el(doc, "div", "box");
    root.append(box);
    const show = (text, short) => {
      const b = el(doc, "button", "");
      b.append(el(doc, "span", "long", text), el(doc, "span", "short", short || text));
      b.type = "button";
      b.setAttribute("aria-label", view.showLabel || text);
      b.addEventListener("click", (ev) => {
        ev.preventDefault();
        ev.stopPropagation();
        view.onShow();
      });
      return b;
    };
    if (view.cover) {
      const cover = el(doc, "div", "cover");
      cover.setAttribute("role", "note");
      cover.setAttribute("aria-label", view.detail);
      cover.append(el(doc, "div", "", view.cover.text), show(view.cover.button, "Show"));
      box.append(cover);
    }
    if (view.mark && !view.cover) {
      const mark = el(doc, "div", `mark ${view.tone}`);
      mark.setAttribute("role", "note");
      mark.setAttribute("part", "badge");
      mark.setAttribute("aria-label", view.detail);
      mark.title = view.detail;
      mark.append(el(doc, "span", "icon", view.icon), el(doc, "span", "text", view.text));
      if (view.button) mark.append(show(view.button)); // before the hover text: it must not move
      if (view.more) mark.append(el(doc, "span", "more", view.more));
      box.append(mark);
    }
  }

  /** Put the host over `target`'s box (document coordinates) and lay its mark out for that box. */
  function position(host, target) {
    const win = target.ownerDocument.defaultView;
    const r = target.isConnected && win ? target.getBoundingClientRect() : null;
    if (!r || (r.width === 0 && r.height === 0) || clippedAway(target, r, win)) {
      host.style.setProperty("display", "none", "important");
      return;
    }
    const doc = target.ownerDocument;
    const rootRect = doc.documentElement.getBoundingClientRect();
    const cs = win.getComputedStyle(doc.documentElement);
    const offX = cs.position === "static" ? win.scrollX : -rootRect.left;
    const offY = cs.position === "static" ? win.scrollY : -rootRect.top;
    for (const [k, v] of Object.entries({
      display: "block", left: `${Math.round(r.left + offX)}px`, top: `${Math.round(r.top + offY)}px`,
      width: `${Math.round(r.width)}px`, height: `${Math.round(r.height)}px`,
    })) host.style.setProperty(k, v, "important");
    const root = roots.get(host);
    const mark = root && root.querySelector(".mark");
    const cover = root && root.querySelector(".cover");
    if (cover) {
      cover.classList.toggle("small", r.width < 140 || r.height < 90);
      cover.classList.toggle("tiny", r.width < 56 || r.height < 40); // the whole cover is the button
    }
    if (!mark) {
      host.setAttribute("data-medlens-form", cover ? "cover" : "none");
      return;
    }
    const form = formFor(r);
    host.setAttribute("data-medlens-form", form.form);
    if (form.form === "none") {
      mark.style.display = "none";
      return;
    }
    mark.style.display = "";
    mark.classList.toggle("dot", form.form === "dot");
    mark.classList.toggle("pill", form.form === "pill");
    for (const s of mark.querySelectorAll(".text, .more")) s.style.display = form.form === "dot" ? "none" : "";
    if (form.form === "dot") {
      Object.assign(mark.style, { width: `${form.size}px`, height: `${form.size}px`, fontSize: `${Math.round(form.size * 0.6)}px`, maxWidth: "" });
    } else {
      Object.assign(mark.style, { width: "", height: "", fontSize: `${form.font}px`, maxWidth: `${form.maxWidth}px` });
    }
    const size = { width: mark.offsetWidth, height: mark.offsetHeight };
    const at = place(r, size, (rect) => controlsCost(target, rect));
    mark.style.left = `${at.left}px`;
    mark.style.top = `${at.top}px`;
    host.setAttribute("data-medlens-corner", at.corner);
  }

  /** True when the element is scrolled out of sight inside a scrolling/clipping ancestor. */
  function clippedAway(target, r, win) {
    const doc = target.ownerDocument;
    for (let a = target.parentElement; a && a !== doc.body && a !== doc.documentElement; a = a.parentElement) {
      const cs = win.getComputedStyle(a);
      if (cs.overflowX === "visible" && cs.overflowY === "visible") continue;
      const c = a.getBoundingClientRect();
      if (r.bottom <= c.top || r.top >= c.bottom || r.right <= c.left || r.left >= c.right) return true;
    }
    return false;
  }

  /** The shadow root of one of our hosts: for this extension's own code (and tests that run in
   * its isolated world); the page cannot reach it. */
  function rootOf(host) {
    return roots.get(host) || null;
  }

  ns.badge = Object.freeze({ MIN_BADGE, INSET, CORNERS, formFor, place, overlap, hostFor, draw, position, rootOf });
})();
