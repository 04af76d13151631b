/* MedLens background: a service worker in Chrome, an event page in Firefox (manifest
 * background.scripts loads lib/ first there). It may stop at any time: listeners are registered at
 * top level, state lives in storage, and every listener only forwards to a named function.
 * Only this file and the extension pages talk to the MedLens server. */
/* global importScripts, MedLens */
"use strict";

if (typeof importScripts === "function") importScripts("lib/messages.js", "lib/settings.js", "lib/api.js", "lib/referrer.js", "lib/native.js");

const ext = globalThis.browser ?? globalThis.chrome;
const { TYPES, FROM_CONTENT, FROM_EXTENSION_PAGE } = MedLens.messages;
const MENU_ID = "medlens-classify-image";
// The content script: classic scripts sharing the MedLens namespace, in dependency order
// (content/main.js last). The shield script registered for document_start adds autostart.js.
const CONTENT_FILES = [
  "extension/lib/messages.js", "extension/lib/referrer.js", "extension/lib/settings.js", "extension/lib/wording.js",
  ...["candidates", "page-state", "queue", "cover", "view", "badge", "notice", "media", "observers", "main"]
    .map((name) => `extension/content/${name}.js`),
];
// Upper bounds per request; the server's own max_items (from /v1/health) lowers them.
const MAX_URLS_PER_CALL = 64;
const MAX_BYTES_PER_CALL = 16;
const LIMITS_KEY = "server:limits";
// Per-item errors after which the page itself may hand over the image's bytes: the server could not
// download it (a login, a slow host) or got a login page instead. Only for an image of the page's
// own origin, which the page can read anyway. The safety refusals (address_not_allowed,
// scheme_not_allowed, invalid_url) are final: re-reading what the server refused would let a page
// learn, through the badges, about images and addresses it may not read.
const READ_IN_PAGE = new Set(["fetch_failed", "fetch_timeout", "not_an_image", "too_many_redirects"]);
// What the popup keeps of a tab's unclassified images (their details never reach the page).
const MAX_PROBLEMS = 200;
const stateArea = () => ext.storage.session ?? ext.storage.local;

/* ---------------------------------------------------------------- tab state (storage) */

function stateKey(tabId) {
  return `tab:${tabId}`;
}

async function setTabState(tabId, state) {
  await stateArea().set({ [stateKey(tabId)]: { ...state, tabId, updatedAt: Date.now() } });
}

async function getTabState(tabId) {
  const got = await stateArea().get(stateKey(tabId));
  return got[stateKey(tabId)] || null;
}

// Each frame of a tab reports its own progress; their reports and the scan's end are merged into
// the one tab state in order, per tab, so no report overwrites another's counts.
const tabQueues = new Map();

function inTabOrder(tabId, fn) {
  const prev = tabQueues.get(tabId) || Promise.resolve();
  const next = prev.then(fn, fn);
  const tail = next.catch(() => {});
  tabQueues.set(tabId, tail);
  tail.then(() => {
    if (tabQueues.get(tabId) === tail) tabQueues.delete(tabId);
  });
  return next;
}

const COUNT_KEYS = ["medical", "non-medical", "skipped", "error"];

/** The tab's totals: the sum of what each of its frames found, classified and counted. */
function withTotals(state) {
  const frames = state.frames || {};
  const counts = Object.fromEntries(COUNT_KEYS.map((k) => [k, 0]));
  let found = 0;
  let done = 0;
  let watching = false;
  for (const f of Object.values(frames)) {
    found += f.found || 0;
    done += f.done || 0;
    watching = watching || !!f.watching;
    for (const k of COUNT_KEYS) counts[k] += (f.counts && f.counts[k]) || 0;
  }
  return { ...state, found, done, counts, watching, frameCount: Object.keys(frames).length };
}

/** The tab state of a page on a site the user turned MedLens off for. */
function offState(url) {
  return { status: "off", url, message: `MedLens is off on ${MedLens.settings.siteOf(url)}.` };
}

/** A scan that began before its site was turned off ends quietly: its late reports and its end
 * must not turn the tab's "off" back into "done" (the popup shows the tab state as it changes).
 * Returns the tab's "off" state (written if it was not yet), or null while the site is on. */
async function stillOff(tabId, url, prev) {
  if (!MedLens.settings.isSiteOff(url, (await MedLens.settings.load()).offSites)) return null;
  if (prev.status === "off" && prev.url === url) return prev;
  const off = offState(url);
  await setTabState(tabId, off);
  await setActionBadge(tabId, off); // a count from before is no longer true
  return off;
}

/** A scan's last word on its tab (in order after the frames' reports), unless its site is off now. */
function endScan(tabId, url, state) {
  return inTabOrder(tabId, async () => {
    const off = await stillOff(tabId, url, (await getTabState(tabId)) || {});
    if (off) return off;
    await setTabState(tabId, state);
    return state;
  });
}

/** Merge frames' numbers into the tab state. `status`: a string, or a function of the merged
 * frames (a frame's report says "done" only once no frame of the tab is still classifying). */
function mergeFrames(tabId, url, frames, status) {
  return inTabOrder(tabId, async () => {
    const prev = (await getTabState(tabId)) || {};
    const off = await stillOff(tabId, url, prev);
    if (off) return off;
    const all = { ...(prev.frames || {}), ...frames };
    const merged = withTotals({ ...prev, status: typeof status === "function" ? status(all) : status, url, frames: all });
    await setTabState(tabId, merged);
    await setActionBadge(tabId, merged);
    return merged;
  });
}

/* ---------------------------------------------------------------- the pages' Referrer-Policy headers */

// A page's Referrer-Policy response header is invisible to its DOM, so it is noted here as each
// document arrives (only documents that send one) and applies unless the page's markup says
// otherwise (a <meta name="referrer">, which the content script reads, wins, as in browsers).
function headerPolicyKey(tabId, frameId) {
  return `refpolicy:${tabId}:${frameId}`;
}

function withoutFragment(url) {
  return String(url || "").split("#")[0];
}

function onDocumentHeaders(details) {
  if (details.tabId < 0) return;
  const header = (details.responseHeaders || []).find((h) => h.name.toLowerCase() === "referrer-policy");
  const policy = header ? MedLens.referrer.parsePolicy(header.value) : "";
  const key = headerPolicyKey(details.tabId, details.frameId);
  void (policy ? stateArea().set({ [key]: { url: withoutFragment(details.url), policy } }) : stateArea().remove(key));
}

/** A closed tab's state and its frames' noted policies. */
async function forgetTab(tabId) {
  const all = await stateArea().get(null);
  const prefix = headerPolicyKey(tabId, "");
  await stateArea().remove([stateKey(tabId), ...Object.keys(all).filter((k) => k.startsWith(prefix))]);
}

/** The policy the frame's document header stated, when the frame still shows that document. */
async function headerPolicy(tabId, frameId, pageUrl) {
  const key = headerPolicyKey(tabId, frameId);
  const got = (await stateArea().get(key))[key];
  return got && got.url === withoutFragment(pageUrl) ? got.policy : "";
}

/* ---------------------------------------------------------------- the server's limits */

async function rememberLimits(health) {
  await stateArea().set({ [LIMITS_KEY]: MedLens.api.limitsOf(health) });
  await MedLens.settings.rememberServerThreshold(health); // shown in options; labels judged by it
}

/** The limits the server reported at the last scan (its defaults until then). */
async function knownLimits() {
  const got = await stateArea().get(LIMITS_KEY);
  return got[LIMITS_KEY] || MedLens.api.limitsOf(null);
}

async function setActionBadge(tabId, state) {
  try {
    let text = "";
    let color = "#555";
    if (state.status === "server") {
      text = "!";
      color = "#9b1c1c";
    } else if (state.counts && state.counts.medical) {
      text = String(state.counts.medical);
      color = "#9b1c1c";
    }
    await ext.action.setBadgeText({ tabId, text });
    if (text) await ext.action.setBadgeBackgroundColor({ tabId, color });
  } catch {
    /* the tab may be gone */
  }
}

/* ---------------------------------------------------------------- helpers */

function isScannable(url) {
  return /^https?:\/\//i.test(url || "") || /^file:\/\//i.test(url || "");
}

async function resolveTab(tab) {
  if (typeof tab === "number") return ext.tabs.get(tab);
  if (tab && typeof tab.id === "number" && typeof tab.url === "string") return tab;
  if (tab && typeof tab.id === "number") return ext.tabs.get(tab.id);
  throw new Error("no tab");
}

/** The content script in every frame of the tab, cross-origin iframes included (host permission
 * <all_urls>); returns [{frameId, url}] of the frames that have it. */
async function injectAllFrames(tabId) {
  await ext.scripting.executeScript({ target: { tabId, allFrames: true }, files: CONTENT_FILES });
  const found = await ext.scripting.executeScript({ target: { tabId, allFrames: true }, func: () => location.href });
  return found
    .filter((r) => r && Number.isInteger(r.frameId) && typeof r.result === "string" && !r.error)
    .map((r) => ({ frameId: r.frameId, url: r.result }));
}

/** Frames a scan covers: the top one, and the others unless their own site is off or they hold
 * something MedLens cannot scan (about:blank and srcdoc frames share their parent's origin). */
function framesToScan(frames, offSites) {
  return frames.filter((f) => f.frameId === 0 || /^about:(blank|srcdoc)/i.test(f.url)
    || (isScannable(f.url) && !MedLens.settings.isSiteOff(f.url, offSites)));
}

async function ensureContent(tabId, frameId = 0) {
  try {
    const pong = await ext.tabs.sendMessage(tabId, { type: TYPES.PING }, { frameId });
    if (pong && pong.ok) return;
  } catch {
    /* not injected yet */
  }
  await ext.scripting.executeScript({ target: { tabId, frameIds: [frameId] }, files: CONTENT_FILES });
}

function errorResult(source, code, message) {
  return { source, status: "error", label: null, probability: null, modality: null, error: { code, message } };
}

function errorOf(e) {
  return { code: e && e.code ? e.code : "internal", message: e && e.message ? e.message : String(e) };
}

async function blobFromDataUrl(dataUrl) {
  const resp = await fetch(dataUrl);
  return resp.blob();
}

function uploadName(blob, i) {
  const sub = ((blob.type || "").split("/")[1] || "bin").replace(/[^a-z0-9]/gi, "").slice(0, 5) || "bin";
  return `image-${i}.${sub === "jpeg" ? "jpg" : sub}`;
}

function sameOrigin(a, b) {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

/* ---------------------------------------------------------------- classification */

/** Classify bytes: items [{src, blob}] -> results in order (source is the original src). */
async function classifyBlobs(s, items) {
  const out = [];
  const per = Math.max(1, Math.min(MAX_BYTES_PER_CALL, (await knownLimits()).max_items));
  for (let i = 0; i < items.length; i += per) {
    const chunk = items.slice(i, i + per);
    let results;
    try {
      results = await MedLens.api.classifyImages(s, chunk.map((it, j) => ({ blob: it.blob, name: uploadName(it.blob, i + j) })));
    } catch (e) {
      const err = errorOf(e);
      results = chunk.map((it) => errorResult(it.src, err.code, err.message));
    }
    chunk.forEach((it, j) => out.push({ ...(results[j] || errorResult(it.src, "internal", "no result")), source: it.src, via: "bytes" }));
  }
  return out;
}

/** URLs found on a page -> results in order. `page`: {url, policy, policies, tabId, frameId}, the
 * frame the URLs come from, its referrer policy (and each image's own, parallel to `urls`). The
 * server is told at most the page's origin (lib/referrer.js), one request per distinct referrer;
 * what it cannot download, the page hands over as bytes if the image is of the page's own origin. */
async function classifyUrlsFor(s, urls, page) {
  const results = new Array(urls.length);
  const groups = new Map();
  urls.forEach((u, i) => {
    const policy = (page.policies && page.policies[i]) || page.policy || "";
    const referrer = MedLens.referrer.referrerFor(page.url, policy, u) || "";
    if (!groups.has(referrer)) groups.set(referrer, []);
    groups.get(referrer).push(i);
  });
  const per = Math.max(1, Math.min(MAX_URLS_PER_CALL, (await knownLimits()).max_items));
  for (const [referrer, indexes] of groups) {
    for (let i = 0; i < indexes.length; i += per) {
      const chunk = indexes.slice(i, i + per);
      let got;
      try {
        got = await MedLens.api.classifyUrls(s, chunk.map((j) => urls[j]), referrer || null);
      } catch (e) {
        const err = errorOf(e);
        got = chunk.map((j) => errorResult(urls[j], err.code, err.message));
      }
      chunk.forEach((j, k) => {
        results[j] = got[k] || errorResult(urls[j], "internal", "no result");
      });
    }
  }
  const retry = results.flatMap((r, i) => (r.status === "error" && r.error && READ_IN_PAGE.has(r.error.code)
    && /^https?:/i.test(urls[i]) && sameOrigin(urls[i], page.url) ? [i] : []));
  if (retry.length) {
    const items = [];
    const idx = [];
    await Promise.all(retry.map(async (i) => {
      const blob = await readInPage(urls[i], page.tabId, page.frameId);
      if (blob) {
        items.push({ src: urls[i], blob });
        idx.push(i);
      }
    }));
    const again = await classifyBlobs(s, items);
    idx.forEach((i, j) => {
      results[i] = again[j];
    });
  }
  return results.map((r, i) => ({ ...r, source: urls[i] }));
}

/** The image's bytes as the page itself reads them (its own origin, its own session), or null. */
async function readInPage(src, tabId, frameId) {
  if (typeof tabId !== "number") return null;
  try {
    const got = await ext.tabs.sendMessage(tabId, { type: TYPES.GET_IMAGE_BYTES, src }, { frameId: frameId || 0 });
    return got && got.dataUrl ? blobFromDataUrl(got.dataUrl) : null;
  } catch {
    return null;
  }
}

async function classifyDataUrls(s, items) {
  const blobs = [];
  const bad = new Map();
  for (const [i, it] of items.entries()) {
    try {
      blobs.push({ i, src: it.src, blob: await blobFromDataUrl(it.dataUrl) });
    } catch (e) {
      bad.set(i, errorResult(it.src, "decode_failed", `could not read the image bytes (${e.message})`));
    }
  }
  const results = await classifyBlobs(s, blobs);
  const out = items.map((it, i) => bad.get(i));
  blobs.forEach((b, j) => {
    out[b.i] = results[j];
  });
  return out;
}

/** What a page asked for, classified under that page's settings (its site's strictness), with the
 * threshold each label was judged by. `what`: {urls, policy, policies} or {items} (data: URLs). */
async function classifyForPage(tabId, frameId, pageUrl, what) {
  const s = await MedLens.settings.load();
  if (what.urls && !what.policy) what = { ...what, policy: await headerPolicy(tabId, frameId, pageUrl) };
  const onPage = MedLens.settings.forPage(s, pageUrl);
  const sp = { ...s, threshold: onPage.threshold };
  const results = what.urls
    ? await classifyUrlsFor(sp, what.urls, { url: pageUrl, policy: what.policy, policies: what.policies, tabId, frameId })
    : await classifyDataUrls(sp, what.items);
  const judged = results.map((r) => (r && r.status === "ok" && typeof r.threshold !== "number" && typeof onPage.compareWith === "number"
    ? { ...r, threshold: onPage.compareWith } : r));
  await rememberProblems(tabId, judged);
  return judged;
}

/** A result as a page may hold it: the error's code stays (the content script acts on it), its
 * message does not (server text never reaches the page's DOM; the popup shows it). */
function pageSafe(r) {
  return r && r.error ? { ...r, error: { code: r.error.code } } : r;
}

/** The tab's unclassified images with the server's details, for the popup (capped). */
function rememberProblems(tabId, results) {
  const bad = results.filter((r) => r && r.error && (r.status === "error" || r.status === "skipped"));
  if (!bad.length || typeof tabId !== "number") return Promise.resolve();
  return inTabOrder(tabId, async () => {
    const prev = (await getTabState(tabId)) || {};
    const problems = { ...(prev.problems || {}) };
    for (const r of bad) {
      if (Object.keys(problems).length >= MAX_PROBLEMS && !problems[r.source]) break;
      problems[r.source] = { status: r.status, code: r.error.code, message: String(r.error.message || "").slice(0, 300) };
    }
    await setTabState(tabId, { ...prev, problems });
  });
}

/** The frame's address and the referrer policy its markup states (for "Classify image", which
 * has no message from the page to carry them). */
async function framePage(tabId, frameId, fallbackUrl) {
  try {
    await ext.scripting.executeScript({ target: { tabId, frameIds: [frameId] }, files: ["extension/lib/referrer.js"] });
    const [got] = await ext.scripting.executeScript({
      target: { tabId, frameIds: [frameId] },
      func: () => ({ url: location.href, policy: globalThis.MedLens.referrer.documentPolicy(document) }),
    });
    if (got && got.result && typeof got.result.url === "string") return got.result;
  } catch {
    /* a frame we cannot reach: the tab's address, the default policy */
  }
  return { url: fallbackUrl, policy: "" };
}

/* ---------------------------------------------------------------- the two entry points */

/** What the toolbar click does: find the images of every frame of the page (cross-origin iframes
 * included), classify them, badge each in the frame that holds it, and watch the page. */
async function scanTab(tab) {
  tab = await resolveTab(tab);
  const s = await MedLens.settings.load();
  if (!isScannable(tab.url)) {
    const state = { status: "unsupported", url: tab.url, message: "MedLens cannot scan this kind of page." };
    await setTabState(tab.id, state);
    return state;
  }
  if (MedLens.settings.isSiteOff(tab.url, s.offSites)) return endScan(tab.id, tab.url, offState(tab.url));
  // A scan again of the same page keeps what the popup knows of its unclassified images: the page
  // asks only about images it has not asked about before (a navigation clears the tab's state).
  await inTabOrder(tab.id, async () => {
    const prev = (await getTabState(tab.id)) || {};
    const problems = prev.url === tab.url ? prev.problems : undefined;
    await setTabState(tab.id, { status: "scanning", url: tab.url, found: 0, done: 0, counts: {}, frames: {}, problems });
  });
  const { server } = await MedLens.native.reachServer(s); // down or unpaired: the native host starts and pairs it
  if (!server.ok) {
    const state = await endScan(tab.id, tab.url, { status: "server", url: tab.url, server });
    await setActionBadge(tab.id, state);
    return state;
  }
  await rememberLimits(server.health);
  try {
    return await scanFrames(tab, s);
  } catch (e) {
    return endScan(tab.id, tab.url, { status: "failed", url: tab.url, message: `MedLens could not read this page: ${e.message}` });
  }
}

/** The content script in every frame, one SCAN_PAGE each (in parallel), their summaries merged
 * into the tab state. Throws when the top frame does not answer. */
async function scanFrames(tab, s) {
  const frames = framesToScan(await injectAllFrames(tab.id), s.offSites);
  const replies = await Promise.all(frames.map((f) => ext.tabs
    .sendMessage(tab.id, { type: TYPES.SCAN_PAGE, settings: MedLens.settings.forContent(s, f.url) }, { frameId: f.frameId })
    .then((summary) => [f.frameId, summary], () => [f.frameId, null])));
  if (!replies.some(([frameId, summary]) => frameId === 0 && summary)) throw new Error("the page did not answer");
  const done = {};
  for (const [frameId, summary] of replies) {
    if (summary && !summary.error) done[frameId] = { found: summary.found, done: summary.done, counts: summary.counts, watching: summary.watching };
  }
  return mergeFrames(tab.id, tab.url, done, "done");
}

/** A watched (already scanned) page loaded a new frame: scan every frame again (those scanned
 * before find nothing new and answer at once), so a cross-origin iframe added later is covered. */
async function scanNewFrames(tabId) {
  const tab = await resolveTab(tabId);
  const s = await MedLens.settings.load();
  if (!isScannable(tab.url) || MedLens.settings.isSiteOff(tab.url, s.offSites)) return { status: "off" };
  return scanFrames(tab, s);
}

/** What "Classify image" does: classify the right-clicked image and badge it. */
async function classifyImageInTab(tab, srcUrl, frameId = 0) {
  tab = await resolveTab(tab);
  if (MedLens.settings.isSiteOff(tab.url, (await MedLens.settings.load()).offSites)) return { status: "off" };
  const { settings: s } = await MedLens.native.reachServer(await MedLens.settings.load()); // as in scanTab
  if (typeof srcUrl !== "string" || !srcUrl) return errorResult(String(srcUrl), "invalid_url", "no image address");
  await ensureContent(tab.id, frameId);
  const page = await framePage(tab.id, frameId, tab.url);
  let result;
  if (/^https?:/i.test(srcUrl)) {
    [result] = await classifyForPage(tab.id, frameId, page.url, { urls: [srcUrl], policy: page.policy });
  } else {
    // data:, blob: and other addresses the server cannot fetch: the page hands over the bytes
    let got = null;
    try {
      got = await ext.tabs.sendMessage(tab.id, { type: TYPES.GET_IMAGE_BYTES, src: srcUrl }, { frameId });
    } catch {
      got = null;
    }
    result = got && got.dataUrl
      ? (await classifyForPage(tab.id, frameId, page.url, { items: [{ src: srcUrl, dataUrl: got.dataUrl }] }))[0]
      : errorResult(srcUrl, "not_readable", "the page does not let MedLens read this image's bytes");
  }
  await ext.tabs.sendMessage(tab.id, {
    type: TYPES.BADGE_IMAGE, src: srcUrl, result: pageSafe(result), settings: MedLens.settings.forContent(s, page.url),
  }, { frameId });
  return result;
}

async function autoScan(tabId, tab) {
  const s = await MedLens.settings.load();
  if (!s.autoScan || !isScannable(tab.url) || MedLens.settings.isSiteOff(tab.url, s.offSites)) return null;
  return scanTab(tab);
}

/* ---------------------------------------------------------------- the popup's results in the server's page */

const PAGE_LOAD_TIMEOUT_MS = 15000;

function tabLoaded(tabId) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error("the MedLens page did not load")), PAGE_LOAD_TIMEOUT_MS);
    function done(err) {
      clearTimeout(timer);
      ext.tabs.onUpdated.removeListener(onUpdated);
      if (err) reject(Object.assign(err, { code: "server_down" }));
      else resolve();
    }
    function onUpdated(id, info) {
      if (id === tabId && info.status === "complete") done(null);
    }
    ext.tabs.onUpdated.addListener(onUpdated);
  });
}

/** "Open the full result in the MedLens page": the server's own page, opened with the token in
 * its address (the page trades it for its session and drops it from the address bar), is handed
 * the results the popup has, as a message to that window (the page only ever uses their text). */
async function showResultsInPage(title, results) {
  const s = await MedLens.settings.load();
  const tab = await ext.tabs.create({ url: `${s.serverUrl}/${s.token ? `?token=${encodeURIComponent(s.token)}` : ""}` });
  try {
    await tabLoaded(tab.id);
    await ext.scripting.executeScript({
      target: { tabId: tab.id },
      func: (payload) => window.postMessage(payload, location.origin),
      args: [{ type: "medlens:show-results", title, results }],
    });
  } catch (e) {
    // the tab shows the browser's error page: no server answers there
    return { error: { code: "server_down", message: `the MedLens page at ${s.serverUrl} did not open (${e.message})` } };
  }
  return { ok: true, tabId: tab.id };
}

/* ---------------------------------------------------------------- messages */

/** The address of the frame a content script runs in (its own page, not the tab's). */
function framePageUrl(sender) {
  return typeof sender.url === "string" && /^https?:/i.test(sender.url) ? sender.url : sender.tab.url;
}

function isExtensionPage(sender) {
  return typeof sender.url === "string" && sender.url.startsWith(ext.runtime.getURL(""));
}

/** Checks a message against the known types and its sender; returns a promise or null (ignored). */
function handleMessage(msg, sender) {
  if (!MedLens.messages.isMessage(msg) || !sender || sender.id !== ext.runtime.id) return null;
  if (isExtensionPage(sender)) {
    if (!FROM_EXTENSION_PAGE.includes(msg.type)) return null;
    if (msg.type === TYPES.SCAN_TAB && Number.isInteger(msg.tabId)) return scanTab(msg.tabId);
    if (msg.type === TYPES.SHOW_RESULTS && Array.isArray(msg.results)) return showResultsInPage(String(msg.title || ""), msg.results);
    return null;
  }
  if (!sender.tab || !FROM_CONTENT.includes(msg.type)) return null;
  const tabId = sender.tab.id;
  const frameId = sender.frameId || 0;
  switch (msg.type) {
    case TYPES.CLASSIFY_URLS: {
      const urls = Array.isArray(msg.urls) ? msg.urls.filter((u) => typeof u === "string" && /^https?:/i.test(u)) : [];
      if (!urls.length || urls.length !== msg.urls.length) return Promise.resolve({ error: { code: "invalid_request", message: "urls" } });
      const policies = Array.isArray(msg.referrerPolicies) && msg.referrerPolicies.length === urls.length
        ? msg.referrerPolicies.map((p) => (typeof p === "string" ? p : "")) : null;
      const policy = typeof msg.referrerPolicy === "string" ? msg.referrerPolicy : "";
      return classifyForPage(tabId, frameId, framePageUrl(sender), { urls, policy, policies })
        .then((results) => ({ results: results.map(pageSafe) }));
    }
    case TYPES.CLASSIFY_BYTES: {
      const items = Array.isArray(msg.items)
        ? msg.items.filter((it) => it && typeof it.src === "string" && typeof it.dataUrl === "string" && it.dataUrl.startsWith("data:"))
        : [];
      if (!items.length || items.length !== msg.items.length) return Promise.resolve({ error: { code: "invalid_request", message: "items" } });
      return classifyForPage(tabId, frameId, framePageUrl(sender), { items }).then((results) => ({ results: results.map(pageSafe) }));
    }
    case TYPES.FRAMES_CHANGED:
      return scanNewFrames(tabId).then(() => ({ ok: true }));
    case TYPES.SCAN_PROGRESS: {
      const num = (v) => (Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0);
      const counts = {};
      for (const k of ["medical", "non-medical", "skipped", "error"]) counts[k] = num(msg.counts && msg.counts[k]);
      const frame = { found: num(msg.found), done: num(msg.done), counts, watching: !!msg.watching, final: !!msg.final };
      const status = (frames) => (Object.values(frames).every((f) => f.final !== false) ? "done" : "scanning");
      return mergeFrames(tabId, sender.tab.url, { [frameId]: frame }, status).then(() => ({ ok: true }));
    }
    default:
      return null;
  }
}

function onMessage(msg, sender, sendResponse) {
  const reply = handleMessage(msg, sender);
  if (!reply) return false;
  reply.then(sendResponse, (e) => sendResponse({ error: errorOf(e) }));
  return true;
}

function createMenu() {
  ext.contextMenus.removeAll(() => {
    ext.contextMenus.create({ id: MENU_ID, title: "Classify image", contexts: ["image"] }, () => void ext.runtime.lastError);
  });
}

/* ---------------------------------------------------------------- the shield: content script at document_start */

const SHIELD_ID = "medlens-shield";
const SHIELD_CSS = { blur: "extension/content/shield-blur.css", hide: "extension/content/shield-hide.css" };

/** Match patterns that leave the off sites (and their subdomains) alone. */
function offSitePatterns(offSites) {
  return offSites.filter((h) => /^[a-z0-9.-]+$/.test(h)).flatMap((h) => [`*://${h}/*`, `*://*.${h}/*`]);
}

/** Register the document_start shield script as the settings say (auto-scan on: the content script
 * starts with the page; blur/hide: plus the style that covers candidates from the first paint), or
 * unregister it. Called at install, at startup and whenever those settings change. */
async function syncShieldScript(s) {
  s = s || (await MedLens.settings.load());
  try {
    const had = await ext.scripting.getRegisteredContentScripts({ ids: [SHIELD_ID] });
    if (had.length) await ext.scripting.unregisterContentScripts({ ids: [SHIELD_ID] });
  } catch {
    /* none registered */
  }
  if (!s.autoScan) return null;
  const script = {
    id: SHIELD_ID, matches: ["<all_urls>"], allFrames: true, runAt: "document_start", persistAcrossSessions: true,
    js: [...CONTENT_FILES, "extension/content/autostart.js"],
  };
  if (SHIELD_CSS[s.medicalMode]) script.css = [SHIELD_CSS[s.medicalMode]];
  const exclude = offSitePatterns(s.offSites);
  if (exclude.length) script.excludeMatches = exclude;
  await ext.scripting.registerContentScripts([script]);
  return script;
}

// One registration update at a time: two quick settings changes must not race.
let shieldSync = Promise.resolve();

/** Settings changed (options, popup): the shield follows; auto-scan turned on reaches open tabs.
 * The pages' own content scripts re-render themselves (content/main.js listens too). */
async function onSettingsChanged(changes, area) {
  if (area !== "local" || !["autoScan", "medicalMode", "offSites"].some((k) => k in changes)) return;
  const s = await MedLens.settings.load();
  shieldSync = shieldSync.then(() => syncShieldScript(s)).catch(() => null);
  await shieldSync;
  if ("autoScan" in changes && s.autoScan && !changes.autoScan.oldValue) {
    for (const tab of await ext.tabs.query({})) if (isScannable(tab.url)) void scanTab(tab).catch(() => null);
  }
}

/* ---------------------------------------------------------------- listeners (top level, forwarders only) */

ext.runtime.onInstalled.addListener(() => {
  createMenu();
  void syncShieldScript();
});
ext.runtime.onStartup.addListener(() => {
  createMenu();
  void syncShieldScript();
});
ext.storage.onChanged.addListener((changes, area) => void onSettingsChanged(changes, area));
ext.runtime.onMessage.addListener(onMessage);
// No action.onClicked: with a default_popup it never fires; the popup asks for scanTab as it opens.
ext.contextMenus.onClicked.addListener((info, tab) => {
  if (info.menuItemId === MENU_ID) void classifyImageInTab(tab, info.srcUrl, info.frameId || 0);
});
ext.tabs.onUpdated.addListener((tabId, info, tab) => {
  if (info.status === "loading") void stateArea().remove(stateKey(tabId));
  if (info.status === "complete") void autoScan(tabId, tab);
});
ext.tabs.onRemoved.addListener((tabId) => void forgetTab(tabId));
ext.webRequest.onHeadersReceived.addListener(
  onDocumentHeaders, { urls: ["http://*/*", "https://*/*"], types: ["main_frame", "sub_frame"] }, ["responseHeaders"]);

// The seams tests and other tools rely on (architecture.md): scanTab and classifyImageInTab are
// top-level functions of this script, i.e. globals of the worker / event page.
Object.assign(globalThis, { scanTab, classifyImageInTab, getTabState, handleMessage, syncShieldScript });
