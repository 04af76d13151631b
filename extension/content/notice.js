/* MedLens content script, the page-level notice: while the server cannot check this page's images
 * (not running, not paired), one bar at the top of the page says so and tells the fix; covered
 * images stay covered. Drawn in a closed shadow root; only in the top frame. */
(() => {
  "use strict";
  const ns = (globalThis.MedLens = globalThis.MedLens || {});
  if (ns.notice) return;

  const TAG = "medlens-notice";
  let host = null;
  let root = null;
  let shownCode = null;

  const STYLE = `
    :host { all: initial; }
    .bar { position: fixed; left: 12px; right: 12px; bottom: 12px; z-index: 2147483647; display: flex; gap: 10px;
      align-items: center; flex-wrap: wrap; padding: 10px 14px; border-radius: 8px; background: #fff8e1;
      color: #222; border: 2px solid #8f1d1d; box-shadow: 0 2px 10px rgba(0,0,0,.35);
      font: 500 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
    .title { font-weight: 700; }
    code { font: 600 13px ui-monospace, monospace; background: #f1f1f1; padding: 1px 5px; border-radius: 4px; }
    .grow { flex: 1 1 260px; }
    button { all: unset; cursor: pointer; font: 600 13px system-ui, sans-serif; padding: 4px 10px; border-radius: 6px;
      background: #8f1d1d; color: #fff; }
    button.plain { background: #e6e6e6; color: #222; }
    button:focus-visible { outline: 2px solid #ffbf00; outline-offset: 1px; }
  `;

  /** Show (or update) the notice for a wording {title, detail with `commands`}; actions: {retry, showAll}. */
  function show(code, words, actions) {
    if (globalThis.top !== globalThis.self) return;
    if (host && host.isConnected && shownCode === code) return;
    hide();
    const doc = document;
    host = doc.createElement(TAG);
    host.setAttribute("data-medlens-notice", code);
    host.style.setProperty("all", "initial", "important");
    root = host.attachShadow({ mode: "closed" });
    const bar = doc.createElement("div");
    bar.className = "bar";
    bar.setAttribute("role", "alert");
    const text = doc.createElement("div");
    text.className = "grow";
    const title = doc.createElement("span");
    title.className = "title";
    title.textContent = words.title + " ";
    text.append(title);
    words.detail.split("`").forEach((part, i) => {
      if (i % 2 === 0) text.append(doc.createTextNode(part));
      else text.append(Object.assign(doc.createElement("code"), { textContent: part }));
    });
    bar.append(text);
    for (const [label, fn, cls] of [["Try again", actions.retry, ""], ["Show all images", actions.showAll, "plain"], ["Dismiss", hide, "plain"]]) {
      const b = doc.createElement("button");
      b.type = "button";
      b.textContent = label;
      if (cls) b.className = cls;
      b.addEventListener("click", (ev) => {
        ev.preventDefault();
        ev.stopPropagation();
        fn();
      });
      bar.append(b);
    }
    const style = doc.createElement("style");
    style.textContent = STYLE;
    root.append(style, bar);
    (doc.documentElement || doc.body).appendChild(host);
    host.setAttribute("data-medlens-text", text.textContent.trim());
    shownCode = code;
  }

  function hide() {
    if (host) host.remove();
    host = null;
    root = null;
    shownCode = null;
  }

  function rootOf() {
    return root;
  }

  ns.notice = Object.freeze({ TAG, show, hide, rootOf });
})();
