# Sourced by the suites that need a running API against a real database (tests/api-fuzz,
# tests/exports): a throwaway PostgreSQL cluster (as the `postgres` user when run as root),
# migrated with `wearhouse-api migrate`, a small synthetic cohort, an admin with an API token,
# and `wearhouse-api serve` on a free port. Everything is removed when the sourcing script
# exits. The binaries are built with cargo (CARGO_TARGET_DIR is honoured).
#
#   root=<repository>; prefix=<name for messages>; . tests/lib/api-server.sh
#   api_build                      build wearhouse-api and wearhouse-ingest
#   api_database                   start, migrate and seed the cluster; sets DATABASE_URL
#   api_serve [VAR=value ...]      serve the API (extra settings as environment); sets API_URL
#   API_TOKEN, API_DIR (the temporary folder), api (the wearhouse-api binary)

say() { printf '%s: %s\n' "$prefix" "$*"; }
fail() { printf '%s: FAILED: %s\n' "$prefix" "$*" >&2; exit 1; }

api_build() {
  (cd "$root" && cargo build -q -p wearhouse-api -p wearhouse-ingest --bins)
  local target="${CARGO_TARGET_DIR:-$root/target}"
  api="$target/debug/wearhouse-api"
  ingest="$target/debug/wearhouse-ingest"
}

pg_bin=$(dirname "$(readlink -f "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")")
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

API_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wearhouse-$prefix.XXXXXX")
chmod 755 "$API_DIR"
if [ "$(id -u)" = 0 ]; then chown postgres "$API_DIR"; fi
server_pid=""
api_cleanup() {
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
  [ -z "$server_pid" ] || wait "$server_pid" 2>/dev/null || true
  [ -f "$API_DIR/data/postmaster.pid" ] && as_pg "$pg_bin/pg_ctl" -D "$API_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$API_DIR"
}
trap api_cleanup EXIT

api_database() {
  local db_port
  db_port=$(free_port)
  as_pg "$pg_bin/initdb" -D "$API_DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  as_pg "$pg_bin/pg_ctl" -D "$API_DIR/data" -l "$API_DIR/postgres.log" -w \
    -o "-p $db_port -k $API_DIR -c listen_addresses=127.0.0.1" start >/dev/null
  "$pg_bin/createdb" -h 127.0.0.1 -p "$db_port" -U postgres wearhouse
  export DATABASE_URL="postgres://postgres@127.0.0.1:$db_port/wearhouse"
  export WEARHOUSE_LOG_FORMAT=pretty RUST_LOG=warn

  "$api" migrate >/dev/null
  "$ingest" synthetic --participants 2 --days 2 --start 2025-06-01 --study default >/dev/null 2>&1 \
    || fail "seeding the synthetic cohort"
  printf '%s-admin-password\n' "$prefix" >"$API_DIR/admin-password"
  "$api" user ensure-admin --email "$prefix@example.org" --password-file "$API_DIR/admin-password" >/dev/null
  API_TOKEN=$("$api" token create --email "$prefix@example.org" --name "$prefix" | tail -n 1)
  say "cluster on 127.0.0.1:$db_port migrated and seeded (SYN0001, SYN0002)"
}

api_serve() {
  local api_port
  api_port=$(free_port)
  env WEARHOUSE_LISTEN="127.0.0.1:$api_port" "$@" "$api" serve >"$API_DIR/api.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$api_port/ready" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$API_DIR/api.log" >&2; fail "wearhouse-api serve exited"; }
    sleep 0.2
  done
  API_URL="http://127.0.0.1:$api_port"
}
