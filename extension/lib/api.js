/* MedLens server client. Used only by the service worker and extension pages (popup, options):
 * content scripts never talk to the server. Every call carries the pairing token. */
(() => {
  "use strict";
  const ns = (globalThis.MedLens = globalThis.MedLens || {});
  if (ns.api) return;

  const API_VERSION = 1;
  const HEALTH_TIMEOUT_MS = 4000;
  const CLASSIFY_TIMEOUT_MS = 180000;
  // Only for a server too old to report its `limits` in /v1/health (the values MedLens shipped
  // with). A current server's own limits always win: see limitsOf().
  const FALLBACK_LIMITS = Object.freeze({
    max_image_bytes: 20 * 1024 * 1024,
    max_pdf_bytes: 64 * 1024 * 1024,
    max_body_bytes: 64 * 1024 * 1024,
    max_items: 256,
    max_file_bytes: 256 * 1024 * 1024,
  });
  // What the popup takes, by what the browser says of a file (its type) or its name's suffix: the
  // server's upload route reads all of these (README, "Containers and formats"). The one table
  // behind fileKind, the file input's accept list and the "not supported" sentence.
  const FILE_KINDS = Object.freeze([
    { kind: "pdf", name: "a PDF", shown: "", types: ["application/pdf", "application/x-pdf"], suffixes: ["pdf"] },
    {
      kind: "image", name: "an image", shown: "PNG, JPEG, GIF, WebP, BMP, TIFF, AVIF, JPEG 2000, HEIC",
      types: ["image/png", "image/apng", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff", "image/avif", "image/jp2",
        "image/jpx", "image/heic", "image/heif", "image/jxl"],
      suffixes: ["png", "apng", "jpg", "jpeg", "gif", "webp", "bmp", "tif", "tiff", "avif", "jp2", "j2k", "jpx", "heic", "heif", "jxl"],
    },
    { kind: "container", name: "an office document", shown: "DOCX, PPTX, XLSX, ODT, ODP, ODS", types: [],
      suffixes: ["docx", "docm", "pptx", "pptm", "xlsx", "xlsm", "odt", "odp", "ods"] },
    { kind: "container", name: "an e-book", shown: "EPUB, XPS, CBZ, FB2, MOBI", types: ["application/epub+zip", "application/vnd.comicbook+zip"],
      suffixes: ["epub", "xps", "oxps", "cbz", "fb2", "mobi"] },
    { kind: "container", name: "an archive", shown: "ZIP, tar", types: ["application/zip", "application/x-zip-compressed", "application/x-tar"],
      suffixes: ["zip", "tar", "tar.gz", "tgz", "tar.bz2", "tbz2", "tar.xz", "txz"] },
    { kind: "container", name: "a DICOM file", shown: "", types: ["application/dicom"], suffixes: ["dcm"] },
    { kind: "container", name: "a video", shown: "MP4, WebM, MOV, AVI, MKV",
      types: ["video/mp4", "video/webm", "video/quicktime", "video/x-msvideo", "video/avi", "video/x-matroska"],
      suffixes: ["mp4", "m4v", "webm", "mov", "avi", "mkv"] },
  ]);
  // The /v1/health limit on one file of each kind (the request's max_body_bytes caps them all).
  const SIZE_LIMIT = Object.freeze({ pdf: "max_pdf_bytes", image: "max_image_bytes", container: "max_file_bytes" });

  class ApiError extends Error {
    constructor(code, message, status = 0) {
      super(message);
      this.name = "ApiError";
      this.code = code;
      this.status = status;
    }
    toJSON() {
      return { code: this.code, message: this.message, status: this.status };
    }
  }

  function headers(s, extra) {
    const h = { ...(extra || {}) };
    if (s.token) h.Authorization = `Bearer ${s.token}`;
    return h;
  }

  async function request(s, path, init = {}, timeoutMs = CLASSIFY_TIMEOUT_MS) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    let resp;
    try {
      resp = await fetch(s.serverUrl + path, {
        ...init,
        headers: headers(s, init.headers),
        signal: ctl.signal,
        credentials: "omit",
        cache: "no-store",
      });
    } catch (e) {
      throw new ApiError("server_down", `No MedLens server answers at ${s.serverUrl} (${e.name === "AbortError" ? "timed out" : e.message}).`);
    } finally {
      clearTimeout(timer);
    }
    return parse(resp);
  }

  async function parse(resp) {
    let body = null;
    try {
      body = await resp.json();
    } catch {
      body = null;
    }
    if (!resp.ok) {
      if (body && body.error && body.error.code) throw new ApiError(body.error.code, body.error.message || body.error.code, resp.status);
      if (resp.status === 404 || resp.status === 405) throw new ApiError("old_server", "This server does not speak MedLens API v1.", resp.status);
      throw new ApiError("http_error", `The server answered HTTP ${resp.status}.`, resp.status);
    }
    if (body === null) throw new ApiError("old_server", "The server's answer is not MedLens JSON.", resp.status);
    return body;
  }

  function health(s) {
    return request(s, "/v1/health", { method: "GET" }, HEALTH_TIMEOUT_MS);
  }

  /** What a client must respect, from /v1/health's `limits` (positive integers only; a missing
   * or odd value falls back to the shipped default, never to "no limit"). */
  function limitsOf(h) {
    const given = (h && typeof h.limits === "object" && h.limits) || {};
    const out = {};
    for (const [key, fallback] of Object.entries(FALLBACK_LIMITS)) {
      const v = given[key];
      out[key] = Number.isInteger(v) && v > 0 ? v : fallback;
    }
    out.fromServer = Object.keys(FALLBACK_LIMITS).every((k) => Number.isInteger(given[k]) && given[k] > 0);
    return Object.freeze(out);
  }

  /** Trade a one-time code from `medlens pair` for the token (POST /v1/pair, extension Origin). */
  async function pair(s, code) {
    const out = await request(s, "/v1/pair", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code }),
    }, HEALTH_TIMEOUT_MS);
    if (!out || typeof out.token !== "string" || !out.token) throw new ApiError("old_server", "The server did not answer with a token.");
    return out.token;
  }

  async function classifyUrls(s, urls, pageUrl) {
    const body = { urls };
    if (pageUrl) body.page_url = pageUrl;
    if (s.threshold !== null && s.threshold !== undefined) body.threshold = s.threshold;
    const out = await request(s, "/v1/classify", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    return out.results.map((r) => applyThreshold(r, s.threshold));
  }

  /** files: [{blob, name}] -> results in the same order. */
  async function classifyImages(s, files) {
    const form = new FormData();
    for (const f of files) form.append("file", f.blob, f.name);
    const out = await request(s, "/v1/classify/image", { method: "POST", body: form });
    return out.results.map((r) => applyThreshold(r, s.threshold));
  }

  /** Multipart upload with progress (XMLHttpRequest: fetch has no upload progress). Pages only. */
  function upload(s, path, files, onProgress) {
    if (typeof XMLHttpRequest === "undefined") {
      const form = new FormData();
      for (const f of files) form.append("file", f.blob, f.name);
      return request(s, path, { method: "POST", body: form });
    }
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", s.serverUrl + path);
      xhr.responseType = "text";
      xhr.timeout = CLASSIFY_TIMEOUT_MS;
      if (s.token) xhr.setRequestHeader("Authorization", `Bearer ${s.token}`);
      xhr.upload.onprogress = (e) => onProgress && e.lengthComputable && onProgress(e.loaded / e.total, "upload");
      xhr.upload.onload = () => onProgress && onProgress(1, "processing");
      xhr.onerror = () => reject(new ApiError("server_down", `No MedLens server answers at ${s.serverUrl}.`));
      xhr.ontimeout = () => reject(new ApiError("server_down", "The MedLens server did not answer in time."));
      xhr.onload = () => {
        const fake = {
          ok: xhr.status >= 200 && xhr.status < 300,
          status: xhr.status,
          json: async () => JSON.parse(xhr.responseText),
        };
        parse(fake).then(resolve, reject);
      };
      const form = new FormData();
      for (const f of files) form.append("file", f.blob, f.name);
      xhr.send(form);
    });
  }

  async function classifyPdf(s, file, onProgress) {
    const out = await upload(s, "/v1/classify/pdf", [{ blob: file, name: file.name }], onProgress);
    out.results = out.results.map((r) => applyThreshold(r, s.threshold));
    return out;
  }

  async function classifyImageFiles(s, files, onProgress) {
    const out = await upload(s, "/v1/classify/image", files.map((f) => ({ blob: f, name: f.name })), onProgress);
    return out.results.map((r) => applyThreshold(r, s.threshold));
  }

  /** The user's strictness: relabel from the probability when a threshold is set, and record it. */
  function applyThreshold(r, threshold) {
    if (!r || r.status !== "ok" || threshold === null || threshold === undefined || typeof r.probability !== "number") return r;
    const label = r.probability >= threshold ? "medical" : "non-medical";
    return { ...r, label, threshold, modality: label === "medical" ? r.modality : null }; // threshold: what it was compared with
  }

  /** What kind of file the popup was given: "pdf", "image", "container" (a file holding images:
   * office document, e-book, archive, DICOM, video) or null (unsupported). */
  function fileKind(file) {
    const type = (file.type || "").toLowerCase();
    const name = (file.name || "").toLowerCase();
    const row = FILE_KINDS.find((k) => k.types.includes(type)) || FILE_KINDS.find((k) => k.suffixes.some((x) => name.endsWith(`.${x}`)));
    return row ? row.kind : null;
  }

  /** The file input's `accept`: every type and suffix of FILE_KINDS. */
  function acceptList() {
    return FILE_KINDS.flatMap((k) => [...k.types, ...k.suffixes.map((x) => `.${x}`)]).join(",");
  }

  /** "a PDF, an image (PNG, …), …, a DICOM file or a video (MP4, …)": what the popup takes. */
  function acceptedText() {
    const parts = FILE_KINDS.map((k) => (k.shown ? `${k.name} (${k.shown})` : k.name));
    return `${parts.slice(0, -1).join(", ")} or ${parts[parts.length - 1]}`;
  }

  /** The largest file of `kind` (from fileKind) the server takes in one upload. */
  function sizeCap(kind, limits) {
    return Math.min(limits[SIZE_LIMIT[kind]], limits.max_body_bytes);
  }

  function port(serverUrl) {
    try {
      const u = new URL(serverUrl);
      return u.port || (u.protocol === "https:" ? "443" : "80");
    } catch {
      return "8377";
    }
  }

  /** The server's state as the popup and options show it: one clear sentence and the command to run. */
  async function serverState(s) {
    const serve = port(s.serverUrl) === "8377" ? "medlens serve" : `medlens serve --port ${port(s.serverUrl)}`;
    let h;
    try {
      h = await health(s);
    } catch (e) {
      if (e.code === "server_down")
        return { state: "server_down", ok: false, title: "MedLens server is not running", detail: `Nothing answers at ${s.serverUrl}. Start the server in a terminal:`, command: serve };
      if (e.code === "unauthorized")
        return { state: s.token ? "wrong_token" : "not_paired", ok: false, ...pairingText(s) };
      if (e.code === "old_server" || e.status === 404)
        return { state: "old_server", ok: false, title: "MedLens server is too old", detail: `The program at ${s.serverUrl} does not offer MedLens API v${API_VERSION}. Update MedLens, then restart it:`, command: serve };
      return { state: "error", ok: false, title: "MedLens server error", detail: `${e.message} (${e.code})`, command: serve };
    }
    if (!h || typeof h !== "object" || h.api === undefined || h.api < API_VERSION)
      return { state: "old_server", ok: false, health: h, title: "MedLens server is too old", detail: `Server version ${(h && h.version) || "unknown"} speaks API v${(h && h.api) ?? 0}; this extension needs v${API_VERSION}. Update MedLens, then restart it:`, command: serve };
    if (h.api > API_VERSION)
      return { state: "old_extension", ok: false, health: h, title: "MedLens extension is too old", detail: `Server ${h.version} speaks API v${h.api}; update the extension.`, command: "" };
    // A server answers only {status, api} to a request it cannot tell from a web page's (an
    // unpaired extension's GET carries neither Origin nor token): that is "not paired" too.
    if (h.paired !== true && h.token_required !== false)
      return { state: s.token ? "wrong_token" : "not_paired", ok: false, health: h, ...pairingText(s) };
    return {
      state: "ok", ok: true, health: h, title: "Connected",
      detail: `MedLens ${h.version} · ${(h.model && h.model.backbone) || "model"} on ${h.device || "?"}${h.token_required ? " · paired" : ""}`,
      command: "",
    };
  }

  function pairingText(s) {
    return s.token
      ? { title: "Wrong pairing token", detail: "The server refused the saved token. Pair again: run this in a terminal and type the code it prints below.", command: "medlens pair" }
      : { title: "Not paired with the server", detail: "Run this in a terminal and type the code it prints below.", command: "medlens pair" };
  }

  ns.api = Object.freeze({
    API_VERSION, FALLBACK_LIMITS, ApiError, health, limitsOf, pair, classifyUrls, classifyImages, classifyPdf,
    classifyImageFiles, applyThreshold, fileKind, acceptList, acceptedText, sizeCap, serverState,
  });
})();
