/* MedLens options: server address, token pairing with "Test connection", strictness, what to do
 * with medical images, off-sites and auto-scan. Everything is kept in storage.local. */
/* global MedLens */
"use strict";

const $ = (id) => document.getElementById(id);
const W = MedLens.wording;

/* ---------------------------------------------------------------- strictness: the threshold slider */

// The slider's positions: 1% … 99%, and one more, null, at the server's own threshold (so the
// slider reaches it exactly whatever its figure; 50% stands in while it is not known).
let positions = [];
let serverThreshold = null;

function thresholdPositions(server) {
  const out = [];
  for (let p = 1; p <= 99; p++) out.push(p / 100);
  const at = out.findIndex((v) => v > (server ?? 0.5));
  out.splice(at === -1 ? out.length : at, 0, null);
  return out;
}

function positionOf(threshold) {
  if (threshold === null) return positions.indexOf(null);
  let best = 0;
  positions.forEach((v, i) => {
    if (v !== null && Math.abs(v - threshold) < Math.abs((positions[best] ?? 2) - threshold)) best = i;
  });
  return best;
}

function sliderThreshold() {
  return positions[Number($("threshold").value)] ?? null;
}

/** Lays the slider out around the server's threshold, keeping the chosen value. */
function setServerThreshold(t, keep = sliderThreshold()) {
  serverThreshold = typeof t === "number" ? t : null;
  positions = thresholdPositions(serverThreshold);
  $("threshold").max = String(positions.length - 1);
  $("server-mark").value = String(positions.indexOf(null));
  $("threshold").value = String(positionOf(keep));
  $("server-threshold").textContent = serverThreshold === null
    ? "The server's own threshold is not known yet: start the server and test the connection above."
    : `The server's own threshold is ${W.thresholdPercent(serverThreshold)}: images from there on count as medical unless you choose otherwise.`;
  showThreshold();
}

function showThreshold() {
  const t = sliderThreshold();
  $("threshold-value").textContent = t !== null ? W.thresholdPercent(t, [serverThreshold])
    : serverThreshold === null ? "the server's threshold" : `${W.thresholdPercent(serverThreshold)} (the server's default)`;
  $("threshold").setAttribute("aria-valuetext", $("threshold-value").textContent);
  $("server-default").disabled = t === null;
}

function fill(s, keepRows = false) {
  $("server-url").value = s.serverUrl;
  $("token").value = s.token;
  // while the slider is in use it keeps its own position: a save answering an earlier step must not move it back
  setServerThreshold(s.serverThreshold, document.activeElement === $("threshold") ? sliderThreshold() : s.threshold);
  for (const r of document.querySelectorAll("input[name=medicalMode]")) r.checked = r.value === s.medicalMode;
  for (const r of document.querySelectorAll("input[name=mark]")) r.checked = r.value === s.mark;
  $("auto-scan").checked = s.autoScan;
  if (keepRows) readSites(); // rows being fixed stay as typed, with their messages
  else fillSites(s);
}

function read() {
  const serverUrl = MedLens.settings.normalizeServerUrl($("server-url").value);
  return {
    serverUrl,
    token: $("token").value.trim(),
    threshold: sliderThreshold(),
    medicalMode: (document.querySelector("input[name=medicalMode]:checked") || { value: "badge" }).value,
    mark: (document.querySelector("input[name=mark]:checked") || { value: "auto" }).value,
    autoScan: $("auto-scan").checked,
    ...readSites(),
  };
}

async function save() {
  const { refused, ...values } = read();
  if (!values.serverUrl) {
    $("saved").textContent = "The server address is not valid (example: http://127.0.0.1:8377).";
    $("server-url").setAttribute("aria-invalid", "true");
    $("server-url").focus();
    return null;
  }
  $("server-url").removeAttribute("aria-invalid");
  const s = await MedLens.settings.save(values);
  fill(s, true); // the site rows stay as they are: one being added or fixed is not lost
  $("saved").textContent = refused.length ? "Saved, except the sites marked below." : "Saved.";
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
  learnServerThreshold(st);
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

/** The server's threshold from a /v1/health answer: remembered (the popup and badges judge by it)
 * and placed on the slider. */
function learnServerThreshold(st) {
  const t = st && st.health && st.health.model && st.health.model.threshold;
  if (typeof t !== "number") return;
  MedLens.settings.rememberServerThreshold(st.health);
  setServerThreshold(t);
}

/* ---------------------------------------------------------------- sites: off, or their own strictness */

/** One row per stored entry: [site] [Off | Medical from N%] [Remove]. */
function fillSites(s) {
  const rows = $("site-rows");
  rows.replaceChildren();
  for (const site of s.offSites) rows.append(siteRow(site, "off", null));
  for (const [site, t] of Object.entries(s.siteStrictness)) rows.append(siteRow(site, "strictness", t));
  showSitesEmpty();
}

function showSitesEmpty() {
  $("sites-empty").hidden = $("site-rows").children.length > 0;
}

function siteRow(site, rule, threshold) {
  const tr = document.createElement("tr");
  tr.className = "site-row";
  const name = document.createElement("input");
  name.type = "text";
  name.className = "site-name";
  name.value = site;
  name.placeholder = "example.org or 127.0.0.1:8601";
  name.spellcheck = false;
  name.setAttribute("aria-label", "Site");
  const error = document.createElement("p");
  error.className = "row-error";
  error.hidden = true;
  const choice = document.createElement("select");
  choice.className = "site-rule";
  choice.setAttribute("aria-label", "MedLens on this site");
  for (const [value, text] of [["off", "Off"], ["strictness", "Medical from…"]]) choice.append(new Option(text, value, false, value === rule));
  const percent = document.createElement("input");
  percent.type = "number";
  percent.className = "site-threshold";
  percent.min = "1";
  percent.max = "99";
  percent.step = "0.1";
  percent.value = threshold === null ? String(Math.round(((serverThreshold ?? 0.5) - 0.1) * 100)) : String(Math.round(threshold * 1000) / 10);
  percent.setAttribute("aria-label", "Percent from which images count as medical on this site");
  percent.hidden = rule !== "strictness";
  const unit = document.createElement("span");
  unit.textContent = " %";
  unit.hidden = percent.hidden;
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "small remove-site";
  remove.textContent = "Remove";
  const cells = [[name, error], [choice, " ", percent, unit], [remove]];
  for (const parts of cells) {
    const td = document.createElement("td");
    td.append(...parts);
    tr.append(td);
  }
  choice.addEventListener("change", () => {
    percent.hidden = unit.hidden = choice.value !== "strictness";
    saveSites();
  });
  for (const el of [name, percent]) el.addEventListener("change", () => saveSites());
  remove.addEventListener("click", () => {
    tr.remove();
    showSitesEmpty();
    saveSites();
  });
  return tr;
}

/** The rows as settings, and the rows refused (with why): those are shown, not saved. */
function readSites() {
  const offSites = [];
  const siteStrictness = {};
  const refused = [];
  for (const tr of document.querySelectorAll("#site-rows .site-row")) {
    const name = tr.querySelector(".site-name");
    const error = tr.querySelector(".row-error");
    const text = name.value.trim();
    if (!text) continue; // a row just added: nothing to save or refuse yet
    let problem = null;
    const got = MedLens.settings.parseSite(text);
    const pct = Number(tr.querySelector(".site-threshold").value);
    if (!got.ok) problem = got.message;
    else if (tr.querySelector(".site-rule").value === "strictness" && !(pct >= 1 && pct <= 99)) problem = "Give a percentage from 1 to 99.";
    name.setAttribute("aria-invalid", String(!!problem));
    error.textContent = problem || "";
    error.hidden = !problem;
    if (problem) {
      refused.push(text);
      continue;
    }
    if (got.site !== text.toLowerCase()) name.value = got.site; // shown as stored (a pasted URL becomes its site)
    if (tr.querySelector(".site-rule").value === "off") offSites.push(got.site);
    else siteStrictness[got.site] = Math.round(pct * 10) / 1000;
  }
  return { offSites, siteStrictness, refused };
}

async function saveSites() {
  const { offSites, siteStrictness, refused } = readSites();
  await MedLens.settings.save({ offSites, siteStrictness });
  const msg = $("sites-message");
  msg.hidden = !refused.length;
  msg.textContent = refused.length
    ? `Not saved: ${refused.join(", ")} (see the message under ${refused.length === 1 ? "it" : "each"}). The other sites are saved.`
    : "";
  $("saved").textContent = refused.length ? "" : "Saved.";
}

/* ---------------------------------------------------------------- start */

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
  $("threshold").addEventListener("input", showThreshold);
  $("server-default").addEventListener("click", () => {
    $("threshold").value = String(positions.indexOf(null));
    showThreshold();
    save();
  });
  $("add-site").addEventListener("click", () => {
    const row = siteRow("", "off", null);
    $("site-rows").append(row);
    showSitesEmpty();
    row.querySelector(".site-name").focus();
  });
  $("show-token").addEventListener("change", (ev) => {
    $("token").type = ev.target.checked ? "text" : "password";
  });
  for (const el of document.querySelectorAll("#form input, #form textarea")) {
    if (["token", "server-url", "show-token", "pair-code"].includes(el.id) || el.closest("#site-rows")) continue;
    el.addEventListener("change", () => save()); // preferences apply at once
  }
  const s = await MedLens.settings.load();
  MedLens.api.serverState(s).then(learnServerThreshold, () => {}); // the server's threshold, if it answers
}

main();
