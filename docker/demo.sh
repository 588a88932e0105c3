#!/bin/sh
# Loads the synthetic demo cohort when demo mode is on (WEARHOUSE_DEMO=true), so a fresh stack
# shows data with no manual step. Used by the `demo` service of docker-compose.yml (as
# /usr/local/bin/wearhouse-demo) and by scripts/stack.
#
# The cohort's start date is chosen once (today minus WEARHOUSE_DEMO_DAYS, unless
# WEARHOUSE_DEMO_START is set) and remembered in WEARHOUSE_DEMO_STATE_DIR. Every later start
# loads the very same cohort again, which `wearhouse-ingest synthetic` turns into no change
# at all; and a database that was wiped gets the same cohort back.
set -eu

case "${WEARHOUSE_DEMO:-false}" in
  true | 1 | yes) ;;
  false | 0 | no | "")
    echo "demo mode is off (WEARHOUSE_DEMO=${WEARHOUSE_DEMO:-}); no demo cohort loaded"
    exit 0
    ;;
  *)
    echo "WEARHOUSE_DEMO must be true or false, not '${WEARHOUSE_DEMO}'" >&2
    exit 2
    ;;
esac

participants="${WEARHOUSE_DEMO_PARTICIPANTS:-5}"
days="${WEARHOUSE_DEMO_DAYS:-14}"
seed="${WEARHOUSE_DEMO_SEED:-7}"
state_dir="${WEARHOUSE_DEMO_STATE_DIR:?set WEARHOUSE_DEMO_STATE_DIR to a writable folder}"
ingest="${WEARHOUSE_INGEST_BIN:-wearhouse-ingest}"
state="$state_dir/demo-start"

if [ -n "${WEARHOUSE_DEMO_START:-}" ]; then
  start="$WEARHOUSE_DEMO_START"
elif [ -s "$state" ]; then
  start="$(cat "$state")"
else
  start="$(date -u -d "@$(($(date -u +%s) - days * 86400))" +%Y-%m-%d)"
fi
mkdir -p "$state_dir"
printf '%s\n' "$start" > "$state.tmp"
mv "$state.tmp" "$state"

echo "loading the demo cohort: $participants participants, $days days from $start, seed $seed"
exec "$ingest" synthetic --participants "$participants" --days "$days" --start "$start" \
  --seed "$seed"
