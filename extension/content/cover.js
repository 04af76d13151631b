/* MedLens content script, covering and revealing elements. Before anything is known, the shield
 * style (shield-blur.css / shield-hide.css, registered for document_start) covers every candidate
 * that has no `data-medlens-state`; once this script has looked at an element it owns its state:
 *   clear   not covered (non-medical, too small, MedLens off here)
 *   covered blurred or hidden by inline style (medical, or not known yet while the shield is on)
 *   shown   the user clicked "show" (stays uncovered until the page reloads) */
(() => {
  "use strict";
  const ns = (globalThis.MedLens = globalThis.MedLens || {});
  if (ns.cover) return;

  const STATE = "data-medlens-state";
  const SHIELD = "data-medlens-shield"; // on <html>: "off" lifts the registered shield style
  const PROPS = ["filter", "clip-path", "visibility"];
  /** element -> its own inline values of PROPS before we covered it */
  const saved = new WeakMap();

  function save(el) {
    if (saved.has(el)) return;
    saved.set(el, PROPS.map((p) => [p, el.style.getPropertyValue(p), el.style.getPropertyPriority(p)]));
  }

  function restore(el) {
    const before = saved.get(el);
    if (!before) return;
    saved.delete(el);
    for (const [p, value, prio] of before) {
      if (value) el.style.setProperty(p, value, prio);
      else el.style.removeProperty(p);
    }
  }

  const current = new WeakMap(); // element -> how it is now (so applying the same again is a no-op)

  /** how: "blur" | "hide" (covered), "clear" or "shown" (not covered). */
  function apply(el, how) {
    if (current.get(el) === how && el.hasAttribute(STATE)) return;
    current.set(el, how);
    if (how === "blur" || how === "hide") {
      save(el);
      if (how === "blur") {
        el.style.setProperty("filter", "blur(18px)", "important");
        el.style.setProperty("clip-path", "inset(0)", "important"); // keep the blur inside the box
        el.style.removeProperty("visibility");
      } else {
        el.style.setProperty("visibility", "hidden", "important");
      }
      el.setAttribute(STATE, "covered");
      return;
    }
    restore(el);
    el.setAttribute(STATE, how === "shown" ? "shown" : "clear");
  }

  /** Forget an element (it left the page or shows something else now). */
  function release(el) {
    current.delete(el);
    restore(el);
    el.removeAttribute(STATE);
  }

  function isOurStyle(el) {
    return saved.has(el);
  }

  /** Lift (or restore) the registered shield style for a whole document. */
  function setShield(doc, on) {
    const root = doc.documentElement;
    if (!root) return;
    if (on) root.removeAttribute(SHIELD);
    else root.setAttribute(SHIELD, "off");
  }

  ns.cover = Object.freeze({ STATE, SHIELD, apply, release, isOurStyle, setShield });
})();
