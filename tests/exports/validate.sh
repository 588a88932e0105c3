#!/usr/bin/env bash
# Validates the exports in standard formats against the standards themselves: every
# Observation of `GET /export/fhir` (and of `wearhouse-api export --format fhir`) against FHIR
# R4 with fhir.resources (its R4 4.0.1 models), plus the vital-signs profile's requirements,
# and every data point of `GET /export/omh` (JSON array and NDJSON, and the command line's
# file) against the official Open mHealth JSON schemas. It serves the API against a throwaway
# cluster with a small synthetic cohort (tests/lib/api-server.sh) and fails on any invalid
# resource or data point, and when a kind the cohort holds is missing from an export.
#
#   tests/exports/validate.sh
#
# The Open mHealth schemas are read from ${WEARHOUSE_STANDARDS_DIR:-<repository>/../shared/standards}
# (openmhealth/schema/omh/), else /work/shared/standards; they are not copied into the
# repository. fhir.resources and jsonschema come from PyPI at the versions pinned in
# requirements.txt, installed into tests/exports/.venv (git-ignored; EXPORTS_VENV chooses
# another folder).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
prefix=exports

standards=""
for candidate in "${WEARHOUSE_STANDARDS_DIR:-$root/../shared/standards}" /work/shared/standards; do
  if [ -d "$candidate/openmhealth/schema/omh" ]; then
    standards="$candidate"
    break
  fi
done
if [ -z "$standards" ]; then
  printf '%s: FAILED: the Open mHealth schemas were not found: put the openmhealth/schemas library so that %s exists (or set WEARHOUSE_STANDARDS_DIR to the folder holding openmhealth/schema/omh/)\n' \
    "$prefix" "$root/../shared/standards/openmhealth/schema/omh" >&2
  exit 1
fi
schemas="$standards/openmhealth/schema/omh"

# shellcheck source=../lib/api-server.sh
. "$root/tests/lib/api-server.sh"

venv="${EXPORTS_VENV:-$here/.venv}"
if ! "$venv/bin/python" -c 'import fhir.resources, jsonschema' 2>/dev/null \
  || ! cmp -s "$here/requirements.txt" "$venv/requirements.txt"; then
  say "installing fhir.resources and jsonschema into $venv"
  python3 -m venv "$venv" || fail "python3 -m venv failed (apt-get install python3-venv)"
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/requirements.txt"
fi

api_build
api_database
api_serve
say "API on $API_URL; Open mHealth schemas from $schemas"

out="$API_DIR/exports"
mkdir -p "$out"
q="from=2025-06-01&to=2025-06-03"
for p in SYN0001 SYN0002; do
  curl -fsS -H "Authorization: Bearer $API_TOKEN" "$API_URL/export/fhir?participant_id=$p&$q" \
    -o "$out/$p.fhir.json" || fail "GET /export/fhir for $p"
  curl -fsS -H "Authorization: Bearer $API_TOKEN" "$API_URL/export/omh?participant_id=$p&$q" \
    -o "$out/$p.omh.json" || fail "GET /export/omh for $p"
  curl -fsS -H "Authorization: Bearer $API_TOKEN" -H 'Accept: application/x-ndjson' \
    "$API_URL/export/omh?participant_id=$p&$q" -o "$out/$p.omh.ndjson" \
    || fail "GET /export/omh (NDJSON) for $p"
done
"$api" export --format fhir --participant SYN0001 --from 2025-06-01 --to 2025-06-03 \
  --out "$out/cli.fhir.json" >/dev/null || fail "wearhouse-api export --format fhir"
"$api" export --format omh --participant SYN0001 --from 2025-06-01 --to 2025-06-03 \
  --out "$out/cli.omh.json" >/dev/null || fail "wearhouse-api export --format omh"

"$venv/bin/python" "$here/validate.py" --schemas "$schemas" \
  --fhir "$out"/*.fhir.json --omh "$out"/*.omh.json --omh-ndjson "$out"/*.omh.ndjson \
  || fail "invalid exports (above)"
say "passed"
