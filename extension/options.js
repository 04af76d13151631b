/* MedLens options: server address, token pairing with "Test connection", strictness, what to do
 * with medical images, off-sites and auto-scan. Everything is kept in storage.local. */
/* global MedLens */
"use strict";

const $ = (id) => document.getElementById(id);

function showThreshold() {
  const useServer = $("use-server-threshold").checked;
  $("threshold").disabled = useServer;
  $("threshold-value").textContent = useServer ? "the server's" : `${Math.round(Number($("threshold").value) * 100)}%`;
}

function fill(s) {
  $("server-url").value = s.serverUrl;
  $("token").value = s.token;
  $("use-server-threshold").checked = s.threshold === null;
  $("threshold").value = String(s.threshold === null ? 0.5 : s.threshold);
  for (const r of document.querySelectorAll("input[name=medicalMode]")) r.checked = r.value === s.medicalMode;
  $("auto-scan").checked = s.autoScan;
  $("off-sites").value = s.offSites.join("\n");
  showThreshold();
}

function read() {
  const serverUrl = MedLens.settings.normalizeServerUrl($("server-url").value);
  return {
    serverUrl,
    token: $("token").value.trim(),
    threshold: $("use-server-threshold").checked ? null : Number($("threshold").value),
    medicalMode: (document.querySelector("input[name=medicalMode]:checked") || { value: "badge" }).value,
    autoScan: $("auto-scan").checked,
    offSites: MedLens.settings.parseOffSites($("off-sites").value),
  };
}

async function save() {
  const values = read();
  if (!values.serverUrl) {
    $("saved").textContent = "The server address is not valid (example: http://127.0.0.1:8377).";
    $("server-url").setAttribute("aria-invalid", "true");
    $("server-url").focus();
    return null;
  }
  $("server-url").removeAttribute("aria-invalid");
  const s = await MedLens.settings.save(values);
  fill(s);
  $("saved").textContent = "Saved.";
  return s;
}

async function testConnection() {
  const box = $("connection");
  box.hidden = false;
  box.dataset.state = "checking";
  $("server-title").textContent = "Testing…";
  $("server-detail").textContent = "";
  $("server-command-row").hidden = true;
  const s = await save();
  if (!s) {
    box.dataset.state = "error";
    $("server-title").textContent = "Fix the server address first.";
    return;
  }
  const st = await MedLens.api.serverState(s);
  box.dataset.state = st.state;
  $("server-title").textContent = st.title;
  $("server-detail").textContent = st.detail || "";
  $("server-command").textContent = st.command || "";
  $("server-command-row").hidden = !st.command;
}

/** One step: the code `medlens pair` printed -> the token, saved; then the connection is tested. */
async function pairWithCode() {
  const msg = $("pair-message");
  msg.hidden = false;
  msg.dataset.ok = "false";
  const s = await save(); // the server address the code is for
  if (!s) {
    msg.textContent = "Fix the server address first.";
    return;
  }
  msg.textContent = "Pairing…";
  $("pair-button").disabled = true;
  const out = await MedLens.pairing.pairWithCode($("pair-code").value);
  $("pair-button").disabled = false;
  msg.dataset.ok = String(out.ok);
  msg.textContent = out.ok ? "Paired with the MedLens server." : out.message;
  if (!out.ok) return;
  $("pair-code").value = "";
  fill(out.settings);
  await testConnection();
}

async function main() {
  fill(await MedLens.settings.load());
  MedLens.native.showStatus($("native-status")); // started by MedLens / running / not installed
  $("form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    save();
  });
  $("test").addEventListener("click", () => testConnection());
  $("pair-button").addEventListener("click", () => pairWithCode());
  $("pair-code").addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter") return;
    ev.preventDefault(); // Enter pairs; it does not submit the whole form
    pairWithCode();
  });
  $("use-server-threshold").addEventListener("change", showThreshold);
  $("threshold").addEventListener("input", showThreshold);
  $("show-token").addEventListener("change", (ev) => {
    $("token").type = ev.target.checked ? "text" : "password";
  });
  for (const el of document.querySelectorAll("#form input, #form textarea")) {
    if (["token", "server-url", "show-token", "pair-code"].includes(el.id)) continue;
    el.addEventListener("change", () => save()); // preferences apply at once
  }
}

main();
