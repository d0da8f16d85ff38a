#!/usr/bin/env bash
# System packages the tests need and pip cannot install: Chromium, for tests/test_report_browser.py
# (report.html opened in a real headless browser). Installs only what is missing; Debian/Ubuntu (apt).
# fonts-dejavu-core: text in screenshots without the recommended packages. Without Chromium that test
# skips, saying why. Run as root, or with sudo available.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
chromium --version
