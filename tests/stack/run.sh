#!/usr/bin/env bash
# End-to-end test of the native stack: `scripts/stack up` in a temporary folder on free ports
# (a developer's own .data/ and ports stay untouched), then the browser test against its nginx,
# stopping and starting the real API for the "API down" case; everything is torn down on exit.
# The stack runs with the fake providers (WEARHOUSE_FAKE_PROVIDERS=1), so a coordinator's
# consent link goes through nginx, the ingest daemon and a provider's consent page and back.
# Screenshots land in test-artifacts/, and the stack's logs in test-artifacts/stack-logs/.
#
#   tests/stack/run.sh
#
# Needs what scripts/stack and tests/browser/run.sh need (postgresql, nginx, curl, npm, Rust,
# chromium); .ci/run installs them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/wearhouse-stack-test.XXXXXX")"
# As root, the database runs as the postgres user, which must be able to reach its folder.
chmod 0755 "$tmp"
export WEARHOUSE_STACK_DIR="$tmp/data"

free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}
read -r WEARHOUSE_WEB_PORT WEARHOUSE_API_PORT WEARHOUSE_DB_PORT WEARHOUSE_INGEST_PORT \
  WEARHOUSE_IMPUTE_PORT WEARHOUSE_FAKE_FITBIT_PORT WEARHOUSE_FAKE_GOOGLE_PORT <<<"$(free_ports 7)"
export WEARHOUSE_WEB_PORT WEARHOUSE_API_PORT WEARHOUSE_DB_PORT WEARHOUSE_INGEST_PORT \
  WEARHOUSE_IMPUTE_PORT WEARHOUSE_FAKE_FITBIT_PORT WEARHOUSE_FAKE_GOOGLE_PORT
export WEARHOUSE_DEMO=true WEARHOUSE_FAKE_PROVIDERS=1

cleanup() {
  local status=$?
  "$root/scripts/stack" down || status=1
  mkdir -p "$root/test-artifacts/stack-logs"
  cp -r "$WEARHOUSE_STACK_DIR/logs/." "$root/test-artifacts/stack-logs/" 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    echo "== the stack's logs are in test-artifacts/stack-logs/; their last lines:" >&2
    tail -n 15 "$WEARHOUSE_STACK_DIR"/logs/*.log >&2 2>/dev/null || true
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== native stack in $WEARHOUSE_STACK_DIR (web $WEARHOUSE_WEB_PORT, api $WEARHOUSE_API_PORT, db $WEARHOUSE_DB_PORT)"
"$root/scripts/stack" up

# The stack must answer as the README promises before the browser looks at it: nothing
# without credentials, and the demo cohort to the first admin at once.
web="http://127.0.0.1:$WEARHOUSE_WEB_PORT"
status="$(curl -sS -o /dev/null -w '%{http_code}' "$web/api/participants")"
[ "$status" = 401 ] || { echo "participants without credentials answered $status, not 401" >&2; exit 1; }
eval "$("$root/scripts/stack" env)"
jar="$tmp/cookies"
curl -fsS -c "$jar" -H 'content-type: application/json' \
  -d "{\"email\": \"$WEARHOUSE_ADMIN_EMAIL\", \"password\": \"$(cat "$WEARHOUSE_ADMIN_PASSWORD_FILE")\"}" \
  "$web/api/auth/login" >/dev/null
participants="$(curl -fsS -b "$jar" "$web/api/participants")"
case "$participants" in
  *'"total_count":0'*) echo "the demo cohort is missing: $participants" >&2; exit 1 ;;
esac

# The browser signs in as a researcher of the demo study; a participant of another study must
# stay out of their sight.
researcher=researcher@wearhouse.local
printf '%s\n' "stack-test-researcher-password" >"$tmp/researcher-password"
"$root/scripts/stack" admin study add --id other --name "Another study" >/dev/null
"$root/scripts/stack" admin user add --email "$researcher" --role researcher --study demo \
  --password-file "$tmp/researcher-password" >/dev/null
"$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql" "$DATABASE_URL" -qc \
  "insert into participants (participant_id, study_id) values ('OTHER01', 'other')"

# A researcher's API token reads the demo cohort, the read is in the audit trail under their
# name, and the trail's chain holds.
token="$("$root/scripts/stack" admin token create --email "$researcher" --name stack-test | tail -n 1)"
range="metric=heart_rate&start_date=2000-01-01&end_date=2100-01-01"
status="$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
  "$web/api/data?participant_id=SYN0001&$range")"
[ "$status" = 200 ] || { echo "the researcher's token read SYN0001 with $status, not 200" >&2; exit 1; }
status="$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
  "$web/api/data?participant_id=OTHER01&$range")"
[ "$status" = 404 ] || { echo "another study's participant answered $status, not 404" >&2; exit 1; }
audit="$(curl -fsS -b "$jar" "$web/api/audit?participant_id=SYN0001&action=read_series")"
case "$audit" in
  *"\"actor\":\"token stack-test of $researcher\""*) ;;
  *) echo "no audit row names the researcher's read of SYN0001: $audit" >&2; exit 1 ;;
esac
"$root/scripts/stack" admin audit verify

# A coordinator of the demo study adds a participant and invites them in the browser test.
coordinator=coordinator@wearhouse.local
printf '%s\n' "stack-test-coordinator-password" >"$tmp/coordinator-password"
"$root/scripts/stack" admin user add --email "$coordinator" --role coordinator --study demo \
  --password-file "$tmp/coordinator-password" >/dev/null
# A consent link's page is the ingest daemon's, through nginx: an unknown token is refused.
status="$(curl -sS -o /dev/null -w '%{http_code}' "$web/consent/not-a-link")"
[ "$status" = 404 ] || { echo "an unknown consent link answered $status, not 404" >&2; exit 1; }

echo "== browser test against $web/"
WEARHOUSE_TEST_COORDINATOR_EMAIL="$coordinator" \
WEARHOUSE_TEST_COORDINATOR_PASSWORD="stack-test-coordinator-password" \
WEARHOUSE_TEST_EMAIL="$researcher" \
WEARHOUSE_TEST_PASSWORD="stack-test-researcher-password" \
WEARHOUSE_TEST_FOREIGN_PARTICIPANT=OTHER01 \
WEARHOUSE_WEB_URL="$web/" \
WEARHOUSE_API_STOP_CMD="'$root/scripts/stack' stop api" \
WEARHOUSE_API_START_CMD="'$root/scripts/stack' start api" \
  "$root/tests/browser/run.sh"
