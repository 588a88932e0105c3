#!/bin/sh
# Writes how nginx listens into a folder, for docker/nginx/default.conf.template to include:
#
#   listen.conf    inside the server block: plain HTTP on WEARHOUSE_WEB_LISTEN, or HTTPS on
#                  WEARHOUSE_TLS_LISTEN with the certificate
#   redirect.conf  at http level: nothing, or (with a certificate) a server on
#                  WEARHOUSE_WEB_LISTEN that sends every request to HTTPS but the health check
#
# HTTPS is served when WEARHOUSE_TLS_CERT and WEARHOUSE_TLS_KEY name files (both or neither),
# or else when the folder WEARHOUSE_TLS_DIR holds cert.pem and key.pem (where secrets-init puts
# a generated self-signed pair, or an operator their own); WEARHOUSE_TLS_REDIRECT_PORT is the HTTPS port clients see (443: none in the redirect). Run by
# the web image at start (/docker-entrypoint.d/) and by scripts/stack, so both serve the same.
#
#   docker/nginx/transport.sh [OUTPUT_DIR]   (default: WEARHOUSE_NGINX_TRANSPORT_DIR)
set -eu
[ $# -le 1 ] || { echo "usage: $0 [OUTPUT_DIR]" >&2; exit 2; }
out="${1:-${WEARHOUSE_NGINX_TRANSPORT_DIR:?set WEARHOUSE_NGINX_TRANSPORT_DIR}}"
web_listen="${WEARHOUSE_WEB_LISTEN:?set WEARHOUSE_WEB_LISTEN}"
cert="${WEARHOUSE_TLS_CERT:-}"
key="${WEARHOUSE_TLS_KEY:-}"
tls_dir="${WEARHOUSE_TLS_DIR:-}"
if [ -z "$cert$key" ] && [ -n "$tls_dir" ] && [ -s "$tls_dir/cert.pem" ] && [ -s "$tls_dir/key.pem" ]; then
  cert="$tls_dir/cert.pem"
  key="$tls_dir/key.pem"
fi
mkdir -p "$out"

if [ -z "$cert" ] && [ -z "$key" ]; then
  printf '# Plain HTTP: no certificate given.\nlisten %s;\n' \
    "$web_listen" >"$out/listen.conf"
  printf '# Plain HTTP: nothing to redirect.\n' >"$out/redirect.conf"
  echo "transport: plain HTTP on $web_listen" >&2
  exit 0
fi
[ -n "$cert" ] && [ -n "$key" ] || {
  echo "transport: set both WEARHOUSE_TLS_CERT and WEARHOUSE_TLS_KEY, or neither" >&2
  exit 1
}
for f in "$cert" "$key"; do
  [ -r "$f" ] || { echo "transport: cannot read $f" >&2; exit 1; }
done
tls_listen="${WEARHOUSE_TLS_LISTEN:?set WEARHOUSE_TLS_LISTEN (where HTTPS listens)}"
port="${WEARHOUSE_TLS_REDIRECT_PORT:-443}"
case "$port" in
  443) authority='$host' ;;
  *[!0-9]*|'') echo "transport: WEARHOUSE_TLS_REDIRECT_PORT must be a port number" >&2; exit 1 ;;
  *) authority="\$host:$port" ;;
esac

cat >"$out/listen.conf" <<CONF
# HTTPS with the given certificate; plain HTTP only redirects (redirect.conf).
listen $tls_listen ssl;
ssl_certificate $cert;
ssl_certificate_key $key;
ssl_protocols TLSv1.2 TLSv1.3;
ssl_prefer_server_ciphers off;
ssl_session_cache shared:wearhouse_tls:1m;
ssl_session_timeout 1h;
ssl_session_tickets off;
CONF

cat >"$out/redirect.conf" <<CONF
# Plain HTTP answers nothing but its health check: every other request goes to HTTPS.
server {
  listen $web_listen;
  server_name _;
  server_tokens off;
  access_log off;

  location = /nginx-health {
    default_type text/plain;
    return 200 "ok\n";
  }

  location / {
    return 301 https://$authority\$request_uri;
  }
}
CONF
echo "transport: HTTPS on $tls_listen with $cert; HTTP on $web_listen redirects" >&2
