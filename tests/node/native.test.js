// The native host client's logic that needs no browser: what the browsers' errors mean, which
// answers are trusted, when the host is asked, and the status line. The browser's
// runtime.sendNativeMessage is the one thing given here; the real host and browsers run in
// tests/e2e/test_native.py. Run with `node --test tests/node/`.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

let answer = async () => ({ ok: true });
const asked = [];
globalThis.chrome = {
  runtime: {
    sendNativeMessage: async (name, message) => {
      asked.push([name, message]);
      return answer(message);
    },
  },
};
require(path.join(__dirname, "..", "..", "extension", "lib", "native.js"));
const N = globalThis.MedLens.native;

const fails = (text) => async () => {
  throw new Error(text);
};

test("the browsers' 'no such host' errors mean not installed; others mean the host failed", async () => {
  for (const text of ["Specified native messaging host not found.", "No such native application medlens",
    "Access to the specified native messaging host is forbidden."]) {
    answer = fails(text);
    assert.equal((await N.ask({ type: "status" })).code, "host_not_installed", text);
  }
  answer = fails("Native host has exited.");
  assert.equal((await N.ask({ type: "status" })).code, "host_failed");
  answer = async () => ({ type: "error", ok: false, error: { code: "invalid_request", message: "unknown" } });
  assert.deepEqual(await N.ask({ type: "x" }), { ok: false, code: "invalid_request", message: "unknown" });
  assert.equal(asked.at(-1)[0], "medlens");
});

test("connect trusts only a loopback address and a token", async () => {
  const good = { type: "connect", ok: true, url: "http://127.0.0.1:8377", token: "t".repeat(43), started_by: "medlens", started_now: true };
  answer = async () => good;
  assert.deepEqual(await N.connect(), { ok: true, url: good.url, token: good.token, startedBy: "medlens", startedNow: true });
  for (const bad of [{ url: "http://evil.example:8377" }, { url: "http://127.0.0.1:8377/x" }, { url: "https://127.0.0.1:8377" },
    { token: "" }, { token: 5 }]) {
    answer = async () => ({ ...good, ...bad });
    assert.equal((await N.connect()).code, "host_failed", JSON.stringify(bad));
  }
});

test("the host is asked only when the server is down or unpaired, and its answer is saved", async () => {
  const saved = [];
  let states = [];
  globalThis.MedLens.api = { serverState: async (s) => states.shift() || { ok: true, state: "ok", s } };
  globalThis.MedLens.settings = { save: async (v) => (saved.push(v), { serverUrl: v.serverUrl, token: v.token }) };
  answer = async () => ({ ok: true, url: "http://127.0.0.1:9000", token: "k".repeat(43), started_by: "medlens", started_now: true });
  const s = { serverUrl: "http://127.0.0.1:8377", token: "" };
  for (const state of ["ok", "old_server", "old_extension"]) {
    states = [{ ok: state === "ok", state }];
    const before = asked.length;
    assert.equal((await N.reachServer(s)).settings, s);
    assert.equal(asked.length, before, state);
  }
  for (const state of ["server_down", "not_paired", "wrong_token"]) {
    states = [{ ok: false, state }];
    const got = await N.reachServer(s);
    assert.equal(got.server.ok, true, state);
    assert.equal(got.server.startedBy, "medlens");
    assert.deepEqual(saved.at(-1), { serverUrl: "http://127.0.0.1:9000", token: "k".repeat(43) });
  }
  answer = fails("Specified native messaging host not found.");
  states = [{ ok: false, state: "server_down", title: "not running" }];
  const down = await N.reachServer(s);
  assert.equal(down.server.state, "server_down");
  assert.equal(down.server.native.code, "host_not_installed");
});

test("the status line: started by MedLens, running, ready, not installed (with the command)", async () => {
  const cases = [
    [{ running: true, started_by: "medlens", idle_shutdown_s: 900 }, "started", /started by MedLens; it stops after 15 min/],
    [{ running: true, started_by: "user" }, "running", /started by you/],
    [{ running: false }, "ready", /starts the server when you scan/],
  ];
  for (const [reply, state, text] of cases) {
    answer = async () => ({ type: "status", ok: true, ...reply });
    const st = await N.status();
    assert.equal(st.state, state);
    assert.match(st.text, text);
  }
  answer = fails("No such native application medlens");
  const missing = await N.status();
  assert.equal(missing.state, "not_installed");
  assert.equal(missing.command, "medlens install");
});
