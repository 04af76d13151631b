/* MedLens native host client: when the server does not answer (or this browser is not paired),
 * ask the native host that `medlens install` registered. The host starts `medlens serve` in the
 * background if needed and answers its address and token, so the extension pairs with no code.
 * The browser lets only this extension reach the host (the host manifest lists its ID) and hands
 * the answer only to it. Without the host, pairing by code or pasted token stays the way.
 * Used by the service worker (reachServer) and the extension pages (showStatus). */
/* global MedLens */
(() => {
  "use strict";
  const ns = (globalThis.MedLens = globalThis.MedLens || {});
  if (ns.native) return;
  const ext = globalThis.browser ?? globalThis.chrome;

  const HOST_NAME = "medlens";
  const INSTALL_COMMAND = "medlens install";
  // Server states the host can fix: nothing answers, or the extension has no (or an old) token.
  const HOST_CAN_FIX = new Set(["server_down", "not_paired", "wrong_token"]);
  const LOOPBACK_URL = /^http:\/\/(127\.0\.0\.1|\[::1\]):\d{1,5}$/;
  // What Chrome and Firefox say when no host manifest lets this extension start the host.
  const NOT_INSTALLED = /not found|no such native application|forbidden|permission|not (been )?registered/i;

  /** One request to the host -> its answer ({ok: true, ...}) or {ok: false, code, message}. */
  async function ask(message) {
    if (!ext.runtime || typeof ext.runtime.sendNativeMessage !== "function")
      return { ok: false, code: "host_not_installed", message: "This browser gives MedLens no native messaging." };
    let reply;
    try {
      reply = await ext.runtime.sendNativeMessage(HOST_NAME, message);
    } catch (e) {
      const text = (e && e.message) || String(e);
      return NOT_INSTALLED.test(text)
        ? { ok: false, code: "host_not_installed", message: `The MedLens native host is not installed (${text}).` }
        : { ok: false, code: "host_failed", message: `The MedLens native host failed: ${text}` };
    }
    if (!reply || typeof reply !== "object") return { ok: false, code: "host_failed", message: "The native host gave no answer." };
    if (reply.ok !== true) {
      const err = reply.error || {};
      return { ok: false, code: err.code || "host_failed", message: err.message || "The native host refused." };
    }
    return reply;
  }

  /** Find or start the server: {ok: true, url, token, startedBy, startedNow} or an error value. */
  async function connect() {
    const r = await ask({ type: "connect" });
    if (!r.ok) return r;
    if (typeof r.url !== "string" || !LOOPBACK_URL.test(r.url) || typeof r.token !== "string" || !r.token)
      return { ok: false, code: "host_failed", message: "The native host's answer is not a loopback address and a token." };
    return { ok: true, url: r.url, token: r.token, startedBy: r.started_by, startedNow: r.started_now === true };
  }

  /** The server's state for settings `s`; when the host can fix it (down, not paired), ask the
   * host, save the address and token it answers, and check again. -> {settings, server}. */
  async function reachServer(s) {
    const first = await MedLens.api.serverState(s);
    if (first.ok || !HOST_CAN_FIX.has(first.state)) return { settings: s, server: first };
    const got = await connect();
    if (!got.ok) return { settings: s, server: { ...first, native: got } };
    const next = await MedLens.settings.save({ serverUrl: got.url, token: got.token });
    const server = await MedLens.api.serverState(next);
    return { settings: next, server: { ...server, startedBy: got.startedBy, startedNow: got.startedNow } };
  }

  /** The line the popup and options show about automatic start: {state, text, command}. */
  async function status() {
    const r = await ask({ type: "status" });
    if (!r.ok && r.code === "host_not_installed")
      return { state: "not_installed", text: "Automatic start is not installed: run this once in a terminal, and MedLens starts and pairs by itself from then on:", command: INSTALL_COMMAND };
    if (!r.ok) return { state: "error", text: r.message, command: "" };
    if (r.running && r.started_by === "medlens") {
      const idle = Number(r.idle_shutdown_s) > 0 ? `; it stops after ${Math.round(r.idle_shutdown_s / 60)} min unused` : "";
      return { state: "started", text: `Server started by MedLens${idle}.`, command: "" };
    }
    if (r.running) return { state: "running", text: "Server running (started by you).", command: "" };
    if (r.port_taken) return { state: "error", text: `Another program uses ${r.url}.`, command: "" };
    return { state: "ready", text: "Automatic start is installed: MedLens starts the server when you scan.", command: "" };
  }

  /** Fill `el` (a <p>) with the status line; data-native-state says which one, for styles and tests. */
  async function showStatus(el) {
    if (!el) return null;
    const st = await status();
    el.dataset.nativeState = st.state;
    el.textContent = st.text;
    if (st.command) {
      const code = document.createElement("code");
      code.textContent = st.command;
      el.append(" ", code);
    }
    el.hidden = false;
    return st;
  }

  ns.native = Object.freeze({ HOST_NAME, INSTALL_COMMAND, ask, connect, reachServer, status, showStatus });
})();
