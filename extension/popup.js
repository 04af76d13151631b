/* MedLens popup: asks the service worker to scan the active tab as it opens (so one toolbar click
 * scans), shows the server's state and the scan's progress, and classifies dropped files: PDFs,
 * images, and files that hold images (office documents, e-books, archives, DICOM, videos). */
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
  if (st.health && st.health.model && typeof st.health.model.threshold === "number") {
    serverThreshold = st.health.model.threshold;
    MedLens.settings.rememberServerThreshold(st.health).then(showSite); // the site controls show the figure
  }
}

function showLimits(next) {
  limits = next;
  $("file-limits").textContent =
    `PDFs up to ${mb(limits.max_pdf_bytes)}, images up to ${mb(limits.max_image_bytes)}, other files up to ${mb(MedLens.api.sizeCap("container", limits))}, `
    + `${limits.max_items} file${limits.max_items === 1 ? "" : "s"} per upload`;
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
  showProblems(state.problems || {});
}

/** The page's images MedLens could not classify, grouped by reason, with what to do: the page
 * itself only ever shows "Not classified" (its DOM gets no details). */
function showProblems(problems) {
  const byCode = new Map();
  for (const [src, p] of Object.entries(problems)) {
    if (!byCode.has(p.code)) byCode.set(p.code, []);
    byCode.get(p.code).push({ src, ...p });
  }
  const list = $("scan-problems-list");
  list.replaceChildren();
  let n = 0;
  for (const [code, items] of byCode) {
    n += items.length;
    const li = document.createElement("li");
    li.dataset.code = code;
    const what = document.createElement("span");
    what.textContent = `${items.length} × ${W.errorReason(code)}: ${W.errorText(code)}`;
    const src = document.createElement("span");
    src.className = "src";
    src.textContent = ` ${items.slice(0, 2).map((it) => shortSource(it.src)).join(", ")}${items.length > 2 ? ", …" : ""}`;
    src.title = items.map((it) => `${it.src}: ${it.message}`).join("\n");
    li.append(what, src);
    list.append(li);
  }
  $("scan-problems-summary").textContent = `Why ${n} image${n === 1 ? " was" : "s were"} not classified`;
  $("scan-problems").hidden = n === 0;
}

function shortSource(src) {
  if (/^data:/i.test(src)) return "an inline image";
  try {
    const u = new URL(src);
    return (u.pathname.split("/").filter(Boolean).pop() || u.host).slice(0, 40);
  } catch {
    return String(src).slice(0, 40);
  }
}

/* ---------------------------------------------------------------- this site: off, strictness */

let currentTabUrl = null;

/** The site controls for the active tab's page, from the stored settings. */
async function showSite() {
  const site = currentTabUrl && MedLens.settings.siteOf(currentTabUrl);
  $("site").hidden = !site;
  if (!site) return;
  const s = await MedLens.settings.load();
  const onPage = MedLens.settings.forPage(s, currentTabUrl);
  const base = s.threshold ?? s.serverThreshold;
  const levels = MedLens.settings.strictnessLevels(base);
  $("site-name").textContent = site;
  $("site").dataset.off = String(onPage.off);
  $("site-off").setAttribute("aria-pressed", String(onPage.off));
  $("site-off").textContent = onPage.off ? "Turn on on this site" : "Turn off on this site";
  const level = Object.keys(levels).find((k) => levels[k] === (onPage.site ? onPage.threshold : null)) || null;
  for (const b of document.querySelectorAll("#site-levels .level")) {
    b.setAttribute("aria-pressed", String(b.dataset.level === level));
    b.disabled = onPage.off;
    const t = levels[b.dataset.level] ?? base;
    b.title = typeof t === "number" ? `Images from ${W.thresholdPercent(t)} count as medical` : "The server's own threshold";
  }
  const figure = typeof onPage.compareWith === "number" ? W.thresholdPercent(onPage.compareWith) : "the server's threshold";
  const from = onPage.site && onPage.site !== site ? ` (set for ${onPage.site})` : "";
  $("site-note").textContent = onPage.off
    ? `MedLens is off on ${site}: it does not scan, cover or badge its pages.`
    : `Here, images from ${figure} count as medical${from}${level === "usual" ? (s.threshold === null ? " (the server's default)" : " (as everywhere)") : ""}.`;
}

async function setSiteOff(off) {
  const s = await MedLens.settings.load();
  const site = MedLens.settings.siteOf(currentTabUrl);
  // Turning on removes every entry that covers this page (a parent domain's too): one click works.
  const offSites = off ? [...s.offSites, site] : s.offSites.filter((e) => !MedLens.settings.siteMatches(e, currentTabUrl));
  await MedLens.settings.save({ offSites });
  await showSite();
  startScan(); // off: the tab state says so; on: the page is scanned again
}

async function setSiteLevel(level) {
  const s = await MedLens.settings.load();
  const site = MedLens.settings.siteOf(currentTabUrl);
  const t = MedLens.settings.strictnessLevels(s.threshold ?? s.serverThreshold)[level];
  const siteStrictness = { ...s.siteStrictness };
  if (t === null || t === undefined) delete siteStrictness[site];
  else siteStrictness[site] = t;
  await MedLens.settings.save({ siteStrictness });
  await showSite();
}

async function activeTabId() {
  if (params.has("tabId")) return Number(params.get("tabId")); // tests open the popup in a tab
  const [tab] = await ext.tabs.query({ active: true, currentWindow: true });
  return tab ? tab.id : null;
}

async function tabUrl(tabId) {
  try {
    return tabId === null ? null : (await ext.tabs.get(tabId)).url || null;
  } catch {
    return null; // no such tab (a test's ?tabId=-1, or it closed)
  }
}

// Only the latest scan's answer is shown: the one the popup asked for as it opened may end after
// a click on "off on this site" (or "Scan again") has asked for another.
let latestScan = 0;

async function startScan() {
  if (currentTabId === null) return;
  const scan = ++latestScan;
  showScan({ status: "scanning", found: 0, done: 0, counts: {} });
  try {
    const state = await ext.runtime.sendMessage({ type: TYPES.SCAN_TAB, tabId: currentTabId });
    if (scan !== latestScan) return;
    if (state && state.status) showScan(state);
    if ($("server").dataset.state !== "ok") refreshServer(); // the scan may have started the server via the native host
  } catch (e) {
    if (scan === latestScan) showScan({ status: "failed", message: `Could not scan: ${e.message}` });
  }
}

function watchScanState() {
  const area = ext.storage.session ? "session" : "local";
  ext.storage.onChanged.addListener((changes, areaName) => {
    if (areaName === "local" && ["offSites", "siteStrictness", "threshold"].some((k) => k in changes)) showSite();
    const change = changes[`tab:${currentTabId}`];
    if (areaName === area && change && change.newValue) showScan(change.newValue);
  });
}

/* ---------------------------------------------------------------- files: PDFs, images, containers */

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

/* ---------------------------------------------------------------- results: cards, filter, small images */

const W = MedLens.wording;
const labelOf = W.categoryOf;
// Images smaller than this on both sides are toolbar icons, bullets and logos: counted, not carded.
const SMALL_SIDE = 48;
const FILTERS = Object.freeze({ all: () => true, medical: (l) => l === "medical", "non-medical": (l) => l === "non-medical", errors: (l) => l === "error" || l === "skipped" });

function countLabels(results) {
  const c = { medical: 0, "non-medical": 0, skipped: 0, error: 0 };
  for (const r of results) c[labelOf(r)] += 1;
  return c;
}

function isSmall(r) {
  if (r.status === "skipped" && r.error && r.error.code === "too_small") return true;
  return Number.isFinite(r.width) && Number.isFinite(r.height) && r.width < SMALL_SIDE && r.height < SMALL_SIDE;
}

function resultCard(r, thumb) {
  const card = document.createElement("div");
  card.className = "card";
  card.setAttribute("role", "listitem");
  card.dataset.label = labelOf(r);
  if (r.page !== undefined && r.page !== null) card.dataset.page = String(r.page);
  const img = document.createElement("img");
  img.alt = "";
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
  where.textContent = placeOf(r) || (r.source || "").replace(/^upload:/, "");
  if (v.modality) where.textContent += ` · ${v.modality}`;
  card.append(img, label, figures, where);
  if (!v.figures) {
    const todo = document.createElement("span");
    todo.className = "todo";
    todo.textContent = W.errorText(r.error && r.error.code); // what happened and what to do
    card.append(todo);
  }
  return card;
}

/** Where an image sits in the file that held it (the shared wording); "" for a file of its own. */
function placeOf(r) {
  return W.placeParts(r).join(", ");
}

/** One result box: a head with the counts, a grid of the images worth a look, the small ones
 * grouped into one line (shown on request), and for a PDF a way to the server's own page. */
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
  const small = [];
  results.forEach((r, i) => {
    const card = resultCard(r, r.thumbnail || thumbs[i]);
    if (isSmall(r)) {
      card.dataset.small = "true";
      card.hidden = true;
      small.push(card);
    }
    grid.append(card);
  });
  box.append(head);
  if (small.length) box.append(smallLine(small));
  box.append(grid);
  if (kind === "pdf") box.append(openInPageButton(title, sub, results));
  $("results").prepend(box);
  applyFilter();
}

function smallLine(cards) {
  const line = document.createElement("p");
  line.className = "small-line";
  const n = cards.length;
  const text = document.createElement("span");
  text.textContent = `${n} small image${n === 1 ? "" : "s"} hidden (icons, under ${SMALL_SIDE} px)`;
  const show = document.createElement("button");
  show.type = "button";
  show.className = "small";
  show.textContent = "Show";
  show.setAttribute("aria-expanded", "false");
  show.addEventListener("click", () => {
    const open = show.getAttribute("aria-expanded") !== "true";
    for (const card of cards) card.hidden = !open;
    show.setAttribute("aria-expanded", String(open));
    show.textContent = open ? "Hide" : "Show";
  });
  line.append(text, " ", show);
  return line;
}

/** The whole PDF result in the server's own page (bigger, filterable, downloadable): the service
 * worker opens the page and hands the results over; the popup would close with the new tab. */
function openInPageButton(title, sub, results) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "link open-page";
  button.textContent = "Open the full result in the MedLens page";
  button.addEventListener("click", async () => {
    const reply = await ext.runtime.sendMessage({ type: TYPES.SHOW_RESULTS, title: `${title} (${sub})`, results }).catch((e) => ({ error: errorOfReply(e) }));
    if (reply && reply.error) fileMessage(`Could not open the MedLens page: ${W.errorText(reply.error.code)}`);
  });
  return button;
}

function errorOfReply(e) {
  return { code: (e && e.code) || "extension_error", message: String((e && e.message) || e) };
}

/** The filter over every result box: counts on its choices, cards that do not match hidden. */
function applyFilter() {
  const choice = (document.querySelector("input[name=result-filter]:checked") || { value: "all" }).value;
  const cards = [...document.querySelectorAll("#results .card")];
  const counts = { all: 0, medical: 0, "non-medical": 0, errors: 0 };
  for (const card of cards) {
    for (const [name, test] of Object.entries(FILTERS)) if (test(card.dataset.label)) counts[name] += 1;
    card.classList.toggle("filtered", !FILTERS[choice](card.dataset.label));
  }
  for (const el of document.querySelectorAll("[data-filter-count]")) el.textContent = String(counts[el.dataset.filterCount]);
  $("result-filter").hidden = cards.length === 0;
  $("results").dataset.filter = choice;
  const none = $("filter-empty");
  none.hidden = !cards.length || cards.some((c) => !c.classList.contains("filtered") && !c.hidden);
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

/** Groups of files (images and containers) that each fit one request: at most max_items files and max_body_bytes
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
  const images = []; // and containers: the same upload route takes both
  const what = { pdf: "PDFs", image: "images", container: "documents, archives and videos" };
  for (const f of files) {
    const kind = MedLens.api.fileKind(f);
    if (!kind) {
      problems.push(`${f.name} is not supported: drop ${MedLens.api.acceptedText()}.`);
      continue;
    }
    const cap = MedLens.api.sizeCap(kind, limits);
    if (f.size > cap) problems.push(`${f.name} is too large (${mb(f.size)}); this MedLens server takes ${what[kind]} up to ${mb(cap)}.`);
    else (kind === "pdf" ? pdfs : images).push(f);
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
      const plain = images.map((f, i) => [f, results[i]]).filter(([, r]) => !isContainer(r));
      if (plain.length) {
        const title = plain.length === 1 ? plain[0][0].name : `${plain.length} images`;
        const sub = groups.length > 1 ? `${groups.length} uploads` : "";
        renderResults(title, sub, plain.map(([f, r]) => ({ ...r, source: f.name })), plain.map(([f]) => URL.createObjectURL(f)), "images");
      }
      images.forEach((f, i) => isContainer(results[i]) && renderContainer(f.name, results[i]));
    } catch (e) {
      errors.push(explain(images.length === 1 ? images[0].name : `${images.length} images`, e));
    }
  }
  $("upload-progress").hidden = true;
  fileMessage([...problems, ...errors].join(" ")); // what was left out stays said once the rest is done
  if (errors.length) refreshServer();
}

/** A Result of a file that holds images (it has `kind`, and `items` unless it failed as a whole). */
function isContainer(r) {
  return Boolean(r && (Array.isArray(r.items) || (r.kind && r.kind !== "image")));
}

const CONTAINER_NAMES = Object.freeze({ pdf: "PDF", document: "document", office: "office document", archive: "archive", dicom: "DICOM file", video: "video", frames: "frames" });

/** One box per container: a card per image it holds, each with its place; a container that could
 * not be read, or holds no image, is one card with its error. */
function renderContainer(name, r) {
  const items = Array.isArray(r.items) && r.items.length ? r.items : [{ ...r, items: undefined, source: name }];
  const n = Array.isArray(r.items) ? r.items.length : 0;
  const parts = [CONTAINER_NAMES[r.kind] || r.kind || "file"];
  if (r.pages) parts.push(`${r.pages} page${r.pages === 1 ? "" : "s"}`);
  parts.push(`${n} image${n === 1 ? "" : "s"}${r.truncated ? " (more left out: too many)" : ""}`);
  renderResults(name, parts.join(", "), items, [], "container");
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
  $("file").accept = MedLens.api.acceptList();
  $("drop-kinds").textContent = `Takes ${MedLens.api.acceptedText()}.`;
  $("copy-command").addEventListener("click", () => navigator.clipboard.writeText($("server-command").textContent).catch(() => {}));
  $("rescan").addEventListener("click", () => startScan());
  $("pair-form").addEventListener("submit", pairFromForm);
  showLimits(limits);
  $("open-options").addEventListener("click", (ev) => {
    ev.preventDefault();
    ext.runtime.openOptionsPage();
  });
  currentTabId = await activeTabId();
  currentTabUrl = await tabUrl(currentTabId);
  $("site-off").addEventListener("click", () => setSiteOff($("site-off").getAttribute("aria-pressed") !== "true"));
  for (const b of document.querySelectorAll("#site-levels .level")) b.addEventListener("click", () => setSiteLevel(b.dataset.level));
  $("result-filter").addEventListener("change", applyFilter);
  showSite();
  watchScanState();
  refreshServer();
  startScan(); // the toolbar click itself: no second click needed
}

main();
