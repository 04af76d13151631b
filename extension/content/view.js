/* MedLens content script, what one element looks like for a result and the user's settings:
 * covered or not, which mark (if any), its words (from lib/wording.js) and what its button says.
 * Pure, so Node's test runner checks every case. Nothing here puts a server's message into the
 * page: skipped and failed items get wording's generic page label; only problems the extension
 * itself knows (server down, not paired, unreadable pixels) are named. */
(() => {
  "use strict";
  const ns = (globalThis.MedLens = globalThis.MedLens || {});
  if (ns.view) return;

  // Codes the extension itself found (not a server's message about the image): named on the page.
  const OWN_CODES = new Set(["server_down", "unauthorized", "old_server", "queue_full", "extension_error", "not_readable"]);
  const ICONS = { medical: "✚", "non-medical": "○", quiet: "⊘" };

  /** Should this element carry a mark? "all" | "medical" | "auto" (medical only when covering). */
  function marks(label, s) {
    if (label === "medical") return true;
    if (s.mark === "all") return true;
    if (s.mark === "medical") return false;
    return s.medicalMode === "badge";
  }

  /**
   * ctx: {label: pending|medical|non-medical|skipped|error, threshold, shield, revealed, clearCodes:Set}
   * Returns {covering: blur|hide|clear|shown, host, label, action, mark, tone, icon, text, detail,
   *          more, button, showLabel, cover: {text, button} | null}.
   */
  function viewOf(result, s, ctx) {
    const W = ns.wording;
    const label = ctx.label;
    const mode = s.medicalMode;
    const code = result && result.error ? result.error.code : null;
    const unknown = label === "pending" || (label === "error" && !ctx.clearCodes.has(code));
    const wantsCover = (label === "medical" && mode !== "badge") || (ctx.shield && unknown);
    const covering = wantsCover ? (ctx.revealed ? "shown" : mode === "hide" ? "hide" : "blur") : "clear";
    const out = {
      covering, host: label !== "pending", label: label === "pending" ? "pending" : label,
      probability: result && typeof result.probability === "number" ? result.probability : null,
      action: covering === "blur" ? "blurred" : covering === "hide" ? "hidden" : covering === "shown" ? "revealed" : "",
      mark: false, tone: "quiet", icon: ICONS.quiet, text: "", detail: "", more: "", button: null, showLabel: "", cover: null,
    };
    if (label === "pending") {
      out.text = "Checking…";
      out.detail = "MedLens is checking this image";
      return out;
    }
    if (label === "medical" || label === "non-medical") {
      const v = W.verdict({ ...result, label }, ctx.threshold);
      out.tone = label;
      out.icon = ICONS[label];
      out.text = v.word;
      out.more = [v.figures, v.modality].filter(Boolean).join(" · ");
      out.detail = v.sentence;
      out.mark = marks(label, s);
      if (covering === "blur") {
        out.button = "Show";
        out.showLabel = "Show this medical image";
      } else if (covering === "hide") {
        out.cover = { text: label === "medical" ? "Medical image hidden by MedLens" : "Hidden by MedLens", button: "Show image" };
        out.showLabel = "Show this medical image";
      }
      return out;
    }
    const own = OWN_CODES.has(code);
    const page = W.pageLabel(result);
    out.text = own ? "Not checked" : page.text;
    out.more = own ? W.errorReason(code) : "";
    out.detail = own ? `MedLens could not check this image: ${W.errorReason(code)}. The MedLens popup says more.` : page.title;
    out.mark = marks(label, s) || covering !== "clear";
    if (covering === "blur") {
      out.button = "Show";
      out.showLabel = "Show this image anyway";
    } else if (covering === "hide") {
      out.cover = { text: own ? `Not checked: ${W.errorReason(code)}` : "Not checked by MedLens", button: "Show anyway" };
      out.showLabel = "Show this image anyway";
    }
    return out;
  }

  /** The page-level notice for a problem with the server: {title, detail}; `commands` in the
   * detail are written between backticks. */
  function serverProblem(code) {
    return { title: "MedLens is keeping this page's images covered.", detail: ns.wording.errorText(code) };
  }

  ns.view = Object.freeze({ OWN_CODES, marks, viewOf, serverProblem });
})();
