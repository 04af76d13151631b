/* MedLens message types: the one list every context checks against (architecture.md,
 * "Extension contract"). Classic script: loaded by the service worker (importScripts), the
 * Firefox event page (background.scripts), content scripts (scripting.executeScript) and pages. */
(() => {
  "use strict";
  const ns = (globalThis.MedLens = globalThis.MedLens || {});
  if (ns.messages) return;

  const TYPES = Object.freeze({
    // popup -> service worker
    SCAN_TAB: "medlens:scan-tab", // {tabId}: what the toolbar click does
    SHOW_RESULTS: "medlens:show-results", // {title, results}: open the server's page showing them
    // service worker -> content script
    PING: "medlens:ping", // is the content script there?
    SCAN_PAGE: "medlens:scan-page", // {settings}: find images, classify them, badge them, watch the page
    BADGE_IMAGE: "medlens:badge-image", // {src, result, settings}: one image's badge (context menu)
    GET_IMAGE_BYTES: "medlens:get-image-bytes", // {src}: an image of the page's own origin the server could not download
    // content script -> service worker
    // {urls: [string], referrerPolicy?: string, referrerPolicies?: [string]}: referrerPolicy is the
    // document's (lib/referrer.js documentPolicy), referrerPolicies each image's own referrerpolicy
    // attribute ("" for none), parallel to urls. The service worker sends the server at most the
    // page's origin as Referer, and nothing where these policies say so.
    CLASSIFY_URLS: "medlens:classify-urls",
    CLASSIFY_BYTES: "medlens:classify-bytes", // {items: [{src, dataUrl}]}
    SCAN_PROGRESS: "medlens:scan-progress", // {found, done, counts, watching}
    FRAMES_CHANGED: "medlens:frames-changed", // a watched page loaded a new frame: cover it too
  });

  // Who may send what. The service worker answers content scripts only for these types.
  const FROM_CONTENT = Object.freeze([TYPES.CLASSIFY_URLS, TYPES.CLASSIFY_BYTES, TYPES.SCAN_PROGRESS, TYPES.FRAMES_CHANGED]);
  const FROM_EXTENSION_PAGE = Object.freeze([TYPES.SCAN_TAB, TYPES.SHOW_RESULTS]);
  const TO_CONTENT = Object.freeze([TYPES.PING, TYPES.SCAN_PAGE, TYPES.BADGE_IMAGE, TYPES.GET_IMAGE_BYTES]);
  const ALL = Object.freeze(Object.values(TYPES));

  function isMessage(msg) {
    return !!msg && typeof msg === "object" && typeof msg.type === "string" && ALL.includes(msg.type);
  }

  ns.messages = Object.freeze({ TYPES, ALL, FROM_CONTENT, FROM_EXTENSION_PAGE, TO_CONTENT, isMessage });
})();
