/* MedLens pairing in one step: the person runs `medlens pair`, types the short code it prints in
 * the popup or options, and the server hands this extension its token in exchange (POST /v1/pair,
 * accepted only from an extension Origin, once, within minutes, for a few tries). Used only by
 * extension pages: their POST carries the extension's Origin, which the server insists on.
 * Errors come back as values ({ok: false, code, message}) for the page to show. */
/* global MedLens */
(() => {
  "use strict";
  const ns = (globalThis.MedLens = globalThis.MedLens || {});
  if (ns.pairing) return;

  // Crockford base32, as the server: no I, L, O, U; O/I/L typed by mistake count as 0/1.
  const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  const CODE_LENGTH = 8;

  /** What a person typed -> "7KQ2M9XD", or null when it cannot be a code (no try is spent on it). */
  function normalizeCode(text) {
    const cleaned = String(text ?? "").toUpperCase().replace(/[\s_-]/g, "").replace(/O/g, "0").replace(/[IL]/g, "1");
    if (cleaned.length !== CODE_LENGTH || [...cleaned].some((ch) => !ALPHABET.includes(ch))) return null;
    return cleaned;
  }

  const WHY = {
    pairing_code_wrong: (e) => `That code is not the one \`medlens pair\` printed: ${e.message}.`,
    pairing_code_expired: () => "That code has expired or was used up. Run `medlens pair` again and type the new code.",
    forbidden_origin: () => "The server refused to pair with this browser.",
    server_down: (e) => e.message,
    old_server: () => "This MedLens server cannot pair with a code; update it, or paste the output of `medlens token` in options.",
  };

  /** Pair with the code: on success the token is saved and {ok: true, settings} comes back. */
  async function pairWithCode(text) {
    const code = normalizeCode(text);
    if (!code) return { ok: false, code: "bad_code", message: "A pairing code has 8 letters and digits, like 7KQ2-M9XD." };
    const s = await MedLens.settings.load();
    let token;
    try {
      token = await MedLens.api.pair(s, code);
    } catch (e) {
      const why = WHY[e.code];
      return { ok: false, code: e.code || "error", message: why ? why(e) : `${e.message} (${e.code || "error"})` };
    }
    const saved = await MedLens.settings.save({ token });
    return { ok: true, settings: saved };
  }

  ns.pairing = Object.freeze({ ALPHABET, CODE_LENGTH, normalizeCode, pairWithCode });
})();
