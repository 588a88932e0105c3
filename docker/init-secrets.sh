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
# Each file is readable by the services that need it only: run as root (compose does), the
# script gives it to their user (the images' fixed ids below) with mode 0600, or 0640 with the
# group of a second reader; run as anyone else (a test, a native run), it stays the caller's
# with mode 0600. Passwords are written to files, never to the log, except the first admin's
# and Grafana's admin's, shown once when generated (as other servers show theirs).
#
# With WEARHOUSE_TLS=self-signed it also generates a certificate for WEARHOUSE_TLS_NAMES into
# WEARHOUSE_TLS_DIR (cert.pem, key.pem; the web server's HTTPS, docker/nginx/transport.sh).
#
# As with PostgreSQL's own image, the database takes its password when it is first created:
# changing POSTGRES_PASSWORD later needs ALTER ROLE too.
set -eu

dir="${WEARHOUSE_SECRETS_DIR:?set WEARHOUSE_SECRETS_DIR}"
user="${POSTGRES_USER:-wearhouse}"
umask 077
mkdir -p "$dir"
chmod 0755 "$dir"

# The users of the pinned images (docker-compose.yml): wearhouse's own (docker/Dockerfile),
# PostgreSQL's (alpine), Grafana's (user 472, group root) and Prometheus' (nobody).
app=10001
postgres=70
grafana=472
grafana_group=0
nobody=65534

# protect FILE OWNER [GROUP]: readable by OWNER only, or by OWNER and GROUP.
protect() {
  if [ "$(id -u)" -ne 0 ]; then
    chmod 0600 "$1"
  elif [ $# -eq 3 ]; then
    chown "$2:$3" "$1"
    chmod 0640 "$1"
  else
    chown "$2:$2" "$1"
    chmod 0600 "$1"
  fi
}

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
  chmod 0600 "$file.tmp"
  mv "$file.tmp" "$file"
  echo "$1: $origin" >&2
  printf '%s' "$value"
}

pg_password="$(secret postgres-password "${POSTGRES_PASSWORD:-}")"
printf '*:*:*:%s:%s\n' "$user" "$pg_password" > "$dir/pgpass.tmp"
chmod 0600 "$dir/pgpass.tmp"
mv "$dir/pgpass.tmp" "$dir/pgpass"
# The database reads it at start; Grafana has a read-only login of its own (grafana-db-password).
protect "$dir/postgres-password" "$postgres"
protect "$dir/pgpass" "$app"

grafana_was_there=false
[ -s "$dir/grafana-admin-password" ] && grafana_was_there=true
grafana_password="$(secret grafana-admin-password "${GRAFANA_ADMIN_PASSWORD:-}")"
if [ -z "${GRAFANA_ADMIN_PASSWORD:-}" ] && [ "$grafana_was_there" = false ]; then
  # Shown once, like other servers' initial admin passwords; set GRAFANA_ADMIN_PASSWORD in
  # .env to choose it instead.
  echo "Grafana admin password (user ${GRAFANA_ADMIN_USER:-admin}): $grafana_password" >&2
fi
protect "$dir/grafana-admin-password" "$grafana"
admin_was_there=false
[ -s "$dir/admin-password" ] && admin_was_there=true
admin_password="$(secret admin-password "${WEARHOUSE_ADMIN_PASSWORD:-}")"
if [ -z "${WEARHOUSE_ADMIN_PASSWORD:-}" ] && [ "$admin_was_there" = false ]; then
  echo "wearhouse admin (sign in at the dashboard): ${WEARHOUSE_ADMIN_EMAIL:-admin@wearhouse.local}, password: $admin_password" >&2
  echo "(it stays in the secrets volume as admin-password: docker compose run --rm --entrypoint cat secrets-init /run/wearhouse-secrets/admin-password)" >&2
fi
protect "$dir/admin-password" "$app"
secret metrics-token "" >/dev/null
# The API checks it, Prometheus sends it.
protect "$dir/metrics-token" "$app" "$nobody"

case "${WEARHOUSE_TLS:-off}" in
  off) ;;
  self-signed)
    tls_dir="${WEARHOUSE_TLS_DIR:?set WEARHOUSE_TLS_DIR}"
    here="$(dirname "$0")"
    tool="$here/wearhouse-tls-self-signed"  # its name in the image; in the repository:
    [ -x "$tool" ] || tool="$here/tls-self-signed.sh"
    # shellcheck disable=SC2086 # one name per word
    "$tool" "$tls_dir" ${WEARHOUSE_TLS_NAMES:-localhost 127.0.0.1}
    ;;
  *) echo "WEARHOUSE_TLS is off or self-signed" >&2; exit 2 ;;
esac

secret grafana-db-password "${WEARHOUSE_GRAFANA_DB_PASSWORD:-}" >/dev/null
# The migrate service sets it on Grafana's database login; Grafana's data source reads it.
protect "$dir/grafana-db-password" "$app" "$grafana_group"

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
protect "$key_dir/token-key" "$app"

echo "credentials ready in $dir" >&2
