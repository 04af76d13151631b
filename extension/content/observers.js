/* MedLens content script, observers: DOM changes, element loads, size, scroll and zoom, settings
 * changes and repaints of canvases and videos, each turned into one call of a handler given by
 * the controller (content/main.js). Work is batched to one animation frame, which runs before the
 * next paint: an element added now is looked at before it is first drawn. */
(() => {
  "use strict";
  const ns = (globalThis.MedLens = globalThis.MedLens || {});
  if (ns.observers) return;
  const ext = globalThis.browser ?? globalThis.chrome;

  const ATTRS = ["src", "srcset", "data-src", "data-srcset", "style", "class", "hidden", "poster", "href", "width", "height"];
  const REPAINT_MS = 500; // how often canvases and videos on screen are checked for a new picture
  const RESCAN_MS = 250; // debounce of the full re-scan (stylesheet backgrounds, removed elements)

  /** handlers: {added(nodes), changed(el), loaded(el), layout(), rescan(), settings(changes), repaint()}. */
  function create(handlers) {
    const docs = new Set();
    let pendingNodes = new Set();
    let frame = 0;
    let layoutFrame = 0;
    let rescanTimer = 0;
    let repaintTimer = 0;
    const isOurs = (n) => n.nodeType === 1 && (n.localName === "medlens-badge" || n.localName === "medlens-notice");
    const resizeObs = typeof ResizeObserver === "function" ? new ResizeObserver(() => layout()) : null;

    function flush() {
      frame = 0;
      const nodes = [...pendingNodes];
      pendingNodes = new Set();
      if (nodes.length) handlers.added(nodes);
    }

    function soon() {
      if (frame) return;
      // rAF runs before the next paint; a hidden tab gets no frames, so a timer backs it up.
      frame = requestAnimationFrame(flush);
      setTimeout(() => frame && (cancelAnimationFrame(frame), flush()), 100);
    }

    function layout() {
      if (!layoutFrame) layoutFrame = requestAnimationFrame(() => {
        layoutFrame = 0;
        handlers.layout();
      });
    }

    function rescan() {
      clearTimeout(rescanTimer);
      rescanTimer = setTimeout(handlers.rescan, RESCAN_MS);
    }

    function onMutations(list) {
      let any = false;
      for (const m of list) {
        if (m.type === "childList") {
          for (const n of m.addedNodes) if (n.nodeType === 1 && !isOurs(n)) {
            pendingNodes.add(n);
            any = true;
          }
          if ([...m.removedNodes].some((n) => !isOurs(n))) any = true;
        } else if (!isOurs(m.target) && !(m.attributeName === "style" && handlers.isOurStyle(m.target))
          && !(m.attributeName === "data-medlens-state")) {
          pendingNodes.add(m.target);
          any = true;
        }
      }
      if (!any) return;
      soon();
      layout();
      rescan();
    }

    const mutationObs = new MutationObserver(onMutations);

    function onLoad(ev) {
      const t = ev.target;
      if (!t || !t.tagName) return;
      if (["IMG", "VIDEO", "IFRAME", "FRAME"].includes(t.tagName)) handlers.loaded(t);
      layout();
    }

    function watch(doc) {
      if (docs.has(doc)) return;
      docs.add(doc);
      mutationObs.observe(doc, { childList: true, subtree: true, attributes: true, attributeFilter: ATTRS });
      const win = doc.defaultView;
      if (win) {
        win.addEventListener("scroll", layout, { capture: true, passive: true });
        win.addEventListener("resize", layout, { passive: true });
      }
      doc.addEventListener("load", onLoad, true);
      doc.addEventListener("loadeddata", onLoad, true);
      doc.addEventListener("DOMContentLoaded", () => handlers.rescan(), { once: true });
    }

    function observeSize(el) {
      if (resizeObs) resizeObs.observe(el);
    }

    function unobserveSize(el) {
      if (resizeObs) resizeObs.unobserve(el);
    }

    /** Poll canvases and videos for a new picture while any is tracked (bounded rate). */
    function pollRepaints(on) {
      if (on && !repaintTimer) repaintTimer = setInterval(handlers.repaint, REPAINT_MS);
      if (!on && repaintTimer) {
        clearInterval(repaintTimer);
        repaintTimer = 0;
      }
    }

    ext.storage.onChanged.addListener((changes, area) => {
      if (area === "local") handlers.settings(changes);
    });

    return { watch, layout, rescan, observeSize, unobserveSize, pollRepaints };
  }

  ns.observers = Object.freeze({ REPAINT_MS, create });
})();
