// MedLens's own page: drop files or paste URLs, see each image labelled, filter, download.
// Plain script, no build step. Every request goes to this page's own origin with the page's
// session as its bearer: a secret the server hands out only for the token (from the page's
// `?token=` address, dropped from the address bar at once), kept in this tab's sessionStorage,
// which no other origin, port included, can read. Nothing the server or a URL says is ever
// parsed as HTML (textContent only).
"use strict";

(() => {
  const HEALTH_REFRESH_MS = 15000;
  const BUSY_RETRIES = 4;
  const MULTIPART_OVERHEAD_BYTES = 64 * 1024;
  const DEFAULT_LIMITS = {
    max_body_bytes: 64 * 1024 * 1024, max_image_bytes: 20 * 1024 * 1024, max_items: 256, max_pdf_bytes: 64 * 1024 * 1024,
  };
  const PDF_TYPES = ["application/pdf", "application/x-pdf"];
  // Labels, modality names and error texts are shared with the extension (/page/wording.js).
  const W = globalThis.MedLens.wording;
  const CATEGORIES = W.CATEGORIES;

  const $ = (id) => document.getElementById(id);
  const state = {
    health: null,
    limits: { ...DEFAULT_LIMITS },
    groups: [], // one per input (a batch of images, a PDF, a page, a list of URLs), in the order given
    filter: "all",
    busy: 0,
  };

  class ApiError extends Error {
    constructor(code, message, status) {
      super(message);
      this.code = code;
      this.status = status || 0;
    }
  }

  // ------------------------------------------------------------ talking to the server

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  const SESSION_KEY = "medlens-session";
  let session = sessionStorage.getItem(SESSION_KEY);

  /** One request to this server: JSON answer or an ApiError; a full queue is retried after Retry-After. */
  async function request(path, init, onBusy) {
    const headers = { ...((init && init.headers) || {}) };
    if (session && !headers.Authorization) headers.Authorization = `Bearer ${session}`;
    for (let attempt = 0; ; attempt++) {
      let resp;
      try {
        resp = await fetch(path, { credentials: "omit", cache: "no-store", ...init, headers });
      } catch (err) {
        throw new ApiError("server_down", "No answer from the MedLens server.");
      }
      let body = null;
      try {
        body = await resp.json();
      } catch (err) {
        body = null;
      }
      if (resp.ok && body) return body;
      if (!body || !body.error) throw new ApiError("bad_answer", `The server answered HTTP ${resp.status}.`, resp.status);
      const error = new ApiError(body.error.code, body.error.message, resp.status);
      if (error.code === "queue_full" && attempt < BUSY_RETRIES) {
        const wait = Math.max(1, Number(resp.headers.get("Retry-After")) || 2);
        if (onBusy) onBusy(wait, attempt + 1);
        await sleep(wait * 1000);
        continue;
      }
      if (error.code === "unauthorized" && path !== SESSION_PATH) showSessionExpired();
      throw error;
    }
  }

  const postJson = (path, body, onBusy) =>
    request(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }, onBusy);

  function postFiles(path, files, onBusy) {
    const form = new FormData();
    for (const file of files) form.append("file", file, file.name);
    return request(path, { method: "POST", body: form }, onBusy);
  }

  async function refreshHealth() {
    let health;
    try {
      health = await request("/v1/health", { method: "GET" });
    } catch (err) {
      showServer("down", "Server not answering. Is `medlens serve` still running?");
      return;
    }
    if (!health.model) {
      // Only the minimal answer: the server did not recognise this page's session.
      showServer("session", "Connected, but this page's session is not valid: run `medlens page`.");
      return;
    }
    state.health = health;
    state.limits = { ...DEFAULT_LIMITS, ...(health.limits || {}) };
    showServer("ok", "Server ready");
    $("server-model").textContent = health.model.backbone;
    $("server-threshold").textContent = Number(health.model.threshold).toFixed(3);
    $("server-device").textContent = health.device;
    $("server-queue").textContent = `${health.queue.depth} / ${health.queue.max}`;
    $("server-version").textContent = health.version;
    $("server-details").hidden = false;
    const l = state.limits;
    $("limits").textContent =
      `Images (JPEG, PNG, GIF, WebP, BMP, TIFF, AVIF, JPEG 2000) up to ${formatBytes(l.max_image_bytes)} each; PDFs up to ${formatBytes(l.max_pdf_bytes)}; ` +
      `office files, e-books, archives, DICOM and videos up to ${formatBytes(l.max_file_bytes || l.max_image_bytes)}.`;
  }

  function showServer(kind, text) {
    $("server").dataset.state = kind;
    $("server-status").textContent = text;
    if (kind !== "ok") $("server-details").hidden = true;
  }

  const SESSION_PATH = "/v1/session";

  /** The page's session: from the token in the address (which leaves the address bar before
   * anything else happens), from this tab's earlier visit, or, on a --no-token server, for the
   * asking. Without one the page shows only how to open it. */
  async function logIn() {
    const params = new URLSearchParams(location.search);
    const token = params.get("token");
    if (token !== null) {
      params.delete("token");
      const rest = params.toString();
      history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : "") + location.hash);
    }
    if (token !== null || !session) {
      try {
        const headers = token ? { Authorization: `Bearer ${token}` } : {};
        session = (await request(SESSION_PATH, { method: "POST", headers })).session;
        sessionStorage.setItem(SESSION_KEY, session);
      } catch (err) {
        session = null;
        sessionStorage.removeItem(SESSION_KEY);
        showLogin(token ? (err.code === "unauthorized" ? "That address holds a wrong or outdated token."
          : "The server did not answer; is `medlens serve` running?") : null);
        return false;
      }
    }
    $("login").hidden = true;
    $("app").hidden = false;
    return true;
  }

  function showLogin(reason) {
    if (reason) $("login-reason").textContent = reason;
    $("login").hidden = false;
    $("app").hidden = true;
    showServer("session", "Not logged in: open this page with `medlens page`.");
  }

  let sessionShown = false;
  function showSessionExpired() {
    if (sessionShown) return;
    sessionShown = true;
    session = null;
    sessionStorage.removeItem(SESSION_KEY);
    addMessage("error", "This page's session has ended (did the server restart?). Run `medlens page` to open it again.");
    showServer("session", "Session ended: run `medlens page` to open the page again.");
  }

  // ------------------------------------------------------------ inputs → groups of results

  function newGroup(title) {
    const group = { title, pending: true, items: [] };
    state.groups.push(group);
    render();
    return group;
  }

  function finish(group, items) {
    group.items = items;
    group.pending = false;
    render();
  }

  /** A result made here for an input the server never saw (or a request that failed as a whole). */
  function localError(source, code, message, extra) {
    return {
      source, status: "error", label: null, probability: null, modality: null,
      error: { code, message }, width: null, height: null, cached: false, refusedHere: true, ...extra,
    };
  }

  function failAll(sources, err, extra) {
    return sources.map((s) => localError(s, err.code || "internal", err.message || String(err), { refusedHere: false, ...extra }));
  }

  const busyNote = (what) => (wait, attempt) =>
    setStatus(`The server is busy; trying ${what} again in ${wait} s (attempt ${attempt + 1} of ${BUSY_RETRIES + 1})…`);

  async function work(label, job) {
    state.busy++;
    setStatus(label);
    try {
      await job();
    } catch (err) {
      addMessage("error", `${label.replace(/…$/, "")} failed: ${err.message || err}`);
    } finally {
      state.busy--;
      if (!state.busy) setStatus(summaryText());
      refreshHealth();
    }
  }

  function isPdf(file) {
    return PDF_TYPES.includes(file.type) || /\.pdf$/i.test(file.name);
  }

  // Images, and the containers the server takes apart (office files, e-books, archives, DICOM, video).
  const CONTAINER_NAMES = /\.(docx|docm|pptx|pptm|xlsx|xlsm|odt|odp|ods|epub|xps|oxps|cbz|fb2|mobi|zip|tar|tgz|gz|dcm|mp4|m4v|webm|mov|avi|mkv)$/i;

  function isImage(file) {
    return file.type.startsWith("image/") || /\.(jpe?g|png|apng|gif|webp|bmp|tiff?|avif|jp2|j2k|heic|heif|jxl)$/i.test(file.name);
  }

  function isContainer(file) {
    return file.type.startsWith("video/") || file.type === "application/dicom" || CONTAINER_NAMES.test(file.name);
  }

  async function classifyFiles(fileList) {
    const files = [...fileList];
    if (!files.length) return;
    const images = [];
    const pdfs = [];
    const refused = [];
    const l = state.limits;
    for (const file of files) {
      if (isPdf(file)) {
        if (file.size > l.max_pdf_bytes) {
          refused.push(localError(`pdf:${file.name}`, "too_large",
            `${file.name} is ${formatBytes(file.size)}; the server accepts PDFs up to ${formatBytes(l.max_pdf_bytes)}.`));
        } else pdfs.push(file);
      } else if (isImage(file) || isContainer(file)) {
        const cap = isContainer(file) ? (l.max_file_bytes || l.max_image_bytes) : l.max_image_bytes;
        if (file.size > cap) {
          refused.push(localError(`upload:${file.name}`, "too_large",
            `${file.name} is ${formatBytes(file.size)}; the server accepts ${isContainer(file) ? "files" : "images"} up to ${formatBytes(cap)}.`, { thumbUrl: null }));
        } else images.push(file);
      } else {
        refused.push(localError(`upload:${file.name}`, "not_an_image",
          `${file.name} (${file.type || "unknown type"}) is neither an image nor a PDF.`));
      }
    }
    if (refused.length) finish(newGroup("Refused before upload"), refused);
    const jobs = []; // run one after another: a small server queue is not flooded by one drop
    for (const batch of imageBatches(images)) {
      const group = newGroup(`Uploaded: ${batch.length} image${batch.length === 1 ? "" : "s"}`);
      jobs.push(() => work(`Classifying ${batch.length} image${batch.length === 1 ? "" : "s"}…`, async () => {
        const thumbs = batch.map((f) => URL.createObjectURL(f));
        let results;
        try {
          results = (await postFiles("/v1/classify/image", batch, busyNote("the images"))).results;
        } catch (err) {
          results = failAll(batch.map((f) => `upload:${f.name}`), err);
        }
        // A file holding several images (archive, document, video) answers with them as `items`.
        finish(group, results.flatMap((r, i) => r.items
          ? [...r.items, ...(r.kind === "video" ? [{ ...r, items: undefined, role: "summary" }] : [])]
            .map((item) => ({ ...item, input: batch[i].name }))
          : [{ ...r, thumbUrl: thumbs[i], input: batch[i].name }]));
      }));
    }
    for (const pdf of pdfs) {
      const group = newGroup(`Reading ${pdf.name}`);
      jobs.push(() => work(`Reading ${pdf.name}…`, async () => {
        let items;
        try {
          const answer = await postFiles("/v1/classify/pdf", [pdf], busyNote(pdf.name));
          group.title = `${pdf.name}: ${answer.pages} page${answer.pages === 1 ? "" : "s"}, ${answer.images} image${answer.images === 1 ? "" : "s"}`;
          if (answer.truncated) {
            addMessage("warning", `${pdf.name} has more than the server reads (${l.max_pdf_pages} pages or ${l.max_pdf_images} images); later ones were left out.`);
          }
          if (!answer.results.length) addMessage("info", `${pdf.name} has no images to classify.`);
          items = answer.results.map((r) => ({ ...r, input: pdf.name }));
        } catch (err) {
          group.title = pdf.name;
          items = failAll([`pdf:${pdf.name}`], err, { input: pdf.name });
        }
        finish(group, items);
      }));
    }
    await runInOrder(jobs);
  }

  async function runInOrder(jobs) {
    state.busy++; // the status says "Done" only after the last job of this input
    render(); // Clear waits until nothing is in flight
    try {
      for (const job of jobs) await job();
    } finally {
      state.busy--;
      if (!state.busy) setStatus(summaryText());
      render();
    }
  }

  /** Images split so each request respects the server's item count and body size. */
  function imageBatches(images) {
    const l = state.limits;
    const bodyBudget = Math.max(1, l.max_body_bytes - MULTIPART_OVERHEAD_BYTES);
    const batches = [];
    let current = [];
    let bytes = 0;
    for (const file of images) {
      if (current.length && (current.length >= l.max_items || bytes + file.size > bodyBudget)) {
        batches.push(current);
        current = [];
        bytes = 0;
      }
      current.push(file);
      bytes += file.size;
    }
    if (current.length) batches.push(current);
    return batches;
  }

  function parseUrls(text) {
    const seen = new Set();
    const urls = [];
    for (const line of text.split(/\s*\n\s*/)) {
      const url = line.trim();
      if (url && !seen.has(url)) {
        seen.add(url);
        urls.push(url);
      }
    }
    return urls;
  }

  async function classifyUrlList(urls, kind) {
    if (!urls.length) {
      addMessage("error", "Paste at least one URL, one a line.");
      $("urls").focus();
      return;
    }
    const l = state.limits;
    const jobs = [];
    if (kind === "page") {
      for (const url of urls) {
        const group = newGroup(`Page ${shortUrl(url)}`);
        jobs.push(() => classifyPage(url, group));
      }
    } else {
      for (let i = 0; i < urls.length; i += l.max_items) {
        const chunk = urls.slice(i, i + l.max_items);
        const title = urls.length > chunk.length
          ? `Pasted: URLs ${i + 1}–${i + chunk.length} of ${urls.length} (the server takes ${l.max_items} a request)`
          : `Pasted: ${chunk.length} URL${chunk.length === 1 ? "" : "s"}`;
        const group = newGroup(title);
        jobs.push(() => work(`Fetching and classifying ${chunk.length} URL${chunk.length === 1 ? "" : "s"}…`, async () => {
          let results;
          try {
            results = (await postJson("/v1/classify", { urls: chunk }, busyNote("the URLs"))).results;
          } catch (err) {
            results = failAll(chunk, err);
          }
          results = results.map((r) => ({ ...r, input: r.source }));
          if (kind === "auto") {
            // A URL that is not an image may be a web page: scan it as one, in its place.
            const pages = results.filter((r) => r.error && r.error.code === "not_an_image" && /^https?:/i.test(r.source));
            const expanded = await Promise.all(results.map(async (r) => {
              if (!pages.includes(r)) return [r];
              const page = await scanPage(r.source);
              return page.ok ? page.items : [{ ...r, error: { code: r.error.code, message: `${r.error.message}; as a web page: ${page.items[0].error.message}` } }];
            }));
            results = expanded.flat();
          }
          finish(group, results);
        }));
      }
    }
    await runInOrder(jobs);
  }

  async function scanPage(url) {
    try {
      const answer = await postJson("/v1/classify/page", { url }, busyNote("the page"));
      if (answer.truncated) {
        addMessage("warning", `${url} has ${answer.images_found}+ images; only the first ${state.limits.max_page_images} were classified.`);
      }
      if (!answer.results.length) addMessage("info", `No images found on ${url}.`);
      return { ok: true, items: answer.results.map((r) => ({ ...r, input: url, page_url: answer.page_url })) };
    } catch (err) {
      return { ok: false, items: failAll([url], err, { input: url }) };
    }
  }

  function classifyPage(url, group) {
    return work(`Scanning ${url}…`, async () => {
      const page = await scanPage(url);
      if (page.ok) group.title = `Page ${shortUrl(url)}: ${page.items.length} image${page.items.length === 1 ? "" : "s"}`;
      finish(group, page.items);
    });
  }

  // ------------------------------------------------------------ rendering

  const categoryOf = W.categoryOf;

  const allResults = () => state.groups.flatMap((g) => g.items);
  const shownResults = () => allResults().filter((r) => state.filter === "all" || categoryOf(r) === state.filter);

  function render() {
    const grid = $("grid");
    const template = $("card-template");
    grid.replaceChildren();
    let shown = 0;
    for (const group of state.groups) {
      if (group.pending) {
        grid.append(pendingCard(template, group));
        continue;
      }
      const visible = group.items.filter((r) => state.filter === "all" || categoryOf(r) === state.filter);
      if (visible.length) grid.append(groupHeading(group));
      for (const r of group.items) {
        if (state.filter !== "all" && categoryOf(r) !== state.filter) continue;
        grid.append(resultCard(template, r));
        shown++;
      }
    }
    const all = allResults();
    const counts = { all: all.length };
    for (const c of CATEGORIES) counts[c] = all.filter((r) => categoryOf(r) === c).length;
    for (const el of document.querySelectorAll("[data-count]")) el.textContent = counts[el.dataset.count];
    $("results-count").textContent = all.length ? `(${shown} shown of ${all.length})` : "";
    $("empty").hidden = state.groups.length > 0;
    $("empty").textContent = "Nothing classified yet. Results appear here, in the order you gave them.";
    if (state.groups.length && !shown && !state.groups.some((g) => g.pending)) {
      $("empty").hidden = false;
      $("empty").textContent = "No result matches this filter.";
    }
    $("download-csv").disabled = !shown;
    $("download-json").disabled = !shown;
    $("clear").disabled = !state.groups.length || state.busy > 0;
  }

  function groupHeading(group) {
    const li = $("group-template").content.firstElementChild.cloneNode(true);
    li.querySelector("h3").textContent = group.title;
    return li;
  }

  function pendingCard(template, group) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.classList.add("pending");
    card.dataset.category = "pending";
    card.setAttribute("aria-busy", "true");
    card.querySelector(".thumb").classList.add("spinner");
    card.querySelector(".label").textContent = "Working…";
    card.querySelector(".where").textContent = group.title;
    return card;
  }

  function resultCard(template, r) {
    const card = template.content.firstElementChild.cloneNode(true);
    const category = categoryOf(r);
    card.dataset.category = category;
    card.dataset.status = r.status;
    card.dataset.source = r.source;
    const img = card.querySelector("img");
    const thumb = thumbnailOf(r);
    if (thumb) {
      if (/^https?:/i.test(thumb)) img.loading = "lazy"; // remote previews load as the grid scrolls
      img.src = thumb;
      img.alt = `Image ${describeSource(r)}`;
      img.addEventListener("error", () => card.querySelector(".thumb").classList.add("broken"), { once: true });
    } else {
      card.querySelector(".thumb").classList.add("broken");
      img.remove();
    }
    const threshold = state.health ? state.health.model.threshold : null;
    const verdict = W.verdict(r, threshold);
    card.querySelector(".label").textContent = verdict.word;
    if (r.status === "ok") {
      card.dataset.near = String(verdict.near);
      card.querySelector(".value").textContent = verdict.probability; // the meter's mark shows the threshold
      card.querySelector(".probability").title = verdict.sentence;
      card.querySelector(".fill").style.width = `${r.probability * 100}%`;
      if (threshold != null) card.querySelector(".mark").style.left = `${threshold * 100}%`;
      card.querySelector(".modality").textContent = verdict.modality || "";
    } else {
      card.querySelector(".probability").remove();
    }
    const where = [];
    where.push(...W.placeParts(r)); // the same words as the extension's popup
    if (r.width && r.height) where.push(`${r.width}\u00a0×\u00a0${r.height}`);
    if (r.page_url) where.push(`on ${shortUrl(r.page_url, false)}`);
    if (r.cached) where.push("cached");
    card.querySelector(".where").textContent = where.join(" · ");
    const source = card.querySelector(".source");
    source.textContent = describeSource(r);
    source.title = r.source;
    if (r.error) {
      const friendly = W.errorText(r.error.code, "page");
      const local = r.refusedHere; // the page's own message already says it plainly
      card.querySelector(".what").textContent = local ? r.error.message : friendly;
      const code = document.createElement("code");
      code.textContent = r.error.code;
      const detail = card.querySelector(".detail");
      detail.append(code);
      if (!local && r.error.message !== friendly) detail.append(" ", r.error.message);
    } else {
      card.querySelector(".error").remove();
    }
    for (const sel of [".modality", ".where"]) {
      const el = card.querySelector(sel);
      if (!el.textContent) el.remove();
    }
    return card;
  }

  function thumbnailOf(r) {
    if (r.thumbnail) return r.thumbnail;
    if (r.thumbUrl) return r.thumbUrl;
    if (/^(https?:|data:image\/)/i.test(r.source) && r.status !== "error") return r.source;
    return null;
  }

  function describeSource(r) {
    const pdf = /^pdf:(.*)#page=(\d+)&index=(\d+)$/.exec(r.source);
    if (pdf) return pdf[1]; // page and image are on the line above
    if (r.source.startsWith("upload:")) return r.source.slice("upload:".length);
    if (r.source.startsWith("pdf:")) return r.source.slice("pdf:".length);
    if (r.source.startsWith("data:")) return "pasted data: URL";
    return shortUrl(r.source);
  }

  /** The file name a person recognises, then the host; the full URL is in the tooltip and the CSV. */
  function shortUrl(text, withHost = true) {
    let url;
    try {
      url = new URL(text);
    } catch (err) {
      return text;
    }
    const name = url.pathname.split("/").filter(Boolean).pop();
    let file = name || url.hostname;
    try {
      file = decodeURIComponent(file);
    } catch (err) {
      // keep it encoded
    }
    if (!name) return url.host;
    return withHost ? `${file}${url.search} (${url.host})` : `${file}${url.search}`;
  }

  function formatBytes(n) {
    if (n >= 1024 * 1024) return `${+(n / (1024 * 1024)).toFixed(1)} MB`;
    if (n >= 1024) return `${+(n / 1024).toFixed(1)} KB`;
    return `${n} bytes`;
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  function summaryText() {
    const all = allResults();
    if (!all.length) return "";
    const n = (c) => all.filter((r) => categoryOf(r) === c).length;
    const errors = n("error");
    return `Done: ${all.length} result${all.length === 1 ? "" : "s"}: ${n("medical")} medical, ${n("non-medical")} non-medical, ${n("skipped")} skipped, ${errors} error${errors === 1 ? "" : "s"}.`;
  }

  function addMessage(kind, text, action) {
    const li = document.createElement("li");
    li.className = `message ${kind}`;
    li.setAttribute("role", kind === "error" ? "alert" : "status");
    const p = document.createElement("span");
    p.textContent = text;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", () => li.remove());
    li.append(p);
    if (action) li.append(action);
    li.append(close);
    $("messages").append(li);
  }

  // ------------------------------------------------------------ downloads

  const COLUMNS = ["input", "source", "status", "label", "probability", "modality", "page", "index", "width", "height", "cached",
    "error_code", "error_message"];

  function rowOf(r) {
    return {
      input: r.input ?? "", source: r.source, status: r.status, label: r.label ?? "", probability: r.probability ?? "",
      modality: r.modality ?? "", page: r.page ?? "", index: r.index ?? "", width: r.width ?? "", height: r.height ?? "",
      cached: r.cached ? "true" : "false", error_code: r.error ? r.error.code : "", error_message: r.error ? r.error.message : "",
    };
  }

  /** A CSV cell; text a spreadsheet would run as a formula (=, +, -, @) is quoted with a leading '. */
  function csvCell(value) {
    let text = String(value);
    if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  }

  function toCsv(results) {
    const lines = [COLUMNS.join(",")];
    for (const r of results) {
      const row = rowOf(r);
      lines.push(COLUMNS.map((c) => csvCell(row[c])).join(","));
    }
    return lines.join("\r\n") + "\r\n";
  }

  function toJson(results) {
    const h = state.health;
    const server = h ? { version: h.version, model: h.model, device: h.device } : null;
    const clean = results.map(({ thumbnail, thumbUrl, refusedHere, ...rest }) => rest);
    return JSON.stringify({ generated: new Date().toISOString(), filter: state.filter, server, results: clean }, null, 2);
  }

  function download(text, type, ext) {
    const stamp = new Date().toISOString().replace(/[:T]/g, "-").slice(0, 19);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text], { type }));
    a.download = `medlens-results-${stamp}.${ext}`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }

  // ------------------------------------------------------------ wiring

  function wire() {
    const drop = $("drop");
    const input = $("files");
    input.addEventListener("change", () => {
      classifyFiles(input.files);
      input.value = "";
    });
    for (const type of ["dragenter", "dragover"]) {
      drop.addEventListener(type, (e) => {
        e.preventDefault();
        drop.dataset.over = "true";
      });
    }
    drop.addEventListener("dragleave", (e) => {
      if (!drop.contains(e.relatedTarget)) drop.dataset.over = "false";
    });
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.dataset.over = "false";
      if (e.dataTransfer && e.dataTransfer.files.length) {
        classifyFiles(e.dataTransfer.files);
      } else if (e.dataTransfer) {
        const text = e.dataTransfer.getData("text/uri-list") || e.dataTransfer.getData("text/plain");
        if (text) classifyUrlList(parseUrls(text.replace(/^#.*$/gm, "")), "auto");
      }
    });
    // A file dropped beside the zone must not make the browser leave the page to show it.
    for (const type of ["dragover", "drop"]) window.addEventListener(type, (e) => e.preventDefault());
    document.addEventListener("paste", (e) => {
      const files = e.clipboardData ? [...e.clipboardData.files] : [];
      if (files.length) {
        e.preventDefault();
        classifyFiles(files);
      }
    });
    $("url-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const kind = new FormData(e.target).get("kind") || "auto";
      const urls = parseUrls($("urls").value);
      classifyUrlList(urls, kind).then(() => { if (urls.length) $("urls").value = ""; });
    });
    $("urls").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("url-form").requestSubmit();
    });
    $("filters").addEventListener("change", (e) => {
      state.filter = e.target.value;
      render();
    });
    $("download-csv").addEventListener("click", () => download(toCsv(shownResults()), "text/csv;charset=utf-8", "csv"));
    $("download-json").addEventListener("click", () => download(toJson(shownResults()), "application/json", "json"));
    $("clear").addEventListener("click", () => {
      for (const r of allResults()) if (r.thumbUrl) URL.revokeObjectURL(r.thumbUrl);
      state.groups = [];
      $("messages").replaceChildren();
      setStatus("");
      render();
    });
  }

  // ------------------------------------------------------------ results handed over by the extension

  /** The extension's popup shows a PDF's images in a small grid; its "Open the full result in the
   * MedLens page" opens this page and posts {type: "medlens:show-results", title, results} to this
   * window (from the extension's script in this very tab). Only their text and data: thumbnails
   * are used, like any other result. */
  function onResultsMessage(e) {
    const d = e.data;
    if (e.source !== window || e.origin !== location.origin || !d || d.type !== "medlens:show-results" || !Array.isArray(d.results)) return;
    const title = String(d.title || "Results from the MedLens extension");
    const items = d.results.filter((r) => r && typeof r === "object" && typeof r.source === "string").map((r) => ({
      ...r, input: title, thumbnail: typeof r.thumbnail === "string" && r.thumbnail.startsWith("data:image/") ? r.thumbnail : null,
    }));
    finish(newGroup(title), items);
    setStatus(summaryText());
  }

  window.addEventListener("message", onResultsMessage);
  wire();
  render();
  logIn().then((ok) => {
    if (!ok) return;
    refreshHealth();
    setInterval(() => { if (!document.hidden && session) refreshHealth(); }, HEALTH_REFRESH_MS);
  });
})();
