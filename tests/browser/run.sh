#!/usr/bin/env bash
# Builds the dashboard and runs the browser test in headless Chromium.
#
#   tests/browser/run.sh                 # against tests/browser/fake_api.mjs (started by the test)
#   WEARHOUSE_WEB_URL=http://127.0.0.1:8080/ \
#   WEARHOUSE_TEST_EMAIL=researcher@example.org WEARHOUSE_TEST_PASSWORD=... \
#   [WEARHOUSE_TEST_FOREIGN_PARTICIPANT=<id in a study that user is not in>] \
#     tests/browser/run.sh               # against a running stack
#
# Against a stack the test signs in as WEARHOUSE_TEST_EMAIL (a user who may read data of a
# study with participants; it fails at once without these two variables) and tries one wrong
# password and one unknown e-mail. Without WEARHOUSE_TEST_FOREIGN_PARTICIPANT the "another
# study's participant is refused" step is skipped; throttling, single sign-on and the role
# that may not read data are checked against the fake API only. WEARHOUSE_API_STOP_CMD and
# WEARHOUSE_API_START_CMD (see dashboard.test.mjs) add the "API answers 5xx" case.
#
# Installs what is missing: npm packages from the lockfiles, and Debian's chromium (a test
# tool's own browser download does not work offline). The screenshots land in test-artifacts/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

chromium="${WEARHOUSE_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "chromium not found at $chromium; installing Debian's chromium" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
fi

# The page under test is the one built from the lockfile, as CI and the web image build it.
(cd frontend && npm ci --no-audit --no-fund && npm run build)
(cd tests/browser && npm ci --no-audit --no-fund)

mkdir -p test-artifacts
cd tests/browser
exec node --test --test-reporter=spec dashboard.test.mjs tools.test.mjs
