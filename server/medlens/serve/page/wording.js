/* MedLens wording: what every view (content script badges, popup, options, the server's own web
 * page) calls a result, a modality and an error, written once so the views cannot disagree.
 * Classic script with no dependencies: loaded by extension pages and content scripts, served by
 * the server as /page/wording.js (a byte-equal copy in the Python package, kept equal by a test),
 * and required by Node's test runner. */
(() => {
  "use strict";
  const ns = (globalThis.MedLens = globalThis.MedLens || {});
  if (ns.wording) return;

  // The server's modality classes (models/model_card.json, modality_head.classes; "other" is
  // answered as null). A name the server adds later is shown as it is spelled, never dropped.
  const MODALITY_NAMES = Object.freeze({
    "blood-smear": "Blood smear", ct: "CT", endoscopy: "Endoscopy", fundus: "Fundus photo", histology: "Histology", mri: "MRI",
    nuclear: "Nuclear medicine", ultrasound: "Ultrasound", xray: "X-ray",
  });

  // Within this distance of the threshold a verdict is a lean, not a finding: "Likely …", and no
  // modality name (a name beside an unsure label looks more certain than the model is).
  const NEAR_THRESHOLD = 0.1;

  const CATEGORIES = Object.freeze(["medical", "non-medical", "skipped", "error"]);
  const CATEGORY_NAMES = Object.freeze({
    medical: "Medical", "non-medical": "Non-medical", skipped: "Skipped", error: "Not classified",
  });

  // code -> [short reason, what happened and what to do]. Every code of the server's errors.py is
  // here (a test keeps them equal) plus the ones only the extension or the page makes.
  const ERRORS = Object.freeze({
    invalid_url: ["bad address", "The image address is not a valid http(s) URL."],
    invalid_request: ["bad request", "The server did not understand the request. Update MedLens and the extension to the same version."],
    invalid_json: ["bad request", "The server could not read the request. Update MedLens and the extension to the same version."],
    scheme_not_allowed: ["address refused", "MedLens fetches only http and https addresses; this one cannot be checked."],
    address_not_allowed: ["address refused", "The server does not fetch addresses on this computer or a private network (a safety rule). Start it with --allow-private to allow them."],
    fetch_failed: ["download failed", "The server could not download the image (the site refused, answered an error, or the connection broke). Try again later."],
    fetch_timeout: ["download too slow", "The site took too long to send the image. Try again later."],
    too_many_redirects: ["too many redirects", "The image address redirects too many times."],
    too_large: ["too large", "The file is larger than the server accepts (see the limits under the drop zone)."],
    not_an_image: ["not an image", "The address does not lead to an image (it sent a web page, text or nothing)."],
    unsupported_format: ["unsupported format", "MedLens cannot read this image format (SVG and similar are not supported)."],
    decode_failed: ["unreadable image", "The image is damaged or truncated and cannot be decoded."],
    too_many_pixels: ["too many pixels", "The image has more pixels than the server decodes (a guard against decompression bombs)."],
    too_small: ["too small", "The image is too small to classify."],
    pdf_encrypted: ["password-protected", "The PDF is password-protected: remove the password and try again."],
    pdf_malformed: ["damaged PDF", "The PDF is damaged or not a PDF."],
    pdf_timeout: ["PDF too slow", "Reading the PDF took longer than the server allows; split it into smaller files."],
    page_failed: ["page unreadable", "The web page could not be read (it is not HTML or the download failed)."],
    too_many_items: ["too many items", "Too many files or addresses in one request; send fewer at a time."],
    queue_full: ["server busy", "The server is busy (its queue is full). Try again in a moment."],
    unauthorized: ["not paired", "The server refused the pairing token. Pair again: run `medlens pair` and type the code in the MedLens popup."],
    pairing_code_wrong: ["wrong code", "That is not the code `medlens pair` printed. Check it and try again."],
    pairing_code_expired: ["code expired", "The pairing code expired or was used up. Run `medlens pair` again for a new one."],
    forbidden_origin: ["refused", "The server refused this origin: only the MedLens extension and the server's own page may use it."],
    forbidden_peer: ["refused", "The server takes requests only from this computer; start it with --host to serve other machines on purpose."],
    forbidden_host: ["refused", "The server refused this address; open it as http://127.0.0.1:PORT/ or http://localhost:PORT/."],
    body_timeout: ["upload too slow", "The upload did not arrive in time. Try again; on a slow link, send fewer or smaller files."],
    body_too_large: ["too large", "The upload is larger than the server accepts in one request; send fewer or smaller files."],
    unsupported_media_type: ["unsupported file", "The server does not take this kind of file: use a PDF, an image, an office document, an e-book, an archive, a DICOM file or a video."],
    not_found: ["not found", "The server has no such route. Update MedLens and the extension to the same version."],
    read_failed: ["unreadable file", "The file exists but cannot be read (permissions or an I/O error)."],
    config_unwritable: ["server setup", "The server cannot write its config folder; check its permissions and restart `medlens serve`."],
    method_not_allowed: ["bad request", "The server does not take this request. Update MedLens and the extension to the same version."],
    model_error: ["model failed", "The model failed on this image, or the server is shutting down. Try again; restart `medlens serve` if it persists."],
    backbone_unavailable: ["model missing", "The server's model weights are not installed. Reinstall MedLens."],
    weights_invalid: ["model damaged", "A model file fails its checksum. Reinstall MedLens."],
    head_mismatch: ["model mismatch", "The model's parts do not fit together. Reinstall MedLens."],
    internal: ["server error", "The server failed unexpectedly (a bug). Try again; the server's log says more."],
    server_start_failed: ["server did not start", "MedLens could not start its server. Run `medlens serve` in a terminal to see why."],
    port_in_use: ["port taken", "Another program uses the MedLens server's port. Free it, or set another port in MedLens's settings and the options."],
    install_failed: ["install failed", "`medlens install` could not write its files. Check the message, fix the folder's permissions and run it again."],
    no_images: ["no images", "The file holds no image MedLens could take (a PDF, document, archive, video or DICOM file without pictures)."],
    missing_dependency: ["needs an extra", "Reading this file needs an optional part of MedLens; install the extra the message names (e.g. pip install 'medlens[video]')."],
    archive_bomb: ["archive too big", "The archive unpacks to far more than its size (a guard against zip bombs); unpack it yourself and send the files."],
    unsafe_member: ["unsafe entry", "An archive entry has an absolute or '..' name, or is a link or device; MedLens does not unpack it."],
    encrypted: ["password-protected", "The document or archive needs a password: remove it and try again."],
    too_long: ["video too long", "The video is longer than the server samples; cut it into shorter clips."],
    extraction_timeout: ["too slow", "Reading this video or e-book took longer than the server allows; split it into smaller files."],
    // only the extension or the web page make these
    server_down: ["server not running", "No MedLens server answers. Start it in a terminal with `medlens serve`."],
    old_server: ["server too old", "The server is too old for this extension. Update MedLens, then restart `medlens serve`."],
    http_error: ["server error", "The server answered with an HTTP error. Restart `medlens serve`; update it if this persists."],
    bad_answer: ["server error", "The server's answer could not be read. Restart `medlens serve`."],
    extension_error: ["extension error", "The extension failed to pass the request on. Reload the page and scan again."],
    content_error: ["extension error", "The extension failed on this page. Reload the page and scan again."],
    not_readable: ["not readable", "The server cannot download this image and the page does not allow reading it; MedLens does not read what the page itself cannot."],
  });
  // Where the same code means something else on the server's own page (no extension there).
  const PAGE_ERRORS = Object.freeze({
    unauthorized: "This page's session has expired (did the server restart?). Reload the page.",
    server_down: "The MedLens server does not answer. Is `medlens serve` still running?",
  });

  /** "medical" | "non-medical" | "skipped" | "error" for any Result (null included). */
  function categoryOf(r) {
    if (!r || typeof r !== "object") return "error";
    if (r.status === "ok") return r.label === "medical" ? "medical" : "non-medical";
    return r.status === "skipped" ? "skipped" : "error";
  }

  /** The display name of a modality code, or null for none. */
  function modalityName(code) {
    if (typeof code !== "string" || !code || code === "other") return null;
    if (Object.prototype.hasOwnProperty.call(MODALITY_NAMES, code)) return MODALITY_NAMES[code];
    const text = code.replace(/[_-]+/g, " ").trim();
    return text ? text.charAt(0).toUpperCase() + text.slice(1) : null;
  }

  /** A probability as a percentage, with as many decimals as `others` need to read differently
   * (so 0.3855 against a threshold of 0.386 never reads "39% … threshold 39%"). Never "0%" or
   * "100%": that would claim a certainty the model does not have. */
  function percent(p, others = []) {
    if (p >= 0.995 && others.every((o) => typeof o !== "number" || o < 0.99)) return ">99%";
    if (p < 0.005 && others.every((o) => typeof o !== "number" || o > 0.01)) return "<1%";
    return percentFrom(0, p, others);
  }

  /** A threshold as a percentage: exact to a tenth (0.386 is "38.6%", 0.3 is "30%"), with more
   * decimals only where `others` need them to read differently. */
  function thresholdPercent(t, others = []) {
    return percentFrom(Math.round(t * 1000) % 10 === 0 ? 0 : 1, t, others);
  }

  function percentFrom(first, p, others) {
    for (let digits = first; digits < 3; digits++) {
      const text = (p * 100).toFixed(digits);
      if (others.every((o) => typeof o !== "number" || o === p || (o * 100).toFixed(digits) !== text)) return `${text}%`;
    }
    return `${(p * 100).toFixed(3)}%`;
  }

  /** What to call a classified result, judged against the threshold it was compared with
   * (r.threshold when the extension recorded it, else `threshold`).
   * {category, near, word, figures, probability, modality, sentence}: `figures` is the probability
   * beside the threshold, `probability` the probability alone (for views that draw the threshold,
   * e.g. as a mark on a meter). For skipped/error results word and
   * sentence are the generic page-safe ones (see pageLabel). */
  function verdict(r, threshold = null) {
    const category = categoryOf(r);
    if (category !== "medical" && category !== "non-medical") {
      const page = pageLabel(r);
      return { category, near: false, word: page.text, figures: "", probability: "", modality: null, sentence: page.title };
    }
    const p = typeof r.probability === "number" ? r.probability : null;
    const t = typeof r.threshold === "number" ? r.threshold : typeof threshold === "number" ? threshold : null;
    const near = p !== null && t !== null && Math.abs(p - t) < NEAR_THRESHOLD;
    const medical = category === "medical";
    const word = near ? (medical ? "Likely medical" : "Likely not medical") : CATEGORY_NAMES[category];
    let figures = "";
    if (p !== null) figures = t === null ? `${percent(p)} medical` : `${percent(p, [t])} medical (threshold ${thresholdPercent(t, [p])})`;
    const probability = p === null ? "" : `${t === null ? percent(p) : percent(p, [t])} medical`;
    const modality = medical && !near ? modalityName(r.modality) : null;
    const sentence = `MedLens: ${word.toLowerCase()}${modality ? ` (${modality})` : ""}`
      + (p === null ? "" : t === null
        ? `; probability of medical ${percent(p)}`
        : `; probability of medical ${percent(p, [t])}, images from ${thresholdPercent(t, [p])} count as medical`);
    return { category, near, word, figures, probability, modality, sentence };
  }

  /** The label a web page's DOM may hold for a result that is not classified: generic on purpose
   * (no server message, no code), so a page learns nothing from MedLens it could not learn itself. */
  function pageLabel(r) {
    const category = categoryOf(r);
    if (category === "skipped") return { text: "Skipped", title: "MedLens skipped this image. The MedLens popup says why." };
    return { text: "Not classified", title: "MedLens could not classify this image. The MedLens popup says why." };
  }

  /** Short reason for a code (popup cards, counts). */
  function errorReason(code) {
    const known = ERRORS[code];
    return known ? known[0] : String(code || "error").replace(/_/g, " ");
  }

  /** What happened and what to do, for the popup (`where` "extension") or the server's page ("page"). */
  function errorText(code, where = "extension") {
    if (where === "page" && PAGE_ERRORS[code]) return PAGE_ERRORS[code];
    const known = ERRORS[code];
    return known ? known[1] : "MedLens could not classify this item. Try again; the server's log says more.";
  }

  /** Where an image sits in the file that held it, as short parts ("member scans/a.png", "page 2,
   * image 1", "frame 7 at 4.0 s", "DICOM MR"); [] for a file of its own. The popup and the server's
   * page both show these, so the words are said once. */
  function placeParts(r) {
    const at = [];
    if (!r) return at;
    if (r.member) at.push(`member ${r.member}`);
    if (r.page != null) at.push(`page ${r.page}${r.index != null ? `, image ${r.index}` : ""}`);
    else if (r.index != null) at.push(`image ${r.index}`);
    const time = typeof r.time_s === "number" ? `${r.time_s.toFixed(1)} s` : null;
    if (r.role === "summary") {
      if (time) at.push(`whole video, most medical at ${time}`);
    } else if (r.frame != null) {
      at.push(time ? `frame ${r.frame} at ${time}` : `frame ${r.frame}`);
    } else if (time) {
      at.push(`at ${time}`);
    }
    if (r.dicom_modality) at.push(`DICOM ${r.dicom_modality}`);
    return at;
  }

  /** "3 medical · 5 non-medical · 1 skipped · 2 not classified" (zero skipped/errors left out). */
  function countsText(c) {
    const parts = [`${c.medical || 0} medical`, `${c["non-medical"] || 0} non-medical`];
    if (c.skipped) parts.push(`${c.skipped} skipped`);
    if (c.error) parts.push(`${c.error} not classified`);
    return parts.join(" · ");
  }

  ns.wording = Object.freeze({
    MODALITY_NAMES, NEAR_THRESHOLD, CATEGORIES, CATEGORY_NAMES, ERRORS, PAGE_ERRORS,
    categoryOf, modalityName, percent, thresholdPercent, verdict, pageLabel, errorReason, errorText, countsText,
    placeParts,
  });
})();
