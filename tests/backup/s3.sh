#!/usr/bin/env bash
# The restore drill with the backup repository in S3-compatible storage: pgBackRest's own S3
# client against a local S3 server (moto, from PyPI, in a test-only virtual environment, behind
# nginx for HTTPS with a throwaway certificate), configured as README "Backups" says
# (repository type s3, bucket, endpoint, region, keys, path-style URIs). The drill (tests/backup/drill.sh) runs
# unchanged against that repository; afterwards the bucket must hold the stanza's backup and
# WAL archive, so the drill cannot have passed on a local folder.
#
#   tests/backup/s3.sh           needs what the drill needs, python3-venv and PyPI
#   S3_VENV=/path tests/backup/s3.sh   reuse (or keep) the virtual environment
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
say() { printf 's3 drill: %s\n' "$*"; }
fail() { printf 's3 drill: FAILED: %s\n' "$*" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/wearhouse-s3.XXXXXX")
venv=${S3_VENV:-$work/venv}
server_pid="" nginx_pid=""
cleanup() {
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
  [ -z "$nginx_pid" ] || kill "$nginx_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ ! -x "$venv/bin/moto_server" ]; then
  say "installing the S3 server (moto) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/tests/backup/requirements-s3.txt" \
    || fail "cannot install tests/backup/requirements-s3.txt from PyPI"
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# pgBackRest speaks to S3 over TLS only, and with OpenSSL 3 refuses a server that closes its
# connections without a TLS close (as the S3 server's own test TLS does): nginx terminates TLS
# in front of it, as a load balancer does in front of real object storage.
s3_port=$(free_port)
port=$(free_port)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >"$work/server.log" 2>&1 &
server_pid=$!
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || fail "nginx not found (apt-get install nginx)"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<CONF
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events {}
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $work/tls.crt;
    ssl_certificate_key $work/tls.key;
    client_max_body_size 0;
    location / {
      proxy_pass http://127.0.0.1:$s3_port;
      proxy_set_header Host \$http_host;
      proxy_request_buffering off;
      proxy_http_version 1.1;
    }
  }
}
CONF
"$nginx_bin" -p "$work/nginx" -c "$work/nginx.conf" >"$work/nginx.out" 2>&1 &
nginx_pid=$!
endpoint="https://127.0.0.1:$port"
bucket=wearhouse-backups
# Keys the server accepts; pgBackRest signs every request with them (AWS signature v4).
export AWS_ACCESS_KEY_ID=wearhouse-drill AWS_SECRET_ACCESS_KEY=drill-secret AWS_DEFAULT_REGION=eu-west-1
s3() { "$venv/bin/python" - "$endpoint" "$bucket" "$@"; }
for _ in $(seq 1 100); do
  s3 <<'PY' 2>/dev/null && break
import sys, boto3, urllib3
urllib3.disable_warnings()
endpoint, bucket = sys.argv[1:3]
boto3.client("s3", endpoint_url=endpoint, verify=False).create_bucket(
    Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
PY
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; fail "the S3 server stopped"; }
  kill -0 "$nginx_pid" 2>/dev/null || { cat "$work/nginx.out" "$work/nginx/error.log" >&2; fail "nginx stopped"; }
  sleep 0.2
done
s3 <<'PY' || fail "the S3 server at $endpoint has no bucket"
import sys, boto3, urllib3
urllib3.disable_warnings()
endpoint, bucket = sys.argv[1:3]
boto3.client("s3", endpoint_url=endpoint, verify=False).head_bucket(Bucket=bucket)
PY
say "S3 server at $endpoint, bucket $bucket"

# The server's certificate is its own, hence verify-tls=n; a real deployment keeps the default.
DRILL_PGBACKREST_CONFIG="repo1-type=s3
repo1-s3-bucket=$bucket
repo1-s3-endpoint=127.0.0.1
repo1-storage-port=$port
repo1-s3-region=eu-west-1
repo1-s3-key=$AWS_ACCESS_KEY_ID
repo1-s3-key-secret=$AWS_SECRET_ACCESS_KEY
repo1-s3-uri-style=path
repo1-storage-verify-tls=n" "$root/tests/backup/drill.sh"

# What the drill left in the bucket: the stanza's backup set and its WAL archive.
listing=$(s3 <<'PY'
import sys, boto3, urllib3
urllib3.disable_warnings()
endpoint, bucket = sys.argv[1:3]
pages = boto3.client("s3", endpoint_url=endpoint, verify=False).get_paginator("list_objects_v2")
for page in pages.paginate(Bucket=bucket):
    for o in page.get("Contents", []):
        print(o["Key"])
PY
)
grep -q '/backup/drill/backup.info$' <<<"$listing" || fail "no backup.info in the bucket: $(head -n 20 <<<"$listing")"
grep -q '/archive/drill/archive.info$' <<<"$listing" || fail "no archive.info in the bucket"
grep -qE '/archive/drill/[^/]+/[^/]+/[0-9A-F]{24}-[0-9a-f]{40}' <<<"$listing" || fail "no archived WAL segment in the bucket"
say "OK: the bucket holds the backup set and $(grep -c '/archive/drill/.*/[0-9A-F]\{24\}-' <<<"$listing") archived WAL segments"
