/* MedLens popup: asks the service worker to scan the active tab as it opens (so one toolbar click
 * scans), shows the server's state and the scan's progress, and classifies dropped PDFs/images. */
/* global MedLens */
"use strict";

const ext = globalThis.browser ?? globalThis.chrome;
const { TYPES } = MedLens.messages;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let currentTabId = null;
// The server's own limits (/v1/health `limits`); the shipped defaults until it has answered.
let limits = MedLens.api.limitsOf(null);
let serverChecked = null;
// The threshold the server compares with (/v1/health model.threshold), once it has answered.
let serverThreshold = null;

/* ---------------------------------------------------------------- server state */

function showServer(st) {
  $("server").dataset.state = st.state;
  $("server-title").textContent = st.title;
  $("server-detail").textContent = st.detail || "";
  $("server-command").textContent = st.command || "";
  $("server-command-row").hidden = !st.command || st.ok;
  const unpaired = st.state === "not_paired" || st.state === "wrong_token";
  $("pair-form").hidden = !unpaired;
  if (st.health && st.health.limits) showLimits(MedLens.api.limitsOf(st.health));
  if (st.health && st.health.model && typeof st.health.model.threshold === "number") serverThreshold = st.health.model.threshold;
}

function showLimits(next) {
  limits = next;
  $("file-limits").textContent =
    `PDFs up to ${mb(limits.max_pdf_bytes)}, images up to ${mb(limits.max_image_bytes)}, ${limits.max_items} file${limits.max_items === 1 ? "" : "s"} per upload`;
  $("file-limits").dataset.fromServer = String(limits.fromServer);
}

function refreshServer() {
  serverChecked = (async () => {
    const s = await MedLens.settings.load();
    const st = await MedLens.api.serverState(s);
    showServer(st);
    MedLens.native.showStatus($("native-status")); // started by MedLens / running / not installed
    return st;
  })();
  return serverChecked;
}

/* ---------------------------------------------------------------- pairing with a one-time code */

async function pairFromForm(ev) {
  ev.preventDefault();
  const msg = $("pair-message");
  $("pair-button").disabled = true;
  msg.hidden = false;
  msg.dataset.ok = "false";
  msg.textContent = "Pairing…";
  const out = await MedLens.pairing.pairWithCode($("pair-code").value);
  $("pair-button").disabled = false;
  msg.textContent = out.ok ? "Paired with the MedLens server." : out.message;
  msg.dataset.ok = String(out.ok);
  if (!out.ok) return;
  $("pair-code").value = "";
  const st = await refreshServer();
  if (st.ok) startScan();
}

/* ---------------------------------------------------------------- scan of the active tab */

function showScan(state) {
  const el = $("scan");
  const status = $("scan-status");
  const bar = $("scan-progress");
  if (!state) {
    el.dataset.status = "idle";
    status.textContent = "Not scanned yet.";
    bar.hidden = true;
    return;
  }
  el.dataset.status = state.status;
  const counts = state.counts || {};
  for (const n of document.querySelectorAll("[data-count]")) n.textContent = String(counts[n.dataset.count] || 0);
  bar.hidden = state.status !== "scanning" || !state.found;
  bar.value = state.found ? state.done / state.found : 0;
  switch (state.status) {
    case "scanning":
      status.textContent = state.found ? `Scanning… ${state.done} of ${state.found} images` : "Scanning…";
      break;
    case "done":
      status.textContent = state.found
        ? `${state.found} image${state.found === 1 ? "" : "s"} classified${state.watching ? "; watching for new ones" : ""}.`
        : "No images found on this page.";
      break;
    case "server":
      status.textContent = "Not scanned: the server is not ready (see above).";
      if (state.server) showServer(state.server);
      break;
    default:
      status.textContent = state.message || state.status;
  }
}

async function activeTabId() {
  if (params.has("tabId")) return Number(params.get("tabId")); // tests open the popup in a tab
  const [tab] = await ext.tabs.query({ active: true, currentWindow: true });
  return tab ? tab.id : null;
}

async function startScan() {
  if (currentTabId === null) return;
  showScan({ status: "scanning", found: 0, done: 0, counts: {} });
  try {
    const state = await ext.runtime.sendMessage({ type: TYPES.SCAN_TAB, tabId: currentTabId });
    if (state && state.status) showScan(state);
    if ($("server").dataset.state !== "ok") refreshServer(); // the scan may have started the server via the native host
  } catch (e) {
    showScan({ status: "failed", message: `Could not scan: ${e.message}` });
  }
}

function watchScanState() {
  const area = ext.storage.session ? "session" : "local";
  ext.storage.onChanged.addListener((changes, areaName) => {
    const change = changes[`tab:${currentTabId}`];
    if (areaName === area && change && change.newValue) showScan(change.newValue);
  });
}

/* ---------------------------------------------------------------- files: PDF and images */

function fileMessage(text) {
  const m = $("file-message");
  m.textContent = text || "";
  m.hidden = !text;
}

/** A size for people: MB from one MiB up, else kB (a small server limit must not read "0.0 MB"). */
function mb(n) {
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return n >= 1024 ? `${Math.round(n / 1024)} kB` : `${n} bytes`;
}

const W = MedLens.wording;
const labelOf = W.categoryOf;

function countLabels(results) {
  const c = { medical: 0, "non-medical": 0, skipped: 0, error: 0 };
  for (const r of results) c[labelOf(r)] += 1;
  return c;
}

function renderResults(title, sub, results, thumbs, kind) {
  const box = document.createElement("div");
  box.className = "result";
  box.dataset.kind = kind;
  const head = document.createElement("p");
  head.className = "result-head";
  head.textContent = title;
  const c = countLabels(results);
  const subEl = document.createElement("span");
  subEl.className = "sub";
  subEl.dataset.counts = JSON.stringify(c);
  subEl.textContent = ` — ${sub ? sub + " · " : ""}${W.countsText(c)}`;
  head.append(subEl);
  const grid = document.createElement("div");
  grid.className = "grid";
  grid.setAttribute("role", "list");
  results.forEach((r, i) => {
    const card = document.createElement("div");
    card.className = "card";
    card.setAttribute("role", "listitem");
    card.dataset.label = labelOf(r);
    if (r.page !== undefined && r.page !== null) card.dataset.page = String(r.page);
    const img = document.createElement("img");
    img.alt = "";
    const thumb = r.thumbnail || thumbs[i];
    if (thumb) img.src = thumb;
    const v = W.verdict(r, serverThreshold);
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = v.figures ? v.word : `${v.word}: ${W.errorReason(r.error && r.error.code)}`;
    label.title = v.figures ? v.sentence : W.errorText(r.error && r.error.code);
    const figures = document.createElement("span");
    figures.className = "figures";
    figures.textContent = v.figures;
    const where = document.createElement("span");
    where.className = "where";
    // the server's PDF `index` is 1-based: the image's position in its page's image list
    where.textContent = r.page ? `page ${r.page}${r.index ? `, image ${r.index}` : ""}` : (r.source || "").replace(/^upload:/, "");
    if (v.modality) where.textContent += ` · ${v.modality}`;
    card.append(img, label, figures, where);
    grid.append(card);
  });
  box.append(head, grid);
  $("results").prepend(box);
}

function progress(fraction, phase) {
  const bar = $("upload-progress");
  bar.hidden = false;
  if (phase === "processing") {
    bar.removeAttribute("value"); // indeterminate while the server works
    fileMessage("");
  } else {
    bar.value = fraction;
  }
}

/** Groups of image files that each fit one request: at most max_items files and max_body_bytes
 * (with room for the multipart framing), so a large drop never gets a 413 as a whole. */
function uploadGroups(images) {
  const groups = [];
  let group = [];
  let bytes = 0;
  const room = (n) => limits.max_body_bytes - 4096 - 512 * n;
  for (const f of images) {
    if (group.length && (group.length >= limits.max_items || bytes + f.size > room(group.length + 1))) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(f);
    bytes += f.size;
  }
  if (group.length) groups.push(group);
  return groups;
}

async function handleFiles(fileList) {
  const files = [...fileList];
  if (!files.length) return;
  if (serverChecked) await serverChecked.catch(() => null); // the server's limits, once it has answered
  const problems = [];
  const pdfs = [];
  const images = [];
  for (const f of files) {
    const kind = MedLens.api.fileKind(f);
    if (kind === "pdf") {
      const cap = Math.min(limits.max_pdf_bytes, limits.max_body_bytes);
      if (f.size > cap) problems.push(`${f.name} is too large (${mb(f.size)}); this MedLens server takes PDFs up to ${mb(cap)}.`);
      else pdfs.push(f);
    } else if (kind === "image") {
      const cap = Math.min(limits.max_image_bytes, limits.max_body_bytes);
      if (f.size > cap) problems.push(`${f.name} is too large (${mb(f.size)}); this MedLens server takes images up to ${mb(cap)}.`);
      else images.push(f);
    } else {
      problems.push(`${f.name} is not supported: drop a PDF or an image (PNG, JPEG, GIF, WebP, BMP, TIFF).`);
    }
  }
  fileMessage(problems.join(" "));
  const s = await MedLens.settings.load();
  const errors = [];
  for (const pdf of pdfs) {
    try {
      progress(0, "upload");
      const out = await MedLens.api.classifyPdf(s, pdf, progress);
      const sub = `${out.pages} page${out.pages === 1 ? "" : "s"}, ${out.images} image${out.images === 1 ? "" : "s"}${out.truncated ? " (more left out: too many)" : ""}`;
      renderResults(pdf.name, sub, out.results, [], "pdf");
    } catch (e) {
      errors.push(explain(pdf.name, e));
    }
  }
  if (images.length) {
    const groups = uploadGroups(images);
    const results = [];
    try {
      for (const group of groups) {
        progress(0, "upload");
        results.push(...(await MedLens.api.classifyImageFiles(s, group, progress)));
      }
      const thumbs = images.map((f) => URL.createObjectURL(f));
      const title = images.length === 1 ? images[0].name : `${images.length} images`;
      const sub = groups.length > 1 ? `${groups.length} uploads` : "";
      renderResults(title, sub, results.map((r, i) => ({ ...r, source: images[i].name })), thumbs, "images");
    } catch (e) {
      errors.push(explain(images.length === 1 ? images[0].name : `${images.length} images`, e));
    }
  }
  $("upload-progress").hidden = true;
  fileMessage([...problems, ...errors].join(" ")); // what was left out stays said once the rest is done
  if (errors.length) refreshServer();
}

function explain(name, e) {
  const why = {
    server_down: "the MedLens server is not running",
    unauthorized: "the server refused the pairing token",
    body_too_large: "the file is larger than the server accepts",
    too_large: "the file is larger than the server accepts",
    pdf_encrypted: "the PDF is password-protected",
    pdf_malformed: "the PDF is damaged",
    pdf_timeout: "the PDF took too long to read",
    unsupported_media_type: "the server does not take this kind of file",
    not_an_image: "this is not an image",
  }[e.code];
  return `${name}: ${why || e.message}.`;
}

function setupDrop() {
  const drop = $("drop");
  $("file").addEventListener("change", (ev) => {
    handleFiles(ev.target.files);
    ev.target.value = "";
  });
  for (const t of ["dragenter", "dragover"]) {
    drop.addEventListener(t, (ev) => {
      ev.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    if (ev.dataTransfer && ev.dataTransfer.files) handleFiles(ev.dataTransfer.files);
  });
}

/* ---------------------------------------------------------------- start */

async function main() {
  setupDrop();
  $("copy-command").addEventListener("click", () => navigator.clipboard.writeText($("server-command").textContent).catch(() => {}));
  $("rescan").addEventListener("click", () => startScan());
  $("pair-form").addEventListener("submit", pairFromForm);
  showLimits(limits);
  $("open-options").addEventListener("click", (ev) => {
    ev.preventDefault();
    ext.runtime.openOptionsPage();
  });
  currentTabId = await activeTabId();
  watchScanState();
  refreshServer();
  startScan(); // the toolbar click itself: no second click needed
}

main();
