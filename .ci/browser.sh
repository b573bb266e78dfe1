#!/usr/bin/env bash
# The operator console's browser test: installs Debian's Chromium and
# chromedriver when they are missing (as .ci/run installs promtool), then
# drives the console in headless Chromium over WebDriver. Screenshots of
# every page land in target/console-screenshots/ (CI artifacts). To refresh
# the README's two screenshots in docs/, run it with
# KASSA_UPDATE_DOCS_SCREENSHOTS=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ]; then
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver
fi
/usr/bin/chromium --version
/usr/bin/chromedriver --version

KASSA_TEST_BROWSER=1 cargo test -p tests --test console_browser -- --nocapture
ls -l "${CARGO_TARGET_DIR:-target}/console-screenshots/"
