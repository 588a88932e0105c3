#!/bin/sh
# Everything CI runs for monitoring/: installs the Debian tools if missing, runs the static
# checks, the AlertManager rendering/entrypoint tests and the end-to-end alert e-mail test.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

sh "$here/install-deps.sh"
sh "$here/check.sh"
printf '\n== AlertManager rendering and entrypoint tests\n'
PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s "$repo/tests/monitoring" \
    -t "$repo/tests/monitoring"
printf '\n== end-to-end alert e-mail\n'
PYTHONDONTWRITEBYTECODE=1 python3 "$repo/tests/monitoring/e2e_alert.py"
