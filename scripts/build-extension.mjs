#!/usr/bin/env node
/* `npm run build`: the installable extension packages, built by web-ext from a staging folder.
 *
 *   dist/medlens-<version>-chrome.zip    Chrome/Chromium (chrome://extensions, or unzip + Load unpacked)
 *   dist/medlens-<version>-firefox.xpi   Firefox (about:addons → Install Add-on From File)
 *
 * Why a staging folder: the manifest sits at the repository root (beside server/, tests/, .venv/,
 * node_modules/...), so building the root with an ignore list would ship whatever new folder
 * nobody thought to list. Copying exactly manifest.json + extension/ makes "only the extension"
 * true by construction. The two archives hold the same files: one manifest serves both browsers.
 * Usage: node scripts/build-extension.mjs [--out DIR]   (default DIR: dist/)
 */
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const outFlag = process.argv.indexOf("--out");
const dist = outFlag > 0 ? resolve(process.argv[outFlag + 1]) : join(root, "dist");
const webExt = join(root, "node_modules", ".bin", "web-ext");
if (!existsSync(webExt)) {
  console.error("web-ext is not installed: run `npm ci` first");
  process.exit(1);
}
const { version } = JSON.parse(readFileSync(join(root, "manifest.json"), "utf8"));
if (!/^\d+(\.\d+){0,3}$/.test(version || "")) {
  console.error(`manifest.json has no valid version (${version})`);
  process.exit(1);
}

// Editor and OS litter never ships.
const litter = (name) => name.startsWith(".") || name.endsWith("~") || name === "Thumbs.db";
const stage = mkdtempSync(join(tmpdir(), "medlens-extension-"));
try {
  cpSync(join(root, "manifest.json"), join(stage, "manifest.json"));
  cpSync(join(root, "extension"), join(stage, "extension"), { recursive: true, filter: (src) => !litter(basename(src)) });
  mkdirSync(dist, { recursive: true });
  for (const [browser, ext] of [["chrome", "zip"], ["firefox", "xpi"]]) {
    const filename = `medlens-${version}-${browser}.${ext}`;
    execFileSync(webExt, [
      "build", "--source-dir", stage, "--artifacts-dir", dist, "--filename", filename,
      "--overwrite-dest", "--no-config-discovery",
    ], { stdio: ["ignore", "ignore", "inherit"] });
    console.log(join(dist, filename));
  }
} finally {
  rmSync(stage, { recursive: true, force: true });
}
