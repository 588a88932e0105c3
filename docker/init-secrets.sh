#!/bin/sh
# Creates the stack's credentials on first start, so a fresh `docker compose up -d` needs no
# file editing and still no password lives in a tracked file. Used by the `secrets-init`
# service of docker-compose.yml (as /usr/local/bin/wearhouse-init-secrets).
#
# Each secret is taken from the environment when set there (.env), else kept from an earlier
# start, else generated at random; it is written to WEARHOUSE_SECRETS_DIR (a named volume that
# only the services needing it mount):
#
#   postgres-password       the database owner's password (db reads POSTGRES_PASSWORD_FILE)
#   pgpass                  the same for the wearhouse binaries (PGPASSFILE, PostgreSQL format)
#   grafana-admin-password  Grafana's admin password (GF_SECURITY_ADMIN_PASSWORD__FILE)
#   admin-password          the first wearhouse admin's password (WEARHOUSE_ADMIN_EMAIL, made by
#                           the migrate service with `wearhouse-api user ensure-admin`)
#   metrics-token           the bearer token Prometheus scrapes the API's /metrics with
#   grafana-db-password     the password of Grafana's read-only database login (made by the
#                           migrate service with `wearhouse-api db grafana-login`)
#   token-key               the key participants' OAuth grants are encrypted under (64 hex
#                           digits), written to WEARHOUSE_INGEST_KEY_DIR (a volume only the
#                           ingest mounts) with mode 0600; never replaced once there, as the
#                           grants cannot be read without it (rotate with
#                           `wearhouse-ingest rotate-token-key`)
#
# As with PostgreSQL's own image, the database takes its password when it is first created:
# changing POSTGRES_PASSWORD later needs ALTER ROLE too.
set -eu

dir="${WEARHOUSE_SECRETS_DIR:?set WEARHOUSE_SECRETS_DIR}"
user="${POSTGRES_USER:-wearhouse}"
umask 022
mkdir -p "$dir"

random_secret() {
  od -An -tx1 -N24 /dev/urandom | tr -d ' \n'
}

# secret NAME VALUE_FROM_ENV: prints the secret's value after making sure the file holds it.
secret() {
  file="$dir/$1"
  if [ -n "$2" ]; then
    value="$2"
    origin="from the environment"
  elif [ -s "$file" ]; then
    value="$(cat "$file")"
    origin="kept"
  else
    value="$(random_secret)"
    origin="generated"
  fi
  case "$value" in
    *[!A-Za-z0-9._~-]*)
      # It goes into a URL-free pgpass line, but ':' and '\' would need escaping there and
      # line breaks would break every consumer; a plain token avoids all of that.
      echo "$1: use letters, digits and . _ ~ - only" >&2
      exit 2
      ;;
  esac
  printf '%s' "$value" > "$file.tmp"
  chmod 0644 "$file.tmp"
  mv "$file.tmp" "$file"
  echo "$1: $origin" >&2
  printf '%s' "$value"
}

pg_password="$(secret postgres-password "${POSTGRES_PASSWORD:-}")"
printf '*:*:*:%s:%s\n' "$user" "$pg_password" > "$dir/pgpass.tmp"
chmod 0644 "$dir/pgpass.tmp"
mv "$dir/pgpass.tmp" "$dir/pgpass"

grafana_was_there=false
[ -s "$dir/grafana-admin-password" ] && grafana_was_there=true
grafana_password="$(secret grafana-admin-password "${GRAFANA_ADMIN_PASSWORD:-}")"
if [ -z "${GRAFANA_ADMIN_PASSWORD:-}" ] && [ "$grafana_was_there" = false ]; then
  # Shown once, like other servers' initial admin passwords; set GRAFANA_ADMIN_PASSWORD in
  # .env to choose it instead.
  echo "Grafana admin password (user ${GRAFANA_ADMIN_USER:-admin}): $grafana_password" >&2
fi
admin_was_there=false
[ -s "$dir/admin-password" ] && admin_was_there=true
admin_password="$(secret admin-password "${WEARHOUSE_ADMIN_PASSWORD:-}")"
if [ -z "${WEARHOUSE_ADMIN_PASSWORD:-}" ] && [ "$admin_was_there" = false ]; then
  echo "wearhouse admin (sign in at the dashboard): ${WEARHOUSE_ADMIN_EMAIL:-admin@wearhouse.local}, password: $admin_password" >&2
  echo "(it stays in the secrets volume as admin-password: docker compose run --rm --entrypoint cat secrets-init /run/wearhouse-secrets/admin-password)" >&2
fi
secret metrics-token "" >/dev/null
secret grafana-db-password "${WEARHOUSE_GRAFANA_DB_PASSWORD:-}" >/dev/null

key_dir="${WEARHOUSE_INGEST_KEY_DIR:-$dir}"
mkdir -p "$key_dir"
if [ -s "$key_dir/token-key" ]; then
  echo "token-key: kept" >&2
else
  (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$key_dir/token-key.tmp")
  mv "$key_dir/token-key.tmp" "$key_dir/token-key"
  echo "token-key: generated (back it up with the database: without it every participant must consent again)" >&2
fi
chmod 0600 "$key_dir/token-key"

echo "credentials ready in $dir" >&2
